# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run the module's main() against a fake sysfs of the lab host and its real multipathd/dmsetup output."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml
from ansible.module_utils.common import warnings as ansible_warnings

from ansible_collections.lunsafe.san.plugins.module_utils import _multipath as mp
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.modules import multipath_faulty_facts
from ansible_collections.lunsafe.san.tests.unit.compat import patch_module_args
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.faults_host import (
    WWID,
    build_lab_sysfs,
    fixture,
)
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.sysfs_tree import build_sysfs


@pytest.fixture(autouse=True)
def one_module_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test is one module run, as on a host: warnings and deprecations that ansible-core keeps for the
    run in module globals must not leak in from main() calls of earlier tests."""
    # empty, of the type this ansible-core keeps them in (dicts from 2.19 on, lists in 2.17)
    monkeypatch.setattr(ansible_warnings, "_global_warnings", type(ansible_warnings._global_warnings)())
    monkeypatch.setattr(ansible_warnings, "_global_deprecations", type(ansible_warnings._global_deprecations)())


def lab_script(state: str) -> List[Any]:
    return [
        (mp.show_paths(), 0, fixture(state, "paths"), ""),
        (mp.show_maps(), 0, fixture(state, "maps"), ""),
        (mp.dmsetup_status_all(), 0, fixture(state, "dmstatus"), ""),
        (mp.dmsetup_table_all(), 0, fixture(state, "dmtable"), ""),
    ]


def run_module(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *,
    root: Path,
    runner: ScriptedRunner,
    args: Dict[str, Any],
) -> Dict[str, Any]:
    proc = root.parent / "proc"  # a fake /proc beside the fake sysfs: never the real one
    proc.mkdir(exist_ok=True)
    with patch_module_args(args), pytest.raises(SystemExit):
        multipath_faulty_facts.main(
            make_host=lambda _runner: Host(
                runner=runner, sysfs_root=str(root), proc_root=str(proc), wwids_file=str(root.parent / "wwids")
            )
        )
    result: Dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


@pytest.mark.parametrize("check_mode", [False, True])
def test_facts_of_an_unmapped_lun_are_the_same_in_check_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], check_mode: bool
) -> None:
    runner = ScriptedRunner(lab_script("unmapped"))
    result = run_module(
        monkeypatch, capsys, root=build_lab_sysfs(tmp_path), runner=runner, args={"_ansible_check_mode": check_mode}
    )
    assert result["changed"] is False
    facts = result["ansible_facts"]["lunsafe_multipath"]
    assert facts["summary"]["dead_maps"] == 1 and facts["summary"]["faulty_paths"] == 2
    assert facts["sources"] == {
        "sysfs": "ok",
        "wwids_file": "not_found",
        "multipathd": "ok",
        "dmsetup": "ok",
        "multipath_ll": "not_used",
    }
    # the facts only under ansible_facts, as package_facts and service_facts do: no copy at the top level
    # (ansible-core 2.21 adds "invocation" only when the controller asks for it, 2.17 and 2.19 always)
    assert sorted(set(result) - {"invocation"}) == ["ansible_facts", "changed"]
    assert facts["warnings"] == [] and "warnings" not in result
    assert runner.remaining == []
    # read-only: every command is a query
    assert [argv[:2] for argv in runner.argvs] == [
        ["multipathd", "show"],
        ["multipathd", "show"],
        ["dmsetup", "status"],
        ["dmsetup", "table"],
    ]


def test_filters_and_timeout_reach_the_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = ScriptedRunner(lab_script("unmapped"))
    result = run_module(
        monkeypatch, capsys, root=build_lab_sysfs(tmp_path), runner=runner, args={"wwids": [WWID[1]], "timeout": 3}
    )
    facts = result["ansible_facts"]["lunsafe_multipath"]
    assert [m["name"] for m in facts["maps"]] == ["mpathc"]
    assert facts["summary"]["faulty_maps"] == 0 and facts["filters"]["wwids"] == [WWID[1]]
    assert "warnings" not in result
    assert {call.timeout for call in runner.calls} == {3}


def test_host_without_multipath_or_scsi_gives_empty_facts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = ScriptedRunner(missing_tools={"multipathd", "dmsetup", "multipath"})
    result = run_module(monkeypatch, capsys, root=build_sysfs(tmp_path), runner=runner, args={})
    facts = result["ansible_facts"]["lunsafe_multipath"]
    assert "failed" not in result and result["changed"] is False
    assert facts["maps"] == [] and facts["paths"] == [] and facts["orphans"] == []
    assert facts["sources"]["multipathd"] == "not_installed" and facts["sources"]["sysfs"] == "no_scsi"
    assert "warnings" not in result  # nothing is degraded where there is nothing to see


def test_stopped_multipathd_is_a_warning_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = ScriptedRunner(
        [
            (mp.show_paths(), 1, "", ""),
            (mp.dmsetup_status_all(), 0, fixture("nodaemon", "dmstatus"), ""),
            (mp.dmsetup_table_all(), 0, fixture("nodaemon", "dmtable"), ""),
        ]
    )
    root = build_lab_sysfs(tmp_path, states={"sdc": "offline"}, removed={"sdh"})
    result = run_module(monkeypatch, capsys, root=root, runner=runner, args={"multipath_ll_fallback": False})
    facts = result["ansible_facts"]["lunsafe_multipath"]
    assert facts["sources"]["multipathd"] == "not_running" and facts["sources"]["multipath_ll"] == "not_used"
    facts_warnings = facts["warnings"]
    assert len(facts_warnings) == 1 and facts_warnings[0].startswith("multipathd is not running")
    assert facts_warnings[0] in json.dumps(result["warnings"])  # also an Ansible warning (its format varies)
    assert facts["summary"]["orphans"] == 1 and facts["orphans"][0]["devt"] == "8:112"


@pytest.mark.parametrize(
    ("args", "option"),
    [({"timeout": 0}, "timeout"), ({"maps": ["a b"]}, "maps"), ({"targets": [""]}, "targets")],
)
def test_bad_input_fails_before_running_anything(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: Dict[str, Any],
    option: str,
) -> None:
    runner = ScriptedRunner()
    result = run_module(monkeypatch, capsys, root=build_lab_sysfs(tmp_path), runner=runner, args=args)
    assert result["failed"] is True and result["option"] == option
    assert runner.calls == []


def test_a_filter_entry_matching_nothing_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = ScriptedRunner(lab_script("unmapped"))
    args = {"maps": ["nope", "/dev/mapper/mpathc"], "targets": ["iqn.2000-01.org.example:none"]}
    result = run_module(monkeypatch, capsys, root=build_lab_sysfs(tmp_path), runner=runner, args=args)
    facts = result["ansible_facts"]["lunsafe_multipath"]
    assert facts["summary"]["maps"] == 0  # the targets filter selects nothing, so nothing is reported
    assert facts["warnings"] == [
        "maps filter entry 'nope' matches no multipath map (by name, dm-N or WWID)",
        "targets filter entry 'iqn.2000-01.org.example:none' matches no path on an iSCSI session or FC remote port",
    ]
    assert all(warning in json.dumps(result["warnings"]) for warning in facts["warnings"])


def test_warn_unmatched_false_lists_the_entries_without_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A read before the LUNs are attached (the lun_attach role's preflight): no match is expected there."""
    runner = ScriptedRunner(lab_script("healthy"))
    args = {"targets": ["iqn.2000-01.org.example:new"], "warn_unmatched": False}
    result = run_module(monkeypatch, capsys, root=build_lab_sysfs(tmp_path), runner=runner, args=args)
    facts = result["ansible_facts"]["lunsafe_multipath"]
    assert "warnings" not in result and facts["warnings"] == []
    assert facts["unmatched"] == {"wwids": [], "maps": [], "targets": ["iqn.2000-01.org.example:new"]}
    assert facts["sources"]["multipathd"] == "ok" and facts["summary"]["paths"] == 0


def flushed_script(name: str) -> List[Any]:
    """The lab's multipathd and dmsetup output after ``multipath -f NAME``: its paths are ``[orphan]`` rows."""
    sep = mp.FIELD_SEP
    paths = []
    for line in fixture("healthy", "paths").splitlines():
        fields = line.split(sep)
        if fields[7] == name:
            fields[4:8] = ["undef", "undef", "unknown", "[orphan]"]
        paths.append(sep.join(fields))
    maps = [line for line in fixture("healthy", "maps").splitlines() if not line.startswith(name + sep)]
    status = [line for line in fixture("healthy", "dmstatus").splitlines() if not line.startswith(name + ":")]
    table = [line for line in fixture("healthy", "dmtable").splitlines() if not line.startswith(name + ":")]
    return [
        (mp.show_paths(), 0, "\n".join(paths) + "\n", ""),
        (mp.show_maps(), 0, "\n".join(maps) + "\n", ""),
        (mp.dmsetup_status_all(), 0, "\n".join(status) + "\n", ""),
        (mp.dmsetup_table_all(), 0, "\n".join(table) + "\n", ""),
    ]


def test_paths_left_by_a_flushed_map_are_reported_unmapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = build_lab_sysfs(tmp_path, without_maps={"mpatha"})
    (root.parent / "wwids").write_text("".join(f"/{wwid}/\n" for wwid in WWID.values()), encoding="utf-8")
    runner = ScriptedRunner(flushed_script("mpatha"))
    result = run_module(monkeypatch, capsys, root=root, runner=runner, args={})
    facts = result["ansible_facts"]["lunsafe_multipath"]
    assert runner.remaining == []
    assert facts["sources"]["wwids_file"] == "ok" and facts["sources"]["multipathd"] == "ok"
    assert [(p["dev"], p["wwid"]) for p in facts["paths"] if p["unmapped"]] == [("sdd", WWID[2]), ("sdg", WWID[2])]
    assert facts["summary"]["unmapped_paths"] == 2 and facts["summary"]["maps"] == 3
    assert facts["summary"]["faulty_paths"] == 0 and "warnings" not in result


def test_openers_of_each_map_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = build_lab_sysfs(tmp_path)
    proc = tmp_path / "proc"
    for pid, comm, targets in ((1234, "udev-worker", ["/dev/dm-1"]), (40, "multipathd", ["/dev/sdc", "/dev/dm-1"])):
        (proc / str(pid) / "fd").mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(comm + "\n")
        for fd, target in enumerate(targets):
            os.symlink(target, proc / str(pid) / "fd" / str(fd))
    runner = ScriptedRunner(lab_script("unmapped"))
    result = run_module(monkeypatch, capsys, root=root, runner=runner, args={})
    maps = {m["dm"]: m for m in result["ansible_facts"]["lunsafe_multipath"]["maps"]}
    # multipathd counts as an opener of a map, not of a path (it holds every path open for its checkers)
    assert maps["dm-1"]["openers"] == [
        {"pid": 40, "command": "multipathd", "device": "dm-1"},
        {"pid": 1234, "command": "udev-worker", "device": "dm-1"},
    ]
    assert [m["openers"] for name, m in maps.items() if name != "dm-1"] == [[]] * (len(maps) - 1)


def test_lock_options_are_accepted_for_the_action_group_and_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = tmp_path / "missing-dir" / "os-brick-connect_volume"
    args = {"lock_file": str(lock), "lock_timeout": 1, "lock_lease": {"id": "x"}}
    runner = ScriptedRunner(lab_script("unmapped"))
    result = run_module(monkeypatch, capsys, root=build_lab_sysfs(tmp_path), runner=runner, args=args)
    assert "failed" not in result and not lock.parent.exists()  # read-only: the lock is never taken


def test_every_key_of_the_facts_is_documented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = build_lab_sysfs(tmp_path, states={"sdc": "offline"}, removed={"sdh"}, no_block={"sde"})
    runner = ScriptedRunner(
        [
            (mp.show_paths(), 1, "", ""),
            (mp.dmsetup_status_all(), 0, fixture("nodaemon", "dmstatus"), ""),
            (mp.dmsetup_table_all(), 0, fixture("nodaemon", "dmtable"), ""),
        ]
    )
    result = run_module(monkeypatch, capsys, root=root, runner=runner, args={"multipath_ll_fallback": False})
    facts = result["ansible_facts"]["lunsafe_multipath"]
    doc = yaml.safe_load(multipath_faulty_facts.RETURN)["ansible_facts"]["contains"]["lunsafe_multipath"]["contains"]
    assert facts["maps"] and facts["paths"] and facts["orphans"]  # every list has an entry to compare
    assert sorted(facts) == sorted(doc)
    for key in ("summary", "maps", "paths", "orphans"):
        entries = [facts[key]] if isinstance(facts[key], dict) else facts[key]
        for entry in entries:
            assert sorted(entry) == sorted(doc[key]["contains"]), key
    assert sorted(facts["paths"][-1]["session"]) == sorted(doc["paths"]["contains"]["session"]["contains"])
