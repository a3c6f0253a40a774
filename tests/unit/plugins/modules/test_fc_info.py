# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""fc_info: module runs over fake FC sysfs trees."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Set

import pytest
import yaml
from ansible.module_utils.common import warnings as ansible_warnings

from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.modules import fc_info
from ansible_collections.lunsafe.san.tests.unit.compat import patch_module_args
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fc_fixture import build_from_capture
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fc_tree import build_fc_sysfs
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner

INI_A = "0x2000525400fc0001"
INI_B = "0x2000525400fc0002"
TGT_A = "0x2000525400fc0003"
TGT_B = "0x2000525400fc0004"
UA_RULE = 'ACTION=="change", ENV{SDEV_UA}=="REPORTED_LUNS_DATA_HAS_CHANGED", RUN+="scan-scsi-target $env{DEVPATH}"\n'


@pytest.fixture(autouse=True)
def one_module_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # empty, of the type this ansible-core keeps them in (dicts from 2.19 on, lists in 2.17)
    monkeypatch.setattr(ansible_warnings, "_global_warnings", type(ansible_warnings._global_warnings)())
    monkeypatch.setattr(ansible_warnings, "_global_deprecations", type(ansible_warnings._global_deprecations)())


def lab(tmp_path: Path, *, scan_mode: Optional[str] = "manual", blocked: bool = False) -> Path:
    """2 initiator ports x 2 target ports, LUN 1 attached on 4 paths in mpatha; the target ports are local
    fc_hosts too (as with tcm_fc)."""
    state = "Blocked" if blocked else "Online"
    tmp_path.mkdir(parents=True, exist_ok=True)
    return build_fc_sysfs(
        tmp_path,
        fc_hosts=[
            {"host": 2, "port_name": INI_A},
            {"host": 3, "port_name": INI_B},
            {"host": 4, "port_name": TGT_A},
        ],
        rports=[
            {"host": 2, "number": 0, "port_name": TGT_A, "scsi_target_id": 0, "port_state": state},
            {"host": 2, "number": 1, "port_name": TGT_B, "scsi_target_id": 1},
            {"host": 3, "number": 0, "port_name": TGT_B, "scsi_target_id": 0},
            {"host": 3, "number": 1, "port_name": TGT_A, "scsi_target_id": 1, "port_state": state},
            {"host": 4, "number": 0, "port_name": INI_A, "roles": "FCP Initiator"},
        ],
        devices=[
            {"hctl": "2:0:0:1", "rport": "rport-2:0-0", "name": "sdb", "wwid": "naa.6001405aa"},
            {"hctl": "2:0:1:1", "rport": "rport-2:0-1", "name": "sdc", "wwid": "naa.6001405aa"},
            {"hctl": "3:0:0:1", "rport": "rport-3:0-0", "name": "sdd", "wwid": "naa.6001405aa"},
            {"hctl": "3:0:1:1", "rport": "rport-3:0-1", "name": "sde", "wwid": "naa.6001405aa"},
        ],
        maps=[{"dm": "dm-0", "name": "mpatha", "uuid": "mpath-36001405aa", "slaves": ["sdb", "sdc", "sdd", "sde"]}],
        scan_mode=scan_mode,
    )


def run_module(
    capsys: pytest.CaptureFixture[str],
    *,
    root: Path,
    args: Dict[str, Any],
    rules_dirs: Sequence[str] = (),
) -> Dict[str, Any]:
    runner = ScriptedRunner([])
    with patch_module_args(args), pytest.raises(SystemExit):
        fc_info.main(make_host=lambda _runner: Host(runner=runner, sysfs_root=str(root)), rules_dirs=rules_dirs)
    assert runner.remaining == []  # no command at all
    result: Dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def always_keys() -> Set[str]:
    doc = yaml.safe_load(fc_info.RETURN)
    return {key for key, spec in doc.items() if spec["returned"] == "always"}


def warnings_of(result: Dict[str, Any]) -> list:
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def test_reads_hosts_rports_and_luns_the_same_in_check_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = lab(tmp_path)
    normal = run_module(capsys, root=root, args={})
    check = run_module(capsys, root=root, args={"_ansible_check_mode": True})
    for key in ("fc_hosts", "rports", "scan_mode", "filters"):
        assert normal[key] == check[key]
    assert normal["changed"] is False and always_keys() - set(normal) == set()
    assert "warnings" not in normal
    assert [h["host"] for h in normal["fc_hosts"]] == [2, 3, 4]
    assert normal["fc_hosts"][0] == {
        "host": 2,
        "port_name": INI_A,
        "node_name": "0x1000525400fc0002",
        "port_id": "0x000002",
        "port_state": "Online",
        "port_type": "NPort (fabric via point-to-point)",
        "speed": "10 Gbit",
        "fabric_name": "0x1000525400fc0001",
        "symbolic_name": "fcoe v0.1 over eth1",
        "dev_loss_tmo": 60,
        "driver": "fcoe",
        "vport": False,
        "parent_host": None,
        "max_lun": None,
    }
    first = normal["rports"][0]
    assert {k: v for k, v in first.items() if k != "luns"} == {
        "name": "rport-2:0-0",
        "host": 2,
        "channel": 0,
        "initiator": INI_A,
        "port_name": TGT_A,
        "node_name": "0x1000525400fc0099",
        "port_id": "0x000000",
        "roles": ["FCP Target", "FCP Initiator"],
        "port_state": "Online",
        "target_id": 0,
        "usable": True,
        "dev_loss_tmo": 60,
        "fast_io_fail_tmo": "5",
    }
    assert first["luns"] == [
        {
            "hctl": "2:0:0:1",
            "lun": 1,
            "device": "sdb",
            "state": "running",
            "size_bytes": 2097152 * 512,
            "read_only": False,
            "wwid": "36001405aa",
            "multipath_map": "mpatha",
            "dm": "dm-0",
        }
    ]
    initiator_view = normal["rports"][-1]
    assert initiator_view["name"] == "rport-4:0-0" and initiator_view["target_id"] is None
    assert initiator_view["usable"] is False and initiator_view["luns"] == []
    assert [lun["device"] for r in normal["rports"] for lun in r["luns"]] == ["sdb", "sdc", "sdd", "sde"]
    assert normal["scan_mode"] == "manual"


def test_filters_by_target_and_initiator_in_any_spelling(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_module(
        capsys,
        root=lab(tmp_path),
        args={"targets": ["20:00:52:54:00:FC:00:03"], "initiators": ["2000525400fc0002"]},
    )
    assert [h["host"] for h in result["fc_hosts"]] == [3]
    assert [(r["name"], r["target_id"]) for r in result["rports"]] == [("rport-3:0-1", 1)]
    assert result["filters"] == {"targets": ["20:00:52:54:00:FC:00:03"], "initiators": ["2000525400fc0002"]}
    nothing = run_module(capsys, root=lab(tmp_path / "other", scan_mode=None), args={"targets": ["0x2000525400fc0999"]})
    assert nothing["rports"] == [] and nothing["scan_mode"] is None
    assert warnings_of(nothing) == [
        "no fc_host or remote port matches the filters (targets: 0x2000525400fc0999; initiators: any)"
    ]


def test_blocked_target_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_module(capsys, root=lab(tmp_path, blocked=True), args={"targets": [TGT_A]})
    assert [(r["name"], r["port_state"], r["usable"]) for r in result["rports"]] == [
        ("rport-2:0-0", "Blocked", False),
        ("rport-3:0-1", "Blocked", False),
    ]
    assert [lun["hctl"] for r in result["rports"] for lun in r["luns"]] == ["2:0:0:1", "3:0:1:1"]


def test_warnings_scan_mode_and_ua_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "90-scsi-ua.rules").write_text(UA_RULE)
    result = run_module(capsys, root=lab(tmp_path, scan_mode="async"), args={}, rules_dirs=[str(rules)])
    found = warnings_of(result)
    assert len(found) == 2
    assert found[0].startswith("scsi_mod.scan is 'async' on a host with Fibre Channel ports")
    assert found[1].startswith(f"udev rule {rules / '90-scsi-ua.rules'} rescans a whole SCSI target")


def test_no_fc_no_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "90-scsi-ua.rules").write_text(UA_RULE)
    root = build_fc_sysfs(tmp_path, scan_mode="async")
    result = run_module(capsys, root=root, args={}, rules_dirs=[str(rules)])
    assert result["fc_hosts"] == [] and result["rports"] == [] and "warnings" not in result


def test_bad_wwpn_fails_with_every_documented_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_module(capsys, root=lab(tmp_path), args={"initiators": ["0x12"]})
    assert result["failed"] is True
    assert result["msg"].startswith("initiators: '0x12' is not a WWPN")
    assert always_keys() - set(result) == set()


def test_a_path_in_two_maps_is_shown_without_a_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = build_fc_sysfs(
        tmp_path,
        fc_hosts=[{"host": 2, "port_name": INI_A}],
        rports=[{"host": 2, "number": 0, "port_name": TGT_A, "scsi_target_id": 0}],
        devices=[{"hctl": "2:0:0:1", "rport": "rport-2:0-0", "name": "sdb", "wwid": "naa.6001405aa"}],
        maps=[
            {"dm": "dm-0", "name": "mpatha", "uuid": "mpath-36001405aa", "slaves": ["sdb"]},
            {"dm": "dm-1", "name": "mpathb", "uuid": "mpath-36001405bb", "slaves": ["sdb"]},
        ],
    )
    result = run_module(capsys, root=root, args={})
    assert result["rports"][0]["luns"][0]["multipath_map"] is None


def test_real_capture_port_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = build_from_capture(tmp_path, "port_down")
    result = run_module(capsys, root=root, args={"initiators": [INI_A, INI_B], "targets": [TGT_A, TGT_B]})
    assert [(h["host"], h["port_state"]) for h in result["fc_hosts"]] == [(2, "Online"), (3, "Online")]
    assert [(r["name"], r["port_name"], r["port_state"], r["target_id"], r["usable"]) for r in result["rports"]] == [
        ("rport-2:0-1", TGT_A, "Blocked", 0, False),
        ("rport-2:0-2", TGT_B, "Online", 1, True),
        ("rport-3:0-1", TGT_A, "Blocked", 0, False),
        ("rport-3:0-2", TGT_B, "Online", 1, True),
    ]
    luns = [
        (lun["hctl"], lun["device"], lun["state"], lun["multipath_map"]) for r in result["rports"] for lun in r["luns"]
    ]
    assert luns == [
        ("2:0:0:1", "sda", "blocked", "mpatha"),
        ("2:0:1:1", "sdb", "running", "mpatha"),
        ("3:0:0:1", "sdc", "blocked", "mpatha"),
        ("3:0:1:1", "sdd", "running", "mpatha"),
    ]
    assert result["scan_mode"] == "sync"
    assert [w.split(":")[0] for w in warnings_of(result)] == [
        "scsi_mod.scan is 'sync' on a host with Fibre Channel ports"
    ]
