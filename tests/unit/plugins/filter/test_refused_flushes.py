# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from typing import Any, Dict, List

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.lunsafe.san.plugins.filter.refused_flushes import FilterModule, refused_flushes
from ansible_collections.lunsafe.san.tests.unit.plugins.filter.old_jinja import FAULTY_REMEDIATION_REFUSED, render

W1 = "36001405a1b2c3d4e5f60718293a4b5c6"
W2 = "36001405b7c8d9e0f1a2b3c4d5e6f7a80"


def result(name: str, wwid: str, **outcome: Any) -> Dict[str, Any]:
    """One loop result of multipath_flush over a fact map (item: the map)."""
    item = {"name": name, "wwid": wwid, "reasons": ["unpresented"], "paths": ["sdc"], "holders": []}
    return {"item": item, "ansible_loop_var": "item", "changed": False, **outcome}


REFUSED = result("mpatha", W1, failed=True, msg="map mpatha is open (1 opener): nothing was changed")
FLUSHED = result("mpathb", W2, changed=True, failed=False, map="mpathb")

# each case: the results list of the looped task
CASES: Dict[str, List[Dict[str, Any]]] = {
    "nothing flushed": [],
    "one flushed": [FLUSHED],
    "one refused": [REFUSED],
    "refused and flushed, in order": [FLUSHED, REFUSED, result("mpathc", W2, failed=True, msg="held by dm-5")],
    "a failure without msg": [result("mpathd", W1, failed=True)],
    "a failure with a null msg": [result("mpathe", W1, failed=True, msg=None)],
    "no failed key is not failed": [result("mpathf", W1)],
    "a truthy failed value": [result("mpathg", W1, failed="yes", msg="x")],
    "a successful result without item": [{"changed": False, "failed": False}],
}


@pytest.mark.parametrize("results", CASES.values(), ids=CASES.keys())
def test_same_output_as_the_old_role_loop(results: List[Dict[str, Any]]) -> None:
    old = render(FAULTY_REMEDIATION_REFUSED, faulty_remediation__flushed={"results": results, "changed": False})
    # the role's call: faulty_remediation__flushed.results | default([]) | lunsafe.san.refused_flushes
    assert refused_flushes(results) == old


def test_without_results_the_old_loop_gave_nothing_and_the_role_still_defaults_to_an_empty_list() -> None:
    assert render(FAULTY_REMEDIATION_REFUSED, faulty_remediation__flushed={"skipped": True}) == []
    assert refused_flushes([]) == []


def test_the_output_by_hand() -> None:
    assert refused_flushes([FLUSHED, REFUSED, result("mpathd", W2, failed=True)]) == [
        {"name": "mpatha", "wwid": W1, "msg": "map mpatha is open (1 opener): nothing was changed"},
        {"name": "mpathd", "wwid": W2, "msg": ""},
    ]


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ({"results": []}, r"expects the loop results \(a list of dicts\), got a dict"),
        (["failed"], "entry 0 of the loop results is a str, not a dict"),
        ([{"failed": True, "msg": "x"}], "failed result 0 has no loop item with a 'name' and a 'wwid' .got None.$"),
        ([{"failed": True, "item": "mpatha"}], "failed result 0 has no loop item"),
        ([{"failed": True, "item": {"name": "mpatha"}}], "failed result 0 has no loop item"),
    ],
)
def test_refuses_what_is_not_a_loop_over_maps(results: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=f"^lunsafe.san.refused_flushes: .*{message}"):
        refused_flushes(results)


def test_filter_is_registered() -> None:
    assert FilterModule().filters() == {"refused_flushes": refused_flushes}
