# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from typing import Callable, Iterator, List, Optional, Tuple, Union

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError, ToolTimeout, WaitTimeout
from ansible_collections.lunsafe.san.plugins.module_utils._wait import Deadline, wait_until


def fake_time() -> Tuple[Callable[[], float], Callable[[float], None], List[float]]:
    """A clock that only moves when slept on, and the list of sleeps."""
    now = [100.0]
    sleeps: List[float] = []

    def clock() -> float:
        return now[0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    return clock, sleep, sleeps


def test_returns_the_first_truthy_value_without_sleeping() -> None:
    clock, sleep, sleeps = fake_time()
    assert wait_until(lambda: ["sdc"], timeout=5, clock=clock, sleep=sleep) == ["sdc"]
    assert sleeps == []


def test_polls_until_true() -> None:
    clock, sleep, sleeps = fake_time()
    answers: Iterator[Optional[object]] = iter([None, [], "dm-3"])
    assert wait_until(lambda: next(answers), timeout=10, interval=0.5, clock=clock, sleep=sleep) == "dm-3"
    assert sleeps == [0.5, 0.5]


def test_timeout_carries_the_last_observation() -> None:
    clock, sleep, sleeps = fake_time()
    polls = iter(range(100))

    def observe() -> Optional[dict]:
        count = next(polls)
        return {} if count < 100 else {"sdc": "running"}

    with pytest.raises(WaitTimeout) as info:
        wait_until(observe, timeout=2, interval=0.5, describe="sdc to appear", clock=clock, sleep=sleep)
    exc = info.value
    assert exc.waited_for == "sdc to appear"
    assert exc.timeout == 2
    assert exc.last_observed == {}
    assert sum(sleeps) == pytest.approx(2)
    assert "sdc to appear" in exc.msg and "2s" in exc.msg
    assert exc.to_fail_kwargs()["last_observed"] == {}


def test_last_poll_happens_at_the_deadline() -> None:
    clock, sleep, sleeps = fake_time()
    times: List[float] = []

    def observe() -> bool:
        times.append(clock())
        return False

    with pytest.raises(WaitTimeout):
        wait_until(observe, timeout=1.2, interval=0.5, clock=clock, sleep=sleep)
    assert times[0] == 100.0
    assert times[-1] == pytest.approx(101.2)
    assert sleeps == pytest.approx([0.5, 0.5, 0.2])


def test_backoff_with_cap() -> None:
    clock, sleep, sleeps = fake_time()
    with pytest.raises(WaitTimeout):
        wait_until(lambda: False, timeout=20, interval=1, backoff=2, max_interval=5, clock=clock, sleep=sleep)
    assert sleeps[:5] == [1, 2, 4, 5, 5]


def test_describe_can_use_the_observation() -> None:
    clock, sleep, _sleeps = fake_time()
    with pytest.raises(WaitTimeout, match="paths of mpatha to go, still 2"):
        wait_until(
            lambda: None,
            timeout=1,
            describe=lambda last: "paths of mpatha to go, still 2",
            clock=clock,
            sleep=sleep,
        )


def test_retry_on_transient_errors_and_report_them() -> None:
    clock, sleep, _sleeps = fake_time()

    def busy() -> bool:
        raise ToolTimeout("multipathd timeout", cmd="multipathd show paths", rc=124, timeout=5)

    with pytest.raises(WaitTimeout) as info:
        wait_until(busy, timeout=1, retry_on=(ToolTimeout,), clock=clock, sleep=sleep)
    assert info.value.last_observed == "ToolTimeout: multipathd timeout"

    answers: Iterator[Union[ToolTimeout, str]] = iter([ToolTimeout("x", cmd="c", rc=124, timeout=1), "ok"])

    def flaky() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_until(flaky, timeout=5, retry_on=(ToolTimeout,), clock=clock, sleep=sleep) == "ok"


def test_other_errors_propagate() -> None:
    def broken() -> bool:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        wait_until(broken, timeout=5, retry_on=(ToolTimeout,))


def test_zero_timeout_polls_once() -> None:
    clock, sleep, sleeps = fake_time()
    calls: List[int] = []
    with pytest.raises(WaitTimeout):
        wait_until(lambda: calls.append(1), timeout=0, clock=clock, sleep=sleep)
    assert calls == [1] and sleeps == []


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": -1}, {"timeout": 1, "interval": 0}, {"timeout": 1, "backoff": 0.5}, {"timeout": 1, "max_interval": 0}],
)
def test_invalid_arguments(kwargs: dict) -> None:
    with pytest.raises(InputError):
        wait_until(lambda: True, **kwargs)


def test_deadline() -> None:
    clock, sleep, _sleeps = fake_time()
    deadline = Deadline(3, clock=clock)
    assert deadline.remaining() == 3 and not deadline.expired()
    sleep(2)
    assert deadline.remaining() == 1 and deadline.elapsed() == 2
    sleep(5)
    assert deadline.remaining() == 0 and deadline.expired()
    with pytest.raises(InputError):
        Deadline(-1)


def test_real_clock_smoke() -> None:
    assert wait_until(lambda: 42, timeout=0.1, interval=0.01) == 42
