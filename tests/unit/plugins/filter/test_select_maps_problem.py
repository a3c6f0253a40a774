# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import jinja2
import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.lunsafe.san.plugins.filter import select_maps_problem as plugin
from ansible_collections.lunsafe.san.plugins.filter.fleet_host_problem import fleet_host_problem
from ansible_collections.lunsafe.san.plugins.filter.select_maps import select_maps
from ansible_collections.lunsafe.san.plugins.filter.select_maps_problem import FilterModule, select_maps_problem
from ansible_collections.lunsafe.san.tests.unit.plugins.filter.test_select_maps import (
    BAD,
    DEFAULT,
    EVERYTHING,
    SELECTIONS,
)

ROLE_TASKS = Path(__file__).resolve().parents[4] / "roles" / "faulty_remediation" / "tasks" / "main.yml"


@pytest.mark.parametrize(("expr", "message"), BAD.values(), ids=BAD.keys())
def test_the_problem_is_select_maps_failure_without_the_filter_name(expr: str, message: str) -> None:
    with pytest.raises(AnsibleFilterError) as failure:
        select_maps(EVERYTHING, expr)
    problem = select_maps_problem(EVERYTHING, expr)
    assert problem and "lunsafe.san.select_maps" not in problem
    assert "lunsafe.san.select_maps: " + problem == str(failure.value.message)


@pytest.mark.parametrize("expr", [DEFAULT, *(expr for expr, _names in SELECTIONS.values())])
def test_an_expression_select_maps_accepts_has_no_problem(expr: str) -> None:
    assert select_maps_problem(EVERYTHING, expr) == ""


def test_input_that_is_not_the_facts_is_a_problem_too() -> None:
    assert select_maps_problem([], DEFAULT) == "expects the lunsafe_multipath facts (a dict with 'maps'), got a list"
    assert select_maps_problem(EVERYTHING, ["maps"]) == "the expression must be a string, got a list"


def test_a_missing_jmespath_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    from ansible_collections.lunsafe.san.plugins.filter import json_query  # noqa: PLC0415

    monkeypatch.setattr(json_query, "HAS_JMESPATH", False)
    assert select_maps_problem(EVERYTHING, DEFAULT).startswith("the jmespath Python package is required")


def test_a_message_without_the_prefix_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    def other(_facts: Any, _expr: Any) -> None:
        raise AnsibleFilterError("something else")

    monkeypatch.setattr(plugin, "select_maps", other)
    assert select_maps_problem(EVERYTHING, DEFAULT) == "something else"


def test_filter_is_registered() -> None:
    assert FilterModule().filters() == {"select_maps_problem": select_maps_problem}
    assert yaml.safe_load(plugin.DOCUMENTATION)["name"] == "select_maps_problem"


# --- the role: a refused expression fails once, with the role's message -----------------------------------


def _role_tasks() -> Dict[str, Dict[str, Any]]:
    """The tasks of the role's main block, by name."""
    tasks = yaml.safe_load(ROLE_TASKS.read_text(encoding="utf-8"))
    return {task["name"]: task for task in tasks[0]["block"]}


def _environment() -> jinja2.Environment:
    """Jinja with the filters the role's selection tasks use, under the names the role gives them."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701 - YAML, not HTML, as Ansible does
    env.filters["lunsafe.san.select_maps_problem"] = select_maps_problem
    env.filters["lunsafe.san.select_maps"] = select_maps
    env.filters["lunsafe.san.fleet_host_problem"] = fleet_host_problem
    env.filters["to_json"] = json.dumps
    env.filters["dict2items"] = lambda value: [{"key": key, "value": item} for key, item in value.items()]
    env.filters["items2dict"] = lambda items: {item["key"]: item["value"] for item in items}
    return env


def _evaluate(env: jinja2.Environment, template: str, variables: Dict[str, Any]) -> Any:
    """The value of a ``{{ expression }}`` template, as Ansible's native templating gives it."""
    text = template.strip()
    assert text.startswith("{{") and text.endswith("}}"), text
    return env.compile_expression(text[2:-2])(variables)


def run_selection(select: str, *, max_maps: int = 20) -> Dict[str, Any]:
    """The role's read, check, select and refusal tasks in order over the facts; what each produced.

    A template that raises here is what Ansible prints as a raw task failure: it must not happen."""
    tasks = _role_tasks()
    env = _environment()
    paths = [{**path, "hctl": "2:0:0:1", "unmapped": False} for path in EVERYTHING["paths"]]
    paths.append({**paths[0], "dev": "sdz", "map": None, "unmapped": True})
    facts = {**EVERYTHING, "paths": paths, "summary": {"maps": 6}, "sources": {"multipathd": "ok", "dmsetup": "ok"}}
    variables: Dict[str, Any] = {
        # the registered result of the facts task
        "faulty_remediation__facts": {"changed": False, "ansible_facts": {"lunsafe_multipath": facts}},
        "faulty_remediation_select": select,
        "faulty_remediation_max_maps": max_maps,
    }
    read = next(task for name, task in tasks.items() if name.startswith("Read the facts"))["ansible.builtin.set_fact"]
    for key, template in read.items():
        variables[key] = _evaluate(env, template, variables) if isinstance(template, str) else template
    assert variables["faulty_remediation__problem"] == ""
    check = tasks["Check faulty_remediation_select over the facts (before any change)"]["ansible.builtin.set_fact"]
    for key, template in check.items():
        variables[key] = _evaluate(env, template, variables)
    assert variables["faulty_remediation__unmapped"] == [{"dev": "sdz", "hctl": "2:0:0:1", "wwid": paths[0]["wwid"]}]
    select_task = tasks["Select the maps to clean up with faulty_remediation_select"]["ansible.builtin.set_fact"]
    planned: List[Any] = _evaluate(env, select_task["faulty_remediation__planned"], variables)
    variables["faulty_remediation__planned"] = planned
    refusal_task = next(task for name, task in tasks.items() if name.startswith("Find the faulty maps"))
    for key, value in refusal_task["vars"].items():  # the task's own vars, as Ansible templates them
        variables[key] = (
            [_evaluate(env, item, variables) for item in value]
            if isinstance(value, list)
            else _evaluate(env, value, variables)
        )
    refusal = _evaluate(env, refusal_task["ansible.builtin.set_fact"]["faulty_remediation__refusal"], variables)
    variables["faulty_remediation__refusal"] = refusal
    fail = tasks["Fail when this host's plan was refused"]
    failed: Optional[str] = None
    if env.compile_expression(fail["when"])(variables):
        failed = env.from_string(fail["ansible.builtin.fail"]["msg"]).render(variables)
    return {"failed": failed, "planned": planned}


@pytest.mark.parametrize(("expr", "message"), BAD.values(), ids=BAD.keys())
def test_the_role_fails_once_with_its_own_message(expr: str, message: str) -> None:
    outcome = run_selection(expr)
    problem = select_maps_problem(EVERYTHING, expr)
    assert outcome["failed"] == (
        f"faulty_remediation_select={json.dumps(expr)} cannot be used, nothing was changed: {problem}"
    )
    assert outcome["planned"] == []  # the selection is never evaluated (select_maps would raise)


def test_the_role_selects_with_an_expression_that_works() -> None:
    outcome = run_selection("maps[?name=='mpathb']")
    assert outcome["failed"] is None
    assert [item["name"] for item in outcome["planned"]] == ["mpathb"]


def test_the_role_refuses_a_selection_of_presented_or_held_maps_and_one_over_its_cap() -> None:
    presented = run_selection("maps[?presented]")
    assert presented["failed"] is not None and presented["failed"].startswith(
        "faulty_remediation_select selected maps that are never flushed"
    )
    names = [item["name"] for item in presented["planned"]]
    assert names and f"(fix the paths, or detach the LUN with the lun_detach role): {names};" in presented["failed"]
    unsafe = run_selection("maps[?!presented]")
    held = [item["name"] for item in unsafe["planned"] if item["holders"]]
    assert held and f"held (partitions, LVM, dm-crypt, another map): {held}." in str(unsafe["failed"])
    safe = run_selection("maps[?!presented && !holders]")
    assert safe["failed"] is None and safe["planned"]


def test_the_role_refuses_more_maps_than_faulty_remediation_max_maps() -> None:
    outcome = run_selection("maps[?!presented && !holders]", max_maps=0)
    names = ", ".join(item["name"] for item in outcome["planned"])
    assert outcome["failed"] == (
        f"{len(outcome['planned'])} maps were selected for cleanup, more than faulty_remediation_max_maps=0;"
        f" nothing was changed. Review them ({names}) and raise the limit."
    )
