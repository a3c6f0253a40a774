# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.lunsafe.san.plugins.plugin_utils._role_data import entries, first_wwid

DOCUMENTATION = r"""
name: detach_result
short_description: One entry per detached LUN, from the plan, the came-back check and the final call
version_added: 0.1.0
author: lunsafe.san developers (@lunsafe)
description:
  - Builds the output of the C(lunsafe.san.lun_detach) role, C(lun_detach_result), from three results of
    M(lunsafe.san.iscsi_lun_attach) with O(lunsafe.san.iscsi_lun_attach#module:state=absent), in the order of
    the procedure. The input is the removal planned in check mode, O(came_back) the check for paths that came
    back during the array-side unmap, and O(logged_out) the portals the final call logged out of.
  - The entries of the input and of O(came_back) are paired by position (the module returns one entry per
    requested LUN, in the order given).
  - Each entry has the C(lun), the C(wwid) of its first device that has one (or null), the C(map) planned
    for flushing (or null), the planned C(paths), the devices that C(came_back) (always empty with
    O(check_mode=true)), the C(logged_out) portals, and C(changed), true when the LUN had paths or a
    portal was logged out.
  - Fails when an entry lacks one of the keys the module always returns, or, outside check mode, when
    O(came_back) has no entry for one of the LUNs.
positional: came_back, logged_out, check_mode
options:
  _input:
    description: The RV(lunsafe.san.iscsi_lun_attach#module:luns) list of the removal planned in check mode.
    type: list
    elements: dict
    required: true
  came_back:
    description:
      - The RV(lunsafe.san.iscsi_lun_attach#module:luns) list of the check, after the unmap, for paths that
        came back. Each entry's C(devices) are the paths found again.
    type: list
    elements: dict
    required: true
  logged_out:
    description: The RV(lunsafe.san.iscsi_lun_attach#module:logged_out) portals of the final call.
    type: list
    elements: str
    default: []
  check_mode:
    description: Whether the play runs in check mode; then nothing came back, whatever O(came_back) says.
    type: bool
    default: false
seealso:
  - module: lunsafe.san.iscsi_lun_attach
"""

EXAMPLES = r"""
- name: Set the role output (one entry per LUN)
  ansible.builtin.set_fact:
    lun_detach_result: >-
      {{ lun_detach__plan.luns | lunsafe.san.detach_result(came_back=lun_detach__back.luns,
         logged_out=lun_detach__final.logged_out | default([]), check_mode=ansible_check_mode) }}
"""

RETURN = r"""
_value:
  description: One dict per LUN, in the order of the input.
  type: list
  elements: dict
  contains:
    lun:
      description: The LUN number as the module returned it.
      type: str
      sample: "3"
    wwid:
      description: The WWID of the LUN's first planned path that has one, null when none has.
      type: str
      sample: 36001405a1b2c3d4e5f60718293a4b5c6
    map:
      description: The name of the multipath map planned for flushing, null without one.
      type: str
      sample: mpatha
    paths:
      description: The kernel names of the planned paths.
      type: list
      elements: str
      sample: ["sdc", "sdd"]
    came_back:
      description: The kernel names of the paths found again after the unmap (empty in check mode).
      type: list
      elements: str
      sample: []
    logged_out:
      description: The portals the final call logged out of (the same list in every entry).
      type: list
      elements: str
      sample: ["192.0.2.10:3260"]
    changed:
      description: Whether the LUN had paths to remove or a portal was logged out.
      type: bool
      sample: true
"""

NAME = "lunsafe.san.detach_result"


def detach_result(
    plan: Any, came_back: Any, logged_out: Sequence[str] = (), check_mode: bool = False
) -> List[Dict[str, Any]]:
    """One entry per planned LUN: the lun_detach role's output."""
    planned = entries(plan, filter_name=NAME, what="the planned LUN results", keys=("lun", "devices"))
    # in check mode nothing came back: the came-back check is not read at all
    back = [] if check_mode else entries(came_back, filter_name=NAME, what="came_back", keys=("devices",))
    portals = list(logged_out)
    out = []
    for index, lun in enumerate(planned):
        devices = entries(
            lun["devices"], filter_name=NAME, what=f"the devices of LUN entry {index}", keys=("name", "wwid")
        )
        again: List[Any] = []
        if not check_mode:
            if index >= len(back):
                raise AnsibleFilterError(
                    f"{NAME}: came_back has {len(back)} entries, none for LUN {lun['lun']} (entry {index} of the plan)"
                )
            found = entries(
                back[index]["devices"], filter_name=NAME, what=f"the devices of came_back entry {index}", keys=("name",)
            )
            again = [device["name"] for device in found]
        out.append(
            {
                "lun": lun["lun"],
                "wwid": first_wwid(devices),
                "map": (lun.get("dm") or {}).get("name"),
                "paths": [device["name"] for device in devices],
                "came_back": again,
                "logged_out": portals,
                "changed": len(devices) > 0 or len(portals) > 0,
            }
        )
    return out


class FilterModule:
    """lunsafe.san.detach_result"""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"detach_result": detach_result}
