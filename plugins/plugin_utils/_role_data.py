# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to lunsafe.san: what the collection's role-data filters share (no stable API).

The filters of ``plugins/filter/`` shape the results of this collection's modules into the roles' outputs.
They take plain data (lists of dicts as the modules return them) and raise ``AnsibleFilterError`` naming the
filter, the list and the entry when the data is not of that shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, List, Optional, Sequence

from ansible.errors import AnsibleFilterError


def entries(value: Any, *, filter_name: str, what: str, keys: Sequence[str] = ()) -> List[Mapping[str, Any]]:
    """``value`` as a list of dicts that each have ``keys``, or an error saying what the filter expected."""
    if isinstance(value, (Mapping, str, bytes)) or not isinstance(value, Iterable):
        raise AnsibleFilterError(f"{filter_name}: expects {what} (a list of dicts), got a {type(value).__name__}")
    items = list(value)
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise AnsibleFilterError(f"{filter_name}: entry {index} of {what} is a {type(item).__name__}, not a dict")
        missing = [key for key in keys if key not in item]
        if missing:
            raise AnsibleFilterError(
                f"{filter_name}: entry {index} of {what} has no {', '.join(repr(key) for key in missing)}"
                f" (it has {', '.join(repr(key) for key in item) or 'no key'})"
            )
    return items


def first_wwid(devices: Iterable[Mapping[str, Any]]) -> Optional[str]:
    """The first non-empty ``wwid`` of a LUN's devices, or None (no device of the LUN has a WWID)."""
    return next((device["wwid"] for device in devices if device["wwid"]), None)
