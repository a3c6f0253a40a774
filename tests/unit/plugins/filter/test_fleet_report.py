# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet report filters over real fault facts: classify() of the lab output in module_utils/fixtures/faults."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.lunsafe.san.plugins.filter import (
    fleet_cap_problem,
    fleet_host_problem,
    fleet_report,
    fleet_report_markdown,
)
from ansible_collections.lunsafe.san.plugins.filter.fleet_cap_problem import fleet_cap_problem as cap
from ansible_collections.lunsafe.san.plugins.filter.fleet_host_problem import fleet_host_problem as problem
from ansible_collections.lunsafe.san.plugins.filter.fleet_report import fleet_report as report
from ansible_collections.lunsafe.san.plugins.filter.fleet_report_markdown import fleet_report_markdown as markdown
from ansible_collections.lunsafe.san.plugins.module_utils import _faults as faults
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.faults_host import WWID, build_lab_sysfs
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.test_faults import observe

# lab host of the fixtures: mpatha is LUN 2, mpathb LUN 3 (see faults_host.py)
MPATHA = WWID[2]


def facts_of(tmp_path: Path, state: str, *, daemon: bool = True, **sysfs: Any) -> Dict[str, Any]:
    """The lunsafe_multipath facts the module returns on the lab host in ``state``."""
    root = build_lab_sysfs(tmp_path, name=f"sys-{state}", **sysfs)
    obs = observe(root, state, daemon=daemon, ll=not daemon)
    obs.sources.update({"sysfs": "ok", "dmsetup": "ok", "multipathd": "ok" if daemon else "not_running"})
    return faults.classify(obs)


def registered(facts: Dict[str, Any]) -> Dict[str, Any]:
    """A registered multipath_faulty_facts result."""
    return {"changed": False, "failed": False, "ansible_facts": {"lunsafe_multipath": facts}}


def by_name(facts: Dict[str, Any], name: str) -> Dict[str, Any]:
    return next(item for item in facts["maps"] if item["name"] == name)


def record(
    host: str,
    result: Dict[str, Any],
    *,
    selected: Optional[List[Dict[str, Any]]] = None,
    problem: str = "",
    refusal: str = "",
    flush: Optional[Dict[str, Any]] = None,
    done: bool = True,
) -> Dict[str, Any]:
    """A host record as the role keeps it (selected: name and wwid of each map)."""
    return {
        "host": host,
        "facts": result,
        "problem": problem,
        "refusal": refusal,
        "selected": [{"name": item["name"], "wwid": item["wwid"]} for item in selected or []],
        "done": done,
        "flush": flush,
    }


def flushed(*outcomes: Dict[str, Any]) -> Dict[str, Any]:
    """A registered multipath_flush loop: each outcome has the item (a map) and changed/failed/msg."""
    return {"changed": any(o.get("changed") for o in outcomes), "results": list(outcomes)}


@pytest.fixture(name="unmapped")
def fixture_unmapped(tmp_path: Path) -> Dict[str, Any]:
    """LUN 2 unmapped by the array: mpatha dead, queueing, unpresented; sdd and sdg checker_faulty, dm_failed."""
    return facts_of(tmp_path, "unmapped")


@pytest.fixture(name="nodaemon")
def fixture_nodaemon(tmp_path: Path) -> Dict[str, Any]:
    """multipathd stopped, sdc offline and sdh deleted: mpathb dead with an orphan entry."""
    return facts_of(tmp_path, "nodaemon", daemon=False, states={"sdc": "offline"}, removed={"sdh"})


# --- fleet_host_problem --------------------------------------------------------------------------------------


def test_a_host_with_multipathd_answering_has_no_problem(unmapped: Dict[str, Any]) -> None:
    assert problem(registered(unmapped)) == ""


def test_a_host_whose_multipathd_is_stopped_is_broken(nodaemon: Dict[str, Any]) -> None:
    assert nodaemon["sources"]["multipathd"] == "not_running" and nodaemon["maps"]
    assert problem(registered(nodaemon)) == "multipathd is not running: checker states are unknown"


@pytest.mark.parametrize(
    ("sources", "maps", "expected"),
    [
        ({"multipathd": "timeout"}, 0, "multipathd did not answer in time: checker states are unknown"),
        ({"multipathd": "error"}, 0, "multipathd's answer could not be used: checker states are unknown"),
        ({"multipathd": "not_installed"}, 2, "multipathd is not installed, yet the host has 2 multipath maps"),
        ({"multipathd": "not_installed", "dmsetup": "not_installed"}, 0, ""),  # no multipath on this host at all
        ({"multipathd": "ok", "dmsetup": "timeout"}, 1, "dmsetup is timeout: the maps' queueing state is unknown"),
        (
            {"multipathd": "ok", "dmsetup": "not_installed"},
            1,
            "dmsetup is not installed: the maps' queueing state is unknown",
        ),
        ({"multipathd": "ok", "dmsetup": "not_used"}, 1, ""),
        ({"sysfs": "no_scsi", "multipathd": "not_running"}, 0, "multipathd is not running: checker states are unknown"),
    ],
)
def test_sources_that_make_a_host_broken(sources: Dict[str, str], maps: int, expected: str) -> None:
    facts = {"maps": [{"name": f"m{i}", "wwid": f"w{i}"} for i in range(maps)], "paths": [], "sources": sources}
    assert problem(registered(facts)) == expected


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (
            {"unreachable": True, "changed": False, "msg": "Failed to connect to the host via ssh"},
            "unreachable: Failed to connect to the host via ssh",
        ),
        ({"unreachable": True}, "unreachable"),
        (
            {"failed": True, "msg": "timeout must be a positive number"},
            "the facts could not be gathered: timeout must be a positive number",
        ),
        ({"failed": True}, "the facts could not be gathered"),
        ({"skipped": True, "changed": False}, "the facts were not gathered (the task was skipped)"),
        ({"changed": False, "ansible_facts": {}}, "the result holds no lunsafe_multipath facts"),
        (
            {"changed": False, "ansible_facts": {"lunsafe_multipath": {"maps": None}}},
            "the result holds no lunsafe_multipath facts",
        ),
    ],
)
def test_results_without_usable_facts(result: Dict[str, Any], expected: str) -> None:
    assert problem(result) == expected


def test_host_problem_wants_a_registered_result() -> None:
    with pytest.raises(AnsibleFilterError, match=r"^lunsafe.san.fleet_host_problem: expects the registered result"):
        problem(["not", "a", "result"])


# --- fleet_cap_problem ---------------------------------------------------------------------------------------


def two_maps(facts: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [by_name(facts, "mpatha"), by_name(facts, "mpathb")]


def test_the_cap_counts_the_maps_of_hosts_that_would_flush(unmapped: Dict[str, Any]) -> None:
    records = [
        record("node2", registered(unmapped), selected=two_maps(unmapped)),
        record("node1", registered(unmapped), selected=[by_name(unmapped, "mpatha")]),
        record("node3", registered(unmapped)),  # selected nothing
        record("node4", registered(unmapped), selected=two_maps(unmapped), refusal="held"),  # flushes nothing
        record("node5", {"unreachable": True}, selected=two_maps(unmapped), problem="unreachable"),
    ]
    assert cap(records, 3) == ""  # 3 maps: at the cap is within it
    assert cap(records, "3") == ""  # as Ansible may hand over an int variable
    assert cap(records, 2) == (
        "3 maps were selected for cleanup on 2 hosts, more than the fleet cap of 2 (maps per host: node1 1, node2 2)"
    )
    assert cap(records[1:2], 0) == (
        "1 maps were selected for cleanup on 1 host, more than the fleet cap of 0 (maps per host: node1 1)"
    )
    assert cap([], 0) == ""


@pytest.mark.parametrize("bad", [True, "many", None, -1])
def test_the_cap_must_be_a_number_of_maps(bad: Any) -> None:
    with pytest.raises(AnsibleFilterError, match=r"^lunsafe.san.fleet_cap_problem: the cap must be a number of maps"):
        cap([], bad)


def test_the_cap_wants_host_records() -> None:
    with pytest.raises(AnsibleFilterError, match=r"entry 0 of the host records has no 'facts', 'selected'"):
        cap([{"host": "node1"}], 1)
    with pytest.raises(AnsibleFilterError, match=r"expects the host records \(a list of dicts\), got a dict"):
        cap({"host": "node1"}, 1)


# --- fleet_report --------------------------------------------------------------------------------------------


def test_a_fleet_with_a_cleaned_a_broken_a_refused_a_lost_and_an_absent_host(
    unmapped: Dict[str, Any], nodaemon: Dict[str, Any]
) -> None:
    held = copy.deepcopy(unmapped)
    by_name(held, "mpatha")["holders"] = ["dm-9"]
    by_name(held, "mpatha")["openers"] = [{"pid": 4242, "command": "udev-worker", "device": "dm-0"}]
    mpatha = by_name(unmapped, "mpatha")
    records = [
        record(
            "node1",
            registered(unmapped),
            selected=[mpatha],
            flush=flushed({"item": mpatha, "changed": True, "failed": False, "map": {"name": "mpatha"}}),
        ),
        record("node2", registered(nodaemon), problem=problem(registered(nodaemon))),
        record(
            "node3",
            registered(held),
            selected=[by_name(held, "mpatha")],
            refusal="faulty_remediation_select selected maps that are never flushed",
        ),
        record("node4", registered(unmapped), selected=[mpatha], done=False),  # lost during the flush
        record(
            "node5",
            {"unreachable": True, "msg": "ssh: connect to host node5 port 22: No route to host"},
            problem="unreachable: ssh: connect to host node5 port 22: No route to host",
        ),
    ]
    out = report(records, active=["node1", "node2", "node3", "node5"], absent=["node6", "node1"])
    assert out["check_mode"] is False and out["fleet_problem"] == ""
    status = {line["host"]: (line["status"], line["note"]) for line in out["hosts"]}
    assert status == {
        "node1": ("ok", ""),
        "node2": ("broken", "multipathd is not running: checker states are unknown"),
        "node3": ("refused", "faulty_remediation_select selected maps that are never flushed"),
        "node4": ("lost", "lost after it planned (unreachable or failed): what was flushed is unknown"),
        "node5": ("broken", "unreachable: ssh: connect to host node5 port 22: No route to host"),
        "node6": ("absent", "failed or unreachable before the role ran"),
    }
    outcomes = [(row["host"], row["map"], row["outcome"], row["outcome_why"]) for row in out["rows"]]
    assert outcomes == [
        ("node1", "mpatha", "cleaned", "flushed, its paths deleted"),
        # multipathd stopped: what the facts know is shown, nothing is cleaned there
        (
            "node2",
            "mpatha",
            "left alone",
            "the host is not cleaned: multipathd is not running: checker states are unknown",
        ),
        (
            "node2",
            "mpathb",
            "left alone",
            "the host is not cleaned: multipathd is not running: checker states are unknown",
        ),
        ("node3", "mpatha", "refused", "held by dm-9"),
        ("node4", "mpatha", "unknown", "the host was lost after it planned (unreachable or failed): run again to see"),
    ]
    row = out["rows"][0]
    assert row == {
        "host": "node1",
        "map": "mpatha",
        "wwid": MPATHA,
        "dm": mpatha["dm"],
        "paths": 2,
        "faulty_paths": 2,
        "dead": True,
        "queueing_dead": True,
        "presented": False,
        "reasons": ["no_active_path", "queueing_without_path", "unpresented", "faulty_paths"],
        "path_reasons": {"sdd": ["checker_faulty", "dm_failed"], "sdg": ["checker_faulty", "dm_failed"]},
        "why": "no_active_path, queueing_without_path, unpresented, faulty_paths; sdd: checker_faulty, dm_failed;"
        " sdg: checker_faulty, dm_failed",
        "holders": [],
        "openers": [],
        "outcome": "cleaned",
        "outcome_why": "flushed, its paths deleted",
    }
    assert out["rows"][3]["openers"] == ["udev-worker[4242] on dm-0"] and out["rows"][3]["holders"] == ["dm-9"]
    node5 = next(line for line in out["hosts"] if line["host"] == "node5")
    assert node5["maps"] is None and node5["faulty_paths"] is None and node5["selected"] == 0
    node1 = next(line for line in out["hosts"] if line["host"] == "node1")
    assert (node1["maps"], node1["faulty_maps"], node1["paths"], node1["faulty_paths"]) == (4, 1, 8, 2)
    assert (node1["selected"], node1["cleaned"], node1["refused"], node1["left_alone"]) == (1, 1, 0, 0)
    assert out["summary"] == {
        "hosts": 6,
        "hosts_ok": 1,
        "hosts_broken": 2,
        "hosts_refused": 1,
        "hosts_lost": 1,
        "hosts_absent": 1,
        "maps": 4 * 4,
        "faulty_maps": 1 + nodaemon["summary"]["faulty_maps"] + 1 + 1,
        "dead_maps": 1 + nodaemon["summary"]["dead_maps"] + 1 + 1,
        "paths": 8 + nodaemon["summary"]["paths"] + 8 + 8,
        "faulty_paths": 2 + nodaemon["summary"]["faulty_paths"] + 2 + 2,
        "unmapped_paths": 0,
        "cleaned": 1,
        "would_clean": 0,
        "refused": 1,
        "left_alone": 2,
        "gone": 0,
        "unknown": 1,
    }


def test_each_outcome_of_a_selected_map(unmapped: Dict[str, Any]) -> None:
    facts = copy.deepcopy(unmapped)
    mpatha, mpathb = by_name(facts, "mpatha"), by_name(facts, "mpathb")
    mpathb.update(faulty=True, reasons=["unpresented"], presented=False)
    mpathc = by_name(facts, "mpathc")  # healthy, selected by name: shown because it is selected
    mpathd = by_name(facts, "mpathd")
    mpathd.update(faulty=True, reasons=["faulty_paths"], presented=True)  # faulty, not selected: left alone
    flush = flushed(
        {"item": mpatha, "changed": True},
        {"item": mpathb, "failed": True, "msg": "map mpathb is open (1 opener): nothing was changed"},
        {"item": mpathc, "changed": False},
    )
    selected = [mpatha, mpathb, mpathc, by_name(facts, "mpathb") | {"wwid": "3600unknown"}]
    rows = report([record("node1", registered(facts), selected=selected, flush=flush)])["rows"]
    assert [(row["map"], row["outcome"], row["outcome_why"]) for row in rows] == [
        ("mpatha", "cleaned", "flushed, its paths deleted"),
        ("mpathb", "refused", "the flush refused it: map mpathb is open (1 opener): nothing was changed"),
        ("mpathc", "gone", "the map was already gone"),
        ("mpathd", "left alone", "its LUN is still presented"),
    ]
    # a failed flush without a message, a selected map without a flush result
    flush = flushed({"item": mpatha, "failed": True})
    rows = report([record("node1", registered(facts), selected=[mpatha, mpathb], flush=flush)])["rows"]
    assert [(row["outcome"], row["outcome_why"]) for row in rows[:2]] == [
        ("refused", "the flush refused it: no message"),
        ("unknown", "no flush result for this map"),
    ]


def test_check_mode_and_the_fleet_cap(unmapped: Dict[str, Any]) -> None:
    mpatha = by_name(unmapped, "mpatha")
    flush = flushed({"item": mpatha, "changed": True})
    out = report([record("node1", registered(unmapped), selected=[mpatha], flush=flush)], check_mode=True)
    assert out["check_mode"] is True
    assert [(row["outcome"], row["outcome_why"]) for row in out["rows"]] == [
        ("would clean", "check mode: nothing was changed")
    ]
    assert out["summary"]["would_clean"] == 1 and out["summary"]["cleaned"] == 0
    over = "3 maps were selected for cleanup on 2 hosts, more than the fleet cap of 2 (maps per host: node1 1, node2 2)"
    out = report(
        [
            record("node1", registered(unmapped), selected=[mpatha]),
            record("node2", registered(unmapped)),  # selected nothing: nothing to say about the cap
        ],
        fleet_problem=over,
        check_mode=True,
    )
    assert out["fleet_problem"] == over
    assert [(row["host"], row["outcome"], row["outcome_why"]) for row in out["rows"]] == [
        ("node1", "refused", "over the fleet cap"),
        ("node2", "left alone", "not selected"),
    ]
    notes = {line["host"]: line["note"] for line in out["hosts"]}
    assert notes == {"node1": "nothing was changed: over the fleet cap", "node2": ""}


def test_a_refused_host_leaves_what_it_did_not_select(unmapped: Dict[str, Any]) -> None:
    facts = copy.deepcopy(unmapped)
    by_name(facts, "mpathb").update(faulty=True, reasons=["faulty_paths"], presented=True)
    refusal = "faulty_remediation_select='maps[?dead' cannot be used, nothing was changed: invalid"
    rows = report([record("node1", registered(facts), refusal=refusal)])["rows"]
    assert [(row["map"], row["outcome"], row["outcome_why"]) for row in rows] == [
        ("mpatha", "left alone", "not selected; the host's plan was refused"),
        ("mpathb", "left alone", "its LUN is still presented"),
    ]
    # selected, neither held nor presented: refused with the host (more maps than faulty_remediation_max_maps)
    rows = report([record("node1", registered(facts), selected=[by_name(facts, "mpatha")], refusal="2 maps")])["rows"]
    assert (rows[0]["outcome"], rows[0]["outcome_why"]) == (
        "refused",
        "the host's plan was refused (see the host's note)",
    )


def test_the_report_wants_host_records(unmapped: Dict[str, Any]) -> None:
    with pytest.raises(AnsibleFilterError, match=r"^lunsafe.san.fleet_report: host 'node1' has two records"):
        report([record("node1", registered(unmapped)), record("node1", registered(unmapped))])
    with pytest.raises(AnsibleFilterError, match=r"expects the facts result of a host record \(a dict\), got a str"):
        report([record("node1", "facts")])  # type: ignore[arg-type]
    with pytest.raises(AnsibleFilterError, match=r"entry 0 of the selected maps of node1 is a str"):
        report([{"host": "node1", "facts": registered(unmapped), "selected": ["mpatha"]}])


def test_paths_without_a_name_and_openers_that_are_not_dicts() -> None:
    facts = {
        "summary": {"maps": 1},
        "maps": [
            {
                "name": "m",
                "wwid": "w",
                "faulty": True,
                "reasons": ["orphan_table_entries"],
                "paths": ["8:112"],
                "openers": ["pid 7"],
                "holders": None,
            },
        ],
        "paths": [
            {"dev": None, "hctl": "2:0:0:3", "map": "m", "faulty": True, "reasons": ["device_gone"]},
            {"dev": None, "hctl": None, "devt": "8:112", "map": "m", "faulty": True, "reasons": ["session_gone"]},
            {"dev": "sdz", "map": None, "faulty": True, "reasons": ["device_offline"]},
        ],
        "sources": {"multipathd": "ok"},
    }
    row = report([record("node1", registered(facts))])["rows"][0]
    assert row["path_reasons"] == {"2:0:0:3": ["device_gone"], "8:112": ["session_gone"]}
    assert (row["paths"], row["faulty_paths"], row["openers"], row["holders"]) == (2, 2, ["pid 7"], [])
    facts["paths"] = []
    row = report([record("node1", registered(facts))])["rows"][0]
    assert (row["paths"], row["faulty_paths"], row["why"]) == (1, 0, "orphan_table_entries")


def test_lost_needs_the_list_of_active_hosts(unmapped: Dict[str, Any]) -> None:
    records = [record("node1", registered(unmapped), done=False)]
    assert report(records)["hosts"][0]["status"] == "ok"  # without active, every host is taken as still there
    assert report(records, active=["node1"])["hosts"][0]["status"] == "ok"
    assert report(records, active=[])["hosts"][0]["status"] == "lost"


# --- fleet_report_markdown -----------------------------------------------------------------------------------


def test_markdown_has_the_summary_first_then_the_hosts_then_the_maps(
    unmapped: Dict[str, Any], nodaemon: Dict[str, Any]
) -> None:
    mpatha = by_name(unmapped, "mpatha")
    held = copy.deepcopy(unmapped)
    by_name(held, "mpatha").update(holders=["dm-9"], openers=[{"pid": 1, "command": "a|b", "device": "dm-0"}])
    records = [
        record("node1", registered(unmapped), selected=[mpatha], flush=flushed({"item": mpatha, "changed": True})),
        record("node2", registered(nodaemon), problem="multipathd is not running: checker states are unknown"),
        record("node3", registered(held)),
    ]
    text = markdown(report(records, absent=["node9"]))
    assert (
        text
        == "\n".join(
            [
                "# Faulty multipath devices - fleet report",
                "",
                "## Summary",
                "",
                "- 4 hosts: 2 ok, 1 broken, 1 absent",
                f"- {2 + nodaemon['summary']['faulty_maps']} faulty maps of 12,"
                f" {2 + nodaemon['summary']['dead_maps']} dead;"
                f" {4 + nodaemon['summary']['faulty_paths']} faulty paths of {16 + nodaemon['summary']['paths']};"
                " 0 paths left without their map",
                "- maps cleaned: 1; refused: 0; left alone: 3",
                "- **node2** (broken): multipathd is not running: checker states are unknown",
                "- **node9** (absent): failed or unreachable before the role ran",
                "",
                "## Hosts",
                "",
                "| Host | Status | Faulty maps / maps | Dead | Faulty paths / paths | Unmapped paths | Selected |"
                " Cleaned | Refused | Left alone | Note |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
                "| node1 | ok | 1 / 4 | 1 | 2 / 8 | 0 | 1 | 1 | 0 | 0 | - |",
                f"| node2 | broken | {nodaemon['summary']['faulty_maps']} / 4 | {nodaemon['summary']['dead_maps']} |"
                f" {nodaemon['summary']['faulty_paths']} / {nodaemon['summary']['paths']} | 0 | 0 | 0 | 0 | 2 |"
                " multipathd is not running: checker states are unknown |",
                "| node3 | ok | 1 / 4 | 1 | 2 / 8 | 0 | 0 | 0 | 0 | 1 | - |",
                "| node9 | absent | ? | ? | ? | ? | 0 | 0 | 0 | 0 | failed or unreachable before the role ran |",
                "",
                "## Maps",
                "",
                "| Host | Map | WWID | Faulty paths / paths | Dead | Why | Openers | Holders | Outcome | Because |",
                "|---|---|---|---|---|---|---|---|---|---|",
                f"| node1 | mpatha | {MPATHA} | 2 / 2 | yes, queueing I/O | no_active_path, queueing_without_path,"
                " unpresented, faulty_paths; sdd: checker_faulty, dm_failed; sdg: checker_faulty, dm_failed | - | - |"
                " cleaned | flushed, its paths deleted |",
            ]
            + [line for line in text.splitlines() if line.startswith("| node2 | mpath")]
            + [
                f"| node3 | mpatha | {MPATHA} | 2 / 2 | yes, queueing I/O | no_active_path, queueing_without_path,"
                " unpresented, faulty_paths; sdd: checker_faulty, dm_failed; sdg: checker_faulty, dm_failed |"
                " a\\|b[1] on dm-0 | dm-9 | left alone | held by dm-9 |",
            ]
        )
        + "\n"
    )
    node2_rows = [line for line in text.splitlines() if line.startswith("| node2 | mpath")]
    assert len(node2_rows) == 2 and all(
        "| left alone | the host is not cleaned: multipathd" in line for line in node2_rows
    )


def test_markdown_in_check_mode_refused_by_the_cap_and_with_nothing_faulty(tmp_path: Path) -> None:
    healthy = facts_of(tmp_path, "healthy")
    over = "2 maps were selected | cleanup"
    text = markdown(report([record("node1", registered(healthy))], check_mode=True, fleet_problem=over), title="T")
    assert text.startswith(
        "# T\n\nCheck mode: the plan only, nothing was changed on any host.\n\n"
        "**Refused by the fleet cap, nothing was changed on any host:** 2 maps were selected \\| cleanup.\n\n"
        "## Summary\n\n- 1 host: 1 ok\n"
        "- 0 faulty maps of 4, 0 dead; 0 faulty paths of 8; 0 paths left without their map\n"
        "- maps would clean: 0; refused: 0; left alone: 0\n"
    )
    assert text.endswith("## Maps\n\nNo faulty map on any host.\n")
    summary = dict.fromkeys(("gone", "unknown"), 2) | {"hosts": 0}
    text = markdown({"summary": summary, "hosts": [], "rows": []})
    assert (
        "- 0 hosts\n" in text and "- maps cleaned: 0; refused: 0; left alone: 0; already gone: 2; unknown: 2\n" in text
    )


def test_markdown_wants_a_report() -> None:
    with pytest.raises(AnsibleFilterError, match=r"^lunsafe.san.fleet_report_markdown: expects the report"):
        markdown({"rows": []})


def test_the_filter_plugins_name_their_filters() -> None:
    assert fleet_report.FilterModule().filters() == {"fleet_report": report}
    assert fleet_report_markdown.FilterModule().filters() == {"fleet_report_markdown": markdown}
    assert fleet_host_problem.FilterModule().filters() == {"fleet_host_problem": problem}
    assert fleet_cap_problem.FilterModule().filters() == {"fleet_cap_problem": cap}


def test_a_record_keeps_the_cap_of_its_own_batch(unmapped: Dict[str, Any]) -> None:
    """With serial, batch 1 cleaned; batch 2 was over the cap: the report after batch 2 keeps batch 1's outcome."""
    mpatha = by_name(unmapped, "mpatha")
    first = record("node1", registered(unmapped), selected=[mpatha], flush=flushed({"item": mpatha, "changed": True}))
    second = record("node2", registered(unmapped), selected=[mpatha, by_name(unmapped, "mpathb")])
    out = report([{**first, "fleet_problem": ""}, {**second, "fleet_problem": "2 maps"}], fleet_problem="2 maps")
    assert [(row["host"], row["outcome"]) for row in out["rows"]] == [
        ("node1", "cleaned"),
        ("node2", "refused"),
        ("node2", "refused"),
    ]
    assert [line["note"] for line in out["hosts"]] == ["", "nothing was changed: over the fleet cap"]
