# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from typing import Any, Dict, List

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.lunsafe.san.plugins.filter.left_alone import FilterModule, left_alone
from ansible_collections.lunsafe.san.tests.unit.plugins.filter.old_jinja import FAULTY_REMEDIATION_LEFT_ALONE, render

W1 = "36001405a1b2c3d4e5f60718293a4b5c6"
W2 = "36001405b7c8d9e0f1a2b3c4d5e6f7a80"


def fact_map(name: str, wwid: str, *, holders: Any, reasons: List[str], presented: bool = True) -> Dict[str, Any]:
    """One map of the lunsafe_multipath facts (the keys the filter reads, and a few others)."""
    return {
        "name": name,
        "wwid": wwid,
        "uuid": f"mpath-{wwid}",
        "dm": "dm-0",
        "holders": holders,
        "presented": presented,
        "faulty": bool(reasons),
        "reasons": reasons,
    }


# each case: the maps the cleanup leaves in place, and what the report says (checked by hand too)
CASES = {
    "nothing": ([], []),
    "presented": (
        [fact_map("mpatha", W1, holders=[], reasons=["faulty_paths"])],
        [{"name": "mpatha", "wwid": W1, "reasons": ["faulty_paths"], "why": "its LUN is still presented"}],
    ),
    "held by one": (
        [fact_map("mpathb", W2, holders=["dm-3"], reasons=["unpresented"], presented=False)],
        [{"name": "mpathb", "wwid": W2, "reasons": ["unpresented"], "why": "held by dm-3"}],
    ),
    "held by two, in order": (
        [fact_map("mpathb", W2, holders=["dm-4", "dm-3"], reasons=["no_active_path", "unpresented"])],
        [{"name": "mpathb", "wwid": W2, "reasons": ["no_active_path", "unpresented"], "why": "held by dm-4, dm-3"}],
    ),
    "null holders read as none": (
        [fact_map("mpathc", W1, holders=None, reasons=[])],
        [{"name": "mpathc", "wwid": W1, "reasons": [], "why": "its LUN is still presented"}],
    ),
    "holders that are not strings": (
        [fact_map("mpathd", W1, holders=[7, "dm-2"], reasons=["faulty_paths"])],
        [{"name": "mpathd", "wwid": W1, "reasons": ["faulty_paths"], "why": "held by 7, dm-2"}],
    ),
    "several, in order": (
        [
            fact_map("mpathe", W2, holders=["dm-9"], reasons=["unpresented"]),
            fact_map("mpatha", W1, holders=[], reasons=["faulty_paths"]),
        ],
        [
            {"name": "mpathe", "wwid": W2, "reasons": ["unpresented"], "why": "held by dm-9"},
            {"name": "mpatha", "wwid": W1, "reasons": ["faulty_paths"], "why": "its LUN is still presented"},
        ],
    ),
}


@pytest.mark.parametrize(("maps", "expected"), CASES.values(), ids=CASES.keys())
def test_same_output_as_the_old_role_loop(maps: List[Dict[str, Any]], expected: List[Dict[str, Any]]) -> None:
    assert render(FAULTY_REMEDIATION_LEFT_ALONE, faulty_remediation__left=maps) == expected
    assert left_alone(maps) == expected


def test_a_map_neither_held_nor_presented_was_not_selected() -> None:
    # the old loop only ever saw such a map through a bug; faulty_remediation_select can leave one out
    maps = [fact_map("mpathe", W1, holders=[], reasons=["unpresented"], presented=False)]
    assert left_alone(maps) == [{"name": "mpathe", "wwid": W1, "reasons": ["unpresented"], "why": "not selected"}]


@pytest.mark.parametrize(
    ("maps", "message"),
    [
        ({"name": "mpatha"}, "got a dict"),
        ([["mpatha"]], "entry 0 of the maps is a list, not a dict"),
        ([{"name": "mpatha", "wwid": W1, "reasons": []}], "entry 0 of the maps has no 'holders'"),
        ([{}], "has no 'name', 'wwid', 'reasons', 'holders', 'presented' .it has no key.$"),
        ([{"name": "mpatha", "wwid": W1, "reasons": [], "holders": []}], "entry 0 of the maps has no 'presented'"),
    ],
)
def test_refuses_what_is_not_a_fact_map(maps: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=f"^lunsafe.san.left_alone: .*{message}"):
        left_alone(maps)


def test_filter_is_registered() -> None:
    assert FilterModule().filters() == {"left_alone": left_alone}
