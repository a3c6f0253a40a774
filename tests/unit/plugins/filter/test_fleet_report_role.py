# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The faulty_remediation role over a fleet, on the controller only: ansible-playbook against local hosts.

The role and the filters are this checkout's; the two modules it calls are stand-ins (a copy of the collection
where plugins/modules holds them): the facts one returns real fault facts (classify() of the lab output in
module_utils/fixtures/faults) or fails, per host; the flush one records what it was asked and answers as told.
One more host is unreachable (ssh to a closed port). What is pinned: every host plans before any flushes, the
fleet cap stops every host, a broken or unreachable host stops nobody else, check mode flushes nothing, and the
report is written once, on the controller, in both forms.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from ansible_collections.lunsafe.san.tests.unit.plugins.filter.test_fleet_report import facts_of

CHECKOUT = Path(__file__).resolve().parents[4]

FACTS_MODULE = """#!/usr/bin/python
from __future__ import annotations
import json, os
from ansible.module_utils.basic import AnsibleModule
def main():
    module = AnsibleModule(argument_spec={"targets": {"type": "list", "elements": "str"},
        "wwids": {"type": "list", "elements": "str"}, "timeout": {"type": "float"},
        "lock_file": {"type": "path"}, "lock_timeout": {"type": "float"}}, supports_check_mode=True)
    stem = module.params["lock_file"][: -len(".lock")]
    with open(stem + ".calls", "a") as calls:
        calls.write("facts\\n")
    with open(stem + ".facts.json") as fixture:
        facts = json.load(fixture)
    if "fail" in facts:
        module.fail_json(msg=facts["fail"])
    module.exit_json(changed=False, ansible_facts={"lunsafe_multipath": facts})
main()
"""

FLUSH_MODULE = """#!/usr/bin/python
from __future__ import annotations
import copy
import json
from ansible.module_utils.basic import AnsibleModule
def main():
    module = AnsibleModule(argument_spec={"map": {"type": "str", "required": True}, "force": {"type": "bool"},
        "remove_wwid": {"type": "bool"}, "command_timeout": {"type": "float"},
        "lock_file": {"type": "path"}, "lock_timeout": {"type": "float"}}, supports_check_mode=True)
    stem = module.params["lock_file"][: -len(".lock")]
    with open(stem + ".calls", "a") as calls:
        calls.write("flush %s check=%s\\n" % (module.params["map"], module.check_mode))
    with open(stem + ".flush.json") as fixture:
        refuse = json.load(fixture).get(module.params["map"])
    if refuse:
        module.fail_json(msg=refuse, map=None)
    module.exit_json(changed=True, map={"wwid": module.params["map"]})
main()
"""

PLAY = """---
- name: Remediate the fleet
  hosts: fleet
  gather_facts: false
  tasks:
    - name: Remediate
      ansible.builtin.include_role:
        name: lunsafe.san.faulty_remediation
      vars:
        faulty_remediation_lock_file: "{{ work }}/{{ inventory_hostname }}.lock"
        faulty_remediation_report_dir: "{{ work }}/report"
"""


@pytest.fixture(name="collection")
def fixture_collection(tmp_path: Path) -> Path:
    """A collections path with lunsafe.san: this checkout's roles, filters and meta, stand-in modules."""
    if not shutil.which("ssh"):
        pytest.skip("the unreachable host needs an ssh client")
    root = tmp_path / "collections" / "ansible_collections" / "lunsafe" / "san"
    (root / "plugins" / "modules").mkdir(parents=True)
    for name in ("galaxy.yml", "meta", "roles"):
        (root / name).symlink_to(CHECKOUT / name)
    for name in ("filter", "plugin_utils", "module_utils", "doc_fragments"):
        (root / "plugins" / name).symlink_to(CHECKOUT / "plugins" / name)
    (root / "plugins" / "modules" / "multipath_faulty_facts.py").write_text(FACTS_MODULE, encoding="utf-8")
    (root / "plugins" / "modules" / "multipath_flush.py").write_text(FLUSH_MODULE, encoding="utf-8")
    return tmp_path / "collections"


def playbook(
    tmp_path: Path, collection: Path, hosts: Dict[str, Any], *, check: bool = False, **variables: Any
) -> subprocess.CompletedProcess[str]:
    """Run the play over local hosts (facts and flush answers per host) and one unreachable host."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    lines = ["[fleet]"]
    for host, (facts, refuse, *host_vars) in hosts.items():
        (work / f"{host}.facts.json").write_text(json.dumps(facts), encoding="utf-8")
        (work / f"{host}.flush.json").write_text(json.dumps(refuse), encoding="utf-8")
        extra = "".join(f" {key}={json.dumps(value)}" for item in host_vars for key, value in item.items())
        lines.append(f"{host} ansible_connection=local ansible_python_interpreter={sys.executable}{extra}")
    lines.append("node9 ansible_host=127.0.0.1 ansible_port=1 ansible_ssh_common_args='-o ConnectTimeout=5'")
    (work / "inventory.ini").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (work / "play.yml").write_text(PLAY, encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_") and key != "PYTHONPATH"}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(collection),
        ANSIBLE_INJECT_FACT_VARS="false",
        ANSIBLE_HOST_KEY_CHECKING="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_RETRY_FILES_ENABLED="false",
        HOME=str(tmp_path),
    )
    argv = [sys.executable, "-m", "ansible", "playbook", "-i", str(work / "inventory.ini"), str(work / "play.yml")]
    argv += ["--forks", "2", "-e", json.dumps({"work": str(work), **variables})]
    if check:
        argv.append("--check")
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)


def calls(tmp_path: Path, host: str) -> List[str]:
    path = tmp_path / "work" / f"{host}.calls"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def report(tmp_path: Path) -> Dict[str, Any]:
    return json.loads((tmp_path / "work" / "report" / "report.json").read_text(encoding="utf-8"))


def outcomes(data: Dict[str, Any]) -> List[Any]:
    return [(row["host"], row["map"], row["outcome"]) for row in data["rows"]]


def recap(run: subprocess.CompletedProcess[str], host: str) -> Optional[str]:
    lines = [line for line in run.stdout.splitlines() if line.startswith(host + " ") and "ok=" in line]
    return lines[-1] if lines else None


@pytest.fixture(name="fleet")
def fixture_fleet(tmp_path: Path) -> Dict[str, Any]:
    """node1: LUN 2 unmapped (mpatha safe to clean); node2: the same, and the flush refuses mpatha (open);
    node3: multipathd stopped."""
    unmapped = facts_of(tmp_path, "unmapped")
    unmapped["sources"] = {"sysfs": "ok", "multipathd": "ok", "dmsetup": "ok"}
    nodaemon = facts_of(tmp_path, "nodaemon", daemon=False, states={"sdc": "offline"}, removed={"sdh"})
    mpatha = next(item["wwid"] for item in unmapped["maps"] if item["name"] == "mpatha")
    return {
        "node1": (unmapped, {}),
        "node2": (unmapped, {mpatha: "map mpatha is open (1 opener): nothing was changed"}),
        "node3": (nodaemon, {}),
        "mpatha": mpatha,
    }


def test_one_broken_and_one_unreachable_host_stop_nobody_else(
    tmp_path: Path, collection: Path, fleet: Dict[str, Any]
) -> None:
    mpatha = fleet.pop("mpatha")
    run = playbook(tmp_path, collection, fleet)
    assert run.returncode == 2, run.stdout + run.stderr
    assert calls(tmp_path, "node1") == ["facts", f"flush {mpatha} check=False", "facts"]
    assert calls(tmp_path, "node2") == ["facts", f"flush {mpatha} check=False", "facts"]
    assert calls(tmp_path, "node3") == ["facts"]  # multipathd down: nothing planned, nothing flushed
    assert "failed=0" in str(recap(run, "node1"))
    for host in ("node2", "node3", "node9"):
        assert "failed=1" in str(recap(run, host)), run.stdout
    assert "multipathd is not running: checker states are unknown; nothing was changed on this host" in run.stdout
    data = report(tmp_path)
    assert {line["host"]: line["status"] for line in data["hosts"]} == {
        "node1": "ok",
        "node2": "ok",
        "node3": "broken",
        "node9": "broken",
    }
    assert next(line for line in data["hosts"] if line["host"] == "node9")["note"].startswith("unreachable")
    assert outcomes(data) == [
        ("node1", "mpatha", "cleaned"),
        ("node2", "mpatha", "refused"),
        ("node3", "mpatha", "left alone"),
        ("node3", "mpathb", "left alone"),
    ]
    assert data["rows"][1]["outcome_why"] == "the flush refused it: map mpatha is open (1 opener): nothing was changed"
    text = (tmp_path / "work" / "report" / "report.md").read_text(encoding="utf-8")
    assert text.startswith("# Faulty multipath devices - fleet report\n\n## Summary\n\n- 4 hosts: 2 ok, 2 broken\n")
    assert "| node1 | mpatha | " in text and "| cleaned | flushed, its paths deleted |" in text


def test_over_the_fleet_cap_no_host_flushes_and_the_role_fails_once(
    tmp_path: Path, collection: Path, fleet: Dict[str, Any]
) -> None:
    fleet.pop("mpatha")
    run = playbook(tmp_path, collection, fleet, faulty_remediation_fleet_max_maps=1)
    assert run.returncode == 2
    for host in ("node1", "node2", "node3"):
        assert [call for call in calls(tmp_path, host) if call.startswith("flush")] == []
    output = run.stdout + run.stderr
    message = (
        "faulty_remediation_fleet_max_maps=1 refuses the run, nothing was changed on any host: 2 maps were selected"
        " for cleanup on 2 hosts, more than the fleet cap of 1 (maps per host: node1 1, node2 1)"
    )
    # one failure, on the host the check ran on; the run stops there for every host (none reaches its own checks)
    assert message in output and output.count("FAILED!") == 1, output
    assert "nothing was changed on this host" not in output
    # each host's own output says so, before the failure (node3: multipathd stopped, node9: unreachable)
    assert output.count('"status": "over_fleet_cap"') == 2 and output.count('"status": "broken"') == 2, output
    data = report(tmp_path)
    assert data["fleet_problem"].startswith("2 maps were selected for cleanup on 2 hosts")
    assert outcomes(data)[:2] == [("node1", "mpatha", "refused"), ("node2", "mpatha", "refused")]
    assert {row["outcome_why"] for row in data["rows"][:2]} == {"over the fleet cap"}


def test_check_mode_writes_the_plan_changes_nothing_and_refused_hosts_fail_with_their_message(
    tmp_path: Path, collection: Path, fleet: Dict[str, Any]
) -> None:
    mpatha = fleet.pop("mpatha")
    unmapped = fleet["node1"][0]
    held = copy.deepcopy(unmapped)
    next(item for item in held["maps"] if item["name"] == "mpatha")["holders"] = ["dm-9"]
    fleet["node2"] = (unmapped, {})
    # node3 selects a held map, node4 more maps than its faulty_remediation_max_maps: both refused, nothing flushed
    fleet["node3"] = (held, {}, {"faulty_remediation_select": "maps[?dead]"})
    fleet["node4"] = (unmapped, {}, {"faulty_remediation_max_maps": 0})
    run = playbook(tmp_path, collection, fleet, check=True)
    assert run.returncode == 2, run.stdout
    assert calls(tmp_path, "node1") == ["facts", f"flush {mpatha} check=True"]  # no second read in check mode
    assert calls(tmp_path, "node3") == calls(tmp_path, "node4") == ["facts"]
    output = run.stdout + run.stderr
    assert (
        "fix the paths, or detach the LUN with the lun_detach role): []; held (partitions, LVM, dm-crypt, another"
        " map): ['mpatha']. Narrow the expression." in output
    )
    assert (
        "1 maps were selected for cleanup, more than faulty_remediation_max_maps=0; nothing was changed."
        " Review them (mpatha) and raise the limit." in output
    )
    data = report(tmp_path)
    assert data["check_mode"] is True
    assert outcomes(data) == [
        ("node1", "mpatha", "would clean"),
        ("node2", "mpatha", "would clean"),
        ("node3", "mpatha", "refused"),
        ("node4", "mpatha", "refused"),
    ]
    assert [row["outcome_why"] for row in data["rows"][2:]] == [
        "held by dm-9",
        "the host's plan was refused (see the host's note)",
    ]
    assert {line["host"]: line["status"] for line in data["hosts"]}["node4"] == "refused"
    assert "Check mode: the plan only, nothing was changed on any host." in (
        tmp_path / "work" / "report" / "report.md"
    ).read_text(encoding="utf-8")
