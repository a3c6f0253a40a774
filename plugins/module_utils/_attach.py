# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module_utils is PRIVATE to lunsafe.san. It may change without notice.

"""Attaching and detaching LUNs over a transport: the procedure behind iscsi_lun_attach and fc_lun_attach.

Both run over a :class:`_host.Host` (sysfs root, mount table, runner, sysfs writer, clock, resolver) and
a validated :class:`Request`, as observe -> plan -> (unless check mode) apply -> observe again. The paths
come from the request's transport (``_transport``: ``_transport_iscsi``, ``_transport_fc``); everything else
is written once, here and in ``_lu``:

* :func:`attach`: the transport makes the paths available (iSCSI: node records with manual scan and a login
  on every path that has no session; FC: the rports checked), one targeted scan write per LUN and path, one
  wait for every block device, identity checks per LUN across all of its paths (same WWID and size, distinct
  SCSI hosts, the expected WWID), one wait for every multipath map. A LUN that fails is rolled back alone:
  the devices this run created for it are removed (through the one device removal of ``_remove`` and, for a
  map multipathd built meanwhile, the flush of ``_flush``). What the transport created (sessions, records)
  is undone only when no requested LUN is left attached, since the LUNs that passed are in use by the
  caller's next task.
* :func:`detach`: per LUN, its map flushed and its paths removed in that order, after every LUN was
  checked (mounted, held, open or blocked refuses the whole call, nothing changed, unless ``force``);
  then the transport releases the paths that carry no other LUN (iSCSI: a logout).

Users: plugins/modules/iscsi_lun_attach.py, plugins/modules/fc_lun_attach.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils import _flush as flush
from ansible_collections.lunsafe.san.plugins.module_utils import _multipath as multipath
from ansible_collections.lunsafe.san.plugins.module_utils import _scan as scan
from ansible_collections.lunsafe.san.plugins.module_utils import _transport_iscsi as iscsi
from ansible_collections.lunsafe.san.plugins.module_utils._durations import check_durations
from ansible_collections.lunsafe.san.plugins.module_utils._errors import (
    DaemonUnavailable,
    InputError,
    LunsafeError,
    ToolError,
    WaitTimeout,
)
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._journal import Trail, covers
from ansible_collections.lunsafe.san.plugins.module_utils._lu import (
    IdentityError,
    LuIdentity,
    LunRequest,
    check_identity,
    complete_map,
    describe_paths,
    detach_identity_refusal,
    diff_lines,
    expected,
    fresh_wwid,
    lu_identity,
    map_facts,
    names_of,
    parse_luns,
    stale_devices,
    validate_wwid,
)
from ansible_collections.lunsafe.san.plugins.module_utils._remove import (
    PathIdentity,
    Record,
    RemoveFailed,
    device_users,
    forget_paths,
    path_identity,
    remove_path,
    settled_users,
)
from ansible_collections.lunsafe.san.plugins.module_utils._runner import CommandRunner
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import DmMap, ScsiDevice, Snapshot, SysfsError
from ansible_collections.lunsafe.san.plugins.module_utils._transport import Context, Transport, TransportRequest

__all__ = [
    "IdentityError",
    "LuIdentity",
    "LunRequest",
    "MapTimeout",
    "Outcome",
    "Request",
    "attach",
    "build_request",
    "check_identity",
    "common_request",
    "describe_paths",
    "detach",
    "detach_identity_refusal",
    "empty_result",
    "expected",
    "lu_identity",
    "map_facts",
    "stale_devices",
    "validate_wwid",
]

MAP_GRACE = 5.0  # seconds without a new map before multipathd is asked to build the rest
# LUNs scanned, checked and waited for together; None: all of a call's LUNs in one wave
WAVE: Optional[int] = None
ROLLBACK_SETTLE = 15.0  # seconds a rollback waits for udev workers and the like to close a new device


class MapTimeout(LunsafeError):
    """No multipath map holding every path of the LUN appeared before the deadline."""


class DetachRefused(LunsafeError):
    """A LUN to detach is mounted, held, open or has blocked paths, and ``force`` is not set: nothing done."""


# ---------------------------------------------------------------------------------------------------------
# the request


@dataclasses.dataclass(frozen=True)
class Request:
    transport: TransportRequest  # the paths: _transport_iscsi.IscsiRequest, _transport_fc.FcRequest
    luns: Tuple[LunRequest, ...]
    multipath: bool = True
    stale_device: str = "fail"
    timeout: float = 60.0
    force: bool = False
    keep_going: bool = False  # detach: go on after a LUN or path fails, fail at the end (needs force)
    warnings: Tuple[str, ...] = ()
    single: bool = False  # given as ``lun``: the result keeps the single-LUN shape, errors name no LUN

    @property
    def targets(self) -> Tuple[str, ...]:
        return self.transport.targets

    def secrets(self) -> List[str]:
        return self.transport.secrets()

    def journal_request(self, *, state: str) -> Dict[str, Any]:
        """What the journal keeps of the request (no secret): enough to tell which later run covers it."""
        return {"state": state, **self.transport.journal_part(), "luns": [lun.linux_lun for lun in self.luns]}


def common_request(
    params: Mapping[str, Any],
    *,
    parse_transport: Callable[[], Tuple[TransportRequest, List[str]]],
    durations: Sequence[str] = ("timeout", "lock_lease.ttl"),
) -> Request:
    """Validate the module's parameters with the transport's parser (called after the shared checks of the
    options); :class:`InputError` names the option and the value it refused."""
    # one rule for every duration option of the collection (_durations)
    check_durations(params, deadlines=tuple(durations), zero_allowed=("lock_timeout",))
    if params.get("keep_going") and not (params.get("force") and params.get("state") == "absent"):
        raise InputError(
            "keep_going is for a forced detach only: set state: absent and force: true with it (it goes on "
            "removing what it can after a failure, also devices that are in use)",
            option="keep_going",
            value=params.get("keep_going"),
        )
    transport, warnings = parse_transport()
    return Request(
        transport=transport,
        luns=parse_luns(params),
        multipath=params.get("multipath", True) is not False,
        stale_device=params.get("stale_device") or "fail",
        timeout=float(params.get("timeout") or 60),
        force=bool(params.get("force")),
        keep_going=bool(params.get("keep_going")),
        warnings=tuple(warnings),
        single=params.get("lun") is not None,
    )


def build_request(params: Mapping[str, Any], *, resolver: Callable[[str], List[str]]) -> Request:
    """iscsi_lun_attach's request; :class:`InputError` names the option and the value it refused."""
    return common_request(
        params,
        parse_transport=lambda: iscsi.parse(params, resolver=resolver),
        durations=("timeout", "login_timeout", "lock_lease.ttl"),
    )


def empty_result(timings: Dict[str, float]) -> Dict[str, Any]:
    """iscsi_lun_attach's result keys before anything is known (kept here for its callers)."""
    return iscsi.empty_result(timings)


# ---------------------------------------------------------------------------------------------------------
# pure helpers over snapshots


def observe_left(lun: LunRun, snapshot: Snapshot) -> None:
    """A LUN that failed but is still there (attached before the run, or left by the rollback): its WWID,
    size and map as observed, so that the result says what is attached (None where the paths disagree)."""
    if not lun.devices:
        lun.wwid, lun.size_bytes, lun.dm_map = None, None, None
        return
    identity = lu_identity(devices=lun.devices, expected_wwid=None)
    sizes = {d.size_bytes for d in lun.devices}
    lun.wwid = identity.wwids[0] if identity.agree else None
    lun.size_bytes = sizes.pop() if len(sizes) == 1 else None
    names = [d.name for d in lun.devices if d.name]
    try:
        dm_map = snapshot.multipath_map_for(names=names) if names else None
    except SysfsError:
        dm_map = None
    lun.dm_map = dm_map if dm_map is not None and dm_map.wwid == lun.wwid else None


# ---------------------------------------------------------------------------------------------------------
# the run


@dataclasses.dataclass
class LunRun:
    """One requested LUN during a run."""

    req: LunRequest
    state: str = "absent"  # attached, detached, absent, failed
    devices: Tuple[ScsiDevice, ...] = ()
    before: Tuple[str, ...] = ()  # H:C:T:L of its devices before the run
    new: List[str] = dataclasses.field(default_factory=list)  # kernel names this run created
    scanned: bool = False  # ``new`` was recorded right after this run's scan
    wwid: Optional[str] = None
    size_bytes: Optional[int] = None
    dm_map: Optional[DmMap] = None
    error: Optional[LunsafeError] = None
    plan: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    removed: Dict[str, Any] = dataclasses.field(default_factory=lambda: {"map": None, "paths": []})
    stale_replaced: List[Dict[str, Any]] = dataclasses.field(default_factory=list)

    def fail(self, error: LunsafeError) -> None:
        if self.error is None:
            self.error = error
        self.state = "failed"

    @property
    def ok(self) -> bool:
        return self.error is None

    def facts(self, snapshot: Snapshot, host: Host, extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        dm = map_facts(self.dm_map, host.udev_properties(self.dm_map.dm) if self.dm_map is not None else None)
        by_id = None
        # a LUN that failed but is attached (an expected_wwid mismatch on a LUN attached before) has one too
        if self.wwid is not None and self.devices and self.state in ("attached", "failed"):
            by_id = f"/dev/disk/by-id/dm-uuid-mpath-{self.wwid}" if dm else f"/dev/disk/by-id/scsi-{self.wwid}"
        entry: Dict[str, Any] = {
            "lun": self.req.given,
            "linux_lun": self.req.linux_lun,
            "state": self.state,
            "hctl": [str(d.hctl) for d in self.devices],
            "devices": [
                scan.device_facts(
                    device=d,
                    snapshot=snapshot,
                    new=str(d.hctl) not in self.before,
                    udev=host.udev_properties(d.name) if self.state == "attached" else None,
                )
                for d in self.devices
            ],
            "wwid": self.wwid,
            "size_bytes": self.size_bytes,
            "dm": dm,
            "by_id": by_id,
            "removed": self.removed,
            "plan": self.plan,
        }
        entry.update(extra or {})
        if self.stale_replaced:
            entry["stale_replaced"] = self.stale_replaced
        if self.error is not None:
            entry["msg"] = self.error.msg
        return entry


@dataclasses.dataclass
class Outcome:
    """What a procedure returns: the result (documented keys, also on failure) and the error, if any."""

    result: Dict[str, Any]
    error: Optional[LunsafeError] = None


class _Run:
    """State shared by attach and detach: the host, the request, timings and the result."""

    OP = "attach"

    def __init__(
        self,
        host: Host,
        request: Request,
        *,
        check: bool,
        timings: Dict[str, float],
        trail: Optional[Trail] = None,
    ) -> None:
        self.host = host
        self.request = request
        self.check = check
        # the run's entry in the journal beside the host lock: each write is recorded just before it is made
        self.trail = trail or Trail(None, module=request.transport.module, op="none", request={})
        self.timings = timings
        self._last_mark = host.clock()
        self._started = self._last_mark
        self.luns = [LunRun(req=lun) for lun in request.luns]
        self.warnings: List[str] = list(request.warnings)
        self.result = request.transport.empty_result(timings)
        self.paths: Transport = request.transport.bind(
            Context(
                host=host,
                trail=self.trail,
                check=check,
                timeout=request.timeout,
                result=self.result,
                warnings=self.warnings,
                op=self.OP,
            )
        )

    def mark(self, phase: str, *, add: bool = False) -> None:
        """Seconds spent in each phase, measured inside the module (no Ansible transport); ``add`` sums a phase
        that runs more than once (the scan and map waits of each wave)."""
        now = self.host.clock()
        self.timings[phase] = round(now - self._last_mark + (self.timings.get(phase, 0.0) if add else 0.0), 3)
        self.timings["total"] = round(now - self._started, 3)
        self._last_mark = now

    def review_journal(self) -> None:
        """What runs killed before this one left (the journal), and which of them this request covers."""
        targets, luns = self.request.targets, [lun.req.linux_lun for lun in self.luns]
        snapshot = self.host.snapshot(device_detail=False)
        self.trail.review(
            lambda entry: covers(entry, module=self.request.transport.module, targets=targets, luns=luns),
            settled=lambda entry: flush.entry_settled(entry, snapshot),
        )

    def lun_devices(self, snapshot: Snapshot, lun: LunRun) -> Tuple[ScsiDevice, ...]:
        """The block devices of one LUN on the requested paths (the transport's), freshly resolved."""
        return self.paths.lun_devices(snapshot, lun.req.linux_lun)

    def finish(self, snapshot: Snapshot, error: Optional[LunsafeError]) -> Outcome:
        self.result.update(self.paths.facts(snapshot))
        self.result["luns"] = [
            lun.facts(snapshot, self.host, extra=self.paths.lun_facts(lun.devices, snapshot)) for lun in self.luns
        ]
        self.result["warnings"] = self.warnings
        self.result.update(self.host.wait_info())  # at the end: the monitor opens at the first sysfs write
        failed = [lun for lun in self.luns if lun.error is not None]
        self.result["failed_luns"] = [lun.req.given for lun in failed]
        if error is None and failed:
            if len(failed) == 1 and self.request.single:
                error = failed[0].error
            else:
                error = LunsafeError(
                    "; ".join(f"LUN {lun.req.given}: {lun.error.msg}" for lun in failed if lun.error is not None),
                    failed_luns=[lun.req.given for lun in failed],
                )
        if error is not None:
            self.mark("failed")
        else:
            self.mark("done")
        return Outcome(result=self.result, error=error)


# ---------------------------------------------------------------------------------------------------------
# attach


def preflight_multipathd(runner: CommandRunner) -> None:
    """Fail before any change when multipathd does not answer (``multipath: true`` cannot work then).

    ``multipathd show status`` starts a stopped daemon through multipathd.socket when that unit is
    listening, so only a daemon that is really unavailable fails here.
    """
    try:
        reply = runner.run(multipath.show_status(), ok_rcs=multipath.MULTIPATHD_OK_RCS, timeout=15)
        multipath.check_reply(reply.rc, reply.stdout, reply.stderr, cmd=reply.cmd)
    except DaemonUnavailable as exc:
        raise LunsafeError(
            f"{exc.msg}: multipath=true needs it, nothing was changed; start it "
            "(systemctl start multipathd.socket multipathd) or set multipath=false",
            cmd=exc.details.get("cmd"),
            rc=exc.details.get("rc"),
            stderr=exc.details.get("stderr"),
            rc_name="multipathd_unavailable",
        ) from None
    except ToolError as exc:
        raise LunsafeError(
            f"multipathd did not answer `show status` ({exc.msg}): multipath=true needs it, nothing was changed; "
            "check `systemctl status multipathd`",
            cmd=exc.details.get("cmd"),
            rc=exc.details.get("rc"),
            stderr=exc.details.get("stderr"),
            rc_name="multipathd_unavailable",
        ) from None


class _Attach(_Run):
    # -- observe and plan ------------------------------------------------------------------------------

    def scan_items(self, snapshot: Snapshot, lun: LunRun) -> List[scan.ScanItem]:
        return self.paths.scan_items(snapshot, lun.req)

    def plan_only(self, before: Snapshot) -> None:
        """Check mode: report the scans that would be written on the paths that exist now, and fail a LUN
        that is attached with another identity than expected (as the real run does)."""
        transport_changes = self.paths.plan_only(before)
        items: List[scan.ScanItem] = []
        for lun in self.luns:
            lun.devices = self.lun_devices(before, lun)
            lun.before = tuple(str(d.hctl) for d in lun.devices)
            lun.state = "attached" if lun.devices else "absent"
            if lun.devices:  # an attached LUN fails the real run's identity check the same way (issue 23)
                try:
                    check_identity(
                        devices=lun.devices,
                        expected_wwid=lun.req.expected_wwid,
                        paths_expected=len(lun.devices),
                        shared_hosts=self.paths.shared_hosts,
                    )
                except IdentityError as exc:
                    lun.fail(exc)
                    observe_left(lun, before)
            try:
                items.extend(self.scan_items(before, lun))
            except scan.ResolveError as exc:
                self.warnings.append(f"check mode: LUN {lun.req.given}: {exc.msg}")
        plan = scan.ScanPlan(items=tuple(i for i in items if i.action == scan.ACTION_SCAN), sessions=())
        self.result["scanned"] = [w.to_dict() for w in self.revive_writes(before)]
        self.result["scanned"] += [w.to_dict() for w in scan.planned_writes(plan=plan, sysfs_root=self.host.sysfs_root)]
        self.result["changed"] = bool(transport_changes or self.result["scanned"] or self.trail.adopted_writes)

    # -- apply -----------------------------------------------------------------------------------------

    def replace_stale(self, snapshot: Snapshot, lun: LunRun) -> bool:
        """Detect devices at the LUN's address that carry another LU; replace them if allowed. True if changed."""
        devices = self.lun_devices(snapshot, lun)
        fresh: Dict[str, Optional[str]] = {}
        if self.host.scsi_id is not None:
            for device in devices:
                if device.name and device.state == "running":
                    fresh[device.name] = fresh_wwid(self.host.runner, name=device.name, scsi_id=self.host.scsi_id)
        stale = stale_devices(devices=devices, snapshot=snapshot, fresh=fresh)
        if not stale:
            return False
        if self.request.stale_device != "replace":
            raise LunsafeError(
                "a device at this LUN's address carries another LU's identity (the array reused the LUN number): "
                "refusing to use it; detach the old LUN (its map and paths) first, or set stale_device=replace",
                stale=stale,
            )
        names = {entry["name"] for entry in stale}
        targets = [d for d in devices if d.name in names]
        users = device_users(host=self.host, devices=targets)
        if users:
            raise LunsafeError(
                "stale devices at this LUN's address are in use: "
                + "; ".join(u.describe() for u in users)
                + ": flush the old map first (lunsafe.san.multipath_flush)",
                stale=stale,
            )
        record = Record(clock=self.host.clock, start=self.host.clock())
        for device in targets:
            self.trail.record(f"delete stale device {device.name} ({device.hctl})")
            remove_path(
                host=self.host, path=path_identity(device), force=False, timeout=self.request.timeout, record=record
            )
        lun.stale_replaced = stale
        return True

    def attach_waves(self, snapshot: Snapshot) -> None:
        """Scan, identity check and map wait, wave after wave."""
        for wave in self.waves():
            snapshot = self.scan_and_wait(snapshot, wave)
            self.mark("scan", add=True)
            names_of = self.check_identities(snapshot, wave)
            if self.request.multipath:
                self.wait_for_maps(names_of, wave)
            self.mark("map", add=True)

    def waves(self) -> List[List[LunRun]]:
        """The LUNs in waves of :data:`WAVE`: each wave is scanned, checked and waited for before the next."""
        size = WAVE or len(self.luns)
        return [self.luns[i : i + size] for i in range(0, len(self.luns), size)]

    def scan_and_wait(self, snapshot: Snapshot, wave: Sequence[LunRun]) -> Snapshot:
        """One scan write per LUN of the wave and session, then one wait for all their block devices."""
        items: List[scan.ScanItem] = []
        owner: Dict[Tuple[int, int], LunRun] = {}
        for lun in wave:
            if not lun.ok:
                continue
            try:
                lun_items = self.scan_items(snapshot, lun)
                scan.make_plan(items=lun_items, sessions=())
            except scan.ResolveError as exc:
                lun.fail(exc)
                continue
            for item in lun_items:
                owner[(item.host, item.lun)] = lun
            items.extend(lun_items)
        if not items:
            return snapshot
        plan = scan.ScanPlan(items=tuple(items), sessions=self.paths.scan_sessions(snapshot))
        for item in items:
            if item.action == scan.ACTION_SCAN:
                self.trail.record(f"scan {item.hctl or f'{item.host}:-:-:{item.lun}'}")
        writes = scan.apply_plan(plan=plan, host=self.host)
        self.result["scanned"].extend(w.to_dict() for w in writes)
        plan = self.verify_scans(plan, wave, writes)
        again: List[scan.SysfsWrite] = []  # scans written again once a session had recovered
        try:
            after, _waited = scan.wait_for_devices(
                plan=plan, host=self.host, timeout=self.request.timeout, scanned=writes, again=again
            )
        except scan.ScanTimeout as exc:
            after = exc.snapshot
            recovery: Dict[str, str] = exc.details.get("recovery") or {}
            for item in scan.missing_items(plan=plan, snapshot=after):
                lun = owner[(item.host, item.lun)]
                cause = (
                    f"its {recovery[item.address]} during the wait: the portal or the network path went away"
                    if item.address in recovery
                    else "the array may not present this LUN to this initiator: check its LUN masking, the LUN "
                    "number and lun_addressing"
                )
                lun.fail(
                    scan.ScanTimeout(
                        f"timed out after {self.request.timeout:g}s waiting for its block device at {item.address} "
                        f"({cause})",
                        snapshot=after,
                        missing=[item.address],
                    )
                )
        self.result["scanned"].extend(w.to_dict() for w in again)
        self.warnings.extend(
            f"the session of host{w.host} went into recovery after the scan of {w.address} was written; the kernel "
            "drops such a scan, so it was written again once the session had logged in"
            for w in again
        )
        self.record_new(after, wave)
        return after

    def verify_scans(
        self, plan: scan.ScanPlan, wave: Sequence[LunRun], writes: Sequence[scan.SysfsWrite]
    ) -> scan.ScanPlan:
        """Right after the scan writes, what the transport can tell at once (the scan of an FC remote port or of
        a logged-in iSCSI session is synchronous, so a LUN with no device now is not presented); a LUN it fails
        leaves the plan (nothing to wait for)."""
        failed: Set[int] = set()
        for lun in wave:
            if not lun.ok:
                continue
            items = [item for item in plan.items if item.lun == lun.req.linux_lun]
            problem = self.paths.verify_scan(lun.req, items, writes) if items else None
            if problem is not None:
                lun.fail(LunsafeError(problem, hctl=[item.address for item in items]))
                failed.add(lun.req.linux_lun)
        if not failed:
            return plan
        return dataclasses.replace(plan, items=tuple(item for item in plan.items if item.lun not in failed))

    def record_new(self, after: Snapshot, wave: Sequence[LunRun]) -> None:
        """What this run created, per LUN, right after its scan: the rollback removes these and nothing
        that appears later (a device another run scanned once this run no longer held the lock)."""
        for lun in wave:
            devices = self.lun_devices(after, lun)
            lun.new = [d.name for d in devices if d.name and str(d.hctl) not in lun.before]
            lun.scanned = True

    def wait_for_maps(self, names_of: Dict[int, List[str]], wave: Sequence[LunRun]) -> None:
        """One wait for the maps of every LUN that passed its identity check.

        multipathd builds the maps one after the other from the udev events of the new paths (seconds each
        under load). Only when it stalls, :data:`MAP_GRACE` seconds without a new map of ours (find_multipaths
        keeps a first single path out of multipath), are the waiting WWIDs added to the wwids file and their
        paths handed to multipathd, once: asking earlier only queues more work behind the events it is
        already working through. A LUN whose map is not there at the deadline fails.
        """
        waiting = {id(lun): lun for lun in wave if lun.ok and lun.wwid is not None and id(lun) in names_of}
        if not waiting:
            return
        clock = self.host.clock
        deadline = clock() + self.request.timeout
        last_progress = clock()
        handed_over = False

        def poll() -> bool:
            nonlocal last_progress
            snapshot = self.host.snapshot(device_detail=False)
            for key, lun in list(waiting.items()):
                dm_map = complete_map(snapshot, names_of[key], lun.wwid or "")
                if dm_map is not None and self.host.udev_map_ready(dm_map.dm, dm_map.uuid or ""):
                    lun.dm_map = dm_map
                    del waiting[key]
                    last_progress = clock()
            return not waiting

        while True:
            until = deadline if handed_over else min(deadline, last_progress + MAP_GRACE)
            try:
                self.host.wait(poll, timeout=max(0.0, until - clock()), describe="multipath maps", max_interval=0.5)
                return
            except WaitTimeout:
                pass
            if clock() >= deadline:
                break
            if not handed_over and clock() >= last_progress + MAP_GRACE:
                self.hand_over(waiting, names_of)
                handed_over = True
        for key, lun in waiting.items():
            lun.fail(
                MapTimeout(
                    f"no multipath map for WWID {lun.wwid or '(unknown)'} holding {', '.join(names_of[key])} after "
                    f"{self.request.timeout:g}s (is multipathd running, and is the device blacklisted?)",
                    wwid=lun.wwid,
                )
            )

    def hand_over(self, waiting: Dict[int, LunRun], names_of: Dict[int, List[str]]) -> None:
        """Add the waiting WWIDs to the wwids file (those not listed there yet) and hand their paths to multipathd
        (each command recorded)."""
        actions: List[str] = self.result["multipath_actions"]
        listed = set(flush.read_wwids(self.host.wwids_file))  # read once; a listed WWID needs no ``multipath -a``
        for key, lun in waiting.items():
            add = [] if lun.wwid in listed else [multipath.add_wwid(wwid=lun.wwid or "")]
            for argv in add + [multipath.add_path(device=n) for n in names_of[key]]:
                self.trail.record(" ".join(argv))
                try:
                    self.host.runner.run(argv, ok_rcs=multipath.MULTIPATHD_OK_RCS, timeout=15)
                except ToolError as exc:
                    actions.append(f"{' '.join(argv)}: {exc.msg}")
                else:
                    actions.append(" ".join(argv))

    def roll_back_lun(self, lun: LunRun, before_maps: Set[str]) -> None:
        """Remove what this run created for one failed LUN: a map multipathd built for it, then its devices.

        Right after a scan, udev workers and multipathd hold the new devices for a while, and multipathd may
        build a map for them only now: until :data:`ROLLBACK_SETTLE` seconds have passed, each round flushes
        a new map of this LUN's devices that nothing uses and deletes each device nothing uses; what is
        still in use then is left in place, with the reason.
        """
        undone: List[str] = self.result["rolled_back"]
        pending = list(lun.new)
        deadline = self.host.clock() + min(ROLLBACK_SETTLE, self.request.timeout)
        record = Record(clock=self.host.clock, start=self.host.clock())
        refused: Dict[str, str] = {}
        while pending:
            for dm_map in self.host.snapshot().maps_holding(names=pending):
                if not dm_map.is_multipath or dm_map.uuid is None or dm_map.uuid in before_maps:
                    continue
                last: List[Any] = []
                ready = self._flushable(dm_map.uuid, last)
                if ready is None:
                    refused[dm_map.name or dm_map.dm] = "; ".join(last[0].refusals) if last else "in use"
                    continue
                observation, fplan = ready
                self.trail.record(f"roll back: flush map {dm_map.name or dm_map.dm}")
                try:
                    outcome = flush.apply_plan(
                        plan=fplan, observation=observation, settings=self._flush_settings(False)
                    )
                except LunsafeError as exc:
                    undone.append(f"could not flush map {dm_map.name or dm_map.dm}: {exc.msg}")
                    pending = []
                    break
                refused.pop(dm_map.name or dm_map.dm, None)
                undone.append(f"flushed map {dm_map.name or dm_map.dm}")
                undone.extend(f"deleted {entry['device']}" for entry in outcome.paths_removed)
            snapshot = self.host.snapshot()
            for name in list(pending):
                device = snapshot.device(name=name)
                if device is None:
                    pending.remove(name)
                    continue
                users: List[Any] = []
                if not self._unused(device, users):
                    refused[name] = "; ".join(u.describe() for u in users)
                    continue
                pending.remove(name)
                refused.pop(name, None)
                self.trail.record(f"roll back: delete {name} ({device.hctl})")
                try:
                    remove_path(
                        host=self.host,
                        path=path_identity(device),
                        force=False,
                        timeout=self.request.timeout,
                        record=record,
                    )
                    undone.append(f"deleted {name}")
                except LunsafeError as exc:
                    undone.append(f"could not delete {name}: {exc.msg}")
            if not pending or self.host.clock() >= deadline:
                break
            self.host.sleep(0.5)
        final = self.host.snapshot(device_detail=False)
        present = set(pending) | {m.name or m.dm for m in final.maps}
        undone.extend(f"left {what}: {why}" for what, why in refused.items() if what in present)

    def _flushable(self, uuid: str, last: List[Any]) -> Any:
        """The flush of map ``uuid`` when nothing refuses it (else None; ``last`` keeps the latest plan)."""
        observation = flush.observe(ref=uuid, host=self.host)
        fplan = flush.plan_flush(observation=observation, force=False, remove_wwid_file=False)
        last[:] = [fplan]
        return None if fplan.refusals else (observation, fplan)

    def _unused(self, device: ScsiDevice, users: List[Any]) -> bool:
        """Whether nothing uses ``device`` (``users`` keeps what does)."""
        users[:] = list(device_users(host=self.host, devices=[device]))
        return not users

    def _flush_settings(self, force: bool) -> flush.Settings:
        return flush.Settings(
            host=self.host,
            retries=3,
            retry_interval=2.0,
            command_timeout=60.0,
            path_timeout=self.request.timeout,
            force=force,
        )

    def run(self) -> Outcome:
        try:
            if self.request.multipath:
                preflight_multipathd(self.host.runner)
        except LunsafeError as exc:  # before anything was changed
            return self.finish(self.host.snapshot(), exc)
        self.review_journal()
        before = self.host.snapshot()
        before_maps = {m.uuid for m in before.maps if m.uuid}
        for lun in self.luns:  # what exists before the run is never rolled back
            devices = self.lun_devices(before, lun)
            lun.before = tuple(str(d.hctl) for d in devices)
        try:
            self.paths.observe(before)
            self.mark("observe")
            if self.check:
                self.plan_only(before)
                return self.finish(before, None)
            snapshot = self.paths.make_available(before)
            self.mark(self.paths.login_phase)
            snapshot = self.revive_offline(snapshot)
            snapshot = self.stale_check(snapshot)
            self.mark("stale_check")
            self.attach_waves(snapshot)
        except LunsafeError as exc:
            self.mark("error")  # the time of the step that failed, apart from the rollback
            if not self.check:
                self.roll_back(before_maps, everything=True)
                self.mark("rollback")
            return self.finish(self.host.snapshot(), exc)
        for lun in self.luns:
            if lun.ok:
                lun.state = "attached"
        if any(not lun.ok for lun in self.luns):
            self.roll_back(before_maps, everything=not any(lun.ok for lun in self.luns))
            self.mark("rollback")
        final = self.host.snapshot()
        for lun in self.luns:
            lun.devices = self.lun_devices(final, lun)
            if not lun.ok:
                observe_left(lun, final)
        self.result["changed"] = bool(
            self.paths.changed()
            or any(lun.new or lun.stale_replaced for lun in self.luns)
            or any(write["kind"] == "state" for write in self.result["scanned"])
            or self.result["multipath_actions"]
            or self.trail.adopted_writes  # what a killed run of this request left is reported here
        )
        self.result["diff"] = {
            "before": "".join(f"{hctl}\n" for lun in self.luns for hctl in lun.before),
            "after": "".join(diff_lines(lun.devices) for lun in self.luns),
        }
        return self.finish(final, None)

    def revive_writes(self, snapshot: Snapshot) -> List[scan.SysfsWrite]:
        """For each device of a requested LUN at a usable path (FC: its remote port Online; iSCSI: on a
        session of the request) that the SCSI layer set ``offline``: V(running) to its state, then a rescan.
        SCSI error handling offlines a device it gave up on (commands timed out while its remote port was
        gone, say), and the kernel never brings it back by itself, also once the port is back: without this
        the LUN would be reported attached with a path that carries no I/O. The rescan makes the kernel read
        the LU again, and the stale check that follows reads its identity from the LU itself."""
        return [write for lun in self.luns if lun.ok for write in self._revive_writes_of(snapshot, lun)]

    def _revive_writes_of(self, snapshot: Snapshot, lun: LunRun) -> List[scan.SysfsWrite]:
        writes: List[scan.SysfsWrite] = []
        for device in self.lun_devices(snapshot, lun):
            if device.state != "offline":
                continue
            base = f"{self.host.sysfs_root}/class/scsi_device/{device.hctl}/device"
            # the kernel's state attribute takes a state name only with its newline (EINVAL without)
            for kind, path, text in (("state", base + "/state", "running\n"), ("rescan", base + "/rescan", "1")):
                writes.append(
                    scan.SysfsWrite(kind=kind, path=path, text=text, host=device.hctl.host, address=str(device.hctl))
                )
        return writes

    def revive_offline(self, snapshot: Snapshot) -> Snapshot:
        """Apply :meth:`revive_writes` (recorded in the journal and in RV(scanned)); the snapshot after them.
        A write the kernel refuses or does not return from in time (it rescans the device inside the write,
        and a port that does not answer holds it there) fails that LUN, naming the device; other LUNs go on."""
        wrote = False
        for lun in self.luns:
            if not lun.ok:
                continue
            for write in self._revive_writes_of(snapshot, lun):
                if write.kind == "state":
                    self.trail.record(f"set offline device {write.address} running")
                    self.warnings.append(
                        f"{write.address} was offline (SCSI error handling gave up on it while its path was down; "
                        "the kernel does not bring such a device back by itself): set running and rescanned"
                    )
                wrote = True
                try:
                    self.host.write(write.path, write.text)
                except OSError as exc:
                    self.result["scanned"].append({**write.to_dict(), "error": exc.strerror or str(exc)})
                    lun.fail(
                        LunsafeError(
                            f"could not bring offline device {write.address} back ({write.kind}: "
                            f"{exc.strerror or exc}); its path does not answer: check the port and the array, "
                            "or detach the LUN",
                            hctl=write.address,
                            path=write.path,
                        )
                    )
                    break
                self.result["scanned"].append(write.to_dict())
        return self.host.snapshot() if wrote else snapshot

    def stale_check(self, snapshot: Snapshot) -> Snapshot:
        replaced = False
        for lun in self.luns:
            try:
                replaced = self.replace_stale(snapshot, lun) or replaced
            except LunsafeError as exc:
                lun.fail(exc)
        return self.host.snapshot() if replaced else snapshot

    def check_identities(self, after: Snapshot, wave: Sequence[LunRun]) -> Dict[int, List[str]]:
        """Each LUN's paths are one LU (across every path and target name); the map wait's names per LUN."""
        names_of: Dict[int, List[str]] = {}
        paths_expected = self.paths.paths_expected(after)
        for lun in wave:
            lun.devices = self.lun_devices(after, lun)
            if not lun.ok:
                continue
            try:
                identity = check_identity(
                    devices=lun.devices,
                    expected_wwid=lun.req.expected_wwid,
                    paths_expected=paths_expected,
                    shared_hosts=self.paths.shared_hosts,
                )
            except IdentityError as exc:
                lun.fail(exc)
                continue
            lun.wwid, lun.size_bytes = identity["wwid"], identity["size_bytes"]
            names_of[id(lun)] = [d.name for d in lun.devices if d.name]
        return names_of

    def roll_back(self, before_maps: Set[str], *, everything: bool) -> None:
        snapshot = self.host.snapshot()
        for lun in self.luns:
            if lun.ok and not everything:
                continue
            if not lun.scanned:  # the run stopped within the scan: what is new now is what it made
                devices = self.lun_devices(snapshot, lun)
                lun.new = [d.name for d in devices if d.name and str(d.hctl) not in lun.before]
            self.roll_back_lun(lun, before_maps)
            if lun.ok:
                lun.state = "absent" if not lun.before else lun.state
        if everything:
            self.paths.roll_back()


def attach(
    host: Host, request: Request, *, check: bool, timings: Dict[str, float], trail: Optional[Trail] = None
) -> Outcome:
    """Attach every requested LUN on every path; see the module documentation for the result."""
    return _Attach(host, request, check=check, timings=timings, trail=trail).run()


# ---------------------------------------------------------------------------------------------------------
# detach


class _Detach(_Run):
    OP = "detach"

    def plan(self, snapshot: Snapshot) -> Tuple[List[Tuple[LunRun, Any]], List[str], List[str]]:
        """Per LUN: (lun, flush observation and plan, or None for paths without a map); the refusals that
        ``force`` overrides (in use, blocked) and the identity refusals that nothing overrides.

        The identity comes first: a LUN whose paths do not carry its ``expected_wwid``, or carry different
        WWIDs among themselves, is another LU than the one meant (the array reused the LUN number), and the
        whole call is refused before anything is changed. Its use is still observed, to be named after it.
        """
        planned: List[Tuple[LunRun, Any]] = []
        refusals: List[str] = []
        identity: List[str] = []
        for lun in self.luns:
            lun.devices = self.lun_devices(snapshot, lun)
            lun.before = tuple(str(d.hctl) for d in lun.devices)
            if not lun.devices:  # nothing to remove, nothing to check (not a mismatch)
                continue
            mismatch = detach_identity_refusal(
                given=lun.req.given,
                devices=lun.devices,
                expected_wwid=lun.req.expected_wwid,
                path_noun=self.paths.path_noun,
            )
            if mismatch:
                identity.append(mismatch)
                lun.fail(IdentityError(mismatch.split(": ", 1)[1]))
            names = [d.name for d in lun.devices if d.name]
            try:
                lun.dm_map = snapshot.multipath_map_for(names=names) if names else None
            except SysfsError:
                if not mismatch:
                    raise
                lun.dm_map = None  # paths of different LUs, in different maps: named by the identity refusal
            known = lu_identity(devices=lun.devices, expected_wwid=None).known
            lun.wwid = lun.dm_map.wwid if lun.dm_map is not None else (known[0] if len(known) == 1 else None)
            if mismatch and len(known) == 1:  # refused, so still attached: its size as observed
                lun.size_bytes = lun.devices[0].size_bytes
            if lun.dm_map is not None and lun.dm_map.uuid is not None:
                # udev's helpers open a map for a moment after a writer's last close: waited for, not refused
                observation = flush.observe_settled(
                    ref=lun.dm_map.uuid,
                    host=self.host,
                    snapshot=snapshot,
                    timeout=min(flush.UDEV_SETTLE_TIMEOUT, self.request.timeout),
                )
                fplan = flush.plan_flush(observation=observation, force=self.request.force, remove_wwid_file=False)
                lun.plan = [step.to_dict() for step in fplan.steps]
                refusals.extend(f"LUN {lun.req.given}: {reason}" for reason in fplan.refusals)
                planned.append((lun, (observation, fplan)))
            else:
                users = settled_users(
                    host=self.host, devices=lun.devices, timeout=min(flush.UDEV_SETTLE_TIMEOUT, self.request.timeout)
                )
                blocked = [d for d in lun.devices if d.state in ("blocked", "created-blocked")]
                if users:
                    refusals.append(f"LUN {lun.req.given}: in use: " + "; ".join(u.describe() for u in users))
                if blocked:
                    refusals.append(
                        f"LUN {lun.req.given}: blocked paths (session in recovery, a delete could hang): "
                        + ", ".join(f"{d.name} ({d.hctl})" for d in blocked)
                    )
                lun.plan = [{"action": "delete_path", "target": d.name, "hctl": str(d.hctl)} for d in lun.devices]
                planned.append((lun, None))
            if mismatch:
                lun.plan = []  # nothing is removed for it, whatever the options
        return planned, refusals, identity

    def remove_one(self, lun: LunRun, flushing: Any) -> None:
        """Remove one LUN; with keep_going, its failure is recorded on the LUN and the next one goes on."""
        try:
            self.remove(lun, flushing)
        except LunsafeError as exc:
            if not self.request.keep_going:
                raise
            lun.fail(exc)

    def remove(self, lun: LunRun, flushing: Any) -> None:
        record = Record(clock=self.host.clock, start=self.host.clock())
        if flushing is not None:
            observation, fplan = flushing
            settings = flush.Settings(
                host=self.host,
                retries=3,
                retry_interval=2.0,
                command_timeout=60.0,
                path_timeout=self.request.timeout,
                force=self.request.force,
            )
            self.trail.record(
                f"flush map {lun.dm_map.name if lun.dm_map else '?'} and delete its paths "
                + ", ".join(d.name or str(d.hctl) for d in lun.devices)
            )
            try:
                outcome = flush.apply_plan(plan=fplan, observation=observation, settings=settings)
            except LunsafeError as exc:
                if not self.request.keep_going:
                    raise
                # go on with the paths alone: the map could not be flushed, its paths may still go
                lun.removed = {"map": None, "paths": list(exc.details.get("paths_removed") or [])}
                lun.fail(exc)
                self.remove_paths(lun, record)
                return
            lun.removed = {
                "map": lun.dm_map.name if lun.dm_map else None,
                "paths": [entry["device"] for entry in outcome.paths_removed],
            }
            self.warnings.extend(outcome.warnings)
            return
        self.remove_paths(lun, record)

    def remove_paths(self, lun: LunRun, record: Record) -> None:
        """Delete each of the LUN's paths still there; with keep_going, a path that fails does not stop the
        next one (the LUN fails, naming every path that could not go)."""
        failures: List[str] = []
        snapshot = self.host.snapshot() if lun.error is not None else None
        deleted: List[PathIdentity] = []  # multipathd is asked once about all of them
        for device in lun.devices:
            if snapshot is not None and snapshot.device(name=device.name or "") is None:
                continue  # already gone with the map's flush
            self.trail.record(f"delete {device.name} ({device.hctl})")
            path = path_identity(device)
            try:
                remove_path(
                    host=self.host,
                    path=path,
                    force=self.request.force,
                    timeout=self.request.timeout,
                    record=record,
                    forget=False,
                )
            except RemoveFailed as exc:
                if not self.request.keep_going:
                    forget_paths(host=self.host, paths=deleted, timeout=self.request.timeout, record=record)
                    exc.details.setdefault("paths_removed", [entry["device"] for entry in record.paths_removed])
                    raise
                failures.append(exc.msg)
            else:
                deleted.append(path)
        forget_paths(host=self.host, paths=deleted, timeout=self.request.timeout, record=record)
        done = [entry["device"] for entry in record.paths_removed]
        lun.removed = {"map": lun.removed.get("map"), "paths": list(dict.fromkeys(lun.removed["paths"] + done))}
        self.warnings.extend(record.warnings)
        if failures:
            lun.fail(RemoveFailed("; ".join(failures), paths_removed=lun.removed["paths"]))

    def run(self) -> Outcome:
        self.review_journal()
        before = self.host.snapshot()
        try:
            planned, refusals, identity = self.plan(before)
        except LunsafeError as exc:  # nothing was changed
            return self.finish(before, exc)
        self.mark("observe")
        if identity or (refusals and not self.request.force):
            for lun in self.luns:
                if lun.ok:
                    lun.state = "attached" if lun.devices else "absent"
            tail = (
                " (an identity refusal is not overridden by force or keep_going)"
                if identity
                else " (use force to override)"
            )
            error = DetachRefused(
                "refusing to detach, nothing was changed: " + "; ".join(identity + refusals) + tail,
                refusals=identity + refusals,
            )
            return self.finish(before, error)
        try:
            left = self.remove_all(before, planned)
        except LunsafeError as exc:
            return self.finish(self.host.snapshot(), exc)
        for lun in self.luns:
            if lun.ok:
                lun.state = "detached" if lun.devices else "absent"
        final = before if self.check else self.host.snapshot()
        self.result["changed"] = bool(
            any(lun.devices and (lun.ok or lun.removed["map"] or lun.removed["paths"]) for lun in self.luns)
            or self.paths.released()
            or self.trail.adopted_writes
        )
        self.result["diff"] = {
            "before": "".join(diff_lines(lun.devices) for lun in self.luns),
            "after": "".join(diff_lines(lun.devices) for lun in self.luns) if self.check else diff_lines(left),
        }
        outcome = self.finish(final, None)
        if not self.check:
            self.describe_removed(outcome, before, final)
        return outcome

    def remove_all(self, before: Snapshot, planned: List[Tuple[LunRun, Any]]) -> List[ScsiDevice]:
        """Remove every planned LUN, check that nothing came back, log out of unused paths; what is left."""
        removing = {d.name for lun in self.luns for d in lun.devices if d.name}
        if not self.check:
            for lun, flushing in planned:
                self.remove_one(lun, flushing)
        self.mark("remove")
        after = before if self.check else self.host.snapshot()
        left: List[ScsiDevice] = []
        for lun in self.luns:
            remaining = self.lun_devices(after, lun)
            if self.check or not remaining:
                continue
            left.extend(remaining)
            if self.request.keep_going and lun.ok:
                lun.fail(LunsafeError("paths are left after removal: " + names_of(remaining)))
        if left and not self.request.keep_going:
            raise LunsafeError(
                f"paths are left after removal: {names_of(left)} (something scanned them back: another tool "
                "not taking the host lock?)",
                hctl=[str(d.hctl) for d in left],
            )
        self.paths.release(
            after,
            removing=removing,
            left={d.name for d in left if d.name},
            ours={lun.req.linux_lun for lun in self.luns},
        )
        self.mark(self.paths.release_phase)
        return left

    def describe_removed(self, outcome: Outcome, before: Snapshot, final: Snapshot) -> None:
        """The removed devices are gone: each entry says what was there (a LUN that failed with keep_going:
        what is still there)."""
        for entry, lun in zip(outcome.result["luns"], self.luns):
            if lun.ok:
                entry["hctl"] = [str(d.hctl) for d in lun.devices]
                entry["devices"] = [scan.device_facts(device=d, snapshot=before, new=False) for d in lun.devices]
            else:
                still = self.lun_devices(final, lun)
                entry["hctl"] = [str(d.hctl) for d in still]
                entry["devices"] = [scan.device_facts(device=d, snapshot=final, new=False) for d in still]


def detach(
    host: Host, request: Request, *, check: bool, timings: Dict[str, float], trail: Optional[Trail] = None
) -> Outcome:
    """Detach every requested LUN (maps flushed, paths removed), then log out of paths carrying no other LUN."""
    return _Detach(host, request, check=check, timings=timings, trail=trail).run()
