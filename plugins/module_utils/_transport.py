# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module_utils is PRIVATE to lunsafe.san. It may change without notice.

"""The seam between the attach/detach procedure (``_attach``) and a transport (iSCSI, Fibre Channel).

A transport comes in two parts:

* its **request part** (:class:`TransportRequest`, frozen, validated with the rest of the request): which
  paths the user asked for, what the journal keeps of them, the secrets to redact, the result's empty keys;
* its **run part** (:class:`Transport`, made by :meth:`TransportRequest.bind` for one run over a
  :class:`Context`): it makes the paths available (iSCSI: node records and logins; FC: the rports checked),
  names the I_T nexus to scan for a LUN (exactly host, channel, target: never a wildcard for FC), finds the
  devices of a LUN on its paths, checks what a scan made, releases what a detach leaves unused (iSCSI: the
  sessions) and rolls back what it created itself.

The procedure owns everything else, written once: the LUN model and identity checks (``_lu``), the scan
writes and waits (``_scan``), the maps, the rollback of devices, removal, the journal and the result.

Users: _attach, _transport_iscsi, _transport_fc.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Protocol, Sequence, Set, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._journal import Trail
from ansible_collections.lunsafe.san.plugins.module_utils._lu import LunRequest
from ansible_collections.lunsafe.san.plugins.module_utils._scan import ScanItem, SysfsWrite
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import IscsiSession, ScsiDevice, Snapshot

__all__ = ["Context", "Transport", "TransportRequest"]


@dataclasses.dataclass
class Context:
    """What a transport shares with the run it serves: the host, the journal trail, check mode, the run's
    deadline per step, and the result and warnings it adds to."""

    host: Host
    trail: Trail
    check: bool
    timeout: float
    result: Dict[str, Any]
    warnings: List[str]
    op: str = "attach"  # or "detach"


class Transport(Protocol):
    """One run's transport (see the module docstring)."""

    login_phase: str  # the timings key of :meth:`make_available` ("login" for iSCSI)
    release_phase: str  # the timings key of :meth:`release` ("logout" for iSCSI)
    shared_hosts: bool  # several paths of a LUN may sit on one SCSI host (FC), see _lu.check_identity
    path_noun: str  # what a user detaches through one at a time in messages ("portal", "target port")

    def lun_devices(self, snapshot: Snapshot, lun: int) -> Tuple[ScsiDevice, ...]:
        """The block devices of Linux LUN ``lun`` on the requested paths, sorted by H:C:T:L."""

    def scan_items(self, snapshot: Snapshot, lun: LunRequest) -> List[ScanItem]:
        """One scan item per path of the LUN (exactly H:C:T:L); ``_scan.ResolveError`` when none can be made."""

    def scan_sessions(self, snapshot: Snapshot) -> Tuple[IscsiSession, ...]:
        """The iSCSI sessions the scan wait watches for recovery (none for FC)."""

    def paths_expected(self, snapshot: Snapshot) -> int:
        """How many paths each LUN must have after its scan."""

    def observe(self, before: Snapshot) -> None:
        """Before any change: what the paths need (iSCSI: discovery, node record changes, missing sessions)."""

    def plan_only(self, before: Snapshot) -> bool:
        """Check mode: record what would be done in the result; True when that changes something."""

    def make_available(self, before: Snapshot) -> Snapshot:
        """Make every requested path usable (iSCSI: log in; FC: verify the rports); the snapshot after."""

    def verify_scan(self, lun: LunRequest, items: Sequence[ScanItem], writes: Sequence[SysfsWrite]) -> Optional[str]:
        """Right after the scan writes of a LUN (``writes``: those of the wave, with the session state before
        each and its duration): why they made nothing usable, read from sysfs now (None when nothing is wrong,
        or the transport cannot tell yet: the wait for the block devices then says it)."""

    def changed(self) -> bool:
        """Whether the transport changed something in this run (logins, records)."""

    def roll_back(self) -> None:
        """No LUN is left attached: undo what the transport created in this run."""

    def release(self, snapshot: Snapshot, *, removing: Set[str], left: Set[str], ours: Set[int]) -> None:
        """After a detach: release the paths that carry no other LUN (iSCSI: log out)."""

    def released(self) -> bool:
        """Whether :meth:`release` changed something."""

    def facts(self, snapshot: Snapshot) -> Dict[str, Any]:
        """The transport's keys of the result, as observed in ``snapshot``."""

    def lun_facts(self, devices: Sequence[ScsiDevice], snapshot: Snapshot) -> Dict[str, Any]:
        """Keys the transport adds to each LUN's entry of the result."""


class TransportRequest(Protocol):
    """The transport's part of a request."""

    @property
    def module(self) -> str:
        """The module whose journal entries the run may adopt."""

    @property
    def targets(self) -> Tuple[str, ...]:
        """The requested targets (iSCSI names, FC WWPNs)."""

    def journal_part(self) -> Dict[str, Any]:
        """What the journal keeps of the paths (``targets`` first, no secret)."""

    def secrets(self) -> List[str]:
        """Texts to redact from every message and command line."""

    def empty_result(self, timings: Dict[str, float]) -> Dict[str, Any]:
        """The result's keys before anything is known."""

    def bind(self, context: Context) -> Transport:
        """The run part of this transport for one run."""
