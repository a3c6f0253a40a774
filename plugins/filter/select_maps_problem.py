# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from typing import Any, Callable, Dict

from ansible.errors import AnsibleFilterError

from ansible_collections.lunsafe.san.plugins.filter.select_maps import NAME as SELECT_MAPS
from ansible_collections.lunsafe.san.plugins.filter.select_maps import select_maps

DOCUMENTATION = r"""
name: select_maps_problem
short_description: What is wrong with a select_maps expression, or an empty string
version_added: 0.1.0
author: lunsafe.san developers (@lunsafe)
description:
  - Checks a JMESPath expression the way C(lunsafe.san.select_maps) uses it over the C(lunsafe_multipath) facts
    of M(lunsafe.san.multipath_faulty_facts), and returns what is wrong with it instead of failing - the same
    message that C(lunsafe.san.select_maps) fails with (an invalid expression with its position, a result that
    is not a list of maps of the facts, a missing C(jmespath) package), without the filter's name in front; an
    empty string when the expression can be used.
  - For a role or playbook that validates an expression supplied by its user before it changes anything, and
    fails with its own message - the check itself never fails, so no raw templating error is printed before
    that message. The C(lunsafe.san.faulty_remediation) role checks C(faulty_remediation_select) with it.
positional: expr
options:
  _input:
    description: The C(lunsafe_multipath) facts (a dict with a C(maps) list).
    type: raw
    required: true
  expr:
    description: The JMESPath expression, evaluated over the whole of the facts.
    type: raw
    required: true
requirements:
  - jmespath (Python package, on the controller)
seealso:
  - module: lunsafe.san.multipath_faulty_facts
  - name: JMESPath specification
    description: The query language, with examples.
    link: https://jmespath.org/specification.html
"""

EXAMPLES = r"""
- name: Check the expression the user gave
  ansible.builtin.set_fact:
    cleanup_problem: "{{ ansible_facts.lunsafe_multipath | lunsafe.san.select_maps_problem(cleanup_select) }}"

- name: Fail with a message of our own when it cannot be used
  ansible.builtin.fail:
    msg: "cleanup_select={{ cleanup_select | to_json }} cannot be used, nothing was changed: {{ cleanup_problem }}"
  when: cleanup_problem | length > 0

- name: Select the maps (the expression is known to work now)
  ansible.builtin.set_fact:
    cleanup_maps: "{{ ansible_facts.lunsafe_multipath | lunsafe.san.select_maps(cleanup_select) }}"
"""

RETURN = r"""
_value:
  description: What is wrong with the expression; an empty string when C(lunsafe.san.select_maps) accepts it.
  type: str
  sample: "invalid JMESPath expression 'maps[?dead' at position 10: the expression is incomplete"
"""

_PREFIX = SELECT_MAPS + ": "


def select_maps_problem(facts: Any, expr: Any) -> str:
    """The message ``select_maps(facts, expr)`` fails with (without its name in front), or ``""``."""
    try:
        select_maps(facts, expr)
    except AnsibleFilterError as exc:
        message = str(exc.message)
        return message[len(_PREFIX) :] if message.startswith(_PREFIX) else message
    return ""


class FilterModule:
    """lunsafe.san.select_maps_problem"""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"select_maps_problem": select_maps_problem}
