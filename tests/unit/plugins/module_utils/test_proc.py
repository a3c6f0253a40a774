# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_proc: the processes holding block devices open, from a fake /proc in tmp_path (and from the real one for the
device-number match, with a device node this test opens itself)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence, Tuple

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils._proc import (
    Opener,
    describe_openers,
    find_openers,
    udev_spawned,
)


def make_proc(tmp_path: Path, processes: Mapping[int, Tuple[str, Sequence[str]]]) -> Path:
    """A fake /proc: ``{pid: (comm, [link targets of its fds])}``; comm ``""`` leaves the comm file out."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "self").mkdir()  # not a pid: skipped
    (proc / "meminfo").write_text("MemTotal: 1 kB\n")
    for pid, (comm, targets) in processes.items():
        (proc / str(pid) / "fd").mkdir(parents=True)
        if comm:
            (proc / str(pid) / "comm").write_text(comm + "\n")
        for fd, target in enumerate(targets):
            os.symlink(target, proc / str(pid) / "fd" / str(fd))
    return proc


def test_openers_by_link_text_ordered_by_pid_each_device_once(tmp_path: Path) -> None:
    proc = make_proc(
        tmp_path,
        {
            1234: ("udev-worker", ["/dev/dm-0", "/dev/dm-0", "socket:[42]", "/dev/null"]),
            77: ("qemu-kvm", ["/dev/sdb", "/dev/dm-0", "pipe:[1]"]),
            5: ("bash", ["/dev/pts/0", "/home/x"]),
            6: ("", ["/dev/sdc"]),  # comm unreadable (the process is exiting)
        },
    )
    found = find_openers(proc_root=str(proc), devices={"dm-0": "254:0", "sdb": None, "sdc": "8:32"})
    assert found == (
        Opener(6, "?", "sdc"),
        Opener(77, "qemu-kvm", "dm-0"),
        Opener(77, "qemu-kvm", "sdb"),
        Opener(1234, "udev-worker", "dm-0"),
    )
    assert found[-1].to_dict() == {"pid": 1234, "command": "udev-worker", "device": "dm-0"}
    assert describe_openers(found[1:]) == "pid 77 (qemu-kvm), pid 1234 (udev-worker)"


def test_no_devices_or_no_proc_means_no_openers(tmp_path: Path) -> None:
    proc = make_proc(tmp_path, {1: ("init", ["/dev/dm-0"])})
    assert find_openers(proc_root=str(proc), devices={}) == ()
    assert find_openers(proc_root=str(tmp_path / "missing"), devices={"dm-0": "254:0"}) == ()


def test_unreadable_fd_dir_and_vanished_links_are_skipped(tmp_path: Path) -> None:
    proc = make_proc(tmp_path, {10: ("a", []), 11: ("b", ["/dev/dm-3"])})
    os.rmdir(proc / "10" / "fd")  # the process exited between the listing and the walk
    (proc / "10" / "fd").write_text("")  # not a directory any more
    (proc / "11" / "fd" / "9").mkdir()  # not a link
    assert find_openers(proc_root=str(proc), devices={"dm-3": "bad"}) == (Opener(11, "b", "dm-3"),)


def test_a_node_elsewhere_matches_by_major_minor(tmp_path: Path) -> None:
    """A link to a node under another name (``dmsetup mknodes``, a container's /dev) is matched by the device
    number of the node it points to; a character device with the same number does not match."""
    loops = [entry for entry in sorted(os.listdir("/dev")) if entry.startswith("loop") and entry[4:].isdigit()]
    null = os.stat("/dev/null")
    if not loops:
        pytest.skip("no /dev/loopN block node on this machine")
    loop = os.stat("/dev/" + loops[0])
    devt = f"{os.major(loop.st_rdev)}:{os.minor(loop.st_rdev)}"
    proc = make_proc(tmp_path, {3: ("dd", ["/dev/" + loops[0]]), 4: ("cat", ["/dev/null"])})
    found = find_openers(
        proc_root=str(proc),
        devices={"dm-7": devt, "dm-8": f"{os.major(null.st_rdev)}:{os.minor(null.st_rdev)}"},
    )
    assert found == (Opener(3, "dd", "dm-7"),)


def make_tree(tmp_path: Path, processes: Mapping[int, Tuple[str, int]]) -> Path:
    """A fake /proc of ``{pid: (comm, ppid)}`` with a stat file each (a comm with spaces and parentheses too)."""
    proc = tmp_path / "proc"
    for pid, (comm, ppid) in processes.items():
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(comm + "\n")
        (proc / str(pid) / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 0 0\n")
    return proc


def test_udev_spawned_follows_the_parents_to_a_udev_worker(tmp_path: Path) -> None:
    proc = make_tree(
        tmp_path,
        {
            1: ("systemd", 0),
            300: ("systemd-udevd", 1),
            301: ("(udev-worker)", 300),
            302: ("sh", 301),
            303: ("kpartx", 302),  # RUN+= through a shell
            400: ("qemu-system-x86", 1),
            401: ("a (b) c", 400),  # a comm with spaces and parentheses: the ppid is after the last ")"
            500: ("orphan", 9999),  # its parent is gone
        },
    )
    root = str(proc)
    assert udev_spawned(proc_root=root, pid=303)
    assert udev_spawned(proc_root=root, pid=301)  # blkid runs inside the worker
    assert udev_spawned(proc_root=root, pid=300)
    assert not udev_spawned(proc_root=root, pid=400)
    assert not udev_spawned(proc_root=root, pid=401)
    assert not udev_spawned(proc_root=root, pid=500)
    assert not udev_spawned(proc_root=root, pid=1)
    assert not udev_spawned(proc_root=root, pid=303, depth=2)  # kpartx, sh: the worker is further up
    (proc / "302" / "stat").write_text("302 (sh) S\n")  # truncated: no parent to follow
    assert not udev_spawned(proc_root=root, pid=303)
