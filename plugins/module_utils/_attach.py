# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module_utils is PRIVATE to lunsafe.san. It may change without notice.

"""Attaching and detaching iSCSI LUNs: the procedure behind iscsi_lun_attach.

Both run over a :class:`_host.Host` (sysfs root, mount table, runner, sysfs writer, clock, resolver) and
a validated :class:`Request`, as observe -> plan -> (unless check mode) apply -> observe again:

* :func:`attach`: node records with manual scan, login on every path that has no session, one targeted
  scan write per LUN and session, one wait for every block device, identity checks per LUN across all of
  its paths (same WWID and size, distinct SCSI hosts, the expected WWID), one wait for every multipath map.
  A LUN that fails is rolled back alone: the devices this run created for it are removed (through the one
  device removal of ``_remove`` and, for a map multipathd built meanwhile, the flush of ``_flush``).
  Sessions, node and discovery records this run created are removed only when no requested LUN is left
  attached, since the LUNs that passed are in use by the caller's next task.
* :func:`detach`: per LUN, its map flushed and its paths removed in that order, after every LUN was
  checked (mounted, held, open or blocked refuses the whole call, nothing changed, unless ``force``);
  then a logout of each path whose session carries no other LUN.

A path is (portal, target): arrays that present one target name per controller port give a target per
portal, and identity checks, the map wait and the rollback span all of a LUN's paths.

Users: plugins/modules/iscsi_lun_attach.py.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils import _flush as flush
from ansible_collections.lunsafe.san.plugins.module_utils import _iscsiadm as iscsiadm
from ansible_collections.lunsafe.san.plugins.module_utils import _login as login
from ansible_collections.lunsafe.san.plugins.module_utils import _multipath as multipath
from ansible_collections.lunsafe.san.plugins.module_utils import _scan as scan
from ansible_collections.lunsafe.san.plugins.module_utils._durations import check_durations
from ansible_collections.lunsafe.san.plugins.module_utils._errors import (
    DaemonUnavailable,
    InputError,
    LunsafeError,
    ToolError,
    WaitTimeout,
)
from ansible_collections.lunsafe.san.plugins.module_utils._hctl import HctlError, linux_lun, parse_lun_token
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._journal import Trail, covers
from ansible_collections.lunsafe.san.plugins.module_utils._portal import Portal, resolve_portals
from ansible_collections.lunsafe.san.plugins.module_utils._remove import (
    Record,
    RemoveFailed,
    device_users,
    path_identity,
    remove_path,
    settled_users,
)
from ansible_collections.lunsafe.san.plugins.module_utils._runner import CommandRunner
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import (
    DmMap,
    IscsiSession,
    ScsiDevice,
    Snapshot,
    SysfsError,
    normalize_wwid,
)

__all__ = [
    "IdentityError",
    "LuIdentity",
    "LunRequest",
    "MapTimeout",
    "Outcome",
    "PathRequest",
    "Request",
    "attach",
    "build_request",
    "check_identity",
    "describe_paths",
    "detach",
    "detach_identity_refusal",
    "empty_result",
    "expected",
    "lu_identity",
    "lun_devices",
    "map_facts",
    "session_facts",
    "stale_devices",
]

MAP_GRACE = 5.0  # seconds without a new map before multipathd is asked to build the rest
LOGIN_RETRIES = 2  # node.session.initial_login_retry_max: an unreachable portal fails fast
# LUNs scanned, checked and waited for together; None: all of a call's LUNs in one wave
WAVE: Optional[int] = None
ROLLBACK_SETTLE = 15.0  # seconds a rollback waits for udev workers and the like to close a new device


class IdentityError(LunsafeError):
    """The paths of one LUN disagree (WWID, size, host) or do not carry the expected WWID."""


class MapTimeout(LunsafeError):
    """No multipath map holding every path of the LUN appeared before the deadline."""


class SessionTimeout(LunsafeError):
    """A requested path has no logged-in session before the deadline."""


class DetachRefused(LunsafeError):
    """A LUN to detach is mounted, held, open or has blocked paths, and ``force`` is not set: nothing done."""


# ---------------------------------------------------------------------------------------------------------
# the request


@dataclasses.dataclass(frozen=True)
class PathRequest:
    """One path to the LUNs: a portal (an address) and the target name presented there."""

    portal: Portal
    target: str
    spelled: str  # the portal as the user wrote it


@dataclasses.dataclass(frozen=True)
class LunRequest:
    given: str  # as the user wrote it
    array_lun: int
    linux_lun: int
    expected_wwid: Optional[str]  # multipath spelling


@dataclasses.dataclass(frozen=True)
class Request:
    paths: Tuple[PathRequest, ...]
    luns: Tuple[LunRequest, ...]
    iface: Optional[str] = None
    chap: Optional[login.Chap] = None
    discovery_chap: Optional[login.Chap] = None
    discover: bool = False
    node_startup: Optional[str] = None  # None: manual for records this run creates, existing ones keep theirs
    multipath: bool = True
    stale_device: str = "fail"
    timeout: float = 60.0
    login_timeout: float = 30.0
    force: bool = False
    keep_going: bool = False  # detach: go on after a LUN or path fails, fail at the end (needs force)
    logout: bool = True
    remove_node: bool = True
    warnings: Tuple[str, ...] = ()
    single: bool = False  # given as ``lun``: the result keeps the single-LUN shape, errors name no LUN

    @property
    def targets(self) -> Tuple[str, ...]:
        return tuple(dict.fromkeys(path.target for path in self.paths))

    def secrets(self) -> List[str]:
        return [s for chap in (self.chap, self.discovery_chap) if chap is not None for s in chap.secrets()]

    def journal_request(self, *, state: str) -> Dict[str, Any]:
        """What the journal keeps of the request (no secret): enough to tell which later run covers it."""
        return {
            "state": state,
            "targets": list(self.targets),
            "portals": [str(path.portal) for path in self.paths],
            "luns": [lun.linux_lun for lun in self.luns],
        }


_WWID_FORMS = (
    re.compile(r"^3(?:[0-9a-f]{16}|[0-9a-f]{32})$"),  # NAA
    re.compile(r"^2(?:[0-9a-f]{16}|[0-9a-f]{24}|[0-9a-f]{32})$"),  # EUI-64
    re.compile(r"^[18]\S{8,}$"),  # T10 vendor id, SCSI name string
)


def expected(wwid: Optional[str]) -> Optional[str]:
    """A user's expected WWID in the multipath spelling: ``naa.6001…`` and ``3600 1…`` both work."""
    if wwid is None:
        return None
    text = wwid.strip()
    if text.lower().startswith(("naa.", "eui.", "t10.")):
        return normalize_wwid(text)
    if text.lower().startswith("0x"):
        return "3" + text[2:].lower()
    return text.lower() if text[:1] in "1238" and all(c in "0123456789abcdefABCDEF" for c in text[1:]) else text


def validate_wwid(text: Any, *, option: str) -> str:
    """An expected WWID in the multipath spelling; :class:`InputError` for anything that is not a WWID."""
    normalized = expected(text) if isinstance(text, str) else None
    if normalized is None or not any(form.match(normalized) for form in _WWID_FORMS):
        raise InputError(
            f"{option} {text!r} is not a WWID: give it as multipath shows it (3600140…, 2…, 1…, 8…) or as the "
            "kernel does (naa.…, eui.…, t10.…)",
            option=option,
            value=text,
        )
    return normalized


def _lun(token: Any, *, addressing: str, wwid: Any, option: str) -> LunRequest:
    try:
        array_lun = parse_lun_token(token)
        kernel_lun = linux_lun(lun=array_lun, addressing=addressing)
    except HctlError as exc:
        raise InputError(f"invalid {option}: {exc}", option=option, value=token) from None
    return LunRequest(
        given=str(token),
        array_lun=array_lun,
        linux_lun=kernel_lun,
        expected_wwid=None if wwid is None else validate_wwid(wwid, option="expected_wwid"),
    )


def _luns(params: Mapping[str, Any]) -> Tuple[LunRequest, ...]:
    addressing = params.get("lun_addressing") or "peripheral"
    if params.get("lun") is not None:
        return (_lun(params["lun"], addressing=addressing, wwid=params.get("expected_wwid"), option="lun"),)
    entries = params.get("luns") or []
    if not entries:
        raise InputError("luns must name at least one LUN", option="luns", value=entries)
    if params.get("expected_wwid") is not None:
        raise InputError(
            "expected_wwid goes with lun; with luns give each LUN as {lun: N, expected_wwid: WWID}",
            option="expected_wwid",
            value=params.get("expected_wwid"),
        )
    found: List[LunRequest] = []
    for entry in entries:
        if isinstance(entry, Mapping):
            unknown = sorted(set(entry) - {"lun", "expected_wwid"})
            if unknown or entry.get("lun") is None:
                raise InputError(
                    "each entry of luns is a LUN or a dict with 'lun' and optionally 'expected_wwid', "
                    f"got {dict(entry)!r}",
                    option="luns",
                    value=dict(entry),
                )
            request = _lun(entry["lun"], addressing=addressing, wwid=entry.get("expected_wwid"), option="luns")
        else:
            request = _lun(entry, addressing=addressing, wwid=None, option="luns")
        twin = next((other for other in found if other.linux_lun == request.linux_lun), None)
        if twin is not None:
            raise InputError(
                f"luns names LUN {request.array_lun} twice ({twin.given!r} and {request.given!r})",
                option="luns",
                value=entries,
            )
        found.append(request)
    return tuple(found)


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


def build_request(params: Mapping[str, Any], *, resolver: Callable[[str], List[str]]) -> Request:
    """Validate the module's parameters; :class:`InputError` names the option and the value it refused."""
    # one rule for every duration option of the collection (_durations)
    check_durations(params, deadlines=("timeout", "login_timeout", "lock_lease.ttl"), zero_allowed=("lock_timeout",))
    if params.get("keep_going") and not (params.get("force") and params.get("state") == "absent"):
        raise InputError(
            "keep_going is for a forced detach only: set state: absent and force: true with it (it goes on "
            "removing what it can after a failure, also devices that are in use)",
            option="keep_going",
            value=params.get("keep_going"),
        )
    paths, warnings = _paths(params, resolver)
    iface = params.get("iface")
    return Request(
        paths=paths,
        luns=_luns(params),
        iface=None if iface is None else iscsiadm.validate_iface(iface),
        chap=_chap(params, "chap", mutual=True),
        discovery_chap=_chap(params, "discovery_chap", mutual=False),
        discover=bool(params.get("discover")),
        node_startup=params.get("node_startup"),
        multipath=params.get("multipath", True) is not False,
        stale_device=params.get("stale_device") or "fail",
        timeout=float(params.get("timeout") or 60),
        login_timeout=float(params.get("login_timeout") or 30),
        force=bool(params.get("force")),
        keep_going=bool(params.get("keep_going")),
        logout=params.get("logout", True) is not False,
        remove_node=params.get("remove_node", True) is not False,
        warnings=tuple(warnings),
        single=params.get("lun") is not None,
    )


# ---------------------------------------------------------------------------------------------------------
# pure helpers over snapshots


def lun_devices(*, snapshot: Snapshot, sessions: Sequence[IscsiSession], lun: int) -> Tuple[ScsiDevice, ...]:
    """The block devices of Linux LUN ``lun`` on these sessions (one per path), freshly resolved."""
    found: List[ScsiDevice] = []
    for session in sessions:
        for device in snapshot.devices_for(sid=session.sid, lun=lun):
            if device.name is not None and device.hctl.host == session.host:
                found.append(device)
    return tuple(sorted(found, key=lambda device: device.hctl))


def fresh_wwid(runner: CommandRunner, *, name: str, scsi_id: str) -> Optional[str]:
    """Ask the LU itself (INQUIRY VPD 0x83 through udev's scsi_id, 5 s SG_IO timeout) for its WWID now.

    The kernel's ``device/wwid`` and the map keep the identity read at probe time; after the array gives
    the LUN number to another LU, only a fresh INQUIRY tells. None when the device does not answer.
    """
    try:
        result = runner.run([scsi_id, "--page=0x83", "--whitelisted", f"--device=/dev/{name}"], timeout=15)
    except ToolError:
        return None
    text = result.stdout.strip()
    return text or None


def stale_devices(
    *, devices: Sequence[ScsiDevice], snapshot: Snapshot, fresh: Optional[Dict[str, Optional[str]]] = None
) -> List[Dict[str, Any]]:
    """Devices at the LUN's address that carry another LU's identity (the array reused the LUN number).

    A device is stale when the LU now answers with another WWID than the one the kernel recorded
    (``fresh``, from :func:`fresh_wwid`), or when the multipath map holding it has another WWID. A device
    whose WWID is merely not the expected one is not stale: the identity check reports that.
    """
    stale = []
    for device in devices:
        reasons = []
        now = (fresh or {}).get(device.name or "")
        if now is not None and device.wwid is not None and now != device.wwid:
            reasons.append(f"the LU now answers with WWID {now}, the kernel recorded {device.wwid}")
        current = now or device.wwid
        for dm_map in snapshot.maps_holding(names=[device.name or ""]):
            if dm_map.is_multipath and dm_map.wwid is not None and current not in (None, dm_map.wwid):
                reasons.append(f"held by map {dm_map.name or dm_map.dm} ({dm_map.dm}) of WWID {dm_map.wwid}")
        if reasons:
            stale.append(
                {"hctl": str(device.hctl), "name": device.name, "wwid": device.wwid, "now": now, "reasons": reasons}
            )
    return stale


@dataclasses.dataclass(frozen=True)
class LuIdentity:
    """What the paths of one LUN say about the LU behind them: the one identity check of attach and detach."""

    wwids: Tuple[str, ...]  # the distinct WWIDs the paths carry, sorted ("" for a path that reports none)
    expected: Optional[str]  # the expected WWID (multipath spelling), None when none was given

    @property
    def agree(self) -> bool:
        """Every path carries one and the same WWID."""
        return len(self.wwids) == 1 and bool(self.wwids[0])

    @property
    def known(self) -> Tuple[str, ...]:
        return tuple(w for w in self.wwids if w)

    @property
    def mismatch(self) -> bool:
        """An expected WWID was given and the paths do not all carry it."""
        return self.expected is not None and self.wwids != (self.expected,)


def lu_identity(*, devices: Sequence[ScsiDevice], expected_wwid: Optional[str]) -> LuIdentity:
    return LuIdentity(wwids=tuple(sorted({d.wwid or "" for d in devices})), expected=expected(expected_wwid))


def describe_paths(devices: Sequence[ScsiDevice], *, wwid: bool = False) -> str:
    """``2:0:0:3 sdc, 3:0:0:3 sdd`` (with ``wwid``: ``2:0:0:3 sdc WWID 3600…``) for messages."""
    return ", ".join(
        f"{d.hctl} {d.name or '(no block device)'}" + (f" WWID {d.wwid or '(none)'}" if wwid else "") for d in devices
    )


def check_identity(
    *, devices: Sequence[ScsiDevice], expected_wwid: Optional[str], paths_expected: int
) -> Dict[str, Any]:
    """All paths one LUN: same WWID and size, distinct SCSI hosts, the expected WWID, the expected count.

    Returns the identity (wwid, size_bytes); :class:`IdentityError` says what disagreed, per path.
    """
    seen = [
        {"hctl": str(d.hctl), "name": d.name, "wwid": d.wwid, "size_bytes": d.size_bytes, "host": d.hctl.host}
        for d in devices
    ]
    if len(devices) != paths_expected:
        raise IdentityError(
            f"expected {paths_expected} path(s) to the LUN, found {len(devices)}",
            paths=seen,
            paths_expected=paths_expected,
        )
    identity = lu_identity(devices=devices, expected_wwid=expected_wwid)
    if not identity.agree:
        raise IdentityError(
            "the paths of this LUN report different or missing WWIDs: they are not the same LU "
            "(the array may have reused the LUN number on one portal, or gives identical serials to distinct LUs): "
            + describe_paths(devices, wwid=True),
            paths=seen,
        )
    sizes = sorted({d.size_bytes or 0 for d in devices})
    if len(sizes) != 1:
        raise IdentityError("the paths of this LUN report different sizes", paths=seen)
    hosts = [d.hctl.host for d in devices]
    if len(set(hosts)) != len(hosts):
        raise IdentityError("two paths of this LUN sit on the same SCSI host", paths=seen)
    if identity.mismatch:
        raise IdentityError(
            f"the LUN carries WWID {identity.wwids[0]}, not the expected {identity.expected}: refusing to use it "
            "(check the LUN number, the target and expected_wwid)",
            paths=seen,
            wwid=identity.wwids[0],
        )
    return {"wwid": identity.wwids[0], "size_bytes": sizes[0]}


def detach_identity_refusal(*, given: str, devices: Sequence[ScsiDevice], expected_wwid: Optional[str]) -> str:
    """Why LUN ``given`` must not be removed by its number ("" when it may): its paths carry another WWID than
    the expected one, or different WWIDs among themselves. A LUN without a path has nothing to check."""
    if not devices:
        return ""
    identity = lu_identity(devices=devices, expected_wwid=expected_wwid)
    if len(identity.known) > 1 or (identity.expected is not None and not identity.agree):
        return (
            f"LUN {given}: its paths carry different or missing WWIDs ({describe_paths(devices, wwid=True)})"
            + (f", expected {identity.expected}" if identity.expected is not None else "")
            + ": they are not one LU (the array may have reused the LUN number for another LU on one of them), "
            "so nothing was removed; detach through one portal at a time, each with the WWID it carries"
        )
    if identity.mismatch:
        return (
            f"LUN {given}: the kernel reports WWID {identity.wwids[0]} for it ({describe_paths(devices)}), not the "
            f"expected {identity.expected}: the array may have reused the LUN number for another LU, so nothing was "
            "removed (check the LUN number, the target and expected_wwid)"
        )
    return ""


def complete_map(snapshot: Snapshot, names: Sequence[str], wwid: str) -> Optional[DmMap]:
    """The multipath map of ``wwid`` if it holds every path in ``names``."""
    try:
        dm_map = snapshot.multipath_map_for(names=names)
    except SysfsError:
        return None
    if dm_map is None or dm_map.wwid != wwid or not set(names).issubset(dm_map.slaves):
        return None
    return dm_map


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


def map_facts(dm_map: Optional[DmMap], udev: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
    if dm_map is None:
        return None
    return {
        "dm": dm_map.dm,
        "name": dm_map.name,
        "uuid": dm_map.uuid,
        "wwid": dm_map.wwid,
        "path": f"/dev/mapper/{dm_map.name}" if dm_map.name else f"/dev/{dm_map.dm}",
        "slaves": list(dm_map.slaves),
        "udev": udev,
    }


def _names(devices: Sequence[ScsiDevice]) -> str:
    return ", ".join(f"{d.hctl} {d.name or '(no block device)'}" for d in devices)


def _diff_lines(devices: Sequence[ScsiDevice]) -> str:
    return "".join(f"{d.hctl} {d.name or '-'} {d.wwid or '-'}\n" for d in devices)


def observe_left(lun: LunRun, snapshot: Snapshot) -> None:
    """A LUN that failed but is still there (attached before the run, or left by the rollback): its WWID,
    size and map as observed, so that the result says what is attached (None where the paths disagree)."""
    if not lun.devices:
        lun.wwid, lun.size_bytes, lun.dm_map = None, None, None
        return
    identity = lu_identity(devices=lun.devices, expected_wwid=None)
    sizes = {d.size_bytes for d in lun.devices}
    lun.wwid = identity.wwids[0] if identity.agree else None
    lun.size_bytes = sizes.pop() if len(sizes) == 1 else None
    names = [d.name for d in lun.devices if d.name]
    try:
        dm_map = snapshot.multipath_map_for(names=names) if names else None
    except SysfsError:
        dm_map = None
    lun.dm_map = dm_map if dm_map is not None and dm_map.wwid == lun.wwid else None


# ---------------------------------------------------------------------------------------------------------
# the run


@dataclasses.dataclass
class LunRun:
    """One requested LUN during a run."""

    req: LunRequest
    state: str = "absent"  # attached, detached, absent, failed
    devices: Tuple[ScsiDevice, ...] = ()
    before: Tuple[str, ...] = ()  # H:C:T:L of its devices before the run
    new: List[str] = dataclasses.field(default_factory=list)  # kernel names this run created
    scanned: bool = False  # ``new`` was recorded right after this run's scan
    wwid: Optional[str] = None
    size_bytes: Optional[int] = None
    dm_map: Optional[DmMap] = None
    error: Optional[LunsafeError] = None
    plan: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    removed: Dict[str, Any] = dataclasses.field(default_factory=lambda: {"map": None, "paths": []})
    stale_replaced: List[Dict[str, Any]] = dataclasses.field(default_factory=list)

    def fail(self, error: LunsafeError) -> None:
        if self.error is None:
            self.error = error
        self.state = "failed"

    @property
    def ok(self) -> bool:
        return self.error is None

    def facts(self, snapshot: Snapshot, host: Host) -> Dict[str, Any]:
        dm = map_facts(self.dm_map, host.udev_properties(self.dm_map.dm) if self.dm_map is not None else None)
        by_id = None
        # a LUN that failed but is attached (an expected_wwid mismatch on a LUN attached before) has one too
        if self.wwid is not None and self.devices and self.state in ("attached", "failed"):
            by_id = f"/dev/disk/by-id/dm-uuid-mpath-{self.wwid}" if dm else f"/dev/disk/by-id/scsi-{self.wwid}"
        entry: Dict[str, Any] = {
            "lun": self.req.given,
            "linux_lun": self.req.linux_lun,
            "state": self.state,
            "hctl": [str(d.hctl) for d in self.devices],
            "devices": [
                scan.device_facts(
                    device=d,
                    snapshot=snapshot,
                    new=str(d.hctl) not in self.before,
                    udev=host.udev_properties(d.name) if self.state == "attached" else None,
                )
                for d in self.devices
            ],
            "wwid": self.wwid,
            "size_bytes": self.size_bytes,
            "dm": dm,
            "by_id": by_id,
            "removed": self.removed,
            "plan": self.plan,
        }
        if self.stale_replaced:
            entry["stale_replaced"] = self.stale_replaced
        if self.error is not None:
            entry["msg"] = self.error.msg
        return entry


@dataclasses.dataclass
class Outcome:
    """What a procedure returns: the result (documented keys, also on failure) and the error, if any."""

    result: Dict[str, Any]
    error: Optional[LunsafeError] = None


def empty_result(timings: Dict[str, float]) -> Dict[str, Any]:
    """The result's keys before anything is known (also what a run refused before it started returns)."""
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


class _Run:
    """State shared by attach and detach: the host, the request, timings and the result."""

    def __init__(
        self,
        host: Host,
        request: Request,
        *,
        check: bool,
        timings: Dict[str, float],
        trail: Optional[Trail] = None,
    ) -> None:
        self.host = host
        self.request = request
        self.check = check
        # the run's entry in the journal beside the host lock: each write is recorded just before it is made
        self.trail = trail or Trail(None, module="iscsi_lun_attach", op="none", request={})
        self.timings = timings
        self._last_mark = host.clock()
        self._started = self._last_mark
        self.luns = [LunRun(req=lun) for lun in request.luns]
        self.warnings: List[str] = list(request.warnings)
        self.result = empty_result(timings)

    def mark(self, phase: str, *, add: bool = False) -> None:
        """Seconds spent in each phase, measured inside the module (no Ansible transport); ``add`` sums a phase
        that runs more than once (the scan and map waits of each wave)."""
        now = self.host.clock()
        self.timings[phase] = round(now - self._last_mark + (self.timings.get(phase, 0.0) if add else 0.0), 3)
        self.timings["total"] = round(now - self._started, 3)
        self._last_mark = now

    def review_journal(self) -> None:
        """What runs killed before this one left (the journal), and which of them this request covers."""
        targets, luns = self.request.targets, [lun.req.linux_lun for lun in self.luns]
        snapshot = self.host.snapshot(device_detail=False)
        self.trail.review(
            lambda entry: covers(entry, module="iscsi_lun_attach", targets=targets, luns=luns),
            settled=lambda entry: flush.entry_settled(entry, snapshot),
        )

    def path_sessions(self, snapshot: Snapshot, path: PathRequest) -> Tuple[IscsiSession, ...]:
        return snapshot.sessions_for(targetname=path.target, portal=path.portal)

    def sessions(self, snapshot: Snapshot) -> List[IscsiSession]:
        found: Dict[int, IscsiSession] = {}
        for path in self.request.paths:
            for session in self.path_sessions(snapshot, path):
                found.setdefault(session.sid, session)
        return [found[sid] for sid in sorted(found)]

    def finish(self, snapshot: Snapshot, error: Optional[LunsafeError]) -> Outcome:
        self.result["sessions"] = [session_facts(s) for s in self.sessions(snapshot)]
        self.result["luns"] = [lun.facts(snapshot, self.host) for lun in self.luns]
        self.result["warnings"] = self.warnings
        self.result.update(self.host.wait_info())  # at the end: the monitor opens at the first sysfs write
        failed = [lun for lun in self.luns if lun.error is not None]
        self.result["failed_luns"] = [lun.req.given for lun in failed]
        if error is None and failed:
            if len(failed) == 1 and self.request.single:
                error = failed[0].error
            else:
                error = LunsafeError(
                    "; ".join(f"LUN {lun.req.given}: {lun.error.msg}" for lun in failed if lun.error is not None),
                    failed_luns=[lun.req.given for lun in failed],
                )
        if error is not None:
            self.mark("failed")
        else:
            self.mark("done")
        return Outcome(result=self.result, error=error)


# ---------------------------------------------------------------------------------------------------------
# attach


def preflight_multipathd(runner: CommandRunner) -> None:
    """Fail before any change when multipathd does not answer (``multipath: true`` cannot work then).

    ``multipathd show status`` starts a stopped daemon through multipathd.socket when that unit is
    listening, so only a daemon that is really unavailable fails here.
    """
    try:
        reply = runner.run(multipath.show_status(), ok_rcs=multipath.MULTIPATHD_OK_RCS, timeout=15)
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


class _Attach(_Run):
    def __init__(
        self,
        host: Host,
        request: Request,
        *,
        check: bool,
        timings: Dict[str, float],
        trail: Optional[Trail] = None,
    ) -> None:
        super().__init__(host, request, check=check, timings=timings, trail=trail)
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

    # -- observe and plan ------------------------------------------------------------------------------

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

    def scan_items(self, snapshot: Snapshot, lun: LunRun) -> List[scan.ScanItem]:
        return [
            scan.session_item(snapshot=snapshot, session=session, lun=lun.req.linux_lun, array_lun=lun.req.array_lun)
            for session in self.sessions(snapshot)
        ]

    def plan_only(self, before: Snapshot, changes: List[login.NodeChange], missing: List[PathRequest]) -> None:
        """Check mode: report the scans that would be written on the sessions that exist now, and fail a LUN
        that is attached with another identity than expected (as the real run does)."""
        items: List[scan.ScanItem] = []
        for lun in self.luns:
            lun.devices = lun_devices(snapshot=before, sessions=self.sessions(before), lun=lun.req.linux_lun)
            lun.before = tuple(str(d.hctl) for d in lun.devices)
            lun.state = "attached" if lun.devices else "absent"
            if lun.devices:  # an attached LUN fails the real run's identity check the same way (issue 23)
                try:
                    check_identity(
                        devices=lun.devices, expected_wwid=lun.req.expected_wwid, paths_expected=len(lun.devices)
                    )
                except IdentityError as exc:
                    lun.fail(exc)
                    observe_left(lun, before)
            try:
                items.extend(self.scan_items(before, lun))
            except scan.ResolveError as exc:
                self.warnings.append(f"check mode: LUN {lun.req.given}: {exc.msg}")
        plan = scan.ScanPlan(items=tuple(i for i in items if i.action == scan.ACTION_SCAN), sessions=())
        self.result["scanned"] = [w.to_dict() for w in scan.planned_writes(plan=plan, sysfs_root=self.host.sysfs_root)]
        self.result["changed"] = bool(
            any(c.changed for c in changes) or missing or self.result["scanned"] or self.trail.adopted_writes
        )

    # -- apply -----------------------------------------------------------------------------------------

    def discover(self) -> None:
        """SendTargets discovery on each portal; every record it adds gets manual scan and is undone on failure.

        Discovery adds a record for every target and portal the array reports, not only the requested
        ones: a record left with iscsid.conf's ``node.session.scan = auto`` would scan every LUN on a later
        login, so each added record gets manual scan, and each is reported in ``discovered``.
        """
        runner = self.host.runner
        known = login.list_nodes(runner)
        had_discovery = login.discovery_records(runner)
        for portal in dict.fromkeys(path.portal for path in self.request.paths):
            create = not any(portal.same_as(other) for other in had_discovery)
            if create:
                self.created_discovery.append(portal)
            self.trail.record(f"discovery on {portal}" + (" (new discovery record)" if create else ""))
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
                self.trail.record(f"node record {node.portal} ({node.target}): node.session.scan=manual")
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
        self.result["discovered"] = [{"target": node.target, "portal": node.portal.for_iscsiadm()} for node in added]

    def wait_for_sessions(self) -> Snapshot:
        """Every path has a LOGGED_IN session in sysfs (iscsiadm returns first); the error names each path
        that has none and the state of the session it has (a session in recovery is FAILED)."""
        last: List[Snapshot] = []

        def poll() -> Optional[Snapshot]:
            snapshot = self.host.snapshot(device_detail=False)
            last[:] = [snapshot]
            ready = all(any(s.logged_in for s in self.path_sessions(snapshot, p)) for p in self.request.paths)
            return snapshot if ready else None

        try:
            self.host.wait(poll, timeout=self.request.timeout, describe="logged-in sessions", max_interval=0.5)
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
                f"timed out after {self.request.timeout:g}s waiting for a logged-in session on: " + "; ".join(waiting),
                paths=waiting,
                timeout=self.request.timeout,
            ) from None
        return self.host.snapshot()

    def replace_stale(self, snapshot: Snapshot, lun: LunRun, sessions: Sequence[IscsiSession]) -> bool:
        """Detect devices at the LUN's address that carry another LU; replace them if allowed. True if changed."""
        devices = lun_devices(snapshot=snapshot, sessions=sessions, lun=lun.req.linux_lun)
        fresh: Dict[str, Optional[str]] = {}
        if self.host.scsi_id is not None:
            for device in devices:
                if device.name and device.state == "running":
                    fresh[device.name] = fresh_wwid(self.host.runner, name=device.name, scsi_id=self.host.scsi_id)
        stale = stale_devices(devices=devices, snapshot=snapshot, fresh=fresh)
        if not stale:
            return False
        if self.request.stale_device != "replace":
            raise LunsafeError(
                "a device at this LUN's address carries another LU's identity (the array reused the LUN number): "
                "refusing to use it; detach the old LUN (its map and paths) first, or set stale_device=replace",
                stale=stale,
            )
        names = {entry["name"] for entry in stale}
        targets = [d for d in devices if d.name in names]
        users = device_users(host=self.host, devices=targets)
        if users:
            raise LunsafeError(
                "stale devices at this LUN's address are in use: "
                + "; ".join(u.describe() for u in users)
                + ": flush the old map first (lunsafe.san.multipath_flush)",
                stale=stale,
            )
        record = Record(clock=self.host.clock, start=self.host.clock())
        for device in targets:
            self.trail.record(f"delete stale device {device.name} ({device.hctl})")
            remove_path(
                host=self.host, path=path_identity(device), force=False, timeout=self.request.timeout, record=record
            )
        lun.stale_replaced = stale
        return True

    def attach_waves(self, snapshot: Snapshot) -> None:
        """Scan, identity check and map wait, wave after wave."""
        for wave in self.waves():
            snapshot = self.scan_and_wait(snapshot, wave)
            self.mark("scan", add=True)
            names_of = self.check_identities(snapshot, wave)
            if self.request.multipath:
                self.wait_for_maps(names_of, wave)
            self.mark("map", add=True)

    def waves(self) -> List[List[LunRun]]:
        """The LUNs in waves of :data:`WAVE`: each wave is scanned, checked and waited for before the next."""
        size = WAVE or len(self.luns)
        return [self.luns[i : i + size] for i in range(0, len(self.luns), size)]

    def scan_and_wait(self, snapshot: Snapshot, wave: Sequence[LunRun]) -> Snapshot:
        """One scan write per LUN of the wave and session, then one wait for all their block devices."""
        items: List[scan.ScanItem] = []
        owner: Dict[Tuple[int, int], LunRun] = {}
        for lun in wave:
            if not lun.ok:
                continue
            try:
                lun_items = self.scan_items(snapshot, lun)
                scan.make_plan(items=lun_items, sessions=())
            except scan.ResolveError as exc:
                lun.fail(exc)
                continue
            for item in lun_items:
                owner[(item.host, item.lun)] = lun
            items.extend(lun_items)
        if not items:
            return snapshot
        plan = scan.ScanPlan(items=tuple(items), sessions=tuple(self.sessions(snapshot)))
        for item in items:
            if item.action == scan.ACTION_SCAN:
                self.trail.record(f"scan {item.hctl or f'{item.host}:-:-:{item.lun}'}")
        writes = scan.apply_plan(plan=plan, host=self.host)
        self.result["scanned"].extend(w.to_dict() for w in writes)
        again: List[scan.SysfsWrite] = []  # scans written again once a session had recovered
        try:
            after, _waited = scan.wait_for_devices(
                plan=plan, host=self.host, timeout=self.request.timeout, scanned=writes, again=again
            )
        except scan.ScanTimeout as exc:
            after = exc.snapshot
            recovery: Dict[str, str] = exc.details.get("recovery") or {}
            for item in scan.missing_items(plan=plan, snapshot=after):
                lun = owner[(item.host, item.lun)]
                cause = (
                    f"its {recovery[item.address]} during the wait: the portal or the network path went away"
                    if item.address in recovery
                    else "the array may not present this LUN to this initiator: check its LUN masking, the LUN "
                    "number and lun_addressing"
                )
                lun.fail(
                    scan.ScanTimeout(
                        f"timed out after {self.request.timeout:g}s waiting for its block device at {item.address} "
                        f"({cause})",
                        snapshot=after,
                        missing=[item.address],
                    )
                )
        self.result["scanned"].extend(w.to_dict() for w in again)
        self.warnings.extend(
            f"the session of host{w.host} went into recovery after the scan of {w.address} was written; the kernel "
            "drops such a scan, so it was written again once the session had logged in"
            for w in again
        )
        self.record_new(after, wave)
        return after

    def record_new(self, after: Snapshot, wave: Sequence[LunRun]) -> None:
        """What this run created, per LUN, right after its scan: the rollback removes these and nothing
        that appears later (a device another run scanned once this run no longer held the lock)."""
        sessions = self.sessions(after)
        for lun in wave:
            devices = lun_devices(snapshot=after, sessions=sessions, lun=lun.req.linux_lun)
            lun.new = [d.name for d in devices if d.name and str(d.hctl) not in lun.before]
            lun.scanned = True

    def wait_for_maps(self, names_of: Dict[int, List[str]], wave: Sequence[LunRun]) -> None:
        """One wait for the maps of every LUN that passed its identity check.

        multipathd builds the maps one after the other from the udev events of the new paths (seconds each
        under load). Only when it stalls, :data:`MAP_GRACE` seconds without a new map of ours (find_multipaths
        keeps a first single path out of multipath), are the waiting WWIDs added to the wwids file and their
        paths handed to multipathd, once: asking earlier only queues more work behind the events it is
        already working through. A LUN whose map is not there at the deadline fails.
        """
        waiting = {id(lun): lun for lun in wave if lun.ok and lun.wwid is not None and id(lun) in names_of}
        if not waiting:
            return
        clock = self.host.clock
        deadline = clock() + self.request.timeout
        last_progress = clock()
        handed_over = False

        def poll() -> bool:
            nonlocal last_progress
            snapshot = self.host.snapshot(device_detail=False)
            for key, lun in list(waiting.items()):
                dm_map = complete_map(snapshot, names_of[key], lun.wwid or "")
                if dm_map is not None and self.host.udev_map_ready(dm_map.dm, dm_map.uuid or ""):
                    lun.dm_map = dm_map
                    del waiting[key]
                    last_progress = clock()
            return not waiting

        while True:
            until = deadline if handed_over else min(deadline, last_progress + MAP_GRACE)
            try:
                self.host.wait(poll, timeout=max(0.0, until - clock()), describe="multipath maps", max_interval=0.5)
                return
            except WaitTimeout:
                pass
            if clock() >= deadline:
                break
            if not handed_over and clock() >= last_progress + MAP_GRACE:
                self.hand_over(waiting, names_of)
                handed_over = True
        for key, lun in waiting.items():
            lun.fail(
                MapTimeout(
                    f"no multipath map for WWID {lun.wwid or '(unknown)'} holding {', '.join(names_of[key])} after "
                    f"{self.request.timeout:g}s (is multipathd running, and is the device blacklisted?)",
                    wwid=lun.wwid,
                )
            )

    def hand_over(self, waiting: Dict[int, LunRun], names_of: Dict[int, List[str]]) -> None:
        """Add the waiting WWIDs to the wwids file and hand their paths to multipathd (each command recorded)."""
        actions: List[str] = self.result["multipath_actions"]
        for key, lun in waiting.items():
            for argv in [multipath.add_wwid(wwid=lun.wwid or "")] + [
                multipath.add_path(device=n) for n in names_of[key]
            ]:
                self.trail.record(" ".join(argv))
                try:
                    self.host.runner.run(argv, ok_rcs=multipath.MULTIPATHD_OK_RCS, timeout=15)
                except ToolError as exc:
                    actions.append(f"{' '.join(argv)}: {exc.msg}")
                else:
                    actions.append(" ".join(argv))

    def roll_back_lun(self, lun: LunRun, before_maps: Set[str]) -> None:
        """Remove what this run created for one failed LUN: a map multipathd built for it, then its devices.

        Right after a scan, udev workers and multipathd hold the new devices for a while, and multipathd may
        build a map for them only now: until :data:`ROLLBACK_SETTLE` seconds have passed, each round flushes
        a new map of this LUN's devices that nothing uses and deletes each device nothing uses; what is
        still in use then is left in place, with the reason.
        """
        undone: List[str] = self.result["rolled_back"]
        pending = list(lun.new)
        deadline = self.host.clock() + min(ROLLBACK_SETTLE, self.request.timeout)
        record = Record(clock=self.host.clock, start=self.host.clock())
        refused: Dict[str, str] = {}
        while pending:
            for dm_map in self.host.snapshot().maps_holding(names=pending):
                if not dm_map.is_multipath or dm_map.uuid is None or dm_map.uuid in before_maps:
                    continue
                last: List[Any] = []
                ready = self._flushable(dm_map.uuid, last)
                if ready is None:
                    refused[dm_map.name or dm_map.dm] = "; ".join(last[0].refusals) if last else "in use"
                    continue
                observation, fplan = ready
                self.trail.record(f"roll back: flush map {dm_map.name or dm_map.dm}")
                try:
                    outcome = flush.apply_plan(
                        plan=fplan, observation=observation, settings=self._flush_settings(False)
                    )
                except LunsafeError as exc:
                    undone.append(f"could not flush map {dm_map.name or dm_map.dm}: {exc.msg}")
                    pending = []
                    break
                refused.pop(dm_map.name or dm_map.dm, None)
                undone.append(f"flushed map {dm_map.name or dm_map.dm}")
                undone.extend(f"deleted {entry['device']}" for entry in outcome.paths_removed)
            snapshot = self.host.snapshot()
            for name in list(pending):
                device = snapshot.device(name=name)
                if device is None:
                    pending.remove(name)
                    continue
                users: List[Any] = []
                if not self._unused(device, users):
                    refused[name] = "; ".join(u.describe() for u in users)
                    continue
                pending.remove(name)
                refused.pop(name, None)
                self.trail.record(f"roll back: delete {name} ({device.hctl})")
                try:
                    remove_path(
                        host=self.host,
                        path=path_identity(device),
                        force=False,
                        timeout=self.request.timeout,
                        record=record,
                    )
                    undone.append(f"deleted {name}")
                except LunsafeError as exc:
                    undone.append(f"could not delete {name}: {exc.msg}")
            if not pending or self.host.clock() >= deadline:
                break
            self.host.sleep(0.5)
        final = self.host.snapshot(device_detail=False)
        present = set(pending) | {m.name or m.dm for m in final.maps}
        undone.extend(f"left {what}: {why}" for what, why in refused.items() if what in present)

    def _flushable(self, uuid: str, last: List[Any]) -> Any:
        """The flush of map ``uuid`` when nothing refuses it (else None; ``last`` keeps the latest plan)."""
        observation = flush.observe(ref=uuid, host=self.host)
        fplan = flush.plan_flush(observation=observation, force=False, remove_wwid_file=False)
        last[:] = [fplan]
        return None if fplan.refusals else (observation, fplan)

    def _unused(self, device: ScsiDevice, users: List[Any]) -> bool:
        """Whether nothing uses ``device`` (``users`` keeps what does)."""
        users[:] = list(device_users(host=self.host, devices=[device]))
        return not users

    def roll_back_sessions(self) -> None:
        """No LUN is left attached: log out of what this run logged in to, drop the records it created.

        A session that carries a device now (one the rollback had to leave, or another LUN's) is kept: a
        logout would take that device away under its user.
        """
        undone: List[str] = self.result["rolled_back"]
        runner, iface = self.host.runner, self.request.iface
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
                self.trail.record(f"roll back: logout {path.portal} ({path.target})")
                login.logout(runner, target=path.target, portal=path.portal, iface=iface, timeout=60)
                undone.append(f"logged out of {path.portal} ({path.target})")
            except LunsafeError as exc:
                undone.append(f"could not log out of {path.portal}: {exc.msg}")
        for target, portal in self.created_nodes:
            if (target, portal.key()) in kept:  # the session stays, and so does its record
                continue
            try:
                self.trail.record(f"roll back: remove node record {portal} ({target})")
                login.remove_node(runner, target=target, portal=portal, iface=iface)
                undone.append(f"removed node record {portal} ({target})")
            except LunsafeError as exc:
                undone.append(f"could not remove node record {portal}: {exc.msg}")
        for portal in self.created_discovery:
            try:
                self.trail.record(f"roll back: remove discovery record {portal}")
                login.remove_discovery(runner, portal=portal, iface=iface)
                undone.append(f"removed discovery record {portal}")
            except LunsafeError as exc:
                undone.append(f"could not remove discovery record {portal}: {exc.msg}")

    def _flush_settings(self, force: bool) -> flush.Settings:
        return flush.Settings(
            host=self.host,
            retries=3,
            retry_interval=2.0,
            command_timeout=60.0,
            path_timeout=self.request.timeout,
            force=force,
        )

    def run(self) -> Outcome:
        try:
            if self.request.multipath:
                preflight_multipathd(self.host.runner)
        except LunsafeError as exc:  # before anything was changed
            return self.finish(self.host.snapshot(), exc)
        self.review_journal()
        before = self.host.snapshot()
        before_maps = {m.uuid for m in before.maps if m.uuid}
        for lun in self.luns:  # what exists before the run is never rolled back
            devices = lun_devices(snapshot=before, sessions=self.sessions(before), lun=lun.req.linux_lun)
            lun.before = tuple(str(d.hctl) for d in devices)
        try:
            if self.request.discover and not self.check:
                self.discover()
            changes = self.node_changes()
            self.result["nodes"] = [c.to_dict() for c in changes if c.changed]
            missing = self.paths_without_session(before)
            self.mark("observe")
            if self.check:
                self.result["logged_in"] = [str(p.portal) for p in missing]
                self.plan_only(before, changes, missing)
                return self.finish(before, None)
            snapshot = self.log_in(changes, missing)
            self.mark("login")
            snapshot = self.stale_check(snapshot)
            self.mark("stale_check")
            self.attach_waves(snapshot)
        except LunsafeError as exc:
            self.mark("error")  # the time of the step that failed, apart from the rollback
            if not self.check:
                self.roll_back(before_maps, everything=True)
                self.mark("rollback")
            return self.finish(self.host.snapshot(), exc)
        for lun in self.luns:
            if lun.ok:
                lun.state = "attached"
        if any(not lun.ok for lun in self.luns):
            self.roll_back(before_maps, everything=not any(lun.ok for lun in self.luns))
            self.mark("rollback")
        final = self.host.snapshot()
        for lun in self.luns:
            lun.devices = lun_devices(snapshot=final, sessions=self.sessions(final), lun=lun.req.linux_lun)
            if not lun.ok:
                observe_left(lun, final)
        self.result["changed"] = bool(
            self.result["nodes"]
            or self.logged_in
            or self.result["discovered"]
            or any(lun.new or lun.stale_replaced for lun in self.luns)
            or self.result["multipath_actions"]
            or self.trail.adopted_writes  # what a killed run of this request left is reported here
        )
        self.result["diff"] = {
            "before": "".join(f"{hctl}\n" for lun in self.luns for hctl in lun.before),
            "after": "".join(_diff_lines(lun.devices) for lun in self.luns),
        }
        return self.finish(final, None)

    def log_in(self, changes: List[login.NodeChange], missing: List[PathRequest]) -> Snapshot:
        """Node records (manual scan first), a login on each path without a session, then every path logged in."""
        request = self.request
        for change in changes:
            if change.changed:
                self.trail.record(
                    f"node record {change.portal} ({change.target}): "
                    + ("create" if change.create else "set " + ", ".join(update[0] for update in change.updates))
                )
                login.apply_node(self.host.runner, change)
                if change.create:
                    self.created_nodes.append((change.target, change.portal))
        mutual = request.chap is not None and request.chap.username_in is not None
        for path in missing:
            portal = path.portal

            def reachable(portal: Portal = portal) -> bool:
                return self.host.connect(portal.address, portal.port, 3.0)

            self.trail.record(f"login {path.portal} ({path.target})")
            if login.login(
                self.host.runner,
                target=path.target,
                portal=path.portal,
                iface=request.iface,
                timeout=request.login_timeout + 10,
                mutual=mutual,
                reachable=reachable,
            ):
                self.logged_in.append(path)
        self.result["logged_in"] = [str(p.portal) for p in self.logged_in]
        return self.wait_for_sessions()

    def stale_check(self, snapshot: Snapshot) -> Snapshot:
        sessions = self.sessions(snapshot)
        replaced = False
        for lun in self.luns:
            try:
                replaced = self.replace_stale(snapshot, lun, sessions) or replaced
            except LunsafeError as exc:
                lun.fail(exc)
        return self.host.snapshot() if replaced else snapshot

    def check_identities(self, after: Snapshot, wave: Sequence[LunRun]) -> Dict[int, List[str]]:
        """Each LUN's paths are one LU (across every path and target name); the map wait's names per LUN."""
        names_of: Dict[int, List[str]] = {}
        sessions = self.sessions(after)
        paths_expected = len([s for s in sessions if s.logged_in])
        for lun in wave:
            lun.devices = lun_devices(snapshot=after, sessions=sessions, lun=lun.req.linux_lun)
            if not lun.ok:
                continue
            try:
                identity = check_identity(
                    devices=lun.devices, expected_wwid=lun.req.expected_wwid, paths_expected=paths_expected
                )
            except IdentityError as exc:
                lun.fail(exc)
                continue
            lun.wwid, lun.size_bytes = identity["wwid"], identity["size_bytes"]
            names_of[id(lun)] = [d.name for d in lun.devices if d.name]
        return names_of

    def roll_back(self, before_maps: Set[str], *, everything: bool) -> None:
        snapshot = self.host.snapshot()
        for lun in self.luns:
            if lun.ok and not everything:
                continue
            if not lun.scanned:  # the run stopped within the scan: what is new now is what it made
                devices = lun_devices(snapshot=snapshot, sessions=self.sessions(snapshot), lun=lun.req.linux_lun)
                lun.new = [d.name for d in devices if d.name and str(d.hctl) not in lun.before]
            self.roll_back_lun(lun, before_maps)
            if lun.ok:
                lun.state = "absent" if not lun.before else lun.state
        if everything:
            self.roll_back_sessions()


def attach(
    host: Host, request: Request, *, check: bool, timings: Dict[str, float], trail: Optional[Trail] = None
) -> Outcome:
    """Attach every requested LUN on every path; see the module documentation for the result."""
    return _Attach(host, request, check=check, timings=timings, trail=trail).run()


# ---------------------------------------------------------------------------------------------------------
# detach


class _Detach(_Run):
    def plan(self, snapshot: Snapshot) -> Tuple[List[Tuple[LunRun, Any]], List[str], List[str]]:
        """Per LUN: (lun, flush observation and plan, or None for paths without a map); the refusals that
        ``force`` overrides (in use, blocked) and the identity refusals that nothing overrides.

        The identity comes first: a LUN whose paths do not carry its ``expected_wwid``, or carry different
        WWIDs among themselves, is another LU than the one meant (the array reused the LUN number), and the
        whole call is refused before anything is changed. Its use is still observed, to be named after it.
        """
        sessions = self.sessions(snapshot)
        planned: List[Tuple[LunRun, Any]] = []
        refusals: List[str] = []
        identity: List[str] = []
        for lun in self.luns:
            lun.devices = lun_devices(snapshot=snapshot, sessions=sessions, lun=lun.req.linux_lun)
            lun.before = tuple(str(d.hctl) for d in lun.devices)
            if not lun.devices:  # nothing to remove, nothing to check (not a mismatch)
                continue
            mismatch = detach_identity_refusal(
                given=lun.req.given, devices=lun.devices, expected_wwid=lun.req.expected_wwid
            )
            if mismatch:
                identity.append(mismatch)
                lun.fail(IdentityError(mismatch.split(": ", 1)[1]))
            names = [d.name for d in lun.devices if d.name]
            try:
                lun.dm_map = snapshot.multipath_map_for(names=names) if names else None
            except SysfsError:
                if not mismatch:
                    raise
                lun.dm_map = None  # paths of different LUs, in different maps: named by the identity refusal
            known = lu_identity(devices=lun.devices, expected_wwid=None).known
            lun.wwid = lun.dm_map.wwid if lun.dm_map is not None else (known[0] if len(known) == 1 else None)
            if mismatch and len(known) == 1:  # refused, so still attached: its size as observed
                lun.size_bytes = lun.devices[0].size_bytes
            if lun.dm_map is not None and lun.dm_map.uuid is not None:
                # udev's helpers open a map for a moment after a writer's last close: waited for, not refused
                observation = flush.observe_settled(
                    ref=lun.dm_map.uuid,
                    host=self.host,
                    snapshot=snapshot,
                    timeout=min(flush.UDEV_SETTLE_TIMEOUT, self.request.timeout),
                )
                fplan = flush.plan_flush(observation=observation, force=self.request.force, remove_wwid_file=False)
                lun.plan = [step.to_dict() for step in fplan.steps]
                refusals.extend(f"LUN {lun.req.given}: {reason}" for reason in fplan.refusals)
                planned.append((lun, (observation, fplan)))
            else:
                users = settled_users(
                    host=self.host, devices=lun.devices, timeout=min(flush.UDEV_SETTLE_TIMEOUT, self.request.timeout)
                )
                blocked = [d for d in lun.devices if d.state in ("blocked", "created-blocked")]
                if users:
                    refusals.append(f"LUN {lun.req.given}: in use: " + "; ".join(u.describe() for u in users))
                if blocked:
                    refusals.append(
                        f"LUN {lun.req.given}: blocked paths (session in recovery, a delete could hang): "
                        + ", ".join(f"{d.name} ({d.hctl})" for d in blocked)
                    )
                lun.plan = [{"action": "delete_path", "target": d.name, "hctl": str(d.hctl)} for d in lun.devices]
                planned.append((lun, None))
            if mismatch:
                lun.plan = []  # nothing is removed for it, whatever the options
        return planned, refusals, identity

    def remove_one(self, lun: LunRun, flushing: Any) -> None:
        """Remove one LUN; with keep_going, its failure is recorded on the LUN and the next one goes on."""
        try:
            self.remove(lun, flushing)
        except LunsafeError as exc:
            if not self.request.keep_going:
                raise
            lun.fail(exc)

    def remove(self, lun: LunRun, flushing: Any) -> None:
        record = Record(clock=self.host.clock, start=self.host.clock())
        if flushing is not None:
            observation, fplan = flushing
            settings = flush.Settings(
                host=self.host,
                retries=3,
                retry_interval=2.0,
                command_timeout=60.0,
                path_timeout=self.request.timeout,
                force=self.request.force,
            )
            self.trail.record(
                f"flush map {lun.dm_map.name if lun.dm_map else '?'} and delete its paths "
                + ", ".join(d.name or str(d.hctl) for d in lun.devices)
            )
            try:
                outcome = flush.apply_plan(plan=fplan, observation=observation, settings=settings)
            except LunsafeError as exc:
                if not self.request.keep_going:
                    raise
                # go on with the paths alone: the map could not be flushed, its paths may still go
                lun.removed = {"map": None, "paths": list(exc.details.get("paths_removed") or [])}
                lun.fail(exc)
                self.remove_paths(lun, record)
                return
            lun.removed = {
                "map": lun.dm_map.name if lun.dm_map else None,
                "paths": [entry["device"] for entry in outcome.paths_removed],
            }
            self.warnings.extend(outcome.warnings)
            return
        self.remove_paths(lun, record)

    def remove_paths(self, lun: LunRun, record: Record) -> None:
        """Delete each of the LUN's paths still there; with keep_going, a path that fails does not stop the
        next one (the LUN fails, naming every path that could not go)."""
        failures: List[str] = []
        snapshot = self.host.snapshot() if lun.error is not None else None
        for device in lun.devices:
            if snapshot is not None and snapshot.device(name=device.name or "") is None:
                continue  # already gone with the map's flush
            self.trail.record(f"delete {device.name} ({device.hctl})")
            try:
                remove_path(
                    host=self.host,
                    path=path_identity(device),
                    force=self.request.force,
                    timeout=self.request.timeout,
                    record=record,
                )
            except RemoveFailed as exc:
                if not self.request.keep_going:
                    exc.details.setdefault("paths_removed", [entry["device"] for entry in record.paths_removed])
                    raise
                failures.append(exc.msg)
        done = [entry["device"] for entry in record.paths_removed]
        lun.removed = {"map": lun.removed.get("map"), "paths": list(dict.fromkeys(lun.removed["paths"] + done))}
        self.warnings.extend(record.warnings)
        if failures:
            lun.fail(RemoveFailed("; ".join(failures), paths_removed=lun.removed["paths"]))

    def logout_unused(self, snapshot: Snapshot, removing: Set[str], left: Set[str]) -> None:
        """Log out of each path whose sessions carry no other LUN's device, nor one of ours that could not be
        removed (``left``: a logout would pull it away); then drop its node record."""
        ours = {lun.req.linux_lun for lun in self.luns}
        runner, iface = self.host.runner, self.request.iface
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
            if sessions:
                if not self.check:
                    self.trail.record(f"logout {path.portal} ({path.target})")
                    login.logout(
                        runner,
                        target=path.target,
                        portal=path.portal,
                        iface=iface,
                        timeout=self.request.login_timeout + 30,
                    )
                self.result["logged_out"].append(str(path.portal))
            if (
                self.request.remove_node
                and login.read_node(runner, target=path.target, portal=path.portal, iface=iface) is not None
            ):
                if not self.check:
                    self.trail.record(f"remove node record {path.portal} ({path.target})")
                    login.remove_node(runner, target=path.target, portal=path.portal, iface=iface)
                self.result["nodes_removed"].append(str(path.portal))

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
        self.result["sessions_kept"].append(
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
        self.warnings.append(
            f"{'would keep' if self.check else 'kept'} the session to {path.portal} ({path.target}) logged in: it "
            f"still carries {named}; it is logged out once no LUN is left on it"
        )

    def run(self) -> Outcome:
        self.review_journal()
        before = self.host.snapshot()
        try:
            planned, refusals, identity = self.plan(before)
        except LunsafeError as exc:  # nothing was changed
            return self.finish(before, exc)
        self.mark("observe")
        if identity or (refusals and not self.request.force):
            for lun in self.luns:
                if lun.ok:
                    lun.state = "attached" if lun.devices else "absent"
            tail = (
                " (an identity refusal is not overridden by force or keep_going)"
                if identity
                else " (use force to override)"
            )
            error = DetachRefused(
                "refusing to detach, nothing was changed: " + "; ".join(identity + refusals) + tail,
                refusals=identity + refusals,
            )
            return self.finish(before, error)
        try:
            left = self.remove_all(before, planned)
        except LunsafeError as exc:
            return self.finish(self.host.snapshot(), exc)
        for lun in self.luns:
            if lun.ok:
                lun.state = "detached" if lun.devices else "absent"
        final = before if self.check else self.host.snapshot()
        self.result["changed"] = bool(
            any(lun.devices and (lun.ok or lun.removed["map"] or lun.removed["paths"]) for lun in self.luns)
            or self.result["logged_out"]
            or self.result["nodes_removed"]
            or self.trail.adopted_writes
        )
        self.result["diff"] = {
            "before": "".join(_diff_lines(lun.devices) for lun in self.luns),
            "after": "".join(_diff_lines(lun.devices) for lun in self.luns) if self.check else _diff_lines(left),
        }
        outcome = self.finish(final, None)
        if not self.check:
            self.describe_removed(outcome, before, final)
        return outcome

    def remove_all(self, before: Snapshot, planned: List[Tuple[LunRun, Any]]) -> List[ScsiDevice]:
        """Remove every planned LUN, check that nothing came back, log out of unused paths; what is left."""
        removing = {d.name for lun in self.luns for d in lun.devices if d.name}
        if not self.check:
            for lun, flushing in planned:
                self.remove_one(lun, flushing)
        self.mark("remove")
        after = before if self.check else self.host.snapshot()
        left: List[ScsiDevice] = []
        for lun in self.luns:
            remaining = lun_devices(snapshot=after, sessions=self.sessions(after), lun=lun.req.linux_lun)
            if self.check or not remaining:
                continue
            left.extend(remaining)
            if self.request.keep_going and lun.ok:
                lun.fail(LunsafeError("paths are left after removal: " + _names(remaining)))
        if left and not self.request.keep_going:
            raise LunsafeError(
                f"paths are left after removal: {_names(left)} (something scanned them back: another tool "
                "not taking the host lock?)",
                hctl=[str(d.hctl) for d in left],
            )
        if self.request.logout:
            self.logout_unused(after, removing, {d.name for d in left if d.name})
        self.mark("logout")
        return left

    def describe_removed(self, outcome: Outcome, before: Snapshot, final: Snapshot) -> None:
        """The removed devices are gone: each entry says what was there (a LUN that failed with keep_going:
        what is still there)."""
        for entry, lun in zip(outcome.result["luns"], self.luns):
            if lun.ok:
                entry["hctl"] = [str(d.hctl) for d in lun.devices]
                entry["devices"] = [scan.device_facts(device=d, snapshot=before, new=False) for d in lun.devices]
            else:
                still = lun_devices(snapshot=final, sessions=self.sessions(final), lun=lun.req.linux_lun)
                entry["hctl"] = [str(d.hctl) for d in still]
                entry["devices"] = [scan.device_facts(device=d, snapshot=final, new=False) for d in still]


def detach(
    host: Host, request: Request, *, check: bool, timings: Dict[str, float], trail: Optional[Trail] = None
) -> Outcome:
    """Detach every requested LUN (maps flushed, paths removed), then log out of paths carrying no other LUN."""
    return _Detach(host, request, check=check, timings=timings, trail=trail).run()
