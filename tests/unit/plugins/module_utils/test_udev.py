# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""udev as the waits see it: the source chosen (pyudev monitor or the sysfs-poll fallback, and why), waking
on events, readiness and properties from udev's database; and the waits of the scan and the attach ending
only once udev has processed the new devices and maps. pyudev is a fake here (events as data); the real
one runs in the lab (tests/integration/targets/iscsi_lun_attach/tasks/udev.yml)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _attach as attach
from ansible_collections.lunsafe.san.plugins.module_utils import _scan as scan
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._udev import (
    SYSFS_POLL,
    UDEV_EVENTS,
    DeferredUdev,
    Udev,
    UdevMonitor,
    deferred_udev,
    open_udev,
    parse_udev_db,
    udev_reader,
)
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fake_host import IQN, FakeHost, wwid_of
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner

DB = """S:disk/by-id/wwn-0x6001405aaaa
S:disk/by-path/ip-127.0.0.1:3260-iscsi-iqn.x-lun-1
S:disk/by-id/scsi-36001405aaaa
S:mapper/../weird
W:12
I:1700000000
E:ID_WWN=0x6001405aaaa
E:ID_SERIAL=36001405aaaa
E:ID_PATH=ip-127.0.0.1:3260-iscsi-iqn.x-lun-1
E:DM_MULTIPATH_DEVICE_PATH=1
E:BROKEN
G:systemd
"""


def sysfs_with(tmp_path: Path, **devts: str) -> Path:
    root = tmp_path / "sys"
    for name, devt in devts.items():
        folder = root / "class" / "block" / name
        folder.mkdir(parents=True)
        (folder / "dev").write_text(devt + "\n", encoding="utf-8")
    return root


class Sleeps:
    def __init__(self) -> None:
        self.calls: List[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


# ---------------------------------------------------------------------------------------------------------
# the database and the fallback


def test_parse_udev_db_reads_links_and_properties_and_skips_the_rest() -> None:
    parsed = parse_udev_db(DB + "no colon here\n")
    assert parsed["links"] == sorted(
        [
            "/dev/disk/by-id/wwn-0x6001405aaaa",
            "/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-iqn.x-lun-1",
            "/dev/disk/by-id/scsi-36001405aaaa",
            "/dev/mapper/../weird",
        ]
    )
    assert parsed["properties"]["ID_WWN"] == "0x6001405aaaa"
    assert parsed["properties"]["DM_MULTIPATH_DEVICE_PATH"] == "1"
    assert "BROKEN" not in parsed["properties"]


def test_fallback_reads_readiness_and_properties_from_the_database_file(tmp_path: Path) -> None:
    root = sysfs_with(tmp_path, sdb="8:16", sdc="8:32")
    data = tmp_path / "udev-data"
    data.mkdir()
    (data / "b8:16").write_text(DB, encoding="utf-8")
    sleeps = Sleeps()
    udev = Udev("no pyudev", sleep=sleeps, sysfs_root=str(root), udev_data=str(data))
    assert udev.ready("sdb") is True
    assert udev.ready("sdc") is False  # udev has not written its entry yet
    assert udev.ready("sdz") is False  # no such block device
    assert udev.properties("sdc") is None
    assert udev.properties("sdb") == {
        "links": [
            "/dev/disk/by-id/scsi-36001405aaaa",
            "/dev/disk/by-id/wwn-0x6001405aaaa",
            "/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-iqn.x-lun-1",
            "/dev/mapper/../weird",
        ],
        "id_wwn": "0x6001405aaaa",
        "id_serial": "36001405aaaa",
        "id_path": "ip-127.0.0.1:3260-iscsi-iqn.x-lun-1",
    }
    udev.pause(0.25)
    assert sleeps.calls == [0.25]
    assert udev.events == 0
    assert udev.to_result() == {"wait_method": SYSFS_POLL, "wait_method_reason": "no pyudev"}
    udev.close()


MAP_FIRST = "I:1700000000\nE:DM_UDEV_DISABLE_OTHER_RULES_FLAG=1\n"  # the map's add event: no table yet
MAP_DONE = (
    "S:disk/by-id/dm-uuid-mpath-3600\nS:mapper/mpatha\nS:disk/by-id/dm-name-mpatha\n"
    "E:DM_NAME=mpatha\nE:DM_UUID=mpath-3600\n"
)


def test_a_map_is_ready_once_udev_processed_it_with_its_table_loaded(tmp_path: Path) -> None:
    root = sysfs_with(tmp_path, **{"dm-0": "254:0"})
    data = tmp_path / "udev-data"
    data.mkdir()
    udev = Udev("no pyudev", sleep=Sleeps(), sysfs_root=str(root), udev_data=str(data))
    assert udev.map_ready("dm-0", "mpath-3600") is False  # no entry yet
    (data / "b254:0").write_text(MAP_FIRST, encoding="utf-8")
    assert udev.ready("dm-0") is True  # an entry exists...
    assert udev.map_ready("dm-0", "mpath-3600") is False  # ...but not the one with the table loaded
    (data / "b254:0").write_text(MAP_DONE, encoding="utf-8")
    assert udev.map_ready("dm-0", "mpath-3600") is True
    assert udev.map_ready("dm-0", "mpath-3611") is False  # another map reuses the dm name: not ours
    assert udev.properties("dm-0") == {
        "links": ["/dev/disk/by-id/dm-name-mpatha", "/dev/disk/by-id/dm-uuid-mpath-3600", "/dev/mapper/mpatha"],
        "dm_name": "mpatha",
        "dm_uuid": "mpath-3600",
    }
    assert Udev("no udevd", sleep=Sleeps(), udev_data=None).map_ready("dm-0", "mpath-3600") is True


def test_without_udevd_every_device_is_ready_and_has_no_properties(tmp_path: Path) -> None:
    udev = open_udev(
        sleep=Sleeps(),
        sysfs_root=str(sysfs_with(tmp_path, sdb="8:16")),
        udev_control=str(tmp_path / "no-control"),
        pyudev_module=FakePyudev(),
    )
    assert udev.method == SYSFS_POLL
    assert "udevd is not running" in udev.reason
    assert udev.ready("sdb") is True
    assert udev.ready("anything") is True
    assert udev.properties("sdb") is None


# ---------------------------------------------------------------------------------------------------------
# choosing the source


class FakeDevice:
    def __init__(self, initialized: bool = True) -> None:
        self.is_initialized = initialized
        self.properties = {"DM_NAME": "mpatha", "DM_UUID": "mpath-3600", "MAJOR": "254"}

    @property
    def device_links(self) -> Any:  # pyudev yields them anew at each access
        return iter(["/dev/disk/by-id/dm-uuid-mpath-3600", "/dev/mapper/mpatha", "/dev/dm-0x"])


class FakeMonitor:
    def __init__(self, events: Optional[List[Any]] = None, buffer_error: bool = False) -> None:
        self.events = list(events or [])
        self.filters: List[str] = []
        self.started = False
        self.buffer_error = buffer_error
        self.polls: List[Optional[float]] = []

    def filter_by(self, subsystem: str) -> None:
        self.filters.append(subsystem)

    def set_receive_buffer_size(self, size: int) -> None:
        if self.buffer_error:
            raise PermissionError(1, "Operation not permitted")

    def start(self) -> None:
        self.started = True

    def poll(self, timeout: Optional[float] = None) -> Any:
        self.polls.append(timeout)
        return self.events.pop(0) if self.events else None


class FakePyudev:
    __version__ = "0.24.9"

    def __init__(self, monitor: Optional[FakeMonitor] = None, fail: Optional[BaseException] = None) -> None:
        self.monitor = monitor or FakeMonitor()
        self.fail = fail
        self.devices: Dict[str, Any] = {}
        module = self

        class Context:
            def __init__(self) -> None:
                if module.fail is not None:
                    raise module.fail

        class Monitor:
            @staticmethod
            def from_netlink(context: Any, source: str = "udev") -> FakeMonitor:
                assert source == "udev"  # events after udev's rules, never the kernel's raw ones
                return module.monitor

        class Devices:
            @staticmethod
            def from_name(context: Any, subsystem: str, name: str) -> Any:
                assert subsystem == "block"
                found = module.devices.get(name)
                if found is None:
                    raise LookupError(f"no device {name}")
                return found

        self.Context = Context
        self.Monitor = Monitor
        self.Devices = Devices


def control(tmp_path: Path) -> str:
    path = tmp_path / "control"
    path.write_text("", encoding="utf-8")
    return str(path)


def test_pyudev_missing_falls_back_and_says_what_to_install(tmp_path: Path) -> None:
    udev = open_udev(sleep=Sleeps(), udev_control=control(tmp_path), import_error="No module named 'pyudev'")
    assert udev.method == SYSFS_POLL
    assert "pyudev is not installed" in udev.reason and "No module named 'pyudev'" in udev.reason
    assert "python3-pyudev" in udev.reason


def test_a_monitor_that_cannot_be_opened_falls_back_with_the_error(tmp_path: Path) -> None:
    fake = FakePyudev(fail=OSError(97, "Address family not supported by protocol"))
    udev = open_udev(sleep=Sleeps(), udev_control=control(tmp_path), pyudev_module=fake)
    assert udev.method == SYSFS_POLL
    assert "could not be opened (OSError:" in udev.reason and "Address family not supported" in udev.reason


def test_the_monitor_is_filtered_started_and_named(tmp_path: Path) -> None:
    fake = FakePyudev(monitor=FakeMonitor(buffer_error=True))  # no CAP_NET_ADMIN: default buffer
    udev = open_udev(sleep=Sleeps(), udev_control=control(tmp_path), pyudev_module=fake)
    assert isinstance(udev, UdevMonitor)
    assert udev.method == UDEV_EVENTS
    assert fake.monitor.filters == ["block", "scsi"]
    assert fake.monitor.started is True
    assert udev.reason == "pyudev 0.24.9: a netlink monitor of block, scsi events"
    assert udev.to_result()["wait_method"] == "udev-events"


# ---------------------------------------------------------------------------------------------------------
# the monitor


def monitor_udev(tmp_path: Path, events: List[Any]) -> UdevMonitor:
    fake = FakePyudev(monitor=FakeMonitor(events=events))
    fake.devices = {"dm-0": FakeDevice(), "sdb": FakeDevice(initialized=False)}
    udev = open_udev(sleep=Sleeps(), udev_control=control(tmp_path), pyudev_module=fake)
    assert isinstance(udev, UdevMonitor)
    return udev


def test_queued_events_end_a_pause_at_once_and_are_drained(tmp_path: Path) -> None:
    udev = monitor_udev(tmp_path, events=["add sdb", "change sdb", "add dm-0"])
    monitor = udev._monitor
    udev.pause(5.0)
    assert monitor.polls == [0, 0, 0, 0]  # three queued events read without blocking, then an empty read
    assert udev.events == 1


def test_a_pause_blocks_on_the_monitor_until_its_interval(tmp_path: Path) -> None:
    udev = monitor_udev(tmp_path, events=[])
    monitor = udev._monitor
    udev.pause(0.5)
    assert monitor.polls == [0, 0.5]
    assert udev.events == 0
    monitor.events.append("add sdc")
    udev.pause(0.5)  # an event that queued since: read without blocking
    assert udev.events == 1


def test_readiness_and_properties_come_from_pyudev(tmp_path: Path) -> None:
    udev = monitor_udev(tmp_path, events=[])
    assert udev.ready("dm-0") is True
    assert udev.ready("sdb") is False  # udev has not finished with it
    assert udev.ready("sdq") is False  # gone (pyudev raises)
    assert udev.properties("sdb") is None
    assert udev.properties("sdq") is None
    assert udev.properties("dm-0") == {
        "links": ["/dev/disk/by-id/dm-uuid-mpath-3600", "/dev/mapper/mpatha"],
        "dm_name": "mpatha",
        "dm_uuid": "mpath-3600",
    }
    assert udev.map_ready("dm-0", "mpath-3600") is True
    assert udev.map_ready("sdb", "mpath-3600") is False
    udev.close()
    udev.pause(0.0)  # a closed monitor never wakes anything
    assert udev.events == 0


# ---------------------------------------------------------------------------------------------------------
# the host and the waits


class LaggingUdev(Udev):
    """udev that finishes with each block device ``lag`` seconds after it was first asked about it."""

    method = UDEV_EVENTS

    def __init__(self, clock: Any, lag: float) -> None:
        super().__init__("lagging test udev", sleep=clock.sleep, udev_data=None)
        self.clock = clock
        self.lag = lag
        self.first_seen: Dict[str, float] = {}
        self.asked: List[str] = []
        self.uuids: List[str] = []

    def pause(self, seconds: float) -> None:
        self.events += 1
        self.clock.sleep(seconds)

    def ready(self, name: str) -> bool:
        self.asked.append(name)
        since = self.first_seen.setdefault(name, self.clock())
        return self.clock() - since >= self.lag

    def map_ready(self, name: str, uuid: str) -> bool:
        self.uuids.append(uuid)
        return self.ready(name)

    def properties(self, name: str) -> Optional[Dict[str, Any]]:
        return {"links": [f"/dev/disk/by-id/test-{name}"]} if self.ready(name) else None


def test_host_without_udev_sleeps_and_says_so(tmp_path: Path) -> None:
    sleeps = Sleeps()
    host = Host(runner=ScriptedRunner(), sleep=sleeps)
    host.pause(0.3)
    assert sleeps.calls == [0.3]
    assert host.udev_ready("sdb") is True
    assert host.udev_properties("sdb") is None
    assert host.wait_info()["wait_method"] == "sysfs-poll"
    with_udev = dataclasses.replace(host, udev=Udev("why", sleep=sleeps, udev_data=None))
    with_udev.pause(0.7)
    assert sleeps.calls == [0.3, 0.7]
    assert with_udev.udev_properties(None) is None
    assert with_udev.wait_info() == {"wait_method": "sysfs-poll", "wait_method_reason": "why"}


def world(tmp_path: Path) -> FakeHost:
    return FakeHost(
        tmp_path,
        luns={IQN: {n: wwid_of(n) for n in range(4)}},
        portals={"127.0.0.1:3260": [IQN], "127.0.0.2:3260": [IQN]},
    )


def test_the_attach_waits_until_udev_has_processed_the_paths_and_the_map(tmp_path: Path) -> None:
    fake = world(tmp_path)
    udev = LaggingUdev(fake.clock, lag=3.0)
    host = dataclasses.replace(fake.host(), udev=udev)
    request = attach.build_request(
        {"target": IQN, "portals": ["127.0.0.1", "127.0.0.2"], "lun": "1", "timeout": 20, "state": "present"},
        resolver=lambda name: [name],
    )
    outcome = attach.attach(host, request, check=False, timings={})
    assert outcome.error is None, outcome.error
    result = outcome.result
    assert result["wait_method"] == "udev-events"
    assert result["wait_method_reason"] == "lagging test udev"
    lun = result["luns"][0]
    names = [device["name"] for device in lun["devices"]]
    assert len(names) == 2
    for device in lun["devices"]:  # read once udev was done with them
        assert device["udev"] == {"links": [f"/dev/disk/by-id/test-{device['name']}"]}
    dm = lun["dm"]
    assert dm["udev"] == {"links": [f"/dev/disk/by-id/test-{dm['dm']}"]}
    assert set(names) | {dm["dm"]} <= set(udev.asked)
    assert udev.uuids and set(udev.uuids) == {dm["uuid"]}  # the map was awaited with its table loaded
    # the waits paused on the udev source (not a plain sleep) until each device was 3 s old for udev
    assert udev.events >= 2
    assert result["timings"]["scan"] >= 3.0


def test_the_scan_wait_ends_at_the_deadline_without_failing_when_only_udev_lags(tmp_path: Path) -> None:
    fake = world(tmp_path)
    sessions = [
        {"sid": 1, "host": 2, "targetname": IQN, "address": "127.0.0.1"},
        {"sid": 2, "host": 3, "targetname": IQN, "address": "127.0.0.2"},
    ]
    fake.sessions.extend(sessions)
    fake.rebuild()
    host = dataclasses.replace(fake.host(), udev=LaggingUdev(fake.clock, lag=1000.0))
    request = scan.build_request(
        hctl=None,
        target=IQN,
        portals=["127.0.0.1", "127.0.0.2"],
        luns=[2],
        lun_addressing="peripheral",
        allow_wildcard=False,
        refresh=False,
        resolver=lambda name: [name],
    )
    plan = scan.plan_scan(request=request, snapshot=host.snapshot())
    writes = scan.apply_plan(plan=plan, host=host)
    start = fake.clock()
    after, waited = scan.wait_for_devices(plan=plan, host=host, timeout=5.0, scanned=writes)
    assert waited == pytest.approx(5.0)
    assert fake.clock() - start == pytest.approx(5.0)
    assert scan.missing_items(plan=plan, snapshot=after) == ()
    summary = scan.summarize(plan=plan, before=after, after=after, host=host)
    assert [device["udev"] for device in summary["devices"]] == [None, None]  # udev never finished


def test_the_host_opens_its_udev_source_only_at_the_first_write_or_when_asked(tmp_path: Path) -> None:
    opened: List[str] = []
    written: List[str] = []
    sleeps = Sleeps()
    root = sysfs_with(tmp_path, sdb="8:16")
    data = tmp_path / "udev-data"
    data.mkdir()
    (data / "b8:16").write_text(DB, encoding="utf-8")

    def opener() -> Udev:
        opened.append("monitor")
        return Udev("the opened source", sleep=sleeps, udev_data=None)

    host = Host(
        runner=ScriptedRunner(),
        sysfs_root=str(root),
        sleep=sleeps,
        writer=lambda path, text: written.append(path),
        udev_opener=opener,
        udev_reader=lambda: Udev("reader", sleep=sleeps, sysfs_root=str(root), udev_data=str(data)),
    )
    # a run that writes nothing (facts, check mode, an attach of what is attached) opens nothing...
    host.pause(0.1)
    assert host.udev_ready("sdc") is True
    assert host.udev_map_ready("dm-0", "mpath-x") is True
    assert host.wait_info() == {
        "wait_method": "sysfs-poll",
        "wait_method_reason": "nothing was written to sysfs in this run, so no udev monitor was opened",
    }
    # ...and still reports what udev made of the devices it names, from udev's database
    props = host.udev_properties("sdb")
    assert props is not None and props["id_serial"] == "36001405aaaa"
    assert opened == []
    host.write("/sys/class/scsi_host/host2/scan", "0 0 1")
    host.write("/sys/class/scsi_host/host3/scan", "0 0 1")
    host.start_udev()
    assert opened == ["monitor"]  # once, before the first write
    assert written == ["/sys/class/scsi_host/host2/scan", "/sys/class/scsi_host/host3/scan"]
    assert host.wait_info()["wait_method_reason"] == "the opened source"
    assert host.udev_properties("sdb") is None  # the opened source (no udevd here) has none


def test_the_reader_without_udevd_reads_nothing(tmp_path: Path) -> None:
    reader = udev_reader(sleep=Sleeps(), udev_control=str(tmp_path / "none"))
    assert reader.udev_data is None
    assert "udevd is not running" in reader.reason
    running = udev_reader(sleep=Sleeps(), udev_control=control(tmp_path), udev_data=str(tmp_path))
    assert running.udev_data == str(tmp_path)
    assert running.method == SYSFS_POLL


def test_open_udev_imports_pyudev_itself_when_no_fake_is_given(tmp_path: Path) -> None:
    udev = open_udev(sleep=Sleeps(), udev_control=control(tmp_path))
    # the controller's venv has pyudev: a monitor opens here only with netlink and libudev, else the fallback
    # names why; either way the source is usable
    assert udev.method in (UDEV_EVENTS, SYSFS_POLL)
    assert udev.reason
    udev.close()


# ---------------------------------------------------------------------------------------------------------
# the deferred source: pyudev only for a wait that has to pause


def test_the_deferred_source_opens_the_monitor_at_the_first_pause_only(tmp_path: Path) -> None:
    root = sysfs_with(tmp_path, sdb="8:16", sdc="8:32")
    data = tmp_path / "udev-data"
    data.mkdir()
    (data / "b8:16").write_text(DB, encoding="utf-8")
    fake = FakePyudev(monitor=FakeMonitor(events=["add sdc"]))
    fake.devices = {"sdc": FakeDevice()}
    opened: List[str] = []

    def opener() -> Udev:
        opened.append("pyudev")
        return open_udev(sleep=Sleeps(), sysfs_root=str(root), udev_control=control(tmp_path), pyudev_module=fake)

    udev = deferred_udev(
        sleep=Sleeps(),
        sysfs_root=str(root),
        udev_control=control(tmp_path),
        udev_data=str(data),
        opener=opener,
        grace=0.0,
    )
    assert isinstance(udev, DeferredUdev)
    # before any pause: udev's database files, no import, no monitor
    assert udev.ready("sdb") is True and udev.ready("sdc") is False
    props = udev.properties("sdb")
    assert props is not None and props["id_serial"] == "36001405aaaa"
    assert udev.map_ready("sdb", "mpath-x") is False
    assert opened == [] and udev.method == SYSFS_POLL and "no udev monitor was opened" in udev.reason
    udev.close()  # nothing opened: nothing to close
    # the first pause opens the monitor and returns at once: the wait checks again with the monitor open
    udev.pause(5.0)
    assert opened == ["pyudev"] and fake.monitor.polls == []
    assert udev.method == UDEV_EVENTS and udev.to_result()["wait_method"] == "udev-events"
    assert udev.ready("sdc") is True and udev.ready("sdb") is False  # now pyudev's view
    assert udev.properties("sdc") is not None and udev.map_ready("sdc", "mpath-3600") is True
    udev.pause(5.0)  # the event queued since the monitor opened wakes this one
    assert udev.events == 1 and opened == ["pyudev"]
    udev.close()


def test_without_udevd_the_deferred_source_is_the_fallback_at_once(tmp_path: Path) -> None:
    udev = deferred_udev(sleep=Sleeps(), udev_control=str(tmp_path / "none"))
    assert not isinstance(udev, DeferredUdev)
    assert udev.udev_data is None and "udevd is not running" in udev.reason


def test_the_deferred_source_opens_open_udev_by_default(tmp_path: Path) -> None:
    sleeps = Sleeps()
    udev = deferred_udev(sleep=sleeps, udev_control=control(tmp_path), udev_data=str(tmp_path), grace=0.0)
    assert isinstance(udev, DeferredUdev)
    udev.pause(0.1)
    assert udev.opened is not None and udev.method in (UDEV_EVENTS, SYSFS_POLL)
    udev.pause(0.1)
    udev.close()


def test_a_host_run_imports_pyudev_only_for_a_wait_that_has_to_pause(tmp_path: Path) -> None:
    """A detach (every wait ends at its first check) never opens the monitor; a scan whose device udev has not
    processed yet opens it at its first pause, and the profile says which waits woke on events."""
    opened: List[str] = []
    fake = FakePyudev(monitor=FakeMonitor(events=["add sdb"]))

    def opener() -> Udev:
        opened.append("pyudev")
        return open_udev(sleep=Sleeps(), udev_control=control(tmp_path), pyudev_module=fake)

    runner = ScriptedRunner()
    sleeps = Sleeps()
    udev_sleeps = Sleeps()
    host = Host(
        runner=runner,
        sysfs_root=str(tmp_path),
        sleep=sleeps,
        writer=lambda path, text: None,
        udev_opener=lambda: deferred_udev(
            sleep=udev_sleeps, udev_control=control(tmp_path), udev_data=str(tmp_path), opener=opener, grace=0.3
        ),
    )
    host.write("/sys/class/scsi_device/2:0:0:1/device/delete", "1")
    assert host.wait(lambda: True, timeout=5, describe="sdb to leave sysfs") is True
    assert opened == [] and host.wait_info()["wait_method"] == "sysfs-poll"
    # a wait no udev event can end (multipathd's state) sleeps its interval and opens nothing
    dropped = iter([False, True])
    assert host.wait(lambda: next(dropped), timeout=5, describe="multipathd to drop sdb", udev_events=False)
    assert opened == [] and sleeps.calls == [0.1]
    # a short wait polls udev's database at 0.1 s within the grace (0.3 s here) and opens nothing
    answers = iter([False, False, True])
    assert host.wait(lambda: next(answers), timeout=5, describe="block devices") is True
    assert opened == [] and udev_sleeps.calls == [0.1, 0.1]
    # a wait that outlasts the grace opens the monitor once, checks again at once, then sleeps on events
    answers = iter([False, False, False, True])
    assert host.wait(lambda: next(answers), timeout=5, describe="multipath maps") is True
    assert opened == ["pyudev"] and host.wait_info()["wait_method"] == "udev-events"
    assert udev_sleeps.calls == pytest.approx([0.1, 0.1, 0.1])  # the last 0.1 s of the grace, then the monitor
    steps = runner.profile.to_result()["steps"]
    assert [(s["what"], s["method"], s["ended"]) for s in steps] == [
        ("sdb to leave sysfs", "sysfs-poll", "ready"),
        ("multipathd to drop sdb", "sysfs-poll", "ready"),
        ("block devices", "sysfs-poll", "ready"),
        ("multipath maps", "udev-events", "ready"),
    ]
