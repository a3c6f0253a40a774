# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""meta/runtime.yml's action group: every module of the collection is in it, and each accepts the lock options.

ansible-core hands a group's module_defaults to every module of the group as they are (executor/module_common.py,
_get_action_arg_defaults: no filtering by the module's argument spec), so a module of the group without
``lock_file`` would fail with "Unsupported parameters" as soon as a play sets it for the group.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml

from ansible_collections.lunsafe.san.plugins.module_utils._lock import LOCK_ARGUMENT_SPEC

ROOT = Path(__file__).resolve().parents[3]
GROUP = "lunsafe"


def runtime() -> Dict[str, Any]:
    data: Dict[str, Any] = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text(encoding="utf-8"))
    return data


def test_the_group_holds_every_module_of_the_collection() -> None:
    modules = sorted(path.stem for path in (ROOT / "plugins" / "modules").glob("*.py") if path.stem != "__init__")
    assert sorted(runtime()["action_groups"][GROUP]) == modules


@pytest.mark.parametrize("name", sorted(runtime()["action_groups"][GROUP]))
def test_every_module_of_the_group_accepts_and_documents_the_lock_options(name: str) -> None:
    module = importlib.import_module(f"ansible_collections.lunsafe.san.plugins.modules.{name}")
    spec = module.ARGUMENT_SPEC
    assert {option: spec.get(option) for option in LOCK_ARGUMENT_SPEC} == LOCK_ARGUMENT_SPEC
    doc = yaml.safe_load(module.DOCUMENTATION)
    fragments = doc.get("extends_documentation_fragment", [])
    documented = set(doc.get("options", {})) | (
        set(LOCK_ARGUMENT_SPEC)
        if {"lunsafe.san._attributes.LOCK", "lunsafe.san._attributes.LOCK_UNUSED"} & set(fragments)
        else set()
    )
    assert set(LOCK_ARGUMENT_SPEC) <= documented
