# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""A read-only model of the host's Fibre Channel ports, from sysfs, and the resolution of target WWPNs into
exact ``(host, channel, target)`` nexus to scan.

Kernel layout used (``drivers/scsi/scsi_transport_fc.c``; FCoE, lpfc and qla2xxx alike)::

    class/fc_host/host2 -> devices/.../host2/fc_host/host2
        {port_name,node_name,port_state,port_type,speed,fabric_name,symbolic_name,dev_loss_tmo,port_id}
    class/scsi_host/host2/{proc_name,lpfc_max_luns}       the Scsi_Host (driver name, lpfc's LUN limit)
    class/fc_remote_ports/rport-2:0-1 -> devices/.../host2/rport-2:0-1/fc_remote_ports/rport-2:0-1
        {port_name,node_name,port_id,roles,port_state,scsi_target_id,dev_loss_tmo,fast_io_fail_tmo}
    devices/.../host2/rport-2:0-1/target2:0:0/2:0:0:1    only after a scan created the target
    class/fc_vports/vport-2:0-0 -> devices/.../host2/vport-2:0-0/fc_vports/vport-2:0-0
    devices/.../host2/vport-2:0-0/host5/fc_host/host5     an NPIV vport is a Scsi_Host of its own
    module/scsi_mod/parameters/scan                       sync, async, manual or none
    module/qla2xxx/parameters/ql2xmaxlun                  qla2xxx's LUN limit

The N in ``rport-H:C-N`` is a port counter: the SCSI target id is ``scsi_target_id`` (-1 when the port has
no FCP Target role).  An rport that stayed away longer than ``dev_loss_tmo`` stays "Not Present" with its
``port_name`` and ``scsi_target_id`` still readable.  ``fc_user_scan`` scans a ``C T L`` write only on
rports of that host that are Online (newer kernels: Marginal too) with that target id, refuses a LUN above
the host's ``max_lun`` with EINVAL, and returns success whatever it found: a write proves nothing.

Everything is read below an injectable root; nothing here writes.  Host and rport numbers are reused by the
kernel: never keep a view across operations, read a new one.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import read_attribute

__all__ = [
    "DEFAULT_SYSFS_ROOT",
    "UA_RULES_DIRS",
    "FcHost",
    "FcPath",
    "FcView",
    "PairProblem",
    "RemotePort",
    "Resolution",
    "check_lun_limit",
    "normalize_wwpn",
    "read_fc",
    "resolve",
    "scan_mode_refusal",
    "scan_mode_warning",
    "ua_rule_warning",
]

DEFAULT_SYSFS_ROOT = "/sys"
#: udev rule directories in priority order: a file name in an earlier one hides the same name in later ones.
UA_RULES_DIRS = ("/etc/udev/rules.d", "/run/udev/rules.d", "/usr/lib/udev/rules.d", "/lib/udev/rules.d")
FCP_TARGET = "FCP Target"
USABLE_STATES = ("Online", "Marginal")  # fc_user_scan_tgt scans these (Marginal since Linux 5.12)
NPIV_PORT_TYPE = "NPIV VPORT"

_RULE_READ_LIMIT = 1 << 20  # a udev rules file larger than this is not read
_HOST_RE = re.compile(r"host([0-9]+)")
_RPORT_RE = re.compile(r"rport-([0-9]+):([0-9]+)-([0-9]+)")
_VPORT_RE = re.compile(r"vport-([0-9]+):([0-9]+)-([0-9]+)")
_HEX16_RE = re.compile(r"[0-9a-f]{16}")
_UA_EVENT = "REPORTED_LUNS_DATA_HAS_CHANGED"


# ---------------------------------------------------------------------------------------------------------
# WWPNs


def normalize_wwpn(text: object, *, option: str = "wwpn") -> str:
    """A WWPN as the kernel prints it: ``0x`` and 16 lower-case hex digits.

    Accepts ``0x``-prefixed, colon or dash separated (``20:00:52:54:00:fc:00:03``), upper case and bare
    16-digit spellings; :class:`InputError` naming ``option`` for anything else.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError(
            f"{option}: a WWPN is required (16 hex digits, e.g. 0x2000525400fc0003), got {text!r}",
            option=option,
            value=text,
        )
    body = text.strip().lower()
    if body.startswith("0x"):
        body = body[2:]
    if ":" in body or "-" in body:
        parts = re.split(r"[:-]", body)
        if len(parts) != 8 or any(len(part) != 2 for part in parts):
            raise InputError(
                f"{option}: {text!r} is not a WWPN: separated spellings need 8 groups of 2 hex digits",
                option=option,
                value=text,
            )
        body = "".join(parts)
    if not _HEX16_RE.fullmatch(body):
        raise InputError(
            f"{option}: {text!r} is not a WWPN: expected 16 hex digits (0x2000525400fc0003 or 20:00:52:54:00:fc:00:03)",
            option=option,
            value=text,
        )
    return "0x" + body


def _wwpn_or_none(text: Optional[str]) -> Optional[str]:
    """A WWPN read from sysfs, normalised; None when absent or not a WWPN (``0xffffffffffffffff`` is kept:
    the kernel prints it for an unknown fabric name)."""
    if text is None:
        return None
    try:
        return normalize_wwpn(text)
    except InputError:
        return None


# ---------------------------------------------------------------------------------------------------------
# the model


@dataclasses.dataclass(frozen=True)
class FcHost:
    host: int
    port_name: Optional[str]  # normalised WWPN
    node_name: Optional[str]
    port_state: Optional[str]  # Online, Linkdown, Offline, ...
    port_type: Optional[str]  # NPort (fabric via an F_Port), NPIV VPORT, Point-To-Point (direct), LPort, ...
    speed: Optional[str]
    fabric_name: Optional[str]
    symbolic_name: Optional[str]
    dev_loss_tmo: Optional[int]
    vport: bool  # an NPIV vport (its own scsi host); never scan the parent for it
    parent_host: Optional[int]  # for a vport
    max_lun: Optional[int]  # highest LUN the host accepts for a scan write, when sysfs/driver tells
    proc_name: Optional[str]  # driver (fcoe, qla2xxx, lpfc, ...)
    port_id: Optional[str] = None  # the N_Port ID (0x010203)
    vport_name: Optional[str] = None  # vport-H:C-N for a vport

    @property
    def online(self) -> bool:
        return self.port_state == "Online"


@dataclasses.dataclass(frozen=True)
class RemotePort:
    name: str  # 'rport-2:0-1'
    host: int
    channel: int
    number: int  # N: a port counter, NOT the target id
    port_name: Optional[str]  # normalised WWPN
    node_name: Optional[str]
    port_id: Optional[str]
    roles: Tuple[str, ...]  # ('FCP Target', 'FCP Initiator')
    port_state: Optional[str]  # Online, Blocked, Not Present, Marginal
    scsi_target_id: Optional[int]  # -1 / None: no SCSI target
    dev_loss_tmo: Optional[int]
    fast_io_fail_tmo: Optional[str]  # 'off' or seconds as text

    @property
    def is_fcp_target(self) -> bool:
        return FCP_TARGET in self.roles

    @property
    def lost_target(self) -> bool:
        """An FCP target port that stayed away longer than ``dev_loss_tmo``: when the kernel deletes its SCSI
        target it sets the roles to unknown but keeps ``port_name`` and ``scsi_target_id`` (the binding), so
        a Not Present port with a target id was a target."""
        return not self.is_fcp_target and self.port_state == "Not Present" and self.has_target_id

    @property
    def target_role(self) -> bool:
        """An FCP target now, or one that is Not Present (see :attr:`lost_target`)."""
        return self.is_fcp_target or self.lost_target

    @property
    def has_target_id(self) -> bool:
        return self.scsi_target_id is not None and self.scsi_target_id >= 0

    @property
    def usable(self) -> bool:
        return self.is_fcp_target and self.port_state in USABLE_STATES and self.has_target_id

    def why_unusable(self) -> Optional[str]:
        """Why ``fc_user_scan`` would not scan this port, as a phrase; None when it is usable."""
        if not self.target_role:
            roles = ", ".join(self.roles) or "none"
            return f"{self.name} is not an FCP target (roles: {roles})"
        if self.port_state not in USABLE_STATES:
            state = self.port_state or "unknown"
            hint = {
                "Blocked": "the link to it is down and the kernel waits dev_loss_tmo for it to return",
                "Not Present": "it stayed away longer than dev_loss_tmo and its LUNs were removed",
            }.get(state, "the kernel scans only Online or Marginal remote ports")
            return f"{self.name} is {state} ({hint})"
        if not self.has_target_id:
            return f"{self.name} has no SCSI target id yet (scsi_target_id {self.scsi_target_id})"
        return None


@dataclasses.dataclass(frozen=True)
class FcView:
    sysfs_root: str
    hosts: Tuple[FcHost, ...]
    rports: Tuple[RemotePort, ...]
    scan_mode: Optional[str]  # /sys/module/scsi_mod/parameters/scan: sync, async, manual, none

    def host(self, number: int) -> Optional[FcHost]:
        return next((host for host in self.hosts if host.host == number), None)

    def host_by_wwpn(self, wwpn: str) -> Optional[FcHost]:
        return next((host for host in self.hosts if host.port_name == wwpn), None)

    def rports_of(self, *, host: int) -> Tuple[RemotePort, ...]:
        return tuple(rport for rport in self.rports if rport.host == host)

    def rport_at(self, *, host: int, channel: int, target: int) -> Optional[RemotePort]:
        """The remote port that the kernel scans as ``host:channel:target`` (by ``scsi_target_id``)."""
        return next(
            (
                rport
                for rport in self.rports
                if rport.host == host and rport.channel == channel and rport.scsi_target_id == target
            ),
            None,
        )

    def rports_with_wwpn(self, wwpn: str) -> Tuple[RemotePort, ...]:
        return tuple(rport for rport in self.rports if rport.port_name == wwpn)


@dataclasses.dataclass(frozen=True)
class FcPath:
    """One I_T nexus to scan: exactly host, channel, target."""

    host: int
    channel: int
    target: int
    rport: RemotePort
    initiator: Optional[str]  # the fc_host's WWPN

    @property
    def label(self) -> str:
        wwpn = self.rport.port_name or "unknown WWPN"
        return f"host{self.host} -> {wwpn} ({self.rport.name}, target {self.host}:{self.channel}:{self.target})"


@dataclasses.dataclass(frozen=True)
class PairProblem:
    """Why one (fc_host, target WWPN) pair gave no usable path."""

    host: int
    target: str
    # the fc_host works as an initiator (it sees some FCP target) and sees a remote port with that WWPN that it
    # cannot use (Blocked, Not Present, no target role yet): a path that should be there and is not
    visible: bool
    sentence: str


@dataclasses.dataclass(frozen=True)
class Resolution:
    paths: Tuple[FcPath, ...]  # usable nexus, sorted by (host, channel, target)
    problems: Tuple[str, ...]  # one sentence per (fc_host, target WWPN) pair that gave no usable path
    unmatched_targets: Tuple[str, ...]  # target WWPNs with no usable path on any chosen host
    unmatched_initiators: Tuple[str, ...]  # requested initiator WWPNs that are no fc_host here
    hosts: Tuple[int, ...] = ()  # the fc_hosts considered
    pair_problems: Tuple[PairProblem, ...] = ()  # the per-pair entries of ``problems``, structured

    def degraded(self) -> Tuple[str, ...]:
        """The problems worth a warning when some paths were found: pairs where an initiator fc_host sees the
        target port but cannot use it (Blocked, no target role, ...), and targets with no usable path anywhere.
        A target not seen from one fc_host is normal (each fabric reaches its own ports), and so is a port in
        target mode (it sees only initiators, as LIO's tcm_fc ports do): both are left out."""
        return tuple(
            problem.sentence
            for problem in self.pair_problems
            if problem.visible or problem.target in self.unmatched_targets
        )


# ---------------------------------------------------------------------------------------------------------
# resolution


def _host_label(host: FcHost) -> str:
    return f"host{host.host} ({host.port_name or 'no WWPN'})"


def _pair_problem(host: FcHost, target: str, candidates: Sequence[RemotePort]) -> str:
    where = _host_label(host)
    if not candidates:
        sentence = (
            f"target {target} is not visible from {where}: no remote port with that WWPN has logged in on this "
            "fc_host (not zoned to this initiator, the target port is down, or the WWPN is wrong)"
        )
    else:
        reasons = "; ".join(reason for reason in (rport.why_unusable() for rport in candidates) if reason)
        sentence = f"target {target} has no usable path from {where}: {reasons}"
    if not host.online:
        sentence += f"; the fc_host itself is {host.port_state or 'in an unknown state'}, not Online"
    return sentence + "."


def resolve(view: FcView, *, targets: Sequence[str], initiators: Optional[Sequence[str]] = None) -> Resolution:
    """Every usable nexus from the chosen fc_hosts to the target WWPNs (both already normalised).

    Per (fc_host, target WWPN) pair: the remote ports with that ``port_name`` that are FCP targets, Online
    or Marginal, and have a ``scsi_target_id``; channel from the rport name, target id from
    ``scsi_target_id``.  NPIV vports are fc_hosts of their own: initiators select them by their own WWPN,
    and their parent is never scanned for them.  Nothing found is not an error here: ``problems`` names the
    cause per pair, the caller decides.
    """
    wanted_targets = list(dict.fromkeys(targets))
    if initiators:
        wanted_initiators = list(dict.fromkeys(initiators))
        chosen = [host for host in view.hosts if host.port_name in wanted_initiators]
        present = {host.port_name for host in chosen}
        unmatched_initiators = tuple(wwpn for wwpn in wanted_initiators if wwpn not in present)
    else:
        chosen = list(view.hosts)
        unmatched_initiators = ()
    paths: List[FcPath] = []
    problems: List[str] = []
    pair_problems: List[PairProblem] = []
    for wwpn in unmatched_initiators:
        problems.append(f"initiator {wwpn} is not an fc_host on this machine (no /sys/class/fc_host port has it).")
    if not view.hosts:
        problems.append("this machine has no Fibre Channel host (/sys/class/fc_host is empty or missing).")
    found = set()
    for host in chosen:
        rports = view.rports_of(host=host.host)
        for target in wanted_targets:
            candidates = [rport for rport in rports if rport.port_name == target]
            usable = [rport for rport in candidates if rport.usable]
            if not usable:
                sentence = _pair_problem(host, target, candidates)
                problems.append(sentence)
                initiator = any(rport.target_role for rport in rports)
                pair_problems.append(PairProblem(host.host, target, bool(candidates) and initiator, sentence))
                continue
            found.add(target)
            for rport in usable:
                paths.append(
                    FcPath(
                        host=host.host,
                        channel=rport.channel,
                        target=rport.scsi_target_id if rport.scsi_target_id is not None else -1,
                        rport=rport,
                        initiator=host.port_name,
                    )
                )
    paths.sort(key=lambda path: (path.host, path.channel, path.target))
    return Resolution(
        paths=tuple(paths),
        problems=tuple(problems),
        unmatched_targets=tuple(target for target in wanted_targets if target not in found),
        unmatched_initiators=unmatched_initiators,
        hosts=tuple(host.host for host in chosen),
        pair_problems=tuple(pair_problems),
    )


def check_lun_limit(host: FcHost, lun: int) -> Optional[str]:
    """A sentence when the Linux LUN ``lun`` is above the host's max LUN (the kernel would refuse the scan
    write with EINVAL); None when it fits or the limit is unknown."""
    if host.max_lun is None or lun <= host.max_lun:
        return None
    knob = {
        "lpfc": "the lpfc_max_luns attribute / lpfc_max_luns module parameter",
        "qla2xxx": "the ql2xmaxlun module parameter",
    }.get(host.proc_name or "", "the driver's LUN limit")
    return (
        f"LUN {lun} is above the highest LUN host{host.host} ({host.proc_name or 'unknown driver'}) accepts "
        f"({host.max_lun}, {knob}): the kernel refuses the scan; raise the limit or present the LUN lower."
    )


def scan_mode_warning(view: FcView) -> Optional[str]:
    """A warning when FC hosts exist and the SCSI scan mode is not ``manual``."""
    if not view.hosts or view.scan_mode is None or view.scan_mode == "manual":
        return None
    return (
        f"scsi_mod.scan is '{view.scan_mode}' on a host with Fibre Channel ports: every remote port login "
        "(a new port, a port back within dev_loss_tmo, a LIP, a role change) makes the kernel scan that whole "
        "target and add every LUN presented to this host, which undoes targeted scanning and can bring back "
        "LUNs being detached. scsi_mod.scan=manual on the kernel command line stops that (only explicit scan "
        "writes add devices), but then nothing is discovered at boot either: every LUN, the boot disk's "
        "included if it is on FC, must be scanned explicitly."
    )


def scan_mode_refusal(view: FcView) -> Optional[str]:
    """A sentence when the scan mode makes the kernel ignore every scan write (``none``), else None."""
    if view.scan_mode != "none":
        return None
    return (
        "scsi_mod.scan is 'none': the kernel ignores every scan write, targeted ones included; set it to manual "
        "first (printf manual > /sys/module/scsi_mod/parameters/scan, or scsi_mod.scan=manual at boot)."
    )


def _read_rule_file(path: str) -> Optional[str]:
    """A udev rules file's text, not following a link at the last component; None for a link, a non-file,
    or an unreadable or oversized file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _RULE_READ_LIMIT:
            return None
        data = os.read(fd, _RULE_READ_LIMIT + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace")


def _effective_rule_files(rules_dirs: Iterable[str]) -> Dict[str, str]:
    """file name -> path of the rules file udev uses (the first directory with that name wins)."""
    chosen: Dict[str, str] = {}
    for directory in rules_dirs:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            if name.endswith(".rules") and name not in chosen:
                chosen[name] = os.path.join(directory, name)
    return chosen


def _rescans_target(text: str) -> bool:
    for line in text.splitlines():
        body = line.strip()
        if not body or body.startswith("#") or _UA_EVENT not in body:
            continue
        if "RUN" in body or "scan" in body:
            return True
    return False


def ua_rule_warning(
    *,
    rules_dirs: Sequence[str] = UA_RULES_DIRS,
    opener: Callable[[str], Optional[str]] = _read_rule_file,
) -> Optional[str]:
    """A warning when a udev rule rescans a whole target on REPORTED LUNS DATA HAS CHANGED.

    libstoragemgmt's ``90-scsi-ua.rules`` runs ``scan-scsi-target`` (a ``C T -`` write) on that unit
    attention: an array that maps or unmaps any LUN for this host brings every presented LUN of that target
    in.  A file masked by a link (``/etc/udev/rules.d/90-scsi-ua.rules -> /dev/null``) is not read.
    """
    hits = []
    rule_files = _effective_rule_files(rules_dirs)
    for name in sorted(rule_files):
        path = rule_files[name]
        text = opener(path)
        if text is not None and _rescans_target(text):
            hits.append(path)
    if not hits:
        return None
    return (
        f"udev rule {', '.join(hits)} rescans a whole SCSI target on REPORTED LUNS DATA HAS CHANGED "
        "(libstoragemgmt's 90-scsi-ua.rules): any LUN mapping change on the array adds every LUN presented "
        "to this host, including LUNs being detached. Mask it (ln -s /dev/null /etc/udev/rules.d/"
        f"{os.path.basename(hits[0])}) where only targeted scans should add devices."
    )


# ---------------------------------------------------------------------------------------------------------
# reading


def _read(path: str) -> Optional[str]:
    """One sysfs attribute, stripped; None when missing, unreadable (a port going away) or empty: the
    collection's one sysfs reader (``_sysfs.read_attribute``)."""
    return read_attribute(path)


def _read_int(path: str) -> Optional[int]:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text, 0)
    except ValueError:
        return None


def _listdir(path: str) -> List[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _device_dir(class_entry: str) -> Optional[str]:
    """The real device dir of a class entry (``class/fc_host/host2`` -> ``devices/.../host2``), lexically
    from the class link: ``<device>/<class>/<name>``."""
    try:
        target = os.readlink(class_entry)
    except OSError:
        return None
    return os.path.normpath(os.path.join(os.path.dirname(class_entry), target, os.pardir, os.pardir))


def _vport_parents(root: str) -> Dict[int, Tuple[int, str]]:
    """vport scsi host number -> (parent host number, vport name), from ``class/fc_vports``."""
    parents: Dict[int, Tuple[int, str]] = {}
    class_dir = os.path.join(root, "class", "fc_vports")
    for entry in _listdir(class_dir):
        match = _VPORT_RE.fullmatch(entry)
        device_dir = _device_dir(os.path.join(class_dir, entry))
        if match is None or device_dir is None:
            continue
        for child in _listdir(device_dir):
            number = _HOST_RE.fullmatch(child)
            if number is not None:
                parents[int(number.group(1))] = (int(match.group(1)), entry)
    return parents


def _parent_from_path(device_dir: Optional[str]) -> Optional[Tuple[int, str]]:
    """(parent host, vport name) when the host's device dir sits below a ``vport-H:C-N`` dir."""
    if device_dir is None:
        return None
    parts = device_dir.split(os.sep)
    for index in range(len(parts) - 2, -1, -1):
        match = _VPORT_RE.fullmatch(parts[index])
        if match is not None:
            return (int(match.group(1)), parts[index])
    return None


def _max_lun(root: str, host: int, proc_name: Optional[str]) -> Optional[int]:
    """The host's ``max_lun`` where the driver exposes it (``fc_user_scan`` refuses LUNs above it)."""
    if proc_name == "lpfc":
        return _read_int(os.path.join(root, "class", "scsi_host", f"host{host}", "lpfc_max_luns"))
    if proc_name == "qla2xxx":
        return _read_int(os.path.join(root, "module", "qla2xxx", "parameters", "ql2xmaxlun"))
    return None


def _read_host(root: str, number: int, vports: Dict[int, Tuple[int, str]]) -> FcHost:
    entry = os.path.join(root, "class", "fc_host", f"host{number}")
    proc_name = _read(os.path.join(root, "class", "scsi_host", f"host{number}", "proc_name"))
    port_type = _read(os.path.join(entry, "port_type"))
    parent = vports.get(number) or _parent_from_path(_device_dir(entry))
    return FcHost(
        host=number,
        port_name=_wwpn_or_none(_read(os.path.join(entry, "port_name"))),
        node_name=_wwpn_or_none(_read(os.path.join(entry, "node_name"))),
        port_state=_read(os.path.join(entry, "port_state")),
        port_type=port_type,
        speed=_read(os.path.join(entry, "speed")),
        fabric_name=_wwpn_or_none(_read(os.path.join(entry, "fabric_name"))),
        symbolic_name=_read(os.path.join(entry, "symbolic_name")),
        dev_loss_tmo=_read_int(os.path.join(entry, "dev_loss_tmo")),
        vport=parent is not None or port_type == NPIV_PORT_TYPE,
        parent_host=None if parent is None else parent[0],
        max_lun=_max_lun(root, number, proc_name),
        proc_name=proc_name,
        port_id=_read(os.path.join(entry, "port_id")),
        vport_name=None if parent is None else parent[1],
    )


def _roles(text: Optional[str]) -> Tuple[str, ...]:
    if text is None:
        return ()
    return tuple(role.strip() for role in text.split(",") if role.strip() and role.strip() != "unknown")


def _read_rport(root: str, name: str) -> Optional[RemotePort]:
    match = _RPORT_RE.fullmatch(name)
    if match is None:
        return None
    entry = os.path.join(root, "class", "fc_remote_ports", name)
    state = _read(os.path.join(entry, "port_state"))
    port_name = _read(os.path.join(entry, "port_name"))
    if state is None and port_name is None:
        return None  # vanished while we were reading
    return RemotePort(
        name=name,
        host=int(match.group(1)),
        channel=int(match.group(2)),
        number=int(match.group(3)),
        port_name=_wwpn_or_none(port_name),
        node_name=_wwpn_or_none(_read(os.path.join(entry, "node_name"))),
        port_id=_read(os.path.join(entry, "port_id")),
        roles=_roles(_read(os.path.join(entry, "roles"))),
        port_state=state,
        scsi_target_id=_read_int(os.path.join(entry, "scsi_target_id")),
        dev_loss_tmo=_read_int(os.path.join(entry, "dev_loss_tmo")),
        fast_io_fail_tmo=_read(os.path.join(entry, "fast_io_fail_tmo")),
    )


def read_fc(*, sysfs_root: str = DEFAULT_SYSFS_ROOT) -> FcView:
    """Read the fc_hosts, remote ports and scan mode below ``sysfs_root``; an empty view without FC."""
    vports = _vport_parents(sysfs_root)
    hosts = []
    for entry in _listdir(os.path.join(sysfs_root, "class", "fc_host")):
        match = _HOST_RE.fullmatch(entry)
        if match is not None:
            hosts.append(_read_host(sysfs_root, int(match.group(1)), vports))
    rports = []
    for entry in _listdir(os.path.join(sysfs_root, "class", "fc_remote_ports")):
        rport = _read_rport(sysfs_root, entry)
        if rport is not None:
            rports.append(rport)
    return FcView(
        sysfs_root=sysfs_root,
        hosts=tuple(sorted(hosts, key=lambda host: host.host)),
        rports=tuple(sorted(rports, key=lambda rport: (rport.host, rport.channel, rport.number))),
        scan_mode=_read(os.path.join(sysfs_root, "module", "scsi_mod", "parameters", "scan")),
    )
