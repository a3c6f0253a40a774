# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The journal beside the host lock: entries, resolutions, and runs of the attach procedure that are killed
(a BaseException raised from the sysfs writer stands for SIGKILL: nothing after it runs, no rollback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _attach as attach
from ansible_collections.lunsafe.san.plugins.module_utils import _flush as flush
from ansible_collections.lunsafe.san.plugins.module_utils._journal import (
    DEFAULT_JOURNAL_FILE,
    Journal,
    Trail,
    covers,
    describe_entry,
    journal_for,
    journal_path,
    load_entries,
    resolve,
)
from ansible_collections.lunsafe.san.plugins.module_utils._lock import DEFAULT_LOCK_FILE
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fake_host import IQN, FakeHost, wwid_of

P1, P2 = "127.0.0.1:3260", "127.0.0.2:3260"
BOOT = "boot-1"


class Killed(BaseException):
    """The process is gone: no except clause of the procedure sees this."""


def journal(tmp_path: Path, *, pid: int, boot_id: str = BOOT) -> Journal:
    return Journal(str(tmp_path / "lock.journal"), boot_id=boot_id, pid=pid, now=lambda: "2026-12-02T13:00:00+00:00")


def entries_on_disk(tmp_path: Path) -> List[Dict[str, Any]]:
    path = tmp_path / "lock.journal"
    if not path.exists():
        return []
    data: Dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return list(data["entries"])


def lun_cover(luns: List[int], targets: Any = (IQN,)) -> Any:
    """What iscsi_lun_attach passes to Trail.review: its request's targets and LUNs cover an entry."""
    return lambda entry: covers(entry, module="iscsi_lun_attach", targets=list(targets), luns=luns)


def trail(tmp_path: Path, *, pid: int, op: str = "attach", luns: Any = (1,), **kwargs: Any) -> Trail:
    return Trail(
        journal(tmp_path, pid=pid, boot_id=kwargs.pop("boot_id", BOOT)),
        module="iscsi_lun_attach",
        op=op,
        request={"state": "present", "targets": [IQN], "portals": [P1, P2], "luns": list(luns)},
        **kwargs,
    )


# ---------------------------------------------------------------------------------------------------------
# the file


def test_paths_and_a_lock_file_that_is_not_absolute() -> None:
    assert journal_path("/run/lock/x.lock") == "/run/lock/x.lock.journal"
    # the default lock lives under /run, which a reboot empties: its journal is on disk
    assert journal_path(DEFAULT_LOCK_FILE) == DEFAULT_JOURNAL_FILE == "/var/lib/lunsafe-san/lunsafe-san.lock.journal"
    assert journal_path("/run/lunsafe-san//lunsafe-san.lock") == DEFAULT_JOURNAL_FILE
    default = journal_for(DEFAULT_LOCK_FILE)
    assert default is not None and default.path == DEFAULT_JOURNAL_FILE
    assert journal_for("relative.lock") is None and journal_for(None) is None
    found = journal_for("/run/lock/x.lock")
    assert found is not None and found.path == "/run/lock/x.lock.journal"


def test_a_run_that_writes_nothing_leaves_no_file_and_one_that_ends_removes_its_entry(tmp_path: Path) -> None:
    quiet = trail(tmp_path, pid=10)
    assert quiet.review(lun_cover([1])) == []
    quiet.end(succeeded=True)
    assert not (tmp_path / "lock.journal").exists()
    busy = trail(tmp_path, pid=11)
    busy.review(lun_cover([1]))
    busy.record("login 127.0.0.1:3260")
    busy.record("scan 2:0:0:1")
    (entry,) = entries_on_disk(tmp_path)
    assert entry["pid"] == 11 and entry["done"] == ["login 127.0.0.1:3260", "scan 2:0:0:1"]
    assert entry["boot_id"] == BOOT and entry["request"]["luns"] == [1]
    assert (tmp_path / "lock.journal").stat().st_mode & 0o777 == 0o600
    busy.end(succeeded=False)  # a controlled failure rolled itself back: its entry goes too
    assert not (tmp_path / "lock.journal").exists()


def test_the_first_write_creates_a_missing_journal_directory_root_only(tmp_path: Path) -> None:
    folder = tmp_path / "var-lib" / "lunsafe-san"
    journal = Journal(str(folder / "j.journal"), boot_id=BOOT, pid=5, now=lambda: "2026-12-05T21:00:00+00:00")
    assert journal.read() == []  # no directory yet: nothing to read, nothing created
    assert not folder.exists()
    run = Trail(journal, module="iscsi_lun_attach", op="attach", request={"state": "present", "luns": [1]})
    run.review(lun_cover([1]))
    run.record("login 127.0.0.1:3260")
    assert folder.stat().st_mode & 0o777 == 0o700
    assert [e["done"] for e in journal.read()] == [["login 127.0.0.1:3260"]]


def test_an_unreadable_journal_is_kept_aside_and_named(tmp_path: Path) -> None:
    (tmp_path / "lock.journal").write_text("{not json", encoding="utf-8")
    run = trail(tmp_path, pid=12)
    assert run.review(lun_cover([1])) == []
    assert (tmp_path / "lock.journal.bad").read_text(encoding="utf-8") == "{not json"
    assert not (tmp_path / "lock.journal").exists()
    assert run.warnings == [
        f"the journal {tmp_path}/lock.journal could not be read fully: not JSON (Expecting property name enclosed "
        f"in double quotes: line 1 column 2 (char 1)); it was kept as {tmp_path}/lock.journal.bad"
    ]


def test_malformed_entries_are_skipped_and_the_rest_is_kept(tmp_path: Path) -> None:
    good = {"id": "1-a", "module": "iscsi_lun_attach", "op": "attach", "pid": 1, "request": {}, "done": []}
    text = json.dumps({"entries": [good, {"id": 3}, "x"]})
    assert load_entries(text) == ([good], "2 malformed entries skipped")
    assert load_entries("[]") == ([], "no list of entries")
    (tmp_path / "lock.journal").write_text(text, encoding="utf-8")
    assert journal(tmp_path, pid=2).read() == [good]
    assert (tmp_path / "lock.journal").exists()


def test_the_record_of_a_huge_run_is_capped(tmp_path: Path) -> None:
    run = trail(tmp_path, pid=13)
    for n in range(205):
        run.record(f"scan 2:0:0:{n}")
    (entry,) = entries_on_disk(tmp_path)
    assert len(entry["done"]) == 201 and entry["done"][-1] == "... and more writes"


# ---------------------------------------------------------------------------------------------------------
# resolutions


def killed_entry(**overrides: Any) -> Dict[str, Any]:
    entry: Dict[str, Any] = {
        "id": "99-x",
        "module": "iscsi_lun_attach",
        "op": "attach",
        "pid": 99,
        "started": "2026-12-02T12:00:00+00:00",
        "boot_id": BOOT,
        "request": {"state": "present", "targets": [IQN], "portals": [P1, P2], "luns": [1, 2]},
        "done": ["login 127.0.0.1:3260 (iqn)"],
    }
    entry.update(overrides)
    return entry


@pytest.mark.parametrize(
    ("op", "targets", "luns", "boot_id", "expected"),
    [
        ("attach", [IQN], [1, 2, 3], BOOT, "adopted"),
        ("detach", [IQN], [2, 1], BOOT, "removed"),
        ("attach", [IQN], [1], BOOT, "left"),  # LUN 2 of the killed request is not covered
        ("detach", ["iqn.other"], [1, 2], BOOT, "left"),
        ("attach", [IQN], [1, 2], "boot-2", "gone"),
        ("attach", [IQN], [1, 2], "", "adopted"),  # no boot id readable: never taken for another boot
    ],
)
def test_which_run_resolves_an_interrupted_entry(
    op: str, targets: List[str], luns: List[int], boot_id: str, expected: str
) -> None:
    (found,) = resolve([killed_entry()], op=op, covered=lun_cover(luns, targets), boot_id=boot_id)
    assert found["resolution"] == expected


def test_another_module_never_covers_an_entry() -> None:
    assert not covers(killed_entry(), module="scsi_targeted_scan", targets=[IQN], luns=[1, 2])


def test_a_covering_run_that_succeeds_closes_the_entry_and_reports_it(tmp_path: Path) -> None:
    journal(tmp_path, pid=99).write([killed_entry()])
    run = trail(tmp_path, pid=14, luns=[1, 2])
    (found,) = run.review(lun_cover([1, 2]))
    assert found["resolution"] == "adopted" and run.adopted_writes
    run.record("scan 2:0:0:1")
    assert [e["pid"] for e in entries_on_disk(tmp_path)] == [99, 14]
    run.end(succeeded=True)
    assert entries_on_disk(tmp_path) == []
    (reported,) = run.result()
    assert reported == {
        "module": "iscsi_lun_attach",
        "op": "attach",
        "pid": 99,
        "started": "2026-12-02T12:00:00+00:00",
        "request": killed_entry()["request"],
        "done": ["login 127.0.0.1:3260 (iqn)"],
        "resolution": "adopted",
    }
    assert run.warnings == [
        f"a run of iscsi_lun_attach (pid 99, started 2026-12-02T12:00:00+00:00: attach of LUNs [1, 2] of {IQN}) "
        "was interrupted after: login 127.0.0.1:3260 (iqn); this run completed that attach: what it left is "
        "reported as this run's change"
    ]


def test_a_covering_run_that_fails_leaves_the_entry_for_the_next(tmp_path: Path) -> None:
    journal(tmp_path, pid=99).write([killed_entry()])
    run = trail(tmp_path, pid=15, op="detach", luns=[1, 2])
    run.review(lun_cover([1, 2]))
    run.record("flush map mpatha")
    run.end(succeeded=False)
    assert [e["pid"] for e in entries_on_disk(tmp_path)] == [99]
    assert run.result()[0]["resolution"] == "left"
    assert "leaves it alone" in run.warnings[0] and "detach LUNs [1, 2]" in run.warnings[0]


def test_entries_of_a_previous_boot_are_reported_once_and_dropped(tmp_path: Path) -> None:
    journal(tmp_path, pid=99).write([killed_entry(boot_id="boot-0"), killed_entry(id="98-y", pid=98, done=[])])
    run = trail(tmp_path, pid=16, luns=[7])
    found = run.review(lun_cover([7]))
    assert [e["resolution"] for e in found] == ["gone", "left"] and not run.adopted_writes
    run.end(succeeded=False)
    assert [e["pid"] for e in entries_on_disk(tmp_path)] == [98]
    assert "before the last reboot" in run.warnings[0]
    assert "interrupted after: no write" in run.warnings[1]


def test_check_mode_reads_the_journal_and_writes_nothing(tmp_path: Path) -> None:
    journal(tmp_path, pid=99).write([killed_entry()])
    before = (tmp_path / "lock.journal").read_text(encoding="utf-8")
    run = trail(tmp_path, pid=17, luns=[1, 2], read_only=True)
    assert run.review(lun_cover([1, 2]))[0]["resolution"] == "adopted"
    run.record("scan 2:0:0:1")
    run.end(succeeded=True)
    assert (tmp_path / "lock.journal").read_text(encoding="utf-8") == before
    assert "check mode changes nothing" in run.warnings[0]


def test_no_journal_means_no_trail() -> None:
    run = Trail(None, module="iscsi_lun_attach", op="attach", request={})
    assert run.review(lun_cover([1])) == []
    run.record("scan 2:0:0:1")
    run.end(succeeded=True)
    assert run.result() == [] and run.warnings == [] and not run.adopted_writes


def test_describe_entry_without_a_request() -> None:
    text = describe_entry({"module": "m", "op": "attach", "pid": 1, "started": "t", "done": []})
    assert text == "a run of m (pid 1, started t: attach of LUNs None of ) was interrupted after: no write"


# ---------------------------------------------------------------------------------------------------------
# the attach procedure, killed and run again


def world(tmp_path: Path) -> FakeHost:
    sysfs = tmp_path / "host"
    sysfs.mkdir()
    return FakeHost(sysfs, luns={IQN: {n: wwid_of(n) for n in range(4)}}, portals={P1: [IQN], P2: [IQN]})


def request(*, state: str = "present", **params: Any) -> attach.Request:
    params.setdefault("target", IQN)
    params.setdefault("portals", ["127.0.0.1", "127.0.0.2"])
    params.setdefault("timeout", 10)
    params.setdefault("lun", "1")
    return attach.build_request({**params, "state": state}, resolver=lambda name: [name])


def kill_at(fake: FakeHost, suffix: str) -> None:
    """The next sysfs write ending in ``suffix`` kills the run (the write is not made)."""
    real = fake.write

    def write(path: str, text: str) -> None:
        if path.endswith(suffix):
            fake.write = real  # type: ignore[method-assign]
            raise Killed(path)
        real(path, text)

    fake.write = write  # type: ignore[method-assign]


def run_with(fake: FakeHost, tmp_path: Path, *, pid: int, state: str = "present", **params: Any) -> Any:
    req = request(state=state, **params)
    run = Trail(
        journal(tmp_path, pid=pid),
        module="iscsi_lun_attach",
        op="detach" if state == "absent" else "attach",
        request=req.journal_request(state=state),
    )
    work = attach.detach if state == "absent" else attach.attach
    outcome = work(fake.host(), req, check=False, timings={}, trail=run)
    run.end(succeeded=outcome.error is None)
    return outcome, run


def test_an_attach_killed_at_its_scan_is_adopted_and_reported_by_the_same_attach(tmp_path: Path) -> None:
    fake = world(tmp_path)
    kill_at(fake, "/scan")
    with pytest.raises(Killed):
        run_with(fake, tmp_path, pid=100)
    (left,) = entries_on_disk(tmp_path)
    assert left["pid"] == 100 and left["request"]["luns"] == [1]
    assert [w.split(" ")[0] for w in left["done"]] == ["node", "node", "login", "login", "scan", "scan"]
    assert len(fake.sessions) == 2  # the killed run's sessions are there, its LUN is not scanned yet
    outcome, run = run_with(fake, tmp_path, pid=101)
    assert outcome.error is None
    assert outcome.result["changed"] is True and outcome.result["logged_in"] == []
    assert [(e["pid"], e["resolution"]) for e in run.result()] == [(100, "adopted")]
    assert entries_on_disk(tmp_path) == []
    again, run = run_with(fake, tmp_path, pid=102)
    assert again.result["changed"] is False and run.result() == []


def test_an_attach_killed_after_its_scan_is_removed_by_a_detach_and_left_by_another_lun(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run_with(fake, tmp_path, pid=200, lun="2")
    kill_at(fake, "/scan")
    with pytest.raises(Killed):
        run_with(fake, tmp_path, pid=201, lun="1")
    other, run = run_with(fake, tmp_path, pid=202, lun="3")
    assert other.error is None
    assert [(e["pid"], e["resolution"]) for e in run.result()] == [(201, "left")]
    assert [e["pid"] for e in entries_on_disk(tmp_path)] == [201]
    removed, run = run_with(fake, tmp_path, pid=203, state="absent", lun="1")
    assert removed.error is None and removed.result["changed"] is True
    assert [(e["pid"], e["resolution"]) for e in run.result()] == [(201, "removed")]
    assert entries_on_disk(tmp_path) == []


def test_a_detach_killed_at_its_first_delete_is_finished_by_the_same_detach(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run_with(fake, tmp_path, pid=300, luns=[1, 2])
    kill_at(fake, "/delete")
    with pytest.raises(Killed):
        run_with(fake, tmp_path, pid=301, state="absent", luns=[1, 2])
    (left,) = entries_on_disk(tmp_path)
    assert left["op"] == "detach" and left["done"][0].startswith("flush map mpatha and delete its paths")
    outcome, run = run_with(fake, tmp_path, pid=302, state="absent", luns=[1, 2])
    assert outcome.error is None and outcome.result["changed"] is True
    assert [(e["pid"], e["resolution"]) for e in run.result()] == [(301, "removed")]
    assert fake.sessions == [] and fake.devices == [] and entries_on_disk(tmp_path) == []


def test_check_mode_predicts_the_adoption_as_a_change(tmp_path: Path) -> None:
    fake = world(tmp_path)
    kill_at(fake, "/scan")
    with pytest.raises(Killed):
        run_with(fake, tmp_path, pid=400)
    fake.writes.clear()
    req = request()
    run = Trail(journal(tmp_path, pid=401), module="iscsi_lun_attach", op="attach", request={}, read_only=True)
    outcome = attach.attach(fake.host(), req, check=True, timings={}, trail=run)
    assert outcome.result["changed"] is True and fake.writes == []
    assert [(e["pid"], e["resolution"]) for e in run.result()] == [(400, "adopted")]
    assert [e["pid"] for e in entries_on_disk(tmp_path)] == [400]


# ---------------------------------------------------------------------------------------------------------
# multipath_flush, killed between the map's flush and its paths' deletes


def flush_settings(fake: FakeHost, *, force: bool = False) -> flush.Settings:
    return flush.Settings(
        host=fake.host(), retries=1, retry_interval=0.0, command_timeout=10.0, path_timeout=10.0, force=force
    )


def flush_trail(tmp_path: Path, *, pid: int, ref: str, observation: flush.Observation) -> Trail:
    return Trail(
        journal(tmp_path, pid=pid),
        module="multipath_flush",
        op="flush",
        request=flush.journal_request(ref, observation),
    )


def test_a_flush_killed_before_its_path_deletes_is_finished_by_the_same_flush(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run_with(fake, tmp_path, pid=500, lun="1")
    run_with(fake, tmp_path, pid=501, lun="2")
    before = flush.observe(ref="mpatha", host=fake.host())
    plan = flush.plan_flush(observation=before, force=False, remove_wwid_file=False)
    killed = flush_trail(tmp_path, pid=502, ref="mpatha", observation=before)
    killed.review(lambda entry: False)
    kill_at(fake, "/delete")
    with pytest.raises(Killed):
        flush.apply_plan(plan=plan, observation=before, settings=flush_settings(fake), trail=killed)
    left_paths = sorted(p.device for p in before.paths)
    assert "mpatha" not in [m["name"] for m in fake.maps] and len(fake.devices) == 4
    (entry,) = entries_on_disk(tmp_path)
    assert entry["request"]["uuid"] == f"mpath-{wwid_of(1)}" and entry["done"][0].startswith("flush map mpatha")
    # an attach of another LUN reports the killed flush and leaves it alone
    other, run = run_with(fake, tmp_path, pid=503, lun="3")
    assert other.error is None and [e["resolution"] for e in run.result()] == ["left"]
    # the same flush again: no map answers to "mpatha" now, the journal names its paths; they go
    snapshot = fake.host().snapshot()
    again = flush.observe(ref="mpatha", host=fake.host(), snapshot=snapshot)
    assert not again.found
    rerun = flush_trail(tmp_path, pid=504, ref="mpatha", observation=again)
    found = rerun.review(
        lambda e: flush.entry_covers(e, ref="mpatha", identity=again.identity),
        settled=lambda e: flush.entry_settled(e, snapshot),
    )
    leftovers = flush.leftover_paths([e for e in found if e["resolution"] == "removed"], snapshot, exclude=())
    assert sorted(p.device for p in leftovers) == left_paths
    record = flush.Outcome(clock=fake.clock, start=fake.clock())
    flush.finish_interrupted(leftovers, settings=flush_settings(fake), trail=rerun, record=record)
    rerun.end(succeeded=True)
    assert sorted(e["device"] for e in record.paths_removed) == left_paths
    assert [(e["pid"], e["resolution"]) for e in rerun.result()] == [(502, "removed")] and rerun.adopted_writes
    assert sorted(d["hctl"] for d in fake.devices) == ["2:0:0:2", "2:0:0:3", "3:0:0:2", "3:0:0:3"]
    assert entries_on_disk(tmp_path) == []


def test_a_killed_flush_whose_paths_another_run_removed_is_dropped_as_gone(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run_with(fake, tmp_path, pid=600, lun="1")
    before = flush.observe(ref=wwid_of(1), host=fake.host())
    plan = flush.plan_flush(observation=before, force=False, remove_wwid_file=False)
    killed = flush_trail(tmp_path, pid=601, ref=wwid_of(1), observation=before)
    kill_at(fake, "/delete")
    with pytest.raises(Killed):
        flush.apply_plan(plan=plan, observation=before, settings=flush_settings(fake), trail=killed)
    removed, run = run_with(fake, tmp_path, pid=602, state="absent", lun="1")
    assert removed.error is None
    assert [e["resolution"] for e in run.result()] == ["left"]  # its paths were still there when it looked
    assert [e["pid"] for e in entries_on_disk(tmp_path)] == [601]
    later, run = run_with(fake, tmp_path, pid=603, lun="2")
    assert later.error is None and [e["resolution"] for e in run.result()] == ["gone"]
    assert "nothing it left remains" in run.warnings[0] and entries_on_disk(tmp_path) == []


def test_paths_a_killed_flush_left_that_are_in_use_are_refused_without_force(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run_with(fake, tmp_path, pid=700, lun="1")
    before = flush.observe(ref="mpatha", host=fake.host())
    plan = flush.plan_flush(observation=before, force=False, remove_wwid_file=False)
    kill_at(fake, "/delete")
    with pytest.raises(Killed):
        flush.apply_plan(
            plan=plan,
            observation=before,
            settings=flush_settings(fake),
            trail=flush_trail(tmp_path, pid=701, ref="mpatha", observation=before),
        )
    fake.mounts.append(before.paths[0].device)
    fake.rebuild()
    entry = entries_on_disk(tmp_path)[0]
    snapshot = fake.host().snapshot()
    leftovers = flush.leftover_paths([entry], snapshot, exclude=())
    record = flush.Outcome(clock=fake.clock, start=fake.clock())
    with pytest.raises(flush.FlushFailed, match=r"left by an interrupted flush of this map are in use: .* mounted on"):
        flush.finish_interrupted(
            leftovers, settings=flush_settings(fake), trail=Trail(None, module="", op="", request={}), record=record
        )
    assert record.paths_removed == [] and len(fake.devices) == 2
    assert flush.entry_covers(entry, ref="/dev/mapper/mpatha", identity=None)
    assert flush.entry_covers(entry, ref=f"/dev/{entry['request']['dm']}", identity=None)
    assert not flush.entry_covers(entry, ref="mpathb", identity=None)
    assert not flush.entry_covers({**entry, "module": "iscsi_lun_attach"}, ref="mpatha", identity=None)
    assert not flush.entry_settled({**entry, "module": "iscsi_lun_attach"}, snapshot)
