# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module_utils is PRIVATE to lunsafe.san. It may change without notice.

"""The iSCSI transport of the attach/detach procedure (``_attach``): paths are (portal, target) sessions.

* :func:`parse`: the iSCSI part of iscsi_lun_attach's parameters (portals, target(s), iface, CHAP, discovery,
  node records, logout) as an :class:`IscsiRequest`;
* :class:`IscsiTransport`, one run's transport: node records with manual scan (those it creates get the
  collection's settings, existing ones keep theirs), SendTargets discovery, a login on every path without a
  session and the wait for every session to be logged in; the devices of a LUN are those of its sessions;
  after a detach, a logout of each path whose sessions carry no other LUN; on a failed attach that leaves no
  LUN attached, a logout of what it logged in to and removal of the records it created.

A path is (portal, target): arrays that present one target name per controller port give a target per
portal.

Users: _attach, plugins/modules/iscsi_lun_attach.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils import _iscsiadm as iscsiadm
from ansible_collections.lunsafe.san.plugins.module_utils import _login as login
from ansible_collections.lunsafe.san.plugins.module_utils import _scan as scan
from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError, LunsafeError, WaitTimeout
from ansible_collections.lunsafe.san.plugins.module_utils._lu import LunRequest
from ansible_collections.lunsafe.san.plugins.module_utils._portal import Portal, resolve_portals
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import IscsiSession, ScsiDevice, Snapshot
from ansible_collections.lunsafe.san.plugins.module_utils._transport import Context

#: A scan write of a logged-in session that returns within this many seconds probed the LUN without meeting a
#: path recovery (an absent LUN answers in milliseconds; a recovery blocks the probe for seconds).
QUICK_SCAN = 2.0

__all__ = [
    "IscsiRequest",
    "IscsiTransport",
    "PathRequest",
    "SessionTimeout",
    "empty_result",
    "lun_devices",
    "parse",
    "session_facts",
]

MODULE = "iscsi_lun_attach"
LOGIN_RETRIES = 2  # node.session.initial_login_retry_max: an unreachable portal fails fast


class SessionTimeout(LunsafeError):
    """A requested path has no logged-in session before the deadline."""


@dataclasses.dataclass(frozen=True)
class PathRequest:
    """One path to the LUNs: a portal (an address) and the target name presented there."""

    portal: Portal
    target: str
    spelled: str  # the portal as the user wrote it


@dataclasses.dataclass(frozen=True)
class IscsiRequest:
    """The iSCSI part of a request: the paths and how to log in to them."""

    paths: Tuple[PathRequest, ...]
    iface: Optional[str] = None
    chap: Optional[login.Chap] = None
    discovery_chap: Optional[login.Chap] = None
    discover: bool = False
    node_startup: Optional[str] = None  # None: manual for records this run creates, existing ones keep theirs
    login_timeout: float = 30.0
    logout: bool = True
    remove_node: bool = True
    module: str = MODULE

    @property
    def targets(self) -> Tuple[str, ...]:
        return tuple(dict.fromkeys(path.target for path in self.paths))

    def secrets(self) -> List[str]:
        return [s for chap in (self.chap, self.discovery_chap) if chap is not None for s in chap.secrets()]

    def journal_part(self) -> Dict[str, Any]:
        return {"targets": list(self.targets), "portals": [str(path.portal) for path in self.paths]}

    def empty_result(self, timings: Dict[str, float]) -> Dict[str, Any]:
        return empty_result(timings)

    def bind(self, context: Context) -> IscsiTransport:
        return IscsiTransport(self, context)


def empty_result(timings: Dict[str, float]) -> Dict[str, Any]:
    """iscsi_lun_attach's result keys before anything is known (also what a run refused before it started returns)."""
    return {
        "changed": False,
        "timings": timings,
        "sessions": [],
        "nodes": [],
        "logged_in": [],
        "logged_out": [],
        "nodes_removed": [],
        "scanned": [],
        "multipath_actions": [],
        "discovered": [],
        "rolled_back": [],
        "interrupted": [],
        "luns": [],
        "failed_luns": [],
        "sessions_kept": [],
        "wait_method": "sysfs-poll",
        "wait_method_reason": "the run ended before it waited",
    }


def _paths(
    params: Mapping[str, Any], resolver: Callable[[str], List[str]]
) -> Tuple[Tuple[PathRequest, ...], List[str]]:
    default_target = params.get("target")
    entries: List[Tuple[str, Optional[str]]] = []
    for entry in params.get("portals") or []:
        if isinstance(entry, Mapping):
            unknown = sorted(set(entry) - {"portal", "target"})
            if unknown or not entry.get("portal"):
                raise InputError(
                    f"each entry of portals is a portal or a dict with 'portal' and 'target', got {dict(entry)!r}",
                    option="portals",
                    value=dict(entry),
                )
            target = entry.get("target") or default_target
            if entry.get("target") and default_target and entry["target"] != default_target:
                raise InputError(
                    f"portal {entry['portal']!r} names target {entry['target']!r} but target is {default_target!r}: "
                    "give target once for all portals, or a target per portal",
                    option="portals",
                    value=dict(entry),
                )
            entries.append((str(entry["portal"]), target))
        else:
            entries.append((str(entry) if entry is not None else "", default_target))
    if not entries:
        raise InputError("portals must name at least one portal", option="portals", value=params.get("portals"))
    missing = [text for text, target in entries if not target]
    if missing:
        raise InputError(
            f"no target name for portal(s) {', '.join(missing)}: give target, or {{portal: ..., target: ...}}",
            option="target",
            value=None,
        )
    resolved, warnings = resolve_portals(entries, resolver=resolver, option="portals")
    paths = tuple(
        PathRequest(
            portal=entry.portal,
            target=iscsiadm.validate_target_name(entry.target or "", option="target"),
            spelled=entry.spelled,
        )
        for entry in resolved
    )
    return paths, warnings


def _chap(params: Mapping[str, Any], prefix: str, mutual: bool) -> Optional[login.Chap]:
    user, password = params.get(f"{prefix}_username"), params.get(f"{prefix}_password")
    if user is None and password is None:
        return None
    if not user or not password:
        raise InputError(f"{prefix}_username and {prefix}_password go together", option=f"{prefix}_username")
    user_in = params.get(f"{prefix}_username_in") if mutual else None
    password_in = params.get(f"{prefix}_password_in") if mutual else None
    if (user_in is None) != (password_in is None):
        raise InputError(f"{prefix}_username_in and {prefix}_password_in go together", option=f"{prefix}_username_in")
    return login.Chap(username=user, password=password, username_in=user_in, password_in=password_in)


def parse(params: Mapping[str, Any], *, resolver: Callable[[str], List[str]]) -> Tuple[IscsiRequest, List[str]]:
    """The iSCSI part of the module's parameters, and the warnings of portal resolution."""
    paths, warnings = _paths(params, resolver)
    iface = params.get("iface")
    return (
        IscsiRequest(
            paths=paths,
            iface=None if iface is None else iscsiadm.validate_iface(iface),
            chap=_chap(params, "chap", mutual=True),
            discovery_chap=_chap(params, "discovery_chap", mutual=False),
            discover=bool(params.get("discover")),
            node_startup=params.get("node_startup"),
            login_timeout=float(params.get("login_timeout") or 30),
            logout=params.get("logout", True) is not False,
            remove_node=params.get("remove_node", True) is not False,
        ),
        warnings,
    )


def lun_devices(*, snapshot: Snapshot, sessions: Sequence[IscsiSession], lun: int) -> Tuple[ScsiDevice, ...]:
    """The block devices of Linux LUN ``lun`` on these sessions (one per path), freshly resolved."""
    found: List[ScsiDevice] = []
    for session in sessions:
        for device in snapshot.devices_for(sid=session.sid, lun=lun):
            if device.name is not None and device.hctl.host == session.host:
                found.append(device)
    return tuple(sorted(found, key=lambda device: device.hctl))


def session_facts(session: IscsiSession) -> Dict[str, Any]:
    portal = session.persistent_portal or session.portal
    return {
        "sid": session.sid,
        "host": session.host,
        "target": session.targetname,
        "portal": None if portal is None else str(portal),
        "state": session.state,
        "iface": session.ifacename,
    }


class IscsiTransport:
    """One run's iSCSI transport (see :class:`_transport.Transport`)."""

    login_phase = "login"
    release_phase = "logout"
    shared_hosts = False  # one session per SCSI host
    path_noun = "portal"

    def __init__(self, request: IscsiRequest, context: Context) -> None:
        self.request = request
        self.ctx = context
        self.host = context.host
        # a record this run creates gets the collection's settings (manual startup unless asked, few login
        # retries so an unreachable portal fails fast); a record that exists (os-brick's, an operator's) keeps
        # its own: only manual scan (the safety rule), the CHAP given and an explicit node_startup are written
        self.wanted_new = login.wanted_node_settings(
            chap=request.chap,
            startup=request.node_startup or "manual",
            login_retries=LOGIN_RETRIES,
            login_timeout=int(request.login_timeout),
        )
        self.wanted_existing = {login.SCAN_KEY: "manual"}
        if request.chap is not None:
            self.wanted_existing.update(request.chap.settings(prefix="node.session.auth"))
        if request.node_startup is not None:
            self.wanted_existing["node.startup"] = request.node_startup
        # what this run created, to undo when no LUN is left attached
        self.created_nodes: List[Tuple[str, Portal]] = []
        self.created_discovery: List[Portal] = []
        self.logged_in: List[PathRequest] = []
        self.changes: List[login.NodeChange] = []
        self.missing: List[PathRequest] = []

    # -- paths and devices -----------------------------------------------------------------------------

    def path_sessions(self, snapshot: Snapshot, path: PathRequest) -> Tuple[IscsiSession, ...]:
        return snapshot.sessions_for(targetname=path.target, portal=path.portal)

    def sessions(self, snapshot: Snapshot) -> List[IscsiSession]:
        found: Dict[int, IscsiSession] = {}
        for path in self.request.paths:
            for session in self.path_sessions(snapshot, path):
                found.setdefault(session.sid, session)
        return [found[sid] for sid in sorted(found)]

    def lun_devices(self, snapshot: Snapshot, lun: int) -> Tuple[ScsiDevice, ...]:
        return lun_devices(snapshot=snapshot, sessions=self.sessions(snapshot), lun=lun)

    def scan_items(self, snapshot: Snapshot, lun: LunRequest) -> List[scan.ScanItem]:
        return [
            scan.session_item(snapshot=snapshot, session=session, lun=lun.linux_lun, array_lun=lun.array_lun)
            for session in self.sessions(snapshot)
        ]

    def scan_sessions(self, snapshot: Snapshot) -> Tuple[IscsiSession, ...]:
        return tuple(self.sessions(snapshot))

    def paths_expected(self, snapshot: Snapshot) -> int:
        return len([s for s in self.sessions(snapshot) if s.logged_in])

    def verify_scan(
        self, lun: LunRequest, items: Sequence[scan.ScanItem], writes: Sequence[scan.SysfsWrite]
    ) -> Optional[str]:
        """A scan written to a logged-in session is synchronous: the kernel (``iscsi_user_scan``) checks the
        session's state under its lock and probes the LUN inside the write. So a scan whose session was
        LOGGED_IN right before the write and still is right after, that returned within
        :data:`QUICK_SCAN` seconds and left no SCSI device, met an array that does not present the LUN there:
        it fails now instead of at the end of the wait for its block device. Everything else (a session in
        recovery, which the kernel skips and the wait writes again; a write slowed by a path recovery) is
        left to that wait."""
        quick = {
            (w.host, w.text)
            for w in writes
            if w.kind == "scan" and w.session_state == "LOGGED_IN" and w.seconds is not None and w.seconds <= QUICK_SCAN
        }
        candidates = [
            item
            for item in items
            if item.action == scan.ACTION_SCAN and item.sid is not None and (item.host, item.line) in quick
        ]
        if not candidates:
            return None
        snapshot = self.host.snapshot(device_detail=False)
        absent = []
        for item in candidates:
            session = next((s for s in snapshot.sessions if s.sid == item.sid), None)
            if session is None or not session.logged_in or scan.find_device(item=item, snapshot=snapshot):
                continue
            absent.append(f"{item.address} (session {item.sid}, {session.portal or '-'} {session.targetname})")
        if not absent:
            return None
        return (
            f"the scan of {', '.join(absent)} created nothing while the session was logged in: the array does not "
            f"present LUN {lun.given} to this initiator there (check its LUN masking / ACL for this host's "
            "initiator name, the LUN number and lun_addressing)"
        )

    def facts(self, snapshot: Snapshot) -> Dict[str, Any]:
        return {"sessions": [session_facts(s) for s in self.sessions(snapshot)]}

    def lun_facts(self, devices: Sequence[ScsiDevice], snapshot: Snapshot) -> Dict[str, Any]:
        return {}

    # -- attach ----------------------------------------------------------------------------------------

    def observe(self, before: Snapshot) -> None:
        if self.request.discover and not self.ctx.check:
            self.discover()
        self.changes = self.node_changes()
        self.ctx.result["nodes"] = [c.to_dict() for c in self.changes if c.changed]
        self.missing = self.paths_without_session(before)

    def plan_only(self, before: Snapshot) -> bool:
        self.ctx.result["logged_in"] = [str(p.portal) for p in self.missing]
        return bool(any(c.changed for c in self.changes) or self.missing)

    def make_available(self, before: Snapshot) -> Snapshot:
        return self.log_in(self.changes, self.missing)

    def changed(self) -> bool:
        return bool(self.ctx.result["nodes"] or self.logged_in or self.ctx.result["discovered"])

    def node_changes(self) -> List[login.NodeChange]:
        changes = []
        for path in self.request.paths:
            current = login.read_node(
                self.host.runner, target=path.target, portal=path.portal, iface=self.request.iface
            )
            changes.append(
                login.plan_node(
                    target=path.target,
                    portal=path.portal,
                    iface=self.request.iface,
                    current=current,
                    wanted=self.wanted_new if current is None else self.wanted_existing,
                )
            )
        return changes

    def paths_without_session(self, snapshot: Snapshot) -> List[PathRequest]:
        """Paths with no session at all (a session in recovery is waited for, not logged in again)."""
        return [path for path in self.request.paths if not self.path_sessions(snapshot, path)]

    def discover(self) -> None:
        """SendTargets discovery on each portal; every record it adds gets manual scan and is undone on failure.

        Discovery adds a record for every target and portal the array reports, not only the requested
        ones: a record left with iscsid.conf's ``node.session.scan = auto`` would scan every LUN on a later
        login, so each added record gets manual scan, and each is reported in ``discovered``.
        """
        runner, trail = self.host.runner, self.ctx.trail
        known = login.list_nodes(runner)
        had_discovery = login.discovery_records(runner)
        for portal in dict.fromkeys(path.portal for path in self.request.paths):
            create = not any(portal.same_as(other) for other in had_discovery)
            if create:
                self.created_discovery.append(portal)
            trail.record(f"discovery on {portal}" + (" (new discovery record)" if create else ""))
            login.discover(
                runner,
                portal=portal,
                iface=self.request.iface,
                chap=self.request.discovery_chap,
                timeout=self.request.login_timeout,
                create=create,
            )
        added = [
            node
            for node in login.list_nodes(runner)
            if not any(old.target == node.target and old.portal.same_as(node.portal) for old in known)
        ]
        requested = {(path.target, path.portal.key()) for path in self.request.paths}
        for node in added:
            self.created_nodes.append((node.target, node.portal))
            if (node.target, node.portal.key()) not in requested:
                trail.record(f"node record {node.portal} ({node.target}): node.session.scan=manual")
                login.apply_node(
                    runner,
                    login.NodeChange(
                        target=node.target,
                        portal=node.portal,
                        iface=self.request.iface,
                        create=False,
                        updates=((login.SCAN_KEY, "manual"),),
                    ),
                )
        self.ctx.result["discovered"] = [
            {"target": node.target, "portal": node.portal.for_iscsiadm()} for node in added
        ]

    def log_in(self, changes: List[login.NodeChange], missing: List[PathRequest]) -> Snapshot:
        """Node records (manual scan first), then a login on every path without a session at once, then every
        path logged in.

        Each login has its own deadline, so a portal that does not answer costs its login timeout once, not
        before each next portal. The records are all written before the first login; the journal, the results
        and the errors follow the order of the paths, whatever order the logins end in. When logins fail, the
        first failed path's error is raised (the others' are warnings) once every login has ended, so that the
        rollback logs out exactly the sessions this run created.
        """
        for change in changes:
            if change.changed:
                self.ctx.trail.record(
                    f"node record {change.portal} ({change.target}): "
                    + ("create" if change.create else "set " + ", ".join(update[0] for update in change.updates))
                )
                login.apply_node(self.host.runner, change)
                if change.create:
                    self.created_nodes.append((change.target, change.portal))
        for path in missing:
            self.ctx.trail.record(f"login {path.portal} ({path.target})")
        outcomes = login.side_by_side(missing, self.log_in_path, workers=self.host.parallel)
        failures: List[Exception] = []
        for path, (created, error) in zip(missing, outcomes):
            if created:
                self.logged_in.append(path)
            if error is not None:
                failures.append(error)
        if failures:
            self.ctx.warnings.extend(f"another login failed too: {_message(error)}" for error in failures[1:])
            raise failures[0]
        self.ctx.result["logged_in"] = [str(p.portal) for p in self.logged_in]
        return self.wait_for_sessions()

    def log_in_path(self, path: PathRequest) -> bool:
        """One path's login (its own thread): True when it created a session. After a failed login, the
        reachability and SendTargets probes of that portal run here too."""
        request = self.request
        portal = path.portal

        def reachable() -> bool:
            return self.host.connect(portal.address, portal.port, 3.0)

        return login.login(
            self.host.runner,
            target=path.target,
            portal=portal,
            iface=request.iface,
            timeout=request.login_timeout + 10,
            mutual=request.chap is not None and request.chap.username_in is not None,
            reachable=reachable,
        )

    def wait_for_sessions(self) -> Snapshot:
        """Every path has a LOGGED_IN session in sysfs (iscsiadm returns first); the error names each path
        that has none and the state of the session it has (a session in recovery is FAILED)."""
        last: List[Snapshot] = []
        timeout = self.ctx.timeout

        def poll() -> Optional[Snapshot]:
            snapshot = self.host.snapshot(device_detail=False)
            last[:] = [snapshot]
            ready = all(any(s.logged_in for s in self.path_sessions(snapshot, p)) for p in self.request.paths)
            return snapshot if ready else None

        try:
            self.host.wait(poll, timeout=timeout, describe="logged-in sessions", max_interval=0.5)
        except WaitTimeout:
            snapshot = last[0] if last else self.host.snapshot()
            waiting = []
            for path in self.request.paths:
                sessions = self.path_sessions(snapshot, path)
                if any(s.logged_in for s in sessions):
                    continue
                states = ", ".join(f"session {s.sid} is {s.state or 'in an unknown state'}" for s in sessions)
                waiting.append(
                    f"{path.portal} ({path.target}): "
                    + (states + " (in recovery: the portal does not answer)" if states else "no session")
                )
            raise SessionTimeout(
                f"timed out after {timeout:g}s waiting for a logged-in session on: " + "; ".join(waiting),
                paths=waiting,
                timeout=timeout,
            ) from None
        return self.host.snapshot()

    def roll_back(self) -> None:
        """No LUN is left attached: log out of what this run logged in to, drop the records it created.

        A session that carries a device now (one the rollback had to leave, or another LUN's) is kept: a
        logout would take that device away under its user.
        """
        undone: List[str] = self.ctx.result["rolled_back"]
        runner, iface, trail = self.host.runner, self.request.iface, self.ctx.trail
        snapshot = self.host.snapshot(device_detail=False)
        kept: Set[Tuple[str, Tuple[str, int]]] = set()
        for path in self.logged_in:
            carried = [
                d.name or str(d.hctl)
                for session in self.path_sessions(snapshot, path)
                for d in snapshot.devices_of_session(sid=session.sid)
            ]
            if carried:
                undone.append(f"kept the session to {path.portal} ({path.target}): it carries {', '.join(carried)}")
                kept.add((path.target, path.portal.key()))
                continue
            try:
                trail.record(f"roll back: logout {path.portal} ({path.target})")
                login.logout(runner, target=path.target, portal=path.portal, iface=iface, timeout=60)
                undone.append(f"logged out of {path.portal} ({path.target})")
            except LunsafeError as exc:
                undone.append(f"could not log out of {path.portal}: {exc.msg}")
        for target, portal in self.created_nodes:
            if (target, portal.key()) in kept:  # the session stays, and so does its record
                continue
            try:
                trail.record(f"roll back: remove node record {portal} ({target})")
                login.remove_node(runner, target=target, portal=portal, iface=iface)
                undone.append(f"removed node record {portal} ({target})")
            except LunsafeError as exc:
                undone.append(f"could not remove node record {portal}: {exc.msg}")
        for portal in self.created_discovery:
            try:
                trail.record(f"roll back: remove discovery record {portal}")
                login.remove_discovery(runner, portal=portal, iface=iface)
                undone.append(f"removed discovery record {portal}")
            except LunsafeError as exc:
                undone.append(f"could not remove discovery record {portal}: {exc.msg}")

    # -- detach ----------------------------------------------------------------------------------------

    def released(self) -> bool:
        return bool(self.ctx.result["logged_out"] or self.ctx.result["nodes_removed"])

    def release(self, snapshot: Snapshot, *, removing: Set[str], left: Set[str], ours: Set[int]) -> None:
        """Log out of each path whose sessions carry no other LUN's device, nor one of ours that could not be
        removed (``left``: a logout would pull it away); then drop its node record.

        The logouts run at once, each with its own deadline; the journal, the results and the node record
        removals follow the order of the paths. When logouts fail, the paths whose logout succeeded are still
        reported and their records removed, then the first failed path's error is raised (the others' are
        warnings).
        """
        if not self.request.logout:
            return
        runner, iface, check = self.host.runner, self.request.iface, self.ctx.check
        released: List[Tuple[PathRequest, bool]] = []  # (path, it has sessions to log out of)
        for path in self.request.paths:
            sessions = self.path_sessions(snapshot, path)
            others = [
                d
                for s in sessions
                for d in snapshot.devices_of_session(sid=s.sid)
                # a device without a block device yet (a LUN being probed) is another LUN's too
                if d.name is None or d.name in left or (d.name not in removing and d.hctl.lun not in ours)
            ]
            if others:
                self.keep_session(path, sessions, others, left)
                continue
            released.append((path, bool(sessions)))
        leaving = [path for path, has_sessions in released if has_sessions and not check]
        for path in leaving:
            self.ctx.trail.record(f"logout {path.portal} ({path.target})")
        outcomes = dict(zip(leaving, login.side_by_side(leaving, self.log_out_path, workers=self.host.parallel)))
        failures: List[Exception] = []
        for path, has_sessions in released:
            error = outcomes.get(path, (None, None))[1]
            if error is not None:
                failures.append(error)
                continue
            if has_sessions:
                self.ctx.result["logged_out"].append(str(path.portal))
            if not self.request.remove_node:
                continue
            # the delete itself says whether there was a record (rc 21: none); check mode reads it instead
            if check:
                removed = login.read_node(runner, target=path.target, portal=path.portal, iface=iface) is not None
            else:
                self.ctx.trail.record(f"remove node record {path.portal} ({path.target})")
                removed = login.remove_node(runner, target=path.target, portal=path.portal, iface=iface)
            if removed:
                self.ctx.result["nodes_removed"].append(str(path.portal))
        if failures:
            self.ctx.warnings.extend(f"another logout failed too: {_message(error)}" for error in failures[1:])
            raise failures[0]

    def log_out_path(self, path: PathRequest) -> bool:
        """One path's logout (its own thread), with its own deadline."""
        return login.logout(
            self.host.runner,
            target=path.target,
            portal=path.portal,
            iface=self.request.iface,
            timeout=self.request.login_timeout + 30,
        )

    def keep_session(
        self, path: PathRequest, sessions: Sequence[IscsiSession], others: Sequence[ScsiDevice], left: Set[str]
    ) -> None:
        """Say why a path's sessions stay logged in (``sessions_kept``): the other LUNs they carry (also a
        controller LUN 0 with no block device that a global rescan brought in), or one of ours that could not be
        removed; the last two also as a warning."""
        carries = [
            {
                "hctl": str(d.hctl),
                "device": d.name,
                "lun": d.hctl.lun,
                "wwid": d.wwid,
                "ours": bool(d.name and d.name in left),  # one of this call's LUNs that could not be removed
            }
            for d in sorted(others, key=lambda d: d.hctl)
        ]
        self.ctx.result["sessions_kept"].append(
            {
                "portal": str(path.portal),
                "target": path.target,
                "sids": [s.sid for s in sessions],
                "carries": carries,
            }
        )
        # another attached LUN is the normal reason (said in the result only); a device with no block device (a
        # controller LUN a global rescan brought in) or one of ours left behind is worth a warning
        unusual = [entry for entry in carries if entry["device"] is None or entry["ours"]]
        if not unusual:
            return
        named = ", ".join(
            f"LUN {entry['lun']} ({entry['hctl']} {entry['device'] or 'no block device'}"
            + (", not removed" if entry["ours"] else "")
            + ")"
            for entry in unusual
        )
        self.ctx.warnings.append(
            f"{'would keep' if self.ctx.check else 'kept'} the session to {path.portal} ({path.target}) logged in: it "
            f"still carries {named}; it is logged out once no LUN is left on it"
        )


def _message(error: Exception) -> str:
    return error.msg if isinstance(error, LunsafeError) else str(error)
