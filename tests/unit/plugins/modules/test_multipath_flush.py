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
from ansible.module_utils.testing import patch_module_args

from ansible_collections.lunsafe.san.plugins.module_utils import _flush
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


def kernel_state(open_count: int = 0) -> List[StepLike]:
    return [
        (["dmsetup", "info", "-c", "--noheadings", "--separator", SEP, "-o", "name,uuid,open", "-u", UUID],
         0, f"mpatha{SEP}{UUID}{SEP}{open_count}\n", ""),
        (["dmsetup", "table", "-u", UUID], 0, TABLE, ""),
        (["dmsetup", "status", "-u", UUID], 0, STATUS, ""),
    ]  # fmt: skip


class Kernel(ScriptedRunner):
    """``multipath -f`` removes dm-0 from the fake sysfs; a write to a delete file removes that device."""

    def __init__(self, root: Path, script: Sequence[StepLike]) -> None:
        super().__init__(script)
        self.root = root
        self.writes: List[str] = []

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        result = super().run(argv, **kwargs)
        if list(argv[:2]) == ["multipath", "-f"]:
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
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dict[str, Any]:
    root = build_sysfs(tmp_path, sessions=SESSIONS, devices=DEVICES, maps=MAPS)
    (root / "block" / "dm-0" / "dev").write_text("254:0\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("22 1 254:9 / / rw shared:1 - ext4 /dev/vda rw\n")
    wwids = tmp_path / "wwids"
    wwids.write_text(f"/{WWID}/\n")
    monkeypatch.setattr(multipath_flush, "SYSFS_ROOT", str(root))
    monkeypatch.setattr(multipath_flush, "MOUNTINFO", str(mountinfo))
    monkeypatch.setattr(multipath_flush, "WWIDS_FILE", str(wwids))
    return {"root": root, "mountinfo": mountinfo, "lock": str(tmp_path / "lock" / "lunsafe.lock")}


def run_module(
    args: Dict[str, Any], kernel: Kernel, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Dict[str, Any]:
    monkeypatch.setattr(multipath_flush, "make_runner", lambda module: kernel)
    monkeypatch.setattr(_flush, "_write", kernel.write)
    with patch_module_args(args), pytest.raises(SystemExit):
        multipath_flush.main()
    result: Dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_check_mode_reports_the_plan_and_writes_nothing(
    host: Dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kernel = Kernel(host["root"], kernel_state())
    args = {"map": "mpatha", "lock_file": host["lock"], "_ansible_check_mode": True, "_ansible_diff": True}
    result = run_module(args, kernel, monkeypatch, capsys)
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


def test_flush_then_again_is_idempotent(
    host: Dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kernel = Kernel(host["root"], [*kernel_state(), (["multipath", "-f", "mpatha"], 0, "", ""), NO_PATHS, NO_PATHS])
    result = run_module({"map": "/dev/mapper/mpatha", "lock_file": host["lock"]}, kernel, monkeypatch, capsys)
    assert result["changed"] is True
    assert result["map"] == {"name": "mpatha", "dm": "dm-0", "uuid": UUID, "wwid": WWID}
    assert [path["hctl"] for path in result["paths_removed"]] == ["2:0:0:1", "3:0:0:1"]
    assert kernel.writes == ["/class/scsi_device/2:0:0:1/device/delete", "/class/scsi_device/3:0:0:1/device/delete"]
    assert not (host["root"] / "block" / "dm-0").exists()
    assert kernel.remaining == []

    again = Kernel(host["root"], [])
    result = run_module({"map": WWID, "lock_file": host["lock"]}, again, monkeypatch, capsys)
    assert result["changed"] is False and result["found"] is False
    assert result["plan"] == [] and again.calls == []


def test_remove_wwid_after_the_map_is_gone_changes_only_the_wwids_file(
    host: Dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(host["root"])
    root = build_sysfs(host["root"].parent, sessions=SESSIONS)
    wwids = Path(multipath_flush.WWIDS_FILE)

    class WwidKernel(Kernel):
        def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
            wwids.write_text("")
            return super().run(argv, **kwargs)

    kernel = WwidKernel(root, [(["multipath", "-w", WWID], 0, f"wwid '{WWID}' removed\n", "")])
    result = run_module({"map": WWID, "remove_wwid": True, "lock_file": host["lock"]}, kernel, monkeypatch, capsys)
    assert result["changed"] is True and result["found"] is False
    assert [step["action"] for step in result["steps"]] == ["remove_wwid"]


def test_mounted_map_is_refused_with_nothing_run(
    host: Dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host["mountinfo"].write_text("40 22 254:0 / /srv/data rw shared:20 - ext4 /dev/mapper/mpatha rw\n")
    kernel = Kernel(host["root"], kernel_state(open_count=1))
    result = run_module({"map": "dm-0", "lock_file": host["lock"]}, kernel, monkeypatch, capsys)
    assert result["failed"] is True
    assert "mounted: dm-0 mounted on /srv/data" in result["msg"]
    assert "open: dm-0 has open count 1" in result["msg"]
    assert result["holders"][0]["name"] == "/srv/data"
    assert kernel.writes == [] and len(kernel.calls) == 3  # the three read-only dmsetup queries
    assert (host["root"] / "block" / "dm-0").exists()


def test_invalid_retries_fail_before_anything_runs(
    host: Dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kernel = Kernel(host["root"], [])
    result = run_module({"map": "mpatha", "retries": -1, "lock_file": host["lock"]}, kernel, monkeypatch, capsys)
    assert result["failed"] is True and result["option"] == "retries"
    assert kernel.calls == []
