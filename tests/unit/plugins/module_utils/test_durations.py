# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One rule for every duration option: deadlines > 0, the zero-allowed ones >= 0, both finite."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils._durations import check_duration, check_durations
from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError


@pytest.mark.parametrize(
    ("value", "zero_allowed", "message"),
    [
        (0, False, "timeout must be greater than 0 seconds, got 0"),
        (0.0, False, "timeout must be greater than 0 seconds, got 0"),
        (-2.5, False, "timeout must be greater than 0 seconds, got -2.5"),
        (-1, True, "timeout must be at least 0 seconds, got -1"),
        (float("inf"), False, "timeout must be a finite number of seconds, got inf"),
        (float("-inf"), True, "timeout must be a finite number of seconds, got -inf"),
        (float("nan"), True, "timeout must be a finite number of seconds, got nan"),
        ("30", False, "timeout must be a number of seconds, got '30'"),
        (True, False, "timeout must be a number of seconds, got True"),
    ],
)
def test_a_refused_duration_names_the_option_and_the_value(value: Any, zero_allowed: bool, message: str) -> None:
    with pytest.raises(InputError) as info:
        check_duration("timeout", value, zero_allowed=zero_allowed)
    assert (info.value.msg, info.value.option) == (message, "timeout")
    assert info.value.value is value


@pytest.mark.parametrize(("value", "zero_allowed"), [(0.001, False), (30, False), (0, True), (0.0, True), (5, True)])
def test_an_accepted_duration_is_returned_as_seconds(value: Any, zero_allowed: bool) -> None:
    assert check_duration("timeout", value, zero_allowed=zero_allowed) == float(value)


def test_check_durations_reads_suboptions_and_skips_options_not_given() -> None:
    params: Dict[str, Any] = {"timeout": 5, "lock_timeout": 0, "lock_lease": None, "path_timeout": None}
    check_durations(params, deadlines=("timeout", "path_timeout", "lock_lease.ttl"), zero_allowed=("lock_timeout",))
    params["lock_lease"] = {"id": "x", "ttl": 0}
    with pytest.raises(InputError, match=r"^lock_lease\.ttl must be greater than 0 seconds, got 0$") as info:
        check_durations(params, deadlines=("timeout", "lock_lease.ttl"), zero_allowed=("lock_timeout",))
    assert info.value.option == "lock_lease.ttl"
    with pytest.raises(InputError, match=r"^lock_timeout must be at least 0 seconds"):
        check_durations({"lock_timeout": -1}, zero_allowed=("lock_timeout",))
