# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""iscsiadm (open-iscsi) without I/O: input validation, argv builders, output
parsers and the meaning of its exit codes.  Nothing here runs a command; pass the
argv lists to the runner (_runner.Runner.run) with the accepted return codes
given below (QUERY_OK_RCS, LOGIN_OK_RCS, ...).

Builders return ``["iscsiadm", ...]``: the runner resolves the tool name.  CHAP
passwords are wrapped in _runner.Secret so that the runner redacts them; note that
they are still visible in the process list while iscsiadm runs (iscsiadm has no
other way to receive them).

Users: iscsi_lun_attach (node records, CHAP, login/logout), scsi_targeted_scan
(target + portal addressing), multipath_faulty_facts (session list), roles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError
from ansible_collections.lunsafe.san.plugins.module_utils._portal import DEFAULT_PORT, Portal, parse_portal
from ansible_collections.lunsafe.san.plugins.module_utils._runner import Secret

__all__ = [
    "ABSENT_RCS",
    "ALREADY_RCS",
    "DEFAULT_PORT",
    "DISCOVERY_SHOW_OK_RCS",
    "DISCOVERY_TYPES",
    "EXIT_CODES",
    "LOGIN_OK_RCS",
    "LOGOUT_OK_RCS",
    "MANUAL_SCAN_UNSUPPORTED_RC",
    "NODE_NEW_OK_RCS",
    "QUERY_OK_RCS",
    "SECRET_KEY_SUFFIXES",
    "TRANSIENT_RCS",
    "NodeEntry",
    "Portal",
    "SessionEntry",
    "describe_rc",
    "discoverydb_delete",
    "discoverydb_discover",
    "discoverydb_list",
    "discoverydb_new",
    "discoverydb_show",
    "discoverydb_update",
    "is_absent",
    "is_already",
    "is_masked",
    "is_secret_key",
    "is_transient",
    "login",
    "logout",
    "node_delete",
    "node_list",
    "node_new",
    "node_show",
    "node_show_all",
    "node_update",
    "parse_discovery_entries",
    "parse_discovery_list",
    "parse_node_list",
    "parse_node_record",
    "parse_node_records",
    "parse_portal",
    "parse_session_list",
    "rc_name",
    "sendtargets_probe",
    "session_list",
    "validate_iface",
    "validate_setting_key",
    "validate_target_name",
]

TOOL = "iscsiadm"
MASKED = "********"
EMPTY = "<empty>"

# ---------------------------------------------------------------------------
# Exit codes: include/iscsi_err.h of open-iscsi (0..31) and iscsiadm(8) (32).
# 255 is what old iscsiadm versions return for "no records found" (exit(-1)).

EXIT_CODES: Dict[int, Tuple[str, str]] = {
    0: ("ISCSI_SUCCESS", "command executed successfully"),
    1: ("ISCSI_ERR", "generic error"),
    2: ("ISCSI_ERR_SESS_NOT_FOUND", "session could not be found"),
    3: ("ISCSI_ERR_NOMEM", "could not allocate resource for operation"),
    4: ("ISCSI_ERR_TRANS", "transport error caused operation to fail"),
    5: ("ISCSI_ERR_LOGIN", "generic login failure"),
    6: ("ISCSI_ERR_IDBM", "error accessing or managing the iSCSI node database"),
    7: ("ISCSI_ERR_INVAL", "invalid argument"),
    8: ("ISCSI_ERR_TRANS_TIMEOUT", "connection timer expired while trying to connect"),
    9: ("ISCSI_ERR_INTERNAL", "generic internal iscsid failure"),
    10: ("ISCSI_ERR_LOGOUT", "logout failed"),
    11: ("ISCSI_ERR_PDU_TIMEOUT", "iSCSI PDU timed out"),
    12: ("ISCSI_ERR_TRANS_NOT_FOUND", "iSCSI transport module not loaded in kernel or iscsid"),
    13: ("ISCSI_ERR_ACCESS", "permission denied"),
    14: ("ISCSI_ERR_TRANS_CAPS", "transport module did not support operation"),
    15: ("ISCSI_ERR_SESS_EXISTS", "session is already logged in"),
    16: ("ISCSI_ERR_INVALID_MGMT_REQ", "invalid IPC management request"),
    17: ("ISCSI_ERR_ISNS_UNAVAILABLE", "iSNS service is not supported"),
    18: ("ISCSI_ERR_ISCSID_COMM_ERR", "a read or write to iscsid failed"),
    19: ("ISCSI_ERR_FATAL_LOGIN", "fatal login error"),
    20: ("ISCSI_ERR_ISCSID_NOTCONN", "could not connect to iscsid"),
    21: ("ISCSI_ERR_NO_OBJS_FOUND", "no records, targets, sessions or portals found"),
    22: ("ISCSI_ERR_SYSFS_LOOKUP", "could not look up object in sysfs"),
    23: ("ISCSI_ERR_HOST_NOT_FOUND", "could not look up host"),
    24: ("ISCSI_ERR_LOGIN_AUTH_FAILED", "login failed due to authorization failure"),
    25: ("ISCSI_ERR_ISNS_QUERY", "iSNS query failed"),
    26: ("ISCSI_ERR_ISNS_REG_FAILED", "iSNS registration or deregistration failed"),
    27: ("ISCSI_ERR_OP_NOT_SUPP", "operation not supported"),
    28: ("ISCSI_ERR_BUSY", "device or resource in use"),
    29: ("ISCSI_ERR_AGAIN", "operation failed, but retrying later may succeed"),
    30: ("ISCSI_ERR_UNKNOWN_DISCOVERY_TYPE", "unknown discovery type"),
    31: ("ISCSI_ERR_CHILD_TERMINATED", "child process terminated"),
    32: ("ISCSI_ERR_SESSION_NOT_CONNECTED", "session likely not connected"),
    255: ("ISCSI_ERR_LEGACY_NOT_FOUND", "no records found (exit code of older iscsiadm versions)"),
}

# Queries (-m session, -m node, -m node -T -p): "nothing there" is an answer.
ABSENT_RCS: FrozenSet[int] = frozenset((21, 255))
QUERY_OK_RCS: Tuple[int, ...] = (0, 21, 255)
# Login: 15 means the session already exists, which is what we wanted.
ALREADY_RCS: FrozenSet[int] = frozenset((15,))
LOGIN_OK_RCS: Tuple[int, ...] = (0, 15)
# Logout and node delete: no matching session/record means already done.
LOGOUT_OK_RCS: Tuple[int, ...] = (0, 21, 255)
# -o new on an existing record: older versions answer 6 (IDBM) "already exists".
NODE_NEW_OK_RCS: Tuple[int, ...] = (0,)
# Worth another try after a pause (bounded by the caller).
TRANSIENT_RCS: FrozenSet[int] = frozenset((4, 8, 11, 18, 20, 28, 29, 32))
# ``-o update -n node.session.scan`` exits 7 (ISCSI_ERR_INVAL) on an iscsiadm that
# does not know the setting: manual scan is then unsupported (pitfall 16).
MANUAL_SCAN_UNSUPPORTED_RC = 7


def rc_name(rc: int) -> str:
    """The iscsi_err.h name of an exit code, e.g. ``ISCSI_ERR_SESS_EXISTS``."""
    entry = EXIT_CODES.get(rc)
    return entry[0] if entry else f"UNKNOWN_{rc}"


def describe_rc(rc: int) -> str:
    """``"ISCSI_ERR_LOGIN_AUTH_FAILED (24): login failed due to authorization failure"``."""
    entry = EXIT_CODES.get(rc)
    if entry is None:
        return f"unknown iscsiadm exit code {rc}"
    return f"{entry[0]} ({rc}): {entry[1]}"


def is_absent(rc: int) -> bool:
    """True if a query found nothing (21, or 255 from older versions)."""
    return rc in ABSENT_RCS


def is_already(rc: int) -> bool:
    """True if a login failed only because the session already exists (15)."""
    return rc in ALREADY_RCS


def is_transient(rc: int) -> bool:
    """True if retrying after a pause may help (transport, timeouts, iscsid busy)."""
    return rc in TRANSIENT_RCS


# ---------------------------------------------------------------------------
# Input validation


_IQN_RE = re.compile(
    r"^iqn\.(?P<year>\d{4})-(?P<month>\d{2})"
    r"\.(?P<authority>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)"
    r"(?::(?P<rest>[!-~]+))?$",
    re.IGNORECASE,
)
_EUI_RE = re.compile(r"^eui\.[0-9a-f]{16}$", re.IGNORECASE)
_NAA_RE = re.compile(r"^naa\.(?:[0-9a-f]{16}|[0-9a-f]{32})$", re.IGNORECASE)
_MAX_NAME_BYTES = 223  # RFC 3720 section 3.2.6.1


def validate_target_name(name: str, *, option: str = "target") -> str:
    """Check an iSCSI name (RFC 3720/3721) and return it unchanged.

    Accepted: ``iqn.YYYY-MM.reversed.domain[:anything printable]``,
    ``eui.`` + 16 hex digits, ``naa.`` + 16 or 32 hex digits.
    """
    if not isinstance(name, str) or not name:
        raise InputError(f"{option} must be a non-empty iSCSI name", option=option, value=name)
    if len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        raise InputError(f"{option} is longer than {_MAX_NAME_BYTES} bytes: {name!r}", option=option, value=name)
    match = _IQN_RE.match(name)
    if match:
        if not 1 <= int(match.group("month")) <= 12:
            raise InputError(f"{option} has an invalid month in its date: {name!r}", option=option, value=name)
        return name
    if _EUI_RE.match(name) or _NAA_RE.match(name):
        return name
    raise InputError(
        f"{option} is not an iSCSI name (iqn.YYYY-MM.reversed.domain[:id], eui.<16 hex>, naa.<16|32 hex>): {name!r}",
        option=option,
        value=name,
    )


_IFACE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def validate_iface(iface: str, *, option: str = "iface") -> str:
    """Check an open-iscsi iface name (``default``, ``iser``, ``bnx2i.00:11:...``)."""
    if not isinstance(iface, str) or not _IFACE_RE.match(iface):
        raise InputError(f"{option} is not a valid open-iscsi iface name: {iface!r}", option=option, value=iface)
    return iface


_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*(?:\[\d+\])?(?:\.[a-z0-9_]+(?:\[\d+\])?)+$", re.IGNORECASE)


def validate_setting_key(key: str, *, prefix: str = "node.", option: str = "key") -> str:
    """Check a node/discovery setting name such as ``node.conn[0].timeo.noop_out_interval``."""
    if not isinstance(key, str) or not _KEY_RE.match(key) or not key.startswith(prefix):
        raise InputError(f"{option} is not a valid {prefix}* setting name: {key!r}", option=option, value=key)
    return key


SECRET_KEY_SUFFIXES: Tuple[str, ...] = (".password", ".password_in")


def is_secret_key(key: str) -> bool:
    """True for CHAP password settings (session and discovery, normal and mutual)."""
    return key.endswith(SECRET_KEY_SUFFIXES)


def is_masked(value: Optional[str]) -> bool:
    """True if iscsiadm printed a secret as ``********`` instead of its value."""
    return value == MASKED


# ---------------------------------------------------------------------------
# Portals


def _split_output_portal(text: str) -> Optional[Tuple[Portal, int]]:
    """``10.0.0.1:3260,1`` / ``[fd00::1]:3260,1`` from iscsiadm output; None if not one."""
    hostport, sep, tpgt = text.rpartition(",")
    if not sep or not re.match(r"^-?\d+$", tpgt):
        return None
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0 or not hostport[close + 1 :].startswith(":"):
            return None
        address, port_text = hostport[1:close], hostport[close + 2 :]
    else:
        address, sep, port_text = hostport.rpartition(":")
        if not sep:
            return None
    if not address or not port_text.isdigit():
        return None
    return Portal(address, int(port_text)), int(tpgt)


# ---------------------------------------------------------------------------
# argv builders (pure, keyword-only)


def _node_argv(target: str, portal: Portal, iface: Optional[str]) -> List[str]:
    argv = [TOOL, "-m", "node", "-T", validate_target_name(target), "-p", portal.for_iscsiadm()]
    if iface is not None:
        argv += ["-I", validate_iface(iface)]
    return argv


def session_list() -> List[str]:
    """``iscsiadm -m session``: rc 21 (or 255) means no session (QUERY_OK_RCS)."""
    return [TOOL, "-m", "session"]


def node_list() -> List[str]:
    """``iscsiadm -m node``: rc 21 (or 255) means no record (QUERY_OK_RCS)."""
    return [TOOL, "-m", "node"]


def node_show(*, target: str, portal: Portal, iface: Optional[str] = None, show_secrets: bool = False) -> List[str]:
    """``iscsiadm -m node -T IQN -p PORTAL [-I IFACE] -o show [-S]``.

    With ``show_secrets`` iscsiadm prints CHAP passwords instead of ``********``:
    run it with ``sensitive_output=True`` and never store its raw output.
    """
    argv = [*_node_argv(target, portal, iface), "-o", "show"]
    if show_secrets:
        argv.append("-S")
    return argv


def node_show_all() -> List[str]:
    """``iscsiadm -m node -o show``: every node record, each between ``# BEGIN RECORD`` and ``# END RECORD``
    (parse_node_records); passwords are printed as ``********``; rc 21 (or 255) means no record."""
    return [TOOL, "-m", "node", "-o", "show"]


def node_new(*, target: str, portal: Portal, iface: Optional[str] = None) -> List[str]:
    """``iscsiadm -m node -T IQN -p PORTAL [-I IFACE] -o new``: create the node record."""
    return [*_node_argv(target, portal, iface), "-o", "new"]


def node_update(
    *, target: str, portal: Portal, settings: Sequence[Tuple[str, str]], iface: Optional[str] = None
) -> List[str]:
    """``... -o update -n KEY1 -v VALUE1 -n KEY2 -v VALUE2 ...``: several keys in one update.

    iscsiadm collects every ``-n``/``-v`` pair into one list and applies the whole list to the record before
    it writes the record once (``idbm_node_set_rec_from_param``): one process instead of one per key, and no
    record is ever written with only some of the keys (an unknown key fails the whole update, rc 7). Password
    values are wrapped in Secret, decided from each key.
    """
    if not settings:
        raise ValueError("node_update needs at least one setting")
    argv = [*_node_argv(target, portal, iface), "-o", "update"]
    for key, value in settings:
        validate_setting_key(key, prefix="node.")
        argv += ["-n", key, "-v", Secret(value) if is_secret_key(key) else value]
    return argv


def node_delete(*, target: str, portal: Portal, iface: Optional[str] = None) -> List[str]:
    """``... -o delete``: rc 21/255 means the record was already gone (LOGOUT_OK_RCS)."""
    return [*_node_argv(target, portal, iface), "-o", "delete"]


def login(*, target: str, portal: Portal, iface: Optional[str] = None) -> List[str]:
    """``... --login``: rc 15 means already logged in (LOGIN_OK_RCS).

    Set ``node.session.scan=manual`` on the record *before* this (pitfall 16).
    """
    return [*_node_argv(target, portal, iface), "--login"]


def logout(*, target: str, portal: Portal, iface: Optional[str] = None) -> List[str]:
    """``... --logout``: rc 21/255 means there was no session (LOGOUT_OK_RCS)."""
    return [*_node_argv(target, portal, iface), "--logout"]


def _discovery_argv(portal: Portal, iface: Optional[str]) -> List[str]:
    argv = [TOOL, "-m", "discoverydb", "-t", "sendtargets", "-p", portal.for_iscsiadm()]
    if iface is not None:
        argv += ["-I", validate_iface(iface)]
    return argv


def discoverydb_list() -> List[str]:
    """``iscsiadm -m discoverydb``: rc 21 (or 255) means no discovery record (QUERY_OK_RCS)."""
    return [TOOL, "-m", "discoverydb"]


#: Discovery types whose records ``-m discoverydb`` lists and shows.
DISCOVERY_TYPES: Tuple[str, ...] = ("sendtargets", "isns")
#: ``-m discoverydb -t T -p P -o show``: 6 (IDBM, "Discovery record [...] not found") and 21 mean the record
#: is not there (open-iscsi 2.1.8 answers 6 for a record deleted since it was listed).
DISCOVERY_SHOW_OK_RCS: Tuple[int, ...] = (0, 6, 21, 255)


def discoverydb_show(*, portal: Portal, discovery_type: str = "sendtargets") -> List[str]:
    """``iscsiadm -m discoverydb -t TYPE -p PORTAL -o show``: one discovery record as ``key = value`` lines,
    passwords printed as ``********`` (DISCOVERY_SHOW_OK_RCS)."""
    if discovery_type not in DISCOVERY_TYPES:
        raise InputError(
            f"discovery type must be one of {', '.join(DISCOVERY_TYPES)}, got {discovery_type!r}",
            option="discovery_type",
            value=discovery_type,
        )
    return [TOOL, "-m", "discoverydb", "-t", discovery_type, "-p", portal.for_iscsiadm(), "-o", "show"]


def discoverydb_delete(*, portal: Portal, iface: Optional[str] = None) -> List[str]:
    """``iscsiadm -m discoverydb -t sendtargets -p PORTAL [-I IFACE] -o delete``.

    iscsiadm also deletes the node records linked to this discovery record (those it created), but
    not records that existed before that discovery (seen with open-iscsi 2.1.8).
    """
    return [*_discovery_argv(portal, iface), "-o", "delete"]


def discoverydb_new(*, portal: Portal, iface: Optional[str] = None) -> List[str]:
    """``iscsiadm -m discoverydb -t sendtargets -p PORTAL [-I IFACE] -o new``."""
    return [*_discovery_argv(portal, iface), "-o", "new"]


def discoverydb_update(
    *,
    portal: Portal,
    key: str,
    value: str,
    iface: Optional[str] = None,
    secret: Optional[bool] = None,
) -> List[str]:
    """``... -o update -n discovery.sendtargets.* -v VALUE`` (discovery CHAP and timeouts)."""
    validate_setting_key(key, prefix="discovery.sendtargets.")
    is_secret = is_secret_key(key) if secret is None else secret
    shown_value = Secret(value) if is_secret else value
    return [*_discovery_argv(portal, iface), "-o", "update", "-n", key, "-v", shown_value]


def sendtargets_probe(*, portal: Portal, iface: Optional[str] = None) -> List[str]:
    """``iscsiadm -m discovery -t sendtargets -p PORTAL [-I IFACE] -o nonpersistent``: the targets a portal
    offers, printed and not stored (no discovery or node record is written). Used to tell an unknown target
    name from an unreachable portal after a failed login."""
    argv = [TOOL, "-m", "discovery", "-t", "sendtargets", "-p", portal.for_iscsiadm()]
    if iface is not None:
        argv += ["-I", validate_iface(iface)]
    return [*argv, "-o", "nonpersistent"]


_DISCOVER_OPS = ("new", "update", "delete", "nonpersistent")


def discoverydb_discover(*, portal: Portal, iface: Optional[str] = None, ops: Tuple[str, ...] = ("new",)) -> List[str]:
    """``... --discover -o new``.

    Without any ``-o``, iscsiadm applies new + update + delete to the node database:
    existing records are reset to iscsid.conf defaults (``node.session.scan``
    included) and records the target no longer reports are deleted.  The default
    here adds new records only.  Re-apply ``node.session.scan=manual`` to every
    discovered record afterwards all the same (new records get the defaults).
    """
    if not ops or any(op not in _DISCOVER_OPS for op in ops):
        raise InputError(f"discovery ops must be some of {', '.join(_DISCOVER_OPS)}", option="ops", value=list(ops))
    argv = [*_discovery_argv(portal, iface), "--discover"]
    for op in ops:
        argv += ["-o", op]
    return argv


# ---------------------------------------------------------------------------
# Output parsers


@dataclass(frozen=True)
class SessionEntry:
    """One line of ``iscsiadm -m session``."""

    transport: str
    sid: int
    portal: Portal
    tpgt: int
    target: str
    flash: Optional[bool]

    def to_dict(self) -> Dict[str, object]:
        return {
            "transport": self.transport,
            "sid": self.sid,
            "portal": self.portal.for_iscsiadm(),
            "address": self.portal.address,
            "port": self.portal.port,
            "tpgt": self.tpgt,
            "target": self.target,
            "flash": self.flash,
        }


_SESSION_RE = re.compile(
    r"^(?P<transport>[A-Za-z0-9_.-]+):\s+\[(?P<sid>\d+)\]\s+(?P<portal>\S+)\s+(?P<target>\S+)"
    r"(?:\s+\((?P<flash>flash|non-flash)\))?\s*$"
)


def parse_session_list(text: str) -> List[SessionEntry]:
    """Parse ``iscsiadm -m session`` (any transport); lines that do not match are skipped.

    ``tcp: [1] 10.0.2.15:3260,1 iqn.2003-01.org.linux-iscsi.lab:target (non-flash)``
    """
    sessions: List[SessionEntry] = []
    for line in text.splitlines():
        match = _SESSION_RE.match(line.strip())
        if not match:
            continue
        split = _split_output_portal(match.group("portal"))
        if split is None:
            continue
        portal, tpgt = split
        flash = match.group("flash")
        sessions.append(
            SessionEntry(
                transport=match.group("transport"),
                sid=int(match.group("sid")),
                portal=portal,
                tpgt=tpgt,
                target=match.group("target"),
                flash=None if flash is None else flash == "flash",
            )
        )
    return sessions


@dataclass(frozen=True)
class NodeEntry:
    """One line of ``iscsiadm -m node``."""

    portal: Portal
    tpgt: int
    target: str

    def to_dict(self) -> Dict[str, object]:
        return {"portal": self.portal.for_iscsiadm(), "tpgt": self.tpgt, "target": self.target}


def parse_node_list(text: str) -> List[NodeEntry]:
    """Parse ``iscsiadm -m node``: ``127.0.0.1:3260,1 iqn...`` per line."""
    nodes: List[NodeEntry] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 2:
            continue
        split = _split_output_portal(fields[0])
        if split is None:
            continue
        nodes.append(NodeEntry(portal=split[0], tpgt=split[1], target=fields[1]))
    return nodes


def parse_discovery_entries(text: str) -> List[Tuple[Portal, str]]:
    """Parse ``iscsiadm -m discoverydb``: ``(portal, type)`` per record, ``127.0.0.1:3260 via sendtargets``,
    ``127.0.0.1:3205 via isns``.

    IPv6 portals are printed without brackets (``::1:3260 via sendtargets``); lines that are not
    ``PORTAL via TYPE`` are skipped.
    """
    entries: List[Tuple[Portal, str]] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3 or fields[1] != "via":
            continue
        text_portal = fields[0]
        if text_portal.startswith("["):
            split = _split_output_portal(text_portal + ",0")
            if split is not None:
                entries.append((split[0], fields[2]))
            continue
        address, sep, port_text = text_portal.rpartition(":")
        if sep and address and port_text.isdigit():
            entries.append((Portal(address, int(port_text)), fields[2]))
    return entries


def parse_discovery_list(text: str) -> List[Portal]:
    """Parse ``iscsiadm -m discoverydb``: the SendTargets records, ``127.0.0.1:3260 via sendtargets``.

    IPv6 portals are printed without brackets (``::1:3260 via sendtargets``); other discovery types
    (iSNS, firmware) are skipped.
    """
    return [portal for portal, kind in parse_discovery_entries(text) if kind == "sendtargets"]


def parse_node_record(text: str) -> Dict[str, str]:
    """Parse the ``key = value`` dump of ``iscsiadm -m node -T X -p Y``.

    ``<empty>`` becomes ``""``; masked passwords stay ``********`` (see is_masked);
    ``# BEGIN RECORD`` comments are skipped.  With several records (several
    ifaces) the last value of a key wins: query with ``-I`` to get one record.
    """
    record: Dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition(" = ")
        if not sep:
            if stripped.endswith(" ="):  # "key =" with nothing after it
                key, value = stripped[:-2], ""
            else:
                continue
        key = key.strip()
        if not key or " " in key:
            continue
        value = value.strip()
        record[key] = "" if value == EMPTY else value
    return record


def parse_node_records(text: str) -> List[Dict[str, str]]:
    """Parse a dump of several records (``iscsiadm -m node -o show``): one parse_node_record dict per
    ``# BEGIN RECORD`` ... ``# END RECORD`` block, in the order printed. Text outside the blocks is
    ignored; a dump without the markers (older versions) is one record if it has any key."""
    records: List[Dict[str, str]] = []
    block: Optional[List[str]] = None
    for line in text.splitlines():
        marker = line.strip()
        if marker.startswith("# BEGIN RECORD"):
            block = []
        elif marker == "# END RECORD":
            if block is not None:
                records.append(parse_node_record("\n".join(block)))
            block = None
        elif block is not None:
            block.append(line)
    if block:  # a dump cut short: keep what was printed
        records.append(parse_node_record("\n".join(block)))
    if not records and "# BEGIN RECORD" not in text:
        single = parse_node_record(text)
        if single:
            records.append(single)
    return [record for record in records if record]
