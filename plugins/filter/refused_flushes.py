# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Dict, List

from ansible.errors import AnsibleFilterError

from ansible_collections.lunsafe.san.plugins.plugin_utils._role_data import entries

DOCUMENTATION = r"""
name: refused_flushes
short_description: The maps a looped multipath_flush task could not flush, with the reason
version_added: 0.1.0
author: lunsafe.san developers (@lunsafe)
description:
  - Takes the C(results) of a M(lunsafe.san.multipath_flush) task looped over maps of the
    C(lunsafe_multipath) facts (M(lunsafe.san.multipath_faulty_facts)) and registered with
    C(ignore_errors), and returns one entry per failed flush, in the order of the loop, with the map's
    C(name) and C(wwid) (from the loop item) and the module's C(msg) (empty when it gave none).
  - Results that did not fail (a C(failed) key that is false or absent) are left out.
  - The C(lunsafe.san.faulty_remediation) role reports these in C(faulty_remediation_report.refused).
  - Fails when a result is not a dict, or when a failed result lacks the C(item) of its loop.
options:
  _input:
    description: The C(results) list of the looped task.
    type: list
    elements: dict
    required: true
seealso:
  - module: lunsafe.san.multipath_flush
  - module: lunsafe.san.multipath_faulty_facts
"""

EXAMPLES = r"""
- name: Flush the maps whose LUN is no longer presented
  lunsafe.san.multipath_flush:
    map: "{{ item.wwid }}"
  loop: "{{ ansible_facts.lunsafe_multipath.maps | rejectattr('presented') | selectattr('holders', 'equalto', []) }}"
  register: flushed
  ignore_errors: true

- name: Say which maps were refused, and why
  ansible.builtin.debug:
    msg: "{{ flushed.results | default([]) | lunsafe.san.refused_flushes }}"
  # [{"name": "mpathb", "wwid": "36001405...", "msg": "map mpathb is open ..."}]
"""

RETURN = r"""
_value:
  description: One dict per failed result, in the order of the input.
  type: list
  elements: dict
  contains:
    name:
      description: The map's name (C(item.name) of the result).
      type: str
      sample: mpathb
    wwid:
      description: The map's WWID (C(item.wwid) of the result).
      type: str
      sample: 36001405a1b2c3d4e5f60718293a4b5c6
    msg:
      description: The failure message, empty when the result has none.
      type: str
      sample: "map mpathb is open (1 opener): nothing was changed"
"""

NAME = "lunsafe.san.refused_flushes"


def refused_flushes(results: Any) -> List[Dict[str, Any]]:
    """``{name, wwid, msg}`` per failed result of a loop over fact maps."""
    out = []
    for index, result in enumerate(entries(results, filter_name=NAME, what="the loop results")):
        if not result.get("failed"):
            continue
        item = result.get("item")
        if not isinstance(item, Mapping) or "name" not in item or "wwid" not in item:
            raise AnsibleFilterError(
                f"{NAME}: failed result {index} has no loop item with a 'name' and a 'wwid' (got {item!r})"
            )
        out.append({"name": item["name"], "wwid": item["wwid"], "msg": result.get("msg", "")})
    return out


class FilterModule:
    """lunsafe.san.refused_flushes"""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"refused_flushes": refused_flushes}
