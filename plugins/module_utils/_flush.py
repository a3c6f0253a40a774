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
import errno
import os
import re
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils._errors import (
    InputError,
    LunsafeError,
    ParseError,
    ToolError,
    WaitTimeout,
)
from ansible_collections.lunsafe.san.plugins.module_utils._hctl import Hctl
from ansible_collections.lunsafe.san.plugins.module_utils._multipath import (
    MULTIPATHD_OK_RCS,
    REPLY_DATA,
    REPLY_OK,
    classify_reply,
    del_map,
    del_path,
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
    parse_paths,
    remove_wwid,
    show_paths,
)
from ansible_collections.lunsafe.san.plugins.module_utils._runner import CommandRunner
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import (
    DmMap,
    ScsiDevice,
    Snapshot,
    read_snapshot,
    scsi_device_delete_path,
)
from ansible_collections.lunsafe.san.plugins.module_utils._wait import wait_until

__all__ = [
    "BLOCKED_STATES",
    "DEFAULT_MOUNTINFO",
    "DEFAULT_WWIDS_FILE",
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
    "find_holders",
    "find_mounts",
    "observe",
    "parse_dmsetup_info",
    "parse_mountinfo",
    "plan_flush",
    "read_wwids",
]

DEFAULT_MOUNTINFO = "/proc/self/mountinfo"
DEFAULT_WWIDS_FILE = "/etc/multipath/wwids"
DMSETUP = "dmsetup"
# A device in one of these states waits for its session to recover (up to replacement_timeout): a delete would
# send SYNCHRONIZE CACHE and can block until then (prior-art pitfall 13).
BLOCKED_STATES = frozenset(("blocked", "created-blocked"))
_OCTAL_ESCAPE_RE = re.compile(r"\\([0-7]{3})")

# step actions, in the order they run
DISABLE_QUEUEING = "disable_queueing"
FLUSH_MAP = "flush_map"
OFFLINE_PATH = "offline_path"
DELETE_PATH = "delete_path"
FORGET_PATH = "forget_path"
REMOVE_WWID = "remove_wwid"
DEL_MAP = "del_map"
REMOVE_MAP = "dmsetup_remove"


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
class PathIdentity:
    """A path of the map: re-checked by H:C:T:L, kernel name and WWID before it is deleted."""

    hctl: Hctl
    device: str
    wwid: Optional[str]
    state: Optional[str]

    def to_dict(self) -> Dict[str, Any]:
        return {"hctl": str(self.hctl), "device": self.device, "wwid": self.wwid, "state": self.state}


@dataclasses.dataclass(frozen=True)
class Holder:
    """Something that uses the map or one of its paths."""

    kind: str  # mount, lvm, dm-crypt, partition, dm, open
    device: str  # the kernel name held or holding (dm-3, sdb1, dm-2)
    name: Optional[str] = None  # dm name of a holder, mount point of a mount
    detail: Optional[str] = None

    def describe(self) -> str:
        if self.kind == "mount":
            return f"{self.device} mounted on {self.name}" + (f" ({self.detail})" if self.detail else "")
        if self.kind == "open":
            return f"{self.device} {self.detail}"
        label = f"{self.kind} {self.device}" + (f" ({self.name})" if self.name else "")
        return label + (f" {self.detail}" if self.detail else "")

    def to_dict(self) -> Dict[str, Any]:
        return {"kind": self.kind, "device": self.device, "name": self.name, "detail": self.detail}


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


def _unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as ``\\ooo``."""
    return _OCTAL_ESCAPE_RE.sub(lambda match: chr(int(match.group(1), 8)), text)


def parse_mountinfo(text: str) -> List[Tuple[str, str, str, str]]:
    """``(major:minor, mount point, fstype, source)`` of every line of ``/proc/<pid>/mountinfo``."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) < 10 or "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        if len(fields) < separator + 3:
            continue
        mounts.append((fields[2], _unescape(fields[4]), fields[separator + 1], _unescape(fields[separator + 2])))
    return mounts


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


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def _block_dir(sysfs_root: str, name: str) -> str:
    return os.path.join(sysfs_root, "class", "block", name)


def _devt(sysfs_root: str, name: str) -> Optional[str]:
    return _read(os.path.join(_block_dir(sysfs_root, name), "dev"))


def _listdir(path: str) -> List[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _holder_kind(uuid: Optional[str]) -> str:
    if uuid is None:
        return "dm"
    if uuid.startswith("LVM-"):
        return "lvm"
    if uuid.startswith("CRYPT-"):
        return "dm-crypt"
    if re.match(r"part[0-9]+-", uuid):
        return "partition"
    return "dm"


def _stacked(sysfs_root: str, name: str, own: str, seen: Optional[set] = None) -> List[Tuple[str, str]]:
    """(holder, held) pairs of every device stacked on ``name`` and its partitions, recursively; ``own`` (the
    map itself, which holds its paths) is left out."""
    seen = set() if seen is None else seen
    pairs: List[Tuple[str, str]] = []
    block = _block_dir(sysfs_root, name)
    candidates = [name] + [
        entry for entry in _listdir(block) if os.path.isfile(os.path.join(block, entry, "partition"))
    ]
    for held in candidates:
        for holder in _listdir(os.path.join(_block_dir(sysfs_root, held), "holders")):
            if holder == own or holder in seen:
                continue
            seen.add(holder)
            pairs.append((holder, held))
            pairs.extend(_stacked(sysfs_root, holder, own, seen))
    return pairs


def find_holders(*, sysfs_root: str, dm: str, paths: Sequence[str]) -> Tuple[Holder, ...]:
    """Devices stacked on the map (or, directly, on one of its paths): LVM, dm-crypt, kpartx partitions, any dm,
    and partitions of the map or paths that are block devices of their own."""
    holders: List[Holder] = []
    for name in (dm, *paths):
        for holder, held in _stacked(sysfs_root, name, own=dm):
            dm_dir = os.path.join(_block_dir(sysfs_root, holder), "dm")
            holder_name = _read(os.path.join(dm_dir, "name"))
            kind = _holder_kind(_read(os.path.join(dm_dir, "uuid"))) if os.path.isdir(dm_dir) else "block"
            holders.append(Holder(kind=kind, device=holder, name=holder_name, detail=f"on {held}"))
    return tuple(holders)


def _related_devices(sysfs_root: str, dm: str, paths: Sequence[str], holders: Sequence[Holder]) -> List[str]:
    names = [dm, *paths, *(holder.device for holder in holders)]
    for name in (dm, *paths):
        block = _block_dir(sysfs_root, name)
        names.extend(entry for entry in _listdir(block) if os.path.isfile(os.path.join(block, entry, "partition")))
    return list(dict.fromkeys(names))


def find_mounts(*, sysfs_root: str, names: Sequence[str], mountinfo: str) -> Tuple[Holder, ...]:
    """Mounts (from the text of a mountinfo file) of any of the block devices ``names``, matched by major:minor."""
    devts = {}
    for name in names:
        devt = _devt(sysfs_root, name)
        if devt is not None:
            devts[devt] = name
    found = []
    for devt, mount_point, fstype, source in parse_mountinfo(mountinfo):
        if devt in devts:
            found.append(Holder(kind="mount", device=devts[devt], name=mount_point, detail=f"{fstype} from {source}"))
    return tuple(found)


def _identity(dm_map: DmMap) -> Optional[MapIdentity]:
    if dm_map.uuid is None or dm_map.wwid is None:
        return None
    return MapIdentity(name=dm_map.name or dm_map.dm, dm=dm_map.dm, uuid=dm_map.uuid, wwid=dm_map.wwid)


def resolve(*, snapshot: Snapshot, ref: str) -> Optional[MapIdentity]:
    """The multipath map ``ref`` names (dm-N, /dev/dm-N, name, /dev/mapper/NAME, WWID, dm uuid), or None.

    :class:`InputError` if it names a dm device that is not a multipath map (LVM, dm-crypt, a partition):
    this module flushes multipath maps only.
    """
    dm_map = snapshot.map(ref=ref)
    if dm_map is None:
        return None
    identity = _identity(dm_map)
    if identity is None:
        raise InputError(
            f"map {ref!r} is {dm_map.dm} ({dm_map.name}, uuid {dm_map.uuid!r}), not a multipath map: refusing",
            option="map",
            value=ref,
        )
    return identity


def _paths(snapshot: Snapshot, identity: MapIdentity) -> Tuple[PathIdentity, ...]:
    dm_map = snapshot.map(ref=identity.uuid)
    if dm_map is None:
        return ()
    return tuple(
        PathIdentity(hctl=device.hctl, device=device.name, wwid=device.wwid, state=device.state)
        for device in snapshot.devices
        if device.name is not None and device.name in dm_map.slaves
    )


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


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
    runner: CommandRunner,
    sysfs_root: str,
    mountinfo_path: str = DEFAULT_MOUNTINFO,
    wwids_file: str = DEFAULT_WWIDS_FILE,
    snapshot: Optional[Snapshot] = None,
    wwid: Optional[str] = None,
) -> Observation:
    """Everything :func:`plan_flush` needs. ``wwid`` (from an earlier observation) is used to tell whether a map
    that is gone is still listed in the wwids file."""
    snapshot = read_snapshot(sysfs_root=sysfs_root) if snapshot is None else snapshot
    identity = resolve(snapshot=snapshot, ref=ref)
    wwids = read_wwids(wwids_file)
    if identity is None:
        listed = (wwid or ref.strip()) in wwids
        return Observation(ref, None, (), (), None, False, None, listed)
    paths = _paths(snapshot, identity)
    path_names = [path.device for path in paths]
    holders = find_holders(sysfs_root=sysfs_root, dm=identity.dm, paths=path_names)
    related = _related_devices(sysfs_root, identity.dm, path_names, holders)
    mounts = find_mounts(sysfs_root=sysfs_root, names=related, mountinfo=_read_text(mountinfo_path))
    open_count, queueing, active = _kernel_state(runner, identity.uuid)
    return Observation(
        ref=ref,
        identity=identity,
        paths=paths,
        holders=holders + mounts,
        open_count=open_count,
        queue_if_no_path=queueing,
        active_paths=active,
        wwid_listed=identity.wwid in wwids,
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
    if mounts:
        refusals.append("mounted: " + "; ".join(holder.describe() for holder in mounts))
    if stacked:
        refusals.append("held by " + "; ".join(holder.describe() for holder in stacked))
    if observation.open_count:
        refusals.append(f"open: {identity.dm} has open count {observation.open_count}")
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
class Outcome:
    """What :func:`apply_plan` did."""

    done: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    queueing_disabled: bool = False
    last_resort: Optional[str] = None
    deferred: bool = False  # the map is still open: error table, removed at its last close
    paths_removed: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    warnings: List[str] = dataclasses.field(default_factory=list)
    clock: Callable[[], float] = time.monotonic
    start: float = dataclasses.field(default_factory=time.monotonic)

    def add(self, entry: Dict[str, Any]) -> None:
        """Record a completed step, with ``at``: seconds since the first step started."""
        entry["at"] = round(self.clock() - self.start, 3)
        self.done.append(entry)


@dataclasses.dataclass(frozen=True)
class Settings:
    sysfs_root: str
    retries: int
    retry_interval: float
    command_timeout: float
    path_timeout: float
    force: bool
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


def _same_map(settings: Settings, identity: MapIdentity) -> Optional[DmMap]:
    """The map with the recorded uuid, from a fresh snapshot (None once it is gone)."""
    snapshot = read_snapshot(sysfs_root=settings.sysfs_root)
    return next((dm_map for dm_map in snapshot.maps if dm_map.uuid == identity.uuid), None)


def _check_name(settings: Settings, identity: MapIdentity) -> Optional[DmMap]:
    """The live map if it still has the recorded uuid *and* name (commands address it by name)."""
    dm_map = _same_map(settings, identity)
    if dm_map is not None and (dm_map.name or dm_map.dm) != identity.name:
        raise FlushFailed(
            f"map {identity.uuid} was renamed from {identity.name} to {dm_map.name} while flushing: stopped",
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
            wait_until(
                lambda: _same_map(settings, identity) is None,
                timeout=min(2.0, settings.path_timeout),
                interval=0.2,
                describe=f"map {identity.uuid} to disappear",
                clock=settings.clock,
                sleep=settings.sleep,
            )
            return None
        except WaitTimeout:
            pass
        if attempt <= settings.retries:
            settings.sleep(settings.retry_interval)
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


def _live_path(settings: Settings, path: PathIdentity) -> Optional[ScsiDevice]:
    """The device at the path's H:C:T:L if it is still the same one (same name and WWID), else None."""
    device = read_snapshot(sysfs_root=settings.sysfs_root).device_at(hctl=path.hctl)
    if device is None or device.name != path.device or (path.wwid is not None and device.wwid != path.wwid):
        return None
    return device


def _write(path: str, value: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(value)


def _multipathd_lists(runner: CommandRunner, path: PathIdentity) -> Optional[bool]:
    """Whether multipathd still lists the path (same name and H:C:T:L); None if multipathd does not answer."""
    reply = runner.run(show_paths(), ok_rcs=MULTIPATHD_OK_RCS, timeout=10)
    kind = classify_reply(reply.rc, reply.stdout, reply.stderr)
    if kind == REPLY_OK:  # multipathd answers "ok" when it has no path at all
        return False
    if kind != REPLY_DATA:  # not running, busy (timeout) or "fail": unknown
        return None
    return any(
        record.dev == path.device and record.hctl in (None, str(path.hctl)) for record in parse_paths(reply.stdout)
    )


def _offline_blocked(settings: Settings, path: PathIdentity, outcome: Outcome) -> None:
    """Set a blocked path offline before its delete, where the kernel lets us.

    Linux 6.1 (the lab) answers EINVAL: from sysfs it only changes the state of a running or offline device.
    Its removal of a blocked device then goes straight to the "del" state and fails the queued I/O at once, so
    the delete that follows does not wait for the session; the step records that the kernel refused.
    """
    state_file = os.path.join(
        os.path.dirname(scsi_device_delete_path(hctl=path.hctl, sysfs_root=settings.sysfs_root)), "state"
    )
    step: Dict[str, Any] = {"action": OFFLINE_PATH, "device": path.device, "hctl": str(path.hctl)}
    try:
        _write(state_file, "offline")
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise FlushFailed(
                f"could not set {path.device} ({path.hctl}) offline: {exc.strerror}", path=path.to_dict()
            ) from None
        step["result"] = "refused by the kernel (EINVAL: only running or offline devices change state from sysfs)"
    else:
        step["result"] = "offline"
    outcome.add(step)


def _remove_path(runner: CommandRunner, settings: Settings, path: PathIdentity, outcome: Outcome) -> None:
    device = _live_path(settings, path)
    if device is not None:
        if device.state in BLOCKED_STATES:
            if not settings.force:
                raise FlushFailed(
                    f"path {path.device} ({path.hctl}) became {device.state} after the map was flushed: not deleting "
                    "it (the delete could hang until the session recovers); retry later or use force",
                    path=path.to_dict(),
                )
            _offline_blocked(settings, path, outcome)
        delete_file = scsi_device_delete_path(hctl=path.hctl, sysfs_root=settings.sysfs_root)
        try:
            _write(delete_file, "1")
        except OSError as exc:
            if _live_path(settings, path) is not None:  # ENOENT when it vanished on its own is fine
                raise FlushFailed(
                    f"could not delete {path.device} ({path.hctl}): {exc.strerror}",
                    path=path.to_dict(),
                ) from None
        outcome.add({"action": DELETE_PATH, "device": path.device, "hctl": str(path.hctl), "write": delete_file})
        wait_until(
            lambda: _live_path(settings, path) is None,
            timeout=settings.path_timeout,
            interval=0.1,
            backoff=1.5,
            max_interval=1.0,
            describe=f"{path.device} ({path.hctl}) to leave sysfs",
            clock=settings.clock,
            sleep=settings.sleep,
        )
        outcome.paths_removed.append({"hctl": str(path.hctl), "device": path.device, "wwid": path.wwid})
    if not runner.has_tool("multipathd"):
        return
    try:
        wait_until(
            lambda: _multipathd_lists(runner, path) is not True,
            timeout=min(10.0, settings.path_timeout),
            interval=0.2,
            backoff=1.5,
            max_interval=1.0,
            describe=f"multipathd to drop {path.device}",
            clock=settings.clock,
            sleep=settings.sleep,
        )
    except WaitTimeout:
        reply = runner.run(del_path(device=path.device), ok_rcs=MULTIPATHD_OK_RCS, timeout=10)
        outcome.add({"action": FORGET_PATH, "device": path.device, "cmd": reply.cmd, "reply": reply.stdout.strip()})
        if _multipathd_lists(runner, path):
            outcome.warnings.append(f"multipathd still lists {path.device} after 'del path'")
    else:
        outcome.add({"action": FORGET_PATH, "device": path.device, "how": "multipathd dropped it by itself"})


def apply_plan(
    *,
    plan: Plan,
    observation: Observation,
    runner: CommandRunner,
    settings: Settings,
) -> Outcome:
    """Run the plan's steps in order. Raises :class:`FlushRefused` if the plan has refusals and ``force`` is not
    set (nothing done); any other error carries ``done`` (what ran) and ``paths_removed`` so far."""
    if plan.refusals and not settings.force:
        raise _refusal(observation, plan)
    outcome = Outcome(clock=settings.clock, start=settings.clock())
    try:
        _apply(plan, observation, runner, settings, outcome)
    except LunsafeError as exc:
        exc.details.setdefault("done", outcome.done)
        exc.details.setdefault("paths_removed", outcome.paths_removed)
        raise
    return outcome


def _apply(plan: Plan, observation: Observation, runner: CommandRunner, settings: Settings, outcome: Outcome) -> None:
    identity = observation.identity
    if identity is not None:
        if plan.with_action(DISABLE_QUEUEING):
            _disable_queueing(runner, settings, identity, outcome)
        error = _flush(runner, settings, identity, outcome)
        if error is not None and (not settings.force or not _last_resort(runner, settings, identity, outcome)):
            raise FlushFailed(
                f"could not flush map {identity.name} ({identity.dm}, {identity.uuid}) after "
                f"{settings.retries + 1} attempts: {error}"
                + ("" if settings.force else "; its paths were left in place (use force to remove it anyway)"),
                map=identity.to_dict(),
            )
        for path in observation.paths:
            try:
                _remove_path(runner, settings, path, outcome)
            except WaitTimeout as exc:
                raise FlushFailed(exc.msg, path=path.to_dict(), last_observed=exc.last_observed) from None
    for step in plan.with_action(REMOVE_WWID):
        result = runner.run(remove_wwid(wwid=step.target), timeout=settings.command_timeout)
        outcome.add({"action": REMOVE_WWID, "cmd": result.cmd, "stdout": result.stdout.strip()})


def _refusal(observation: Observation, plan: Plan) -> FlushRefused:
    identity = observation.identity
    label = f"{identity.name} ({identity.dm}, {identity.uuid})" if identity is not None else observation.ref
    return FlushRefused(
        f"refusing to flush map {label}, nothing was changed: " + "; ".join(plan.refusals) + " (use force to override)",
        map=None if identity is None else identity.to_dict(),
        holders=[holder.to_dict() for holder in observation.holders],
        open_count=observation.open_count,
        plan=[step.to_dict() for step in plan.steps],
    )


def refusal(*, observation: Observation, plan: Plan) -> FlushRefused:
    """The exception check mode raises too, so that it predicts the real run."""
    return _refusal(observation, plan)
