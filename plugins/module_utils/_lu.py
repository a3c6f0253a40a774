# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module_utils is PRIVATE to lunsafe.san. It may change without notice.

"""The LUNs of a request and the identity of the LU behind a LUN's paths, whatever the transport.

* :class:`LunRequest` and :func:`parse_luns`: ``lun`` / ``luns`` with ``expected_wwid`` and ``lun_addressing``;
* :func:`lu_identity`, :func:`check_identity` (attach) and :func:`detach_identity_refusal` (detach): the one
  identity check over a LUN's devices (same WWID and size, distinct SCSI hosts, the expected WWID);
* :func:`stale_devices` and :func:`fresh_wwid`: a device at the LUN's address that carries another LU;
* :func:`complete_map` and :func:`map_facts`: the LUN's multipath map.

Users: _attach, _transport_iscsi, _transport_fc.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError, LunsafeError, ToolError
from ansible_collections.lunsafe.san.plugins.module_utils._hctl import HctlError, linux_lun, parse_lun_token
from ansible_collections.lunsafe.san.plugins.module_utils._runner import CommandRunner
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import (
    DmMap,
    ScsiDevice,
    Snapshot,
    SysfsError,
    normalize_wwid,
)

__all__ = [
    "IdentityError",
    "LuIdentity",
    "LunRequest",
    "check_identity",
    "complete_map",
    "describe_paths",
    "detach_identity_refusal",
    "diff_lines",
    "expected",
    "fresh_wwid",
    "lu_identity",
    "map_facts",
    "names_of",
    "parse_luns",
    "stale_devices",
    "validate_wwid",
]


class IdentityError(LunsafeError):
    """The paths of one LUN disagree (WWID, size, host) or do not carry the expected WWID."""


@dataclasses.dataclass(frozen=True)
class LunRequest:
    given: str  # as the user wrote it
    array_lun: int
    linux_lun: int
    expected_wwid: Optional[str]  # multipath spelling


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


def parse_luns(params: Mapping[str, Any]) -> Tuple[LunRequest, ...]:
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
    *, devices: Sequence[ScsiDevice], expected_wwid: Optional[str], paths_expected: int, shared_hosts: bool = False
) -> Dict[str, Any]:
    """All paths one LUN: same WWID and size, distinct SCSI hosts, the expected WWID, the expected count.

    ``shared_hosts``: the transport puts several paths on one SCSI host (FC: one fc_host reaches several
    target ports); each path is then its own I_T nexus (host, channel, target) instead.

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
    nexus = [(d.hctl.host, d.hctl.channel, d.hctl.target) if shared_hosts else d.hctl.host for d in devices]
    if len(set(nexus)) != len(nexus):
        raise IdentityError(
            "two paths of this LUN sit on the same " + ("I_T nexus" if shared_hosts else "SCSI host"), paths=seen
        )
    if identity.mismatch:
        raise IdentityError(
            f"the LUN carries WWID {identity.wwids[0]}, not the expected {identity.expected}: refusing to use it "
            "(check the LUN number, the target and expected_wwid)",
            paths=seen,
            wwid=identity.wwids[0],
        )
    return {"wwid": identity.wwids[0], "size_bytes": sizes[0]}


def detach_identity_refusal(
    *, given: str, devices: Sequence[ScsiDevice], expected_wwid: Optional[str], path_noun: str = "portal"
) -> str:
    """Why LUN ``given`` must not be removed by its number ("" when it may): its paths carry another WWID than
    the expected one, or different WWIDs among themselves. A LUN without a path has nothing to check.
    ``path_noun`` names what the user can detach through one at a time (a portal, a target port)."""
    if not devices:
        return ""
    identity = lu_identity(devices=devices, expected_wwid=expected_wwid)
    if len(identity.known) > 1 or (identity.expected is not None and not identity.agree):
        return (
            f"LUN {given}: its paths carry different or missing WWIDs ({describe_paths(devices, wwid=True)})"
            + (f", expected {identity.expected}" if identity.expected is not None else "")
            + ": they are not one LU (the array may have reused the LUN number for another LU on one of them), "
            f"so nothing was removed; detach through one {path_noun} at a time, each with the WWID it carries"
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


def names_of(devices: Sequence[ScsiDevice]) -> str:
    return ", ".join(f"{d.hctl} {d.name or '(no block device)'}" for d in devices)


def diff_lines(devices: Sequence[ScsiDevice]) -> str:
    return "".join(f"{d.hctl} {d.name or '-'} {d.wwid or '-'}\n" for d in devices)
