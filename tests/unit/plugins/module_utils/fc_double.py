# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A stand-in for ``plugins/module_utils/_fc.py`` (the FC model, owned by the fc-model branch) while that file
is not on this branch: the names and meaning of prompts' fc-api.md, the least behaviour the FC transport's
tests need, reading the same sysfs files the kernel has (``class/fc_host``, ``class/fc_remote_ports``).

:func:`load` returns the real ``_fc`` when it imports, else this module registered under its name, so the
code under test imports ``_fc`` as usual. Once ``_fc.py`` is merged, this file is unused and can go.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import sys
import types
from typing import Any, Callable, Optional, Sequence, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError

NAME = "ansible_collections.lunsafe.san.plugins.module_utils._fc"
UA_RULES_DIRS = ("/etc/udev/rules.d",)


def load() -> types.ModuleType:
    try:
        return importlib.import_module(NAME)
    except ImportError:  # not merged yet
        sys.modules[NAME] = sys.modules[__name__]
        package = importlib.import_module(NAME.rsplit(".", 1)[0])
        setattr(package, "_fc", sys.modules[__name__])  # noqa: B010
        return sys.modules[__name__]


def normalize_wwpn(text: Any, *, option: str = "wwpn") -> str:
    digits = re.sub(r"[:\-]", "", str(text or "").strip().lower())
    digits = digits[2:] if digits.startswith("0x") else digits
    if not re.fullmatch(r"[0-9a-f]{16}", digits):
        raise InputError(f"{option}: {text!r} is not a WWPN", option=option, value=text)
    return "0x" + digits


@dataclasses.dataclass(frozen=True)
class FcHost:
    host: int
    port_name: Optional[str]
    node_name: Optional[str]
    port_state: Optional[str]
    port_type: Optional[str]
    speed: Optional[str]
    fabric_name: Optional[str]
    symbolic_name: Optional[str]
    dev_loss_tmo: Optional[int]
    vport: bool
    parent_host: Optional[int]
    max_lun: Optional[int]
    proc_name: Optional[str]


@dataclasses.dataclass(frozen=True)
class RemotePort:
    name: str
    host: int
    channel: int
    number: int
    port_name: Optional[str]
    node_name: Optional[str]
    port_id: Optional[str]
    roles: Tuple[str, ...]
    port_state: Optional[str]
    scsi_target_id: Optional[int]
    dev_loss_tmo: Optional[int]
    fast_io_fail_tmo: Optional[str]

    @property
    def is_fcp_target(self) -> bool:
        return "FCP Target" in self.roles

    @property
    def has_target_id(self) -> bool:
        return self.scsi_target_id is not None and self.scsi_target_id >= 0

    @property
    def usable(self) -> bool:
        return self.is_fcp_target and self.port_state in ("Online", "Marginal") and self.has_target_id

    def why_unusable(self) -> Optional[str]:
        if not self.is_fcp_target:
            return f"{self.name} is not an FCP target (roles: {', '.join(self.roles) or 'none'})"
        if self.port_state not in ("Online", "Marginal"):
            return f"{self.name} is {self.port_state}"
        if not self.has_target_id:
            return f"{self.name} has no SCSI target id yet"
        return None


@dataclasses.dataclass(frozen=True)
class FcView:
    sysfs_root: str
    hosts: Tuple[FcHost, ...]
    rports: Tuple[RemotePort, ...]
    scan_mode: Optional[str]

    def host(self, number: int) -> Optional[FcHost]:
        return next((h for h in self.hosts if h.host == number), None)

    def rports_of(self, *, host: int) -> Tuple[RemotePort, ...]:
        return tuple(r for r in self.rports if r.host == host)

    def rport_at(self, *, host: int, channel: int, target: int) -> Optional[RemotePort]:
        return next((r for r in self.rports if (r.host, r.channel, r.scsi_target_id) == (host, channel, target)), None)


@dataclasses.dataclass(frozen=True)
class FcPath:
    host: int
    channel: int
    target: int
    rport: RemotePort
    initiator: Optional[str]

    @property
    def label(self) -> str:
        where = f"target {self.host}:{self.channel}:{self.target}"
        return f"host{self.host} -> {self.rport.port_name} ({self.rport.name}, {where})"


@dataclasses.dataclass(frozen=True)
class Resolution:
    paths: Tuple[FcPath, ...]
    problems: Tuple[str, ...]
    unmatched_targets: Tuple[str, ...]
    unmatched_initiators: Tuple[str, ...]
    hosts: Tuple[int, ...] = ()


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def _reader(directory: str) -> Callable[[str], Optional[str]]:
    return lambda name: _read(os.path.join(directory, name))


def _int(text: Optional[str]) -> Optional[int]:
    return None if text is None else int(text, 0)


def read_fc(*, sysfs_root: str = "/sys") -> FcView:
    hosts, rports = [], []
    base = os.path.join(sysfs_root, "class", "fc_host")
    for entry in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        number = int(entry[4:])
        attr = _reader(os.path.join(base, entry))
        proc = _read(os.path.join(sysfs_root, "class", "scsi_host", entry, "proc_name"))
        max_lun = _read(os.path.join(sysfs_root, "class", "scsi_host", entry, "lpfc_max_luns"))
        hosts.append(
            FcHost(
                number,
                attr("port_name"),
                None,
                attr("port_state"),
                None,
                None,
                None,
                None,
                None,
                False,
                None,
                _int(max_lun) if proc == "lpfc" else None,
                proc,
            )
        )
    base = os.path.join(sysfs_root, "class", "fc_remote_ports")
    for entry in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        match = re.fullmatch(r"rport-(\d+):(\d+)-(\d+)", entry)
        if match is None:
            continue
        attr = _reader(os.path.join(base, entry))
        roles = tuple(r.strip() for r in (attr("roles") or "").split(",") if r.strip())
        rports.append(
            RemotePort(
                entry,
                int(match.group(1)),
                int(match.group(2)),
                int(match.group(3)),
                attr("port_name"),
                None,
                None,
                roles,
                attr("port_state"),
                _int(attr("scsi_target_id")),
                None,
                None,
            )
        )
    mode = _read(os.path.join(sysfs_root, "module", "scsi_mod", "parameters", "scan"))
    return FcView(sysfs_root, tuple(hosts), tuple(rports), mode)


def resolve(view: FcView, *, targets: Sequence[str], initiators: Optional[Sequence[str]] = None) -> Resolution:
    chosen = [h for h in view.hosts if not initiators or h.port_name in initiators]
    unmatched_initiators = tuple(w for w in initiators or () if w not in {h.port_name for h in chosen})
    problems = [f"initiator {w} is not an fc_host on this machine." for w in unmatched_initiators]
    paths, found = [], set()
    for host in chosen:
        for target in targets:
            candidates = [r for r in view.rports_of(host=host.host) if r.port_name == target]
            usable = [r for r in candidates if r.usable]
            if not usable:
                label = f"host{host.host} ({host.port_name})"
                problems.append(
                    f"target {target} is not visible from {label}: not zoned or not logged in."
                    if not candidates
                    else f"target {target} has no usable path from {label}: "
                    + "; ".join(str(r.why_unusable()) for r in candidates)
                    + "."
                )
                continue
            found.add(target)
            paths.extend(FcPath(r.host, r.channel, r.scsi_target_id or 0, r, host.port_name) for r in usable)
    paths.sort(key=lambda p: (p.host, p.channel, p.target))
    return Resolution(
        tuple(paths),
        tuple(problems),
        tuple(t for t in targets if t not in found),
        unmatched_initiators,
        tuple(h.host for h in chosen),
    )


def check_lun_limit(host: FcHost, lun: int) -> Optional[str]:
    if host.max_lun is None or lun <= host.max_lun:
        return None
    return f"LUN {lun} is above the highest LUN host{host.host} accepts ({host.max_lun})."


def scan_mode_warning(view: FcView) -> Optional[str]:
    if not view.hosts or view.scan_mode in (None, "manual"):
        return None
    return f"scsi_mod.scan is '{view.scan_mode}' on a host with Fibre Channel ports"


def ua_rule_warning(*, rules_dirs: Sequence[str] = UA_RULES_DIRS, opener: Any = None) -> Optional[str]:
    for directory in rules_dirs:
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            if "REPORTED_LUNS_DATA_HAS_CHANGED" in (_read(os.path.join(directory, name)) or ""):
                return f"udev rule {os.path.join(directory, name)} rescans a whole SCSI target"
    return None
