# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Build fake sysfs trees from data, at test time, mirroring the kernel layout.

Real directories, attribute files and *relative* symlinks, so that code resolving links with
``os.path.realpath`` stays inside the fake root. Names containing ``:`` exist only under ``tmp_path``:
nothing with a colon is committed (ansible-test sanity rejects such file names).

Describe a host as data::

    root = build_sysfs(
        tmp_path,
        sessions=[{"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10"}],
        devices=[{"hctl": "2:0:0:1", "sid": 1, "name": "sdb", "wwid": "naa.6001405abcdef"}],
        maps=[{"dm": "dm-0", "name": "mpatha", "uuid": "mpath-36001405abcdef", "slaves": ["sdb"]}],
    )

Hosts used by sessions or devices are created on the fly (software ``iscsi_tcp`` under
``devices/platform``) unless listed in ``hosts`` (e.g. an offload HBA under a PCI device, or a local
``ahci`` host without ``iscsi_host``). A session's ``target<H>:<C>:<T>`` dir exists only if one of its
devices needs it or it lists ``targets``: a session without either looks like one right after login
with ``node.session.scan=manual``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

Data = Mapping[str, Any]

DEFAULT_INITIATOR = "iqn.1994-05.com.redhat:client1"


def _write(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{value}\n", encoding="utf-8")


def _attrs(directory: Path, values: Mapping[str, object], omit: Iterable[str] = ()) -> None:
    skipped = set(omit)
    for name, value in values.items():
        if value is not None and name not in skipped:
            _write(directory / name, value)


def _link(link: Path, target: Path) -> None:
    """A relative symlink ``link`` -> ``target``, as the kernel makes them."""
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(target, link.parent), link)


class _Tree:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.hosts: Dict[int, Path] = {}
        self.sessions: Dict[int, Tuple[int, Path]] = {}
        self.blocks: Dict[str, Path] = {}  # kernel block name -> real dir (disks, partitions, dm)

    def host(self, spec: Data) -> Path:
        number = spec["host"]
        if number in self.hosts:
            return self.hosts[number]
        host_dir = self.root / "devices" / spec.get("parent", "platform") / f"host{number}"
        scsi_host = host_dir / "scsi_host" / f"host{number}"
        _attrs(scsi_host, {"proc_name": spec.get("proc_name", "iscsi_tcp"), "state": "running", "scan": ""})
        _link(scsi_host / "device", host_dir)
        _link(self.root / "class" / "scsi_host" / f"host{number}", scsi_host)
        if spec.get("iscsi", True):
            iscsi_host = host_dir / "iscsi_host" / f"host{number}"
            iscsi_host.mkdir(parents=True)
            _link(iscsi_host / "device", host_dir)
            _link(self.root / "class" / "iscsi_host" / f"host{number}", iscsi_host)
        self.hosts[number] = host_dir
        return host_dir

    def session(self, spec: Data) -> None:
        sid, host = spec["sid"], spec["host"]
        session_dir = self.host({"host": host}) / f"session{sid}"
        attrs = session_dir / "iscsi_session" / f"session{sid}"
        values = {
            "targetname": spec.get("targetname"),
            "state": spec.get("state", "LOGGED_IN"),
            "tpgt": spec.get("tpgt", 1),
            "target_id": spec.get("target_id", 0),
            "ifacename": spec.get("ifacename", "default"),
            "initiatorname": spec.get("initiatorname", DEFAULT_INITIATOR),
            "recovery_tmo": 120,
        }
        _attrs(attrs, values, spec.get("omit", ()))
        _link(attrs / "device", session_dir)
        _link(self.root / "class" / "iscsi_session" / f"session{sid}", attrs)
        self._connection(spec, session_dir)
        for channel, target in spec.get("targets", ()):
            (session_dir / f"target{host}:{channel}:{target}").mkdir(parents=True, exist_ok=True)
        self.sessions[sid] = (host, session_dir)

    def _connection(self, spec: Data, session_dir: Path) -> None:
        name = f"connection{spec['sid']}:{spec.get('cid', 0)}"
        conn_dir = session_dir / name
        attrs = conn_dir / "iscsi_connection" / name
        address = spec.get("address")
        port = spec.get("port", 3260)
        values = {
            "address": address,
            "port": port if address is not None else None,
            "persistent_address": spec.get("persistent_address", address),
            "persistent_port": spec.get("persistent_port", port),
        }
        attrs.mkdir(parents=True)
        _attrs(attrs, values, spec.get("omit", ()))
        _link(attrs / "device", conn_dir)
        _link(self.root / "class" / "iscsi_connection" / name, attrs)

    def device(self, spec: Data) -> None:
        hctl = spec["hctl"]
        host, channel, target, _lun = (int(part) for part in hctl.split(":"))
        sid: Optional[int] = spec.get("sid")
        if sid is None:
            parent = self.host({"host": host, "iscsi": False, "proc_name": "ahci"})
        else:
            parent = self.sessions[sid][1]
        device_dir = parent / f"target{host}:{channel}:{target}" / hctl
        values = {
            "state": spec.get("state", "running"),
            "wwid": spec.get("wwid"),
            "vendor": spec.get("vendor", "LIO-ORG "),
            "model": spec.get("model", "disk            "),
            "rev": spec.get("rev", "4.0 "),
            "delete": "",
            "rescan": "",
        }
        _attrs(device_dir, values, spec.get("omit", ()))
        class_dir = device_dir / "scsi_device" / hctl
        _link(class_dir / "device", device_dir)
        _link(self.root / "class" / "scsi_device" / hctl, class_dir)
        if spec.get("name") is not None:
            self._disk(spec, device_dir)

    def _disk(self, spec: Data, device_dir: Path) -> None:
        name = spec["name"]
        disk = device_dir / "block" / name
        _attrs(disk, {"size": spec.get("size", 2097152), "ro": spec.get("ro", 0), "dev": "8:16"})
        (disk / "holders").mkdir()
        (disk / "slaves").mkdir()
        _link(disk / "device", device_dir)
        _link(self.root / "block" / name, disk)
        _link(self.root / "class" / "block" / name, disk)
        self.blocks[name] = disk
        for number, part in enumerate(spec.get("partitions", ()), start=1):
            part_dir = disk / part
            _attrs(part_dir, {"partition": number, "size": 2048, "ro": 0})
            (part_dir / "holders").mkdir()
            _link(self.root / "class" / "block" / part, part_dir)
            self.blocks[part] = part_dir

    def dm_map(self, spec: Data) -> None:
        dm = spec["dm"]
        dm_dir = self.root / "devices" / "virtual" / "block" / dm
        _attrs(
            dm_dir / "dm", {"name": spec.get("name"), "uuid": spec.get("uuid"), "suspended": spec.get("suspended", 0)}
        )
        _attrs(dm_dir, {"size": spec.get("size", 2097152), "ro": 0})
        (dm_dir / "holders").mkdir()
        (dm_dir / "slaves").mkdir()
        _link(self.root / "block" / dm, dm_dir)
        _link(self.root / "class" / "block" / dm, dm_dir)
        self.blocks[dm] = dm_dir

    def dm_links(self, spec: Data) -> None:
        dm_dir = self.blocks[spec["dm"]]
        for slave in spec.get("slaves", ()):
            slave_dir = self.blocks[slave]
            _link(dm_dir / "slaves" / slave, slave_dir)
            _link(slave_dir / "holders" / spec["dm"], dm_dir)


def build_sysfs(
    tmp_path: Path,
    *,
    hosts: Iterable[Data] = (),
    sessions: Iterable[Data] = (),
    devices: Iterable[Data] = (),
    maps: Iterable[Data] = (),
    name: str = "sys",
) -> Path:
    """Build a fake sysfs under ``tmp_path / name`` and return its root.

    hosts:    ``host``, ``parent`` (path under ``devices``, default ``platform``), ``proc_name``
              (default ``iscsi_tcp``), ``iscsi`` (default True: has ``class/iscsi_host``).
    sessions: ``sid``, ``host``, ``targetname``, ``state`` (LOGGED_IN), ``tpgt``, ``target_id`` (0),
              ``ifacename``, ``initiatorname``, ``address``, ``port`` (3260), ``persistent_address``/
              ``persistent_port`` (default: the current ones), ``cid`` (0), ``targets`` [(C, T)],
              ``omit`` [attribute names not to create].
    devices:  ``hctl`` "H:C:T:L", ``sid`` (None: a local device below the host), ``name`` (sdX; None: no
              ``block/`` dir), ``state``, ``wwid`` (raw sysfs text), ``vendor``, ``model``, ``rev``,
              ``size`` (sectors), ``ro``, ``partitions`` [sdX1, ...], ``omit``.
    maps:     ``dm`` (dm-N), ``name``, ``uuid``, ``suspended``, ``slaves`` [sdX, sdX1 or dm-N]; the
              matching ``holders`` links are made on the slaves.
    """
    root = tmp_path / name
    root.mkdir()
    for sub in ("block", "class/block", "class/scsi_host", "class/scsi_device", "devices/virtual/block"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    tree = _Tree(root)
    for host in hosts:
        tree.host(host)
    for session in sessions:
        tree.session(session)
    for device in devices:
        tree.device(device)
    map_specs = list(maps)
    for dm_map in map_specs:
        tree.dm_map(dm_map)
    for dm_map in map_specs:
        tree.dm_links(dm_map)
    return root


def remove_scsi_device(root: Path, *, hctl: str) -> None:
    """Delete a device's real directory and leave its class and block links dangling, as a racing removal does."""
    shutil.rmtree(os.path.realpath(root / "class" / "scsi_device" / hctl / "device"))


def remove_path(root: Path, relative: str) -> None:
    """Remove one file or directory below the root (an attribute that vanished or was never there)."""
    path = root / relative
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
