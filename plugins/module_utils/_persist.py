# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module_utils is PRIVATE to lunsafe.san. It may change without notice.

"""Persistence: the LUNs a run attached with ``persist: true``, kept so that the boot restore brings exactly
them back (``_restore``).

The collection writes ``node.session.scan=manual`` on every node record, so after a reboot a host has none of
its LUNs until something scans them. A run of iscsi_lun_attach or fc_lun_attach with ``persist: true`` records
each LUN it attached, after its identity checks and with the WWID they verified, in one state file
(:data:`DEFAULT_STATE_FILE`, JSON). Each record names the transport, the paths (iSCSI: each portal with its
target name, and the interface; FC: the target WWPNs and the initiator WWPNs), the LUN as given with its
addressing, the Linux LUN, the WWID, whether multipath is used and when it was recorded. A detach forgets the
records of the LUNs it detached, whatever ``persist`` says.

The file is root's: it lives under /var/lib (it must survive a reboot, /run does not), in a directory created
0700, and is handled exactly like the journal and the lease beside the host lock (``_lock.LockDir``): read
through :func:`_lock.read_trusted` (opened without following a link, refused unless root or the directory's
owner owns it and neither group nor others may write it) and rewritten whole by an atomic replace (temporary
file, fsync, rename), so a kill leaves the old file or the new one. The file is removed when the last record
goes. A file that is not a state file (not JSON, a record without its keys) or cannot be trusted is an error
naming the file and the cause: it is never replaced or dropped silently, since it is what the host brings back
at boot. The file is read and written with the host lock held.

Users: _attach_module (the modules' ``persist`` option and their detach), _restore (the boot service).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils import _transport_fc as fc
from ansible_collections.lunsafe.san.plugins.module_utils import _transport_iscsi as iscsi
from ansible_collections.lunsafe.san.plugins.module_utils._errors import LunsafeError, UnsafeFile
from ansible_collections.lunsafe.san.plugins.module_utils._lock import LockDir, read_trusted
from ansible_collections.lunsafe.san.plugins.module_utils._transport import TransportRequest

__all__ = [
    "DEFAULT_STATE_FILE",
    "Change",
    "PersistError",
    "StateFile",
    "describe",
    "paths_of",
    "plan",
    "record_key",
    "validate_record",
]

DEFAULT_STATE_DIR = "/var/lib/lunsafe-san"
DEFAULT_STATE_FILE = DEFAULT_STATE_DIR + "/persist.json"
STATE_VERSION = 1
TRANSPORTS = ("iscsi", "fc")
_FILE_MODE = 0o600
_WHAT = "persistence state file"


class PersistError(LunsafeError):
    """The state file cannot be used (not a state file, or not trusted): it is left as it is."""


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def paths_of(transport: TransportRequest) -> Dict[str, Any]:
    """What a record keeps of a request's paths: enough for the restore to build the same request."""
    if isinstance(transport, iscsi.IscsiRequest):
        return {
            "transport": "iscsi",
            "portals": [{"portal": str(path.portal), "target": path.target} for path in transport.paths],
            "iface": transport.iface,
        }
    if isinstance(transport, fc.FcRequest):
        return {"transport": "fc", "targets": list(transport.wwpns), "initiators": list(transport.initiators)}
    raise PersistError(f"persist: a request of {transport.module} cannot be recorded")


def record_key(record: Mapping[str, Any]) -> str:
    """One LUN of one set of targets: two records with the same key are the same LUN (the newer one wins)."""
    return f"{record['transport']} {','.join(record['targets'])} LUN {record['linux_lun']}"


def describe(record: Mapping[str, Any]) -> str:
    """A line for a diff, a warning or the restore's log."""
    return f"{record_key(record)} (WWID {record.get('wwid') or 'learnt at attach'})"


_KEYS: Dict[str, Any] = {
    "transport": str,
    "module": str,
    "targets": list,
    "paths": dict,
    "lun": str,
    "lun_addressing": str,
    "linux_lun": int,
    "wwid": str,
    "multipath": bool,
    "recorded": str,
}


def validate_record(record: Any) -> Optional[str]:
    """Why ``record`` is not a record of this version (None when it is one)."""
    if not isinstance(record, dict):
        return "not a mapping"
    for key, kind in _KEYS.items():
        value = record.get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"{key!r} missing or not a {kind.__name__}"
    if record["transport"] not in TRANSPORTS or record["paths"].get("transport") != record["transport"]:
        return f"unknown transport {record['transport']!r}"
    if not record["targets"] or not all(isinstance(t, str) for t in record["targets"]):
        return "'targets' names no target"
    return None


def parse_records(text: str, *, path: str) -> List[Dict[str, Any]]:
    """The records of a state file's text; :class:`PersistError` naming ``path`` and the cause otherwise."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PersistError(_bad(path, f"it is not JSON ({exc})"), path=path) from None
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise PersistError(_bad(path, "it has no list of records"), path=path)
    if data.get("version") != STATE_VERSION:
        raise PersistError(_bad(path, f"version {data.get('version')!r} is not {STATE_VERSION}"), path=path)
    records: List[Dict[str, Any]] = []
    for number, record in enumerate(data["records"], 1):
        problem = validate_record(record)
        if problem is not None:
            raise PersistError(_bad(path, f"record {number}: {problem}"), path=path)
        records.append(record)
    return records


def _bad(path: str, cause: str) -> str:
    return (
        f"the {_WHAT} {path} cannot be read: {cause}. It was left as it is (it says which LUNs the host brings "
        "back at boot): repair it, or move it away and attach the LUNs again with persist: true"
    )


class StateFile:
    """The state file; every method is called with the host lock held."""

    def __init__(self, path: str = DEFAULT_STATE_FILE) -> None:
        self.path = path

    def read(self) -> List[Dict[str, Any]]:
        """Every record (none when there is no file); :class:`PersistError` for a file that cannot be used."""
        try:
            text = read_trusted(self.path, what=_WHAT)
        except UnsafeFile as exc:
            raise PersistError(f"{exc.msg} (the {_WHAT}: nothing was changed)", **exc.details) from None
        except OSError as exc:
            raise PersistError(
                f"the {_WHAT} {self.path} cannot be read: {exc.strerror or exc}", path=self.path
            ) from None
        if text is None:
            return []
        return parse_records(text, path=self.path)

    def write(self, records: Sequence[Dict[str, Any]]) -> None:
        """Replace the file's records whole (the file is removed when none is left)."""
        name = os.path.basename(self.path)
        text = json.dumps({"version": STATE_VERSION, "records": list(records)}, sort_keys=True, indent=1)
        try:
            with LockDir.opened(os.path.dirname(self.path), create=bool(records)) as directory:
                directory.read(name, what=_WHAT)  # a file that is not trusted is refused, not replaced
                if records:
                    directory.replace(name, text + "\n", mode=_FILE_MODE)
                else:
                    directory.unlink(name)
        except FileNotFoundError as exc:
            if records:
                raise PersistError(
                    f"the {_WHAT} {self.path} could not be written: {exc.strerror}", path=self.path
                ) from None
            return  # no directory, so no file: nothing to remove
        except UnsafeFile as exc:
            raise PersistError(f"{exc.msg} (the {_WHAT}: it was not written)", **exc.details) from None
        except OSError as exc:
            raise PersistError(
                f"the {_WHAT} {self.path} could not be written: {exc.strerror or exc}", path=self.path
            ) from None


@dataclasses.dataclass
class Change:
    """What a run does to the state file: the records after it, those it adds or updates, those it forgets."""

    before: List[Dict[str, Any]]
    after: List[Dict[str, Any]]
    recorded: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    forgotten: List[Dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.recorded or self.forgotten)

    def diff(self) -> Tuple[str, str]:
        """The state file's lines before and after (only the records this run touched)."""
        keys = {record_key(r) for r in self.recorded + self.forgotten}
        before = "".join(f"persist: {describe(r)}\n" for r in self.before if record_key(r) in keys)
        after = "".join(f"persist: {describe(r)}\n" for r in self.after if record_key(r) in keys)
        return before, after

    def to_result(self, path: str) -> Dict[str, Any]:
        return {
            "state_file": path,
            "recorded": self.recorded,
            "forgotten": self.forgotten,
            "count": len(self.after),
        }


def _same(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether ``new`` says nothing ``old`` does not (its WWID unknown in check mode counts as the same)."""
    for key in _KEYS:
        if key == "recorded" or (key == "wwid" and new.get("wwid") is None):
            continue
        if old.get(key) != new.get(key):
            return False
    return True


def plan(
    current: Sequence[Dict[str, Any]], *, record: Sequence[Dict[str, Any]] = (), forget: Sequence[str] = ()
) -> Change:
    """The state file after recording ``record`` (new or changed records replace the one of their key, in
    place) and forgetting the keys ``forget``."""
    after = [dict(r) for r in current]
    change = Change(before=list(current), after=after)
    for new in record:
        key = record_key(new)
        index = next((i for i, old in enumerate(after) if record_key(old) == key), None)
        if index is None:
            after.append(dict(new))
            change.recorded.append(dict(new))
        elif not _same(after[index], new):
            after[index] = dict(new)
            change.recorded.append(dict(new))
    for key in forget:
        gone = [r for r in after if record_key(r) == key]
        change.forgotten.extend(gone)
        after[:] = [r for r in after if record_key(r) != key]
    return change


def make_record(
    *,
    transport: TransportRequest,
    lun: Mapping[str, Any],
    linux_lun: int,
    lun_addressing: str,
    wwid: Optional[str],
    multipath: bool,
    now: Callable[[], str] = utc_now,
) -> Dict[str, Any]:
    """The record of one LUN a run attached (``wwid`` None: check mode, not attached yet)."""
    paths = paths_of(transport)
    return {
        "transport": paths["transport"],
        "module": transport.module,
        "targets": list(transport.targets),
        "paths": paths,
        "lun": str(lun.get("lun")),
        "lun_addressing": lun_addressing,
        "linux_lun": linux_lun,
        "wwid": wwid,
        "multipath": multipath,
        "recorded": now(),
    }


def request_params(records: Sequence[Mapping[str, Any]], *, timeout: float) -> Dict[str, Any]:
    """The module parameters that ask for exactly these records' LUNs (one set of paths, see :func:`groups`),
    each with its recorded WWID as ``expected_wwid``: what the boot restore hands to the transport's parser and
    the attach procedure, as the module does with its own parameters. No CHAP secret: iSCSI logs in with what
    the node record keeps, as iscsid does."""
    first = records[0]
    params: Dict[str, Any] = {
        "state": "present",
        "luns": [{"lun": r["lun"], "expected_wwid": r["wwid"]} for r in records],
        "lun_addressing": first["lun_addressing"],
        "multipath": first["multipath"],
        "timeout": timeout,
        "stale_device": "fail",
    }
    paths = first["paths"]
    if first["transport"] == "iscsi":
        params.update(portals=[dict(p) for p in paths.get("portals") or []], iface=paths.get("iface"))
    else:
        params.update(targets=list(paths.get("targets") or []), initiators=list(paths.get("initiators") or []))
    return params


def groups(records: Sequence[Dict[str, Any]]) -> List[List[Dict[str, Any]]]:
    """The records in groups of one set of paths (and addressing, multipath): one attach call per group, in
    the order of the file."""
    found: Dict[str, List[Dict[str, Any]]] = {}
    for record in records:
        key = json.dumps([record["paths"], record["lun_addressing"], record["multipath"]], sort_keys=True)
        found.setdefault(key, []).append(record)
    return list(found.values())
