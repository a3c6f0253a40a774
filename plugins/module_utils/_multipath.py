# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""multipathd / multipath / dmsetup without I/O: argv builders and output parsers.

Preferred source: ``multipathd show paths|maps raw format F`` (multipath-tools
0.6.0+), parsed field by field.  Fields are joined with FIELD_SEP, the ASCII unit
separator (0x1f):
* it is not whitespace, so the multipathd client passes the format as one word and
  its command parser keeps it as one token (spaces would need quoting, tabs would
  split it);
* it never occurs in a value: kernel names, WWIDs (udev replaces unprintable
  characters), H:C:T:L, states, aliases and feature strings are printable text,
  while values such as ``i/o pending`` or ``1 queue_if_no_path`` contain spaces;
* the whole command stays far below multipathd's 160-byte command limit (CMDSIZE).
Beware: Python's str.split()/strip()/isspace() treat 0x1f as whitespace (C's
isspace() does not): always split on FIELD_SEP explicitly.
Fallbacks: ``dmsetup status`` / ``dmsetup table`` for one map, and ``multipath -ll``
as a last resort (log lines, action prefixes, tree glyphs and orphan rows handled).

multipathd answers some failures on stdout with rc 0 ("timeout", old "error
receiving packet"): always pass the result through classify_reply()/check_reply().

Users: multipath_faulty_facts (paths, maps, status), multipath_flush (flush, del,
disablequeueing, dmsetup status/table), iscsi_lun_attach (add wwid/path, -C).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils._errors import (
    DaemonUnavailable,
    InputError,
    ParseError,
)

__all__ = [
    "FIELD_SEP",
    "MAP_FIELDS",
    "MAP_FORMAT",
    "MULTIPATHD_OK_RCS",
    "PATH_FIELDS",
    "PATH_FORMAT",
    "REPLY_DATA",
    "REPLY_FAIL",
    "REPLY_NOT_RUNNING",
    "REPLY_OK",
    "REPLY_TIMEOUT",
    "DmMultipathStatus",
    "DmMultipathTable",
    "DmPathStatus",
    "LlGroup",
    "LlMap",
    "LlPath",
    "MapRecord",
    "PathRecord",
    "add_path",
    "add_wwid",
    "check_reply",
    "check_usable",
    "classify_reply",
    "del_map",
    "del_path",
    "disable_queueing",
    "dmsetup_fail_if_no_path",
    "dmsetup_fail_if_no_path_by_uuid",
    "dmsetup_info",
    "dmsetup_remove_deferred",
    "dmsetup_status",
    "dmsetup_status_all",
    "dmsetup_status_by_uuid",
    "dmsetup_table",
    "dmsetup_table_all",
    "dmsetup_table_by_uuid",
    "dmsetup_wipe_table",
    "flush_map",
    "list_topology",
    "parse_dmsetup_all",
    "parse_dmsetup_info",
    "parse_dmsetup_status",
    "parse_dmsetup_table",
    "parse_ll",
    "parse_maps",
    "parse_paths",
    "parse_status",
    "remove_wwid",
    "resize_map",
    "show_maps",
    "show_paths",
    "show_status",
    "validate_device_name",
    "validate_map_name",
]

MULTIPATHD = "multipathd"
MULTIPATH = "multipath"
DMSETUP = "dmsetup"

FIELD_SEP = "\x1f"
# Path fields, in order: kernel name, WWID, H:C:T:L, major:minor, dm state
# (active/failed/undef), checker state (ready/faulty/shaky/ghost/i/o pending/...),
# device state (running/offline), map alias or [orphan], checker name.
PATH_FIELDS: Tuple[Tuple[str, str], ...] = (
    ("dev", "%d"),
    ("wwid", "%w"),
    ("hctl", "%i"),
    ("devt", "%D"),
    ("dm_state", "%t"),
    ("checker_state", "%T"),
    ("dev_state", "%o"),
    ("multipath", "%m"),
    ("checker", "%c"),
)
# Map fields, in order: name (alias or WWID), WWID, dm-N, active path count
# (paths up or ghost), queueing (off/on/N sec/N chk/-), dm state (active/suspend),
# features ("1 queue_if_no_path").
MAP_FIELDS: Tuple[Tuple[str, str], ...] = (
    ("name", "%n"),
    ("wwid", "%w"),
    ("sysfs", "%d"),
    ("active_paths", "%N"),
    ("queueing", "%Q"),
    ("dm_state", "%t"),
    ("features", "%f"),
)
PATH_FORMAT = FIELD_SEP.join(wildcard for _field_name, wildcard in PATH_FIELDS)
MAP_FORMAT = FIELD_SEP.join(wildcard for _field_name, wildcard in MAP_FIELDS)

# multipathd exits 1 when it answers "fail" or cannot be reached: classify the reply.
MULTIPATHD_OK_RCS: Tuple[int, ...] = (0, 1)

REPLY_OK = "ok"
REPLY_FAIL = "fail"
REPLY_TIMEOUT = "timeout"
REPLY_NOT_RUNNING = "not_running"
REPLY_DATA = "data"

# Checker states that are not faults: ghost is an ALUA standby path.
UP_CHECKER_STATES = frozenset(("ready", "ghost"))
DOWN_CHECKER_STATES = frozenset(("faulty", "shaky", "i/o timeout", "disconnected"))

# ---------------------------------------------------------------------------
# Validation

_DEVICE_RE = re.compile(r"^(?:/dev/)?(?P<name>[A-Za-z0-9][A-Za-z0-9_.:!+-]{0,63})$")
_MAP_RE = re.compile(r"^[A-Za-z0-9_.:+@-][A-Za-z0-9_.:+@=-]{0,127}$")


def validate_device_name(device: str, *, option: str = "device") -> str:
    """A kernel block device name (``sdc``; ``/dev/sdc`` is reduced to ``sdc``)."""
    match = _DEVICE_RE.match(device) if isinstance(device, str) else None
    if not match or match.group("name") in (".", ".."):
        raise InputError(f"{option} is not a kernel block device name: {device!r}", option=option, value=device)
    return match.group("name")


def validate_map_name(name: str, *, option: str = "map") -> str:
    """A multipath map name: alias, WWID or ``dm-N`` (no path, no spaces)."""
    if not isinstance(name, str) or not _MAP_RE.match(name) or name in (".", ".."):
        raise InputError(f"{option} is not a multipath map name, WWID or dm-N: {name!r}", option=option, value=name)
    return name


# ---------------------------------------------------------------------------
# argv builders


def show_paths() -> List[str]:
    """``multipathd show paths raw format PATH_FORMAT``; parse with parse_paths()."""
    return [MULTIPATHD, "show", "paths", "raw", "format", PATH_FORMAT]


def show_maps() -> List[str]:
    """``multipathd show maps raw format MAP_FORMAT``; parse with parse_maps()."""
    return [MULTIPATHD, "show", "maps", "raw", "format", MAP_FORMAT]


def show_status() -> List[str]:
    """``multipathd show status``: the cheapest "is multipathd answering" probe."""
    return [MULTIPATHD, "show", "status"]


def add_path(*, device: str) -> List[str]:
    """``multipathd add path sdX``: make multipathd take a path (after multipath -a)."""
    return [MULTIPATHD, "add", "path", validate_device_name(device)]


def del_path(*, device: str) -> List[str]:
    """``multipathd del path sdX``: make multipathd forget a deleted path."""
    return [MULTIPATHD, "del", "path", validate_device_name(device)]


def del_map(*, name: str) -> List[str]:
    """``multipathd del map NAME``: remove a map through the daemon (forced cleanup)."""
    return [MULTIPATHD, "del", "map", validate_map_name(name)]


def resize_map(*, name: str) -> List[str]:
    """``multipathd resize map NAME``: reload the map at the size its paths report now.

    multipathd reads every path's size from sysfs first and answers ``fail`` when they differ (or when a
    path's size cannot be read); a map already at that size is left alone (``ok``).
    """
    return [MULTIPATHD, "resize", "map", validate_map_name(name)]


def disable_queueing(*, name: str) -> List[str]:
    """``multipathd disablequeueing map NAME``: queued and new I/O fail instead of hanging.

    Data queued on a map with no path is lost: only when safe or forced (pitfall 9).
    """
    return [MULTIPATHD, "disablequeueing", "map", validate_map_name(name)]


def flush_map(*, name: str) -> List[str]:
    """``multipath -f NAME``: flush one unused map.  Flush by *name* (os-brick #1663925).

    Exit 1 with "map in use" on stderr/stdout when something holds the map.
    """
    return [MULTIPATH, "-f", validate_map_name(name)]


def add_wwid(*, wwid: str) -> List[str]:
    """``multipath -a WWID``: add to the wwids file (find_multipaths strict/on/smart).

    Exit codes differ between versions: check stdout for ``wwid '...' added``.
    """
    return [MULTIPATH, "-a", validate_map_name(wwid, option="wwid")]


def remove_wwid(*, wwid: str) -> List[str]:
    """``multipath -w WWID``: remove from the wwids file after a detach."""
    return [MULTIPATH, "-w", validate_map_name(wwid, option="wwid")]


def check_usable(*, device: str) -> List[str]:
    """``multipath -C dm-N``: exit 0 if the map has usable paths (0.7.3+)."""
    return [MULTIPATH, "-C", validate_map_name(device, option="device")]


def list_topology(*, name: Optional[str] = None) -> List[str]:
    """``multipath -ll [NAME]``: last resort; parse with parse_ll()."""
    argv = [MULTIPATH, "-ll"]
    if name is not None:
        argv.append(validate_map_name(name))
    return argv


def dmsetup_status(*, name: str) -> List[str]:
    """``dmsetup status NAME``: per-path A/F flags of a multipath map."""
    return [DMSETUP, "status", validate_map_name(name)]


def dmsetup_table(*, name: str) -> List[str]:
    """``dmsetup table NAME``: features (queue_if_no_path) and path devices."""
    return [DMSETUP, "table", validate_map_name(name)]


def dmsetup_fail_if_no_path(*, name: str) -> List[str]:
    """``dmsetup message NAME 0 fail_if_no_path``: disable queueing without multipathd."""
    return [DMSETUP, "message", validate_map_name(name), "0", "fail_if_no_path"]


# ---------------------------------------------------------------------------
# dmsetup: every multipath map at once, and one map by dm uuid (kernel names are reused)

_NAMED_LINE_RE = re.compile(r"^(?P<name>\S+):\s+(?P<rest>\d+\s+\d+\s+\S+.*)$")


def dmsetup_status_all() -> List[str]:
    """``dmsetup status --target multipath``: every multipath map, lines prefixed with ``name: ``.

    Status is an ioctl: it does no I/O on the map and cannot block on a queueing map.
    """
    return [DMSETUP, "status", "--target", "multipath"]


def dmsetup_table_all() -> List[str]:
    """``dmsetup table --target multipath``: the current features (queue_if_no_path) and path devices."""
    return [DMSETUP, "table", "--target", "multipath"]


def parse_dmsetup_all(text: str) -> Dict[str, str]:
    """Split ``dmsetup status|table`` of several maps into ``{name: lines}``.

    Lines of one map are ``name: <start> <len> <target> ...``; a continuation line without the prefix
    (a map of several targets) belongs to the previous name.  ``No devices found`` gives ``{}``.
    """
    result: Dict[str, List[str]] = {}
    current: Optional[str] = None
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _NAMED_LINE_RE.match(line.strip())
        if match is not None:
            current = match.group("name")
            result.setdefault(current, []).append(match.group("rest"))
        elif current is not None and re.match(r"^\d+\s+\d+\s+\S+", line.strip()):
            result[current].append(line.strip())
    return {name: "\n".join(lines) + "\n" for name, lines in result.items()}


def dmsetup_info(*, uuid: str) -> List[str]:
    """``dmsetup info -c --noheadings --separator SEP -o name,uuid,open -u UUID``: the open count, by uuid."""
    return [DMSETUP, "info", "-c", "--noheadings", "--separator", FIELD_SEP, "-o", "name,uuid,open", "-u", uuid]


def dmsetup_table_by_uuid(*, uuid: str) -> List[str]:
    return [DMSETUP, "table", "-u", uuid]


def dmsetup_status_by_uuid(*, uuid: str) -> List[str]:
    return [DMSETUP, "status", "-u", uuid]


def dmsetup_fail_if_no_path_by_uuid(*, uuid: str) -> List[str]:
    """``dmsetup message -u UUID 0 fail_if_no_path``: the kernel-level way to stop queueing, by uuid."""
    return [DMSETUP, "message", "-u", uuid, "0", "fail_if_no_path"]


def dmsetup_wipe_table(*, name: str) -> List[str]:
    """``dmsetup wipe_table NAME``: replace the table with one failing all I/O (releases the paths).

    By name: dmsetup 1.02 answers "No device specified" to ``wipe_table -u UUID``; callers re-check the uuid of
    that name right before.
    """
    return [DMSETUP, "wipe_table", validate_map_name(name)]


def dmsetup_remove_deferred(*, uuid: str) -> List[str]:
    """``dmsetup remove --deferred -u UUID``: remove now if unused, else when the last opener closes it."""
    return [DMSETUP, "remove", "--deferred", "-u", uuid]


def parse_dmsetup_info(text: str, *, uuid: str) -> Optional[int]:
    """The open count of the map with ``uuid`` in ``dmsetup info`` output; None if it is not listed."""
    for line in text.splitlines():
        fields = line.strip().split(FIELD_SEP)
        if len(fields) == 3 and fields[1] == uuid and fields[2].strip().isdigit():
            return int(fields[2])
    return None


# ---------------------------------------------------------------------------
# multipathd replies

_NOT_RUNNING_MARKERS = (
    "ux_socket_connect",
    "could not connect",
    "failed to connect",
    "connection refused",
    "cannot send packet",
    "receiving packet",  # "error receiving packet", "error -104 receiving packet"
    "multipathd is not running",
)


def classify_reply(rc: int, stdout: str, stderr: str = "") -> str:
    """What a multipathd CLI answer means: one of the REPLY_* constants.

    ``timeout`` (the daemon is busy, e.g. reconfiguring) and the socket errors are
    printed with rc 0 by some versions, so the text decides, not the rc alone.  A
    non-zero rc with no output at all is what multipath-tools 0.9.4 (Debian 12) gives
    when the daemon is not running (seen in the lab): the client could not reach the
    socket, so it is ``not_running``; a daemon that refuses a command says ``fail``.
    """
    out = stdout.strip()
    both = f"{stdout}\n{stderr}".lower()
    if out == "timeout" or "timeout receiving packet" in both:
        return REPLY_TIMEOUT
    if any(marker in both for marker in _NOT_RUNNING_MARKERS):
        return REPLY_NOT_RUNNING
    if out == "fail":
        return REPLY_FAIL
    if out == "ok":
        return REPLY_OK
    if rc != 0:
        return REPLY_FAIL if out or stderr.strip() else REPLY_NOT_RUNNING
    return REPLY_DATA


def check_reply(rc: int, stdout: str, stderr: str = "", *, cmd: str = MULTIPATHD) -> str:
    """classify_reply(), raising DaemonUnavailable when multipathd did not answer."""
    kind = classify_reply(rc, stdout, stderr)
    if kind == REPLY_NOT_RUNNING:
        raise DaemonUnavailable(
            "multipathd is not running or its socket cannot be reached",
            cmd=cmd,
            rc=rc,
            stdout=stdout,
            stderr=stderr,
        )
    if kind == REPLY_TIMEOUT:
        raise DaemonUnavailable(
            "multipathd did not answer in time (busy, e.g. reconfiguring); retry later",
            cmd=cmd,
            rc=rc,
            stdout=stdout,
            stderr=stderr,
        )
    return kind


def parse_status(text: str) -> Dict[str, object]:
    """Parse ``multipathd show status``.

    Returns ``{"checker_states": {"up": 4, "down": 0, ...}, "paths": 4, "busy": False}``
    (keys present only when printed; older versions print only checker states).
    """
    states: Dict[str, int] = {}
    result: Dict[str, object] = {"checker_states": states}
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.endswith(":") and " " in stripped:
            section = stripped[:-1]
            continue
        match = re.match(r"^([\w /]+?)[:\s]\s*(\S+)$", stripped)
        if not match:
            continue
        key, value = match.group(1).strip(), match.group(2)
        if section == "path checker states" and value.isdigit() and key not in ("paths", "busy"):
            states[key] = int(value)
        elif key == "busy":
            result["busy"] = value.lower() in ("true", "yes", "1")
        elif value.isdigit():
            result[key.replace(" ", "_")] = int(value)
        else:
            result[key.replace(" ", "_")] = value
    return result


# ---------------------------------------------------------------------------
# raw format records


def _none_if_unknown(value: str, unknown: Sequence[str] = ("", "undef", "#:#:#:#", "#:#", "[undef]")) -> Optional[str]:
    return None if value in unknown else value


@dataclass(frozen=True)
class PathRecord:
    """One path as multipathd sees it (``show paths raw format``)."""

    dev: str
    wwid: Optional[str]
    hctl: Optional[str]
    devt: Optional[str]
    dm_state: str
    checker_state: str
    dev_state: str
    multipath: Optional[str]
    checker: str

    @property
    def is_orphan(self) -> bool:
        """Not part of any map (``[orphan]``)."""
        return self.multipath is None

    @property
    def is_faulty(self) -> bool:
        """dm failed, checker faulty/shaky/i/o timeout/disconnected, or device offline.

        ``ghost`` (ALUA standby) is healthy; ``i/o pending`` and ``delayed`` are not
        faults by themselves (only if they persist: the caller decides).
        """
        return (
            self.dm_state == "failed"
            or self.checker_state in DOWN_CHECKER_STATES
            or self.dev_state in ("offline", "dead")
        )

    def to_dict(self) -> Dict[str, object]:
        return {
            "dev": self.dev,
            "wwid": self.wwid,
            "hctl": self.hctl,
            "devt": self.devt,
            "dm_state": self.dm_state,
            "checker_state": self.checker_state,
            "dev_state": self.dev_state,
            "multipath": self.multipath,
            "checker": self.checker,
            "orphan": self.is_orphan,
            "faulty": self.is_faulty,
        }


@dataclass(frozen=True)
class MapRecord:
    """One map as multipathd sees it (``show maps raw format``)."""

    name: str
    wwid: str
    sysfs: Optional[str]
    active_paths: Optional[int]
    queueing: str
    dm_state: str
    features: str

    @property
    def queue_if_no_path(self) -> bool:
        return "queue_if_no_path" in self.features.split()

    @property
    def is_dead(self) -> bool:
        """No active path (ghost paths count as active)."""
        return self.active_paths == 0

    def to_dict(self) -> Dict[str, object]:
        return {
            "name": self.name,
            "wwid": self.wwid,
            "sysfs": self.sysfs,
            "active_paths": self.active_paths,
            "queueing": self.queueing,
            "dm_state": self.dm_state,
            "features": self.features,
            "queue_if_no_path": self.queue_if_no_path,
            "dead": self.is_dead,
        }


def _split_records(text: str, count: int, what: str) -> List[List[str]]:
    rows: List[List[str]] = []
    if text.strip() == "ok":
        # multipath-tools 0.9.4 answers a raw-format "show paths" / "show maps" with no row at all by
        # "ok" (seen in the lab with multipathd running and no path yet): an empty table
        return rows
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [value.strip() for value in line.split(FIELD_SEP)]
        if len(fields) != count:
            raise ParseError(
                f"multipathd {what} line has {len(fields)} fields instead of {count}: {line!r}",
                text=line,
            )
        rows.append(fields)
    return rows


def parse_paths(text: str) -> List[PathRecord]:
    """Parse the output of show_paths() (pass the reply through check_reply() first)."""
    records = []
    for dev, wwid, hctl, devt, dm_state, checker_state, dev_state, mpath, checker in _split_records(
        text, len(PATH_FIELDS), "path"
    ):
        records.append(
            PathRecord(
                dev=dev,
                wwid=_none_if_unknown(wwid),
                hctl=_none_if_unknown(hctl),
                devt=_none_if_unknown(devt),
                dm_state=dm_state,
                checker_state=checker_state,
                dev_state=dev_state,
                multipath=None if mpath in ("[orphan]", "") else mpath,
                checker=checker,
            )
        )
    return records


def parse_maps(text: str) -> List[MapRecord]:
    """Parse the output of show_maps() (pass the reply through check_reply() first)."""
    records = []
    for name, wwid, sysfs, active, queueing, dm_state, features in _split_records(text, len(MAP_FIELDS), "map"):
        records.append(
            MapRecord(
                name=name,
                wwid=wwid,
                sysfs=_none_if_unknown(sysfs),
                active_paths=int(active) if active.isdigit() else None,
                queueing=queueing,
                dm_state=dm_state,
                features=features,
            )
        )
    return records


# ---------------------------------------------------------------------------
# dmsetup


@dataclass(frozen=True)
class DmPathStatus:
    """One path in ``dmsetup status`` of a multipath map."""

    devt: str
    active: bool
    fail_count: int
    group: int


@dataclass(frozen=True)
class DmMultipathStatus:
    """``dmsetup status`` of a multipath map, all targets (table lines) together."""

    paths: Tuple[DmPathStatus, ...]
    queued_io: int

    @property
    def active(self) -> int:
        return sum(1 for p in self.paths if p.active)

    @property
    def failed(self) -> int:
        return sum(1 for p in self.paths if not p.active)

    def to_dict(self) -> Dict[str, object]:
        return {
            "active": self.active,
            "failed": self.failed,
            "queued_io": self.queued_io,
            "paths": [
                {"devt": p.devt, "active": p.active, "fail_count": p.fail_count, "group": p.group} for p in self.paths
            ],
        }


class _Tokens:
    def __init__(self, tokens: List[str], line: str) -> None:
        self._tokens = tokens
        self._pos = 0
        self._line = line

    def take(self) -> str:
        if self._pos >= len(self._tokens):
            raise ParseError(f"dmsetup multipath line ends too early: {self._line!r}", text=self._line)
        token = self._tokens[self._pos]
        self._pos += 1
        return token

    def take_int(self) -> int:
        token = self.take()
        if not token.isdigit():
            raise ParseError(
                f"dmsetup multipath line has {token!r} where a number belongs: {self._line!r}", text=self._line
            )
        return int(token)

    def take_counted(self) -> List[str]:
        """A ``<count> <arg>...`` group."""
        return [self.take() for _item in range(self.take_int())]


def _multipath_lines(text: str) -> List[List[str]]:
    """Token lists after ``<start> <length> multipath`` of each multipath target line.

    ``dmsetup status`` without a name prefixes lines with ``name: ``; accept both.
    """
    lines = []
    for line in text.splitlines():
        tokens = line.split()
        for index in range(len(tokens) - 2):
            if tokens[index + 2] == "multipath" and tokens[index].isdigit() and tokens[index + 1].isdigit():
                lines.append(tokens[index + 3 :])
                break
    return lines


def parse_dmsetup_status(text: str) -> DmMultipathStatus:
    """Parse ``dmsetup status NAME`` of a multipath map.

    Kernel format (dm-mpath, status INFO): ``<#features> <features...>
    <#hw args> <hw args...> <#groups> <next group> then per group: <A|E|D>
    <#selector args> <args...> <#paths> <#selector info args> then per path:
    <maj:min> <A|F> <fail count> <selector info...>``.
    """
    paths: List[DmPathStatus] = []
    queued_io = 0
    lines = _multipath_lines(text)
    if not lines:
        raise ParseError("dmsetup status shows no multipath target", text=text)
    for tokens in lines:
        cursor = _Tokens(tokens, " ".join(tokens))
        features = cursor.take_counted()
        if features and features[0].isdigit():
            queued_io += int(features[0])
        cursor.take_counted()  # hardware handler
        groups = cursor.take_int()
        cursor.take()  # next group to use
        for group in range(1, groups + 1):
            cursor.take()  # group state A/E/D
            cursor.take_counted()  # selector group arguments
            path_count = cursor.take_int()
            info_args = cursor.take_int()
            for _path in range(path_count):
                devt = cursor.take()
                flag = cursor.take()
                if flag not in ("A", "F"):
                    raise ParseError(f"dmsetup status path flag is {flag!r}, not A or F", text=" ".join(tokens))
                fail_count = cursor.take_int()
                for _info_arg in range(info_args):
                    cursor.take()
                paths.append(DmPathStatus(devt=devt, active=flag == "A", fail_count=fail_count, group=group))
    return DmMultipathStatus(paths=tuple(paths), queued_io=queued_io)


@dataclass(frozen=True)
class DmMultipathTable:
    """``dmsetup table`` of a multipath map."""

    features: Tuple[str, ...]
    hwhandler: Tuple[str, ...]
    groups: Tuple[Tuple[str, Tuple[str, ...]], ...]  # (selector, path devts)

    @property
    def queue_if_no_path(self) -> bool:
        return "queue_if_no_path" in self.features

    @property
    def devts(self) -> Tuple[str, ...]:
        return tuple(devt for _selector, devts in self.groups for devt in devts)

    def to_dict(self) -> Dict[str, object]:
        return {
            "features": list(self.features),
            "queue_if_no_path": self.queue_if_no_path,
            "hwhandler": list(self.hwhandler),
            "groups": [{"selector": selector, "paths": list(devts)} for selector, devts in self.groups],
        }


def parse_dmsetup_table(text: str) -> DmMultipathTable:
    """Parse ``dmsetup table NAME``: ``0 2097152 multipath 1 queue_if_no_path 1 alua 1 1
    service-time 0 2 2 8:32 1 1 8:96 1 1``."""
    features: List[str] = []
    hwhandler: List[str] = []
    groups: List[Tuple[str, Tuple[str, ...]]] = []
    lines = _multipath_lines(text)
    if not lines:
        raise ParseError("dmsetup table shows no multipath target", text=text)
    for tokens in lines:
        cursor = _Tokens(tokens, " ".join(tokens))
        features.extend(cursor.take_counted())
        hwhandler.extend(cursor.take_counted())
        group_count = cursor.take_int()
        cursor.take()  # initial group
        for _group in range(group_count):
            selector = cursor.take()
            cursor.take_counted()  # selector arguments
            path_count = cursor.take_int()
            path_args = cursor.take_int()
            devts = []
            for _path in range(path_count):
                devts.append(cursor.take())
                for _path_arg in range(path_args):
                    cursor.take()
            groups.append((selector, tuple(devts)))
    return DmMultipathTable(features=tuple(features), hwhandler=tuple(hwhandler), groups=tuple(groups))


# ---------------------------------------------------------------------------
# multipath -ll (last resort)


@dataclass
class LlPath:
    """A path row of ``multipath -ll``; orphan table rows have no hctl/dev/devt."""

    hctl: Optional[str]
    dev: Optional[str]
    devt: Optional[str]
    dm_state: str
    checker_state: str
    dev_state: str
    extra: str = ""

    @property
    def is_orphan_row(self) -> bool:
        """``#:#:#:# - #:# ...``: the map table still names a device that is gone."""
        return self.dev is None

    def to_dict(self) -> Dict[str, object]:
        return {
            "hctl": self.hctl,
            "dev": self.dev,
            "devt": self.devt,
            "dm_state": self.dm_state,
            "checker_state": self.checker_state,
            "dev_state": self.dev_state,
            "orphan_row": self.is_orphan_row,
        }


@dataclass
class LlGroup:
    """A path group line: ``|-+- policy='service-time 0' prio=50 status=active``."""

    policy: str = ""
    prio: Optional[int] = None
    status: str = ""
    paths: List[LlPath] = field(default_factory=list)

    def to_dict(self) -> Dict[str, object]:
        return {
            "policy": self.policy,
            "prio": self.prio,
            "status": self.status,
            "paths": [p.to_dict() for p in self.paths],
        }


@dataclass
class LlMap:
    """A map of ``multipath -ll``."""

    name: str
    wwid: str
    sysfs: Optional[str]
    vendor_product: str
    action: Optional[str] = None
    size: Optional[str] = None
    features: str = ""
    hwhandler: str = ""
    wp: Optional[str] = None
    groups: List[LlGroup] = field(default_factory=list)

    @property
    def queue_if_no_path(self) -> bool:
        return "queue_if_no_path" in self.features.split()

    @property
    def paths(self) -> List[LlPath]:
        return [p for g in self.groups for p in g.paths]

    def to_dict(self) -> Dict[str, object]:
        return {
            "name": self.name,
            "wwid": self.wwid,
            "sysfs": self.sysfs,
            "vendor_product": self.vendor_product,
            "action": self.action,
            "size": self.size,
            "features": self.features,
            "hwhandler": self.hwhandler,
            "wp": self.wp,
            "queue_if_no_path": self.queue_if_no_path,
            "groups": [g.to_dict() for g in self.groups],
        }


# "Nov 25 01:02:03 | sdb: ..." or "343111.597184 | /etc/multipath.conf ..."
_LL_LOG_RE = re.compile(r"^(?:[A-Z][a-z]{2}\s+\d{1,2}\s+\d{2}:\d{2}:\d{2}|\d+\.\d+)\s+\|")
_LL_HEADER_RE = re.compile(
    r"^(?:(?P<action>(?:create|reload|switchpg|rename|reject|resize|remove)(?:\s*&\s*[a-z]+)*):\s+)?"
    r"(?P<name>[^\s()|`]+)"
    r"(?:\s+\((?P<wwid>[^()\s]+)\))?"
    r"\s+(?P<sysfs>dm-\d+|undef)"
    r"\s+(?P<vp>[^,\s][^,]*,.*?)\s*$"
)
_LL_KV_RE = re.compile(r"(\w+)=(?:'([^']*)'|(\S+))")
_LL_GROUP_RE = re.compile(r"^[\s|`]*[|`]-\+-\s*(?P<rest>.*)$")
_LL_PATH_RE = re.compile(
    r"^[\s|`]*[|`]-\s+"
    r"(?P<hctl>\d+:\d+:\d+:\d+|#:#:#:#)\s+"
    r"(?P<dev>\S+)\s+"
    r"(?P<devt>\d+:\d+|#:#)\s+"
    r"(?P<dm>\S+)\s+"
    r"(?P<chk>i/o pending|i/o timeout|\S+)\s+"
    r"(?P<online>\S+)"
    r"(?P<extra>(?:\s+\S+)*)\s*$"
)


def parse_ll(text: str) -> List[LlMap]:
    """Parse ``multipath -ll`` (or ``-l``); unknown and timestamped log lines are skipped."""
    maps: List[LlMap] = []
    current: Optional[LlMap] = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip() or _LL_LOG_RE.match(line):
            continue
        path = _LL_PATH_RE.match(line)
        if path:
            if current is None:
                continue
            if not current.groups:
                current.groups.append(LlGroup())
            orphan = path.group("dev") == "-"
            current.groups[-1].paths.append(
                LlPath(
                    hctl=None if path.group("hctl") == "#:#:#:#" else path.group("hctl"),
                    dev=None if orphan else path.group("dev"),
                    devt=None if path.group("devt") == "#:#" else path.group("devt"),
                    dm_state=path.group("dm"),
                    checker_state=path.group("chk"),
                    dev_state=path.group("online"),
                    extra=path.group("extra").strip(),
                )
            )
            continue
        group = _LL_GROUP_RE.match(line)
        if group:
            if current is None:
                continue
            values = {
                m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
                for m in _LL_KV_RE.finditer(group.group("rest"))
            }
            prio = values.get("prio", "")
            current.groups.append(
                LlGroup(
                    policy=values.get("policy", ""),
                    prio=int(prio) if prio.lstrip("-").isdigit() else None,
                    status=values.get("status", ""),
                )
            )
            continue
        if line.startswith("size=") and current is not None:
            values = {
                m.group(1): m.group(2) if m.group(2) is not None else m.group(3) for m in _LL_KV_RE.finditer(line)
            }
            current.size = values.get("size")
            current.features = values.get("features", "")
            current.hwhandler = values.get("hwhandler", "")
            current.wp = values.get("wp")
            continue
        if line[0] in " |`":
            continue
        header = _LL_HEADER_RE.match(line)
        if header:
            name = header.group("name")
            current = LlMap(
                name=name,
                wwid=header.group("wwid") or name,
                sysfs=None if header.group("sysfs") == "undef" else header.group("sysfs"),
                vendor_product=(header.group("vp") or "").strip(),
                action=header.group("action"),
            )
            maps.append(current)
    return maps
