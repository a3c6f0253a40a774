# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from typing import Any, Dict, List

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.lunsafe.san.plugins.filter.attached_devices import FilterModule, attached_devices
from ansible_collections.lunsafe.san.tests.unit.plugins.filter.old_jinja import LUN_ATTACH_DEVICES, render

WWID = "36001405a1b2c3d4e5f60718293a4b5c6"


def lun(number: Any, *, devices: List[Dict[str, Any]], dm: Any = None, **extra: Any) -> Dict[str, Any]:
    """One entry of iscsi_lun_attach's luns, as the module returns it."""
    entry = {
        "lun": number,
        "linux_lun": int(number),
        "state": "attached" if devices else "absent",
        "hctl": [d.get("hctl", "2:0:0:0") for d in devices],
        "devices": devices,
        "wwid": WWID if devices else None,
        "size_bytes": 67108864 if devices else None,
        "dm": dm,
        "by_id": f"/dev/disk/by-id/dm-uuid-mpath-{WWID}" if devices else None,
        "removed": {"map": None, "paths": []},
        "plan": [],
    }
    entry.update(extra)
    return entry


def device(name: str, hctl: str, *, new: Any) -> Dict[str, Any]:
    return {"hctl": hctl, "name": name, "path": f"/dev/{name}", "wwid": WWID, "state": "running", "new": new}


MPATHA = {"dm": "dm-0", "name": "mpatha", "uuid": f"mpath-{WWID}", "path": "/dev/mapper/mpatha", "slaves": ["sdc"]}
TWO_NEW = [device("sdc", "2:0:0:3", new=True), device("sdd", "3:0:0:3", new=True)]
ONE_OLD_ONE_NEW = [device("sde", "2:0:0:4", new=False), device("sdf", "3:0:0:4", new=True)]
OLD_ONLY = [device("sdg", "2:0:0:5", new=False)]

# each case: the luns of an iscsi_lun_attach result
CASES = {
    "nothing": [],
    "two new paths with a map": [lun("3", devices=TWO_NEW, dm=MPATHA)],
    "one of two paths new": [lun("4", devices=ONE_OLD_ONE_NEW, dm=MPATHA)],
    "already attached, no map (multipath off)": [lun("5", devices=OLD_ONLY, dm=None)],
    "check mode, not attached yet": [lun("6", devices=[], dm=None)],
    "an int LUN number": [lun(7, devices=OLD_ONLY, dm=None)],
    "an empty map dict": [lun("8", devices=OLD_ONLY, dm={})],
    "a map without a path": [lun("9", devices=OLD_ONLY, dm={"name": "mpathz"})],
    "no dm key at all": [{k: v for k, v in lun("10", devices=OLD_ONLY).items() if k != "dm"}],
    "new as a truthy string": [lun("11", devices=[device("sdh", "2:0:0:11", new="yes")])],
    "several LUNs keep their order": [
        lun("12", devices=OLD_ONLY, dm=MPATHA),
        lun("2", devices=TWO_NEW, dm=None),
        lun("7", devices=[], dm=None),
    ],
}


@pytest.mark.parametrize("luns", CASES.values(), ids=CASES.keys())
def test_same_output_as_the_old_role_loop(luns: List[Dict[str, Any]]) -> None:
    old = render(LUN_ATTACH_DEVICES, lun_attach__attached={"luns": luns, "changed": True})
    assert attached_devices(luns) == old


def test_the_output_by_hand() -> None:
    assert attached_devices([lun("3", devices=TWO_NEW, dm=MPATHA), lun(6, devices=[], dm=None)]) == [
        {
            "lun": "3",
            "wwid": WWID,
            "by_id": f"/dev/disk/by-id/dm-uuid-mpath-{WWID}",
            "dm_name": "mpatha",
            "dm_path": "/dev/mapper/mpatha",
            "devices": ["/dev/sdc", "/dev/sdd"],
            "hctl": ["2:0:0:3", "3:0:0:3"],
            "size_bytes": 67108864,
            "changed": True,
        },
        {
            "lun": "6",
            "wwid": None,
            "by_id": None,
            "dm_name": None,
            "dm_path": None,
            "devices": [],
            "hctl": [],
            "size_bytes": None,
            "changed": False,
        },
    ]


@pytest.mark.parametrize(
    ("luns", "message"),
    [
        ({"luns": []}, r"expects the LUN results \(a list of dicts\), got a dict"),
        ("3", "got a str"),
        (None, "got a NoneType"),
        (["3"], "entry 0 of the LUN results is a str, not a dict"),
        ([{"lun": "3"}], "entry 0 of the LUN results has no 'wwid', 'by_id', 'devices', 'hctl', 'size_bytes'"),
        ([lun("3", devices=[{"path": "/dev/sdc"}])], "entry 0 of the devices of LUN entry 0 has no 'new'"),
        ([lun("3", devices=[{"new": True}])], "has no 'path' .it has 'new'.$"),
        (
            [{**lun("3", devices=[]), "devices": None}],
            r"the devices of LUN entry 0 \(a list of dicts\), got a NoneType",
        ),
    ],
)
def test_refuses_what_is_not_the_module_result(luns: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=f"^lunsafe.san.attached_devices: .*{message}"):
        attached_devices(luns)


def test_the_old_loop_failed_on_those_too() -> None:
    with pytest.raises(Exception, match="has no attribute 'new'"):
        render(LUN_ATTACH_DEVICES, lun_attach__attached={"luns": [lun("3", devices=[{"path": "/dev/sdc"}])]})


def test_filter_is_registered() -> None:
    assert FilterModule().filters() == {"attached_devices": attached_devices}
