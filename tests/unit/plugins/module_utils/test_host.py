# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""_host: the host context (fake sysfs, the one sysfs writer, the mount table, waits on the host's clock)."""

from __future__ import annotations

import errno
import os
import socket
import time
from pathlib import Path
from typing import List, Optional, Set

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _host
from ansible_collections.lunsafe.san.plugins.module_utils._errors import LunsafeError, WaitTimeout
from ansible_collections.lunsafe.san.plugins.module_utils._host import (
    Host,
    WriteTimeout,
    system_host,
    tcp_reachable,
    write_attribute,
)
from ansible_collections.lunsafe.san.plugins.module_utils._portal import getaddrinfo_addresses
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import ScriptedRunner
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.sysfs_tree import build_sysfs

IQN = "iqn.2003-01.org.lunsafe.test:array"


def test_write_attribute_writes_an_existing_file(tmp_path: Path) -> None:
    scan = tmp_path / "scan"
    scan.write_text("")
    write_attribute(str(scan), "0 0 1")
    assert scan.read_text() == "0 0 1"


def test_write_attribute_never_creates_a_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_attribute(str(tmp_path / "scan"), "0 0 1")
    assert not (tmp_path / "scan").exists()


def test_write_attribute_reports_the_kernels_refusal(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError) as refused:
        write_attribute(str(tmp_path), "1")
    assert refused.value.errno == errno.EISDIR and refused.value.filename == str(tmp_path)


def test_write_attribute_gives_up_on_a_write_that_does_not_return(tmp_path: Path) -> None:
    # a FIFO nobody reads blocks the writer's open(2), as the kernel blocks a rescan of a port that is silent
    fifo = tmp_path / "state"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(WriteTimeout) as late:
        write_attribute(str(fifo), "running\n", timeout=0.5)
    waited = time.monotonic() - started
    assert late.value.errno == errno.ETIMEDOUT and 0.5 <= waited < 10
    assert f"writing 'running' to {fifo} within 0.5s" in str(late.value)
    # the child still waits in the kernel; a reader lets it finish, and it wrote what it was given
    reader = os.open(fifo, os.O_RDONLY)
    try:
        assert os.read(reader, 64) == b"running\n"
    finally:
        os.close(reader)


def test_the_default_writer_is_write_attribute(tmp_path: Path) -> None:
    host = Host(runner=ScriptedRunner(), sysfs_root=str(tmp_path))
    with pytest.raises(FileNotFoundError):
        host.write(str(tmp_path / "delete"), "1")
    assert not (tmp_path / "delete").exists()


def test_write_goes_through_the_given_writer(tmp_path: Path) -> None:
    seen: List[str] = []
    host = Host(runner=ScriptedRunner(), writer=lambda path, text: seen.append(f"{path}={text}"))
    host.write("/sys/class/scsi_host/host2/scan", "0 0 1")
    assert seen == ["/sys/class/scsi_host/host2/scan=0 0 1"]


def test_snapshot_reads_the_hosts_sysfs_root(tmp_path: Path) -> None:
    root = build_sysfs(
        tmp_path,
        sessions=[{"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10"}],
        devices=[{"hctl": "2:0:0:1", "sid": 1, "name": "sdb", "wwid": "naa.6001405abcdef"}],
    )
    host = Host(runner=ScriptedRunner(), sysfs_root=str(root))
    assert [session.targetname for session in host.snapshot().sessions] == [IQN]
    assert [device.name for device in host.snapshot(device_detail=False).devices] == ["sdb"]


def test_mountinfo_is_the_text_and_an_unreadable_table_fails(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("22 1 254:0 / / rw - ext4 /dev/vda rw\n")
    assert Host(runner=ScriptedRunner(), mountinfo_path=str(mountinfo)).mountinfo() == mountinfo.read_text()
    with pytest.raises(LunsafeError, match=r"cannot read the mount table .*none"):
        Host(runner=ScriptedRunner(), mountinfo_path=str(tmp_path / "none")).mountinfo()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: List[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_polls_on_the_hosts_clock_until_true() -> None:
    clock = Clock()
    host = Host(runner=ScriptedRunner(), clock=clock, sleep=clock.sleep)
    answers = iter([None, None, "ready"])
    assert host.wait(lambda: next(answers), timeout=10, describe="it") == "ready"
    assert clock.sleeps == [pytest.approx(0.1), pytest.approx(0.15)]


def test_wait_times_out_at_the_deadline_naming_what_it_waited_for() -> None:
    clock = Clock()
    host = Host(runner=ScriptedRunner(), clock=clock, sleep=clock.sleep)
    last: Optional[str] = None
    with pytest.raises(WaitTimeout, match="sdb to leave") as info:
        host.wait(lambda: last, timeout=3, describe="sdb to leave", interval=1, backoff=1)
    assert clock.now == pytest.approx(3)
    assert info.value.timeout == 3


@pytest.mark.parametrize(
    ("installed", "expected"),
    [
        ({"/lib/udev/scsi_id", "/sbin/scsi_id"}, "/lib/udev/scsi_id"),
        ({"/usr/lib/udev/scsi_id"}, "/usr/lib/udev/scsi_id"),
        (set(), None),
    ],
)
def test_system_host_is_the_real_host(
    monkeypatch: pytest.MonkeyPatch, installed: Set[str], expected: Optional[str]
) -> None:
    monkeypatch.setattr(_host.os, "access", lambda path, mode: path in installed)
    runner = ScriptedRunner()
    host = system_host(runner)
    assert host.runner is runner
    assert (host.sysfs_root, host.proc_root, host.mountinfo_path, host.wwids_file) == (
        "/sys",
        "/proc",
        "/proc/self/mountinfo",
        "/etc/multipath/wwids",
    )
    assert host.scsi_id == expected
    assert (host.writer, host.clock, host.sleep, host.resolver) == (
        write_attribute,
        time.monotonic,
        time.sleep,
        getaddrinfo_addresses,
    )


def test_tcp_reachable_tells_a_listening_port_from_a_closed_one() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert tcp_reachable("127.0.0.1", port, 2.0) is True
    assert tcp_reachable("127.0.0.1", port, 2.0) is False  # closed now: refused at once
