# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Faulty-path facts over Fibre Channel: paths carry their transport and remote port, and a remote port that is
not Online is a reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from ansible_collections.lunsafe.san.plugins.module_utils import _faults as faults
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fc_fixture import build_from_capture
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fc_tree import build_fc_sysfs
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner

INI_A = "0x2000525400fc0001"
INI_B = "0x2000525400fc0002"
TGT_A = "0x2000525400fc0003"
TGT_B = "0x2000525400fc0004"
NO_TOOLS = {"multipathd", "dmsetup", "multipath"}


def facts_of(root: Path, tmp_path: Path, **filters: Any) -> Dict[str, Any]:
    obs = faults.collect(
        runner=ScriptedRunner(missing_tools=NO_TOOLS), sysfs_root=str(root), proc_root=str(tmp_path / "proc")
    )
    return faults.classify(obs, filters=faults.make_filters(**filters) if filters else None)


def by_dev(paths: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    return {path["dev"]: path for path in paths}


def test_capture_port_down_blocked_rports_are_the_reason(tmp_path: Path) -> None:
    facts = facts_of(build_from_capture(tmp_path, "port_down"), tmp_path)
    paths = by_dev(facts["paths"])
    assert sorted(paths) == ["sda", "sdb", "sdc", "sdd"]  # the DVD drive (not FC, in no map) is not a path
    assert paths["sda"]["transport"] == "fc" and paths["sda"]["session"] is None
    assert paths["sda"]["rport"] == {
        "name": "rport-2:0-1",
        "host": 2,
        "port_name": TGT_A,
        "port_state": "Blocked",
        "target_id": 0,
        "initiator": INI_A,
        "dev_loss_tmo": 60,
        "fast_io_fail_tmo": "5",
    }
    assert [(dev, paths[dev]["faulty"], paths[dev]["reasons"]) for dev in sorted(paths)] == [
        ("sda", True, ["device_blocked", "rport_blocked"]),
        ("sdb", False, []),
        ("sdc", True, ["device_blocked", "rport_blocked"]),
        ("sdd", False, []),
    ]
    mpatha = facts["maps"][0]
    assert mpatha["name"] == "mpatha" and mpatha["reasons"] == ["faulty_paths"] and mpatha["usable_paths"] == 2
    assert mpatha["presented"] is True


def test_capture_attached_is_healthy_and_filters_by_wwpn(tmp_path: Path) -> None:
    root = build_from_capture(tmp_path, "attached")
    facts = facts_of(root, tmp_path)
    assert facts["summary"]["faulty_paths"] == 0 and facts["summary"]["paths"] == 4
    assert {p["transport"] for p in facts["paths"]} == {"fc"}
    only_b = facts_of(root, tmp_path, targets=["20:00:52:54:00:FC:00:04"])
    assert [(p["dev"], p["rport"]["name"]) for p in only_b["paths"]] == [("sdb", "rport-2:0-2"), ("sdd", "rport-3:0-2")]
    assert only_b["filters"]["targets"] == [TGT_B] and only_b["unmatched"]["targets"] == []
    assert [m["name"] for m in only_b["maps"]] == ["mpatha"]


def test_not_present_rport_without_a_map(tmp_path: Path) -> None:
    """An FC device in no map is listed too; a remote port gone longer than dev_loss_tmo is named."""
    root = build_fc_sysfs(
        tmp_path,
        fc_hosts=[{"host": 2, "port_name": INI_A}],
        rports=[
            {"host": 2, "number": 1, "port_name": TGT_A, "scsi_target_id": 0, "port_state": "Not Present"},
            {"host": 2, "number": 2, "port_name": TGT_B, "scsi_target_id": 1},
        ],
        devices=[
            {
                "hctl": "2:0:0:1",
                "rport": "rport-2:0-1",
                "name": "sdb",
                "state": "transport-offline",
                "wwid": "naa.6001405a",
            },
            {"hctl": "2:0:1:1", "rport": "rport-2:0-2", "name": "sdc", "wwid": "naa.6001405a"},
            {"hctl": "2:0:1:0", "rport": "rport-2:0-2", "name": None, "wwid": None},
        ],
    )
    facts = facts_of(root, tmp_path)
    assert [(p["dev"], p["hctl"], p["transport"], p["reasons"]) for p in facts["paths"]] == [
        (None, "2:0:1:0", "fc", []),
        ("sdb", "2:0:0:1", "fc", ["device_transport_offline", "rport_not_present"]),
        ("sdc", "2:0:1:1", "fc", []),
    ]
    unmatched = facts_of(root, tmp_path, targets=["0x2000525400fc0099"])
    assert unmatched["warnings"] == [
        "targets filter entry '0x2000525400fc0099' matches no path on an iSCSI session or FC remote port"
    ]
