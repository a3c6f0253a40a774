# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module_utils is PRIVATE to lunsafe.san. It may change without notice.

"""The Fibre Channel transport of the attach/detach procedure (``_attach``): paths are I_T nexus.

* :func:`parse`: the FC part of fc_lun_attach's parameters (target WWPNs, optional initiator WWPNs) as an
  :class:`FcRequest`;
* :class:`FcTransport`, one run's transport, over the FC model of ``_fc``: per (fc_host, target WWPN) pair
  the usable remote ports (``_fc.resolve``), each an exact ``host:channel:target`` to scan (never a
  wildcard, never ``issue_lip``); the LUN checked against each host's highest LUN before any write; after
  the write, what appeared verified at once (the FC scan is synchronous: a write the kernel accepted
  proves nothing, so the remote port's state and the device at H:C:T:L are read again). There is no login
  and no logout: the fabric logs the ports in.
* On detach, the devices of a LUN are those at its address on the requested target ports (whatever their
  state) and every other SCSI device of the same WWID on any fc_host (a path through another HBA or a port
  the array moved it to), so that the map can go with all of its paths.

Diagnoses name the cause: a WWPN seen on no fc_host (not zoned, not logged in), a remote port Blocked or Not
Present, a port that is no FCP target, a LUN the array does not present (the scan created nothing), a LUN
above the HBA's limit; a device at the address with another LU's identity is the shared stale-device check.

Users: _attach, plugins/modules/fc_lun_attach.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils import _fc as fc
from ansible_collections.lunsafe.san.plugins.module_utils import _scan as scan
from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError, LunsafeError
from ansible_collections.lunsafe.san.plugins.module_utils._lu import LunRequest
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import IscsiSession, ScsiDevice, Snapshot
from ansible_collections.lunsafe.san.plugins.module_utils._transport import Context

__all__ = ["FcRequest", "FcTransport", "PathsUnavailable", "empty_result", "parse", "path_facts"]

MODULE = "fc_lun_attach"


class PathsUnavailable(LunsafeError):
    """A requested target or initiator WWPN gives no usable path: nothing was changed."""


def _wwpns(params: Mapping[str, Any], option: str, *, required: bool) -> Tuple[str, ...]:
    given = params.get(option)
    if given is None or given == []:
        if required:
            raise InputError(f"{option} must name at least one WWPN", option=option, value=given)
        return ()
    if isinstance(given, (str, bytes)) or not isinstance(given, Sequence):
        given = [given]
    return tuple(dict.fromkeys(fc.normalize_wwpn(text, option=option) for text in given))


@dataclasses.dataclass(frozen=True)
class FcRequest:
    """The FC part of a request: the target ports, and the initiator ports to use (none: every fc_host)."""

    wwpns: Tuple[str, ...]
    initiators: Tuple[str, ...] = ()
    rules_dirs: Optional[Tuple[str, ...]] = None  # udev rules directories to check (None: the system's)

    @property
    def module(self) -> str:
        return MODULE

    @property
    def targets(self) -> Tuple[str, ...]:
        return self.wwpns

    def secrets(self) -> List[str]:
        return []

    def journal_part(self) -> Dict[str, Any]:
        return {"targets": list(self.wwpns), "initiators": list(self.initiators)}

    def empty_result(self, timings: Dict[str, float]) -> Dict[str, Any]:
        return empty_result(timings)

    def bind(self, context: Context) -> FcTransport:
        return FcTransport(self, context)


def parse(params: Mapping[str, Any]) -> Tuple[FcRequest, List[str]]:
    """The FC part of the module's parameters (WWPNs in any usual spelling, duplicates dropped)."""
    return (
        FcRequest(
            wwpns=_wwpns(params, "targets", required=True),
            initiators=_wwpns(params, "initiators", required=False),
        ),
        [],
    )


def empty_result(timings: Dict[str, float]) -> Dict[str, Any]:
    """fc_lun_attach's result keys before anything is known."""
    return {
        "changed": False,
        "timings": timings,
        "fc_paths": [],
        "fc_problems": [],
        "scanned": [],
        "multipath_actions": [],
        "rolled_back": [],
        "interrupted": [],
        "luns": [],
        "failed_luns": [],
        "wait_method": "sysfs-poll",
        "wait_method_reason": "the run ended before it waited",
    }


def path_facts(path: fc.FcPath, view: Optional[fc.FcView] = None) -> Dict[str, Any]:
    """One I_T nexus as the result shows it (the remote port's state as observed in ``view``)."""
    rport = path.rport
    if view is not None:
        rport = view.rport_at(host=path.host, channel=path.channel, target=path.target) or rport
    return {
        "host": path.host,
        "channel": path.channel,
        "target": path.target,
        "rport": rport.name,
        "initiator": path.initiator,
        "target_wwpn": rport.port_name,
        "port_state": rport.port_state,
    }


class FcTransport:
    """One run's FC transport (see :class:`_transport.Transport`)."""

    login_phase = "resolve"
    release_phase = "release"
    shared_hosts = True  # one fc_host reaches several target ports: a path is (host, channel, target)
    path_noun = "target port"

    def __init__(self, request: FcRequest, context: Context) -> None:
        self.request = request
        self.ctx = context
        self.host = context.host
        self.resolution: Optional[fc.Resolution] = None
        self.view: Optional[fc.FcView] = None
        self.wwids: Dict[int, Set[str]] = {}  # detach: the WWIDs found at each LUN's address

    # -- the model ---------------------------------------------------------------------------------------

    def read(self) -> fc.FcView:
        self.view = fc.read_fc(sysfs_root=self.host.sysfs_root)
        return self.view

    def resolve(self) -> Tuple[fc.FcView, fc.Resolution]:
        view = self.read()
        resolution = fc.resolve(view, targets=self.request.wwpns, initiators=list(self.request.initiators) or None)
        self.resolution = resolution
        self.ctx.result["fc_paths"] = [path_facts(path) for path in resolution.paths]
        self.ctx.result["fc_problems"] = list(resolution.problems)
        return view, resolution

    def current(self) -> Tuple[fc.FcView, fc.Resolution]:
        """The view and resolution of this run (resolved once when not yet)."""
        if self.view is None or self.resolution is None:
            return self.resolve()
        return self.view, self.resolution

    def unavailable(self, resolution: fc.Resolution, view: fc.FcView) -> List[str]:
        """Why the request cannot be served: a target or an initiator with no usable path at all; a pair of an
        fc_host and a target whose FCP-target remote port is there but unusable (a path down: Blocked, Not
        Present, no target id); with ``initiators``, any pair the user asked for without a usable path. Without
        ``initiators``, an fc_host that does not see the target, or sees its WWPN in no FCP target role (another
        host's initiator, a target-mode port of this machine), is no path and no failure (``fc_problems``)."""
        if resolution.unmatched_initiators or resolution.unmatched_targets or not resolution.paths:
            return list(resolution.problems) or ["no usable path to the requested targets."]
        reasons: List[str] = []
        for problem in resolution.pair_problems:  # one per (chosen fc_host, target) pair without a usable path
            candidates = [r for r in view.rports_of(host=problem.host) if r.port_name == problem.target]
            if self.request.initiators or any(r.target_role for r in candidates):
                reasons.append(problem.sentence)
        return list(dict.fromkeys(reasons))

    def require_paths(self) -> fc.FcView:
        view, resolution = self.resolve()
        reasons = self.unavailable(resolution, view)
        if reasons:
            raise PathsUnavailable(
                "no usable Fibre Channel path for every requested target, nothing was changed: " + " ".join(reasons),
                problems=list(resolution.problems),
                unmatched_targets=list(resolution.unmatched_targets),
                unmatched_initiators=list(resolution.unmatched_initiators),
            )
        return view

    def nexus(self, snapshot: Snapshot) -> List[Tuple[int, int, int]]:
        """(host, channel, target) of every requested path: attach: the usable ones; detach: every remote
        port of a target WWPN on the chosen fc_hosts that has a SCSI target id, whatever its state."""
        if self.ctx.op == "attach":
            return [(p.host, p.channel, p.target) for p in self.current()[1].paths]
        view = self.view or self.read()
        hosts = [h.host for h in view.hosts if not self.request.initiators or h.port_name in self.request.initiators]
        return sorted(
            (r.host, r.channel, r.scsi_target_id)
            for r in view.rports
            if r.host in hosts
            and r.port_name in self.request.wwpns
            and r.has_target_id
            and r.scsi_target_id is not None
        )

    # -- paths and devices -------------------------------------------------------------------------------

    def lun_devices(self, snapshot: Snapshot, lun: int) -> Tuple[ScsiDevice, ...]:
        nexus = set(self.nexus(snapshot))
        found = [
            d
            for d in snapshot.devices
            if d.name is not None and d.hctl.lun == lun and (d.hctl.host, d.hctl.channel, d.hctl.target) in nexus
        ]
        if self.ctx.op == "detach":
            # every path of the LU on any fc_host: one through another HBA keeps the map otherwise
            wwids = self.wwids.setdefault(lun, {d.wwid for d in found if d.wwid})
            fc_hosts = {h.host for h in (self.view or self.read()).hosts}
            found.extend(
                d
                for d in snapshot.devices
                if d.name is not None and d.wwid in wwids and d.hctl.host in fc_hosts and d not in found
            )
        return tuple(sorted(found, key=lambda device: device.hctl))

    def scan_items(self, snapshot: Snapshot, lun: LunRequest) -> List[scan.ScanItem]:
        view, resolution = self.current()
        items = []
        for path in resolution.paths:
            host = view.host(path.host)
            limit = None if host is None else fc.check_lun_limit(host, lun.linux_lun)
            if limit is not None:
                raise scan.ResolveError(limit, host=path.host, lun=lun.linux_lun)
            item = scan.ScanItem(
                host=path.host,
                channel=path.channel,
                target=path.target,
                lun=lun.linux_lun,
                action=scan.ACTION_SCAN,
                array_lun=lun.array_lun,
            )
            device = scan.find_device(item=item, snapshot=snapshot)
            if device is not None:
                item = dataclasses.replace(
                    item, action=scan.ACTION_PENDING if device.name is None else scan.ACTION_PRESENT
                )
            items.append(item)
        return items

    def scan_sessions(self, snapshot: Snapshot) -> Tuple[IscsiSession, ...]:
        return ()

    def paths_expected(self, snapshot: Snapshot) -> int:
        return len(self.resolution.paths) if self.resolution is not None else 0

    def verify_scan(
        self, lun: LunRequest, items: Sequence[scan.ScanItem], writes: Sequence[scan.SysfsWrite]
    ) -> Optional[str]:
        """The FC scan is synchronous (``fc_user_scan`` probes the LUN inside the write): a scanned nexus with
        no SCSI device right after it was not scanned (its remote port left Online meanwhile) or the array
        does not present the LUN there."""
        scanned = [item for item in items if item.action == scan.ACTION_SCAN]
        if not scanned:
            return None
        snapshot = self.host.snapshot(device_detail=False)
        view = self.read()
        absences = scan.fc_absences(items=scan.fc_unscanned(items=scanned, snapshot=snapshot), view=view)
        gone = [
            f"the scan of {a.item.address} reached no remote port ({a.unusable or 'it is gone'}): the kernel "
            "accepts the write and scans nothing"
            for a in absences
            if not a.unpresented
        ]
        absent = [  # (H:C:T:L, initiator, target WWPN) that created nothing
            (a.item.address, a.initiator or f"host{a.item.host}", a.rport.port_name or a.rport.name)
            for a in absences
            if a.unpresented and a.rport is not None
        ]
        problems = list(gone)
        if len(absent) == 1:
            address, initiator, target = absent[0]
            problems.append(
                f"the scan of {address} ({initiator} -> {target}) created nothing: the array does not present LUN "
                f"{lun.given} to initiator {initiator} through target {target} (check its LUN masking and host "
                "mapping, the LUN number and lun_addressing)"
            )
        elif absent:
            problems.append(
                f"the scans of {', '.join(f'{a} ({i} -> {t})' for a, i, t in absent)} created nothing: the array "
                f"does not present LUN {lun.given} through these initiator and target ports (check its LUN masking "
                "and host mapping, the LUN number and lun_addressing)"
            )
        return "; ".join(problems) or None

    def facts(self, snapshot: Snapshot) -> Dict[str, Any]:
        view, resolution = self.current()  # a detach reports the paths as they are too
        return {"fc_paths": [path_facts(path, view) for path in resolution.paths]}

    def lun_facts(self, devices: Sequence[ScsiDevice], snapshot: Snapshot) -> Dict[str, Any]:
        view = self.view or self.read()
        paths = []
        for device in devices:
            rport = view.rport_at(host=device.hctl.host, channel=device.hctl.channel, target=device.hctl.target)
            host = view.host(device.hctl.host)
            paths.append(
                {
                    "hctl": str(device.hctl),
                    "device": device.name,
                    "rport": None if rport is None else rport.name,
                    "initiator": None if host is None else host.port_name,
                    "target": None if rport is None else rport.port_name,
                    "port_state": None if rport is None else rport.port_state,
                }
            )
        return {"paths": paths}

    # -- attach ------------------------------------------------------------------------------------------

    def observe(self, before: Snapshot) -> None:
        """The paths (read-only, so also in check mode: the same diagnosis), and the warnings about what
        undoes targeted scanning on this host, once per run."""
        view = self.require_paths()
        dirs = self.request.rules_dirs
        for warning in (
            fc.scan_mode_warning(view),
            fc.ua_rule_warning() if dirs is None else fc.ua_rule_warning(rules_dirs=dirs),
        ):
            if warning is not None and warning not in self.ctx.warnings:
                self.ctx.warnings.append(warning)

    def plan_only(self, before: Snapshot) -> bool:
        return False  # nothing to log in to: only the scans change the host

    def make_available(self, before: Snapshot) -> Snapshot:
        """Read the ports again right before the writes (a port may have gone since): every path usable."""
        self.require_paths()
        return self.host.snapshot()

    def changed(self) -> bool:
        return False

    def roll_back(self) -> None:
        return None  # the transport created nothing: the devices are the procedure's

    # -- detach ------------------------------------------------------------------------------------------

    def release(self, snapshot: Snapshot, *, removing: Set[str], left: Set[str], ours: Set[int]) -> None:
        return None  # no session to log out of: the remote ports stay logged in to the fabric

    def released(self) -> bool:
        return False
