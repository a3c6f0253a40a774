# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from typing import Any, Dict, List

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.lunsafe.san.plugins.filter.detach_result import FilterModule, detach_result
from ansible_collections.lunsafe.san.tests.unit.plugins.filter.old_jinja import LUN_DETACH_RESULT, render

W1 = "36001405a1b2c3d4e5f60718293a4b5c6"
W2 = "36001405b7c8d9e0f1a2b3c4d5e6f7a80"
MPATHA = {"dm": "dm-0", "name": "mpatha", "uuid": f"mpath-{W1}", "path": "/dev/mapper/mpatha", "slaves": ["sdc"]}


def entry(number: str, names: List[str], *, wwid: Any = W1, dm: Any = None) -> Dict[str, Any]:
    """One entry of iscsi_lun_attach's luns with state=absent (a device per name)."""
    devices = [{"name": name, "path": f"/dev/{name}", "hctl": f"2:0:0:{number}", "wwid": wwid} for name in names]
    return {"lun": number, "state": "attached" if devices else "absent", "devices": devices, "dm": dm, "plan": []}


# each case: (plan luns, came-back luns, the final call's result, check mode)
CASES = {
    "nothing planned": ([], [], {"logged_out": []}, False),
    "two paths and a map, nothing came back, logged out": (
        [entry("3", ["sdc", "sdd"], dm=MPATHA)],
        [entry("3", [])],
        {"logged_out": ["127.0.0.1:3260", "127.0.0.2:3260"]},
        False,
    ),
    "paths came back, session kept": (
        [entry("3", ["sdc", "sdd"], dm=MPATHA), entry("4", ["sde"], wwid=W2)],
        [entry("3", ["sdg", "sdh"]), entry("4", [])],
        {"logged_out": []},
        False,
    ),
    "check mode ignores what the check found": (
        [entry("3", ["sdc"], dm=MPATHA)],
        [entry("3", ["sdc"])],
        {"logged_out": ["127.0.0.1:3260"]},
        True,
    ),
    "check mode with no came-back entry at all": ([entry("3", ["sdc"])], [], {"logged_out": []}, True),
    "already detached, only the logout left": ([entry("5", [])], [entry("5", [])], {"logged_out": ["p:3260"]}, False),
    "already detached, nothing left": ([entry("5", [])], [entry("5", [])], {"logged_out": []}, False),
    "the final call returned no logged_out": ([entry("6", ["sdc"])], [entry("6", [])], {}, False),
    "an empty map dict": ([entry("7", ["sdc"], dm={})], [entry("7", [])], {"logged_out": []}, False),
    "devices without a WWID": ([entry("8", ["sdc"], wwid=None)], [entry("8", [])], {"logged_out": []}, False),
    "a LUN without a dm key": (
        [{"lun": "9", "devices": [{"name": "sdc", "wwid": W1}]}],
        [{"lun": "9", "devices": []}],
        {"logged_out": []},
        False,
    ),
}


@pytest.mark.parametrize(("plan", "back", "final", "check_mode"), CASES.values(), ids=CASES.keys())
def test_same_output_as_the_old_role_loop(
    plan: List[Dict[str, Any]], back: List[Dict[str, Any]], final: Dict[str, Any], check_mode: bool
) -> None:
    old = render(
        LUN_DETACH_RESULT,
        lun_detach__plan={"luns": plan},
        lun_detach__back={"luns": back},
        lun_detach__final=final,
        ansible_check_mode=check_mode,
    )
    # the role's call: logged_out=lun_detach__final.logged_out | default([])
    new = detach_result(plan, came_back=back, logged_out=final.get("logged_out", []), check_mode=check_mode)
    assert new == old


def test_the_output_by_hand() -> None:
    plan = [entry("3", ["sdc", "sdd"], dm=MPATHA), entry("4", [])]
    back = [entry("3", ["sdg"]), entry("4", [])]
    assert detach_result(plan, back, ["127.0.0.1:3260"]) == [
        {
            "lun": "3",
            "wwid": W1,
            "map": "mpatha",
            "paths": ["sdc", "sdd"],
            "came_back": ["sdg"],
            "logged_out": ["127.0.0.1:3260"],
            "changed": True,
        },
        {
            "lun": "4",
            "wwid": None,
            "map": None,
            "paths": [],
            "came_back": [],
            "logged_out": ["127.0.0.1:3260"],
            "changed": True,
        },
    ]
    assert detach_result([entry("4", [])], [entry("4", [])])[0]["changed"] is False


def test_what_the_last_attempt_found_after_the_first_is_added_once() -> None:
    plan = [entry("3", ["sdc", "sdd"], dm=MPATHA), entry("4", ["sde", "sdf"], wwid=W2)]
    first = [entry("3", ["sdg", "sdh"]), entry("4", [])]
    final = [entry("3", ["sdh", "sdi"]), entry("4", ["sdj"])]
    result = detach_result(plan, came_back=first, final_luns=final)
    assert [lun["came_back"] for lun in result] == [["sdg", "sdh", "sdi"], ["sdj"]]


def test_a_retry_that_no_longer_finds_a_lun_keeps_what_the_first_attempt_found() -> None:
    """The final call's first attempt removed LUN 3's paths and failed on LUN 4; the retry found only LUN 4's.
    The retry's result alone lost LUN 3's came-back paths (CI, 2026-12-07)."""
    plan = [entry("3", ["sdc", "sdd"], dm=MPATHA), entry("4", ["sde", "sdf"], wwid=W2)]
    first = [entry("3", ["sdg", "sdh"]), entry("4", ["sdi", "sdk"])]
    retry = [entry("3", []), entry("4", ["sdi", "sdk"])]
    result = detach_result(plan, first, [], False, retry)
    assert [lun["came_back"] for lun in result] == [["sdg", "sdh"], ["sdi", "sdk"]]


def test_a_first_attempt_without_luns_falls_back_to_the_last() -> None:
    """A first attempt that failed before its plan (a lock timeout, say) returns no entries: the last one counts."""
    plan = [entry("3", ["sdc"], dm=MPATHA)]
    assert detach_result(plan, came_back=[], final_luns=[entry("3", ["sdg"])])[0]["came_back"] == ["sdg"]


def test_check_mode_reads_neither_attempt() -> None:
    plan = [entry("3", ["sdc"], dm=MPATHA)]
    result = detach_result(plan, came_back="not read", final_luns="not read either", check_mode=True)
    assert result[0]["came_back"] == []


def test_a_missing_came_back_entry_fails_outside_check_mode_as_the_old_loop_did() -> None:
    plan = [entry("3", ["sdc"]), entry("4", ["sdd"])]
    with pytest.raises(
        AnsibleFilterError, match=r"came_back has 1 entries and final_luns 0, none for LUN 4 \(entry 1 of the plan\)"
    ):
        detach_result(plan, came_back=[entry("3", [])])
    with pytest.raises(
        AnsibleFilterError, match=r"came_back has 0 entries and final_luns 1, none for LUN 4 \(entry 1 of the plan\)"
    ):
        detach_result(plan, came_back=[], final_luns=[entry("3", [])])
    with pytest.raises(Exception, match=r"has no (attribute|element) 1"):  # 2.19 on: attribute, 2.17: element
        render(
            LUN_DETACH_RESULT,
            lun_detach__plan={"luns": plan},
            lun_detach__back={"luns": [entry("3", [])]},
            lun_detach__final={"logged_out": []},
            ansible_check_mode=False,
        )


@pytest.mark.parametrize(
    ("plan", "back", "message"),
    [
        ({"luns": []}, [], "expects the planned LUN results"),
        ([{"lun": "3"}], [], "entry 0 of the planned LUN results has no 'devices'"),
        ([{"lun": "3", "devices": [{"path": "/dev/sdc"}]}], [], "the devices of LUN entry 0 has no 'name', 'wwid'"),
        ([entry("3", [])], "nope", r"expects came_back \(a list of dicts\), got a str"),
        ([entry("3", [])], [{"lun": "3"}], "entry 0 of came_back has no 'devices'"),
        ([entry("3", [])], [{"devices": [{"path": "/dev/sdc"}]}], "the devices of came_back entry 0 has no 'name'"),
    ],
)
def test_refuses_what_is_not_the_module_result(plan: Any, back: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=f"^lunsafe.san.detach_result: .*{message}"):
        detach_result(plan, back)


@pytest.mark.parametrize(
    ("final", "message"),
    [
        ({"luns": []}, r"expects final_luns \(a list of dicts\), got a dict"),
        ([{"lun": "3"}], "entry 0 of final_luns has no 'devices'"),
        ([{"devices": [{"path": "/dev/sdc"}]}], "the devices of final_luns entry 0 has no 'name'"),
    ],
)
def test_refuses_a_final_call_result_that_is_not_the_module_result(final: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=f"^lunsafe.san.detach_result: .*{message}"):
        detach_result([entry("3", [])], [entry("3", [])], final_luns=final)


def test_filter_is_registered() -> None:
    assert FilterModule().filters() == {"detach_result": detach_result}
