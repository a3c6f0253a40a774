# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The profile of a run: command names without values, the runner's and the wait helper's records, the cap,
and records from several threads at once."""

from __future__ import annotations

import threading
from typing import Any, List, Optional, Tuple

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils._errors import ToolError, WaitTimeout
from ansible_collections.lunsafe.san.plugins.module_utils._profile import Profile, command_name
from ansible_collections.lunsafe.san.plugins.module_utils._runner import Runner, Secret
from ansible_collections.lunsafe.san.plugins.module_utils._wait import wait_until
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.test_runner import FakeModule


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["iscsiadm", "-m", "session", "-P", "3"], "iscsiadm -m session -P"),
        (
            [
                "iscsiadm",
                "-m",
                "node",
                "-T",
                "iqn.x:t",
                "-p",
                "10.0.0.1:3260",
                "-o",
                "update",
                "-n",
                "node.startup",
                "-v",
                "manual",
            ],
            "iscsiadm -m node -o update -n node.startup",
        ),
        (
            [
                *["iscsiadm", "-m", "node", "-p", "p", "-o", "update", "-n", "node.session.scan", "-v", "manual"],
                *["-n", "node.startup", "-v", "manual", "-n", "node.session.auth.password", "-v", "pw"],
            ],
            "iscsiadm -m node -o update -n node.session.scan (+2 keys)",
        ),
        (["iscsiadm", "--mode=node", "--targetname=iqn.x:t", "--login"], "iscsiadm --mode --login"),
        (["/usr/sbin/iscsiadm", "-m", "node", "-T", "t", "-p", "p", "--logout"], "iscsiadm -m node --logout"),
        (["multipathd", "show", "paths", "raw", "format", "%d"], "multipathd show paths"),
        (["multipathd", "reconfigure"], "multipathd reconfigure"),
        (["multipathd", "-k", "show maps"], "multipathd"),
        (["dmsetup", "message", "-u", "mpath-36001", "0", "fail_if_no_path"], "dmsetup message"),
        (["multipath", "-f", "mpatha"], "multipath -f"),
        (
            ["/lib/udev/scsi_id", "--page=0x83", "--whitelisted", "--device=/dev/sdc"],
            "scsi_id --page --whitelisted --device",
        ),
        (["blockdev", "--flushbufs", "/dev/dm-0"], "blockdev --flushbufs"),
        ([], ""),
    ],
)
def test_a_command_is_named_by_its_tool_and_subcommand_words_never_its_values(argv: List[str], name: str) -> None:
    assert command_name(argv) == name


def test_a_secret_never_reaches_a_name() -> None:
    argv = ["iscsiadm", "-m", "node", "-o", "update", "-n", "node.session.auth.password", "-v", Secret("s3cret")]
    assert command_name(argv, ["s3cret"]) == "iscsiadm -m node -o update -n node.session.auth.password"
    # a value that should have been dropped but holds a secret is still masked
    assert command_name(["tool", "--password=x", "--s3cret"], ["s3cret"]) == "tool --password --********"


def test_runner_records_each_command_with_start_duration_and_rc_also_failures() -> None:
    clock = Clock()
    module = FakeModule([(0, "", ""), (21, "", "no records"), (0, "", "")])
    runner = Runner(module, default_timeout=30)
    runner._profile = Profile(clock=clock)  # a clock the test moves
    original = module.run_command

    def slow(args: Any, **kwargs: Any) -> Tuple[int, str, str]:
        clock.now += 0.25
        return original(args, **kwargs)

    module.run_command = slow  # type: ignore[method-assign]
    runner.run(["iscsiadm", "-m", "session"])
    with pytest.raises(ToolError):
        runner.run(["iscsiadm", "-m", "node", "-T", "iqn.x:t", "-o", "show"])
    runner.run(["multipathd", "show", "status"], ok_rcs=(0, 1))
    result = runner.profile.to_result()
    assert result["commands"] == 3 and result["waits"] == 0 and result["dropped"] == 0
    assert result["command_seconds"] == 0.75
    assert result["steps"] == [
        {"kind": "command", "what": "iscsiadm -m session", "start": 0.0, "duration": 0.25, "rc": 0},
        {"kind": "command", "what": "iscsiadm -m node -o show", "start": 0.25, "duration": 0.25, "rc": 21},
        {"kind": "command", "what": "multipathd show status", "start": 0.5, "duration": 0.25, "rc": 0},
    ]


def test_a_command_that_cannot_start_is_recorded() -> None:
    class Broken(FakeModule):
        def run_command(self, args: Any, **kwargs: Any) -> Tuple[int, str, str]:
            raise PermissionError(13, "Permission denied")

    runner = Runner(Broken())
    with pytest.raises(ToolError):
        runner.run(["iscsiadm", "-m", "node", "-v", Secret("zz-secret")])
    (step,) = runner.profile.to_result()["steps"]
    assert step["what"] == "iscsiadm -m node" and step["rc"] == 13


def test_scripted_runners_record_through_the_same_policy() -> None:
    runner = ScriptedRunner([(0, "", ""), (1, "", "")])
    runner.run(["dmsetup", "info", "-c"])
    with pytest.raises(ToolError):
        runner.run(["multipath", "-f", "mpatha"])
    assert [s["what"] for s in runner.profile.to_result()["steps"]] == ["dmsetup info", "multipath -f"]
    assert runner.profile.count("multipath") == 1 and runner.profile.count("dmsetup") == 1


@pytest.mark.parametrize(
    ("values", "ended"),
    [([False, False, True], "ready"), ([False] * 100, "deadline")],
)
def test_wait_until_records_what_ended_each_wait(values: List[bool], ended: str) -> None:
    clock = Clock()
    profile = Profile(clock=clock)
    answers = iter(values)
    try:
        wait_until(
            lambda: next(answers),
            timeout=1.0,
            interval=0.5,
            describe="block devices",
            clock=clock,
            sleep=clock.sleep,
            profile=profile,
            method=lambda: "udev-events",
        )
    except WaitTimeout:
        assert ended == "deadline"
    result = profile.to_result()
    assert result["waits"] == 1 and result["commands"] == 0
    assert result["steps"] == [
        {
            "kind": "wait",
            "what": "block devices",
            "method": "udev-events",
            "deadline": 1.0,
            "start": 0.0,
            "duration": 1.0,
            "ended": ended,
        }
    ]
    assert result["wait_seconds"] == 1.0


def test_a_wait_whose_predicate_raises_is_recorded_as_an_error() -> None:
    profile = Profile()

    def broken() -> bool:
        raise OSError("sysfs went away")

    with pytest.raises(OSError, match="sysfs went away"):
        wait_until(broken, timeout=1.0, describe=lambda last: f"x {last}", profile=profile)
    (step,) = profile.to_result()["steps"]
    assert step["ended"] == "error" and step["what"] == "condition" and step["method"] == "sysfs-poll"


def test_a_timed_out_wait_is_named_by_its_describe_function() -> None:
    clock = Clock()
    profile = Profile(clock=clock)
    with pytest.raises(WaitTimeout, match="waiting for maps: 0"):
        wait_until(
            lambda: 0,
            timeout=0.2,
            describe=lambda last: f"maps: {last}",
            clock=clock,
            sleep=clock.sleep,
            profile=profile,
        )
    assert profile.to_result()["steps"][0]["what"] == "maps: 0"


def test_the_list_is_capped_and_the_counts_go_on() -> None:
    profile = Profile(limit=3)
    for index in range(5):
        profile.command(name=f"cmd {index}", started=profile.clock(), rc=0)
    profile.wait(what="x", method="sysfs-poll", deadline=1, started=profile.clock(), ended_by="ready")
    result = profile.to_result()
    assert result["commands"] == 5 and result["waits"] == 1 and result["dropped"] == 3
    assert [s["what"] for s in result["steps"]] == ["cmd 0", "cmd 1", "cmd 2"]


def test_records_from_several_threads_are_all_kept() -> None:
    runner = ScriptedRunner([(0, "", "")] * 400)
    errors: List[Optional[BaseException]] = []

    def login(index: int) -> None:
        try:
            for _attempt in range(50):
                runner.run(["iscsiadm", "-m", "node", "-T", f"t{index}", "--login"])
        except BaseException as exc:  # pragma: no cover - shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=login, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    result = runner.profile.to_result()
    assert result["commands"] == 400 and len(result["steps"]) == 300 and result["dropped"] == 100
