# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""Which processes hold a block device open, from ``/proc`` (read-only, no subprocess).

A device-mapper open count (``dmsetup info``) says *that* a map is open, not *who* holds it. The kernel
shows every open file of a process as a link in ``/proc/<pid>/fd``: a process that opened
``/dev/mapper/mpatha`` has a link to the node the name resolves to (``/dev/dm-0``). :func:`find_openers`
walks those links once and matches each one to the wanted devices

* by the link's text (``/dev/<kernel name>``), and
* by the device number of the node it points to (``stat`` follows the link to the opened inode, so a node
  made elsewhere - ``dmsetup mknodes``, a container's own ``/dev`` - is matched by ``major:minor``).

Only the process id and its command name (``/proc/<pid>/comm``) are reported, never its arguments, which may
hold secrets (the same rule as the lock holder named by ``_lock``). A process that exits during the walk, or
whose fds cannot be read (another user, hidepid), is skipped: the result names the openers that could be
seen. Openers inside the kernel (a dm device stacked on the map, a swap area, an md array) have no fd: they
are found as holders in sysfs, or not at all.

The ``/proc`` root comes from the host context (``Host.proc_root``), so tests build a fake tree in tmp_path.

Users: _remove (device_users, the refusals of a path removal), _flush (who holds a map open),
_faults (the openers of each map in the facts).
"""

from __future__ import annotations

import dataclasses
import os
import stat
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

__all__ = ["UDEV_DAEMONS", "Opener", "describe_openers", "find_openers", "udev_spawned"]

#: the task names of the udev daemon and of its workers (systemd 247 and later name them ``(udev-worker)``)
UDEV_DAEMONS = frozenset(("systemd-udevd", "udevd", "(udev-worker)"))


@dataclasses.dataclass(frozen=True)
class Opener:
    """One process holding one block device open."""

    pid: int
    command: str  # /proc/<pid>/comm (at most 15 characters, the kernel's task name)
    device: str  # the kernel name of the device it holds (dm-0, sdb)

    def describe(self) -> str:
        return f"pid {self.pid} ({self.command})"

    def to_dict(self) -> Dict[str, Any]:
        return {"pid": self.pid, "command": self.command, "device": self.device}


def _listdir(path: str) -> List[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _comm(proc_root: str, pid: str) -> str:
    try:
        with open(os.path.join(proc_root, pid, "comm"), encoding="utf-8", errors="replace") as handle:
            return handle.read().strip() or "?"
    except OSError:
        return "?"


def _parse_devt(text: Optional[str]) -> Optional[Tuple[int, int]]:
    if not text:
        return None
    major, sep, minor = text.partition(":")
    if not sep or not major.isdigit() or not minor.isdigit():
        return None
    return int(major), int(minor)


def find_openers(*, proc_root: str, devices: Mapping[str, Optional[str]]) -> Tuple[Opener, ...]:
    """Processes holding one of ``devices`` open, ordered by pid then device.

    ``devices`` maps kernel names (``dm-0``, ``sdb``) to their ``major:minor`` (None when unknown: then only
    the link text ``/dev/<name>`` matches). One pass over ``<proc_root>/<pid>/fd``; a process holding a device
    through several fds is listed once per device.
    """
    by_path = {f"/dev/{name}": name for name in devices}
    by_devt: Dict[Tuple[int, int], str] = {}
    for device, text in devices.items():
        devt = _parse_devt(text)
        if devt is not None:
            by_devt[devt] = device
    if not by_path:
        return ()
    found: Dict[Tuple[int, str], Opener] = {}
    for pid in (entry for entry in _listdir(proc_root) if entry.isdigit()):
        fd_dir = os.path.join(proc_root, pid, "fd")
        for fd in _listdir(fd_dir):
            fd_path = os.path.join(fd_dir, fd)
            try:
                link = os.readlink(fd_path)
            except OSError:
                continue
            if not link.startswith("/dev/"):  # sockets, pipes, anon inodes, files: not a device node
                continue
            name: Optional[str] = by_path.get(link)
            if name is None and by_devt:
                try:
                    info = os.stat(fd_path)
                except OSError:
                    continue
                if stat.S_ISBLK(info.st_mode):
                    name = by_devt.get((os.major(info.st_rdev), os.minor(info.st_rdev)))
            if name is not None and (int(pid), name) not in found:
                found[(int(pid), name)] = Opener(pid=int(pid), command=_comm(proc_root, pid), device=name)
    return tuple(found[key] for key in sorted(found))


def _parent(proc_root: str, pid: int) -> Optional[int]:
    """The parent pid from ``/proc/<pid>/stat`` (the field after the state, past the command in parentheses)."""
    try:
        with open(os.path.join(proc_root, str(pid), "stat"), encoding="utf-8", errors="replace") as handle:
            fields = handle.read().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


def udev_spawned(*, proc_root: str, pid: int, depth: int = 8) -> bool:
    """Whether ``pid`` is a udev worker or a program one runs (kpartx, blkid, scsi_id from a ``RUN`` or
    ``IMPORT{program}`` rule): it or one of its first ``depth`` ancestors is named in :data:`UDEV_DAEMONS`.

    Such an opener is transient: the change event that a writer's last close raises (udev's inotify watch)
    makes udev open the device for a moment. A process that exited (or whose ancestry cannot be read) is not
    one."""
    current: Optional[int] = pid
    for _level in range(depth):
        if current is None or current <= 1:
            return False
        if _comm(proc_root, str(current)) in UDEV_DAEMONS:
            return True
        current = _parent(proc_root, current)
    return False


def describe_openers(openers: Iterable[Opener]) -> str:
    """``pid 1234 (udev-worker), pid 99 (qemu-kvm)``, each process once."""
    seen: List[str] = []
    for opener in openers:
        text = opener.describe()
        if text not in seen:
            seen.append(text)
    return ", ".join(seen)
