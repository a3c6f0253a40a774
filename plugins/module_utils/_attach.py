# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module_utils is PRIVATE to lunsafe.san. It may change without notice.

"""Attaching one LUN: identity checks on its paths, the multipath map wait, and the result.

Pure functions over sysfs snapshots; the module glue (iscsi_lun_attach) does the writes through
_login (node records, login) and _scan (the targeted scan).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils import _multipath as multipath
from ansible_collections.lunsafe.san.plugins.module_utils._errors import LunsafeError, ToolError, WaitTimeout
from ansible_collections.lunsafe.san.plugins.module_utils._runner import CommandRunner
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import (
    DmMap,
    IscsiSession,
    ScsiDevice,
    Snapshot,
    SysfsError,
    normalize_wwid,
    read_snapshot,
)
from ansible_collections.lunsafe.san.plugins.module_utils._wait import wait_until

__all__ = [
    "IdentityError",
    "MapTimeout",
    "check_identity",
    "lun_devices",
    "map_facts",
    "session_facts",
    "stale_devices",
    "wait_for_map",
    "wait_for_sessions",
]


class IdentityError(LunsafeError):
    """The paths of one LUN disagree (WWID, size, host) or do not carry the expected WWID."""


class MapTimeout(LunsafeError):
    """No multipath map holding every path of the LUN appeared before the deadline."""


def lun_devices(*, snapshot: Snapshot, sessions: Sequence[IscsiSession], lun: int) -> Tuple[ScsiDevice, ...]:
    """The block devices of Linux LUN ``lun`` on these sessions (one per path), freshly resolved."""
    found: List[ScsiDevice] = []
    for session in sessions:
        for device in snapshot.devices_for(sid=session.sid, lun=lun):
            if device.name is not None and device.hctl.host == session.host:
                found.append(device)
    return tuple(sorted(found, key=lambda device: device.hctl))


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


SCSI_ID_CANDIDATES = ("/usr/lib/udev/scsi_id", "/lib/udev/scsi_id", "/sbin/scsi_id")


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
    *,
    devices: Sequence[ScsiDevice],
    snapshot: Snapshot,
    expected_wwid: Optional[str],
    fresh: Optional[Dict[str, Optional[str]]] = None,
) -> List[Dict[str, Any]]:
    """Devices at the LUN's address that carry another LU's identity (the array reused the LUN number).

    A device is stale when the LU now answers with another WWID than the one the kernel recorded
    (``fresh``, from :func:`fresh_wwid`), when it is not the expected WWID, or when the multipath map
    holding it has another WWID.
    """
    stale = []
    want = expected(expected_wwid)
    for device in devices:
        reasons = []
        now = (fresh or {}).get(device.name or "")
        if now is not None and device.wwid is not None and now != device.wwid:
            reasons.append(f"the LU now answers with WWID {now}, the kernel recorded {device.wwid}")
        current = now or device.wwid
        if want is not None and current is not None and current != want:
            reasons.append(f"WWID {current} is not the expected {want}")
        for dm_map in snapshot.maps_holding(names=[device.name or ""]):
            if dm_map.is_multipath and dm_map.wwid is not None and current not in (None, dm_map.wwid):
                reasons.append(f"held by map {dm_map.name} ({dm_map.dm}) of WWID {dm_map.wwid}")
        if reasons:
            stale.append(
                {"hctl": str(device.hctl), "name": device.name, "wwid": device.wwid, "now": now, "reasons": reasons}
            )
    return stale


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
    wwids = sorted({d.wwid or "" for d in devices})
    if len(wwids) != 1 or not wwids[0]:
        raise IdentityError(
            "the paths of this LUN report different or missing WWIDs: they are not the same LU "
            "(the array may have reused the LUN number on one portal, or gives identical serials to distinct LUs)",
            paths=seen,
        )
    sizes = sorted({d.size_bytes or 0 for d in devices})
    if len(sizes) != 1:
        raise IdentityError("the paths of this LUN report different sizes", paths=seen)
    hosts = [d.hctl.host for d in devices]
    if len(set(hosts)) != len(hosts):
        raise IdentityError("two paths of this LUN sit on the same SCSI host", paths=seen)
    want = expected(expected_wwid)
    if want is not None and wwids[0] != want:
        raise IdentityError(
            f"the LUN's WWID is {wwids[0]}, not the expected {want}: refusing to use it", paths=seen, wwid=wwids[0]
        )
    return {"wwid": wwids[0], "size_bytes": sizes[0]}


def _complete_map(snapshot: Snapshot, names: Sequence[str], wwid: str) -> Optional[DmMap]:
    try:
        dm_map = snapshot.multipath_map_for(names=names)
    except SysfsError:
        return None
    if dm_map is None or dm_map.wwid != wwid or not set(names).issubset(dm_map.slaves):
        return None
    return dm_map


def wait_for_map(
    *,
    runner: CommandRunner,
    sysfs_root: str,
    names: Sequence[str],
    wwid: str,
    timeout: float,
    grace: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Tuple[DmMap, List[str]]:
    """Wait for the multipath map of ``wwid`` holding every path in ``names``.

    When multipathd has not built it within ``grace`` seconds (find_multipaths keeps a first single path
    out of multipath), the WWID is added to the wwids file and each path is handed to multipathd, once;
    then the wait goes on until ``timeout``. Returns the map and the commands that were needed.
    """
    actions: List[str] = []
    start = clock()

    def poll() -> Optional[DmMap]:
        return _complete_map(read_snapshot(sysfs_root=sysfs_root), names, wwid)

    try:
        found = wait_until(
            poll,
            timeout=min(grace, timeout),
            interval=0.1,
            backoff=1.5,
            max_interval=0.5,
            describe="multipath map",
            clock=clock,
            sleep=sleep,
        )
    except WaitTimeout:
        found = None
    if found is not None:
        return found, actions
    for argv in [multipath.add_wwid(wwid=wwid)] + [multipath.add_path(device=name) for name in names]:
        try:
            runner.run(argv, ok_rcs=multipath.MULTIPATHD_OK_RCS, timeout=15)
        except ToolError as exc:
            actions.append(f"{' '.join(argv)}: {exc.msg}")
        else:
            actions.append(" ".join(argv))
    remaining = max(0.0, timeout - (clock() - start))
    try:
        found = wait_until(
            poll,
            timeout=remaining,
            interval=0.2,
            backoff=1.5,
            max_interval=1.0,
            describe="multipath map",
            clock=clock,
            sleep=sleep,
        )
    except WaitTimeout:
        found = None
    if found is None:
        snapshot = read_snapshot(sysfs_root=sysfs_root)
        holders = {name: _holders_of(snapshot, name) for name in names}
        raise MapTimeout(
            f"no multipath map for WWID {wwid} holding {', '.join(names)} after {timeout:g}s "
            "(is multipathd running, and is the device blacklisted?)",
            wwid=wwid,
            holders=holders,
            actions=actions,
        )
    return found, actions


def _holders_of(snapshot: Snapshot, name: str) -> Optional[List[str]]:
    device = snapshot.device(name=name)
    return None if device is None else list(device.holders)


def wait_for_sessions(
    *,
    sysfs_root: str,
    target: str,
    portals: Sequence[Any],
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Snapshot:
    """Wait until every portal has a LOGGED_IN session to ``target`` in sysfs (iscsiadm returns first)."""

    def poll() -> Optional[Snapshot]:
        snapshot = read_snapshot(sysfs_root=sysfs_root)
        for portal in portals:
            if not any(s.logged_in for s in snapshot.sessions_for(targetname=target, portal=portal)):
                return None
        return snapshot

    found = wait_until(
        poll,
        timeout=timeout,
        interval=0.1,
        backoff=1.5,
        max_interval=0.5,
        describe="logged-in sessions",
        clock=clock,
        sleep=sleep,
    )
    if found is None:  # wait_until returns only truthy values; this narrows the type
        raise WaitTimeout("no logged-in sessions", waited_for="logged-in sessions", timeout=timeout, last_observed=None)
    return found


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


def map_facts(dm_map: Optional[DmMap]) -> Optional[Dict[str, Any]]:
    if dm_map is None:
        return None
    return {
        "dm": dm_map.dm,
        "name": dm_map.name,
        "uuid": dm_map.uuid,
        "wwid": dm_map.wwid,
        "path": f"/dev/mapper/{dm_map.name}" if dm_map.name else f"/dev/{dm_map.dm}",
        "slaves": list(dm_map.slaves),
    }
