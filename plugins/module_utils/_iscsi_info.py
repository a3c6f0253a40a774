# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""The initiator's iSCSI state, read only: sessions with their LUNs, node records and discovery records.

Sources, each for what it knows best:

* sysfs (one :func:`_sysfs.read_snapshot`) for sessions: target, portals, iface, state, SCSI host, the LUNs
  attached through each session and the multipath map holding each LUN; plus the connection's ``state`` and
  the session's live ``recovery_tmo``. Only named attributes are read: the kernel also exposes the session's
  CHAP ``password`` and ``password_in`` there, readable by every user, and this code never opens them;
* ``iscsiadm -m node -o show`` (one command for every record) for node records, and ``iscsiadm -m
  discoverydb`` plus one ``-o show`` per record for discovery records. Neither needs iscsid. iscsiadm prints
  passwords as ``********``; whatever it prints, every setting whose name contains ``password`` is dropped
  on parsing, so that only "a password is set" (true/false) reaches a result.

:func:`observe` reads (``host.snapshot()`` and the runner, each command with a deadline) and changes
nothing; :func:`report` turns an observation into the module's result lists, filtered.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils import _iscsiadm as iscsiadm
from ansible_collections.lunsafe.san.plugins.module_utils._errors import LunsafeError
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._portal import Portal, resolve_portals
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import (
    IscsiSession,
    ScsiDevice,
    Snapshot,
    connection_dir,
    read_attribute,
)

__all__ = [
    "Filters",
    "Observation",
    "is_secret_setting",
    "make_filters",
    "observe",
    "report",
]

_SECRET_WORD = "password"  # noqa: S105 (the word to drop, not a password)


def is_secret_setting(key: str) -> bool:
    """True for every setting that may hold a CHAP secret (any name containing ``password``)."""
    return _SECRET_WORD in key.lower() or iscsiadm.is_secret_key(key)


def _public(record: Dict[str, str]) -> Dict[str, str]:
    """A record without its secret settings; the only way records enter an :class:`Observation`."""
    return {key: value for key, value in record.items() if not is_secret_setting(key)}


def _secret_set(record: Dict[str, str], key: str) -> bool:
    """Whether a password setting holds anything (``********`` or, from a tool that shows it, a value)."""
    return bool(record.get(key))


@dataclasses.dataclass(frozen=True)
class Record:
    """A node or discovery record, secrets removed, with which password settings were set."""

    settings: Dict[str, str]
    passwords_set: Dict[str, bool]  # setting name -> a value was set

    @classmethod
    def from_raw(cls, raw: Dict[str, str]) -> Record:
        secret_keys = [key for key in raw if is_secret_setting(key)]
        return cls(settings=_public(raw), passwords_set={key: _secret_set(raw, key) for key in secret_keys})


@dataclasses.dataclass(frozen=True)
class Discovery:
    portal: Portal
    kind: str  # sendtargets, isns
    record: Optional[Record]  # None: listed, then gone before it could be shown


@dataclasses.dataclass(frozen=True)
class Observation:
    snapshot: Snapshot
    live: Dict[int, Dict[str, Optional[str]]]  # sid -> connection state, recovery_tmo
    nodes: Tuple[Record, ...]
    discovery: Tuple[Discovery, ...]
    warnings: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Filters:
    targets: Tuple[str, ...]  # lower case
    portals: Tuple[Portal, ...]  # addresses (host names resolved)
    spelled: Dict[str, List[str]]  # what the user gave, for the result
    warnings: Tuple[str, ...]

    def target_ok(self, name: Optional[str]) -> bool:
        return not self.targets or (name is not None and name.lower() in self.targets)

    def portal_ok(self, *portals: Optional[Portal]) -> bool:
        if not self.portals:
            return True
        return any(p is not None and any(p.same_as(wanted) for wanted in self.portals) for p in portals)

    @property
    def active(self) -> bool:
        return bool(self.targets or self.portals)


def make_filters(*, targets: Optional[Sequence[str]], portals: Optional[Sequence[str]], host: Host) -> Filters:
    """Validate the filter options; host names in ``portals`` match every address they resolve to."""
    names = [iscsiadm.validate_target_name(name, option="targets") for name in targets or ()]
    resolved, warnings = resolve_portals([(text, None) for text in portals or ()], resolver=host.resolver)
    return Filters(
        targets=tuple(dict.fromkeys(name.lower() for name in names)),
        portals=tuple(entry.portal for entry in resolved),
        spelled={"targets": list(targets or ()), "portals": list(portals or ())},
        warnings=tuple(warnings),
    )


# ---------------------------------------------------------------------------------------------------------
# observe


def _require_iscsiadm(host: Host) -> None:
    if not host.runner.has_tool(iscsiadm.TOOL):
        raise LunsafeError(
            "iscsiadm was not found on this host: install open-iscsi (package open-iscsi on Debian and Ubuntu, "
            "iscsi-initiator-utils on RHEL and its rebuilds); without it there are no node or discovery records "
            "to read",
            tool=iscsiadm.TOOL,
        )


def _read_live(snapshot: Snapshot) -> Dict[int, Dict[str, Optional[str]]]:
    """The few session and connection attributes the snapshot does not carry (never the CHAP ones)."""
    live: Dict[int, Dict[str, Optional[str]]] = {}
    for session in snapshot.sessions:
        conn = connection_dir(sid=session.sid, sysfs_root=snapshot.sysfs_root)
        session_dir = os.path.join(snapshot.sysfs_root, "class", "iscsi_session", f"session{session.sid}")
        live[session.sid] = {
            "connection_state": None if conn is None else read_attribute(os.path.join(conn, "state")),
            "recovery_tmo": read_attribute(os.path.join(session_dir, "recovery_tmo")),
        }
    return live


def _read_nodes(host: Host, timeout: float) -> Tuple[Record, ...]:
    result = host.runner.run(
        iscsiadm.node_show_all(), ok_rcs=iscsiadm.QUERY_OK_RCS, timeout=timeout, sensitive_output=True
    )
    if iscsiadm.is_absent(result.rc):
        return ()
    return tuple(Record.from_raw(raw) for raw in iscsiadm.parse_node_records(result.stdout))


def _read_discovery(host: Host, timeout: float) -> Tuple[Tuple[Discovery, ...], List[str]]:
    listed = host.runner.run(iscsiadm.discoverydb_list(), ok_rcs=iscsiadm.QUERY_OK_RCS, timeout=timeout)
    if iscsiadm.is_absent(listed.rc):
        return (), []
    found: List[Discovery] = []
    warnings: List[str] = []
    for portal, kind in iscsiadm.parse_discovery_entries(listed.stdout):
        if kind not in iscsiadm.DISCOVERY_TYPES:
            warnings.append(f"discovery record {portal} via {kind}: type not read by this module")
            continue
        shown = host.runner.run(
            iscsiadm.discoverydb_show(portal=portal, discovery_type=kind),
            ok_rcs=iscsiadm.DISCOVERY_SHOW_OK_RCS,
            timeout=timeout,
            sensitive_output=True,
        )
        if shown.rc != 0:
            warnings.append(
                f"discovery record {portal} via {kind} was listed but could not be shown "
                f"({iscsiadm.describe_rc(shown.rc)}): deleted meanwhile?"
            )
            found.append(Discovery(portal=portal, kind=kind, record=None))
            continue
        found.append(
            Discovery(portal=portal, kind=kind, record=Record.from_raw(iscsiadm.parse_node_record(shown.stdout)))
        )
    return tuple(found), warnings


def observe(host: Host, *, timeout: float) -> Observation:
    """Read sysfs and the iscsiadm databases; runs only queries, each bounded by ``timeout`` seconds."""
    _require_iscsiadm(host)
    snapshot = host.snapshot()
    nodes = _read_nodes(host, timeout)
    discovery, warnings = _read_discovery(host, timeout)
    return Observation(
        snapshot=snapshot, live=_read_live(snapshot), nodes=nodes, discovery=discovery, warnings=tuple(warnings)
    )


# ---------------------------------------------------------------------------------------------------------
# report


def _int(value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    try:
        return int(value.strip(), 10)
    except ValueError:
        return None


def _text(value: Optional[str]) -> Optional[str]:
    """A setting's value; ``<empty>`` (parsed to "") and a missing setting are both None."""
    return value if value else None


def _portal_fields(portal: Optional[Portal]) -> Dict[str, Any]:
    return {
        "portal": None if portal is None else portal.for_iscsiadm(),
        "address": None if portal is None else portal.address,
        "port": None if portal is None else portal.port,
    }


def _record_portal(settings: Dict[str, str], address_key: str, port_key: str) -> Optional[Portal]:
    address = _text(settings.get(address_key))
    port = _int(settings.get(port_key))
    if address is None or port is None:
        return None
    return Portal(address[1:-1] if address.startswith("[") else address, port)


def _auth(record: Record, prefix: str) -> Dict[str, Any]:
    settings = record.settings
    return {
        "method": _text(settings.get(f"{prefix}.authmethod")),
        "username": _text(settings.get(f"{prefix}.username")),
        "password_set": record.passwords_set.get(f"{prefix}.password", False),
        "username_in": _text(settings.get(f"{prefix}.username_in")),
        "password_in_set": record.passwords_set.get(f"{prefix}.password_in", False),
    }


@dataclasses.dataclass(frozen=True)
class _Node:
    target: Optional[str]
    portal: Optional[Portal]
    iface: Optional[str]
    record: Record

    def key(self) -> Tuple[str, Tuple[str, int], str]:
        return ((self.target or "").lower(), self.portal.key() if self.portal else ("", 0), self.iface or "")

    def serves(self, session: IscsiSession) -> bool:
        """This record is the one the session logged in with (target, login portal and iface)."""
        if self.target is None or session.targetname is None or self.target.lower() != session.targetname.lower():
            return False
        if (self.iface or "default") != (session.ifacename or "default"):
            return False
        login_portal = session.persistent_portal or session.portal
        return self.portal is not None and login_portal is not None and self.portal.same_as(login_portal)


def _nodes(observation: Observation) -> List[_Node]:
    nodes = []
    for record in observation.nodes:
        settings = record.settings
        nodes.append(
            _Node(
                target=_text(settings.get("node.name")),
                portal=_record_portal(settings, "node.conn[0].address", "node.conn[0].port"),
                iface=_text(settings.get("iface.iscsi_ifacename")),
                record=record,
            )
        )
    return sorted(nodes, key=_Node.key)


def _lun(device: ScsiDevice, snapshot: Snapshot) -> Dict[str, Any]:
    dm_map = None if device.name is None else snapshot.multipath_map_for(names=[device.name])
    return {
        "hctl": str(device.hctl),
        "lun": device.hctl.lun,
        "device": device.name,
        "state": device.state,
        "size_bytes": device.size_bytes,
        "read_only": device.read_only,
        "wwid": device.wwid,
        "multipath_map": None if dm_map is None else dm_map.name,
        "dm": None if dm_map is None else dm_map.dm,
    }


def _session(session: IscsiSession, observation: Observation, nodes: List[_Node]) -> Dict[str, Any]:
    live = observation.live.get(session.sid, {})
    snapshot = observation.snapshot
    node = next((node for node in nodes if node.serves(session)), None)
    entry: Dict[str, Any] = {"sid": session.sid, "target": session.targetname}
    entry.update(_portal_fields(session.portal))
    persistent = session.persistent_portal
    entry.update(
        {
            "persistent_portal": None if persistent is None else persistent.for_iscsiadm(),
            "tpgt": session.tpgt,
            "iface": session.ifacename,
            "initiator": session.initiatorname,
            "transport": session.transport,
            "host": session.host,
            "state": session.state,
            "connection_state": live.get("connection_state"),
            "target_state": session.target_state,
            "replacement_timeout": _int(live.get("recovery_tmo")),
            "scan": None if node is None else _text(node.record.settings.get("node.session.scan")),
            "luns": [_lun(device, snapshot) for device in snapshot.devices_of_session(sid=session.sid)],
        }
    )
    return entry


_NODE_TIMEOUTS = {
    "replacement_timeout": "node.session.timeo.replacement_timeout",
    "noop_out_interval": "node.conn[0].timeo.noop_out_interval",
    "noop_out_timeout": "node.conn[0].timeo.noop_out_timeout",
    "login_timeout": "node.conn[0].timeo.login_timeout",
    "logout_timeout": "node.conn[0].timeo.logout_timeout",
    "abort_timeout": "node.session.err_timeo.abort_timeout",
    "lu_reset_timeout": "node.session.err_timeo.lu_reset_timeout",
}


def _node(node: _Node, sessions: Sequence[IscsiSession], all_settings: bool) -> Dict[str, Any]:
    settings = node.record.settings
    entry: Dict[str, Any] = {"target": node.target}
    entry.update(_portal_fields(node.portal))
    entry.update(
        {
            "tpgt": _int(settings.get("node.tpgt")),
            "iface": node.iface,
            "transport": _text(settings.get("iface.transport_name")),
            "startup": _text(settings.get("node.startup")),
            "scan": _text(settings.get("node.session.scan")),
            "auth": _auth(node.record, "node.session.auth"),
            "timeouts": {name: _int(settings.get(key)) for name, key in _NODE_TIMEOUTS.items()},
            "discovery": {
                "type": _text(settings.get("node.discovery_type")),
                **_portal_fields(_record_portal(settings, "node.discovery_address", "node.discovery_port")),
            },
            "sids": [session.sid for session in sessions if node.serves(session)],
        }
    )
    if all_settings:
        entry["settings"] = dict(sorted(settings.items()))
    return entry


def _discovery(found: Discovery, all_settings: bool) -> Dict[str, Any]:
    record = found.record or Record(settings={}, passwords_set={})
    settings = record.settings
    prefix = f"discovery.{found.kind}"
    entry: Dict[str, Any] = {"type": found.kind}
    entry.update(_portal_fields(found.portal))
    entry.update(
        {
            "startup": _text(settings.get("discovery.startup")),
            "auth": _auth(record, f"{prefix}.auth"),
            "login_timeout": _int(settings.get(f"{prefix}.timeo.login_timeout")),
            "use_discoveryd": _text(settings.get(f"{prefix}.use_discoveryd")),
            "readable": found.record is not None,
        }
    )
    if all_settings:
        entry["settings"] = dict(sorted(settings.items()))
    return entry


def report(observation: Observation, *, filters: Filters, all_settings: bool = False) -> Dict[str, Any]:
    """``sessions``, ``nodes``, ``discovery``, ``filters`` and ``warnings`` of the result, filtered: sessions
    and nodes by target and portal (a session by its current or its login portal), discovery records by
    portal only (they belong to no target)."""
    nodes = _nodes(observation)
    all_sessions = observation.snapshot.sessions
    sessions = [
        _session(session, observation, nodes)
        for session in all_sessions
        if filters.target_ok(session.targetname) and filters.portal_ok(session.portal, session.persistent_portal)
    ]
    node_entries = [
        _node(node, all_sessions, all_settings)
        for node in nodes
        if filters.target_ok(node.target) and filters.portal_ok(node.portal)
    ]
    discovery = [_discovery(found, all_settings) for found in observation.discovery if filters.portal_ok(found.portal)]
    warnings = list(filters.warnings) + list(observation.warnings)
    if filters.active and not (sessions or node_entries or discovery):
        targets = ", ".join(filters.spelled["targets"]) or "any"
        portals = ", ".join(filters.spelled["portals"]) or "any"
        warnings.append(
            f"no session, node record or discovery record matches the filters (targets: {targets}; portals: {portals})"
        )
    return {
        "sessions": sessions,
        "nodes": node_entries,
        "discovery": discovery,
        "filters": filters.spelled,
        "warnings": warnings,
    }
