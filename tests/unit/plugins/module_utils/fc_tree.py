# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fake sysfs trees with Fibre Channel ports, on top of :mod:`sysfs_tree` (same conventions: real dirs,
relative links, nothing with a colon committed).

Layout as the kernel makes it (FCoE over a virtio NIC shown; a vport nests below its parent)::

    devices/pci0000:00/0000:00:04.0/host2/{scsi_host/host2, fc_host/host2}
    devices/.../host2/rport-2:0-1/{fc_remote_ports/rport-2:0-1, target2:0:0/2:0:0:1}
    devices/.../host2/vport-2:0-0/{fc_vports/vport-2:0-0, host5/{scsi_host/host5, fc_host/host5}}

Describe it as data::

    root = build_fc_sysfs(
        tmp_path,
        fc_hosts=[{"host": 2, "port_name": "0x2000525400fc0001"}],
        rports=[{"host": 2, "number": 1, "port_name": "0x2000525400fc0003", "scsi_target_id": 0}],
        devices=[{"hctl": "2:0:0:1", "rport": "rport-2:0-1", "name": "sdb", "wwid": "naa.6001405a"}],
        maps=[{"dm": "dm-0", "name": "mpatha", "uuid": "mpath-36001405a", "slaves": ["sdb"]}],
    )
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, Optional

from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.sysfs_tree import (
    Data,
    _attrs,
    _link,
    _Tree,
    build_sysfs,
)

PCI_PARENT = "pci0000:00/0000:00:04.0"


class _FcTree(_Tree):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.rport_dirs: Dict[str, Path] = {}

    def fc_host(self, spec: Data) -> Path:
        number = spec["host"]
        parent = spec.get("under")
        if parent is not None:
            host_dir = parent / f"host{number}"
            scsi_host = host_dir / "scsi_host" / f"host{number}"
            _attrs(scsi_host, {"proc_name": spec.get("proc_name", "fcoe"), "state": "running", "scan": ""})
            _link(scsi_host / "device", host_dir)
            _link(self.root / "class" / "scsi_host" / f"host{number}", scsi_host)
            self.hosts[number] = host_dir
        else:
            host_dir = self.host(
                {"host": number, "iscsi": False, "proc_name": spec.get("proc_name", "fcoe"), "parent": PCI_PARENT}
            )
        fc_dir = host_dir / "fc_host" / f"host{number}"
        values = {
            "port_name": spec.get("port_name"),
            "node_name": spec.get("node_name", f"0x1000525400fc00{number:02x}"),
            "port_state": spec.get("port_state", "Online"),
            "port_type": spec.get("port_type", "NPort (fabric via point-to-point)"),
            "speed": spec.get("speed", "10 Gbit"),
            "fabric_name": spec.get("fabric_name", "0x1000525400fc0001"),
            "symbolic_name": spec.get("symbolic_name", "fcoe v0.1 over eth1"),
            "dev_loss_tmo": spec.get("dev_loss_tmo", 60),
            "port_id": spec.get("port_id", f"0x00{number:04x}"),
            "issue_lip": "",
        }
        _attrs(fc_dir, values, spec.get("omit", ()))
        _link(fc_dir / "device", host_dir)
        _link(self.root / "class" / "fc_host" / f"host{number}", fc_dir)
        for name, value in spec.get("scsi_host_attrs", {}).items():
            _attrs(host_dir / "scsi_host" / f"host{number}", {name: value})
        return host_dir

    def vport(self, spec: Data) -> None:
        parent, number = spec["parent"], spec.get("number", 0)
        name = f"vport-{parent}:{spec.get('channel', 0)}-{number}"
        vport_dir = self.hosts[parent] / name
        class_dir = vport_dir / "fc_vports" / name
        _attrs(class_dir, {"vport_state": "Active", "port_name": spec["port_name"], "roles": "FCP Initiator"})
        _link(class_dir / "device", vport_dir)
        _link(self.root / "class" / "fc_vports" / name, class_dir)
        host = dict(spec["host_spec"])
        host.setdefault("port_name", spec["port_name"])
        host.setdefault("port_type", "NPIV VPORT")
        self.fc_host({**host, "under": vport_dir})

    def rport(self, spec: Data) -> None:
        host, channel, number = spec["host"], spec.get("channel", 0), spec["number"]
        name = f"rport-{host}:{channel}-{number}"
        rport_dir = self.hosts[host] / name
        class_dir = rport_dir / "fc_remote_ports" / name
        values = {
            "port_name": spec.get("port_name"),
            "node_name": spec.get("node_name", "0x1000525400fc0099"),
            "port_id": spec.get("port_id", f"0x0000{number:02x}"),
            "roles": spec.get("roles", "FCP Target, FCP Initiator"),
            "port_state": spec.get("port_state", "Online"),
            "scsi_target_id": spec.get("scsi_target_id", -1),
            "dev_loss_tmo": spec.get("dev_loss_tmo", 60),
            "fast_io_fail_tmo": spec.get("fast_io_fail_tmo", 5),
            "supported_classes": "Class 3",
        }
        _attrs(class_dir, values, spec.get("omit", ()))
        _link(class_dir / "device", rport_dir)
        _link(self.root / "class" / "fc_remote_ports" / name, class_dir)
        self.rport_dirs[name] = rport_dir

    def fc_device(self, spec: Data) -> None:
        hctl = spec["hctl"]
        host, channel, target, _lun = (int(part) for part in hctl.split(":"))
        device_dir = self.rport_dirs[spec["rport"]] / f"target{host}:{channel}:{target}" / hctl
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
            # a devt of its own per disk (the faults code keys paths by major:minor)
            minor = 16 * len([name for name in self.blocks if not name.startswith("dm-")])
            _attrs(device_dir / "block" / spec["name"], {"dev": spec.get("dev", f"8:{minor}")})


def build_fc_sysfs(
    tmp_path: Path,
    *,
    fc_hosts: Iterable[Data] = (),
    vports: Iterable[Data] = (),
    rports: Iterable[Data] = (),
    devices: Iterable[Data] = (),
    maps: Iterable[Data] = (),
    scan_mode: Optional[str] = "manual",
    module_params: Optional[Dict[str, Dict[str, Any]]] = None,
    name: str = "sys",
) -> Path:
    """Build a fake sysfs with FC ports under ``tmp_path / name`` and return its root.

    fc_hosts: ``host``, ``port_name``, ``node_name``, ``port_state`` (Online), ``port_type``, ``speed``,
              ``fabric_name``, ``proc_name`` (fcoe), ``dev_loss_tmo``, ``scsi_host_attrs`` {name: value},
              ``omit``.
    vports:   ``parent`` (host number), ``number``, ``port_name``, ``host_spec`` (an fc_hosts entry for the
              vport's own host).
    rports:   ``host``, ``channel`` (0), ``number``, ``port_name``, ``roles``, ``port_state`` (Online),
              ``scsi_target_id`` (-1), ``dev_loss_tmo``, ``fast_io_fail_tmo``, ``omit``.
    devices:  ``hctl``, ``rport`` (its name), ``name``, ``wwid``, ``state``, ... as in :func:`build_sysfs`.
    maps:     as in :func:`build_sysfs`.
    scan_mode: module/scsi_mod/parameters/scan (None: absent); module_params: {module: {param: value}}.
    """
    root = build_sysfs(tmp_path, name=name)
    for sub in ("class/fc_host", "class/fc_remote_ports", "class/fc_vports"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    tree = _FcTree(root)
    for host in fc_hosts:
        tree.fc_host(host)
    for vport in vports:
        tree.vport(vport)
    for rport in rports:
        tree.rport(rport)
    for device in devices:
        tree.fc_device(device)
    map_specs = list(maps)
    for dm_map in map_specs:
        tree.dm_map(dm_map)
    for dm_map in map_specs:
        tree.dm_links(dm_map)
    if scan_mode is not None:
        _attrs(root / "module" / "scsi_mod" / "parameters", {"scan": scan_mode})
    for module, params in (module_params or {}).items():
        _attrs(root / "module" / module / "parameters", params)
    return root
