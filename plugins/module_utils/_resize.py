# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""Online resize of a LUN the array has grown: every path re-reads its size, then the multipath map follows.

It runs after a targeted scan's plan (:mod:`._scan`) with ``refresh`` on, as observe -> plan -> apply:

* :func:`plan_resize` (pure, before any write) groups the scan's existing devices by WWID: one LUN per
  WWID, with **every** path of it on the host (also paths through portals the request did not name: a map
  whose paths disagree cannot be resized) and the multipath map holding them. It refuses, before anything
  is written, a path that is not ``running`` (its rescan would not reach the array and multipathd would
  refuse the map), a device without a WWID, paths split over two maps, and a map without multipathd;
* :func:`apply_resize` writes ``1`` to the ``rescan`` file of the paths the scan did not rescan already,
  waits until every path of each LUN reports one size, then (only if the map is smaller) asks multipathd
  to ``resize map`` and waits until the map has the paths' size. It never shrinks a map: a LUN that
  shrank on the array is refused, because a map cut below its filesystem loses data;
* :func:`preview_resize` is check mode: no write, the sizes the host sees now.

Kernel and multipath-tools facts relied on: a write to ``device/rescan`` re-reads the capacity
synchronously (``scsi_rescan_device`` -> ``sd_rescan``); ``multipathd resize map`` reads each path's size
from sysfs, answers ``fail`` when they differ, and reloads the table at the new size otherwise. os-brick's
``extend_volume`` does the same two steps; the filesystem on top is the user's to grow (``resize2fs``,
``xfs_growfs``).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils._errors import DaemonUnavailable, LunsafeError, WaitTimeout
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._multipath import (
    MULTIPATHD_OK_RCS,
    REPLY_NOT_RUNNING,
    REPLY_OK,
    classify_reply,
    resize_map,
)
from ansible_collections.lunsafe.san.plugins.module_utils._scan import ACTION_REFRESH, ScanPlan, SysfsWrite, find_device
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import (
    DmMap,
    ScsiDevice,
    Snapshot,
    SysfsError,
    scsi_device_rescan_path,
)
from ansible_collections.lunsafe.san.plugins.module_utils._wait import Deadline

__all__ = [
    "LunResize",
    "ResizeError",
    "ResizePlan",
    "apply_resize",
    "map_size_bytes",
    "plan_resize",
    "preview_resize",
    "rescan_writes",
]

_SECTOR_BYTES = 512
_RESIZE_RETRY_PAUSE = 1.0


class ResizeError(LunsafeError):
    """A resize was refused (before any write) or could not be finished (the map keeps its size)."""


@dataclasses.dataclass(frozen=True)
class LunResize:
    """One LUN to resize: its WWID, every path of it on the host (with the sizes before) and its map."""

    wwid: str
    paths: Tuple[ScsiDevice, ...]
    dm_map: Optional[DmMap]
    map_size: Optional[int]  # bytes, before


@dataclasses.dataclass(frozen=True)
class ResizePlan:
    luns: Tuple[LunResize, ...]


def map_size_bytes(*, sysfs_root: str, dm: str) -> Optional[int]:
    """The size of block device ``dm`` (``dm-N``) in bytes from ``block/dm-N/size``; None if unreadable."""
    try:
        with open(os.path.join(sysfs_root, "block", dm, "size"), encoding="ascii") as handle:
            return int(handle.read().strip()) * _SECTOR_BYTES
    except (OSError, ValueError):
        return None


def _human(size: Optional[int]) -> str:
    if size is None:
        return "unknown size"
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def _path_label(device: ScsiDevice) -> str:
    return f"{device.name} ({device.hctl})"


def _sizes_text(paths: Sequence[ScsiDevice]) -> str:
    return ", ".join(f"{_path_label(device)} {_human(device.size_bytes)}" for device in paths)


def plan_resize(*, plan: ScanPlan, snapshot: Snapshot, has_multipathd: bool) -> ResizePlan:
    """Which LUNs to resize, from the scan plan's devices that exist (``refresh`` items); refuses before any write."""
    wwids: List[str] = []
    for item in plan.with_action(ACTION_REFRESH):
        device = find_device(item=item, snapshot=snapshot)
        if device is None:  # pragma: no cover - a refresh item is made from an existing device
            continue
        if device.wwid is None:
            raise ResizeError(
                f"refusing to resize {_path_label(device)}: the kernel reports no WWID for it, so its other paths "
                "(which must be rescanned too) cannot be found",
                hctl=str(device.hctl),
            )
        if device.wwid not in wwids:
            wwids.append(device.wwid)
    luns = []
    for wwid in wwids:
        paths = tuple(sorted((d for d in snapshot.devices_with_wwid(wwid=wwid) if d.name), key=lambda d: d.hctl))
        down = [device for device in paths if device.state != "running"]
        if down:
            states = ", ".join(f"{_path_label(device)} is {device.state or 'in an unknown state'}" for device in down)
            raise ResizeError(
                f"refusing to resize LUN {wwid}: {states}, not running. A path that is not running cannot re-read "
                "the size, and multipathd refuses a map whose paths disagree. Bring the path back (or remove it) "
                "and run again; nothing was written",
                wwid=wwid,
                paths={device.name: device.state for device in paths},
            )
        try:
            dm_map = snapshot.multipath_map_for(names=[device.name or "" for device in paths])
        except SysfsError as exc:
            raise ResizeError(f"refusing to resize LUN {wwid}: {exc}", wwid=wwid) from None
        if dm_map is not None and not has_multipathd:
            raise ResizeError(
                f"refusing to resize LUN {wwid}: its map {dm_map.name or dm_map.dm} ({dm_map.dm}) can only be "
                "resized by multipathd, which is not installed; nothing was written",
                wwid=wwid,
            )
        size = None if dm_map is None else map_size_bytes(sysfs_root=snapshot.sysfs_root, dm=dm_map.dm)
        if dm_map is not None and size is None:
            raise ResizeError(
                f"refusing to resize LUN {wwid}: the size of its map {dm_map.name or dm_map.dm} ({dm_map.dm}) "
                f"cannot be read from {snapshot.sysfs_root}/block/{dm_map.dm}/size; nothing was written",
                wwid=wwid,
            )
        luns.append(LunResize(wwid=wwid, paths=paths, dm_map=dm_map, map_size=size))
    return ResizePlan(luns=tuple(luns))


def _common_size(paths: Sequence[ScsiDevice]) -> Optional[int]:
    """The size every path reports; None when they disagree (or none is known)."""
    sizes = {device.size_bytes for device in paths}
    return sizes.pop() if len(sizes) == 1 else None


def _entry(lun: LunResize, after: Sequence[ScsiDevice], map_after: Optional[int], map_resized: bool) -> Dict[str, Any]:
    old = {device.hctl: device.size_bytes for device in lun.paths}
    old_size = lun.map_size if lun.dm_map is not None else _common_size(lun.paths)
    new_size = map_after if lun.dm_map is not None else _common_size(after)
    return {
        "wwid": lun.wwid,
        "map": None if lun.dm_map is None else lun.dm_map.name,
        "dm": None if lun.dm_map is None else lun.dm_map.dm,
        "old_size_bytes": old_size,
        "new_size_bytes": new_size,
        "map_resized": map_resized,
        "paths": [
            {
                "name": device.name,
                "hctl": str(device.hctl),
                "old_size_bytes": old.get(device.hctl),
                "new_size_bytes": device.size_bytes,
            }
            for device in after
        ],
    }


def preview_resize(*, rplan: ResizePlan) -> Tuple[List[Dict[str, Any]], bool]:
    """Check mode: the entries as the host is now (no rescan), and whether a map is already smaller than
    its paths (the only change check mode can predict: whether the array grew shows only after a rescan)."""
    entries = []
    changed = False
    for lun in rplan.luns:
        size = _common_size(lun.paths)
        grow = lun.dm_map is not None and size is not None and lun.map_size is not None and size > lun.map_size
        changed = changed or grow
        entries.append(_entry(lun, lun.paths, size if grow else lun.map_size, grow))
    return entries, changed


def rescan_writes(*, rplan: ResizePlan, sysfs_root: str, done: Sequence[SysfsWrite]) -> Tuple[SysfsWrite, ...]:
    """The rescan writes the resize adds: every path of each LUN the scan has not rescanned already."""
    written = {write.path for write in done}
    writes = []
    for lun in rplan.luns:
        for device in lun.paths:
            path = scsi_device_rescan_path(hctl=device.hctl, sysfs_root=sysfs_root)
            if path not in written:
                writes.append(
                    SysfsWrite(kind="rescan", path=path, text="1", host=device.hctl.host, address=str(device.hctl))
                )
                written.add(path)
    return tuple(writes)


def _current_paths(host: Host, lun: LunResize) -> Tuple[ScsiDevice, ...]:
    snapshot = host.snapshot()
    return tuple(sorted((d for d in snapshot.devices_with_wwid(wwid=lun.wwid) if d.name), key=lambda d: d.hctl))


def _wait_agreed(host: Host, lun: LunResize, timeout: float) -> Tuple[ScsiDevice, ...]:
    last: List[Tuple[ScsiDevice, ...]] = []

    def agreed() -> Tuple[ScsiDevice, ...]:
        """The paths once every one is there and they report one size; () (falsy) before."""
        paths = _current_paths(host, lun)
        last[:] = [paths]
        present = {device.hctl for device in paths}
        if any(device.hctl not in present for device in lun.paths):
            return ()
        return paths if _common_size(paths) is not None else ()

    try:
        return host.wait(agreed, timeout=timeout, describe=f"the paths of LUN {lun.wwid} to report one size")
    except WaitTimeout:
        paths = last[0] if last else ()
        gone = [str(device.hctl) for device in lun.paths if device.hctl not in {d.hctl for d in paths}]
        reason = f"paths {', '.join(gone)} went away" if gone else f"the paths disagree: {_sizes_text(paths)}"
        raise ResizeError(
            f"LUN {lun.wwid} was rescanned but after {timeout:g}s {reason}. The map was not resized (multipathd "
            "refuses paths of different sizes); check the array's view of each path and run again",
            wwid=lun.wwid,
            paths={device.name: device.size_bytes for device in paths},
        ) from None


def _resize_map(host: Host, lun: LunResize, dm_map: DmMap, size: int, deadline: Deadline) -> int:
    """``multipathd resize map`` until it answers ok (it says fail while a reload is in progress), then wait
    for the map's size; returns it."""
    name = dm_map.name or dm_map.dm
    replies: List[str] = []

    def resized() -> bool:
        reply = host.runner.run(
            resize_map(name=name), ok_rcs=MULTIPATHD_OK_RCS, timeout=max(1.0, min(30.0, deadline.remaining()))
        )
        kind = classify_reply(reply.rc, reply.stdout, reply.stderr)
        replies.append((reply.stdout or reply.stderr).strip() or f"rc {reply.rc}")
        if kind == REPLY_NOT_RUNNING:
            raise DaemonUnavailable(
                f"multipathd is not running: the paths of LUN {lun.wwid} have the new size but its map {name} "
                "could not be resized; start multipathd and run again",
                cmd=reply.cmd,
                rc=reply.rc,
            )
        return kind == REPLY_OK

    try:
        host.wait(
            resized,
            timeout=deadline.remaining(),
            describe=f"multipathd to resize map {name}",
            interval=_RESIZE_RETRY_PAUSE,
        )
    except WaitTimeout:
        raise ResizeError(
            f"multipathd did not resize map {name} of LUN {lun.wwid} to {_human(size)} within {deadline.seconds:g}s "
            f"(its answers: {', '.join(replies[-3:])}); the paths have the new size, the map keeps its old one",
            wwid=lun.wwid,
            map=name,
            replies=replies,
        ) from None
    last: List[Optional[int]] = []

    def grown() -> bool:
        current = map_size_bytes(sysfs_root=host.sysfs_root, dm=dm_map.dm)
        last[:] = [current]
        return current == size

    try:
        host.wait(grown, timeout=deadline.remaining(), describe=f"map {name} to reach {_human(size)}")
    except WaitTimeout:
        raise ResizeError(
            f"multipathd answered ok but map {name} ({dm_map.dm}) is {_human(last[0] if last else None)}, not "
            f"{_human(size)}, {deadline.seconds:g}s after the resize began",
            wwid=lun.wwid,
            map=name,
        ) from None
    return size


def apply_resize(
    *, rplan: ResizePlan, host: Host, timeout: float, done: Sequence[SysfsWrite]
) -> Tuple[List[Dict[str, Any]], Tuple[SysfsWrite, ...]]:
    """Rescan the paths the scan did not, wait for one size per LUN, grow the maps; the entries and the writes.

    An error raised after a write carries ``scanned``, every write of the run so far (``done`` and the
    resize's own), and ``resized``, the entries of the LUNs finished before it: a failed run still reports
    the rescans it did and the maps it grew."""
    deadline = Deadline(timeout, clock=host.clock)  # one deadline for every wait of the resize, not one each
    writes = rescan_writes(rplan=rplan, sysfs_root=host.sysfs_root, done=done)
    written = list(done)
    entries: List[Dict[str, Any]] = []
    try:
        for write in writes:
            try:
                host.write(write.path, write.text)
            except OSError as exc:
                raise ResizeError(
                    f"writing '1' to {write.path} failed: {exc.strerror or exc}; the map was not resized",
                    path=write.path,
                ) from None
            written.append(write)
        for lun in rplan.luns:
            entries.append(_resize_lun(host, lun, deadline))
    except LunsafeError as exc:
        exc.details.setdefault("scanned", [write.to_dict() for write in written])
        exc.details.setdefault("resized", entries)
        raise
    return entries, writes


def _resize_lun(host: Host, lun: LunResize, deadline: Deadline) -> Dict[str, Any]:
    """Wait until the LUN's paths agree, then grow its map when it is smaller; the LUN's entry."""
    paths = _wait_agreed(host, lun, deadline.remaining())
    size = _common_size(paths)
    map_after = lun.map_size
    map_resized = False
    if lun.dm_map is not None and size is not None and lun.map_size is not None and size != lun.map_size:
        if size < lun.map_size:
            raise ResizeError(
                f"refusing to shrink map {lun.dm_map.name or lun.dm_map.dm} ({lun.dm_map.dm}) of LUN {lun.wwid}: "
                f"its paths now report {_human(size)}, the map is {_human(lun.map_size)}. The LUN shrank on the "
                "array; a map cut below its filesystem loses data. Grow the LUN back, or take it out of use and "
                "detach it",
                wwid=lun.wwid,
                map=lun.dm_map.name,
                map_size_bytes=lun.map_size,
                paths={device.name: device.size_bytes for device in paths},
            )
        map_after = _resize_map(host, lun, lun.dm_map, size, deadline)
        map_resized = True
    return _entry(lun, paths, map_after, map_resized)
