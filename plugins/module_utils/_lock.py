# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""The host-wide attach/detach lock.

Which kind of lock, and why
---------------------------
Linux has two independent kinds of advisory file lock that do NOT exclude each
other on local file systems:
* POSIX record locks, fcntl(F_SETLK) = Python fcntl.lockf() = lockf(3).  Used by
  fasteners.InterProcessLock (its _trylock is fcntl.lockf(f, LOCK_EX | LOCK_NB))
  and therefore by oslo.concurrency external locks (lockutils.InterProcessLock is
  fasteners.InterProcessLock), i.e. by os-brick's
  <lock_path>/os-brick-connect_volume lock held by Nova/Cinder around every
  connect_volume and disconnect_volume.
* BSD locks, flock(2) = Python fcntl.flock() = util-linux flock(1).  Used by shell
  scripts and by most "flock on a lock file" tools.
A plain flock() would therefore run *concurrently* with os-brick on the very file
it names.  The default mode here, "both", takes the POSIX record lock on the whole
file AND the flock, each non-blocking: it excludes os-brick/oslo/fasteners and
flock(1) users alike.  Neither kind ever blocks while holding the other, so two
"both" holders cannot deadlock.  "posix" and "flock" take one kind only.

Caveats, documented for users of the lock_file option:
* the lock file must be on a local file system (/run/lock is tmpfs): on NFS the
  kernel emulates flock() with POSIX locks and "both" would conflict with itself;
* POSIX locks belong to the process: closing *any* descriptor of the file in this
  process drops them, and a second HostLock on the same file in the same process
  would not exclude the first.  Take the lock once per module run;
* the file is opened for append and never written, truncated or removed (removing
  a lock file while someone waits on it breaks the exclusion).  It is created
  with mode 0644, parent directories 0755, when missing; a symlink is refused.

Acquisition is polled (non-blocking attempts) until a monotonic deadline; on
timeout LockTimeout names the file and, from /proc/locks, the holder's pid and
command name (never its arguments, which may hold secrets).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from typing import Any, Callable, List, Optional

from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError, LockTimeout

__all__ = [
    "DEFAULT_LOCK_FILE",
    "LOCK_MODES",
    "HostLock",
    "describe_holders",
    "parse_proc_locks",
]

DEFAULT_LOCK_FILE = "/run/lock/lunsafe-san.lock"
LOCK_MODES = ("both", "posix", "flock")
_FILE_MODE = 0o644
_DIR_MODE = 0o755
_BUSY_ERRNOS = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)


def parse_proc_locks(text: str, *, major: int, minor: int, inode: int) -> List[dict]:
    """Entries of /proc/locks for one file: ``[{"kind": "POSIX", "pid": 123}, ...]``.

    Line format: ``1: POSIX  ADVISORY  WRITE 1234 00:19:5678 0 EOF`` (device as hex
    major:minor, inode decimal); ``->`` lines are waiters and are skipped.
    """
    holders = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or "->" in fields[:2]:
            continue
        kind, pid_text, ident = fields[1], fields[4], fields[5]
        parts = ident.split(":")
        if len(parts) != 3 or not pid_text.lstrip("-").isdigit():
            continue
        try:
            same = int(parts[0], 16) == major and int(parts[1], 16) == minor and int(parts[2]) == inode
        except ValueError:
            continue
        if same:
            holders.append({"kind": kind, "pid": int(pid_text)})
    return holders


def _comm(pid: int, proc_root: str) -> Optional[str]:
    try:
        with open(os.path.join(proc_root, str(pid), "comm"), encoding="utf-8", errors="replace") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def describe_holders(path: str, *, proc_root: str = "/proc") -> Optional[str]:
    """``"pid 1234 (nova-compute) POSIX"``, from /proc/locks; None if unknown."""
    try:
        st = os.stat(path)
        with open(os.path.join(proc_root, "locks"), encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    holders = parse_proc_locks(text, major=os.major(st.st_dev), minor=os.minor(st.st_dev), inode=st.st_ino)
    if not holders:
        return None
    seen = []
    for holder in holders:
        pid = holder["pid"]
        comm = _comm(pid, proc_root) if pid > 0 else None
        text_holder = f"pid {pid}" + (f" ({comm})" if comm else "") + f" {holder['kind']}"
        if text_holder not in seen:
            seen.append(text_holder)
    return ", ".join(seen)


class HostLock:
    """The host-wide lock, as a context manager::

        with HostLock(lock_file, timeout=300):
            ...  # attach or detach

    ``mode`` is "both" (default), "posix" (fcntl record lock: os-brick, oslo,
    fasteners) or "flock" (flock(2): util-linux flock(1)).  ``clock`` and ``sleep``
    are injectable for tests.
    """

    def __init__(
        self,
        path: str = DEFAULT_LOCK_FILE,
        *,
        timeout: float = 300.0,
        mode: str = "both",
        poll_interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        proc_root: str = "/proc",
    ) -> None:
        if not isinstance(path, str) or not os.path.isabs(path):
            raise InputError(f"lock_file must be an absolute path, got {path!r}", option="lock_file", value=path)
        if mode not in LOCK_MODES:
            raise InputError(
                f"lock mode must be one of {', '.join(LOCK_MODES)}, got {mode!r}", option="lock_mode", value=mode
            )
        if timeout < 0:
            raise InputError(f"lock timeout cannot be negative, got {timeout!r}", option="lock_timeout", value=timeout)
        if poll_interval <= 0:
            raise InputError("lock poll interval must be positive", option="poll_interval", value=poll_interval)
        self.path = path
        self.timeout = timeout
        self.mode = mode
        self.poll_interval = poll_interval
        self._clock = clock
        self._sleep = sleep
        self._proc_root = proc_root
        self._fd: Optional[int] = None
        self.waited: float = 0.0

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _open(self) -> int:
        parent = os.path.dirname(self.path)
        if parent and not os.path.isdir(parent):
            os.makedirs(parent, mode=_DIR_MODE, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, _FILE_MODE)
        except FileExistsError:
            pass
        else:
            os.fchmod(fd, _FILE_MODE)  # creation mode is filtered by the umask
            return fd
        try:
            return os.open(self.path, flags)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InputError(
                    f"lock_file {self.path} is a symbolic link; point the option at the real file",
                    option="lock_file",
                    value=self.path,
                ) from None
            raise

    def _try(self, fd: int) -> bool:
        """One non-blocking attempt; True if every requested lock kind is held."""
        posix_held = False
        try:
            if self.mode in ("both", "posix"):
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                posix_held = True
            if self.mode in ("both", "flock"):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if posix_held:
                fcntl.lockf(fd, fcntl.LOCK_UN)
            if exc.errno in _BUSY_ERRNOS:
                return False
            raise
        return True

    def acquire(self) -> HostLock:
        """Take the lock or raise LockTimeout after ``timeout`` seconds."""
        if self._fd is not None:
            return self
        fd = self._open()
        start = self._clock()
        deadline = start + self.timeout
        try:
            while not self._try(fd):
                now = self._clock()
                if now >= deadline:
                    holder = describe_holders(self.path, proc_root=self._proc_root)
                    raise LockTimeout(
                        f"could not take the host lock {self.path} within {self.timeout:g}s"
                        + (f"; held by {holder}" if holder else ""),
                        lock_file=self.path,
                        timeout=self.timeout,
                        holder=holder,
                    )
                self._sleep(min(self.poll_interval, deadline - now))
        except BaseException:
            os.close(fd)
            raise
        self.waited = self._clock() - start
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (both kinds) and close the file; a no-op if not held."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self.mode in ("both", "flock"):
                fcntl.flock(fd, fcntl.LOCK_UN)
            if self.mode in ("both", "posix"):
                fcntl.lockf(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> HostLock:
        return self.acquire()

    def __exit__(self, *exc_info: Any) -> None:
        self.release()
