# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The iSCSI transport's logins and logouts go side by side (issue 26): one slow, one failing, one dead portal.

The fake host answers one command at a time, but a portal's login or logout takes real time outside that lock
(``delays``), so the wall time of a run tells whether the logins overlapped: the bounds are generous (the sum of
the delays is well above them), never tight.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

from ansible_collections.lunsafe.san.plugins.module_utils import _attach as attach
from ansible_collections.lunsafe.san.plugins.module_utils._journal import Journal, Trail
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fake_host import IQN, FakeHost, wwid_of

P1, P2, P3 = "127.0.0.1:3260", "127.0.0.2:3260", "127.0.0.3:3260"
PORTALS = [P1, P2, P3]


class KeptJournal(Journal):
    """A journal that also keeps every list of entries it wrote (the run's entry is gone once it ends)."""

    def __init__(self, path: str) -> None:
        super().__init__(path, boot_id="boot-1", pid=42, now=lambda: "2026-12-05T13:00:00+00:00")
        self.written: List[List[Dict[str, Any]]] = []

    def write(self, entries: Sequence[Dict[str, Any]]) -> None:
        self.written.append([dict(e, done=list(e.get("done", []))) for e in entries])
        super().write(entries)


def world(tmp_path: Path, **kwargs: Any) -> FakeHost:
    kwargs.setdefault("luns", {IQN: {n: wwid_of(n) for n in range(4)}})
    kwargs.setdefault("portals", {p: [IQN] for p in PORTALS})
    kwargs.setdefault("parallel", 8)
    return FakeHost(tmp_path / "host", **kwargs)


def run(fake: FakeHost, *, state: str = "present", trail: Any = None, **params: Any) -> attach.Outcome:
    params.setdefault("target", IQN)
    params.setdefault("portals", [p.rsplit(":", maxsplit=1)[0] for p in PORTALS])
    params.setdefault("timeout", 10)
    params.setdefault("lun", "1")
    req = attach.build_request(dict(params, state=state), resolver=lambda name: [name])
    work = attach.detach if state == "absent" else attach.attach
    return work(fake.host(), req, check=False, timings={}, trail=trail)


def timed(fake: FakeHost, **params: Any) -> Any:
    start = time.monotonic()
    outcome = run(fake, **params)
    return outcome, time.monotonic() - start


def logins(fake: FakeHost) -> List[str]:
    return [call[call.index("-p") + 1] for call in fake.calls if "--login" in call]


def session_portal(fake: FakeHost, sid: int) -> str:
    session = next(s for s in fake.sessions if s["sid"] == sid)
    return f"{session['address']}:{session['port']}"


# ---------------------------------------------------------------------------------------------------------
# logins


def test_a_slow_portal_costs_its_own_time_not_the_sum_and_results_keep_the_order_of_the_paths(
    tmp_path: Path,
) -> None:
    journal = KeptJournal(str(tmp_path / "lock.journal"))
    trail = Trail(journal, module="iscsi_lun_attach", op="attach", request={"targets": [IQN]})
    # all three logins start before any answers, then they answer P2, P3, P1 (the fake holds them to that order,
    # whatever the load: delays 0.3 s apart did not hold in a pre-run beside four guests); the sessions' numbers
    # follow the order the logins end
    fake = world(tmp_path, login_order=[P2, P3, P1])
    outcome = run(fake, trail=trail)
    assert outcome.error is None, outcome.error
    assert fake.runner.most_busy == 3  # all three at once
    # the first path ended last (its session has the highest number), yet every list keeps the paths' order
    assert session_portal(fake, 3) == P1
    assert outcome.result["logged_in"] == PORTALS
    assert [s["portal"] for s in outcome.result["sessions"]] == [P2, P3, P1]  # by session number, as before
    # every record (manual scan first) is written before the first login; each login has its own deadline
    first_login = next(i for i, call in enumerate(fake.calls) if "--login" in call)
    updates = [i for i, call in enumerate(fake.calls) if "update" in call or "new" in call]
    assert updates and max(updates) < first_login
    assert all(fake.nodes[(IQN, p)]["node.session.scan"] == "manual" for p in PORTALS)
    assert sorted(t for argv, t in fake.runner.deadlines if "--login" in argv) == [40.0] * 3
    # the journal names the logins in the order of the paths, once each
    done = max((e["done"] for entries in journal.written for e in entries), key=len)
    assert [d for d in done if d.startswith("login")] == [f"login {p} ({IQN})" for p in PORTALS]


def test_the_host_bound_caps_the_logins_at_once(tmp_path: Path) -> None:
    fake = world(tmp_path, parallel=2, delays={P1: 0.3, P2: 0.3, P3: 0.3})
    outcome, elapsed = timed(fake)
    assert outcome.error is None, outcome.error
    assert fake.runner.most_busy == 2 and elapsed >= 0.6  # two waves
    assert outcome.result["logged_in"] == PORTALS


def test_a_failing_portal_fails_the_run_and_the_sessions_made_elsewhere_are_logged_out(tmp_path: Path) -> None:
    # P2 refuses the login (CHAP: rc 24) at once; P3 ends after it: the run still waits for P3's login, so
    # that the rollback knows of its session and logs it out
    fake = world(tmp_path, refuse={P2: 24}, delays={P1: 0.1, P3: 0.5})
    outcome = run(fake)
    error = outcome.error
    assert error is not None
    assert error.msg.startswith(f"login to {IQN} at {P2} failed: ISCSI_ERR_LOGIN_AUTH_FAILED (24)")
    assert "check chap_username and chap_password" in error.msg
    assert error.details["rc_name"] == "ISCSI_ERR_LOGIN_AUTH_FAILED" and error.details["portal"] == P2
    # the portal answers TCP: it was asked what it offers (it offers the target: not an unknown name)
    assert any(call[:3] == ("iscsiadm", "-m", "discovery") and P2 in call for call in fake.runner.calls)
    assert fake.sessions == [] and fake.nodes == {}
    rolled = outcome.result["rolled_back"]
    assert f"logged out of {P1} ({IQN})" in rolled and f"logged out of {P3} ({IQN})" in rolled
    assert not any(P2 in x and x.startswith("logged out") for x in rolled)  # it never had a session
    assert outcome.result["logged_in"] == [] and outcome.result["luns"][0]["state"] != "attached"
    assert not any("another login failed" in w for w in outcome.result["warnings"])


def test_a_dead_portal_costs_one_deadline_among_three_and_is_named(tmp_path: Path) -> None:
    # P2 never answers: its login runs until the runner's deadline kills it (rc 124); the others take their
    # time meanwhile
    fake = world(tmp_path, silent=[P2], delays={P1: 0.5, P2: 0.6, P3: 0.5})
    outcome, _elapsed = timed(fake)
    error = outcome.error
    assert error is not None
    # all three at once (counted, not timed: a loaded machine stretches any wall-clock bound)
    assert fake.runner.most_busy == 3
    assert error.msg.startswith(f"login to {IQN} at {P2} did not complete within 40s: the portal is unreachable")
    assert error.details["rc_name"] == "timeout"
    # no TCP answer: no SendTargets probe of the dead portal
    assert not any(call[:3] == ("iscsiadm", "-m", "discovery") for call in fake.runner.calls)
    assert fake.sessions == [] and fake.nodes == {}
    assert sorted(x for x in outcome.result["rolled_back"] if x.startswith("logged out")) == [
        f"logged out of {P1} ({IQN})",
        f"logged out of {P3} ({IQN})",
    ]


def test_two_failing_portals_raise_the_first_path_and_warn_of_the_other(tmp_path: Path) -> None:
    fake = world(tmp_path, down=[P3], refuse={P2: 24}, delays={P2: 0.3})  # P2 ends last, yet comes first
    outcome = run(fake, login_timeout=5)
    assert outcome.error is not None and outcome.error.details["portal"] == P2
    assert [w for w in outcome.result["warnings"] if w.startswith("another login failed too")] == [
        f"another login failed too: login to {IQN} at {P3} failed: ISCSI_ERR_TRANS_TIMEOUT (8): connection "
        "timer expired while trying to connect; the portal did not answer in time: check the address, the "
        "network path and the target's portal list"
    ]
    assert fake.sessions == [] and fake.nodes == {}


def test_an_existing_session_is_not_logged_in_again_while_the_others_are(tmp_path: Path) -> None:
    fake = world(tmp_path)
    fake.login(IQN, P2)
    fake.nodes[(IQN, P2)] = {"node.session.scan": "manual", "node.startup": "manual"}
    outcome = run(fake)
    assert outcome.error is None, outcome.error
    assert sorted(logins(fake)) == [P1, P3] and outcome.result["logged_in"] == [P1, P3]


# ---------------------------------------------------------------------------------------------------------
# logouts


def test_logouts_go_side_by_side_and_keep_the_order_of_the_paths(tmp_path: Path) -> None:
    fake = world(tmp_path)
    assert run(fake).error is None
    fake.logout_delays.update({P1: 0.8, P2: 0.7, P3: 0.7})
    fake.runner.most_busy = 0
    outcome, _elapsed = timed(fake, state="absent")
    assert outcome.error is None, outcome.error
    assert fake.runner.most_busy == 3  # all three at once (counted, not timed)
    assert outcome.result["logged_out"] == PORTALS and outcome.result["nodes_removed"] == PORTALS
    assert fake.sessions == [] and fake.nodes == {}
    assert sorted(t for argv, t in fake.runner.deadlines if "--logout" in argv) == [60.0] * 3
    # every logout ended before the first record was removed
    last_logout = max(i for i, call in enumerate(fake.calls) if "--logout" in call)
    first_delete = min(i for i, call in enumerate(fake.calls) if "delete" in call and "node" in call)
    assert last_logout < first_delete


def test_a_dead_logout_is_named_and_the_other_paths_are_still_released(tmp_path: Path) -> None:
    fake = world(tmp_path)
    assert run(fake).error is None
    fake.silent.append(P2)
    fake.logout_delays.update({P1: 0.5, P2: 0.6, P3: 0.5})
    fake.runner.most_busy = 0
    outcome, _elapsed = timed(fake, state="absent")
    error = outcome.error
    assert error is not None
    assert fake.runner.most_busy == 3  # all three logouts at once (counted, not timed)
    assert error.msg.startswith("command did not finish within 60s and was killed: iscsiadm -m node -T")
    assert P2 in error.msg
    assert outcome.result["logged_out"] == [P1, P3] and outcome.result["nodes_removed"] == [P1, P3]
    assert [session_portal(fake, s["sid"]) for s in fake.sessions] == [P2]
    assert list(fake.nodes) == [(IQN, P2)]  # the record of the path still logged in stays


def test_two_failing_logouts_raise_the_first_path_and_warn_of_the_other(tmp_path: Path) -> None:
    fake = world(tmp_path)
    assert run(fake).error is None
    fake.silent.extend([P3, P1])
    outcome = run(fake, state="absent")
    assert outcome.error is not None and P1 in outcome.error.msg
    warned = [w for w in outcome.result["warnings"] if w.startswith("another logout failed too")]
    assert len(warned) == 1 and P3 in warned[0]
    assert outcome.result["logged_out"] == [P2]
