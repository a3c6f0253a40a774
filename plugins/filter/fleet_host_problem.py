# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from typing import Any, Callable, Dict

from ansible_collections.lunsafe.san.plugins.filter.fleet_report import host_problem

DOCUMENTATION = r"""
name: fleet_host_problem
short_description: Why no cleanup can be planned from a host's registered fault facts, or an empty string
version_added: 0.1.0
author: lunsafe.san developers (@lunsafe)
description:
  - Takes the registered result of M(lunsafe.san.multipath_faulty_facts) (registered with C(ignore_errors) and
    C(ignore_unreachable), so that one host does not stop the others) and says why nothing should be cleaned
    on that host, or returns an empty string when a plan can be made.
  - The host could not be reached; the facts failed (with the module's message); the task was skipped; the
    result holds no C(lunsafe_multipath) facts; multipathd does not answer (C(sources.multipathd) is
    V(not_running), V(timeout) or V(error) - the checker states are unknown, so a map's faults cannot be
    trusted); multipathd is not installed although the host has multipath maps; or C(dmsetup) could not be read
    although the host has multipath maps.
  - A host without multipathd and without any multipath map, or without SCSI at all, has nothing to clean and
    no problem.
  - The C(lunsafe.san.faulty_remediation) role reports such a host in its fleet report, cleans nothing on it and
    fails it at the end, while the other hosts go on.
options:
  _input:
    description: The registered result of a M(lunsafe.san.multipath_faulty_facts) task.
    type: dict
    required: true
seealso:
  - module: lunsafe.san.multipath_faulty_facts
"""

EXAMPLES = r"""
- name: Gather the faulty-device facts (a host that fails here is reported, not dropped)
  lunsafe.san.multipath_faulty_facts:
  register: facts
  ignore_errors: true
  ignore_unreachable: true

- name: Say why this host cannot be cleaned
  ansible.builtin.debug:
    msg: "{{ facts | lunsafe.san.fleet_host_problem }}"
  # "multipathd is not running: checker states are unknown"
"""

RETURN = r"""
_value:
  description: Why no cleanup can be planned on the host; an empty string when one can.
  type: str
  sample: "multipathd is not running: checker states are unknown"
"""

NAME = "lunsafe.san.fleet_host_problem"


def fleet_host_problem(result: Any) -> str:
    """Why no plan can be made from this registered facts result, or ``''``."""
    return host_problem(result, NAME)


class FilterModule:
    """lunsafe.san.fleet_host_problem"""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"fleet_host_problem": fleet_host_problem}
