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

Leases: holding the lock across several tasks
---------------------------------------------
A lock held by a process ends with the process, i.e. with each module run.  A
detach procedure needs exclusion across several tasks: from the host-side delete,
through the array-side unmap (tasks the user supplies), to the check that nothing
came back.  A *lease* extends the lock over that window: a small JSON file beside
the lock file (``<lock_file>.lease``) naming a lease id and an expiry.  It is only
read, written and removed while the lock is held, so it is as consistent as the
lock itself.  A HostLock given no lease id, or another id, treats a live lease as
the lock being busy (waits, then times out naming the lease); a HostLock given the
same id passes.  With ``lease_state="held"`` the lease is written (or renewed for
``lease_ttl`` seconds) when the work under the lock ends without an exception;
with ``"released"`` it is removed when the work ends, whatever the outcome (the
caller said the window is over).  Expiry is measured on CLOCK_BOOTTIME and the
lease records the kernel boot id, so a lease never outlives a reboot or its TTL,
even if the play that took it died.  Only this collection honours leases:
os-brick and flock(1) see the plain lock, which is free between tasks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from typing import Any, Callable, Dict, List, Optional

from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError, LockTimeout

__all__ = [
    "DEFAULT_LOCK_FILE",
    "LEASE_STATES",
    "LOCK_ARGUMENT_SPEC",
    "LOCK_MODES",
    "HostLock",
    "active_lease",
    "describe_holders",
    "lease_path",
    "lock_from_params",
    "parse_proc_locks",
    "render_lease",
    "replace_file",
]

DEFAULT_LOCK_FILE = "/run/lock/lunsafe-san.lock"
LOCK_MODES = ("both", "posix", "flock")
_FILE_MODE = 0o644
_DIR_MODE = 0o755
_BUSY_ERRNOS = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
LEASE_STATES = ("held", "released")
_LEASE_ID_MAX = 200

# The lock options every lock-taking module of the collection accepts (documented in
# the lunsafe.san._attributes.LOCK doc fragment).
LOCK_ARGUMENT_SPEC: Dict[str, Any] = {
    "lock_file": {"type": "path", "default": DEFAULT_LOCK_FILE},
    "lock_timeout": {"type": "float", "default": 300},
    "lock_lease": {
        "type": "dict",
        "options": {
            "id": {"type": "str", "required": True},
            "state": {"type": "str", "default": "held", "choices": list(LEASE_STATES)},
            "ttl": {"type": "int", "default": 900},
        },
    },
}


def replace_file(path: str, text: str, *, mode: int) -> None:
    """Replace ``path`` with ``text`` whole: a temporary file beside it, fsync, rename. A process killed at any
    point leaves the old file or the new one, never a part (the lease and the journal beside the lock)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def lease_path(lock_file: str) -> str:
    """Where the lease of ``lock_file`` lives."""
    return lock_file + ".lease"


def _boottime() -> float:
    return time.clock_gettime(getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC))


def read_boot_id(*, proc_root: str = "/proc") -> str:
    """The kernel's boot id ('' if unreadable): a lease from another boot is void."""
    try:
        with open(os.path.join(proc_root, "sys/kernel/random/boot_id"), encoding="ascii") as handle:
            return handle.read().strip()
    except (OSError, ValueError):
        return ""


def render_lease(*, lease_id: str, ttl: float, now: float, boot_id: str, pid: int) -> str:
    """The lease file's text."""
    return json.dumps(
        {"id": lease_id, "expires": round(now + ttl, 3), "ttl": ttl, "boot_id": boot_id, "pid": pid},
        sort_keys=True,
    )


def active_lease(text: str, *, now: float, boot_id: str) -> Optional[Dict[str, Any]]:
    """The lease in ``text`` if it is still live: same boot, not expired; None otherwise.

    An unreadable lease (not JSON, wrong types) counts as absent: it cannot be
    honoured, and the lock itself still serializes every step.
    """
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        return None
    expires = data.get("expires")
    if not isinstance(expires, (int, float)) or isinstance(expires, bool):
        return None
    if boot_id and data.get("boot_id") != boot_id:
        return None
    if expires <= now:
        return None
    return {"id": data["id"], "expires": float(expires), "remaining": round(float(expires) - now, 1)}


def validate_lease_id(lease_id: str) -> str:
    """A lease id is printable text without line breaks, at most 200 characters."""
    if not lease_id or not lease_id.strip():
        raise InputError("lock_lease.id must not be empty", option="lock_lease.id", value=lease_id)
    if len(lease_id) > _LEASE_ID_MAX or not lease_id.isprintable():
        raise InputError(
            f"lock_lease.id must be printable text of at most {_LEASE_ID_MAX} characters, got {lease_id!r}",
            option="lock_lease.id",
            value=lease_id,
        )
    return lease_id


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
        lease_id: Optional[str] = None,
        lease_state: str = "held",
        lease_ttl: float = 900.0,
        honour_leases: bool = True,
        lease_clock: Callable[[], float] = _boottime,
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
        if lease_id is not None:
            validate_lease_id(lease_id)
            if lease_state not in LEASE_STATES:
                raise InputError(
                    f"lock_lease.state must be one of {', '.join(LEASE_STATES)}, got {lease_state!r}",
                    option="lock_lease.state",
                    value=lease_state,
                )
            if lease_ttl <= 0:
                raise InputError(
                    f"lock_lease.ttl must be positive, got {lease_ttl!r}", option="lock_lease.ttl", value=lease_ttl
                )
        self.path = path
        self.lease_file = lease_path(path)
        self.lease_id = lease_id
        self.lease_state = lease_state
        self.lease_ttl = lease_ttl
        self.honour_leases = honour_leases
        self._lease_clock = lease_clock
        self.lease_outcome: Optional[str] = None
        self.timeout = timeout
        self.mode = mode
        self.poll_interval = poll_interval
        self._clock = clock
        self._sleep = sleep
        self._proc_root = proc_root
        self._fd: Optional[int] = None
        self.waited: float = 0.0
        # set by the caller when the work under the lock failed without raising: no lease is written then
        self.work_failed = False

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
            while True:
                lease = None
                if self._try(fd):
                    lease = self._foreign_lease()
                    if lease is None:
                        break
                    self._unlock(fd)
                now = self._clock()
                if now >= deadline:
                    self.waited = now - start  # also on a timeout: a failed run's timings say how long it waited
                    holder: Optional[str]
                    if lease is not None:
                        holder = f"lease {lease['id']!r} for {lease['remaining']:g}s more"
                    else:
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

    def _unlock(self, fd: int) -> None:
        if self.mode in ("both", "flock"):
            fcntl.flock(fd, fcntl.LOCK_UN)
        if self.mode in ("both", "posix"):
            fcntl.lockf(fd, fcntl.LOCK_UN)

    def _read_lease(self) -> Optional[Dict[str, Any]]:
        try:
            with open(self.lease_file, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except FileNotFoundError:
            return None
        return active_lease(text, now=self._lease_clock(), boot_id=read_boot_id(proc_root=self._proc_root))

    def _foreign_lease(self) -> Optional[Dict[str, Any]]:
        """A live lease under another id (the lock is busy for us), else None."""
        if not self.honour_leases:
            return None
        lease = self._read_lease()
        if lease is None or lease["id"] == self.lease_id:
            return None
        return lease

    def end_lease(self, *, succeeded: bool) -> Optional[str]:
        """Write, renew or remove our lease; call with the lock held, before release().

        Returns what was done: "held" (written or renewed), "released" (removed),
        None (nothing to do).  A held lease is only written after work that succeeded.
        """
        if self._fd is None or self.lease_id is None:
            return None
        if self.lease_state == "released":
            lease = self._read_lease()
            if lease is not None and lease["id"] != self.lease_id:
                return None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.lease_file)
            self.lease_outcome = "released"
            return self.lease_outcome
        if not succeeded:
            return None
        text = render_lease(
            lease_id=self.lease_id,
            ttl=self.lease_ttl,
            now=self._lease_clock(),
            boot_id=read_boot_id(proc_root=self._proc_root),
            pid=os.getpid(),
        )
        replace_file(self.lease_file, text, mode=_FILE_MODE)
        self.lease_outcome = "held"
        return self.lease_outcome

    def release(self) -> None:
        """Drop the lock (both kinds) and close the file; a no-op if not held."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            self._unlock(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> HostLock:
        return self.acquire()

    def finish(self, *, succeeded: bool) -> None:
        """End the lease as the outcome says (see end_lease), then release the lock."""
        try:
            self.end_lease(succeeded=succeeded)
        finally:
            self.release()

    def __exit__(self, exc_type: Any, *exc_info: Any) -> None:
        self.finish(succeeded=exc_type is None and not self.work_failed)


def lock_from_params(params: Dict[str, Any], *, check_mode: bool) -> Optional[HostLock]:
    """The host lock a module run takes, from the LOCK_ARGUMENT_SPEC options.

    In check mode: None when the lock file does not exist (check mode creates no
    file); otherwise the plain lock, ignoring and never writing leases (check mode
    only reads, and must not wait on a detach window it cannot disturb).
    """
    path = params["lock_file"]
    lease = params.get("lock_lease") or {}
    if check_mode:
        if not isinstance(path, str) or not os.path.exists(path):
            return None
        return HostLock(path, timeout=params["lock_timeout"], honour_leases=False)
    return HostLock(
        path,
        timeout=params["lock_timeout"],
        lease_id=lease.get("id"),
        lease_state=lease.get("state") or "held",
        lease_ttl=float(lease.get("ttl") or 900),
    )
