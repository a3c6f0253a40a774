# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run the module's main() against fake sysfs trees; the "kernel" is a writer that swaps in the tree
that a write would produce."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
from ansible.module_utils.common import warnings as ansible_warnings

from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.modules import scsi_targeted_scan
from ansible_collections.lunsafe.san.tests.unit.compat import patch_module_args
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.sysfs_tree import build_sysfs
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.test_resize import (
    FAIL,
    GIB,
    LUN1_1GIB,
    NEW,
    OK,
    RESIZE_A,
    ResizeWorld,
)

IQN = "iqn.2003-01.org.lunsafe.test:array"
WWID_RAW = "naa.6001405aaaaaaaaaaaaaaaaaaaaaaaa1"
SESSIONS = [
    {"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10"},
    {"sid": 2, "host": 3, "targetname": IQN, "address": "192.0.2.11"},
]
LUN1 = [
    {"hctl": "2:0:0:1", "sid": 1, "name": "sdb", "wwid": WWID_RAW},
    {"hctl": "3:0:0:1", "sid": 2, "name": "sdc", "wwid": WWID_RAW},
]


@pytest.fixture(autouse=True)
def one_module_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test is one module run, as on a host: warnings and deprecations that ansible-core keeps for the
    run in module globals must not leak in from main() calls of earlier tests."""
    # empty, of the type this ansible-core keeps them in (dicts from 2.19 on, lists in 2.17)
    monkeypatch.setattr(ansible_warnings, "_global_warnings", type(ansible_warnings._global_warnings)())
    monkeypatch.setattr(ansible_warnings, "_global_deprecations", type(ansible_warnings._global_deprecations)())


class Kernel:
    """Records sysfs writes; after the first one, sysfs looks like ``after`` (None: nothing appears)."""

    def __init__(self, root: Path, after: Optional[Path]) -> None:
        self.root = root
        self.after = after
        self.writes: List[Tuple[str, str]] = []

    def write(self, path: str, text: str) -> None:
        self.writes.append((path[len(str(self.root)) :], text))
        if self.after is not None:
            shutil.rmtree(self.root)
            shutil.copytree(self.after, self.root, symlinks=True)


class Clock:
    """Time passes only by sleeping: a wait ends at its deadline at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


NAMES: Dict[str, List[str]] = {"array.example.com": ["192.0.2.10", "192.0.2.11"]}


def fake_host(root: Path, kernel: Kernel) -> Callable[[Any], Host]:
    """The module's make_host: the fake tree, the kernel as sysfs writer, a fake clock and name resolver. The
    scan runs no command: the scripted runner has no step, so any command would fail the test."""
    clock = Clock()

    def make_host(_runner: Any) -> Host:
        return Host(
            runner=ScriptedRunner(),
            sysfs_root=str(root),
            proc_root=str(root.parent / "proc"),
            writer=kernel.write,
            clock=clock,
            sleep=clock.sleep,
            resolver=NAMES.__getitem__,
        )

    return make_host


@pytest.fixture
def host(tmp_path: Path) -> Dict[str, Any]:
    """Two sessions right after a manual-scan login; a kernel that attaches LUN 1 on both paths."""
    root = build_sysfs(tmp_path, sessions=SESSIONS)
    kernel = Kernel(root, build_sysfs(tmp_path, name="after", sessions=SESSIONS, devices=LUN1))
    lock = str(tmp_path / "lock" / "lunsafe.lock")
    return {"root": root, "kernel": kernel, "lock": lock, "make_host": fake_host(root, kernel)}


def run_module(args: Dict[str, Any], capsys: pytest.CaptureFixture[str], host: Dict[str, Any]) -> Dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        scsi_targeted_scan.main(make_host=host["make_host"])
    result: Dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_check_mode_writes_nothing_and_predicts_change(
    host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    args = {"target": IQN, "luns": [1], "lock_file": host["lock"], "_ansible_check_mode": True}
    result = run_module(args, capsys, host)
    assert result["changed"] is True
    assert [(entry["path"], entry["line"]) for entry in result["scanned"]] == [
        (str(host["root"] / "class/scsi_host/host2/scan"), "0 0 1"),
        (str(host["root"] / "class/scsi_host/host3/scan"), "0 0 1"),
    ]
    assert result["devices"] == []
    assert host["kernel"].writes == []
    assert not Path(host["lock"]).exists()  # check mode creates no lock file either


def test_apply_scans_each_path_once_and_reports_devices(
    host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    args = {"target": IQN, "luns": ["1"], "lock_file": host["lock"], "_ansible_diff": True}
    result = run_module(args, capsys, host)
    assert result.get("failed") is None, result
    assert host["kernel"].writes == [("/class/scsi_host/host2/scan", "0 0 1"), ("/class/scsi_host/host3/scan", "0 0 1")]
    assert result["changed"] is True
    assert [(d["hctl"], d["path"], d["sid"], d["portal"], d["new"]) for d in result["devices"]] == [
        ("2:0:0:1", "/dev/sdb", 1, "192.0.2.10:3260", True),
        ("3:0:0:1", "/dev/sdc", 2, "192.0.2.11:3260", True),
    ]
    assert result["wait_method"] == "sysfs-poll"
    assert result["pending"] == [] and result["skipped"] == []
    assert result["diff"]["before"] == ""
    assert result["diff"]["after"].count("\n") == 2
    assert Path(host["lock"]).exists()


def test_second_run_writes_nothing(host: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    run_module({"target": IQN, "luns": [1], "lock_file": host["lock"]}, capsys, host)
    host["kernel"].writes.clear()
    for check_mode in (False, True):
        args = {"target": IQN, "luns": [1], "lock_file": host["lock"], "_ansible_check_mode": check_mode}
        result = run_module(args, capsys, host)
        assert result["changed"] is False
        assert result["scanned"] == []
        assert [d["new"] for d in result["devices"]] == [False, False]
    assert host["kernel"].writes == []


def test_lun_not_presented_fails_after_deadline(
    tmp_path: Path, host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    host["kernel"].after = None  # the array does not present LUN 3: nothing appears
    result = run_module({"target": IQN, "luns": [3], "timeout": 0.3, "lock_file": host["lock"]}, capsys, host)
    assert result["failed"] is True
    assert result["msg"].startswith("timed out after 0.3s waiting for the block device of 2:0:0:3, 3:0:0:3")
    assert "Scanned: host2 '0 0 3', host3 '0 0 3'" in result["msg"]
    assert result["missing"] == ["2:0:0:3", "3:0:0:3"]
    assert result["recovery"] == {} and result["timeout"] == 0.3  # documented, with the failure's other keys
    assert [entry["line"] for entry in result["scanned"]] == ["0 0 3", "0 0 3"]
    assert result["changed"] is False
    assert result["devices"] == []
    assert 0.3 <= result["waited_seconds"] < 2
    assert len(host["kernel"].writes) == 2


def test_wait_false_returns_pending(host: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    host["kernel"].after = None
    result = run_module({"target": IQN, "luns": [9], "wait": False, "lock_file": host["lock"]}, capsys, host)
    assert result["changed"] is False
    assert result["pending"] == ["2:0:0:9", "3:0:0:9"]
    assert result["waited_seconds"] == 0


def test_unrequested_devices_are_warned_about(
    tmp_path: Path, host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    extra = {"hctl": "2:0:0:2", "sid": 1, "name": "sdd", "wwid": "naa.6001405bbbbbbbbbbbbbbbbbbbbbbbb2"}
    host["kernel"].after = build_sysfs(tmp_path, name="noisy", sessions=SESSIONS, devices=[*LUN1, extra])
    result = run_module({"target": IQN, "luns": [1], "lock_file": host["lock"]}, capsys, host)
    assert [d["hctl"] for d in result["devices"]] == ["2:0:0:1", "3:0:0:1"]
    # warnings are plain strings before ansible-core 2.19 and event objects since: look at their text
    assert "device 2:0:0:2 appeared during this run but was not asked for" in json.dumps(result["warnings"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"target": IQN, "luns": [-1]}, "must not be negative"),
        ({"target": IQN, "luns": ["-"]}, "wildcard"),
        ({"target": IQN, "luns": ["12345678901234567"]}, "16-character"),
        ({"hctl": ["2:0:0"]}, "is not an H:C:T:L address"),
        ({"hctl": ["2:0:0:1"], "timeout": -1}, "timeout must be greater than 0 seconds, got -1"),
        ({"hctl": ["2:0:0:1"], "timeout": 0}, "timeout must be greater than 0 seconds, got 0"),
        ({"hctl": ["2:0:0:1"], "timeout": "nan"}, "timeout must be a finite number of seconds, got nan"),
        ({"hctl": ["2:0:0:1"], "lock_timeout": -1}, "lock_timeout must be at least 0 seconds, got -1"),
        ({"hctl": ["2:0:0:1"], "lock_timeout": "inf"}, "lock_timeout must be a finite number of seconds, got inf"),
        ({"hctl": ["2:0:0:1"], "lock_lease": {"id": "a", "ttl": 0}}, "lock_lease.ttl must be greater than 0 seconds"),
        ({"target": "iqn.2003-01.org.lunsafe.test:none", "luns": [1]}, "no iSCSI session to target"),
    ],
)
def test_bad_input_fails_before_writing(
    args: Dict[str, Any], message: str, host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_module({**args, "lock_file": host["lock"]}, capsys, host)
    assert result["failed"] is True
    assert message in result["msg"]
    assert "changed" not in result or result["changed"] is False
    assert host["kernel"].writes == []


def test_hctl_refresh_writes_rescan_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = build_sysfs(tmp_path, sessions=SESSIONS, devices=LUN1)
    kernel = Kernel(root, None)
    args = {"hctl": ["3:0:0:1"], "refresh": True, "lock_file": str(tmp_path / "lock")}
    result = run_module(args, capsys, {"make_host": fake_host(root, kernel)})
    assert kernel.writes == [("/class/scsi_device/3:0:0:1/device/rescan", "1")]
    assert result["changed"] is False
    assert result["scanned"][0]["kind"] == "rescan"
    assert [d["name"] for d in result["devices"]] == ["sdc"]


@pytest.mark.parametrize("option", ["portals", "portal"])
def test_portals_restrict_the_scan_and_names_resolve_to_every_address(
    option: str, host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    args = {"target": IQN, "luns": [1], option: ["192.0.2.11"], "lock_file": host["lock"]}
    result = run_module(args, capsys, host)
    assert host["kernel"].writes == [("/class/scsi_host/host3/scan", "0 0 1")]
    assert [d["hctl"] for d in result["devices"]] == ["3:0:0:1"]


def test_a_name_and_its_address_are_scanned_once_with_a_warning(
    host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    args = {"target": IQN, "luns": [1], "portals": ["array.example.com", "192.0.2.10:3260"], "lock_file": host["lock"]}
    result = run_module(args, capsys, host)
    assert host["kernel"].writes == [("/class/scsi_host/host2/scan", "0 0 1"), ("/class/scsi_host/host3/scan", "0 0 1")]
    assert "'192.0.2.10:3260' and 'array.example.com' are the same portal" in json.dumps(result["warnings"])


def test_a_portal_without_port_is_3260_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sessions = [{**SESSIONS[0], "port": 3261}]
    root = build_sysfs(tmp_path, sessions=sessions)
    kernel = Kernel(root, None)
    args = {"target": IQN, "luns": [1], "portals": ["192.0.2.10"], "lock_file": str(tmp_path / "lock")}
    result = run_module(args, capsys, {"make_host": fake_host(root, kernel)})
    assert result["failed"] is True
    assert "through portal 192.0.2.10:3260: log in first" in result["msg"]
    assert kernel.writes == []


# ---------------------------------------------------------------------------------------------------------
# resize=true: the host is test_resize's ResizeWorld (a kernel that rereads sizes from the array, multipathd)

RESCANS = [("rescan", "2:0:0:1"), ("rescan", "3:0:0:1")]


def run_resize(world: ResizeWorld, capsys: pytest.CaptureFixture[str], tmp_path: Path, **args: Any) -> Dict[str, Any]:
    module_args = {"target": IQN, "luns": [1], "resize": True, "lock_file": str(tmp_path / "lock"), **args}
    return run_module(module_args, capsys, {"make_host": lambda _runner: world.host()})


def test_resize_grows_every_path_and_the_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = ResizeWorld(tmp_path, script=[OK])
    result = run_resize(world, capsys, tmp_path, _ansible_diff=True)
    assert result.get("failed") is None, result
    assert result["changed"] is True
    assert [(entry["kind"], entry["hctl"]) for entry in result["scanned"]] == RESCANS
    assert [write[0] for write in world.writes] == [
        "/class/scsi_device/2:0:0:1/device/rescan",
        "/class/scsi_device/3:0:0:1/device/rescan",
    ]
    assert world.runner.argvs == [list(RESIZE_A)]
    (entry,) = result["resized"]
    assert (entry["map"], entry["dm"], entry["old_size_bytes"], entry["new_size_bytes"], entry["map_resized"]) == (
        "mpatha",
        "dm-0",
        GIB,
        2 * GIB,
        True,
    )
    assert [(p["hctl"], p["old_size_bytes"], p["new_size_bytes"]) for p in entry["paths"]] == [
        ("2:0:0:1", GIB, 2 * GIB),
        ("3:0:0:1", GIB, 2 * GIB),
    ]
    assert [device["size_bytes"] for device in result["devices"]] == [2 * GIB, 2 * GIB]
    assert result["diff"]["before"].endswith(f"map mpatha dm-0 {GIB}\n")
    assert result["diff"]["after"].endswith(f"map mpatha dm-0 {2 * GIB}\n")
    assert world.map_sectors() == NEW


def test_resize_reports_the_rescan_of_a_path_through_another_portal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = ResizeWorld(tmp_path, script=[OK])
    result = run_resize(world, capsys, tmp_path, portals=["192.0.2.11"])
    assert result["changed"] is True
    # the named portal's path first (the scan's refresh), then the other one (added by the resize)
    assert [(entry["kind"], entry["hctl"]) for entry in result["scanned"]] == RESCANS[::-1]
    assert [d["hctl"] for d in result["devices"]] == ["3:0:0:1"]
    assert [p["hctl"] for p in result["resized"][0]["paths"]] == ["2:0:0:1", "3:0:0:1"]


def test_resize_twice_changes_nothing_the_second_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = ResizeWorld(tmp_path, script=[OK])
    run_resize(world, capsys, tmp_path)
    result = run_resize(world, capsys, tmp_path)
    assert result["changed"] is False
    assert world.runner.argvs == [list(RESIZE_A)]  # the first run's only
    assert result["resized"][0]["map_resized"] is False
    assert (result["resized"][0]["old_size_bytes"], result["resized"][0]["new_size_bytes"]) == (2 * GIB, 2 * GIB)


def test_resize_without_a_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = ResizeWorld(tmp_path, maps=(), missing_tools=["multipathd"])
    result = run_resize(world, capsys, tmp_path, _ansible_diff=True)
    assert result["changed"] is True  # the paths grew
    assert [(e["map"], e["dm"], e["map_resized"], e["new_size_bytes"]) for e in result["resized"]] == [
        (None, None, False, 2 * GIB)
    ]
    assert "map " not in result["diff"]["after"]
    assert world.runner.calls == []


@pytest.mark.parametrize(("path_sectors", "changed"), [(LUN1_1GIB[0]["size"], False), (NEW, True)])
def test_resize_check_mode_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path_sectors: int, changed: bool
) -> None:
    """Check mode cannot rescan: it predicts a change only for a map already smaller than its paths."""
    world = ResizeWorld(tmp_path, devices=[{**device, "size": path_sectors} for device in LUN1_1GIB], script=[OK])
    result = run_resize(world, capsys, tmp_path, _ansible_check_mode=True, _ansible_diff=True)
    assert result["changed"] is changed
    assert world.writes == []
    assert world.runner.calls == []
    assert [(entry["kind"], entry["hctl"]) for entry in result["scanned"]] == RESCANS
    assert result["resized"][0]["map_resized"] is changed
    assert result["resized"][0]["new_size_bytes"] == path_sectors * 512
    assert world.map_sectors() == LUN1_1GIB[0]["size"]


def test_resize_refuses_wait_false(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = ResizeWorld(tmp_path, script=[OK])
    result = run_resize(world, capsys, tmp_path, wait=False)
    assert result["failed"] is True
    assert "cannot be combined with wait=false" in result["msg"]
    assert result["option"] == "wait"
    assert (result["changed"], result["resized"], result["scanned"]) == (False, [], [])
    assert world.writes == []


def test_resize_refused_before_any_write_reports_every_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = ResizeWorld(tmp_path, devices=[LUN1_1GIB[0], {**LUN1_1GIB[1], "state": "offline"}], script=[OK])
    result = run_resize(world, capsys, tmp_path)
    assert result["failed"] is True
    assert "sdc (3:0:0:1) is offline, not running" in result["msg"]
    assert (result["changed"], result["resized"], result["scanned"]) == (False, [], [])
    assert world.writes == []
    assert world.runner.calls == []


def test_resize_failing_after_the_rescans_reports_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """multipathd refuses until the deadline: the paths grew (changed), the map did not, both rescans listed."""
    world = ResizeWorld(tmp_path, script=[FAIL] * 20)
    result = run_resize(world, capsys, tmp_path, portals=["192.0.2.10"], timeout=2)
    assert result["failed"] is True
    assert result["msg"].startswith("multipathd did not resize map mpatha")
    assert result["resized"] == []
    assert result["changed"] is True
    assert [(entry["kind"], entry["hctl"]) for entry in result["scanned"]] == RESCANS
    assert [d["size_bytes"] for d in result["devices"]] == [2 * GIB]
    assert world.map_sectors() == LUN1_1GIB[0]["size"]


def test_resize_with_paths_disagreeing_fails_without_multipathd(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = ResizeWorld(tmp_path, script=[OK])
    world.stale.add("2:0:0:1")
    result = run_resize(world, capsys, tmp_path, timeout=1)
    assert result["failed"] is True
    assert "the paths disagree: sdb (2:0:0:1) 1 GiB, sdc (3:0:0:1) 2 GiB" in result["msg"]
    assert world.runner.calls == []
    assert result["resized"] == []
    assert [(entry["kind"], entry["hctl"]) for entry in result["scanned"]] == RESCANS


def test_resize_is_changed_when_only_a_path_through_another_portal_grew(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An earlier refresh through portal .10 grew sdb; this resize (same portal) grows sdc: a change on the host."""
    devices = [{**LUN1_1GIB[0], "size": NEW}, LUN1_1GIB[1]]
    world = ResizeWorld(tmp_path, devices=devices, maps=())
    result = run_resize(world, capsys, tmp_path, portals=["192.0.2.10"])
    assert [(p["hctl"], p["old_size_bytes"], p["new_size_bytes"]) for p in result["resized"][0]["paths"]] == [
        ("2:0:0:1", 2 * GIB, 2 * GIB),
        ("3:0:0:1", GIB, 2 * GIB),
    ]
    assert result["changed"] is True


class RefusingKernel(Kernel):
    """The kernel refuses the scan write to host3 (its host went away between the plan and the write)."""

    def write(self, path: str, text: str) -> None:
        if "/host3/" in path:
            raise OSError(errno.ENODEV, "No such device")
        super().write(path, text)


def test_a_scan_write_the_kernel_refused_is_reported_in_scanned(
    tmp_path: Path, host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    kernel = RefusingKernel(host["root"], None)
    host["make_host"] = fake_host(host["root"], kernel)
    result = run_module({"target": IQN, "luns": [1], "lock_file": host["lock"]}, capsys, host)
    assert result["failed"] is True
    assert result["msg"] == (
        f"writing '0 0 1' to {host['root']}/class/scsi_host/host3/scan failed: No such device "
        "(after 1 write(s) that succeeded)"
    )
    assert [(entry["hctl"], entry.get("error"), entry.get("errno")) for entry in result["scanned"]] == [
        ("2:0:0:1", None, None),
        ("3:0:0:1", "No such device", errno.ENODEV),
    ]
    assert kernel.writes == [("/class/scsi_host/host2/scan", "0 0 1")]
    assert not {"path", "line", "errno"} & set(result)  # folded into the scanned entry


def test_nothing_scannable_fails_without_a_skipped_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = build_sysfs(tmp_path, sessions=[{**SESSIONS[0], "state": "FAILED"}])
    kernel = Kernel(root, None)
    host = {"make_host": fake_host(root, kernel)}
    result = run_module({"target": IQN, "luns": [1], "lock_file": str(tmp_path / "lock")}, capsys, host)
    assert result["failed"] is True and result["msg"].startswith("nothing can be scanned: session 1 is FAILED")
    # Ansible reads "skipped" in a failed result as a skipped task and would ignore failed_when
    assert "skipped" not in result and result["unscannable"] == ["2:0:0:1"]
    assert kernel.writes == []


def lease(lock: str) -> Dict[str, Any]:
    data: Dict[str, Any] = json.loads(Path(lock + ".lease").read_text())
    return data


def test_lock_lease_is_reported_once_the_lease_is_held_renewed_and_released(
    host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    def scan(state: str) -> Dict[str, Any]:
        args = {"target": IQN, "luns": [1], "lock_file": host["lock"], "lock_lease": {"id": "resize-1", "state": state}}
        return run_module(args, capsys, host)

    held = scan("held")
    assert held["lock_lease"] == "held" and held["changed"] is True
    first = lease(host["lock"])
    assert first["id"] == "resize-1"
    renewed = scan("held")
    assert renewed["lock_lease"] == "held" and lease(host["lock"])["expires"] >= first["expires"]
    released = scan("released")
    assert released["lock_lease"] == "released" and not Path(host["lock"] + ".lease").exists()
    assert released["timings"]["total"] >= released["timings"]["lock"] >= 0


def test_a_failed_scan_reports_the_released_lease(host: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    run_module({"target": IQN, "luns": [1], "lock_file": host["lock"], "lock_lease": {"id": "x"}}, capsys, host)
    assert Path(host["lock"] + ".lease").exists()
    host["kernel"].after = None
    args = {"target": IQN, "luns": [3], "timeout": 0.3, "lock_file": host["lock"]}
    failed = run_module({**args, "lock_lease": {"id": "x", "state": "released"}}, capsys, host)
    assert failed["failed"] is True and failed["lock_lease"] == "released"
    assert not Path(host["lock"] + ".lease").exists()
    assert failed["timings"]["total"] >= 0.3  # the wait is work under the lock


def test_a_lock_timeout_reports_how_long_it_waited(host: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    os.makedirs(os.path.dirname(host["lock"]))
    fd = os.open(host["lock"], os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # another holder of the lock
        result = run_module({"target": IQN, "luns": [1], "lock_file": host["lock"], "lock_timeout": 0.3}, capsys, host)
    finally:
        os.close(fd)
    assert result["failed"] is True and result["msg"].startswith(f"could not take the host lock {host['lock']}")
    assert 0.3 <= result["timings"]["lock"] < 5 and result["timings"]["total"] == result["timings"]["lock"]
    assert result["scanned"] == [] and host["kernel"].writes == []


def test_a_lock_directory_others_may_write_is_refused_before_any_scan(
    host: Dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    result = run_module({"target": IQN, "luns": [1], "lock_file": str(shared / "x.lock")}, capsys, host)
    assert result["failed"] is True
    assert result["msg"].startswith(f"the lock directory {shared} (owner root (uid 0), mode 1777) is writable")
    assert result["unsafe_file"] == {"path": str(shared), "owner": "root (uid 0)", "mode": "1777"}
    assert result["scanned"] == [] and result["timings"] == {"lock": 0.0, "total": 0.0}
    assert list(shared.iterdir()) == []
    assert host["kernel"].writes == []


def test_a_lock_file_others_can_open_gives_a_warning(
    host: Dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    locks = tmp_path / "open-locks"
    locks.mkdir(mode=0o755)
    (locks / "x.lock").write_text("")
    (locks / "x.lock").chmod(0o644)
    result = run_module({"target": IQN, "luns": [1], "lock_file": str(locks / "x.lock")}, capsys, host)
    assert result.get("failed") is not True, result
    warnings = [w["event"]["msg"] if isinstance(w, dict) else w for w in result["warnings"]]  # 2.19: WarningSummary
    assert [w for w in warnings if "can be opened by other users" in w] != [], warnings
