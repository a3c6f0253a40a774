# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run iscsi_info's main() over a fake sysfs of the lab host and iscsiadm output captured there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml
from ansible.module_utils.common import warnings as ansible_warnings

from ansible_collections.lunsafe.san.plugins.module_utils import _iscsiadm as iscsiadm
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.modules import iscsi_info
from ansible_collections.lunsafe.san.tests.unit.compat import patch_module_args
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.iscsi_info_host import (
    SESSION_SECRET,
    lab_script,
    lab_sysfs,
)
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.sysfs_tree import build_sysfs


@pytest.fixture(autouse=True)
def one_module_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test is one module run: warnings ansible-core keeps in module globals must not leak between them."""
    # empty, of the type this ansible-core keeps them in (dicts from 2.19 on, lists in 2.17)
    monkeypatch.setattr(ansible_warnings, "_global_warnings", type(ansible_warnings._global_warnings)())
    monkeypatch.setattr(ansible_warnings, "_global_deprecations", type(ansible_warnings._global_deprecations)())


def run_module(
    capsys: pytest.CaptureFixture[str], *, root: Path, runner: ScriptedRunner, args: Dict[str, Any]
) -> Dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        iscsi_info.main(make_host=lambda _runner: Host(runner=runner, sysfs_root=str(root)))
    result: Dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def always_keys() -> set:
    doc = yaml.safe_load(iscsi_info.RETURN)
    return {key for key, spec in doc.items() if spec["returned"] == "always"}


def test_check_mode_reads_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = lab_sysfs(tmp_path)
    results = []
    for check_mode in (False, True):
        runner = ScriptedRunner(lab_script())
        results.append(run_module(capsys, root=root, runner=runner, args={"_ansible_check_mode": check_mode}))
        assert runner.remaining == []
    normal, check = results
    for result in results:
        assert result["changed"] is False
        assert "ansible_facts" not in result  # an info module: everything at the top level
        assert always_keys() - set(result) == set()
    for key in ("sessions", "nodes", "discovery", "filters"):
        assert normal[key] == check[key]
    assert [len(s["luns"]) for s in normal["sessions"]] == [2, 2]
    assert SESSION_SECRET not in json.dumps(normal)


def test_options_reach_the_procedure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = ScriptedRunner(lab_script())
    result = run_module(
        capsys,
        root=lab_sysfs(tmp_path),
        runner=runner,
        args={
            "portals": ["127.0.0.1:3260"],
            "targets": ["iqn.2003-01.org.lunsafe.lab:array"],
            "all_settings": True,
            "timeout": 3,
            "lock_file": str(tmp_path / "lock"),  # accepted for the action group's module_defaults, never taken
            "lock_lease": {"id": "any"},
        },
    )
    assert not (tmp_path / "lock").exists()
    assert [s["sid"] for s in result["sessions"]] == [1]
    assert result["nodes"][0]["settings"]["node.session.scan"] == "manual"
    assert result["filters"] == {"targets": ["iqn.2003-01.org.lunsafe.lab:array"], "portals": ["127.0.0.1:3260"]}
    assert [call.timeout for call in runner.calls] == [3, 3, 3]


def test_warnings_are_returned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = ScriptedRunner(lab_script())
    result = run_module(capsys, root=lab_sysfs(tmp_path), runner=runner, args={"portals": ["192.0.2.1"]})
    assert result["sessions"] == [] and result["nodes"] == [] and result["discovery"] == []
    warnings = json.dumps(result["warnings"])  # the format varies with ansible-core (2.19: WarningSummary dicts)
    assert (
        "no session, node record or discovery record matches the filters (targets: any; portals: 192.0.2.1)" in warnings
    )
    assert len(result["warnings"]) == 1


def test_no_records_no_sessions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runner = ScriptedRunner(
        [
            (iscsiadm.node_show_all(), 21, "", "iscsiadm: No records found\n"),
            (iscsiadm.discoverydb_list(), 21, "", ""),
        ]
    )
    result = run_module(capsys, root=build_sysfs(tmp_path), runner=runner, args={})
    assert result.get("failed") is not True
    assert (result["sessions"], result["nodes"], result["discovery"]) == ([], [], [])
    assert "warnings" not in result


@pytest.mark.parametrize(
    ("args", "missing", "message"),
    [
        ({}, ["iscsiadm"], "iscsiadm was not found on this host: install open-iscsi"),
        ({"timeout": 0}, [], "timeout must be greater than 0 seconds, got 0"),
        ({"targets": ["nope"]}, [], "targets is not an iSCSI name"),
    ],
)
def test_failures_carry_every_documented_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: Dict[str, Any], missing: list, message: str
) -> None:
    runner = ScriptedRunner([], missing_tools=missing)
    result = run_module(capsys, root=lab_sysfs(tmp_path), runner=runner, args=args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert always_keys() - set(result) == set()
    assert (result["sessions"], result["nodes"], result["discovery"], result["changed"]) == ([], [], [], False)
    assert runner.calls == []
