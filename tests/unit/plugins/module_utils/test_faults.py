# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Classification over real lab output (fixtures/faults) lined up with a fake sysfs of the same host."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _faults as faults
from ansible_collections.lunsafe.san.plugins.module_utils import _multipath as mp
from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import read_snapshot
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.faults_host import (
    IQN,
    WWID,
    build_lab_sysfs,
    fixture,
)
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.sysfs_tree import build_sysfs


def observe(root: Path, state: str, *, daemon: bool = True, ll: bool = False) -> faults.Observation:
    """An observation as collect() would build it from the captured output of ``state``."""
    snapshot = read_snapshot(sysfs_root=str(root))
    names = [d.name for d in snapshot.devices if d.name]
    obs = faults.Observation(snapshot=snapshot, devts=faults.read_devts(sysfs_root=str(root), names=names))
    if daemon:
        obs.mp_paths = mp.parse_paths(fixture(state, "paths"))
        obs.mp_maps = mp.parse_maps(fixture(state, "maps"))
    obs.dm_status = {
        name: mp.parse_dmsetup_status(text) for name, text in mp.parse_dmsetup_all(fixture(state, "dmstatus")).items()
    }
    obs.dm_tables = {
        name: mp.parse_dmsetup_table(text) for name, text in mp.parse_dmsetup_all(fixture(state, "dmtable")).items()
    }
    if ll:
        obs.ll_maps = mp.parse_ll(fixture(state, "ll"))
    return obs


def by(items: List[Dict[str, Any]], key: str) -> Dict[str, Dict[str, Any]]:
    return {item[key]: item for item in items}


# --- real output, state by state ---------------------------------------------------------------------------


def test_healthy_lab_has_no_fault_and_full_path_details(tmp_path: Path) -> None:
    facts = faults.classify(observe(build_lab_sysfs(tmp_path), "healthy"))
    assert facts["summary"] == {
        "maps": 4,
        "faulty_maps": 0,
        "dead_maps": 0,
        "queueing_dead_maps": 0,
        "unpresented_maps": 0,
        "paths": 8,
        "faulty_paths": 0,
        "unmapped_paths": 0,
        "orphans": 0,
    }
    maps = by(facts["maps"], "name")
    assert maps["mpatha"]["wwid"] == WWID[2] and maps["mpatha"]["dm"] == "dm-0"
    assert maps["mpatha"]["paths"] == ["sdd", "sdg"]
    assert maps["mpatha"]["queue_if_no_path"] is True and maps["mpatha"]["queueing"] == "12 chk"
    assert maps["mpatha"]["presented"] is True and maps["mpatha"]["active_paths"] == 2
    path = by(facts["paths"], "dev")["sdg"]
    assert path == {
        "dev": "sdg",
        "devt": "8:96",
        "hctl": "3:0:0:2",
        "wwid": WWID[2],
        "map": "mpatha",
        "dm_state": "active",
        "dm_fail_count": 0,
        "checker_state": "ready",
        "checker": "tur",
        "block_device": True,
        "device_state": "running",
        "multipathd_state": "running",
        "known_to_multipathd": True,
        "session": {
            "sid": 2,
            "host": 3,
            "target": IQN,
            "portal": "127.0.0.2:3260",
            "persistent_portal": "127.0.0.2:3260",
            "state": "LOGGED_IN",
            "transport": "iscsi_tcp",
        },
        "transport": "iscsi",
        "rport": None,
        "unmapped": False,
        "faulty": False,
        "reasons": [],
    }
    assert [p["dev"] for p in facts["paths"]] == ["sda", "sdb", "sdc", "sdd", "sde", "sdf", "sdg", "sdh"]


def test_ghost_is_alua_standby_not_a_fault(tmp_path: Path) -> None:
    obs = observe(build_lab_sysfs(tmp_path), "healthy")
    obs.mp_paths = [
        mp.PathRecord(**{**rec.__dict__, "checker_state": "ghost"}) if rec.dev == "sdg" else rec
        for rec in obs.mp_paths or ()
    ]
    facts = faults.classify(obs)
    assert by(facts["paths"], "dev")["sdg"]["checker_state"] == "ghost"
    assert facts["summary"]["faulty_paths"] == 0 and facts["summary"]["faulty_maps"] == 0
    assert by(facts["maps"], "name")["mpatha"]["usable_paths"] == 2


def test_unmapped_lun_gives_faulty_paths_and_a_queueing_dead_unpresented_map(tmp_path: Path) -> None:
    facts = faults.classify(observe(build_lab_sysfs(tmp_path), "unmapped"))
    paths = by(facts["paths"], "dev")
    for dev in ("sdd", "sdg"):
        assert paths[dev]["reasons"] == ["checker_faulty", "dm_failed"]
        assert paths[dev]["device_state"] == "running"  # the kernel still thinks the device is fine
    mpatha = by(facts["maps"], "name")["mpatha"]
    assert mpatha["reasons"] == ["no_active_path", "queueing_without_path", "unpresented", "faulty_paths"]
    assert mpatha["queueing"] == "15 sec" and mpatha["queueing_dead"] is True
    assert facts["summary"] == {
        "maps": 4,
        "faulty_maps": 1,
        "dead_maps": 1,
        "queueing_dead_maps": 1,
        "unpresented_maps": 1,
        "paths": 8,
        "faulty_paths": 2,
        "unmapped_paths": 0,
        "orphans": 0,
    }


def test_after_no_path_retry_the_dead_map_no_longer_queues(tmp_path: Path) -> None:
    facts = faults.classify(observe(build_lab_sysfs(tmp_path), "unmapped_late"))
    mpatha = by(facts["maps"], "name")["mpatha"]
    assert mpatha["dead"] is True and mpatha["queueing_dead"] is False
    assert mpatha["queue_if_no_path"] is False and mpatha["features"] == "0" and mpatha["queueing"] == "off"
    assert "queueing_without_path" not in mpatha["reasons"]
    assert facts["summary"]["queueing_dead_maps"] == 0 and facts["summary"]["dead_maps"] == 1


def test_offline_device_is_a_faulty_path_of_a_degraded_map(tmp_path: Path) -> None:
    facts = faults.classify(observe(build_lab_sysfs(tmp_path, states={"sdc": "offline"}), "offline"))
    sdc = by(facts["paths"], "dev")["sdc"]
    assert sdc["reasons"] == ["checker_faulty", "dm_failed", "device_offline"]
    assert sdc["multipathd_state"] == "offline"
    mpathb = by(facts["maps"], "name")["mpathb"]
    assert mpathb["active_paths"] == 1 and mpathb["presented"] is True and mpathb["dead"] is False
    assert mpathb["reasons"] == ["faulty_paths"]


@pytest.mark.parametrize(
    ("state", "reason"),
    [("blocked", "device_blocked"), ("transport-offline", "device_transport_offline"), ("quiesce", "device_quiesce")],
)
def test_every_device_state_but_running_is_a_reason(tmp_path: Path, state: str, reason: str) -> None:
    facts = faults.classify(observe(build_lab_sysfs(tmp_path, states={"sdb": state}), "healthy"))
    sdb = by(facts["paths"], "dev")["sdb"]
    assert sdb["reasons"] == [reason] and sdb["device_state"] == state
    # the other path is usable: the map is degraded, still presented
    assert by(facts["maps"], "name")["mpathc"]["reasons"] == ["faulty_paths"]


def test_session_not_logged_in_makes_its_paths_faulty(tmp_path: Path) -> None:
    facts = faults.classify(observe(build_lab_sysfs(tmp_path, session_states={1: "FAILED"}), "healthy"))
    paths = by(facts["paths"], "dev")
    assert [dev for dev, p in paths.items() if p["faulty"]] == ["sda", "sdb", "sdc", "sdd"]
    assert paths["sda"]["reasons"] == ["session_not_logged_in"]
    assert paths["sda"]["session"]["state"] == "FAILED"
    assert facts["summary"]["unpresented_maps"] == 0  # session 2 still presents every LUN


def test_daemon_stopped_orphan_table_entry_is_found_from_dmsetup(tmp_path: Path) -> None:
    """Real: sdh (8:112) deleted while multipathd was stopped; the table keeps 8:112 with flag A."""
    root = build_lab_sysfs(tmp_path, states={"sdc": "offline"}, removed={"sdh"})
    facts = faults.classify(observe(root, "nodaemon", daemon=False, ll=True))
    assert facts["orphans"] == [
        {
            "map": "mpathb",
            "wwid": WWID[3],
            "dev": None,
            "devt": "8:112",
            "hctl": None,
            "dm_active": True,
            "source": "dmsetup_table",
            "reason": "table_device_gone",
        }
    ]
    mpathb = by(facts["maps"], "name")["mpathb"]
    # dmsetup says 8:112 A, 8:32 F: the deleted device must not count as an active path
    assert mpathb["active_paths"] == 0 and mpathb["dead"] is True
    assert mpathb["reasons"] == ["no_active_path", "orphan_table_entries", "unpresented", "faulty_paths"]
    assert mpathb["queue_if_no_path"] is False  # multipathd's shutdown disabled queueing
    # checker states come from multipath -ll
    paths = by(facts["paths"], "dev")
    assert paths["sdd"]["checker_state"] == "faulty" and paths["sdd"]["known_to_multipathd"] is False
    assert paths["sda"]["checker_state"] == "ready" and not paths["sda"]["faulty"]
    assert facts["summary"]["orphans"] == 1 and facts["summary"]["dead_maps"] == 2


def test_multipath_ll_orphan_rows_are_orphans(tmp_path: Path) -> None:
    text = (
        "mpathb (360014050dfbea08a0ed44b1938c5037a) dm-1 LIO-ORG,FILEIO\n"
        "size=64M features='1 queue_if_no_path' hwhandler='1 alua' wp=rw\n"
        "`-+- policy='service-time 0' prio=0 status=active\n"
        "  |- #:#:#:# -   #:#   active faulty running\n"
        "  `- 2:0:0:3 sdc 8:32 active ready running\n"
    )
    root = build_lab_sysfs(tmp_path, removed={"sdh"})
    obs = faults.Observation(
        snapshot=read_snapshot(sysfs_root=str(root)),
        devts=faults.read_devts(sysfs_root=str(root), names=["sdc"]),
        ll_maps=mp.parse_ll(text),
    )
    facts = faults.classify(obs, filters=faults.make_filters(maps=["mpathb"]))
    assert [(o["map"], o["source"], o["devt"]) for o in facts["orphans"]] == [("mpathb", "multipath_ll", None)]
    mpathb = facts["maps"][0]
    assert mpathb["queue_if_no_path"] is True and mpathb["active_paths"] == 1  # sdc usable, from sysfs + -ll
    assert mpathb["reasons"] == ["orphan_table_entries"]


def test_multipathd_path_whose_device_is_gone(tmp_path: Path) -> None:
    root = build_lab_sysfs(tmp_path, removed={"sdh"})
    obs = observe(root, "healthy")
    facts = faults.classify(obs)
    sdh = by(facts["paths"], "dev")["sdh"]
    assert sdh["reasons"] == ["device_gone"] and sdh["device_state"] is None and sdh["session"] is None
    orphans = [(o["map"], o["dev"], o["source"]) for o in facts["orphans"]]
    assert orphans == [("mpathb", "sdh", "multipathd")]  # found once, not again from the dm table


# --- paths left without their map, SCSI devices without a block device ---------------------------------------


def flush_map(obs: faults.Observation, name: str) -> faults.Observation:
    """What ``multipath -f NAME`` leaves (seen in the lab): multipathd keeps the paths as ``[orphan]`` rows with
    dm and checker states ``undef`` and device state ``unknown``; the map is gone from multipathd and dmsetup."""
    obs.mp_paths = [
        mp.PathRecord(
            **{**rec.__dict__, "multipath": None, "dm_state": "undef", "checker_state": "undef", "dev_state": "unknown"}
        )
        if rec.multipath == name
        else rec
        for rec in obs.mp_paths or ()
    ]
    obs.mp_maps = [m for m in obs.mp_maps or () if m.name != name]
    obs.dm_status = {k: v for k, v in (obs.dm_status or {}).items() if k != name}
    obs.dm_tables = {k: v for k, v in (obs.dm_tables or {}).items() if k != name}
    obs.sources["multipathd"] = "ok"
    return obs


def test_paths_left_by_a_flushed_map_are_unmapped_not_faulty(tmp_path: Path) -> None:
    obs = flush_map(observe(build_lab_sysfs(tmp_path, without_maps={"mpatha"}), "healthy"), "mpatha")
    obs.multipath_wwids = tuple(WWID.values())
    facts = faults.classify(obs)
    paths = by(facts["paths"], "dev")
    for dev in ("sdd", "sdg"):  # LUN 2's paths
        assert paths[dev]["unmapped"] is True and paths[dev]["map"] is None and paths[dev]["block_device"] is True
        assert paths[dev]["faulty"] is False and paths[dev]["reasons"] == []
        assert paths[dev]["checker_state"] == "undef" and paths[dev]["known_to_multipathd"] is True
    assert [p["dev"] for p in facts["paths"] if p["unmapped"]] == ["sdd", "sdg"]
    assert facts["summary"]["unmapped_paths"] == 2 and facts["summary"]["faulty_paths"] == 0
    assert facts["summary"]["maps"] == 3 and "mpatha" not in by(facts["maps"], "name")
    # the filters select them like any path: by WWID and by target, not by a map name
    assert faults.classify(obs, filters=faults.make_filters(wwids=[WWID[2]]))["summary"]["unmapped_paths"] == 2
    assert faults.classify(obs, filters=faults.make_filters(targets=[IQN]))["summary"]["unmapped_paths"] == 2
    assert faults.classify(obs, filters=faults.make_filters(maps=["mpathb"]))["summary"]["unmapped_paths"] == 0


def test_a_path_is_unmapped_only_when_multipath_claims_it(tmp_path: Path) -> None:
    """A LUN multipath never mapped (find_multipaths: one path, WWID not in the wwids file) or a blacklisted path
    (multipathd answers and does not list it) is not unmapped; without multipathd the wwids file decides."""
    root = build_lab_sysfs(tmp_path, without_maps={"mpatha"})
    not_claimed = flush_map(observe(root, "healthy"), "mpatha")
    not_claimed.multipath_wwids = (WWID[0], WWID[1], WWID[3])
    assert faults.classify(not_claimed)["summary"]["unmapped_paths"] == 0

    blacklisted = flush_map(observe(root, "healthy"), "mpatha")
    blacklisted.mp_paths = [rec for rec in blacklisted.mp_paths or () if rec.wwid != WWID[2]]
    blacklisted.multipath_wwids = tuple(WWID.values())
    assert faults.classify(blacklisted)["summary"]["unmapped_paths"] == 0

    no_daemon = flush_map(observe(root, "healthy", daemon=False), "mpatha")
    no_daemon.mp_paths = None
    no_daemon.sources["multipathd"] = "not_running"
    no_daemon.multipath_wwids = tuple(WWID.values())
    facts = faults.classify(no_daemon)
    assert [p["dev"] for p in facts["paths"] if p["unmapped"]] == ["sdd", "sdg"]
    assert by(facts["paths"], "dev")["sdd"]["known_to_multipathd"] is False


def test_mapped_paths_are_never_unmapped(tmp_path: Path) -> None:
    obs = observe(build_lab_sysfs(tmp_path), "healthy")
    obs.multipath_wwids = tuple(WWID.values())
    facts = faults.classify(obs)
    assert facts["summary"]["unmapped_paths"] == 0 and all(p["map"] for p in facts["paths"])


def test_scsi_devices_without_a_block_device_are_listed(tmp_path: Path) -> None:
    """LUN 0's device on the second session without its block device (sd unbound; a controller LUN looks the
    same): listed by its address, with its session, no block device, no devt; its map keeps one path."""
    root = build_lab_sysfs(tmp_path, no_block={"sde"})
    obs = observe(root, "healthy")
    obs.mp_paths = [rec for rec in obs.mp_paths or () if rec.dev != "sde"]
    obs.multipath_wwids = tuple(WWID.values())
    facts = faults.classify(obs)
    first = facts["paths"][0]  # devices without a block device sort first, by address
    assert first["dev"] is None and first["devt"] is None and first["hctl"] == "3:0:0:0"
    assert first["block_device"] is False and first["unmapped"] is False and first["map"] is None
    assert first["wwid"] == WWID[0] and first["device_state"] == "running"
    assert first["session"]["sid"] == 2 and first["session"]["target"] == IQN
    assert first["faulty"] is False and first["reasons"] == []
    assert facts["summary"]["paths"] == 8 and facts["summary"]["faulty_paths"] == 0
    # it carries no I/O: LUN 0's map counts only sda as usable
    assert by(facts["maps"], "name")["mpathd"]["usable_paths"] == 1
    by_target = faults.classify(obs, filters=faults.make_filters(targets=[IQN]))["paths"]
    assert by_target[0]["hctl"] == "3:0:0:0" and len(by_target) == 8
    assert faults.classify(obs, filters=faults.make_filters(maps=["mpathd"]))["paths"] == [
        by(facts["paths"], "dev")["sda"]
    ]


def test_a_scsi_device_without_a_block_device_has_its_faults(tmp_path: Path) -> None:
    root = build_sysfs(
        tmp_path,
        sessions=[{"sid": 1, "host": 2, "targetname": IQN, "address": "127.0.0.1"}],
        devices=[
            {"hctl": "2:0:0:0", "sid": 1, "name": None, "state": "offline", "wwid": None, "model": "RAID"},
            {"hctl": "2:0:0:1", "sid": 1, "name": "sdb", "wwid": "naa." + WWID[1][1:]},
        ],
    )
    obs = faults.collect(
        runner=ScriptedRunner(missing_tools={"multipathd", "dmsetup", "multipath"}),
        sysfs_root=str(root),
        proc_root=str(tmp_path / "proc"),
    )
    facts = faults.classify(obs)
    assert [(p["dev"], p["hctl"], p["block_device"]) for p in facts["paths"]] == [
        (None, "2:0:0:0", False),
        ("sdb", "2:0:0:1", True),
    ]
    assert facts["paths"][0]["reasons"] == ["device_offline"] and facts["paths"][0]["wwid"] is None
    assert facts["summary"] == {
        "maps": 0,
        "faulty_maps": 0,
        "dead_maps": 0,
        "queueing_dead_maps": 0,
        "unpresented_maps": 0,
        "paths": 2,
        "faulty_paths": 1,
        "unmapped_paths": 0,
        "orphans": 0,
    }


def test_read_multipath_wwids(tmp_path: Path) -> None:
    wwids = tmp_path / "wwids"
    wwids.write_text(
        "# Multipath wwids, Version : 1.0\n# NOTE: This file is automatically maintained by multipath.\n"
        f"#\n# Valid WWIDs:\n/{WWID[1]}/\n/{WWID[2]}/\n//\nnot a wwid\n",
        encoding="utf-8",
    )
    assert faults.read_multipath_wwids(str(wwids)) == ((WWID[1], WWID[2]), "ok")
    assert faults.read_multipath_wwids(str(tmp_path / "missing")) == ((), "not_found")
    assert faults.read_multipath_wwids(str(tmp_path)) == ((), "error")  # a directory: cannot be read


def test_collect_reads_the_wwids_file_and_says_when_it_cannot(tmp_path: Path) -> None:
    wwids = tmp_path / "wwids"
    wwids.write_text(f"/{WWID[2]}/\n", encoding="utf-8")
    root = build_lab_sysfs(tmp_path)
    obs = faults.collect(
        runner=scripted("healthy"), sysfs_root=str(root), proc_root=str(tmp_path / "proc"), wwids_file=str(wwids)
    )
    assert obs.multipath_wwids == (WWID[2],) and obs.sources["wwids_file"] == "ok" and obs.warnings == []
    bad = faults.collect(
        runner=scripted("healthy"), sysfs_root=str(root), proc_root=str(tmp_path / "proc"), wwids_file=str(tmp_path)
    )
    assert bad.sources["wwids_file"] == "error" and bad.multipath_wwids == ()
    assert bad.warnings == [f"multipath's wwids file {tmp_path} could not be read: unmapped paths are not reported"]


# --- filters ------------------------------------------------------------------------------------------------


def test_filters_select_maps_and_their_paths(tmp_path: Path) -> None:
    obs = observe(build_lab_sysfs(tmp_path), "unmapped")
    by_wwid = faults.classify(obs, filters=faults.make_filters(wwids=[WWID[2]]))
    assert [m["name"] for m in by_wwid["maps"]] == ["mpatha"]
    assert [p["dev"] for p in by_wwid["paths"]] == ["sdd", "sdg"]
    assert by_wwid["summary"]["faulty_paths"] == 2 and by_wwid["filters"]["wwids"] == [WWID[2]]
    by_map = faults.classify(obs, filters=faults.make_filters(maps=["/dev/mapper/mpathc", "dm-3"]))
    assert [m["name"] for m in by_map["maps"]] == ["mpathc", "mpathd"]
    assert by_map["summary"]["faulty_maps"] == 0
    by_target = faults.classify(obs, filters=faults.make_filters(targets=[IQN.upper()]))
    assert by_target["summary"]["maps"] == 4 and by_target["summary"]["paths"] == 8
    other = faults.classify(obs, filters=faults.make_filters(targets=["iqn.2000-01.org.example:other"]))
    assert other["maps"] == [] and other["paths"] == [] and other["summary"]["faulty_paths"] == 0
    assert by_wwid["warnings"] == by_map["warnings"] == by_target["warnings"] == []
    assert other["warnings"] == [
        "targets filter entry 'iqn.2000-01.org.example:other' matches no path on an iSCSI session or FC remote port"
    ]


def test_filter_entries_matching_nothing_are_warnings_each(tmp_path: Path) -> None:
    obs = observe(build_lab_sysfs(tmp_path), "unmapped")
    filters = faults.make_filters(wwids=[WWID[2], "36001405nope"], maps=["mpatha", "dm-99", WWID[1]])
    facts = faults.classify(obs, filters=filters)
    assert [m["name"] for m in facts["maps"]] == ["mpatha"]  # both filters hold: mpatha has WWID[2]
    assert facts["warnings"] == [
        "wwids filter entry '36001405nope' matches no multipath map and no path",
        "maps filter entry 'dm-99' matches no multipath map (by name, dm-N or WWID)",
    ]


def test_unmatched_filter_entries_are_listed_and_warned_about_unless_told_not_to(tmp_path: Path) -> None:
    obs = observe(build_lab_sysfs(tmp_path), "healthy")
    filters = faults.make_filters(wwids=["36001405nope"], maps=["dm-99"], targets=["iqn.2000-01.org.example:new"])
    unmatched = {"wwids": ["36001405nope"], "maps": ["dm-99"], "targets": ["iqn.2000-01.org.example:new"]}
    warned = faults.classify(obs, filters=filters)
    assert warned["unmatched"] == unmatched and len(warned["warnings"]) == 3
    quiet = faults.classify(obs, filters=filters, warn_unmatched=False)
    assert quiet["unmatched"] == unmatched and quiet["warnings"] == []
    matched = faults.classify(obs, filters=faults.make_filters(targets=[IQN]), warn_unmatched=False)
    assert matched["unmatched"] == {"wwids": [], "maps": [], "targets": []}
    assert matched["summary"]["paths"] == 8


def test_collect_finds_the_openers_of_maps_and_paths_under_the_proc_root_given(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    for pid, comm, target in ((300, "qemu-kvm", "/dev/dm-2"), (301, "dd", "/dev/sdd"), (302, "multipathd", "/dev/sdd")):
        (proc / str(pid) / "fd").mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(comm + "\n")
        os.symlink(target, proc / str(pid) / "fd" / "3")
    obs = faults.collect(runner=scripted("unmapped"), proc_root=str(proc), sysfs_root=str(build_lab_sysfs(tmp_path)))
    assert [(o.pid, o.device) for o in obs.openers] == [(300, "dm-2"), (301, "sdd"), (302, "sdd")]
    maps = {m["dm"]: m for m in faults.classify(obs)["maps"]}
    holding = {m["name"]: m["openers"] for m in maps.values() if m["openers"]}
    sdd_map = next(m["name"] for m in maps.values() if "sdd" in m["paths"])
    expected = {maps["dm-2"]["name"]: [{"pid": 300, "command": "qemu-kvm", "device": "dm-2"}]}
    expected.setdefault(sdd_map, []).append({"pid": 301, "command": "dd", "device": "sdd"})  # not multipathd
    assert holding == expected


@pytest.mark.parametrize("bad", ["", "  ", "a b", "../x"])
def test_bad_filter_entries_are_refused(bad: str) -> None:
    with pytest.raises(InputError):
        faults.make_filters(maps=[bad])


# --- dmsetup over all maps ------------------------------------------------------------------------------


def test_parse_dmsetup_all_splits_by_name_and_keeps_continuations() -> None:
    text = (
        "mpatha: 0 100 multipath 0 0 1 1 round-robin 0 1 1 8:16 1\n200 100 multipath 0 0 1 1 round-robin 0 1 1 8:32 1\n"
    )
    text += "mpathb: 0 100 multipath 0 0 1 1 round-robin 0 1 1 8:48 1\n"
    split = mp.parse_dmsetup_all(text)
    assert list(split) == ["mpatha", "mpathb"]
    assert mp.parse_dmsetup_table(split["mpatha"]).devts == ("8:16", "8:32")
    assert mp.parse_dmsetup_all("No devices found\n") == {}


# --- collect: sources and fallbacks ----------------------------------------------------------------------


def scripted(state: str) -> ScriptedRunner:
    return ScriptedRunner(
        [
            (mp.show_paths(), 0, fixture(state, "paths"), ""),
            (mp.show_maps(), 0, fixture(state, "maps"), ""),
            (mp.dmsetup_status_all(), 0, fixture(state, "dmstatus"), ""),
            (mp.dmsetup_table_all(), 0, fixture(state, "dmtable"), ""),
        ]
    )


def test_collect_uses_multipathd_and_dmsetup_and_not_multipath_ll(tmp_path: Path) -> None:
    runner = scripted("unmapped")
    obs = faults.collect(
        runner=runner, proc_root=str(tmp_path / "proc"), sysfs_root=str(build_lab_sysfs(tmp_path)), timeout=7
    )
    assert obs.sources == {
        "sysfs": "ok",
        "multipathd": "ok",
        "dmsetup": "ok",
        "multipath_ll": "not_used",
        "wwids_file": "not_used",
    }
    assert runner.remaining == [] and {call.timeout for call in runner.calls} == {7}
    assert faults.classify(obs)["summary"]["dead_maps"] == 1


def test_collect_falls_back_when_multipathd_is_silent(tmp_path: Path) -> None:
    """multipath-tools 0.9.4 with the daemon stopped: rc 1, nothing on stdout or stderr."""
    root = build_lab_sysfs(tmp_path, states={"sdc": "offline"}, removed={"sdh"})
    runner = ScriptedRunner(
        [
            (mp.show_paths(), 1, "", ""),
            (mp.dmsetup_status_all(), 0, fixture("nodaemon", "dmstatus"), ""),
            (mp.dmsetup_table_all(), 0, fixture("nodaemon", "dmtable"), ""),
            (mp.list_topology(), 0, fixture("nodaemon", "ll"), ""),
        ]
    )
    obs = faults.collect(runner=runner, proc_root=str(tmp_path / "proc"), sysfs_root=str(root))
    assert obs.sources == {
        "sysfs": "ok",
        "multipathd": "not_running",
        "dmsetup": "ok",
        "multipath_ll": "ok",
        "wwids_file": "not_used",
    }
    assert obs.warnings and "not running" in obs.warnings[0]
    facts = faults.classify(obs)
    assert facts["summary"]["orphans"] == 1 and by(facts["paths"], "dev")["sdg"]["checker_state"] == "faulty"


def test_collect_reports_a_multipathd_timeout(tmp_path: Path) -> None:
    runner = ScriptedRunner(
        [
            (mp.show_paths(), 124, "", ""),
            (mp.dmsetup_status_all(), 0, fixture("healthy", "dmstatus"), ""),
            (mp.dmsetup_table_all(), 0, fixture("healthy", "dmtable"), ""),
        ]
    )
    obs = faults.collect(
        runner=runner, proc_root=str(tmp_path / "proc"), sysfs_root=str(build_lab_sysfs(tmp_path)), ll_fallback=False
    )
    assert obs.sources["multipathd"] == "timeout" and obs.sources["multipath_ll"] == "not_used"
    facts = faults.classify(obs)
    # without the daemon the healthy host is still seen as healthy: dm flags and sysfs states
    assert facts["summary"]["faulty_paths"] == 0 and facts["summary"]["maps"] == 4
    assert by(facts["paths"], "dev")["sda"]["checker_state"] is None


def test_collect_on_a_host_without_scsi_or_multipath(tmp_path: Path) -> None:
    runner = ScriptedRunner(missing_tools={"multipathd", "dmsetup", "multipath"})
    obs = faults.collect(runner=runner, proc_root=str(tmp_path / "proc"), sysfs_root=str(build_sysfs(tmp_path)))
    assert obs.sources == {
        "sysfs": "no_scsi",
        "multipathd": "not_installed",
        "dmsetup": "not_used",
        "multipath_ll": "not_used",
        "wwids_file": "not_used",
    }
    assert obs.warnings == [] and runner.calls == []
    facts = faults.classify(obs)
    assert facts["maps"] == [] and facts["paths"] == [] and facts["summary"]["maps"] == 0


def test_collect_survives_unparsable_output(tmp_path: Path) -> None:
    runner = ScriptedRunner(
        [
            (mp.show_paths(), 0, "garbage without separators\n", ""),
            (mp.dmsetup_status_all(), 0, fixture("healthy", "dmstatus"), ""),
            (mp.dmsetup_table_all(), 0, "mpatha: 0 1 multipath 7\n", ""),
            (mp.list_topology(), 0, fixture("healthy", "ll"), ""),
        ]
    )
    obs = faults.collect(runner=runner, proc_root=str(tmp_path / "proc"), sysfs_root=str(build_lab_sysfs(tmp_path)))
    assert obs.sources["multipathd"] == "error" and obs.sources["dmsetup"] == "error"
    assert obs.sources["multipath_ll"] == "ok"
    assert len(obs.warnings) == 2
    assert faults.classify(obs)["summary"]["faulty_paths"] == 0
