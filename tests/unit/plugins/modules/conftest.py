# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The module tests run main() as on a managed node, in a pytest process that also holds controller code.

Importing any controller-side part of ansible-core (``ansible.errors``, which the filter plugins and their
tests import) flags the whole process as the controller (``ansible.module_utils._internal.is_controller``),
and from then on a module's ``warn()`` goes to the controller's display instead of the module's result.
Each module test puts the flag back to what a managed node has.
"""

from __future__ import annotations

import pytest
from ansible.module_utils import _internal


@pytest.fixture(autouse=True)
def _as_on_a_managed_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_internal, "is_controller", False)
