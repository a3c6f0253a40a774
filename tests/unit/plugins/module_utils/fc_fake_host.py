# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fake host with Fibre Channel ports for the attach/detach procedure: fc_hosts, remote ports and an array
as data, on top of :class:`fake_host.FakeHost` (the SCSI midlayer, multipathd and the sysfs tree).

The fabric is ``fc_hosts`` (``host``, ``port_name``, ``port_state``, ``proc_name``, ``max_lun``) and ``rports``
(``host``, ``channel``, ``number``, ``port_name``, ``roles``, ``port_state``, ``scsi_target_id``); ``luns`` maps
a target WWPN to the LUNs it presents ({LUN: WWID}); ``masked`` holds (initiator WWPN, target WWPN, LUN) the
array hides from that initiator. A scan write ``C T L`` to an fc_host's ``scan`` file probes the LUN as the
kernel's ``fc_user_scan`` does: only through an Online/Marginal FCP-target remote port with that target id on
that channel, synchronously; a wildcard field or a LUN above the host's limit is refused (EINVAL) and recorded
in ``refused``.

    fake = FakeFcHost(tmp_path, luns={T1: {1: WWID}}, fc_hosts=two_hosts(), rports=four_rports())
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fake_host import SCSI_ID, SIZE, FakeHost

I1, I2 = "0x2000525400fc0001", "0x2000525400fc0002"  # initiators (fc_host port names)
T1, T2 = "0x2000525400fc0003", "0x2000525400fc0004"  # target ports of the array


def fabric(
    *, hosts: Tuple[Tuple[int, str], ...] = ((2, I1), (3, I2)), targets: Tuple[str, ...] = (T1, T2)
) -> Dict[str, Any]:
    """Every fc_host zoned to every target port: rport-H:0-N with target ids 0, 1, ... per host."""
    fc_hosts = [{"host": number, "port_name": wwpn} for number, wwpn in hosts]
    rports = [
        {"host": number, "channel": 0, "number": index, "port_name": target, "scsi_target_id": index}
        for number, _wwpn in hosts
        for index, target in enumerate(targets)
    ]
    return {"fc_hosts": fc_hosts, "rports": rports}


@dataclasses.dataclass
class FakeFcHost(FakeHost):
    portals: Dict[str, Any] = dataclasses.field(default_factory=dict)
    fc_hosts: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    rports: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    masked: Set[Tuple[str, str, int]] = dataclasses.field(default_factory=set)
    scan_mode: Optional[str] = "manual"
    refused: List[str] = dataclasses.field(default_factory=list)  # scan lines the fake kernel refused

    def __post_init__(self) -> None:
        self.hosts = [
            {"host": h["host"], "iscsi": False, "proc_name": h.get("proc_name", "fcoe")} for h in self.fc_hosts
        ]
        super().__post_init__()

    def rebuild(self) -> None:
        super().rebuild()
        cls = self.root / "class"
        for spec in self.fc_hosts:
            entry = cls / "fc_host" / f"host{spec['host']}"
            entry.mkdir(parents=True, exist_ok=True)
            _write(entry / "port_name", spec["port_name"])
            _write(entry / "port_state", spec.get("port_state", "Online"))
            if spec.get("max_lun") is not None:
                _write(cls / "scsi_host" / f"host{spec['host']}" / "lpfc_max_luns", str(spec["max_lun"]))
        for spec in self.rports:
            entry = cls / "fc_remote_ports" / f"rport-{spec['host']}:{spec['channel']}-{spec['number']}"
            entry.mkdir(parents=True, exist_ok=True)
            _write(entry / "port_name", spec["port_name"])
            _write(entry / "roles", spec.get("roles", "FCP Target"))
            _write(entry / "port_state", spec.get("port_state", "Online"))
            _write(entry / "scsi_target_id", str(spec.get("scsi_target_id", -1)))
        if self.scan_mode is not None:
            _write(self.root / "module" / "scsi_mod" / "parameters" / "scan", self.scan_mode)

    # -- the fabric ------------------------------------------------------------------------------------

    def fc_host(self, number: int) -> Optional[Dict[str, Any]]:
        return next((h for h in self.fc_hosts if h["host"] == number), None)

    def rport_at(self, host: int, channel: int, target: int) -> Optional[Dict[str, Any]]:
        return next(
            (
                r
                for r in self.rports
                if (r["host"], r["channel"], r.get("scsi_target_id", -1)) == (host, channel, target)
            ),
            None,
        )

    def presented(self, host: int, channel: int, target: int, lun: int) -> Optional[str]:
        """The WWID the array answers with at H:C:T:L now (None: no such LUN for this initiator)."""
        rport, fc_host = self.rport_at(host, channel, target), self.fc_host(host)
        if rport is None or fc_host is None:
            return None
        if (fc_host["port_name"], rport["port_name"], lun) in self.masked:
            return None
        return self.luns.get(rport["port_name"], {}).get(lun)

    def fc_device(self, host: int, channel: int, target: int, lun: int, wwid: Optional[str] = None) -> Dict[str, Any]:
        """A device on an FC nexus, as a scan (or an earlier run) leaves it."""
        wwid = wwid or self.presented(host, channel, target, lun)
        assert wwid is not None
        name = "sd" + chr(ord("a") + self._next_sd)
        self._next_sd += 1
        device = {
            "hctl": f"{host}:{channel}:{target}:{lun}",
            "sid": None,
            "name": name,
            "wwid": "naa." + wwid[1:],
            "size": SIZE,
        }
        self.devices.append(device)
        if self.auto_map:
            self._map_for(wwid)
        self.rebuild()
        return device

    # -- the kernel --------------------------------------------------------------------------------------

    def write(self, path: str, text: str) -> None:
        parts = Path(path).relative_to(self.root).parts
        if parts[:2] == ("class", "scsi_host") and parts[3] == "scan" and self.fc_host(int(parts[2][4:])):
            self.writes.append((path[len(str(self.root)) :], text))
            host = int(parts[2][4:])
            fields = text.split()
            limit = (self.fc_host(host) or {}).get("max_lun")
            if len(fields) != 3 or "-" in fields or (limit is not None and int(fields[2]) > limit):
                self.refused.append(f"host{host} {text}")
                raise OSError(22, "Invalid argument", path)
            channel, target, lun = (int(x) for x in fields)
            rport = self.rport_at(host, channel, target)
            usable = (
                rport is not None
                and "FCP Target" in rport.get("roles", "FCP Target")
                and rport.get("port_state", "Online") in ("Online", "Marginal")
            )
            address = f"{host}:{channel}:{target}:{lun}"
            if (
                usable
                and self.presented(host, channel, target, lun)
                and not any(d["hctl"] == address for d in self.devices)
            ):
                self.fc_device(host, channel, target, lun)
            return
        super().write(path, text)

    def answer(self, command: Any) -> Tuple[int, str, str]:
        argv = list(command)
        if argv[0] == SCSI_ID:
            name = argv[-1][len("--device=/dev/") :]
            device = next((d for d in self.devices if d["name"] == name), None)
            if device is not None and device["sid"] is None:
                h, c, t, lun = (int(x) for x in device["hctl"].split(":"))
                now = self.presented(h, c, t, lun)
                return (0, now + "\n", "") if now else (1, "", "")
        return super().answer(command)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
