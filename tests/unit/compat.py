# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The few ansible-core test helpers the unit tests use, on every ansible-core they run on (2.17, 2.19, 2.21).

ansible-core 2.19 added ``ansible.template.trust_as_template`` (templates are untrusted unless marked) and
``ansible.module_utils.testing.patch_module_args``; 2.17 has neither. On 2.19 and newer these are ansible-core's
own; on 2.17 they are the 2.17 equivalents:

- ``trust_as_template(s)``: a role's YAML string as 2.17 hands it over, an ``AnsibleUnicode`` (a ``str``
  subclass, trusted as a template like every string there);
- ``patch_module_args(args)``: the module arguments in ``ansible.module_utils.basic._ANSIBLE_ARGS``, as the
  2.17 unit testing documentation sets them.

``ANSIBLE_CORE`` is the running ansible-core's (major, minor), for the few behaviours that differ.

``MODULE_UTILS_INTERNAL`` is ansible-core's ``ansible.module_utils._internal`` (2.19 and newer: it holds the flag
that sends a module's warnings to the controller's display) or None (2.17 has no such flag).

Only ``ansible.module_utils`` is imported here at import time: ``ansible-test units`` lets the tests of modules and
module_utils import nothing else of ansible-core. ``trust_as_template`` (for the filter tests, on the controller)
imports the controller's template package when called.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from types import ModuleType
from typing import Any, Dict, Iterator, Optional
from unittest import mock

from ansible.module_utils import basic
from ansible.module_utils.ansible_release import __version__ as _core_version

_major, _minor = _core_version.split(".")[:2]
ANSIBLE_CORE = (int(_major), int(_minor))


def _optional_module(name: str) -> Optional[ModuleType]:
    try:
        return importlib.import_module(name)
    except ImportError:  # ansible-core 2.17
        return None


MODULE_UTILS_INTERNAL = _optional_module("ansible.module_utils._internal")
_TESTING = _optional_module("ansible.module_utils.testing")


@contextlib.contextmanager
def patch_module_args(args: Optional[Dict[str, Any]] = None) -> Iterator[None]:
    """Expose ``args`` to the AnsibleModule instances created within this context."""
    if _TESTING is not None:  # ansible-core 2.19 and newer
        with _TESTING.patch_module_args(args):
            yield
        return
    serialized = json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode()
    with mock.patch.object(basic, "_ANSIBLE_ARGS", serialized):
        yield


def trust_as_template(value: str) -> str:
    """``value`` as a trusted template string (a role's YAML string)."""
    template = importlib.import_module("ansible.template")
    if hasattr(template, "trust_as_template"):  # ansible-core 2.19 and newer
        trusted: str = template.trust_as_template(value)
        return trusted
    unicode: str = importlib.import_module("ansible.parsing.yaml.objects").AnsibleUnicode(value)
    return unicode
