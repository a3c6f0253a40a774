# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_remove: what uses a device (fake sysfs, fake /proc, mountinfo text) and the one device removal, against a
fake kernel (a sysfs writer that removes what the real one would) and a fake multipathd."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, Callable, Collection, Dict, List, Mapping, Optional, Sequence, Tuple

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils._errors import LunsafeError
from ansible_collections.lunsafe.san.plugins.module_utils._hctl import Hctl
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._multipath import FIELD_SEP, show_paths
from ansible_collections.lunsafe.san.plugins.module_utils._remove import (
    Holder,
    PathIdentity,
    Record,
    RemoveFailed,
    device_users,
    find_holders,
    find_mounts,
    find_openers,
    forget_paths,
    parse_mountinfo,
    path_identity,
    related_devices,
    remove_path,
    settled_users,
)
from ansible_collections.lunsafe.san.plugins.module_utils._runner import CommandResult
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import read_snapshot
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner, Step
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.sysfs_tree import build_sysfs, remove_scsi_device

IQN = "iqn.2003-01.org.lunsafe.test:array"
WWID_RAW = "naa.6001405aaaaaaaaaaaaaaaaaaaaaaaa1"
WWID = "36001405aaaaaaaaaaaaaaaaaaaaaaaa1"
SESSIONS = [
    {"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10"},
    {"sid": 2, "host": 3, "targetname": IQN, "address": "192.0.2.11"},
]
SDB = PathIdentity(hctl=Hctl(2, 0, 0, 1), device="sdb", wwid=WWID, state="running")


def make_root(tmp_path: Path, *, state: str = "running", partitions: Sequence[str] = (), maps: Any = ()) -> Path:
    devices = [
        {"hctl": "2:0:0:1", "sid": 1, "name": "sdb", "wwid": WWID_RAW, "state": state, "partitions": partitions},
        {"hctl": "3:0:0:1", "sid": 2, "name": "sdc", "wwid": WWID_RAW},
    ]
    root = build_sysfs(tmp_path, sessions=SESSIONS, devices=devices, maps=maps)
    for number, name in enumerate(("sdb", "sdc", *partitions)):  # each block device its own major:minor
        (root / "class" / "block" / name / "dev").write_text(f"8:{16 * (number + 1)}\n")
    return root


def make_proc(tmp_path: Path, processes: Mapping[int, Tuple[str, Sequence[str]]]) -> Path:
    """A fake /proc: ``{pid: (comm, [link targets of its fds])}``."""
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "self").mkdir()  # not a pid: skipped
    for pid, (comm, targets) in processes.items():
        (proc / str(pid) / "fd").mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(comm + "\n")
        for fd, target in enumerate(targets):
            os.symlink(target, proc / str(pid) / "fd" / str(fd))
    return proc


class Clock:
    """Time passes only by sleeping: waits end at their deadline at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Multipathd(ScriptedRunner):
    """Answers ``show paths`` with the paths it lists (rows with name and H:C:T:L) and forgets on ``del path``
    unless ``sticky``; ``answer`` replaces the ``show paths`` reply (e.g. a daemon that is not running)."""

    def __init__(
        self,
        lists: Collection[Tuple[str, str]] = (),
        *,
        sticky: bool = False,
        answer: Optional[Tuple[int, str, str]] = None,
        missing_tools: Collection[str] = (),
    ) -> None:
        super().__init__(missing_tools=missing_tools)
        self.lists = list(lists)
        self.sticky = sticky
        self.answer = answer

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        self._steps = [self._reply(list(argv))]
        return super().run(argv, **kwargs)

    def _reply(self, argv: List[str]) -> Step:
        if argv == show_paths():
            if self.answer is not None:
                return Step(*self.answer)
            rows = [FIELD_SEP.join([dev, WWID, hctl, "8:16", "active", "ready", "running", "mpatha", "tur"])
                    for dev, hctl in self.lists]  # fmt: skip
            return Step(0, "\n".join(rows) + "\n" if rows else "ok\n", "")
        if argv[:3] == ["multipathd", "del", "path"]:
            if not self.sticky:
                self.lists = [entry for entry in self.lists if entry[0] != argv[3]]
            return Step(0, "ok\n", "")
        return Step(1, "", f"unexpected {argv}")


class Kernel:
    """The sysfs writer: a delete removes the device, unless ``ignore``; ``errors`` maps a file name (delete,
    state) to the errno its write fails with."""

    def __init__(self, root: Path, *, ignore: bool = False, errors: Optional[Dict[str, int]] = None) -> None:
        self.root = root
        self.ignore = ignore
        self.errors = errors or {}
        self.writes: List[str] = []

    def write(self, path: str, text: str) -> None:
        self.writes.append(f"{path[len(str(self.root)) :]}={text}")
        name = os.path.basename(path)
        if name in self.errors:
            code = self.errors[name]
            raise OSError(code, os.strerror(code))
        if name == "delete" and not self.ignore:
            remove_scsi_device(self.root, hctl=path.split("/")[-3])


def host(root: Path, runner: ScriptedRunner, writer: Callable[[str, str], None], **overrides: Any) -> Host:
    clock = Clock()
    values: Dict[str, Any] = {"proc_root": str(root.parent / "proc"), "clock": clock, "sleep": clock.sleep}
    values.update(overrides)
    return Host(runner=runner, sysfs_root=str(root), writer=writer, **values)


# ---------------------------------------------------------------------------------------------------------
# what uses a device


def test_parse_mountinfo_matches_devt_and_unescapes_mount_points() -> None:
    text = (
        "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "40 22 254:3 / /mnt/my\\040data rw shared:20 - xfs /dev/mapper/vg-lv rw,attr2\n"
        "41 22 0:5 / /dev rw shared:2 master:3 - devtmpfs udev rw\n"
        "short line\n"
        "42 22 0:6 / /x rw a b c d -\n"  # a separator with nothing after it
    )
    assert parse_mountinfo(text) == [
        ("254:0", "/", "ext4", "/dev/vda"),
        ("254:3", "/mnt/my data", "xfs", "/dev/mapper/vg-lv"),
        ("0:5", "/dev", "devtmpfs", "udev"),
    ]


@pytest.mark.parametrize(
    ("holder", "text"),
    [
        (Holder("mount", "dm-0", "/srv", "ext4 from /dev/mapper/a"), "dm-0 mounted on /srv (ext4 from /dev/mapper/a)"),
        (Holder("mount", "dm-0", "/srv"), "dm-0 mounted on /srv"),
        (Holder("open", "sdb", "fio", "open by pid 7 (fio)"), "sdb open by pid 7 (fio)"),
        (Holder("lvm", "dm-2", "vg-lv", "on dm-0"), "lvm dm-2 (vg-lv) on dm-0"),
        (Holder("block", "sdb1"), "block sdb1"),
    ],
)
def test_holder_describes_itself(holder: Holder, text: str) -> None:
    assert holder.describe() == text
    assert holder.to_dict() == {
        "kind": holder.kind,
        "device": holder.device,
        "name": holder.name,
        "detail": holder.detail,
    }


def test_holders_of_a_map_and_its_paths_by_kind(tmp_path: Path) -> None:
    maps = [
        {"dm": "dm-0", "name": "mpatha", "uuid": "mpath-" + WWID, "slaves": ["sdb", "sdc"]},
        {"dm": "dm-1", "name": "vg-lv", "uuid": "LVM-abc", "slaves": ["dm-0"]},
        {"dm": "dm-2", "name": "secret", "uuid": "CRYPT-LUKS2-abc", "slaves": ["dm-1"]},
        {"dm": "dm-3", "name": "mpatha1", "uuid": "part1-mpath-" + WWID, "slaves": ["dm-0"]},
        {"dm": "dm-4", "name": "plain", "uuid": None, "slaves": ["sdb1"]},
        {"dm": "dm-5", "name": "linear", "uuid": "other-uuid", "slaves": ["sdc"]},
    ]
    root = make_root(tmp_path, partitions=["sdb1"], maps=maps)
    holders = find_holders(sysfs_root=str(root), dm="dm-0", paths=["sdb", "sdc"])
    assert [(h.kind, h.device, h.name, h.detail) for h in holders] == [
        ("lvm", "dm-1", "vg-lv", "on dm-0"),
        ("dm-crypt", "dm-2", "secret", "on dm-1"),
        ("partition", "dm-3", "mpatha1", "on dm-0"),
        ("dm", "dm-4", "plain", "on sdb1"),  # on a partition of a path, past the map
        ("dm", "dm-5", "linear", "on sdc"),
    ]
    assert related_devices(str(root), "dm-0", ["sdb", "sdc"], holders) == [
        "dm-0", "sdb", "sdc", "dm-1", "dm-2", "dm-3", "dm-4", "dm-5", "sdb1",
    ]  # fmt: skip


def test_mounts_are_matched_by_major_minor(tmp_path: Path) -> None:
    root = make_root(tmp_path, partitions=["sdb1"])
    (root / "class" / "block" / "sdb1" / "dev").write_text("8:17\n")
    mountinfo = (
        "40 22 8:17 / /srv/data rw shared:20 - ext4 /dev/sdb1 rw\n"
        "41 22 8:99 / /srv/other rw shared:21 - ext4 /dev/sdz rw\n"
    )
    assert find_mounts(sysfs_root=str(root), names=["sdb", "sdb1", "gone"], mountinfo=mountinfo) == (
        Holder("mount", "sdb1", "/srv/data", "ext4 from /dev/sdb1"),
    )


def test_openers_are_the_processes_with_an_fd_on_the_device(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    make_proc(tmp_path, {12: ("fio", ["/dev/sdb", "/dev/sdb", "/dev/null"]), 3: ("dd", ["/dev/sdc"]), 4: ("sh", [])})
    found = find_openers(host=host(root, ScriptedRunner(), Kernel(root).write), names=["sdb", "sdc"])
    assert [holder.describe() for holder in found] == ["sdc open by pid 3 (dd)", "sdb open by pid 12 (fio)"]
    assert find_openers(host=host(root, ScriptedRunner(), Kernel(root).write), names=[]) == ()


def test_device_users_lists_stacked_devices_mounts_and_openers(tmp_path: Path) -> None:
    maps = [{"dm": "dm-0", "name": "mpatha", "uuid": "mpath-" + WWID, "slaves": ["sdb", "sdc"]}]
    root = make_root(tmp_path, partitions=["sdb1"], maps=maps)
    (root / "class" / "block" / "sdb1" / "dev").write_text("8:17\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("40 22 8:17 / /boot rw shared:20 - ext4 /dev/sdb1 rw\n")
    make_proc(tmp_path, {99: ("multipathd", ["/dev/dm-0"]), 100: ("cat", ["/dev/sdb1"])})
    the_host = host(root, ScriptedRunner(), Kernel(root).write, mountinfo_path=str(mountinfo))
    devices = [device for device in read_snapshot(sysfs_root=str(root)).devices if device.name == "sdb"]
    assert [holder.describe() for holder in device_users(host=the_host, devices=devices)] == [
        "dm dm-0 (mpatha) on sdb",  # a multipath map is a user too
        "sdb1 mounted on /boot (ext4 from /dev/sdb1)",
        "dm-0 open by pid 99 (multipathd)",
        "sdb1 open by pid 100 (cat)",
    ]


def _stat(tmp_path: Path, pid: int, comm: str, ppid: int) -> None:
    (tmp_path / "proc" / str(pid) / "stat").write_text(f"{pid} ({comm}) S {ppid} 0 0\n")


def test_settled_users_waits_while_only_udev_holds_the_path(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("")
    make_proc(tmp_path, {300: ("systemd-udevd", []), 301: ("(udev-worker)", ["/dev/sdb"]), 7: ("fio", [])})
    for pid, comm, ppid in ((300, "systemd-udevd", 1), (301, "(udev-worker)", 300), (7, "fio", 1)):
        _stat(tmp_path, pid, comm, ppid)
    clock = Clock()
    fd = tmp_path / "proc" / "301" / "fd" / "0"
    closes_after = [0.75]  # the worker's blkid closes sdb at the third pause

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock() - start >= closes_after[0]:
            fd.unlink(missing_ok=True)

    kwargs: Dict[str, Any] = {"mountinfo_path": str(mountinfo), "clock": clock, "sleep": sleep}
    the_host = host(root, ScriptedRunner(), Kernel(root).write, **kwargs)
    devices = [device for device in read_snapshot(sysfs_root=str(root)).devices if device.name == "sdb"]
    start = clock()
    assert settled_users(host=the_host, devices=devices, timeout=10) == ()
    assert clock() - start == 0.75
    # a worker that keeps it: reported after the wait, as the open it is
    os.symlink("/dev/sdb", fd)
    closes_after[0] = 100.0
    start = clock()
    users = settled_users(host=the_host, devices=devices, timeout=1)
    assert [user.describe() for user in users] == ["sdb open by pid 301 ((udev-worker))"]
    assert users[0].pid == 301 and clock() - start == 1.0
    # another process: no wait at all
    fd.unlink()
    os.symlink("/dev/sdb", tmp_path / "proc" / "7" / "fd" / "0")
    start = clock()
    assert [user.describe() for user in settled_users(host=the_host, devices=devices, timeout=10)] == [
        "sdb open by pid 7 (fio)"
    ]
    assert clock() == start


def test_without_a_mount_table_nothing_is_declared_unused(tmp_path: Path) -> None:
    """An unreadable mount table must not read as "nothing mounted": the removal's check fails instead."""
    root = make_root(tmp_path)
    the_host = host(root, ScriptedRunner(), Kernel(root).write, mountinfo_path=str(tmp_path / "missing"))
    with pytest.raises(LunsafeError, match="cannot read the mount table"):
        device_users(host=the_host, devices=read_snapshot(sysfs_root=str(root)).devices)


# ---------------------------------------------------------------------------------------------------------
# removing a path


def test_path_identity_needs_a_block_device(tmp_path: Path) -> None:
    root = build_sysfs(tmp_path, sessions=SESSIONS, devices=[{"hctl": "2:0:0:1", "sid": 1, "name": None}])
    (device,) = read_snapshot(sysfs_root=str(root)).devices
    with pytest.raises(RemoveFailed, match="device 2:0:0:1 has no block device"):
        path_identity(device)
    other = tmp_path / "other"
    other.mkdir()
    sdb = read_snapshot(sysfs_root=str(make_root(other))).device(name="sdb")
    assert sdb is not None and path_identity(sdb) == SDB


def test_remove_deletes_waits_and_sees_multipathd_drop_it(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    kernel = Kernel(root)
    record = Record(clock=lambda: 0.0, start=0.0)
    remove_path(host=host(root, Multipathd(), kernel.write), path=SDB, force=False, timeout=5, record=record)
    assert kernel.writes == ["/class/scsi_device/2:0:0:1/device/delete=1"]
    assert record.done == [
        {"action": "delete_path", "device": "sdb", "hctl": "2:0:0:1", "at": 0.0,
         "write": str(root / "class/scsi_device/2:0:0:1/device/delete")},
        {"action": "forget_path", "device": "sdb", "how": "multipathd dropped it by itself", "at": 0.0},
    ]  # fmt: skip
    assert record.paths_removed == [{"hctl": "2:0:0:1", "device": "sdb", "wwid": WWID}]
    assert record.warnings == []
    assert read_snapshot(sysfs_root=str(root)).device_at(hctl="2:0:0:1") is None


@pytest.mark.parametrize(
    "path",
    [
        PathIdentity(hctl=Hctl(2, 0, 0, 1), device="sdz", wwid=WWID, state="running"),  # name reused
        PathIdentity(hctl=Hctl(2, 0, 0, 1), device="sdb", wwid="36001405ffff", state="running"),  # other LU
        PathIdentity(hctl=Hctl(2, 0, 0, 9), device="sdb", wwid=WWID, state="running"),  # nothing there
    ],
)
def test_a_device_that_is_no_longer_the_same_is_never_deleted(tmp_path: Path, path: PathIdentity) -> None:
    root = make_root(tmp_path)
    kernel = Kernel(root)
    record = Record()
    runner = Multipathd(missing_tools={"multipathd"})
    remove_path(host=host(root, runner, kernel.write), path=path, force=True, timeout=5, record=record)
    assert (kernel.writes, record.done, record.paths_removed, runner.calls) == ([], [], [], [])


def test_a_path_multipathd_keeps_is_forgotten_with_del_path(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    runner = Multipathd([("sdb", "2:0:0:1"), ("sdc", "3:0:0:1")])
    record = Record(clock=lambda: 0.0, start=0.0)
    remove_path(host=host(root, runner, Kernel(root).write), path=SDB, force=False, timeout=5, record=record)
    assert record.done[-1] == {
        "action": "forget_path", "device": "sdb", "cmd": "multipathd del path sdb", "reply": "ok", "at": 0.0,
    }  # fmt: skip
    assert runner.lists == [("sdc", "3:0:0:1")]
    assert record.warnings == []


def test_a_path_multipathd_still_lists_after_del_path_is_a_warning(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    runner = Multipathd([("sdb", "2:0:0:1")], sticky=True)
    record = Record()
    remove_path(host=host(root, runner, Kernel(root).write), path=SDB, force=False, timeout=5, record=record)
    assert record.warnings == ["multipathd still lists sdb after 'del path'"]
    assert record.paths_removed == [{"hctl": "2:0:0:1", "device": "sdb", "wwid": WWID}]


def test_a_multipathd_that_does_not_answer_is_not_waited_on(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    runner = Multipathd(answer=(1, "", ""))  # not running
    record = Record()
    remove_path(host=host(root, runner, Kernel(root).write), path=SDB, force=False, timeout=5, record=record)
    assert [entry["action"] for entry in record.done] == ["delete_path", "forget_path"]
    assert record.done[-1]["how"] == "multipathd dropped it by itself"
    assert runner.argvs == [show_paths()]


def test_a_path_that_stays_blocked_is_refused_without_force_after_the_wait(tmp_path: Path) -> None:
    root = make_root(tmp_path, state="blocked")
    kernel = Kernel(root)
    the_host = host(root, Multipathd(), kernel.write)
    with pytest.raises(
        RemoveFailed, match=r"path sdb \(2:0:0:1\) is still blocked after 5s .*retry later or use force"
    ) as info:
        remove_path(host=the_host, path=SDB, force=False, timeout=5, record=Record())
    assert info.value.details["path"] == SDB.to_dict()
    assert kernel.writes == []
    assert the_host.clock() >= 5


@pytest.mark.parametrize("after", ["running", "transport-offline"])
def test_a_blocked_path_is_deleted_once_its_session_recovers_or_gives_up(tmp_path: Path, after: str) -> None:
    """A portal flap during a detach blocks a path after its map was flushed: the delete waits for the session
    (running again, or transport-offline once replacement_timeout ran out) instead of leaving half a LUN."""
    root = make_root(tmp_path, state="blocked")
    state_file = next(root.rglob("2:0:0:1/state"))
    clock = Clock()

    def sleep(seconds: float) -> None:  # the session recovers 3 s into the wait
        clock.sleep(seconds)
        if clock() >= 3:
            state_file.write_text(after + "\n")

    kernel = Kernel(root)
    record = Record()
    remove_path(
        host=host(root, Multipathd(), kernel.write, clock=clock, sleep=sleep),
        path=SDB,
        force=False,
        timeout=30,
        record=record,
    )
    assert kernel.writes == ["/class/scsi_device/2:0:0:1/device/delete=1"]  # no offline: it was not blocked then
    assert record.done[0]["action"] == "delete_path"
    assert record.paths_removed == [{"hctl": "2:0:0:1", "device": "sdb", "wwid": WWID}]
    assert len(record.warnings) == 1
    assert record.warnings[0].startswith("path sdb (2:0:0:1) was blocked (its session in recovery): waited ")
    assert record.warnings[0].endswith(f"until it was {after} before deleting it")
    assert 3 <= clock() < 30


@pytest.mark.parametrize(
    ("errors", "result"),
    [
        ({}, "offline"),
        (
            {"state": errno.EINVAL},
            "refused by the kernel (EINVAL: only running or offline devices change state from sysfs)",
        ),
    ],
)
def test_a_forced_blocked_path_is_set_offline_then_deleted(tmp_path: Path, errors: Dict[str, int], result: str) -> None:
    """Linux 6.1 (the lab) answers EINVAL to "offline" on a blocked device; the delete must still follow."""
    root = make_root(tmp_path, state="created-blocked")
    kernel = Kernel(root, errors=errors)
    record = Record(clock=lambda: 0.0, start=0.0)
    remove_path(host=host(root, Multipathd(), kernel.write), path=SDB, force=True, timeout=5, record=record)
    assert kernel.writes == [
        "/class/scsi_device/2:0:0:1/device/state=offline",
        "/class/scsi_device/2:0:0:1/device/delete=1",
    ]
    assert record.done[0] == {"action": "offline_path", "device": "sdb", "hctl": "2:0:0:1", "result": result, "at": 0.0}
    assert [entry["action"] for entry in record.done[1:]] == ["delete_path", "forget_path"]


@pytest.mark.parametrize(
    ("state", "errors", "message"),
    [
        ("blocked", {"state": errno.EACCES}, r"could not set sdb \(2:0:0:1\) offline: Permission denied"),
        ("running", {"delete": errno.EACCES}, r"could not delete sdb \(2:0:0:1\): Permission denied"),
    ],
)
def test_a_write_the_kernel_refuses_fails_the_removal(
    tmp_path: Path, state: str, errors: Dict[str, int], message: str
) -> None:
    root = make_root(tmp_path, state=state)
    record = Record()
    kernel = Kernel(root, errors=errors)
    with pytest.raises(RemoveFailed, match=message) as info:
        remove_path(host=host(root, Multipathd(), kernel.write), path=SDB, force=True, timeout=5, record=record)
    assert info.value.details["path"]["device"] == "sdb"
    assert record.paths_removed == []
    assert read_snapshot(sysfs_root=str(root)).device_at(hctl="2:0:0:1") is not None


def test_a_delete_that_fails_because_the_device_vanished_is_fine(tmp_path: Path) -> None:
    root = make_root(tmp_path)

    def vanishing(path: str, text: str) -> None:  # it went away on its own just before the write
        remove_scsi_device(root, hctl="2:0:0:1")
        raise OSError(errno.ENOENT, "No such file or directory")

    record = Record()
    remove_path(host=host(root, Multipathd(), vanishing), path=SDB, force=False, timeout=5, record=record)
    assert record.paths_removed == [{"hctl": "2:0:0:1", "device": "sdb", "wwid": WWID}]


def test_a_device_that_does_not_leave_sysfs_fails_at_the_deadline(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    clock = Clock()
    kernel = Kernel(root, ignore=True)
    record = Record(clock=clock, start=0.0)
    the_host = host(root, Multipathd(), kernel.write, clock=clock, sleep=clock.sleep)
    with pytest.raises(RemoveFailed, match=r"sdb \(2:0:0:1\) to leave sysfs") as info:
        remove_path(host=the_host, path=SDB, force=False, timeout=5, record=record)
    assert clock.now == pytest.approx(5)
    assert info.value.details["path"] == SDB.to_dict()
    assert [entry["action"] for entry in record.done] == ["delete_path"]
    assert record.paths_removed == []


SDC = PathIdentity(hctl=Hctl(3, 0, 0, 1), device="sdc", wwid=WWID, state="running")


def test_forget_paths_asks_multipathd_once_for_all_paths_and_del_path_only_for_those_it_keeps(
    tmp_path: Path,
) -> None:
    root = make_root(tmp_path)
    clock = Clock()
    # multipathd dropped sdb by itself but keeps sdc (and an unrelated sdd)
    runner = Multipathd([("sdc", "3:0:0:1"), ("sdd", "4:0:0:1")])
    record = Record(clock=lambda: 0.0, start=0.0)
    forget_paths(host=host(root, runner, Kernel(root).write, clock=clock, sleep=clock.sleep), paths=[SDB, SDC],
                 timeout=5, record=record)  # fmt: skip
    shows = [argv for argv in runner.argvs if argv == show_paths()]
    assert len(shows) == len(runner.argvs) - 1  # every poll asked about both paths at once, and the last check
    assert runner.argvs[-2:] == [["multipathd", "del", "path", "sdc"], show_paths()]
    assert [(entry["device"], entry.get("how", entry.get("cmd"))) for entry in record.done] == [
        ("sdb", "multipathd dropped it by itself"),
        ("sdc", "multipathd del path sdc"),
    ]
    assert runner.lists == [("sdd", "4:0:0:1")] and record.warnings == []
    # all dropped at the first poll: one show paths for both
    runner = Multipathd([("sdd", "4:0:0:1")])
    record = Record()
    forget_paths(host=host(root, runner, Kernel(root).write), paths=[SDB, SDC], timeout=5, record=record)
    assert runner.argvs == [show_paths()] and [entry["device"] for entry in record.done] == ["sdb", "sdc"]
    # nothing deleted: nothing asked
    forget_paths(host=host(root, runner, Kernel(root).write), paths=[], timeout=5, record=record)
    assert runner.argvs == [show_paths()]


def test_forget_paths_warns_about_each_path_multipathd_keeps_after_del_path(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    clock = Clock()
    runner = Multipathd([("sdb", "2:0:0:1"), ("sdc", "3:0:0:1")], sticky=True)
    record = Record()
    forget_paths(host=host(root, runner, Kernel(root).write, clock=clock, sleep=clock.sleep), paths=[SDB, SDC],
                 timeout=5, record=record)  # fmt: skip
    assert record.warnings == [
        "multipathd still lists sdb after 'del path'",
        "multipathd still lists sdc after 'del path'",
    ]
