# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_portal: the one portal model (parsing, the port policy, matching) and host name resolution."""

from __future__ import annotations

import socket
from typing import Any, Dict, List, Optional, Tuple

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _iscsiadm, _portal
from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError
from ansible_collections.lunsafe.san.plugins.module_utils._portal import (
    DEFAULT_PORT,
    Portal,
    Resolved,
    getaddrinfo_addresses,
    normalize_address,
    parse_portal,
    resolve_portals,
)


def test_iscsiadm_and_sysfs_share_the_one_model() -> None:
    assert _iscsiadm.Portal is Portal and _iscsiadm.parse_portal is parse_portal
    assert DEFAULT_PORT == 3260


# --- parsing ----------------------------------------------------------------------------------------------

# (text, expected): a missing port is 3260, never "any port"
PARSED = [
    ("192.0.2.1", Portal("192.0.2.1", 3260)),
    ("192.0.2.1:3260", Portal("192.0.2.1", 3260)),
    ("[fd00::1]:3260", Portal("fd00::1", 3260)),
    ("[fd00::1]", Portal("fd00::1", 3260)),
    ("fd00::1", Portal("fd00::1", 3260)),
    ("array.example.com:860", Portal("array.example.com", 860)),
    ("[fe80::1%eth0]:3261", Portal("fe80::1%eth0", 3261)),
    ("array.example.com.", Portal("array.example.com.", 3260)),
]


@pytest.mark.parametrize(("text", "expected"), PARSED)
def test_parse_portal(text: str, expected: Portal) -> None:
    assert parse_portal(text) == expected


# (text, words of the error): the message names what is wrong
REFUSED = [
    ("", "non-empty string"),
    (None, "non-empty string"),
    (3260, "non-empty string"),
    (":3260", "has no address"),
    ("192.0.2.1:0", "invalid TCP port"),
    ("192.0.2.1:99999", "invalid TCP port"),
    ("192.0.2.1:x", "invalid TCP port"),
    ("192.0.2.1:3260,1", "ADDRESS[:PORT]"),  # a ,tpgt suffix is iscsiadm output, not user input
    ("[fd00::1", "unclosed"),
    ("[]:3260", "uses brackets around a non-IPv6 address"),
    ("[fd00::1]x", "must be [IPV6]:PORT"),
    ("[192.0.2.1]", "non-IPv6"),
    ("fd00::zz", "invalid IPv6 address"),
    ("[fe80::1%bad zone]", "ADDRESS[:PORT]"),
    ("[fe80::1%a!b]", "invalid IPv6 zone"),
    ("192.0.2.300", "invalid IPv4 address"),
    ("under_score.example.com", "invalid host name"),
    ("a" * 254, "invalid host name"),
]


@pytest.mark.parametrize(("text", "words"), REFUSED)
def test_parse_portal_refuses_naming_the_option(text: Any, words: str) -> None:
    with pytest.raises(InputError, match=words.replace("[", r"\[").replace("]", r"\]")) as info:
        parse_portal(text, option="portal")
    assert info.value.option == "portal"
    assert info.value.msg.startswith("portal ")


def test_default_port_is_only_for_a_missing_port() -> None:
    assert parse_portal("192.0.2.1", default_port=860) == Portal("192.0.2.1", 860)
    assert parse_portal("192.0.2.1:3260", default_port=860) == Portal("192.0.2.1", 3260)


# --- forms and comparison ---------------------------------------------------------------------------------


def test_portal_string_forms() -> None:
    v6 = Portal("fd00::1", 3260)
    v4 = Portal("192.0.2.1")
    assert (str(v6), v6.for_iscsiadm(), v6.unbracketed(), v6.is_ipv6) == (
        "[fd00::1]:3260",
        "[fd00::1]:3260",
        "fd00::1:3260",
        True,
    )
    assert (str(v4), v4.for_iscsiadm(), v4.unbracketed(), v4.is_ipv6) == (
        "192.0.2.1:3260",
        "192.0.2.1:3260",
        "192.0.2.1:3260",
        False,
    )


@pytest.mark.parametrize(
    ("address", "normal"),
    [
        ("[FD00:0:0::1]", "fd00::1"),
        (" 192.0.2.1 ", "192.0.2.1"),
        ("Array.Example.COM", "array.example.com"),
        ("Array.Example.COM.", "array.example.com"),
        ("FE80::1%eth0", "fe80::1%eth0"),
        ("::ffff:192.0.2.1", "::ffff:c000:201"),
    ],
)
def test_normalize_address(address: str, normal: str) -> None:
    assert normalize_address(address) == normal


def test_same_as_compares_canonical_address_and_port() -> None:
    assert Portal("FD00:0:0::1", 3260).same_as(Portal("fd00::1"))
    assert Portal("Array.Example.COM.", 3260).same_as(Portal("array.example.com", 3260))
    assert not Portal("192.0.2.1", 3260).same_as(Portal("192.0.2.1", 3261))


# (portal, session side address, session side port, matches)
MATCHES: List[Tuple[Portal, Optional[str], Optional[int], bool]] = [
    (Portal("192.0.2.1"), "192.0.2.1", 3260, True),
    (Portal("192.0.2.1"), "192.0.2.1", 3261, False),  # no port given is 3260, not "any port"
    (Portal("192.0.2.1", 3261), "192.0.2.1", 3261, True),
    (Portal("fd00::a"), "FD00:0:0:0::A", 3260, True),
    (Portal("fd00::a"), "fd00::b", 3260, False),
    (Portal("192.0.2.1"), None, 3260, False),
    (Portal("192.0.2.1"), "192.0.2.1", None, False),  # the kernel did not tell the port: no match
]


@pytest.mark.parametrize(("portal", "address", "port", "expected"), MATCHES)
def test_matches_a_session_side(portal: Portal, address: Optional[str], port: Optional[int], expected: bool) -> None:
    assert portal.matches(address=address, port=port) is expected


# --- resolution -------------------------------------------------------------------------------------------

NAMES: Dict[str, List[str]] = {
    "array.example.com": ["192.0.2.10", "fd00::10"],
    "other.example.com": ["192.0.2.20"],
    "empty.example.com": [],
}


def resolver(name: str) -> List[str]:
    if name not in NAMES:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return NAMES[name]


def test_a_name_stands_for_every_address_with_its_port() -> None:
    resolved, warnings = resolve_portals([("array.example.com:3261", "iqn.a")], resolver=resolver)
    assert resolved == [
        Resolved(Portal("192.0.2.10", 3261), "array.example.com:3261", "iqn.a"),
        Resolved(Portal("fd00::10", 3261), "array.example.com:3261", "iqn.a"),
    ]
    assert warnings == []


def test_addresses_are_not_resolved() -> None:
    def refuse(name: str) -> List[str]:
        raise AssertionError(f"resolver called for {name}")

    resolved, _warnings = resolve_portals([("192.0.2.1", None), ("[fd00::1]:860", None)], resolver=refuse)
    assert [entry.portal for entry in resolved] == [Portal("192.0.2.1", 3260), Portal("fd00::1", 860)]


@pytest.mark.parametrize(
    ("entries", "kept", "warning"),
    [
        (
            [("192.0.2.10", None), ("192.0.2.10:3260", None)],
            [Portal("192.0.2.10")],
            "portals: '192.0.2.10:3260' and '192.0.2.10' are the same portal 192.0.2.10:3260; using it once",
        ),
        (
            [("array.example.com", "iqn.a"), ("192.0.2.10", "iqn.a")],
            [Portal("192.0.2.10"), Portal("fd00::10")],
            "portals: '192.0.2.10' and 'array.example.com' are the same portal 192.0.2.10:3260; using it once",
        ),
        (
            [("[FD00::10]", None), ("array.example.com", None)],
            [Portal("FD00::10"), Portal("192.0.2.10")],
            "portals: 'array.example.com' and '[FD00::10]' are the same portal [fd00::10]:3260; using it once",
        ),
    ],
)
def test_two_spellings_of_one_portal_are_merged_with_a_warning(
    entries: List[Tuple[str, Optional[str]]], kept: List[Portal], warning: str
) -> None:
    resolved, warnings = resolve_portals(entries, resolver=resolver)
    assert [entry.portal for entry in resolved] == kept
    assert warnings == [warning]


def test_one_portal_with_two_targets_is_refused() -> None:
    with pytest.raises(InputError, match=r"portal 192.0.2.10:3260 is given twice with different targets") as info:
        resolve_portals([("array.example.com", "iqn.a"), ("192.0.2.10", "iqn.b")], resolver=resolver)
    assert info.value.option == "portals"
    assert "'array.example.com' -> iqn.a, '192.0.2.10' -> iqn.b" in info.value.msg


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("nowhere.example.com", "host name 'nowhere.example.com' does not resolve on this host"),
        ("empty.example.com", "host name 'empty.example.com' resolves to no address"),
        ("bad_name", "invalid host name"),
    ],
)
def test_names_that_do_not_resolve_are_input_errors(text: str, words: str) -> None:
    with pytest.raises(InputError, match=words) as info:
        resolve_portals([(text, None)], resolver=resolver, option="portal")
    assert info.value.option == "portal"


def test_getaddrinfo_addresses_keeps_the_resolver_order_once(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.10", 0)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fd00::10", 0, 0, 0)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.10", 0)),
    ]
    asked: List[Tuple[Any, ...]] = []

    def getaddrinfo(*args: Any, **kwargs: Any) -> List[Any]:
        asked.append((args, kwargs))
        return answers

    monkeypatch.setattr(_portal.socket, "getaddrinfo", getaddrinfo)
    assert getaddrinfo_addresses("array.example.com") == ["192.0.2.10", "fd00::10"]
    assert asked == [(("array.example.com", None), {"type": socket.SOCK_STREAM})]
