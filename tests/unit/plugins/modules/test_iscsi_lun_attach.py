# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""iscsi_lun_attach as glue: main() over a fake host; documented keys on success and failure; the lock rule."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Any, Dict, Set

import pytest
import yaml

from ansible_collections.lunsafe.san.plugins.modules import iscsi_lun_attach
from ansible_collections.lunsafe.san.tests.unit.compat import patch_module_args
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fake_host import IQN, FakeHost, wwid_of

P1, P2 = "127.0.0.1:3260", "127.0.0.2:3260"


def world(tmp_path: Path, **kwargs: Any) -> FakeHost:
    kwargs.setdefault("luns", {IQN: {n: wwid_of(n) for n in range(4)}})
    kwargs.setdefault("portals", {P1: [IQN], P2: [IQN]})
    return FakeHost(tmp_path, **kwargs)


def run_main(fake: FakeHost, capsys: pytest.CaptureFixture[str], **args: Any) -> Dict[str, Any]:
    args.setdefault("target", IQN)
    args.setdefault("portals", ["127.0.0.1", "127.0.0.2"])
    args.setdefault("lock_file", str(fake.tmp_path / "lock"))
    args.setdefault("timeout", 10)
    with patch_module_args(args), pytest.raises(SystemExit):
        iscsi_lun_attach.main(make_host=lambda runner: fake.host())
    result: Dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def always_keys() -> Set[str]:
    """RETURN keys documented as returned always."""
    doc = yaml.safe_load(iscsi_lun_attach.RETURN)
    return {key for key, spec in doc.items() if str(spec["returned"]).startswith("always")}


def test_every_always_key_is_returned_on_success_and_on_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = world(tmp_path)
    ok = run_main(fake, capsys, lun="1")
    assert ok.get("failed") is not True, ok
    assert always_keys() - set(ok) == set()
    failed = run_main(fake, capsys, lun="2", expected_wwid=wwid_of(3))
    assert failed["failed"] is True
    assert always_keys() - set(failed) == set()
    assert failed["luns"][0]["state"] == "failed"
    bad_input = run_main(fake, capsys, lun="1", expected_wwid="xyz")
    assert bad_input["failed"] is True and "is not a WWID" in bad_input["msg"]
    assert always_keys() - set(bad_input) == set()


def test_multipathd_down_fails_before_anything_is_touched_and_hides_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = world(tmp_path, multipathd=False)
    result = run_main(fake, capsys, lun="1", chap_username="host", chap_password="Sess-Secret-4711x")
    assert result["failed"] is True
    assert result["rc_name"] == "multipathd_unavailable" and "multipath=false" in result["msg"]
    assert fake.calls == [["multipathd", "show", "status"]]
    assert "Sess-Secret-4711x" not in json.dumps(result)
    assert always_keys() - set(result) == set()


def test_single_lun_shape_and_luns_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = world(tmp_path)
    single = run_main(fake, capsys, lun="1", _ansible_diff=True)
    assert single["changed"] is True
    assert single["hctl"] == ["2:0:0:1", "3:0:0:1"] and single["wwid"] == wwid_of(1)
    assert single["dm"]["path"] == "/dev/mapper/mpatha" and single["luns"][0]["hctl"] == single["hctl"]
    assert single["diff"]["before"] == "" and "2:0:0:1 sda" in single["diff"]["after"]
    assert single["timings"]["lock"] >= 0 and single["lock_lease"] is None
    several = run_main(fake, capsys, luns=[1, 2])
    assert "wwid" not in several and "hctl" not in several
    assert [e["lun"] for e in several["luns"]] == ["1", "2"]
    assert [e["state"] for e in several["luns"]] == ["attached", "attached"]
    assert several["changed"] is True  # LUN 2 is new
    assert "diff" not in several


def test_warnings_reach_the_user(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = world(tmp_path)
    result = run_main(fake, capsys, lun="1", portals=["127.0.0.1", "127.0.0.1:3260"])
    assert "are the same portal 127.0.0.1:3260" in json.dumps(result["warnings"])  # 2.19: WarningSummary dicts


def test_option_constraints_are_declared(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = world(tmp_path)
    both = run_main(fake, capsys, lun="1", luns=[2])
    assert both["failed"] is True and "mutually exclusive" in both["msg"]
    half = run_main(fake, capsys, lun="1", chap_username="u")
    assert half["failed"] is True and "chap_password" in half["msg"]
    assert fake.calls == []


@pytest.mark.parametrize("probing", [False, True])
def test_detach_keeps_a_session_whose_other_lun_has_no_block_device_yet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], probing: bool
) -> None:
    """On the first session LUN 2 is still being probed (SCSI device, no block device yet): that session is
    another LUN's too and is not logged out (seen by the race benchmark's review)."""
    fake = world(tmp_path, auto_map=False)
    first = fake.login(IQN, P1)
    second = fake.login(IQN, P2)
    fake.attach_device(first, 1)
    fake.attach_device(second, 1)
    if probing:
        fake.devices.append({"hctl": f"{first['host']}:0:0:2", "sid": first["sid"], "name": None})
        fake.rebuild()
    result = run_main(
        fake, capsys, lun="1", state="absent", multipath=False, remove_node=False, _ansible_check_mode=True
    )
    assert result.get("failed") is not True, result
    assert [d["name"] for d in result["devices"]] == ["sda", "sdb"]
    assert result["logged_out"] == ([P2] if probing else [P1, P2])
    assert fake.writes == []


def test_check_mode_takes_the_lock_only_when_its_file_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = world(tmp_path)
    lock = tmp_path / "locks" / "lunsafe.lock"
    result = run_main(fake, capsys, lun="1", lock_file=str(lock), _ansible_check_mode=True)
    assert result["changed"] is True and not lock.exists() and "lock" not in result["timings"]
    lock.parent.mkdir()
    lock.write_text("")
    result = run_main(fake, capsys, lun="1", lock_file=str(lock), _ansible_check_mode=True)
    assert "lock" in result["timings"]


def test_a_failed_run_writes_no_lease(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = world(tmp_path)
    lease = {"id": "detach-lun-2", "state": "held", "ttl": 60}
    failed = run_main(fake, capsys, lun="2", expected_wwid=wwid_of(3), lock_lease=lease)
    assert failed["failed"] is True and failed["lock_lease"] is None
    assert not (tmp_path / "lock.lease").exists()
    ok = run_main(fake, capsys, lun="2", lock_lease=lease)
    assert ok["lock_lease"] == "held" and (tmp_path / "lock.lease").exists()


def test_a_refused_wrong_lu_detach_writes_no_journal_and_keeps_the_documented_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = world(tmp_path)
    run_main(fake, capsys, lun="1")
    for check in (True, False):
        result = run_main(fake, capsys, lun="1", state="absent", expected_wwid=wwid_of(3), _ansible_check_mode=check)
        assert result["failed"] is True and result["changed"] is False
        assert "may have reused the LUN number for another LU, so nothing was removed" in result["msg"]
        assert result["failed_luns"] == ["1"] and result["refusals"][0].startswith("LUN 1: the kernel reports")
        assert result["wwid"] == wwid_of(1) and result["dm"]["name"] == "mpatha" and result["by_id"]
        assert always_keys() - set(result) == set()
    assert not (tmp_path / "lock.journal").exists()
    assert len(fake.devices) == 2 and len(fake.sessions) == 2


def test_an_attach_refused_for_its_wwid_returns_the_attached_lun_and_documented_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = world(tmp_path)
    run_main(fake, capsys, lun="1")
    result = run_main(fake, capsys, lun="1", expected_wwid=wwid_of(3))
    assert result["failed"] is True and result["failed_luns"] == ["1"]
    assert result["wwid"] == wwid_of(1) and result["dm"]["uuid"] == f"mpath-{wwid_of(1)}"
    assert result["by_id"] == f"/dev/disk/by-id/dm-uuid-mpath-{wwid_of(1)}"
    assert [p["wwid"] for p in result["paths"]] == [wwid_of(1), wwid_of(1)]
    documented = yaml.safe_load(iscsi_lun_attach.RETURN)
    assert {"paths", "failed_luns", "sessions_kept", "refusals", "stale"} <= set(documented)


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
    assert fake.calls == []


def test_a_lock_directory_others_may_write_is_refused_with_the_documented_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = world(tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    result = run_main(fake, capsys, lun="1", lock_file=str(shared / "x.lock"))
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith(f"the lock directory {shared} (owner root (uid 0), mode 1777) is writable")
    assert result["unsafe_file"] == {"path": str(shared), "owner": "root (uid 0)", "mode": "1777"}
    assert result["timings"] == {"lock": 0.0, "total": 0.0}  # it failed at the lock, before any work
    assert always_keys() - set(result) == set()
    assert fake.writes == [] and list(shared.iterdir()) == []


def test_lease_ttl_zero_is_refused_not_taken_for_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = world(tmp_path)
    result = run_main(fake, capsys, lun="1", lock_lease={"id": "d", "ttl": 0})
    assert result["failed"] is True
    assert result["msg"] == "lock_lease.ttl must be greater than 0 seconds, got 0"
    assert always_keys() - set(result) == set()
    assert fake.writes == [] and not (tmp_path / "lock.lease").exists()


def test_a_lock_file_others_can_open_is_used_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = world(tmp_path)
    locks = tmp_path / "open-locks"
    locks.mkdir(mode=0o755)
    (locks / "x.lock").write_text("")
    (locks / "x.lock").chmod(0o644)
    result = run_main(fake, capsys, lun="1", lock_file=str(locks / "x.lock"))
    assert result.get("failed") is not True, result
    warnings = [w["event"]["msg"] if isinstance(w, dict) else w for w in result["warnings"]]
    assert [w for w in warnings if "can be opened by other users" in w] != [], warnings
