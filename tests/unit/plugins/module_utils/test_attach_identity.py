# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The identity of what a detach removes, and what its result says (issue 23).

A detach by LUN number with an ``expected_wwid`` the LUN does not carry (the array reused the number for
another LU) refuses the whole call before any change, in check mode too, whatever ``force`` and ``keep_going``
say; so do paths of one LUN that carry different LUs. A detach that keeps a session says which LUNs keep it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _attach as attach
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fake_host import IQN, FakeHost, wwid_of
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.test_attach import P1, P2, entry, run, world


def changing_calls(fake: FakeHost) -> List[List[str]]:
    """The commands that change something: flushes, logouts, node record and multipathd changes."""
    changing = ("-f", "--logout", "delete", "update", "new", "del", "remove", "fail_if_no_path", "message")
    return [call for call in fake.calls if any(word in call for word in changing)]


def frozen(fake: FakeHost) -> Dict[str, Any]:
    return {
        "devices": [dict(d) for d in fake.devices],
        "maps": [dict(m) for m in fake.maps],
        "sessions": [s["sid"] for s in fake.sessions],
        "nodes": {k: dict(v) for k, v in fake.nodes.items()},
    }


@pytest.mark.parametrize(
    "options",
    [{}, {"check": True}, {"force": True}, {"force": True, "keep_going": True}],
    ids=["plain", "check-mode", "force", "force-keep-going"],
)
def test_a_detach_with_another_lus_wwid_refuses_before_any_change(tmp_path: Path, options: Dict[str, Any]) -> None:
    fake = world(tmp_path)
    run(fake, lun="1")
    before = frozen(fake)
    fake.writes.clear()
    fake.runner.calls.clear()
    outcome = run(fake, state="absent", lun="1", expected_wwid=wwid_of(5), **options)
    assert outcome.error is not None
    msg = outcome.error.msg
    assert msg.startswith("refusing to detach, nothing was changed: LUN 1: the kernel reports WWID ")
    assert f"WWID {wwid_of(1)} for it (2:0:0:1 sda, 3:0:0:1 sdb), not the expected {wwid_of(5)}" in msg
    assert "the array may have reused the LUN number for another LU, so nothing was removed" in msg
    assert "not overridden by force" in msg and "use force to override" not in msg
    assert outcome.error.details["refusals"][0].startswith("LUN 1: the kernel reports")
    # nothing changed: no sysfs write, no flush, no logout, no record change
    assert fake.writes == [] and changing_calls(fake) == [] and frozen(fake) == before
    result = outcome.result
    assert result["changed"] is False and result["logged_out"] == [] and result["nodes_removed"] == []
    assert result["failed_luns"] == ["1"] and result["sessions_kept"] == []
    one = entry(outcome, "1")
    assert one["state"] == "failed" and one["plan"] == [] and one["removed"] == {"map": None, "paths": []}
    assert one["msg"].startswith("the kernel reports WWID")
    # the entry says what is attached
    assert one["wwid"] == wwid_of(1) and one["dm"]["uuid"] == f"mpath-{wwid_of(1)}"
    assert one["size_bytes"] == 2097152 * 512
    assert one["hctl"] == ["2:0:0:1", "3:0:0:1"] and one["by_id"] == f"/dev/disk/by-id/dm-uuid-mpath-{wwid_of(1)}"


def test_the_right_wwid_detaches(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run(fake, lun="1")
    outcome = run(fake, state="absent", lun="1", expected_wwid="naa." + wwid_of(1)[1:])
    assert outcome.error is None, outcome.error
    assert entry(outcome, "1")["state"] == "detached" and fake.devices == [] and fake.sessions == []
    assert outcome.result["failed_luns"] == []


def test_a_mismatch_on_one_lun_of_several_refuses_them_all(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run(fake, luns=[1, 2, 3])
    before = frozen(fake)
    fake.writes.clear()
    fake.runner.calls.clear()
    luns = [1, {"lun": 2, "expected_wwid": wwid_of(2)}, {"lun": 3, "expected_wwid": wwid_of(7)}]
    for check in (True, False):
        outcome = run(fake, state="absent", luns=luns, check=check)
        assert outcome.error is not None
        assert "LUN 3: the kernel reports WWID " + wwid_of(3) in outcome.error.msg
        assert "LUN 1" not in outcome.error.msg and "LUN 2" not in outcome.error.msg
        assert [e["state"] for e in outcome.result["luns"]] == ["attached", "attached", "failed"]
        assert outcome.result["failed_luns"] == ["3"] and outcome.result["changed"] is False
        assert entry(outcome, "1")["plan"] != []  # what a detach without LUN 3 would do
    assert fake.writes == [] and changing_calls(fake) == [] and frozen(fake) == before


@pytest.mark.parametrize("expected", [None, 1], ids=["without-expected-wwid", "with-expected-wwid"])
def test_paths_of_one_lun_carrying_different_lus_are_refused(tmp_path: Path, expected: Any) -> None:
    """The array reused LUN 1 on one portal only: two LUs under one number, two maps; neither is removed."""
    fake = world(tmp_path)
    fake.attach_device(fake.login(IQN, P1), 1)
    fake.attach_device(fake.login(IQN, P2), 1, wwid=wwid_of(1, generation=1))
    assert len(fake.maps) == 2
    before = frozen(fake)
    params: Dict[str, Any] = {} if expected is None else {"expected_wwid": wwid_of(expected)}
    outcome = run(fake, state="absent", lun="1", force=True, **params)
    assert outcome.error is not None
    msg = outcome.error.msg
    assert f"LUN 1: its paths carry different or missing WWIDs (2:0:0:1 sda WWID {wwid_of(1)}, 3:0:0:1 sdb" in msg
    assert wwid_of(1, generation=1) in msg and "detach through one portal at a time" in msg
    assert ("expected " + wwid_of(1) in msg) is (expected is not None)
    assert fake.writes == [] and frozen(fake) == before
    one = entry(outcome, "1")
    assert one["wwid"] is None and one["dm"] is None and one["by_id"] is None and one["state"] == "failed"
    # one portal at a time: each call sees one LU and removes it with the WWID it carries
    alone = run(fake, state="absent", lun="1", portals=["127.0.0.2"], expected_wwid=wwid_of(1, generation=1))
    assert alone.error is None and [d["name"] for d in fake.devices] == ["sda"]


def test_a_lun_without_any_path_is_absent_not_a_mismatch(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run(fake, lun="1")
    outcome = run(fake, state="absent", lun="4", expected_wwid=wwid_of(6))
    assert outcome.error is None, outcome.error
    assert entry(outcome, "4")["state"] == "absent" and outcome.result["changed"] is False
    assert len(fake.devices) == 2  # LUN 1 stays, and so do the sessions it keeps
    assert [k["portal"] for k in outcome.result["sessions_kept"]] == [P1, P2]


def test_a_mounted_lun_with_another_wwid_names_the_identity_first(tmp_path: Path) -> None:
    fake = world(tmp_path, auto_map=False, map_on_add=False)
    run(fake, lun="1", multipath=False)
    fake.mounts.append("sda")
    fake.rebuild()
    fake.writes.clear()
    outcome = run(fake, state="absent", lun="1", multipath=False, expected_wwid=wwid_of(5))
    assert outcome.error is not None
    msg = outcome.error.msg
    identity, mounted = msg.find(f"not the expected {wwid_of(5)}"), msg.find("sda mounted on /mnt/sda")
    assert 0 < identity < mounted, msg
    assert outcome.error.details["refusals"][0].startswith("LUN 1: the kernel reports WWID")
    assert len(fake.devices) == 2 and fake.writes == []


def test_a_kept_session_names_the_luns_that_keep_it(tmp_path: Path) -> None:
    """A controller LUN 0 (no block device) on the first session, LUN 2 on the second: neither session is
    logged out, and the result and a warning say why."""
    fake = world(tmp_path)
    run(fake, lun="1")
    first, second = fake.sessions
    fake.attach_device(second, 2)
    fake.devices.append({"hctl": f"{first['host']}:0:0:0", "sid": first["sid"], "name": None, "wwid": None})
    fake.rebuild()
    for check in (True, False):
        outcome = run(fake, state="absent", lun="1", check=check)
        assert outcome.error is None, outcome.error
        kept = outcome.result["sessions_kept"]
        assert [(k["portal"], k["target"], k["sids"]) for k in kept] == [(P1, IQN, [1]), (P2, IQN, [2])]
        assert kept[0]["carries"] == [{"hctl": "2:0:0:0", "device": None, "lun": 0, "wwid": None, "ours": False}]
        assert [(c["hctl"], c["lun"], c["wwid"]) for c in kept[1]["carries"]] == [("3:0:0:2", 2, wwid_of(2))]
        # a warning for the device with no block device only: another attached LUN is the normal reason
        warnings = [w for w in outcome.result["warnings"] if "logged in: it still carries" in w]
        assert len(warnings) == 1
        assert warnings[0].startswith(("would keep" if check else "kept") + f" the session to {P1} ({IQN})")
        assert "LUN 0 (2:0:0:0 no block device)" in warnings[0]
        assert outcome.result["logged_out"] == []
    assert len(fake.sessions) == 2 and fake.nodes


def test_a_session_kept_for_a_lun_that_could_not_be_removed_says_so(tmp_path: Path) -> None:
    fake = world(tmp_path, auto_map=False, map_on_add=False)
    run(fake, lun="1", multipath=False)
    stuck = next(d for d in fake.devices if d["sid"] == 1)
    fake.stuck.append(stuck["name"])
    outcome = run(fake, state="absent", lun="1", multipath=False, force=True, keep_going=True)
    assert outcome.error is not None and outcome.result["failed_luns"] == ["1"]
    assert outcome.result["logged_out"] == [P2]
    (kept,) = outcome.result["sessions_kept"]
    assert kept["portal"] == P1 and kept["carries"][0]["ours"] is True and kept["carries"][0]["device"] == "sda"
    assert any("LUN 1 (2:0:0:1 sda, not removed)" in w for w in outcome.result["warnings"])


def test_an_attached_lun_refused_for_its_wwid_reports_what_is_attached(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run(fake, lun="1")
    outcome = run(fake, lun="1", expected_wwid=wwid_of(5))
    assert outcome.error is not None and outcome.result["failed_luns"] == ["1"]
    one = entry(outcome, "1")
    assert one["state"] == "failed" and one["wwid"] == wwid_of(1) and one["size_bytes"] == 2097152 * 512
    assert one["dm"]["uuid"] == f"mpath-{wwid_of(1)}" and one["dm"]["slaves"] == ["sda", "sdb"]
    assert one["by_id"] == f"/dev/disk/by-id/dm-uuid-mpath-{wwid_of(1)}"
    # a LUN this run attached and rolled back is not there: nothing to report
    rolled = run(fake, luns=[{"lun": 2, "expected_wwid": wwid_of(6)}])
    two = entry(rolled, "2")
    assert two["state"] == "failed" and two["hctl"] == [] and two["wwid"] is None and two["by_id"] is None


def test_lu_identity_and_the_refusal_text() -> None:
    assert attach.detach_identity_refusal(given="3", devices=(), expected_wwid=wwid_of(3)) == ""
    identity = attach.LuIdentity(wwids=(wwid_of(1),), expected=None)
    assert identity.agree and not identity.mismatch
    assert attach.LuIdentity(wwids=("", wwid_of(1)), expected=None).known == (wwid_of(1),)
    assert attach.LuIdentity(wwids=(wwid_of(1),), expected=wwid_of(2)).mismatch


def test_check_mode_fails_an_attached_lun_with_another_wwid_like_the_real_run(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run(fake, lun="1")
    fake.writes.clear()
    check = run(fake, lun="1", expected_wwid=wwid_of(5), check=True)
    real = run(fake, lun="1", expected_wwid=wwid_of(5))
    assert check.error is not None and real.error is not None and check.error.msg == real.error.msg
    assert check.result["failed_luns"] == real.result["failed_luns"] == ["1"]
    assert entry(check, "1")["wwid"] == entry(real, "1")["wwid"] == wwid_of(1)
    assert entry(check, "1")["dm"]["uuid"] == f"mpath-{wwid_of(1)}"
    assert fake.writes == [] and check.result["changed"] is False
    assert run(fake, lun="1", expected_wwid=wwid_of(1), check=True).error is None
