# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from typing import Any, Callable, Dict, List

from ansible_collections.lunsafe.san.plugins.plugin_utils._role_data import entries

DOCUMENTATION = r"""
name: attached_devices
short_description: One entry per attached LUN, from the result of iscsi_lun_attach
version_added: 0.1.0
author: lunsafe.san developers (@lunsafe)
description:
  - Turns the RV(lunsafe.san.iscsi_lun_attach#module:luns) list of an attach into the output of the
    C(lunsafe.san.lun_attach) role, C(lun_attach_devices).
  - Each entry keeps C(wwid), C(by_id), C(hctl) and C(size_bytes) as they are, gives C(lun) as a string, the
    map's C(dm_name) and C(dm_path) (null without a map), the device paths in C(devices), and C(changed),
    true when one of the LUN's devices is new.
  - Fails, naming the entry and the key, when an entry lacks one of the keys the module always returns.
options:
  _input:
    description: The RV(lunsafe.san.iscsi_lun_attach#module:luns) list of an attach.
    type: list
    elements: dict
    required: true
seealso:
  - module: lunsafe.san.iscsi_lun_attach
"""

EXAMPLES = r"""
- name: Attach LUNs 3 and 4
  lunsafe.san.iscsi_lun_attach:
    target: iqn.2003-01.org.example:array1
    portals: [192.0.2.10, 198.51.100.10]
    luns: ["3", "4"]
  register: attached

- name: Keep one entry per LUN
  ansible.builtin.set_fact:
    lun_devices: "{{ attached.luns | lunsafe.san.attached_devices }}"

- name: Show the stable device paths
  ansible.builtin.debug:
    msg: "{{ lun_devices | map(attribute='by_id') | list }}"
"""

RETURN = r"""
_value:
  description: One dict per LUN, in the order of the input.
  type: list
  elements: dict
  contains:
    lun:
      description: The LUN number as the array presents it, as a string.
      type: str
      sample: "3"
    wwid:
      description: The LUN's WWID in multipath form (null when it is not attached).
      type: str
      sample: 36001405a1b2c3d4e5f60718293a4b5c6
    by_id:
      description: The stable C(/dev/disk/by-id) path (null when the LUN is not attached).
      type: str
      sample: /dev/disk/by-id/dm-uuid-mpath-36001405a1b2c3d4e5f60718293a4b5c6
    dm_name:
      description: The multipath map's name, null without a map.
      type: str
      sample: mpatha
    dm_path:
      description: The multipath map's device path, null without a map.
      type: str
      sample: /dev/mapper/mpatha
    devices:
      description: The paths' block devices.
      type: list
      elements: str
      sample: ["/dev/sdc", "/dev/sdd"]
    hctl:
      description: The paths' SCSI addresses.
      type: list
      elements: str
      sample: ["2:0:0:3", "3:0:0:3"]
    size_bytes:
      description: The LUN's size (null when it is not attached).
      type: int
      sample: 67108864
    changed:
      description: Whether one of the LUN's devices is new (appeared in this run).
      type: bool
      sample: true
"""

NAME = "lunsafe.san.attached_devices"
KEYS = ("lun", "wwid", "by_id", "devices", "hctl", "size_bytes")


def attached_devices(luns: Any) -> List[Dict[str, Any]]:
    """One entry per LUN of iscsi_lun_attach's ``luns``: the lun_attach role's output."""
    out = []
    for index, lun in enumerate(entries(luns, filter_name=NAME, what="the LUN results", keys=KEYS)):
        dm = lun.get("dm") or {}
        devices = entries(
            lun["devices"], filter_name=NAME, what=f"the devices of LUN entry {index}", keys=("path", "new")
        )
        out.append(
            {
                "lun": str(lun["lun"]),
                "wwid": lun["wwid"],
                "by_id": lun["by_id"],
                "dm_name": dm.get("name"),
                "dm_path": dm.get("path"),
                "devices": [device["path"] for device in devices],
                "hctl": lun["hctl"],
                "size_bytes": lun["size_bytes"],
                "changed": any(device["new"] for device in devices),
            }
        )
    return out


class FilterModule:
    """lunsafe.san.attached_devices"""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"attached_devices": attached_devices}
