# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module_utils is PRIVATE to lunsafe.san. It may change without notice.

"""The boot restore: the LUNs recorded with ``persist: true`` (``_persist``) come back, and nothing else.

Run at boot by ``lunsafe-san-restore.service`` (installed by the ``lun_attach`` role), after iscsid and the
network and before ``remote-fs-pre.target``, so that ``_netdev`` mounts of the LUNs find them. It is the
module's own code, not a second implementation: the records of one set of paths become the parameters the
module would get (each LUN with its recorded WWID as ``expected_wwid``, no discovery, ``stale_device: fail``),
parsed by the transport's parser and run through :func:`_attach.attach`'s procedure under the host lock, with
the journal trail of the module it records for. So each recorded LUN gets exactly the module's steps:
a targeted scan of that LUN on each path (never a session or host scan), the wait for its block devices, the
identity checks (every path the recorded WWID: a LUN whose WWID changed while the host was down is refused,
and what the scan made of it is rolled back), and the wait for its multipath map.

iSCSI logins: the restore logs in itself, with the same login code as the module (the node records the
module wrote, with ``node.session.scan=manual`` re-applied before the login and the CHAP settings the record
keeps: no secret is stored here). iscsid logs in at boot only to records with ``node.startup=automatic``; with
the module's default (manual) it logs in to nothing, so a session exists only for the recorded LUNs' paths.
Records set to automatic work too: the restore finds the session and only scans. Fibre Channel needs no login.

The procedure is :func:`restore` over a :class:`_host.Host`; :func:`run_service` is what the service runs. The
installed entry script (``roles/lun_attach/files/lunsafe-san-restore``) only adds what a module never does:
printing, the exit code, and a small subprocess adapter in place of ``AnsibleModule`` under the one command
runner. Every line it prints goes to systemd's journal
(``journalctl -u lunsafe-san-restore``): one per recorded LUN (``restored``, ``refused``, ``missing`` or
``failed``) and a summary with the seconds taken. It exits 0 when every recorded LUN is back, 1 otherwise,
2 when it could not start (state file, lock).

Users: roles/lun_attach/files/lunsafe-san-restore (the service's entry script).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils import _attach as procedure
from ansible_collections.lunsafe.san.plugins.module_utils import _persist as persist
from ansible_collections.lunsafe.san.plugins.module_utils import _transport_fc as fc
from ansible_collections.lunsafe.san.plugins.module_utils._errors import LunsafeError
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._journal import Trail, journal_for
from ansible_collections.lunsafe.san.plugins.module_utils._lock import DEFAULT_LOCK_FILE, HostLock
from ansible_collections.lunsafe.san.plugins.module_utils._lu import IdentityError
from ansible_collections.lunsafe.san.plugins.module_utils._runner import CommandRunner

__all__ = ["DEFAULT_TIMEOUT", "Outcome", "restore", "run_service", "summary"]

# seconds per wait (sessions, block devices, maps): an unmapped LUN fails at its scan, a portal that does not
# answer costs it once
DEFAULT_TIMEOUT = 30.0
STATUSES = ("restored", "refused", "missing", "failed")


@dataclasses.dataclass
class Outcome:
    """What the restore did with one record."""

    record: Dict[str, Any]
    status: str  # one of STATUSES
    detail: str

    def line(self) -> str:
        return f"{self.status} {persist.describe(self.record)}: {self.detail}"


def build_request(records: Sequence[Mapping[str, Any]], *, host: Host, timeout: float) -> procedure.Request:
    """The request the module would build for these records (one set of paths), by the transport's parser."""
    params = persist.request_params(records, timeout=timeout)
    if records[0]["transport"] == "iscsi":
        return procedure.build_request(params, resolver=host.resolver)
    return procedure.common_request(params, parse_transport=lambda: fc.parse(params))


def classify(run: procedure.LunRun, record: Mapping[str, Any], error: Optional[LunsafeError]) -> Outcome:
    """One record's outcome from its LUN in the attach run."""
    record = dict(record)
    if run.ok and run.state == "attached":
        where = (
            run.dm_map.name or run.dm_map.dm if run.dm_map is not None else ", ".join(d.name or "" for d in run.devices)
        )
        return Outcome(
            record, "restored", f"{where} on {len(run.devices)} paths ({', '.join(str(d.hctl) for d in run.devices)})"
        )
    if isinstance(run.error, IdentityError):
        return Outcome(
            record,
            "refused",
            f"{run.error.msg}; not used: the array may have given the LUN number to another LU while the host was down "
            "(detach it, then attach the LUN meant, with persist: true)",
        )
    cause = run.error or error
    text = cause.msg if cause is not None else "not attached"
    if not run.devices:
        return Outcome(record, "missing", f"it no longer answers: {text}")
    return Outcome(record, "failed", text)


def restore(
    host: Host,
    *,
    state_file: str = persist.DEFAULT_STATE_FILE,
    lock_file: str = DEFAULT_LOCK_FILE,
    timeout: float = DEFAULT_TIMEOUT,
    lock_timeout: float = 300.0,
    say: Callable[[str], None],
) -> List[Outcome]:
    """Attach every recorded LUN again (see the module docstring); what happened to each record, in order.
    :class:`_errors.LunsafeError` when the state file or the lock cannot be used (nothing was changed)."""
    records = persist.StateFile(state_file).read()
    if not records:
        say(f"no LUN is recorded in {state_file}: nothing to restore")
        return []
    say(f"restoring {len(records)} recorded LUNs from {state_file}")
    outcomes: List[Outcome] = []
    journal = journal_for(lock_file)
    with HostLock(lock_file, timeout=lock_timeout) as lock:
        for group in persist.groups(records):
            try:
                request = build_request(group, host=host, timeout=timeout)
            except LunsafeError as exc:  # a record the parser refuses (a host name that does not resolve)
                outcomes.extend(Outcome(dict(r), "failed", exc.msg) for r in group)
                continue
            trail = Trail(
                journal,
                module=request.transport.module,
                op="attach",
                request=request.journal_request(state="present"),
            )
            run = procedure._Attach(host, request, check=False, timings={}, trail=trail)
            result = run.run()
            trail.end(succeeded=result.error is None)
            lock.work_failed = lock.work_failed or result.error is not None
            for lun, record in zip(run.luns, group):
                outcome = classify(lun, record, result.error)
                outcomes.append(outcome)
                say(outcome.line())
            for warning in result.result.get("warnings") or []:
                say(f"warning: {warning}")
            for undone in result.result.get("rolled_back") or []:
                say(f"rolled back: {undone}")
    return outcomes


def summary(outcomes: Sequence[Outcome], *, seconds: float) -> Tuple[str, int]:
    """The run's last journal line, and the exit code of the service: 0 when every recorded LUN is back."""
    counts = {status: sum(1 for o in outcomes if o.status == status) for status in STATUSES}
    others = ", ".join(f"{n} {s}" for s, n in counts.items() if s != "restored")
    restored = f"{counts['restored']} of {len(outcomes)} recorded LUNs restored"
    line = f"lunsafe-san-restore: {restored} in {seconds:.2f} s ({others})"
    return line, 0 if counts["restored"] == len(outcomes) else 1


def arguments(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """``lunsafe-san-restore [--state-file F] [--lock-file F] [--timeout S] [--lock-timeout S]``."""
    parser = argparse.ArgumentParser(prog="lunsafe-san-restore", description="attach the LUNs recorded with persist")
    parser.add_argument("--state-file", default=persist.DEFAULT_STATE_FILE)
    parser.add_argument("--lock-file", default=DEFAULT_LOCK_FILE)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    parser.add_argument("--lock-timeout", type=float, default=300.0)
    return parser.parse_args(argv)


def run_service(
    argv: Optional[Sequence[str]],
    *,
    runner: CommandRunner,
    say: Callable[[str], None],
    make_host: Callable[[CommandRunner], Host],
) -> int:
    """The service's run: restore, one line per record and a summary through ``say``; the exit code (2: the state
    file or the lock could not be used, nothing was restored)."""
    args = arguments(argv)
    started = time.monotonic()
    try:
        outcomes = restore(
            make_host(runner),
            state_file=args.state_file,
            lock_file=args.lock_file,
            timeout=args.timeout,
            lock_timeout=args.lock_timeout,
            say=say,
        )
    except LunsafeError as exc:
        say(f"lunsafe-san-restore: nothing was restored: {exc.msg}")
        return 2
    line, code = summary(outcomes, seconds=time.monotonic() - started)
    say(line)
    return code
