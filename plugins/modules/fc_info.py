#!/usr/bin/python
# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: fc_info
short_description: List the host's Fibre Channel ports, remote ports and the LUNs attached through each
version_added: 0.1.0
description:
  - Reads the Fibre Channel state of the host from sysfs and returns it at the top level of the result -
    RV(fc_hosts) (the local FC ports, physical and NPIV vports, C(/sys/class/fc_host)), RV(rports) (the remote
    ports each one sees, C(/sys/class/fc_remote_ports)) with the LUNs attached through each, and the kernel's
    SCSI scan mode RV(scan_mode).
  - Warns when something on the host re-adds LUNs behind a targeted scan's back - a scan mode other than
    V(manual) (every remote port login scans its whole target) or a udev rule that rescans a whole target on
    REPORTED LUNS DATA HAS CHANGED (libstoragemgmt's C(90-scsi-ua.rules)).
  - Changes nothing, runs no command and no scan, and takes no lock (the lock options are accepted for
    C(module_defaults) of the action group, and not used). A host without Fibre Channel gives empty lists, not
    a failure.
author: lunsafe.san developers (@lunsafe)
requirements:
  - Linux with sysfs mounted on C(/sys).
extends_documentation_fragment:
  - lunsafe.san._attributes
  - lunsafe.san._attributes.LOCK_UNUSED
attributes:
  check_mode:
    support: full
    details:
      - Reads only; check mode returns the same result.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
  idempotent:
    support: full
    details:
      - Reads only; the result is V(changed=false) every time.
options:
  targets:
    description:
      - Return only the remote ports with these WWPNs (C(0x2000525400fc0003), C(20:00:52:54:00:fc:00:03) or
        upper case; compared normalised).
    type: list
    elements: str
  initiators:
    description:
      - Return only these local ports (fc_host WWPNs) and the remote ports they see.
    type: list
    elements: str
notes:
  - A remote port's RV(rports[].target_id) is the T the kernel scans it as (C(scsi_target_id)); the N of its
    name C(rport-H:C-N) is only a counter.
  - RV(rports[].usable) is what C(lunsafe.san.scsi_targeted_scan) needs to scan through a remote port - an FCP
    target, V(Online) or V(Marginal), with a target id.
seealso:
  - module: lunsafe.san.scsi_targeted_scan
    description: Scan exactly one LUN through the remote ports of FC target WWPNs.
  - module: lunsafe.san.multipath_faulty_facts
    description: Faulty paths and dead maps, with the remote port of each FC path.
  - module: lunsafe.san.iscsi_info
    description: The same view for iSCSI sessions.
"""

EXAMPLES = r"""
- name: Read the Fibre Channel state of the host
  lunsafe.san.fc_info:
  register: fc

- name: Fail when a remote port of the array is not usable
  ansible.builtin.assert:
    that: fc.rports | selectattr('usable', 'false') | list | length == 0
    fail_msg: "{{ fc.rports | rejectattr('usable') | map(attribute='name') | list }}"

- name: The LUNs of one array port, as seen from one HBA port
  lunsafe.san.fc_info:
    targets:
      - 20:00:52:54:00:fc:00:03
    initiators:
      - "0x2000525400fc0001"
  register: array_port

- name: Show LUN, device and map per remote port
  ansible.builtin.debug:
    msg: "{{ item.0.name }} {{ item.1.hctl }} {{ item.1.device }} {{ item.1.multipath_map }}"
  loop: "{{ array_port.rports | subelements('luns') }}"
"""

RETURN = r"""
fc_hosts:
  description: The local Fibre Channel ports (C(/sys/class/fc_host)), in host number order.
  returned: always
  type: list
  elements: dict
  contains:
    host:
      description: SCSI host number (C(hostN), the H of C(H:C:T:L)).
      type: int
      returned: always
      sample: 2
    port_name:
      description: WWPN of the port, normalised (C(0x) and 16 lower-case hex digits).
      type: str
      returned: always
      sample: "0x2000525400fc0001"
    node_name:
      description: WWNN of the port.
      type: str
      returned: always
      sample: "0x1000525400fc0001"
    port_id:
      description: The port's N_Port ID on the fabric.
      type: str
      returned: always
      sample: "0x0ba5a1"
    port_state:
      description: Port state (V(Online), V(Linkdown), V(Offline), ...).
      type: str
      returned: always
      sample: Online
    port_type:
      description: Port type (V(NPort (fabric via point-to-point)), V(NPIV VPORT), V(LPort (private loop)), ...).
      type: str
      returned: always
      sample: NPort (fabric via point-to-point)
    speed:
      description: Link speed as the kernel prints it.
      type: str
      returned: always
      sample: 10 Gbit
    fabric_name:
      description: WWN of the fabric.
      type: str
      returned: always
      sample: "0x1000525400fc0001"
    symbolic_name:
      description: Symbolic name the driver registers.
      type: str
      returned: always
      sample: fcoe v0.1 over eth1
    dev_loss_tmo:
      description: Default C(dev_loss_tmo) in seconds for the port's remote ports.
      type: int
      returned: always
      sample: 60
    driver:
      description: Driver of the SCSI host (V(fcoe), V(lpfc), V(qla2xxx), ...).
      type: str
      returned: always
      sample: fcoe
    vport:
      description: Whether the port is an NPIV vport (a SCSI host of its own, below its parent's port).
      type: bool
      returned: always
      sample: false
    parent_host:
      description: For a vport, the host number of the physical port it is created on; V(null) otherwise.
      type: int
      returned: always
      sample: null
    max_lun:
      description: Highest LUN the host accepts in a scan, where the driver tells (C(lpfc_max_luns),
        C(ql2xmaxlun)); V(null) when unknown.
      type: int
      returned: always
      sample: null
rports:
  description: The remote ports (C(/sys/class/fc_remote_ports)) of the listed fc_hosts, by host, channel and
    port number.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Kernel name C(rport-H:C-N).
      type: str
      returned: always
      sample: rport-2:0-1
    host:
      description: Host number of the local port that sees it.
      type: int
      returned: always
      sample: 2
    channel:
      description: Channel (the C of C(H:C:T:L)).
      type: int
      returned: always
      sample: 0
    initiator:
      description: WWPN of that local port.
      type: str
      returned: always
      sample: "0x2000525400fc0001"
    port_name:
      description: WWPN of the remote port, normalised.
      type: str
      returned: always
      sample: "0x2000525400fc0003"
    node_name:
      description: WWNN of the remote port.
      type: str
      returned: always
      sample: "0x1000525400fc0003"
    port_id:
      description: N_Port ID of the remote port.
      type: str
      returned: always
      sample: "0x0ba5a3"
    roles:
      description: Roles of the remote port (V(FCP Target), V(FCP Initiator), ...).
      type: list
      elements: str
      returned: always
      sample: [FCP Target]
    port_state:
      description: Remote port state - V(Online), V(Marginal), V(Blocked) (link lost, waiting C(dev_loss_tmo)),
        V(Not Present) (gone longer than that, its LUNs removed), ...
      type: str
      returned: always
      sample: Online
    target_id:
      description: The SCSI target id the kernel scans it as (the T of C(H:C:T:L)); V(null) when it has none.
      type: int
      returned: always
      sample: 0
    usable:
      description: Whether a targeted scan can go through it - an FCP target, V(Online) or V(Marginal), with a
        target id.
      type: bool
      returned: always
      sample: true
    dev_loss_tmo:
      description: Seconds the kernel keeps the remote port's LUNs after the port is lost.
      type: int
      returned: always
      sample: 60
    fast_io_fail_tmo:
      description: Seconds after which I/O fails while the port is lost (as text), or V(off).
      type: str
      returned: always
      sample: "5"
    luns:
      description: The SCSI devices attached through this remote port, in C(H:C:T:L) order.
      type: list
      elements: dict
      returned: always
      contains:
        hctl:
          description: SCSI address C(H:C:T:L).
          type: str
          returned: always
          sample: "2:0:0:1"
        lun:
          description: The Linux LUN number (the L of RV(rports[].luns[].hctl)).
          type: int
          returned: always
          sample: 1
        device:
          description: Block device name C(sdX); V(null) for a SCSI device without one.
          type: str
          returned: always
          sample: sdb
        state:
          description: SCSI device state (V(running), V(offline), V(blocked), V(transport-offline), ...).
          type: str
          returned: always
          sample: running
        size_bytes:
          description: Size of the block device in bytes; V(null) without a block device.
          type: int
          returned: always
          sample: 67108864
        read_only:
          description: Whether the block device is read-only; V(null) without a block device.
          type: bool
          returned: always
          sample: false
        wwid:
          description: WWID as multipath spells it.
          type: str
          returned: always
          sample: 36001405d2c2d1a3e5b94d3d9d5c1c0f1
        multipath_map:
          description: Name of the multipath map holding the device; V(null) if none.
          type: str
          returned: always
          sample: mpatha
        dm:
          description: Kernel name C(dm-N) of that map; V(null) if none.
          type: str
          returned: always
          sample: dm-0
scan_mode:
  description: The kernel's SCSI scan mode (C(/sys/module/scsi_mod/parameters/scan)) - V(sync), V(async),
    V(manual) or V(none); V(null) when it cannot be read. Only V(manual) keeps remote port logins from scanning
    whole targets.
  returned: always
  type: str
  sample: manual
filters:
  description: The filters applied, as given.
  returned: always
  type: dict
  sample: {targets: [], initiators: []}
"""

from typing import Any, Callable, Dict, Sequence

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lunsafe.san.plugins.module_utils._errors import LunsafeError
from ansible_collections.lunsafe.san.plugins.module_utils._fc import UA_RULES_DIRS
from ansible_collections.lunsafe.san.plugins.module_utils._fc_info import make_filters, observe, report
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host, system_host
from ansible_collections.lunsafe.san.plugins.module_utils._lock import LOCK_ARGUMENT_SPEC
from ansible_collections.lunsafe.san.plugins.module_utils._runner import Runner

ARGUMENT_SPEC: Dict[str, Any] = {
    "targets": {"type": "list", "elements": "str"},
    "initiators": {"type": "list", "elements": "str"},
    # accepted (and not used) so that module_defaults for group/lunsafe.san.lunsafe can set the lock once
    **LOCK_ARGUMENT_SPEC,
}

# every key RETURN documents as always, for a run refused before it observed anything
FAILED_RESULT: Dict[str, Any] = {
    "changed": False,
    "fc_hosts": [],
    "rports": [],
    "scan_mode": None,
    "filters": {},
}


def run(module: AnsibleModule, host: Host, *, rules_dirs: Sequence[str] = UA_RULES_DIRS) -> Dict[str, Any]:
    """args -> observe -> report; nothing is ever applied (the same in check mode)."""
    filters = make_filters(targets=module.params["targets"], initiators=module.params["initiators"])
    result = report(observe(host, rules_dirs=rules_dirs), filters=filters)
    for warning in result.pop("warnings"):
        module.warn(warning)
    result["changed"] = False
    return result


def main(make_host: Callable[[Runner], Host] = system_host, rules_dirs: Sequence[str] = UA_RULES_DIRS) -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = run(module, make_host(Runner(module)), rules_dirs=rules_dirs)
    except LunsafeError as exc:
        module.fail_json(**{**FAILED_RESULT, **exc.to_fail_kwargs()})
    module.exit_json(**result)


if __name__ == "__main__":
    main()
