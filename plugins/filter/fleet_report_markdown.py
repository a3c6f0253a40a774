# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Dict, List, Sequence

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: fleet_report_markdown
short_description: The fleet report of lunsafe.san.fleet_report as Markdown, for people
version_added: 0.1.0
author: lunsafe.san developers (@lunsafe)
description:
  - Renders the report that C(lunsafe.san.fleet_report) returns as a Markdown page - a title, a line saying
    when the run was in check mode or refused by the fleet cap, a summary (hosts, maps cleaned, refused and
    left alone, the hosts that could not be cleaned with why), a table with a line per host, and a table with a
    row per host and faulty map (its faulty paths, whether it is dead, why, its openers and holders, the outcome
    and why).
  - The C(lunsafe.san.faulty_remediation) role writes it as C(report.md) in C(faulty_remediation_report_dir).
options:
  _input:
    description: The report of C(lunsafe.san.fleet_report).
    type: dict
    required: true
  title:
    description: The page's title.
    type: str
    default: Faulty multipath devices - fleet report
seealso:
  - plugin: lunsafe.san.fleet_report
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Write the fleet report for people
  ansible.builtin.copy:
    content: "{{ fleet_report | lunsafe.san.fleet_report_markdown }}"
    dest: /var/tmp/remediation/report.md
    mode: "0644"
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
_value:
  description: The Markdown page, ending with a newline.
  type: str
  sample: "# Faulty multipath devices - fleet report\n\n## Summary\n\n- 2 hosts: 1 ok, 1 broken ..."
"""

NAME = "lunsafe.san.fleet_report_markdown"


def _cell(value: Any) -> str:
    """One table cell: pipes escaped, newlines folded, nothing shown as a dash."""
    if value is None or (not value and isinstance(value, (str, list, tuple))):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(item) for item in value)
    return " ".join(str(value).split()).replace("|", "\\|")


def _table(header: Sequence[str], lines: List[List[Any]]) -> List[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _name in header) + "|"]
    out.extend("| " + " | ".join(_cell(value) for value in line) + " |" for line in lines)
    return out


def _count(number: int, word: str) -> str:
    return f"{number} {word}" if number == 1 else f"{number} {word}s"


def fleet_report_markdown(report: Any, title: str = "Faulty multipath devices - fleet report") -> str:
    """The fleet report as a Markdown page: summary first, then the hosts, then the maps."""
    if not isinstance(report, Mapping) or not all(key in report for key in ("summary", "hosts", "rows")):
        raise AnsibleFilterError(f"{NAME}: expects the report of lunsafe.san.fleet_report (summary, hosts, rows)")
    summary, hosts, rows = report["summary"], report["hosts"], report["rows"]
    out = [f"# {title}", ""]
    if report.get("check_mode"):
        out += ["Check mode: the plan only, nothing was changed on any host.", ""]
    if report.get("fleet_problem"):
        out += [f"**Refused by the fleet cap, nothing was changed on any host:** {_cell(report['fleet_problem'])}.", ""]
    states = ", ".join(
        f"{summary[f'hosts_{status}']} {status}"
        for status in ("ok", "broken", "refused", "lost", "absent")
        if summary.get(f"hosts_{status}")
    )
    cleaned = "would clean" if report.get("check_mode") else "cleaned"
    cleaned_count = summary.get("would_clean" if report.get("check_mode") else "cleaned", 0)
    out += [
        "## Summary",
        "",
        f"- {_count(summary['hosts'], 'host')}" + (f": {states}" if states else ""),
        f"- {_count(summary.get('faulty_maps', 0), 'faulty map')} of {summary.get('maps', 0)},"
        f" {summary.get('dead_maps', 0)} dead; {summary.get('faulty_paths', 0)} faulty paths of"
        f" {summary.get('paths', 0)}; {summary.get('unmapped_paths', 0)} paths left without their map",
        f"- maps {cleaned}: {cleaned_count}; refused: {summary.get('refused', 0)}; left alone:"
        f" {summary.get('left_alone', 0)}"
        + (f"; already gone: {summary['gone']}" if summary.get("gone") else "")
        + (f"; unknown: {summary['unknown']}" if summary.get("unknown") else ""),
    ]
    troubled = [line for line in hosts if line.get("status") != "ok"]
    for line in troubled:
        out.append(f"- **{_cell(line['host'])}** ({line['status']}): {_cell(line.get('note'))}")
    out += ["", "## Hosts", ""]
    out += _table(
        [
            "Host",
            "Status",
            "Faulty maps / maps",
            "Dead",
            "Faulty paths / paths",
            "Unmapped paths",
            "Selected",
            "Cleaned",
            "Refused",
            "Left alone",
            "Note",
        ],
        [
            [
                line["host"],
                line["status"],
                "?" if line.get("maps") is None else f"{line.get('faulty_maps')} / {line.get('maps')}",
                "?" if line.get("dead_maps") is None else line["dead_maps"],
                "?" if line.get("paths") is None else f"{line.get('faulty_paths')} / {line.get('paths')}",
                "?" if line.get("unmapped_paths") is None else line["unmapped_paths"],
                line.get("selected", 0),
                line.get("would_clean" if report.get("check_mode") else "cleaned", 0),
                line.get("refused", 0),
                line.get("left_alone", 0),
                line.get("note"),
            ]
            for line in hosts
        ],
    )
    out += ["", "## Maps", ""]
    if rows:
        out += _table(
            ["Host", "Map", "WWID", "Faulty paths / paths", "Dead", "Why", "Openers", "Holders", "Outcome", "Because"],
            [
                [
                    row["host"],
                    row["map"],
                    row["wwid"],
                    f"{row['faulty_paths']} / {row['paths']}",
                    ("yes, queueing I/O" if row.get("queueing_dead") else True) if row.get("dead") else False,
                    row.get("why"),
                    row.get("openers"),
                    row.get("holders"),
                    row["outcome"],
                    row.get("outcome_why"),
                ]
                for row in rows
            ],
        )
    else:
        out.append("No faulty map on any host.")
    return "\n".join(out) + "\n"


class FilterModule:
    """lunsafe.san.fleet_report_markdown"""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"fleet_report_markdown": fleet_report_markdown}
