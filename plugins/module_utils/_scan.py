# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""Targeted SCSI scans: resolve the LUNs asked for, plan one scan-file write per path, write, wait.

The steps are separate so that a module can run them as args -> observe -> plan -> apply -> observe:

* :func:`build_request` validates user input (pure; :class:`InputError` on anything malformed);
* :func:`plan_scan` resolves the request against one :class:`Snapshot` (pure): which host gets which
  ``"C T L"`` line, which LUNs already have a device (never scanned again), which sessions are skipped;
* :func:`apply_plan` writes the lines (and, on request, ``1`` to an existing device's ``rescan`` file);
* :func:`wait_for_devices` polls sysfs with a deadline until every scanned LUN has its block device;
* :func:`summarize` compares the snapshots before and after: devices, ``changed``, diff.

Kernel facts relied on (drivers/scsi/scsi_transport_iscsi.c ``iscsi_user_scan``): a write to
``scsi_host/host<H>/scan`` reaches every session of that host whose target id matches ``T`` (or every
session if ``T`` is ``-``), on channel 0 only, and only while the session is LOGGED_IN; a named LUN is
probed with INQUIRY alone (no REPORT LUNS), so nothing else is attached. The scsi_device is created
during the write; its block device (``sd`` probes asynchronously) a little later. A LUN the array does
not present leaves nothing behind. Scanning an H:C:T:L that already has a device does not refresh it:
that needs its ``rescan`` file.

Over Fibre Channel (drivers/scsi/scsi_transport_fc.c ``fc_user_scan``): target WWPNs resolve through
:func:`_fc.resolve` into one exact ``C T L`` per usable remote port (never a wildcard); the kernel scans only
Online (or Marginal) remote ports with that target id, refuses a LUN above the host's ``max_lun`` with EINVAL
and otherwise returns success whatever it found. The probe runs inside the write, so a LUN that has no
scsi_device right after it was not presented (or the port went away): :func:`verify_fc_scan` says which.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, cast

from ansible_collections.lunsafe.san.plugins.module_utils import _fc
from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError, LunsafeError, WaitTimeout
from ansible_collections.lunsafe.san.plugins.module_utils._hctl import (
    WILDCARD,
    Hctl,
    HctlError,
    linux_lun,
    parse_hctl,
    parse_lun_token,
    wildcard_scan_line,
)
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._portal import Portal, getaddrinfo_addresses, resolve_portals
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import (
    IscsiSession,
    ScsiDevice,
    Snapshot,
    read_attribute,
    scsi_device_rescan_path,
    scsi_host_scan_path,
)

__all__ = [
    "ACTION_PENDING",
    "ACTION_PRESENT",
    "ACTION_REFRESH",
    "ACTION_SCAN",
    "ACTION_SKIP",
    "FcAbsence",
    "ResolveError",
    "ScanEmpty",
    "ScanItem",
    "ScanPlan",
    "ScanRequest",
    "ScanTimeout",
    "ScanWriteError",
    "SysfsWrite",
    "apply_plan",
    "build_request",
    "device_facts",
    "fc_absences",
    "fc_unscanned",
    "find_device",
    "missing_items",
    "plan_scan",
    "planned_writes",
    "summarize",
    "verify_fc_scan",
    "wait_for_devices",
]

#: The LUN has no device: write its scan line.
ACTION_SCAN = "scan"
#: The LUN already has a block device: nothing is written.
ACTION_PRESENT = "present"
#: The LUN already has a block device and ``refresh`` was asked: ``1`` is written to its ``rescan`` file.
ACTION_REFRESH = "refresh"
#: A scsi_device exists at the address but has no block device yet: nothing is written, it is waited for.
ACTION_PENDING = "pending"
#: The session is not LOGGED_IN: the kernel would ignore the scan, nothing is written.
ACTION_SKIP = "skip"

_WAIT_ACTIONS = (ACTION_SCAN, ACTION_PENDING)
_POLL_INTERVAL = 0.05
_POLL_BACKOFF = 1.5
_POLL_MAX_INTERVAL = 0.5


class ResolveError(LunsafeError):
    """The request names something the host does not have (no such session, host or target id)."""


class ScanWriteError(LunsafeError):
    """A sysfs write was refused by the kernel (or the file vanished)."""


class ScanEmpty(LunsafeError):
    """An FC scan write created no scsi_device (the probe runs inside the write): ``snapshot`` is sysfs after it."""

    def __init__(self, msg: str, *, snapshot: Snapshot, **details: Any) -> None:
        super().__init__(msg, **details)
        self.snapshot = snapshot


class ScanTimeout(LunsafeError):
    """Scanned LUNs did not get a block device before the deadline; ``snapshot`` is the last sysfs view."""

    def __init__(self, msg: str, *, snapshot: Snapshot, **details: Any) -> None:
        super().__init__(msg, **details)
        self.snapshot = snapshot


# ---------------------------------------------------------------------------------------------------------
# the request


@dataclasses.dataclass(frozen=True)
class ScanRequest:
    """What the user asked for, validated. Either ``hctls``, or ``target`` with ``luns`` (Linux LUNs)."""

    hctls: Tuple[Hctl, ...] = ()
    target: Optional[str] = None
    portals: Tuple[Portal, ...] = ()
    luns: Tuple[int, ...] = ()
    array_luns: Tuple[int, ...] = ()
    addressing: str = "peripheral"
    allow_wildcard: bool = False
    refresh: bool = False
    warnings: Tuple[str, ...] = ()
    fc_targets: Tuple[str, ...] = ()  # normalised target WWPNs (FC), with ``luns``
    fc_initiators: Tuple[str, ...] = ()  # normalised fc_host WWPNs to scan from; empty: every fc_host


def _dedupe(values: Iterable[Any]) -> Tuple[Any, ...]:
    seen: List[Any] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return tuple(seen)


def _parse_hctls(hctl: Sequence[Any]) -> Tuple[Hctl, ...]:
    parsed = []
    for text in hctl:
        try:
            address = parse_hctl(text)
            address.scan_line()  # the LUN must fit the kernel's 16-character token
        except HctlError as exc:
            raise InputError(f"invalid hctl: {exc}", option="hctl", value=text) from None
        parsed.append(address)
    return _dedupe(parsed)


def _parse_luns(luns: Sequence[Any], addressing: str) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    pairs = []
    for token in luns:
        try:
            number = parse_lun_token(token)
            pairs.append((number, linux_lun(lun=number, addressing=addressing)))
        except HctlError as exc:
            raise InputError(f"invalid LUN: {exc}", option="luns", value=token) from None
    pairs = list(_dedupe(pairs))
    return tuple(pair[0] for pair in pairs), tuple(pair[1] for pair in pairs)


def _parse_target(target: Any) -> str:
    if not isinstance(target, str) or not target.strip() or any(char.isspace() for char in target.strip()):
        raise InputError(
            f"target must be an iSCSI name such as 'iqn.2003-01.org.example:array', got {target!r}",
            option="target",
            value=target,
        )
    return target.strip()


def build_request(
    *,
    hctl: Optional[Sequence[Any]] = None,
    target: Optional[str] = None,
    portals: Optional[Sequence[Any]] = None,
    luns: Optional[Sequence[Any]] = None,
    lun_addressing: str = "peripheral",
    allow_wildcard: bool = False,
    refresh: bool = False,
    resolver: Callable[[str], List[str]] = getaddrinfo_addresses,
    fc_targets: Optional[Sequence[Any]] = None,
    fc_initiators: Optional[Sequence[Any]] = None,
) -> ScanRequest:
    """Validate the user's input; :class:`InputError` names the option and the value it refused.

    Exactly one of ``hctl``, ``target`` (with ``luns``) and ``fc_targets`` (with ``luns``) must be given. A
    LUN is never a wildcard: ``allow_wildcard`` only lets channel and target be ``-`` on an iSCSI session the
    kernel gives no target id for, and is refused for FC.
    """
    given = [
        name for name, value in (("hctl", hctl), ("target", target), ("fc_targets", fc_targets)) if value is not None
    ]
    if len(given) != 1:
        raise InputError(
            "give exactly one of hctl, target (with luns) and fc_targets (with luns); got "
            + (f"both {' and '.join(given)}" if given else "neither"),
            option="hctl",
            value=hctl,
        )
    if fc_initiators is not None and fc_targets is None:
        raise InputError("fc_initiators only goes with fc_targets", option="fc_initiators", value=fc_initiators)
    if fc_targets is not None:
        return _fc_request(
            fc_targets=fc_targets,
            fc_initiators=fc_initiators,
            luns=luns,
            portals=portals,
            lun_addressing=lun_addressing,
            allow_wildcard=allow_wildcard,
            refresh=refresh,
        )
    if hctl is not None:
        if not hctl:
            raise InputError("hctl must name at least one H:C:T:L address", option="hctl", value=hctl)
        if luns is not None or portals:
            raise InputError("luns and portal only go with target, not with hctl", option="luns", value=luns)
        return ScanRequest(hctls=_parse_hctls(hctl), allow_wildcard=allow_wildcard, refresh=refresh)
    name = _parse_target(target)
    if not luns:
        raise InputError("luns must name at least one LUN of the target", option="luns", value=luns)
    array_luns, kernel_luns = _parse_luns(luns, lun_addressing)
    resolved, warnings = resolve_portals([(text, None) for text in portals or ()], resolver=resolver, option="portals")
    return ScanRequest(
        target=name,
        portals=tuple(entry.portal for entry in resolved),
        warnings=tuple(warnings),
        luns=kernel_luns,
        array_luns=array_luns,
        addressing=lun_addressing,
        allow_wildcard=allow_wildcard,
        refresh=refresh,
    )


def _fc_request(
    *,
    fc_targets: Sequence[Any],
    fc_initiators: Optional[Sequence[Any]],
    luns: Optional[Sequence[Any]],
    portals: Optional[Sequence[Any]],
    lun_addressing: str,
    allow_wildcard: bool,
    refresh: bool,
) -> ScanRequest:
    if not fc_targets:
        raise InputError("fc_targets must name at least one target WWPN", option="fc_targets", value=fc_targets)
    if portals:
        raise InputError("portals only go with an iSCSI target, not with fc_targets", option="portals", value=portals)
    if allow_wildcard:
        raise InputError(
            "allow_wildcard is refused with fc_targets: over Fibre Channel every scan is an exact 'C T L' of a "
            "remote port the kernel shows",
            option="allow_wildcard",
            value=allow_wildcard,
        )
    if not luns:
        raise InputError("luns must name at least one LUN of the fc_targets", option="luns", value=luns)
    array_luns, kernel_luns = _parse_luns(luns, lun_addressing)
    return ScanRequest(
        fc_targets=_dedupe(_fc.normalize_wwpn(text, option="fc_targets") for text in fc_targets),
        fc_initiators=_dedupe(_fc.normalize_wwpn(text, option="fc_initiators") for text in fc_initiators or ()),
        luns=kernel_luns,
        array_luns=array_luns,
        addressing=lun_addressing,
        refresh=refresh,
    )


# ---------------------------------------------------------------------------------------------------------
# the plan


@dataclasses.dataclass(frozen=True)
class ScanItem:
    """One LUN on one path: where to write and what is there already.

    ``channel``/``target`` are None when only a wildcard scan can reach the session (``- - L``).
    """

    host: int
    channel: Optional[int]
    target: Optional[int]
    lun: int
    action: str
    sid: Optional[int] = None
    array_lun: Optional[int] = None
    reason: str = ""
    rport: Optional[str] = None  # FC: the remote port the nexus goes through (rport-H:C-N)
    wwpn: Optional[str] = None  # FC: that remote port's WWPN

    @property
    def hctl(self) -> Optional[Hctl]:
        if self.channel is None or self.target is None:
            return None
        return Hctl(host=self.host, channel=self.channel, target=self.target, lun=self.lun)

    @property
    def address(self) -> str:
        """``2:0:0:1``, or ``2:-:-:1`` for a wildcard item."""
        hctl = self.hctl
        return str(hctl) if hctl is not None else f"{self.host}:{WILDCARD}:{WILDCARD}:{self.lun}"

    @property
    def line(self) -> str:
        """The scan-file line; wildcard channel/target only where the plan allowed it."""
        return wildcard_scan_line(
            channel=WILDCARD if self.channel is None else self.channel,
            target=WILDCARD if self.target is None else self.target,
            lun=self.lun,
            allow_wildcard=self.channel is None or self.target is None,
        )


@dataclasses.dataclass(frozen=True)
class ScanPlan:
    items: Tuple[ScanItem, ...]
    sessions: Tuple[IscsiSession, ...]
    warnings: Tuple[str, ...] = ()  # FC: paths that are down, targets not reachable, the scan mode

    def with_action(self, *actions: str) -> Tuple[ScanItem, ...]:
        return tuple(item for item in self.items if item.action in actions)


def _session_label(session: IscsiSession) -> str:
    portal = session.persistent_portal or session.portal
    where = portal if portal is not None else "no portal"
    return f"sid {session.sid} (host{session.host}, {where}, {session.state or 'state unknown'})"


def _sessions_seen(snapshot: Snapshot) -> List[str]:
    return [f"{_session_label(session)} {session.targetname}" for session in snapshot.sessions]


def _target_sessions(request: ScanRequest, snapshot: Snapshot) -> Tuple[IscsiSession, ...]:
    target = request.target or ""
    if not request.portals:
        sessions = snapshot.sessions_for(targetname=target)
        if not sessions:
            raise ResolveError(
                f"no iSCSI session to target {target}: log in first (sessions seen: "
                f"{', '.join(_sessions_seen(snapshot)) or 'none'})",
                target=target,
                sessions=_sessions_seen(snapshot),
            )
        return sessions
    found: List[IscsiSession] = []
    for portal in request.portals:
        sessions = snapshot.sessions_for(targetname=target, portal=portal)
        if not sessions:
            raise ResolveError(
                f"no iSCSI session to target {target} through portal {portal}: log in first (sessions seen: "
                f"{', '.join(_sessions_seen(snapshot)) or 'none'})",
                target=target,
                portal=str(portal),
                sessions=_sessions_seen(snapshot),
            )
        found.extend(session for session in sessions if session not in found)
    return tuple(sorted(found, key=lambda session: session.sid))


def _existing_action(device: Optional[ScsiDevice], refresh: bool) -> Optional[str]:
    if device is None:
        return None
    if device.name is None:
        return ACTION_PENDING
    return ACTION_REFRESH if refresh else ACTION_PRESENT


def session_item(
    *,
    snapshot: Snapshot,
    session: IscsiSession,
    lun: int,
    array_lun: int,
    allow_wildcard: bool = False,
    refresh: bool = False,
) -> ScanItem:
    """The scan item of Linux LUN ``lun`` on one session: scan it, or why not (present, pending, skip)."""
    address = snapshot.scan_address(sid=session.sid)
    if address is None:
        if not allow_wildcard:
            raise ResolveError(
                f"{_session_label(session)} has no target directory yet and the kernel shows no target_id for it: "
                f"only a wildcard scan '- - {lun}' of host{session.host} could reach it; set allow_wildcard=true "
                "to allow that (refused anyway when the host carries other sessions)",
                sid=session.sid,
                host=session.host,
            )
        others = [other.sid for other in snapshot.sessions_on_host(host=session.host) if other.sid != session.sid]
        if others:
            raise ResolveError(
                f"refusing a wildcard scan '- - {lun}' of host{session.host}: it carries sessions "
                f"{', '.join(str(sid) for sid in [session.sid, *others])} and the scan would probe LUN {lun} "
                "on all of them",
                sid=session.sid,
                host=session.host,
            )
        channel: Optional[int] = None
        target: Optional[int] = None
    else:
        _host, channel, target = address
    item = ScanItem(
        host=session.host,
        channel=channel,
        target=target,
        lun=lun,
        sid=session.sid,
        array_lun=array_lun,
        action=ACTION_SCAN,
    )
    existing = _existing_action(find_device(item=item, snapshot=snapshot), refresh)
    if existing is not None:
        return dataclasses.replace(item, action=existing)
    if not session.logged_in:
        return dataclasses.replace(
            item,
            action=ACTION_SKIP,
            reason=f"session {session.sid} is {session.state or 'in an unknown state'}, "
            "not LOGGED_IN: the kernel ignores scans of it",
        )
    return item


def _hctl_session(snapshot: Snapshot, hctl: Hctl) -> Optional[IscsiSession]:
    """The iSCSI session a scan of ``hctl`` reaches; None for a non-iSCSI host; ResolveError if none does."""
    host = next((host for host in snapshot.hosts if host.number == hctl.host), None)
    if host is None:
        raise ResolveError(
            f"there is no SCSI host {hctl.host} for {hctl} (hosts seen: "
            f"{', '.join(f'host{h.number}' for h in snapshot.hosts) or 'none'})",
            hctl=str(hctl),
        )
    sessions = snapshot.sessions_on_host(host=hctl.host)
    if not sessions:
        if host.iscsi:
            raise ResolveError(
                f"iSCSI host{hctl.host} has no session: a scan of {hctl} would reach nothing", hctl=str(hctl)
            )
        return None
    matching = [s for s in sessions if snapshot.scan_address(sid=s.sid) == hctl.host_channel_target]
    unknown = [s for s in sessions if snapshot.scan_address(sid=s.sid) is None]
    if len(matching) == 1:
        return matching[0]
    if not matching and len(sessions) == 1 and unknown:
        return unknown[0]  # the kernel does not say the target id: the only session is the one reached
    seen = ", ".join(
        f"{_session_label(s)} at {':'.join(str(n) for n in snapshot.scan_address(sid=s.sid) or ('?',))}"
        for s in sessions
    )
    raise ResolveError(
        f"no single iSCSI session of host{hctl.host} is at channel {hctl.channel} target {hctl.target}, so a scan "
        f"of {hctl} would reach nothing or be ambiguous (sessions: {seen})",
        hctl=str(hctl),
    )


def _fc_hctl_rport(view: _fc.FcView, hctl: Hctl) -> _fc.RemotePort:
    """The remote port a scan of ``hctl`` on an FC host reaches; ResolveError when none has that target id."""
    rport = view.rport_at(host=hctl.host, channel=hctl.channel, target=hctl.target)
    if rport is None:
        seen = ", ".join(
            f"{r.name} {r.port_name or '?'} target id {r.scsi_target_id}" for r in view.rports_of(host=hctl.host)
        )
        raise ResolveError(
            f"no remote port of FC host{hctl.host} has channel {hctl.channel} target id {hctl.target}, so a scan of "
            f"{hctl} would reach nothing (remote ports: {seen or 'none'})",
            hctl=str(hctl),
        )
    return rport


def _hctl_item(*, request: ScanRequest, snapshot: Snapshot, hctl: Hctl, view: Optional[_fc.FcView] = None) -> ScanItem:
    session = _hctl_session(snapshot, hctl)
    rport = None
    if session is None and view is not None and view.host(hctl.host) is not None:
        rport = _fc_hctl_rport(view, hctl)
    item = ScanItem(
        host=hctl.host,
        channel=hctl.channel,
        target=hctl.target,
        lun=hctl.lun,
        sid=None if session is None else session.sid,
        action=ACTION_SCAN,
        rport=None if rport is None else rport.name,
        wwpn=None if rport is None else rport.port_name,
    )
    existing = _existing_action(snapshot.device_at(hctl=hctl), request.refresh)
    if existing is not None:
        return dataclasses.replace(item, action=existing)
    if rport is not None and not rport.usable:
        return dataclasses.replace(
            item, action=ACTION_SKIP, reason=f"{rport.why_unusable()}: the kernel ignores scans of it"
        )
    if session is not None and not session.logged_in:
        return dataclasses.replace(
            item,
            action=ACTION_SKIP,
            reason=f"session {session.sid} is {session.state or 'in an unknown state'}, "
            "not LOGGED_IN: the kernel ignores scans of it",
        )
    return item


def plan_scan(*, request: ScanRequest, snapshot: Snapshot) -> ScanPlan:
    """Resolve the request against ``snapshot`` (freshly read: host and session numbers are reused).

    Raises :class:`ResolveError` when a target, portal, host or session is missing, or when the only way
    to reach a session would be a wildcard that was not allowed (or that would reach other sessions).
    """
    items: List[ScanItem] = []
    if request.fc_targets:
        return _fc_plan(request=request, snapshot=snapshot)
    if request.hctls:
        view = None
        if any(not _is_iscsi_host(snapshot, hctl.host) for hctl in request.hctls):
            view = _fc.read_fc(sysfs_root=snapshot.sysfs_root)
        for hctl in request.hctls:
            items.append(_hctl_item(request=request, snapshot=snapshot, hctl=hctl, view=view))
        sids = {item.sid for item in items}
        sessions = tuple(session for session in snapshot.sessions if session.sid in sids)
    else:
        sessions = _target_sessions(request, snapshot)
        for lun, array_lun in zip(request.luns, request.array_luns):
            for session in sessions:
                items.append(
                    session_item(
                        snapshot=snapshot,
                        session=session,
                        lun=lun,
                        array_lun=array_lun,
                        allow_wildcard=request.allow_wildcard,
                        refresh=request.refresh,
                    )
                )
    return make_plan(items=items, sessions=sessions)


def make_plan(*, items: Sequence[ScanItem], sessions: Sequence[IscsiSession], warnings: Sequence[str] = ()) -> ScanPlan:
    """The plan of these items (each once); :class:`ResolveError` when none of them can be scanned."""
    unique = _dedupe(items)
    if all(item.action == ACTION_SKIP for item in unique):
        reasons = "; ".join(_dedupe(item.reason for item in unique))
        # not "skipped": Ansible reads that key of a failed result as a skipped task and ignores failed_when
        raise ResolveError(f"nothing can be scanned: {reasons}", unscannable=[item.address for item in unique])
    return ScanPlan(items=unique, sessions=tuple(sessions), warnings=tuple(warnings))


def _is_iscsi_host(snapshot: Snapshot, number: int) -> bool:
    return any(host.number == number and host.iscsi for host in snapshot.hosts)


def _fc_hosts_seen(view: _fc.FcView) -> List[str]:
    return [f"host{host.host} {host.port_name or '?'} {host.port_state or '?'}" for host in view.hosts]


def _fc_plan(*, request: ScanRequest, snapshot: Snapshot) -> ScanPlan:
    """One exact ``C T L`` item per usable remote port of the target WWPNs and LUN; ResolveError, before
    anything is written, when no path is usable, an initiator is not here, a LUN is above a host's limit or
    the scan mode makes the kernel ignore scans."""
    view = _fc.read_fc(sysfs_root=snapshot.sysfs_root)
    refusal = _fc.scan_mode_refusal(view)
    if refusal is not None:
        raise ResolveError(refusal, scan_mode=view.scan_mode)
    resolution = _fc.resolve(view, targets=request.fc_targets, initiators=request.fc_initiators or None)
    if resolution.unmatched_initiators:
        raise ResolveError(
            f"fc_initiators {', '.join(resolution.unmatched_initiators)} is no Fibre Channel port of this host "
            f"(fc_hosts: {', '.join(_fc_hosts_seen(view)) or 'none'})",
            fc_hosts=_fc_hosts_seen(view),
        )
    if not resolution.paths:
        raise ResolveError(
            f"no usable Fibre Channel path to {', '.join(request.fc_targets)}: " + " ".join(resolution.problems),
            problems=list(resolution.problems),
            fc_hosts=_fc_hosts_seen(view),
        )
    items: List[ScanItem] = []
    for lun, array_lun in zip(request.luns, request.array_luns):
        for path in resolution.paths:
            fc_host = view.host(path.host)
            limit = None if fc_host is None else _fc.check_lun_limit(fc_host, lun)
            if limit is not None:
                raise ResolveError(limit, hctl=f"{path.host}:{path.channel}:{path.target}:{lun}")
            item = ScanItem(
                host=path.host,
                channel=path.channel,
                target=path.target,
                lun=lun,
                action=ACTION_SCAN,
                array_lun=array_lun,
                rport=path.rport.name,
                wwpn=path.rport.port_name,
            )
            existing = _existing_action(snapshot.device_at(hctl=cast(Hctl, item.hctl)), request.refresh)
            items.append(item if existing is None else dataclasses.replace(item, action=existing))
    warnings = list(resolution.degraded())
    mode = _fc.scan_mode_warning(view)
    if mode is not None:
        warnings.append(mode)
    return make_plan(items=items, sessions=(), warnings=warnings)


# ---------------------------------------------------------------------------------------------------------
# writing


@dataclasses.dataclass(frozen=True)
class SysfsWrite:
    """One write to sysfs: the exact file and text, and why."""

    kind: str  # "scan", "rescan", or "state" (an offline device of the LUN set running)
    path: str
    text: str
    host: int
    address: str
    # the iSCSI session's state right before the write (apply_plan): a scan of a session that is not LOGGED_IN
    # is ignored by the kernel
    session_state: Optional[str] = dataclasses.field(default=None, compare=False)
    # how long the write took (apply_plan): a scan of a logged-in iSCSI session or an FC remote port probes the
    # LUN inside the write, so an absent LUN returns in milliseconds, one met by a path recovery in seconds
    seconds: Optional[float] = dataclasses.field(default=None, compare=False)

    def to_dict(self) -> Dict[str, Any]:
        return {"kind": self.kind, "host": self.host, "path": self.path, "line": self.text, "hctl": self.address}


def planned_writes(*, plan: ScanPlan, sysfs_root: str) -> Tuple[SysfsWrite, ...]:
    """Every write the plan needs, in order, each once (two items can never share a host and line)."""
    writes: List[SysfsWrite] = []
    for item in plan.items:
        if item.action == ACTION_SCAN:
            write = SysfsWrite(
                kind="scan",
                path=scsi_host_scan_path(host=item.host, sysfs_root=sysfs_root),
                text=item.line,
                host=item.host,
                address=item.address,
            )
        elif item.action == ACTION_REFRESH and item.hctl is not None:
            write = SysfsWrite(
                kind="rescan",
                path=scsi_device_rescan_path(hctl=item.hctl, sysfs_root=sysfs_root),
                text="1",
                host=item.host,
                address=item.address,
            )
        else:
            continue
        if write not in writes:
            writes.append(write)
    return tuple(writes)


def apply_plan(*, plan: ScanPlan, host: Host) -> Tuple[SysfsWrite, ...]:
    """Do the plan's writes; returns them. :class:`ScanWriteError` names the failed write and the ones done."""
    done: List[SysfsWrite] = []
    sids = {(item.host, item.line): item.sid for item in plan.items if item.sid is not None}
    for planned in planned_writes(plan=plan, sysfs_root=host.sysfs_root):
        item = planned
        sid = sids.get((planned.host, planned.text)) if planned.kind == "scan" else None
        if sid is not None:
            state = read_attribute(os.path.join(host.sysfs_root, "class", "iscsi_session", f"session{sid}", "state"))
            item = dataclasses.replace(planned, session_state=state)
        start = host.clock()
        _write(host, item, done)
        done.append(dataclasses.replace(item, seconds=round(host.clock() - start, 3)))
    return tuple(done)


def _write(host: Host, write: SysfsWrite, done: Sequence[SysfsWrite]) -> None:
    """One sysfs write; :class:`ScanWriteError` if the kernel refused it, with ``scanned``: the writes done before
    it and this one, marked with its ``error`` (a write was made, and refused)."""
    try:
        host.write(write.path, write.text)
    except OSError as exc:
        error = exc.strerror or str(exc)
        raise ScanWriteError(
            f"writing '{write.text}' to {write.path} failed: {error}"
            + (f" (after {len(done)} write(s) that succeeded)" if done else ""),
            scanned=[*(w.to_dict() for w in done), {**write.to_dict(), "error": error, "errno": exc.errno}],
        ) from None


# ---------------------------------------------------------------------------------------------------------
# observing and waiting


@dataclasses.dataclass(frozen=True)
class FcAbsence:
    """A scanned FC address with no scsi_device right after its write, and why. ``fc_user_scan`` probes the LUN
    inside the write, so nothing will appear later: either the kernel did not scan the remote port (gone, or
    not usable any more) or the port answered and the array does not present the LUN there. One model for
    scsi_targeted_scan and fc_lun_attach (each words it for its own result)."""

    item: ScanItem
    rport: Optional[_fc.RemotePort]  # the remote port at the address now; None when it is gone (or replaced)
    unusable: Optional[str]  # why the kernel did not scan that port (``RemotePort.why_unusable``); None: it did
    initiator: Optional[str]  # the fc_host's WWPN

    @property
    def unpresented(self) -> bool:
        """The port was scanned and answered: the array does not present the LUN to this initiator there."""
        return self.rport is not None and self.unusable is None


def fc_unscanned(*, items: Sequence[ScanItem], snapshot: Snapshot) -> Tuple[ScanItem, ...]:
    """The scanned FC items (exact H:C:T:L) that have no scsi_device in ``snapshot``."""
    return tuple(
        item
        for item in items
        if item.action == ACTION_SCAN and item.hctl is not None and find_device(item=item, snapshot=snapshot) is None
    )


def fc_absences(*, items: Sequence[ScanItem], view: _fc.FcView) -> Tuple[FcAbsence, ...]:
    """Why each of ``items`` (from :func:`fc_unscanned`) created nothing, read from the FC model now."""
    found = []
    for item in items:
        rport = view.rport_at(host=item.host, channel=item.channel or 0, target=item.target or 0)
        if rport is not None and item.rport is not None and rport.name != item.rport:
            rport = None  # another remote port took the target id: the one scanned is gone
        fc_host = view.host(item.host)
        found.append(
            FcAbsence(
                item=item,
                rport=rport,
                unusable=None if rport is None else rport.why_unusable(),
                initiator=None if fc_host is None else fc_host.port_name,
            )
        )
    return tuple(found)


def _fc_absence_cause(absence: FcAbsence) -> str:
    item, rport = absence.item, absence.rport
    if rport is None:
        return f"{item.rport} is gone from host{item.host} (the target port logged out during the scan)"
    if absence.unusable is not None:
        return f"{absence.unusable}, so the kernel did not scan it"
    initiator = "this initiator" if absence.initiator is None else f"initiator {absence.initiator}"
    array = "" if item.array_lun is None or item.array_lun == item.lun else f" (array LUN {item.array_lun})"
    return (
        f"{rport.name} ({rport.port_name}) is {rport.port_state} and answered, but presents no LUN {item.lun}{array} "
        f"to {initiator}: check the array's LUN masking / host mapping, or the LUN number and lun_addressing"
    )


def verify_fc_scan(*, plan: ScanPlan, host: Host, scanned: Sequence[SysfsWrite]) -> Snapshot:
    """After the writes: every FC item scanned must have its scsi_device (the kernel probes inside the write).
    Returns the snapshot; :class:`ScanEmpty` names each address without one and why (port state, masking)."""
    snapshot = host.snapshot()
    empty = fc_unscanned(items=[item for item in plan.items if item.rport is not None], snapshot=snapshot)
    if not empty:
        return snapshot
    absences = fc_absences(items=empty, view=_fc.read_fc(sysfs_root=host.sysfs_root))
    causes = "; ".join(f"{absence.item.address}: {_fc_absence_cause(absence)}" for absence in absences)
    lines = ", ".join(f"host{w.host} '{w.text}'" for w in scanned) or "nothing"
    raise ScanEmpty(
        f"the scan created no device at {', '.join(item.address for item in empty)}: {causes}. Scanned: {lines}",
        snapshot=snapshot,
        missing=[item.address for item in empty],
        scanned=[w.to_dict() for w in scanned],
    )


def find_device(*, item: ScanItem, snapshot: Snapshot) -> Optional[ScsiDevice]:
    """The device an item addresses in ``snapshot`` (a wildcard item: its session's device at that LUN)."""
    hctl = item.hctl
    if hctl is not None:
        return snapshot.device_at(hctl=hctl)
    if item.sid is None:
        return None
    return next((d for d in snapshot.devices_for(sid=item.sid, lun=item.lun) if d.hctl.host == item.host), None)


def missing_items(*, plan: ScanPlan, snapshot: Snapshot) -> Tuple[ScanItem, ...]:
    """Scanned (or pending) items that have no block device in ``snapshot`` yet."""
    missing = []
    for item in plan.with_action(*_WAIT_ACTIONS):
        device = find_device(item=item, snapshot=snapshot)
        if device is None or device.name is None:
            missing.append(item)
    return tuple(missing)


def _seen(item: ScanItem, snapshot: Snapshot) -> str:
    device = find_device(item=item, snapshot=snapshot)
    if device is None:
        return f"no device at {item.address}"
    return f"scsi_device {device.hctl} in state {device.state or 'unknown'} without a block device"


def _waited_names(plan: ScanPlan, snapshot: Snapshot) -> List[str]:
    names = []
    for item in plan.with_action(*_WAIT_ACTIONS):
        device = find_device(item=item, snapshot=snapshot)
        if device is not None and device.name is not None:
            names.append(device.name)
    return names


def wait_for_devices(
    *,
    plan: ScanPlan,
    host: Host,
    timeout: float,
    scanned: Sequence[SysfsWrite] = (),
    again: Optional[List[SysfsWrite]] = None,
) -> Tuple[Snapshot, float]:
    """Wait until every scanned item has a block device that udev has processed; returns the last snapshot
    and seconds waited.

    Each check reads sysfs; between checks the host pauses until its next udev event (or the poll interval
    without a monitor). A block device that exists at the deadline but that udev has not finished with yet
    is not a failure (the kernel's part is done; its ``udev`` entry is then empty).

    The kernel drops a scan written while the iSCSI session is not logged in (it is in recovery: the portal
    went away), and a scan whose INQUIRY was lost when the connection dropped finds nothing; nothing scans
    again once the session has recovered. So an item still without a device whose session was seen out of
    LOGGED_IN since its scan was written is written once more as soon as its session is logged in again;
    each such write is appended to ``again`` (when given).

    :class:`ScanTimeout` after ``timeout`` seconds names the LUNs still without a block device, what sysfs
    showed for them, the state of their sessions when one was in recovery, and the exact lines written.
    """
    clock = host.clock
    start = clock()
    # the scan writes of items whose session was seen in recovery after the write, by (host, line)
    lost: Dict[Tuple[int, str], ScanItem] = {}
    recovered: Dict[Tuple[int, str], str] = {}  # what their sessions went through, for the error
    written_in_recovery = {
        (w.host, w.text): w.session_state for w in scanned if w.session_state not in (None, "LOGGED_IN")
    }
    for item in plan.with_action(ACTION_SCAN):
        key = (item.host, item.line)
        if key in written_in_recovery:  # ignored by the kernel: written again once the session is back
            lost[key] = item
            recovered[key] = f"session {item.sid} (host{item.host}) was {written_in_recovery[key]}"

    def rescan_recovered(snapshot: Snapshot, missing: Sequence[ScanItem]) -> None:
        for item in missing:
            session = snapshot.session(sid=item.sid) if item.sid is not None else None
            if session is None or item.action != ACTION_SCAN:
                continue
            key = (item.host, item.line)
            if not session.logged_in:
                lost[key] = item
                recovered[key] = f"session {session.sid} (host{item.host}) was {session.state or 'not logged in'}"
                continue
            if key in lost:
                del lost[key]
                path = scsi_host_scan_path(host=item.host, sysfs_root=host.sysfs_root)
                write = SysfsWrite(kind="scan", path=path, text=item.line, host=item.host, address=item.address)
                _write(host, write, [*scanned, *(again or [])])
                if again is not None:
                    again.append(write)

    def poll() -> Optional[Snapshot]:
        # each poll reads only what it decides on (names, states, WWIDs, sessions): on a host with hundreds of
        # SCSI devices their sizes, holders and inquiry data are most of a snapshot's reads; the caller gets one
        # full snapshot once every device is there
        snapshot = host.snapshot(device_detail=False)
        missing = missing_items(plan=plan, snapshot=snapshot)
        if missing:
            rescan_recovered(snapshot, missing)
            return None
        ready = all(host.udev_ready(name) for name in _waited_names(plan, snapshot))
        return host.snapshot() if ready else None

    try:
        # host.wait returns only a truthy poll result: a Snapshot, never None
        snapshot = cast(
            Snapshot,
            host.wait(
                poll,
                timeout=timeout,
                interval=_POLL_INTERVAL,
                backoff=_POLL_BACKOFF,
                max_interval=_POLL_MAX_INTERVAL,
                describe="block devices",
            ),
        )
    except WaitTimeout:
        final = host.snapshot()  # the full one, whatever the last poll read
        missing = missing_items(plan=plan, snapshot=final)
        if not missing:  # every block device is there; only udev has not finished with one of them
            return final, clock() - start
        lines = ", ".join(f"host{w.host} '{w.text}'" for w in [*scanned, *(again or [])]) or "nothing"
        seen = "; ".join(_seen(item, final) for item in missing)
        recovery = {i.address: recovered[(i.host, i.line)] for i in missing if (i.host, i.line) in recovered}
        outages = sorted(set(recovery.values()))
        cause = (
            "The session went into recovery during the wait (" + "; ".join(outages) + "): the portal or the "
            "network path went away, and the scan was written again each time the session logged in"
            if outages
            else "The array may not present this LUN to this initiator (check its LUN masking), or the LUN "
            "number or addressing mode is wrong"
        )
        raise ScanTimeout(
            f"timed out after {timeout:g}s waiting for the block device of "
            f"{', '.join(item.address for item in missing)}: {seen}. Scanned: {lines}. {cause}",
            timeout=timeout,
            waited_seconds=round(clock() - start, 3),
            missing=[item.address for item in missing],
            scanned=[w.to_dict() for w in [*scanned, *(again or [])]],
            snapshot=final,
            recovery=recovery,
        ) from None
    return snapshot, clock() - start


# ---------------------------------------------------------------------------------------------------------
# reporting


def device_facts(
    *, device: ScsiDevice, snapshot: Snapshot, new: bool, udev: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    """The documented ``devices`` entry for one SCSI device (``udev``: :meth:`Host.udev_properties`)."""
    session = snapshot.session(sid=device.sid) if device.sid is not None else None
    portal = None
    if session is not None:
        side = session.persistent_portal or session.portal
        portal = None if side is None else str(side)
    return {
        "hctl": str(device.hctl),
        "lun": device.hctl.lun,
        "name": device.name,
        "path": None if device.name is None else f"/dev/{device.name}",
        "wwid": device.wwid,
        "sysfs_wwid": device.sysfs_wwid,
        "state": device.state,
        "size_bytes": device.size_bytes,
        "read_only": device.read_only,
        "sid": device.sid,
        "target": None if session is None else session.targetname,
        "portal": portal,
        "new": new,
        "udev": udev,
    }


def _plan_devices(plan: ScanPlan, snapshot: Snapshot) -> List[ScsiDevice]:
    devices: List[ScsiDevice] = []
    for item in plan.items:
        device = find_device(item=item, snapshot=snapshot)
        if device is not None and device not in devices:
            devices.append(device)
    return sorted(devices, key=lambda device: device.hctl)


def _diff_text(devices: Sequence[ScsiDevice]) -> str:
    lines = []
    for device in devices:
        name = device.name or "(no block device)"
        lines.append(f"{device.hctl} {name} {device.wwid or '-'} {device.state or '-'} {device.size_bytes or 0}\n")
    return "".join(lines)


def _identity(device: Optional[ScsiDevice]) -> Optional[Tuple[Any, ...]]:
    if device is None:
        return None
    return (device.name, device.wwid, device.size_bytes, device.read_only)


def summarize(*, plan: ScanPlan, before: Snapshot, after: Snapshot, host: Optional[Host] = None) -> Dict[str, Any]:
    """Result keys from the two snapshots: ``devices`` (each flagged ``new``), ``changed``, ``diff``,
    ``pending`` (scanned, no block device yet) and ``unrequested`` (other devices that appeared meanwhile)."""
    devices = []
    changed = False
    for device in _plan_devices(plan, after):
        old = before.device_at(hctl=device.hctl)
        new = device.name is not None and (old is None or old.name is None)
        changed = changed or new or (old is not None and _identity(old) != _identity(device))
        udev = host.udev_properties(device.name) if host is not None else None
        devices.append(device_facts(device=device, snapshot=after, new=new, udev=udev))
    before_hctls = {device.hctl for device in before.devices}
    planned = {device.hctl for device in _plan_devices(plan, after)}
    unrequested = [
        str(device.hctl) for device in after.devices if device.hctl not in before_hctls and device.hctl not in planned
    ]
    return {
        "changed": changed,
        "devices": devices,
        "pending": [item.address for item in missing_items(plan=plan, snapshot=after)],
        "unrequested": unrequested,
        "diff": {"before": _diff_text(_plan_devices(plan, before)), "after": _diff_text(_plan_devices(plan, after))},
    }
