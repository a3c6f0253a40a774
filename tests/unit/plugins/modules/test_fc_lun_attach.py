# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""fc_lun_attach as glue: main() over a fake FC host; documented keys on success and failure; check mode."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Any, Dict, Set

import pytest
import yaml

from ansible_collections.lunsafe.san.plugins.modules import fc_lun_attach
from ansible_collections.lunsafe.san.tests.unit.compat import patch_module_args
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fake_host import wwid_of
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fc_fake_host import (
    T1,
    T2,
    FakeFcHost,
    fabric,
)


def world(tmp_path: Path, **kwargs: Any) -> FakeFcHost:
    kwargs.setdefault("luns", {T1: {n: wwid_of(n) for n in range(4)}, T2: {n: wwid_of(n) for n in range(4)}})
    return FakeFcHost(tmp_path, **kwargs, **fabric())


def run_main(fake: FakeFcHost, capsys: pytest.CaptureFixture[str], **args: Any) -> Dict[str, Any]:
    args.setdefault("targets", [T1, T2])
    args.setdefault("lock_file", str(fake.tmp_path / "lock"))
    args.setdefault("timeout", 10)
    with patch_module_args(args), pytest.raises(SystemExit):
        fc_lun_attach.main(make_host=lambda runner: fake.host())
    result: Dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def always_keys() -> Set[str]:
    doc = yaml.safe_load(fc_lun_attach.RETURN)
    return {key for key, spec in doc.items() if str(spec["returned"]).startswith("always")}


def test_every_always_key_is_returned_on_success_and_on_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = world(tmp_path)
    ok = run_main(fake, capsys, lun="1", _ansible_diff=True)
    assert ok.get("failed") is not True, ok
    assert always_keys() - set(ok) == set()
    assert ok["changed"] is True and ok["hctl"] == ["2:0:0:1", "2:0:1:1", "3:0:0:1", "3:0:1:1"]
    assert ok["wwid"] == wwid_of(1) and len(ok["luns"][0]["paths"]) == 4 and len(ok["fc_paths"]) == 4
    assert "2:0:0:1 sda" in ok["diff"]["after"]
    failed = run_main(fake, capsys, lun="2", expected_wwid=wwid_of(3))
    assert failed["failed"] is True and always_keys() - set(failed) == set()
    assert failed["luns"][0]["state"] == "failed"
    unzoned = run_main(fake, capsys, lun="2", targets=["0x2000525400fc00ee"])
    assert unzoned["failed"] is True and "not visible" in unzoned["msg"]
    assert always_keys() - set(unzoned) == set()
    bad_input = run_main(fake, capsys, lun="1", targets=["nope"])
    assert bad_input["failed"] is True and "targets" in bad_input["msg"]
    assert always_keys() - set(bad_input) == set()


def test_check_mode_and_detach_with_luns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = world(tmp_path)
    checked = run_main(fake, capsys, luns=[1, 2], _ansible_check_mode=True)
    assert checked["changed"] is True and len(checked["scanned"]) == 8 and fake.writes == []
    attached = run_main(fake, capsys, luns=[1, 2])
    assert [entry["state"] for entry in attached["luns"]] == ["attached", "attached"]
    assert attached["interrupted"] == [] and attached["lock_lease"] is None
    detached = run_main(fake, capsys, luns=[1, 2], state="absent")
    assert [entry["state"] for entry in detached["luns"]] == ["detached", "detached"]
    assert fake.devices == [] and fake.maps == []


def test_warnings_once_per_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = world(tmp_path, scan_mode="async")
    result = run_main(fake, capsys, luns=[1, 2])
    warnings = [w if isinstance(w, str) else w["event"]["msg"] for w in result.get("warnings", [])]
    assert len([w for w in warnings if "scsi_mod.scan" in w]) == 1


def test_a_bad_lock_option_fails_before_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = world(tmp_path)
    result = run_main(fake, capsys, lun="1", lock_lease={"id": "d", "ttl": 0})
    assert result["msg"] == "lock_lease.ttl must be greater than 0 seconds, got 0" and fake.writes == []
    assert always_keys() - set(result) == set()


def test_check_mode_without_a_lock_file_takes_no_lock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = world(tmp_path)
    lock = tmp_path / "locks" / "lunsafe.lock"
    result = run_main(fake, capsys, lun="1", lock_file=str(lock), _ansible_check_mode=True)
    assert result["changed"] is True and not lock.exists() and "lock" not in result["timings"]
    assert "diff" not in result


def test_a_lock_timeout_reports_how_long_it_waited(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = world(tmp_path)
    lock = tmp_path / "lock"
    lock.write_text("")
    with open(lock, encoding="utf-8") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = run_main(fake, capsys, lun="1", lock_timeout=0.3)
    assert result["failed"] is True and "lock" in result["msg"]
    assert 0.3 <= result["timings"]["lock"] < 5 and result["timings"]["total"] == result["timings"]["lock"]
    assert always_keys() - set(result) == set()
    assert fake.writes == []


def test_a_refused_wrong_lu_detach_keeps_the_documented_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = world(tmp_path)
    run_main(fake, capsys, lun="1")
    result = run_main(fake, capsys, lun="1", state="absent", expected_wwid=wwid_of(3))
    assert result["failed"] is True and result["changed"] is False
    assert "so nothing was removed" in result["msg"] and result["failed_luns"] == ["1"]
    assert result["wwid"] == wwid_of(1) and result["dm"]["name"] == "mpatha"
    assert always_keys() - set(result) == set() and len(fake.devices) == 4
