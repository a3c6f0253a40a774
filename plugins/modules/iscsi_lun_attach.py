#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: iscsi_lun_attach
short_description: Attach or detach iSCSI LUNs by scanning exactly those LUNs
version_added: 0.1.0
description:
  - Attaches one or several LUNs of an iSCSI target on every requested portal without ever scanning the
    whole session, so a LUN that another run is detaching at the same time cannot come back.
  - All LUNs of one call are handled under one host lock, with one read of the host, one targeted scan
    write per LUN and session, and one wait for every block device and multipath map.
  - With O(state=present) it ensures a node record per portal with C(node.session.scan=manual) written
    before any login (and re-applied after discovery), sets CHAP, logs in where no session exists, writes
    C(C T L) for each LUN to each session's SCSI host scan file, waits for the block devices and, with
    O(multipath=true), for the multipath map holding all of them, and checks each LUN's identity across
    all of its paths (same WWID and size on every path, paths on distinct SCSI hosts, O(expected_wwid)).
  - A path is (portal, target, LUN). Arrays that present one target name per controller port are attached
    with a target per portal (see O(portals)); identity checks, the map wait and the rollback span every
    path of the LUN whatever target name it goes through.
  - A device already present at the LUN's address that carries another LU's identity (the array reused
    the LUN number) is never used; the module fails naming it, unless O(stale_device=replace) and the
    device is neither held nor open.
  - With O(state=absent) it checks every requested LUN first (mounted, held, open or blocked paths refuse
    the whole call, nothing changed, unless O(force)), then flushes each LUN's multipath map and deletes its
    paths in that order, and logs a session out only when no other LUN of that session remains (each
    session kept for another LUN is named in RV(sessions_kept); with a warning when that is a device without a
    block device or one of this call's LUNs that could not be removed). A map that
    only udev has open (a worker's blkid, or C(kpartx) from the multipath rules, run for the change event that
    the last writer's close raises) is observed again for up to 10 seconds (at most O(timeout)) before that
    counts as open.
  - "Identity on detach: a LUN given with O(expected_wwid) (or C(expected_wwid) of its O(luns) entry) whose
    paths carry another WWID than the kernel reports for it, or whose paths carry different WWIDs among
    themselves (with or without O(expected_wwid)), refuses the whole call before anything is changed, also in
    check mode: no flush, no delete, no logout, no node record change, no journal entry. The message names
    the LUN, the expected WWID and the one found with the paths (H:C:T:L and sdX) that carry it: the array
    may have reused the LUN number for another LU. Neither O(force) nor O(keep_going) overrides it (they are
    about devices in use). A LUN with no path at all has nothing to check or remove and is reported V(absent)."
  - "Rollback: a LUN that fails (wrong identity, no block device or map before O(timeout)) is rolled back
    alone: the devices (and a map multipathd built for them) that this run created for it are removed, and
    the module fails naming it. LUNs that passed stay attached and are reported, because they are complete
    and verified and a re-run converges; sessions, node records and discovery records this run created are
    removed only when no requested LUN is left attached. An error before the LUNs are scanned (login,
    sessions) rolls back everything this run created."
  - "Interrupted runs: while it changes the host, a run keeps an entry in the lock's journal
    (C(<lock_file>.journal); for the default lock file C(/var/lib/lunsafe-san/lunsafe-san.lock.journal), on disk, so
    that a reboot or a power cut does not lose it) naming its request and each write just before it makes it, and
    removes the entry when it ends, also on a failure it rolled back. A run that is killed (SIGKILL, a task timeout,
    the OOM killer, a reboot, a power cut) leaves its entry; the next run reads it under the lock and reports it in
    RV(interrupted), with a warning. An attach whose request covers the killed one (same targets, at least its LUNs)
    adopts what it left and reports C(changed=true); a detach that covers it removes it; any other run leaves it
    alone and keeps warning until a covering run succeeds. Entries from before the last reboot (a run cut off by a
    reboot or a power cut) are reported once, with the node records they had created (which the reboot kept), and
    dropped."
author: lunsafe.san developers (@lunsafe)
requirements:
  - iscsiadm (open-iscsi) with C(node.session.scan) support (2.0.874 or later)
  - multipath and multipathd (multipath-tools) when O(multipath=true)
  - C(/proc) mounted (each command's deadline is enforced by signalling it and its children, found there)
extends_documentation_fragment:
  - lunsafe.san._attributes
  - lunsafe.san._attributes.LOCK
attributes:
  check_mode:
    support: full
    details:
      - Nothing is written in check mode, not even node records or sysfs; the result says what would be done.
  diff_mode:
    support: full
    details:
      - The diff shows the LUN's SCSI devices before and after.
  idempotent:
    support: full
options:
  target:
    description:
      - iSCSI name of the target (IQN, EUI or NAA form, RFC 3720) for every portal of O(portals).
      - Leave it out when each entry of O(portals) names its own target.
    type: str
  portals:
    description:
      - "Portals to log in through, one session each. An entry is V(address), V(address:port),
        V([ipv6]:port) or a host name, or a dict C({portal: ADDRESS[:PORT], target: IQN}) for arrays that
        present one target name per controller port (like os-brick's C(target_portals)/C(target_iqns))."
      - "Port policy (every module of this collection): a portal without a port is port 3260.
        V(192.0.2.10) never matches a session on V(192.0.2.10:3261)."
      - "A host name stands for every address it resolves to on the managed host (C(getaddrinfo), TCP): each
        address is a portal of its own (V(localhost) is usually V(127.0.0.1:3260) and V([::1]:3260)). A name
        that does not resolve fails before anything is changed."
      - The same portal given twice (V(192.0.2.10) and V(192.0.2.10:3260), or a name and one of its
        addresses) is used once, with a warning; with two different targets it is refused.
    type: list
    elements: raw
    required: true
  lun:
    description:
      - The LUN number as the array presents it. See O(lun_addressing) for LUNs above 255.
      - A decimal or C(0x) hexadecimal number; never a wildcard.
      - Exactly one of O(lun) and O(luns) is required. With O(lun) the result keeps the single-LUN shape
        (RV(hctl), RV(devices), RV(wwid), RV(dm), ... at the top level).
    type: str
  luns:
    description:
      - "Several LUNs of the target, attached or detached in one call under one lock. Each entry is a LUN
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
  iface:
    description: The open-iscsi interface (C(-I)) to use; the default interface when omitted.
    type: str
  discover:
    description:
      - Run SendTargets discovery on each portal first. Discovery only adds node records here; it never
        resets or deletes existing ones, and an existing discovery record keeps its settings.
      - Discovery adds a record for every portal the target reports, not only the requested ones; the
        records it adds get C(node.session.scan=manual) too (see RV(discovered)), and they are removed
        again, with the discovery records this run created, when the attach fails.
    type: bool
    default: false
  chap_username:
    description: CHAP user name the initiator presents to the target.
    type: str
  chap_password:
    description: CHAP secret for O(chap_username).
    type: str
  chap_username_in:
    description: The target's user name for mutual CHAP.
    type: str
  chap_password_in:
    description: The target's secret for mutual CHAP.
    type: str
  discovery_chap_username:
    description: CHAP user name for SendTargets discovery (O(discover=true)).
    type: str
  discovery_chap_password:
    description: CHAP secret for discovery.
    type: str
  node_startup:
    description:
      - C(node.startup) of the node records. With V(automatic) iscsid logs in at boot, but with manual scan
        it attaches no LUN then; run this module again after boot to scan the LUN.
      - When omitted, a record this module creates gets V(manual), and a record that exists keeps its own
        value.
      - A record that exists (created by os-brick, an operator or another tool) keeps its settings. Only
        C(node.session.scan=manual), the CHAP settings given and an explicit O(node_startup) are written
        to it, and RV(nodes) lists each key written. Records this module creates also get few initial login
        retries and a login timeout from O(login_timeout), so that an unreachable portal fails fast.
    type: str
    choices: [manual, automatic]
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
        attached before the run is left as it was, and its result entry says what is attached (RV(wwid),
        RV(dm), RV(by_id) as observed).
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
      - Seconds to wait for logged-in sessions, for the block devices and for the multipath maps (each
        wait has this deadline), and for a path to leave sysfs on detach.
      - A requested portal whose session stays in recovery fails the attach after this time, naming the
        portal and the session.
    type: float
    default: 60
  login_timeout:
    description:
      - Seconds one login may take. iscsid is also told to retry an initial login only twice, so an
        unreachable portal fails fast instead of after two minutes.
      - The logins to all portals without a session run at once (at most 8 at a time), each with its own
        deadline, so a portal that does not answer costs this timeout once, not before each next portal. The
        node records (manual scan) are all written before the first login. When a login fails, the run waits
        for the others to end, fails naming the first failed portal in the order of O(portals) (any other
        failed portal is a warning) and logs out of the sessions it created. The logouts of O(state=absent)
        run at once in the same way.
      - A failed login asks the portal which targets it offers (SendTargets, nothing stored), so an unknown
        target name is told apart from an unreachable portal.
    type: float
    default: 30
  remove_node:
    description: With O(state=absent), delete the node records of the sessions that were logged out.
    type: bool
    default: true
  logout:
    description:
      - With O(state=absent), log out of each requested portal whose session carries no other LUN (and,
        with O(remove_node=true), delete its node record).
      - V(false) keeps the sessions. The C(lunsafe.san.lun_detach) role uses this; the paths are removed
        first, the array unmaps the LUN, and only after the role checked that nothing came back does a
        second call log out.
    type: bool
    default: true
  force:
    description:
      - With O(state=absent), remove the LUN's map and paths even when they are mounted, held or open.
        This can lose data that was not written yet.
      - It does not override the identity check of O(expected_wwid). A LUN that carries another WWID is
        never removed by its number.
    type: bool
    default: false
  keep_going:
    description:
      - For cleaning up after a disaster (a dead array, a host that lost its paths), like os-brick's
        C(ignore_errors) detach. With O(state=absent) and O(force=true) only.
      - A LUN whose map cannot be flushed, or a path that cannot be deleted, does not stop the run. The
        module goes on with the LUN's other paths and the other LUNs, then fails at the end, naming each
        failure (C(msg) of each entry in RV(luns), and RV(failed_luns)). What could be removed is gone, and
        C(removed) of the entry says what. A session that still carries one of these LUNs' devices is not
        logged out.
      - The risk is the one of O(force) times every LUN given. Devices in use are removed, and a map that
        queues I/O loses it. Without O(keep_going), a detach stops at the first failure.
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
      - The record names the paths (each portal with its target name and the interface), the LUN and its
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
  - module: lunsafe.san.scsi_targeted_scan
  - module: lunsafe.san.multipath_faulty_facts
  - module: lunsafe.san.multipath_flush
"""

EXAMPLES = r"""
- name: Attach LUN 3 of the array on two portals, expecting its WWID
  lunsafe.san.iscsi_lun_attach:
    target: iqn.2003-01.org.example:array
    portals: [192.0.2.10, 192.0.2.11]
    lun: 3
    expected_wwid: 36001405a1b2c3d4e5f60718293a4b5c6
    chap_username: host1
    chap_password: "{{ vault_chap_secret }}"
  register: lun3

- name: Use the multipath device
  ansible.builtin.debug:
    msg: "{{ lun3.dm.path }} ({{ lun3.by_id }})"

- name: Attach four LUNs of a hypervisor's guests in one call (one lock, one scan per LUN and session)
  lunsafe.san.iscsi_lun_attach:
    target: iqn.2003-01.org.example:array
    portals: [192.0.2.10, 192.0.2.11]
    luns: [10, 11, 12, {lun: 13, expected_wwid: 36001405feedfacefeedfacefeedface0}]
  register: guests

- name: Show each LUN's multipath device
  ansible.builtin.debug:
    msg: "{{ guests.luns | map(attribute='dm') | map(attribute='path') | list }}"

- name: An array that presents one target name per controller port
  lunsafe.san.iscsi_lun_attach:
    portals:
      - {portal: 192.0.2.10, target: "iqn.2003-01.org.example:array.ctl-a"}
      - {portal: 192.0.2.11, target: "iqn.2003-01.org.example:array.ctl-b"}
    lun: 5

- name: Detach LUN 3 (refuses while it is mounted or held)
  lunsafe.san.iscsi_lun_attach:
    target: iqn.2003-01.org.example:array
    portals: [192.0.2.10, 192.0.2.11]
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
           "recorded": [{"transport": "iscsi", "module": "iscsi_lun_attach",
                         "targets": ["iqn.2003-01.org.example:array"],
                         "paths": {"transport": "iscsi", "iface": null,
                                   "portals": [{"portal": "192.0.2.10:3260",
                                                "target": "iqn.2003-01.org.example:array"}]},
                         "lun": "3", "lun_addressing": "peripheral", "linux_lun": 3,
                         "wwid": "36001405a1b2c3d4e5f60718293a4b5c6", "multipath": true,
                         "recorded": "2026-12-05T17:20:00+00:00"}]}
lock_lease:
  description:
    - What happened to O(lock_lease) at the end of the run; V(null) when no lease was given or in check mode.
    - V(held) (written or renewed), V(released) (removed).
  returned: always
  type: str
  sample: held
sessions:
  description: The iSCSI sessions to the target through the requested portals after the run.
  returned: always
  type: list
  elements: dict
  sample: [{"sid": 1, "host": 2, "target": "iqn.2003-01.org.example:array", "portal": "192.0.2.10:3260",
            "state": "LOGGED_IN", "iface": "default"}]
luns:
  description:
    - One entry per requested LUN, in the order given (also with O(lun), and also on failure).
    - C(state) is V(attached), V(absent) (nothing there; also the check-mode prediction for a LUN not yet
      attached), V(detached) (removed by this run) or V(failed); C(msg) says why a LUN failed.
    - The other keys are those of the single-LUN result (RV(hctl), RV(devices), RV(wwid), RV(size_bytes),
      RV(dm), RV(by_id), RV(removed), RV(plan)) for this LUN, and C(linux_lun), the LUN number the kernel uses.
  returned: always
  type: list
  elements: dict
  sample: [{"lun": "3", "linux_lun": 3, "state": "attached", "hctl": ["2:0:0:3", "3:0:0:3"], "devices": [],
            "wwid": "36001405a1b2c3d4e5f60718293a4b5c6", "size_bytes": 67108864, "dm": null,
            "by_id": "/dev/disk/by-id/dm-uuid-mpath-36001405a1b2c3d4e5f60718293a4b5c6",
            "removed": {"map": null, "paths": []}, "plan": []}]
rolled_back:
  description: What a failed attach undid (devices deleted, maps flushed, sessions logged out, records removed).
  returned: always
  type: list
  elements: str
  sample: ["deleted sdc", "deleted sdd"]
interrupted:
  description:
    - Runs of this module that were killed before this one and left an entry in the lock's journal
      (C(<lock_file>.journal), for the default lock file C(/var/lib/lunsafe-san/lunsafe-san.lock.journal)),
      each with what it was asked (C(request)), the writes it had started, in order (C(done)), and
      C(resolution).
    - C(resolution) is V(adopted) (this attach covers that request, completed it and reports what it left
      as its own change), V(removed) (this detach covers it and removed what it left), V(left) (this run
      does not cover it, or failed, and left it alone; the entry stays and each run warns about it) or
      V(gone) (it ran before the last reboot; reported once, then dropped).
    - In check mode, the resolution a real run would give; the journal is not changed.
  returned: always
  type: list
  elements: dict
  sample: [{"module": "iscsi_lun_attach", "op": "attach", "pid": 4242, "started": "2026-12-02T13:40:07+00:00",
            "request": {"state": "present", "targets": ["iqn.2003-01.org.example:array"],
                        "portals": ["192.0.2.10:3260", "192.0.2.11:3260"], "luns": [3]},
            "done": ["node record 192.0.2.10:3260 (iqn.2003-01.org.example:array): create",
                     "login 192.0.2.10:3260 (iqn.2003-01.org.example:array)"],
            "resolution": "adopted"}]
hctl:
  description: The SCSI addresses of the LUN's paths (with O(lun); see RV(luns) otherwise).
  returned: always
  type: list
  elements: str
  sample: ["2:0:0:3", "3:0:0:3"]
devices:
  description:
    - One entry per path, as returned by M(lunsafe.san.scsi_targeted_scan).
    - For an attached LUN, C(udev) holds what udev made of the path (C(links), C(id_wwn), C(id_serial),
      C(id_path)), read once udev had processed it; see RV(wait_method).
  returned: always
  type: list
  elements: dict
  sample: [{"hctl": "2:0:0:3", "name": "sdc", "path": "/dev/sdc", "wwid": "36001405a1b2c3d4e5f60718293a4b5c6",
            "state": "running", "size_bytes": 67108864, "new": true}]
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
nodes:
  description: Node record changes (created, names of updated keys; never secret values).
  returned: always
  type: list
  elements: dict
  sample: [{"target": "iqn.2003-01.org.example:array", "portal": "192.0.2.10:3260", "create": true,
            "update_keys": ["node.session.scan", "node.startup"]}]
logged_in:
  description: Portals this run logged in to.
  returned: always
  type: list
  elements: str
  sample: ["192.0.2.10:3260"]
logged_out:
  description: Portals this run logged out of (O(state=absent)).
  returned: always
  type: list
  elements: str
  sample: []
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
timings:
  description:
    - Seconds spent in each phase, measured inside the module on the managed node (Ansible's own
      connection and start-up time are not included). C(lock) is the wait for the host lock (or for another
      procedure's O(lock_lease)); C(scan) runs from the scan-file writes until every path's block device
      exists.
    - On failure, C(failed) is the time from the last completed phase to the error (rollback included)
      and C(total) the time to the error. A run that could not take the lock (or waited out another
      procedure's lease) returns C(lock) and C(total), the time it waited.
  returned: always (also on failure, once the options were accepted)
  type: dict
  sample: {"observe": 0.08, "login": 0.61, "stale_check": 0.0, "scan": 0.21, "map": 0.35, "total": 1.25}
profile:
  description:
    - Where this run spent its time on the managed node, in order. Every external command it ran is a
      C(command) step named by its tool and the words that say what it does (V(iscsiadm -m session),
      V(multipathd show paths), V(multipath -f)), never by targets, devices or secrets; every wait is a
      C(wait) step with what it waited for, how its polls were woken (C(method), V(udev-events) or
      V(sysfs-poll)), its C(deadline) and what ended it (C(ended), V(ready), V(deadline) or V(error)).
    - C(start) is the offset in seconds from the start of the module, C(duration) the seconds the step took
      (3 decimals), C(rc) the command's return code (124 or 137 when it was killed at its deadline).
    - C(commands) and C(waits) count every step, C(command_seconds) and C(wait_seconds) add up their
      durations; C(steps) lists at most the first 300 and C(dropped) says how many were left out.
    - On failure, the steps up to the failure (rollback included).
  returned: always (also on failure)
  type: dict
  contains:
    commands:
      description: Number of external commands run.
      type: int
      returned: always
    waits:
      description: Number of waits.
      type: int
      returned: always
    command_seconds:
      description: Seconds spent in external commands.
      type: float
      returned: always
    wait_seconds:
      description: Seconds spent waiting (for block devices, maps, sessions, udev).
      type: float
      returned: always
    dropped:
      description: Steps counted but not listed (beyond the first 300).
      type: int
      returned: always
    steps:
      description: The commands and waits in the order they ended (C(start) says when each began).
      type: list
      elements: dict
      returned: always
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
discovered:
  description:
    - With O(discover=true), the node records (target and portal) discovery added in this run, of every
      target the portals reported; each got C(node.session.scan=manual). Adding any makes the run changed.
  returned: always (empty without O(discover=true) and in check mode)
  type: list
  elements: dict
  sample: [{"target": "iqn.2003-01.org.example:array", "portal": "[fd00::10]:3260"}]
plan:
  description: With O(state=absent), the ordered removal steps (in check mode, the steps that would run; with O(lun)).
  returned: always (empty when nothing is to be removed)
  type: list
  elements: dict
  sample: [{"action": "flush_map", "target": "mpatha"}, {"action": "delete_path", "target": "sdc", "hctl": "2:0:0:3"}]
nodes_removed:
  description: With O(state=absent) and O(remove_node=true), the portals whose node records were deleted.
  returned: always
  type: list
  elements: str
  sample: ["192.0.2.10:3260"]
failed_luns:
  description:
    - The LUNs (as given) whose entry in RV(luns) has C(state=failed), each with its C(msg); empty when none
      failed. A whole detach refused for a LUN in use names it in the message, not here; one refused for its
      identity (O(expected_wwid)) is here.
  returned: always
  type: list
  elements: str
  sample: ["2"]
sessions_kept:
  description:
    - With O(state=absent) and O(logout=true), one entry per requested path whose sessions stay logged in
      because they still carry another LUN, or one of this call's LUNs that could not be removed (with
      O(keep_going)). A session kept for a SCSI device without a block device (a controller LUN a global rescan
      brought in) or for one of this call's LUNs also gives a warning; another attached LUN, the normal reason,
      does not. In check mode, the sessions that would be kept.
    - C(carries) names each such LUN, C(hctl), C(device) (sdX, or null for a SCSI device without a block
      device, such as a controller LUN 0 a global rescan brought in), C(lun), C(wwid) and C(ours) (one of
      this call's LUNs, not removed).
  returned: always
  type: list
  elements: dict
  sample: [{"portal": "192.0.2.10:3260", "target": "iqn.2003-01.org.example:array", "sids": [1],
            "carries": [{"hctl": "2:0:0:0", "device": null, "lun": 0, "wwid": null, "ours": false}]}]
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
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host, system_host
from ansible_collections.lunsafe.san.plugins.module_utils._lock import LOCK_ARGUMENT_SPEC
from ansible_collections.lunsafe.san.plugins.module_utils._persist import DEFAULT_STATE_FILE
from ansible_collections.lunsafe.san.plugins.module_utils._runner import Runner

ARGUMENT_SPEC: Dict[str, Any] = dict(
    target=dict(type="str"),
    portals=dict(type="list", elements="raw", required=True),
    lun=dict(type="str"),
    luns=dict(type="list", elements="raw"),
    lun_addressing=dict(type="str", default="peripheral", choices=["peripheral", "transparent", "sam2", "sam3_flat"]),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    iface=dict(type="str"),
    discover=dict(type="bool", default=False),
    chap_username=dict(type="str"),
    chap_password=dict(type="str", no_log=True),
    chap_username_in=dict(type="str"),
    chap_password_in=dict(type="str", no_log=True),
    discovery_chap_username=dict(type="str"),
    discovery_chap_password=dict(type="str", no_log=True),
    node_startup=dict(type="str", choices=["manual", "automatic"]),
    multipath=dict(type="bool", default=True),
    expected_wwid=dict(type="str"),
    stale_device=dict(type="str", default="fail", choices=["fail", "replace"]),
    timeout=dict(type="float", default=60),
    login_timeout=dict(type="float", default=30),
    remove_node=dict(type="bool", default=True),
    force=dict(type="bool", default=False),
    keep_going=dict(type="bool", default=False),
    logout=dict(type="bool", default=True),
    persist=dict(type="bool", default=False),
    **LOCK_ARGUMENT_SPEC,
)


def main(make_host: Callable[[Runner], Host] = system_host, state_file: str = DEFAULT_STATE_FILE) -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("lun", "luns"), ("expected_wwid", "luns")],
        required_one_of=[("lun", "luns")],
        required_together=[
            ("chap_username", "chap_password"),
            ("chap_username_in", "chap_password_in"),
            ("discovery_chap_username", "discovery_chap_password"),
        ],
        required_by={"chap_username_in": "chap_username"},
        supports_check_mode=True,
    )
    params = module.params
    runner = Runner(module, default_timeout=60)
    host = make_host(runner)
    glue.run(
        module,
        host,
        runner,
        name="iscsi_lun_attach",
        build=lambda: procedure.build_request(params, resolver=host.resolver),
        empty_result=procedure.empty_result,
        state_file=state_file,
    )


if __name__ == "__main__":
    main()
