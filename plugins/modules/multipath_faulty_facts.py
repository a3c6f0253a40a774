#!/usr/bin/python
# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: multipath_faulty_facts
short_description: Report faulty multipath paths, dead or queueing maps and orphan table entries as facts
version_added: 0.1.0
description:
  - Reads the host's SCSI, iSCSI and device-mapper multipath state and returns it as the fact
    RV(ansible_facts.lunsafe_multipath), per map and per path, with the C(reasons) that make each one faulty.
  - Like C(ansible.builtin.package_facts) and C(ansible.builtin.service_facts), the result holds the facts only
    under C(ansible_facts); they are not repeated at the top level (at hundreds of paths that copy doubled the
    payload). A registered result reads C(result.ansible_facts.lunsafe_multipath); later tasks read
    C(ansible_facts.lunsafe_multipath).
  - Names the processes holding each map or its paths open (process id and command name, from C(/proc)).
  - A filter entry (O(wwids), O(maps), O(targets)) that matches nothing gives a warning, so that a typo is not
    taken for a healthy host (unless O(warn_unmatched=false)); it is listed in
    RV(ansible_facts.lunsafe_multipath.unmatched) either way.
  - Sources, from the most to the least machine-friendly. sysfs (sessions, SCSI devices and their states,
    dm maps, slaves and holders). C(multipathd show paths raw format) and C(multipathd show maps raw format)
    (checker state, dm state, active path count, queueing). C(dmsetup status --target multipath) and
    C(dmsetup table --target multipath) (per-path C(A)/C(F) flags, C(queue_if_no_path), table entries).
    C(multipath -ll) only when multipathd does not answer and O(multipath_ll_fallback=true).
  - A path is faulty when its checker state is C(faulty), C(shaky), C(i/o timeout) or C(disconnected), when the
    kernel has failed it (dm state C(failed)), when its SCSI device state is not C(running) (C(offline),
    C(blocked), C(transport-offline), ...), when its iSCSI session is not C(LOGGED_IN), when its Fibre Channel
    remote port is not V(Online) or V(Marginal) (V(rport_blocked), V(rport_not_present)), or when multipathd
    still lists it though its device is gone. C(ghost) (ALUA standby), C(i/o pending) and C(delayed) are not
    faults.
  - A map is faulty when it has no active path (dead; RV(ansible_facts.lunsafe_multipath.maps[].queueing_dead)
    when it also queues I/O, which hangs every reader and writer), when its table names a device that no longer
    exists (an orphan entry, the C(#:#:#:#) rows of C(multipath -ll)), when no SCSI device with its WWID is
    running on a logged-in session with a checker that is up (its LUN is no longer presented), when it is
    suspended, or when one of its paths is faulty.
  - Every SCSI device on an iSCSI session or a Fibre Channel remote port is listed in
    RV(ansible_facts.lunsafe_multipath.paths), also one without a block device (a controller LUN the array
    presents, a device the C(sd) driver is not bound to) - with C(dev) V(null) and C(block_device) V(false).
  - A path left without its map is reported as unmapped (RV(ansible_facts.lunsafe_multipath.paths[].unmapped),
    counted in C(summary.unmapped_paths)) - a block device that no multipath map holds although multipath
    claims it (its WWID is in multipath's wwids file C(/etc/multipath/wwids), and multipathd, when it answers,
    lists the path, so it is not blacklisted). That is what C(multipath -f) or C(dmsetup remove) of a map
    leaves behind when its paths are not deleted; I/O on such a path bypasses multipath. It is not a fault of
    the path (it is not counted in C(faulty_paths)); a path seen while multipathd is still building its map
    is unmapped for that moment too.
  - Changes nothing, runs no I/O on any map or path, and does not take the host lock. Every command runs with
    a deadline (O(timeout)).
  - On a host without multipathd (not installed or not running), without device-mapper tools or without any
    SCSI device, it returns what it could read and says why in RV(ansible_facts.lunsafe_multipath.sources) and
    RV(ansible_facts.lunsafe_multipath.warnings) instead of failing.
author: lunsafe.san developers (@lunsafe)
requirements:
  - Linux with sysfs mounted on C(/sys)
  - C(/proc) mounted (the openers of the maps are read there, and each command's deadline is enforced by
    signalling it and its children, found there)
  - optional, used when present - C(multipathd) (multipath-tools 0.6.0 or later for C(raw format)), C(dmsetup)
    (lvm2 / device-mapper), C(multipath)
extends_documentation_fragment:
  - lunsafe.san._attributes
  - lunsafe.san._attributes.LOCK_UNUSED
  - lunsafe.san._attributes.FACTS
attributes:
  idempotent:
    support: full
    details:
      - Reads only; the result is V(changed=false) every time.
options:
  wwids:
    description:
      - Report only the maps with these WWIDs (as multipath spells them, for example V(36001405...)), and
        their paths.
    type: list
    elements: str
  maps:
    description:
      - Report only these maps, each given by name (alias or user friendly name, optionally with a
        C(/dev/mapper/) prefix), by C(dm-N) or by WWID, and their paths.
    type: list
    elements: str
  targets:
    description:
      - Report only paths whose iSCSI session goes to one of these target names (compared case-insensitively)
        or whose Fibre Channel remote port has one of these WWPNs (any spelling - C(0x2000525400fc0003),
        C(20:00:52:54:00:fc:00:03)), and the maps that have at least one such path.
      - A map whose paths are all gone has no session any more and is therefore never reported with this
        filter; use O(wwids) or O(maps) to watch such maps.
    type: list
    elements: str
  timeout:
    description:
      - Deadline in seconds of each command (C(multipathd), C(dmsetup), C(multipath)). A command that does not
        answer in time is killed and its source is reported as V(timeout).
    type: float
    default: 15
  warn_unmatched:
    description:
      - Warn about each filter entry that matches nothing.
      - V(false) for a read made before the LUNs the filters name are attached (as the C(lunsafe.san.lun_attach)
        role's preflight does), where no match is expected; the entries are still listed in
        RV(ansible_facts.lunsafe_multipath.unmatched).
    type: bool
    default: true
  multipath_ll_fallback:
    description:
      - When multipathd does not answer and multipath maps exist, run C(multipath -ll) for the checker states
        and the orphan rows it prints.
      - C(multipath -ll) runs the path checkers itself (one SCSI command per path), which may take long on
        unreachable paths; it is bounded by O(timeout).
    type: bool
    default: true
notes:
  - Filters select what is reported; everything is still read. RV(ansible_facts.lunsafe_multipath.summary)
    counts only what is reported.
  - WWIDs of paths come from the kernel's C(device/wwid) turned into multipath's spelling
    (C(naa.<hex>) becomes C(3<hex>)); a map is presented when a path with its WWID is usable.
seealso:
  - module: lunsafe.san.multipath_flush
    description: Flush one faulty map safely, then delete its paths.
  - module: lunsafe.san.iscsi_lun_attach
    description: Attach one LUN with a targeted scan; the facts of that LUN show no fault afterwards.
  - module: lunsafe.san.scsi_targeted_scan
    description: Scan exactly the named LUNs (never a whole session).
"""

EXAMPLES = r"""
- name: Gather multipath fault facts
  lunsafe.san.multipath_faulty_facts:

- name: Fail when any map is dead or any path is faulty
  ansible.builtin.assert:
    that:
      - ansible_facts.lunsafe_multipath.summary.dead_maps == 0
      - ansible_facts.lunsafe_multipath.summary.faulty_paths == 0
    fail_msg: "{{ ansible_facts.lunsafe_multipath.maps | selectattr('faulty') | map(attribute='name') | list }}"

- name: Only the maps behind one array target
  lunsafe.san.multipath_faulty_facts:
    targets:
      - iqn.2003-01.org.example:array1
  register: array1

- name: Who holds the dead maps of that target open
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item.openers | map(attribute='command') | join(', ') }}"
  loop: "{{ array1.ansible_facts.lunsafe_multipath.maps | selectattr('dead') | selectattr('openers') }}"
  loop_control:
    label: "{{ item.name }}"

- name: Flush the maps whose LUN the array no longer presents
  lunsafe.san.multipath_flush:
    map: "{{ item.name }}"
  loop: "{{ ansible_facts.lunsafe_multipath.maps | rejectattr('presented') | list }}"
  loop_control:
    label: "{{ item.name }} {{ item.reasons }}"

- name: One map, by WWID
  lunsafe.san.multipath_faulty_facts:
    wwids:
      - 360014053aa67acbbbe24eefad576288d
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to C(ansible_facts); nothing else is returned (no copy at the top level).
  returned: always
  type: dict
  contains:
    lunsafe_multipath:
      description:
        - The multipath state of the host, its faults and why, after the filters.
      returned: always
      type: dict
      contains:
        schema:
          description: Version of the layout of these facts; it changes only when a key changes meaning or is removed.
          returned: always
          type: int
          sample: 1
        summary:
          description: Counts over what is reported (after the filters).
          returned: always
          type: dict
          contains:
            maps:
              description: Multipath maps reported.
              type: int
              returned: always
              sample: 4
            faulty_maps:
              description: Maps with at least one reason.
              type: int
              returned: always
              sample: 1
            dead_maps:
              description: Maps with no active path.
              type: int
              returned: always
              sample: 1
            queueing_dead_maps:
              description: Dead maps that queue I/O (C(queue_if_no_path)); I/O on them hangs.
              type: int
              returned: always
              sample: 1
            unpresented_maps:
              description: Maps whose LUN no logged-in session presents any more.
              type: int
              returned: always
              sample: 1
            paths:
              description: Paths reported.
              type: int
              returned: always
              sample: 8
            faulty_paths:
              description: Paths with at least one reason.
              type: int
              returned: always
              sample: 2
            unmapped_paths:
              description:
                - Paths left without their multipath map (RV(ansible_facts.lunsafe_multipath.paths[].unmapped)).
              type: int
              returned: always
              sample: 0
            orphans:
              description: Orphan table entries reported.
              type: int
              returned: always
              sample: 0
          sample: {maps: 4, faulty_maps: 1, dead_maps: 1, queueing_dead_maps: 1, unpresented_maps: 1, paths: 8,
                   faulty_paths: 2, unmapped_paths: 0, orphans: 0}
        maps:
          description: Multipath maps (from sysfs, multipathd and dmsetup), in dm order.
          returned: always
          type: list
          elements: dict
          contains:
            name:
              description: Map name (alias, user friendly name or WWID).
              type: str
              returned: always
              sample: mpatha
            wwid:
              description: WWID of the LUN (as multipath spells it).
              type: str
              returned: always
              sample: 360014053aa67acbbbe24eefad576288d
            uuid:
              description:
                - The dm uuid, C(mpath-<wwid>); identifies the map, unlike
                  RV(ansible_facts.lunsafe_multipath.maps[].dm), which the kernel reuses.
              type: str
              returned: always
              sample: mpath-360014053aa67acbbbe24eefad576288d
            dm:
              description: Kernel name C(dm-N).
              type: str
              returned: always
              sample: dm-0
            suspended:
              description: Whether the map is suspended; V(null) if unknown.
              type: bool
              returned: always
              sample: false
            active_paths:
              description:
                - Active paths according to multipathd (C(%N), ghost paths count), else the C(A) flags of
                  C(dmsetup status) for devices that still exist, else usable paths.
              type: int
              returned: always
              sample: 0
            usable_paths:
              description: Paths that are running on a logged-in session with a checker that is up (or unknown).
              type: int
              returned: always
              sample: 0
            paths:
              description: Kernel names of the map's paths (C(major:minor) when the name is unknown).
              type: list
              elements: str
              returned: always
              sample: [sdd, sdg]
            orphan_entries:
              description: Table entries of this map whose device is gone.
              type: int
              returned: always
              sample: 0
            queue_if_no_path:
              description: Whether the kernel table currently queues I/O when no path is left; V(null) if unknown.
              type: bool
              returned: always
              sample: true
            queueing:
              description: multipathd's queueing state (C(%Q)) - V(off), V(on), C(N chk), C(N sec) or V(-); V(null)
                without multipathd.
              type: str
              returned: always
              sample: 15 sec
            queued_io:
              description: I/O requests queued in the kernel (C(dmsetup status)); V(null) if unknown.
              type: int
              returned: always
              sample: 0
            features:
              description: Table features, as C(dmsetup table) prints them.
              type: str
              returned: always
              sample: 1 queue_if_no_path
            holders:
              description: Kernel names holding the map (partitions, LVM, dm-crypt).
              type: list
              elements: str
              returned: always
              sample: []
            openers:
              description:
                - Processes holding the map (its C(dm-N) node) or one of its paths open, from C(/proc/<pid>/fd), each
                  with V(pid), V(command) (the kernel's name of the process, C(/proc/<pid>/comm); never its arguments)
                  and V(device) (the kernel name held open). C(multipathd), which holds every path open for its
                  checkers, is not listed for the paths.
                - A dead map that queues I/O is often held by a process stuck on it (C(udev-worker), C(blkid), a
                  database); RV(ansible_facts.lunsafe_multipath.maps[].holders) lists devices stacked on it instead.
              type: list
              elements: dict
              returned: always
              sample: [{"pid": 1234, "command": "udev-worker", "device": "dm-0"}]
            dead:
              description: No active path.
              type: bool
              returned: always
              sample: true
            queueing_dead:
              description: Dead and queueing I/O.
              type: bool
              returned: always
              sample: true
            presented:
              description: A usable path with the map's WWID exists on a logged-in session.
              type: bool
              returned: always
              sample: false
            faulty:
              description: The map has at least one reason.
              type: bool
              returned: always
              sample: true
            reasons:
              description:
                - Why the map counts as faulty, among V(no_active_path), V(queueing_without_path),
                  V(orphan_table_entries), V(unpresented), V(suspended), V(faulty_paths).
              type: list
              elements: str
              returned: always
              sample: [no_active_path, queueing_without_path, unpresented, faulty_paths]
        paths:
          description:
            - Paths - every SCSI device on an iSCSI session (with a block device or not), every slave of a multipath
              map, every path multipathd knows - one entry per device, sorted by kernel name (devices without a
              block device first, by C(hctl)).
          returned: always
          type: list
          elements: dict
          contains:
            dev:
              description:
                - Kernel name C(sdX); V(null) if only the device number is known, or for a SCSI device without a
                  block device (RV(ansible_facts.lunsafe_multipath.paths[].block_device) is V(false)).
              type: str
              returned: always
              sample: sdg
            devt:
              description: C(major:minor); V(null) for a SCSI device without a block device.
              type: str
              returned: always
              sample: "8:96"
            hctl:
              description: SCSI address C(H:C:T:L).
              type: str
              returned: always
              sample: "3:0:0:2"
            wwid:
              description: WWID of the device (as multipath spells it).
              type: str
              returned: always
              sample: 360014053aa67acbbbe24eefad576288d
            map:
              description: Name of the map the path belongs to; V(null) if none.
              type: str
              returned: always
              sample: mpatha
            dm_state:
              description: The kernel multipath target's view - V(active), V(failed), V(undef); V(null) if unknown.
              type: str
              returned: always
              sample: failed
            dm_fail_count:
              description: Failures counted by the kernel (C(dmsetup status)); V(null) if unknown.
              type: int
              returned: always
              sample: 1
            checker_state:
              description: multipathd's checker state - V(ready), V(ghost), V(faulty), V(shaky), V(i/o pending),
                V(i/o timeout), V(delayed), V(disconnected), V(undef); V(null) without multipathd.
              type: str
              returned: always
              sample: faulty
            checker:
              description: Checker name (C(tur), C(directio), ...).
              type: str
              returned: always
              sample: tur
            block_device:
              description:
                - The device has a block device (C(/dev/sdX)) in sysfs. V(false) for a SCSI device without one (a
                  controller LUN, a device the C(sd) driver is not bound to; it is listed with its C(hctl), C(wwid),
                  C(device_state) and C(session)) and for a path multipathd or a dm table still names whose device
                  is gone.
              type: bool
              returned: always
              sample: true
            device_state:
              description: SCSI device state from sysfs (V(running), V(offline), V(blocked), V(transport-offline), ...);
                V(null) when the device is gone.
              type: str
              returned: always
              sample: running
            multipathd_state:
              description: multipathd's device state (C(%o)) - V(running) or V(offline).
              type: str
              returned: always
              sample: running
            known_to_multipathd:
              description: multipathd lists this path.
              type: bool
              returned: always
              sample: true
            session:
              description: The iSCSI session behind the path; V(null) for non-iSCSI devices.
              type: dict
              returned: always
              sample: {sid: 2, host: 3, target: "iqn.2003-01.org.lunsafe.lab:array", portal: "127.0.0.2:3260",
                       persistent_portal: "127.0.0.2:3260", state: LOGGED_IN, transport: iscsi_tcp}
              contains:
                sid:
                  description: Session number (reused by the kernel after logout).
                  type: int
                  returned: always
                  sample: 2
                host:
                  description: SCSI host number.
                  type: int
                  returned: always
                  sample: 3
                target:
                  description: Target name.
                  type: str
                  returned: always
                  sample: iqn.2003-01.org.lunsafe.lab:array
                portal:
                  description: Current portal.
                  type: str
                  returned: always
                  sample: 127.0.0.2:3260
                persistent_portal:
                  description: Portal the session logged in to.
                  type: str
                  returned: always
                  sample: 127.0.0.2:3260
                state:
                  description: Session state - V(LOGGED_IN), V(FAILED), V(FREE).
                  type: str
                  returned: always
                  sample: LOGGED_IN
                transport:
                  description: Driver of the host (C(iscsi_tcp), ...).
                  type: str
                  returned: always
                  sample: iscsi_tcp
            transport:
              description: How the path reaches its LUN - V(iscsi) (see
                RV(ansible_facts.lunsafe_multipath.paths[].session)), V(fc) (see
                RV(ansible_facts.lunsafe_multipath.paths[].rport)), or V(null) for any other SCSI host.
              type: str
              returned: always
              sample: fc
            rport:
              description: The Fibre Channel remote port behind the path (by host, channel and SCSI target id); V(null)
                off Fibre Channel.
              type: dict
              returned: always
              sample: {name: rport-2:0-1, host: 2, port_name: "0x2000525400fc0003", port_state: Blocked, target_id: 0,
                       initiator: "0x2000525400fc0001", dev_loss_tmo: 60, fast_io_fail_tmo: "5"}
              contains:
                name:
                  description: Kernel name C(rport-H:C-N).
                  type: str
                  returned: always
                  sample: rport-2:0-1
                host:
                  description: SCSI host number of the local port.
                  type: int
                  returned: always
                  sample: 2
                port_name:
                  description: WWPN of the target port (C(0x) and 16 lower-case hex digits).
                  type: str
                  returned: always
                  sample: "0x2000525400fc0003"
                port_state:
                  description: Remote port state - V(Online), V(Marginal), V(Blocked) (link lost, waiting
                    C(dev_loss_tmo)), V(Not Present) (gone longer than that).
                  type: str
                  returned: always
                  sample: Online
                target_id:
                  description: SCSI target id (the T of C(H:C:T:L)).
                  type: int
                  returned: always
                  sample: 0
                initiator:
                  description: WWPN of the local port (fc_host).
                  type: str
                  returned: always
                  sample: "0x2000525400fc0001"
                dev_loss_tmo:
                  description: Seconds the kernel keeps the port's LUNs after the port is lost.
                  type: int
                  returned: always
                  sample: 60
                fast_io_fail_tmo:
                  description: Seconds after which I/O fails while the port is lost (as text), or V(off).
                  type: str
                  returned: always
                  sample: "5"
            unmapped:
              description:
                - The path is left without its multipath map - a block device with a WWID that multipath claims (listed
                  in multipath's wwids file; multipathd, when it answers, lists the path, so it is not blacklisted)
                  and that no multipath map holds. C(multipath -f MAP) or C(dmsetup remove MAP) without deleting
                  the paths leaves them so.
                - Not a reason of RV(ansible_facts.lunsafe_multipath.paths[].faulty). Recreate the map
                  (C(multipath WWID)) when the LUN is still wanted, or delete the paths (the
                  C(lunsafe.san.lun_detach) role) when it is not.
              type: bool
              returned: always
              sample: false
            faulty:
              description: The path has at least one reason.
              type: bool
              returned: always
              sample: true
            reasons:
              description:
                - Why the path counts as faulty, among V(checker_faulty), V(checker_shaky), V(checker_io_timeout),
                  V(checker_disconnected), V(dm_failed), V(device_offline), V(device_blocked),
                  V(device_transport_offline) (or C(device_<state>) for any other state than C(running)),
                  V(multipathd_offline), V(session_not_logged_in), V(session_gone), V(device_gone),
                  V(rport_blocked) (the FC remote port lost its link and waits C(dev_loss_tmo)),
                  V(rport_not_present) (it stayed away longer than that) (or C(rport_<state>) for any other state
                  than V(Online) and V(Marginal)).
              type: list
              elements: str
              returned: always
              sample: [checker_faulty, dm_failed]
        orphans:
          description: Table entries whose device is gone (C(#:#:#:#) rows; a dm table or multipathd naming a device
            that no longer exists in sysfs).
          returned: always
          type: list
          elements: dict
          contains:
            map:
              description: Map name.
              type: str
              returned: always
              sample: mpathb
            wwid:
              description: WWID of the map or path, if known.
              type: str
              returned: always
              sample: 360014050dfbea08a0ed44b1938c5037a
            dev:
              description: Former kernel name, if known.
              type: str
              returned: always
              sample: null
            devt:
              description: C(major:minor) in the table, if known.
              type: str
              returned: always
              sample: "8:112"
            hctl:
              description: Former SCSI address, if known.
              type: str
              returned: always
              sample: null
            dm_active:
              description: The kernel's flag for the entry (it may still say active for a deleted device).
              type: bool
              returned: always
              sample: true
            source:
              description: Where it was seen - V(dmsetup_table), V(multipathd), V(multipath_ll).
              type: str
              returned: always
              sample: dmsetup_table
            reason:
              description: V(table_device_gone) or V(device_gone).
              type: str
              returned: always
              sample: table_device_gone
          sample: []
        sources:
          description:
            - State of each source - C(sysfs) (V(ok), or V(no_scsi) when the host has no SCSI host), C(multipathd),
              C(dmsetup), C(multipath_ll) (V(ok), V(not_installed), V(not_running), V(timeout), V(error), V(not_used)),
              C(wwids_file) (multipath's C(/etc/multipath/wwids), read to find unmapped paths - V(ok), V(not_found),
              V(error)).
          returned: always
          type: dict
          sample: {sysfs: ok, wwids_file: ok, multipathd: ok, dmsetup: ok, multipath_ll: not_used}
        filters:
          description: The filters applied (O(wwids), O(maps), O(targets), normalized).
          returned: always
          type: dict
          sample: {wwids: [], maps: [], targets: []}
        unmatched:
          description:
            - The filter entries (normalized) that match nothing on the host, per option; each is also a warning
              unless O(warn_unmatched=false).
          returned: always
          type: dict
          sample: {wwids: [], maps: [], targets: ["iqn.2003-01.org.example:array1"]}
        warnings:
          description:
            - Which source was degraded and what is unknown because of it, and which filter entry matched nothing
              (each also shown as a warning of the task).
          returned: always
          type: list
          elements: str
          sample: ["maps filter entry 'nope' matches no multipath map"]
"""

from typing import Any, Callable, Dict

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lunsafe.san.plugins.module_utils._durations import check_durations
from ansible_collections.lunsafe.san.plugins.module_utils._errors import LunsafeError
from ansible_collections.lunsafe.san.plugins.module_utils._faults import (
    FACTS_NAME,
    classify,
    collect,
    make_filters,
)
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host, system_host
from ansible_collections.lunsafe.san.plugins.module_utils._lock import LOCK_ARGUMENT_SPEC
from ansible_collections.lunsafe.san.plugins.module_utils._runner import Runner

ARGUMENT_SPEC: Dict[str, Any] = {
    "wwids": {"type": "list", "elements": "str"},
    "maps": {"type": "list", "elements": "str"},
    "targets": {"type": "list", "elements": "str"},
    "timeout": {"type": "float", "default": 15},
    "warn_unmatched": {"type": "bool", "default": True},
    "multipath_ll_fallback": {"type": "bool", "default": True},
    # accepted (and not used) so that module_defaults for group/lunsafe.san.lunsafe can set the lock once
    **LOCK_ARGUMENT_SPEC,
}


# every key RETURN documents as always, for a run refused before it observed anything (bad input)
FAILED_RESULT: Dict[str, Any] = {"changed": False, "ansible_facts": {}}


def _validate(params: Dict[str, Any]) -> None:
    check_durations(params, deadlines=("timeout",))  # the collection's one rule for durations


def run(module: AnsibleModule, host: Host) -> Dict[str, Any]:
    """args -> observe -> classify -> result; nothing is ever applied."""
    params = module.params
    filters = make_filters(wwids=params["wwids"], maps=params["maps"], targets=params["targets"])
    observation = collect(
        runner=host.runner,
        sysfs_root=host.sysfs_root,
        proc_root=host.proc_root,
        wwids_file=host.wwids_file,
        timeout=params["timeout"],
        ll_fallback=params["multipath_ll_fallback"],
    )
    facts = classify(observation, filters=filters, warn_unmatched=params["warn_unmatched"])
    for warning in facts["warnings"]:
        module.warn(warning)
    return {"changed": False, "ansible_facts": {FACTS_NAME: facts}}


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
