# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module_utils is PRIVATE to lunsafe.san. It may change without notice.

"""The one portal model of the collection: parsing, the port policy, matching, host name resolution.

Port policy (every module): a portal given without a port is port 3260, the IANA iSCSI port. A portal
never matches "any port": ``127.0.0.1`` is ``127.0.0.1:3260`` and does not match a session on
``127.0.0.1:3261``.

Host names: a name stands for every address it resolves to on the managed node (``getaddrinfo``, TCP),
each address one portal with the name's port. The kernel and iscsiadm only know addresses, so sessions
are always matched by address. Two spellings of one portal (``10.0.0.1`` and ``10.0.0.1:3260``, or a name
and one of its addresses) are merged into one portal, and :func:`resolve_portals` reports the merge.

Users: _iscsiadm (argv), _sysfs (session portals), _scan, _attach, iscsi_lun_attach, scsi_targeted_scan.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError

__all__ = [
    "DEFAULT_PORT",
    "Portal",
    "Resolved",
    "getaddrinfo_addresses",
    "normalize_address",
    "parse_portal",
    "resolve_portals",
]

DEFAULT_PORT = 3260

_HOSTNAME_LABEL_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_ZONE_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def normalize_address(address: str) -> str:
    """An address as compared here: no IPv6 brackets, canonical for IP literals, lower case for names."""
    text = address.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    base, sep, zone = text.partition("%")
    try:
        return ipaddress.ip_address(base).compressed + (sep + zone if sep else "")
    except ValueError:
        return text.lower().rstrip(".")


def is_ip_address(address: str) -> bool:
    try:
        ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return False
    return True


class Portal(NamedTuple):
    """An iSCSI portal: an IPv4/IPv6 address (or, before resolution, a host name) and a TCP port."""

    address: str
    port: int = DEFAULT_PORT

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.address

    def for_iscsiadm(self) -> str:
        """``10.0.0.1:3260`` or ``[fd00::1]:3260`` (iscsiadm needs the brackets)."""
        if self.is_ipv6:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"

    def unbracketed(self) -> str:
        """``fd00::1:3260``: the form udev uses in /dev/disk/by-path names."""
        return f"{self.address}:{self.port}"

    def key(self) -> Tuple[str, int]:
        """A comparison key: IP addresses in canonical form, host names lower-cased."""
        return (normalize_address(self.address), self.port)

    def same_as(self, other: Portal) -> bool:
        return self.key() == other.key()

    def matches(self, *, address: Optional[str], port: Optional[int]) -> bool:
        """True if a session side (address, port) read from the kernel is this portal (address and port)."""
        if address is None or port is None:
            return False
        return normalize_address(address) == normalize_address(self.address) and port == self.port

    def __str__(self) -> str:
        return self.for_iscsiadm()


def _validate_address(address: str, *, text: str, option: str) -> str:
    if not address:
        raise InputError(f"{option} has no address: {text!r}", option=option, value=text)
    if ":" in address:
        base, sep, zone = address.partition("%")
        try:
            ipaddress.IPv6Address(base)
        except ValueError:
            raise InputError(f"{option} has an invalid IPv6 address: {text!r}", option=option, value=text) from None
        if sep and not _ZONE_RE.match(zone):
            raise InputError(f"{option} has an invalid IPv6 zone: {text!r}", option=option, value=text)
        return address
    if re.match(r"^[0-9.]+$", address):
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise InputError(f"{option} has an invalid IPv4 address: {text!r}", option=option, value=text) from None
        return address
    name = address[:-1] if address.endswith(".") else address
    if len(name) > 253 or not all(_HOSTNAME_LABEL_RE.match(label) for label in name.split(".")):
        raise InputError(f"{option} has an invalid host name: {text!r}", option=option, value=text)
    return address


def _validate_port(port_text: str, *, text: str, option: str) -> int:
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InputError(f"{option} has an invalid TCP port (1-65535): {text!r}", option=option, value=text)
    return int(port_text)


def parse_portal(text: object, *, default_port: int = DEFAULT_PORT, option: str = "portals") -> Portal:
    """Parse a user-given portal: ``10.0.0.1``, ``10.0.0.1:3260``, ``[fd00::1]``, ``[fd00::1]:3260``, a bare
    IPv6 address ``fd00::1`` (no port possible then), ``array.example.com`` and ``array.example.com:3260``.

    A missing port is ``default_port`` (3260). A trailing ``,tpgt`` is refused: it belongs to iscsiadm
    output, not to user input. :class:`InputError` names the option and the value.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{option} must be a non-empty string, got {text!r}", option=option, value=text)
    raw = text.strip()
    if any(c.isspace() for c in raw) or "," in raw or "/" in raw:
        raise InputError(f"{option} must be ADDRESS[:PORT], got {text!r}", option=option, value=text)
    if raw.startswith("["):
        close = raw.find("]")
        if close < 0:
            raise InputError(f"{option} has an unclosed '[': {text!r}", option=option, value=text)
        address = raw[1:close]
        rest = raw[close + 1 :]
        if rest and not rest.startswith(":"):
            raise InputError(f"{option} must be [IPV6]:PORT, got {text!r}", option=option, value=text)
        port = _validate_port(rest[1:], text=text, option=option) if rest else default_port
        if ":" not in address:
            raise InputError(f"{option} uses brackets around a non-IPv6 address: {text!r}", option=option, value=text)
        return Portal(_validate_address(address, text=text, option=option), port)
    if raw.count(":") > 1:  # a bare IPv6 address; a port would need brackets
        return Portal(_validate_address(raw, text=text, option=option), default_port)
    address, sep, port_text = raw.partition(":")
    port = _validate_port(port_text, text=text, option=option) if sep else default_port
    return Portal(_validate_address(address, text=text, option=option), port)


def getaddrinfo_addresses(name: str) -> List[str]:
    """Every address ``name`` resolves to for TCP, in the resolver's order, each once."""
    found: List[str] = []
    for _family, _type, _proto, _canon, sockaddr in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM):
        address = str(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


class Resolved(NamedTuple):
    """A requested portal after resolution: the address portal, how the user spelled it, the target name."""

    portal: Portal
    spelled: str
    target: Optional[str]


def resolve_portals(
    entries: Sequence[Tuple[str, Optional[str]]],
    *,
    resolver: Callable[[str], List[str]] = getaddrinfo_addresses,
    option: str = "portals",
) -> Tuple[List[Resolved], List[str]]:
    """Parse and resolve ``(portal text, target or None)`` entries into address portals.

    Host names expand to every address they have. A portal that two entries name (two spellings, or a
    name and its address) is kept once: the returned warnings name both spellings. The same portal with two
    different target names is an error (it would be two paths through one portal, which is not what an
    array that presents one target name per port means).
    """
    resolved: List[Resolved] = []
    warnings: List[str] = []
    by_key: Dict[Tuple[str, int], Resolved] = {}
    for text, target in entries:
        portal = parse_portal(text, option=option)
        if is_ip_address(portal.address):
            addresses = [portal.address]
        else:
            try:
                addresses = resolver(portal.address)
            except (OSError, UnicodeError) as exc:
                raise InputError(
                    f"{option}: host name {portal.address!r} does not resolve on this host ({exc}); "
                    "give an address or fix name resolution",
                    option=option,
                    value=text,
                ) from None
            if not addresses:
                raise InputError(
                    f"{option}: host name {portal.address!r} resolves to no address", option=option, value=text
                )
        for address in addresses:
            candidate = Resolved(Portal(address, portal.port), text, target)
            key = candidate.portal.key()
            earlier = by_key.get(key)
            if earlier is None:
                by_key[key] = candidate
                resolved.append(candidate)
                continue
            if earlier.target != target:
                raise InputError(
                    f"{option}: portal {candidate.portal} is given twice with different targets "
                    f"({earlier.spelled!r} -> {earlier.target}, {text!r} -> {target})",
                    option=option,
                    value=text,
                )
            warnings.append(
                f"{option}: {text!r} and {earlier.spelled!r} are the same portal {candidate.portal}; using it once"
            )
    return resolved, warnings
