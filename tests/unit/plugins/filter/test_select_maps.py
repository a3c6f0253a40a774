# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.lunsafe.san.plugins.filter import json_query as json_query_plugin
from ansible_collections.lunsafe.san.plugins.filter.left_alone import left_alone
from ansible_collections.lunsafe.san.plugins.filter.select_maps import FilterModule, select_maps
from ansible_collections.lunsafe.san.tests.unit.compat import trust_as_template
from ansible_collections.lunsafe.san.tests.unit.plugins.filter.old_jinja import (
    FAULTY_REMEDIATION_LEFT,
    FAULTY_REMEDIATION_PLANNED,
    render,
)

ROLE = Path(__file__).resolve().parents[4] / "roles" / "faulty_remediation"
# the role's default, as its defaults/main.yml gives it
DEFAULT = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))["faulty_remediation_select"]
TARGET = "iqn.2003-01.org.lunsafe.lab:array"


def fact_map(
    name: str, *, presented: bool = True, holders: Any = (), dead: bool = False, reasons: Any = None
) -> Dict[str, Any]:
    """One map of the lunsafe_multipath facts, with every key the module returns."""
    wwid = "36001405" + name.encode().hex().ljust(24, "0")
    if reasons is None:
        reasons = (["no_active_path"] if dead else []) + ([] if presented else ["unpresented"])
    return {
        "name": name,
        "wwid": wwid,
        "uuid": f"mpath-{wwid}",
        "dm": f"dm-{ord(name[-1]) - ord('a')}",
        "suspended": False,
        "active_paths": 0 if dead else 2,
        "usable_paths": 2 if presented else 0,
        "paths": [f"sd{name[-1]}", f"sd{name[-1]}{name[-1]}"],
        "orphan_entries": 0,
        "queue_if_no_path": True,
        "queueing": "12 chk",
        "queued_io": 0,
        "features": "1 queue_if_no_path",
        "holders": list(holders) if isinstance(holders, tuple) else holders,
        "dead": dead,
        "queueing_dead": False,
        "presented": presented,
        "faulty": bool(reasons),
        "reasons": reasons,
    }


def facts(*maps: Dict[str, Any]) -> Dict[str, Any]:
    """The lunsafe_multipath fact around these maps (a faulty path for each dead map)."""
    paths = [
        {
            "dev": item["paths"][0],
            "wwid": item["wwid"],
            "map": item["name"],
            "faulty": item["dead"],
            "reasons": ["checker_faulty"] if item["dead"] else [],
            "session": {"sid": 1, "host": 2, "target": TARGET, "portal": "127.0.0.1:3260", "state": "LOGGED_IN"},
        }
        for item in maps
    ]
    return {"schema": 1, "summary": {"maps": len(maps)}, "maps": list(maps), "paths": paths, "orphans": []}


HEALTHY = fact_map("mpatha")
GONE = fact_map("mpathb", presented=False, dead=True)
GONE_HELD = fact_map("mpathc", presented=False, dead=True, holders=("dm-7",))
PATH_PROBLEM = fact_map("mpathd", reasons=["faulty_paths"])
GONE_ALIVE = fact_map("mpathe", presented=False)  # unpresented, but multipathd still has an active path
GONE_HELD_TWICE = fact_map("mpathf", presented=False, dead=True, holders=("dm-8", "dm-9"))

# each case: the maps of the facts; the default selects what the role's Jinja selected before it
FACT_CASES = {
    "no map": (),
    "healthy only": (HEALTHY,),
    "one gone": (HEALTHY, GONE),
    "gone and held": (GONE_HELD, GONE),
    "path problem": (PATH_PROBLEM, HEALTHY),
    "unpresented but alive": (GONE_ALIVE,),
    "everything": (HEALTHY, GONE, GONE_HELD, PATH_PROBLEM, GONE_ALIVE, GONE_HELD_TWICE),
}


def role_vars(data: Dict[str, Any]) -> Dict[str, Any]:
    return {"ansible_facts": {"lunsafe_multipath": data}}


@pytest.mark.parametrize("maps", FACT_CASES.values(), ids=FACT_CASES.keys())
def test_the_default_selects_what_the_role_selected_before(maps: List[Dict[str, Any]]) -> None:
    data = facts(*maps)
    old = render(FAULTY_REMEDIATION_PLANNED, **role_vars(data))
    assert select_maps(data, DEFAULT) == old
    # and the faulty maps left alone are the same, and say why as before
    selected = [item["wwid"] for item in select_maps(data, DEFAULT)]
    left = [item for item in data["maps"] if item["faulty"] and item["wwid"] not in selected]
    assert left == render(FAULTY_REMEDIATION_LEFT, **role_vars(data))
    assert all(entry["why"] != "not selected" for entry in left_alone(left))


def test_the_default_is_the_safe_rule() -> None:
    assert DEFAULT == "maps[?!presented && !holders]"
    everything = facts(*FACT_CASES["everything"])
    assert [item["name"] for item in select_maps(everything, DEFAULT)] == ["mpathb", "mpathe"]


EVERYTHING = facts(*FACT_CASES["everything"])

# each case: an expression other than the default, and the names of the maps it selects from EVERYTHING
SELECTIONS = {
    "by name": ("maps[?name=='mpathb']", ["mpathb"]),
    "by reasons": ("maps[?contains(reasons, 'unpresented')]", ["mpathb", "mpathc", "mpathe", "mpathf"]),
    "dead and safe": ("maps[?dead && !presented && !holders]", ["mpathb"]),
    "by WWID list": (f'maps[?contains(`["{GONE["wwid"]}", "x"]`, wwid)]', ["mpathb"]),
    "in the expression's order": ("reverse(maps[?!presented])", ["mpathf", "mpathe", "mpathc", "mpathb"]),
    "sorted": ("sort_by(maps[?faulty], &dm)[-2:]", ["mpathe", "mpathf"]),
    "a slice": ("maps[?!presented] | [:1]", ["mpathb"]),
    "each map once": ("[maps[?dead], maps[?!presented]][]", ["mpathb", "mpathc", "mpathf", "mpathe"]),
    "a projection keeping name and wwid": ("maps[?dead].{name: name, wwid: wwid}", ["mpathb", "mpathc", "mpathf"]),
    "nothing": ("maps[?name=='mpathz']", []),
    "a literal naming a map": (f'`[{{"name": "mpathd", "wwid": "{PATH_PROBLEM["wwid"]}"}}]`', ["mpathd"]),
}


@pytest.mark.parametrize(("expr", "names"), SELECTIONS.values(), ids=SELECTIONS.keys())
def test_selects_the_facts_own_maps(expr: str, names: List[str]) -> None:
    selected = select_maps(EVERYTHING, expr)
    assert [item["name"] for item in selected] == names
    # whole maps, the very objects of the facts (a projection too)
    for item in selected:
        assert any(item is fact for fact in EVERYTHING["maps"])


def test_maps_not_selected_are_left_alone_with_why() -> None:
    selected = select_maps(EVERYTHING, "maps[?name=='mpathb']")
    left = [item for item in EVERYTHING["maps"] if item["faulty"] and item not in selected]
    assert [(entry["name"], entry["why"]) for entry in left_alone(left)] == [
        ("mpathc", "held by dm-7"),
        ("mpathd", "its LUN is still presented"),
        ("mpathe", "not selected"),
        ("mpathf", "held by dm-8, dm-9"),
    ]


class _AnsibleLazyTemplateList(list):  # the names Ansible's own lazy containers have
    pass


class _AnsibleLazyTemplateDict(dict):
    pass


def test_ansible_types_are_accepted() -> None:
    maps = _AnsibleLazyTemplateList(
        _AnsibleLazyTemplateDict({**item, "name": trust_as_template(item["name"])}) for item in (HEALTHY, GONE)
    )
    data = _AnsibleLazyTemplateDict(maps=maps)
    selected = select_maps(data, trust_as_template("maps[?starts_with(name, 'mpath') && !presented]"))
    assert selected == [maps[1]] and selected[0] is maps[1]


# each case: an expression that cannot be used, and what the error says about it
BAD = {
    "invalid": ("maps[?dead", r"invalid JMESPath expression 'maps\[\?dead' at position 10 \(the end"),
    "invalid token": ("maps[?dead]]", r"invalid JMESPath expression .* at position 11 \(at '\]'\)"),
    "empty": ("", r"invalid JMESPath expression ''"),
    "cannot apply": ("maps[?contains(dead, 'x')]", r"JMESPath expression .* failed: .*contains"),
    "null": ("missing", r"selects null, not a list of maps; select maps of the facts, for example maps\[\?dead\]$"),
    "a single map": ("maps[0]", r"selects \{'name': 'mpatha', .*\.\.\., not a list of maps"),
    "a number": ("length(maps)", r"selects 6, not a list of maps"),
    "names": ("maps[].name", r"entry 0 of what the expression 'maps\[\].name' selects is not a map .*: 'mpatha'"),
    "paths": ("paths[?faulty]", r"entry 0 of .* is not a map \(an object with the map's name and wwid\): \{'dev'"),
    "a map without its wwid": ("maps[].{name: name}", r"entry 0 .* is not a map .*: \{'name': 'mpatha'\}"),
    "an unknown map": (
        '`[{"name": "mpathz", "wwid": "36001405ffff"}]`',
        r"entry 0 .*, name 'mpathz' and wwid '36001405ffff', is no map of the facts",
    ),
    "a name that is not the map's": (
        f'`[{{"name": "mpathz", "wwid": "{GONE["wwid"]}"}}]`',
        r"name 'mpathz' and wwid '36001405.*', is no map of the facts",
    ),
    "a wwid that is not a string": ('`[{"name": "mpatha", "wwid": 7}]`', r"wwid 7, is no map of the facts"),
    "mixed": ("[maps[0], paths[0]]", r"entry 1 of what .* is not a map"),
}


@pytest.mark.parametrize(("expr", "message"), BAD.values(), ids=BAD.keys())
def test_an_expression_that_cannot_be_used_fails_naming_the_problem(expr: str, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=f"^lunsafe.san.select_maps: .*{message}"):
        select_maps(EVERYTHING, expr)


def test_long_values_are_shortened_in_errors() -> None:
    with pytest.raises(AnsibleFilterError) as caught:
        select_maps(EVERYTHING, "maps[0]")
    assert len(str(caught.value)) < 250


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([HEALTHY], r"expects the lunsafe_multipath facts \(a dict with 'maps'\), got a list$"),
        (None, r"got a NoneType$"),
        ({"summary": {}}, r"got a dict without 'maps'$"),
        ({"maps": {"name": "mpatha"}}, r"expects the facts' maps \(a list of dicts\), got a dict"),
        ({"maps": ["mpatha"]}, r"entry 0 of the facts' maps is a str, not a dict"),
        ({"maps": [{"name": "mpatha"}]}, r"entry 0 of the facts' maps has no 'wwid'"),
    ],
)
def test_refuses_what_is_not_the_facts(data: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=f"^lunsafe.san.select_maps: .*{message}"):
        select_maps(data, DEFAULT)


def test_the_expression_must_be_a_string() -> None:
    with pytest.raises(
        AnsibleFilterError, match=r"^lunsafe\.san\.select_maps: the expression must be a string, got a list"
    ):
        select_maps(EVERYTHING, ["maps"])


def test_without_jmespath_the_error_names_the_filter_and_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_query_plugin, "HAS_JMESPATH", False)
    with pytest.raises(AnsibleFilterError) as caught:
        select_maps(EVERYTHING, DEFAULT)
    assert str(caught.value) == (
        "lunsafe.san.select_maps: the jmespath Python package is required on the controller: pip install jmespath"
    )


def test_filter_is_registered() -> None:
    assert FilterModule().filters() == {"select_maps": select_maps}
