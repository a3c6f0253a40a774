# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""A read-only snapshot of the host's iSCSI sessions, SCSI devices and device-mapper maps, from sysfs.

Everything is read below an injectable root (``sysfs_root``, default ``/sys``) with ``os.listdir``,
``os.readlink``/``os.path.realpath`` and ``open``; nothing here writes or runs a command. Kernel layout used
(software ``iscsi_tcp`` shown; offload drivers put the host under a PCI device and several sessions
below one host, each with its own target id)::

    devices/platform/host2/                          the Scsi_Host
        scsi_host/host2/, iscsi_host/host2/          class devices (class/scsi_host/host2 -> here)
        session1/                                    the iSCSI session (class/iscsi_session/session1/device)
            iscsi_session/session1/{targetname,state,tpgt,target_id,ifacename,initiatorname}
            connection1:0/iscsi_connection/connection1:0/{address,port,persistent_address,persistent_port}
            target2:0:0/                             only after the first scan of the session
                2:0:0:1/{state,wwid,vendor,model,rev} the scsi_device (class/scsi_device/2:0:0:1/device)
                    block/sdb/{size,ro,holders/,sdb1/}
    devices/virtual/block/dm-0/{dm/{name,uuid,suspended},slaves/,holders/}   (block/dm-0 -> here)

Host and session numbers are reused by the kernel after logout: never keep a snapshot across operations,
read a new one.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Dict, FrozenSet, Iterable, List, Optional, Tuple, Union

from ansible_collections.lunsafe.san.plugins.module_utils._hctl import Hctl, HctlError, parse_hctl
from ansible_collections.lunsafe.san.plugins.module_utils._portal import Portal, parse_portal

__all__ = [
    "DEFAULT_SYSFS_ROOT",
    "DeviceSplit",
    "DmMap",
    "IscsiSession",
    "ScsiDevice",
    "ScsiHost",
    "Snapshot",
    "SysfsError",
    "connection_dir",
    "normalize_wwid",
    "read_attribute",
    "read_snapshot",
    "scsi_device_delete_path",
    "scsi_device_rescan_path",
    "scsi_host_scan_path",
    "wwid_from_dm_uuid",
]

DEFAULT_SYSFS_ROOT = "/sys"
_SECTOR_BYTES = 512
_READ_CHUNK = 16384  # > PAGE_SIZE, the most a sysfs text attribute holds
_ISCSI_CHANNEL = 0  # the iSCSI transport always scans channel 0 (iscsi_user_scan_session)

_HOST_RE = re.compile(r"host([0-9]+)")
_SESSION_RE = re.compile(r"session([0-9]+)")
_SESSION_COMPONENT_RE = re.compile(r"/session([0-9]+)(?=/)")
_CONNECTION_RE = re.compile(r"connection([0-9]+):([0-9]+)")
_TARGET_RE = re.compile(r"target([0-9]+):([0-9]+):([0-9]+)")
_WHITESPACE_RE = re.compile(r"\s+")
_UDEV_UNSAFE_RE = re.compile(r"[^0-9A-Za-z#+\-.:=@_]")
_WWID_PREFIXES = (("naa.", "3"), ("eui.", "2"))
_MPATH_UUID_PREFIX = "mpath-"


class SysfsError(Exception):
    """The sysfs state is inconsistent with what the caller asked (e.g. paths held by different maps)."""


# ---------------------------------------------------------------------------------------------------------
# pure helpers


def normalize_wwid(sysfs_wwid: str) -> str:
    """The WWID as multipath and udev spell it, from the kernel's ``device/wwid`` text.

    ``naa.<hex>`` -> ``3<hex>``, ``eui.<hex>`` -> ``2<hex>`` (lower case); ``t10.<ascii>`` -> ``1<ascii>``
    with runs of whitespace turned into one ``_`` and trailing whitespace dropped (multipath
    ``parse_vpd_pg83``, udev ``ID_SERIAL``); anything else (a SCSI name string such as ``iqn.…``) gets the
    ``8`` prefix as os-brick does. udev may choose another designator than the kernel: compare with care.
    """
    text = sysfs_wwid.strip()
    lowered = text.lower()
    for prefix, kind in _WWID_PREFIXES:
        if lowered.startswith(prefix):
            return kind + lowered[len(prefix) :]
    if lowered.startswith("t10."):
        body = _WHITESPACE_RE.sub("_", text[len("t10.") :].rstrip())
        return "1" + _UDEV_UNSAFE_RE.sub("_", body)
    return "8" + text


def wwid_from_dm_uuid(uuid: Optional[str]) -> Optional[str]:
    """``mpath-<wwid>`` -> ``<wwid>``; None for other dm targets (LVM, crypt, kpartx ``part1-mpath-…``)."""
    if uuid is None or not uuid.startswith(_MPATH_UUID_PREFIX):
        return None
    return uuid[len(_MPATH_UUID_PREFIX) :] or None


def scsi_host_scan_path(*, host: int, sysfs_root: str = DEFAULT_SYSFS_ROOT) -> str:
    """Path of the scan file of SCSI host ``host`` (write :func:`_hctl.scan_line` output to it)."""
    return os.path.join(sysfs_root, "class", "scsi_host", f"host{host}", "scan")


def scsi_device_delete_path(*, hctl: Hctl, sysfs_root: str = DEFAULT_SYSFS_ROOT) -> str:
    """Path of the ``delete`` file of one SCSI device."""
    return os.path.join(sysfs_root, "class", "scsi_device", str(hctl), "device", "delete")


def scsi_device_rescan_path(*, hctl: Hctl, sysfs_root: str = DEFAULT_SYSFS_ROOT) -> str:
    """Path of the ``rescan`` file of one SCSI device (refreshes size and identity of an existing device)."""
    return os.path.join(sysfs_root, "class", "scsi_device", str(hctl), "device", "rescan")


# ---------------------------------------------------------------------------------------------------------
# the snapshot


@dataclasses.dataclass(frozen=True)
class ScsiHost:
    number: int
    proc_name: Optional[str]  # driver: iscsi_tcp, bnx2i, qla4xxx, ahci, ...
    iscsi: bool  # has a class/iscsi_host entry


@dataclasses.dataclass(frozen=True)
class IscsiSession:
    sid: int
    host: int
    targetname: Optional[str]
    tpgt: Optional[int]
    state: Optional[str]  # LOGGED_IN, FAILED, FREE
    target_state: Optional[str]  # ALLOCATED, SCANNED, UNBINDING, UNBOUND (newer kernels only)
    target_id: Optional[int]  # what the kernel scans this session as (newer kernels only)
    ifacename: Optional[str]
    initiatorname: Optional[str]
    transport: Optional[str]  # proc_name of the host: iscsi_tcp, ib_iser, bnx2i, ...
    portal: Optional[Portal]  # current (possibly redirected) connection address
    persistent_portal: Optional[Portal]  # the address the session logged in to
    targets: Tuple[Tuple[int, int], ...]  # (channel, target) of existing target<H>:<C>:<T> dirs

    @property
    def logged_in(self) -> bool:
        return self.state == "LOGGED_IN"

    def matches(self, *, targetname: str, portal: Optional[Union[str, Portal]] = None) -> bool:
        """Same target (iSCSI names compare case-insensitively) and, if given, the portal matches the current
        or the persistent connection address."""
        if self.targetname is None or self.targetname.lower() != targetname.strip().lower():
            return False
        if portal is None:
            return True
        wanted = portal if isinstance(portal, Portal) else parse_portal(portal)
        return any(
            side is not None and wanted.matches(address=side.address, port=side.port)
            for side in (self.portal, self.persistent_portal)
        )


@dataclasses.dataclass(frozen=True)
class ScsiDevice:
    hctl: Hctl
    name: Optional[str]  # sdX; None when the scsi_device has no block device (e.g. a PQ=3 LUN 0)
    state: Optional[str]  # running, offline, blocked, transport-offline, ...
    sysfs_wwid: Optional[str]  # raw device/wwid
    wwid: Optional[str]  # normalized (normalize_wwid)
    size_bytes: Optional[int]
    read_only: Optional[bool]
    vendor: Optional[str]
    model: Optional[str]
    rev: Optional[str]
    holders: Tuple[str, ...]  # names under block/sdX/holders (dm-N)
    partitions: Tuple[str, ...]  # sdX1, ...
    sid: Optional[int]  # the iSCSI session it hangs below, None for non-iSCSI devices


@dataclasses.dataclass(frozen=True)
class DmMap:
    dm: str  # kernel name dm-N (reused by the kernel: identify maps by uuid)
    name: Optional[str]  # dm/name: alias, user friendly name or WWID
    uuid: Optional[str]  # dm/uuid: mpath-<wwid>, LVM-..., CRYPT-..., part1-mpath-...
    wwid: Optional[str]  # from a mpath- uuid; None for other targets
    slaves: Tuple[str, ...]
    holders: Tuple[str, ...]
    suspended: Optional[bool]

    @property
    def is_multipath(self) -> bool:
        return self.wwid is not None


@dataclasses.dataclass(frozen=True)
class DeviceSplit:
    """os-brick's belong/others split for one (target, portal, LUN) over every matching session."""

    sessions: Tuple[IscsiSession, ...]
    belong: Tuple[ScsiDevice, ...]  # devices at the LUN (with or without a block device)
    others: Tuple[ScsiDevice, ...]  # devices with a block device at any other LUN of those sessions

    def sessions_without_others(self) -> Tuple[IscsiSession, ...]:
        """Sessions that carry no other LUN's block device: the ones a detach may log out."""
        busy = {device.sid for device in self.others}
        return tuple(session for session in self.sessions if session.sid not in busy)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    sysfs_root: str
    hosts: Tuple[ScsiHost, ...]
    sessions: Tuple[IscsiSession, ...]
    devices: Tuple[ScsiDevice, ...]
    maps: Tuple[DmMap, ...]

    # sessions ---------------------------------------------------------------------------------------------

    def session(self, *, sid: int) -> Optional[IscsiSession]:
        return next((session for session in self.sessions if session.sid == sid), None)

    def sessions_for(self, *, targetname: str, portal: Optional[Union[str, Portal]] = None) -> Tuple[IscsiSession, ...]:
        """Every session to ``targetname`` (through ``portal``, current or persistent, if given)."""
        return tuple(session for session in self.sessions if session.matches(targetname=targetname, portal=portal))

    def sessions_on_host(self, *, host: int) -> Tuple[IscsiSession, ...]:
        return tuple(session for session in self.sessions if session.host == host)

    def scan_address(self, *, sid: int) -> Optional[Tuple[int, int, int]]:
        """(host, channel, target) to scan one LUN of session ``sid`` without touching other sessions.

        From the session's single target dir if it exists, else from its ``target_id`` on channel 0 (the
        iSCSI transport scans only channel 0); None if neither is known, which leaves only a wildcard scan of
        the host: safe only if the session is alone on its host (see :meth:`sessions_on_host`).
        """
        session = self.session(sid=sid)
        if session is None:
            return None
        if len(session.targets) == 1:
            channel, target = session.targets[0]
            return (session.host, channel, target)
        if session.target_id is not None:
            return (session.host, _ISCSI_CHANNEL, session.target_id)
        return None

    # devices ----------------------------------------------------------------------------------------------

    def device(self, *, name: str) -> Optional[ScsiDevice]:
        """The SCSI device by block name (``sdb`` or ``/dev/sdb``)."""
        wanted = os.path.basename(name)
        return next((device for device in self.devices if device.name == wanted), None)

    def device_at(self, *, hctl: Union[Hctl, str]) -> Optional[ScsiDevice]:
        wanted = hctl if isinstance(hctl, Hctl) else parse_hctl(hctl)
        return next((device for device in self.devices if device.hctl == wanted), None)

    def devices_of_session(self, *, sid: int) -> Tuple[ScsiDevice, ...]:
        return tuple(device for device in self.devices if device.sid == sid)

    def devices_for(self, *, sid: int, lun: int) -> Tuple[ScsiDevice, ...]:
        """Devices of session ``sid`` at Linux LUN ``lun`` (normally one)."""
        return tuple(device for device in self.devices_of_session(sid=sid) if device.hctl.lun == lun)

    def devices_with_wwid(self, *, wwid: str) -> Tuple[ScsiDevice, ...]:
        return tuple(device for device in self.devices if device.wwid == wwid)

    def split(self, *, targetname: str, lun: int, portal: Optional[Union[str, Portal]] = None) -> DeviceSplit:
        """Devices of LUN ``lun`` on every session to (``targetname``, ``portal``), and the other LUNs' disks."""
        sessions = self.sessions_for(targetname=targetname, portal=portal)
        belong: List[ScsiDevice] = []
        others: List[ScsiDevice] = []
        for session in sessions:
            for device in self.devices_of_session(sid=session.sid):
                if device.hctl.lun == lun:
                    belong.append(device)
                elif device.name is not None:
                    others.append(device)
        return DeviceSplit(sessions=sessions, belong=tuple(belong), others=tuple(others))

    # device-mapper ----------------------------------------------------------------------------------------

    def map(self, *, ref: str) -> Optional[DmMap]:
        """A dm map by ``dm-N``, ``/dev/dm-N``, map name, ``/dev/mapper/<name>``, WWID or dm uuid."""
        text = ref.strip()
        for prefix in ("/dev/mapper/", "/dev/"):
            if text.startswith(prefix):
                text = text[len(prefix) :]
                break
        for attribute in ("uuid", "wwid", "dm", "name"):
            found = next((dm_map for dm_map in self.maps if getattr(dm_map, attribute) == text), None)
            if found is not None:
                return found
        return None

    def maps_holding(self, *, names: Iterable[str]) -> Tuple[DmMap, ...]:
        """dm maps that have any of ``names`` (sdX, sdX1 or dm-N) as a slave."""
        wanted = _basenames(names)
        return tuple(dm_map for dm_map in self.maps if wanted.intersection(dm_map.slaves))

    def multipath_map_for(self, *, names: Iterable[str]) -> Optional[DmMap]:
        """The multipath map holding these devices, None if none; :class:`SysfsError` if they are split."""
        maps = tuple(dm_map for dm_map in self.maps_holding(names=names) if dm_map.is_multipath)
        if len(maps) > 1:
            found = ", ".join(f"{dm_map.dm} ({dm_map.name or 'no dm name'})" for dm_map in maps)
            raise SysfsError(f"the devices are held by different multipath maps: {found}")
        return maps[0] if maps else None

    def paths_of(self, *, dm: str) -> Tuple[ScsiDevice, ...]:
        """The SCSI devices that are slaves of map ``dm`` (any reference accepted by :meth:`map`)."""
        dm_map = self.map(ref=dm)
        if dm_map is None:
            return ()
        return tuple(device for device in self.devices if device.name in dm_map.slaves)


def _basenames(names: Iterable[str]) -> FrozenSet[str]:
    return frozenset(os.path.basename(name) for name in names)


# ---------------------------------------------------------------------------------------------------------
# reading


def _read(path: str) -> Optional[str]:
    """The text of a sysfs attribute, without the trailing newline; None if missing or unreadable.

    Unreadable is normal: ``address`` of a FAILED session gives ENOTCONN, optional attributes are absent on
    older kernels, and a device may vanish between listing and reading.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    # raw os.read, not open(): no buffered text layer per attribute (at hundreds of devices under an emulated
    # CPU that layer was a measurable part of the snapshot); a sysfs attribute fits one page, so one read of
    # more than that returns it whole, and only a full buffer asks for more
    chunks = []
    try:
        while True:
            chunk = os.read(fd, _READ_CHUNK)
            chunks.append(chunk)
            if len(chunk) < _READ_CHUNK:
                break
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", errors="replace").rstrip("\n")


def read_attribute(path: str) -> Optional[str]:
    """One sysfs text attribute, stripped; None if missing, unreadable or empty."""
    return _read_str(path)


def _read_str(path: str) -> Optional[str]:
    text = _read(path)
    if text is None:
        return None
    text = text.strip()
    return text or None


def _read_int(path: str) -> Optional[int]:
    text = _read_str(path)
    if text is None:
        return None
    try:
        return int(text, 10)
    except ValueError:
        return None


def _listdir(path: str) -> List[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _number(pattern: re.Pattern[str], name: str) -> Optional[int]:
    match = pattern.fullmatch(name)
    return None if match is None else int(match.group(1))


def _read_hosts(root: str) -> Tuple[ScsiHost, ...]:
    iscsi_hosts = set(_listdir(os.path.join(root, "class", "iscsi_host")))
    hosts = []
    for entry in _listdir(os.path.join(root, "class", "scsi_host")):
        number = _number(_HOST_RE, entry)
        if number is None:
            continue
        proc_name = _read_str(os.path.join(root, "class", "scsi_host", entry, "proc_name"))
        hosts.append(ScsiHost(number=number, proc_name=proc_name, iscsi=entry in iscsi_hosts))
    return tuple(sorted(hosts, key=lambda host: host.number))


def _session_dir(root: str, sid: int) -> Optional[str]:
    """The session's device dir (its parent is the Scsi_Host), or None if it vanished."""
    link = os.path.join(root, "class", "iscsi_session", f"session{sid}", "device")
    if os.path.islink(link):
        target = os.path.realpath(link)
        if os.path.isdir(target):
            return target
    # fallback: look below every iSCSI host (class/iscsi_host/host<H>/device/session<S>)
    for host in _listdir(os.path.join(root, "class", "iscsi_host")):
        candidate = os.path.join(root, "class", "iscsi_host", host, "device", f"session{sid}")
        if os.path.isdir(candidate):
            return os.path.realpath(candidate)
    return None


def _session_targets(session_dir: str, host: int) -> Tuple[Tuple[int, int], ...]:
    targets = []
    for entry in _listdir(session_dir):
        match = _TARGET_RE.fullmatch(entry)
        if match is not None and int(match.group(1)) == host:
            targets.append((int(match.group(2)), int(match.group(3))))
    return tuple(sorted(targets))


def _portal(address: Optional[str], port: Optional[int]) -> Optional[Portal]:
    if address is None or port is None:
        return None
    return Portal(address=address, port=port)


def _connection_dir(root: str, sid: int) -> Optional[str]:
    """class/iscsi_connection/connection<S>:<cid> with the lowest cid (open-iscsi uses cid 0)."""
    best: Optional[Tuple[int, str]] = None
    for entry in _listdir(os.path.join(root, "class", "iscsi_connection")):
        match = _CONNECTION_RE.fullmatch(entry)
        if match is None or int(match.group(1)) != sid:
            continue
        cid = int(match.group(2))
        if best is None or cid < best[0]:
            best = (cid, entry)
    return None if best is None else os.path.join(root, "class", "iscsi_connection", best[1])


def connection_dir(*, sid: int, sysfs_root: str = DEFAULT_SYSFS_ROOT) -> Optional[str]:
    """The ``class/iscsi_connection`` dir of session ``sid``'s first connection (open-iscsi uses cid 0), None if
    the session has none; read its attributes with :func:`read_attribute`."""
    return _connection_dir(sysfs_root, sid)


def _read_session(root: str, sid: int, proc_names: Dict[int, Optional[str]]) -> Optional[IscsiSession]:
    session_dir = _session_dir(root, sid)
    if session_dir is None:
        return None
    host = _number(_HOST_RE, os.path.basename(os.path.dirname(session_dir)))
    if host is None:
        return None
    attrs = os.path.join(root, "class", "iscsi_session", f"session{sid}")
    conn = _connection_dir(root, sid)
    current = persistent = None
    if conn is not None:
        current = _portal(_read_str(os.path.join(conn, "address")), _read_int(os.path.join(conn, "port")))
        persistent = _portal(
            _read_str(os.path.join(conn, "persistent_address")), _read_int(os.path.join(conn, "persistent_port"))
        )
    return IscsiSession(
        sid=sid,
        host=host,
        targetname=_read_str(os.path.join(attrs, "targetname")),
        tpgt=_read_int(os.path.join(attrs, "tpgt")),
        state=_read_str(os.path.join(attrs, "state")),
        target_state=_read_str(os.path.join(attrs, "target_state")),
        target_id=_read_int(os.path.join(attrs, "target_id")),
        ifacename=_read_str(os.path.join(attrs, "ifacename")),
        initiatorname=_read_str(os.path.join(attrs, "initiatorname")),
        transport=proc_names.get(host),
        portal=current,
        persistent_portal=persistent,
        targets=_session_targets(session_dir, host),
    )


def _read_sessions(root: str, hosts: Tuple[ScsiHost, ...]) -> Tuple[IscsiSession, ...]:
    proc_names = {host.number: host.proc_name for host in hosts}
    sessions = []
    for entry in _listdir(os.path.join(root, "class", "iscsi_session")):
        sid = _number(_SESSION_RE, entry)
        if sid is None:
            continue
        session = _read_session(root, sid, proc_names)
        if session is not None:
            sessions.append(session)
    return tuple(sorted(sessions, key=lambda session: session.sid))


def _owning_sid(device_dir: str) -> Optional[int]:
    """The session<S> ancestor of a scsi_device dir (its real path), None for non-iSCSI devices."""
    found = _SESSION_COMPONENT_RE.findall(device_dir + "/")
    return int(found[-1]) if found else None


def _disk_name(device_dir: str) -> Optional[str]:
    """The whole-disk block device below a scsi_device dir.

    ``<device>/block/`` holds only the disk: its partitions are directories inside the disk's own directory
    (``block/sdb/sdb1``), so no entry here needs a ``partition`` check.
    """
    entries = _listdir(device_dir + "/block")
    return entries[0] if entries else None


def _partitions(disk_dir: str) -> Tuple[str, ...]:
    # partitions are named after their disk (sdb1, nvme0n1p1): only those entries are checked, not the
    # two dozen attribute files of the disk (one stat each, measurable at hundreds of paths)
    disk = os.path.basename(disk_dir)
    return tuple(
        entry
        for entry in _listdir(disk_dir)
        if entry.startswith(disk) and os.path.isfile(os.path.join(disk_dir, entry, "partition"))
    )


def _resolve(path: str) -> str:
    """``os.path.realpath`` for a sysfs link whose parent directories are real: readlink and join lexically.

    sysfs links point at real directories below /sys/devices, so one readlink per link is enough, where
    realpath stats every component of the path (measured: the sysfs snapshot at 32 paths spent most of its
    time there under the lab's emulated CPU).  Not a link: the path itself, normalized.
    """
    for _hop in range(8):
        try:
            target = os.readlink(path)
        except OSError:
            break
        path = os.path.normpath(os.path.join(os.path.dirname(path), target))
    return os.path.normpath(path)


def _scsi_device_dir(class_entry: str) -> str:
    """The device dir behind ``class/scsi_device/<H:C:T:L>``, with one readlink.

    The class entry links to ``<device dir>/scsi_device/<H:C:T:L>``: two levels up is the device, found
    lexically.  Where the entry is not a link (sysfs without class links), its ``device`` link is followed.
    """
    try:
        target = os.readlink(class_entry)
    except OSError:
        return _resolve(os.path.join(_resolve(class_entry), "device"))
    return os.path.normpath(os.path.join(os.path.dirname(class_entry), target, os.pardir, os.pardir))


def _read_device(hctl: Hctl, device_dir: str, *, detail: bool = True) -> ScsiDevice:
    """One SCSI device; without ``detail`` only what fault classification needs (name, state, WWID,
    session): about a third of the reads."""
    # paths by concatenation in this per-device code: os.path.join is a measurable share of the snapshot
    # at hundreds of devices, and device_dir is always a normalized path here
    name = _disk_name(device_dir)
    sysfs_wwid = _read_str(device_dir + "/wwid")
    size = read_only = None
    vendor = model = rev = None
    holders: Tuple[str, ...] = ()
    partitions: Tuple[str, ...] = ()
    if detail:
        vendor, model, rev = (_read_str(os.path.join(device_dir, attr)) for attr in ("vendor", "model", "rev"))
    if detail and name is not None:
        disk_dir = os.path.join(device_dir, "block", name)
        sectors = _read_int(os.path.join(disk_dir, "size"))
        size = None if sectors is None else sectors * _SECTOR_BYTES
        ro = _read_int(os.path.join(disk_dir, "ro"))
        read_only = None if ro is None else ro != 0
        holders = tuple(_listdir(os.path.join(disk_dir, "holders")))
        partitions = _partitions(disk_dir)
    return ScsiDevice(
        hctl=hctl,
        name=name,
        state=_read_str(device_dir + "/state"),
        sysfs_wwid=sysfs_wwid,
        wwid=None if sysfs_wwid is None else normalize_wwid(sysfs_wwid),
        size_bytes=size,
        read_only=read_only,
        vendor=vendor,
        model=model,
        rev=rev,
        holders=holders,
        partitions=partitions,
        sid=_owning_sid(device_dir),
    )


def _read_devices(root: str, *, detail: bool = True) -> Tuple[ScsiDevice, ...]:
    devices = []
    class_dir = os.path.join(root, "class", "scsi_device")
    for entry in _listdir(class_dir):
        try:
            hctl = parse_hctl(entry)
        except HctlError:
            continue
        device_dir = _scsi_device_dir(os.path.join(class_dir, entry))
        device = _read_device(hctl, device_dir, detail=detail)
        if device.state is None and not os.path.isdir(device_dir):
            continue  # removed while we were reading it
        devices.append(device)
    return tuple(sorted(devices, key=lambda device: device.hctl))


def _read_map(block_dir: str, dm: str) -> Optional[DmMap]:
    dm_dir = os.path.join(block_dir, dm)
    name = _read_str(os.path.join(dm_dir, "dm", "name"))
    if name is None and not os.path.isdir(os.path.join(dm_dir, "dm")):
        return None  # not a dm device, or removed while we were reading
    uuid = _read_str(os.path.join(dm_dir, "dm", "uuid"))
    suspended = _read_int(os.path.join(dm_dir, "dm", "suspended"))
    return DmMap(
        dm=dm,
        name=name,
        uuid=uuid,
        wwid=wwid_from_dm_uuid(uuid),
        slaves=tuple(_listdir(os.path.join(dm_dir, "slaves"))),
        holders=tuple(_listdir(os.path.join(dm_dir, "holders"))),
        suspended=None if suspended is None else suspended != 0,
    )


def _dm_number(dm: str) -> int:
    number = dm[len("dm-") :]
    return int(number) if number.isdigit() else -1


def _read_maps(root: str) -> Tuple[DmMap, ...]:
    block_dir = os.path.join(root, "block")
    maps = []
    for entry in _listdir(block_dir):
        if not entry.startswith("dm-"):
            continue
        dm_map = _read_map(block_dir, entry)
        if dm_map is not None:
            maps.append(dm_map)
    return tuple(sorted(maps, key=lambda dm_map: _dm_number(dm_map.dm)))


def read_snapshot(*, sysfs_root: str = DEFAULT_SYSFS_ROOT, device_detail: bool = True) -> Snapshot:
    """Read one snapshot of iSCSI sessions, SCSI hosts and devices, and dm maps below ``sysfs_root``.

    A host without iSCSI, SCSI or device-mapper gives empty tuples, not an error.  With
    ``device_detail=False`` each SCSI device carries only its name, state, WWID and session (size,
    read-only flag, vendor/model/rev, holders and partitions are None or empty): the fault facts need
    no more, and at hundreds of paths the other reads are most of the snapshot's time.
    """
    hosts = _read_hosts(sysfs_root)
    return Snapshot(
        sysfs_root=sysfs_root,
        hosts=hosts,
        sessions=_read_sessions(sysfs_root, hosts),
        devices=_read_devices(sysfs_root, detail=device_detail),
        maps=_read_maps(sysfs_root),
    )
