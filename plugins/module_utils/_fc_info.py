# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""The host's Fibre Channel state, read only: fc_hosts, remote ports with the LUNs attached through each, the
SCSI scan mode and the warnings about what re-adds LUNs behind a targeted scan's back.

Sources: one :func:`_fc.read_fc` (fc_hosts, rports, scan mode) and one :func:`_sysfs.read_snapshot`
(SCSI devices and multipath maps); the udev rule directories for the libstoragemgmt rule.  No command runs.
:func:`observe` reads, :func:`report` turns an observation into the module's result, filtered.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils import _fc
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import ScsiDevice, Snapshot, SysfsError

__all__ = ["Filters", "Observation", "make_filters", "observe", "report"]


@dataclasses.dataclass(frozen=True)
class Observation:
    view: _fc.FcView
    snapshot: Snapshot
    warnings: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Filters:
    targets: Tuple[str, ...]  # normalised WWPNs
    initiators: Tuple[str, ...]
    spelled: Dict[str, List[str]]

    @property
    def active(self) -> bool:
        return bool(self.targets or self.initiators)


def make_filters(*, targets: Optional[Sequence[str]], initiators: Optional[Sequence[str]]) -> Filters:
    """Validate the WWPN filters (any common spelling); :class:`InputError` naming the option otherwise."""
    return Filters(
        targets=tuple(dict.fromkeys(_fc.normalize_wwpn(text, option="targets") for text in targets or ())),
        initiators=tuple(dict.fromkeys(_fc.normalize_wwpn(text, option="initiators") for text in initiators or ())),
        spelled={"targets": list(targets or ()), "initiators": list(initiators or ())},
    )


def observe(host: Host, *, rules_dirs: Sequence[str] = _fc.UA_RULES_DIRS) -> Observation:
    """Read the FC view, the SCSI devices and maps, and the warnings; changes nothing."""
    view = _fc.read_fc(sysfs_root=host.sysfs_root)
    snapshot = host.snapshot()
    warnings = []
    if view.hosts:
        for warning in (_fc.scan_mode_warning(view), _fc.ua_rule_warning(rules_dirs=rules_dirs)):
            if warning is not None:
                warnings.append(warning)
    return Observation(view=view, snapshot=snapshot, warnings=tuple(warnings))


def _map_of(device: ScsiDevice, snapshot: Snapshot) -> Tuple[Optional[str], Optional[str]]:
    if device.name is None:
        return None, None
    try:
        dm_map = snapshot.multipath_map_for(names=[device.name])
    except SysfsError:
        return None, None  # one path in two maps: not for an info module to decide
    return (None, None) if dm_map is None else (dm_map.name, dm_map.dm)


def _lun(device: ScsiDevice, snapshot: Snapshot) -> Dict[str, Any]:
    map_name, dm = _map_of(device, snapshot)
    return {
        "hctl": str(device.hctl),
        "lun": device.hctl.lun,
        "device": device.name,
        "state": device.state,
        "size_bytes": device.size_bytes,
        "read_only": device.read_only,
        "wwid": device.wwid,
        "multipath_map": map_name,
        "dm": dm,
    }


def _host(host: _fc.FcHost) -> Dict[str, Any]:
    return {
        "host": host.host,
        "port_name": host.port_name,
        "node_name": host.node_name,
        "port_id": host.port_id,
        "port_state": host.port_state,
        "port_type": host.port_type,
        "speed": host.speed,
        "fabric_name": host.fabric_name,
        "symbolic_name": host.symbolic_name,
        "dev_loss_tmo": host.dev_loss_tmo,
        "driver": host.proc_name,
        "vport": host.vport,
        "parent_host": host.parent_host,
        "max_lun": host.max_lun,
    }


def _rport(rport: _fc.RemotePort, view: _fc.FcView, snapshot: Snapshot) -> Dict[str, Any]:
    owner = view.host(rport.host)
    luns = []
    if rport.has_target_id:
        luns = [
            _lun(device, snapshot)
            for device in snapshot.devices
            if (device.hctl.host, device.hctl.channel, device.hctl.target)
            == (rport.host, rport.channel, rport.scsi_target_id)
        ]
    return {
        "name": rport.name,
        "host": rport.host,
        "channel": rport.channel,
        "initiator": None if owner is None else owner.port_name,
        "port_name": rport.port_name,
        "node_name": rport.node_name,
        "port_id": rport.port_id,
        "roles": list(rport.roles),
        "port_state": rport.port_state,
        "target_id": rport.scsi_target_id if rport.has_target_id else None,
        "usable": rport.usable,
        "dev_loss_tmo": rport.dev_loss_tmo,
        "fast_io_fail_tmo": rport.fast_io_fail_tmo,
        "luns": luns,
    }


def report(observation: Observation, *, filters: Filters) -> Dict[str, Any]:
    """``fc_hosts``, ``rports``, ``scan_mode``, ``filters`` and ``warnings`` of the result: fc_hosts by
    initiator WWPN, rports by target WWPN and by the initiator of their fc_host."""
    view = observation.view
    hosts = [host for host in view.hosts if not filters.initiators or host.port_name in filters.initiators]
    chosen = {host.host for host in hosts}
    rports = [
        rport
        for rport in view.rports
        if rport.host in chosen and (not filters.targets or rport.port_name in filters.targets)
    ]
    warnings = list(observation.warnings)
    if filters.active and not (hosts and (rports or not filters.targets)):
        targets = ", ".join(filters.targets) or "any"
        initiators = ", ".join(filters.initiators) or "any"
        warnings.append(f"no fc_host or remote port matches the filters (targets: {targets}; initiators: {initiators})")
    return {
        "fc_hosts": [_host(host) for host in hosts],
        "rports": [_rport(rport, view, observation.snapshot) for rport in rports],
        "scan_mode": view.scan_mode,
        "filters": filters.spelled,
        "warnings": warnings,
    }
