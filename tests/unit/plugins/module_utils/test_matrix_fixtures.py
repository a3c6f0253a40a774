# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The parsers over real output of each Debian suite of the guest matrix (issue 27): fixtures/matrix/SUITE,
captured by tests/lab/capture_matrix_fixtures.py from lab guests of bullseye (multipath-tools 0.8.5, open-iscsi
2.1.3), bookworm (0.9.4, 2.1.8) and trixie (0.11.1, 2.1.11): four LUNs on two sessions, healthy, then LUN 2
unmapped by the array with both of its paths faulty. Each suite's output must give the same picture."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Dict, List

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _iscsiadm as iscsiadm
from ansible_collections.lunsafe.san.plugins.module_utils import _multipath as mp

MATRIX = Path(__file__).parent / "fixtures" / "matrix"
SUITES = sorted(p.name for p in MATRIX.iterdir() if p.is_dir()) if MATRIX.is_dir() else []
IQN = "iqn.2003-01.org.lunsafe.lab:array"


def test_every_suite_of_the_matrix_has_fixtures() -> None:
    assert SUITES == ["bookworm", "bullseye", "trixie"]


def read(suite: str, state: str, name: str) -> str:
    return (MATRIX / suite / state / name).read_text(encoding="utf-8")


def lun_of(hctl: str) -> int:
    return int(hctl.rsplit(":", 1)[1])


def paths_by_lun(suite: str, state: str) -> Dict[int, List[mp.PathRecord]]:
    text = read(suite, state, "multipathd_show_paths_raw.txt")
    assert mp.check_reply(0, text) == mp.REPLY_DATA
    found: Dict[int, List[mp.PathRecord]] = {}
    for path in mp.parse_paths(text):
        assert path.hctl is not None and re.match(r"^\d+:0:0:[0-3]$", path.hctl), path
        found.setdefault(lun_of(path.hctl), []).append(path)
    return found


@pytest.mark.parametrize("suite", SUITES)
def test_healthy_paths_and_maps(suite: str) -> None:
    by_lun = paths_by_lun(suite, "healthy")
    assert sorted(by_lun) == [0, 1, 2, 3]
    for lun, paths in by_lun.items():
        assert len(paths) == 2 and len({p.hctl.split(":")[0] for p in paths if p.hctl}) == 2, (lun, paths)
        assert [p.is_faulty or p.is_orphan for p in paths] == [False, False], paths
        assert len({p.wwid for p in paths}) == 1 and len({p.multipath for p in paths}) == 1, paths
        assert all(re.match(r"^\d+:\d+$", p.devt or "") for p in paths), paths
    maps = mp.parse_maps(read(suite, "healthy", "multipathd_show_maps_raw.txt"))
    assert sorted(m.name for m in maps) == sorted(str(paths[0].multipath) for paths in by_lun.values())
    assert all(m.active_paths == 2 and not m.is_dead and m.sysfs and m.sysfs.startswith("dm-") for m in maps), maps
    assert {m.wwid for m in maps} == {paths[0].wwid for paths in by_lun.values()}


@pytest.mark.parametrize("suite", SUITES)
def test_healthy_multipath_ll_and_dmsetup_agree_with_multipathd(suite: str) -> None:
    maps = {m.name: m for m in mp.parse_maps(read(suite, "healthy", "multipathd_show_maps_raw.txt"))}
    ll = mp.parse_ll(read(suite, "healthy", "multipath_ll.txt"))
    assert sorted(m.name for m in ll) == sorted(maps)
    for entry in ll:
        assert entry.wwid == maps[entry.name].wwid and entry.sysfs == maps[entry.name].sysfs
        assert (
            sorted((p.dm_state, p.checker_state, p.dev_state) for p in entry.paths)
            == [("active", "ready", "running")] * 2
        ), entry
    status = mp.parse_dmsetup_all(read(suite, "healthy", "dmsetup_status.txt"))
    table = mp.parse_dmsetup_all(read(suite, "healthy", "dmsetup_table.txt"))
    assert sorted(status) == sorted(table) == sorted(maps)
    for name in maps:
        assert len(mp.parse_dmsetup_table(table[name]).devts) == 2
        parsed = mp.parse_dmsetup_status(status[name])
        assert [p.active for p in parsed.paths] == [True, True], (name, parsed)


@pytest.mark.parametrize("suite", SUITES)
def test_unmapped_lun_shows_faulty_on_every_source(suite: str) -> None:
    by_lun = paths_by_lun(suite, "unmapped")
    assert [p.is_faulty for p in by_lun[2]] == [True, True], by_lun[2]
    for lun in (0, 1, 3):
        assert [p.is_faulty for p in by_lun[lun]] == [False, False], by_lun[lun]
    name = str(by_lun[2][0].multipath)
    maps = {m.name: m for m in mp.parse_maps(read(suite, "unmapped", "multipathd_show_maps_raw.txt"))}
    assert maps[name].active_paths == 0 and maps[name].is_dead
    assert all(not m.is_dead for key, m in maps.items() if key != name)
    ll = {m.name: m for m in mp.parse_ll(read(suite, "unmapped", "multipath_ll.txt"))}
    assert [(p.dm_state, p.checker_state) for p in ll[name].paths] == [("failed", "faulty")] * 2
    status = mp.parse_dmsetup_status(mp.parse_dmsetup_all(read(suite, "unmapped", "dmsetup_status.txt"))[name])
    assert [p.active for p in status.paths] == [False, False], status


@pytest.mark.parametrize("suite", SUITES)
def test_sessions_and_node_records(suite: str) -> None:
    sessions = iscsiadm.parse_session_list(read(suite, "healthy", "iscsiadm_session.txt"))
    assert sorted(s.portal.for_iscsiadm() for s in sessions) == ["127.0.0.1:3260", "127.0.0.2:3260"]
    assert {s.target for s in sessions} == {IQN} and {s.transport for s in sessions} == {"tcp"}
    nodes = iscsiadm.parse_node_list(read(suite, "healthy", "iscsiadm_node.txt"))
    assert sorted(n.portal.for_iscsiadm() for n in nodes) == ["127.0.0.1:3260", "127.0.0.2:3260"]
    record = iscsiadm.parse_node_record(read(suite, "healthy", "iscsiadm_node_record.txt"))
    assert record["node.name"] == IQN and record["node.conn[0].address"] == "127.0.0.1"
    # the keys iscsi_lun_attach writes exist in every generation's record
    for key in (
        "node.session.scan",
        "node.startup",
        "node.session.auth.authmethod",
        "node.session.timeo.replacement_timeout",
    ):
        assert key in record, (suite, key)


@pytest.mark.parametrize("suite", SUITES)
def test_multipathd_status_answers(suite: str) -> None:
    text = read(suite, "healthy", "multipathd_show_status.txt")
    assert mp.classify_reply(0, text) == mp.REPLY_DATA
    status = mp.parse_status(text)
    assert status, text


def test_the_capture_script_asks_multipathd_for_the_formats_the_parser_reads() -> None:
    """capture_matrix_fixtures.py runs on the controller without the collection on its path, so it spells the
    wildcards itself: they must stay the parser's, or new fixtures would be captured in another layout."""
    script = Path(__file__).resolve().parents[3] / "lab" / "capture_matrix_fixtures.py"
    spec = importlib.util.spec_from_file_location("capture_matrix_fixtures", script)
    assert spec is not None and spec.loader is not None
    capture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(capture)
    assert capture.SEP == mp.FIELD_SEP
    assert capture.PATH_FORMAT == mp.PATH_FORMAT
    assert capture.MAP_FORMAT == mp.MAP_FORMAT
