# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Every module returns each key its RETURN documents as returned always: on success and on failure.

A template on a registered result (``result.hctl``, ``result.devices``) must not fail because the task
failed. Each module runs main() over a fake host, once with arguments that succeed and once with arguments
that fail.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Set

import pytest
import yaml

from ansible_collections.lunsafe.san.plugins.modules import (
    iscsi_info,
    iscsi_lun_attach,
    multipath_faulty_facts,
    multipath_flush,
    scsi_targeted_scan,
)
from ansible_collections.lunsafe.san.tests.unit.compat import patch_module_args
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fake_host import IQN, FakeHost, wwid_of

P1, P2 = "127.0.0.1:3260", "127.0.0.2:3260"


def always_keys(module: ModuleType) -> Set[str]:
    doc = yaml.safe_load(module.RETURN)
    return {key for key, spec in doc.items() if str(spec["returned"]).startswith("always")}


def attached(tmp_path: Path) -> FakeHost:
    """Two sessions, LUN 1 attached on both with its map."""
    fake = FakeHost(tmp_path, luns={IQN: {1: wwid_of(1), 2: wwid_of(2)}}, portals={P1: [IQN], P2: [IQN]})
    for portal in (P1, P2):
        fake.attach_device(fake.login(IQN, portal), 1)
    return fake


def run_main(module: ModuleType, fake: FakeHost, capsys: pytest.CaptureFixture[str], **args: Any) -> Dict[str, Any]:
    if "lock_file" in module.ARGUMENT_SPEC:
        args.setdefault("lock_file", str(fake.tmp_path / "lock"))
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main(make_host=lambda runner: fake.host())
    result: Dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


CASES = [
    (
        iscsi_lun_attach,
        {"target": IQN, "portals": ["127.0.0.1", "127.0.0.2"], "lun": "2"},
        {"target": IQN, "portals": ["127.0.0.1", "127.0.0.2"], "lun": "2", "expected_wwid": wwid_of(1)},
    ),
    (
        scsi_targeted_scan,
        {"target": IQN, "luns": [2], "timeout": 5},
        {"target": IQN, "luns": [3], "timeout": 2},  # the array does not present LUN 3: the wait times out
    ),
    (
        multipath_flush,
        {"map": "mpatha"},
        {"map": "mpatha", "_mount": "dm-0"},  # mounted: refused
    ),
    (
        multipath_flush,
        {"map": "mpatha"},
        {"map": "mpatha", "retries": -1},  # bad input
    ),
    (
        multipath_faulty_facts,
        {"timeout": 5},
        {"timeout": 0},  # bad input
    ),
    (
        iscsi_info,
        {"targets": [IQN]},
        {"portals": ["127.0.0.1:99999"]},  # bad input
    ),
]


@pytest.mark.parametrize(("module", "good", "bad"), CASES)
def test_documented_keys_on_success_and_on_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], module: ModuleType, good: Dict[str, Any], bad: Dict[str, Any]
) -> None:
    keys = always_keys(module)
    ok = run_main(module, attached(tmp_path / "ok"), capsys, **good)
    assert ok.get("failed") is not True, ok
    assert keys - set(ok) == set()
    fake = attached(tmp_path / "bad")
    mount = bad.pop("_mount", None)
    if mount is not None:
        fake.mounts.append(mount)
        fake.rebuild()
    failed = run_main(module, fake, capsys, **bad)
    assert failed["failed"] is True, failed
    assert keys - set(failed) == set(), failed["msg"]
