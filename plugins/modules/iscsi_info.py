#!/usr/bin/python
# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: iscsi_info
short_description: List the initiator's iSCSI sessions with their LUNs, node records and discovery records
version_added: 0.1.0
description:
  - Reads the open-iscsi initiator's state and returns it at the top level of the result - RV(sessions) with the
    LUNs attached through each one, RV(nodes) (the node records, C(iscsiadm -m node)) and RV(discovery) (the
    discovery records, C(iscsiadm -m discoverydb)), with the settings that decide what a login attaches - the
    scan mode C(node.session.scan), C(node.startup), the authentication method and the timeouts.
  - Sessions come from sysfs (C(/sys/class/iscsi_session), C(iscsi_connection), the session's SCSI devices and
    the multipath maps holding them); node and discovery records from C(iscsiadm -m node -o show),
    C(iscsiadm -m discoverydb) and one C(iscsiadm -m discoverydb -o show) per discovery record. iscsid need
    not run.
  - Never returns a secret. CHAP passwords are neither read from sysfs (the kernel shows them there) nor
    returned from iscsiadm's output; only whether one is set (RV(nodes[].auth.password_set)). User names are
    returned (iSCSI sends them in clear text at login).
  - Changes nothing, runs no scan and takes no lock (the lock options are accepted for C(module_defaults) of
    the action group, and not used); every command runs with a deadline (O(timeout)). No record
    and no session give empty lists, not a failure.
author: lunsafe.san developers (@lunsafe)
requirements:
  - Linux with sysfs mounted on C(/sys).
  - C(iscsiadm) (open-iscsi); the module fails with a message naming the package when it is missing.
  - C(/proc) mounted (each command's deadline is enforced by signalling it and its children, found there).
extends_documentation_fragment:
  - lunsafe.san._attributes
  - lunsafe.san._attributes.LOCK_UNUSED
attributes:
  check_mode:
    support: full
    details:
      - Reads only; check mode runs the same queries and returns the same result.
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
      - Return only the sessions and node records of these target names (compared case-insensitively).
      - Discovery records belong to no target and are not filtered by target.
    type: list
    elements: str
  portals:
    description:
      - Return only the sessions, node records and discovery records of these portals, each V(ADDRESS),
        V(ADDRESS:PORT), V([IPV6]:PORT) or a host name (matched by every address it resolves to); the port
        defaults to V(3260).
      - A session matches by the portal it is connected to or the one it logged in to.
      - With O(targets) as well, both must match.
    type: list
    elements: str
  all_settings:
    description:
      - Also return every setting of each node and discovery record in RV(nodes[].settings) and
        RV(discovery[].settings), as iscsiadm names them, without the password settings.
    type: bool
    default: false
  timeout:
    description:
      - Deadline in seconds of each C(iscsiadm) command; a command that does not answer in time is killed and
        the module fails naming it.
    type: float
    default: 15
notes:
  - A session's RV(sessions[].replacement_timeout) is the kernel's current value, which multipathd may have
    lowered (C(fast_io_fail_tmo)); RV(nodes[].timeouts.replacement_timeout) is the one the record gives at the
    next login.
  - RV(nodes[].scan=manual) is what keeps a login or an C(iscsiadm -m session -R) from attaching every LUN the
    array presents; V(auto) records are the ones the targeted scans of this collection cannot protect.
seealso:
  - module: lunsafe.san.iscsi_lun_attach
    description: Create the node records (with manual scan), log in and attach one LUN.
  - module: lunsafe.san.multipath_faulty_facts
    description: Faulty paths and dead maps of the multipath maps these LUNs are in.
  - module: community.general.open_iscsi
    description: Discover, log in and out, and list node records with C(show_nodes).
"""

EXAMPLES = r"""
- name: Read the iSCSI state of the host
  lunsafe.san.iscsi_info:
  register: iscsi

- name: Fail when a node record would scan every LUN at login
  ansible.builtin.assert:
    that: iscsi.nodes | selectattr('scan', 'eq', 'auto') | list | length == 0
    fail_msg: "{{ iscsi.nodes | selectattr('scan', 'eq', 'auto') | map(attribute='portal') | list }}"

- name: The block devices and multipath maps of one array target
  lunsafe.san.iscsi_info:
    targets:
      - iqn.2003-01.org.example:array1
  register: array1

- name: Show LUN, device and map per session
  ansible.builtin.debug:
    msg: "{{ item.0.portal }} {{ item.1.hctl }} {{ item.1.device }} {{ item.1.multipath_map }}"
  loop: "{{ array1.sessions | subelements('luns') }}"

- name: Only what goes through one portal, with every record setting
  lunsafe.san.iscsi_info:
    portals:
      - 192.0.2.10:3260
    all_settings: true
"""

RETURN = r"""
sessions:
  description: The iSCSI sessions (from sysfs), in session id order.
  returned: always
  type: list
  elements: dict
  contains:
    sid:
      description: Session id (C(sessionN) in sysfs, C([N]) in C(iscsiadm -m session)); the kernel reuses it after
        logout.
      type: int
      returned: always
      sample: 1
    target:
      description: Target name.
      type: str
      returned: always
      sample: iqn.2003-01.org.lunsafe.lab:array
    portal:
      description: The portal the connection is on, C(ADDRESS:PORT) (C([IPV6]:PORT)); V(null) while the
        connection is down.
      type: str
      returned: always
      sample: 127.0.0.1:3260
    address:
      description: Address of RV(sessions[].portal).
      type: str
      returned: always
      sample: 127.0.0.1
    port:
      description: TCP port of RV(sessions[].portal).
      type: int
      returned: always
      sample: 3260
    persistent_portal:
      description: The portal the session logged in to (differs from RV(sessions[].portal) after a redirect).
      type: str
      returned: always
      sample: 127.0.0.1:3260
    tpgt:
      description: Target portal group tag.
      type: int
      returned: always
      sample: 1
    iface:
      description: open-iscsi iface name.
      type: str
      returned: always
      sample: default
    initiator:
      description: Initiator name the session uses.
      type: str
      returned: always
      sample: iqn.1993-08.org.debian:01:84772539bbc
    transport:
      description: Driver of the SCSI host (V(iscsi_tcp), V(ib_iser), V(bnx2i), ...).
      type: str
      returned: always
      sample: iscsi_tcp
    host:
      description: SCSI host number (C(hostN), the H of the LUNs' C(H:C:T:L)).
      type: int
      returned: always
      sample: 2
    state:
      description: Session state - V(LOGGED_IN), V(FAILED) or V(FREE).
      type: str
      returned: always
      sample: LOGGED_IN
    connection_state:
      description: State of the session's connection - V(up), V(down), V(failed), ...; V(null) on kernels
        without that attribute.
      type: str
      returned: always
      sample: up
    target_state:
      description: The kernel's scan state of the session's target (V(ALLOCATED), V(SCANNED), ...); V(null)
        on older kernels.
      type: str
      returned: always
      sample: SCANNED
    replacement_timeout:
      description: Seconds the kernel queues I/O for this session after a connection loss before failing it
        (C(recovery_tmo), current value).
      type: int
      returned: always
      sample: 5
    scan:
      description: C(node.session.scan) of the node record the session logged in with (V(manual) or V(auto));
        V(null) when there is no such record or it does not have the setting.
      type: str
      returned: always
      sample: manual
    luns:
      description: The SCSI devices attached through this session, in C(H:C:T:L) order.
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
          description: The Linux LUN number (the L of RV(sessions[].luns[].hctl)).
          type: int
          returned: always
          sample: 1
        device:
          description: Block device name C(sdX); V(null) for a SCSI device without one.
          type: str
          returned: always
          sample: sda
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
nodes:
  description: The node records (C(iscsiadm -m node)), ordered by target, portal and iface.
  returned: always
  type: list
  elements: dict
  contains:
    target:
      description: Target name (C(node.name)).
      type: str
      returned: always
      sample: iqn.2003-01.org.lunsafe.lab:array
    portal:
      description: The record's portal, C(ADDRESS:PORT) (C([IPV6]:PORT)).
      type: str
      returned: always
      sample: 127.0.0.1:3260
    address:
      description: Address of RV(nodes[].portal) (C(node.conn[0].address)).
      type: str
      returned: always
      sample: 127.0.0.1
    port:
      description: TCP port of RV(nodes[].portal).
      type: int
      returned: always
      sample: 3260
    tpgt:
      description: Target portal group tag (C(-1) for a record created by hand).
      type: int
      returned: always
      sample: -1
    iface:
      description: open-iscsi iface name.
      type: str
      returned: always
      sample: default
    transport:
      description: iSCSI transport of the iface as iscsiadm names it (V(tcp), V(iser), ...).
      type: str
      returned: always
      sample: tcp
    startup:
      description: C(node.startup) - V(manual), V(automatic) or V(onboot).
      type: str
      returned: always
      sample: manual
    scan:
      description: C(node.session.scan) - V(manual) (a login attaches no LUN) or V(auto) (the kernel scans every
        LUN at login and at each rescan); V(null) when iscsiadm does not know the setting (then it is auto).
      type: str
      returned: always
      sample: manual
    auth:
      description: Session authentication (C(node.session.auth.*)), without the passwords.
      type: dict
      returned: always
      sample: {method: CHAP, username: lunsafe-host, password_set: true, username_in: null, password_in_set: false}
      contains:
        method:
          description: V(None) or V(CHAP).
          type: str
          returned: always
          sample: CHAP
        username:
          description: CHAP user name the initiator sends; V(null) if none.
          type: str
          returned: always
          sample: lunsafe-host
        password_set:
          description: Whether a CHAP password is set (its value is never returned).
          type: bool
          returned: always
          sample: true
        username_in:
          description: User name the target must send (mutual CHAP); V(null) if none.
          type: str
          returned: always
          sample: null
        password_in_set:
          description: Whether a mutual CHAP password is set (its value is never returned).
          type: bool
          returned: always
          sample: false
    timeouts:
      description: Timeouts of the record in seconds, each V(null) when the record lacks it.
      type: dict
      returned: always
      sample: {replacement_timeout: 120, noop_out_interval: 5, noop_out_timeout: 5, login_timeout: 15,
               logout_timeout: 15, abort_timeout: 15, lu_reset_timeout: 30}
      contains:
        replacement_timeout:
          description: C(node.session.timeo.replacement_timeout) - how long I/O queues after a connection loss
            before the session fails it.
          type: int
          returned: always
          sample: 120
        noop_out_interval:
          description: C(node.conn[0].timeo.noop_out_interval) - seconds between NOP-Out pings.
          type: int
          returned: always
          sample: 5
        noop_out_timeout:
          description: C(node.conn[0].timeo.noop_out_timeout) - seconds without a NOP-In answer before the
            connection counts as failed.
          type: int
          returned: always
          sample: 5
        login_timeout:
          description: C(node.conn[0].timeo.login_timeout).
          type: int
          returned: always
          sample: 15
        logout_timeout:
          description: C(node.conn[0].timeo.logout_timeout).
          type: int
          returned: always
          sample: 15
        abort_timeout:
          description: C(node.session.err_timeo.abort_timeout).
          type: int
          returned: always
          sample: 15
        lu_reset_timeout:
          description: C(node.session.err_timeo.lu_reset_timeout).
          type: int
          returned: always
          sample: 30
    discovery:
      description: How the record was made - C(type) (V(static) by hand, V(send_targets), V(isns), ...) and the
        discovery C(portal), C(address), C(port) (V(null) for static records).
      type: dict
      returned: always
      sample: {type: send_targets, portal: 127.0.0.1:3260, address: 127.0.0.1, port: 3260}
    sids:
      description: Ids of the sessions logged in with this record (same target, login portal and iface).
      type: list
      elements: int
      returned: always
      sample: [1]
    settings:
      description: Every setting of the record as iscsiadm names it, without the password settings; C(<empty>)
        is returned as an empty string.
      type: dict
      returned: when O(all_settings=true)
      sample: {node.session.scan: manual, node.startup: manual}
discovery:
  description: The discovery records (C(iscsiadm -m discoverydb)) of type SendTargets and iSNS, in iscsiadm's
    order.
  returned: always
  type: list
  elements: dict
  contains:
    type:
      description: V(sendtargets) or V(isns).
      type: str
      returned: always
      sample: sendtargets
    portal:
      description: The discovery portal, C(ADDRESS:PORT) (C([IPV6]:PORT)).
      type: str
      returned: always
      sample: 127.0.0.1:3260
    address:
      description: Address of RV(discovery[].portal).
      type: str
      returned: always
      sample: 127.0.0.1
    port:
      description: TCP port of RV(discovery[].portal).
      type: int
      returned: always
      sample: 3260
    startup:
      description: C(discovery.startup) - V(manual) or V(automatic).
      type: str
      returned: always
      sample: manual
    auth:
      description: Discovery authentication (C(discovery.sendtargets.auth.*)), without the passwords; the same
        keys as RV(nodes[].auth) (all V(null) or V(false) for iSNS).
      type: dict
      returned: always
      sample: {method: CHAP, username: lunsafe-disco, password_set: true, username_in: null, password_in_set: false}
    login_timeout:
      description: Login timeout of the discovery session in seconds; V(null) if the record has none.
      type: int
      returned: always
      sample: 15
    use_discoveryd:
      description: Whether iscsid polls this portal for new targets (V(Yes) or V(No)).
      type: str
      returned: always
      sample: "No"
    readable:
      description: V(false) when the record was listed but gone before its settings could be read (the other keys
        are then V(null)).
      type: bool
      returned: always
      sample: true
    settings:
      description: Every setting of the record as iscsiadm names it, without the password settings.
      type: dict
      returned: when O(all_settings=true)
      sample: {discovery.startup: manual, discovery.type: sendtargets}
filters:
  description: The filters applied, as given.
  returned: always
  type: dict
  sample: {targets: [], portals: []}
"""

from typing import Any, Callable, Dict

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lunsafe.san.plugins.module_utils._durations import check_durations
from ansible_collections.lunsafe.san.plugins.module_utils._errors import LunsafeError
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host, system_host
from ansible_collections.lunsafe.san.plugins.module_utils._iscsi_info import make_filters, observe, report
from ansible_collections.lunsafe.san.plugins.module_utils._lock import LOCK_ARGUMENT_SPEC
from ansible_collections.lunsafe.san.plugins.module_utils._runner import Runner

ARGUMENT_SPEC: Dict[str, Any] = {
    "targets": {"type": "list", "elements": "str"},
    "portals": {"type": "list", "elements": "str"},
    "all_settings": {"type": "bool", "default": False},
    "timeout": {"type": "float", "default": 15},
    # accepted (and not used) so that module_defaults for group/lunsafe.san.lunsafe can set the lock once
    **LOCK_ARGUMENT_SPEC,
}

# every key RETURN documents as always, for a run refused before it observed anything
FAILED_RESULT: Dict[str, Any] = {
    "changed": False,
    "sessions": [],
    "nodes": [],
    "discovery": [],
    "filters": {},
}


def _validate(params: Dict[str, Any]) -> None:
    check_durations(params, deadlines=("timeout",))  # the collection's one rule for durations


def run(module: AnsibleModule, host: Host) -> Dict[str, Any]:
    """args -> observe -> report; nothing is ever applied (the same in check mode)."""
    params = module.params
    filters = make_filters(targets=params["targets"], portals=params["portals"], host=host)
    result = report(observe(host, timeout=params["timeout"]), filters=filters, all_settings=params["all_settings"])
    for warning in result.pop("warnings"):
        module.warn(warning)
    result["changed"] = False
    return result


def main(make_host: Callable[[Runner], Host] = system_host) -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        _validate(module.params)  # before the runner takes timeout as its default deadline
        result = run(module, make_host(Runner(module, default_timeout=module.params["timeout"])))
    except LunsafeError as exc:
        module.fail_json(**{**FAILED_RESULT, **exc.to_fail_kwargs()})
    module.exit_json(**result)


if __name__ == "__main__":
    main()
