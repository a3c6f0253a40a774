# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The lab host of the iscsi_info tests as data: its sysfs after the capture and iscsiadm's answers, captured in
the lab (open-iscsi 2.1.8, session CHAP on two portals with manual scan, a SendTargets discovery record with
CHAP, one more node record with automatic scan)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from ansible_collections.lunsafe.san.plugins.module_utils import _iscsiadm as iscsiadm
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._portal import Portal
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.sysfs_tree import build_sysfs

__all__ = [
    "DISCOVERY_SECRET",
    "IQN",
    "SESSION_SECRET",
    "WWID1",
    "WWID2",
    "fixture",
    "host_for",
    "lab_script",
    "lab_sysfs",
]

FIXTURES = Path(__file__).parent / "fixtures" / "iscsi_info"
IQN = "iqn.2003-01.org.lunsafe.lab:array"
SESSION_SECRET = "HB-Sess-Secret-42"
DISCOVERY_SECRET = "HB-Disc-Secret-77"
WWID1 = "36001405" + "1" * 24
WWID2 = "36001405" + "2" * 24


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def lab_sysfs(tmp_path: Path) -> Path:
    """The lab after the capture: sessions 1 (127.0.0.1, host 2) and 2 (127.0.0.2, host 3), LUNs 1 and 2 on
    both, each LUN in its multipath map; the kernel shows the session CHAP password, as it does."""
    root = build_sysfs(
        tmp_path,
        sessions=[
            {"sid": 1, "host": 2, "targetname": IQN, "address": "127.0.0.1", "targets": [(0, 0)]},
            {"sid": 2, "host": 3, "targetname": IQN, "address": "127.0.0.2", "targets": [(0, 0)]},
        ],
        devices=[
            {"hctl": "2:0:0:1", "sid": 1, "name": "sda", "wwid": "naa." + WWID1[1:], "size": 131072},
            {"hctl": "2:0:0:2", "sid": 1, "name": "sdb", "wwid": "naa." + WWID2[1:], "size": 131072},
            {"hctl": "3:0:0:1", "sid": 2, "name": "sdd", "wwid": "naa." + WWID1[1:], "size": 131072},
            {"hctl": "3:0:0:2", "sid": 2, "name": "sdc", "wwid": "naa." + WWID2[1:], "size": 131072},
        ],
        maps=[
            {"dm": "dm-0", "name": "mpatha", "uuid": "mpath-" + WWID1, "slaves": ["sda", "sdd"]},
            {"dm": "dm-1", "name": "mpathb", "uuid": "mpath-" + WWID2, "slaves": ["sdb", "sdc"]},
        ],
    )
    for sid in (1, 2):
        session = root / "class" / "iscsi_session" / f"session{sid}"
        (session / "password").write_text(SESSION_SECRET + "\n", encoding="utf-8")
        (session / "username").write_text("hb-user\n", encoding="utf-8")
        (session / "recovery_tmo").write_text("5\n", encoding="utf-8")
        (root / "class" / "iscsi_connection" / f"connection{sid}:0" / "state").write_text("up\n", encoding="utf-8")
    return root


def lab_script(
    *, node_show: Optional[str] = None, discovery_list: Optional[str] = None, discovery_show: Optional[str] = None
) -> List[Any]:
    return [
        (iscsiadm.node_show_all(), 0, fixture("node_show_all.txt") if node_show is None else node_show, ""),
        (iscsiadm.discoverydb_list(), 0, discovery_list or fixture("discoverydb_list.txt"), ""),
        (
            iscsiadm.discoverydb_show(portal=Portal("127.0.0.1", 3260)),
            0,
            discovery_show or fixture("discoverydb_show_sendtargets.txt"),
            "",
        ),
    ]


def host_for(root: Path, runner: ScriptedRunner, resolve: Optional[Dict[str, List[str]]] = None) -> Host:
    names = resolve or {}

    def resolver(name: str) -> List[str]:
        if name not in names:
            raise OSError(-2, "Name or service not known")
        return names[name]

    return Host(runner=runner, sysfs_root=str(root), resolver=resolver)
