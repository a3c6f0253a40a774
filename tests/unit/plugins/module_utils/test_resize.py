# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Online resize (module_utils/_resize.py) over a fake sysfs tree, a kernel and a multipathd as data.

:class:`ResizeWorld` is the host: the array's size of each LUN, a sysfs writer that plays the kernel (a write
to a device's ``rescan`` file reads the array's size into ``block/sdX/size``; one path can be told to stay
stale, to fail the write, or to vanish), a clock that moves only when a wait sleeps, and a scripted
multipathd that grows the map's ``size`` file when it answers ``ok`` to ``resize map``.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, Collection, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils._errors import DaemonUnavailable
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._resize import (
    ResizeError,
    apply_resize,
    map_size_bytes,
    plan_resize,
    preview_resize,
    rescan_writes,
)
from ansible_collections.lunsafe.san.plugins.module_utils._runner import CommandResult
from ansible_collections.lunsafe.san.plugins.module_utils._scan import (
    SysfsWrite,
    apply_plan,
    build_request,
    plan_scan,
    planned_writes,
)
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner, Step, StepLike
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.sysfs_tree import build_sysfs, remove_scsi_device

IQN = "iqn.2003-01.org.lunsafe.test:array"
WWID_RAW = "naa.6001405aaaaaaaaaaaaaaaaaaaaaaaa1"
WWID = "36001405aaaaaaaaaaaaaaaaaaaaaaaa1"
WWID2_RAW = "naa.6001405bbbbbbbbbbbbbbbbbbbbbbbb2"
WWID2 = "36001405bbbbbbbbbbbbbbbbbbbbbbbb2"

GIB = 1 << 30
OLD = GIB // 512  # sectors: 1 GiB
NEW = 2 * GIB // 512  # sectors: 2 GiB

SESSIONS = [
    {"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10"},
    {"sid": 2, "host": 3, "targetname": IQN, "address": "192.0.2.11"},
]
LUN1_1GIB = [
    {"hctl": "2:0:0:1", "sid": 1, "name": "sdb", "wwid": WWID_RAW, "size": OLD},
    {"hctl": "3:0:0:1", "sid": 2, "name": "sdc", "wwid": WWID_RAW, "size": OLD},
]
MPATHA = {"dm": "dm-0", "name": "mpatha", "uuid": f"mpath-{WWID}", "slaves": ["sdb", "sdc"], "size": OLD}

SESSION3 = {"sid": 3, "host": 4, "targetname": IQN, "address": "192.0.2.12"}
LUN1_PATH3 = {"hctl": "4:0:0:1", "sid": 3, "name": "sdf", "wwid": WWID_RAW, "size": OLD}
MPATHA3 = {**MPATHA, "slaves": ["sdb", "sdc", "sdf"]}

RESIZE_A = ("multipathd", "resize", "map", "mpatha")
OK = Step(argv=RESIZE_A, rc=0, stdout="ok\n")
FAIL = Step(argv=RESIZE_A, rc=1, stdout="fail\n")
NOT_RUNNING = Step(argv=RESIZE_A, rc=1, stderr="ux_socket_connect: Connection refused\n")

RESCAN_B = ("/class/scsi_device/2:0:0:1/device/rescan", "1")
RESCAN_C = ("/class/scsi_device/3:0:0:1/device/rescan", "1")


class Clock:
    """Time passes only by sleeping: a wait that never succeeds ends at its deadline at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class MultipathdRunner(ScriptedRunner):
    """The scripted runner; an ``ok`` to ``multipathd resize map NAME`` reloads that map at its paths' size
    (or, as told by ``reload``, leaves it as it was or makes its size unreadable)."""

    def __init__(self, world: ResizeWorld, script: Iterable[StepLike], missing_tools: Collection[str]) -> None:
        super().__init__(script, missing_tools=missing_tools)
        self.world = world
        self.reload = "grow"  # what an ok does to the map: "grow", "nothing", "unreadable" (size file gone)

    def run(
        self,
        argv: Sequence[str],
        *,
        ok_rcs: Collection[int] = (0,),
        timeout: Optional[float] = None,
        data: Optional[str] = None,
        sensitive_output: bool = False,
    ) -> CommandResult:
        result = super().run(argv, ok_rcs=ok_rcs, timeout=timeout, data=data, sensitive_output=sensitive_output)
        if tuple(argv[:3]) == RESIZE_A[:3] and result.stdout.strip() == "ok":
            self.world.reload_map(argv[3], self.reload)
        return result


class ResizeWorld:
    """One host over a fake sysfs, with the array's size of each LUN (sectors, by raw sysfs WWID)."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        devices: Sequence[Dict[str, Any]] = tuple(LUN1_1GIB),
        maps: Sequence[Dict[str, Any]] = (MPATHA,),
        sessions: Sequence[Dict[str, Any]] = tuple(SESSIONS),
        array: Optional[Dict[str, int]] = None,
        script: Iterable[StepLike] = (),
        missing_tools: Collection[str] = (),
    ) -> None:
        self.root = build_sysfs(tmp_path, sessions=sessions, devices=devices, maps=maps)
        self.wwids = {device["hctl"]: device.get("wwid") for device in devices}
        self.array: Dict[str, int] = {WWID_RAW: NEW} if array is None else array
        self.stale: Set[str] = set()  # hctls whose rescan leaves the size as it was
        self.failing: Set[str] = set()  # hctls whose rescan write fails (EIO)
        self.vanishing: Set[str] = set()  # hctls the kernel removes on rescan
        self.writes: List[Tuple[str, str]] = []
        self.clock = Clock()
        self.runner = MultipathdRunner(self, script, missing_tools)

    def host(self) -> Host:
        return Host(
            runner=self.runner,
            sysfs_root=str(self.root),
            proc_root=str(self.root.parent / "proc"),
            writer=self.write,
            clock=self.clock,
            sleep=self.clock.sleep,
            resolver=lambda _name: [],
        )

    # the kernel ------------------------------------------------------------------------------------------

    def write(self, path: str, text: str) -> None:
        self.writes.append((path[len(str(self.root)) :], text))
        parts = Path(path).relative_to(self.root).parts
        if parts[:2] != ("class", "scsi_device") or parts[-1] != "rescan":
            raise OSError(errno.EINVAL, "Invalid argument", path)
        hctl = parts[2]
        if hctl in self.failing:
            raise OSError(errno.EIO, "Input/output error", path)
        if hctl in self.vanishing:
            remove_scsi_device(self.root, hctl=hctl)
            return
        wwid = self.wwids[hctl]
        if hctl not in self.stale and wwid in self.array:
            self.disk_size_file(hctl).write_text(f"{self.array[wwid]}\n", encoding="ascii")

    def disk_size_file(self, hctl: str) -> Path:
        block = self.root / "class" / "scsi_device" / hctl / "device" / "block"
        (name,) = os.listdir(block)
        return block / name / "size"

    def path_sectors(self, hctl: str) -> int:
        return int(self.disk_size_file(hctl).read_text(encoding="ascii"))

    # device-mapper ---------------------------------------------------------------------------------------

    def map_size_file(self, dm: str) -> Path:
        return self.root / "block" / dm / "size"

    def map_sectors(self, dm: str = "dm-0") -> int:
        return int(self.map_size_file(dm).read_text(encoding="ascii"))

    def reload_map(self, name: str, how: str = "grow") -> None:
        """multipathd's table reload of map ``name`` (or ``dm-N``): the map takes its first path's size."""
        for dm in os.listdir(self.root / "block"):
            dm_dir = self.root / "block" / dm
            alias = dm_dir / "dm" / "name"
            if not dm.startswith("dm-") or name not in (dm, alias.exists() and alias.read_text().strip()):
                continue
            if how == "unreadable":
                self.map_size_file(dm).unlink()
            elif how == "grow":
                first = sorted(os.listdir(dm_dir / "slaves"))[0]
                size = (dm_dir / "slaves" / first / "size").read_text(encoding="ascii")
                self.map_size_file(dm).write_text(size, encoding="ascii")
            return
        raise AssertionError(f"no map named {name}")


def resize(
    world: ResizeWorld, *, portals: Optional[List[str]] = None, luns: Sequence[int] = (1,), timeout: float = 10.0
) -> Tuple[List[Dict[str, Any]], Tuple[SysfsWrite, ...]]:
    """The module's order: observe, plan the scan and the resize (refusals before any write), scan, resize."""
    host = world.host()
    before = host.snapshot()
    plan = plan_scan(request=build_request(target=IQN, portals=portals, luns=list(luns), refresh=True), snapshot=before)
    rplan = plan_resize(plan=plan, snapshot=before, has_multipathd=host.runner.has_tool("multipathd"))
    done = apply_plan(plan=plan, host=host)
    entries, extra = apply_resize(rplan=rplan, host=host, timeout=timeout, done=done)
    return entries, done + extra


def path_entry(name: str, hctl: str, old: int, new: int) -> Dict[str, Any]:
    return {"name": name, "hctl": hctl, "old_size_bytes": old, "new_size_bytes": new}


# ---------------------------------------------------------------------------------------------------------
# growing


def test_grow_over_two_paths_rescans_both_and_resizes_the_map_once(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path, script=[OK])
    entries, writes = resize(world)
    assert entries == [
        {
            "wwid": WWID,
            "map": "mpatha",
            "dm": "dm-0",
            "old_size_bytes": GIB,
            "new_size_bytes": 2 * GIB,
            "map_resized": True,
            "paths": [
                path_entry("sdb", "2:0:0:1", GIB, 2 * GIB),
                path_entry("sdc", "3:0:0:1", GIB, 2 * GIB),
            ],
        }
    ]
    assert world.writes == [RESCAN_B, RESCAN_C]  # the scan's refresh rescans, none repeated by the resize
    assert [write.kind for write in writes] == ["rescan", "rescan"]
    assert world.runner.argvs == [list(RESIZE_A)]
    assert (world.runner.calls[0].ok_rcs, world.runner.calls[0].timeout) == ((0, 1), 10.0)  # "fail" is rc 1
    assert world.map_sectors() == NEW


def test_a_path_through_a_portal_not_named_is_rescanned_too(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path, script=[OK])
    entries, writes = resize(world, portals=["192.0.2.10"])
    assert world.writes == [RESCAN_B, RESCAN_C]
    # the scan wrote 2:0:0:1 (the named portal), the resize added 3:0:0:1 (the other one)
    assert [(write.address, write.host) for write in writes] == [("2:0:0:1", 2), ("3:0:0:1", 3)]
    assert [path["new_size_bytes"] for path in entries[0]["paths"]] == [2 * GIB, 2 * GIB]
    assert entries[0]["map_resized"] is True
    assert world.map_sectors() == NEW


def test_multipathd_answering_fail_is_asked_again(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path, script=[FAIL, OK])
    entries, _writes = resize(world)
    assert world.runner.argvs == [list(RESIZE_A), list(RESIZE_A)]
    assert world.clock.now >= 1.0  # one pause between the two asks
    assert entries[0]["map_resized"] is True
    assert entries[0]["new_size_bytes"] == 2 * GIB


def test_two_luns_each_with_its_map(tmp_path: Path) -> None:
    lun2 = [
        {"hctl": "2:0:0:2", "sid": 1, "name": "sdd", "wwid": WWID2_RAW, "size": OLD},
        {"hctl": "3:0:0:2", "sid": 2, "name": "sde", "wwid": WWID2_RAW, "size": OLD},
    ]
    mpathb = {"dm": "dm-1", "name": "mpathb", "uuid": f"mpath-{WWID2}", "slaves": ["sdd", "sde"], "size": OLD}
    resize_b = ("multipathd", "resize", "map", "mpathb")
    world = ResizeWorld(
        tmp_path,
        devices=[*LUN1_1GIB, *lun2],
        maps=[MPATHA, mpathb],
        array={WWID_RAW: NEW, WWID2_RAW: OLD},  # only LUN 1 grew
        script=[OK],
    )
    entries, _writes = resize(world, luns=[1, 2])
    assert [(e["wwid"], e["map"], e["map_resized"], e["new_size_bytes"]) for e in entries] == [
        (WWID, "mpatha", True, 2 * GIB),
        (WWID2, "mpathb", False, GIB),
    ]
    assert resize_b not in [tuple(argv) for argv in world.runner.argvs]
    assert world.map_sectors("dm-1") == OLD


def test_no_map_single_path(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path, sessions=SESSIONS[:1], devices=LUN1_1GIB[:1], maps=())
    entries, _writes = resize(world)
    assert entries == [
        {
            "wwid": WWID,
            "map": None,
            "dm": None,
            "old_size_bytes": GIB,
            "new_size_bytes": 2 * GIB,
            "map_resized": False,
            "paths": [path_entry("sdb", "2:0:0:1", GIB, 2 * GIB)],
        }
    ]
    assert world.writes == [RESCAN_B]
    assert world.runner.calls == []


def test_a_second_run_changes_nothing(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path, script=[OK])
    resize(world)
    entries, _writes = resize(world)
    assert world.runner.argvs == [list(RESIZE_A)]  # from the first run only
    assert entries[0]["map_resized"] is False
    assert (entries[0]["old_size_bytes"], entries[0]["new_size_bytes"]) == (2 * GIB, 2 * GIB)
    assert [(p["old_size_bytes"], p["new_size_bytes"]) for p in entries[0]["paths"]] == [(2 * GIB, 2 * GIB)] * 2


def test_a_map_smaller_than_its_paths_is_grown_without_a_new_size_on_the_array(tmp_path: Path) -> None:
    """A run that rescanned the paths but failed before the map (multipathd was down) is finished by the next."""
    devices = [{**device, "size": NEW} for device in LUN1_1GIB]
    world = ResizeWorld(tmp_path, devices=devices, script=[OK])
    entries, _writes = resize(world)
    assert (entries[0]["old_size_bytes"], entries[0]["new_size_bytes"], entries[0]["map_resized"]) == (
        GIB,
        2 * GIB,
        True,
    )
    assert world.map_sectors() == NEW


# ---------------------------------------------------------------------------------------------------------
# refusals before any write


@pytest.mark.parametrize("state", ["blocked", "offline", "transport-offline"])
def test_a_path_not_running_is_refused_before_any_write(tmp_path: Path, state: str) -> None:
    devices = [LUN1_1GIB[0], {**LUN1_1GIB[1], "state": state}]
    world = ResizeWorld(tmp_path, devices=devices, script=[OK])
    with pytest.raises(ResizeError) as info:
        resize(world)
    assert f"sdc (3:0:0:1) is {state}, not running" in info.value.msg
    assert "nothing was written" in info.value.msg
    assert info.value.details["paths"] == {"sdb": "running", "sdc": state}
    assert world.writes == []
    assert world.runner.calls == []


def test_a_path_in_an_unknown_state_is_refused(tmp_path: Path) -> None:
    devices = [LUN1_1GIB[0], {**LUN1_1GIB[1], "omit": ["state"]}]
    world = ResizeWorld(tmp_path, devices=devices)
    with pytest.raises(ResizeError, match=r"sdc \(3:0:0:1\) is in an unknown state, not running"):
        resize(world)
    assert world.writes == []


def test_a_path_not_running_through_a_portal_not_named_is_refused_too(tmp_path: Path) -> None:
    devices = [LUN1_1GIB[0], {**LUN1_1GIB[1], "state": "blocked"}]
    world = ResizeWorld(tmp_path, devices=devices)
    with pytest.raises(ResizeError, match=r"sdc \(3:0:0:1\) is blocked"):
        resize(world, portals=["192.0.2.10"])
    assert world.writes == []


def test_a_device_without_wwid_is_refused(tmp_path: Path) -> None:
    devices = [{key: value for key, value in LUN1_1GIB[0].items() if key != "wwid"}, LUN1_1GIB[1]]
    world = ResizeWorld(tmp_path, devices=devices, maps=())
    with pytest.raises(ResizeError) as info:
        resize(world)
    assert "refusing to resize sdb (2:0:0:1): the kernel reports no WWID" in info.value.msg
    assert info.value.details["hctl"] == "2:0:0:1"
    assert world.writes == []


def test_paths_split_over_two_maps_are_refused(tmp_path: Path) -> None:
    maps = [
        {**MPATHA, "slaves": ["sdb"]},
        {"dm": "dm-1", "name": "mpathz", "uuid": f"mpath-{WWID2}", "slaves": ["sdc"], "size": OLD},
    ]
    world = ResizeWorld(tmp_path, maps=maps)
    with pytest.raises(ResizeError) as info:
        resize(world)
    assert info.value.msg.startswith(f"refusing to resize LUN {WWID}: the devices are held by different multipath")
    assert "dm-0 (mpatha), dm-1 (mpathz)" in info.value.msg
    assert world.writes == []
    assert world.runner.calls == []


def test_a_map_without_multipathd_is_refused_before_any_write(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path, missing_tools=["multipathd"])
    with pytest.raises(ResizeError) as info:
        resize(world)
    assert "its map mpatha (dm-0) can only be resized by multipathd, which is not installed" in info.value.msg
    assert world.writes == []
    assert world.runner.calls == []


def test_without_a_map_multipathd_is_not_needed(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path, maps=(), missing_tools=["multipathd"])
    entries, _writes = resize(world)
    assert (entries[0]["map"], entries[0]["map_resized"], entries[0]["new_size_bytes"]) == (None, False, 2 * GIB)


# ---------------------------------------------------------------------------------------------------------
# failures after the rescans: the map keeps its size


def test_paths_still_disagreeing_at_the_deadline_leave_the_map_alone(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path, script=[OK])
    world.stale.add("3:0:0:1")
    with pytest.raises(ResizeError) as info:
        resize(world, timeout=3)
    assert (
        f"LUN {WWID} was rescanned but after 3s the paths disagree: sdb (2:0:0:1) 2 GiB, sdc (3:0:0:1) 1 GiB"
        in info.value.msg
    )
    assert info.value.details["paths"] == {"sdb": 2 * GIB, "sdc": GIB}
    assert world.clock.now >= 3
    assert world.runner.calls == []
    assert world.map_sectors() == OLD


def test_a_path_that_goes_away_during_the_wait_is_named(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path, script=[OK])
    world.vanishing.add("3:0:0:1")
    with pytest.raises(ResizeError, match=r"after 2s paths 3:0:0:1 went away\. The map was not resized"):
        resize(world, timeout=2)
    assert world.runner.calls == []
    assert world.map_sectors() == OLD


def test_a_lun_that_shrank_is_not_shrunk(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path, array={WWID_RAW: OLD // 2}, script=[OK])
    with pytest.raises(ResizeError) as info:
        resize(world)
    assert info.value.msg.startswith(
        f"refusing to shrink map mpatha (dm-0) of LUN {WWID}: its paths now report 512 MiB, the map is 1 GiB"
    )
    assert info.value.details["map_size_bytes"] == GIB
    assert world.runner.calls == []
    assert world.map_sectors() == OLD


def test_a_failed_rescan_write_stops_before_the_map(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path, script=[OK])
    world.failing.add("3:0:0:1")
    with pytest.raises(ResizeError) as info:
        resize(world, portals=["192.0.2.10"])
    path = str(world.root) + RESCAN_C[0]
    assert info.value.msg == f"writing '1' to {path} failed: Input/output error; the map was not resized"
    assert info.value.details["path"] == path
    assert world.runner.calls == []
    assert world.map_sectors() == OLD


def test_a_failed_rescan_write_reports_the_writes_done(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path, devices=[*LUN1_1GIB, LUN1_PATH3], sessions=[*SESSIONS, SESSION3], maps=[MPATHA3])
    world.failing.add("4:0:0:1")
    with pytest.raises(ResizeError) as info:
        resize(world, portals=["192.0.2.10"])
    # the scan's rescan of 2:0:0:1, the resize's of 3:0:0:1; not the one that failed
    assert [entry["hctl"] for entry in info.value.details["scanned"]] == ["2:0:0:1", "3:0:0:1"]
    assert world.writes == [RESCAN_B, RESCAN_C, ("/class/scsi_device/4:0:0:1/device/rescan", "1")]


def test_a_failure_on_the_second_lun_reports_the_first_one_grown(tmp_path: Path) -> None:
    lun2 = [
        {"hctl": "2:0:0:2", "sid": 1, "name": "sdd", "wwid": WWID2_RAW, "size": OLD},
        {"hctl": "3:0:0:2", "sid": 2, "name": "sde", "wwid": WWID2_RAW, "size": OLD},
    ]
    mpathb = {"dm": "dm-1", "name": "mpathb", "uuid": f"mpath-{WWID2}", "slaves": ["sdd", "sde"], "size": OLD}
    world = ResizeWorld(
        tmp_path,
        devices=[*LUN1_1GIB, *lun2],
        maps=[MPATHA, mpathb],
        array={WWID_RAW: NEW, WWID2_RAW: OLD // 2},  # LUN 1 grew, LUN 2 shrank
        script=[OK],
    )
    with pytest.raises(ResizeError, match="refusing to shrink map mpathb") as info:
        resize(world, luns=[1, 2])
    assert [(e["map"], e["map_resized"]) for e in info.value.details["resized"]] == [("mpatha", True)]
    assert len(info.value.details["scanned"]) == 4
    assert (world.map_sectors("dm-0"), world.map_sectors("dm-1")) == (NEW, OLD)


def test_multipathd_failing_until_the_deadline(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path, script=[FAIL] * 50)
    with pytest.raises(ResizeError) as info:
        resize(world, timeout=4)
    calls = len(world.runner.calls)
    assert 2 <= calls <= 6  # one ask per second, the last at the deadline
    assert world.runner.argvs == [list(RESIZE_A)] * calls
    assert info.value.msg == (
        f"multipathd did not resize map mpatha of LUN {WWID} to 2 GiB within 4s (its answers: fail, fail, fail); "
        "the paths have the new size, the map keeps its old one"
    )
    assert info.value.details["replies"] == ["fail"] * calls
    assert world.map_sectors() == OLD
    assert [world.path_sectors(hctl) for hctl in ("2:0:0:1", "3:0:0:1")] == [NEW, NEW]


def test_multipathd_not_running(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path, script=[NOT_RUNNING])
    with pytest.raises(DaemonUnavailable) as info:
        resize(world)
    assert "multipathd is not running: the paths of LUN" in info.value.msg
    assert "its map mpatha could not be resized" in info.value.msg
    assert world.runner.argvs == [list(RESIZE_A)]
    assert world.map_sectors() == OLD


def test_multipathd_ok_but_the_map_keeps_its_size(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path, script=[OK])
    world.runner.reload = "nothing"
    with pytest.raises(ResizeError) as info:
        resize(world, timeout=2)
    assert info.value.msg == (
        "multipathd answered ok but map mpatha (dm-0) is 1 GiB, not 2 GiB, 2s after the resize began"
    )
    assert world.runner.argvs == [list(RESIZE_A)]


def test_a_map_without_a_name_is_resized_by_its_kernel_name(tmp_path: Path) -> None:
    resize_dm = ("multipathd", "resize", "map", "dm-0")
    world = ResizeWorld(tmp_path, maps=[{**MPATHA, "name": None}], script=[Step(argv=resize_dm, stdout="ok\n")])
    entries, _writes = resize(world)
    assert world.runner.argvs == [list(resize_dm)]
    assert (entries[0]["map"], entries[0]["dm"], entries[0]["map_resized"]) == (None, "dm-0", True)
    assert world.map_sectors() == NEW


# ---------------------------------------------------------------------------------------------------------
# check mode and the pure helpers


def _rplan(world: ResizeWorld, portals: Optional[List[str]] = None) -> Any:
    host = world.host()
    before = host.snapshot()
    plan = plan_scan(request=build_request(target=IQN, portals=portals, luns=[1], refresh=True), snapshot=before)
    return plan, plan_resize(plan=plan, snapshot=before, has_multipathd=True)


def test_preview_predicts_no_change_when_the_map_has_the_paths_size(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path)
    _plan, rplan = _rplan(world)
    entries, changed = preview_resize(rplan=rplan)
    assert changed is False
    assert entries[0]["map_resized"] is False
    assert (entries[0]["old_size_bytes"], entries[0]["new_size_bytes"]) == (GIB, GIB)
    assert world.writes == []
    assert world.runner.calls == []


def test_preview_predicts_a_change_when_the_map_is_smaller_than_its_paths(tmp_path: Path) -> None:
    devices = [{**device, "size": NEW} for device in LUN1_1GIB]
    world = ResizeWorld(tmp_path, devices=devices)
    _plan, rplan = _rplan(world)
    entries, changed = preview_resize(rplan=rplan)
    assert changed is True
    assert (entries[0]["old_size_bytes"], entries[0]["new_size_bytes"], entries[0]["map_resized"]) == (
        GIB,
        2 * GIB,
        True,
    )
    assert world.writes == []
    assert world.map_sectors() == OLD


def test_preview_of_paths_that_disagree_predicts_nothing(tmp_path: Path) -> None:
    devices = [{**LUN1_1GIB[0], "size": NEW}, LUN1_1GIB[1]]
    world = ResizeWorld(tmp_path, devices=devices)
    _plan, rplan = _rplan(world)
    entries, changed = preview_resize(rplan=rplan)
    assert changed is False
    assert entries[0]["new_size_bytes"] == GIB  # the map's size, unchanged


def test_rescan_writes_adds_only_paths_the_scan_did_not_write(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path)
    plan, rplan = _rplan(world, portals=["192.0.2.11"])
    done = planned_writes(plan=plan, sysfs_root=str(world.root))
    assert [write.address for write in done] == ["3:0:0:1"]
    extra = rescan_writes(rplan=rplan, sysfs_root=str(world.root), done=done)
    assert [(write.kind, write.path[len(str(world.root)) :], write.text, write.host) for write in extra] == [
        ("rescan", RESCAN_B[0], "1", 2)
    ]
    assert rescan_writes(rplan=rplan, sysfs_root=str(world.root), done=done + extra) == ()


def test_map_size_bytes(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path)
    assert map_size_bytes(sysfs_root=str(world.root), dm="dm-0") == GIB
    assert map_size_bytes(sysfs_root=str(world.root), dm="dm-9") is None
    world.map_size_file("dm-0").write_text("garbage\n", encoding="ascii")
    assert map_size_bytes(sysfs_root=str(world.root), dm="dm-0") is None


@pytest.mark.parametrize(
    ("sectors", "text"),
    [(3, "1536 bytes"), (2, "1 KiB"), (2048 * 3, "3 MiB"), (2048 * 1023 + 1, "1072693760 bytes")],
)
def test_sizes_in_messages_are_exact(tmp_path: Path, sectors: int, text: str) -> None:
    world = ResizeWorld(
        tmp_path,
        sessions=SESSIONS[:1],
        devices=[{**LUN1_1GIB[0], "size": sectors}],
        maps=[{**MPATHA, "slaves": ["sdb"]}],
        array={},  # the rescan finds the size the path has: smaller than the map
    )
    with pytest.raises(ResizeError, match=f"its paths now report {text}, the map is 1 GiB"):
        resize(world)


def test_a_map_whose_size_cannot_be_read_after_ok(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path, script=[OK])
    world.runner.reload = "unreadable"
    with pytest.raises(ResizeError, match=r"map mpatha \(dm-0\) is unknown size, not 2 GiB"):
        resize(world, timeout=1)


def test_a_map_whose_size_cannot_be_read_is_refused_before_any_write(tmp_path: Path) -> None:
    world = ResizeWorld(tmp_path)
    world.map_size_file("dm-0").unlink()
    with pytest.raises(ResizeError) as info:
        resize(world)
    assert info.value.msg == (
        f"refusing to resize LUN {WWID}: the size of its map mpatha (dm-0) cannot be read from "
        f"{world.root}/block/dm-0/size; nothing was written"
    )
    assert world.writes == []
    assert world.runner.calls == []


def test_one_deadline_covers_every_wait_of_the_resize(tmp_path: Path) -> None:
    # the paths agree only after 3 s (one path is stale until then), then multipathd keeps failing: the
    # multipathd retries get what is left of the 5 s, not 5 s of their own
    world = ResizeWorld(tmp_path, script=[FAIL] * 50)
    world.stale.add("3:0:0:1")
    start = world.clock.now

    def fresh_after_three_seconds(seconds: float) -> None:
        Clock.sleep(world.clock, seconds)
        if world.clock.now - start >= 3 and world.stale:
            world.stale.clear()
            world.disk_size_file("3:0:0:1").write_text(f"{NEW}\n", encoding="ascii")

    world.clock.sleep = fresh_after_three_seconds  # type: ignore[method-assign]
    with pytest.raises(ResizeError) as info:
        resize(world, timeout=5)
    assert info.value.msg.startswith("multipathd did not resize map mpatha")
    assert world.clock.now - start <= 5 + 1
    assert 1 <= len(world.runner.calls) <= 3
