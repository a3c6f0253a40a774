# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""One rule for every duration option of the collection's modules, checked before anything runs.

* A **deadline** (``timeout``, ``path_timeout``, ``command_timeout``, ``login_timeout``, ``lock_lease.ttl``)
  must be a finite number of seconds greater than 0: a deadline of 0 cannot be met (``timeout 0`` even
  means *no* deadline to coreutils), and ``inf`` or ``nan`` would wait forever.
* A **pause or patience** whose 0 has a documented meaning (``lock_timeout``: one attempt to take the lock;
  ``retry_interval``: retry at once) must be a finite number of seconds of at least 0.

Each refusal is an :class:`InputError` naming the option (``lock_lease.ttl`` for a suboption) and the value.

Users: the modules that take durations (iscsi_lun_attach through _attach.build_request).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError

__all__ = ["check_duration", "check_durations"]


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)


def check_duration(option: str, value: Any, *, zero_allowed: bool = False) -> float:
    """``value`` as seconds, or :class:`InputError` naming ``option`` and ``value``.

    A deadline (``zero_allowed=False``) must be finite and greater than 0; with ``zero_allowed`` it must be
    finite and at least 0.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{option} must be a number of seconds, got {value!r}", option=option, value=value)
    seconds = float(value)
    if not math.isfinite(seconds):
        raise InputError(
            f"{option} must be a finite number of seconds, got {_show(seconds)}", option=option, value=value
        )
    if zero_allowed and seconds < 0:
        raise InputError(f"{option} must be at least 0 seconds, got {_show(value)}", option=option, value=value)
    if not zero_allowed and seconds <= 0:
        raise InputError(f"{option} must be greater than 0 seconds, got {_show(value)}", option=option, value=value)
    return seconds


def _lookup(params: Mapping[str, Any], option: str) -> Optional[Any]:
    """``params[option]``, or a suboption's value for ``parent.child`` (None when the parent is not given)."""
    value: Any = params
    for part in option.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def check_durations(
    params: Mapping[str, Any], *, deadlines: Sequence[str] = (), zero_allowed: Sequence[str] = ()
) -> None:
    """Check each named option that was given (None: not given): ``deadlines`` > 0, ``zero_allowed`` >= 0."""
    for options, allow_zero in ((deadlines, False), (zero_allowed, True)):
        for option in options:
            value = _lookup(params, option)
            if value is not None:
                check_duration(option, value, zero_allowed=allow_zero)
