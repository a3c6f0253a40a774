#!/usr/bin/python
# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: scsi_targeted_scan
short_description: Scan exactly the named SCSI LUNs, never a whole session or host
version_added: 0.1.0
description:
  - Makes the kernel probe only the LUNs you name, on every path (iSCSI session) that leads to them, by writing
    one C(C T L) line per path to C(/sys/class/scsi_host/host<H>/scan). Then waits for their block devices.
  - Unlike C(iscsiadm -m session -R), C(rescan-scsi-bus.sh) or the O(community.general.open_iscsi#module:rescan)
    option of M(community.general.open_iscsi), it sends no REPORT LUNS and attaches nothing that was not asked
    for, so it cannot bring back a LUN another task is detaching.
  - LUNs are addressed by O(hctl), by iSCSI O(target) name (optionally restricted to some O(portal)s) and
    O(luns), or by Fibre Channel target port WWPNs O(fc_targets) (optionally from some local ports
    O(fc_initiators)) and O(luns).
  - Over Fibre Channel each target WWPN resolves, per local port (fc_host, NPIV vports included), to the remote
    ports with that WWPN that are FCP targets, V(Online) or V(Marginal) and have a SCSI target id; the module
    writes exactly C(C T L) for each, never a wildcard and never C(issue_lip). The kernel probes inside the
    write, so a LUN without a device right after it is diagnosed at once (the remote port's state, or the
    array not presenting the LUN to that initiator) instead of waiting for O(timeout).
  - Sessions, remote ports, hosts and target ids are read from sysfs at every run, never cached, because the
    kernel reuses host and session numbers after a logout.
  - A LUN that already has a block device at that address is not scanned again (that would not refresh it);
    it is reported, and O(refresh=true) asks the kernel to re-read its size and identity instead.
  - The module is V(changed) only if a block device appeared (or, with O(refresh=true), a device's size,
    WWID or read-only flag changed) at the addressed LUNs, or O(resize=true) grew a multipath map or changed
    the size of a path of the LUN (also one through a portal not named), comparing sysfs before and after.
  - O(resize=true) finishes an online resize after the array grew a LUN, as os-brick's C(extend_volume) does.
    Every path of the LUN re-reads its size, the module waits until all paths report the same size, then
    C(multipathd resize map) grows the map, and RV(resized) reports the old and new sizes. The filesystem on
    the map is yours to grow (C(resize2fs), C(xfs_growfs)).
  - Takes the host lock (O(lock_file)) so that it never runs between another attach or detach's steps.
author: lunsafe.san developers (@lunsafe)
requirements:
  - Linux with sysfs mounted on C(/sys); root privileges to write to it.
  - No external binary. pyudev (python3-pyudev) is optional; with it, waits wake at udev's events, without it
    they poll sysfs.
extends_documentation_fragment:
  - lunsafe.san._attributes
  - lunsafe.san._attributes.LOCK
attributes:
  check_mode:
    support: full
    details:
      - Writes nothing, not even to sysfs; reports the lines it would write in RV(scanned) and predicts
        V(changed) when a LUN without a device would be scanned.
  diff_mode:
    support: full
    details:
      - The devices at the addressed LUNs before and after, one line each.
  idempotent:
    support: full
    details:
      - A second run finds the devices present and writes nothing.
options:
  hctl:
    description:
      - SCSI addresses C(H:C:T:L) to scan, each a host, channel, target and Linux LUN number (as in
        C(/sys/class/scsi_device) and C(multipath -ll)).
      - The host number must exist; on an iSCSI host, one session must be at that channel and target.
      - On a Fibre Channel host, a remote port must have that channel and target id; a remote port that is not
        usable (V(Blocked), V(Not Present), ...) is skipped with the reason.
      - Mutually exclusive with O(target) and O(fc_targets).
    type: list
    elements: str
  target:
    description:
      - iSCSI target name (IQN or EUI) whose sessions lead to the LUNs in O(luns). Every session to it is
        scanned, or only those through O(portals).
      - The sessions must already exist (log in with node setting C(node.session.scan=manual) first, so that
        the login itself attaches nothing).
    type: str
  portals:
    description:
      - Restrict the scan to the sessions logged in through these portals (C(address) or C(address:port);
        IPv6 as C([address]:port); or a host name). Matched against the session's current and persistent
        address and port.
      - "The port policy is the same in every module of this collection: a portal without a port is port
        3260, so V(192.0.2.10) does not match a session on V(192.0.2.10:3261)."
      - A host name stands for every address it resolves to on the managed host (each must have a session);
        the same portal given twice (two spellings) is used once, with a warning.
      - Each portal must have a session to O(target).
    type: list
    elements: str
    aliases: [portal]
  fc_targets:
    description:
      - Fibre Channel target port WWPNs (C(0x2000525400fc0003), C(20:00:52:54:00:fc:00:03), upper or lower case)
        whose remote ports lead to the LUNs in O(luns). Every usable remote port with one of these WWPNs, on
        every local port or only those in O(fc_initiators), gets one exact C(C T L) scan per LUN.
      - Refused before anything is written, naming the cause per local port, when no remote port is usable -
        the WWPN seen on no fc_host (not zoned, not logged in), a remote port V(Blocked) or V(Not Present), not
        an FCP target, no target id; and when a LUN is above a local port's LUN limit (C(lpfc_max_luns),
        C(ql2xmaxlun)). Paths that are down while others work give a warning.
      - Mutually exclusive with O(hctl) and O(target); requires O(luns).
    type: list
    elements: str
  fc_initiators:
    description:
      - Scan only from these local Fibre Channel ports (fc_host WWPNs; an NPIV vport by its own WWPN, its
        parent port is then not scanned). Each must exist on the host.
      - Default - every fc_host.
    type: list
    elements: str
  luns:
    description:
      - LUN numbers of O(target) or O(fc_targets), as the array numbers them, in decimal or C(0x) hexadecimal.
      - Validated before anything is written; refused when negative, longer than the kernel's
        16-character token, written with leading zeros (the kernel would read them as octal), or the
        wildcard V(-). A LUN is never a wildcard.
      - Required with O(target) and O(fc_targets).
    type: list
    elements: raw
  lun_addressing:
    description:
      - How an array LUN number maps to the Linux LUN number written to the scan file.
      - V(peripheral) accepts 0 to 255 unchanged. V(sam2) keeps 0 to 255 and adds 16384 to 256 to 16383 (flat
        space, so array LUN 256 is Linux LUN 16640). V(sam3_flat) adds 16384 to every LUN. V(transparent) uses
        the number as the Linux LUN unchanged.
    type: str
    choices: [peripheral, transparent, sam2, sam3_flat]
    default: peripheral
  allow_wildcard:
    description:
      - Allow a C(- - L) scan (wildcard channel and target, the LUN still named) of a session that has no
        target directory yet on a kernel that does not show the session's C(target_id).
      - Even then it is refused when the host carries more than one session, since every session of the host
        would be probed. Refused with O(fc_targets).
    type: bool
    default: false
  refresh:
    description:
      - For a LUN that already has a device, write C(1) to its C(rescan) file so that the kernel re-reads its
        size and identity. A device is never deleted.
    type: bool
    default: false
  resize:
    description:
      - Grow the LUNs after the array grew them, online. Implies O(refresh=true).
      - Every path of each addressed LUN that has a device is rescanned, also paths through portals the task
        did not name (a map is resized only when all its paths agree). The module then waits (up to
        O(timeout)) until all paths of the LUN report one size and, when the LUN's multipath map is smaller,
        runs C(multipathd resize map) and waits until the map has that size.
      - Refused before anything is written when a path of the LUN is not C(running) (for example during a
        portal outage), when the kernel reports no WWID for a device, or when the map exists but multipathd
        is not installed.
      - Fails, leaving the map at its old size, when the paths still disagree at the deadline, and refuses to
        shrink a map when the LUN shrank on the array (data beyond the new end would be cut off).
      - A LUN without a device on any path is scanned as usual; it has its new size already.
      - Cannot be combined with O(wait=false).
    type: bool
    default: false
  wait:
    description:
      - Wait for the block device of every scanned LUN on every path.
      - With V(false), returns right after the writes; devices still without a block device are listed in
        RV(pending), and V(changed) reflects only what had appeared by then.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for the block devices, after which the module fails naming the missing LUNs, what
        sysfs showed for them and the lines it wrote. A LUN the array does not present ends this way.
      - With O(resize=true), the resize after the scan (paths agreeing, multipathd, the map's new size) has one
        deadline of this many seconds for all its LUNs.
      - "Durations, the same rule in every module of this collection: a deadline (O(timeout), O(lock_lease.ttl))
        must be a finite number of seconds greater than 0; O(lock_timeout) must be finite and at least 0 (V(0)
        tries the lock once). Anything else is refused before anything runs, naming the option and the value."
    type: float
    default: 30
notes:
  - Waits have a deadline and end when udev has processed every scanned block device. With pyudev on the
    managed node (python3-pyudev) a netlink monitor, opened by the first wait that has to pause, wakes each
    wait at udev's events; without it, or without netlink, the module polls sysfs. RV(wait_method) says which ran and
    RV(wait_method_reason) why. There is no C(udevadm settle).
  - Only the C(scan) and C(rescan) files of the hosts and devices named in RV(scanned) are written; with
    O(resize=true) also C(multipathd resize map) for the maps named in RV(resized).
  - In check mode O(resize=true) rescans nothing, so it cannot know whether the array grew the LUN; it reports
    the sizes the host sees and predicts V(changed) only for a map that is already smaller than its paths.
seealso:
  - module: lunsafe.san.iscsi_lun_attach
    description: Log in with manual scan, scan one LUN on every portal and verify its identity.
  - module: lunsafe.san.multipath_faulty_facts
    description: Find faulty paths and dead maps, for example those a global rescan left behind.
  - module: lunsafe.san.multipath_flush
    description: Flush one multipath map and delete its SCSI paths safely.
  - module: lunsafe.san.fc_info
    description: The Fibre Channel ports, remote ports and their target ids that O(fc_targets) resolves to.
  - name: Linux kernel scsi_transport_iscsi user scan
    description: The kernel code that turns a scan-file write into a probe of one LUN per matching session.
    link: https://github.com/torvalds/linux/blob/master/drivers/scsi/scsi_transport_iscsi.c
"""

EXAMPLES = r"""
- name: Attach LUN 1 through two FC target ports, from every local FC port (one path per remote port)
  lunsafe.san.scsi_targeted_scan:
    fc_targets:
      - "0x2000525400fc0003"
      - 20:00:52:54:00:fc:00:04
    luns: [1]
  register: fc_scan

- name: Attach LUN 1 of the array on every session to it (two portals give two paths)
  lunsafe.san.scsi_targeted_scan:
    target: iqn.2003-01.org.example:array
    luns: [1]
  register: scan

- name: Show the new block devices
  ansible.builtin.debug:
    msg: "{{ scan.devices | map(attribute='path') | list }}"

- name: Scan LUN 300 of an array using SAM-2 flat space addressing, through one portal only
  lunsafe.san.scsi_targeted_scan:
    target: iqn.2003-01.org.example:array
    portals: ["192.0.2.10:3260"]
    luns: [300]
    lun_addressing: sam2
    timeout: 60

- name: Scan one address, and refresh its size if it already exists (after an array-side resize)
  lunsafe.san.scsi_targeted_scan:
    hctl: ["3:0:0:2"]
    refresh: true

- name: After growing LUN 2 on the array, grow its paths and its multipath map (online)
  lunsafe.san.scsi_targeted_scan:
    target: iqn.2003-01.org.example:array
    luns: [2]
    resize: true
  register: grown

- name: Grow the filesystem on the map to the new size
  ansible.builtin.command:
    argv: [resize2fs, "/dev/mapper/{{ grown.resized[0].map }}"]
  when: grown.resized[0].map_resized
  changed_when: true

- name: Share os-brick's lock on an OpenStack compute node
  lunsafe.san.scsi_targeted_scan:
    target: iqn.2003-01.org.example:array
    luns: [4]
    lock_file: /var/lib/nova/tmp/os-brick-connect_volume
"""

RETURN = r"""
lock_lease:
  description:
    - What happened to O(lock_lease) at the end of the run; V(null) when no lease was given or in check mode.
    - V(held) (written or renewed), V(released) (removed). Also on a failure (a failed run removes a lease
      with O(lock_lease.state=released) and writes none with V(held)).
  returned: always
  type: str
  sample: held
devices:
  description:
    - The SCSI devices at the addressed LUNs after the run, one per path, sorted by H:C:T:L.
    - In check mode, the devices that exist already.
  returned: success
  type: list
  elements: dict
  contains:
    hctl:
      description: SCSI address C(H:C:T:L).
      type: str
      sample: "2:0:0:1"
    lun:
      description: Linux LUN number.
      type: int
      sample: 1
    name:
      description: Kernel block device name; null while the device has none.
      type: str
      sample: sdb
    path:
      description: Block device path.
      type: str
      sample: /dev/sdb
    wwid:
      description: WWID as multipath and udev spell it (C(naa.) becomes C(3), C(eui.) becomes C(2)).
      type: str
      sample: "36001405d0c5f5e1b0b34b4d9b0e7d5a1"
    sysfs_wwid:
      description: The kernel's C(device/wwid) text.
      type: str
      sample: naa.6001405d0c5f5e1b0b34b4d9b0e7d5a1
    state:
      description: The kernel's device state (V(running), V(offline), V(blocked), ...).
      type: str
      sample: running
    size_bytes:
      description: Size in bytes.
      type: int
      sample: 67108864
    read_only:
      description: Whether the block device is read-only.
      type: bool
      sample: false
    sid:
      description: iSCSI session id; null for a non-iSCSI host.
      type: int
      sample: 1
    target:
      description: iSCSI target name of the session.
      type: str
      sample: iqn.2003-01.org.example:array
    portal:
      description: Portal the session logged in to.
      type: str
      sample: "127.0.0.1:3260"
    rport:
      description: Fibre Channel remote port the device is reached through (C(rport-H:C-N)); null for iSCSI.
      type: str
      sample: rport-2:0-1
    target_wwpn:
      description: WWPN of that remote port; null for iSCSI.
      type: str
      sample: "0x2000525400fc0003"
    new:
      description: Whether the block device appeared during this run.
      type: bool
      sample: true
    udev:
      description:
        - What udev made of the block device once it had processed it, read through pyudev or, without it,
          from udev's database file C(/run/udev/data/b<major>:<minor>); the same either way.
        - Null without a block device, when udevd does not run, or when udev had not finished with the device
          at the deadline.
      type: dict
      contains:
        links:
          description: The persistent links udev made (C(/dev/disk/by-id), C(/dev/disk/by-path), C(/dev/mapper)).
          type: list
          elements: str
          sample: [/dev/disk/by-id/wwn-0x6001405d0c5f5e1b0b34b4d9b0e7d5a1]
        id_wwn:
          description: udev's C(ID_WWN), when set.
          type: str
          sample: "0x6001405d0c5f5e1b"
        id_serial:
          description: udev's C(ID_SERIAL), when set.
          type: str
          sample: "36001405d0c5f5e1b0b34b4d9b0e7d5a1"
        id_path:
          description: udev's C(ID_PATH), when set.
          type: str
          sample: ip-127.0.0.1:3260-iscsi-iqn.2003-01.org.example:array-lun-1
scanned:
  description:
    - The exact sysfs writes, in order. C(kind) is V(scan) (a C(C T L) line to a host's scan file) or
      V(rescan) (C(1) to a device's rescan file, with O(refresh=true) or O(resize=true)).
    - In check mode, the writes that would be done.
    - A write the kernel refused is listed too, last, with its C(error) and C(errno); the run fails there and
      makes no further write.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: V(scan) or V(rescan).
      type: str
      sample: scan
    host:
      description: The SCSI host number.
      type: int
      sample: 2
    path:
      description: The sysfs file written.
      type: str
      sample: /sys/class/scsi_host/host2/scan
    line:
      description: The text written.
      type: str
      sample: "0 0 1"
    hctl:
      description: The address scanned or rescanned (C(H:-:-:L) for a wildcard scan).
      type: str
      sample: "2:0:0:1"
    error:
      description: Only on a write the kernel refused, the error it returned.
      type: str
      sample: No such device
    errno:
      description: Only on a write the kernel refused, its error number.
      type: int
      sample: 19
  sample:
    - {kind: scan, host: 2, path: /sys/class/scsi_host/host2/scan, line: "0 0 1", hctl: "2:0:0:1"}
    - {kind: scan, host: 3, path: /sys/class/scsi_host/host3/scan, line: "0 0 1", hctl: "3:0:0:1"}
resized:
  description:
    - With O(resize=true), one entry per LUN (WWID) that had a device before the run; empty otherwise.
    - In check mode, the sizes the host sees without a rescan.
  returned: always
  type: list
  elements: dict
  contains:
    wwid:
      description: The LUN's WWID (multipath spelling).
      type: str
      sample: "36001405d0c5f5e1b0b34b4d9b0e7d5a1"
    map:
      description: The name of the LUN's multipath map; null when its paths are not in a map.
      type: str
      sample: mpatha
    dm:
      description: The kernel name of the map (C(dm-N)); null without a map.
      type: str
      sample: dm-2
    old_size_bytes:
      description: The LUN's size on the host before the run (the map's size; without a map, the paths').
      type: int
      sample: 67108864
    new_size_bytes:
      description: The LUN's size on the host after the run (the map's size; without a map, the paths').
      type: int
      sample: 134217728
    map_resized:
      description: Whether C(multipathd resize map) grew the map in this run (in check mode, whether it would).
      type: bool
      sample: true
    paths:
      description: Every path of the LUN, with its size before and after its rescan.
      type: list
      elements: dict
      sample:
        - {name: sdb, hctl: "2:0:0:2", old_size_bytes: 67108864, new_size_bytes: 134217728}
        - {name: sdc, hctl: "3:0:0:2", old_size_bytes: 67108864, new_size_bytes: 134217728}
skipped:
  description:
    - Addresses not scanned because their session is not logged in, with the reason.
    - Not returned on failure. Ansible reads a result key named C(skipped) as "the task was skipped" and
      then ignores the task's C(failed_when) and C(changed_when); a failed run leaves it out so that
      C(failed_when) works on it.
  returned: success
  type: list
  elements: dict
  sample:
    - {hctl: "4:0:0:1", reason: "session 3 is FAILED, not LOGGED_IN: the kernel ignores scans of it"}
pending:
  description: Addresses scanned that had no block device yet when the module returned (only with O(wait=false)).
  returned: always
  type: list
  elements: str
  sample: []
waited_seconds:
  description: Seconds spent waiting for the block devices.
  returned: always
  type: float
  sample: 0.42
timings:
  description:
    - Seconds measured inside the module on the managed node. C(lock) is the wait for the host lock (or for
      another procedure's O(lock_lease)), also when the lock could not be taken within O(lock_timeout);
      C(total) is C(lock) plus the work done under the lock.
  returned: always
  type: dict
  sample: {"lock": 0.002, "total": 0.61}
profile:
  description:
    - Where this run spent its time on the managed node, each external command (named by its tool and the
      words that say what it does, never by targets, devices or secrets) and each wait (what ended it), with
      counts and sums (on failure the steps up to the failure). The same shape as
      RV(lunsafe.san.iscsi_lun_attach#module:profile), which documents every key.
  returned: always (also on failure)
  type: dict
  sample:
    commands: 3
    waits: 1
    command_seconds: 0.118
    wait_seconds: 0.412
    dropped: 0
    steps:
      - {"kind": "command", "what": "iscsiadm -m session -P", "start": 0.004, "duration": 0.041, "rc": 0}
      - {"kind": "command", "what": "multipathd show paths", "start": 0.05, "duration": 0.038, "rc": 0}
      - kind: wait
        what: block devices
        method: udev-events
        deadline: 60.0
        start: 0.12
        duration: 0.412
        ended: ready
      - {"kind": "command", "what": "multipathd show maps", "start": 0.54, "duration": 0.039, "rc": 0}
missing:
  description:
    - When the wait for the block devices timed out, the addresses scanned that still had none (the run then
      fails).
  returned: when the wait for the block devices timed out
  type: list
  elements: str
  sample: ["2:0:0:3", "3:0:0:3"]
recovery:
  description:
    - When the wait timed out, for each address of RV(missing) whose iSCSI session went into recovery during the
      wait, what the session went through (its scan was written again when it logged in).
  returned: when the wait for the block devices timed out
  type: dict
  sample: {"2:0:0:3": "session 1 (host2) was FAILED"}
timeout:
  description: When the wait timed out, the deadline that ran out (O(timeout)).
  returned: when the wait for the block devices timed out
  type: float
  sample: 30.0
unscannable:
  description:
    - When nothing could be scanned (every session of the LUNs is out of C(LOGGED_IN)), the addresses refused;
      the run then fails and says why in its message.
  returned: when nothing could be scanned
  type: list
  elements: str
  sample: ["2:0:0:1"]
wait_method:
  description:
    - How waits were done. V(udev-events) when the waits lasted over 1.5 seconds (until then they poll udev's
      database every 0.1 s), pyudev imports, udevd runs and its netlink monitor opened; V(sysfs-poll) otherwise,
      also when every wait ended within that time (pyudev not imported). RV(wait_method_reason) says why.
  returned: always
  type: str
  sample: udev-events
wait_method_reason:
  description: Why RV(wait_method) was chosen (for example that pyudev is not installed), and the source used.
  returned: always
  type: str
  sample: "pyudev 0.24.0: a netlink monitor of block, scsi events"
"""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lunsafe.san.plugins.module_utils._durations import check_durations
from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError, LunsafeError
from ansible_collections.lunsafe.san.plugins.module_utils._fc import UA_RULES_DIRS, ua_rule_warning
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host, system_host
from ansible_collections.lunsafe.san.plugins.module_utils._lock import LOCK_ARGUMENT_SPEC, HostLock, lock_from_params
from ansible_collections.lunsafe.san.plugins.module_utils._profile import Profile
from ansible_collections.lunsafe.san.plugins.module_utils._resize import (
    ResizePlan,
    apply_resize,
    plan_resize,
    preview_resize,
    rescan_writes,
)
from ansible_collections.lunsafe.san.plugins.module_utils._runner import Runner
from ansible_collections.lunsafe.san.plugins.module_utils._scan import (
    ACTION_SCAN,
    ACTION_SKIP,
    ScanEmpty,
    ScanPlan,
    ScanTimeout,
    SysfsWrite,
    apply_plan,
    build_request,
    plan_scan,
    planned_writes,
    summarize,
    verify_fc_scan,
    wait_for_devices,
)
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import Snapshot

ARGUMENT_SPEC: Dict[str, Any] = {
    "hctl": {"type": "list", "elements": "str"},
    "target": {"type": "str"},
    "portals": {"type": "list", "elements": "str", "aliases": ["portal"]},
    "fc_targets": {"type": "list", "elements": "str"},
    "fc_initiators": {"type": "list", "elements": "str"},
    "luns": {"type": "list", "elements": "raw"},
    "lun_addressing": {
        "type": "str",
        "default": "peripheral",
        "choices": ["peripheral", "transparent", "sam2", "sam3_flat"],
    },
    "allow_wildcard": {"type": "bool", "default": False},
    "refresh": {"type": "bool", "default": False},
    "resize": {"type": "bool", "default": False},
    "wait": {"type": "bool", "default": True},
    "timeout": {"type": "float", "default": 30},
    **LOCK_ARGUMENT_SPEC,
}

# the duration options (seconds), checked by one rule before anything runs (see _durations)
DEADLINES = ("timeout", "lock_lease.ttl")
ZERO_ALLOWED = ("lock_timeout",)


# every key RETURN documents as always, for a run that failed before it could fill them
FAILED_RESULT: Dict[str, Any] = {
    "changed": False,
    "lock_lease": None,
    "scanned": [],
    "pending": [],
    "resized": [],
    "waited_seconds": 0.0,
    "timings": {"lock": 0.0, "total": 0.0},
    "wait_method": "sysfs-poll",
    "wait_method_reason": "the run failed before it waited",
}


def run(module: AnsibleModule, host: Host, *, rules_dirs: Sequence[str] = UA_RULES_DIRS) -> Dict[str, Any]:
    """args -> lock -> observe -> plan -> (unless check mode) apply -> observe -> result."""
    params = module.params
    check_durations(params, deadlines=DEADLINES, zero_allowed=ZERO_ALLOWED)
    if params["resize"] and not params["wait"]:
        raise InputError(
            "resize=true waits for every path and the map to reach the new size: it cannot be combined with wait=false",
            option="wait",
            value=False,
        )
    request = build_request(
        hctl=params["hctl"],
        target=params["target"],
        portals=params["portals"],
        luns=params["luns"],
        lun_addressing=params["lun_addressing"],
        allow_wildcard=params["allow_wildcard"],
        refresh=params["refresh"] or params["resize"],
        resolver=host.resolver,
        fc_targets=params["fc_targets"],
        fc_initiators=params["fc_initiators"],
    )
    for warning in request.warnings:
        module.warn(warning)
    lock = lock_from_params(params, check_mode=module.check_mode)
    begun: List[float] = []  # when the work under the lock began (never, when the lock could not be taken)
    try:
        if lock is None:  # check mode without a lock file: nothing to wait for
            result = _work(module, host, request, begun, rules_dirs)
        else:
            with lock:
                result = _work(module, host, request, begun, rules_dirs)
    except LunsafeError as exc:
        exc.details.update(_lock_keys(lock, host, begun))
        raise
    finally:
        for warning in lock.warnings if lock is not None else []:  # a lock file other users can open
            module.warn(warning)
    # read once the lock's __exit__ has written, renewed or removed the lease and released the lock
    result.update(_lock_keys(lock, host, begun))
    return result


def _lock_keys(lock: Optional[HostLock], host: Host, begun: List[float]) -> Dict[str, Any]:
    """``lock_lease`` and ``timings`` (``waited`` is set on a lock timeout too)."""
    waited = round(lock.waited, 3) if lock is not None else 0.0
    work = host.clock() - begun[0] if begun else 0.0
    return {
        "lock_lease": lock.lease_outcome if lock is not None else None,
        "timings": {"lock": waited, "total": round(waited + work, 3)},
    }


def _work(
    module: AnsibleModule, host: Host, request: Any, begun: List[float], rules_dirs: Sequence[str]
) -> Dict[str, Any]:
    begun.append(host.clock())
    params = module.params
    before = host.snapshot()
    plan = plan_scan(request=request, snapshot=before)
    _warn_plan(module, plan, fc=bool(request.fc_targets), rules_dirs=rules_dirs)
    skipped = [{"hctl": item.address, "reason": item.reason} for item in plan.with_action(ACTION_SKIP)]
    rplan = None
    if params["resize"]:
        rplan = plan_resize(plan=plan, snapshot=before, has_multipathd=host.runner.has_tool("multipathd"))
    resized: List[Dict[str, Any]] = []
    map_changed = False
    if module.check_mode:
        writes = planned_writes(plan=plan, sysfs_root=host.sysfs_root)
        summary = summarize(plan=plan, before=before, after=before)
        summary["changed"] = bool(plan.with_action(ACTION_SCAN))
        if rplan is not None:
            writes += rescan_writes(rplan=rplan, sysfs_root=host.sysfs_root, done=writes)
            resized, map_changed = preview_resize(rplan=rplan)
        waited = 0.0
    else:
        writes = _apply(plan=plan, host=host, before=before)
        if params["wait"]:
            again: List[SysfsWrite] = []  # scans written again once a session had recovered from an outage
            try:
                after, waited = wait_for_devices(
                    plan=plan, host=host, timeout=params["timeout"], scanned=writes, again=again
                )
            except ScanTimeout as exc:
                # the writes were done: say what they changed and which devices exist, then fail
                failed = summarize(plan=plan, before=before, after=exc.snapshot)
                exc.details.update(changed=failed["changed"], devices=_fc_keys(plan, failed["devices"]))
                raise
            writes += tuple(again)
            for write in again:
                module.warn(
                    f"the session of host{write.host} went into recovery after the scan of {write.address} was "
                    "written; the kernel drops such a scan, so it was written again once the session had logged in"
                )
        else:
            after, waited = host.snapshot(), 0.0
        if rplan is not None:
            resized, writes = _resize(
                plan=plan, rplan=rplan, host=host, before=before, writes=writes, timeout=params["timeout"]
            )
            # a map grown, or a path grown that the scan summary does not cover (one through another portal)
            map_changed = any(
                entry["map_resized"] or any(path["old_size_bytes"] != path["new_size_bytes"] for path in entry["paths"])
                for entry in resized
            )
            after = host.snapshot()
        summary = summarize(plan=plan, before=before, after=after, host=host)
    for hctl in summary["unrequested"]:
        module.warn(
            f"device {hctl} appeared during this run but was not asked for: something else scanned this host "
            "(iscsid auto-scan, a udev rule, another tool not taking the host lock)"
        )
    if resized:
        summary["diff"]["before"] += _map_diff(resized, "old_size_bytes")
        summary["diff"]["after"] += _map_diff(resized, "new_size_bytes")
    result: Dict[str, Any] = {
        "changed": summary["changed"] or map_changed,
        "devices": _fc_keys(plan, summary["devices"]),
        "scanned": [write.to_dict() for write in writes],
        "skipped": skipped,
        "pending": summary["pending"],
        "resized": resized,
        "waited_seconds": round(waited, 3),
        **host.wait_info(),
    }
    if module._diff:
        result["diff"] = summary["diff"]
    return result


def _resize(
    *,
    plan: ScanPlan,
    rplan: ResizePlan,
    host: Host,
    before: Snapshot,
    writes: Tuple[SysfsWrite, ...],
    timeout: float,
) -> Tuple[List[Dict[str, Any]], Tuple[SysfsWrite, ...]]:
    """apply_resize; on failure the error says what the run wrote and whether a path's size changed."""
    try:
        resized, extra = apply_resize(rplan=rplan, host=host, timeout=timeout, done=writes)
    except LunsafeError as exc:
        failed = summarize(plan=plan, before=before, after=host.snapshot())
        exc.details.update(changed=failed["changed"], devices=failed["devices"])
        exc.details.setdefault("scanned", [write.to_dict() for write in writes])
        raise
    return resized, writes + extra


def _warn_plan(module: AnsibleModule, plan: ScanPlan, *, fc: bool, rules_dirs: Sequence[str]) -> None:
    """The plan's warnings (FC paths down, scan mode) and, over FC, the libstoragemgmt UA rule, once per run."""
    warnings = list(plan.warnings)
    if fc:
        ua_rule = ua_rule_warning(rules_dirs=rules_dirs)
        if ua_rule is not None:
            warnings.append(ua_rule)
    for warning in warnings:
        module.warn(warning)


def _apply(*, plan: ScanPlan, host: Host, before: Snapshot) -> Tuple[SysfsWrite, ...]:
    """The writes, then (FC) the check that each created its scsi_device: the kernel probed inside them."""
    writes = apply_plan(plan=plan, host=host)
    try:
        verify_fc_scan(plan=plan, host=host, scanned=writes)
    except ScanEmpty as exc:
        failed = summarize(plan=plan, before=before, after=exc.snapshot)
        exc.details.update(changed=failed["changed"], devices=_fc_keys(plan, failed["devices"]))
        raise
    return writes


def _fc_keys(plan: ScanPlan, devices: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The devices entries with ``rport`` and ``target_wwpn`` (null for iSCSI and other hosts)."""
    by_hctl = {item.address: item for item in plan.items if item.rport is not None}
    entries = []
    for device in devices:
        item = by_hctl.get(device["hctl"])
        entries.append(
            {
                **device,
                "rport": None if item is None else item.rport,
                "target_wwpn": None if item is None else item.wwpn,
            }
        )
    return entries


def _map_diff(resized: List[Dict[str, Any]], key: str) -> str:
    return "".join(f"map {entry['map']} {entry['dm']} {entry[key] or 0}\n" for entry in resized if entry["map"])


def main(make_host: Callable[[Runner], Host] = system_host, rules_dirs: Sequence[str] = UA_RULES_DIRS) -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("hctl", "target", "fc_targets")],
        required_one_of=[("hctl", "target", "fc_targets")],
        required_by={"portals": "target", "fc_initiators": "fc_targets", "target": "luns", "fc_targets": "luns"},
        supports_check_mode=True,
    )
    profile = Profile()  # replaced by the host runner's once the host exists
    try:
        host = make_host(Runner(module, default_timeout=60))
        profile = host.runner.profile
        result = run(module, host, rules_dirs=rules_dirs)
    except LunsafeError as exc:
        module.fail_json(**{**FAILED_RESULT, **exc.to_fail_kwargs(), "profile": profile.to_result()})
    module.exit_json(**result, profile=profile.to_result())


if __name__ == "__main__":
    main()
