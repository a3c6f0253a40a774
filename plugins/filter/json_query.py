# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, Callable, Dict

from ansible.errors import AnsibleFilterError

try:
    import jmespath
    import jmespath.exceptions

    HAS_JMESPATH = True
except ImportError:
    HAS_JMESPATH = False

DOCUMENTATION = r"""
name: json_query
short_description: Select data with a JMESPath expression
version_added: 0.1.0
author: lunsafe.san developers (@lunsafe)
description:
  - Evaluates a JMESPath expression (U(https://jmespath.org/specification.html)) over the input and returns
    what it selects, for example the dead maps or the faulty paths of one target in the C(lunsafe_multipath)
    facts of M(lunsafe.san.multipath_faulty_facts).
  - The same name and arguments as C(community.general.json_query), so that playbooks using this collection
    need no other collection for it.
  - The input is first copied to plain dicts, lists, strings and numbers, so that the JMESPath functions
    C(length), C(contains), C(sort_by) and the others accept every value Ansible hands over.
  - An invalid expression fails with the position (counted from 0) and the token where it went wrong. An
    expression that cannot be applied to the data (a function given a value of the wrong type, an unknown
    function) fails with JMESPath's reason.
positional: expr
options:
  _input:
    description: The data to query.
    type: raw
    required: true
  expr:
    description: The JMESPath expression.
    type: str
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
- name: Gather the faulty-device facts
  lunsafe.san.multipath_faulty_facts:

- name: Name the dead maps
  ansible.builtin.debug:
    msg: "{{ ansible_facts.lunsafe_multipath | lunsafe.san.json_query('maps[?dead].name') }}"

- name: List the faulty paths of one target, with their reasons
  ansible.builtin.debug:
    msg: "{{ ansible_facts.lunsafe_multipath | lunsafe.san.json_query(query) }}"
  vars:
    query: "paths[?faulty && session.target=='iqn.2003-01.org.example:array1'].{dev: dev, reasons: reasons}"
"""

RETURN = r"""
_value:
  description: What the expression selects (null when it selects nothing).
  type: raw
  sample: ["mpathb"]
"""

NAME = "lunsafe.san.json_query"


def missing_jmespath(filter_name: str) -> str:
    """The error when jmespath is not installed, naming the filter that needed it."""
    return f"{filter_name}: the jmespath Python package is required on the controller: pip install jmespath"


def plain(value: Any) -> Any:
    """``value`` as plain dicts, lists, str, int, float, bool and None.

    JMESPath decides a value's type by its class name, which Ansible's own str, list and dict subclasses do
    not match; copying them is the alternative to patching JMESPath's type tables.
    """
    if value is None or isinstance(value, bool):
        return value
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, Mapping):
        return {plain(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, types.GeneratorType)):
        return [plain(item) for item in value]
    return value


def _position(exc: Any, expr: str) -> str:
    """Where a parse or lexer error happened, in words."""
    position = getattr(exc, "lex_position", None)
    if position is None:
        return ""
    token = getattr(exc, "token_value", None)
    if token is None or position >= len(expr):
        return f" at position {position} (the end of the expression)"
    return f" at position {position} (at {str(token)!r})"


def json_query(data: Any, expr: Any) -> Any:
    """Evaluate the JMESPath expression ``expr`` over ``data``."""
    return query(data, expr, filter_name=NAME)


def query(data: Any, expr: Any, *, filter_name: str) -> Any:
    """``json_query`` for the collection's other filters: the errors name ``filter_name``."""
    if not HAS_JMESPATH:
        raise AnsibleFilterError(missing_jmespath(filter_name))
    if not isinstance(expr, str):
        raise AnsibleFilterError(f"{filter_name}: the expression must be a string, got a {type(expr).__name__}")
    expr = str(expr)
    try:
        compiled = jmespath.compile(expr)
    except jmespath.exceptions.LexerError as exc:
        raise AnsibleFilterError(
            f"{filter_name}: invalid JMESPath expression {expr!r}{_position(exc, expr)}: {exc.message}"
        ) from None
    except jmespath.exceptions.ParseError as exc:
        raise AnsibleFilterError(
            f"{filter_name}: invalid JMESPath expression {expr!r}{_position(exc, expr)}: {_reason(exc)}"
        ) from None
    except jmespath.exceptions.JMESPathError as exc:  # an empty expression
        raise AnsibleFilterError(f"{filter_name}: invalid JMESPath expression {expr!r}: {exc}") from None
    try:
        return compiled.search(plain(data))
    except jmespath.exceptions.JMESPathError as exc:  # a wrong type, an unknown function, a wrong arity
        raise AnsibleFilterError(f"{filter_name}: JMESPath expression {expr!r} failed: {exc}") from None


def _reason(exc: Any) -> str:
    if isinstance(exc, jmespath.exceptions.IncompleteExpressionError):
        return "the expression is incomplete"
    return str(exc.msg)


class FilterModule:
    """lunsafe.san.json_query"""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"json_query": json_query}
