# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from typing import Any, Callable, Dict, List

from ansible_collections.lunsafe.san.plugins.plugin_utils._role_data import entries

DOCUMENTATION = r"""
name: left_alone
short_description: Why each faulty map that is not cleaned up is left alone
version_added: 0.1.0
author: lunsafe.san developers (@lunsafe)
description:
  - Takes maps of the C(lunsafe_multipath) facts (M(lunsafe.san.multipath_faulty_facts)) that a cleanup
    leaves in place and returns, for each, its C(name), C(wwid) and C(reasons) with C(why) it is left
    alone. A map with holders is V(held by) its holders, comma-separated; a map whose LUN is still presented
    is left because V(its LUN is still presented); any other map was V(not selected) (the role's
    C(faulty_remediation_select) expression left it out).
  - The C(lunsafe.san.faulty_remediation) role reports these in C(faulty_remediation_report.left_alone).
  - Fails, naming the entry and the key, when a map lacks C(name), C(wwid), C(reasons), C(holders) or
    C(presented).
options:
  _input:
    description: Maps of the C(lunsafe_multipath.maps) fact.
    type: list
    elements: dict
    required: true
seealso:
  - module: lunsafe.san.multipath_faulty_facts
"""

EXAMPLES = r"""
- name: Gather the faulty-device facts
  lunsafe.san.multipath_faulty_facts:

- name: Say why the faulty maps whose LUN is still presented are left alone
  ansible.builtin.debug:
    msg: "{{ faulty_presented | lunsafe.san.left_alone }}"
  vars:
    faulty_presented: "{{ ansible_facts.lunsafe_multipath.maps | selectattr('faulty') | selectattr('presented') }}"
  # [{"name": "mpatha", "wwid": "36001405...", "reasons": ["faulty_paths"], "why": "its LUN is still presented"}]
"""

RETURN = r"""
_value:
  description: One dict per map, in the order of the input.
  type: list
  elements: dict
  contains:
    name:
      description: The map's name.
      type: str
      sample: mpatha
    wwid:
      description: The map's WWID.
      type: str
      sample: 36001405a1b2c3d4e5f60718293a4b5c6
    reasons:
      description: The map's fault reasons, as the facts give them.
      type: list
      elements: str
      sample: ["faulty_paths"]
    why:
      description: Why the map is left alone.
      type: str
      sample: held by dm-3, dm-4
"""

NAME = "lunsafe.san.left_alone"


def left_alone(maps: Any) -> List[Dict[str, Any]]:
    """``{name, wwid, reasons, why}`` per map a cleanup leaves in place."""
    out = []
    keys = ("name", "wwid", "reasons", "holders", "presented")
    for item in entries(maps, filter_name=NAME, what="the maps", keys=keys):
        holders = item["holders"]
        if holders:
            why = "held by " + ", ".join(str(holder) for holder in holders)
        elif item["presented"]:
            why = "its LUN is still presented"
        else:
            why = "not selected"
        out.append({"name": item["name"], "wwid": item["wwid"], "reasons": item["reasons"], "why": why})
    return out


class FilterModule:
    """lunsafe.san.left_alone"""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"left_alone": left_alone}
