# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Dict, List, Set

from ansible.errors import AnsibleFilterError

from ansible_collections.lunsafe.san.plugins.filter.json_query import plain, query
from ansible_collections.lunsafe.san.plugins.plugin_utils._role_data import entries

DOCUMENTATION = r"""
name: select_maps
short_description: The maps of the fault facts that a JMESPath expression selects, checked
version_added: 0.1.0
author: lunsafe.san developers (@lunsafe)
description:
  - Evaluates a JMESPath expression over the C(lunsafe_multipath) facts of M(lunsafe.san.multipath_faulty_facts)
    (the whole fact, so the expression starts from C(maps), as in V(maps[?dead])) and returns the facts' own maps
    it selects, in the order of the selection, each once.
  - What the expression selects must be a list of maps of the facts - objects with the C(name) and C(wwid) of one
    of C(maps); a projection that keeps both keys selects the whole maps. Anything else fails, naming the
    problem - an invalid expression (with the position, as
    C(lunsafe.san.json_query) does), a result that is not a list (null, a single map, a string), an entry that
    is not a map (a path, a name), a name and WWID that no map of the facts has.
  - The C(lunsafe.san.faulty_remediation) role selects the maps it may clean up with it
    (C(faulty_remediation_select)), before anything is changed.
positional: expr
options:
  _input:
    description: The C(lunsafe_multipath) facts (a dict with a C(maps) list).
    type: dict
    required: true
  expr:
    description: The JMESPath expression, evaluated over the whole of the facts.
    type: str
    required: true
requirements:
  - jmespath (Python package, on the controller)
seealso:
  - module: lunsafe.san.multipath_faulty_facts
  - name: JMESPath specification
    description: The query language, with examples.
    link: https://jmespath.org/specification.html
"""

EXAMPLES = r"""
- name: Gather the faulty-device facts
  lunsafe.san.multipath_faulty_facts:

- name: Flush the dead maps whose LUN is no longer presented and that nothing holds
  lunsafe.san.multipath_flush:
    map: "{{ item.uuid }}"
  loop: "{{ ansible_facts.lunsafe_multipath | lunsafe.san.select_maps('maps[?dead && !presented && !holders]') }}"
  loop_control:
    label: "{{ item.name }} {{ item.reasons }}"
"""

RETURN = r"""
_value:
  description: The maps of the facts the expression selects (each a dict as in C(lunsafe_multipath.maps)).
  type: list
  elements: dict
  sample: [{"name": "mpathb", "wwid": "36001405b7c8d9e0f1a2b3c4d5e6f7a80", "presented": false, "holders": []}]
"""

NAME = "lunsafe.san.select_maps"
_HINT = "select maps of the facts, for example maps[?dead]"


def _shown(value: Any, limit: int = 80) -> str:
    """A short text of a selected value for an error message."""
    text = "null" if value is None else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def select_maps(facts: Any, expr: Any) -> List[Any]:
    """The maps of ``facts`` that the JMESPath expression ``expr`` selects, each once, in its order."""
    if not isinstance(facts, Mapping) or "maps" not in facts:
        kind = "a dict without 'maps'" if isinstance(facts, Mapping) else f"a {type(facts).__name__}"
        raise AnsibleFilterError(f"{NAME}: expects the lunsafe_multipath facts (a dict with 'maps'), got {kind}")
    maps = entries(facts["maps"], filter_name=NAME, what="the facts' maps", keys=("name", "wwid"))
    by_wwid = {plain(item["wwid"]): item for item in maps}
    selected = query(facts, expr, filter_name=NAME)
    if not isinstance(selected, list):
        raise AnsibleFilterError(
            f"{NAME}: the expression {str(expr)!r} selects {_shown(selected)}, not a list of maps; {_HINT}"
        )
    out: List[Any] = []
    seen: Set[str] = set()
    for index, item in enumerate(selected):
        if not isinstance(item, dict) or "name" not in item or "wwid" not in item:
            raise AnsibleFilterError(
                f"{NAME}: entry {index} of what the expression {str(expr)!r} selects is not a map"
                f" (an object with the map's name and wwid): {_shown(item)}; {_HINT}"
            )
        fact_map = by_wwid.get(item["wwid"]) if isinstance(item["wwid"], str) else None
        if fact_map is None or plain(fact_map["name"]) != item["name"]:
            raise AnsibleFilterError(
                f"{NAME}: entry {index} of what the expression {str(expr)!r} selects, name {item['name']!r}"
                f" and wwid {item['wwid']!r}, is no map of the facts; {_HINT}"
            )
        if item["wwid"] not in seen:
            seen.add(item["wwid"])
            out.append(fact_map)
    return out


class FilterModule:
    """lunsafe.san.select_maps"""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"select_maps": select_maps}
