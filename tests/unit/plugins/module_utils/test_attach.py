# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _attach as attach
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import read_snapshot
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.sysfs_tree import build_sysfs

IQN = "iqn.2003-01.org.lunsafe.lab:array"
WWID_A = "naa.60014051a68a6dac15d45d0a61e86500"
WWID_B = "naa.6001405cf8017f7230844b9889d44ea2"


def _two_paths(tmp_path: Path, *, wwids: List[str], sizes: Any = (131072, 131072), hosts: Any = (2, 3)) -> Any:
    sessions = [
        {"sid": 1, "host": hosts[0], "targetname": IQN, "address": "127.0.0.1"},
        {"sid": 2, "host": hosts[1], "targetname": IQN, "address": "127.0.0.2"},
    ]
    devices = [
        {"hctl": f"{hosts[0]}:0:0:1", "sid": 1, "name": "sda", "wwid": wwids[0], "size": sizes[0]},
        {"hctl": f"{hosts[1]}:0:0:1", "sid": 2, "name": "sdb", "wwid": wwids[1], "size": sizes[1]},
    ]
    return read_snapshot(sysfs_root=str(build_sysfs(tmp_path, sessions=sessions, devices=devices)))


def test_lun_devices_are_this_luns_paths_only(tmp_path: Path) -> None:
    snapshot = _two_paths(tmp_path, wwids=[WWID_A, WWID_A])
    devices = attach.lun_devices(snapshot=snapshot, sessions=snapshot.sessions, lun=1)
    assert [d.name for d in devices] == ["sda", "sdb"]
    assert attach.lun_devices(snapshot=snapshot, sessions=snapshot.sessions, lun=2) == ()


def test_identity_of_two_consistent_paths(tmp_path: Path) -> None:
    snapshot = _two_paths(tmp_path, wwids=[WWID_A, WWID_A])
    devices = attach.lun_devices(snapshot=snapshot, sessions=snapshot.sessions, lun=1)
    identity = attach.check_identity(devices=devices, expected_wwid=WWID_A, paths_expected=2)
    assert identity == {"wwid": "360014051a68a6dac15d45d0a61e86500", "size_bytes": 131072 * 512}


def test_identity_refuses_paths_of_different_lus(tmp_path: Path) -> None:
    snapshot = _two_paths(tmp_path, wwids=[WWID_A, WWID_B])
    devices = attach.lun_devices(snapshot=snapshot, sessions=snapshot.sessions, lun=1)
    with pytest.raises(attach.IdentityError, match="different or missing WWIDs") as info:
        attach.check_identity(devices=devices, expected_wwid=None, paths_expected=2)
    assert [p["name"] for p in info.value.details["paths"]] == ["sda", "sdb"]


def test_identity_refuses_different_sizes(tmp_path: Path) -> None:
    snapshot = _two_paths(tmp_path, wwids=[WWID_A, WWID_A], sizes=(131072, 262144))
    devices = attach.lun_devices(snapshot=snapshot, sessions=snapshot.sessions, lun=1)
    with pytest.raises(attach.IdentityError, match="different sizes"):
        attach.check_identity(devices=devices, expected_wwid=None, paths_expected=2)


def test_identity_refuses_unexpected_wwid_and_missing_path(tmp_path: Path) -> None:
    snapshot = _two_paths(tmp_path, wwids=[WWID_A, WWID_A])
    devices = attach.lun_devices(snapshot=snapshot, sessions=snapshot.sessions, lun=1)
    with pytest.raises(attach.IdentityError, match="not the expected 36001405cf80"):
        attach.check_identity(devices=devices, expected_wwid=WWID_B, paths_expected=2)
    with pytest.raises(attach.IdentityError, match="expected 3 path"):
        attach.check_identity(devices=devices, expected_wwid=None, paths_expected=3)


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("naa.60014051A68A6DAC", "360014051a68a6dac"),
        ("360014051a68a6dac", "360014051a68a6dac"),
        ("0x60014051a68a6dac", "360014051a68a6dac"),
        (None, None),
    ],
)
def test_expected_wwid_spellings(given: Any, normalized: Any) -> None:
    assert attach.expected(given) == normalized


def test_stale_when_the_lu_answers_with_another_wwid(tmp_path: Path) -> None:
    snapshot = _two_paths(tmp_path, wwids=[WWID_A, WWID_A])
    devices = attach.lun_devices(snapshot=snapshot, sessions=snapshot.sessions, lun=1)
    fresh: Dict[str, Optional[str]] = {
        "sda": "36001405cf8017f7230844b9889d44ea2",
        "sdb": "36001405cf8017f7230844b9889d44ea2",
    }
    stale = attach.stale_devices(devices=devices, snapshot=snapshot, expected_wwid=None, fresh=fresh)
    assert [s["name"] for s in stale] == ["sda", "sdb"]
    assert "now answers" in stale[0]["reasons"][0]


def test_not_stale_when_the_lu_is_unchanged_or_silent(tmp_path: Path) -> None:
    snapshot = _two_paths(tmp_path, wwids=[WWID_A, WWID_A])
    devices = attach.lun_devices(snapshot=snapshot, sessions=snapshot.sessions, lun=1)
    same: Dict[str, Optional[str]] = {"sda": "360014051a68a6dac15d45d0a61e86500", "sdb": None}
    assert attach.stale_devices(devices=devices, snapshot=snapshot, expected_wwid=None, fresh=same) == []


def test_fresh_wwid_asks_scsi_id_with_a_deadline() -> None:
    runner = ScriptedRunner([(0, "36001405cf8017f7230844b9889d44ea2\n", ""), (1, "", "")])
    assert attach.fresh_wwid(runner, name="sdc", scsi_id="/usr/lib/udev/scsi_id") == "36001405cf8017f7230844b9889d44ea2"
    assert runner.argvs[0] == ["/usr/lib/udev/scsi_id", "--page=0x83", "--whitelisted", "--device=/dev/sdc"]
    assert attach.fresh_wwid(runner, name="sdc", scsi_id="/usr/lib/udev/scsi_id") is None
