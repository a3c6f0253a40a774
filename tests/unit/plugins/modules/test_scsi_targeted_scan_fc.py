# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""scsi_targeted_scan over Fibre Channel: main() against fake FC sysfs trees, the "kernel" a writer that swaps
in the tree a write would produce."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pytest
from ansible.module_utils.common import warnings as ansible_warnings

from ansible_collections.lunsafe.san.plugins.modules import scsi_targeted_scan
from ansible_collections.lunsafe.san.tests.unit.compat import patch_module_args
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fc_fixture import build_from_capture
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fc_tree import build_fc_sysfs
from ansible_collections.lunsafe.san.tests.unit.plugins.modules.test_scsi_targeted_scan import Kernel, fake_host

INI_A = "0x2000525400fc0001"
INI_B = "0x2000525400fc0002"
TGT_A = "0x2000525400fc0003"
TGT_B = "0x2000525400fc0004"
WWID = "naa.6001405aaaaaaaaaaaaaaaaaaaaaaaa1"
UA_RULE = 'ACTION=="change", ENV{SDEV_UA}=="REPORTED_LUNS_DATA_HAS_CHANGED", RUN+="scan-scsi-target $env{DEVPATH}"\n'
LUN1 = [
    {"hctl": "2:0:0:1", "rport": "rport-2:0-0", "name": "sdb", "wwid": WWID},
    {"hctl": "2:0:1:1", "rport": "rport-2:0-1", "name": "sdc", "wwid": WWID},
    {"hctl": "3:0:0:1", "rport": "rport-3:0-0", "name": "sdd", "wwid": WWID},
    {"hctl": "3:0:1:1", "rport": "rport-3:0-1", "name": "sde", "wwid": WWID},
]


@pytest.fixture(autouse=True)
def one_module_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # empty, of the type this ansible-core keeps them in (dicts from 2.19 on, lists in 2.17)
    monkeypatch.setattr(ansible_warnings, "_global_warnings", type(ansible_warnings._global_warnings)())
    monkeypatch.setattr(ansible_warnings, "_global_deprecations", type(ansible_warnings._global_deprecations)())


def rports(states: Optional[Dict[str, str]] = None) -> List[Dict[str, Any]]:
    """host2 and host3 each see target ports A and B as target ids 0 and 1."""
    states = states or {}
    specs = [
        {"host": 2, "number": 0, "port_name": TGT_A, "scsi_target_id": 0},
        {"host": 2, "number": 1, "port_name": TGT_B, "scsi_target_id": 1},
        {"host": 3, "number": 0, "port_name": TGT_A, "scsi_target_id": 0},
        {"host": 3, "number": 1, "port_name": TGT_B, "scsi_target_id": 1},
    ]
    for spec in specs:
        spec["port_state"] = states.get(f"rport-{spec['host']}:0-{spec['number']}", "Online")
    return specs


def tree(
    tmp_path: Path,
    name: str,
    *,
    devices: Sequence[Dict[str, Any]] = (),
    states: Optional[Dict[str, str]] = None,
    scan_mode: Optional[str] = "manual",
    proc_name: str = "fcoe",
) -> Path:
    extra = {"scsi_host_attrs": {"lpfc_max_luns": 255}} if proc_name == "lpfc" else {}
    return build_fc_sysfs(
        tmp_path,
        name=name,
        fc_hosts=[
            {"host": 2, "port_name": INI_A, "proc_name": proc_name, **extra},
            {"host": 3, "port_name": INI_B, "proc_name": proc_name, **extra},
        ],
        rports=rports(states),
        devices=devices,
        scan_mode=scan_mode,
    )


def make(tmp_path: Path, *, before: Path, after: Optional[Path]) -> Dict[str, Any]:
    kernel = Kernel(before, after)
    return {"root": before, "kernel": kernel, "make_host": fake_host(before, kernel)}


def run_module(
    args: Dict[str, Any], capsys: pytest.CaptureFixture[str], host: Dict[str, Any], rules_dirs: Sequence[str] = ()
) -> Dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        scsi_targeted_scan.main(make_host=host["make_host"], rules_dirs=rules_dirs)
    result: Dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def warnings_of(result: Dict[str, Any]) -> List[str]:
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def test_one_lun_over_four_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = make(tmp_path, before=tree(tmp_path, "sys"), after=tree(tmp_path, "after", devices=LUN1))
    result = run_module({"fc_targets": [TGT_A, "20:00:52:54:00:FC:00:04"], "luns": [1]}, capsys, host)
    assert result["changed"] is True
    assert host["kernel"].writes == [
        ("/class/scsi_host/host2/scan", "0 0 1"),
        ("/class/scsi_host/host2/scan", "0 1 1"),
        ("/class/scsi_host/host3/scan", "0 0 1"),
        ("/class/scsi_host/host3/scan", "0 1 1"),
    ]
    assert [(d["hctl"], d["name"], d["rport"], d["target_wwpn"], d["new"]) for d in result["devices"]] == [
        ("2:0:0:1", "sdb", "rport-2:0-0", TGT_A, True),
        ("2:0:1:1", "sdc", "rport-2:0-1", TGT_B, True),
        ("3:0:0:1", "sdd", "rport-3:0-0", TGT_A, True),
        ("3:0:1:1", "sde", "rport-3:0-1", TGT_B, True),
    ]
    assert result["devices"][0]["sid"] is None and result["devices"][0]["target"] is None
    assert "warnings" not in result


def test_second_run_writes_nothing_and_check_mode_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    present = make(tmp_path, before=tree(tmp_path, "sys", devices=LUN1), after=None)
    again = run_module({"fc_targets": [TGT_A, TGT_B], "luns": [1]}, capsys, present)
    assert again["changed"] is False and present["kernel"].writes == [] and again["scanned"] == []
    check = make(tmp_path, before=tree(tmp_path, "check"), after=None)
    result = run_module({"fc_targets": [TGT_A], "luns": [1], "_ansible_check_mode": True}, capsys, check)
    assert result["changed"] is True and check["kernel"].writes == []
    assert [(w["host"], w["line"], w["hctl"]) for w in result["scanned"]] == [
        (2, "0 0 1", "2:0:0:1"),
        (3, "0 0 1", "3:0:0:1"),
    ]


def test_unpresented_lun_is_diagnosed_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = make(tmp_path, before=tree(tmp_path, "sys"), after=tree(tmp_path, "after"))
    result = run_module({"fc_targets": [TGT_A], "fc_initiators": [INI_A], "luns": [9], "timeout": 600}, capsys, host)
    assert result["failed"] is True
    assert host["kernel"].writes == [("/class/scsi_host/host2/scan", "0 0 9")]
    assert result["msg"] == (
        "the scan created no device at 2:0:0:9: 2:0:0:9: rport-2:0-0 (0x2000525400fc0003) is Online and answered, "
        f"but presents no LUN 9 to initiator {INI_A}: check the array's LUN masking / host mapping, or the LUN "
        "number and lun_addressing. Scanned: host2 '0 0 9'"
    )
    assert result["missing"] == ["2:0:0:9"] and result["changed"] is False and result["waited_seconds"] == 0.0


def test_port_blocked_during_the_scan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    after = tree(tmp_path, "after", devices=LUN1[2:3], states={"rport-2:0-0": "Blocked"})
    host = make(tmp_path, before=tree(tmp_path, "sys"), after=after)
    result = run_module({"fc_targets": [TGT_A], "luns": [1]}, capsys, host)
    assert result["failed"] is True
    assert "2:0:0:1: rport-2:0-0 is Blocked (the link to it is down" in result["msg"]
    assert result["changed"] is True and [d["hctl"] for d in result["devices"]] == ["3:0:0:1"]


def test_unknown_wwpn_is_diagnosed_before_any_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = make(tmp_path, before=tree(tmp_path, "sys"), after=None)
    result = run_module({"fc_targets": ["0x2000525400fc0099"], "luns": [1]}, capsys, host)
    assert result["failed"] is True and host["kernel"].writes == []
    assert result["msg"].startswith(
        "no usable Fibre Channel path to 0x2000525400fc0099: target 0x2000525400fc0099 is not visible from host2 "
        f"({INI_A}): no remote port with that WWPN has logged in on this fc_host"
    )
    assert len(result["problems"]) == 2 and result["scanned"] == []


def test_blocked_path_warns_and_the_others_are_scanned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    states = {"rport-3:0-0": "Blocked"}
    host = make(
        tmp_path,
        before=tree(tmp_path, "sys", states=states),
        after=tree(tmp_path, "after", devices=LUN1[:1], states=states),
    )
    result = run_module({"fc_targets": [TGT_A], "luns": [1]}, capsys, host)
    assert result["changed"] is True and host["kernel"].writes == [("/class/scsi_host/host2/scan", "0 0 1")]
    assert warnings_of(result) == [
        f"target {TGT_A} has no usable path from host3 ({INI_B}): rport-3:0-0 is Blocked (the link to it is down "
        "and the kernel waits dev_loss_tmo for it to return)."
    ]


def test_unknown_initiator_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = make(tmp_path, before=tree(tmp_path, "sys"), after=None)
    result = run_module({"fc_targets": [TGT_A], "fc_initiators": ["0x2000525400fc00ff"], "luns": [1]}, capsys, host)
    assert result["failed"] is True and host["kernel"].writes == []
    assert result["msg"].startswith(
        "fc_initiators 0x2000525400fc00ff is no Fibre Channel port of this host (fc_hosts: "
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"fc_targets": [TGT_A], "target": "iqn.2003-01.org.example:a", "luns": [1]}, "mutually exclusive"),
        ({"fc_targets": [TGT_A], "hctl": ["2:0:0:1"], "luns": [1]}, "mutually exclusive"),
        ({"fc_targets": [TGT_A]}, "missing parameter(s) required by 'fc_targets': luns"),
        ({"hctl": ["2:0:0:1"], "fc_initiators": [INI_A]}, "missing parameter(s) required by 'fc_initiators'"),
        ({"fc_targets": [TGT_A], "luns": [1], "allow_wildcard": True}, "allow_wildcard is refused with fc_targets"),
        ({"fc_targets": ["0x12"], "luns": [1]}, "fc_targets: '0x12' is not a WWPN"),
        ({"fc_targets": [TGT_A], "luns": ["-"]}, "invalid LUN"),
        ({"fc_targets": [], "luns": [1]}, "fc_targets must name at least one target WWPN"),
    ],
)
def test_bad_input_refused_before_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: Dict[str, Any], message: str
) -> None:
    host = make(tmp_path, before=tree(tmp_path, "sys"), after=None)
    result = run_module(args, capsys, host)
    assert result["failed"] is True and message in result["msg"] and host["kernel"].writes == []


def test_lun_above_the_hba_limit_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = make(tmp_path, before=tree(tmp_path, "sys", proc_name="lpfc"), after=None)
    result = run_module({"fc_targets": [TGT_A], "luns": [300], "lun_addressing": "transparent"}, capsys, host)
    assert result["failed"] is True and host["kernel"].writes == []
    assert result["msg"].startswith("LUN 300 is above the highest LUN host2 (lpfc) accepts (255,")


def test_scan_mode_none_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = make(tmp_path, before=tree(tmp_path, "sys", scan_mode="none"), after=None)
    result = run_module({"fc_targets": [TGT_A], "luns": [1]}, capsys, host)
    assert result["failed"] is True and host["kernel"].writes == []
    assert result["msg"].startswith("scsi_mod.scan is 'none': the kernel ignores every scan write")


def test_scan_mode_and_ua_rule_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "90-scsi-ua.rules").write_text(UA_RULE)
    host = make(
        tmp_path,
        before=tree(tmp_path, "sys", scan_mode="async"),
        after=tree(tmp_path, "after", devices=[LUN1[1], LUN1[3]], scan_mode="async"),
    )
    result = run_module({"fc_targets": [TGT_B], "luns": [1]}, capsys, host, rules_dirs=[str(rules)])
    assert result["changed"] is True
    found = warnings_of(result)
    assert [w.split(":")[0] for w in found] == [
        "scsi_mod.scan is 'async' on a host with Fibre Channel ports",
        f"udev rule {rules / '90-scsi-ua.rules'} rescans a whole SCSI target on REPORTED LUNS DATA HAS CHANGED "
        "(libstoragemgmt's 90-scsi-ua.rules)",
    ]


def test_hctl_on_an_fc_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = make(tmp_path, before=tree(tmp_path, "sys"), after=tree(tmp_path, "after", devices=LUN1))
    result = run_module({"hctl": ["3:0:1:1"]}, capsys, host)
    assert result["changed"] is True and host["kernel"].writes == [("/class/scsi_host/host3/scan", "0 1 1")]
    assert [(d["hctl"], d["rport"], d["target_wwpn"]) for d in result["devices"]] == [("3:0:1:1", "rport-3:0-1", TGT_B)]


def test_hctl_on_an_fc_host_without_that_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = make(tmp_path, before=tree(tmp_path, "sys"), after=None)
    result = run_module({"hctl": ["3:0:7:1"]}, capsys, host)
    assert result["failed"] is True and host["kernel"].writes == []
    assert result["msg"].startswith(
        "no remote port of FC host3 has channel 0 target id 7, so a scan of 3:0:7:1 would reach nothing (remote ports: "
        f"rport-3:0-0 {TGT_A} target id 0, rport-3:0-1 {TGT_B} target id 1)"
    )


def test_hctl_through_a_blocked_port_is_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = make(tmp_path, before=tree(tmp_path, "sys", states={"rport-2:0-1": "Not Present"}), after=None)
    result = run_module({"hctl": ["2:0:1:1"]}, capsys, host)
    assert result["failed"] is True and host["kernel"].writes == []
    assert result["msg"].startswith("nothing can be scanned: rport-2:0-1 is Not Present (it stayed away longer")


def test_real_capture_port_down_refuses_the_down_port_and_finds_the_present_lun(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lab capture with target port A down: nothing to scan through A (both rports Blocked, named);
    through B, LUN 1 is already there on both initiators, so nothing is written."""
    root = build_from_capture(tmp_path, "port_down")
    host = make(tmp_path, before=root, after=None)
    down = run_module({"fc_targets": [TGT_A], "fc_initiators": [INI_A, INI_B], "luns": [1]}, capsys, host)
    assert down["failed"] is True and host["kernel"].writes == []
    assert down["problems"] == [
        f"target {TGT_A} has no usable path from host2 ({INI_A}): rport-2:0-1 is Blocked (the link to it is down "
        "and the kernel waits dev_loss_tmo for it to return).",
        f"target {TGT_A} has no usable path from host3 ({INI_B}): rport-3:0-1 is Blocked (the link to it is down "
        "and the kernel waits dev_loss_tmo for it to return).",
    ]
    present = run_module({"fc_targets": [TGT_B], "fc_initiators": [INI_A, INI_B], "luns": [1]}, capsys, host)
    assert present["changed"] is False and host["kernel"].writes == []
    assert [(d["hctl"], d["name"], d["rport"]) for d in present["devices"]] == [
        ("2:0:1:1", "sdb", "rport-2:0-2"),
        ("3:0:1:1", "sdd", "rport-3:0-2"),
    ]
    assert [w.split(":")[0] for w in warnings_of(present)] == [
        "scsi_mod.scan is 'sync' on a host with Fibre Channel ports"
    ]
