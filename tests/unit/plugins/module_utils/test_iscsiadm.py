# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _iscsiadm as iscsiadm
from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError
from ansible_collections.lunsafe.san.plugins.module_utils._iscsiadm import Portal, parse_portal
from ansible_collections.lunsafe.san.plugins.module_utils._runner import Secret, secrets_in
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner

FIXTURES = Path(__file__).parent / "fixtures"
IQN = "iqn.2003-01.org.linux-iscsi.lab:target"
PORTAL = Portal("10.0.2.15", 3260)
V6 = Portal("fd00::1", 3260)


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


# --- portals ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "address", "port", "shown"),
    [
        ("10.0.0.1", "10.0.0.1", 3260, "10.0.0.1:3260"),
        ("10.0.0.1:3261", "10.0.0.1", 3261, "10.0.0.1:3261"),
        (" 10.0.0.1:3260 ", "10.0.0.1", 3260, "10.0.0.1:3260"),
        ("[fd00::1]", "fd00::1", 3260, "[fd00::1]:3260"),
        ("[fd00::1]:3262", "fd00::1", 3262, "[fd00::1]:3262"),
        ("fd00::1", "fd00::1", 3260, "[fd00::1]:3260"),
        ("[fe80::1%eth0]:3260", "fe80::1%eth0", 3260, "[fe80::1%eth0]:3260"),
        ("array-a.example.com", "array-a.example.com", 3260, "array-a.example.com:3260"),
        ("array-a.example.com.:860", "array-a.example.com.", 860, "array-a.example.com.:860"),
        ("localhost", "localhost", 3260, "localhost:3260"),
    ],
)
def test_parse_portal(text: str, address: str, port: int, shown: str) -> None:
    portal = parse_portal(text)
    assert portal == Portal(address, port)
    assert portal.for_iscsiadm() == shown
    assert str(portal) == shown


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "10.0.0.1:0",
        "10.0.0.1:65536",
        "10.0.0.1:port",
        "10.0.0.1:",
        "10.0.0.256",
        "[fd00::1",
        "[fd00::1]3260",
        "[10.0.0.1]:3260",
        "[fd00::zz]:3260",
        "10.0.0.1:3260,1",
        "bad_host!:3260",
        "-leading.example.com",
        "10.0.0.1 10.0.0.2",
        "/dev/sda",
    ],
)
def test_parse_portal_rejects_with_clear_error(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_portal(text, option="portals")
    assert info.value.option == "portals"
    assert "portals" in info.value.msg


def test_default_port_and_forms() -> None:
    assert parse_portal("10.0.0.1", default_port=860).port == 860
    assert V6.unbracketed() == "fd00::1:3260"
    assert V6.is_ipv6 and not PORTAL.is_ipv6


def test_portal_comparison_is_canonical() -> None:
    assert Portal("FD00:0:0::1", 3260).same_as(Portal("fd00::1", 3260))
    assert Portal("Array.Example.COM.", 3260).same_as(Portal("array.example.com", 3260))
    assert not Portal("10.0.0.1", 3260).same_as(Portal("10.0.0.1", 3261))


# --- names ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        IQN,
        "iqn.1992-08.com.netapp:sn.4b2f0e2c:vs.3",
        "iqn.2010-10.org.openstack:volume-7f1d2c3a-0d4b-4a4e-9a55-5b8b1b0a9b0c",
        "iqn.1986-03.com.sun:02:1234abcd",
        "iqn.2001-05.com.equallogic",
        "IQN.2003-01.ORG.LINUX-ISCSI.LAB:TARGET",
        "eui.02004567A425678D",
        "naa.52004567BA64678D",
        "naa.600a0b80001234560000abcd12345678",
    ],
)
def test_valid_target_names(name: str) -> None:
    assert iscsiadm.validate_target_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "iqn.2003-13.org.example:t",
        "iqn.03-01.org.example:t",
        "iqn.2003-01:t",
        "iqn.2003-01.org..example:t",
        "iqn.2003-01.org.example:with space",
        "eui.1234",
        "naa.1234567890abcdef12",
        "target1",
        "iqn.2003-01.org.example:" + "x" * 220,
    ],
)
def test_invalid_target_names(name: str) -> None:
    with pytest.raises(InputError, match="target"):
        iscsiadm.validate_target_name(name)


def test_setting_key_and_iface_validation() -> None:
    key = "node.conn[0].timeo.noop_out_interval"
    assert iscsiadm.validate_setting_key(key) == key
    for bad in ("node", "session.scan", "node.session.scan;rm", "node.session. scan"):
        with pytest.raises(InputError):
            iscsiadm.validate_setting_key(bad)
    assert iscsiadm.validate_iface("bnx2i.00:11:22:33:44:55") == "bnx2i.00:11:22:33:44:55"
    with pytest.raises(InputError):
        iscsiadm.validate_iface("default -o delete")


# --- argv builders ----------------------------------------------------------------------------------------


def test_node_builders() -> None:
    base = ["iscsiadm", "-m", "node", "-T", IQN, "-p", "10.0.2.15:3260"]
    assert iscsiadm.node_show(target=IQN, portal=PORTAL) == [*base, "-o", "show"]
    assert iscsiadm.node_show(target=IQN, portal=PORTAL, show_secrets=True) == [*base, "-o", "show", "-S"]
    assert iscsiadm.node_new(target=IQN, portal=PORTAL, iface="iser") == [*base, "-I", "iser", "-o", "new"]
    assert iscsiadm.node_delete(target=IQN, portal=PORTAL) == [*base, "-o", "delete"]
    assert iscsiadm.login(target=IQN, portal=PORTAL) == [*base, "--login"]
    assert iscsiadm.logout(target=IQN, portal=PORTAL, iface="default") == [*base, "-I", "default", "--logout"]
    assert iscsiadm.node_update(target=IQN, portal=V6, settings=[("node.session.scan", "manual")]) == [
        "iscsiadm", "-m", "node", "-T", IQN, "-p", "[fd00::1]:3260",
        "-o", "update", "-n", "node.session.scan", "-v", "manual",
    ]  # fmt: skip
    several = [("node.session.scan", "manual"), ("node.startup", "manual"), ("node.session.auth.password", "pw")]
    assert iscsiadm.node_update(target=IQN, portal=PORTAL, iface="default", settings=several) == [
        *base, "-I", "default", "-o", "update",
        "-n", "node.session.scan", "-v", "manual",
        "-n", "node.startup", "-v", "manual",
        "-n", "node.session.auth.password", "-v", "pw",
    ]  # fmt: skip
    with pytest.raises(ValueError):
        iscsiadm.node_update(target=IQN, portal=PORTAL, settings=[])
    assert iscsiadm.session_list() == ["iscsiadm", "-m", "session"]
    assert iscsiadm.node_list() == ["iscsiadm", "-m", "node"]


def test_builders_validate_their_inputs() -> None:
    with pytest.raises(InputError):
        iscsiadm.login(target="not-an-iqn", portal=PORTAL)
    with pytest.raises(InputError):
        bad = [("node.startup", "manual"), ("discovery.sendtargets.auth.password", "x")]
        iscsiadm.node_update(target=IQN, portal=PORTAL, settings=bad)
    with pytest.raises(InputError):
        iscsiadm.discoverydb_update(portal=PORTAL, key="node.session.auth.password", value="x")


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("node.session.auth.password", True),
        ("node.session.auth.password_in", True),
        ("node.session.auth.username", False),
        ("node.session.scan", False),
    ],
)
def test_passwords_are_marked_secret(key: str, secret: bool) -> None:
    argv = iscsiadm.node_update(target=IQN, portal=PORTAL, settings=[("node.startup", "manual"), (key, "v4lue")])
    assert isinstance(argv[-1], Secret) is secret
    assert argv[-1] == "v4lue"
    assert secrets_in(argv) == (["v4lue"] if secret else [])


def test_discovery_builders() -> None:
    base = ["iscsiadm", "-m", "discoverydb", "-t", "sendtargets", "-p", "[fd00::1]:3260"]
    assert iscsiadm.discoverydb_new(portal=V6) == [*base, "-o", "new"]
    argv = iscsiadm.discoverydb_update(portal=V6, key="discovery.sendtargets.auth.password", value="d1sc")
    assert argv == [*base, "-o", "update", "-n", "discovery.sendtargets.auth.password", "-v", "d1sc"]
    assert secrets_in(argv) == ["d1sc"]
    discover = iscsiadm.discoverydb_discover(portal=V6, iface="default")
    assert discover == [*base, "-I", "default", "--discover", "-o", "new"]
    assert iscsiadm.discoverydb_discover(portal=V6, ops=("new", "update"))[-4:] == ["-o", "new", "-o", "update"]
    with pytest.raises(InputError):
        iscsiadm.discoverydb_discover(portal=V6, ops=())
    with pytest.raises(InputError):
        iscsiadm.discoverydb_discover(portal=V6, ops=("new", "bogus"))


def test_secret_never_shows_through_the_runner() -> None:
    runner = ScriptedRunner([(24, "", "iscsiadm: Login failed to authenticate with target\n")])
    argv = iscsiadm.node_update(target=IQN, portal=PORTAL, settings=[("node.session.auth.password", "hunter2-pw")])
    with pytest.raises(Exception) as info:
        runner.run(argv)
    assert "hunter2-pw" not in str(info.value.to_fail_kwargs())  # type: ignore[attr-defined]
    assert runner.calls[0].argv[-1] == "hunter2-pw"


# --- exit codes -------------------------------------------------------------------------------------------


def test_exit_code_table() -> None:
    assert set(range(33)) <= set(iscsiadm.EXIT_CODES)
    assert iscsiadm.rc_name(15) == "ISCSI_ERR_SESS_EXISTS"
    assert iscsiadm.rc_name(21) == "ISCSI_ERR_NO_OBJS_FOUND"
    assert iscsiadm.rc_name(24) == "ISCSI_ERR_LOGIN_AUTH_FAILED"
    assert iscsiadm.rc_name(29) == "ISCSI_ERR_AGAIN"
    assert iscsiadm.rc_name(32) == "ISCSI_ERR_SESSION_NOT_CONNECTED"
    assert iscsiadm.rc_name(99) == "UNKNOWN_99"
    assert iscsiadm.describe_rc(24) == "ISCSI_ERR_LOGIN_AUTH_FAILED (24): login failed due to authorization failure"
    assert "unknown" in iscsiadm.describe_rc(77)


def test_exit_code_helpers() -> None:
    assert iscsiadm.is_absent(21) and iscsiadm.is_absent(255)
    assert not iscsiadm.is_absent(0) and not iscsiadm.is_absent(2)
    assert iscsiadm.is_already(15) and not iscsiadm.is_already(0)
    assert iscsiadm.is_transient(8) and iscsiadm.is_transient(29) and not iscsiadm.is_transient(24)
    assert 15 in iscsiadm.LOGIN_OK_RCS and 21 in iscsiadm.QUERY_OK_RCS and 255 in iscsiadm.LOGOUT_OK_RCS
    assert iscsiadm.MANUAL_SCAN_UNSUPPORTED_RC == 7


# --- parsers ----------------------------------------------------------------------------------------------


def test_parse_session_list() -> None:
    sessions = iscsiadm.parse_session_list(fixture("iscsiadm_session.txt"))
    assert [s.sid for s in sessions] == [1, 2, 4, 7, 9, 3]
    first = sessions[0]
    assert first.transport == "tcp"
    assert first.portal == Portal("10.0.2.15", 3260)
    assert first.tpgt == 1
    assert first.target == IQN
    assert first.flash is False
    assert sessions[1].tpgt == 2
    v6 = sessions[2]
    assert v6.portal == V6 and v6.portal.for_iscsiadm() == "[fd00::1]:3260"
    assert sessions[3].transport == "iser"
    assert sessions[4].flash is None  # older iscsiadm prints no (non-flash)
    assert sessions[5].flash is True
    assert first.to_dict()["portal"] == "10.0.2.15:3260"


def test_parse_session_list_ignores_noise() -> None:
    text = "iscsiadm: No active sessions.\n\ngarbage line\ntcp: [x] 1.2.3.4:3260,1 iqn.2003-01.org.a:b\n"
    assert iscsiadm.parse_session_list(text) == []


def test_parse_node_list() -> None:
    nodes = iscsiadm.parse_node_list(fixture("iscsiadm_node.txt"))
    assert [(n.portal.for_iscsiadm(), n.tpgt) for n in nodes] == [
        ("127.0.0.1:3260", 1),
        ("10.0.3.15:3260", 2),
        ("[fd00::1]:3260", 1),
        ("192.168.50.2:3260", -1),
    ]
    assert nodes[0].target == IQN
    assert iscsiadm.parse_node_list("iscsiadm: No records found\n") == []


def test_parse_node_record() -> None:
    record = iscsiadm.parse_node_record(fixture("iscsiadm_node_record.txt"))
    assert record["node.name"] == IQN
    assert record["node.session.scan"] == "manual"
    assert record["iface.net_ifacename"] == ""
    assert record["node.session.auth.username_in"] == ""
    assert iscsiadm.is_masked(record["node.session.auth.password"])
    assert not iscsiadm.is_masked(record["node.session.auth.username"])
    assert record["node.conn[0].timeo.noop_out_interval"] == "5"
    assert not any(key.startswith("#") for key in record)


def test_parse_node_record_edge_cases() -> None:
    assert iscsiadm.parse_node_record("node.a =\nnot a pair\nnode.b = x = y\n") == {"node.a": "", "node.b": "x = y"}


def test_discoverydb_list_and_delete_builders() -> None:
    assert iscsiadm.discoverydb_list() == ["iscsiadm", "-m", "discoverydb"]
    assert iscsiadm.discoverydb_delete(portal=V6, iface="default") == [
        "iscsiadm",
        "-m",
        "discoverydb",
        "-t",
        "sendtargets",
        "-p",
        "[fd00::1]:3260",
        "-I",
        "default",
        "-o",
        "delete",
    ]


def test_parse_discovery_list() -> None:
    """open-iscsi 2.1.8 prints IPv6 discovery portals without brackets (seen in the lab)."""
    text = (
        "127.0.0.1:3260 via sendtargets\n"
        "::1:3260 via sendtargets\n"
        "[fd00::1]:3261 via sendtargets\n"
        "isns.example.com:3205 via isns\n"
        "SENDTARGETS:\n"
        "garbage\n"
    )
    portals = iscsiadm.parse_discovery_list(text)
    assert [p.for_iscsiadm() for p in portals] == ["127.0.0.1:3260", "[::1]:3260", "[fd00::1]:3261"]
    assert iscsiadm.parse_discovery_list("") == []
