# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible.errors import AnsibleFilterError

from ansible_collections.lunsafe.san.plugins.plugin_utils._role_data import entries

DOCUMENTATION = r"""
name: fleet_report
short_description: One report over the faulty_remediation runs of many hosts - a row per host and faulty map
version_added: 0.1.0
author: lunsafe.san developers (@lunsafe)
description:
  - Takes one record per host of a C(lunsafe.san.faulty_remediation) run (the role builds them) and returns
    the fleet report - a summary, a line per host (also one that could not be reached, whose facts failed or
    whose multipathd does not answer) and a row per host and faulty or selected map, with its faulty paths,
    whether it is dead, why (the map's reasons and each faulty path's), its openers and holders, and what
    happened to it - V(cleaned), V(would clean) (check mode), V(refused), V(left alone), V(gone) (the flush
    found the map already removed) or V(unknown) (the host was lost after it planned).
  - A host record has C(host), C(facts) (the registered result of M(lunsafe.san.multipath_faulty_facts)),
    C(problem) (why the host could not be planned on, see C(lunsafe.san.fleet_host_problem); empty when it
    could), C(refusal) (why the role refused the host's plan - an unusable C(faulty_remediation_select), a
    selection of held or presented maps, more maps than C(faulty_remediation_max_maps); empty when none),
    C(selected) (the maps C(faulty_remediation_select) selected) and, once the host got past the flush, C(done)
    V(true), C(flush) (the registered result of the looped M(lunsafe.san.multipath_flush) task, or V(null)
    when it did not run) and C(fleet_problem) (what the fleet cap said for the host's batch, empty when it let
    the batch go on; without it, O(fleet_problem) counts).
  - Render it for people with C(lunsafe.san.fleet_report_markdown); C(ansible.builtin.to_nice_json) gives the
    machine-readable form.
options:
  _input:
    description: One record per host, as described above.
    type: list
    elements: dict
    required: true
  check_mode:
    description: The run was in check mode - selected maps that could be flushed V(would clean).
    type: bool
    default: false
  fleet_problem:
    description:
      - Why the fleet cap refused the run (see C(lunsafe.san.fleet_cap_problem)); when set, no selected map was
        flushed on any host. A record's own C(fleet_problem) (the cap of its batch with C(serial)) counts instead.
    type: str
    default: ""
  active:
    description:
      - The hosts still in the play when the report is built (C(ansible_play_hosts)). A record whose host is not
        among them and that is not C(done) was lost after it planned; what was flushed there is V(unknown). V(null)
        (the default) takes every host as still there.
    type: list
    elements: str
  absent:
    description:
      - Hosts of the play that have no record because they failed before the role ran; each gets a line.
    type: list
    elements: str
    default: []
seealso:
  - module: lunsafe.san.multipath_faulty_facts
  - module: lunsafe.san.multipath_flush
"""

EXAMPLES = r"""
- name: Build the fleet report (once, from every host's record)
  ansible.builtin.set_fact:
    fleet_report: >-
      {{ ansible_play_hosts_all | map('extract', hostvars) | selectattr('faulty_remediation__record', 'defined')
         | map(attribute='faulty_remediation__record') | list
         | lunsafe.san.fleet_report(check_mode=ansible_check_mode, active=ansible_play_hosts) }}
  run_once: true

- name: Write it as JSON on the controller
  ansible.builtin.copy:
    content: "{{ fleet_report | to_nice_json }}\n"
    dest: /var/tmp/remediation/report.json
    mode: "0644"
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
_value:
  description: The fleet report.
  type: dict
  contains:
    check_mode:
      description: The run was in check mode.
      type: bool
      sample: false
    fleet_problem:
      description: Why the fleet cap refused the run; empty when it did not.
      type: str
      sample: ""
    summary:
      description:
        - Counts over the fleet - C(hosts), C(hosts_ok), C(hosts_broken) (not planned on), C(hosts_refused) (plan
          refused), C(hosts_lost) (lost after planning), C(hosts_absent) (failed before the role), C(maps),
          C(faulty_maps), C(dead_maps), C(paths), C(faulty_paths), C(unmapped_paths), and the outcomes of the rows -
          C(cleaned), C(would_clean), C(refused), C(left_alone), C(gone), C(unknown).
      type: dict
      sample: {hosts: 2, hosts_ok: 1, hosts_broken: 1, hosts_refused: 0, hosts_lost: 0, hosts_absent: 0, maps: 4,
               faulty_maps: 1, dead_maps: 1, paths: 8, faulty_paths: 2, unmapped_paths: 0, cleaned: 1,
               would_clean: 0, refused: 0, left_alone: 0, gone: 0, unknown: 0}
    hosts:
      description:
        - One entry per host, sorted by name - C(host), C(status) (V(ok), V(broken), V(refused), V(lost),
          V(absent)), C(note) (why, for any status but V(ok)), the counts C(maps), C(faulty_maps), C(dead_maps),
          C(paths), C(faulty_paths), C(unmapped_paths) (V(null) when the facts are unknown), C(selected) and the
          outcome counts as in C(summary).
      type: list
      elements: dict
      sample: [{host: node2, status: broken, note: "multipathd is not running: checker states are unknown",
                maps: 4, faulty_maps: 0, dead_maps: 0, paths: 8, faulty_paths: 0, unmapped_paths: 0, selected: 0,
                cleaned: 0, would_clean: 0, refused: 0, left_alone: 0, gone: 0, unknown: 0}]
    rows:
      description:
        - One entry per host and map that is faulty or selected, sorted by host and map name - C(host), C(map),
          C(wwid), C(dm), C(paths) and C(faulty_paths) (counts), C(dead), C(queueing_dead), C(presented),
          C(reasons) (the map's), C(path_reasons) (kernel name or H:C:T:L of each faulty path to its reasons),
          C(why) (all of these as one text), C(holders), C(openers) (each C(command[pid] on device)),
          C(outcome) (V(cleaned), V(would clean), V(refused), V(left alone), V(gone), V(unknown)) and C(outcome_why).
      type: list
      elements: dict
      sample: [{host: node1, map: mpatha, wwid: 36001405ba785f509cd24d268af807554, dm: dm-0, paths: 2,
                faulty_paths: 2, dead: true, queueing_dead: true, presented: false,
                reasons: [no_active_path, queueing_without_path, unpresented, faulty_paths],
                path_reasons: {sdd: [checker_faulty, dm_failed], sdg: [checker_faulty, dm_failed]},
                why: "no_active_path, queueing_without_path, unpresented, faulty_paths; sdd: checker_faulty,
                      dm_failed; sdg: checker_faulty, dm_failed",
                holders: [], openers: [], outcome: cleaned, outcome_why: "flushed, its paths deleted"}]
"""

NAME = "lunsafe.san.fleet_report"

# multipathd states (the facts' sources.multipathd) on which the role plans nothing: it is there and does not answer
_DAEMON_DOWN = {
    "not_running": "multipathd is not running",
    "timeout": "multipathd did not answer in time",
    "error": "multipathd's answer could not be used",
}
_OUTCOMES = ("cleaned", "would clean", "refused", "left alone", "gone", "unknown")
_COUNTS = ("maps", "faulty_maps", "dead_maps", "paths", "faulty_paths", "unmapped_paths")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _mapping(value: Any, what: str, filter_name: str = NAME) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise AnsibleFilterError(f"{filter_name}: expects {what} (a dict), got a {type(value).__name__}")
    return value


def _facts_of(result: Any) -> Optional[Mapping[str, Any]]:
    """The lunsafe_multipath facts of a registered facts result, or None."""
    facts = (result.get("ansible_facts") or {}).get("lunsafe_multipath")
    return facts if isinstance(facts, Mapping) and isinstance(facts.get("maps"), list) else None


def _run_problem(result: Mapping[str, Any]) -> str:
    """Why the facts task gave no facts (unreachable, failed, skipped), or ``''``."""
    msg = _text(result.get("msg")).strip()
    suffix = f": {msg}" if msg else ""
    if result.get("unreachable"):
        return "unreachable" + suffix
    if result.get("failed"):
        return "the facts could not be gathered" + suffix
    if result.get("skipped"):
        return "the facts were not gathered (the task was skipped)"
    return ""


def _sources_problem(facts: Mapping[str, Any]) -> str:
    """Why the facts cannot be trusted for a cleanup (multipathd or dmsetup missing or silent), or ``''``."""
    sources = facts.get("sources") or {}
    daemon = sources.get("multipathd")
    if daemon in _DAEMON_DOWN:
        return f"{_DAEMON_DOWN[daemon]}: checker states are unknown"
    if facts["maps"] and daemon == "not_installed":
        return f"multipathd is not installed, yet the host has {len(facts['maps'])} multipath maps"
    if facts["maps"] and sources.get("dmsetup") not in (None, "ok", "not_used"):
        return f"dmsetup is {_text(sources.get('dmsetup')).replace('_', ' ')}: the maps' queueing state is unknown"
    return ""


def host_problem(result: Any, filter_name: str = NAME) -> str:
    """Why no plan can be made from this registered facts result, or ``''``."""
    result = _mapping(result, "the registered result of multipath_faulty_facts", filter_name)
    problem = _run_problem(result)
    if problem:
        return problem
    facts = _facts_of(result)
    return "the result holds no lunsafe_multipath facts" if facts is None else _sources_problem(facts)


def _records(value: Any, filter_name: str) -> List[Mapping[str, Any]]:
    return entries(value, filter_name=filter_name, what="the host records", keys=("host", "facts", "selected"))


def _planned_count(record: Mapping[str, Any]) -> int:
    """Maps this host would flush: its selection, unless the host is broken or its plan refused."""
    if record.get("problem") or record.get("refusal"):
        return 0
    return len(record["selected"] or [])


def cap_problem(records: Any, cap: Any, filter_name: str = NAME) -> str:
    """Why the fleet cap refuses the run (total over the records above ``cap``), or ``''``."""
    if isinstance(cap, bool):
        raise AnsibleFilterError(f"{filter_name}: the cap must be a number of maps (0 or more), got {cap!r}")
    try:
        limit = int(cap)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"{filter_name}: the cap must be a number of maps (0 or more), got {cap!r}") from None
    if limit < 0:
        raise AnsibleFilterError(f"{filter_name}: the cap must be a number of maps (0 or more), got {cap!r}")
    counts = [(str(record["host"]), _planned_count(record)) for record in _records(records, filter_name)]
    total = sum(count for _host, count in counts)
    if total <= limit:
        return ""
    per_host = ", ".join(f"{host} {count}" for host, count in sorted(counts) if count)
    hosts = sum(1 for _host, count in counts if count)
    return (
        f"{total} maps were selected for cleanup on {hosts} host{'s' if hosts != 1 else ''}, more than the fleet cap"
        f" of {limit} (maps per host: {per_host})"
    )


def _path_key(path: Mapping[str, Any]) -> str:
    return _text(path.get("dev") or path.get("hctl") or path.get("devt") or "?")


def _opener(opener: Any) -> str:
    if isinstance(opener, Mapping):
        return f"{_text(opener.get('command'))}[{_text(opener.get('pid'))}] on {_text(opener.get('device'))}"
    return _text(opener)


def _flush_outcomes(flush: Any) -> Dict[str, Mapping[str, Any]]:
    """WWID -> the flush result of that map's loop item."""
    if not isinstance(flush, Mapping):
        return {}
    out: Dict[str, Mapping[str, Any]] = {}
    for result in flush.get("results") or []:
        item = result.get("item") if isinstance(result, Mapping) else None
        if isinstance(item, Mapping) and "wwid" in item:
            out[_text(item["wwid"])] = result
    return out


def _selected_why(fact_map: Mapping[str, Any]) -> str:
    if fact_map.get("holders"):
        return "held by " + ", ".join(_text(holder) for holder in fact_map["holders"])
    if fact_map.get("presented"):
        return "its LUN is still presented"
    return ""


def _left_why(fact_map: Mapping[str, Any]) -> str:
    return _selected_why(fact_map) or "not selected"


def _outcome(
    fact_map: Mapping[str, Any],
    record: Mapping[str, Any],
    *,
    status: str,
    selected: bool,
    flushed: Dict[str, Mapping[str, Any]],
    check_mode: bool,
    fleet_problem: str,
) -> Tuple[str, str]:
    """(outcome, why) of one map of one host."""
    if status == "broken":
        return "left alone", "the host is not cleaned: " + _text(record.get("problem"))
    if not selected:
        why = _left_why(fact_map)
        if status == "refused" and why == "not selected":
            why = "not selected; the host's plan was refused"
        return "left alone", why
    if status == "refused":
        return "refused", _selected_why(fact_map) or "the host's plan was refused (see the host's note)"
    if fleet_problem:
        return "refused", "over the fleet cap"
    if status == "lost":
        return "unknown", "the host was lost after it planned (unreachable or failed): run again to see"
    return _flush_outcome(flushed.get(_text(fact_map.get("wwid"))), check_mode=check_mode)


def _flush_outcome(result: Optional[Mapping[str, Any]], *, check_mode: bool) -> Tuple[str, str]:
    """(outcome, why) of a selected map from its flush result."""
    if result is None:
        return "unknown", "no flush result for this map"
    if result.get("failed"):
        return "refused", "the flush refused it: " + (_text(result.get("msg")) or "no message")
    if check_mode:
        return "would clean", "check mode: nothing was changed"
    if result.get("changed"):
        return "cleaned", "flushed, its paths deleted"
    return "gone", "the map was already gone"


def _status(record: Mapping[str, Any], active: Optional[Sequence[str]]) -> Tuple[str, str]:
    if record.get("problem"):
        return "broken", _text(record["problem"])
    if record.get("refusal"):
        return "refused", _text(record["refusal"])
    if not record.get("done") and active is not None and record["host"] not in active:
        return "lost", "lost after it planned (unreachable or failed): what was flushed is unknown"
    return "ok", ""


def _host_rows(record: Mapping[str, Any], *, status: str, check_mode: bool, fleet_problem: str) -> List[Dict[str, Any]]:
    facts = _facts_of(_mapping(record["facts"], "the facts result of a host record"))
    if facts is None:
        return []
    selected_wwids = {
        _text(item.get("wwid"))
        for item in entries(record["selected"] or [], filter_name=NAME, what=f"the selected maps of {record['host']}")
    }
    flushed = _flush_outcomes(record.get("flush"))
    paths_by_map: Dict[str, List[Mapping[str, Any]]] = {}
    for path in facts.get("paths") or []:
        if isinstance(path, Mapping) and path.get("map"):
            paths_by_map.setdefault(_text(path["map"]), []).append(path)
    rows = []
    for fact_map in entries(facts["maps"], filter_name=NAME, what="the facts' maps", keys=("name", "wwid")):
        selected = _text(fact_map["wwid"]) in selected_wwids
        if not fact_map.get("faulty") and not selected:
            continue
        paths = paths_by_map.get(_text(fact_map["name"]), [])
        path_reasons = {_path_key(path): list(path.get("reasons") or []) for path in paths if path.get("faulty")}
        reasons = list(fact_map.get("reasons") or [])
        why = "; ".join([", ".join(reasons)] + [f"{key}: {', '.join(value)}" for key, value in path_reasons.items()])
        outcome, outcome_why = _outcome(
            fact_map,
            record,
            status=status,
            selected=selected,
            flushed=flushed,
            check_mode=check_mode,
            fleet_problem=fleet_problem,
        )
        rows.append(
            {
                "host": _text(record["host"]),
                "map": _text(fact_map["name"]),
                "wwid": _text(fact_map["wwid"]),
                "dm": fact_map.get("dm"),
                "paths": len(paths) if paths else len(fact_map.get("paths") or []),
                "faulty_paths": len(path_reasons),
                "dead": bool(fact_map.get("dead")),
                "queueing_dead": bool(fact_map.get("queueing_dead")),
                "presented": bool(fact_map.get("presented")),
                "reasons": reasons,
                "path_reasons": path_reasons,
                "why": why,
                "holders": [_text(holder) for holder in fact_map.get("holders") or []],
                "openers": [_opener(opener) for opener in fact_map.get("openers") or []],
                "outcome": outcome,
                "outcome_why": outcome_why,
            }
        )
    return sorted(rows, key=lambda row: row["map"])


def _outcome_counts(rows: Iterable[Mapping[str, Any]]) -> Dict[str, int]:
    counts = {outcome.replace(" ", "_"): 0 for outcome in _OUTCOMES}
    for row in rows:
        counts[row["outcome"].replace(" ", "_")] += 1
    return counts


def fleet_report(
    records: Any,
    check_mode: bool = False,
    fleet_problem: Any = "",
    active: Optional[Sequence[str]] = None,
    absent: Optional[Sequence[str]] = None,
) -> Dict[str, Any]:
    """The fleet report: summary, a line per host, a row per host and faulty or selected map."""
    fleet_problem = _text(fleet_problem)
    active_hosts = None if active is None else [str(host) for host in active]
    hosts: List[Dict[str, Any]] = []
    rows: List[Dict[str, Any]] = []
    seen = set()
    for record in _records(records, NAME):
        host = _text(record["host"])
        if host in seen:
            raise AnsibleFilterError(f"{NAME}: host {host!r} has two records")
        seen.add(host)
        status, note = _status(record, active_hosts)
        # the cap of the record's own batch (serial), else the run's
        capped = _text(record["fleet_problem"]) if "fleet_problem" in record else fleet_problem
        if status == "ok" and capped and _planned_count(record):
            note = "nothing was changed: over the fleet cap"
        host_rows = _host_rows(record, status=status, check_mode=bool(check_mode), fleet_problem=capped)
        facts = _facts_of(record["facts"])
        counts = (facts or {}).get("summary") or {}
        line: Dict[str, Any] = {"host": host, "status": status, "note": note}
        line.update({key: counts.get(key) if facts is not None else None for key in _COUNTS})
        line["selected"] = len(record["selected"] or [])
        line.update(_outcome_counts(host_rows))
        hosts.append(line)
        rows.extend(host_rows)
    for host in absent or []:
        if str(host) not in seen:
            line = {"host": str(host), "status": "absent", "note": "failed or unreachable before the role ran"}
            line.update({key: None for key in _COUNTS})
            line["selected"] = 0
            line.update(_outcome_counts([]))
            hosts.append(line)
    hosts.sort(key=lambda line: line["host"])
    rows.sort(key=lambda row: (row["host"], row["map"]))
    summary: Dict[str, Any] = {"hosts": len(hosts)}
    for status in ("ok", "broken", "refused", "lost", "absent"):
        summary[f"hosts_{status}"] = sum(1 for line in hosts if line["status"] == status)
    for key in _COUNTS:
        summary[key] = sum(line[key] or 0 for line in hosts)
    summary.update(_outcome_counts(rows))
    return {
        "check_mode": bool(check_mode),
        "fleet_problem": fleet_problem,
        "summary": summary,
        "hosts": hosts,
        "rows": rows,
    }


class FilterModule:
    """lunsafe.san.fleet_report"""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"fleet_report": fleet_report}
