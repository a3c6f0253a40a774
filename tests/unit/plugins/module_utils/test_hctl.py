# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Union

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils._hctl import (
    LUN_ADDRESSING_MODES,
    WILDCARD,
    Hctl,
    HctlError,
    array_lun,
    by_path_lun,
    linux_lun,
    parse_hctl,
    parse_lun_token,
    scan_line,
    wildcard_scan_line,
)

# --- the value type --------------------------------------------------------------------------------------


def test_parse_and_format_round_trip() -> None:
    hctl = parse_hctl("2:0:0:1")
    assert hctl == Hctl(host=2, channel=0, target=0, lun=1)
    assert str(hctl) == "2:0:0:1"
    assert Hctl.parse("12:0:3:16640").lun == 16640
    assert hctl.host_channel_target == (2, 0, 0)


def test_hctl_is_immutable_and_hashable() -> None:
    hctl = Hctl(host=3, channel=0, target=1, lun=0)
    untyped: Any = hctl  # the assignment below is the point of the test: let mypy allow it
    with pytest.raises(dataclasses.FrozenInstanceError):
        untyped.lun = 5
    assert {hctl, Hctl(host=3, channel=0, target=1, lun=0)} == {hctl}


def test_hctl_orders_numerically_not_as_text() -> None:
    addresses = [parse_hctl(text) for text in ("10:0:0:0", "2:0:0:10", "2:0:0:9")]
    assert [str(a) for a in sorted(addresses)] == ["2:0:0:9", "2:0:0:10", "10:0:0:0"]


@pytest.mark.parametrize(
    "text",
    ["", "2:0:0", "2:0:0:1:5", "2:0:-1:1", "a:b:c:d", "2:0:0:-", "2 0 0 1", "#:#:#:#", "2:0:0:0x1"],
)
def test_parse_hctl_rejects(text: str) -> None:
    with pytest.raises(HctlError, match="H:C:T:L"):
        parse_hctl(text)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("host", -1, "must not be negative"),
        ("lun", True, "must be an integer"),
        ("channel", "0", "must be an integer"),
        ("target", 1 << 32, "too large"),
        ("lun", 1 << 64, "too large"),
    ],
)
def test_hctl_validates_fields(field: str, value: Any, message: str) -> None:
    values: Dict[str, Any] = {"host": 2, "channel": 0, "target": 0, "lun": 1, field: value}
    with pytest.raises(HctlError, match=message):
        Hctl(**values)


def test_hctl_error_is_a_value_error() -> None:
    assert issubclass(HctlError, ValueError)


# --- addressing modes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lun", "mode", "expected"),
    [
        (0, "peripheral", 0),
        (255, "peripheral", 255),
        (7, "transparent", 7),
        (16640, "transparent", 16640),
        (255, "sam2", 255),
        (256, "sam2", 16640),
        (16383, "sam2", 32767),
        (0, "sam3_flat", 16384),
        (256, "sam3_flat", 16640),
    ],
)
def test_linux_lun(lun: int, mode: str, expected: int) -> None:
    assert linux_lun(lun=lun, addressing=mode) == expected
    assert array_lun(linux_lun=expected, addressing=mode) == lun


def test_linux_lun_default_is_peripheral() -> None:
    assert linux_lun(lun=3) == 3
    assert LUN_ADDRESSING_MODES == ("peripheral", "transparent", "sam2", "sam3_flat")


@pytest.mark.parametrize(
    ("lun", "mode", "message"),
    [
        (256, "peripheral", "cannot use peripheral addressing"),
        (16384, "sam2", "out of range"),
        (16384, "sam3_flat", "out of range"),
        (-1, "transparent", "must not be negative"),
        (10**16, "transparent", "16-character"),
        (1, "SAM2", "unknown LUN addressing mode"),
    ],
)
def test_linux_lun_rejects(lun: int, mode: str, message: str) -> None:
    with pytest.raises(HctlError, match=message):
        linux_lun(lun=lun, addressing=mode)


@pytest.mark.parametrize(
    ("value", "mode"),
    [(256, "peripheral"), (300, "sam2"), (16383, "sam3_flat"), (32768, "sam3_flat")],
)
def test_array_lun_rejects_numbers_outside_the_mode(value: int, mode: str) -> None:
    with pytest.raises(HctlError):
        array_lun(linux_lun=value, addressing=mode)


# --- scan lines ------------------------------------------------------------------------------------------


def test_scan_line_is_decimal_channel_target_lun() -> None:
    assert scan_line(channel=0, target=3, lun=16640) == "0 3 16640"
    assert Hctl(host=5, channel=0, target=2, lun=8).scan_line() == "0 2 8"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channel": WILDCARD, "target": 0, "lun": 1}, "refusing a wildcard channel"),
        ({"channel": 0, "target": WILDCARD, "lun": 1}, "refusing a wildcard target"),
        ({"channel": 0, "target": 0, "lun": WILDCARD}, "refusing a wildcard lun"),
        ({"channel": 0, "target": 0, "lun": -1}, "must not be negative"),
        ({"channel": 0, "target": 0, "lun": 10**16}, "16-character"),
        ({"channel": 0, "target": 0, "lun": "1"}, "integer or '-'"),
        ({"channel": 0, "target": 1 << 32, "lun": 1}, "too large"),
    ],
)
def test_scan_line_refuses(kwargs: dict, message: str) -> None:
    with pytest.raises(HctlError, match=message):
        scan_line(**kwargs)


def test_wildcards_only_when_allowed() -> None:
    with pytest.raises(HctlError, match="allow_wildcard"):
        wildcard_scan_line(channel=WILDCARD, target=WILDCARD, lun=1)
    assert wildcard_scan_line(channel=WILDCARD, target=WILDCARD, lun=1, allow_wildcard=True) == "- - 1"
    assert wildcard_scan_line(channel=0, target=1, lun=2) == "0 1 2"
    with pytest.raises(HctlError, match="integer or '-'"):
        wildcard_scan_line(channel="*", target=0, lun=0, allow_wildcard=True)


def test_largest_lun_that_fits_the_kernel_token() -> None:
    assert scan_line(channel=0, target=0, lun=10**16 - 1).split()[2] == "9" * 16


# --- udev by-path ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lun", "expected"),
    [
        (0, "lun-0"),
        (255, "lun-255"),
        (256, "lun-0x0100000000000000"),
        (16640, "lun-0x4100000000000000"),
        (0x12345678, "lun-0x5678123400000000"),
    ],
)
def test_by_path_lun(lun: int, expected: str) -> None:
    assert by_path_lun(linux_lun=lun) == expected


# --- user LUN tokens -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "expected"),
    [("7", 7), ("0", 0), ("0x10", 16), ("0X1f", 31), (" 12 ", 12), (5, 5), ("9999999999999999", 10**16 - 1)],
)
def test_parse_lun_token(token: Union[str, int], expected: int) -> None:
    assert parse_lun_token(token) == expected


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("-", "wildcard"),
        ("-1", "must not be negative"),
        (-1, "must not be negative"),
        ("12345678901234567", "16-character"),
        (10**16, "16-character"),
        ("010", "leading zeros"),
        ("seven", "not a decimal"),
        ("1.5", "not a decimal"),
        ("0x", "not a decimal"),
        ("1 2", "not a decimal"),
        ("\u0663", "not a decimal"),
        (True, "must be a number"),
        (None, "must be a number"),
    ],
)
def test_parse_lun_token_rejects(token: Any, message: str) -> None:
    with pytest.raises(HctlError, match=message):
        parse_lun_token(token)
