# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _multipath as mp
from ansible_collections.lunsafe.san.plugins.module_utils._errors import DaemonUnavailable, InputError, ParseError

FIXTURES = Path(__file__).parent / "fixtures"
WWID = "36001405b1d1a8f2d3c74e7c9a6b0e1f2"


def raw(*rows: List[str]) -> str:
    """multipathd raw output: one line per row, fields joined with the separator."""
    return "".join(mp.FIELD_SEP.join(row) + "\n" for row in rows)


# --- builders ---------------------------------------------------------------------------------------------


def test_show_builders_use_the_documented_wildcards() -> None:
    assert mp.show_paths() == ["multipathd", "show", "paths", "raw", "format", mp.PATH_FORMAT]
    assert mp.show_maps() == ["multipathd", "show", "maps", "raw", "format", mp.MAP_FORMAT]
    assert mp.PATH_FORMAT.split(mp.FIELD_SEP) == ["%d", "%w", "%i", "%D", "%t", "%T", "%o", "%m", "%c"]
    assert mp.MAP_FORMAT.split(mp.FIELD_SEP) == ["%n", "%w", "%d", "%N", "%Q", "%t", "%f"]


def test_format_is_one_word_and_fits_multipathd_command_buffer() -> None:
    for argv in (mp.show_paths(), mp.show_maps()):
        fmt = argv[-1]
        # C isspace(): multipathd neither quotes nor splits the format (Python's isspace() differs)
        assert not set(fmt) & set(" \t\n\v\f\r")
        assert '"' not in fmt
        assert len(" ".join(argv[1:])) + 1 < 160  # CMDSIZE in multipathd/main.c


def test_action_builders() -> None:
    assert mp.show_status() == ["multipathd", "show", "status"]
    assert mp.add_path(device="sdc") == ["multipathd", "add", "path", "sdc"]
    assert mp.del_path(device="/dev/sdc") == ["multipathd", "del", "path", "sdc"]
    assert mp.del_map(name="mpatha") == ["multipathd", "del", "map", "mpatha"]
    assert mp.resize_map(name="mpatha") == ["multipathd", "resize", "map", "mpatha"]
    assert mp.resize_map(name=WWID) == ["multipathd", "resize", "map", WWID]
    assert mp.resize_map(name="dm-3") == ["multipathd", "resize", "map", "dm-3"]
    assert mp.disable_queueing(name=WWID) == ["multipathd", "disablequeueing", "map", WWID]
    assert mp.flush_map(name="mpatha") == ["multipath", "-f", "mpatha"]
    assert mp.add_wwid(wwid=WWID) == ["multipath", "-a", WWID]
    assert mp.remove_wwid(wwid=WWID) == ["multipath", "-w", WWID]
    assert mp.check_usable(device="dm-2") == ["multipath", "-C", "dm-2"]
    assert mp.list_topology() == ["multipath", "-ll"]
    assert mp.list_topology(name="mpatha") == ["multipath", "-ll", "mpatha"]
    assert mp.dmsetup_status(name="mpatha") == ["dmsetup", "status", "mpatha"]
    assert mp.dmsetup_table(name="mpatha") == ["dmsetup", "table", "mpatha"]
    assert mp.dmsetup_fail_if_no_path(name="mpatha") == ["dmsetup", "message", "mpatha", "0", "fail_if_no_path"]


@pytest.mark.parametrize("bad", ["", "sd c", "../sdc", "/dev/../sdc", "sdc;rm", "-f", "/sys/block/sdc"])
def test_device_names_are_validated(bad: str) -> None:
    with pytest.raises(InputError):
        mp.del_path(device=bad)


@pytest.mark.parametrize("bad", ["", "a b", "/dev/mapper/mpatha", "..", "x" * 200])
def test_map_names_are_validated(bad: str) -> None:
    with pytest.raises(InputError):
        mp.flush_map(name=bad)
    with pytest.raises(InputError):
        mp.resize_map(name=bad)


# --- replies ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rc", "out", "err", "kind"),
    [
        (0, "ok\n", "", mp.REPLY_OK),
        (1, "fail\n", "", mp.REPLY_FAIL),
        (0, "timeout\n", "", mp.REPLY_TIMEOUT),
        (1, "timeout receiving packet\n", "", mp.REPLY_TIMEOUT),
        (0, "error receiving packet\n", "", mp.REPLY_NOT_RUNNING),
        (1, "error -104 receiving packet\n", "", mp.REPLY_NOT_RUNNING),
        (1, "", "ux_socket_connect: No such file or directory\n", mp.REPLY_NOT_RUNNING),
        (1, "", "ERROR: could not connect to multipathd\n", mp.REPLY_NOT_RUNNING),
        (0, "sdc\n", "", mp.REPLY_DATA),
        (0, "", "", mp.REPLY_DATA),
        (1, "", "something else\n", mp.REPLY_FAIL),
        (1, "", "", mp.REPLY_NOT_RUNNING),  # multipath-tools 0.9.4 with the daemon stopped (lab)
        (1, "\n", "  \n", mp.REPLY_NOT_RUNNING),
    ],
)
def test_classify_reply(rc: int, out: str, err: str, kind: str) -> None:
    assert mp.classify_reply(rc, out, err) == kind


def test_check_reply_raises_on_non_answers() -> None:
    with pytest.raises(DaemonUnavailable, match="not running"):
        mp.check_reply(0, "error receiving packet\n")
    with pytest.raises(DaemonUnavailable, match="in time") as info:
        mp.check_reply(0, "timeout\n", cmd="multipathd show paths")
    assert info.value.cmd == "multipathd show paths"
    assert mp.check_reply(0, "ok\n") == mp.REPLY_OK


def test_parse_status() -> None:
    text = "path checker states:\nup                  4\ndown                1\nghost               2\n\n"
    text += "paths: 7\nbusy: False\n"
    assert mp.parse_status(text) == {"checker_states": {"up": 4, "down": 1, "ghost": 2}, "paths": 7, "busy": False}
    assert mp.parse_status("path checker states:\n\nup 2\n") == {"checker_states": {"up": 2}}


# --- raw format records -----------------------------------------------------------------------------------


def test_parse_paths() -> None:
    text = raw(
        ["sdc", WWID, "2:0:0:1", "8:32", "active", "ready", "running", "mpatha", "tur"],
        ["sde", WWID, "3:0:0:1", "8:64", "active", "ghost", "running", "mpatha", "tur"],
        ["sdg", WWID, "4:0:0:1", "8:96", "failed", "faulty", "running", "mpatha", "tur"],
        ["sdi", WWID, "5:0:0:1", "8:128", "active", "i/o pending", "running", "mpatha", "tur"],
        ["sdk", "", "6:0:0:2", "8:160", "undef", "faulty", "offline", "[orphan]", "tur"],
    )
    paths = mp.parse_paths(text)
    assert [p.dev for p in paths] == ["sdc", "sde", "sdg", "sdi", "sdk"]
    assert paths[0].hctl == "2:0:0:1" and paths[0].devt == "8:32" and paths[0].multipath == "mpatha"
    assert [p.is_faulty for p in paths] == [False, False, True, False, True]  # ghost is ALUA standby
    assert paths[3].checker_state == "i/o pending"
    assert paths[4].is_orphan and paths[4].wwid is None
    assert paths[0].to_dict()["faulty"] is False


def test_parse_maps() -> None:
    text = raw(
        ["mpatha", WWID, "dm-2", "3", "5 chk", "active", "1 queue_if_no_path"],
        ["36001405c9e3f1a2b3c4d5e6f7a8b9c0d", "36001405c9e3f1a2b3c4d5e6f7a8b9c0d", "dm-3", "0", "off", "active", "0"],
    )
    maps = mp.parse_maps(text)
    assert maps[0].name == "mpatha" and maps[0].wwid == WWID and maps[0].sysfs == "dm-2"
    assert maps[0].active_paths == 3 and maps[0].queue_if_no_path and not maps[0].is_dead
    assert maps[0].queueing == "5 chk"
    assert maps[1].is_dead and not maps[1].queue_if_no_path
    assert maps[1].to_dict()["dead"] is True


def test_raw_parsers_refuse_wrong_field_counts() -> None:
    with pytest.raises(ParseError):
        mp.parse_paths("sdc 36001405 2:0:0:1\n")
    assert mp.parse_maps("\n\n") == []


# --- dmsetup ----------------------------------------------------------------------------------------------


def test_parse_dmsetup_status_counts_active_and_failed() -> None:
    text = "0 2097152 multipath 2 0 0 0 2 1 A 0 2 2 8:32 A 0 0 1 8:64 A 0 0 1 E 0 2 2 8:96 F 3 0 1 8:128 A 0 0 1\n"
    status = mp.parse_dmsetup_status(text)
    assert status.active == 3 and status.failed == 1
    assert [(p.devt, p.active, p.fail_count, p.group) for p in status.paths] == [
        ("8:32", True, 0, 1),
        ("8:64", True, 0, 1),
        ("8:96", False, 3, 2),
        ("8:128", True, 0, 2),
    ]
    assert status.queued_io == 0


def test_parse_dmsetup_status_all_failed_with_queued_io_and_name_prefix() -> None:
    text = "mpatha: 0 2097152 multipath 2 17 0 0 1 1 A 0 1 0 8:32 F 1\n"
    status = mp.parse_dmsetup_status(text)
    assert status.active == 0 and status.failed == 1 and status.queued_io == 17
    assert status.to_dict()["paths"] == [{"devt": "8:32", "active": False, "fail_count": 1, "group": 1}]


@pytest.mark.parametrize(
    "text",
    ["", "0 2097152 linear 8:0 0\n", "0 2097152 multipath 2 0 0 0 1 1 A 0 1 0 8:32 X 1\n", "0 1 multipath 2 0\n"],
)
def test_parse_dmsetup_status_errors(text: str) -> None:
    with pytest.raises(ParseError):
        mp.parse_dmsetup_status(text)


def test_parse_dmsetup_table() -> None:
    text = "0 2097152 multipath 1 queue_if_no_path 1 alua 2 1 "
    text += "service-time 0 2 2 8:32 1 1 8:64 1 1 service-time 0 1 2 8:96 1 1\n"
    table = mp.parse_dmsetup_table(text)
    assert table.queue_if_no_path
    assert table.hwhandler == ("alua",)
    assert table.devts == ("8:32", "8:64", "8:96")
    assert table.groups[0] == ("service-time", ("8:32", "8:64"))
    plain = mp.parse_dmsetup_table("0 4194304 multipath 0 0 1 1 round-robin 0 1 1 8:176 1\n")
    assert not plain.queue_if_no_path and plain.devts == ("8:176",)
    assert plain.to_dict()["groups"] == [{"selector": "round-robin", "paths": ["8:176"]}]


# --- multipath -ll ----------------------------------------------------------------------------------------


def test_parse_ll_fixture() -> None:
    maps = mp.parse_ll((FIXTURES / "multipath_ll.txt").read_text(encoding="utf-8"))
    assert [m.name for m in maps] == ["mpatha", "36001405c9e3f1a2b3c4d5e6f7a8b9c0d", "mpathc", "mpathd"]

    mpatha = maps[0]
    assert mpatha.wwid == WWID and mpatha.sysfs == "dm-2" and mpatha.vendor_product == "LIO-ORG,lun1"
    assert mpatha.action is None
    assert mpatha.size == "1.0G" and mpatha.queue_if_no_path and mpatha.hwhandler == "1 alua" and mpatha.wp == "rw"
    assert [(g.policy, g.prio, g.status) for g in mpatha.groups] == [
        ("service-time 0", 50, "active"),
        ("service-time 0", 10, "enabled"),
    ]
    assert [(p.hctl, p.dev, p.devt, p.dm_state, p.checker_state, p.dev_state) for p in mpatha.paths] == [
        ("2:0:0:1", "sdc", "8:32", "active", "ready", "running"),
        ("3:0:0:1", "sde", "8:64", "active", "ghost", "running"),
        ("4:0:0:1", "sdg", "8:96", "failed", "faulty", "running"),
        ("5:0:0:1", "sdi", "8:128", "active", "i/o pending", "running"),
    ]

    no_alias = maps[1]
    assert no_alias.wwid == no_alias.name and no_alias.sysfs == "dm-3" and not no_alias.queue_if_no_path
    orphan, offline = no_alias.paths
    assert orphan.is_orphan_row and orphan.hctl is None and orphan.devt is None and orphan.checker_state == "faulty"
    assert offline.dev == "sdk" and offline.dev_state == "offline"

    created = maps[2]
    assert created.action == "create" and created.sysfs is None
    assert created.vendor_product == "NETAPP,LUN C-Mode"
    assert created.features == "3 queue_if_no_path pg_init_retries 50" and created.queue_if_no_path
    assert [p.dev for p in created.paths] == ["sdl"]

    reloaded = maps[3]
    assert reloaded.action == "reload" and reloaded.groups == [] and reloaded.hwhandler == "0"
    assert reloaded.to_dict()["queue_if_no_path"] is False


def test_parse_ll_skips_log_lines_and_garbage() -> None:
    text = (
        "Nov 25 01:02:03 | mpatha: some message (with parens) dm-9 X,Y\n"
        "123.456 | sdb: add missing path\n"
        "| `- 2:0:0:1 sdc 8:32 active ready running\n"  # a path before any map header
        "DM multipath kernel driver not loaded\n"
        "mpatha: remove dm-3 because no path left\n"  # a message, not a header
        "reload & switchpg: mpathe (3600a0b80) dm-7 DGC,VRAID\n"
    )
    maps = mp.parse_ll(text)
    assert [(m.action, m.name, m.wwid, m.sysfs, m.vendor_product) for m in maps] == [
        ("reload & switchpg", "mpathe", "3600a0b80", "dm-7", "DGC,VRAID")
    ]
    assert mp.parse_ll("") == []


def test_an_empty_table_answered_with_ok_has_no_rows() -> None:
    """multipath-tools 0.9.4 with multipathd running and no path at all prints "ok" for raw-format tables."""
    assert mp.classify_reply(0, "ok\n") == mp.REPLY_OK
    assert mp.parse_paths("ok\n") == []
    assert mp.parse_maps("ok") == []
    with pytest.raises(ParseError):
        mp.parse_paths("ok ok\n")
