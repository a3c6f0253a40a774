# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.lunsafe.san.plugins.filter import json_query as plugin
from ansible_collections.lunsafe.san.plugins.filter.json_query import FilterModule, json_query, plain
from ansible_collections.lunsafe.san.tests.unit.compat import trust_as_template

W1 = "36001405a1b2c3d4e5f60718293a4b5c6"
W2 = "36001405b7c8d9e0f1a2b3c4d5e6f7a80"
TARGET = "iqn.2003-01.org.lunsafe.lab:array"

FACTS = {
    "version": 1,
    "summary": {"maps": 2, "faulty_maps": 1, "dead_maps": 1},
    "maps": [
        {"name": "mpatha", "wwid": W1, "dead": False, "presented": True, "holders": [], "reasons": []},
        {
            "name": "mpathb",
            "wwid": W2,
            "dead": True,
            "presented": False,
            "holders": ["dm-3"],
            "reasons": ["unpresented"],
        },
    ],
    "paths": [
        {"dev": "sdc", "map": "mpatha", "faulty": False, "reasons": [], "session": {"target": TARGET, "sid": 1}},
        {"dev": "sdd", "map": "mpathb", "faulty": True, "reasons": ["checker_faulty"], "session": {"target": TARGET}},
        {"dev": "sde", "map": "mpathb", "faulty": True, "reasons": ["dm_failed"], "session": None},
    ],
}

# each case: expression, what it selects from FACTS
CASES = {
    "a key": ("version", 1),
    "nothing there": ("missing", None),
    "a projection": ("maps[*].name", ["mpatha", "mpathb"]),
    "a filter": ("maps[?dead].name", ["mpathb"]),
    "a filter with a literal": ("maps[?wwid=='" + W1 + "'].name | [0]", "mpatha"),
    "a multiselect hash": (
        f"paths[?faulty && session.target=='{TARGET}'].{{dev: dev, reasons: reasons}}",
        [{"dev": "sdd", "reasons": ["checker_faulty"]}],
    ),
    "a function over strings": ("paths[?contains(dev, 'e')].dev", ["sde"]),
    "a function over lists": ("maps[?length(holders) > `0`].name", ["mpathb"]),
    "sort_by": ("sort_by(paths, &dev)[-1].dev", "sde"),
    "a null session": ("paths[?session == null].dev", ["sde"]),
}


@pytest.mark.parametrize(("expr", "expected"), CASES.values(), ids=CASES.keys())
def test_selects(expr: str, expected: Any) -> None:
    assert json_query(FACTS, expr) == expected


class _AnsibleLazyTemplateList(list):  # the name Ansible's own lazy list has
    pass


class _AnsibleLazyTemplateDict(dict):
    pass


def test_ansible_types_are_usable_by_jmespath_functions() -> None:
    tagged = trust_as_template("sdc")  # a str subclass JMESPath's type check does not know
    assert tagged.__class__ is not str
    data = _AnsibleLazyTemplateDict(paths=_AnsibleLazyTemplateList([_AnsibleLazyTemplateDict(dev=tagged)]))
    assert json_query(data, "length(paths)") == 1
    assert json_query(data, "paths[?starts_with(dev, 'sd')].dev") == ["sdc"]
    assert json_query(data, trust_as_template("keys(@)")) == ["paths"]


class _Count(int):
    pass


def test_plain_copies_to_builtin_types() -> None:
    value = plain({"a": (1, 2.5, _Count(3)), "b": [True, None, b"raw"], "c": (x for x in "ab"), "d": {3}})
    assert value == {"a": [1, 2.5, 3], "b": [True, None, b"raw"], "c": ["a", "b"], "d": {3}}
    assert value["a"][2].__class__ is int
    assert plain(True) is True


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("maps[?dead==]", r"'maps\[\?dead==\]' at position 12 \(at '\]'\): invalid token$"),
        ("maps]", r"at position 4 \(at '\]'\): Unexpected token: \]$"),
        ("maps[", r"'maps\[' at position 5 \(the end of the expression\): the expression is incomplete$"),
        ("maps ~ x", r"at position 5 \(at '~'\): Unknown token ~$"),
        ('maps."dead', r"at position 5 \(at '\"dead'\): Unclosed \" delimiter$"),
        ("", r"'': Invalid JMESPath expression: cannot be empty\.$"),
    ],
)
def test_an_invalid_expression_names_the_position(expr: str, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=f"^lunsafe.san.json_query: invalid JMESPath expression .*{message}"):
        json_query(FACTS, expr)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("length(version)", "In function length.., invalid type for value: 1"),
        ("nope(maps)", "Unknown function: nope.."),
        ("length(maps, paths)", r"Expected 1 argument for function length\(\), received 2"),
    ],
)
def test_an_expression_that_cannot_apply_says_why(expr: str, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=f"^lunsafe.san.json_query: JMESPath expression .* failed: {message}"):
        json_query(FACTS, expr)


def test_the_expression_must_be_a_string() -> None:
    with pytest.raises(AnsibleFilterError, match="the expression must be a string, got a int"):
        json_query(FACTS, 3)


def test_without_jmespath_the_error_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin, "HAS_JMESPATH", False)
    with pytest.raises(AnsibleFilterError) as raised:
        json_query(FACTS, "version")
    assert str(raised.value) == (
        "lunsafe.san.json_query: the jmespath Python package is required on the controller: pip install jmespath"
    )


def test_filter_is_registered() -> None:
    assert FilterModule().filters() == {"json_query": json_query}


def test_an_error_without_a_position_adds_none() -> None:
    assert plugin._position(ValueError("x"), "maps") == ""
