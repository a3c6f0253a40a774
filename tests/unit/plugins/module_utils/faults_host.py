# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The lab host the fixtures in fixtures/faults were captured on, as fake-sysfs data.

Two sessions (host2 via 127.0.0.1, host3 via 127.0.0.2) to the lab array, LUNs 0-3 on both, four
maps. ``build_lab_sysfs`` builds it in tmp_path with per-device overrides (state, removed devices,
session state) and the real major:minor numbers, so that the real multipathd/dmsetup output lines
up with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Collection, Dict, List, Mapping, Optional

from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.sysfs_tree import build_sysfs

IQN = "iqn.2003-01.org.lunsafe.lab:array"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "faults"
WWID = {  # LUN -> WWID as multipath spells it
    0: "36001405aa66895d9d7c4890ad49b8dc9",
    1: "36001405ba785f509cd24d268af807554",
    2: "360014053aa67acbbbe24eefad576288d",
    3: "360014050dfbea08a0ed44b1938c5037a",
}
# name, hctl, devt
DEVICES = [
    ("sda", "2:0:0:0", "8:0"),
    ("sdb", "2:0:0:1", "8:16"),
    ("sdc", "2:0:0:3", "8:32"),
    ("sdd", "2:0:0:2", "8:48"),
    ("sde", "3:0:0:0", "8:64"),
    ("sdf", "3:0:0:1", "8:80"),
    ("sdg", "3:0:0:2", "8:96"),
    ("sdh", "3:0:0:3", "8:112"),
]
MAPS = [("dm-0", "mpatha", 2), ("dm-1", "mpathb", 3), ("dm-2", "mpathc", 1), ("dm-3", "mpathd", 0)]
FIXTURE_FILES = {
    "paths": "multipathd_show_paths_raw.txt",
    "maps": "multipathd_show_maps_raw.txt",
    "dmstatus": "dmsetup_status.txt",
    "dmtable": "dmsetup_table.txt",
    "ll": "multipath_ll.txt",
}


def fixture(state: str, kind: str) -> str:
    return (FIXTURES / state / FIXTURE_FILES[kind]).read_text(encoding="utf-8")


def build_lab_sysfs(
    tmp_path: Path,
    *,
    states: Optional[Mapping[str, str]] = None,
    removed: Collection[str] = (),
    session_states: Optional[Mapping[int, str]] = None,
    without_maps: Collection[str] = (),
    no_block: Collection[str] = (),
    name: str = "sys",
) -> Path:
    """The lab host; ``without_maps``: map names that are gone (flushed, their paths left); ``no_block``: devices
    listed as SCSI devices without a block device (the sd driver unbound, as for a controller LUN)."""
    states = states or {}
    session_states = session_states or {}
    sessions = [
        {"sid": 1, "host": 2, "targetname": IQN, "address": "127.0.0.1", "state": session_states.get(1, "LOGGED_IN")},
        {"sid": 2, "host": 3, "targetname": IQN, "address": "127.0.0.2", "state": session_states.get(2, "LOGGED_IN")},
    ]
    devices: List[Dict[str, Any]] = []
    for dev, hctl, _devt in DEVICES:
        if dev in removed:
            continue
        lun = int(hctl.rsplit(":", 1)[1])
        devices.append(
            {
                "hctl": hctl,
                "sid": 1 if hctl.startswith("2:") else 2,
                "name": None if dev in no_block else dev,
                "wwid": "naa." + WWID[lun][1:],
                "state": states.get(dev, "running"),
            }
        )
    maps = []
    for dm, map_name, lun in MAPS:
        if map_name in without_maps:
            continue
        slaves = [
            dev
            for dev, hctl, _devt in DEVICES
            if hctl.endswith(f":{lun}") and dev not in removed and dev not in no_block
        ]
        maps.append({"dm": dm, "name": map_name, "uuid": "mpath-" + WWID[lun], "slaves": slaves})
    root = build_sysfs(tmp_path, sessions=sessions, devices=devices, maps=maps, name=name)
    for dev, _hctl, devt in DEVICES:
        if dev not in removed and dev not in no_block:
            (root / "block" / dev / "dev").write_text(devt + "\n", encoding="ascii")
    return root
