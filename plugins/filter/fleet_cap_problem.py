# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from typing import Any, Callable, Dict

from ansible_collections.lunsafe.san.plugins.filter.fleet_report import cap_problem

DOCUMENTATION = r"""
name: fleet_cap_problem
short_description: Whether the maps selected on all hosts of a run exceed a fleet-wide cap, and by how much
version_added: 0.1.0
author: lunsafe.san developers (@lunsafe)
description:
  - Takes one record per host of a C(lunsafe.san.faulty_remediation) run (as C(lunsafe.san.fleet_report) takes
    them - C(host), C(facts), C(selected), C(problem), C(refusal)) and a cap, and returns why the run must be
    refused - the total of the maps the hosts would flush is over the cap; the message gives the total, the
    number of hosts and the count per host - or an empty string when the total is within the cap.
  - A host counts the maps it selected, unless it could not be planned on (C(problem)) or its plan was refused
    (C(refusal)) - those flush nothing anyway.
  - The C(lunsafe.san.faulty_remediation) role checks C(faulty_remediation_fleet_max_maps) with it once, over
    every host of the batch, after every host planned and before any host changes anything.
options:
  _input:
    description: One record per host.
    type: list
    elements: dict
    required: true
  cap:
    description: The most maps the run may flush over all the hosts (0 or more).
    type: int
    required: true
positional: cap
seealso:
  - plugin: lunsafe.san.fleet_report
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Check the fleet cap once, over every host's plan
  ansible.builtin.set_fact:
    fleet_problem: >-
      {{ ansible_play_batch | map('extract', hostvars, 'faulty_remediation__record') | list
         | lunsafe.san.fleet_cap_problem(50) }}
  run_once: true
  # "61 maps were selected for cleanup on 2 hosts, more than the fleet cap of 50 (maps per host: node1 40, node2 21)"
"""

RETURN = r"""
_value:
  description: Why the cap refuses the run; an empty string when the total is within it.
  type: str
  sample: >-
    61 maps were selected for cleanup on 2 hosts, more than the fleet cap of 50 (maps per host: node1 40, node2 21)
"""

NAME = "lunsafe.san.fleet_cap_problem"


def fleet_cap_problem(records: Any, cap: Any) -> str:
    """Why the total of the hosts' planned maps is over ``cap``, or ``''``."""
    return cap_problem(records, cap, NAME)


class FilterModule:
    """lunsafe.san.fleet_cap_problem"""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"fleet_cap_problem": fleet_cap_problem}
