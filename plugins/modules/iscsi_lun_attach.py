#!/usr/bin/python
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: iscsi_lun_attach
short_description: Attach or detach one iSCSI LUN by scanning exactly that LUN
version_added: 0.1.0
description:
  - Attaches one LUN of an iSCSI target on every requested portal without ever scanning the whole
    session, so a LUN that another run is detaching at the same time cannot come back.
  - With O(state=present) it ensures a node record per portal with C(node.session.scan=manual) written
    before any login (and re-applied after discovery), sets CHAP, logs in where no session exists, writes
    C(C T L) for this LUN to each session's SCSI host scan file, waits for the block devices and, with
    O(multipath=true), for the multipath map holding all of them, and checks the LUN's identity (same WWID
    and size on every path, paths on distinct SCSI hosts, O(expected_wwid)).
  - A device already present at the LUN's address that carries another LU's identity (the array reused
    the LUN number) is never used; the module fails naming it, unless O(stale_device=replace) and the
    device is neither held nor open.
  - With O(state=absent) it flushes the LUN's multipath map, deletes its paths in that order, and logs a
    session out only when no other LUN of that session remains.
  - If a step of an attach fails, what this run created (devices, sessions, node records) is removed
    again, so the host is left as it was.
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
    description: iSCSI name of the target (IQN, EUI or NAA form).
    type: str
    required: true
  portals:
    description:
      - Portals to log in through, one session each; V(address), V(address:port), V([ipv6]:port) or a host name.
      - The default port is 3260.
    type: list
    elements: str
    required: true
  lun:
    description:
      - The LUN number as the array presents it. See O(lun_addressing) for LUNs above 255.
      - A decimal or C(0x) hexadecimal number; never a wildcard.
    type: str
    required: true
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
    type: str
    choices: [manual, automatic]
    default: manual
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
      - The attach fails, and removes what it created, when the LUN carries another WWID.
    type: str
  stale_device:
    description:
      - What to do with a device already at this LUN's address that carries another LU's identity.
      - V(fail) refuses. V(replace) deletes it (only when nothing holds or opens it) and scans the LUN again.
    type: str
    choices: [fail, replace]
    default: fail
  timeout:
    description: Seconds to wait for sessions, block devices and the multipath map.
    type: int
    default: 60
  login_timeout:
    description:
      - Seconds one login may take. iscsid is also told to retry an initial login only twice, so an
        unreachable portal fails fast instead of after two minutes.
    type: int
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

- name: Detach LUN 3 (refuses while it is mounted or held)
  lunsafe.san.iscsi_lun_attach:
    target: iqn.2003-01.org.example:array
    portals: [192.0.2.10, 192.0.2.11]
    lun: 3
    state: absent
"""

RETURN = r"""
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
hctl:
  description: The SCSI addresses of the LUN's paths.
  returned: always
  type: list
  elements: str
  sample: ["2:0:0:3", "3:0:0:3"]
devices:
  description: One entry per path, as returned by M(lunsafe.san.scsi_targeted_scan).
  returned: always
  type: list
  elements: dict
  sample: [{"hctl": "2:0:0:3", "name": "sdc", "path": "/dev/sdc", "wwid": "36001405a1b2c3d4e5f60718293a4b5c6",
            "state": "running", "size_bytes": 67108864, "new": true}]
wwid:
  description: The LUN's WWID in multipath form.
  returned: when the LUN is attached
  type: str
  sample: 36001405a1b2c3d4e5f60718293a4b5c6
size_bytes:
  description: The LUN's size.
  returned: when the LUN is attached
  type: int
  sample: 67108864
dm:
  description: The multipath map (dm-N, name, uuid, wwid, path, slaves), or null without multipath.
  returned: always
  type: dict
  sample: {"dm": "dm-0", "name": "mpatha", "uuid": "mpath-36001405a1b2c3d4e5f60718293a4b5c6",
           "path": "/dev/mapper/mpatha", "slaves": ["sdc", "sdd"]}
by_id:
  description: The stable /dev/disk/by-id path of the LUN (the map's when multipath is used).
  returned: when the LUN is attached
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
  description: The exact sysfs scan-file writes done (or, in check mode, that would be done).
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "scan", "host": 2, "path": "/sys/class/scsi_host/host2/scan", "line": "0 0 3", "hctl": "2:0:0:3"}]
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
      and C(total) the time to the error.
  returned: always (also on failure, once the options were accepted)
  type: dict
  sample: {"observe": 0.08, "login": 0.61, "stale_check": 0.0, "scan": 0.21, "map": 0.35, "total": 1.25}
discovered:
  description: With O(discover=true), the portals of the target whose node records discovery added in this run.
  returned: when O(discover=true) and not in check mode
  type: list
  elements: str
  sample: ["192.0.2.10:3260", "[fd00::10]:3260"]
plan:
  description: With O(state=absent), the ordered removal steps (in check mode, the steps that would run).
  returned: when O(state=absent) and the LUN has paths
  type: list
  elements: dict
  sample: [{"action": "flush_map", "target": "mpatha"}, {"action": "delete_path", "target": "sdc", "hctl": "2:0:0:3"}]
nodes_removed:
  description: With O(state=absent) and O(remove_node=true), the portals whose node records were deleted.
  returned: when O(state=absent)
  type: list
  elements: str
  sample: ["192.0.2.10:3260"]
removed:
  description: With O(state=absent), the map and paths removed.
  returned: always
  type: dict
  sample: {"map": "mpatha", "paths": ["sdc", "sdd"]}
"""

import os
import time
import traceback
from typing import Any, Dict, List, Optional, Sequence

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lunsafe.san.plugins.module_utils import _attach as attach
from ansible_collections.lunsafe.san.plugins.module_utils import _flush as flush
from ansible_collections.lunsafe.san.plugins.module_utils import _iscsiadm as iscsiadm
from ansible_collections.lunsafe.san.plugins.module_utils import _login as login_utils
from ansible_collections.lunsafe.san.plugins.module_utils import _multipath as multipath
from ansible_collections.lunsafe.san.plugins.module_utils import _scan as scan
from ansible_collections.lunsafe.san.plugins.module_utils._errors import DaemonUnavailable, LunsafeError, ToolError
from ansible_collections.lunsafe.san.plugins.module_utils._hctl import HctlError, linux_lun, parse_lun_token
from ansible_collections.lunsafe.san.plugins.module_utils._lock import LOCK_ARGUMENT_SPEC, lock_from_params
from ansible_collections.lunsafe.san.plugins.module_utils._runner import Runner
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import (
    DEFAULT_SYSFS_ROOT,
    Snapshot,
    parse_portal,
    read_snapshot,
    scsi_device_delete_path,
)
from ansible_collections.lunsafe.san.plugins.module_utils._wait import wait_until

SYSFS_ROOT = DEFAULT_SYSFS_ROOT
MOUNTINFO = "/proc/self/mountinfo"


def argument_spec() -> Dict[str, Any]:
    return dict(
        target=dict(type="str", required=True),
        portals=dict(type="list", elements="str", required=True),
        lun=dict(type="str", required=True),
        lun_addressing=dict(
            type="str", default="peripheral", choices=["peripheral", "transparent", "sam2", "sam3_flat"]
        ),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        iface=dict(type="str"),
        discover=dict(type="bool", default=False),
        chap_username=dict(type="str"),
        chap_password=dict(type="str", no_log=True),
        chap_username_in=dict(type="str"),
        chap_password_in=dict(type="str", no_log=True),
        discovery_chap_username=dict(type="str"),
        discovery_chap_password=dict(type="str", no_log=True),
        node_startup=dict(type="str", default="manual", choices=["manual", "automatic"]),
        multipath=dict(type="bool", default=True),
        expected_wwid=dict(type="str"),
        stale_device=dict(type="str", default="fail", choices=["fail", "replace"]),
        timeout=dict(type="int", default=60),
        login_timeout=dict(type="int", default=30),
        remove_node=dict(type="bool", default=True),
        force=dict(type="bool", default=False),
        logout=dict(type="bool", default=True),
        **LOCK_ARGUMENT_SPEC,
    )


class Attach:
    """One run of the module: observe, plan, apply (unless check mode), observe again."""

    def __init__(self, module: AnsibleModule, runner: Runner) -> None:
        p = module.params
        self.module = module
        self.runner = runner
        self.check = module.check_mode
        self.target = iscsiadm.validate_target_name(p["target"])
        self.portals = [iscsiadm.parse_portal(text, option="portals") for text in p["portals"]]
        if not self.portals:
            raise LunsafeError("portals must name at least one portal", option="portals")
        self.sysfs_portals = [parse_portal(portal.for_iscsiadm()) for portal in self.portals]
        try:
            self.array_lun = parse_lun_token(p["lun"])
            self.lun = linux_lun(lun=self.array_lun, addressing=p["lun_addressing"])
        except HctlError as exc:
            raise LunsafeError(f"invalid lun: {exc}", option="lun", value=p["lun"]) from None
        self.iface = p["iface"]
        self.chap = self._chap("chap_username", "chap_password", "chap_username_in", "chap_password_in")
        self.discovery_chap = self._chap("discovery_chap_username", "discovery_chap_password", None, None)
        for chap in (self.chap, self.discovery_chap):
            if chap is not None:
                runner.add_redaction(*chap.secrets())
        self.wanted = login_utils.wanted_node_settings(
            chap=self.chap, startup=p["node_startup"], login_retries=2, login_timeout=p["login_timeout"]
        )
        # what this run created, to undo on failure
        self.created_nodes: List[iscsiadm.Portal] = []
        self.created_discovery: List[iscsiadm.Portal] = []
        self.logged_in: List[iscsiadm.Portal] = []
        self.new_devices: List[str] = []
        self.timings: Dict[str, float] = {}
        self._started = self._last_mark = time.monotonic()
        self.result: Dict[str, Any] = {
            "changed": False,
            "timings": self.timings,
            "sessions": [],
            "hctl": [],
            "devices": [],
            "dm": None,
            "nodes": [],
            "logged_in": [],
            "logged_out": [],
            "scanned": [],
            "multipath_actions": [],
            "removed": {"map": None, "paths": []},
            "lock_lease": None,
        }

    def _chap(
        self, user: str, password: str, user_in: Optional[str], password_in: Optional[str]
    ) -> Optional[login_utils.Chap]:
        p = self.module.params
        if p[user] is None and p[password] is None:
            return None
        if not p[user] or not p[password]:
            raise LunsafeError(f"{user} and {password} go together", option=user)
        mutual_user = p[user_in] if user_in else None
        mutual_password = p[password_in] if password_in else None
        if (mutual_user is None) != (mutual_password is None):
            raise LunsafeError(f"{user_in} and {password_in} go together", option=user_in)
        return login_utils.Chap(
            username=p[user], password=p[password], username_in=mutual_user, password_in=mutual_password
        )

    # -- observe -----------------------------------------------------------------------------------------

    def sessions(self, snapshot: Snapshot) -> List[Any]:
        found: List[Any] = []
        for portal in self.sysfs_portals:
            for session in snapshot.sessions_for(targetname=self.target, portal=portal):
                if session not in found:
                    found.append(session)
        return sorted(found, key=lambda s: s.sid)

    def portals_without_session(self, snapshot: Snapshot) -> List[iscsiadm.Portal]:
        return [
            portal
            for portal, sysfs_portal in zip(self.portals, self.sysfs_portals)
            if not any(s.logged_in for s in snapshot.sessions_for(targetname=self.target, portal=sysfs_portal))
        ]

    # -- present -----------------------------------------------------------------------------------------

    def mark(self, phase: str) -> None:
        """Seconds spent in each phase, measured inside the module (no Ansible transport)."""
        now = time.monotonic()
        self.timings[phase] = round(now - self._last_mark, 3)
        self.timings["total"] = round(now - self._started, 3)
        self._last_mark = now

    def present(self) -> None:
        p = self.module.params
        if p["multipath"]:
            self.preflight_multipathd()
        before = read_snapshot(sysfs_root=SYSFS_ROOT)
        if p["discover"] and not self.check:
            self._discover()
        changes = []
        for portal in self.portals:
            current = login_utils.read_node(self.runner, target=self.target, portal=portal, iface=self.iface)
            changes.append(
                login_utils.plan_node(
                    target=self.target, portal=portal, iface=self.iface, current=current, wanted=self.wanted
                )
            )
        self.result["nodes"] = [c.to_dict() for c in changes if c.changed]
        self.mark("observe")
        missing = self.portals_without_session(before)
        self.result["logged_in"] = [portal.for_iscsiadm() for portal in missing]
        if self.check:
            self.result["changed"] = bool(self.result["nodes"] or missing)
            self._plan_only(before, missing)
            return
        for change in changes:
            if change.changed:
                login_utils.apply_node(self.runner, change)
                if change.create and not any(change.portal.same_as(c) for c in self.created_nodes):
                    self.created_nodes.append(change.portal)
        for portal in missing:
            if login_utils.login(
                self.runner,
                target=self.target,
                portal=portal,
                iface=self.iface,
                timeout=p["login_timeout"] + 10,
                mutual=self.chap is not None and self.chap.username_in is not None,
            ):
                self.logged_in.append(portal)
        snapshot = attach.wait_for_sessions(
            sysfs_root=SYSFS_ROOT, target=self.target, portals=self.sysfs_portals, timeout=p["timeout"]
        )
        self.mark("login")
        sessions = self.sessions(snapshot)
        snapshot = self._handle_stale(snapshot, sessions)
        self.mark("stale_check")
        request = scan.ScanRequest(
            target=self.target,
            portals=tuple(self.sysfs_portals),
            luns=(self.lun,),
            array_luns=(self.array_lun,),
            addressing=p["lun_addressing"],
        )
        plan = scan.plan_scan(request=request, snapshot=snapshot)
        writes = scan.apply_plan(plan=plan, sysfs_root=SYSFS_ROOT)
        self.result["scanned"] = [w.to_dict() for w in writes]
        after, _waited = scan.wait_for_devices(plan=plan, sysfs_root=SYSFS_ROOT, timeout=p["timeout"], scanned=writes)
        self.mark("scan")
        summary = scan.summarize(plan=plan, before=snapshot, after=after)
        self.new_devices = [d["name"] for d in summary["devices"] if d["new"]]
        devices = attach.lun_devices(snapshot=after, sessions=self.sessions(after), lun=self.lun)
        identity = attach.check_identity(
            devices=devices, expected_wwid=p["expected_wwid"], paths_expected=len(self.sessions(after))
        )
        dm_map = None
        if p["multipath"]:
            dm_map, actions = attach.wait_for_map(
                runner=self.runner,
                sysfs_root=SYSFS_ROOT,
                names=[d.name for d in devices if d.name],
                wwid=identity["wwid"],
                timeout=p["timeout"],
            )
            self.result["multipath_actions"] = actions
        self.mark("map")
        final = read_snapshot(sysfs_root=SYSFS_ROOT)
        self._report(before=before, after=final, identity=identity, dm_map=dm_map)
        self.result["changed"] = bool(
            self.result["nodes"] or self.logged_in or self.new_devices or self.result["multipath_actions"]
        )

    def preflight_multipathd(self) -> None:
        """Fail before any change when multipathd does not answer (multipath=true cannot work then).

        ``multipathd show status`` starts a stopped daemon through multipathd.socket when that unit
        is listening, so only a daemon that is really unavailable fails here.
        """
        argv = multipath.show_status()
        try:
            reply = self.runner.run(argv, ok_rcs=multipath.MULTIPATHD_OK_RCS, timeout=15)
            multipath.check_reply(reply.rc, reply.stdout, reply.stderr, cmd=reply.cmd)
        except DaemonUnavailable as exc:
            raise LunsafeError(
                f"{exc.msg}: multipath=true needs it, nothing was changed; start it "
                "(systemctl start multipathd.socket multipathd) or set multipath=false",
                cmd=exc.details.get("cmd"),
                rc=exc.details.get("rc"),
                stderr=exc.details.get("stderr"),
                rc_name="multipathd_unavailable",
            ) from None
        except ToolError as exc:
            raise LunsafeError(
                f"multipathd did not answer `show status` ({exc.msg}): multipath=true needs it, nothing was changed; "
                "check `systemctl status multipathd`",
                cmd=exc.details.get("cmd"),
                rc=exc.details.get("rc"),
                stderr=exc.details.get("stderr"),
                rc_name="multipathd_unavailable",
            ) from None

    def _discover(self) -> None:
        """SendTargets discovery on each portal; records it creates get manual scan and are undone on failure.

        Discovery creates a record for every portal the target reports, not only the requested ones: a
        record left with iscsid.conf's ``node.session.scan = auto`` would scan every LUN on a later login.
        """
        p = self.module.params
        known = login_utils.list_nodes(self.runner)
        had_discovery = login_utils.discovery_records(self.runner)
        for portal in self.portals:
            create = not any(portal.same_as(other) for other in had_discovery)
            if create:
                self.created_discovery.append(portal)
            login_utils.discover(
                self.runner,
                portal=portal,
                iface=self.iface,
                chap=self.discovery_chap,
                timeout=p["login_timeout"],
                create=create,
            )
        new = [
            node
            for node in login_utils.list_nodes(self.runner)
            if node.target == self.target
            and not any(old.target == node.target and old.portal.same_as(node.portal) for old in known)
        ]
        for node in new:
            self.created_nodes.append(node.portal)
            if not any(node.portal.same_as(portal) for portal in self.portals):
                login_utils.apply_node(
                    self.runner,
                    login_utils.NodeChange(
                        target=self.target,
                        portal=node.portal,
                        iface=self.iface,
                        create=False,
                        updates=((login_utils.SCAN_KEY, "manual"),),
                    ),
                )
        self.result["discovered"] = [node.portal.for_iscsiadm() for node in new]

    def _handle_stale(self, snapshot: Snapshot, sessions: List[Any]) -> Snapshot:
        devices = attach.lun_devices(snapshot=snapshot, sessions=sessions, lun=self.lun)
        fresh: Dict[str, Optional[str]] = {}
        scsi_id = next((path for path in attach.SCSI_ID_CANDIDATES if os.access(path, os.X_OK)), None)
        for device in devices:
            if scsi_id is not None and device.name and device.state == "running":
                fresh[device.name] = attach.fresh_wwid(self.runner, name=device.name, scsi_id=scsi_id)
        stale = attach.stale_devices(
            devices=devices, snapshot=snapshot, expected_wwid=self.module.params["expected_wwid"], fresh=fresh
        )
        if not stale:
            return snapshot
        if self.module.params["stale_device"] != "replace":
            raise LunsafeError(
                "a device at this LUN's address carries another LU's identity (the array reused the LUN number?): "
                "refusing to use it; detach the old LUN (its map and paths) first, or set stale_device=replace",
                stale=stale,
            )
        for entry in stale:
            found = snapshot.device(name=entry["name"])
            if found is None:
                continue
            device = found
            if device.holders or device.partitions:
                raise LunsafeError(
                    f"stale device {device.name} at {device.hctl} is held by "
                    f"{', '.join(device.holders + device.partitions)}: "
                    "flush its old map first (lunsafe.san.multipath_flush)",
                    stale=stale,
                )
            scan.write_attribute(scsi_device_delete_path(hctl=device.hctl, sysfs_root=SYSFS_ROOT), "1")
        self.result["stale_replaced"] = stale
        return read_snapshot(sysfs_root=SYSFS_ROOT)

    def _plan_only(self, before: Snapshot, missing: List[iscsiadm.Portal]) -> None:
        """Check mode: report the scans that would be written on the sessions that exist now."""
        sessions = [s for s in self.sessions(before) if s.logged_in]
        if sessions:
            request = scan.ScanRequest(
                target=self.target,
                luns=(self.lun,),
                array_luns=(self.array_lun,),
                portals=tuple(p for p, ip in zip(self.sysfs_portals, self.portals) if ip not in missing),
            )
            try:
                plan = scan.plan_scan(request=request, snapshot=before)
            except scan.ResolveError as exc:
                self.result["warnings_check_mode"] = [exc.msg]
            else:
                self.result["scanned"] = [w.to_dict() for w in scan.planned_writes(plan=plan, sysfs_root=SYSFS_ROOT)]
                self.result["changed"] = self.result["changed"] or bool(self.result["scanned"])
        if missing:
            self.result["changed"] = True
        devices = attach.lun_devices(snapshot=before, sessions=sessions, lun=self.lun)
        self.result["devices"] = [scan.device_facts(device=d, snapshot=before, new=False) for d in devices]
        self.result["hctl"] = [str(d.hctl) for d in devices]
        self.result["sessions"] = [attach.session_facts(s) for s in self.sessions(before)]

    def _report(self, *, before: Snapshot, after: Snapshot, identity: Dict[str, Any], dm_map: Any) -> None:
        sessions = self.sessions(after)
        devices = attach.lun_devices(snapshot=after, sessions=sessions, lun=self.lun)
        old = {str(d.hctl) for d in attach.lun_devices(snapshot=before, sessions=self.sessions(before), lun=self.lun)}
        self.result.update(
            sessions=[attach.session_facts(s) for s in sessions],
            hctl=[str(d.hctl) for d in devices],
            devices=[scan.device_facts(device=d, snapshot=after, new=str(d.hctl) not in old) for d in devices],
            wwid=identity["wwid"],
            size_bytes=identity["size_bytes"],
            dm=attach.map_facts(dm_map),
            by_id=f"/dev/disk/by-id/dm-uuid-mpath-{identity['wwid']}"
            if dm_map
            else f"/dev/disk/by-id/scsi-{identity['wwid']}",
            logged_in=[p.for_iscsiadm() for p in self.logged_in],
        )
        self.result["diff"] = {
            "before": "".join(f"{h}\n" for h in sorted(old)),
            "after": "".join(f"{d.hctl} {d.name} {d.wwid}\n" for d in devices),
        }

    # -- absent ------------------------------------------------------------------------------------------

    def absent(self) -> None:
        """Flush the LUN's map, delete its paths, then log out of sessions that carry no other LUN."""
        p = self.module.params
        before = read_snapshot(sysfs_root=SYSFS_ROOT)
        sessions = self.sessions(before)
        devices = attach.lun_devices(snapshot=before, sessions=sessions, lun=self.lun)
        names = [d.name for d in devices if d.name]
        self.result["devices"] = [scan.device_facts(device=d, snapshot=before, new=False) for d in devices]
        self.result["hctl"] = [str(d.hctl) for d in devices]
        dm_map = before.multipath_map_for(names=names) if names else None
        self.result["dm"] = attach.map_facts(dm_map)
        settings = flush.Settings(
            sysfs_root=SYSFS_ROOT,
            retries=3,
            retry_interval=2.0,
            command_timeout=60.0,
            path_timeout=float(p["timeout"]),
            force=p["force"],
        )
        if dm_map is not None:
            observation = flush.observe(
                ref=dm_map.uuid or dm_map.dm, runner=self.runner, sysfs_root=SYSFS_ROOT, snapshot=before
            )
            fplan = flush.plan_flush(observation=observation, force=p["force"], remove_wwid_file=False)
            if fplan.refusals and not p["force"]:
                raise flush.refusal(observation=observation, plan=fplan)
            self.result["plan"] = [step.to_dict() for step in fplan.steps]
            if not self.check:
                outcome = flush.apply_plan(plan=fplan, observation=observation, runner=self.runner, settings=settings)
                self.result["removed"] = {"map": dm_map.name, "paths": [x["device"] for x in outcome.paths_removed]}
        elif devices:
            self._delete_unmapped(devices, settings)
        self.mark("remove")
        after = before if self.check else read_snapshot(sysfs_root=SYSFS_ROOT)
        left = attach.lun_devices(snapshot=after, sessions=self.sessions(after), lun=self.lun)
        if left and not self.check:
            raise LunsafeError(
                f"the LUN still has paths after removal: {', '.join(str(d.hctl) for d in left)}",
                hctl=[str(d.hctl) for d in left],
            )
        if p["logout"]:
            self._logout_unused(after, removing=set(names))
        else:
            self.result["logged_out"] = []
            self.result["nodes_removed"] = []
        self.mark("logout")
        final = read_snapshot(sysfs_root=SYSFS_ROOT)
        self.result["sessions"] = [attach.session_facts(s) for s in self.sessions(final)]
        self.result["changed"] = bool(devices or self.result["logged_out"] or self.result.get("nodes_removed"))
        self.result["diff"] = {
            "before": "".join(f"{d.hctl} {d.name} {d.wwid}\n" for d in devices),
            "after": "" if not self.check else "".join(f"{d.hctl} {d.name} {d.wwid}\n" for d in devices),
        }

    def _delete_unmapped(self, devices: Sequence[Any], settings: Any) -> None:
        """Paths without a multipath map: refuse when mounted, held or partitioned (unless force), then delete."""
        names = [d.name for d in devices if d.name]
        with open(MOUNTINFO, encoding="utf-8") as handle:
            mountinfo = handle.read()
        parts = [part for d in devices for part in d.partitions]
        users = [
            h.describe() for h in flush.find_mounts(sysfs_root=SYSFS_ROOT, names=names + parts, mountinfo=mountinfo)
        ]
        users += [f"{d.name} held by {', '.join(d.holders)}" for d in devices if d.holders]
        users += [f"{d.name} has partitions {', '.join(d.partitions)}" for d in devices if d.partitions]
        if users and not self.module.params["force"]:
            raise LunsafeError(
                "refusing to delete the LUN's paths, nothing was changed: " + "; ".join(users) + " (use force)",
                users=users,
            )
        self.result["plan"] = [{"action": "delete_path", "target": d.name, "hctl": str(d.hctl)} for d in devices]
        if self.check:
            return
        for device in devices:
            scan.write_attribute(scsi_device_delete_path(hctl=device.hctl, sysfs_root=SYSFS_ROOT), "1")
        wait_until(
            lambda: not any(read_snapshot(sysfs_root=SYSFS_ROOT).device(name=n) for n in names),
            timeout=settings.path_timeout,
            interval=0.1,
            backoff=1.5,
            max_interval=1.0,
            describe="the LUN's paths to leave sysfs",
        )
        self.result["removed"] = {"map": None, "paths": names}

    def _logout_unused(self, snapshot: Snapshot, *, removing: Any) -> None:
        """Log out of each requested portal whose sessions carry no other LUN's device; then drop node records."""
        p = self.module.params
        logged_out: List[str] = []
        nodes_removed: List[str] = []
        for portal, sysfs_portal in zip(self.portals, self.sysfs_portals):
            sessions = snapshot.sessions_for(targetname=self.target, portal=sysfs_portal)
            others = [
                d
                for s in sessions
                for d in snapshot.devices_of_session(sid=s.sid)
                # a device without a block device yet (a LUN still being probed) is another LUN's too
                if (d.name is None or d.name not in removing) and (self.check or d.hctl.lun != self.lun)
            ]
            if others:
                continue
            if sessions:
                if not self.check:
                    login_utils.logout(
                        self.runner,
                        target=self.target,
                        portal=portal,
                        iface=self.iface,
                        timeout=p["login_timeout"] + 30,
                    )
                logged_out.append(portal.for_iscsiadm())
            if p["remove_node"]:
                exists = login_utils.read_node(self.runner, target=self.target, portal=portal, iface=self.iface)
                if exists is not None:
                    if not self.check:
                        login_utils.remove_node(self.runner, target=self.target, portal=portal, iface=self.iface)
                    nodes_removed.append(portal.for_iscsiadm())
        self.result["logged_out"] = logged_out
        self.result["nodes_removed"] = nodes_removed

    def rollback(self) -> List[str]:
        """Undo what this run created, newest first; never touches what existed before."""
        undone: List[str] = []
        snapshot = read_snapshot(sysfs_root=SYSFS_ROOT)
        for name in self.new_devices:
            device = snapshot.device(name=name)
            if device is not None and not device.holders:
                try:
                    scan.write_attribute(scsi_device_delete_path(hctl=device.hctl, sysfs_root=SYSFS_ROOT), "1")
                    undone.append(f"deleted {name}")
                except OSError as exc:
                    undone.append(f"could not delete {name}: {exc}")
        for portal in self.logged_in:
            try:
                login_utils.logout(self.runner, target=self.target, portal=portal, iface=self.iface, timeout=60)
                undone.append(f"logged out of {portal.for_iscsiadm()}")
            except LunsafeError as exc:
                undone.append(f"could not log out of {portal.for_iscsiadm()}: {exc.msg}")
        for portal in self.created_nodes:
            try:
                login_utils.remove_node(self.runner, target=self.target, portal=portal, iface=self.iface)
                undone.append(f"removed node record {portal.for_iscsiadm()}")
            except LunsafeError as exc:
                undone.append(f"could not remove node record {portal.for_iscsiadm()}: {exc.msg}")
        for portal in self.created_discovery:
            try:
                login_utils.remove_discovery(self.runner, portal=portal, iface=self.iface)
                undone.append(f"removed discovery record {portal.for_iscsiadm()}")
            except LunsafeError as exc:
                undone.append(f"could not remove discovery record {portal.for_iscsiadm()}: {exc.msg}")
        return undone


def execute(run: Attach) -> None:
    """Present or absent under the host lock (check mode only reads: it takes no lock, writes no lease)."""
    params = run.module.params
    work = run.absent if params["state"] == "absent" else run.present
    if run.check:
        work()
        return
    lock = lock_from_params(params, check_mode=False)
    if lock is None:  # only in check mode, handled above
        work()
        return
    lock.acquire()
    run.mark("lock")  # waiting for the host lock (or another procedure's lease), apart from the work
    succeeded = False
    try:
        work()
        succeeded = True
    except (LunsafeError, OSError):
        if params["state"] == "present":
            run.result["rolled_back"] = run.rollback()
        raise
    finally:
        lock.finish(succeeded=succeeded)
        run.result["lock_lease"] = lock.lease_outcome


def make_runner(module: AnsibleModule) -> Runner:
    """The command runner (a seam: unit tests give a scripted one)."""
    return Runner(module, default_timeout=60)


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    runner = make_runner(module)
    try:
        run = Attach(module, runner)
    except LunsafeError as exc:
        module.fail_json(**exc.to_fail_kwargs())
        return
    try:
        execute(run)
    except LunsafeError as exc:
        rolled_back = run.result.get("rolled_back", [])
        run.mark("failed")
        module.fail_json(
            **exc.to_fail_kwargs(), rolled_back=rolled_back, nodes=run.result["nodes"], timings=run.timings
        )
    except OSError as exc:
        module.fail_json(
            msg=f"sysfs access failed: {exc}",
            rolled_back=run.result.get("rolled_back", []),
            exception=traceback.format_exc(),
        )
    module.exit_json(**run.result)


if __name__ == "__main__":
    main()
