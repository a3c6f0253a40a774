# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module_utils is PRIVATE to lunsafe.san. It may change without notice.

"""The journal next to the host lock: what a run that was killed had started to change.

A module run that is killed (SIGKILL, SIGTERM from a task timeout, the OOM killer, a reboot) cannot roll
back or report what it had done: a session it logged in to, devices it scanned, a map multipathd built for
them, a half-removed LUN. Without a trail, the next run finds them, takes them for the host's own state and
reports ``changed: false``.

So each run that changes the host keeps an entry in its journal (JSON, :func:`journal_path`) while it works:
the entry is written just before the run's first write to the host, each write is appended to it just before
it is made, and the entry is removed when the run ends in a controlled way
(success, or a failure it rolled back and reported). The file is only read and written with the host lock
held, and rewritten whole (temporary file, fsync, rename), so a kill leaves either the old or the new file.
An entry found by the next run is therefore one that was interrupted: its process no longer held the lock.

What the next run does with it (:func:`resolve`):

* ``adopted``: an attach whose request covers the interrupted one (the same targets, at least its LUNs)
  completes it: what the killed run left is now this run's result, reported, and the run is changed;
* ``removed``: a detach that covers it removes what it left;
* ``left``: a run that does not cover it leaves it alone (a module never touches what it was not asked
  about) and warns; the entry stays until a run that covers it resolves it;
* ``gone``: the entry is from a previous boot, so its sessions and devices went with that boot (node records
  it created persist: they are listed in ``done``), or nothing it left remains (a flush whose map and paths
  another run removed); it is reported once and dropped.

An entry is only marked resolved when the covering run succeeds; a run that fails leaves it for the next.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils._lock import (
    DEFAULT_LOCK_FILE,
    LockDir,
    read_boot_id,
    read_trusted,
    remove_file,
    replace_file,
)

__all__ = [
    "DEFAULT_JOURNAL_FILE",
    "RESOLUTIONS",
    "Journal",
    "Trail",
    "covers",
    "describe_entry",
    "journal_for",
    "journal_path",
    "load_entries",
    "resolve",
]

#: the journal of the default lock file (:func:`journal_path`): in a root-only directory (0700, created by the
#: first write) beside the persistence records, on a file system a reboot keeps
DEFAULT_JOURNAL_FILE = "/var/lib/lunsafe-san/lunsafe-san.lock.journal"
JOURNAL_VERSION = 1
RESOLUTIONS = ("adopted", "removed", "left", "gone")
_FILE_MODE = 0o600  # the request it records names targets and portals; no secret is ever written
_DONE_MAX = 200  # a run records at most this many writes (a 256-LUN call); the rest is summed up


def journal_path(lock_file: str) -> str:
    """Where the journal of ``lock_file`` lives: ``<lock_file>.journal``, except for the default lock file, whose
    directory is under /run and emptied by a reboot: its journal is :data:`DEFAULT_JOURNAL_FILE`, on disk, so that
    the first run after a reboot or a power cut reports what a run cut off by it had started (``gone``: the node
    records it created are still there). A lock file chosen elsewhere keeps its journal beside it."""
    if os.path.normpath(lock_file) == DEFAULT_LOCK_FILE:  # also as a role or a user spells it (a double slash)
        return DEFAULT_JOURNAL_FILE
    return lock_file + ".journal"


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def _valid_entry(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("id"), str)
        and isinstance(entry.get("module"), str)
        and isinstance(entry.get("op"), str)
        and isinstance(entry.get("pid"), int)
        and isinstance(entry.get("request"), dict)
        and isinstance(entry.get("done"), list)
    )


def load_entries(text: str) -> Tuple[List[Dict[str, Any]], Optional[str]]:
    """The journal's entries and, if the text is not a journal, why (its entries are then unknown)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        return [], f"not JSON ({exc})"
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        return [], "no list of entries"
    entries = [entry for entry in data["entries"] if _valid_entry(entry)]
    skipped = len(data["entries"]) - len(entries)
    return entries, (f"{skipped} malformed entries skipped" if skipped else None)


def covers(entry: Dict[str, Any], *, module: str, targets: Sequence[str], luns: Sequence[int]) -> bool:
    """Whether a request (its targets and LUNs) covers an interrupted entry of ``module``."""
    if entry.get("module") != module:
        return False
    request = entry.get("request") or {}
    entry_targets = request.get("targets") or []
    entry_luns = request.get("luns") or []
    return set(entry_targets) <= set(targets) and set(entry_luns) <= set(luns)


Check = Callable[[Dict[str, Any]], bool]


def resolve(
    entries: Sequence[Dict[str, Any]],
    *,
    op: str,
    covered: Check,
    boot_id: str,
    settled: Optional[Check] = None,
) -> List[Dict[str, Any]]:
    """Each interrupted entry with the resolution a run of ``op`` gives it: ``covered`` tells whether the run's
    request covers an entry, ``settled`` whether nothing an entry left remains on the host."""
    resolved = []
    for entry in entries:
        if boot_id and entry.get("boot_id") and entry["boot_id"] != boot_id:
            resolution = "gone"
        elif covered(entry):
            resolution = "adopted" if op == "attach" else "removed"
        elif settled is not None and settled(entry):
            resolution = "gone"
        else:
            resolution = "left"
        resolved.append({**entry, "resolution": resolution})
    return resolved


def describe_entry(entry: Dict[str, Any]) -> str:
    """One line for a warning: who was interrupted, when, and after which writes."""
    request = entry.get("request") or {}
    what = f"{entry.get('op')} of LUNs {request.get('luns')} of {', '.join(request.get('targets') or [])}"
    done = entry.get("done") or []
    after = "; ".join(done) if done else "no write"
    return (
        f"a run of {entry.get('module')} (pid {entry.get('pid')}, started {entry.get('started')}: {what}) was "
        f"interrupted after: {after}"
    )


class Journal:
    """The journal file of one lock file; every method is called with the host lock held."""

    def __init__(
        self,
        path: str,
        *,
        boot_id: str = "",
        pid: Optional[int] = None,
        now: Callable[[], str] = _utc_now,
    ) -> None:
        self.path = path
        self.boot_id = boot_id
        self.pid = os.getpid() if pid is None else pid
        self._now = now
        self.problem: Optional[str] = None  # why the file could not be read, once read

    def read(self) -> List[Dict[str, Any]]:
        """Every entry in the file (none if there is no file). An unreadable file is kept aside as
        ``<journal>.bad`` and :attr:`problem` says why: its content is not lost, and the run goes on."""
        text = read_trusted(self.path, what="journal")  # refuses a file another user could have planted
        if text is None:
            return []
        entries, problem = load_entries(text)
        if problem is not None:
            self.problem = f"the journal {self.path} could not be read fully: {problem}"
            if not entries:
                with contextlib.suppress(OSError), LockDir.opened(os.path.dirname(self.path)) as directory:
                    directory.rename(os.path.basename(self.path), os.path.basename(self.path) + ".bad")
                self.problem += f"; it was kept as {self.path}.bad"
        return entries

    def write(self, entries: Sequence[Dict[str, Any]]) -> None:
        """Replace the file's entries (the file is removed when none is left)."""
        if not entries:
            remove_file(self.path)
            return
        text = json.dumps({"version": JOURNAL_VERSION, "entries": list(entries)}, sort_keys=True, indent=1)
        replace_file(self.path, text, mode=_FILE_MODE, create=True)

    def trail(self, *, module: str, op: str, request: Dict[str, Any]) -> Trail:
        """The trail of this run (nothing is written before its first :meth:`Trail.record`)."""
        return Trail(self, module=module, op=op, request=request)


class Trail:
    """One run's entry in the journal: begun at the first write, extended before each write, ended when the
    run ends in a controlled way. Also what the run found interrupted and how it resolved it."""

    def __init__(
        self,
        journal: Optional[Journal],
        *,
        module: str,
        op: str,
        request: Dict[str, Any],
        read_only: bool = False,
    ) -> None:
        self.journal = journal
        self.read_only = read_only  # check mode: the journal is read, never written
        self.module = module
        self.op = op
        self.request = request
        self.entry: Optional[Dict[str, Any]] = None
        self.found: List[Dict[str, Any]] = []  # interrupted entries, with their resolution
        self.problems: List[str] = []

    def review(self, covered: Check, *, settled: Optional[Check] = None) -> List[Dict[str, Any]]:
        """Read the journal: the interrupted entries and what this run would do with each (not yet written).
        ``covered`` tells whether this run's request covers an entry, ``settled`` whether nothing it left
        remains (see :func:`resolve`)."""
        if self.journal is None:
            return []
        entries = [e for e in self.journal.read() if e.get("id") != self._own_id()]
        if self.journal.problem:
            self.problems.append(self.journal.problem)
        self.found = resolve(entries, op=self.op, covered=covered, boot_id=self.journal.boot_id, settled=settled)
        return self.found

    def _own_id(self) -> Optional[str]:
        return None if self.entry is None else self.entry["id"]

    def record(self, action: str) -> None:
        """Append ``action`` (a write about to be made) to this run's entry, creating it first if needed."""
        if self.journal is None or self.read_only:
            return
        if self.entry is None:
            self.entry = {
                "id": f"{self.journal.pid}-{self.journal._now()}",
                "module": self.module,
                "op": self.op,
                "pid": self.journal.pid,
                "started": self.journal._now(),
                "boot_id": self.journal.boot_id,
                "request": self.request,
                "done": [],
            }
        done = self.entry["done"]
        if len(done) < _DONE_MAX:
            done.append(action)
        elif len(done) == _DONE_MAX:
            done.append("... and more writes")
        else:
            return
        self._save()

    def _save(self, *, without: Sequence[str] = ()) -> None:
        if self.journal is None:
            return
        own = self._own_id()
        entries = [e for e in self.journal.read() if e.get("id") not in (own, *without)]
        if self.entry is not None:
            entries.append(self.entry)
        self.journal.write(entries)

    def end(self, *, succeeded: bool) -> None:
        """The run ends in a controlled way: its entry goes; on success, so do the entries it resolved
        (adopted, removed) and those of a previous boot."""
        if self.journal is None or self.read_only:
            return
        drop = [e["id"] for e in self.found if e["resolution"] == "gone"]
        if succeeded:
            drop.extend(e["id"] for e in self.found if e["resolution"] in ("adopted", "removed"))
        else:
            for entry in self.found:
                if entry["resolution"] in ("adopted", "removed"):
                    entry["resolution"] = "left"
        if self.entry is None and not drop:
            return
        own = self._own_id()
        self.entry = None
        self._save(without=[*drop, *([own] if own else [])])

    def result(self) -> List[Dict[str, Any]]:
        """The ``interrupted`` result: each interrupted entry this run found, with its resolution."""
        keys = ("module", "op", "pid", "started", "request", "done", "resolution")
        return [{key: entry.get(key) for key in keys} for entry in self.found]

    @property
    def warnings(self) -> List[str]:
        """One warning per interrupted entry, saying what this run did about it (call after :meth:`end`)."""
        boot_id = self.journal.boot_id if self.journal is not None else ""
        return self.problems + [_warning(entry, boot_id=boot_id, check=self.read_only) for entry in self.found]

    @property
    def adopted_writes(self) -> bool:
        """Whether this run took over writes of an interrupted run (which makes it changed)."""
        return any(e["resolution"] in ("adopted", "removed") and e.get("done") for e in self.found)


def _warning(entry: Dict[str, Any], *, boot_id: str, check: bool = False) -> str:
    text = describe_entry(entry)
    resolution = entry["resolution"]
    request = entry.get("request") or {}
    if check and resolution in ("adopted", "removed"):
        return text + f"; this run would resolve it ({resolution}), but check mode changes nothing"
    if resolution == "adopted":
        return text + "; this run completed that attach: what it left is reported as this run's change"
    if resolution == "removed":
        return text + "; this run's detach removed what it left"
    if resolution == "gone" and entry.get("boot_id") and entry.get("boot_id") != boot_id:
        return (
            text + "; that was before the last reboot, so its sessions and devices are gone (node records it "
            "created may remain); the entry is dropped"
        )
    if resolution == "gone":
        return text + "; nothing it left remains on the host (another run removed it); the entry is dropped"
    return (
        text + "; this run does not cover it and leaves it alone: run that request again (an attach adopts what it "
        f"left) or detach LUNs {request.get('luns')} of {', '.join(request.get('targets') or [])} (removes it)"
    )


def journal_for(lock_file: Any, *, proc_root: str = "/proc") -> Optional[Journal]:
    """The journal beside ``lock_file`` (None for a path that is not absolute: the lock refuses it)."""
    if not isinstance(lock_file, str) or not os.path.isabs(lock_file):
        return None
    return Journal(journal_path(lock_file), boot_id=read_boot_id(proc_root=proc_root))
