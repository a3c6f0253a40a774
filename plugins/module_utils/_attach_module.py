# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module_utils is PRIVATE to lunsafe.san. It may change without notice.

"""The glue iscsi_lun_attach and fc_lun_attach share: one run of the attach or detach procedure for an
``AnsibleModule``, written once.

:func:`run` takes the module, its :class:`_host.Host` and a function that builds the
:class:`_attach.Request` from the parameters (the transport's parser: the only part that differs), then:
the request and the lock options are validated before anything is touched (a refusal changes nothing and
keeps every documented key); the run's journal trail is opened beside the lock file; the procedure runs
under the host lock (or without one in check mode with no lock file); the result is mapped to the
documented keys (with ``lun``, the LUN's own keys at the top level too), warnings of the procedure, the
journal and the lock are emitted once, and secrets are masked in every failure message. Every result, also
a failure, carries ``profile``: the commands the host's runner ran and the waits it recorded.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ansible_collections.lunsafe.san.plugins.module_utils import _attach as procedure
from ansible_collections.lunsafe.san.plugins.module_utils import _persist as persist
from ansible_collections.lunsafe.san.plugins.module_utils._errors import LunsafeError
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._journal import Trail, journal_for
from ansible_collections.lunsafe.san.plugins.module_utils._lock import lock_from_params
from ansible_collections.lunsafe.san.plugins.module_utils._runner import Runner

__all__ = ["SINGLE_LUN_KEYS", "result_keys", "run"]

# the single-LUN result shape (with O(lun)): these keys of the LUN's entry stand at the top level too
SINGLE_LUN_KEYS = ("hctl", "devices", "wwid", "size_bytes", "dm", "by_id", "removed", "plan")


def result_keys(result: Dict[str, Any], *, single: bool) -> Dict[str, Any]:
    """The documented result: with O(lun), the LUN's own keys at the top level as well."""
    out = dict(result)
    if single:
        entry = (result.get("luns") or [{}])[0]
        for key in SINGLE_LUN_KEYS:
            out[key] = entry.get(key, [] if key in ("hctl", "devices", "plan") else None)
        if out["removed"] is None:
            out["removed"] = {"map": None, "paths": []}
    return out


def run(
    module: Any,
    host: Host,
    runner: Runner,
    *,
    name: str,
    build: Callable[[], procedure.Request],
    empty_result: Callable[[Dict[str, float]], Dict[str, Any]],
    state_file: str = persist.DEFAULT_STATE_FILE,
) -> None:
    """Run the attach (``state=present``) or detach of ``module``'s parameters on ``host`` (whose commands
    ``runner`` runs: the request's secrets are masked in them) and end the module
    (``exit_json`` or ``fail_json``). ``build`` parses the parameters into the request (raising
    :class:`_errors.InputError`); ``empty_result`` gives the module's documented keys before anything is
    known; ``name`` is the module's name in the journal; ``state_file`` is where persistence keeps its records."""
    params = module.params
    single = params["lun"] is not None
    timings: Dict[str, float] = {}

    def empty() -> Dict[str, Any]:
        keys = result_keys({**empty_result(timings), "lock_lease": None, "persisted": None}, single=single)
        keys["profile"] = host.runner.profile.to_result()  # the commands and waits up to the failure
        return keys

    try:
        request = build()
        lock = lock_from_params(params, check_mode=module.check_mode)
    except LunsafeError as exc:  # bad input, or a lock option out of range: nothing was changed
        module.fail_json(**exc.to_fail_kwargs(), **empty())
        return
    secrets = request.secrets()
    runner.add_redaction(*secrets)  # CHAP passwords never reach a command's logged argv or output
    work = procedure.detach if params["state"] == "absent" else procedure.attach
    # the journal beside the lock: what runs killed before this one left, and this run's own trail
    trail = Trail(
        journal_for(params["lock_file"]),
        module=name,
        op="detach" if params["state"] == "absent" else "attach",
        request=request.journal_request(state=params["state"]),
        read_only=module.check_mode,
    )
    store = Persistence(persist.StateFile(state_file), params, request, check=module.check_mode)

    def persisted_work() -> procedure.Outcome:
        store.read()  # a state file that cannot be used fails here, before anything is changed
        done = work(host, request, check=module.check_mode, timings=timings, trail=trail)
        store.update(done)  # records or forgets the LUNs, still under the lock
        return done

    try:
        if lock is None:  # check mode without a lock file: nothing to wait for
            outcome = persisted_work()
        else:
            with lock:
                timings["lock"] = round(lock.waited, 3)
                outcome = persisted_work()
                lock.work_failed = outcome.error is not None
                trail.end(succeeded=outcome.error is None)
    except LunsafeError as exc:  # the lock, or a failure no LUN could own
        if lock is not None and "lock" not in timings:  # not taken: timed out, or refused as unsafe
            timings["lock"] = timings["total"] = round(lock.waited, 3)  # how long it waited before giving up
        for warning in lock.warnings if lock is not None else []:
            module.warn(warning)
        module.fail_json(**exc.to_fail_kwargs(redact=secrets), **empty())
        return
    result = result_keys(outcome.result, single=single)
    result["lock_lease"] = None if lock is None else lock.lease_outcome
    result["interrupted"] = trail.result()
    result["profile"] = host.runner.profile.to_result()
    store.report(result)
    for warning in result.pop("warnings", []) + store.warnings + trail.warnings + (lock.warnings if lock else []):
        module.warn(warning)
    if not module._diff:
        result.pop("diff", None)
    error = outcome.error or store.error
    if error is not None:
        failure = error.to_fail_kwargs(redact=secrets)
        failure.update(result)
        failure["msg"] = error.msg
        module.fail_json(**failure)
        return
    module.exit_json(**result)


class Persistence:
    """One run's part in the persistence state file (see the module docstring); all under the host lock."""

    def __init__(
        self, store: persist.StateFile, params: Dict[str, Any], request: procedure.Request, *, check: bool
    ) -> None:
        self.store = store
        self.params = params
        self.request = request
        self.check = check
        self.present = params["state"] != "absent"
        # an attach without persist needs the file only to say how many records it holds
        self.needed = not self.present or bool(params.get("persist"))
        self.current: Optional[List[Dict[str, Any]]] = None
        self.change: Optional[persist.Change] = None
        self.error: Optional[persist.PersistError] = None  # the records could not be written after the work
        self.warnings: List[str] = []

    def read(self) -> None:
        try:
            self.current = self.store.read()
        except persist.PersistError as exc:
            if self.needed:
                raise
            self.warnings.append(exc.msg)

    def _records(self, outcome: procedure.Outcome) -> List[Dict[str, Any]]:
        """The records of the LUNs this attach verified (in check mode: those it would attach)."""
        records: List[Dict[str, Any]] = []
        if self.check and outcome.error is not None:
            return records
        for lun, entry in zip(self.request.luns, outcome.result.get("luns") or []):
            if entry.get("msg") is not None or entry.get("state") not in ("attached", "absent"):
                continue
            wwid = entry.get("wwid")
            if not self.check and (entry["state"] != "attached" or wwid is None):
                continue
            if wwid is None:  # check mode: the WWID its paths show, if they agree
                seen = {d.get("wwid") for d in entry.get("devices") or []}
                wwid = seen.pop() if len(seen) == 1 else None
            records.append(
                persist.make_record(
                    transport=self.request.transport,
                    lun={"lun": lun.given},
                    linux_lun=lun.linux_lun,
                    lun_addressing=self.params.get("lun_addressing") or "peripheral",
                    wwid=wwid,
                    multipath=self.request.multipath,
                )
            )
        return records

    def _forget(self, outcome: procedure.Outcome) -> List[str]:
        """The keys of the LUNs this detach removed (or found absent): none when it was refused, or failed without
        O(keep_going) (the LUNs' states are then not known), whatever its LUNs' entries say."""
        keys: List[str] = []
        if isinstance(outcome.error, procedure.DetachRefused) or (
            outcome.error is not None and not self.request.keep_going
        ):
            return keys
        for lun, entry in zip(self.request.luns, outcome.result.get("luns") or []):
            if entry.get("msg") is None and entry.get("state") in ("detached", "absent"):
                paths = persist.paths_of(self.request.transport)
                record = {"transport": paths["transport"], "targets": list(self.request.targets)}
                keys.append(persist.record_key({**record, "linux_lun": lun.linux_lun}))
        return keys

    def update(self, outcome: procedure.Outcome) -> None:
        """After the procedure: record or forget, and (unless check mode) write the file."""
        if self.current is None:
            return
        if self.present and not self.params.get("persist"):
            self.change = persist.plan(self.current)
            return
        if self.present:
            self.change = persist.plan(self.current, record=self._records(outcome))
        else:
            self.change = persist.plan(self.current, forget=self._forget(outcome))
        if self.change.changed and not self.check:
            try:
                self.store.write(self.change.after)
            except persist.PersistError as exc:
                self.error = exc
                self.change = persist.plan(self.current)

    def report(self, result: Dict[str, Any]) -> None:
        """The result's ``persisted`` (null when the file could not be read), ``changed`` and ``diff``."""
        if self.change is None:
            result["persisted"] = None
            return
        result["persisted"] = self.change.to_result(self.store.path)
        if self.change.changed:
            result["changed"] = True
            before, after = self.change.diff()
            old = result.get("diff") or {}
            result["diff"] = {"before": old.get("before", "") + before, "after": old.get("after", "") + after}
