# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module_utils is PRIVATE to lunsafe.san. It may change without notice.

"""The one way to remove a SCSI device, and what uses a block device.

:func:`remove_path` is used by every procedure that deletes a path (multipath_flush, the detach of
iscsi_lun_attach with or without a map, the replacement of a stale device, the rollback of a failed
attach): the device at the recorded H:C:T:L must still be the same one (kernel name and WWID, as the kernel
reuses both), a blocked device is refused unless forced, the delete goes through the host's one sysfs
writer, the wait for the device to leave sysfs has a deadline, and multipathd is told to forget the path if
it still lists it.

:func:`device_users` says what uses a set of devices: devices stacked on them (LVM, dm-crypt, partitions,
multipath maps other than the one being removed), mounts (from the host's mount table) and processes that
hold them open (``/proc/<pid>/fd``). Removal refuses while any is found, unless forced.

Users: _flush, _attach.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils._errors import LunsafeError, WaitTimeout
from ansible_collections.lunsafe.san.plugins.module_utils._hctl import Hctl
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._multipath import (
    MULTIPATHD_OK_RCS,
    REPLY_DATA,
    REPLY_OK,
    classify_reply,
    del_path,
    parse_paths,
    show_paths,
)
from ansible_collections.lunsafe.san.plugins.module_utils._proc import find_openers as find_process_openers
from ansible_collections.lunsafe.san.plugins.module_utils._proc import udev_spawned
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import ScsiDevice, scsi_device_delete_path

__all__ = [
    "BLOCKED_STATES",
    "DELETE_PATH",
    "FORGET_PATH",
    "OFFLINE_PATH",
    "Holder",
    "PathIdentity",
    "Record",
    "RemoveFailed",
    "device_users",
    "find_holders",
    "find_mounts",
    "find_openers",
    "forget_paths",
    "parse_mountinfo",
    "path_identity",
    "related_devices",
    "remove_path",
    "settled_users",
]

BLOCKED_STATES = frozenset(("blocked", "created-blocked"))
_OCTAL_ESCAPE_RE = re.compile(r"\\([0-7]{3})")

OFFLINE_PATH = "offline_path"
DELETE_PATH = "delete_path"
FORGET_PATH = "forget_path"


class RemoveFailed(LunsafeError):
    """A path could not be removed (blocked without force, the delete failed, it did not leave sysfs)."""


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
    pid: Optional[int] = dataclasses.field(default=None, compare=False)  # the process, for kind open

    def describe(self) -> str:
        if self.kind == "mount":
            return f"{self.device} mounted on {self.name}" + (f" ({self.detail})" if self.detail else "")
        if self.kind == "open":
            return f"{self.device} {self.detail}"
        label = f"{self.kind} {self.device}" + (f" ({self.name})" if self.name else "")
        return label + (f" {self.detail}" if self.detail else "")

    def to_dict(self) -> Dict[str, Any]:
        return {"kind": self.kind, "device": self.device, "name": self.name, "detail": self.detail}


def path_identity(device: ScsiDevice) -> PathIdentity:
    """The identity of a device as seen now, to re-check before it is deleted."""
    if device.name is None:
        raise RemoveFailed(f"device {device.hctl} has no block device: nothing to identify it by")
    return PathIdentity(hctl=device.hctl, device=device.name, wwid=device.wwid, state=device.state)


@dataclasses.dataclass
class Record:
    """What a removal did, step by step (``at``: seconds since the first step)."""

    done: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    paths_removed: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    warnings: List[str] = dataclasses.field(default_factory=list)
    clock: Callable[[], float] = time.monotonic
    start: float = dataclasses.field(default_factory=time.monotonic)

    def add(self, entry: Dict[str, Any]) -> None:
        entry["at"] = round(self.clock() - self.start, 3)
        self.done.append(entry)


# ---------------------------------------------------------------------------------------------------------
# what uses a device


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


def related_devices(sysfs_root: str, dm: str, paths: Sequence[str], holders: Sequence[Holder]) -> List[str]:
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


def find_openers(*, host: Host, names: Iterable[str]) -> Tuple[Holder, ...]:
    """Processes that hold one of the block devices ``names`` open (``/proc/<pid>/fd`` links to ``/dev/NAME``
    or to a node with its major:minor), as holders of kind ``open`` (see :func:`_proc.find_openers`)."""
    devices = {name: _devt(host.sysfs_root, name) for name in names}
    return tuple(
        Holder(
            kind="open",
            device=opener.device,
            name=opener.command,
            detail=f"open by {opener.describe()}",
            pid=opener.pid,
        )
        for opener in find_process_openers(proc_root=host.proc_root, devices=devices)
    )


def device_users(*, host: Host, devices: Sequence[ScsiDevice]) -> Tuple[Holder, ...]:
    """Everything that uses these SCSI devices: stacked devices (any holder, a multipath map included),
    partitions, mounts of any of them and processes holding them open."""
    names = [device.name for device in devices if device.name]
    holders: List[Holder] = []
    for name in names:
        for holder, held in _stacked(host.sysfs_root, name, own=""):
            dm_dir = os.path.join(_block_dir(host.sysfs_root, holder), "dm")
            kind = _holder_kind(_read(os.path.join(dm_dir, "uuid"))) if os.path.isdir(dm_dir) else "block"
            holders.append(
                Holder(kind=kind, device=holder, name=_read(os.path.join(dm_dir, "name")), detail=f"on {held}")
            )
    related = list(
        dict.fromkeys(names + [part for d in devices for part in d.partitions] + [h.device for h in holders])
    )
    mounts = find_mounts(sysfs_root=host.sysfs_root, names=related, mountinfo=host.mountinfo())
    return tuple(holders) + mounts + find_openers(host=host, names=related)


def _udev_only(host: Host, users: Sequence[Holder]) -> bool:
    return bool(users) and all(
        user.kind == "open" and user.pid is not None and udev_spawned(proc_root=host.proc_root, pid=user.pid)
        for user in users
    )


def settled_users(*, host: Host, devices: Sequence[ScsiDevice], timeout: float) -> Tuple[Holder, ...]:
    """:func:`device_users`, looked at again while the only users are udev workers or programs they run (blkid,
    scsi_id for the change event of a writer's last close), for at most ``timeout`` seconds (reads only)."""
    users = device_users(host=host, devices=devices)
    start = host.clock()
    while _udev_only(host, users) and host.clock() - start < timeout:
        host.pause(0.25)  # a udev event ends the pause early
        users = device_users(host=host, devices=devices)
    return users


# ---------------------------------------------------------------------------------------------------------
# removing a path


def _live(host: Host, path: PathIdentity) -> Optional[ScsiDevice]:
    """The device at the path's H:C:T:L if it is still the same one (same name and WWID), else None."""
    device = host.snapshot(device_detail=False).device_at(hctl=path.hctl)
    if device is None or device.name != path.device or (path.wwid is not None and device.wwid != path.wwid):
        return None
    return device


def _multipathd_listed(host: Host, paths: Sequence[PathIdentity]) -> Optional[List[PathIdentity]]:
    """The paths multipathd still lists (same name and H:C:T:L), from one ``show paths``; None if multipathd
    does not answer."""
    reply = host.runner.run(show_paths(), ok_rcs=MULTIPATHD_OK_RCS, timeout=10)
    kind = classify_reply(reply.rc, reply.stdout, reply.stderr)
    if kind == REPLY_OK:  # multipathd answers "ok" when it has no path at all
        return []
    if kind != REPLY_DATA:  # not running, busy (timeout) or "fail": unknown
        return None
    records = parse_paths(reply.stdout)
    return [
        path
        for path in paths
        if any(record.dev == path.device and record.hctl in (None, str(path.hctl)) for record in records)
    ]


def _offline_blocked(host: Host, path: PathIdentity, record: Record) -> None:
    """Set a blocked path offline before its delete, where the kernel lets us.

    Linux 6.1 (the lab) answers EINVAL: from sysfs it only changes the state of a running or offline device.
    Its removal of a blocked device then goes straight to the "del" state and fails the queued I/O at once, so
    the delete that follows does not wait for the session; the step records that the kernel refused.
    """
    state_file = os.path.join(
        os.path.dirname(scsi_device_delete_path(hctl=path.hctl, sysfs_root=host.sysfs_root)), "state"
    )
    step: Dict[str, Any] = {"action": OFFLINE_PATH, "device": path.device, "hctl": str(path.hctl)}
    try:
        host.write(state_file, "offline")
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise RemoveFailed(
                f"could not set {path.device} ({path.hctl}) offline: {exc.strerror or exc}", path=path.to_dict()
            ) from None
        step["result"] = "refused by the kernel (EINVAL: only running or offline devices change state from sysfs)"
    else:
        step["result"] = "offline"
    record.add(step)


def _unblocked(
    host: Host, path: PathIdentity, device: ScsiDevice, timeout: float, record: Record
) -> Optional[ScsiDevice]:
    """Wait at most ``timeout`` for a blocked device to leave the blocked state: its session recovers (running)
    or gives up (``transport-offline`` after replacement_timeout), or the device goes. Its delete meanwhile could
    hang until then. A portal that flaps during a detach blocks a path after the map is already flushed: waiting
    here finishes the detach instead of leaving the LUN half removed. :class:`RemoveFailed` at the deadline."""
    start = host.clock()
    last: List[Optional[ScsiDevice]] = [device]

    def settled() -> bool:
        last[:] = [_live(host, path)]
        return last[0] is None or last[0].state not in BLOCKED_STATES

    try:
        host.wait(
            settled, timeout=timeout, interval=0.25, describe=f"{path.device} ({path.hctl}) to leave {device.state}"
        )
    except WaitTimeout:
        state = last[0].state if last[0] is not None else device.state
        raise RemoveFailed(
            f"path {path.device} ({path.hctl}) is still {state} after {timeout:g}s (its session is in recovery): "
            "not deleting it, the delete could hang until the session recovers; retry later or use force",
            path=path.to_dict(),
        ) from None
    now = last[0]
    record.warnings.append(
        f"path {path.device} ({path.hctl}) was {device.state} (its session in recovery): waited "
        f"{host.clock() - start:.1f}s until it was {now.state if now is not None else 'gone'} before deleting it"
    )
    return now


def remove_path(
    *, host: Host, path: PathIdentity, force: bool, timeout: float, record: Record, forget: bool = True
) -> None:
    """Delete one SCSI device and make multipathd forget it; the caller has checked users (or forces).

    The device is re-identified first: if its H:C:T:L now holds another device (or nothing), nothing is
    deleted. A blocked device (its session in recovery: a delete could hang until the session recovers) is
    waited for up to ``timeout`` without ``force``, set offline with it. :class:`RemoveFailed` when a blocked
    device stays blocked, when the delete fails, or when the device does not leave sysfs in ``timeout``.
    """
    device = _live(host, path)
    if device is not None and device.state in BLOCKED_STATES and not force:
        device = _unblocked(host, path, device, timeout, record)
    if device is not None:
        if device.state in BLOCKED_STATES:
            _offline_blocked(host, path, record)
        delete_file = scsi_device_delete_path(hctl=path.hctl, sysfs_root=host.sysfs_root)
        try:
            host.write(delete_file, "1")
        except OSError as exc:
            if _live(host, path) is not None:  # ENOENT when it vanished on its own is fine
                raise RemoveFailed(
                    f"could not delete {path.device} ({path.hctl}): {exc.strerror or exc}", path=path.to_dict()
                ) from None
        record.add({"action": DELETE_PATH, "device": path.device, "hctl": str(path.hctl), "write": delete_file})
        try:
            host.wait(
                lambda: _live(host, path) is None,
                timeout=timeout,
                describe=f"{path.device} ({path.hctl}) to leave sysfs",
            )
        except WaitTimeout as exc:
            raise RemoveFailed(exc.msg, path=path.to_dict(), last_observed=exc.last_observed) from None
        record.paths_removed.append({"hctl": str(path.hctl), "device": path.device, "wwid": path.wwid})
    if forget:
        forget_paths(host=host, paths=[path], timeout=timeout, record=record)


def forget_paths(*, host: Host, paths: Sequence[PathIdentity], timeout: float, record: Record) -> None:
    """Make multipathd forget deleted paths: one wait (one ``show paths`` per poll, whatever the number of
    paths) until it lists none of them; at the deadline ``del path`` for each one it still lists."""
    if not paths or not host.runner.has_tool("multipathd"):
        return
    last: List[Optional[List[PathIdentity]]] = [None]

    def dropped() -> bool:
        last[0] = _multipathd_listed(host, paths)
        return not last[0]  # None: multipathd does not answer, nothing to wait for (as before)

    try:
        host.wait(
            dropped,
            timeout=min(10.0, timeout),
            interval=0.2,
            describe="multipathd to drop " + ", ".join(path.device for path in paths),
            udev_events=False,  # multipathd's state: no udev event ends this wait, so pyudev is not imported for it
        )
    except WaitTimeout:
        listed = last[0] or []  # what the last poll saw (the wait ends at once when multipathd does not answer)
        for path in paths:
            if path not in listed:
                record.add({"action": FORGET_PATH, "device": path.device, "how": "multipathd dropped it by itself"})
                continue
            reply = host.runner.run(del_path(device=path.device), ok_rcs=MULTIPATHD_OK_RCS, timeout=10)
            record.add({"action": FORGET_PATH, "device": path.device, "cmd": reply.cmd, "reply": reply.stdout.strip()})
        for path in _multipathd_listed(host, listed) or []:  # None: no answer, nothing to say (as before)
            record.warnings.append(f"multipathd still lists {path.device} after 'del path'")
    else:
        for path in paths:
            record.add({"action": FORGET_PATH, "device": path.device, "how": "multipathd dropped it by itself"})
