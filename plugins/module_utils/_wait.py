# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""Polling with a deadline: wait_until() replaces "time.sleep(1)  # give udev some
time" everywhere.  The clock is monotonic and both clock and sleep are injectable,
so unit tests run instantly and deterministically.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Tuple, Type, TypeVar, Union

from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError, WaitTimeout
from ansible_collections.lunsafe.san.plugins.module_utils._profile import Profile

__all__ = ["SLEEP", "Deadline", "wait_until"]

#: How a wait with no udev source sleeps between two polls (its ``method`` in the profile).
SLEEP = "sysfs-poll"

T = TypeVar("T")


class Deadline:
    """A point in time on a monotonic clock; ``remaining()`` never goes below zero."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if seconds < 0:
            raise InputError(f"a timeout cannot be negative, got {seconds!r}", option="timeout", value=seconds)
        self.seconds = seconds
        self._clock = clock
        self.start = clock()
        self.at = self.start + seconds

    def remaining(self) -> float:
        return max(0.0, self.at - self._clock())

    def elapsed(self) -> float:
        return self._clock() - self.start

    def expired(self) -> bool:
        return self._clock() >= self.at


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.5,
    backoff: float = 1.0,
    max_interval: Optional[float] = None,
    describe: Union[str, Callable[[Any], str]] = "condition",
    retry_on: Tuple[Type[BaseException], ...] = (),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    profile: Optional[Profile] = None,
    method: Union[str, Callable[[], str]] = SLEEP,
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    The predicate runs at once, then every ``interval`` seconds (multiplied by
    ``backoff`` after each poll, capped at ``max_interval``), and one last time at
    the deadline.  Exceptions of the types in ``retry_on`` count as a failed poll
    (transient errors such as a busy multipathd); others propagate.

    On timeout raises WaitTimeout whose ``last_observed`` is the last value the
    predicate returned (or the last exception it raised).  ``describe`` names what
    was awaited, or is a function of that last observation.

    With ``profile``, the wait is recorded there once it ends: what it waited for,
    ``method`` (what woke its polls: ``udev-events`` or ``sysfs-poll``; a function
    is asked when the wait ends), its deadline, its duration and what ended it
    (``ready``, ``deadline``, or ``error`` for an exception that propagates).
    """
    if timeout < 0:
        raise InputError(f"a timeout cannot be negative, got {timeout!r}", option="timeout", value=timeout)
    if interval <= 0 or backoff < 1 or (max_interval is not None and max_interval <= 0):
        raise InputError("a poll interval must be positive and a backoff at least 1", option="interval", value=interval)
    deadline = Deadline(timeout, clock=clock)
    started = profile.clock() if profile is not None else 0.0
    ended_by = "error"
    what = describe if isinstance(describe, str) else "condition"
    try:
        value = _poll(
            predicate,
            deadline=deadline,
            interval=interval,
            backoff=backoff,
            max_interval=max_interval,
            retry_on=retry_on,
            sleep=sleep,
        )
        ended_by = "ready"
        return value
    except _Expired as expired:
        ended_by = "deadline"
        last = expired.last
        what = describe(last) if callable(describe) else describe
        observed = f"{type(last).__name__}: {last}" if isinstance(last, BaseException) else last
        raise WaitTimeout(
            f"timed out after {timeout:g}s waiting for {what}",
            waited_for=what,
            timeout=timeout,
            last_observed=observed,
        ) from None
    finally:
        if profile is not None:
            how = method() if callable(method) else method
            profile.wait(what=what, method=how, deadline=timeout, started=started, ended_by=ended_by)


class _Expired(Exception):
    """The deadline passed; ``last`` is the last observation."""

    def __init__(self, last: Any) -> None:
        super().__init__("expired")
        self.last = last


def _poll(
    predicate: Callable[[], T],
    *,
    deadline: Deadline,
    interval: float,
    backoff: float,
    max_interval: Optional[float],
    retry_on: Tuple[Type[BaseException], ...],
    sleep: Callable[[float], None],
) -> T:
    delay = interval
    last: Any = None
    while True:
        try:
            value = predicate()
        except retry_on as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        remaining = deadline.remaining()
        if remaining <= 0:
            raise _Expired(last)
        sleep(min(delay, remaining))
        delay = delay * backoff
        if max_interval is not None:
            delay = min(delay, max_interval)
