# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_flush: observing a map (fake sysfs + scripted dmsetup), planning (pure), applying against a fake kernel
that removes what the real one would."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError
from ansible_collections.lunsafe.san.plugins.module_utils._flush import (
    FlushFailed,
    FlushRefused,
    Observation,
    Settings,
    apply_plan,
    observe,
    observe_settled,
    plan_flush,
    read_wwids,
    refusal,
)
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._multipath import FIELD_SEP, parse_dmsetup_info, show_paths
from ansible_collections.lunsafe.san.plugins.module_utils._runner import CommandResult
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fake_host import FakeClock
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner, StepLike
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.sysfs_tree import (
    build_sysfs,
    remove_scsi_device,
)

IQN = "iqn.2003-01.org.lunsafe.test:array"
WWID = "36001405aaaaaaaaaaaaaaaaaaaaaaaa1"
UUID = "mpath-" + WWID
OTHER_WWID = "36001405bbbbbbbbbbbbbbbbbbbbbbbb2"
SESSIONS = [
    {"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10"},
    {"sid": 2, "host": 3, "targetname": IQN, "address": "192.0.2.11"},
]
TABLE_QUEUE = "0 2097152 multipath 1 queue_if_no_path 1 alua 1 1 service-time 0 2 2 8:16 1 1 8:32 1 1\n"
TABLE_NOQUEUE = "0 2097152 multipath 0 1 alua 1 1 service-time 0 2 2 8:16 1 1 8:32 1 1\n"
STATUS_UP = "0 2097152 multipath 2 0 0 0 1 1 A 0 2 2 8:16 A 0 0 1 8:32 A 0 0 1\n"
STATUS_DEAD = "0 2097152 multipath 2 0 0 0 1 1 E 0 2 2 8:16 F 3 0 1 8:32 F 3 0 1\n"


def devices(state: str = "running") -> List[Dict[str, Any]]:
    return [
        {"hctl": "2:0:0:1", "sid": 1, "name": "sdb", "wwid": "naa.6001405aaaaaaaaaaaaaaaaaaaaaaaa1", "state": state},
        {"hctl": "3:0:0:1", "sid": 2, "name": "sdc", "wwid": "naa.6001405aaaaaaaaaaaaaaaaaaaaaaaa1"},
        {"hctl": "2:0:0:2", "sid": 1, "name": "sdd", "wwid": "naa.6001405bbbbbbbbbbbbbbbbbbbbbbbb2"},
        {"hctl": "3:0:0:2", "sid": 2, "name": "sde", "wwid": "naa.6001405bbbbbbbbbbbbbbbbbbbbbbbb2"},
    ]


MAPS = [
    {"dm": "dm-0", "name": "mpatha", "uuid": UUID, "slaves": ["sdb", "sdc"]},
    {"dm": "dm-1", "name": "mpathb", "uuid": "mpath-" + OTHER_WWID, "slaves": ["sdd", "sde"]},
]


def kernel_state(*, open_count: int = 0, table: str = TABLE_NOQUEUE, status: str = STATUS_UP) -> List[StepLike]:
    """The three read-only dmsetup answers of observe(), by uuid."""
    return [
        (["dmsetup", "info", "-c", "--noheadings", "--separator", FIELD_SEP, "-o", "name,uuid,open", "-u", UUID],
         0, f"mpatha{FIELD_SEP}{UUID}{FIELD_SEP}{open_count}\n", ""),
        (["dmsetup", "table", "-u", UUID], 0, table, ""),
        (["dmsetup", "status", "-u", UUID], 0, status, ""),
    ]  # fmt: skip


def make_root(tmp_path: Path, *, state: str = "running", maps: Sequence[Dict[str, Any]] = tuple(MAPS)) -> Path:
    root = build_sysfs(tmp_path, sessions=SESSIONS, devices=devices(state), maps=maps)
    for number, dm_map in enumerate(maps):
        (root / "block" / dm_map["dm"] / "dev").write_text(f"254:{number}\n")
    return root


def look(
    root: Path, runner: ScriptedRunner, *, ref: str = "mpatha", mountinfo: str = "", wwids: str = ""
) -> Observation:
    mount_file = root.parent / "mountinfo"
    mount_file.write_text(mountinfo)
    wwids_file = root.parent / "wwids"
    wwids_file.write_text(wwids)
    host = Host(
        runner=runner,
        sysfs_root=str(root),
        proc_root=str(root.parent / "proc"),
        mountinfo_path=str(mount_file),
        wwids_file=str(wwids_file),
    )
    return observe(ref=ref, host=host)


# ---------------------------------------------------------------------------------------------------------
# parsers


def test_parse_dmsetup_info_reads_the_open_count_of_that_uuid_only() -> None:
    text = f"mpathb{FIELD_SEP}mpath-other{FIELD_SEP}5\nmpatha{FIELD_SEP}{UUID}{FIELD_SEP}2\n"
    assert parse_dmsetup_info(text, uuid=UUID) == 2
    assert parse_dmsetup_info(text, uuid="mpath-none") is None


def test_read_wwids_lists_slash_delimited_lines(tmp_path: Path) -> None:
    path = tmp_path / "wwids"
    path.write_text(f"# Multipath wwids, Version : 1.0\n/{WWID}/\n#/{OTHER_WWID}/\n")
    assert read_wwids(str(path)) == (WWID,)
    assert read_wwids(str(tmp_path / "missing")) == ()


# ---------------------------------------------------------------------------------------------------------
# observe + plan


@pytest.mark.parametrize("ref", ["mpatha", "/dev/mapper/mpatha", "dm-0", "/dev/dm-0", WWID, UUID])
def test_every_reference_form_resolves_to_the_same_uuid(tmp_path: Path, ref: str) -> None:
    root = make_root(tmp_path)
    observation = look(root, ScriptedRunner(kernel_state()), ref=ref)
    assert observation.identity is not None
    assert observation.identity.to_dict() == {"name": "mpatha", "dm": "dm-0", "uuid": UUID, "wwid": WWID}
    assert [(str(p.hctl), p.device) for p in observation.paths] == [("2:0:0:1", "sdb"), ("3:0:0:1", "sdc")]


def test_healthy_map_plan_flushes_then_deletes_only_its_own_paths(tmp_path: Path) -> None:
    observation = look(make_root(tmp_path), ScriptedRunner(kernel_state()))
    plan = plan_flush(observation=observation, force=False, remove_wwid_file=False)
    assert plan.refusals == ()
    assert [(step.action, step.target) for step in plan.steps] == [
        ("flush_map", "mpatha"),
        ("delete_path", "sdb"),
        ("forget_path", "sdb"),
        ("delete_path", "sdc"),
        ("forget_path", "sdc"),
    ]


def test_dead_queueing_map_disables_queueing_first(tmp_path: Path) -> None:
    runner = ScriptedRunner(kernel_state(table=TABLE_QUEUE, status=STATUS_DEAD))
    observation = look(make_root(tmp_path), runner)
    assert observation.dead and observation.queue_if_no_path
    plan = plan_flush(observation=observation, force=False, remove_wwid_file=False)
    assert [step.action for step in plan.steps[:2]] == ["disable_queueing", "flush_map"]


def test_live_queueing_map_keeps_queueing(tmp_path: Path) -> None:
    observation = look(make_root(tmp_path), ScriptedRunner(kernel_state(table=TABLE_QUEUE)))
    plan = plan_flush(observation=observation, force=False, remove_wwid_file=False)
    assert "disable_queueing" not in [step.action for step in plan.steps]


def test_open_map_is_refused_and_force_overrides(tmp_path: Path) -> None:
    observation = look(make_root(tmp_path), ScriptedRunner(kernel_state(open_count=2)))
    plan = plan_flush(observation=observation, force=False, remove_wwid_file=False)
    assert plan.refusals == (
        "map mpatha is open (open count 2), by no process that /proc shows (a kernel user such as swap or an md "
        "array, a process of another user namespace, or one that closed it meanwhile)",
    )
    assert not plan.forced
    assert plan_flush(observation=observation, force=True, remove_wwid_file=False).forced


def test_mount_of_the_map_is_refused_naming_the_mount_point(tmp_path: Path) -> None:
    mountinfo = "40 22 254:0 / /srv/data rw shared:20 - ext4 /dev/mapper/mpatha rw\n"
    mountinfo += "41 22 254:1 / /srv/other rw shared:21 - ext4 /dev/mapper/mpathb rw\n"
    observation = look(make_root(tmp_path), ScriptedRunner(kernel_state(open_count=1)), mountinfo=mountinfo)
    plan = plan_flush(observation=observation, force=False, remove_wwid_file=False)
    assert plan.refusals[0] == "mounted at /srv/data (dm-0, ext4 from /dev/mapper/mpatha)"
    assert [holder.name for holder in observation.holders] == ["/srv/data"]


def test_lvm_and_partition_holders_are_named(tmp_path: Path) -> None:
    maps = [
        *MAPS,
        {"dm": "dm-2", "name": "vg-lv", "uuid": "LVM-abcdef", "slaves": ["dm-0"]},
        {"dm": "dm-3", "name": "mpathb1", "uuid": "part1-mpath-" + OTHER_WWID, "slaves": ["dm-1"]},
    ]
    root = make_root(tmp_path, maps=maps)
    observation = look(root, ScriptedRunner(kernel_state(open_count=1)))
    assert [holder.to_dict() for holder in observation.holders] == [
        {"kind": "lvm", "device": "dm-2", "name": "vg-lv", "detail": "on dm-0"}
    ]
    plan = plan_flush(observation=observation, force=False, remove_wwid_file=False)
    assert plan.refusals == (
        "held by lvm dm-2 (vg-lv) on dm-0",
        # the open count names its concrete cause, not "what is named before"
        "map mpatha is open (open count 1) by no process /proc shows, but by the kernel for lvm dm-2 (vg-lv) on dm-0",
    )


def test_blocked_path_is_refused_and_taken_offline_under_force(tmp_path: Path) -> None:
    observation = look(make_root(tmp_path, state="blocked"), ScriptedRunner(kernel_state()))
    assert "blocked paths" in plan_flush(observation=observation, force=False, remove_wwid_file=False).refusals[0]
    forced = plan_flush(observation=observation, force=True, remove_wwid_file=False)
    assert [(step.action, step.target) for step in forced.steps[1:3]] == [
        ("offline_path", "sdb"),
        ("delete_path", "sdb"),
    ]


def test_absent_map_plans_nothing_but_a_listed_wwid(tmp_path: Path) -> None:
    root = make_root(tmp_path, maps=MAPS[1:])
    runner = ScriptedRunner()
    observation = look(root, runner, ref=WWID, wwids=f"/{WWID}/\n")
    assert not observation.found and observation.wwid_listed
    assert plan_flush(observation=observation, force=False, remove_wwid_file=False).steps == ()
    plan = plan_flush(observation=observation, force=False, remove_wwid_file=True)
    assert [(step.action, step.target) for step in plan.steps] == [("remove_wwid", WWID)]
    assert runner.calls == []


def test_a_dm_device_that_is_not_multipath_is_refused(tmp_path: Path) -> None:
    maps = [*MAPS, {"dm": "dm-2", "name": "vg-lv", "uuid": "LVM-abcdef", "slaves": ["dm-0"]}]
    with pytest.raises(InputError, match=r"is dm-2 \(name vg-lv, uuid LVM-abcdef\), not a multipath map"):
        look(make_root(tmp_path, maps=maps), ScriptedRunner(), ref="vg-lv")


def test_a_dm_device_without_uuid_is_refused_without_saying_none(tmp_path: Path) -> None:
    maps: List[Dict[str, Any]] = [*MAPS, {"dm": "dm-2", "name": "plain", "uuid": None, "slaves": ["dm-0"]}]
    with pytest.raises(InputError) as caught:
        look(make_root(tmp_path, maps=maps), ScriptedRunner(), ref="dm-2")
    assert caught.value.msg == "map 'dm-2' is dm-2 (name plain, no dm uuid), not a multipath map: refusing"


def make_proc(root: Path, processes: Dict[int, Tuple[str, List[str]]]) -> None:
    for pid, (comm, targets) in processes.items():
        fd_dir = root.parent / "proc" / str(pid) / "fd"
        fd_dir.mkdir(parents=True)
        (fd_dir.parent / "comm").write_text(comm + "\n")
        for fd, target in enumerate(targets):
            os.symlink(target, fd_dir / str(fd))


def test_open_map_refusal_names_its_openers_and_lists_path_openers_but_multipathd(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    make_proc(
        root,
        {
            1234: ("udev-worker", ["/dev/dm-0"]),
            50: ("multipathd", ["/dev/sdb", "/dev/sdc", "/dev/dm-1"]),
            60: ("dd", ["/dev/sdc"]),
            70: ("cat", ["/dev/dm-1"]),  # another map: not ours
        },
    )
    observation = look(root, ScriptedRunner(kernel_state(open_count=1)))
    assert [opener.to_dict() for opener in observation.openers] == [
        {"pid": 60, "command": "dd", "device": "sdc"},
        {"pid": 1234, "command": "udev-worker", "device": "dm-0"},
    ]
    plan = plan_flush(observation=observation, force=False, remove_wwid_file=False)
    assert plan.refusals == ("map mpatha is open (open count 1) by pid 1234 (udev-worker)",)
    error = refusal(observation=observation, plan=plan)
    assert error.to_fail_kwargs()["openers"][1] == {"pid": 1234, "command": "udev-worker", "device": "dm-0"}
    # a path held open directly does not refuse by itself (multipathd always holds the paths)
    closed = look(root, ScriptedRunner(kernel_state(open_count=0)))
    assert plan_flush(observation=closed, force=False, remove_wwid_file=False).refusals == ()


# ---------------------------------------------------------------------------------------------------------
# apply, against a fake kernel


class Kernel(ScriptedRunner):
    """Answers commands from a script and makes sysfs change as the kernel would: ``multipath -f`` removes the
    map (if ``flush_works``), a write to a path's delete file removes that device."""

    def __init__(self, root: Path, script: Sequence[StepLike], *, flush_works: bool = True) -> None:
        super().__init__(script)
        self.root = root
        self.flush_works = flush_works
        self.writes: List[str] = []

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        result = super().run(argv, **kwargs)
        if list(argv[:2]) == ["multipath", "-f"] and self.flush_works:
            self.remove_map("dm-0")
        return result

    def remove_map(self, dm: str) -> None:
        real = os.path.realpath(self.root / "block" / dm)
        for slave in os.listdir(os.path.join(real, "slaves")):
            os.unlink(os.path.realpath(self.root / "block" / slave) + f"/holders/{dm}")
        for link in (self.root / "block" / dm, self.root / "class" / "block" / dm):
            link.unlink()
        shutil.rmtree(real)

    def write(self, path: str, value: str) -> None:
        self.writes.append(f"{path[len(str(self.root)) :]}={value}")
        if path.endswith("/delete"):
            remove_scsi_device(self.root, hctl=path.split("/")[-3])


class Clock:
    """A monotonic clock that only sleeping advances: waits end at their deadline at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def settings(root: Path, kernel: Kernel, *, force: bool = False, retries: int = 2) -> Settings:
    """The fake kernel runs the commands and takes the sysfs writes; time passes only by sleeping."""
    clock = Clock()
    host = Host(
        runner=kernel,
        sysfs_root=str(root),
        proc_root=str(root.parent / "proc"),
        writer=kernel.write,
        clock=clock,
        sleep=clock.sleep,
    )
    return Settings(host=host, retries=retries, retry_interval=1, command_timeout=30, path_timeout=5, force=force)


NO_PATHS: StepLike = (["multipathd", "show", "paths", "raw", "format", show_paths()[-1]], 0, "ok\n", "")


def test_apply_flushes_by_name_then_deletes_each_path_and_checks_multipathd(
    tmp_path: Path,
) -> None:
    root = make_root(tmp_path)
    observation = look(root, ScriptedRunner(kernel_state()))
    kernel = Kernel(root, [(["multipath", "-f", "mpatha"], 0, "", ""), NO_PATHS])  # one show paths for both paths
    plan = plan_flush(observation=observation, force=False, remove_wwid_file=False)
    outcome = apply_plan(plan=plan, observation=observation, settings=settings(root, kernel))
    assert kernel.writes == [
        "/class/scsi_device/2:0:0:1/device/delete=1",
        "/class/scsi_device/3:0:0:1/device/delete=1",
    ]
    assert [entry["device"] for entry in outcome.paths_removed] == ["sdb", "sdc"]
    assert kernel.remaining == []
    # the other LUN's map and paths are untouched
    assert (root / "block" / "dm-1").exists()
    assert (root / "class" / "scsi_device" / "2:0:0:2" / "device").exists()


def test_apply_refuses_before_any_command_when_refusals_and_no_force(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    observation = look(root, ScriptedRunner(kernel_state(open_count=1)))
    plan = plan_flush(observation=observation, force=False, remove_wwid_file=False)
    kernel = Kernel(root, [])
    with pytest.raises(FlushRefused, match="open count 1") as caught:
        apply_plan(plan=plan, observation=observation, settings=settings(root, kernel))
    assert kernel.calls == []
    assert caught.value.to_fail_kwargs()["map"]["uuid"] == UUID


def test_failed_flush_without_force_leaves_the_paths(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    observation = look(root, ScriptedRunner(kernel_state()))
    in_use = (["multipath", "-f", "mpatha"], 1, "", "mpatha: map in use\n")
    kernel = Kernel(root, [in_use, in_use, in_use], flush_works=False)
    plan = plan_flush(observation=observation, force=False, remove_wwid_file=False)
    with pytest.raises(FlushFailed, match="after 3 attempts: mpatha: map in use") as caught:
        apply_plan(plan=plan, observation=observation, settings=settings(root, kernel))
    assert kernel.writes == []
    assert [entry["attempt"] for entry in caught.value.details["done"]] == [1, 2, 3]


def test_dead_queueing_map_gets_queueing_disabled_through_multipathd_then_dmsetup(
    tmp_path: Path,
) -> None:
    root = make_root(tmp_path)
    observation = look(root, ScriptedRunner(kernel_state(table=TABLE_QUEUE, status=STATUS_DEAD)))
    kernel = Kernel(
        root,
        [
            (["multipathd", "disablequeueing", "map", "mpatha"], 0, "ok\n", ""),
            (["dmsetup", "table", "-u", UUID], 0, TABLE_QUEUE, ""),  # multipathd said ok, the kernel still queues
            (["dmsetup", "message", "-u", UUID, "0", "fail_if_no_path"], 0, "", ""),
            (["multipath", "-f", "mpatha"], 0, "", ""),
            NO_PATHS,  # one show paths for both deleted paths
        ],
    )
    plan = plan_flush(observation=observation, force=False, remove_wwid_file=False)
    outcome = apply_plan(plan=plan, observation=observation, settings=settings(root, kernel))
    assert outcome.queueing_disabled
    assert kernel.remaining == []


def test_renamed_map_stops_before_the_flush(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    observation = look(root, ScriptedRunner(kernel_state()))
    (root / "block" / "dm-0" / "dm" / "name").write_text("other\n")
    plan = plan_flush(observation=observation, force=False, remove_wwid_file=False)
    kernel = Kernel(root, [])
    with pytest.raises(FlushFailed, match="renamed from mpatha to other"):
        apply_plan(plan=plan, observation=observation, settings=settings(root, kernel))
    assert kernel.calls == []


def test_reused_dm_name_with_another_uuid_is_never_flushed(tmp_path: Path) -> None:
    """Between observing and acting the map vanished and dm-0 / mpatha now belong to another LUN."""
    root = make_root(tmp_path)
    observation = look(root, ScriptedRunner(kernel_state()))
    (root / "block" / "dm-0" / "dm" / "uuid").write_text("mpath-3600140500000000000000000000000ff\n")
    kernel = Kernel(root, [NO_PATHS])
    plan = plan_flush(observation=observation, force=False, remove_wwid_file=False)
    apply_plan(plan=plan, observation=observation, settings=settings(root, kernel))
    # the recorded uuid is gone: nothing is flushed under that name, only multipathd is asked about the paths,
    # once for both
    assert [argv[:2] for argv in kernel.argvs] == [["multipathd", "show"]]
    # its former paths are still at the same H:C:T:L with the same WWID, so they are deleted
    assert len(kernel.writes) == 2


def test_forced_last_resort_wipes_the_table_of_an_open_map(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    observation = look(root, ScriptedRunner(kernel_state(open_count=1)))
    in_use = (["multipath", "-f", "mpatha"], 1, "", "mpatha: map in use\n")

    class WipingKernel(Kernel):
        def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
            result = super().run(argv, **kwargs)
            if list(argv[:2]) == ["dmsetup", "wipe_table"]:  # the error table holds no path
                for slave in ("sdb", "sdc"):
                    (root / "block" / "dm-0" / "slaves" / slave).unlink()
            return result

    kernel = WipingKernel(
        root,
        [
            in_use,
            in_use,
            (["multipathd", "del", "map", "mpatha"], 1, "fail\n", ""),
            (["dmsetup", "wipe_table", "mpatha"], 0, "", ""),
            (["dmsetup", "remove", "--deferred", "-u", UUID], 0, "", ""),
            NO_PATHS,
        ],
        flush_works=False,
    )
    plan = plan_flush(observation=observation, force=True, remove_wwid_file=False)
    outcome = apply_plan(plan=plan, observation=observation, settings=settings(root, kernel, force=True, retries=1))
    assert outcome.deferred and outcome.last_resort == "dmsetup_remove"
    assert len(kernel.writes) == 2
    assert kernel.remaining == []


def test_path_that_does_not_leave_sysfs_fails_with_the_deadline(
    tmp_path: Path,
) -> None:
    root = make_root(tmp_path)
    observation = look(root, ScriptedRunner(kernel_state()))
    kernel = Kernel(root, [(["multipath", "-f", "mpatha"], 0, "", "")])
    writes: List[str] = []
    clock = iter(float(tick) for tick in range(1000))
    host = Host(
        runner=kernel, sysfs_root=str(root), proc_root=str(tmp_path / "proc"),
        writer=lambda path, value: writes.append(path),  # the kernel ignores the delete
        sleep=lambda _s: None, clock=lambda: next(clock),
    )  # fmt: skip
    slow = Settings(host=host, retries=0, retry_interval=1, command_timeout=30, path_timeout=5, force=False)
    plan = plan_flush(observation=observation, force=False, remove_wwid_file=False)
    with pytest.raises(FlushFailed, match=r"sdb \(2:0:0:1\) to leave sysfs") as caught:
        apply_plan(plan=plan, observation=observation, settings=slow)
    assert caught.value.details["done"][-1]["action"] == "delete_path"
    assert len(writes) == 1


def test_a_map_left_with_an_error_table_is_observed_without_failing(tmp_path: Path) -> None:
    """After a forced wipe_table the map keeps its uuid until its last opener closes it."""
    root = make_root(tmp_path, maps=[{"dm": "dm-0", "name": "mpatha", "uuid": UUID, "slaves": []}, MAPS[1]])
    script = kernel_state(open_count=1, table="0 2097152 error\n", status="0 2097152 error\n")
    observation = look(root, ScriptedRunner(script))
    assert observation.found and observation.paths == ()
    assert observation.open_count == 1 and not observation.queue_if_no_path and observation.active_paths == 0


# ---------------------------------------------------------------------------------------------------------
# udev's helpers holding a map open for a moment (observe_settled)


def settle_host(root: Path, runner: ScriptedRunner, clock: FakeClock) -> Host:
    (root.parent / "mountinfo").write_text("")
    (root.parent / "wwids").write_text("")
    return Host(
        runner=runner,
        sysfs_root=str(root),
        proc_root=str(root.parent / "proc"),
        mountinfo_path=str(root.parent / "mountinfo"),
        wwids_file=str(root.parent / "wwids"),
        clock=clock,
        sleep=clock.sleep,
    )


def udev_tree(root: Path, opener: Tuple[int, str, int]) -> None:
    """udevd (300) with a worker (301), and ``opener`` (pid, comm, ppid) holding dm-0 open."""
    make_proc(root, {300: ("systemd-udevd", []), 301: ("(udev-worker)", []), opener[0]: (opener[1], ["/dev/dm-0"])})
    proc = root.parent / "proc"
    for pid, comm, ppid in ((300, "systemd-udevd", 1), (301, "(udev-worker)", 300), opener):
        (proc / str(pid) / "stat").write_text(f"{pid} ({comm}) S {ppid} 0 0\n")


def test_a_map_only_udev_holds_is_observed_again_until_udev_closes_it(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    udev_tree(root, (302, "kpartx", 301))
    clock = FakeClock()

    def kpartx_exits() -> None:  # on the second pause
        if clock.now >= 1000.5:
            shutil.rmtree(root.parent / "proc" / "302", ignore_errors=True)

    clock.on_sleep.append(kpartx_exits)
    runner = ScriptedRunner([*kernel_state(open_count=1), *kernel_state(open_count=1), *kernel_state(open_count=0)])
    observation = observe_settled(ref="mpatha", host=settle_host(root, runner, clock), timeout=10)
    assert observation.open_count == 0 and observation.udev_waited == 0.5 and not observation.udev_openers
    assert plan_flush(observation=observation, force=False, remove_wwid_file=False).refusals == ()
    assert runner.remaining == []


def test_a_udev_program_that_does_not_end_is_refused_as_such_after_the_wait(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    udev_tree(root, (302, "sleep", 301))
    clock = FakeClock()
    runner = ScriptedRunner(kernel_state(open_count=1) * 6)
    observation = observe_settled(ref="mpatha", host=settle_host(root, runner, clock), timeout=1)
    assert observation.udev_openers and observation.udev_waited == 1.0
    assert plan_flush(observation=observation, force=False, remove_wwid_file=False).refusals == (
        "map mpatha is open (open count 1) by pid 302 (sleep), run by udev and still open after 1.0s (a udev rule's "
        "program that does not end: see `udevadm monitor` and the rules that RUN it)",
    )
    assert len(runner.calls) == 15  # the first look and four more, 0.25 s apart


def test_an_opener_that_is_not_udev_is_refused_at_once(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    udev_tree(root, (302, "qemu-kvm", 1))
    clock = FakeClock()
    runner = ScriptedRunner(kernel_state(open_count=1))
    observation = observe_settled(ref="mpatha", host=settle_host(root, runner, clock), timeout=10)
    assert observation.udev_waited is None and clock.now == 1000.0
    assert plan_flush(observation=observation, force=False, remove_wwid_file=False).refusals == (
        "map mpatha is open (open count 1) by pid 302 (qemu-kvm)",
    )
    (tmp_path / "mounted").mkdir()
    mounted = make_root(tmp_path / "mounted")  # a mount never waits (and no process shows as an opener here)
    host = settle_host(mounted, ScriptedRunner(kernel_state(open_count=1)), clock)
    (mounted.parent / "mountinfo").write_text("40 22 254:0 / /srv rw - ext4 /dev/mapper/mpatha rw\n")
    assert observe_settled(ref="mpatha", host=host).udev_waited is None
