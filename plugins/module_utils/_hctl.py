# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""H:C:T:L addresses, LUN addressing modes and scan-file lines. Pure: no I/O.

Kernel facts this module encodes (drivers/scsi/scsi_sysfs.c, ``scsi_scan()``):

* a write to ``/sys/class/scsi_host/host<H>/scan`` is parsed with ``"%10s %10s %16s"``: channel and
  target tokens are read up to 10 characters, the LUN token up to 16. A longer token is silently split
  into the next field, so it must be refused before writing;
* each token is parsed with ``simple_strtoull(..., 0)``: ``010`` is octal. Lines built here are always
  decimal, and user LUN tokens with leading zeros are refused as ambiguous;
* ``-`` is the wildcard. A wildcard LUN makes the kernel send REPORT LUNS and add every mapped LUN,
  which is exactly the global-rescan race this collection exists to avoid.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Tuple, Union

__all__ = [
    "CHANNEL_TARGET_TOKEN_MAX",
    "LUN_ADDRESSING_MODES",
    "LUN_TOKEN_MAX",
    "SAM_FLAT_OFFSET",
    "WILDCARD",
    "Hctl",
    "HctlError",
    "array_lun",
    "by_path_lun",
    "linux_lun",
    "parse_hctl",
    "parse_lun_token",
    "scan_line",
    "wildcard_scan_line",
]

#: The wildcard token of the scan file.
WILDCARD = "-"
#: Width of the channel and target tokens in the kernel's ``sscanf`` of the scan file.
CHANNEL_TARGET_TOKEN_MAX = 10
#: Width of the LUN token in the kernel's ``sscanf`` of the scan file.
LUN_TOKEN_MAX = 16
#: Addressing modes mapping an array LUN number to the Linux LUN integer (os-brick names in brackets):
#: ``peripheral`` (SAM) and ``transparent`` keep the number, ``sam2`` adds the flat-space offset from 256 on,
#: ``sam3_flat`` always adds it.
LUN_ADDRESSING_MODES = ("peripheral", "transparent", "sam2", "sam3_flat")
#: Flat space addressing (address method 01b) as seen by Linux ``scsilun_to_int()``.
SAM_FLAT_OFFSET = 0x4000

_PERIPHERAL_LIMIT = 256
_FLAT_LIMIT = 0x4000
_UINT32_LIMIT = 1 << 32
_UINT64_LIMIT = 1 << 64
_HCTL_RE = re.compile(r"([0-9]+):([0-9]+):([0-9]+):([0-9]+)")
_DECIMAL_RE = re.compile(r"0|[1-9][0-9]*")
_LEADING_ZERO_RE = re.compile(r"0[0-9]+")
_HEX_RE = re.compile(r"0[xX][0-9a-fA-F]+")

ScanToken = Union[int, str]


class HctlError(ValueError):
    """An H:C:T:L, LUN or scan line that is malformed, out of range or unsafe."""


def _check_int(*, name: str, value: object, limit: int) -> int:
    # bool is an int subclass: True must not silently become LUN 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise HctlError(f"{name} must be an integer, got {value!r}")
    if value < 0:
        raise HctlError(f"{name} must not be negative, got {value}")
    if value >= limit:
        raise HctlError(f"{name} {value} is too large (limit {limit - 1})")
    return value


@dataclasses.dataclass(frozen=True, order=True)
class Hctl:
    """A SCSI address host:channel:target:lun, with the Linux LUN integer as the kernel shows it."""

    host: int
    channel: int
    target: int
    lun: int

    def __post_init__(self) -> None:
        _check_int(name="host", value=self.host, limit=_UINT32_LIMIT)
        _check_int(name="channel", value=self.channel, limit=_UINT32_LIMIT)
        _check_int(name="target", value=self.target, limit=_UINT32_LIMIT)
        _check_int(name="lun", value=self.lun, limit=_UINT64_LIMIT)

    def __str__(self) -> str:
        return f"{self.host}:{self.channel}:{self.target}:{self.lun}"

    @classmethod
    def parse(cls, text: str) -> Hctl:
        """Parse ``"2:0:0:1"`` (as in ``/sys/class/scsi_device`` names and ``multipath -ll`` rows)."""
        return parse_hctl(text)

    @property
    def host_channel_target(self) -> Tuple[int, int, int]:
        return (self.host, self.channel, self.target)

    def scan_line(self) -> str:
        """The ``"C T L"`` line to write to ``scsi_host/host<H>/scan`` to probe exactly this address."""
        return scan_line(channel=self.channel, target=self.target, lun=self.lun)


def parse_hctl(text: str) -> Hctl:
    """Parse ``"H:C:T:L"`` into an :class:`Hctl`; raise :class:`HctlError` if malformed."""
    if not isinstance(text, str):
        raise HctlError(f"an H:C:T:L must be a string like '2:0:0:1', got {text!r}")
    match = _HCTL_RE.fullmatch(text.strip())
    if match is None:
        raise HctlError(f"'{text}' is not an H:C:T:L address like '2:0:0:1' (four non-negative integers)")
    host, channel, target, lun = (int(group) for group in match.groups())
    return Hctl(host=host, channel=channel, target=target, lun=lun)


def linux_lun(*, lun: int, addressing: str = "peripheral") -> int:
    """Map an array LUN number to the Linux LUN integer used in H:C:T:L and in the scan file.

    ``peripheral``: 0-255 unchanged. ``transparent``: unchanged, any value the kernel can be asked for.
    ``sam2``: 0-255 unchanged, 256-16383 plus 16384 (flat space). ``sam3_flat``: 0-16383 plus 16384.
    """
    if addressing not in LUN_ADDRESSING_MODES:
        raise HctlError(f"unknown LUN addressing mode '{addressing}'; use one of {', '.join(LUN_ADDRESSING_MODES)}")
    _check_int(name="lun", value=lun, limit=_UINT64_LIMIT)
    if addressing == "transparent":
        _check_lun_token_width(lun)
        return lun
    if addressing == "peripheral":
        if lun >= _PERIPHERAL_LIMIT:
            raise HctlError(
                f"LUN {lun} cannot use peripheral addressing (0-255); choose sam2 or sam3_flat as the array "
                "presents it, or transparent if the number is already the Linux LUN"
            )
        return lun
    if lun >= _FLAT_LIMIT:
        raise HctlError(f"LUN {lun} is out of range for {addressing} flat space addressing (0-{_FLAT_LIMIT - 1})")
    if addressing == "sam2" and lun < _PERIPHERAL_LIMIT:
        return lun
    return lun + SAM_FLAT_OFFSET


def array_lun(*, linux_lun: int, addressing: str = "peripheral") -> int:
    """Inverse of :func:`linux_lun`: the array LUN number behind a Linux LUN integer."""
    if addressing not in LUN_ADDRESSING_MODES:
        raise HctlError(f"unknown LUN addressing mode '{addressing}'; use one of {', '.join(LUN_ADDRESSING_MODES)}")
    _check_int(name="linux_lun", value=linux_lun, limit=_UINT64_LIMIT)
    if addressing == "transparent":
        return linux_lun
    if addressing == "peripheral" or (addressing == "sam2" and linux_lun < _PERIPHERAL_LIMIT):
        if linux_lun >= _PERIPHERAL_LIMIT:
            raise HctlError(f"Linux LUN {linux_lun} is not a peripheral-addressed LUN (0-255)")
        return linux_lun
    flat = linux_lun - SAM_FLAT_OFFSET
    lowest = _PERIPHERAL_LIMIT if addressing == "sam2" else 0
    if not lowest <= flat < _FLAT_LIMIT:
        raise HctlError(f"Linux LUN {linux_lun} is not a {addressing} flat-space LUN")
    return flat


def _check_lun_token_width(lun: int) -> None:
    if len(str(lun)) > LUN_TOKEN_MAX:
        raise HctlError(f"LUN {lun} does not fit the kernel's {LUN_TOKEN_MAX}-character scan token")


def _token(*, name: str, value: ScanToken, width: int, limit: int, allow_wildcard: bool) -> str:
    if isinstance(value, str):
        if value != WILDCARD:
            raise HctlError(f"{name} must be an integer or '{WILDCARD}', got {value!r}")
        if not allow_wildcard:
            raise HctlError(
                f"refusing a wildcard {name}: '{WILDCARD}' makes the kernel scan more than one LUN; "
                "pass allow_wildcard=True only when that is intended"
            )
        return WILDCARD
    text = str(_check_int(name=name, value=value, limit=limit))
    if len(text) > width:
        raise HctlError(f"{name} {value} does not fit the kernel's {width}-character scan token")
    return text


def scan_line(*, channel: int, target: int, lun: int) -> str:
    """The scan-file line ``"C T L"`` (decimal, no newline) for a fully resolved address; refuses ``-``."""
    return wildcard_scan_line(channel=channel, target=target, lun=lun, allow_wildcard=False)


def wildcard_scan_line(*, channel: ScanToken, target: ScanToken, lun: ScanToken, allow_wildcard: bool = False) -> str:
    """A scan-file line where any field may be :data:`WILDCARD`, but only if ``allow_wildcard`` is true."""
    tokens = (
        _token(
            name="channel",
            value=channel,
            width=CHANNEL_TARGET_TOKEN_MAX,
            limit=_UINT32_LIMIT,
            allow_wildcard=allow_wildcard,
        ),
        _token(
            name="target",
            value=target,
            width=CHANNEL_TARGET_TOKEN_MAX,
            limit=_UINT32_LIMIT,
            allow_wildcard=allow_wildcard,
        ),
        _token(name="lun", value=lun, width=LUN_TOKEN_MAX, limit=_UINT64_LIMIT, allow_wildcard=allow_wildcard),
    )
    return " ".join(tokens)


def by_path_lun(*, linux_lun: int) -> str:
    """The LUN part of a ``/dev/disk/by-path`` name, as systemd ``path_id`` formats it.

    ``lun-<n>`` below 256; otherwise ``lun-0x%04x%04x00000000`` of the low and high 16-bit words
    (Linux LUN 16640, array LUN 256 in flat space, gives ``lun-0x4100000000000000``).
    """
    _check_int(name="linux_lun", value=linux_lun, limit=_UINT64_LIMIT)
    if linux_lun < _PERIPHERAL_LIMIT:
        return f"lun-{linux_lun}"
    return f"lun-0x{linux_lun & 0xFFFF:04x}{(linux_lun >> 16) & 0xFFFF:04x}00000000"


def parse_lun_token(token: Union[str, int]) -> int:
    """Parse a LUN given by a user: ``7``, ``"7"`` or ``"0x10"``. Returns the number as an int.

    Refused with an :class:`HctlError` naming the reason: empty, ``-`` (wildcard), negative, longer than the
    kernel's 16-character token, leading zeros (the kernel would read ``010`` as octal 8), anything else
    that is not a decimal or ``0x`` hexadecimal number.
    """
    if isinstance(token, bool):
        raise HctlError(f"LUN must be a number, got {token!r}")
    if isinstance(token, int):
        _check_int(name="LUN", value=token, limit=_UINT64_LIMIT)
        _check_lun_token_width(token)
        return token
    if not isinstance(token, str):
        raise HctlError(f"LUN must be a number or a string, got {token!r}")
    text = token.strip()
    if not text:
        raise HctlError("LUN must not be empty")
    if text == WILDCARD:
        raise HctlError(f"LUN '{WILDCARD}' is a wildcard that scans every LUN of the target; name one LUN")
    if text.startswith("-"):
        raise HctlError(f"LUN must not be negative, got '{text}'")
    if len(text) > LUN_TOKEN_MAX:
        raise HctlError(f"LUN '{text}' is longer than the kernel's {LUN_TOKEN_MAX}-character scan token")
    if _HEX_RE.fullmatch(text):
        return int(text, 16)
    if _DECIMAL_RE.fullmatch(text):
        return int(text, 10)
    if _LEADING_ZERO_RE.fullmatch(text):
        raise HctlError(f"LUN '{text}' has leading zeros, which the kernel reads as octal; write it without them")
    raise HctlError(f"LUN '{text}' is not a decimal or 0x-prefixed hexadecimal number")
