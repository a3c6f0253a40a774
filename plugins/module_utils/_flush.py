# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""Flush one multipath map and remove its SCSI paths, safely (os-brick ``_cleanup_connection`` order).

Three layers, used in this order by ``multipath_flush``:

* :func:`observe` (read-only I/O): the map from a sysfs snapshot, identified by its dm uuid
  (``mpath-<wwid>``); its kernel state from ``dmsetup info/table/status -u <uuid>`` (open count,
  ``queue_if_no_path``, active paths); its holders (dm devices stacked on it or on its paths: LVM, dm-crypt,
  kpartx partitions), the mounts of any of those devices (``/proc/self/mountinfo``), and whether the WWID is
  in the wwids file.
* :func:`plan_flush` (pure): the ordered steps, or the reasons to refuse (mounted, held, open, blocked
  paths) when ``force`` is not set.
* :func:`apply_plan` (I/O through the runner seam and sysfs writes): every destructive step first re-reads
  sysfs and checks that the kernel name still belongs to the same dm uuid / H:C:T:L + WWID, because the
  kernel reuses ``dm-N`` and ``sdX`` names.

Users: plugins/modules/multipath_flush.py.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils._errors import (
    InputError,
    LunsafeError,
    ParseError,
    ToolError,
    WaitTimeout,
)
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._journal import Trail
from ansible_collections.lunsafe.san.plugins.module_utils._multipath import (
    MULTIPATHD_OK_RCS,
    REPLY_OK,
    classify_reply,
    del_map,
    disable_queueing,
    dmsetup_fail_if_no_path_by_uuid,
    dmsetup_info,
    dmsetup_remove_deferred,
    dmsetup_status_by_uuid,
    dmsetup_table_by_uuid,
    dmsetup_wipe_table,
    flush_map,
    parse_dmsetup_info,
    parse_dmsetup_status,
    parse_dmsetup_table,
    remove_wwid,
)
from ansible_collections.lunsafe.san.plugins.module_utils._proc import (
    Opener,
    describe_openers,
    find_openers,
    udev_spawned,
)
from ansible_collections.lunsafe.san.plugins.module_utils._remove import (
    BLOCKED_STATES,
    DELETE_PATH,
    FORGET_PATH,
    OFFLINE_PATH,
    Holder,
    PathIdentity,
    Record,
    RemoveFailed,
    device_users,
    find_holders,
    find_mounts,
    forget_paths,
    related_devices,
    remove_path,
)
from ansible_collections.lunsafe.san.plugins.module_utils._runner import CommandRunner
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import (
    DmMap,
    Snapshot,
    read_attribute,
)

__all__ = [
    "BLOCKED_STATES",
    "UDEV_SETTLE_TIMEOUT",
    "FlushFailed",
    "FlushRefused",
    "Holder",
    "MapIdentity",
    "Observation",
    "PathIdentity",
    "Plan",
    "Step",
    "apply_plan",
    "dmsetup_info",
    "dmsetup_remove_deferred",
    "dmsetup_wipe_table",
    "entry_covers",
    "entry_settled",
    "find_holders",
    "find_mounts",
    "finish_interrupted",
    "journal_request",
    "leftover_paths",
    "observe",
    "observe_settled",
    "parse_dmsetup_info",
    "plan_flush",
    "read_wwids",
]

DMSETUP = "dmsetup"
# A device in one of these states waits for its session to recover (up to replacement_timeout): a delete would
# send SYNCHRONIZE CACHE and can block until then (prior-art pitfall 13).

# step actions, in the order they run
DISABLE_QUEUEING = "disable_queueing"
FLUSH_MAP = "flush_map"
REMOVE_WWID = "remove_wwid"
DEL_MAP = "del_map"
REMOVE_MAP = "dmsetup_remove"
MULTIPATHD_COMMAND = "multipathd"


class FlushRefused(LunsafeError):
    """The map is in use (mounted, held, open) or a path is blocked, and ``force`` is not set: nothing was done."""


class FlushFailed(LunsafeError):
    """A step did not reach its goal within its retries and deadline; ``done`` lists the steps completed."""


# ---------------------------------------------------------------------------------------------------------
# data


@dataclasses.dataclass(frozen=True)
class MapIdentity:
    """A map as identified before acting: ``uuid`` is what every later step re-checks."""

    name: str
    dm: str
    uuid: str
    wwid: str

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "dm": self.dm, "uuid": self.uuid, "wwid": self.wwid}


@dataclasses.dataclass(frozen=True)
class Observation:
    """What the host looks like for one map reference."""

    ref: str
    identity: Optional[MapIdentity]
    paths: Tuple[PathIdentity, ...]
    holders: Tuple[Holder, ...]
    open_count: Optional[int]
    queue_if_no_path: bool
    active_paths: Optional[int]
    wwid_listed: bool  # the WWID is in the wwids file
    # processes holding the map (dm-N) or one of its paths open; multipathd, which holds every path open for its
    # checkers, is left out of the paths' openers
    openers: Tuple[Opener, ...] = ()
    # seconds waited for udev's helpers to close the map (observe_settled); None: no wait was needed
    udev_waited: Optional[float] = None
    # the map's openers are udev workers or programs they run (set by observe_settled)
    udev_openers: bool = False

    @property
    def map_openers(self) -> Tuple[Opener, ...]:
        dm = self.identity.dm if self.identity is not None else None
        return tuple(opener for opener in self.openers if opener.device == dm)

    @property
    def found(self) -> bool:
        return self.identity is not None

    @property
    def dead(self) -> bool:
        return self.active_paths == 0


@dataclasses.dataclass(frozen=True)
class Step:
    """One planned action; ``target`` is the map name, a kernel device name or a WWID."""

    action: str
    target: str
    hctl: Optional[str] = None
    reason: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return {"action": self.action, "target": self.target, "hctl": self.hctl, "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class Plan:
    steps: Tuple[Step, ...]
    refusals: Tuple[str, ...]  # why the flush is refused without force (empty: safe)
    forced: bool  # force overrides at least one refusal

    def with_action(self, action: str) -> Tuple[Step, ...]:
        return tuple(step for step in self.steps if step.action == action)


# ---------------------------------------------------------------------------------------------------------
# parsers and argv builders (pure)


def read_wwids(path: str) -> Tuple[str, ...]:
    """WWIDs listed in multipath's wwids file (``/3600140...../`` lines); empty if it does not exist."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return ()
    return tuple(
        line.strip()[1:-1] for line in text.splitlines() if line.strip().startswith("/") and line.strip().endswith("/")
    )


# ---------------------------------------------------------------------------------------------------------
# observing


def _identity(dm_map: DmMap) -> Optional[MapIdentity]:
    if dm_map.uuid is None or dm_map.wwid is None:
        return None
    return MapIdentity(name=dm_map.name or dm_map.dm, dm=dm_map.dm, uuid=dm_map.uuid, wwid=dm_map.wwid)


def _dm_label(dm_map: DmMap) -> str:
    """``name vg-lv, uuid LVM-...``, saying so when the kernel gives no name or no uuid."""
    name = f"name {dm_map.name}" if dm_map.name else "no dm name"
    uuid = f"uuid {dm_map.uuid}" if dm_map.uuid else "no dm uuid"
    return f"{name}, {uuid}"


def resolve(*, snapshot: Snapshot, ref: str) -> Optional[MapIdentity]:
    """The multipath map ``ref`` names (dm-N, /dev/dm-N, name, /dev/mapper/NAME, WWID, dm uuid), or None.

    :class:`InputError` if it names a dm device that is not a multipath map (LVM, dm-crypt, a partition):
    this module flushes multipath maps only.
    """
    dm_map = snapshot.map(ref=ref)
    if dm_map is None:
        _refuse_path_device(snapshot, ref)
        return None
    identity = _identity(dm_map)
    if identity is None:
        raise InputError(
            f"map {ref!r} is {dm_map.dm} ({_dm_label(dm_map)}), not a multipath map: refusing",
            option="map",
            value=ref,
        )
    return identity


def _map_names(identity: MapIdentity) -> str:
    """Every way O(map) can name this map, for a message that asks for one of them."""
    names = [identity.name, f"/dev/mapper/{identity.name}", f"/dev/{identity.dm}", identity.wwid, identity.uuid]
    return ", ".join(dict.fromkeys(names))


def _refuse_path_device(snapshot: Snapshot, ref: str) -> None:
    """:class:`InputError` when ``ref`` names a SCSI disk (``sdc``, ``/dev/sdc``) or one of its partitions rather
    than a map: a flush by a path's name would otherwise answer "not found" while the map is there."""
    text = ref.strip()
    if text.startswith("/dev/mapper/") or "/" in text[len("/dev/") if text.startswith("/dev/") else 0 :]:
        return
    name = os.path.basename(text)
    device = snapshot.device(name=name)
    partition = None
    if device is None:
        device = next((d for d in snapshot.devices if d.name is not None and name in d.partitions), None)
        partition = name if device is not None else None
    if device is None or device.name is None:
        return
    what = f"{ref!r} is " + (f"partition {partition} of " if partition else "") + f"SCSI device {device.name}"
    what += f" ({device.hctl}, WWID {device.wwid or 'unknown'})"
    owner = next((dm_map for dm_map in snapshot.maps_holding(names=[device.name]) if dm_map.is_multipath), None)
    identity = _identity(owner) if owner is not None else None
    if identity is None:
        raise InputError(
            f"{what}, which no multipath map holds: this module flushes multipath maps only (to remove a LUN's "
            "paths without a map use lunsafe.san.iscsi_lun_attach with state=absent)",
            option="map",
            value=ref,
        )
    raise InputError(
        f"{what}, a path of multipath map {identity.name} ({identity.dm}, WWID {identity.wwid}), not a map: "
        f"name the map instead ({_map_names(identity)})",
        option="map",
        value=ref,
    )


def _paths(snapshot: Snapshot, identity: MapIdentity) -> Tuple[PathIdentity, ...]:
    dm_map = snapshot.map(ref=identity.uuid)
    if dm_map is None:
        return ()
    return tuple(
        PathIdentity(hctl=device.hctl, device=device.name, wwid=device.wwid, state=device.state)
        for device in snapshot.devices
        if device.name is not None and device.name in dm_map.slaves
    )


def _kernel_state(runner: CommandRunner, uuid: str) -> Tuple[Optional[int], bool, Optional[int]]:
    """(open count, queue_if_no_path, active paths) from dmsetup, by uuid (no I/O on the map).

    A map whose table is no longer multipath (``error`` after ``dmsetup wipe_table``) neither queues nor has
    active paths.
    """
    info = runner.run(dmsetup_info(uuid=uuid), ok_rcs=(0, 1), timeout=10)
    open_count = parse_dmsetup_info(info.stdout, uuid=uuid) if info.rc == 0 else None
    table = runner.run(dmsetup_table_by_uuid(uuid=uuid), ok_rcs=(0, 1), timeout=10)
    status = runner.run(dmsetup_status_by_uuid(uuid=uuid), ok_rcs=(0, 1), timeout=10)
    try:
        queueing = table.rc == 0 and parse_dmsetup_table(table.stdout).queue_if_no_path
        active = parse_dmsetup_status(status.stdout).active if status.rc == 0 else None
    except ParseError:
        if " multipath " in f" {table.stdout} ":
            raise
        return open_count, False, 0
    return open_count, queueing, active


def observe(
    *,
    ref: str,
    host: Host,
    snapshot: Optional[Snapshot] = None,
    wwid: Optional[str] = None,
) -> Observation:
    """Everything :func:`plan_flush` needs. ``wwid`` (from an earlier observation) is used to tell whether a map
    that is gone is still listed in the wwids file."""
    snapshot = host.snapshot() if snapshot is None else snapshot
    identity = resolve(snapshot=snapshot, ref=ref)
    wwids = read_wwids(host.wwids_file)
    if identity is None:
        listed = (wwid or ref.strip()) in wwids
        return Observation(ref, None, (), (), None, False, None, listed)
    paths = _paths(snapshot, identity)
    path_names = [path.device for path in paths]
    holders = find_holders(sysfs_root=host.sysfs_root, dm=identity.dm, paths=path_names)
    related = related_devices(host.sysfs_root, identity.dm, path_names, holders)
    mounts = find_mounts(sysfs_root=host.sysfs_root, names=related, mountinfo=host.mountinfo())
    open_count, queueing, active = _kernel_state(host.runner, identity.uuid)
    openers = map_openers(host=host, dm=identity.dm, paths=path_names)
    return Observation(
        ref=ref,
        identity=identity,
        paths=paths,
        holders=holders + mounts,
        open_count=open_count,
        queue_if_no_path=queueing,
        active_paths=active,
        wwid_listed=identity.wwid in wwids,
        openers=openers,
    )


#: how long a detach or flush waits for udev's helpers to close a map before it counts them as users
UDEV_SETTLE_TIMEOUT = 10.0


def _udev_only(observation: Observation, proc_root: str) -> bool:
    """Whether the map is open, and only by udev workers or the programs they run (or by no process /proc still
    shows: one that closed it between ``dmsetup info`` and the walk of /proc); nothing mounts or stacks on it."""
    if observation.identity is None or not observation.open_count or observation.holders:
        return False
    return all(udev_spawned(proc_root=proc_root, pid=opener.pid) for opener in observation.map_openers)


def observe_settled(
    *, ref: str, host: Host, snapshot: Optional[Snapshot] = None, timeout: float = UDEV_SETTLE_TIMEOUT
) -> Observation:
    """:func:`observe`, then observe again while only udev holds the map open, for at most ``timeout`` seconds.

    A writer's last close of a map (a database shutting down, ``mkfs``, ``dd``) raises a change event (udev's
    inotify watch); udev then opens the map for a moment (blkid in its worker, ``kpartx`` from the multipath
    rules). A detach that looks at that moment would refuse an unused LUN as open. The wait reads, never
    writes, so check mode does it too. After ``timeout`` the observation says the openers are udev's
    (``udev_openers``) and how long it waited, for the refusal."""
    observation = observe(ref=ref, host=host, snapshot=snapshot)
    if not _udev_only(observation, host.proc_root):
        return observation
    start = host.clock()
    while True:
        host.pause(0.25)  # a udev event (the helper's change or remove) ends the pause early
        observation = observe(ref=ref, host=host)
        waited = round(host.clock() - start, 3)
        if not _udev_only(observation, host.proc_root):
            return dataclasses.replace(observation, udev_waited=waited)
        if waited >= timeout:
            return dataclasses.replace(observation, udev_waited=waited, udev_openers=True)


def map_openers(*, host: Host, dm: str, paths: List[str]) -> Tuple[Opener, ...]:
    """Processes holding the map or one of its paths open (one walk of /proc); multipathd is left out of the
    paths' openers since it holds every path open for its checkers."""
    devices = {
        name: read_attribute(os.path.join(host.sysfs_root, "class", "block", name, "dev")) for name in (dm, *paths)
    }
    return tuple(
        opener
        for opener in find_openers(proc_root=host.proc_root, devices=devices)
        if opener.device == dm or opener.command != MULTIPATHD_COMMAND
    )


def _mount_refusal(holder: Holder) -> str:
    """``mounted at /srv/data (dm-0, ext4 from /dev/mapper/mpatha)``."""
    return f"mounted at {holder.name} ({holder.device}" + (f", {holder.detail})" if holder.detail else ")")


def _kernel_opener(holder: Holder) -> str:
    """What a mount or a stacked device is to the kernel's open count: ``the mount at /srv/data (dm-0)``,
    ``lvm dm-2 (vg-lv) on dm-0``."""
    if holder.kind == "mount":
        return f"the mount at {holder.name} ({holder.device})"
    return holder.describe()


def _open_refusal(observation: Observation) -> str:
    """``map mpatha is open (open count 1) by pid 1234 (udev-worker)``, or why no process is named."""
    name = observation.identity.name if observation.identity is not None else observation.ref
    text = f"map {name} is open (open count {observation.open_count})"
    openers = observation.map_openers
    if openers and observation.udev_openers:
        return (
            f"{text} by {describe_openers(openers)}, run by udev and still open after {observation.udev_waited:.1f}s "
            "(a udev rule's program that does not end: see `udevadm monitor` and the rules that RUN it)"
        )
    if openers:
        return f"{text} by {describe_openers(openers)}"
    if observation.holders:
        users = "; ".join(_kernel_opener(holder) for holder in observation.holders)
        return f"{text} by no process /proc shows, but by the kernel for {users}"
    return (
        f"{text}, by no process that /proc shows (a kernel user such as swap or an md array, a process of another "
        "user namespace, or one that closed it meanwhile)"
    )


# ---------------------------------------------------------------------------------------------------------
# planning (pure)


def plan_flush(*, observation: Observation, force: bool, remove_wwid_file: bool) -> Plan:
    """The ordered steps for ``observation``, and the refusals that ``force`` overrides.

    A map that is not found gives no step (idempotent) except, with ``remove_wwid_file``, removing its WWID from
    the wwids file if it is still listed.
    """
    identity = observation.identity
    steps: List[Step] = []
    if identity is None:
        if remove_wwid_file and observation.wwid_listed:
            steps.append(Step(REMOVE_WWID, observation.ref.strip(), reason="still listed in the wwids file"))
        return Plan(steps=tuple(steps), refusals=(), forced=False)
    refusals: List[str] = []
    mounts = [holder for holder in observation.holders if holder.kind == "mount"]
    stacked = [holder for holder in observation.holders if holder.kind != "mount"]
    refusals.extend(_mount_refusal(holder) for holder in mounts)
    if stacked:
        refusals.append("held by " + "; ".join(holder.describe() for holder in stacked))
    if observation.open_count:
        refusals.append(_open_refusal(observation))
    blocked = [path for path in observation.paths if path.state in BLOCKED_STATES]
    if blocked:
        refusals.append(
            "blocked paths (session in recovery, a delete could hang): "
            + ", ".join(f"{path.device} ({path.hctl}, {path.state})" for path in blocked)
        )
    if observation.dead and observation.queue_if_no_path:
        # without this, multipath -f (or any flush of buffers) could hang on a map that queues forever; refused
        # above when the map is open (queued writes would be lost) unless forced
        steps.append(Step(DISABLE_QUEUEING, identity.name, reason="no active path and queue_if_no_path"))
    steps.append(Step(FLUSH_MAP, identity.name, reason=f"{identity.dm} {identity.uuid}"))
    for path in observation.paths:
        if path.state in BLOCKED_STATES:
            steps.append(Step(OFFLINE_PATH, path.device, hctl=str(path.hctl), reason=f"state {path.state}"))
        steps.append(Step(DELETE_PATH, path.device, hctl=str(path.hctl)))
        steps.append(Step(FORGET_PATH, path.device, hctl=str(path.hctl), reason="if multipathd still lists it"))
    if remove_wwid_file and observation.wwid_listed:
        steps.append(Step(REMOVE_WWID, identity.wwid))
    return Plan(steps=tuple(steps), refusals=tuple(refusals), forced=bool(refusals) and force)


# ---------------------------------------------------------------------------------------------------------
# applying


@dataclasses.dataclass
class Outcome(Record):
    """What :func:`apply_plan` did."""

    queueing_disabled: bool = False
    last_resort: Optional[str] = None
    deferred: bool = False  # the map is still open: error table, removed at its last close


@dataclasses.dataclass(frozen=True)
class Settings:
    host: Host
    retries: int
    retry_interval: float
    command_timeout: float
    path_timeout: float
    force: bool


def _same_map(settings: Settings, identity: MapIdentity) -> Optional[DmMap]:
    """The map with the recorded uuid, from a fresh snapshot (None once it is gone)."""
    snapshot = settings.host.snapshot()
    return next((dm_map for dm_map in snapshot.maps if dm_map.uuid == identity.uuid), None)


def _check_name(settings: Settings, identity: MapIdentity) -> Optional[DmMap]:
    """The live map if it still has the recorded uuid *and* name (commands address it by name)."""
    dm_map = _same_map(settings, identity)
    if dm_map is not None and (dm_map.name or dm_map.dm) != identity.name:
        raise FlushFailed(
            f"map {identity.uuid} was renamed from {identity.name} to {dm_map.name or dm_map.dm} while flushing: "
            "stopped",
            map=identity.to_dict(),
        )
    return dm_map


def _disable_queueing(runner: CommandRunner, settings: Settings, identity: MapIdentity, outcome: Outcome) -> None:
    if _check_name(settings, identity) is None:
        return
    if runner.has_tool("multipathd"):
        reply = runner.run(disable_queueing(name=identity.name), ok_rcs=MULTIPATHD_OK_RCS, timeout=10)
        if classify_reply(reply.rc, reply.stdout, reply.stderr) == REPLY_OK:
            outcome.queueing_disabled = True
            outcome.add({"action": DISABLE_QUEUEING, "cmd": reply.cmd})
    # the kernel state decides: multipathd may be down, or answer ok and re-enable queueing later
    table = runner.run(dmsetup_table_by_uuid(uuid=identity.uuid), ok_rcs=(0, 1), timeout=10)
    if table.rc == 0 and parse_dmsetup_table(table.stdout).queue_if_no_path:
        result = runner.run(dmsetup_fail_if_no_path_by_uuid(uuid=identity.uuid), timeout=10)
        outcome.queueing_disabled = True
        outcome.add({"action": DISABLE_QUEUEING, "cmd": result.cmd})


def _flush(runner: CommandRunner, settings: Settings, identity: MapIdentity, outcome: Outcome) -> Optional[str]:
    """``multipath -f NAME`` with bounded retries; None when the uuid is gone, else the last error seen."""
    last_error = "not attempted"
    for attempt in range(1, settings.retries + 2):
        if _check_name(settings, identity) is None:
            return None
        try:
            result = runner.run(flush_map(name=identity.name), ok_rcs=(0, 1), timeout=settings.command_timeout)
            last_error = (result.stderr.strip() or result.stdout.strip() or f"rc {result.rc}").splitlines()[-1]
            outcome.add({"action": FLUSH_MAP, "cmd": result.cmd, "rc": result.rc, "attempt": attempt})
        except ToolError as exc:  # includes ToolTimeout
            last_error = exc.msg
            outcome.add({"action": FLUSH_MAP, "cmd": exc.cmd, "rc": exc.rc, "attempt": attempt})
        try:  # removal may complete just after the command returns
            settings.host.wait(  # a udev remove event of the map ends a pause early
                lambda: _same_map(settings, identity) is None,
                timeout=min(2.0, settings.path_timeout),
                interval=0.2,
                backoff=1.0,
                max_interval=0.2,
                describe="the map to disappear",
            )
            return None
        except WaitTimeout:
            pass
        if attempt <= settings.retries:
            settings.host.sleep(settings.retry_interval)
    return last_error


def _last_resort(runner: CommandRunner, settings: Settings, identity: MapIdentity, outcome: Outcome) -> bool:
    """Under force: ``multipathd del map``; if the map is still there (open), replace its table with one that fails
    all I/O (``dmsetup wipe_table``, which releases the paths) and mark it for removal at its last close
    (``dmsetup remove --deferred``). True if the uuid is gone or the map no longer holds any path."""
    if runner.has_tool("multipathd") and _check_name(settings, identity) is not None:
        reply = runner.run(del_map(name=identity.name), ok_rcs=MULTIPATHD_OK_RCS, timeout=settings.command_timeout)
        outcome.add({"action": DEL_MAP, "cmd": reply.cmd, "rc": reply.rc, "reply": reply.stdout.strip()})
        outcome.last_resort = DEL_MAP
    if _same_map(settings, identity) is None:
        return True
    for argv in (dmsetup_wipe_table(name=identity.name), dmsetup_remove_deferred(uuid=identity.uuid)):
        if _check_name(settings, identity) is None:
            break
        result = runner.run(argv, ok_rcs=(0, 1), timeout=settings.command_timeout)
        outcome.add({"action": REMOVE_MAP, "cmd": result.cmd, "rc": result.rc, "stderr": result.stderr.strip()})
        outcome.last_resort = REMOVE_MAP
    left = _same_map(settings, identity)
    if left is None:
        return True
    if not left.slaves:
        outcome.deferred = True
        outcome.warnings.append(
            f"map {identity.name} ({identity.uuid}) is still open: its table now fails all I/O and it is removed "
            "when the last opener closes it"
        )
        return True
    return False


def apply_plan(*, plan: Plan, observation: Observation, settings: Settings, trail: Optional[Trail] = None) -> Outcome:
    """Run the plan's steps in order. Raises :class:`FlushRefused` if the plan has refusals and ``force`` is not
    set (nothing done); any other error carries ``done`` (what ran) and ``paths_removed`` so far. With a
    ``trail`` (multipath_flush's entry in the journal beside the lock), each step is recorded before it runs."""
    if plan.refusals and not settings.force:
        raise _refusal(observation, plan)
    outcome = Outcome(clock=settings.host.clock, start=settings.host.clock())
    settings.host.start_udev()  # before the flush command: the waits that follow wake at its remove events
    try:
        _apply(
            plan,
            observation,
            settings.host.runner,
            settings,
            outcome,
            trail=trail or Trail(None, module="multipath_flush", op="flush", request={}),
        )
    except LunsafeError as exc:
        exc.details.setdefault("done", outcome.done)
        exc.details.setdefault("paths_removed", outcome.paths_removed)
        raise
    return outcome


def _apply(
    plan: Plan,
    observation: Observation,
    runner: CommandRunner,
    settings: Settings,
    outcome: Outcome,
    *,
    trail: Trail,
) -> None:
    identity = observation.identity
    if identity is not None:
        if plan.with_action(DISABLE_QUEUEING):
            trail.record(f"disable queueing on map {identity.name} ({identity.uuid})")
            _disable_queueing(runner, settings, identity, outcome)
        trail.record(
            f"flush map {identity.name} ({identity.uuid}), then delete its paths "
            + ", ".join(f"{path.device} ({path.hctl})" for path in observation.paths)
        )
        error = _flush(runner, settings, identity, outcome)
        if error is not None and (not settings.force or not _last_resort(runner, settings, identity, outcome)):
            raise FlushFailed(
                f"could not flush map {identity.name} ({identity.dm}, {identity.uuid}) after "
                f"{settings.retries + 1} attempts: {error}"
                + ("" if settings.force else "; its paths were left in place (use force to remove it anyway)"),
                map=identity.to_dict(),
            )
        _delete_paths(observation.paths, settings=settings, trail=trail, record=outcome, note="")
    for step in plan.with_action(REMOVE_WWID):
        trail.record(f"remove WWID {step.target} from the wwids file")
        result = runner.run(remove_wwid(wwid=step.target), timeout=settings.command_timeout)
        outcome.add({"action": REMOVE_WWID, "cmd": result.cmd, "stdout": result.stdout.strip()})


def _refusal(observation: Observation, plan: Plan) -> FlushRefused:
    identity = observation.identity
    label = f"{identity.name} ({identity.dm}, {identity.uuid})" if identity is not None else observation.ref
    return FlushRefused(
        f"refusing to flush map {label}, nothing was changed: " + "; ".join(plan.refusals) + " (use force to override)",
        map=None if identity is None else identity.to_dict(),
        holders=[holder.to_dict() for holder in observation.holders],
        openers=[opener.to_dict() for opener in observation.openers],
        open_count=observation.open_count,
        plan=[step.to_dict() for step in plan.steps],
    )


def refusal(*, observation: Observation, plan: Plan) -> FlushRefused:
    """The exception check mode raises too, so that it predicts the real run."""
    return _refusal(observation, plan)


# ---------------------------------------------------------------------------------------------------------
# the journal: a flush that was killed between the map's flush and its paths' deletes


def journal_request(ref: str, observation: Observation) -> Dict[str, Any]:
    """What the journal keeps of a flush: the reference given, the map's identity and its paths (what a re-run
    needs to find the paths once the map is gone)."""
    identity = observation.identity
    return {
        "map": ref,
        **(identity.to_dict() if identity is not None else {}),
        "paths": [{"hctl": str(p.hctl), "device": p.device, "wwid": p.wwid} for p in observation.paths],
    }


def entry_covers(entry: Dict[str, Any], *, ref: str, identity: Optional[MapIdentity]) -> bool:
    """Whether a flush of ``ref`` (now ``identity``, None when no map answers to it) covers a killed flush."""
    if entry.get("module") != "multipath_flush":
        return False
    request = entry.get("request") or {}
    if identity is not None and request.get("uuid") == identity.uuid:
        return True
    name = request.get("name")
    names = {request.get("map"), name, request.get("uuid"), request.get("wwid"), request.get("dm")}
    if name:
        names.add(f"/dev/mapper/{name}")
    if request.get("dm"):
        names.add(f"/dev/{request['dm']}")
    return ref.strip() in names - {None, ""}


def _recorded_paths(entry: Dict[str, Any], snapshot: Snapshot) -> List[PathIdentity]:
    """The paths a killed flush recorded that are still there: same kernel name at the same H:C:T:L, and the
    same WWID when both are known (the kernel reuses names)."""
    found = []
    for path in (entry.get("request") or {}).get("paths") or []:
        if not isinstance(path, dict) or not isinstance(path.get("device"), str):
            continue
        device = snapshot.device(name=path["device"])
        if device is None or str(device.hctl) != path.get("hctl"):
            continue
        if device.wwid and path.get("wwid") and device.wwid != path["wwid"]:
            continue
        found.append(PathIdentity(hctl=device.hctl, device=path["device"], wwid=device.wwid, state=device.state))
    return found


def entry_settled(entry: Dict[str, Any], snapshot: Snapshot) -> bool:
    """Whether nothing a killed flush left remains: its map and every path it recorded are gone."""
    if entry.get("module") != "multipath_flush":
        return False
    uuid = (entry.get("request") or {}).get("uuid")
    if uuid and any(dm_map.uuid == uuid for dm_map in snapshot.maps):
        return False
    return not _recorded_paths(entry, snapshot)


def leftover_paths(
    entries: List[Dict[str, Any]], snapshot: Snapshot, *, exclude: Tuple[PathIdentity, ...]
) -> List[PathIdentity]:
    """The paths that covered killed flushes recorded and that are still there, outside the map being flushed
    now (``exclude``: its own paths, removed by the plan)."""
    skip = {path.device for path in exclude}
    seen: Dict[str, PathIdentity] = {}
    for entry in entries:
        for path in _recorded_paths(entry, snapshot):
            if path.device not in skip:
                seen.setdefault(path.device, path)
    return list(seen.values())


def finish_interrupted(leftovers: List[PathIdentity], *, settings: Settings, trail: Trail, record: Record) -> None:
    """Delete the paths a killed flush of this map left (each re-identified first, like every path delete);
    one in use is refused unless ``force``, naming what uses it."""
    if not leftovers:
        return
    devices = [device for device in (settings.host.snapshot().device(name=p.device) for p in leftovers) if device]
    users = device_users(host=settings.host, devices=devices)
    if users and not settings.force:
        raise FlushFailed(
            "paths left by an interrupted flush of this map are in use: "
            + "; ".join(user.describe() for user in users)
            + " (use force to remove them anyway)",
            done=record.done,
            paths_removed=record.paths_removed,
        )
    _delete_paths(leftovers, settings=settings, trail=trail, record=record, note=", left by an interrupted flush")


def _delete_paths(
    paths: Sequence[PathIdentity], *, settings: Settings, trail: Trail, record: Record, note: str
) -> None:
    """The paths of the map, one after the other: each recorded in the journal, then removed (re-identified
    first) like every path; then multipathd is asked once to have forgotten all those deleted."""
    deleted: List[PathIdentity] = []
    try:
        for path in paths:
            trail.record(f"delete {path.device} ({path.hctl}){note}")
            remove_path(
                host=settings.host,
                path=path,
                force=settings.force,
                timeout=settings.path_timeout,
                record=record,
                forget=False,
            )
            deleted.append(path)
    except RemoveFailed as exc:
        raise FlushFailed(exc.msg, **exc.details) from None
    finally:
        forget_paths(host=settings.host, paths=deleted, timeout=settings.path_timeout, record=record)
