# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run multipath_flush's main() against a fake sysfs tree and a scripted runner that acts as the kernel."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Sequence

import pytest
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args

from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._multipath import FIELD_SEP, show_paths
from ansible_collections.lunsafe.san.plugins.module_utils._runner import CommandResult
from ansible_collections.lunsafe.san.plugins.modules import multipath_flush
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner, StepLike
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.sysfs_tree import (
    build_sysfs,
    remove_scsi_device,
)

IQN = "iqn.2003-01.org.lunsafe.test:array"
WWID = "36001405aaaaaaaaaaaaaaaaaaaaaaaa1"
UUID = "mpath-" + WWID
SEP = FIELD_SEP
SESSIONS = [
    {"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10"},
    {"sid": 2, "host": 3, "targetname": IQN, "address": "192.0.2.11"},
]
DEVICES = [
    {"hctl": "2:0:0:1", "sid": 1, "name": "sdb", "wwid": "naa.6001405aaaaaaaaaaaaaaaaaaaaaaaa1"},
    {"hctl": "3:0:0:1", "sid": 2, "name": "sdc", "wwid": "naa.6001405aaaaaaaaaaaaaaaaaaaaaaaa1"},
]
MAPS = [{"dm": "dm-0", "name": "mpatha", "uuid": UUID, "slaves": ["sdb", "sdc"]}]
TABLE = "0 2097152 multipath 0 1 alua 1 1 service-time 0 2 2 8:16 1 1 8:32 1 1\n"
STATUS = "0 2097152 multipath 2 0 0 0 1 1 A 0 2 2 8:16 A 0 0 1 8:32 A 0 0 1\n"
NO_PATHS: StepLike = (show_paths(), 0, "ok\n", "")


@pytest.fixture(autouse=True)
def one_module_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test is one module run, as on a host: warnings and deprecations that ansible-core keeps for the
    run in module globals must not leak in from main() calls of earlier tests."""
    monkeypatch.setattr(ansible_warnings, "_global_warnings", {})
    monkeypatch.setattr(ansible_warnings, "_global_deprecations", {})


def kernel_state(open_count: int = 0) -> List[StepLike]:
    return [
        (["dmsetup", "info", "-c", "--noheadings", "--separator", SEP, "-o", "name,uuid,open", "-u", UUID],
         0, f"mpatha{SEP}{UUID}{SEP}{open_count}\n", ""),
        (["dmsetup", "table", "-u", UUID], 0, TABLE, ""),
        (["dmsetup", "status", "-u", UUID], 0, STATUS, ""),
    ]  # fmt: skip


class Kernel(ScriptedRunner):
    """``multipath -f`` removes dm-0 from the fake sysfs; a write to a delete file removes that device."""

    def __init__(self, root: Path, script: Sequence[StepLike], *, flush_works: bool = True) -> None:
        super().__init__(script)
        self.root = root
        self.flush_works = flush_works
        self.writes: List[str] = []

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        result = super().run(argv, **kwargs)
        if list(argv[:2]) == ["multipath", "-f"] and self.flush_works:
            real = os.path.realpath(self.root / "block" / "dm-0")
            for slave in os.listdir(os.path.join(real, "slaves")):
                os.unlink(os.path.join(os.path.realpath(self.root / "block" / slave), "holders", "dm-0"))
            (self.root / "block" / "dm-0").unlink()
            (self.root / "class" / "block" / "dm-0").unlink()
            shutil.rmtree(real)
        return result

    def write(self, path: str, value: str) -> None:
        self.writes.append(path[len(str(self.root)) :])
        if path.endswith("/delete"):
            remove_scsi_device(self.root, hctl=path.split("/")[-3])


@pytest.fixture
def host(tmp_path: Path) -> Dict[str, Any]:
    root = build_sysfs(tmp_path, sessions=SESSIONS, devices=DEVICES, maps=MAPS)
    (root / "block" / "dm-0" / "dev").write_text("254:0\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("22 1 254:9 / / rw shared:1 - ext4 /dev/vda rw\n")
    wwids = tmp_path / "wwids"
    wwids.write_text(f"/{WWID}/\n")
    proc = tmp_path / "proc"
    proc.mkdir()
    return {
        "root": root,
        "mountinfo": mountinfo,
        "wwids": wwids,
        "proc": proc,
        "lock": str(tmp_path / "lock" / "lunsafe.lock"),
    }


class Clock:
    """Time passes only by sleeping: waits end at their deadline at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run_module(
    args: Dict[str, Any], kernel: Kernel, host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> Dict[str, Any]:
    """main() over a host whose commands and sysfs writes go to the fake kernel."""
    clock = Clock()

    def make_host(_runner: Any) -> Host:
        return Host(
            runner=kernel,
            sysfs_root=str(kernel.root),
            proc_root=str(host["proc"]),
            mountinfo_path=str(host["mountinfo"]),
            wwids_file=str(host["wwids"]),
            writer=kernel.write,
            clock=clock,
            sleep=clock.sleep,
        )

    with patch_module_args(args), pytest.raises(SystemExit):
        multipath_flush.main(make_host=make_host)
    result: Dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_check_mode_reports_the_plan_and_writes_nothing(
    host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    kernel = Kernel(host["root"], kernel_state())
    args = {"map": "mpatha", "lock_file": host["lock"], "_ansible_check_mode": True, "_ansible_diff": True}
    result = run_module(args, kernel, host, capsys)
    assert result["changed"] is True and result["found"] is True
    assert [step["action"] for step in result["plan"]] == [
        "flush_map",
        "delete_path",
        "forget_path",
        "delete_path",
        "forget_path",
    ]
    assert [path["device"] for path in result["paths_removed"]] == ["sdb", "sdc"]
    assert result["diff"] == {
        "before": {"map": f"mpatha (dm-0, {UUID})", "paths": ["2:0:0:1 sdb", "3:0:0:1 sdc"]},
        "after": {},
    }
    assert kernel.writes == [] and result["steps"] == []
    assert [argv[0] for argv in kernel.argvs] == ["dmsetup", "dmsetup", "dmsetup"]  # read-only queries only
    assert not os.path.exists(host["lock"])  # check mode creates no lock file either
    assert (host["root"] / "block" / "dm-0").exists()


def test_flush_then_again_is_idempotent(host: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    kernel = Kernel(host["root"], [*kernel_state(), (["multipath", "-f", "mpatha"], 0, "", ""), NO_PATHS, NO_PATHS])
    result = run_module({"map": "/dev/mapper/mpatha", "lock_file": host["lock"]}, kernel, host, capsys)
    assert result["changed"] is True
    assert result["map"] == {"name": "mpatha", "dm": "dm-0", "uuid": UUID, "wwid": WWID}
    assert [path["hctl"] for path in result["paths_removed"]] == ["2:0:0:1", "3:0:0:1"]
    assert kernel.writes == ["/class/scsi_device/2:0:0:1/device/delete", "/class/scsi_device/3:0:0:1/device/delete"]
    assert not (host["root"] / "block" / "dm-0").exists()
    assert kernel.remaining == []

    again = Kernel(host["root"], [])
    result = run_module({"map": WWID, "lock_file": host["lock"]}, again, host, capsys)
    assert result["changed"] is False and result["found"] is False
    assert result["plan"] == [] and again.calls == []


def test_remove_wwid_after_the_map_is_gone_changes_only_the_wwids_file(
    host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(host["root"])
    root = build_sysfs(host["root"].parent, sessions=SESSIONS)
    wwids: Path = host["wwids"]

    class WwidKernel(Kernel):
        def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
            wwids.write_text("")
            return super().run(argv, **kwargs)

    kernel = WwidKernel(root, [(["multipath", "-w", WWID], 0, f"wwid '{WWID}' removed\n", "")])
    result = run_module({"map": WWID, "remove_wwid": True, "lock_file": host["lock"]}, kernel, host, capsys)
    assert result["changed"] is True and result["found"] is False
    assert [step["action"] for step in result["steps"]] == ["remove_wwid"]


def test_mounted_map_is_refused_with_nothing_run(host: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    host["mountinfo"].write_text("40 22 254:0 / /srv/data rw shared:20 - ext4 /dev/mapper/mpatha rw\n")
    kernel = Kernel(host["root"], kernel_state(open_count=1))
    result = run_module({"map": "dm-0", "lock_file": host["lock"]}, kernel, host, capsys)
    assert result["failed"] is True
    assert "mounted: dm-0 mounted on /srv/data" in result["msg"]
    assert "map mpatha is open (open count 1) by what is named before" in result["msg"]
    assert result["holders"][0]["name"] == "/srv/data" and result["openers"] == []
    assert kernel.writes == [] and len(kernel.calls) == 3  # the three read-only dmsetup queries
    assert (host["root"] / "block" / "dm-0").exists()


@pytest.mark.parametrize(
    ("args", "option", "message"),
    [
        ({"map": "mpatha", "retries": -1}, "retries", "retries must not be negative, got -1"),
        ({"map": "  "}, "map", "map must name a multipath map, got an empty string"),
        ({"map": "mpatha", "path_timeout": -1}, "path_timeout", "path_timeout must be at least 0, got -1"),
    ],
)
def test_invalid_input_fails_before_anything_runs(
    args: Dict[str, Any], option: str, message: str, host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    kernel = Kernel(host["root"], [])
    result = run_module({**args, "lock_file": host["lock"]}, kernel, host, capsys)
    assert result["failed"] is True and result["option"] == option
    assert result["msg"] == message
    assert kernel.calls == []


def test_a_zero_command_timeout_is_named_as_the_option(
    host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    kernel = Kernel(host["root"], [])
    result = run_module({"map": "mpatha", "command_timeout": 0, "lock_file": host["lock"]}, kernel, host, capsys)
    assert result["failed"] is True and kernel.calls == []
    assert (result["option"], result["msg"]) == ("command_timeout", "command_timeout must be at least 0.001, got 0")


def test_a_flush_that_keeps_failing_reports_what_ran_and_the_plan(
    host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    in_use: StepLike = (["multipath", "-f", "mpatha"], 1, "", "mpatha: map in use\n")
    kernel = Kernel(host["root"], [*kernel_state(), in_use, in_use], flush_works=False)
    result = run_module(
        {"map": "mpatha", "retries": 1, "retry_interval": 0, "lock_file": host["lock"]}, kernel, host, capsys
    )
    assert result["failed"] is True
    assert "after 2 attempts: mpatha: map in use" in result["msg"]
    assert result["changed"] is True  # flush attempts ran
    assert [(step["action"], step["attempt"]) for step in result["done"]] == [("flush_map", 1), ("flush_map", 2)]
    assert [step["action"] for step in result["plan"]] == [
        "flush_map",
        "delete_path",
        "forget_path",
        "delete_path",
        "forget_path",
    ]
    assert kernel.writes == [] and kernel.remaining == []
    assert (host["root"] / "block" / "dm-0").exists()


def test_check_mode_diff_of_an_absent_map_is_empty(host: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    kernel = Kernel(host["root"], [])
    args = {"map": "mpathz", "lock_file": host["lock"], "_ansible_check_mode": True, "_ansible_diff": True}
    result = run_module(args, kernel, host, capsys)
    assert result["changed"] is False and result["found"] is False
    assert result["diff"] == {"before": {}, "after": {}}
    assert kernel.calls == []


def test_an_open_map_is_refused_naming_the_processes_holding_it(
    host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    fd_dir = host["proc"] / "4242" / "fd"
    fd_dir.mkdir(parents=True)
    (host["proc"] / "4242" / "comm").write_text("qemu-kvm\n")
    os.symlink("/dev/dm-0", fd_dir / "7")
    kernel = Kernel(host["root"], kernel_state(open_count=1))
    result = run_module({"map": "mpatha", "lock_file": host["lock"]}, kernel, host, capsys)
    assert result["failed"] is True
    assert "map mpatha is open (open count 1) by pid 4242 (qemu-kvm) (use force" in result["msg"]
    assert result["openers"] == [{"pid": 4242, "command": "qemu-kvm", "device": "dm-0"}]
    assert kernel.writes == [] and len(kernel.calls) == 3
