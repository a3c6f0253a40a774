# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""Faulty multipath paths and maps: what is observed, and why each thing counts as faulty.

Two halves:

* :func:`collect` observes (read-only): a sysfs snapshot, the major:minor of every block device,
  ``multipathd show paths|maps raw format`` and ``dmsetup status|table --target multipath``, and
  ``multipath -ll`` only when multipathd does not answer.  Every command goes through the runner
  (with a deadline); a missing or silent tool is recorded in ``sources``/``warnings``, never raised.
* :func:`classify` is pure: an :class:`Observation` in, the facts dictionary out.  No I/O.

A path is faulty when any of these holds (each gives a reason code): the checker says ``faulty``,
``shaky``, ``i/o timeout`` or ``disconnected``; the kernel multipath target has failed it (dm ``F``,
multipathd ``failed``); the SCSI device state is not ``running`` (``offline``, ``blocked``,
``transport-offline``, ...); its iSCSI session is not ``LOGGED_IN``; its Fibre Channel remote port
is not Online or Marginal (``rport_blocked`` while the link is down, ``rport_not_present`` once
``dev_loss_tmo`` ran out); multipathd still lists it though its device is gone.  ``ghost`` (ALUA
standby), ``i/o pending`` and ``delayed`` are not faults.  A map is faulty when it has no active path
(dead; worse when it queues I/O), when a table entry names a device that no longer exists (orphan),
when no usable path (logged-in session, Online remote port) presents its LUN any more, when it is
suspended, or when one of its paths is faulty.  Each path says its transport (``iscsi`` with its
session, ``fc`` with its remote port).

Two more things are reported that are not faults of a path's I/O: a SCSI device on an iSCSI session or an FC
remote port without a block device (a controller LUN, a device the sd driver is not bound to: ``dev`` null,
``block_device`` false),
and an unmapped path - a block device that multipath claims (its WWID is in multipath's wwids file, and
multipathd, when it answers, lists the path) but that no multipath map holds, as when the map was flushed and
the paths were left behind.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils import _fc
from ansible_collections.lunsafe.san.plugins.module_utils._errors import (
    DaemonUnavailable,
    InputError,
    LunsafeError,
    ToolTimeout,
)
from ansible_collections.lunsafe.san.plugins.module_utils._multipath import (
    MULTIPATHD_OK_RCS,
    DmMultipathStatus,
    DmMultipathTable,
    LlMap,
    MapRecord,
    PathRecord,
    check_reply,
    dmsetup_status_all,
    dmsetup_table_all,
    list_topology,
    parse_dmsetup_all,
    parse_dmsetup_status,
    parse_dmsetup_table,
    parse_ll,
    parse_maps,
    parse_paths,
    show_maps,
    show_paths,
)
from ansible_collections.lunsafe.san.plugins.module_utils._proc import Opener, find_openers
from ansible_collections.lunsafe.san.plugins.module_utils._runner import CommandRunner
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import (
    DEFAULT_SYSFS_ROOT,
    DmMap,
    IscsiSession,
    ScsiDevice,
    Snapshot,
    read_attribute,
    read_snapshot,
)

__all__ = [
    "FACTS_NAME",
    "SCHEMA_VERSION",
    "Filters",
    "Observation",
    "classify",
    "collect",
    "dmsetup_status_all",
    "dmsetup_table_all",
    "make_filters",
    "parse_dmsetup_all",
    "read_devts",
    "read_multipath_wwids",
]

FACTS_NAME = "lunsafe_multipath"
MULTIPATHD = "multipathd"  # its command name: it holds every path open for its checkers
SCHEMA_VERSION = 1
_DEVT_RE = re.compile(r"[0-9]+:[0-9]+")

# source states
SOURCE_OK = "ok"
SOURCE_NOT_INSTALLED = "not_installed"
SOURCE_NOT_RUNNING = "not_running"
SOURCE_TIMEOUT = "timeout"
SOURCE_ERROR = "error"
SOURCE_NOT_USED = "not_used"
SOURCE_NOT_FOUND = "not_found"

# path reason codes
CHECKER_REASONS = {
    "faulty": "checker_faulty",
    "shaky": "checker_shaky",
    "i/o timeout": "checker_io_timeout",
    "disconnected": "checker_disconnected",
}
UP_CHECKER_STATES = frozenset(("ready", "ghost"))
R_DM_FAILED = "dm_failed"
R_SESSION_NOT_LOGGED_IN = "session_not_logged_in"
R_SESSION_GONE = "session_gone"
R_DEVICE_GONE = "device_gone"
R_MULTIPATHD_OFFLINE = "multipathd_offline"
R_RPORT_PREFIX = "rport_"  # rport_blocked, rport_not_present, ... (an FC remote port not Online or Marginal)
TRANSPORT_ISCSI = "iscsi"
TRANSPORT_FC = "fc"
# map reason codes
R_NO_ACTIVE_PATH = "no_active_path"
R_QUEUEING_WITHOUT_PATH = "queueing_without_path"
R_ORPHAN_ENTRIES = "orphan_table_entries"
R_UNPRESENTED = "unpresented"
R_FAULTY_PATHS = "faulty_paths"
R_SUSPENDED = "suspended"
# orphan reason codes
R_TABLE_DEVICE_GONE = "table_device_gone"


# ---------------------------------------------------------------------------------------------------------
# observation


@dataclass
class Observation:
    """Everything classify() needs; None means "that source was not available"."""

    snapshot: Snapshot
    devts: Mapping[str, str]  # kernel block name -> "major:minor", for every sd device in the snapshot
    mp_paths: Optional[Sequence[PathRecord]] = None
    mp_maps: Optional[Sequence[MapRecord]] = None
    dm_status: Optional[Mapping[str, DmMultipathStatus]] = None
    dm_tables: Optional[Mapping[str, DmMultipathTable]] = None
    ll_maps: Optional[Sequence[LlMap]] = None
    openers: Sequence[Opener] = ()  # processes holding a multipath map or an sd device open (from /proc)
    multipath_wwids: Tuple[str, ...] = ()  # the WWIDs in multipath's wwids file (the LUNs multipath claims)
    fc: Optional[_fc.FcView] = None  # the Fibre Channel ports (None: not read)
    sources: Dict[str, str] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)


def read_devts(*, sysfs_root: str = DEFAULT_SYSFS_ROOT, names: Iterable[str]) -> Dict[str, str]:
    """``{name: "major:minor"}`` from ``<root>/block/<name>/dev`` (names that vanished are left out)."""
    devts: Dict[str, str] = {}
    for name in names:
        text = read_attribute(os.path.join(sysfs_root, "block", name, "dev"))
        if text is not None and _DEVT_RE.fullmatch(text):
            devts[name] = text
    return devts


def read_multipath_wwids(path: str) -> Tuple[Tuple[str, ...], str]:
    """The WWIDs of multipath's wwids file (``/3600140.../`` lines) and the source state of the file."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return (), SOURCE_NOT_FOUND
    except OSError:
        return (), SOURCE_ERROR
    lines = (line.strip() for line in text.splitlines())
    return tuple(line[1:-1] for line in lines if len(line) > 2 and line[0] == "/" and line[-1] == "/"), SOURCE_OK


def _ask_multipathd(runner: CommandRunner, argv: Sequence[str], *, timeout: float) -> str:
    """stdout of a multipathd query, or DaemonUnavailable (not running, busy, or refused)."""
    reply = runner.run(argv, ok_rcs=MULTIPATHD_OK_RCS, timeout=timeout)
    check_reply(reply.rc, reply.stdout, reply.stderr, cmd=reply.cmd)
    if reply.rc != 0:
        raise DaemonUnavailable(
            "multipathd refused the command", cmd=reply.cmd, rc=reply.rc, stdout=reply.stdout, stderr=reply.stderr
        )
    return reply.stdout


def _multipathd(runner: CommandRunner, obs: Observation, *, timeout: float) -> None:
    if not runner.has_tool("multipathd"):
        obs.sources["multipathd"] = SOURCE_NOT_INSTALLED
        return
    try:
        paths = parse_paths(_ask_multipathd(runner, show_paths(), timeout=timeout))
        maps = parse_maps(_ask_multipathd(runner, show_maps(), timeout=timeout))
        obs.mp_paths, obs.mp_maps = paths, maps
        obs.sources["multipathd"] = SOURCE_OK
    except ToolTimeout as exc:
        obs.sources["multipathd"] = SOURCE_TIMEOUT
        obs.warnings.append(f"multipathd did not answer within {exc.timeout:g}s: checker states are unknown")
    except DaemonUnavailable as exc:
        if "in time" in exc.msg:
            obs.sources["multipathd"] = SOURCE_TIMEOUT
        elif "refused" in exc.msg:
            obs.sources["multipathd"] = SOURCE_ERROR
        else:
            obs.sources["multipathd"] = SOURCE_NOT_RUNNING
        if obs.sources["multipathd"] != SOURCE_NOT_RUNNING or any(m.is_multipath for m in obs.snapshot.maps):
            obs.warnings.append(f"{exc.msg}: checker states come from fallbacks or are unknown")
    except LunsafeError as exc:
        obs.sources["multipathd"] = SOURCE_ERROR
        obs.warnings.append(f"multipathd output could not be used: {exc.msg}")


def _dmsetup(runner: CommandRunner, obs: Observation, *, timeout: float) -> None:
    if not runner.has_tool("dmsetup"):
        obs.sources["dmsetup"] = SOURCE_NOT_INSTALLED
        if any(m.is_multipath for m in obs.snapshot.maps):
            obs.warnings.append("dmsetup is not installed: per-path dm states and queue_if_no_path are unknown")
        return
    try:
        status = runner.run(dmsetup_status_all(), timeout=timeout)
        table = runner.run(dmsetup_table_all(), timeout=timeout)
        obs.dm_status = {name: parse_dmsetup_status(text) for name, text in parse_dmsetup_all(status.stdout).items()}
        obs.dm_tables = {name: parse_dmsetup_table(text) for name, text in parse_dmsetup_all(table.stdout).items()}
        obs.sources["dmsetup"] = SOURCE_OK
    except ToolTimeout as exc:
        obs.sources["dmsetup"] = SOURCE_TIMEOUT
        obs.warnings.append(f"dmsetup did not answer within {exc.timeout:g}s")
    except LunsafeError as exc:
        obs.sources["dmsetup"] = SOURCE_ERROR
        obs.warnings.append(f"dmsetup output could not be used: {exc.msg}")


def _multipath_ll(runner: CommandRunner, obs: Observation, *, timeout: float) -> None:
    if not runner.has_tool("multipath"):
        obs.sources["multipath_ll"] = SOURCE_NOT_INSTALLED
        return
    try:
        result = runner.run(list_topology(), ok_rcs=(0, 1), timeout=timeout)
        obs.ll_maps = parse_ll(result.stdout)
        obs.sources["multipath_ll"] = SOURCE_OK
    except ToolTimeout as exc:
        obs.sources["multipath_ll"] = SOURCE_TIMEOUT
        obs.warnings.append(f"multipath -ll did not finish within {exc.timeout:g}s")
    except LunsafeError as exc:
        obs.sources["multipath_ll"] = SOURCE_ERROR
        obs.warnings.append(f"multipath -ll output could not be used: {exc.msg}")


def collect(
    *,
    runner: CommandRunner,
    sysfs_root: str = DEFAULT_SYSFS_ROOT,
    proc_root: str = "/proc",
    wwids_file: Optional[str] = None,
    timeout: float = 15.0,
    ll_fallback: bool = True,
) -> Observation:
    """Observe the host, read-only.  Never raises for a missing or silent tool: see ``sources``.

    ``wwids_file`` is multipath's wwids file (the module gives ``/etc/multipath/wwids``); None reads none, and
    then no path is found unmapped."""
    snapshot = read_snapshot(sysfs_root=sysfs_root, device_detail=False)
    names = [d.name for d in snapshot.devices if d.name is not None]
    obs = Observation(snapshot=snapshot, devts=read_devts(sysfs_root=sysfs_root, names=names))
    obs.fc = _fc.read_fc(sysfs_root=sysfs_root)
    dm_names = [m.dm for m in snapshot.maps if m.is_multipath and m.dm]
    watched: Dict[str, Optional[str]] = {name: None for name in dm_names}
    watched.update(read_devts(sysfs_root=sysfs_root, names=dm_names))
    watched.update(obs.devts)
    obs.openers = find_openers(proc_root=proc_root, devices=watched)
    obs.sources["sysfs"] = SOURCE_OK
    if not snapshot.hosts:
        obs.sources["sysfs"] = "no_scsi"
    if wwids_file is None:
        obs.sources["wwids_file"] = SOURCE_NOT_USED
    else:
        obs.multipath_wwids, obs.sources["wwids_file"] = read_multipath_wwids(wwids_file)
    if obs.sources["wwids_file"] == SOURCE_ERROR:
        obs.warnings.append(f"multipath's wwids file {wwids_file} could not be read: unmapped paths are not reported")
    _multipathd(runner, obs, timeout=timeout)
    has_mpath = any(m.is_multipath for m in snapshot.maps)
    if has_mpath or obs.mp_maps:
        _dmsetup(runner, obs, timeout=timeout)
    else:
        obs.sources["dmsetup"] = SOURCE_NOT_USED
    if ll_fallback and obs.mp_paths is None and has_mpath:
        _multipath_ll(runner, obs, timeout=timeout)
    else:
        obs.sources["multipath_ll"] = SOURCE_NOT_USED
    return obs


# ---------------------------------------------------------------------------------------------------------
# filters


@dataclass(frozen=True)
class Filters:
    wwids: Tuple[str, ...] = ()
    maps: Tuple[str, ...] = ()
    targets: Tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.wwids or self.maps or self.targets)


def make_filters(
    *,
    wwids: Optional[Sequence[str]] = None,
    maps: Optional[Sequence[str]] = None,
    targets: Optional[Sequence[str]] = None,
) -> Filters:
    """Validated filters: no empty strings; ``/dev/mapper/`` and ``/dev/`` prefixes of map names dropped."""

    def clean(values: Optional[Sequence[str]], option: str) -> Tuple[str, ...]:
        out = []
        for value in values or ():
            text = str(value).strip()
            for prefix in ("/dev/mapper/", "/dev/"):
                if option == "maps" and text.startswith(prefix):
                    text = text[len(prefix) :]
            if not text or any(c.isspace() for c in text) or "/" in text:
                raise InputError(f"{option} has an invalid entry: {value!r}", option=option, value=value)
            out.append(_target_key(text) if option == "targets" else text)
        return tuple(out)

    return Filters(wwids=clean(wwids, "wwids"), maps=clean(maps, "maps"), targets=clean(targets, "targets"))


def _target_key(text: str) -> str:
    """A targets filter entry as compared: an FC WWPN (any spelling) normalised, an iSCSI name lower case."""
    try:
        return _fc.normalize_wwpn(text, option="targets")
    except InputError:
        return text.lower()


# ---------------------------------------------------------------------------------------------------------
# classification (pure)


def _session_dict(session: Optional[IscsiSession]) -> Optional[Dict[str, Any]]:
    if session is None:
        return None
    return {
        "sid": session.sid,
        "host": session.host,
        "target": session.targetname,
        "portal": None if session.portal is None else str(session.portal),
        "persistent_portal": None if session.persistent_portal is None else str(session.persistent_portal),
        "state": session.state,
        "transport": session.transport,
    }


def _device_reason(state: str) -> str:
    return "device_" + state.replace("-", "_")


def _rport_reason(state: Optional[str]) -> str:
    return R_RPORT_PREFIX + (state or "unknown").lower().replace(" ", "_").replace("-", "_")


def _rport_dict(rport: Optional[_fc.RemotePort], view: Optional[_fc.FcView]) -> Optional[Dict[str, Any]]:
    if rport is None:
        return None
    owner = None if view is None else view.host(rport.host)
    return {
        "name": rport.name,
        "host": rport.host,
        "port_name": rport.port_name,
        "port_state": rport.port_state,
        "target_id": rport.scsi_target_id,
        "initiator": None if owner is None else owner.port_name,
        "dev_loss_tmo": rport.dev_loss_tmo,
        "fast_io_fail_tmo": rport.fast_io_fail_tmo,
    }


def _rport_of(view: Optional[_fc.FcView], device: ScsiDevice) -> Optional[_fc.RemotePort]:
    """The FC remote port a device hangs below (by host, channel and target id); None off FC."""
    if view is None or device.sid is not None or view.host(device.hctl.host) is None:
        return None
    return view.rport_at(host=device.hctl.host, channel=device.hctl.channel, target=device.hctl.target)


@dataclass
class _Path:
    dev: Optional[str]
    devt: Optional[str] = None
    hctl: Optional[str] = None
    wwid: Optional[str] = None
    map: Optional[str] = None
    dm_state: Optional[str] = None
    checker_state: Optional[str] = None
    checker: Optional[str] = None
    online_state: Optional[str] = None  # multipathd %o
    device: Optional[ScsiDevice] = None
    session: Optional[IscsiSession] = None
    rport: Optional[_fc.RemotePort] = None
    dm_active: Optional[bool] = None
    fail_count: Optional[int] = None
    known_to_multipathd: bool = False

    def reasons(self, *, sysfs_has_device: bool) -> List[str]:
        reasons: List[str] = []
        if self.checker_state in CHECKER_REASONS:
            reasons.append(CHECKER_REASONS[self.checker_state])
        if self.dm_state == "failed" or self.dm_active is False:
            reasons.append(R_DM_FAILED)
        state = self.device.state if self.device is not None else None
        if state is not None and state != "running":
            reasons.append(_device_reason(state))
        elif self.online_state in ("offline", "dead") and state is None:
            reasons.append(R_MULTIPATHD_OFFLINE)
        if self.device is not None and self.device.sid is not None:
            if self.session is None:
                reasons.append(R_SESSION_GONE)
            elif not self.session.logged_in:
                reasons.append(R_SESSION_NOT_LOGGED_IN)
        if self.rport is not None and self.rport.port_state not in _fc.USABLE_STATES:
            reasons.append(_rport_reason(self.rport.port_state))
        if not sysfs_has_device:
            reasons.append(R_DEVICE_GONE)
        return reasons

    def usable(self) -> bool:
        """Carries I/O for its LUN: a block device, logged-in session, running device, checker up (when known)."""
        if self.device is None or self.device.name is None or self.device.state != "running":
            return False
        if self.device.sid is not None and (self.session is None or not self.session.logged_in):
            return False
        if self.rport is not None and self.rport.port_state not in _fc.USABLE_STATES:
            return False
        if self.checker_state is not None:
            return self.checker_state in UP_CHECKER_STATES
        return self.dm_active is not False


def _by_name(maps: Iterable[DmMap]) -> Dict[str, DmMap]:
    return {m.name: m for m in maps if m.name is not None}


def _merge_paths(obs: Observation, sysfs_names: Set[str]) -> Tuple[Dict[str, _Path], List[Dict[str, Any]]]:
    """Paths keyed by devt (or by name when the devt is unknown); orphan rows of multipathd and -ll."""
    snap = obs.snapshot
    name_of_devt = {devt: name for name, devt in obs.devts.items()}
    paths: Dict[str, _Path] = {}
    orphans: List[Dict[str, Any]] = []

    def key_for(dev: Optional[str], devt: Optional[str]) -> str:
        if devt is not None:
            return devt
        if dev is not None and dev in obs.devts:
            return obs.devts[dev]
        return f"name:{dev}"

    def get(dev: Optional[str], devt: Optional[str]) -> _Path:
        key = key_for(dev, devt)
        path = paths.get(key)
        if path is None:
            name = dev if dev is not None else name_of_devt.get(devt or "")
            path = _Path(dev=name, devt=devt if devt is not None else obs.devts.get(name or ""))
            paths[key] = path
        return path

    # 1. sysfs: every iSCSI and FC device (with a block device or not) and every slave of a multipath map
    slaves = {s for m in snap.maps if m.is_multipath for s in m.slaves}
    for device in snap.devices:
        rport = _rport_of(obs.fc, device)
        if device.sid is None and rport is None and (device.name is None or device.name not in slaves):
            continue
        # no block device (a controller LUN, sd not bound): keyed by its address
        path = get(device.name, None) if device.name else paths.setdefault(f"hctl:{device.hctl}", _Path(dev=None))
        path.device = device
        path.hctl = str(device.hctl)
        path.wwid = device.wwid
        path.session = snap.session(sid=device.sid) if device.sid is not None else None
        path.rport = rport
    for dm_map in snap.maps:
        if dm_map.is_multipath:
            for slave in dm_map.slaves:
                if slave in obs.devts or slave in sysfs_names:
                    get(slave, None).map = dm_map.name

    # 2. multipathd's view
    for rec in obs.mp_paths or ():
        gone = rec.dev not in sysfs_names
        if gone and rec.multipath is not None:
            orphans.append(
                _orphan(
                    map_name=rec.multipath,
                    wwid=rec.wwid,
                    dev=rec.dev,
                    devt=rec.devt,
                    hctl=rec.hctl,
                    source="multipathd",
                    reason=R_DEVICE_GONE,
                )
            )
        path = get(rec.dev, rec.devt)
        path.known_to_multipathd = True
        path.dm_state = rec.dm_state
        path.checker_state = rec.checker_state
        path.checker = rec.checker
        path.online_state = rec.dev_state
        path.map = rec.multipath if rec.multipath is not None else path.map
        path.hctl = path.hctl or rec.hctl
        path.wwid = path.wwid or rec.wwid

    # 3. multipath -ll (only collected when multipathd did not answer)
    for ll_map in obs.ll_maps or ():
        for row in ll_map.paths:
            if row.is_orphan_row or (row.dev is not None and row.dev not in sysfs_names):
                orphans.append(
                    _orphan(
                        map_name=ll_map.name,
                        wwid=ll_map.wwid,
                        dev=row.dev,
                        devt=row.devt,
                        hctl=row.hctl,
                        source="multipath_ll",
                        reason=R_TABLE_DEVICE_GONE,
                    )
                )
                continue
            path = get(row.dev, row.devt)
            path.map = path.map or ll_map.name
            path.checker_state = path.checker_state or row.checker_state
            path.dm_state = path.dm_state or row.dm_state
            path.online_state = path.online_state or row.dev_state
    return paths, orphans


def _map_names(obs: Observation) -> List[str]:
    names: List[str] = []
    for dm_map in obs.snapshot.maps:
        if dm_map.is_multipath and dm_map.name is not None:
            names.append(dm_map.name)
    for rec in obs.mp_maps or ():
        if rec.name not in names:
            names.append(rec.name)
    for name in obs.dm_tables or {}:
        if name not in names:
            names.append(name)
    return names


def _orphan(
    *,
    map_name: str,
    wwid: Optional[str],
    dev: Optional[str],
    devt: Optional[str],
    hctl: Optional[str],
    source: str,
    reason: str,
    dm_active: Optional[bool] = None,
) -> Dict[str, Any]:
    return {
        "map": map_name,
        "wwid": wwid,
        "dev": dev,
        "devt": devt,
        "hctl": hctl,
        "dm_active": dm_active,
        "source": source,
        "reason": reason,
    }


def _merge_dm(obs: Observation, paths: Dict[str, _Path], orphans: List[Dict[str, Any]], sysfs_names: Set[str]) -> None:
    """Per-path A/F flags from ``dmsetup status``; table entries whose device is gone become orphans."""
    devt_to_key = {p.devt: key for key, p in paths.items() if p.devt is not None}
    statuses = obs.dm_status or {}
    sysfs_maps = _by_name(obs.snapshot.maps)
    for name, status in statuses.items():
        for dm_path in status.paths:
            key = devt_to_key.get(dm_path.devt)
            if key is not None:
                paths[key].dm_active = dm_path.active
                paths[key].fail_count = dm_path.fail_count
                paths[key].map = paths[key].map or name
    for name, table in (obs.dm_tables or {}).items():
        for devt in table.devts:
            key = devt_to_key.get(devt)
            if key is not None and paths[key].dev in sysfs_names:
                paths[key].map = paths[key].map or name
                continue
            if any(o["map"] == name and o["devt"] == devt for o in orphans):
                continue
            entry = statuses.get(name)
            flag = next((p.active for p in entry.paths if p.devt == devt), None) if entry is not None else None
            dm_map = sysfs_maps.get(name)
            orphans.append(
                _orphan(
                    map_name=name,
                    wwid=dm_map.wwid if dm_map is not None else None,
                    dev=paths[key].dev if key is not None else None,
                    devt=devt,
                    hctl=None,
                    source="dmsetup_table",
                    reason=R_TABLE_DEVICE_GONE,
                    dm_active=flag,
                )
            )


def _transport(path: _Path) -> Optional[str]:
    if path.session is not None or (path.device is not None and path.device.sid is not None):
        return TRANSPORT_ISCSI
    return TRANSPORT_FC if path.rport is not None else None


def _path_dict(
    path: _Path,
    *,
    sysfs_names: Set[str],
    claimed: Set[str],
    multipathd_answers: bool,
    fc: Optional[_fc.FcView] = None,
) -> Dict[str, Any]:
    block_device = path.dev is not None and path.dev in sysfs_names
    reasons = path.reasons(sysfs_has_device=block_device or (path.dev is None and path.device is not None))
    dm_state = path.dm_state
    if dm_state is None and path.dm_active is not None:
        dm_state = "active" if path.dm_active else "failed"
    # multipath would map it (its WWID is in the wwids file; multipathd, when it answers, lists the path, so it
    # is not blacklisted) and no map holds it: a map flushed with its paths left behind, or not built yet
    unmapped = (
        block_device
        and path.map is None
        and path.wwid is not None
        and path.wwid in claimed
        and (path.known_to_multipathd or not multipathd_answers)
    )
    return {
        "dev": path.dev,
        "devt": path.devt,
        "hctl": path.hctl,
        "wwid": path.wwid,
        "map": path.map,
        "dm_state": dm_state,
        "dm_fail_count": path.fail_count,
        "checker_state": path.checker_state,
        "checker": path.checker,
        "block_device": block_device,
        "device_state": path.device.state if path.device is not None else None,
        "multipathd_state": path.online_state,
        "known_to_multipathd": path.known_to_multipathd,
        "session": _session_dict(path.session),
        "transport": _transport(path),
        "rport": _rport_dict(path.rport, fc),
        "unmapped": unmapped,
        "faulty": bool(reasons),
        "reasons": reasons,
    }


@dataclass
class _MapView:
    """What the sources say about one map."""

    name: str
    sysfs: Optional[DmMap]
    rec: Optional[MapRecord]
    status: Optional[DmMultipathStatus]
    table: Optional[DmMultipathTable]
    ll: Optional[LlMap]

    @property
    def wwid(self) -> Optional[str]:
        for value in (self.rec, self.sysfs, self.ll):
            if value is not None and value.wwid:
                return value.wwid
        return None

    def active(self, *, members: Sequence[_Path], gone: Set[str]) -> int:
        if self.rec is not None and self.rec.active_paths is not None:
            return self.rec.active_paths
        if self.status is not None:
            # the kernel keeps flag A for a table entry whose device was deleted: do not count those
            return sum(1 for p in self.status.paths if p.active and p.devt not in gone)
        return sum(1 for p in members if p.usable())

    def queueing(self) -> Tuple[Optional[bool], Optional[str]]:
        """(queue_if_no_path, features) from the live table, else multipathd, else multipath -ll."""
        if self.table is not None:
            return self.table.queue_if_no_path, " ".join([str(len(self.table.features)), *self.table.features])
        if self.rec is not None:
            return self.rec.queue_if_no_path, self.rec.features
        if self.ll is not None:
            return self.ll.queue_if_no_path, self.ll.features
        return None, None

    def suspended(self) -> Optional[bool]:
        if self.rec is not None and self.rec.dm_state == "suspend":
            return True
        return self.sysfs.suspended if self.sysfs is not None else None


def _openers(openers: Sequence[Opener], *, dm: Optional[str], paths: Sequence[str]) -> List[Dict[str, Any]]:
    """The openers of the map's dm node, and of its paths but for multipathd (it holds every path open)."""
    return [
        opener.to_dict()
        for opener in openers
        if (dm is not None and opener.device == dm) or (opener.device in paths and opener.command != MULTIPATHD)
    ]


def _map_dict(
    view: _MapView,
    *,
    paths: Dict[str, _Path],
    path_out: Dict[str, Dict[str, Any]],
    orphans: List[Dict[str, Any]],
    openers: Sequence[Opener] = (),
) -> Dict[str, Any]:
    wwid = view.wwid
    keys = [key for key, p in paths.items() if p.map == view.name]
    members = [paths[key] for key in keys]
    map_orphans = [o for o in orphans if o["map"] == view.name]
    active = view.active(members=members, gone={o["devt"] for o in map_orphans if o["devt"] is not None})
    queue_if_no_path, features = view.queueing()
    suspended = view.suspended()
    presented = wwid is not None and any(p.usable() for p in paths.values() if p.wwid == wwid)
    dead = active == 0
    checks = (
        (dead, R_NO_ACTIVE_PATH),
        (dead and bool(queue_if_no_path), R_QUEUEING_WITHOUT_PATH),
        (bool(map_orphans), R_ORPHAN_ENTRIES),
        (not presented, R_UNPRESENTED),
        (bool(suspended), R_SUSPENDED),
        (any(path_out[key]["faulty"] for key in keys), R_FAULTY_PATHS),
    )
    reasons = [reason for condition, reason in checks if condition]
    sysfs = view.sysfs
    dm = (sysfs.dm if sysfs is not None else None) or (view.rec.sysfs if view.rec is not None else None)
    path_names = sorted(path_out[key]["dev"] or path_out[key]["devt"] or "" for key in keys)
    return {
        "name": view.name,
        "wwid": wwid,
        "uuid": sysfs.uuid if sysfs is not None and sysfs.uuid else (f"mpath-{wwid}" if wwid else None),
        "dm": dm,
        "suspended": suspended,
        "active_paths": active,
        "usable_paths": sum(1 for p in members if p.usable()),
        "paths": path_names,
        "orphan_entries": len(map_orphans),
        "queue_if_no_path": queue_if_no_path,
        "queueing": view.rec.queueing if view.rec is not None else None,
        "queued_io": view.status.queued_io if view.status is not None else None,
        "features": features,
        "holders": list(sysfs.holders) if sysfs is not None else [],
        "openers": _openers(openers, dm=dm, paths=path_names),
        "dead": dead,
        "queueing_dead": dead and bool(queue_if_no_path),
        "presented": presented,
        "faulty": bool(reasons),
        "reasons": reasons,
    }


def classify(obs: Observation, *, filters: Optional[Filters] = None, warn_unmatched: bool = True) -> Dict[str, Any]:
    """The facts dictionary (``ansible_facts.lunsafe_multipath``) from one observation.

    A filter entry that matches nothing is listed in ``unmatched``, and in ``warnings`` unless ``warn_unmatched``
    is false (a read before the LUNs it names are attached)."""
    snap = obs.snapshot
    sysfs_names = {d.name for d in snap.devices if d.name is not None}
    paths, orphans = _merge_paths(obs, sysfs_names)
    _merge_dm(obs, paths, orphans, sysfs_names)
    claimed = set(obs.multipath_wwids)
    answers = obs.sources.get("multipathd") == SOURCE_OK
    path_out = {
        key: _path_dict(path, sysfs_names=sysfs_names, claimed=claimed, multipathd_answers=answers, fc=obs.fc)
        for key, path in paths.items()
    }
    sysfs_maps = _by_name(snap.maps)
    mp_maps = {m.name: m for m in obs.mp_maps or ()}
    ll_maps = {m.name: m for m in obs.ll_maps or ()}
    map_out = [
        _map_dict(
            _MapView(
                name=name,
                sysfs=sysfs_maps.get(name),
                rec=mp_maps.get(name),
                status=(obs.dm_status or {}).get(name),
                table=(obs.dm_tables or {}).get(name),
                ll=ll_maps.get(name),
            ),
            paths=paths,
            path_out=path_out,
            orphans=orphans,
            openers=obs.openers,
        )
        for name in _map_names(obs)
    ]
    paths_list = sorted(path_out.values(), key=_path_sort_key)
    active = filters or Filters()
    facts = _apply_filters(map_out, paths_list, orphans, active)
    unmatched = unmatched_filters(map_out, paths_list, active)
    facts["schema"] = SCHEMA_VERSION
    facts["sources"] = dict(obs.sources)
    facts["unmatched"] = {option: [entry[0] for entry in entries] for option, entries in unmatched.items()}
    facts["warnings"] = list(obs.warnings)
    if warn_unmatched:
        facts["warnings"].extend(entry[1] for entries in unmatched.values() for entry in entries)
    return facts


def unmatched_filters(
    maps: Sequence[Dict[str, Any]], paths: Sequence[Dict[str, Any]], filters: Filters
) -> Dict[str, List[Tuple[str, str]]]:
    """Every filter entry that matches nothing on the host, per option, with its warning (a typo must not look
    healthy)."""
    wwids = {m["wwid"] for m in maps} | {p["wwid"] for p in paths}
    names = {value for m in maps for value in (m["name"], m["dm"], m["wwid"]) if value is not None}
    targets = {target for target in (_path_target(p) for p in paths) if target is not None}
    return {
        "wwids": [
            (wwid, f"wwids filter entry {wwid!r} matches no multipath map and no path")
            for wwid in filters.wwids
            if wwid not in wwids
        ],
        "maps": [
            (name, f"maps filter entry {name!r} matches no multipath map (by name, dm-N or WWID)")
            for name in filters.maps
            if name not in names
        ],
        "targets": [
            (target, f"targets filter entry {target!r} matches no path on an iSCSI session or FC remote port")
            for target in filters.targets
            if target not in targets
        ],
    }


def _path_target(path: Dict[str, Any]) -> Optional[str]:
    """What the targets filter compares: the iSCSI target name (lower case) or the FC target port WWPN."""
    session = path["session"]
    if session is not None and session["target"] is not None:
        return str(session["target"]).lower()
    rport = path.get("rport")
    return None if rport is None else rport["port_name"]


def _path_sort_key(path: Dict[str, Any]) -> Tuple[int, str]:
    dev = path["dev"] or ""
    return (len(dev), dev or path["devt"] or path["hctl"] or "")


def _apply_filters(
    maps: List[Dict[str, Any]], paths: List[Dict[str, Any]], orphans: List[Dict[str, Any]], filters: Filters
) -> Dict[str, Any]:
    by_map: Dict[str, List[Dict[str, Any]]] = {}
    for path in paths:
        if path["map"] is not None:
            by_map.setdefault(path["map"], []).append(path)

    def map_selected(m: Dict[str, Any]) -> bool:
        if filters.wwids and m["wwid"] not in filters.wwids:
            return False
        if filters.maps and not {m["name"], m["dm"], m["wwid"]}.intersection(filters.maps):
            return False
        return not filters.targets or any(_path_target(p) in filters.targets for p in by_map.get(m["name"], ()))

    kept_maps = [m for m in maps if map_selected(m)]
    kept_names = {m["name"] for m in kept_maps}
    by_name = {m["name"]: m for m in maps}

    def path_selected(p: Dict[str, Any]) -> bool:
        if p["map"] is not None and p["map"] in by_name:
            if p["map"] not in kept_names:
                return False
        else:
            if filters.maps:
                return False
            if filters.wwids and p["wwid"] not in filters.wwids:
                return False
        return not filters.targets or _path_target(p) in filters.targets

    kept_paths = [p for p in paths if path_selected(p)]
    kept_orphans = [o for o in orphans if not filters.active or o["map"] in kept_names]
    summary = {
        "maps": len(kept_maps),
        "faulty_maps": sum(1 for m in kept_maps if m["faulty"]),
        "dead_maps": sum(1 for m in kept_maps if m["dead"]),
        "queueing_dead_maps": sum(1 for m in kept_maps if m["queueing_dead"]),
        "unpresented_maps": sum(1 for m in kept_maps if not m["presented"]),
        "paths": len(kept_paths),
        "faulty_paths": sum(1 for p in kept_paths if p["faulty"]),
        "unmapped_paths": sum(1 for p in kept_paths if p["unmapped"]),
        "orphans": len(kept_orphans),
    }
    return {
        "summary": summary,
        "maps": kept_maps,
        "paths": kept_paths,
        "orphans": kept_orphans,
        "filters": {"wwids": list(filters.wwids), "maps": list(filters.maps), "targets": list(filters.targets)},
    }
