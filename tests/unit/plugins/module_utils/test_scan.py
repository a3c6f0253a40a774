# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError
from ansible_collections.lunsafe.san.plugins.module_utils._hctl import Hctl
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._portal import Portal
from ansible_collections.lunsafe.san.plugins.module_utils._scan import (
    ACTION_PENDING,
    ACTION_PRESENT,
    ACTION_REFRESH,
    ACTION_SCAN,
    ACTION_SKIP,
    ResolveError,
    ScanPlan,
    ScanTimeout,
    ScanWriteError,
    apply_plan,
    build_request,
    plan_scan,
    planned_writes,
    summarize,
    wait_for_devices,
)
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import read_snapshot
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.sysfs_tree import build_sysfs

IQN = "iqn.2003-01.org.lunsafe.test:array"
OTHER_IQN = "iqn.2003-01.org.lunsafe.test:other"
WWID_RAW = "naa.6001405aaaaaaaaaaaaaaaaaaaaaaaa1"
WWID = "36001405aaaaaaaaaaaaaaaaaaaaaaaa1"

TWO_PATHS = [
    {"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10"},
    {"sid": 2, "host": 3, "targetname": IQN, "address": "192.0.2.11"},
]
LUN1_BOTH = [
    {"hctl": "2:0:0:1", "sid": 1, "name": "sdb", "wwid": WWID_RAW},
    {"hctl": "3:0:0:1", "sid": 2, "name": "sdc", "wwid": WWID_RAW},
]


def _lines(plan: ScanPlan, root: Path) -> List[Tuple[str, str]]:
    return [(write.path[len(str(root)) :], write.text) for write in planned_writes(plan=plan, sysfs_root=str(root))]


def _plan(root: Path, **request: Any) -> ScanPlan:
    return plan_scan(request=build_request(**request), snapshot=read_snapshot(sysfs_root=str(root)))


def _host(root: Path, **overrides: Any) -> Host:
    """A host over the fake tree; nothing in _scan runs a command, so the runner has no script."""
    return Host(runner=ScriptedRunner(), sysfs_root=str(root), **overrides)


class Kernel:
    """Plays the kernel for a write: after it, sysfs looks like the tree built from ``after``."""

    def __init__(self, tmp_path: Path, root: Path, **after: Any) -> None:
        self.root = root
        self.after = build_sysfs(tmp_path, name="after", **after)
        self.writes: List[Tuple[str, str]] = []

    def write(self, path: str, text: str) -> None:
        self.writes.append((path[len(str(self.root)) :], text))
        shutil.rmtree(self.root)
        shutil.copytree(self.after, self.root, symlinks=True)


# ---- build_request ------------------------------------------------------------------------------------


def test_request_by_target_maps_luns_and_drops_duplicates() -> None:
    request = build_request(target=f" {IQN} ", luns=["1", 1, "0x10", 300], lun_addressing="sam2")
    assert request.target == IQN
    assert request.array_luns == (1, 16, 300)
    assert request.luns == (1, 16, 300 + 16384)


def test_request_by_hctl_and_portals() -> None:
    assert build_request(hctl=["2:0:0:1", "2:0:0:1", "3:0:0:1"]).hctls == (
        Hctl(host=2, channel=0, target=0, lun=1),
        Hctl(host=3, channel=0, target=0, lun=1),
    )
    request = build_request(target=IQN, luns=[0], portals=["192.0.2.10:3260", "[fd00::1]:3260"])
    assert request.portals == (Portal(address="192.0.2.10", port=3260), Portal(address="fd00::1", port=3260))


def test_request_resolves_host_names_to_every_address_and_merges_spellings() -> None:
    names = {"array.example.com": ["192.0.2.10", "fd00::1"]}
    request = build_request(
        target=IQN,
        luns=[0],
        portals=["array.example.com", "192.0.2.10:3260", "192.0.2.11"],
        resolver=names.__getitem__,
    )
    assert request.portals == (Portal("192.0.2.10", 3260), Portal("fd00::1", 3260), Portal("192.0.2.11", 3260))
    assert request.warnings == (
        "portals: '192.0.2.10:3260' and 'array.example.com' are the same portal 192.0.2.10:3260; using it once",
    )


def test_request_with_an_unresolvable_name_names_the_option() -> None:
    def resolver(name: str) -> List[str]:
        raise OSError(-2, "Name or service not known")

    with pytest.raises(InputError, match=r"host name 'array\.invalid' does not resolve") as info:
        build_request(target=IQN, luns=[0], portals=["array.invalid"], resolver=resolver)
    assert info.value.option == "portals"


def test_portal_without_port_means_3260_and_never_any_port(tmp_path: Path) -> None:
    sessions = [{"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10", "port": 3261}]
    root = build_sysfs(tmp_path, sessions=sessions)
    with pytest.raises(ResolveError, match=re.escape("through portal 192.0.2.10:3260: log in first")):
        _plan(root, target=IQN, luns=[1], portals=["192.0.2.10"])
    assert _lines(_plan(root, target=IQN, luns=[1], portals=["192.0.2.10:3261"]), root) == [
        ("/class/scsi_host/host2/scan", "0 0 1")
    ]


@pytest.mark.parametrize(
    ("kwargs", "option", "message"),
    [
        ({"target": IQN, "luns": [-1]}, "luns", "must not be negative"),
        ({"target": IQN, "luns": ["-1"]}, "luns", "must not be negative"),
        ({"target": IQN, "luns": ["-"]}, "luns", "wildcard"),
        ({"target": IQN, "luns": ["-"], "allow_wildcard": True}, "luns", "wildcard"),
        ({"target": IQN, "luns": ["12345678901234567"]}, "luns", "16-character"),
        ({"target": IQN, "luns": ["010"]}, "luns", "octal"),
        ({"target": IQN, "luns": ["one"]}, "luns", "not a decimal"),
        ({"target": IQN, "luns": [True]}, "luns", "must be a number"),
        ({"target": IQN, "luns": [256]}, "luns", "peripheral addressing"),
        ({"target": IQN, "luns": [16384], "lun_addressing": "sam3_flat"}, "luns", "out of range"),
        ({"target": IQN, "luns": []}, "luns", "at least one LUN"),
        ({"target": "iqn.x y", "luns": [1]}, "target", "iSCSI name"),
        ({"target": IQN, "luns": [1], "portals": ["10.0.0.1:99999"]}, "portals", "invalid TCP port"),
        ({"hctl": ["2:0:0"]}, "hctl", "is not an H:C:T:L"),
        ({"hctl": ["2:0:0:-1"]}, "hctl", "is not an H:C:T:L"),
        ({"hctl": ["2:0:0:12345678901234567"]}, "hctl", "16-character"),
        ({"hctl": []}, "hctl", "at least one"),
        ({"hctl": ["2:0:0:1"], "luns": [1]}, "luns", "only go with target"),
        ({"hctl": ["2:0:0:1"], "target": IQN, "luns": [1]}, "hctl", "got both hctl and target"),
        ({}, "hctl", "got neither"),
    ],
)
def test_request_refuses_bad_input(kwargs: Dict[str, Any], option: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        build_request(**kwargs)
    assert info.value.option == option


# ---- plan_scan ----------------------------------------------------------------------------------------


def test_plan_scans_one_line_per_session_from_target_id(tmp_path: Path) -> None:
    root = build_sysfs(tmp_path, sessions=TWO_PATHS)  # right after login with manual scan: no target dirs
    plan = _plan(root, target=IQN, luns=[1, 2])
    assert [(item.address, item.sid, item.action) for item in plan.items] == [
        ("2:0:0:1", 1, ACTION_SCAN),
        ("3:0:0:1", 2, ACTION_SCAN),
        ("2:0:0:2", 1, ACTION_SCAN),
        ("3:0:0:2", 2, ACTION_SCAN),
    ]
    assert _lines(plan, root) == [
        ("/class/scsi_host/host2/scan", "0 0 1"),
        ("/class/scsi_host/host3/scan", "0 0 1"),
        ("/class/scsi_host/host2/scan", "0 0 2"),
        ("/class/scsi_host/host3/scan", "0 0 2"),
    ]


def test_plan_restricts_to_portals_and_ignores_other_targets(tmp_path: Path) -> None:
    sessions = [*TWO_PATHS, {"sid": 3, "host": 4, "targetname": OTHER_IQN, "address": "192.0.2.10"}]
    root = build_sysfs(tmp_path, sessions=sessions)
    plan = _plan(root, target=IQN, luns=[5], portals=["192.0.2.11"])
    assert _lines(plan, root) == [("/class/scsi_host/host3/scan", "0 0 5")]
    assert [session.sid for session in plan.sessions] == [2]


def test_plan_fails_without_session_for_target_or_portal(tmp_path: Path) -> None:
    root = build_sysfs(tmp_path, sessions=TWO_PATHS)
    with pytest.raises(ResolveError, match=re.escape(f"no iSCSI session to target {OTHER_IQN}: log in first")):
        _plan(root, target=OTHER_IQN, luns=[1])
    with pytest.raises(ResolveError, match=re.escape("through portal 192.0.2.99:3260: log in first")) as info:
        _plan(root, target=IQN, luns=[1], portals=["192.0.2.10", "192.0.2.99"])
    assert "sid 1 (host2, 192.0.2.10:3260, LOGGED_IN)" in info.value.msg


def test_plan_never_rescans_existing_devices(tmp_path: Path) -> None:
    devices = [LUN1_BOTH[0], {"hctl": "3:0:0:1", "sid": 2, "name": None}]  # path 2: scsi_device, no disk yet
    root = build_sysfs(tmp_path, sessions=TWO_PATHS, devices=devices)
    plan = _plan(root, target=IQN, luns=[1])
    assert [item.action for item in plan.items] == [ACTION_PRESENT, ACTION_PENDING]
    assert _lines(plan, root) == []
    refresh = _plan(root, target=IQN, luns=[1], refresh=True)
    assert [item.action for item in refresh.items] == [ACTION_REFRESH, ACTION_PENDING]
    assert _lines(refresh, root) == [("/class/scsi_device/2:0:0:1/device/rescan", "1")]


def test_plan_uses_existing_target_dir(tmp_path: Path) -> None:
    # a session whose target dir is target2:0:7 (kernel without target_id attribute)
    sessions = [{"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10", "targets": [(0, 7)],
                 "omit": ["target_id"]}]  # fmt: skip
    root = build_sysfs(tmp_path, sessions=sessions)
    assert _lines(_plan(root, target=IQN, luns=[3]), root) == [("/class/scsi_host/host2/scan", "0 7 3")]


def test_plan_refuses_wildcard_unless_allowed_and_alone_on_host(tmp_path: Path) -> None:
    session = {"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10", "omit": ["target_id"]}
    root = build_sysfs(tmp_path, sessions=[session])
    with pytest.raises(ResolveError, match="only a wildcard scan '- - 1' of host2 could reach it"):
        _plan(root, target=IQN, luns=[1])
    plan = _plan(root, target=IQN, luns=[1], allow_wildcard=True)
    assert [(item.address, item.line) for item in plan.items] == [("2:-:-:1", "- - 1")]
    assert _lines(plan, root) == [("/class/scsi_host/host2/scan", "- - 1")]

    shared = build_sysfs(
        tmp_path,
        name="shared",
        hosts=[{"host": 5, "parent": "pci0000:00/0000:00:03.0", "proc_name": "bnx2i"}],
        sessions=[{**session, "host": 5}, {"sid": 2, "host": 5, "targetname": OTHER_IQN, "address": "192.0.2.20"}],
    )
    with pytest.raises(ResolveError, match="refusing a wildcard scan '- - 1' of host5: it carries sessions 1, 2"):
        _plan(shared, target=IQN, luns=[1], allow_wildcard=True)


def test_plan_offload_host_uses_each_session_target_id(tmp_path: Path) -> None:
    root = build_sysfs(
        tmp_path,
        hosts=[{"host": 5, "parent": "pci0000:00/0000:00:03.0", "proc_name": "bnx2i"}],
        sessions=[
            {"sid": 1, "host": 5, "targetname": IQN, "address": "192.0.2.10", "target_id": 0},
            {"sid": 2, "host": 5, "targetname": IQN, "address": "192.0.2.11", "target_id": 1},
            {"sid": 3, "host": 5, "targetname": OTHER_IQN, "address": "192.0.2.12", "target_id": 2},
        ],
    )
    plan = _plan(root, target=IQN, luns=[4])
    assert _lines(plan, root) == [("/class/scsi_host/host5/scan", "0 0 4"), ("/class/scsi_host/host5/scan", "0 1 4")]


def test_plan_skips_sessions_not_logged_in(tmp_path: Path) -> None:
    sessions = [TWO_PATHS[0], {**TWO_PATHS[1], "state": "FAILED"}]
    root = build_sysfs(tmp_path, sessions=sessions)
    plan = _plan(root, target=IQN, luns=[1])
    assert [(item.address, item.action) for item in plan.items] == [("2:0:0:1", ACTION_SCAN), ("3:0:0:1", ACTION_SKIP)]
    assert "session 2 is FAILED" in plan.items[1].reason
    assert _lines(plan, root) == [("/class/scsi_host/host2/scan", "0 0 1")]
    with pytest.raises(ResolveError, match="nothing can be scanned: session 2 is FAILED"):
        _plan(root, target=IQN, luns=[1], portals=["192.0.2.11"])


def test_plan_by_hctl_checks_host_and_session(tmp_path: Path) -> None:
    root = build_sysfs(
        tmp_path,
        hosts=[{"host": 0, "iscsi": False, "proc_name": "ahci"}, {"host": 7}],
        sessions=TWO_PATHS,
    )
    plan = _plan(root, hctl=["3:0:0:4", "0:0:1:0"])
    assert [(item.address, item.sid) for item in plan.items] == [("3:0:0:4", 2), ("0:0:1:0", None)]
    assert _lines(plan, root) == [("/class/scsi_host/host3/scan", "0 0 4"), ("/class/scsi_host/host0/scan", "0 1 0")]
    with pytest.raises(ResolveError, match="there is no SCSI host 9 for 9:0:0:1"):
        _plan(root, hctl=["9:0:0:1"])
    with pytest.raises(ResolveError, match="iSCSI host7 has no session"):
        _plan(root, hctl=["7:0:0:1"])
    with pytest.raises(ResolveError, match="no single iSCSI session of host2 is at channel 0 target 3"):
        _plan(root, hctl=["2:0:3:1"])


# ---- apply_plan ---------------------------------------------------------------------------------------


def test_apply_writes_exact_lines_to_scan_files(tmp_path: Path) -> None:
    root = build_sysfs(tmp_path, sessions=TWO_PATHS)
    plan = _plan(root, target=IQN, luns=[1])
    done = apply_plan(plan=plan, host=_host(root))
    assert [(write.host, write.text) for write in done] == [(2, "0 0 1"), (3, "0 0 1")]
    for host in (2, 3):
        assert (root / "class" / "scsi_host" / f"host{host}" / "scan").read_text() == "0 0 1"
    assert [write.to_dict()["line"] for write in done] == ["0 0 1", "0 0 1"]


def test_apply_reports_failed_write_and_writes_done(tmp_path: Path) -> None:
    root = build_sysfs(tmp_path, sessions=TWO_PATHS)
    plan = _plan(root, target=IQN, luns=[1])
    seen: List[str] = []

    def write(path: str, text: str) -> None:
        if "host3" in path:
            raise OSError(22, "Invalid argument")
        seen.append(path)

    with pytest.raises(ScanWriteError, match=r"writing '0 0 1' to .*host3/scan failed: Invalid argument") as info:
        apply_plan(plan=plan, host=_host(root, writer=write))
    # the refused write is reported too (a write was made), with the kernel's error
    assert [(e["host"], e.get("error"), e.get("errno")) for e in info.value.details["scanned"]] == [
        (2, None, None),
        (3, "Invalid argument", 22),
    ]
    assert len(seen) == 1


# ---- waiting ------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: List[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_returns_once_every_block_device_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = build_sysfs(tmp_path, sessions=TWO_PATHS)
    plan = _plan(root, target=IQN, luns=[1])
    clock = FakeClock()
    kernel = Kernel(tmp_path, root, sessions=TWO_PATHS, devices=LUN1_BOTH)
    partial = build_sysfs(tmp_path, name="partial", sessions=TWO_PATHS, devices=[LUN1_BOTH[0]])

    def sleep(seconds: float) -> None:  # one path at the first poll, both at the second
        clock.sleep(seconds)
        source = partial if len(clock.sleeps) == 1 else kernel.after
        shutil.rmtree(root)
        shutil.copytree(source, root, symlinks=True)

    reads: List[bool] = []
    read = Host.snapshot

    def recording(self: Host, *, device_detail: bool = True) -> Any:
        reads.append(device_detail)
        return read(self, device_detail=device_detail)

    monkeypatch.setattr(Host, "snapshot", recording)
    snapshot, waited = wait_for_devices(plan=plan, host=_host(root, clock=clock, sleep=sleep), timeout=10)
    assert [device.name for device in snapshot.devices] == ["sdb", "sdc"]
    assert len(clock.sleeps) == 2
    assert waited == pytest.approx(sum(clock.sleeps))
    # the three polls read no device detail; the caller gets one full snapshot at the end
    assert reads == [False, False, False, True]
    assert all(device.size_bytes is not None for device in snapshot.devices)


def test_wait_times_out_naming_what_was_scanned_and_seen(tmp_path: Path) -> None:
    root = build_sysfs(tmp_path, sessions=TWO_PATHS, devices=[{"hctl": "3:0:0:3", "sid": 2, "name": None}])
    plan = _plan(root, target=IQN, luns=[3])
    done = apply_plan(plan=plan, host=_host(root, writer=lambda path, text: None))
    clock = FakeClock()
    with pytest.raises(ScanTimeout) as info:
        wait_for_devices(plan=plan, host=_host(root, clock=clock, sleep=clock.sleep), timeout=5, scanned=done)
    error = info.value
    assert error.msg.startswith("timed out after 5s waiting for the block device of 2:0:0:3, 3:0:0:3")
    assert "no device at 2:0:0:3; scsi_device 3:0:0:3 in state running without a block device" in error.msg
    assert "Scanned: host2 '0 0 3'." in error.msg  # 3:0:0:3 exists: only host2 was scanned
    assert error.details["missing"] == ["2:0:0:3", "3:0:0:3"]
    assert error.details["waited_seconds"] == pytest.approx(5)
    assert sum(clock.sleeps) == pytest.approx(5)
    assert error.snapshot.device_at(hctl="3:0:0:3") is not None


# ---- summarize ----------------------------------------------------------------------------------------


def test_summarize_flags_new_devices_and_unrequested_ones(tmp_path: Path) -> None:
    root = build_sysfs(tmp_path, sessions=TWO_PATHS)
    before = read_snapshot(sysfs_root=str(root))
    plan = plan_scan(request=build_request(target=IQN, luns=[1]), snapshot=before)
    extra = {"hctl": "2:0:0:2", "sid": 1, "name": "sdd", "wwid": "naa.6001405bbbbbbbbbbbbbbbbbbbbbbbb2"}
    kernel = Kernel(tmp_path, root, sessions=TWO_PATHS, devices=[*LUN1_BOTH, extra])
    apply_plan(plan=plan, host=_host(root, writer=kernel.write))
    summary = summarize(plan=plan, before=before, after=read_snapshot(sysfs_root=str(root)))
    assert summary["changed"] is True
    assert summary["unrequested"] == ["2:0:0:2"]
    assert summary["pending"] == []
    first = summary["devices"][0]
    assert first == {
        "hctl": "2:0:0:1",
        "lun": 1,
        "name": "sdb",
        "path": "/dev/sdb",
        "wwid": WWID,
        "sysfs_wwid": WWID_RAW,
        "state": "running",
        "size_bytes": 2097152 * 512,
        "read_only": False,
        "sid": 1,
        "target": IQN,
        "portal": "192.0.2.10:3260",
        "new": True,
        "udev": None,
    }
    assert [device["hctl"] for device in summary["devices"]] == ["2:0:0:1", "3:0:0:1"]
    assert summary["diff"]["before"] == ""
    assert summary["diff"]["after"].splitlines() == [
        f"2:0:0:1 sdb {WWID} running {2097152 * 512}",
        f"3:0:0:1 sdc {WWID} running {2097152 * 512}",
    ]


def test_summarize_is_unchanged_when_devices_were_present(tmp_path: Path) -> None:
    root = build_sysfs(tmp_path, sessions=TWO_PATHS, devices=LUN1_BOTH)
    snapshot = read_snapshot(sysfs_root=str(root))
    plan = plan_scan(request=build_request(target=IQN, luns=[1]), snapshot=snapshot)
    summary = summarize(plan=plan, before=snapshot, after=read_snapshot(sysfs_root=str(root)))
    assert summary["changed"] is False
    assert [device["new"] for device in summary["devices"]] == [False, False]
    assert summary["diff"]["before"] == summary["diff"]["after"] != ""


def test_summarize_refresh_changed_only_if_identity_changed(tmp_path: Path) -> None:
    root = build_sysfs(tmp_path, sessions=TWO_PATHS, devices=LUN1_BOTH)
    before = read_snapshot(sysfs_root=str(root))
    plan = plan_scan(request=build_request(hctl=["2:0:0:1"], refresh=True), snapshot=before)
    grown = [{**LUN1_BOTH[0], "size": 4194304}, LUN1_BOTH[1]]
    kernel = Kernel(tmp_path, root, sessions=TWO_PATHS, devices=grown)
    apply_plan(plan=plan, host=_host(root, writer=kernel.write))
    assert kernel.writes == [("/class/scsi_device/2:0:0:1/device/rescan", "1")]
    summary = summarize(plan=plan, before=before, after=read_snapshot(sysfs_root=str(root)))
    assert summary["changed"] is True
    assert summary["devices"][0]["size_bytes"] == 4194304 * 512
    assert summary["devices"][0]["new"] is False
    same = summarize(plan=plan, before=before, after=before)
    assert same["changed"] is False


def test_fake_tree_swap_keeps_links_inside_root(tmp_path: Path) -> None:
    root = build_sysfs(tmp_path, sessions=TWO_PATHS)
    kernel = Kernel(tmp_path, root, sessions=TWO_PATHS, devices=LUN1_BOTH)
    kernel.write(str(root / "class" / "scsi_host" / "host2" / "scan"), "0 0 1")
    link = root / "class" / "scsi_device" / "2:0:0:1" / "device"
    assert os.path.realpath(link).startswith(os.path.realpath(root))
