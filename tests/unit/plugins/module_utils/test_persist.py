# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The persistence state file (issue 28): trusted only from root, replaced atomically, never silently dropped."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Dict

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _attach as attach
from ansible_collections.lunsafe.san.plugins.module_utils import _persist as persist
from ansible_collections.lunsafe.san.plugins.module_utils import _transport_fc as fc
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fake_host import IQN, wwid_of

OTHER = 65534  # nobody
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def iscsi_request(**params: Any) -> attach.Request:
    params.setdefault("target", IQN)
    params.setdefault("portals", ["127.0.0.1", "127.0.0.2"])
    params.setdefault("luns", [1])
    return attach.build_request(params, resolver=lambda name: [])


def record(lun: int = 1, *, wwid: str = "", **params: Any) -> Dict[str, Any]:
    request = iscsi_request(luns=[lun], **params)
    return persist.make_record(
        transport=request.transport,
        lun={"lun": str(lun)},
        linux_lun=lun,
        lun_addressing="peripheral",
        wwid=wwid or wwid_of(lun),
        multipath=True,
        now=lambda: "2026-12-05T17:00:00+00:00",
    )


def state(tmp_path: Path) -> persist.StateFile:
    return persist.StateFile(str(tmp_path / "lib" / "persist.json"))


def test_no_file_is_no_record_and_the_first_write_makes_a_root_only_directory_and_file(tmp_path: Path) -> None:
    store = state(tmp_path)
    assert store.read() == []
    store.write([record(1)])
    directory, path = tmp_path / "lib", Path(store.path)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.read() == [record(1)]
    assert json.loads(path.read_text())["version"] == persist.STATE_VERSION
    assert [p.name for p in directory.iterdir()] == ["persist.json"]  # no temporary file is left
    store.write([])
    assert not path.exists()


def test_a_write_replaces_the_file_whole_never_in_place(tmp_path: Path) -> None:
    store = state(tmp_path)
    store.write([record(1)])
    before = os.stat(store.path).st_ino
    store.write([record(1), record(2)])
    assert os.stat(store.path).st_ino != before  # a new file renamed over the old one
    assert [r["linux_lun"] for r in store.read()] == [1, 2]


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("{not json", "it is not JSON"),
        ('{"version": 1}', "it has no list of records"),
        ('{"version": 2, "records": []}', "version 2 is not 1"),
        ('{"version": 1, "records": [{"transport": "iscsi"}]}', "record 1: 'module' missing"),
        ('{"version": 1, "records": [7]}', "record 1: not a mapping"),
    ],
)
def test_a_malformed_file_is_an_error_naming_it_and_is_left_as_it_is(tmp_path: Path, text: str, cause: str) -> None:
    store = state(tmp_path)
    store.write([record(1)])
    Path(store.path).write_text(text)
    with pytest.raises(persist.PersistError) as raised:
        store.read()
    assert store.path in raised.value.msg and cause in raised.value.msg
    assert Path(store.path).read_text() == text


@pytest.mark.parametrize(
    ("change", "cause"),
    [
        ({"transport": "nvme"}, "unknown transport 'nvme'"),
        ({"targets": []}, "'targets' names no target"),
        ({"linux_lun": True}, "'linux_lun' missing or not a int"),
        ({"wwid": None}, "'wwid' missing or not a str"),
    ],
)
def test_each_record_is_checked(change: Dict[str, Any], cause: str) -> None:
    assert persist.validate_record({**record(1), **change}) == cause
    assert persist.validate_record(record(1)) is None


@needs_root
def test_a_file_another_user_owns_is_refused_naming_it(tmp_path: Path) -> None:
    store = state(tmp_path)
    store.write([record(1)])
    os.chown(store.path, OTHER, OTHER)
    with pytest.raises(persist.PersistError) as raised:
        store.read()
    assert store.path in raised.value.msg and "persistence state file" in raised.value.msg
    with pytest.raises(persist.PersistError):
        store.write([record(2)])
    assert os.stat(store.path).st_uid == OTHER  # not replaced


def test_a_file_others_can_write_and_a_symbolic_link_are_refused(tmp_path: Path) -> None:
    store = state(tmp_path)
    store.write([record(1)])
    os.chmod(store.path, 0o666)  # noqa: S103 - the file others could write
    with pytest.raises(persist.PersistError, match="writable by group or others"):
        store.read()
    os.unlink(store.path)
    (tmp_path / "elsewhere.json").write_text(json.dumps({"version": 1, "records": [record(2)]}))
    os.symlink(tmp_path / "elsewhere.json", store.path)
    with pytest.raises(persist.PersistError, match="symbolic link"):
        store.read()


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    store = state(tmp_path)
    (tmp_path / "lib").mkdir()
    os.chmod(tmp_path / "lib", 0o777)  # noqa: S103 - the directory others could write
    with pytest.raises(persist.PersistError, match="writable by"):
        store.write([record(1)])
    with pytest.raises(persist.PersistError, match="nothing was changed"):
        store.read()


def test_a_file_that_cannot_be_read_or_written_is_an_error(tmp_path: Path) -> None:
    store = persist.StateFile(str(tmp_path / "lib"))  # a directory where the file should be
    (tmp_path / "lib").mkdir(mode=0o700)
    with pytest.raises(persist.PersistError):
        store.read()
    blocked = persist.StateFile(str(tmp_path / "file" / "sub" / "persist.json"))
    (tmp_path / "file").write_text("")
    with pytest.raises(persist.PersistError, match="could not be written"):
        blocked.write([record(1)])


def test_plan_records_updates_and_forgets_by_key() -> None:
    one, two = record(1), record(2)
    change = persist.plan([one], record=[one, two])
    assert change.recorded == [two] and change.after == [one, two] and change.changed
    again = persist.plan([one, two], record=[{**one, "recorded": "later"}])
    assert not again.changed  # the same LUN with the same paths and WWID: nothing to write
    reused = {**one, "wwid": wwid_of(1, generation=1)}
    updated = persist.plan([one, two], record=[reused])
    assert updated.recorded == [reused] and updated.after == [reused, two]
    before, after = updated.diff()
    assert before == f"persist: {persist.describe(one)}\n" and after == f"persist: {persist.describe(reused)}\n"
    unknown = persist.plan([one], record=[{**one, "wwid": None}])
    assert not unknown.changed  # check mode: a WWID not known yet is no change
    forgotten = persist.plan([one, two], forget=[persist.record_key(one), "iscsi nothing LUN 9"])
    assert forgotten.forgotten == [one] and forgotten.after == [two]
    assert forgotten.to_result("/f") == {"state_file": "/f", "recorded": [], "forgotten": [one], "count": 1}


def test_records_keep_what_the_restore_needs_for_both_transports() -> None:
    iscsi_record = record(3, portals=[{"portal": "127.0.0.1", "target": IQN}, "127.0.0.2"], iface="default")
    assert iscsi_record["paths"] == {
        "transport": "iscsi",
        "portals": [{"portal": "127.0.0.1:3260", "target": IQN}, {"portal": "127.0.0.2:3260", "target": IQN}],
        "iface": "default",
    }
    assert persist.record_key(iscsi_record) == f"iscsi {IQN} LUN 3"
    params = persist.request_params([iscsi_record], timeout=5)
    again = attach.build_request(params, resolver=lambda name: [])
    assert persist.paths_of(again.transport) == iscsi_record["paths"]
    assert [(lun.linux_lun, lun.expected_wwid) for lun in again.luns] == [(3, wwid_of(3))]
    fc_params = {"targets": ["0x5001405aaaaaaa01"], "initiators": ["0x10000000c9000001"], "luns": [2]}
    fc_request = attach.common_request(fc_params, parse_transport=lambda: fc.parse(fc_params))
    fc_record = persist.make_record(
        transport=fc_request.transport,
        lun={"lun": "2"},
        linux_lun=2,
        lun_addressing="peripheral",
        wwid=wwid_of(2),
        multipath=False,
    )
    assert fc_record["paths"] == {
        "transport": "fc",
        "targets": ["0x5001405aaaaaaa01"],
        "initiators": ["0x10000000c9000001"],
    }
    assert persist.validate_record(fc_record) is None
    fc_again = persist.request_params([fc_record], timeout=5)
    assert fc_again["targets"] == ["0x5001405aaaaaaa01"] and fc_again["multipath"] is False
    assert len(persist.groups([iscsi_record, fc_record, record(4, portals=["127.0.0.1"])])) == 3
    assert len(persist.groups([record(1), record(2)])) == 1


def test_a_request_of_another_kind_cannot_be_recorded() -> None:
    class Other:
        module = "other_module"

    with pytest.raises(persist.PersistError, match="other_module"):
        persist.paths_of(Other())  # type: ignore[arg-type]
