# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The attach/detach procedure over a fake host (fake array, iscsid, SCSI midlayer and multipathd as data).

Each case is data: the world before, the request, and what the result and the world after must show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _attach as attach
from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import read_snapshot
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fake_host import (
    IQN,
    IQN_B,
    FakeHost,
    wwid_of,
)

P1, P2 = "127.0.0.1:3260", "127.0.0.2:3260"
LUNS = {IQN: {n: wwid_of(n) for n in range(8)}}


def world(tmp_path: Path, **kwargs: Any) -> FakeHost:
    kwargs.setdefault("luns", {k: dict(v) for k, v in LUNS.items()})
    kwargs.setdefault("portals", {P1: [IQN], P2: [IQN]})
    return FakeHost(tmp_path, **kwargs)


def request(**params: Any) -> attach.Request:
    params.setdefault("target", IQN)
    params.setdefault("portals", ["127.0.0.1", "127.0.0.2"])
    params.setdefault("timeout", 10)
    if "lun" not in params and "luns" not in params:
        params["lun"] = "1"
    return attach.build_request(params, resolver=resolve)


def resolve(name: str) -> List[str]:
    if name != "localhost":
        raise OSError(-2, "Name or service not known")
    return ["127.0.0.1", "::1"]


def run(fake: FakeHost, *, state: str = "present", check: bool = False, **params: Any) -> attach.Outcome:
    work = attach.detach if state == "absent" else attach.attach
    return work(fake.host(), request(state=state, **params), check=check, timings={})


def scans(fake: FakeHost) -> List[str]:
    return [f"{path.split('/')[3]} {text}" for path, text in fake.writes if path.endswith("/scan")]


def deletes(fake: FakeHost) -> List[str]:
    return [path.split("/")[3] for path, _text in fake.writes if path.endswith("/delete")]


def entry(outcome: attach.Outcome, lun: str) -> Dict[str, Any]:
    found: Dict[str, Any] = next(e for e in outcome.result["luns"] if e["lun"] == lun)
    return found


# ---------------------------------------------------------------------------------------------------------
# attach


def test_fresh_host_several_luns_one_scan_write_per_lun_and_session(tmp_path: Path) -> None:
    fake = world(tmp_path)
    outcome = run(fake, luns=[1, "2", {"lun": 3, "expected_wwid": wwid_of(3)}])
    assert outcome.error is None, outcome.error
    result = outcome.result
    assert result["changed"] is True
    assert sorted(scans(fake)) == sorted(f"host{h} 0 0 {lun}" for h in (2, 3) for lun in (1, 2, 3))
    assert [e["state"] for e in result["luns"]] == ["attached"] * 3
    for lun in (1, 2, 3):
        item = entry(outcome, str(lun))
        assert item["hctl"] == [f"2:0:0:{lun}", f"3:0:0:{lun}"]
        assert item["wwid"] == wwid_of(lun)
        assert item["dm"]["uuid"] == f"mpath-{wwid_of(lun)}" and len(item["dm"]["slaves"]) == 2
        assert item["by_id"] == f"/dev/disk/by-id/dm-uuid-mpath-{wwid_of(lun)}"
        assert all(d["new"] for d in item["devices"])
    assert result["logged_in"] == [P1, P2]
    assert {(n["portal"], n["create"]) for n in result["nodes"]} == {(P1, True), (P2, True)}
    assert all(fake.nodes[(IQN, p)]["node.session.scan"] == "manual" for p in (P1, P2))
    assert not any(lun in (0, 4, 5, 6, 7) for lun in [int(d["hctl"].split(":")[3]) for d in fake.devices])
    # the same call again changes nothing and writes nothing
    fake.writes.clear()
    again = run(fake, luns=[1, "2", {"lun": 3, "expected_wwid": wwid_of(3)}])
    assert again.error is None and again.result["changed"] is False
    assert fake.writes == [] and again.result["logged_in"] == [] and again.result["nodes"] == []
    assert not any(d["new"] for e in again.result["luns"] for d in e["devices"])


def test_an_offline_path_on_a_logged_in_session_is_set_running_and_rescanned(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run(fake, lun="1")
    device = next(d for d in fake.devices if d["hctl"] == "3:0:0:1")
    device["state"] = "offline"  # error handling gave up on it during a session outage; the session is back
    fake.rebuild()
    fake.writes.clear()
    outcome = run(fake, lun="1")
    assert outcome.error is None and outcome.result["changed"] is True
    assert fake.writes == [
        ("/class/scsi_device/3:0:0:1/device/state", "running\n"),
        ("/class/scsi_device/3:0:0:1/device/rescan", "1"),
    ]
    assert device["state"] == "running" and scans(fake) == []
    assert any("3:0:0:1 was offline" in w for w in outcome.result["warnings"])


def test_records_that_exist_keep_their_settings_but_get_manual_scan(tmp_path: Path) -> None:
    """os-brick's record (automatic startup after its login, its own retries) is not rewritten (issue 12)."""
    fake = world(tmp_path)
    theirs = {"node.session.scan": "auto", "node.startup": "automatic", "node.session.initial_login_retry_max": "8"}
    fake.nodes[(IQN, P1)] = dict(theirs)
    outcome = run(fake, lun="1")
    assert outcome.error is None
    assert fake.nodes[(IQN, P1)] == {**theirs, "node.session.scan": "manual"}
    assert fake.nodes[(IQN, P2)]["node.startup"] == "manual"  # created by this run
    assert fake.nodes[(IQN, P2)]["node.session.initial_login_retry_max"] == "2"
    changed = {n["portal"]: n["update_keys"] for n in outcome.result["nodes"]}
    assert changed[P1] == ["node.session.scan"]
    explicit = run(fake, lun="1", node_startup="manual")
    assert fake.nodes[(IQN, P1)]["node.startup"] == "manual"
    assert [n["update_keys"] for n in explicit.result["nodes"]] == [["node.startup"]]


def test_check_mode_on_a_fresh_host_predicts_and_writes_nothing(tmp_path: Path) -> None:
    fake = world(tmp_path)
    outcome = run(fake, check=True, luns=[1, 2])
    assert outcome.error is None
    assert outcome.result["changed"] is True
    assert outcome.result["logged_in"] == [P1, P2]
    assert [e["state"] for e in outcome.result["luns"]] == ["absent", "absent"]
    assert fake.writes == [] and fake.nodes == {} and fake.sessions == []
    assert not any("--login" in call or "new" in call or "update" in call for call in fake.calls)


def test_check_mode_with_sessions_lists_the_scans_that_would_be_written(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run(fake, lun="1")
    fake.writes.clear()
    outcome = run(fake, check=True, luns=[1, 4])
    assert outcome.result["changed"] is True
    assert [w["line"] for w in outcome.result["scanned"]] == ["0 0 4", "0 0 4"]
    assert [e["state"] for e in outcome.result["luns"]] == ["attached", "absent"]
    assert fake.writes == []


def test_expected_wwid_mismatch_on_an_attached_lun_changes_nothing_and_gives_no_stale_advice(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run(fake, lun="1")
    fake.writes.clear()
    outcome = run(fake, lun="1", expected_wwid=wwid_of(5))
    assert outcome.error is not None
    assert f"carries WWID {wwid_of(1)}, not the expected {wwid_of(5)}" in outcome.error.msg
    assert "stale_device" not in outcome.error.msg and "reused" not in outcome.error.msg
    assert fake.writes == []  # nothing deleted, nothing scanned again
    assert len(fake.devices) == 2 and len(fake.maps) == 1 and len(fake.sessions) == 2
    assert outcome.result["rolled_back"] == []
    assert entry(outcome, "1")["state"] == "failed"


def test_one_failing_lun_is_rolled_back_alone(tmp_path: Path) -> None:
    fake = world(tmp_path)
    outcome = run(fake, luns=[1, {"lun": 2, "expected_wwid": wwid_of(6)}, 3])
    assert outcome.error is not None
    assert outcome.error.msg.startswith("LUN 2: the LUN carries WWID")
    assert outcome.error.details["failed_luns"] == ["2"]
    assert [e["state"] for e in outcome.result["luns"]] == ["attached", "failed", "attached"]
    assert entry(outcome, "2")["msg"].startswith("the LUN carries WWID")
    luns_left = sorted({int(d["hctl"].split(":")[3]) for d in fake.devices})
    assert luns_left == [1, 3]
    assert {m["uuid"] for m in fake.maps} == {f"mpath-{wwid_of(1)}", f"mpath-{wwid_of(3)}"}
    assert "flushed map" in " ".join(outcome.result["rolled_back"])
    assert len(fake.sessions) == 2  # the other LUNs use them


def test_waves_scan_the_next_luns_only_once_the_maps_of_the_last_ones_are_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(attach, "WAVE", 2)
    fake = world(tmp_path, auto_map=False, map_every=1.0)
    maps_at_scan: List[int] = []
    write = fake.write

    def counting_write(path: str, text: str) -> None:
        if path.endswith("/scan"):
            maps_at_scan.append(len(fake.maps))
        write(path, text)

    fake.write = counting_write  # type: ignore[method-assign]
    outcome = run(fake, luns=[1, {"lun": 2, "expected_wwid": wwid_of(6)}, 3, 4, 5])
    assert outcome.error is not None and outcome.error.details["failed_luns"] == ["2"]
    assert [e["state"] for e in outcome.result["luns"]] == ["attached", "failed", "attached", "attached", "attached"]
    # two scan writes per LUN (one per session); wave 2 starts once LUN 1's map is there (LUN 2 failed its
    # identity check: not waited for), wave 3 once those of 3 and 4 are (multipathd built LUN 2's meanwhile;
    # the rollback flushes it at the end)
    assert maps_at_scan == [0, 0, 0, 0, 1, 1, 1, 1, 4, 4]
    assert len(outcome.result["scanned"]) == 10
    assert sorted({int(d["hctl"].split(":")[3]) for d in fake.devices}) == [1, 3, 4, 5]
    assert outcome.result["timings"]["map"] >= 3.0  # the fake multipathd's three maps waited for, one a second


def test_a_map_multipathd_builds_during_the_rollback_is_flushed_too(tmp_path: Path) -> None:
    """The identity check fails at once; multipathd builds the refused LU's map a second later, while the
    rollback runs (seen in the lab: 'left sde: dm dm-2 (mpathc) on sde'): the rollback flushes it."""
    fake = world(tmp_path, auto_map=False, map_every=1.0)
    proc = tmp_path / "proc" / "2900"
    (proc / "fd").mkdir(parents=True)
    (proc / "comm").write_text("(udev-worker)\n")
    start = fake.clock.now

    def udev() -> None:  # holds both new devices open for the first 2 s, while the map is being built
        links = [proc / "fd" / str(i) for i in range(len(fake.devices))]
        if fake.clock.now - start < 2:
            for link, device in zip(links, fake.devices):
                if not link.is_symlink():
                    link.symlink_to("/dev/" + device["name"])
        else:
            for link in (proc / "fd").iterdir():
                link.unlink()

    fake.clock.on_sleep.append(udev)
    udev()
    outcome = run(fake, lun="3", expected_wwid=wwid_of(5))
    assert outcome.error is not None and "not the expected" in outcome.error.msg
    assert fake.devices == [] and fake.maps == [] and fake.sessions == []
    assert not any(x.startswith("left") for x in outcome.result["rolled_back"]), outcome.result["rolled_back"]


def test_all_luns_failing_roll_back_sessions_and_records_this_run_created(tmp_path: Path) -> None:
    fake2 = world(tmp_path, luns={IQN: {}})  # the array presents neither LUN to this initiator
    fake2.nodes[(IQN, P2)] = {"node.session.scan": "manual", "node.startup": "manual"}
    start = fake2.clock.now
    failed = run(fake2, luns=[6, 7], timeout=30)
    assert failed.error is not None
    # the scans of logged-in sessions probe inside the write: nothing there means not presented, no wait
    assert failed.error.msg.startswith(
        "LUN 6: the scan of 2:0:0:6 (session 1, 127.0.0.1:3260 " + IQN + "), 3:0:0:6 (session 2, 127.0.0.2:3260 "
    ), failed.error.msg
    assert "created nothing while the session was logged in: the array does not present LUN 6" in failed.error.msg
    assert fake2.clock.now - start < 5, fake2.clock.now - start
    assert fake2.sessions == []  # logged out again
    assert list(fake2.nodes) == [(IQN, P2)]  # the record that existed before stays
    assert any(x.startswith("logged out of 127.0.0.1:3260") for x in failed.result["rolled_back"])
    assert "removed node record 127.0.0.1:3260 (" + IQN + ")" in failed.result["rolled_back"]


def test_per_portal_targets_one_lun_two_target_names_one_map(tmp_path: Path) -> None:
    luns = {IQN: {4: wwid_of(4)}, IQN_B: {4: wwid_of(4)}}
    fake = world(tmp_path, luns=luns, portals={P1: [IQN], P2: [IQN_B]})
    portals = [{"portal": "127.0.0.1", "target": IQN}, {"portal": "127.0.0.2", "target": IQN_B}]
    outcome = run(fake, target=None, portals=portals, lun="4")
    assert outcome.error is None, outcome.error
    item = entry(outcome, "4")
    assert item["hctl"] == ["2:0:0:4", "3:0:0:4"] and len(item["dm"]["slaves"]) == 2
    assert {s["target"] for s in outcome.result["sessions"]} == {IQN, IQN_B}
    # detach spans both target names and logs out of both
    gone = run(fake, state="absent", target=None, portals=portals, lun="4")
    assert gone.error is None and fake.devices == [] and fake.sessions == []
    assert gone.result["logged_out"] == [P1, P2]


def test_a_single_entry_of_luns_is_named_in_the_error(tmp_path: Path) -> None:
    fake = world(tmp_path)
    outcome = run(fake, luns=[{"lun": 2, "expected_wwid": wwid_of(5)}])
    assert outcome.error is not None and outcome.error.msg.startswith("LUN 2: the LUN carries WWID")


def test_a_failed_attach_after_discovery_removes_the_discovery_record_it_created(tmp_path: Path) -> None:
    fake = world(tmp_path, down=[P1])
    outcome = run(fake, lun="1", discover=True, portals=["127.0.0.1"])
    assert outcome.error is not None
    assert fake.discovery == [] and "removed discovery record 127.0.0.1:3260" in outcome.result["rolled_back"]
    assert [e["lun"] for e in outcome.result["luns"]] == ["1"]


def test_a_udev_worker_holding_a_new_device_is_waited_for(tmp_path: Path) -> None:
    """udev opens a new device for a moment: the rollback waits for it instead of leaving the device."""
    fake = world(tmp_path, auto_map=False, map_on_add=False)
    proc = tmp_path / "proc" / "2900"
    (proc / "fd").mkdir(parents=True)
    (proc / "comm").write_text("(udev-worker)\n")
    opened: List[int] = []

    def udev() -> None:
        if fake.devices and not opened:  # opens the first device after the scan, closes it 3 s later
            (proc / "fd" / "3").symlink_to("/dev/" + fake.devices[0]["name"])
            opened.append(int(fake.clock.now))
        elif opened and fake.clock.now > opened[0] + 3 and (proc / "fd" / "3").is_symlink():
            (proc / "fd" / "3").unlink()

    fake.clock.on_sleep.append(udev)
    outcome = run(fake, lun="1", timeout=8)
    assert outcome.error is not None and "no multipath map" in outcome.error.msg
    assert fake.devices == [] and fake.sessions == []
    assert sorted(x for x in outcome.result["rolled_back"] if x.startswith("deleted")) == ["deleted sda", "deleted sdb"]


def test_per_portal_targets_with_different_lus_fail_the_identity_check(tmp_path: Path) -> None:
    luns = {IQN: {4: wwid_of(4)}, IQN_B: {4: wwid_of(4, generation=1)}}
    fake = world(tmp_path, luns=luns, portals={P1: [IQN], P2: [IQN_B]}, auto_map=False)
    portals = [{"portal": "127.0.0.1", "target": IQN}, {"portal": "127.0.0.2", "target": IQN_B}]
    outcome = run(fake, target=None, portals=portals, lun="4")
    assert outcome.error is not None and "different or missing WWIDs" in outcome.error.msg
    assert fake.devices == [] and fake.sessions == []  # everything this run created is gone


def test_a_session_in_recovery_is_named_when_the_wait_ends(tmp_path: Path) -> None:
    fake = world(tmp_path)
    fake.login(IQN, P1)
    fake.login(IQN, P2, state="FAILED")
    outcome = run(fake, lun="1", timeout=2)
    assert outcome.error is not None
    assert "timed out after 2s waiting for a logged-in session on: 127.0.0.2:3260" in outcome.error.msg
    assert "session 2 is FAILED (in recovery" in outcome.error.msg
    assert not any("--login" in call for call in fake.calls)  # the session exists: no second login


def test_an_unknown_target_is_not_reported_as_an_unreachable_portal(tmp_path: Path) -> None:
    fake = world(tmp_path)
    outcome = run(fake, target="iqn.2003-01.org.lunsafe.lab:nope", portals=["127.0.0.1"])
    assert outcome.error is not None
    assert "does not offer this target (it offers: " + IQN + ")" in outcome.error.msg
    assert outcome.error.details["rc_name"] == "target_not_found"
    assert fake.nodes == {}  # the record this run created was removed again


def test_an_unreachable_portal_says_so(tmp_path: Path) -> None:
    fake = world(tmp_path, down=[P2])
    outcome = run(fake, lun="1")
    assert outcome.error is not None
    assert "login to " + IQN + " at 127.0.0.2:3260 failed" in outcome.error.msg
    assert "did not answer in time" in outcome.error.msg
    assert fake.sessions == []  # the session on P1 this run made is logged out again
    assert not any(call[:3] == ["iscsiadm", "-m", "discovery"] for call in fake.calls)  # no TCP: no probe
    assert "error" in outcome.result["timings"] and "rollback" in outcome.result["timings"]


def test_discover_on_an_attached_lun_reports_what_it_added(tmp_path: Path) -> None:
    fake = world(tmp_path, portals={P1: [IQN, IQN_B], P2: [IQN]})
    run(fake, lun="1")
    outcome = run(fake, lun="1", discover=True)
    assert outcome.error is None
    assert outcome.result["changed"] is True
    assert outcome.result["discovered"] == [{"target": IQN_B, "portal": P1}]
    assert fake.nodes[(IQN_B, P1)]["node.session.scan"] == "manual"
    again = run(fake, lun="1", discover=True)
    assert again.result["discovered"] == [] and again.result["changed"] is False


def test_localhost_stands_for_every_address_it_resolves_to(tmp_path: Path) -> None:
    fake = world(tmp_path, portals={P1: [IQN], "[::1]:3260": [IQN]})
    outcome = run(fake, portals=["localhost"], lun="2")
    assert outcome.error is None, outcome.error
    assert [s["portal"] for s in outcome.result["sessions"]] == [P1, "[::1]:3260"]
    assert len(entry(outcome, "2")["hctl"]) == 2


def test_a_portal_without_port_is_port_3260_never_3261(tmp_path: Path) -> None:
    fake = world(tmp_path, portals={P1: [IQN], "127.0.0.1:3261": [IQN]})
    fake.login(IQN, "127.0.0.1:3261")
    outcome = run(fake, portals=["127.0.0.1"], lun="1")
    assert outcome.error is None
    assert outcome.result["logged_in"] == [P1]  # a new session on 3260; the one on 3261 is not it
    assert [s["portal"] for s in outcome.result["sessions"]] == [P1]
    assert entry(outcome, "1")["hctl"] == ["3:0:0:1"]


def test_two_spellings_of_one_portal_are_used_once_with_a_warning(tmp_path: Path) -> None:
    fake = world(tmp_path)
    outcome = run(fake, portals=["127.0.0.1", "127.0.0.1:3260"], lun="1")
    assert outcome.error is None
    assert outcome.result["logged_in"] == [P1]
    assert outcome.result["warnings"] == [
        "portals: '127.0.0.1:3260' and '127.0.0.1' are the same portal 127.0.0.1:3260; using it once"
    ]


def test_a_stale_device_is_refused_then_replaced_when_allowed(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run(fake, lun="1")
    # the array gives LUN 1 to another LU: the kernel and the map keep the old WWID, the LU answers anew
    fake.luns[IQN][1] = wwid_of(1, generation=2)
    refused = run(fake, lun="1")
    assert refused.error is not None and "stale_device=replace" in refused.error.msg
    assert "the LU now answers with WWID " + wwid_of(1, generation=2) in str(refused.error.details["stale"])
    assert entry(refused, "1")["state"] == "failed"
    # with replace: refused while the old map holds the devices
    held = run(fake, lun="1", stale_device="replace")
    assert held.error is not None and "in use" in held.error.msg and "multipath_flush" in held.error.msg
    fake.maps.clear()
    fake.rebuild()
    replaced = run(fake, lun="1", stale_device="replace")
    assert replaced.error is None, replaced.error
    assert entry(replaced, "1")["wwid"] == wwid_of(1, generation=2)  # the array's LU behind LUN 1 now
    assert [e["name"] for e in entry(replaced, "1")["stale_replaced"]] == ["sda", "sdb"]
    assert replaced.result["changed"] is True and sorted(deletes(fake)) == ["2:0:0:1", "3:0:0:1"]


def test_map_wait_hands_the_paths_to_multipathd_after_the_grace(tmp_path: Path) -> None:
    fake = world(tmp_path, auto_map=False)
    outcome = run(fake, lun="1")
    assert outcome.error is None
    assert outcome.result["multipath_actions"][0] == f"multipath -a {wwid_of(1)}"
    assert entry(outcome, "1")["dm"] is not None


def test_a_wwid_already_in_the_wwids_file_is_not_added_again(tmp_path: Path) -> None:
    """multipathd keeps a listed WWID's paths out of a map until it is handed them: only ``add path`` is needed
    (``multipath -a`` of a listed WWID changes nothing and costs a process)."""
    fake = world(tmp_path, auto_map=False)
    (tmp_path / "wwids").write_text(f"# multipath wwids\n/{wwid_of(1)}/\n", encoding="utf-8")
    outcome = run(fake, luns=[1, 2], timeout=30)
    assert outcome.error is None, outcome.error
    assert outcome.result["multipath_actions"] == [
        "multipathd add path sda",
        "multipathd add path sdb",
        f"multipath -a {wwid_of(2)}",
        "multipathd add path sdc",
        "multipathd add path sdd",
    ]
    assert all(e["dm"] is not None for e in outcome.result["luns"])


def test_maps_that_keep_coming_are_not_pushed(tmp_path: Path) -> None:
    """multipathd builds one map every 3 s: 6 LUNs take 18 s, more than the grace, but it never stalls, so
    nothing is handed over (asking would only queue more work behind its events)."""
    fake = world(tmp_path, auto_map=False, map_every=3.0)
    outcome = run(fake, luns=[0, 1, 2, 3, 4, 5], timeout=30)
    assert outcome.error is None, outcome.error
    assert outcome.result["multipath_actions"] == []
    assert all(e["dm"] is not None for e in outcome.result["luns"])
    assert outcome.result["timings"]["map"] >= 15


def test_a_stalled_multipathd_gets_the_rest_handed_over(tmp_path: Path) -> None:
    """multipathd builds nothing by itself (find_multipaths): after the grace the waiting LUNs are handed
    over, once, and their maps come."""
    fake = world(tmp_path, auto_map=False)
    stalled = run(fake, luns=[1, 2], timeout=30)
    assert stalled.error is None
    assert stalled.result["multipath_actions"] == [
        f"multipath -a {wwid_of(1)}",
        "multipathd add path sda",
        "multipathd add path sdb",
        f"multipath -a {wwid_of(2)}",
        "multipathd add path sdc",
        "multipathd add path sdd",
    ]
    assert 5 <= stalled.result["timings"]["map"] < 7


def test_a_map_that_never_comes_fails_the_lun_and_rolls_it_back(tmp_path: Path) -> None:
    fake = world(tmp_path, auto_map=False, map_on_add=False)
    outcome = run(fake, lun="1", timeout=8)
    assert outcome.error is not None and f"no multipath map for WWID {wwid_of(1)}" in outcome.error.msg
    assert fake.devices == [] and fake.sessions == []


def test_rollback_removes_only_what_this_run_scanned(tmp_path: Path) -> None:
    """While the map wait runs, the device of LUN 1 on the first session is replaced by another (another run
    deleted and scanned it once the lock was gone): the rollback deletes this run's other path, not that one."""
    fake = world(tmp_path, auto_map=False, map_on_add=False)
    replaced: List[str] = []

    def another_run() -> None:
        if replaced or fake.clock.now < 1003:
            return
        first = next(d for d in fake.devices if d["hctl"] == "2:0:0:1")
        fake.devices.remove(first)
        session = next(s for s in fake.sessions if s["host"] == 2)
        replaced.append(fake.attach_device(session, 1)["name"])

    fake.clock.on_sleep.append(another_run)
    outcome = run(fake, lun="1", timeout=8)
    assert outcome.error is not None and "no multipath map" in outcome.error.msg
    assert replaced == ["sdc"]
    assert [d["name"] for d in fake.devices] == ["sdc"]  # the other run's device stays
    assert deletes(fake) == ["3:0:0:1"]  # sdb, this run's; sda was already gone
    assert "kept the session to 127.0.0.1:3260 (" + IQN + "): it carries sdc" in outcome.result["rolled_back"]
    assert [s["host"] for s in fake.sessions] == [2]  # the session without a device was logged out


def test_multipathd_down_fails_before_anything_is_touched(tmp_path: Path) -> None:
    fake = world(tmp_path, multipathd=False)
    down = run(fake, lun="1")
    assert down.error is not None and "multipath=false" in down.error.msg
    assert fake.calls == [["multipathd", "show", "status"]]
    assert "total" in down.result["timings"] and [e["state"] for e in down.result["luns"]] == ["absent"]
    without = run(fake, lun="1", multipath=False)
    assert without.error is None and entry(without, "1")["dm"] is None
    assert entry(without, "1")["by_id"] == f"/dev/disk/by-id/scsi-{wwid_of(1)}"


# ---------------------------------------------------------------------------------------------------------
# detach


def test_detach_flushes_removes_and_logs_out_only_sessions_without_other_luns(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run(fake, luns=[1, 2, 3])
    fake.writes.clear()
    check = run(fake, state="absent", check=True, luns=[1, 2])
    assert check.error is None and check.result["changed"] is True and fake.writes == []
    assert [step["action"] for step in entry(check, "1")["plan"]][:2] == ["flush_map", "delete_path"]
    outcome = run(fake, state="absent", luns=[1, 2])
    assert outcome.error is None
    assert sorted(deletes(fake)) == ["2:0:0:1", "2:0:0:2", "3:0:0:1", "3:0:0:2"]
    assert [e["state"] for e in outcome.result["luns"]] == ["detached", "detached"]
    assert entry(outcome, "1")["removed"]["map"] == "mpatha"
    assert outcome.result["logged_out"] == []  # LUN 3 still uses both sessions
    assert len(fake.sessions) == 2 and {m["uuid"] for m in fake.maps} == {f"mpath-{wwid_of(3)}"}
    last = run(fake, state="absent", lun="3")
    assert last.result["logged_out"] == [P1, P2] and last.result["nodes_removed"] == [P1, P2]
    assert fake.sessions == [] and fake.nodes == {}
    again = run(fake, state="absent", lun="3")
    assert again.error is None and again.result["changed"] is False


def test_detach_refuses_a_mounted_lun_without_force_and_changes_nothing(tmp_path: Path) -> None:
    fake = world(tmp_path, auto_map=False, map_on_add=False)
    run(fake, luns=[1, 2], multipath=False)
    fake.mounts.append("sda")
    fake.rebuild()
    fake.writes.clear()
    refused = run(fake, state="absent", luns=[1, 2], multipath=False)
    assert refused.error is not None
    assert "refusing to detach, nothing was changed: LUN 1: in use: sda mounted on /mnt/sda" in refused.error.msg
    assert fake.writes == [] and len(fake.devices) == 4
    forced = run(fake, state="absent", luns=[1, 2], multipath=False, force=True)
    assert forced.error is None and fake.devices == [] and fake.sessions == []


def test_keep_going_removes_what_it_can_and_fails_at_the_end_naming_each_failure(tmp_path: Path) -> None:
    fake = world(tmp_path, auto_map=False, map_on_add=False)
    run(fake, luns=[1, 2], multipath=False)
    stuck = next(d for d in fake.devices if d["hctl"].endswith(":1") and d["sid"] == 1)
    fake.stuck.append(stuck["name"])
    fake.writes.clear()
    stopped = run(fake, state="absent", luns=[1, 2], multipath=False, force=True)
    assert stopped.error is not None and stuck["name"] in stopped.error.msg
    assert len(fake.devices) == 4 and len(fake.sessions) == 2  # the first failure stopped it: nothing removed
    fake.writes.clear()
    outcome = run(fake, state="absent", luns=[1, 2], multipath=False, force=True, keep_going=True)
    assert outcome.error is not None
    assert outcome.error.msg.startswith("LUN 1: ") and stuck["name"] in outcome.error.msg
    assert outcome.error.details["failed_luns"] == ["1"]
    assert [d["name"] for d in fake.devices] == [stuck["name"]]  # everything else went
    one, two = entry(outcome, "1"), entry(outcome, "2")
    assert one["state"] == "failed" and one["hctl"] == [stuck["hctl"]] and len(one["removed"]["paths"]) == 1
    assert two["state"] == "detached" and len(two["removed"]["paths"]) == 2
    assert outcome.result["changed"] is True
    # the session still carrying the stuck device stays; the other one had nothing left and went
    assert outcome.result["logged_out"] == [P2] and [s["sid"] for s in fake.sessions] == [1]


def test_keep_going_goes_on_when_a_map_cannot_be_flushed(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run(fake, luns=[1, 2])
    fake.stuck.extend(d["name"] for d in fake.devices if d["hctl"].endswith(":1"))
    outcome = run(fake, state="absent", luns=[1, 2], force=True, keep_going=True, logout=False)
    assert outcome.error is not None and outcome.error.details["failed_luns"] == ["1"]
    assert entry(outcome, "2")["state"] == "detached" and entry(outcome, "1")["state"] == "failed"
    assert sorted(d["hctl"][-1] for d in fake.devices) == ["1", "1"]


def test_keep_going_is_for_a_forced_detach_only() -> None:
    for params in ({"keep_going": True}, {"keep_going": True, "state": "absent"}, {"keep_going": True, "force": True}):
        with pytest.raises(InputError) as raised:
            request(**params)
        assert "keep_going is for a forced detach only" in raised.value.msg
    assert request(keep_going=True, force=True, state="absent").keep_going is True


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lun": "1", "expected_wwid": "xyz"}, "expected_wwid 'xyz' is not a WWID"),
        ({"luns": [1, "0x1"]}, "luns names LUN 1 twice"),
        ({"luns": [{"lun": 1, "wwid": "x"}]}, "each entry of luns is a LUN or a dict"),
        ({"luns": []}, "luns must name at least one LUN"),
        ({"luns": [1], "expected_wwid": wwid_of(1)}, "expected_wwid goes with lun"),
        ({"lun": "-"}, "invalid lun"),
        ({"portals": []}, "portals must name at least one portal"),
        ({"portals": ["nowhere.invalid"]}, "host name 'nowhere.invalid' does not resolve"),
        ({"portals": [{"target": IQN}]}, "each entry of portals is a portal or a dict"),
        ({"target": None, "portals": ["127.0.0.1"]}, "no target name for portal(s) 127.0.0.1"),
        ({"portals": [{"portal": "127.0.0.1", "target": IQN_B}]}, "names target"),
        ({"target": "not a name"}, "target"),
        ({"timeout": 0}, "timeout must be greater than 0 seconds"),
        ({"chap_username": "u"}, "chap_username and chap_password go together"),
        ({"chap_username": "u", "chap_password": "p", "chap_username_in": "x"}, "go together"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(params: Dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as raised:
        request(**params)
    assert message in raised.value.msg


def test_same_portal_with_two_targets_is_refused() -> None:
    with pytest.raises(InputError) as raised:
        request(
            target=None, portals=[{"portal": "127.0.0.1", "target": IQN}, {"portal": "127.0.0.1:3260", "target": IQN_B}]
        )
    assert "given twice with different targets" in raised.value.msg


def test_secrets_and_request_properties() -> None:
    req = request(chap_username="u", chap_password="Sess-1", chap_username_in="t", chap_password_in="Mut-2")
    assert req.secrets() == ["Sess-1", "Mut-2"]
    assert req.targets == (IQN,)
    assert attach.validate_wwid("naa.6001405" + "a" * 25, option="x") == "36001405" + "a" * 25


def test_expected_spellings() -> None:
    assert attach.expected(None) is None
    assert attach.expected("0x6001405AA") == "36001405aa"
    assert attach.expected("3600140ABC") == "3600140abc"


def snapshot_of(fake: FakeHost) -> Optional[Any]:
    return read_snapshot(sysfs_root=str(fake.root))


def test_a_lun_presented_through_one_portal_only_fails_at_once_naming_the_other(tmp_path: Path) -> None:
    luns = {IQN: {4: wwid_of(4)}, IQN_B: {}}
    fake = world(tmp_path, luns=luns, portals={P1: [IQN], P2: [IQN_B]}, auto_map=False)
    portals = [{"portal": "127.0.0.1", "target": IQN}, {"portal": "127.0.0.2", "target": IQN_B}]
    start = fake.clock.now
    outcome = run(fake, target=None, portals=portals, lun="4", timeout=60)
    assert outcome.error is not None
    assert "the scan of 3:0:0:4 (session 2, 127.0.0.2:3260 " + IQN_B + ") created nothing" in outcome.error.msg
    assert "2:0:0:4" not in outcome.error.msg  # the path that has it is not blamed
    assert fake.clock.now - start < 5
    assert fake.devices == [] and fake.sessions == []  # the device of the other path is rolled back


def test_a_slow_scan_write_is_left_to_the_wait(tmp_path: Path) -> None:
    """A write that took seconds may have met a path recovery that failed the probe: no conclusion from it, the
    wait for the block device decides (and names the timeout)."""
    fake = world(tmp_path, luns={IQN: {}})
    real = fake.write

    def slow(path: str, text: str) -> None:
        if path.endswith("/scan"):
            fake.clock.now += 3  # longer than QUICK_SCAN
        real(path, text)

    fake.write = slow  # type: ignore[method-assign]
    outcome = run(fake, lun="6", timeout=3)
    assert outcome.error is not None
    assert "timed out after 3s waiting for its block device at 2:0:0:6" in outcome.error.msg
    assert "created nothing" not in outcome.error.msg
