# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This module_utils is PRIVATE to lunsafe.san. It may change without notice.

"""The host context every procedure runs over: where sysfs and /proc are, how commands run, how sysfs is
written, how time passes and how names resolve.

Modules build the real one with :func:`system_host`; unit tests build one over a fake sysfs tree in
``tmp_path``, a scripted runner and a fake clock. Nothing in module_utils reads a module global for these.

The one sysfs writer (:meth:`Host.write`) opens an existing attribute for writing and never creates a
file; the one mountinfo reader is :meth:`Host.mountinfo`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import select
import socket
import time
from typing import Any, Callable, Dict, List, Optional, TypeVar, Union

from ansible_collections.lunsafe.san.plugins.module_utils._errors import LunsafeError
from ansible_collections.lunsafe.san.plugins.module_utils._portal import getaddrinfo_addresses
from ansible_collections.lunsafe.san.plugins.module_utils._runner import CommandRunner
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import DEFAULT_SYSFS_ROOT, Snapshot, read_snapshot
from ansible_collections.lunsafe.san.plugins.module_utils._udev import SYSFS_POLL, Udev, deferred_udev, udev_reader
from ansible_collections.lunsafe.san.plugins.module_utils._wait import wait_until

__all__ = ["WRITE_TIMEOUT", "Host", "WriteTimeout", "system_host", "tcp_reachable", "write_attribute"]

T = TypeVar("T")

DEFAULT_MOUNTINFO = "/proc/self/mountinfo"
DEFAULT_WWIDS_FILE = "/etc/multipath/wwids"
DEFAULT_PROC_ROOT = "/proc"
SCSI_ID_CANDIDATES = ("/usr/lib/udev/scsi_id", "/lib/udev/scsi_id", "/sbin/scsi_id")


def tcp_reachable(address: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection to (address, port) opens within ``timeout`` seconds (closed at once)."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


WRITE_TIMEOUT = 120.0  # seconds one sysfs write may take before the run gives up on it


class WriteTimeout(OSError):
    """A sysfs write that did not return within its deadline (errno ETIMEDOUT); the kernel may still do it."""


def _write_in_child(path: str, data: bytes, report: int) -> None:  # pragma: no cover - runs in the child
    """The forked child of :func:`write_attribute`: no descriptor of the parent's but ``report`` (the module's
    stdout must not stay open in a child the kernel may hold for minutes), one write(2), its errno to ``report``
    (0: done), then ``_exit``."""
    code = 0
    try:
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
        try:
            numbers = [int(name) for name in os.listdir("/proc/self/fd")]
        except OSError:  # no /proc: the descriptors a module process has in practice
            numbers = list(range(3, 1024))
        for number in numbers:
            if number > 2 and number != report:
                with contextlib.suppress(OSError):  # the listing's own descriptor, already closed
                    os.close(number)
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as exc:
        code = exc.errno or errno.EIO
    finally:
        try:
            os.write(report, str(code).encode("ascii"))
        finally:
            os._exit(0)


def write_attribute(path: str, text: str, timeout: float = WRITE_TIMEOUT) -> None:
    """Write ``text`` to an existing sysfs attribute in one write(2); never creates a file (no O_CREAT).

    The kernel does some writes inside the write(2) and may block in it for as long as it likes: a scan or a
    rescan waits for SCSI commands to a port that does not answer, and setting an offline device ``running``
    rescans it while SCSI error handling holds the host (seen in the lab: over 300 s in uninterruptible
    sleep, no signal ends it). So the write runs in a forked child and this returns or raises within
    ``timeout`` seconds: :class:`WriteTimeout` names the write; the child is left to the kernel (it holds
    no descriptor of ours). A refused write raises the kernel's error (``FileNotFoundError``, EINVAL, ...).
    """
    data = text.encode("ascii")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its outcome is asserted through the pipe in the unit tests
        os.close(read_end)
        _write_in_child(path, data, write_end)
    os.close(write_end)
    try:
        ready, _w, _x = select.select([read_end], [], [], timeout)
        if not ready:
            raise WriteTimeout(
                errno.ETIMEDOUT,
                f"the kernel did not return from writing '{text.strip()}' to {path} within {timeout:g}s (it is "
                "blocked on the device: SCSI error handling, or a port that does not answer); the write may still "
                "complete",
                path,
            )
        reply = os.read(read_end, 32)
    finally:
        os.close(read_end)
    os.waitpid(pid, 0)  # the child wrote its answer and is exiting
    code = int(reply) if reply.strip().isdigit() else errno.EIO
    if code:
        raise OSError(code, os.strerror(code), path)


@dataclasses.dataclass(frozen=True)
class Host:
    """One managed host as the procedures see it."""

    runner: CommandRunner
    sysfs_root: str = DEFAULT_SYSFS_ROOT
    proc_root: str = DEFAULT_PROC_ROOT
    mountinfo_path: str = DEFAULT_MOUNTINFO
    wwids_file: str = DEFAULT_WWIDS_FILE
    writer: Callable[[str, str], None] = write_attribute
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    resolver: Callable[[str], List[str]] = getaddrinfo_addresses
    connect: Callable[[str, int, float], bool] = tcp_reachable  # does a portal answer TCP at all
    parallel: int = 8  # at most this many commands at once where a step runs one per path (iSCSI logins, logouts)
    scsi_id: Optional[str] = None  # udev's scsi_id, to read a LU's identity from the LU itself
    udev: Optional[Udev] = None  # an open udev source (what wakes waits, says when udev is done with a device)
    # ... or how to open one: right before the run's first sysfs write (Host.write), or when a procedure asks
    # (start_udev) before a command whose events it will wait for. None of both: plain sleeps, no properties.
    udev_opener: Optional[Callable[[], Udev]] = None
    udev_reader: Optional[Callable[[], Udev]] = None  # properties without a monitor (udev's database files)
    _udev_open: List[Udev] = dataclasses.field(default_factory=list, compare=False, repr=False)

    def start_udev(self) -> None:
        """Open the udev source now (once), so that no event of what follows is missed."""
        if self.udev is None and not self._udev_open and self.udev_opener is not None:
            self._udev_open.append(self.udev_opener())

    def _source(self) -> Optional[Udev]:
        return self.udev or (self._udev_open[0] if self._udev_open else None)

    def snapshot(self, *, device_detail: bool = True) -> Snapshot:
        return read_snapshot(sysfs_root=self.sysfs_root, device_detail=device_detail)

    def write(self, path: str, text: str) -> None:
        """The one sysfs writer (scan, delete, rescan, state); the udev source opens before the first write."""
        self.start_udev()
        self.writer(path, text)

    def mountinfo(self) -> str:
        """The text of the mount table. A table that cannot be read fails: a removal must never assume that
        nothing is mounted."""
        try:
            with open(self.mountinfo_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError as exc:
            raise LunsafeError(
                f"cannot read the mount table {self.mountinfo_path} ({exc.strerror or exc}): refusing to decide "
                "whether devices are mounted; is /proc mounted?",
                path=self.mountinfo_path,
            ) from None

    def pause(self, seconds: float) -> None:
        """Sleep between two polls: until the next udev event when a monitor is open, else ``seconds``."""
        source = self._source()
        if source is None:
            self.sleep(seconds)
        else:
            source.pause(seconds)

    def udev_ready(self, name: str) -> bool:
        """Whether udev has processed block device ``name`` (always true without an open udev source)."""
        source = self._source()
        return source is None or source.ready(name)

    def udev_map_ready(self, name: str, uuid: str) -> bool:
        """Whether udev has processed map ``name`` with its table loaded (always true without an open source)."""
        source = self._source()
        return source is None or source.map_ready(name, uuid)

    def udev_properties(self, name: Optional[str]) -> Optional[Dict[str, Any]]:
        """udev's links and identity properties of block device ``name`` (None without them)."""
        if name is None:
            return None
        source = self._source()
        if source is None and self.udev_reader is not None:
            source = self.udev_reader()
        return None if source is None else source.properties(name)

    def wait_info(self) -> Dict[str, str]:
        """``wait_method`` and ``wait_method_reason`` of the results."""
        source = self._source()
        if source is not None:
            return source.to_result()
        if self.udev_opener is not None:
            return {
                "wait_method": "sysfs-poll",
                "wait_method_reason": "nothing was written to sysfs in this run, so no udev monitor was opened",
            }
        return {"wait_method": "sysfs-poll", "wait_method_reason": "no udev source was set up for this host"}

    def _wait_method(self) -> str:
        source = self._source()
        return SYSFS_POLL if source is None else source.method

    def wait(
        self,
        predicate: Callable[[], T],
        *,
        timeout: float,
        describe: Union[str, Callable[[Any], str]],
        interval: float = 0.1,
        backoff: float = 1.5,
        max_interval: float = 1.0,
        udev_events: bool = True,
    ) -> T:
        """:func:`_wait.wait_until` on this host's clock, recorded in the runner's profile with what woke its
        polls (``udev-events`` when a monitor is open, else ``sysfs-poll``). ``udev_events=False`` for a wait
        no udev event can end (multipathd's own state): its pauses sleep their interval and open no monitor."""
        return wait_until(
            predicate,
            timeout=timeout,
            interval=interval,
            backoff=backoff,
            max_interval=max_interval,
            describe=describe,
            clock=self.clock,
            sleep=self.pause if udev_events else self.sleep,
            profile=self.runner.profile,
            method=self._wait_method if udev_events else SYSFS_POLL,
        )


def system_host(runner: CommandRunner) -> Host:
    """The real host: /sys, /proc, the running clock, udev's scsi_id where it is installed, and udev's events
    (a pyudev monitor opened by the first wait that has to pause after the run's first sysfs write, or the
    sysfs-poll fallback)."""
    scsi_id = next((path for path in SCSI_ID_CANDIDATES if os.access(path, os.X_OK)), None)
    return Host(
        runner=runner,
        scsi_id=scsi_id,
        udev_opener=lambda: deferred_udev(sleep=time.sleep),
        udev_reader=lambda: udev_reader(sleep=time.sleep),
    )
