# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The modules' persist option (issue 28): an attach records the LUNs it verified, a detach forgets, check
mode writes nothing, and a state file that cannot be used fails before anything is changed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _persist as persist
from ansible_collections.lunsafe.san.plugins.modules import fc_lun_attach, iscsi_lun_attach
from ansible_collections.lunsafe.san.tests.unit.compat import patch_module_args
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fake_host import IQN, FakeHost, wwid_of

P1, P2 = "127.0.0.1:3260", "127.0.0.2:3260"


def world(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path, luns={IQN: {n: wwid_of(n) for n in range(4)}}, portals={P1: [IQN], P2: [IQN]})


def state_file(fake: FakeHost) -> Path:
    return fake.tmp_path / "lib" / "persist.json"


def run_main(fake: FakeHost, capsys: pytest.CaptureFixture[str], **args: Any) -> Dict[str, Any]:
    args.setdefault("target", IQN)
    args.setdefault("portals", ["127.0.0.1", "127.0.0.2"])
    args.setdefault("lock_file", str(fake.tmp_path / "lock"))
    args.setdefault("timeout", 10)
    with patch_module_args(args), pytest.raises(SystemExit):
        iscsi_lun_attach.main(make_host=lambda runner: fake.host(), state_file=str(state_file(fake)))
    result: Dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def recorded(fake: FakeHost) -> Dict[int, str]:
    return {r["linux_lun"]: r["wwid"] for r in persist.StateFile(str(state_file(fake))).read()}


def test_persist_records_each_attached_lun_with_its_verified_wwid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = world(tmp_path)
    check = run_main(fake, capsys, luns=[1, 2], persist=True, _ansible_check_mode=True)
    assert check["changed"] is True and not state_file(fake).exists()  # check mode writes nothing
    assert [(r["linux_lun"], r["wwid"]) for r in check["persisted"]["recorded"]] == [(1, None), (2, None)]
    first = run_main(fake, capsys, luns=[1, 2], persist=True, _ansible_diff=True)
    assert first["changed"] is True and first["persisted"]["count"] == 2
    assert recorded(fake) == {1: wwid_of(1), 2: wwid_of(2)}
    assert f"persist: iscsi {IQN} LUN 1 (WWID {wwid_of(1)})\n" in first["diff"]["after"]
    record = first["persisted"]["recorded"][0]
    assert record["paths"]["portals"] == [{"portal": P1, "target": IQN}, {"portal": P2, "target": IQN}]
    again = run_main(fake, capsys, luns=[1, 2], persist=True)
    assert again["changed"] is False and again["persisted"]["recorded"] == []  # idempotent
    check_again = run_main(fake, capsys, luns=[1, 2], persist=True, _ansible_check_mode=True)
    assert check_again["changed"] is False  # attached LUNs: their WWID is known in check mode too


def test_an_attach_already_done_becomes_changed_when_persist_is_turned_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = world(tmp_path)
    plain = run_main(fake, capsys, lun="1")
    assert plain["persisted"] == {"state_file": str(state_file(fake)), "recorded": [], "forgotten": [], "count": 0}
    check = run_main(fake, capsys, lun="1", persist=True, _ansible_check_mode=True)
    assert check["changed"] is True and check["persisted"]["recorded"][0]["wwid"] == wwid_of(1)
    assert not state_file(fake).exists()
    persisted = run_main(fake, capsys, lun="1", persist=True)
    assert persisted["changed"] is True and recorded(fake) == {1: wwid_of(1)}
    without = run_main(fake, capsys, lun="1")
    assert without["changed"] is False and without["persisted"]["count"] == 1  # an attach never forgets


def test_a_failed_lun_is_not_recorded_and_the_others_are(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = world(tmp_path)
    result = run_main(fake, capsys, luns=[1, {"lun": 2, "expected_wwid": wwid_of(3)}], persist=True)
    assert result["failed"] is True and result["failed_luns"] == ["2"]
    assert recorded(fake) == {1: wwid_of(1)}


def test_a_detach_forgets_also_without_persist_and_a_refused_one_forgets_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = world(tmp_path)
    attached = run_main(fake, capsys, luns=[1, 2, 3], persist=True)
    fake.mounts.append(attached["luns"][1]["dm"]["dm"])  # LUN 2's map is mounted: the detach of 2 and 3 is refused
    fake.rebuild()
    refused = run_main(fake, capsys, luns=[2, 3], state="absent")
    assert refused["failed"] is True and recorded(fake) == {1: wwid_of(1), 2: wwid_of(2), 3: wwid_of(3)}
    fake.mounts.clear()
    fake.rebuild()
    check = run_main(fake, capsys, luns=[3], state="absent", _ansible_check_mode=True)
    assert [r["linux_lun"] for r in check["persisted"]["forgotten"]] == [3] and 3 in recorded(fake)
    detached = run_main(fake, capsys, luns=[3], state="absent", _ansible_diff=True)
    assert detached["changed"] is True and recorded(fake) == {1: wwid_of(1), 2: wwid_of(2)}
    assert f"persist: iscsi {IQN} LUN 3" in detached["diff"]["before"]
    again = run_main(fake, capsys, luns=[3], state="absent")
    assert again["changed"] is False
    run_main(fake, capsys, luns=[1, 2], state="absent")
    assert not state_file(fake).exists()  # removed with its last record


def test_a_state_file_that_cannot_be_used_fails_before_anything_is_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = world(tmp_path)
    state_file(fake).parent.mkdir(mode=0o700)
    state_file(fake).write_text("{broken")
    state_file(fake).chmod(0o600)
    result = run_main(fake, capsys, lun="1", persist=True)
    assert result["failed"] is True and str(state_file(fake)) in result["msg"] and "not JSON" in result["msg"]
    assert fake.calls == [["multipathd", "show", "status"]] or not any("--login" in c for c in fake.calls)
    assert fake.writes == [] and state_file(fake).read_text() == "{broken"
    assert result["persisted"] is None
    detach = run_main(fake, capsys, lun="1", state="absent")
    assert detach["failed"] is True and "not JSON" in detach["msg"]
    plain = run_main(fake, capsys, lun="1")  # an attach without persist does not need the file: a warning
    assert plain.get("failed") is not True and plain["persisted"] is None
    assert "not JSON" in json.dumps(plain["warnings"])


def test_a_state_file_that_cannot_be_written_fails_the_run_with_its_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = world(tmp_path)
    # the temporary file of the atomic replace cannot be made (a directory of that name is in the way)
    (fake.tmp_path / "lib" / f"persist.json.{os.getpid()}.tmp").mkdir(parents=True)
    (fake.tmp_path / "lib").chmod(0o700)
    result = run_main(fake, capsys, lun="1", persist=True)
    assert result["failed"] is True and "could not be written" in result["msg"]
    assert result["wwid"] == wwid_of(1) and result["persisted"]["count"] == 0  # attached, reported


def test_fc_lun_attach_takes_persist_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = fc_lun_attach.DOCUMENTATION
    assert "persist:" in lines and "persisted:" in fc_lun_attach.RETURN
    assert fc_lun_attach.ARGUMENT_SPEC["persist"] == {"type": "bool", "default": False}
    args = {"targets": ["0x5001405aaaaaaa01"], "lun": "1", "persist": True, "lock_file": "rel"}
    with patch_module_args(args), pytest.raises(SystemExit):
        fc_lun_attach.main(state_file=str(tmp_path / "lib" / "persist.json"))
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True and result["persisted"] is None  # refused input: nothing read or written
