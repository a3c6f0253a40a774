# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.lunsafe.san.plugins.plugin_utils._role_data import entries, first_wwid

DOCUMENTATION = r"""
name: detach_result
short_description: One entry per detached LUN, from the removal and the final call's first and last attempts
version_added: 0.1.0
author: lunsafe.san developers (@lunsafe)
description:
  - Builds the output of the C(lunsafe.san.lun_detach) role, C(lun_detach_result), from results of
    M(lunsafe.san.iscsi_lun_attach) (or M(lunsafe.san.fc_lun_attach)) with
    O(lunsafe.san.iscsi_lun_attach#module:state=absent), in the order of the procedure. The input is the
    removal before the array-side unmap, O(came_back) the first attempt of the final call after it (its
    devices are the paths that came back during the unmap), O(final_luns) the last attempt of that call when
    it needed several, and O(logged_out) the portals the final call logged out of.
  - The entries of the input, of O(came_back) and of O(final_luns) are paired by position (the module returns
    one entry per requested LUN, in the order given).
  - A LUN's C(came_back) is the devices of its O(came_back) entry, then those of its O(final_luns) entry that
    the first attempt did not list (what came back after it). An attempt that fails part-way has removed
    some LUNs' paths, which the next attempt does not find; the first attempt's result is what keeps them
    reported.
  - Each entry has the C(lun), the C(wwid) of its first device that has one (or null), the C(map) planned
    for flushing (or null), the planned C(paths), the devices that C(came_back) (always empty with
    O(check_mode=true)), the C(logged_out) portals, and C(changed), true when the LUN had paths or a
    portal was logged out.
  - Fails when an entry lacks one of the keys the module always returns, or, outside check mode, when
    neither O(came_back) nor O(final_luns) has an entry for one of the LUNs.
positional: came_back, logged_out, check_mode, final_luns
options:
  _input:
    description: The RV(lunsafe.san.iscsi_lun_attach#module:luns) list of the removal before the array-side unmap.
    type: list
    elements: dict
    required: true
  came_back:
    description:
      - The RV(lunsafe.san.iscsi_lun_attach#module:luns) list of the first attempt of the final call, after
        the unmap. Each entry's C(devices) are the paths found again.
    type: list
    elements: dict
    required: true
  final_luns:
    description:
      - The RV(lunsafe.san.iscsi_lun_attach#module:luns) list of the last attempt of the final call, when it
        needed more than one. Each entry's C(devices) came back too; those the first attempt did not list are
        added.
    type: list
    elements: dict
    default: []
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
      {{ lun_detach__plan.luns | lunsafe.san.detach_result(came_back=lun_detach__back.luns | default([]),
         final_luns=lun_detach__final.luns | default([]), logged_out=lun_detach__final.logged_out | default([]),
         check_mode=ansible_check_mode) }}
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
      description:
        - The kernel names of the paths found again after the unmap, by the final call's first attempt and
          then by its last (empty in check mode).
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


def _names(source: Sequence[Mapping[str, Any]], index: int, what: str) -> List[str]:
    """The device names of entry ``index`` of ``source`` (none when it has no such entry)."""
    if index >= len(source):
        return []
    found = entries(
        source[index]["devices"], filter_name=NAME, what=f"the devices of {what} entry {index}", keys=("name",)
    )
    return [device["name"] for device in found]


def detach_result(
    plan: Any,
    came_back: Any,
    logged_out: Sequence[str] = (),
    check_mode: bool = False,
    final_luns: Any = (),
) -> List[Dict[str, Any]]:
    """One entry per planned LUN: the lun_detach role's output."""
    planned = entries(plan, filter_name=NAME, what="the planned LUN results", keys=("lun", "devices"))
    # in check mode nothing came back: neither attempt is read at all
    back = [] if check_mode else entries(came_back, filter_name=NAME, what="came_back", keys=("devices",))
    final = [] if check_mode else entries(final_luns, filter_name=NAME, what="final_luns", keys=("devices",))
    portals = list(logged_out)
    out = []
    for index, lun in enumerate(planned):
        devices = entries(
            lun["devices"], filter_name=NAME, what=f"the devices of LUN entry {index}", keys=("name", "wwid")
        )
        again: List[Any] = []
        if not check_mode:
            if index >= len(back) and index >= len(final):
                raise AnsibleFilterError(
                    f"{NAME}: came_back has {len(back)} entries and final_luns {len(final)}, none for LUN "
                    f"{lun['lun']} (entry {index} of the plan)"
                )
            # the first attempt's devices, then what only the last attempt found (dict: once each, in order)
            again = list(dict.fromkeys(_names(back, index, "came_back") + _names(final, index, "final_luns")))
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
