# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from typing import Any, Callable, Dict, List

from ansible_collections.lunsafe.san.plugins.plugin_utils._role_data import entries, first_wwid

DOCUMENTATION = r"""
name: unmap_luns
short_description: The LUNs an array-side unmap hook gets, from a planned detach
version_added: 0.1.0
author: lunsafe.san developers (@lunsafe)
description:
  - Turns the RV(lunsafe.san.iscsi_lun_attach#module:luns) list of a detach planned in check mode into the
    list the C(lunsafe.san.lun_detach) role hands to its unmap hook as C(lun_detach_unmap_luns).
  - Each entry has the C(lun) as the module returned it and the C(wwid) of the LUN's first device that has
    one (null when no device carries a WWID, for example a LUN that was not attached).
  - Fails, naming the entry and the key, when an entry lacks C(lun) or C(devices), or a device lacks C(wwid).
options:
  _input:
    description:
      - The RV(lunsafe.san.iscsi_lun_attach#module:luns) list of a detach
        (O(lunsafe.san.iscsi_lun_attach#module:state=absent)) planned in check mode.
    type: list
    elements: dict
    required: true
seealso:
  - module: lunsafe.san.iscsi_lun_attach
"""

EXAMPLES = r"""
- name: Plan the removal of LUNs 3 and 4
  lunsafe.san.iscsi_lun_attach:
    target: iqn.2003-01.org.example:array1
    portals: [192.0.2.10]
    luns: ["3", "4"]
    state: absent
  check_mode: true
  register: plan

- name: Tell the array which LUs to unmap
  ansible.builtin.debug:
    msg: "{{ plan.luns | lunsafe.san.unmap_luns }}"
  # [{"lun": "3", "wwid": "36001405a1b2c3d4e5f60718293a4b5c6"}, {"lun": "4", "wwid": null}]
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
      description: The WWID of the LUN's first device that has one, null when none has.
      type: str
      sample: 36001405a1b2c3d4e5f60718293a4b5c6
"""

NAME = "lunsafe.san.unmap_luns"


def unmap_luns(luns: Any) -> List[Dict[str, Any]]:
    """``{lun, wwid}`` per LUN of a planned detach: what the lun_detach role's unmap hook gets."""
    out = []
    for index, lun in enumerate(entries(luns, filter_name=NAME, what="the LUN results", keys=("lun", "devices"))):
        devices = entries(lun["devices"], filter_name=NAME, what=f"the devices of LUN entry {index}", keys=("wwid",))
        out.append({"lun": lun["lun"], "wwid": first_wwid(devices)})
    return out


class FilterModule:
    """lunsafe.san.unmap_luns"""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"unmap_luns": unmap_luns}
