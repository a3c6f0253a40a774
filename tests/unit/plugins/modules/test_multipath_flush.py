# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run multipath_flush's main() against a fake sysfs tree and a scripted runner that acts as the kernel."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Sequence

import pytest
from ansible.module_utils.common import warnings as ansible_warnings

from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._multipath import FIELD_SEP, show_paths
from ansible_collections.lunsafe.san.plugins.module_utils._runner import CommandResult
from ansible_collections.lunsafe.san.plugins.modules import multipath_flush
from ansible_collections.lunsafe.san.tests.unit.compat import patch_module_args
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
    # empty, of the type this ansible-core keeps them in (dicts from 2.19 on, lists in 2.17)
    monkeypatch.setattr(ansible_warnings, "_global_warnings", type(ansible_warnings._global_warnings)())
    monkeypatch.setattr(ansible_warnings, "_global_deprecations", type(ansible_warnings._global_deprecations)())


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
    kernel = Kernel(host["root"], [*kernel_state(), (["multipath", "-f", "mpatha"], 0, "", ""), NO_PATHS])
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
    assert "mounted at /srv/data (dm-0, ext4 from /dev/mapper/mpatha)" in result["msg"]
    assert (
        "map mpatha is open (open count 1) by no process /proc shows, but by the kernel for the mount at "
        "/srv/data (dm-0) (use force" in result["msg"]
    )
    assert "named before" not in result["msg"]
    assert result["holders"][0]["name"] == "/srv/data" and result["openers"] == []
    # the refusal says what it found: the map exists
    assert result["found"] is True and result["map"] == {"name": "mpatha", "dm": "dm-0", "uuid": UUID, "wwid": WWID}
    assert result["open_count"] == 1 and result["paths_removed"] == [] and result["changed"] is False
    assert kernel.writes == [] and len(kernel.calls) == 3  # the three read-only dmsetup queries
    assert (host["root"] / "block" / "dm-0").exists()


@pytest.mark.parametrize(
    ("args", "option", "message"),
    [
        ({"map": "mpatha", "retries": -1}, "retries", "retries must not be negative, got -1"),
        ({"map": "  "}, "map", "map must name a multipath map, got an empty string"),
        ({"map": "mpatha", "path_timeout": -1}, "path_timeout", "path_timeout must be greater than 0 seconds, got -1"),
        ({"map": "mpatha", "path_timeout": 0}, "path_timeout", "path_timeout must be greater than 0 seconds, got 0"),
        (
            {"map": "mpatha", "path_timeout": "inf"},
            "path_timeout",
            "path_timeout must be a finite number of seconds, got inf",
        ),
        (
            {"map": "mpatha", "command_timeout": "nan"},
            "command_timeout",
            "command_timeout must be a finite number of seconds, got nan",
        ),
        (
            {"map": "mpatha", "retry_interval": -0.5},
            "retry_interval",
            "retry_interval must be at least 0 seconds, got -0.5",
        ),
        ({"map": "mpatha", "lock_timeout": -1}, "lock_timeout", "lock_timeout must be at least 0 seconds, got -1"),
        (
            {"map": "mpatha", "lock_lease": {"id": "a", "ttl": 0}},
            "lock_lease.ttl",
            "lock_lease.ttl must be greater than 0 seconds, got 0",
        ),
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
    assert (result["option"], result["msg"]) == (
        "command_timeout",
        "command_timeout must be greater than 0 seconds, got 0",
    )


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


def open_map(host: Dict[str, Any], *, command: str, fd: int) -> None:
    """Pid 4242 (``command``) holds dm-0 open on descriptor ``fd``, as /proc shows it."""
    fd_dir = host["proc"] / "4242" / "fd"
    fd_dir.mkdir(parents=True)
    (host["proc"] / "4242" / "comm").write_text(command + "\n")
    os.symlink("/dev/dm-0", fd_dir / str(fd))


def test_an_open_map_is_refused_naming_the_processes_holding_it(
    host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    open_map(host, command="qemu-kvm", fd=7)
    kernel = Kernel(host["root"], kernel_state(open_count=1))
    result = run_module({"map": "mpatha", "lock_file": host["lock"]}, kernel, host, capsys)
    assert result["failed"] is True
    assert "map mpatha is open (open count 1) by pid 4242 (qemu-kvm) (use force" in result["msg"]
    assert result["openers"] == [{"pid": 4242, "command": "qemu-kvm", "device": "dm-0"}]
    assert kernel.writes == [] and len(kernel.calls) == 3


def test_an_open_map_is_refused_in_check_mode_too_with_what_was_observed(
    host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    open_map(host, command="sleep", fd=3)
    kernel = Kernel(host["root"], kernel_state(open_count=1))
    args = {"map": "/dev/dm-0", "lock_file": host["lock"], "_ansible_check_mode": True}
    result = run_module(args, kernel, host, capsys)
    assert result["failed"] is True and result["changed"] is False
    assert "map mpatha is open (open count 1) by pid 4242 (sleep)" in result["msg"]
    assert result["found"] is True and result["map"]["uuid"] == UUID and result["open_count"] == 1
    assert result["openers"] == [{"pid": 4242, "command": "sleep", "device": "dm-0"}]
    assert [step["action"] for step in result["plan"]][:2] == ["flush_map", "delete_path"]
    assert kernel.writes == []


@pytest.mark.parametrize(
    ("ref", "what"),
    [
        ("/dev/sdc", "'/dev/sdc' is SCSI device sdc (3:0:0:1, WWID " + WWID + ")"),
        ("sdb", "'sdb' is SCSI device sdb (2:0:0:1, WWID " + WWID + ")"),
    ],
)
def test_a_path_device_is_refused_naming_its_map(
    ref: str, what: str, host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    kernel = Kernel(host["root"], [])
    for check_mode in (True, False):
        args = {"map": ref, "lock_file": host["lock"], "_ansible_check_mode": check_mode}
        result = run_module(args, kernel, host, capsys)
        assert result["failed"] is True and result["option"] == "map" and result["value"] == ref
        assert result["msg"] == (
            f"{what}, a path of multipath map mpatha (dm-0, WWID {WWID}), not a map: name the map instead "
            f"(mpatha, /dev/mapper/mpatha, /dev/dm-0, {WWID}, {UUID})"
        )
    assert kernel.calls == [] and kernel.writes == []
    assert (host["root"] / "block" / "dm-0").exists()


def test_a_partition_of_a_path_and_a_disk_without_a_map_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    devices = [{**DEVICES[0], "partitions": ["sdb1"]}, DEVICES[1]]
    root = build_sysfs(tmp_path, sessions=SESSIONS, devices=devices, maps=[{**MAPS[0], "slaves": ["sdb"]}])
    (tmp_path / "proc").mkdir()
    setup = {"root": root, "proc": tmp_path / "proc", "mountinfo": tmp_path / "mi", "wwids": tmp_path / "wwids"}
    setup["mountinfo"].write_text("")
    kernel = Kernel(root, [])
    result = run_module({"map": "/dev/sdb1", "lock_file": str(tmp_path / "lock")}, kernel, setup, capsys)
    assert result["msg"].startswith("'/dev/sdb1' is partition sdb1 of SCSI device sdb (2:0:0:1, WWID")
    assert "a path of multipath map mpatha (dm-0" in result["msg"]
    result = run_module({"map": "sdc", "lock_file": str(tmp_path / "lock")}, kernel, setup, capsys)
    assert result["msg"].startswith(f"'sdc' is SCSI device sdc (3:0:0:1, WWID {WWID}), which no multipath map holds")
    assert result["found"] is False and kernel.calls == []


def lease(host: Dict[str, Any]) -> Dict[str, Any]:
    data: Dict[str, Any] = json.loads(Path(host["lock"] + ".lease").read_text())
    return data


def test_lock_lease_is_reported_once_the_lease_is_held_renewed_and_released(
    host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    def flush(state: str) -> Dict[str, Any]:
        args = {"map": "mpathz", "lock_file": host["lock"], "lock_lease": {"id": "detach-1", "state": state}}
        return run_module(args, Kernel(host["root"], []), host, capsys)

    held = flush("held")
    assert held["lock_lease"] == "held" and held["found"] is False
    first = lease(host)
    assert first["id"] == "detach-1"
    renewed = flush("held")
    assert renewed["lock_lease"] == "held" and lease(host)["expires"] >= first["expires"]
    released = flush("released")
    assert released["lock_lease"] == "released"
    assert not Path(host["lock"] + ".lease").exists()
    assert released["timings"]["lock"] >= 0 and released["timings"]["total"] >= released["elapsed_seconds"]


def test_a_refused_flush_reports_the_released_lease(host: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    host["mountinfo"].write_text("40 22 254:0 / /srv/data rw shared:20 - ext4 /dev/mapper/mpatha rw\n")
    args = {"map": "mpatha", "lock_file": host["lock"], "lock_lease": {"id": "detach-1"}}
    run_module({**args, "map": "mpathz"}, Kernel(host["root"], []), host, capsys)
    assert Path(host["lock"] + ".lease").exists()
    refused = run_module(
        {**args, "lock_lease": {"id": "detach-1", "state": "released"}},
        Kernel(host["root"], kernel_state(open_count=1)),
        host,
        capsys,
    )
    assert refused["failed"] is True and refused["found"] is True
    assert refused["lock_lease"] == "released" and not Path(host["lock"] + ".lease").exists()


def test_a_lock_timeout_reports_how_long_it_waited(host: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    os.makedirs(os.path.dirname(host["lock"]))
    fd = os.open(host["lock"], os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # another holder of the lock (flock(2) excludes this process's own run too)
        kernel = Kernel(host["root"], [])
        result = run_module({"map": "mpatha", "lock_file": host["lock"], "lock_timeout": 0.3}, kernel, host, capsys)
    finally:
        os.close(fd)
    assert result["failed"] is True and result["msg"].startswith(f"could not take the host lock {host['lock']}")
    assert 0.3 <= result["timings"]["lock"] < 5 and result["timings"]["total"] == result["timings"]["lock"]
    assert result["elapsed_seconds"] == 0.0 and result["found"] is False and kernel.calls == []


def test_lock_timeout_zero_is_one_attempt_and_retry_interval_zero_is_accepted(
    host: Dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    args = {"map": "mpathz", "lock_file": host["lock"], "lock_timeout": 0, "retry_interval": 0}
    result = run_module(args, Kernel(host["root"], []), host, capsys)
    assert result.get("failed") is None and result["found"] is False
    assert result["timings"]["lock"] < 1


def test_a_planted_lease_is_refused_before_the_map_is_looked_at(
    host: Dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    locks = tmp_path / "locks"
    locks.mkdir(mode=0o755)
    lease = locks / "x.lock.lease"
    lease.write_text('{"id": "evil", "expires": 1e12, "ttl": 99999, "boot_id": "", "pid": 1}')
    os.chown(lease, 65534, -1)
    kernel = Kernel(host["root"], kernel_state())
    result = run_module({"map": "mpatha", "lock_file": str(locks / "x.lock")}, kernel, host, capsys)
    assert result["failed"] is True
    assert f"the lease {lease} belongs to nobody (uid 65534)" in result["msg"]
    assert result["unsafe_file"]["path"] == str(lease)
    assert result["timings"] == {"lock": 0.0, "total": 0.0} and result["changed"] is False
    assert kernel.writes == [] and kernel.argvs == []  # nothing looked at, nothing changed
