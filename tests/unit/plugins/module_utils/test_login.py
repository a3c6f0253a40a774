# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import threading
import time
from typing import List, Optional, Tuple

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _login as login_utils
from ansible_collections.lunsafe.san.plugins.module_utils._errors import LunsafeError, ToolTimeout
from ansible_collections.lunsafe.san.plugins.module_utils._iscsiadm import parse_portal
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner

IQN = "iqn.2003-01.org.lunsafe.lab:array"
PORTAL = parse_portal("127.0.0.1")
PORTAL6 = parse_portal("[::1]:3260")
# after a failed login, login() asks the portal which targets it offers (SendTargets, nothing stored)
PROBE = ["iscsiadm", "-m", "discovery", "-t", "sendtargets", "-p", "127.0.0.1:3260", "-o", "nonpersistent"]
OFFERS_IQN = (PROBE, 0, f"127.0.0.1:3260,1 {IQN}\n", "")

RECORD = """# BEGIN RECORD 2.1.8
node.name = iqn.2003-01.org.lunsafe.lab:array
node.tpgt = 1
node.startup = manual
node.session.scan = auto
node.session.initial_login_retry_max = 8
node.session.auth.authmethod = None
node.session.auth.username = <empty>
node.session.auth.password = <empty>
node.conn[0].address = 127.0.0.1
# END RECORD
"""


def test_wanted_settings_always_hold_manual_scan() -> None:
    wanted = login_utils.wanted_node_settings(chap=None, startup="manual", login_retries=2)
    assert wanted["node.session.scan"] == "manual"
    assert wanted["node.session.initial_login_retry_max"] == "2"
    assert not any(key.startswith("node.session.auth") for key in wanted)


def test_wanted_settings_with_mutual_chap() -> None:
    chap = login_utils.Chap(username="u", password="p", username_in="tu", password_in="tp")
    wanted = login_utils.wanted_node_settings(chap=chap, startup="automatic", login_retries=1)
    assert wanted["node.session.auth.authmethod"] == "CHAP"
    assert wanted["node.session.auth.password_in"] == "tp"
    assert chap.secrets() == ["p", "tp"]


def test_wanted_settings_reject_non_node_keys() -> None:
    with pytest.raises(ValueError, match="node"):
        login_utils.wanted_node_settings(chap=None, startup="manual", login_retries=1, extra={"discovery.x": "1"})


def test_plan_creates_absent_record_with_every_key() -> None:
    wanted = login_utils.wanted_node_settings(chap=None, startup="manual", login_retries=2)
    change = login_utils.plan_node(target=IQN, portal=PORTAL, iface=None, current=None, wanted=wanted)
    assert change.create and change.changed
    assert dict(change.updates) == wanted


def test_plan_updates_only_differing_keys() -> None:
    current = {"node.session.scan": "manual", "node.startup": "manual", "node.session.initial_login_retry_max": "8"}
    wanted = login_utils.wanted_node_settings(chap=None, startup="manual", login_retries=2)
    change = login_utils.plan_node(target=IQN, portal=PORTAL, iface=None, current=current, wanted=wanted)
    assert not change.create
    assert change.updates == (("node.session.initial_login_retry_max", "2"),)


def test_plan_is_empty_when_record_matches() -> None:
    wanted = login_utils.wanted_node_settings(chap=None, startup="manual", login_retries=2)
    change = login_utils.plan_node(target=IQN, portal=PORTAL, iface=None, current=dict(wanted), wanted=wanted)
    assert not change.changed


def test_change_dict_names_keys_but_never_secret_values() -> None:
    chap = login_utils.Chap(username="user", password="s3cret-pass")
    wanted = login_utils.wanted_node_settings(chap=chap, startup="manual", login_retries=2)
    change = login_utils.plan_node(target=IQN, portal=PORTAL, iface=None, current=None, wanted=wanted)
    shown = change.to_dict()
    assert "node.session.auth.password" in shown["update_keys"]
    assert "s3cret-pass" not in repr(shown)


def test_read_node_absent_is_none() -> None:
    runner = ScriptedRunner([(21, "", "iscsiadm: No records found")])
    assert login_utils.read_node(runner, target=IQN, portal=PORTAL, iface=None) is None
    assert runner.argvs[0][-1] == "-S"


def test_read_node_parses_record() -> None:
    runner = ScriptedRunner([(0, RECORD, "")])
    record = login_utils.read_node(runner, target=IQN, portal=PORTAL, iface=None)
    assert record is not None
    assert record["node.session.scan"] == "auto"
    assert record["node.session.auth.username"] == ""


def test_apply_writes_every_key_in_one_update_manual_scan_first() -> None:
    chap = login_utils.Chap(username="user", password="pw")
    wanted = login_utils.wanted_node_settings(chap=chap, startup="manual", login_retries=2)
    change = login_utils.plan_node(target=IQN, portal=PORTAL6, iface=None, current=None, wanted=wanted)
    runner = ScriptedRunner([(0, "", ""), (0, "", "")])
    login_utils.apply_node(runner, change)
    argvs = runner.argvs
    assert len(argvs) == 2  # -o new, then one -o update with every key
    assert argvs[0][-2:] == ["-o", "new"]
    assert argvs[0][argvs[0].index("-p") + 1] == "[::1]:3260"
    update = argvs[1]
    assert update[update.index("-o") + 1] == "update"
    pairs = [(update[i + 1], update[i + 3]) for i, arg in enumerate(update) if arg == "-n"]
    assert pairs[0] == ("node.session.scan", "manual")
    assert dict(pairs) == wanted


def test_apply_an_unchanged_record_runs_nothing() -> None:
    wanted = login_utils.wanted_node_settings(chap=None, startup="manual", login_retries=2)
    change = login_utils.plan_node(target=IQN, portal=PORTAL, iface=None, current=dict(wanted), wanted=wanted)
    runner = ScriptedRunner([])
    login_utils.apply_node(runner, change)
    assert runner.argvs == [] and change.changed is False


def test_login_created_and_already() -> None:
    runner = ScriptedRunner([(0, "Login ... successful.", ""), (15, "", "session exists")])
    assert login_utils.login(runner, target=IQN, portal=PORTAL, iface=None, timeout=30) is True
    assert login_utils.login(runner, target=IQN, portal=PORTAL, iface=None, timeout=30) is False


def test_login_auth_failure_is_named() -> None:
    runner = ScriptedRunner([(24, "", "iscsiadm: Login failed to authenticate with target"), OFFERS_IQN])
    with pytest.raises(login_utils.LoginError) as info:
        login_utils.login(runner, target=IQN, portal=PORTAL, iface=None, timeout=30)
    kwargs = info.value.to_fail_kwargs()
    assert kwargs["rc"] == 24
    assert kwargs["rc_name"] == "ISCSI_ERR_LOGIN_AUTH_FAILED"
    assert "authoriz" in kwargs["msg"]


def test_login_timeout_is_a_named_login_error() -> None:
    runner = ScriptedRunner([(124, "", "")])
    with pytest.raises(login_utils.LoginError, match="did not complete within 5s") as info:
        login_utils.login(runner, target=IQN, portal=PORTAL, iface=None, timeout=5)
    assert info.value.details["rc_name"] == "timeout"
    assert isinstance(info.value, LunsafeError) and not isinstance(info.value, ToolTimeout)


def test_an_unknown_target_that_times_out_is_still_told_apart_by_sendtargets() -> None:
    # LIO answers a login to a target name it does not know by letting iscsiadm's connection timer expire
    # (rc 8, seen in the lab on 2026-12-06), the same code as a silent portal: only the probes tell them apart
    probed: List[str] = []

    def reachable() -> bool:
        probed.append("tcp")
        return True

    offers_other = (PROBE, 0, "127.0.0.1:3260,1 iqn.2003-01.org.lunsafe.lab:other\n", "")
    runner = ScriptedRunner([(8, "", "iscsiadm: initiator reported error (8 - connection timed out)"), offers_other])
    with pytest.raises(login_utils.LoginError) as info:
        login_utils.login(runner, target=IQN, portal=PORTAL, iface=None, timeout=20, reachable=reachable)
    assert info.value.details["rc_name"] == "target_not_found"
    assert "does not offer this target" in info.value.msg
    assert probed == ["tcp"]


def test_connection_login_timeout_shares_the_whole_login_timeout() -> None:
    wanted = login_utils.wanted_node_settings(chap=None, startup="manual", login_retries=2, login_timeout=30)
    assert wanted["node.conn[0].timeo.login_timeout"] == "10"
    short = login_utils.wanted_node_settings(chap=None, startup="manual", login_retries=2, login_timeout=6)
    assert short["node.conn[0].timeo.login_timeout"] == "5"


def test_logout_without_session() -> None:
    runner = ScriptedRunner([(21, "", "No matching sessions found"), (0, "", "")])
    assert login_utils.logout(runner, target=IQN, portal=PORTAL, iface=None, timeout=30) is False
    assert login_utils.logout(runner, target=IQN, portal=PORTAL, iface=None, timeout=30) is True


def test_discover_adds_only_and_parses_portals() -> None:
    out = "127.0.0.1:3260,1 iqn.2003-01.org.lunsafe.lab:array\n[::1]:3260,1 iqn.2003-01.org.lunsafe.lab:array\n"
    chap = login_utils.Chap(username="d", password="dp")
    runner = ScriptedRunner([(0, "", "")] * 4 + [(0, out, "")])
    nodes = login_utils.discover(runner, portal=PORTAL, iface=None, chap=chap, timeout=20)
    assert runner.argvs[-1][-3:] == ["--discover", "-o", "new"]
    assert any("discovery.sendtargets.auth.password" in argv for argv in runner.argvs)
    portals = login_utils.portals_for_target(nodes, target=IQN)
    assert [p.for_iscsiadm() for p in portals] == ["127.0.0.1:3260", "[::1]:3260"]


def test_wrong_mutual_secret_names_the_mutual_pair() -> None:
    """A wrong chap_password_in ends in rc 19 (seen in the lab), not 24: the hint must say so."""
    stderr = "iscsiadm: initiator reported error (19 - encountered non-retryable iSCSI login failure)"
    runner = ScriptedRunner([(19, "", stderr), OFFERS_IQN, (19, "", stderr), OFFERS_IQN])
    with pytest.raises(login_utils.LoginError) as mutual:
        login_utils.login(runner, target=IQN, portal=PORTAL, iface=None, timeout=30, mutual=True)
    assert mutual.value.details["rc_name"] == "ISCSI_ERR_FATAL_LOGIN"
    assert "chap_password_in" in mutual.value.msg
    with pytest.raises(login_utils.LoginError) as one_way:
        login_utils.login(runner, target=IQN, portal=PORTAL, iface=None, timeout=30)
    assert "chap_password_in" not in one_way.value.msg
    assert "maps this initiator" in one_way.value.msg


def test_auth_failure_names_the_options_to_check() -> None:
    runner = ScriptedRunner([(24, "", "iscsiadm: Login failed to authenticate with target"), OFFERS_IQN])
    with pytest.raises(login_utils.LoginError) as info:
        login_utils.login(runner, target=IQN, portal=PORTAL, iface=None, timeout=30)
    assert "chap_username and chap_password" in info.value.msg


def test_iscsid_that_cannot_start_is_actionable() -> None:
    down = (20, "", "iscsiadm: can not connect to iSCSI daemon (111)!")
    runner = ScriptedRunner([down, (PROBE, *down)])  # the probe cannot tell: the login error stands
    with pytest.raises(login_utils.LoginError) as info:
        login_utils.login(runner, target=IQN, portal=PORTAL, iface=None, timeout=30)
    assert info.value.details["rc"] == 20
    assert "iscsid is not running" in info.value.msg
    assert "systemctl start iscsid" in info.value.msg


@pytest.mark.parametrize(
    ("offered", "listed"),
    [
        ("127.0.0.1:3260,1 iqn.2003-01.org.lunsafe.lab:other\n[::1]:3260,1 iqn.2003-01.org.lunsafe.lab:other\n",
         "iqn.2003-01.org.lunsafe.lab:other"),
        ("iscsiadm: No portals found\n", "none"),
    ],
)  # fmt: skip
def test_a_target_the_portal_does_not_offer_is_named(offered: str, listed: str) -> None:
    runner = ScriptedRunner([(19, "", "iscsiadm: initiator reported error (19)"), (PROBE, 0, offered, "")])
    with pytest.raises(login_utils.LoginError) as info:
        login_utils.login(runner, target=IQN, portal=PORTAL, iface=None, timeout=60)
    assert info.value.details["rc_name"] == "target_not_found"
    assert f"the portal answers but does not offer this target (it offers: {listed}); check the target name" in (
        info.value.msg
    )
    assert runner.calls[-1].timeout == 15  # the probe is short


def test_the_offered_target_is_matched_case_insensitively() -> None:
    runner = ScriptedRunner([(24, "", "auth"), (PROBE, 0, f"127.0.0.1:3260,1 {IQN.upper()}\n", "")])
    with pytest.raises(login_utils.LoginError) as info:
        login_utils.login(runner, target=IQN, portal=PORTAL, iface=None, timeout=5)
    assert info.value.details["rc_name"] == "ISCSI_ERR_LOGIN_AUTH_FAILED"
    assert runner.calls[-1].timeout == 5


@pytest.mark.parametrize(
    ("answer", "offered"),
    [
        ((0, f"127.0.0.1:3260,1 {IQN}\n127.0.0.1:3260,1 {IQN}\n[::1]:3260,1 iqn.x:y\n", ""), [IQN, "iqn.x:y"]),
        ((24, "", "iscsiadm: discovery login to 127.0.0.1 rejected"), None),
    ],
)
def test_offered_targets_lists_each_once_or_none_when_the_portal_does_not_answer(
    answer: Tuple[int, str, str], offered: Optional[List[str]]
) -> None:
    runner = ScriptedRunner([([*PROBE[:7], "-I", "eth1", "-o", "nonpersistent"], *answer)])
    assert login_utils.offered_targets(runner, portal=PORTAL, iface="eth1", timeout=15) == offered


def test_hint_is_empty_for_codes_without_advice() -> None:
    assert login_utils.hint(None) == ""
    assert login_utils.hint(15) == ""
    assert "discovery_chap_password" in login_utils.hint(24, discovery=True)


def test_discover_keeps_an_existing_discovery_record() -> None:
    """``-o new`` on an existing discovery record would reset its settings: not when it exists."""
    runner = ScriptedRunner([(0, "127.0.0.1:3260,1 " + IQN + "\n", "")])
    nodes = login_utils.discover(runner, portal=PORTAL, iface=None, chap=None, timeout=20, create=False)
    assert len(runner.argvs) == 1
    assert runner.argvs[0][-3:] == ["--discover", "-o", "new"]
    assert [n.portal.for_iscsiadm() for n in nodes] == ["127.0.0.1:3260"]


def test_discovery_auth_failure_is_named_without_the_secret() -> None:
    chap = login_utils.Chap(username="disco", password="Disc-Secret-x1")
    runner = ScriptedRunner(
        [(0, "", "")] * 4 + [(24, "", "iscsiadm: Login failed to authenticate with target")],
        redact=chap.secrets(),
    )
    with pytest.raises(login_utils.DiscoveryError) as info:
        login_utils.discover(runner, portal=PORTAL, iface=None, chap=chap, timeout=20)
    kwargs = info.value.to_fail_kwargs()
    assert kwargs["rc_name"] == "ISCSI_ERR_LOGIN_AUTH_FAILED"
    assert "discovery_chap_password" in kwargs["msg"]
    assert "Disc-Secret-x1" not in repr(kwargs)
    assert "Disc-Secret-x1" in [a for argv in runner.argvs for a in argv]  # it did reach iscsiadm


def test_discovery_timeout_is_named() -> None:
    runner = ScriptedRunner([(0, "", ""), (124, "", "")])
    with pytest.raises(login_utils.DiscoveryError, match="did not complete within 20s") as info:
        login_utils.discover(runner, portal=PORTAL, iface=None, chap=None, timeout=20)
    assert info.value.details["rc_name"] == "timeout"


def test_list_nodes_and_discovery_records() -> None:
    runner = ScriptedRunner(
        [
            (0, "127.0.0.1:3260,1 " + IQN + "\n[::1]:3260,1 " + IQN + "\n", ""),
            (21, "", "iscsiadm: No records found"),
            (0, "127.0.0.1:3260 via sendtargets\n::1:3260 via sendtargets\n", ""),
            (21, "", ""),
        ]
    )
    assert [n.portal.for_iscsiadm() for n in login_utils.list_nodes(runner)] == ["127.0.0.1:3260", "[::1]:3260"]
    assert login_utils.list_nodes(runner) == []
    assert [p.for_iscsiadm() for p in login_utils.discovery_records(runner)] == ["127.0.0.1:3260", "[::1]:3260"]
    assert login_utils.discovery_records(runner) == []


def test_remove_discovery_accepts_a_missing_record() -> None:
    runner = ScriptedRunner([(0, "", ""), (21, "", "")])
    login_utils.remove_discovery(runner, portal=PORTAL6, iface=None)
    login_utils.remove_discovery(runner, portal=PORTAL6, iface=None)
    assert runner.argvs[0][-4:] == ["-p", "[::1]:3260", "-o", "delete"]


@pytest.mark.parametrize("with_chap", [True, False])
def test_a_refused_discovery_session_gets_a_discovery_hint_not_the_login_one(with_chap: bool) -> None:
    """rc 19 on a discovery with discovery CHAP (a wrong secret, seen in an outside lab) is not about the target's
    LUN mapping: a discovery session names no target (issue 23)."""
    chap = login_utils.Chap(username="disco", password="Disc-Secret-x1") if with_chap else None
    updates = 4 if with_chap else 1  # -o new, then each discovery CHAP setting
    runner = ScriptedRunner(
        [(0, "", "")] * updates
        + [(19, "", "iscsiadm: initiator reported error (19 - encountered non-retryable iSCSI login failure)")],
        redact=chap.secrets() if chap else (),
    )
    with pytest.raises(login_utils.DiscoveryError) as info:
        login_utils.discover(runner, portal=PORTAL, iface=None, chap=chap, timeout=20)
    msg = info.value.msg
    assert "maps this initiator" not in msg and "mapping" not in msg
    assert "refused the discovery session" in msg and "discovery authentication settings" in msg
    assert ("check discovery_chap_username and discovery_chap_password" in msg) is with_chap
    assert ("give discovery_chap_username and discovery_chap_password" in msg) is not with_chap
    assert info.value.details["rc_name"] == "ISCSI_ERR_FATAL_LOGIN"
    # a login refused with 19 keeps its own hint
    assert "maps this initiator's IQN" in login_utils.hint(19)


def test_side_by_side_keeps_the_order_of_the_items_whatever_order_they_end_in() -> None:
    ended: List[str] = []
    # all three must be running at once to pass the barrier: one after the other, the first would wait it out
    # and fail. (A wall-clock bound here was a flake risk on a starved machine.)
    together = threading.Barrier(3, timeout=30)

    def work(item: Tuple[str, float]) -> str:
        name, seconds = item
        together.wait()
        time.sleep(seconds)
        if name == "b":
            raise LunsafeError("b failed")
        ended.append(name)
        return name.upper()

    done = login_utils.side_by_side([("a", 0.4), ("b", 0.1), ("c", 0.0)], work, workers=8)
    assert not together.broken
    assert ended == ["c", "a"]
    assert [result for result, _error in done] == ["A", None, "C"]
    error = done[1][1]
    assert isinstance(error, LunsafeError) and error.msg == "b failed"
    assert login_utils.side_by_side([], work, workers=8) == []


def test_side_by_side_runs_at_most_workers_at_once_and_lets_an_interrupt_through() -> None:
    busy: List[int] = []
    running: List[int] = [0]
    guard = threading.Lock()

    def work(item: int) -> int:
        with guard:
            running[0] += 1
            busy.append(running[0])
        time.sleep(0.05)
        with guard:
            running[0] -= 1
        if item == 3:
            raise KeyboardInterrupt
        return item

    with pytest.raises(KeyboardInterrupt):
        login_utils.side_by_side([0, 1, 2, 3], work, workers=2)
    assert max(busy) == 2
