# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""iscsi_info's observe/report over fake sysfs trees and iscsiadm output captured in the lab (open-iscsi
2.1.8, session CHAP on two portals, discovery CHAP, one more record with automatic scan)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _iscsiadm as iscsiadm
from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError, LunsafeError, ToolError
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._iscsi_info import (
    Filters,
    is_secret_setting,
    make_filters,
    observe,
    report,
)
from ansible_collections.lunsafe.san.plugins.module_utils._portal import Portal
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.iscsi_info_host import (
    DISCOVERY_SECRET,
    IQN,
    SESSION_SECRET,
    WWID1,
    WWID2,
    fixture,
    host_for,
    lab_script,
    lab_sysfs,
)
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.sysfs_tree import build_sysfs, remove_path


def no_filters(host: Host) -> Filters:
    return make_filters(targets=None, portals=None, host=host)


def read(host: Host, *, all_settings: bool = False, **filters: Sequence[str]) -> Dict[str, Any]:
    made = make_filters(targets=filters.get("targets"), portals=filters.get("portals"), host=host)
    return report(observe(host, timeout=7), filters=made, all_settings=all_settings)


# -------------------------------------------------------------------------------------------------------
# the additions to _iscsiadm


def test_parse_node_records_of_the_lab_dump() -> None:
    records = iscsiadm.parse_node_records(fixture("node_show_all.txt"))
    assert [(r["node.conn[0].address"], r["node.session.scan"]) for r in records] == [
        ("127.0.0.1", "manual"),
        ("127.0.0.2", "manual"),
        ("::1", "auto"),
    ]
    assert records[0]["node.session.auth.password"] == "********"
    assert records[2]["node.session.auth.password"] == ""  # <empty>
    assert len(records[0]) > 100


def test_parse_node_records_edge_cases() -> None:
    assert iscsiadm.parse_node_records("") == []
    # older versions print one record without markers
    assert iscsiadm.parse_node_records("node.name = iqn.x\nnode.startup = manual\n") == [
        {"node.name": "iqn.x", "node.startup": "manual"}
    ]
    # cut short after BEGIN: what was printed is kept; an END without BEGIN and empty blocks are ignored
    text = "# END RECORD\n# BEGIN RECORD 2.1.8\n# END RECORD\n# BEGIN RECORD 2.1.8\nnode.name = iqn.y\n"
    assert iscsiadm.parse_node_records(text) == [{"node.name": "iqn.y"}]
    assert iscsiadm.parse_node_records("garbage\n") == []


def test_parse_discovery_entries_keeps_the_type() -> None:
    entries = iscsiadm.parse_discovery_entries(
        fixture("discoverydb_list_mixed.txt") + "[fd00::1]:3261 via sendtargets\n[fd00::1 via x\nno\n"
    )
    assert [(p.for_iscsiadm(), kind) for p, kind in entries] == [
        ("127.0.0.1:3260", "sendtargets"),
        ("127.0.0.1:3205", "isns"),
        ("[::1]:3260", "sendtargets"),
        ("[fd00::1]:3261", "sendtargets"),
    ]
    # the SendTargets-only view is unchanged
    assert [p.for_iscsiadm() for p in iscsiadm.parse_discovery_list(fixture("discoverydb_list_mixed.txt"))] == [
        "127.0.0.1:3260",
        "[::1]:3260",
    ]


def test_show_builders() -> None:
    assert iscsiadm.node_show_all() == ["iscsiadm", "-m", "node", "-o", "show"]
    assert iscsiadm.discoverydb_show(portal=Portal("::1", 3260), discovery_type="isns") == [
        "iscsiadm",
        "-m",
        "discoverydb",
        "-t",
        "isns",
        "-p",
        "[::1]:3260",
        "-o",
        "show",
    ]
    with pytest.raises(InputError, match="discovery type"):
        iscsiadm.discoverydb_show(portal=Portal("::1", 3260), discovery_type="fw")


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("node.session.auth.password", True),
        ("node.session.auth.password_in", True),
        ("discovery.sendtargets.auth.password", True),
        ("iface.Password_x", True),
        ("node.session.auth.username", False),
        ("node.session.auth.authmethod", False),
    ],
)
def test_is_secret_setting(key: str, secret: bool) -> None:
    assert is_secret_setting(key) is secret


# -------------------------------------------------------------------------------------------------------
# observe and report


def test_lab_state(tmp_path: Path) -> None:
    runner = ScriptedRunner(lab_script())
    result = read(host_for(lab_sysfs(tmp_path), runner))
    assert runner.remaining == []
    # every command is a query with the given deadline, and the record dumps are never kept on failure
    assert [call.timeout for call in runner.calls] == [7, 7, 7]
    assert all(argv[-1] in ("show", "discoverydb") for argv in runner.argvs)

    first, second = result["sessions"]
    assert first == {
        "sid": 1,
        "target": IQN,
        "portal": "127.0.0.1:3260",
        "address": "127.0.0.1",
        "port": 3260,
        "persistent_portal": "127.0.0.1:3260",
        "tpgt": 1,
        "iface": "default",
        "initiator": "iqn.1994-05.com.redhat:client1",
        "transport": "iscsi_tcp",
        "host": 2,
        "state": "LOGGED_IN",
        "connection_state": "up",
        "target_state": None,
        "replacement_timeout": 5,
        "scan": "manual",
        "luns": [
            {
                "hctl": "2:0:0:1",
                "lun": 1,
                "device": "sda",
                "state": "running",
                "size_bytes": 67108864,
                "read_only": False,
                "wwid": WWID1,
                "multipath_map": "mpatha",
                "dm": "dm-0",
            },
            {
                "hctl": "2:0:0:2",
                "lun": 2,
                "device": "sdb",
                "state": "running",
                "size_bytes": 67108864,
                "read_only": False,
                "wwid": WWID2,
                "multipath_map": "mpathb",
                "dm": "dm-1",
            },
        ],
    }
    assert [(lun["device"], lun["multipath_map"]) for lun in second["luns"]] == [("sdd", "mpatha"), ("sdc", "mpathb")]

    by_portal = {node["portal"]: node for node in result["nodes"]}
    assert list(by_portal) == ["127.0.0.1:3260", "127.0.0.2:3260", "[::1]:3260"]
    node = by_portal["127.0.0.1:3260"]
    assert node["target"] == IQN and node["tpgt"] == -1 and node["iface"] == "default" and node["transport"] == "tcp"
    assert (node["startup"], node["scan"], node["sids"]) == ("manual", "manual", [1])
    assert node["auth"] == {
        "method": "CHAP",
        "username": "hb-user",
        "password_set": True,
        "username_in": None,
        "password_in_set": False,
    }
    assert node["timeouts"] == {
        "replacement_timeout": 120,
        "noop_out_interval": 5,
        "noop_out_timeout": 5,
        "login_timeout": 15,
        "logout_timeout": 15,
        "abort_timeout": 15,
        "lu_reset_timeout": 30,
    }
    assert node["discovery"] == {"type": "static", "portal": None, "address": None, "port": None}
    assert "settings" not in node
    assert by_portal["127.0.0.2:3260"]["sids"] == [2]
    v6 = by_portal["[::1]:3260"]
    assert (v6["address"], v6["port"], v6["scan"], v6["sids"]) == ("::1", 3260, "auto", [])
    assert v6["auth"]["method"] == "None" and v6["auth"]["password_set"] is False

    assert result["discovery"] == [
        {
            "type": "sendtargets",
            "portal": "127.0.0.1:3260",
            "address": "127.0.0.1",
            "port": 3260,
            "startup": "manual",
            "auth": {
                "method": "CHAP",
                "username": "hb-disco",
                "password_set": True,
                "username_in": None,
                "password_in_set": False,
            },
            "login_timeout": 15,
            "use_discoveryd": "No",
            "readable": True,
        }
    ]
    assert result["filters"] == {"targets": [], "portals": []}
    assert result["warnings"] == []
    # the kernel's copy of the secret is never read
    assert SESSION_SECRET not in json.dumps(result)


def test_no_secret_even_when_iscsiadm_prints_it(tmp_path: Path) -> None:
    """An iscsiadm that prints passwords (as with -S, or a version that does not mask them): the value
    never reaches the result, in any view, only that one is set."""
    node_show = fixture("node_show_all.txt").replace("password = ********", f"password = {SESSION_SECRET}")
    node_show = node_show.replace("password_in = <empty>", "password_in = Mutual-Secret-9", 1)
    discovery_show = fixture("discoverydb_show_sendtargets.txt").replace("********", DISCOVERY_SECRET)
    assert SESSION_SECRET in node_show and DISCOVERY_SECRET in discovery_show
    runner = ScriptedRunner(lab_script(node_show=node_show, discovery_show=discovery_show))
    result = read(host_for(lab_sysfs(tmp_path), runner), all_settings=True)
    text = json.dumps(result)
    for secret in (SESSION_SECRET, DISCOVERY_SECRET, "Mutual-Secret-9"):
        assert secret not in text
    assert "password" not in json.dumps([n["settings"] for n in result["nodes"]])
    assert result["nodes"][0]["auth"]["password_in_set"] is True
    assert result["discovery"][0]["auth"]["password_set"] is True
    assert result["nodes"][0]["settings"]["node.session.auth.username"] == "hb-user"
    assert result["discovery"][0]["settings"]["discovery.type"] == "sendtargets"


def test_a_failing_record_dump_keeps_its_output_out_of_the_error(tmp_path: Path) -> None:
    node_show = fixture("node_show_all.txt").replace("********", SESSION_SECRET)
    runner = ScriptedRunner([(iscsiadm.node_show_all(), 6, node_show, "iscsiadm: some IDBM error\n")])
    with pytest.raises(ToolError) as caught:
        observe(host_for(lab_sysfs(tmp_path), runner), timeout=7)
    assert caught.value.rc == 6
    assert SESSION_SECRET not in json.dumps(caught.value.to_fail_kwargs())


def test_nothing_there(tmp_path: Path) -> None:
    """iscsiadm's exit code 21 (and 255 of older versions) is no record, not a failure."""
    runner = ScriptedRunner(
        [
            (iscsiadm.node_show_all(), 21, "", "iscsiadm: No records found\n"),
            (iscsiadm.discoverydb_list(), 255, "", ""),
        ]
    )
    result = read(host_for(build_sysfs(tmp_path), runner))
    assert (result["sessions"], result["nodes"], result["discovery"], result["warnings"]) == ([], [], [], [])


def test_missing_iscsiadm_is_a_clear_error(tmp_path: Path) -> None:
    runner = ScriptedRunner([], missing_tools=["iscsiadm"])
    with pytest.raises(LunsafeError, match="iscsiadm was not found on this host: install open-iscsi"):
        observe(host_for(build_sysfs(tmp_path), runner), timeout=7)
    assert runner.calls == []


def test_discovery_records_of_every_kind(tmp_path: Path) -> None:
    """iSNS is shown (its address lives under discovery.sendtargets.* in 2.1.8), a record deleted between the
    list and the show is reported unreadable with a warning, an unknown type is skipped with a warning."""
    listed = fixture("discoverydb_list_mixed.txt") + "10.0.0.9:3260 via fw\n"
    runner = ScriptedRunner(
        [
            (iscsiadm.node_show_all(), 21, "", ""),
            (iscsiadm.discoverydb_list(), 0, listed, ""),
            (
                iscsiadm.discoverydb_show(portal=Portal("127.0.0.1", 3260)),
                0,
                fixture("discoverydb_show_sendtargets.txt"),
                "",
            ),
            (
                iscsiadm.discoverydb_show(portal=Portal("127.0.0.1", 3205), discovery_type="isns"),
                0,
                fixture("discoverydb_show_isns.txt"),
                "",
            ),
            (
                iscsiadm.discoverydb_show(portal=Portal("::1", 3260)),
                6,
                "",
                "iscsiadm: Discovery record [::1,3260] not found.\n",
            ),
        ]
    )
    result = read(host_for(build_sysfs(tmp_path), runner))
    assert runner.remaining == []
    assert [(d["type"], d["portal"], d["readable"]) for d in result["discovery"]] == [
        ("sendtargets", "127.0.0.1:3260", True),
        ("isns", "127.0.0.1:3205", True),
        ("sendtargets", "[::1]:3260", False),
    ]
    isns = result["discovery"][1]
    assert isns["startup"] == "manual" and isns["use_discoveryd"] == "No"
    assert isns["auth"] == {
        "method": None,
        "username": None,
        "password_set": False,
        "username_in": None,
        "password_in_set": False,
    }
    gone = result["discovery"][2]
    assert gone["startup"] is None and gone["login_timeout"] is None
    assert len(result["warnings"]) == 2
    assert "[::1]:3260 via sendtargets was listed but could not be shown (ISCSI_ERR_IDBM (6)" in result["warnings"][0]
    assert "10.0.0.9:3260 via fw: type not read" in result["warnings"][1]


def test_a_discovery_error_other_than_not_found_fails(tmp_path: Path) -> None:
    runner = ScriptedRunner(
        [(iscsiadm.node_show_all(), 21, "", ""), (iscsiadm.discoverydb_list(), 13, "", "permission denied\n")]
    )
    with pytest.raises(ToolError, match="rc 13"):
        observe(host_for(build_sysfs(tmp_path), runner), timeout=7)


# -------------------------------------------------------------------------------------------------------
# filters


def test_filter_by_portal(tmp_path: Path) -> None:
    result = read(host_for(lab_sysfs(tmp_path), ScriptedRunner(lab_script())), portals=["127.0.0.2"])
    assert [s["sid"] for s in result["sessions"]] == [2]
    assert [n["portal"] for n in result["nodes"]] == ["127.0.0.2:3260"]
    assert result["discovery"] == []
    assert result["filters"] == {"targets": [], "portals": ["127.0.0.2"]}
    assert result["warnings"] == []


def test_filter_by_target_and_host_name(tmp_path: Path) -> None:
    """Target names compare case-insensitively; a host name matches every address it resolves to;
    discovery records are filtered by portal only."""
    host = host_for(lab_sysfs(tmp_path), ScriptedRunner(lab_script()), resolve={"localhost": ["127.0.0.1", "::1"]})
    result = read(host, targets=[IQN.upper()], portals=["localhost"])
    assert [s["sid"] for s in result["sessions"]] == [1]
    assert [n["portal"] for n in result["nodes"]] == ["127.0.0.1:3260", "[::1]:3260"]
    assert [d["portal"] for d in result["discovery"]] == ["127.0.0.1:3260"]


def test_filter_by_another_target_keeps_discovery(tmp_path: Path) -> None:
    host = host_for(lab_sysfs(tmp_path), ScriptedRunner(lab_script()))
    result = read(host, targets=["iqn.2003-01.org.lunsafe.lab:nope"])
    assert result["sessions"] == [] and result["nodes"] == []
    assert len(result["discovery"]) == 1
    assert result["warnings"] == []


def test_a_filter_matching_nothing_warns(tmp_path: Path) -> None:
    host = host_for(lab_sysfs(tmp_path), ScriptedRunner(lab_script()))
    result = read(host, portals=["192.0.2.1:3260", "192.0.2.1"])
    assert (result["sessions"], result["nodes"], result["discovery"]) == ([], [], [])
    assert result["warnings"] == [
        "portals: '192.0.2.1' and '192.0.2.1:3260' are the same portal 192.0.2.1:3260; using it once",
        "no session, node record or discovery record matches the filters (targets: any; "
        "portals: 192.0.2.1:3260, 192.0.2.1)",
    ]


@pytest.mark.parametrize(
    ("targets", "portals", "option", "message"),
    [
        (["not-an-iqn"], None, "targets", "is not an iSCSI name"),
        (None, ["10.0.0.1:99999"], "portals", "invalid TCP port"),
        (None, ["unknown.example"], "portals", "does not resolve"),
    ],
)
def test_bad_filters(
    tmp_path: Path, targets: Optional[List[str]], portals: Optional[List[str]], option: str, message: str
) -> None:
    host = host_for(build_sysfs(tmp_path), ScriptedRunner([]))
    with pytest.raises(InputError, match=message) as caught:
        make_filters(targets=targets, portals=portals, host=host)
    assert caught.value.option == option


# -------------------------------------------------------------------------------------------------------
# sessions and records that do not line up


def test_sessions_and_records_that_differ(tmp_path: Path) -> None:
    """A session through another iface has no record (scan None); a failed session with its connection down
    (no address, no connection state on an older kernel) still lists its LUNs; a LUN without a block
    device has no size and no map; a record without a portal is kept without one."""
    root = build_sysfs(
        tmp_path,
        sessions=[
            {"sid": 3, "host": 4, "targetname": IQN, "address": "127.0.0.1", "ifacename": "iface0"},
            {
                "sid": 5,
                "host": 6,
                "targetname": IQN,
                "address": None,
                "persistent_address": "127.0.0.2",
                "state": "FAILED",
            },
        ],
        devices=[
            {"hctl": "6:0:0:0", "sid": 5, "name": None, "wwid": None},
            {"hctl": "6:0:0:3", "sid": 5, "name": "sde", "wwid": "naa.600140533", "state": "transport-offline"},
        ],
    )
    remove_path(root, "class/iscsi_connection/connection5:0/persistent_port")
    records = fixture("node_show_all.txt").split("# END RECORD\n")[1] + "# END RECORD\n"  # 127.0.0.2, default
    records += (
        "# BEGIN RECORD 2.1.8\nnode.name = iqn.2003-01.org.lunsafe.lab:other\nnode.conn[0].port = x\n# END RECORD\n"
    )
    runner = ScriptedRunner([(iscsiadm.node_show_all(), 0, records, ""), (iscsiadm.discoverydb_list(), 21, "", "")])
    result = read(host_for(root, runner))
    via_iface0, failed = result["sessions"]
    assert (via_iface0["iface"], via_iface0["scan"], via_iface0["connection_state"]) == ("iface0", None, None)
    assert via_iface0["replacement_timeout"] == 120 and via_iface0["luns"] == []
    assert (failed["state"], failed["portal"], failed["address"], failed["persistent_portal"]) == (
        "FAILED",
        None,
        None,
        None,
    )
    assert failed["scan"] is None  # no login portal known: no record matched
    assert [(lun["hctl"], lun["device"], lun["state"], lun["multipath_map"]) for lun in failed["luns"]] == [
        ("6:0:0:0", None, "running", None),
        ("6:0:0:3", "sde", "transport-offline", None),
    ]
    assert failed["luns"][0]["size_bytes"] is None
    assert [(n["target"], n["portal"], n["sids"]) for n in result["nodes"]] == [
        (IQN, "127.0.0.2:3260", []),
        ("iqn.2003-01.org.lunsafe.lab:other", None, []),
    ]
    assert result["nodes"][1]["tpgt"] is None and result["nodes"][1]["timeouts"]["login_timeout"] is None


def test_a_record_serves_the_session_it_logged_in_with(tmp_path: Path) -> None:
    """The login portal (persistent) decides, not the current one after a redirect; names compare
    case-insensitively, iface default equals no iface."""
    root = build_sysfs(
        tmp_path,
        sessions=[
            {
                "sid": 1,
                "host": 2,
                "targetname": IQN.upper(),
                "address": "10.9.9.9",
                "persistent_address": "127.0.0.1",
                "omit": ["ifacename"],
            }
        ],
    )
    runner = ScriptedRunner(lab_script())
    result = read(host_for(root, runner))
    session = result["sessions"][0]
    assert (session["portal"], session["persistent_portal"], session["scan"]) == (
        "10.9.9.9:3260",
        "127.0.0.1:3260",
        "manual",
    )
    assert [n["sids"] for n in result["nodes"]] == [[1], [], []]
    # a portal filter matches the current or the login portal
    again = read(host_for(root, ScriptedRunner(lab_script())), portals=["10.9.9.9"])
    assert [s["sid"] for s in again["sessions"]] == [1]
