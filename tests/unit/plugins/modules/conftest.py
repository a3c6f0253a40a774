# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The module tests run main() as on a managed node, in a pytest process that also holds controller code.

Importing any controller-side part of ansible-core (``ansible.errors``, which the filter plugins and their
tests import) flags the whole process as the controller (``ansible.module_utils._internal.is_controller``),
and from then on a module's ``warn()`` goes to the controller's display instead of the module's result.
Each module test puts the flag back to what a managed node has (ansible-core 2.17 has no such flag).
"""

from __future__ import annotations

import pytest

from ansible_collections.lunsafe.san.tests.unit.compat import MODULE_UTILS_INTERNAL


@pytest.fixture(autouse=True)
def _as_on_a_managed_node(monkeypatch: pytest.MonkeyPatch) -> None:
    if MODULE_UTILS_INTERNAL is not None:
        monkeypatch.setattr(MODULE_UTILS_INTERNAL, "is_controller", False)
