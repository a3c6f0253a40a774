# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from typing import Any, Dict, List

import pytest
from ansible.errors import AnsibleFilterError, AnsibleUndefinedVariable

from ansible_collections.lunsafe.san.plugins.filter.unmap_luns import FilterModule, unmap_luns
from ansible_collections.lunsafe.san.tests.unit.compat import ANSIBLE_CORE
from ansible_collections.lunsafe.san.tests.unit.plugins.filter.old_jinja import LUN_DETACH_UNMAP_LUNS, render

W1 = "36001405a1b2c3d4e5f60718293a4b5c6"
W2 = "36001405b7c8d9e0f1a2b3c4d5e6f7a80"


def planned(number: Any, *wwids: Any) -> Dict[str, Any]:
    """One entry of a check-mode detach's luns: a device per WWID given (None: a device without one)."""
    devices = [{"name": f"sd{chr(99 + i)}", "hctl": f"{2 + i}:0:0:{number}", "wwid": w} for i, w in enumerate(wwids)]
    return {"lun": number, "state": "attached" if devices else "absent", "devices": devices, "dm": None, "plan": []}


# each case: the luns of the planned removal, and what the unmap hook gets (checked by hand too)
CASES = {
    "nothing": ([], []),
    "two paths": ([planned("3", W1, W1)], [{"lun": "3", "wwid": W1}]),
    "not attached": ([planned("4")], [{"lun": "4", "wwid": None}]),
    "first path without a WWID": ([planned("5", None, W2)], [{"lun": "5", "wwid": W2}]),
    "an empty WWID is skipped": ([planned("6", "", W1)], [{"lun": "6", "wwid": W1}]),
    "no device has a WWID": ([planned("7", None, "")], [{"lun": "7", "wwid": None}]),
    "the LUN is kept as given": ([planned(9, W1)], [{"lun": 9, "wwid": W1}]),
    "several, in order": (
        [planned("12", W2), planned("2"), planned("7", W1)],
        [{"lun": "12", "wwid": W2}, {"lun": "2", "wwid": None}, {"lun": "7", "wwid": W1}],
    ),
}


@pytest.mark.parametrize(("luns", "expected"), CASES.values(), ids=CASES.keys())
def test_same_output_as_the_old_role_loop(luns: List[Dict[str, Any]], expected: List[Dict[str, Any]]) -> None:
    assert render(LUN_DETACH_UNMAP_LUNS, lun_detach__plan={"luns": luns}) == expected
    assert unmap_luns(luns) == expected


@pytest.mark.parametrize(
    ("luns", "message"),
    [
        ("3", "got a str"),
        ([{"devices": []}], "entry 0 of the LUN results has no 'lun'"),
        ([{"lun": "3", "devices": ["sdc"]}], "entry 0 of the devices of LUN entry 0 is a str, not a dict"),
        ([{"lun": "8", "devices": [{"name": "sdc"}]}], "entry 0 of the devices of LUN entry 0 has no 'wwid'"),
    ],
)
def test_refuses_what_is_not_the_module_result(luns: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=f"^lunsafe.san.unmap_luns: .*{message}"):
        unmap_luns(luns)


def test_a_device_without_a_wwid_key_is_refused_where_the_old_loop_gave_none() -> None:
    # the module always returns the key (null when the device has no WWID); the old loop turned a missing key
    # into a null WWID for the whole LUN, even when another device had one
    luns = [{"lun": "8", "devices": [{"name": "sdc"}, {"name": "sdd", "wwid": W2}]}]
    if ANSIBLE_CORE >= (2, 19):
        assert render(LUN_DETACH_UNMAP_LUNS, lun_detach__plan={"luns": luns}) == [{"lun": "8", "wwid": None}]
    else:  # ansible-core 2.17: the old loop failed on the missing key instead
        with pytest.raises(AnsibleUndefinedVariable, match="has no attribute 'wwid'"):
            render(LUN_DETACH_UNMAP_LUNS, lun_detach__plan={"luns": luns})
    with pytest.raises(AnsibleFilterError, match="has no 'wwid'"):
        unmap_luns(luns)


def test_filter_is_registered() -> None:
    assert FilterModule().filters() == {"unmap_luns": unmap_luns}
