#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: fc_lun_attach
short_description: Attach or detach Fibre Channel LUNs by scanning exactly those LUNs
version_added: 0.1.0
description:
  - Attaches one or several LUNs of a Fibre Channel array on every path to the requested target ports
    without ever scanning a whole target, so a LUN that another run is detaching at the same time cannot
    come back. The procedure is the one of M(lunsafe.san.iscsi_lun_attach); only the paths differ.
  - "A path is an I_T nexus, an fc_host (initiator port) and a remote port (target port) with a SCSI target id.
    The paths are every usable remote port whose WWPN is in O(targets), on every fc_host (or those of
    O(initiators)). A remote port is usable when it is an FCP target, Online (or Marginal) and has a SCSI
    target id. Nothing logs in or out: the fabric logs the ports in."
  - With O(state=present) it writes C(C T L) (never a wildcard, never C(issue_lip)) for each LUN to the scan
    file of each path's fc_host, after checking the LUN against the HBA's highest LUN, verifies at once
    what each write made (the FC scan is synchronous; a write the kernel accepted proves nothing), waits for
    the block devices and, with O(multipath=true), for the multipath map holding all of them, and checks
    each LUN's identity across all of its paths (same WWID and size on every path, the O(expected_wwid)).
  - "Diagnoses name the cause and change nothing: a target WWPN seen on no fc_host (not zoned, or not
    logged in), a remote port Blocked or Not Present, a port that is no FCP target, an initiator WWPN that is
    no fc_host here, a LUN above the HBA's limit (C(lpfc_max_luns), C(ql2xmaxlun)). Without O(initiators), an
    fc_host that does not see a target port at all is not a failure (it is named in RV(fc_problems)); a
    remote port of the target that it sees but cannot use is. A LUN the array does not present (the scan
    created nothing) fails at once, naming the initiator and target ports, and what the run created for it
    on other paths is rolled back."
  - A device already at the LUN's address that carries another LU's identity (the array reused the LUN
    number) is never used; the module fails naming it, unless O(stale_device=replace) and the device is
    neither held nor open.
  - With O(state=absent) it takes every SCSI device of the LUN on the requested target ports and every
    other device of the same WWID on any fc_host, checks them all first (mounted, held, open or blocked
    refuses the whole call, nothing changed, unless O(force); another identity than O(expected_wwid), or
    paths that disagree, refuse it whatever O(force) says), then flushes the LUN's multipath map and deletes
    its paths, and checks by WWID that none is left.
  - "Warnings, once per run: the kernel scans a whole target each time a remote port logs in unless
    C(scsi_mod.scan=manual), and libstoragemgmt's C(90-scsi-ua.rules) rescans a whole target on REPORTED
    LUNS DATA HAS CHANGED; both undo targeted scanning."
  - Rollback, the journal of interrupted runs, the lock and its lease work as in
    M(lunsafe.san.iscsi_lun_attach).
author: lunsafe.san developers (@lunsafe)
requirements:
  - multipath and multipathd (multipath-tools) when O(multipath=true)
  - C(/proc) mounted (each command's deadline is enforced by signalling it and its children, found there)
extends_documentation_fragment:
  - lunsafe.san._attributes
  - lunsafe.san._attributes.LOCK
attributes:
  check_mode:
    support: full
    details:
      - Nothing is written in check mode; the paths are read and diagnosed as in a real run, and the result
        says which scans would be written.
  diff_mode:
    support: full
    details:
      - The diff shows the LUN's SCSI devices before and after.
  idempotent:
    support: full
options:
  targets:
    description:
      - WWPNs of the array's target ports, as V(0x5006016012345678), V(50:06:01:60:12:34:56:78) or
        V(5006016012345678) (any case).
    type: list
    elements: str
    required: true
  initiators:
    description:
      - WWPNs of the fc_hosts (initiator ports, NPIV vports included) to use; every fc_host when omitted.
      - Every pair of a given initiator and a target must have a usable path.
    type: list
    elements: str
  lun:
    description:
      - The LUN number as the array presents it. See O(lun_addressing) for LUNs above 255.
      - A decimal or C(0x) hexadecimal number; never a wildcard.
      - Exactly one of O(lun) and O(luns) is required. With O(lun) the result keeps the single-LUN shape
        (RV(hctl), RV(devices), RV(wwid), RV(dm), ... at the top level).
    type: str
  luns:
    description:
      - "Several LUNs of the targets, attached or detached in one call under one lock. Each entry is a LUN
        number (as for O(lun)) or a dict C({lun: N, expected_wwid: WWID})."
      - The result has one entry per LUN in RV(luns).
    type: list
    elements: raw
  lun_addressing:
    description:
      - How the array encodes LUN numbers, which decides the Linux LUN the kernel uses.
      - V(peripheral) and V(transparent) keep the number; V(sam2) adds 16384 from LUN 256 on; V(sam3_flat)
        always adds 16384.
    type: str
    choices: [peripheral, transparent, sam2, sam3_flat]
    default: peripheral
  state:
    description: Whether the LUN must be attached or detached.
    type: str
    choices: [present, absent]
    default: present
  multipath:
    description:
      - Wait for (and if needed ask multipathd for) a multipath map holding every path.
      - multipathd must answer before anything is changed (also in check mode); the module fails at once
        otherwise.
    type: bool
    default: true
  expected_wwid:
    description:
      - The WWID the LUN must carry, in multipath form (V(36001405...)) or as the kernel shows it (V(naa.6001405...)).
      - The attach fails, and removes what it created, when the LUN carries another WWID. A LUN that was
        attached before the run is left as it was.
      - With O(state=absent), a LUN whose paths carry another WWID (or different WWIDs) refuses the whole
        detach before any change, whatever O(force) and O(keep_going) say; a LUN with no path is V(absent).
      - Refused at once when it is not a WWID. Goes with O(lun); with O(luns) give it per entry.
    type: str
  stale_device:
    description:
      - What to do with a device already at this LUN's address that carries another LU's identity.
      - V(fail) refuses. V(replace) deletes it (only when nothing holds or opens it) and scans the LUN again.
    type: str
    choices: [fail, replace]
    default: fail
  timeout:
    description:
      - Seconds to wait for the block devices and for the multipath maps (each wait has this deadline), and
        for a path to leave sysfs on detach.
    type: float
    default: 60
  force:
    description:
      - With O(state=absent), remove the LUN's map and paths even when they are mounted, held, open or
        blocked. This can lose data that was not written yet.
      - It does not override the identity check of O(expected_wwid).
    type: bool
    default: false
  keep_going:
    description:
      - With O(state=absent) and O(force=true) only, as in M(lunsafe.san.iscsi_lun_attach) - a LUN whose map
        cannot be flushed, or a path that cannot be deleted, does not stop the run; the module fails at the
        end, naming each failure.
    type: bool
    default: false
  persist:
    description:
      - With O(state=present), record each LUN this run attached, after its identity checks and with the WWID
        they verified, in the state file C(/var/lib/lunsafe-san/persist.json) (root's, 0600, in a 0700 directory,
        rewritten whole by an atomic replace), so that the boot service C(lunsafe-san-restore.service) attaches
        exactly the recorded LUNs again at boot, with this module's own procedure (see the
        R(persistence guide,ansible_collections.lunsafe.san.docsite.persistence)). The C(lunsafe.san.lun_attach)
        role installs that service (C(lun_attach_persist)).
      - The record names the paths (the target and initiator WWPNs), the LUN and its
        addressing, the WWID and O(multipath). A LUN recorded before is updated when any of these changed.
      - With O(state=absent), the records of the LUNs this run detached (or found absent) are removed whatever
        O(persist) says (a detach always forgets); a refused detach forgets nothing. The file is removed with its
        last record.
      - V(false) with O(state=present) leaves the records as they are (an attach never forgets).
      - A state file that is not one (not JSON, a record without its keys) or that another user could have
        written fails the run before anything is changed, naming the file and the cause; it is never replaced.
        It is read and written under the host lock. Check mode reads it and reports the change in
        RV(persisted) without writing.
      - "Without persistence, a reboot leaves the host with its node records but none of these LUNs (manual
        scan): run the attach again after boot."
    type: bool
    default: false
seealso:
  - module: lunsafe.san.iscsi_lun_attach
  - module: lunsafe.san.scsi_targeted_scan
  - module: lunsafe.san.multipath_flush
"""

EXAMPLES = r"""
- name: Attach LUN 3 through both target ports of the array, expecting its WWID
  lunsafe.san.fc_lun_attach:
    targets: ["0x5006016012345678", "0x5006016812345678"]
    lun: 3
    expected_wwid: 36006016012345678a1b2c3d4e5f60718
  register: lun3

- name: Use the multipath device
  ansible.builtin.debug:
    msg: "{{ lun3.dm.path }} over {{ lun3.luns[0].paths | map(attribute='hctl') | list }}"

- name: Attach two LUNs through one HBA port only
  lunsafe.san.fc_lun_attach:
    targets: ["50:06:01:60:12:34:56:78"]
    initiators: ["10:00:00:10:9b:12:34:56"]
    luns: [10, {lun: 11, expected_wwid: 36006016012345678a1b2c3d4e5f60719}]

- name: Detach LUN 3 (refuses while it is mounted or held)
  lunsafe.san.fc_lun_attach:
    targets: ["0x5006016012345678", "0x5006016812345678"]
    lun: 3
    state: absent
"""

RETURN = r"""
persisted:
  description:
    - "What this run did to the persistence state file (see O(persist)). C(recorded) lists the records it added
      or updated (with O(persist=true), each LUN it attached, with C(transport), C(module), C(targets), C(paths),
      C(lun), C(lun_addressing), C(linux_lun), C(wwid), C(multipath), C(recorded)); C(forgotten) the records a
      detach removed; C(count) how many records the file holds after the run; C(state_file) its path."
    - In check mode, the change a real run would make (C(wwid) null for a LUN not attached yet). Part of
      C(changed) and of the diff (a C(persist:) line per record).
    - Null when the file could not be read by an attach without O(persist) (a warning says why), or when the run
      stopped before the file was read.
  returned: always
  type: dict
  sample: {"state_file": "/var/lib/lunsafe-san/persist.json", "count": 1, "forgotten": [],
           "recorded": [{"transport": "fc", "module": "fc_lun_attach",
                         "targets": ["0x5001405a1b2c3d01"],
                         "paths": {"transport": "fc", "targets": ["0x5001405a1b2c3d01"], "initiators": []},
                         "lun": "3", "lun_addressing": "peripheral", "linux_lun": 3,
                         "wwid": "36001405a1b2c3d4e5f60718293a4b5c6", "multipath": true,
                         "recorded": "2026-12-05T17:20:00+00:00"}]}
luns:
  description:
    - One entry per requested LUN, in the order given (also with O(lun), and also on failure).
    - C(state) is V(attached), V(absent) (nothing there; also the check-mode prediction for a LUN not yet
      attached), V(detached) (removed by this run) or V(failed); C(msg) says why a LUN failed.
    - C(paths) has one entry per path of the LUN - C(hctl), C(device), C(rport), C(initiator) (the fc_host's
      WWPN), C(target) (the remote port's WWPN) and C(port_state) (of the remote port).
    - The other keys are those of the single-LUN result (RV(hctl), RV(devices), RV(wwid), RV(size_bytes),
      RV(dm), RV(by_id), RV(removed), RV(plan)) for this LUN, and C(linux_lun), the LUN number the kernel uses.
  returned: always
  type: list
  elements: dict
  sample: [{"lun": "3", "linux_lun": 3, "state": "attached", "hctl": ["2:0:0:3", "3:0:0:3"], "devices": [],
            "paths": [{"hctl": "2:0:0:3", "device": "sdc", "rport": "rport-2:0-0", "initiator": "0x2000525400fc0001",
                       "target": "0x2000525400fc0003", "port_state": "Online"}],
            "wwid": "36001405a1b2c3d4e5f60718293a4b5c6", "size_bytes": 67108864, "dm": null,
            "by_id": "/dev/disk/by-id/dm-uuid-mpath-36001405a1b2c3d4e5f60718293a4b5c6",
            "removed": {"map": null, "paths": []}, "plan": []}]
fc_paths:
  description:
    - The usable paths to the requested targets, one per I_T nexus - C(host), C(channel), C(target) (the
      SCSI address scanned), C(rport), C(initiator), C(target_wwpn) and C(port_state).
  returned: always
  type: list
  elements: dict
  sample: [{"host": 2, "channel": 0, "target": 0, "rport": "rport-2:0-0", "initiator": "0x2000525400fc0001",
            "target_wwpn": "0x2000525400fc0003", "port_state": "Online"}]
fc_problems:
  description:
    - One sentence per (fc_host, target WWPN) pair that gave no usable path, naming the cause (also when it
      is no failure, an fc_host not zoned to a target without O(initiators)).
  returned: always
  type: list
  elements: str
  sample: ["target 0x2000525400fc0004 is not visible from host3 (0x2000525400fc0002): ..."]
interrupted:
  description:
    - Runs of this module that were killed before this one and left an entry in the lock's journal
      (C(<lock_file>.journal), for the default lock file C(/var/lib/lunsafe-san/lunsafe-san.lock.journal)),
      as in M(lunsafe.san.iscsi_lun_attach) (C(request) names C(targets), C(initiators) and C(luns)).
  returned: always
  type: list
  elements: dict
  sample: []
devices:
  description:
    - One entry per path, as returned by M(lunsafe.san.scsi_targeted_scan).
    - For an attached LUN, C(udev) holds what udev made of the path, read once udev had processed it.
  returned: always
  type: list
  elements: dict
  sample: [{"hctl": "2:0:0:3", "name": "sdc", "path": "/dev/sdc", "wwid": "36001405a1b2c3d4e5f60718293a4b5c6",
            "state": "running", "size_bytes": 67108864, "new": true}]
timings:
  description:
    - Seconds spent in each phase, measured inside the module on the managed node. C(lock) is the wait for
      the host lock, C(resolve) the check of the remote ports right before the scans, C(scan) runs from the
      scan-file writes until every path's block device exists.
    - On failure, C(failed) is the time from the last completed phase to the error (rollback included)
      and C(total) the time to the error.
  returned: always (also on failure, once the options were accepted)
  type: dict
  sample: {"observe": 0.08, "resolve": 0.01, "stale_check": 0.0, "scan": 0.21, "map": 0.35, "total": 0.7}
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
      - {"kind": "command", "what": "multipathd show status", "start": 0.004, "duration": 0.041, "rc": 0}
      - {"kind": "command", "what": "multipathd show paths", "start": 0.05, "duration": 0.038, "rc": 0}
      - kind: wait
        what: block devices
        method: udev-events
        deadline: 60.0
        start: 0.12
        duration: 0.412
        ended: ready
      - {"kind": "command", "what": "multipathd show maps", "start": 0.54, "duration": 0.039, "rc": 0}
lock_lease:
  description:
    - What happened to O(lock_lease) at the end of the run; V(null) when no lease was given or in check mode.
    - V(held) (written or renewed), V(released) (removed).
  returned: always
  type: str
  sample: held
rolled_back:
  description: What a failed attach undid (devices deleted, maps flushed, sessions logged out, records removed).
  returned: always
  type: list
  elements: str
  sample: ["deleted sdc", "deleted sdd"]
hctl:
  description: The SCSI addresses of the LUN's paths (with O(lun); see RV(luns) otherwise).
  returned: always
  type: list
  elements: str
  sample: ["2:0:0:3", "3:0:0:3"]
wwid:
  description:
    - The LUN's WWID in multipath form (with O(lun)).
    - Also on failure when the LUN is attached (an O(expected_wwid) mismatch on a LUN attached before the
      run), the WWID its paths carry (null when they disagree).
  returned: always (null when the LUN is not attached)
  type: str
  sample: 36001405a1b2c3d4e5f60718293a4b5c6
size_bytes:
  description: The LUN's size (with O(lun)).
  returned: always (null when the LUN is not attached)
  type: int
  sample: 67108864
dm:
  description:
    - The multipath map (dm-N, name, uuid, wwid, path, slaves), or null without multipath.
    - C(udev) holds udev's view of the map once it had processed it (C(links) such as
      C(/dev/disk/by-id/dm-uuid-mpath-<wwid>) and C(/dev/mapper/<name>), C(dm_name), C(dm_uuid)), or null
      when udevd does not run.
  returned: always
  type: dict
  sample: {"dm": "dm-0", "name": "mpatha", "uuid": "mpath-36001405a1b2c3d4e5f60718293a4b5c6",
           "path": "/dev/mapper/mpatha", "slaves": ["sdc", "sdd"]}
by_id:
  description:
    - The stable /dev/disk/by-id path of the LUN (the map's when multipath is used; with O(lun)).
    - Also on failure when the LUN is attached (see RV(wwid)); null after a detach.
  returned: always (null when the LUN is not attached)
  type: str
  sample: /dev/disk/by-id/dm-uuid-mpath-36001405a1b2c3d4e5f60718293a4b5c6
scanned:
  description:
    - The exact sysfs writes done (or, in check mode, that would be done) - scan-file writes (C(kind=scan)).
    - For a device of a requested LUN at a usable path that the SCSI layer had set C(offline) (error handling
      gave up on it while its path was down; the kernel never brings it back by itself), V(running) to its
      C(state) (C(kind=state)) and a C(rescan) (C(kind=rescan)), with a warning; the identity checks then read
      the LU again.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "scan", "host": 2, "path": "/sys/class/scsi_host/host2/scan", "line": "0 0 3", "hctl": "2:0:0:3"}]
wait_method:
  description:
    - How the waits for block devices and maps were done. V(udev-events) when a wait of this run lasted over
      1.5 seconds, pyudev imports on the managed node, udevd runs and a netlink monitor of its events could be
      opened (waits poll udev's database every 0.1 s for the first 1.5 s of the run's waits, then the monitor
      opens and the wait checks again at once, so no event is missed); V(sysfs-poll) otherwise, also when every
      wait ended within that time (pyudev is then not imported at all). Either way a wait ends once udev has
      processed every new device and map, and keeps its deadline.
  returned: always
  type: str
  sample: udev-events
wait_method_reason:
  description: Why RV(wait_method) was chosen (for example that pyudev is not installed), and the source used.
  returned: always
  type: str
  sample: "pyudev 0.24.0: a netlink monitor of block, scsi events"
multipath_actions:
  description: Commands needed to make multipathd build the map (empty when it did so by itself).
  returned: always
  type: list
  elements: str
  sample: []
plan:
  description: With O(state=absent), the ordered removal steps (in check mode, the steps that would run; with O(lun)).
  returned: always (empty when nothing is to be removed)
  type: list
  elements: dict
  sample: [{"action": "flush_map", "target": "mpatha"}, {"action": "delete_path", "target": "sdc", "hctl": "2:0:0:3"}]
failed_luns:
  description:
    - The LUNs (as given) whose entry in RV(luns) has C(state=failed), each with its C(msg); empty when none
      failed. A whole detach refused for a LUN in use names it in the message, not here; one refused for its
      identity (O(expected_wwid)) is here.
  returned: always
  type: list
  elements: str
  sample: ["2"]
paths:
  description:
    - With O(lun), when the LUN's identity check failed on attach, what each path showed (C(hctl), C(name),
      C(wwid), C(size_bytes), C(host)); the message names the WWIDs too. With O(luns), see C(msg) of each entry.
  returned: on an identity failure with O(lun)
  type: list
  elements: dict
  sample: [{"hctl": "2:0:0:3", "name": "sdc", "wwid": "36001405a1b2c3d4e5f60718293a4b5c6",
            "size_bytes": 67108864, "host": 2}]
refusals:
  description: With O(state=absent), each reason the detach was refused (identity refusals first).
  returned: when a detach was refused
  type: list
  elements: str
  sample: ["LUN 3: dm-0 mounted on /srv"]
stale:
  description:
    - Devices at the LUN's address that carry another LU's identity (C(hctl), C(name), C(wwid) the kernel
      recorded, C(now) the WWID the LU answers with, C(reasons)), when the attach refused them.
  returned: when a stale device was refused
  type: list
  elements: dict
  sample: [{"hctl": "2:0:0:2", "name": "sdc", "wwid": "36001405aaaa", "now": "36001405bbbb",
            "reasons": ["the LU now answers with WWID 36001405bbbb, the kernel recorded 36001405aaaa"]}]
removed:
  description: With O(state=absent), the map and paths removed (with O(lun)).
  returned: always
  type: dict
  sample: {"map": "mpatha", "paths": ["sdc", "sdd"]}
"""

from typing import Any, Callable, Dict

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lunsafe.san.plugins.module_utils import _attach as procedure
from ansible_collections.lunsafe.san.plugins.module_utils import _attach_module as glue
from ansible_collections.lunsafe.san.plugins.module_utils import _transport_fc as transport
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host, system_host
from ansible_collections.lunsafe.san.plugins.module_utils._lock import LOCK_ARGUMENT_SPEC
from ansible_collections.lunsafe.san.plugins.module_utils._persist import DEFAULT_STATE_FILE
from ansible_collections.lunsafe.san.plugins.module_utils._runner import Runner

ARGUMENT_SPEC: Dict[str, Any] = dict(
    targets=dict(type="list", elements="str", required=True),
    initiators=dict(type="list", elements="str"),
    lun=dict(type="str"),
    luns=dict(type="list", elements="raw"),
    lun_addressing=dict(type="str", default="peripheral", choices=["peripheral", "transparent", "sam2", "sam3_flat"]),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    multipath=dict(type="bool", default=True),
    expected_wwid=dict(type="str"),
    stale_device=dict(type="str", default="fail", choices=["fail", "replace"]),
    timeout=dict(type="float", default=60),
    force=dict(type="bool", default=False),
    keep_going=dict(type="bool", default=False),
    persist=dict(type="bool", default=False),
    **LOCK_ARGUMENT_SPEC,
)


def main(make_host: Callable[[Runner], Host] = system_host, state_file: str = DEFAULT_STATE_FILE) -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("lun", "luns"), ("expected_wwid", "luns")],
        required_one_of=[("lun", "luns")],
        supports_check_mode=True,
    )
    params = module.params
    runner = Runner(module, default_timeout=60)
    glue.run(
        module,
        make_host(runner),
        runner,
        name=transport.MODULE,
        build=lambda: procedure.common_request(params, parse_transport=lambda: transport.parse(params)),
        empty_result=transport.empty_result,
        state_file=state_file,
    )


if __name__ == "__main__":
    main()
