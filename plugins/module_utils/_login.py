# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module_utils is PRIVATE to lunsafe.san. It may change without notice.

"""iSCSI node records and sessions: the login half of an attach, and the logout half of a detach.

Pure planning (what a node record must hold, which keys differ) is separate from the calls that
apply it through the runner seam. ``node.session.scan = manual`` is always part of the wanted record
and is written before any login, so a login never scans the target's LUNs.

:func:`side_by_side` runs one call per path at once (the logins of a run, the logouts of a detach), as
os-brick does: a portal that does not answer then costs its own deadline once, not before each next portal.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar

from ansible_collections.lunsafe.san.plugins.module_utils import _iscsiadm as iscsiadm
from ansible_collections.lunsafe.san.plugins.module_utils._errors import LunsafeError, ToolError, ToolTimeout
from ansible_collections.lunsafe.san.plugins.module_utils._iscsiadm import Portal
from ansible_collections.lunsafe.san.plugins.module_utils._runner import CommandRunner

__all__ = [
    "Chap",
    "DiscoveryError",
    "LoginError",
    "NodeChange",
    "apply_node",
    "discover",
    "discovery_records",
    "hint",
    "list_nodes",
    "login",
    "logout",
    "offered_targets",
    "plan_node",
    "read_node",
    "remove_discovery",
    "remove_node",
    "side_by_side",
    "wanted_node_settings",
]

T = TypeVar("T")
R = TypeVar("R")

SCAN_KEY = "node.session.scan"
# iscsid retries an initial login this many times (each up to the login timeout, 15 s by default)
# before giving up: the default of 8 makes an unreachable portal block for two minutes.
LOGIN_RETRY_KEY = "node.session.initial_login_retry_max"
CONN_LOGIN_TIMEOUT_KEY = "node.conn[0].timeo.login_timeout"


class LoginError(LunsafeError):
    """A login failed; ``rc_name`` says how (auth failure, time-out, unreachable portal...)."""


class DiscoveryError(LunsafeError):
    """SendTargets discovery failed; ``rc_name`` says how."""


# What to do about the iscsiadm exit codes a login or a discovery commonly ends with.
_HINTS: Dict[int, str] = {
    24: "CHAP authentication failed: check {user} and {password} against the array's {where}",
    19: "the target refused the login: check that the array maps this initiator's IQN to the target",
    8: "the portal did not answer in time: check the address, the network path and the target's portal list",
    4: "the connection to the portal failed: check the address, the port and the network path",
    18: "iscsid does not answer: check `systemctl status iscsid`",
    20: "iscsid is not running and could not be started: start it (systemctl start iscsid.socket iscsid) "
    "and check `systemctl status iscsid`",
}


# A wrong chap_password_in does not give rc 24: iscsid logs "received incorrect CHAP response from
# target" and iscsiadm exits 19 (non-retryable login failure), seen with open-iscsi 2.1.8.
_MUTUAL_HINT_19 = (
    "with mutual CHAP this is what a wrong chap_username_in or chap_password_in gives (the target "
    "answered with other credentials; iscsid logs 'received incorrect CHAP response'); otherwise check "
    "that the array maps this initiator's IQN to the target"
)


# A discovery session carries no target name and attaches nothing: a refusal there is about the portal's
# discovery authentication, never the target's LUN mapping (the login hint of 19).
_DISCOVERY_HINT_19 = (
    "the portal refused the discovery session: check discovery_chap_username and discovery_chap_password "
    "against the portal's discovery authentication settings (a wrong secret, or a user name it does not know)"
)
_DISCOVERY_HINT_19_NO_CHAP = (
    "the portal refused the discovery session: if its discovery authentication settings require CHAP, give "
    "discovery_chap_username and discovery_chap_password"
)


def hint(rc: Optional[int], *, discovery: bool = False, mutual: bool = False, chap: bool = True) -> str:
    """An actionable hint for an iscsiadm exit code ("" when there is none); ``chap``: credentials were given
    for this session (for a discovery, the discovery CHAP)."""
    if rc == 19 and discovery:
        return _DISCOVERY_HINT_19 if chap else _DISCOVERY_HINT_19_NO_CHAP
    if rc == 19 and mutual:
        return _MUTUAL_HINT_19
    if rc is None or rc not in _HINTS:
        return ""
    prefix = "discovery_chap" if discovery else "chap"
    return _HINTS[rc].format(
        user=f"{prefix}_username",
        password=f"{prefix}_password",
        where="discovery authentication settings" if discovery else "ACL for this initiator",
    )


@dataclass(frozen=True)
class Chap:
    """CHAP credentials; ``*_in`` are the target's credentials for mutual CHAP."""

    username: str
    password: str
    username_in: Optional[str] = None
    password_in: Optional[str] = None

    def settings(self, *, prefix: str) -> Dict[str, str]:
        values = {
            f"{prefix}.authmethod": "CHAP",
            f"{prefix}.username": self.username,
            f"{prefix}.password": self.password,
        }
        if self.username_in is not None and self.password_in is not None:
            values[f"{prefix}.username_in"] = self.username_in
            values[f"{prefix}.password_in"] = self.password_in
        return values

    def secrets(self) -> List[str]:
        return [s for s in (self.password, self.password_in) if s]


def wanted_node_settings(
    *,
    chap: Optional[Chap],
    startup: str,
    login_retries: int,
    login_timeout: Optional[int] = None,
    extra: Optional[Mapping[str, str]] = None,
) -> Dict[str, str]:
    """The keys lunsafe.san manages on a node record, manual scan always among them.

    With ``login_timeout`` (seconds for a whole login), each of the ``login_retries`` attempts gets an
    equal share of it (at least 5 s), so iscsid gives up before the caller's deadline does.
    """
    wanted: Dict[str, str] = {SCAN_KEY: "manual", "node.startup": startup, LOGIN_RETRY_KEY: str(login_retries)}
    if login_timeout is not None:
        wanted[CONN_LOGIN_TIMEOUT_KEY] = str(max(5, login_timeout // (login_retries + 1)))
    if chap is not None:
        wanted.update(chap.settings(prefix="node.session.auth"))
    for key, value in (extra or {}).items():
        iscsiadm.validate_setting_key(key, prefix="node.")
        wanted[key] = value
    return wanted


@dataclass(frozen=True)
class NodeChange:
    """What must happen to one node record: create it and/or update these keys."""

    target: str
    portal: Portal
    iface: Optional[str]
    create: bool
    updates: Tuple[Tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def changed(self) -> bool:
        return self.create or bool(self.updates)

    def to_dict(self) -> Dict[str, Any]:
        """For results and diffs: secret values never appear, only the names of keys that change."""
        return {
            "target": self.target,
            "portal": self.portal.for_iscsiadm(),
            "iface": self.iface,
            "create": self.create,
            "update_keys": [key for key, _value in self.updates],
        }


def plan_node(
    *,
    target: str,
    portal: Portal,
    iface: Optional[str],
    current: Optional[Mapping[str, str]],
    wanted: Mapping[str, str],
) -> NodeChange:
    """Compare a record (None when absent) with the wanted keys; pure."""
    if current is None:
        return NodeChange(target=target, portal=portal, iface=iface, create=True, updates=tuple(sorted(wanted.items())))
    updates = tuple(sorted((k, v) for k, v in wanted.items() if current.get(k) != v))
    return NodeChange(target=target, portal=portal, iface=iface, create=False, updates=updates)


def read_node(runner: CommandRunner, *, target: str, portal: Portal, iface: Optional[str]) -> Optional[Dict[str, str]]:
    """The node record with secrets shown (to compare them), or None when there is none."""
    result = runner.run(
        iscsiadm.node_show(target=target, portal=portal, iface=iface, show_secrets=True),
        ok_rcs=iscsiadm.QUERY_OK_RCS,
        sensitive_output=True,
    )
    if iscsiadm.is_absent(result.rc):
        return None
    return iscsiadm.parse_node_record(result.stdout)


def apply_node(runner: CommandRunner, change: NodeChange) -> None:
    """Create the record if needed, then write the differing keys in one update (iscsiadm writes the record
    once with all of them, so no login can ever read it with some keys set and others not; manual scan is
    listed first all the same)."""
    if change.create:
        runner.run(iscsiadm.node_new(target=change.target, portal=change.portal, iface=change.iface))
    ordered = sorted(change.updates, key=lambda item: (item[0] != SCAN_KEY, item[0]))
    if ordered:
        runner.run(
            iscsiadm.node_update(target=change.target, portal=change.portal, iface=change.iface, settings=ordered)
        )


def remove_node(runner: CommandRunner, *, target: str, portal: Portal, iface: Optional[str]) -> bool:
    """Delete a node record; False when there was none."""
    result = runner.run(iscsiadm.node_delete(target=target, portal=portal, iface=iface), ok_rcs=iscsiadm.LOGOUT_OK_RCS)
    return not iscsiadm.is_absent(result.rc)


def login(
    runner: CommandRunner,
    *,
    target: str,
    portal: Portal,
    iface: Optional[str],
    timeout: float,
    mutual: bool = False,
    reachable: Optional[Callable[[], bool]] = None,
) -> bool:
    """Log in; True when a session was created, False when it existed (rc 15).

    ``mutual`` (mutual CHAP is configured) only sharpens the hint of a failed login. After a failed login
    a portal that ``reachable`` says answers TCP is asked which targets it offers (SendTargets, nothing
    stored), so that an unknown target name is told apart from an unreachable portal.
    """
    argv = iscsiadm.login(target=target, portal=portal, iface=iface)
    try:
        result = runner.run(argv, ok_rcs=iscsiadm.LOGIN_OK_RCS, timeout=timeout)
    except ToolTimeout as exc:
        raise LoginError(
            f"login to {target} at {portal.for_iscsiadm()} did not complete within {timeout:g}s: the portal is "
            "unreachable or does not answer (check the address, the network path and the target's portal list)",
            cmd=exc.details.get("cmd"),
            rc=exc.details.get("rc"),
            rc_name="timeout",
            target=target,
            portal=portal.for_iscsiadm(),
        ) from None
    except ToolError as exc:
        rc = exc.details.get("rc")
        # a portal that answers TCP but refused the login may not know the target: ask it what it offers (a
        # portal that does not answer TCP is not asked: the probe would only wait for it a second time)
        answers = reachable() if reachable is not None else True
        offered = offered_targets(runner, portal=portal, iface=iface, timeout=min(timeout, 15.0)) if answers else None
        if offered is not None and not any(name.lower() == target.lower() for name in offered):
            raise LoginError(
                f"login to {target} at {portal.for_iscsiadm()} failed: the portal answers but does not offer "
                f"this target (it offers: {', '.join(offered) or 'none'}); check the target name",
                cmd=exc.details.get("cmd"),
                rc=rc,
                rc_name="target_not_found",
                stderr=exc.details.get("stderr"),
                target=target,
                portal=portal.for_iscsiadm(),
                offered=offered,
            ) from None
        if isinstance(rc, int) and rc in iscsiadm.EXIT_CODES:
            advice = hint(rc, mutual=mutual)
            raise LoginError(
                f"login to {target} at {portal.for_iscsiadm()} failed: {iscsiadm.describe_rc(rc)}"
                + (f"; {advice}" if advice else ""),
                cmd=exc.details.get("cmd"),
                rc=rc,
                rc_name=iscsiadm.rc_name(rc),
                stderr=exc.details.get("stderr"),
                target=target,
                portal=portal.for_iscsiadm(),
            ) from None
        raise
    return not iscsiadm.is_already(result.rc)


def offered_targets(
    runner: CommandRunner, *, portal: Portal, iface: Optional[str], timeout: float
) -> Optional[List[str]]:
    """The target names a portal offers through SendTargets (nothing stored), or None when it does not answer
    (unreachable, discovery CHAP required, iscsiadm failed)."""
    try:
        result = runner.run(iscsiadm.sendtargets_probe(portal=portal, iface=iface), timeout=timeout)
    except ToolError:
        return None
    names: List[str] = []
    for node in iscsiadm.parse_node_list(_discovered_lines(result.stdout)):
        if node.target not in names:
            names.append(node.target)
    return names


def logout(runner: CommandRunner, *, target: str, portal: Portal, iface: Optional[str], timeout: float) -> bool:
    """Log out of one (target, portal); False when there was no session."""
    result = runner.run(
        iscsiadm.logout(target=target, portal=portal, iface=iface), ok_rcs=iscsiadm.LOGOUT_OK_RCS, timeout=timeout
    )
    return not iscsiadm.is_absent(result.rc)


def list_nodes(runner: CommandRunner) -> List[iscsiadm.NodeEntry]:
    """Every node record (``iscsiadm -m node``); empty when there is none."""
    result = runner.run(iscsiadm.node_list(), ok_rcs=iscsiadm.QUERY_OK_RCS)
    return [] if iscsiadm.is_absent(result.rc) else iscsiadm.parse_node_list(result.stdout)


def discovery_records(runner: CommandRunner) -> List[Portal]:
    """The portals that have a SendTargets discovery record; empty when there is none."""
    result = runner.run(iscsiadm.discoverydb_list(), ok_rcs=iscsiadm.QUERY_OK_RCS)
    return [] if iscsiadm.is_absent(result.rc) else iscsiadm.parse_discovery_list(result.stdout)


def discover(
    runner: CommandRunner,
    *,
    portal: Portal,
    iface: Optional[str],
    chap: Optional[Chap],
    timeout: float,
    create: bool = True,
) -> List[iscsiadm.NodeEntry]:
    """SendTargets discovery that only adds records (never resets or deletes existing ones).

    ``create`` makes the discovery record first; leave it False when the record exists, since
    ``-o new`` would reset its settings (discovery CHAP set up by someone else) to iscsid.conf defaults.
    New node records get iscsid.conf defaults, so callers plan node settings (manual scan) afterwards.
    """
    if create:
        runner.run(iscsiadm.discoverydb_new(portal=portal, iface=iface))
    if chap is not None:
        for key, value in sorted(chap.settings(prefix="discovery.sendtargets.auth").items()):
            runner.run(iscsiadm.discoverydb_update(portal=portal, iface=iface, key=key, value=value))
    try:
        result = runner.run(
            iscsiadm.discoverydb_discover(portal=portal, iface=iface),
            ok_rcs=iscsiadm.QUERY_OK_RCS,
            timeout=timeout,
        )
    except ToolTimeout as exc:
        raise DiscoveryError(
            f"SendTargets discovery at {portal.for_iscsiadm()} did not complete within {timeout:g}s: "
            "the portal is unreachable or does not answer",
            cmd=exc.details.get("cmd"),
            rc=exc.details.get("rc"),
            rc_name="timeout",
            portal=portal.for_iscsiadm(),
        ) from None
    except ToolError as exc:
        rc = exc.details.get("rc")
        if not (isinstance(rc, int) and rc in iscsiadm.EXIT_CODES):
            raise
        advice = hint(rc, discovery=True, chap=chap is not None)
        raise DiscoveryError(
            f"SendTargets discovery at {portal.for_iscsiadm()} failed: {iscsiadm.describe_rc(rc)}"
            + (f"; {advice}" if advice else ""),
            cmd=exc.details.get("cmd"),
            rc=rc,
            rc_name=iscsiadm.rc_name(rc),
            stderr=exc.details.get("stderr"),
            portal=portal.for_iscsiadm(),
        ) from None
    return iscsiadm.parse_node_list(_discovered_lines(result.stdout))


def remove_discovery(runner: CommandRunner, *, portal: Portal, iface: Optional[str]) -> None:
    """Delete a discovery record (and the node records iscsiadm linked to it when it discovered them)."""
    runner.run(iscsiadm.discoverydb_delete(portal=portal, iface=iface), ok_rcs=iscsiadm.LOGOUT_OK_RCS)


def side_by_side(
    items: Sequence[T], work: Callable[[T], R], *, workers: int
) -> List[Tuple[Optional[R], Optional[Exception]]]:
    """``work(item)`` for every item at once (at most ``workers`` threads), each ``(result, None)`` or
    ``(None, error)`` in the order of ``items`` whatever order they end in; returns when every call ended.

    Each call keeps its own deadline (the runner's timeout), so this waits at most for the slowest call.
    ``work`` must only run commands and read: results, the journal trail and warnings are written by the
    caller afterwards, in the order of ``items``.
    """
    if not items:
        return []
    done: List[Tuple[Optional[R], Optional[Exception]]] = []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items))), thread_name_prefix="lunsafe") as pool:
        futures = [pool.submit(work, item) for item in items]
    for future in futures:  # all ended when the pool closed
        error = future.exception()
        if error is None:
            done.append((future.result(), None))
        elif isinstance(error, Exception):
            done.append((None, error))
        else:  # KeyboardInterrupt, SystemExit: not a path's failure
            raise error
    return done


def _discovered_lines(text: str) -> str:
    """``--discover`` prints ``portal,tpgt target`` lines like ``-m node``; keep only those."""
    return "\n".join(line for line in text.splitlines() if line and not line.startswith("iscsiadm:"))


def portals_for_target(nodes: Sequence[iscsiadm.NodeEntry], *, target: str) -> List[Portal]:
    """The portals discovery reported for one target, in the order reported, without duplicates."""
    seen: List[Portal] = []
    for node in nodes:
        if node.target == target and not any(p.same_as(node.portal) for p in seen):
            seen.append(node.portal)
    return seen
