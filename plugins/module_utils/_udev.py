# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""udev on the managed node: what wakes a wait, when udev is done with a device, and its udev properties.

Two sources, one interface (:class:`Udev`):

``udev-events`` (:class:`UdevMonitor`)
    pyudev imports, udevd runs and a netlink monitor of the ``block`` and ``scsi`` subsystems opened. The
    monitor is opened when the module starts, before anything is written to sysfs, so no event of a scan
    is missed: events queue in the socket until a wait reads them. A wait sleeps until the next event (or
    its poll interval) instead of for a fixed interval, then checks sysfs again. Properties come from
    pyudev's device database.

``sysfs-poll`` (:class:`Udev`, the fallback)
    pyudev is not installed, the monitor cannot be opened (no netlink in a container, no libudev) or udevd
    is not running. Waits sleep their poll interval. Properties come from the udev database file
    ``/run/udev/data/b<major>:<minor>`` (``S:`` links, ``E:`` properties), so both sources give the same
    results; without udevd there are none.

What a run opens is a :class:`DeferredUdev` (:func:`deferred_udev`): it reads udev's database files like the
fallback, and its waits poll them every 0.1 s for the first 1.5 s (over the run's waits); only a pause after
that imports pyudev and opens the monitor (then returns at once, so that the wait checks again right after
the monitor opened: what happened before is in sysfs and udev's database, what happens after wakes the next
pause). A run whose waits end sooner (a detach: the kernel deletes a device inside the write; an attach of a
few devices that udev handles in a second) never pays for the import (0.8-1.0 s under emulation).

Either way a block device counts as *ready* once udev has processed it (it is in udev's database: its
links exist and its properties are final), and a multipath map once udev has processed it with its table
loaded (its ``DM_UUID`` and ``dm-uuid-`` link are there: udev sees a map first before its table is loaded),
which is what the next task of a playbook needs; without udevd every device is ready at once.
:attr:`Udev.method` and :attr:`Udev.reason` say which source ran and why.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Dict, List, Optional, Tuple


def _import_pyudev() -> Tuple[Any, Optional[str]]:
    """pyudev and None, or None and why it does not import. Imported only when a run opens a monitor (its
    import costs most of a second under emulation): read-only and check-mode runs never pay for it."""
    try:
        import pyudev  # noqa: PLC0415 - deliberately lazy, see the docstring
    except ImportError as exc:
        return None, str(exc)
    return pyudev, None


__all__ = [
    "SYSFS_POLL",
    "UDEV_EVENTS",
    "DeferredUdev",
    "Udev",
    "UdevMonitor",
    "deferred_udev",
    "open_udev",
    "parse_udev_db",
    "udev_reader",
]

UDEV_EVENTS = "udev-events"
SYSFS_POLL = "sysfs-poll"

#: The subsystems whose events can end a wait: SCSI devices, their block devices and dm maps.
SUBSYSTEMS = ("block", "scsi")
#: Present while udevd runs (its control socket).
DEFAULT_UDEV_CONTROL = "/run/udev/control"
#: udev's database of processed devices, one file per device (``b<major>:<minor>`` for block devices).
DEFAULT_UDEV_DATA = "/run/udev/data"
#: Events that may queue up between two reads of the monitor (a scan of many LUNs sends several per LUN).
RECEIVE_BUFFER = 16 * 1024 * 1024
#: Properties reported (when udev has them), under their lower-case names.
PROPERTIES = ("ID_WWN", "ID_SERIAL", "ID_PATH", "DM_NAME", "DM_UUID")
_LINK_DIRS = ("/dev/disk/by-id/", "/dev/disk/by-path/", "/dev/mapper/")


def parse_udev_db(text: str) -> Dict[str, Any]:
    """``links`` (absolute, sorted) and ``properties`` from the text of one udev database file."""
    links: List[str] = []
    properties: Dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if key == "S":
            links.append("/dev/" + value)
        elif key == "E":
            name, eq, prop = value.partition("=")
            if eq:
                properties[name] = prop
    return {"links": sorted(links), "properties": properties}


def _report(links: List[str], properties: Dict[str, str]) -> Dict[str, Any]:
    """The documented ``udev`` entry: persistent links and the identity properties udev derived."""
    out: Dict[str, Any] = {"links": sorted(link for link in links if link.startswith(_LINK_DIRS))}
    for name in PROPERTIES:
        if properties.get(name):
            out[name.lower()] = properties[name]
    return out


class Udev:
    """No event source: waits sleep their interval; readiness and properties come from udev's database
    files. Also the base of :class:`UdevMonitor`."""

    method = SYSFS_POLL

    def __init__(
        self,
        reason: str,
        *,
        sleep: Callable[[float], None],
        sysfs_root: str = "/sys",
        udev_data: Optional[str] = DEFAULT_UDEV_DATA,
    ) -> None:
        self.reason = reason
        self._sleep = sleep
        self.sysfs_root = sysfs_root
        self.udev_data = udev_data  # None: udevd does not run, nothing is waited for and no property is read
        self.events = 0  # events that woke a wait

    def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when an event arrives (only :class:`UdevMonitor` has events)."""
        self._sleep(seconds)

    def _db_text(self, name: str) -> Optional[str]:
        if self.udev_data is None:
            return None
        try:
            with open(os.path.join(self.sysfs_root, "class", "block", name, "dev"), encoding="ascii") as handle:
                number = handle.read().strip()
            with open(os.path.join(self.udev_data, "b" + number), encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return None

    def ready(self, name: str) -> bool:
        """Whether udev has processed block device ``name`` (always, when udevd does not run)."""
        return self.udev_data is None or self._db_text(name) is not None

    def map_ready(self, name: str, uuid: str) -> bool:
        """Whether udev has processed device-mapper device ``name`` with its table loaded: its ``DM_UUID`` is
        ``uuid`` and its ``dm-uuid`` link exists (always, when udevd does not run). A map's first event comes
        before its table is loaded, so a database entry alone does not mean that its links exist."""
        if self.udev_data is None:
            return True
        found = self.properties(name)
        return (
            found is not None and found.get("dm_uuid") == uuid and f"/dev/disk/by-id/dm-uuid-{uuid}" in found["links"]
        )

    def properties(self, name: str) -> Optional[Dict[str, Any]]:
        """udev's links and identity properties of block device ``name``; None when udev has none."""
        text = self._db_text(name)
        if text is None:
            return None
        parsed = parse_udev_db(text)
        return _report(parsed["links"], parsed["properties"])

    def close(self) -> None:
        """Nothing to release."""

    def to_result(self) -> Dict[str, Any]:
        return {"wait_method": self.method, "wait_method_reason": self.reason}


class UdevMonitor(Udev):
    """pyudev's netlink monitor of udev's events: a wait wakes when udev has processed something."""

    method = UDEV_EVENTS

    def __init__(self, module: Any, context: Any, monitor: Any, reason: str, **kwargs: Any) -> None:
        super().__init__(reason, **kwargs)
        self._module = module  # pyudev (a fake in unit tests)
        self._context = context
        self._monitor = monitor

    def pause(self, seconds: float) -> None:
        """Return at the first event of the monitored subsystems, or after ``seconds``. Events already
        queued (a scan's events that arrived while sysfs was read) end the pause at once."""
        woke = False
        while self._monitor.poll(timeout=0) is not None:  # drain what queued since the last check
            woke = True
        if not woke and seconds > 0:
            woke = self._monitor.poll(timeout=seconds) is not None
        if woke:
            self.events += 1

    def _device(self, name: str) -> Any:
        try:
            return self._module.Devices.from_name(self._context, "block", name)
        except Exception:  # DeviceNotFoundByNameError (gone), or a device half-created in sysfs
            return None

    def ready(self, name: str) -> bool:
        device = self._device(name)
        return device is not None and bool(device.is_initialized)

    def properties(self, name: str) -> Optional[Dict[str, Any]]:
        device = self._device(name)
        if device is None or not device.is_initialized:
            return None
        return _report([str(link) for link in device.device_links], dict(device.properties))

    def close(self) -> None:
        """Drop the monitor: pyudev closes its socket when the last reference goes."""
        self._monitor = _Closed()


class _Closed:
    """A monitor after :meth:`UdevMonitor.close`: no event ever arrives."""

    @staticmethod
    def poll(timeout: Optional[float] = None) -> None:
        return None


def open_udev(
    *,
    sleep: Callable[[float], None],
    sysfs_root: str = "/sys",
    udev_control: str = DEFAULT_UDEV_CONTROL,
    udev_data: str = DEFAULT_UDEV_DATA,
    pyudev_module: Any = None,
    import_error: Optional[str] = None,
) -> Udev:
    """The best source this node has: a started pyudev monitor, else the fallback with the reason.

    ``pyudev_module`` and ``import_error`` default to importing pyudev now (tests pass fakes).
    """
    if not os.path.exists(udev_control):
        return Udev(
            f"udevd is not running ({udev_control} does not exist): waits poll sysfs and no device waits for udev",
            sleep=sleep,
            sysfs_root=sysfs_root,
            udev_data=None,
        )
    module, error = (pyudev_module, import_error)
    if module is None and error is None:
        module, error = _import_pyudev()
    if module is None:
        return Udev(
            f"pyudev is not installed for this Python ({error or 'no module named pyudev'}); install python3-pyudev "
            "for event-driven waits",
            sleep=sleep,
            sysfs_root=sysfs_root,
            udev_data=udev_data,
        )
    try:
        context = module.Context()
        monitor = module.Monitor.from_netlink(context, source="udev")
        for subsystem in SUBSYSTEMS:
            monitor.filter_by(subsystem)
        with contextlib.suppress(Exception):  # needs CAP_NET_ADMIN; the default buffer still works for a few LUNs
            monitor.set_receive_buffer_size(RECEIVE_BUFFER)
        monitor.start()
    except Exception as exc:  # no libudev, no netlink (containers), EPERM: all mean "poll instead"
        return Udev(
            f"the udev monitor could not be opened ({type(exc).__name__}: {exc}): waits poll sysfs",
            sleep=sleep,
            sysfs_root=sysfs_root,
            udev_data=udev_data,
        )
    return UdevMonitor(
        module,
        context,
        monitor,
        f"pyudev {getattr(module, '__version__', '?')}: a netlink monitor of {', '.join(SUBSYSTEMS)} events",
        sleep=sleep,
        sysfs_root=sysfs_root,
        udev_data=udev_data,
    )


def udev_reader(
    *,
    sleep: Callable[[float], None],
    sysfs_root: str = "/sys",
    udev_control: str = DEFAULT_UDEV_CONTROL,
    udev_data: str = DEFAULT_UDEV_DATA,
) -> Udev:
    """Readiness and properties from udev's database files, without pyudev and without a monitor: for a run
    that wrote nothing to sysfs (so opened no monitor) but reports devices that exist."""
    running = os.path.exists(udev_control)
    return Udev(
        "nothing was written to sysfs in this run, so no udev monitor was opened"
        + ("" if running else " (and udevd is not running)"),
        sleep=sleep,
        sysfs_root=sysfs_root,
        udev_data=udev_data if running else None,
    )


DEFERRED_GRACE = 1.5  # seconds a wait polls udev's database before the monitor is opened
DEFERRED_POLL = 0.1  # the interval of that polling


class DeferredUdev(Udev):
    """udevd runs; the event source is opened only by a wait that lasts (pyudev's import costs most of a second
    under emulation, more than udev usually needs for a few new devices). Until then readiness and properties
    come from udev's database files, which is where pyudev reads them too; afterwards from the opened source."""

    def __init__(
        self,
        opener: Callable[[], Udev],
        *,
        sleep: Callable[[float], None],
        sysfs_root: str,
        udev_data: str,
        grace: float = DEFERRED_GRACE,
        poll: float = DEFERRED_POLL,
    ) -> None:
        super().__init__(
            f"no wait of this run lasted over {grace:g}s, so no udev monitor was opened (pyudev not imported): "
            "waits polled sysfs and udev's database",
            sleep=sleep,
            sysfs_root=sysfs_root,
            udev_data=udev_data,
        )
        self._opener = opener
        self.opened: Optional[Udev] = None
        self.grace = grace
        self.poll = poll
        self.polled = 0.0  # seconds slept polling, over the run's waits

    def pause(self, seconds: float) -> None:
        """Within the grace: sleep a short poll interval (every check reads udev's database again, so nothing
        is missed). After it, the first pause opens the source and returns at once (the wait checks again, now
        with the monitor open, so no event can be missed); later pauses are the source's."""
        if self.opened is None and self.polled < self.grace:
            step = min(seconds, self.poll, self.grace - self.polled)
            self._sleep(step)
            self.polled += step
            return
        if self.opened is None:
            self.opened = self._opener()
            self.method = self.opened.method
            self.reason = self.opened.reason
            return
        self.opened.pause(seconds)
        self.events = self.opened.events

    def ready(self, name: str) -> bool:
        return super().ready(name) if self.opened is None else self.opened.ready(name)

    def map_ready(self, name: str, uuid: str) -> bool:
        return super().map_ready(name, uuid) if self.opened is None else self.opened.map_ready(name, uuid)

    def properties(self, name: str) -> Optional[Dict[str, Any]]:
        return super().properties(name) if self.opened is None else self.opened.properties(name)

    def close(self) -> None:
        if self.opened is not None:
            self.opened.close()


def deferred_udev(
    *,
    sleep: Callable[[float], None],
    sysfs_root: str = "/sys",
    udev_control: str = DEFAULT_UDEV_CONTROL,
    udev_data: str = DEFAULT_UDEV_DATA,
    opener: Optional[Callable[[], Udev]] = None,
    grace: float = DEFERRED_GRACE,
) -> Udev:
    """What a run that writes to sysfs opens before its first write: without udevd the fallback at once (there
    is nothing to wait for), else a :class:`DeferredUdev` whose first pause calls ``opener`` (default
    :func:`open_udev` with the same arguments) after ``grace`` seconds of polling."""
    if not os.path.exists(udev_control):
        return open_udev(sleep=sleep, sysfs_root=sysfs_root, udev_control=udev_control, udev_data=udev_data)
    return DeferredUdev(
        opener
        or (lambda: open_udev(sleep=sleep, sysfs_root=sysfs_root, udev_control=udev_control, udev_data=udev_data)),
        sleep=sleep,
        sysfs_root=sysfs_root,
        udev_data=udev_data,
        grace=grace,
    )
