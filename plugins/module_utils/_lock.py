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
  with mode 0600 (its directory 0700) when missing.

Who may affect the lock: the files beside it
--------------------------------------------
The lock, its lease and its journal decide whether a run waits, and the journal
tells the operator what to detach: a local user who could write, plant or merely
open them could block or steer every attach and detach on the host.  So (see
:class:`LockDir`) the lock's directory is opened once, refused when group or
others may write it (they could create or replace any of the three files; a
sticky /tmp or /run/lock included), and each file is opened relative to it
without following links (a symbolic link, a FIFO or another non-regular file is
refused) and checked after open: it must belong to root or to the directory's
owner (the owner of os-brick's lock path, when lock_file points there) and must
not be writable by group or others.  A file that fails is refused with a message
naming it, its owner and its mode; nothing is read from it and nothing is
written.  The default lock lives in a directory only root can enter
(/run/lunsafe-san, created 0700), so no other user can even open it for a
read-only flock(1).  A configured lock file that others can open (os-brick's is
often 0644) works, with a warning that any local user can flock it.

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
import math
import os
import pwd
import stat
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError, LockTimeout, UnsafeFile

__all__ = [
    "DEFAULT_LOCK_DIR",
    "DEFAULT_LOCK_FILE",
    "LEASE_STATES",
    "LEASE_TTL_MAX",
    "LOCK_ARGUMENT_SPEC",
    "LOCK_MODES",
    "HostLock",
    "LockDir",
    "active_lease",
    "describe_holders",
    "lease_path",
    "lock_from_params",
    "parse_proc_locks",
    "read_trusted",
    "render_lease",
    "replace_file",
]

DEFAULT_LOCK_DIR = "/run/lunsafe-san"
DEFAULT_LOCK_FILE = DEFAULT_LOCK_DIR + "/lunsafe-san.lock"
LOCK_MODES = ("both", "posix", "flock")
_FILE_MODE = 0o600  # the lock, lease and journal: only their owner may open them (no read-only flock by others)
_DIR_MODE = 0o700  # a lock directory this collection creates
_READ_MAX = 16 * 1024 * 1024  # a lease or journal larger than this is not ours
LEASE_TTL_MAX = 86400  # a lease lasts at most a day; a lease file claiming more is not honoured
_BUSY_ERRNOS = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
LEASE_STATES = ("held", "released")
_LEASE_ID_MAX = 200
_LEASE_SLACK = 1.0  # seconds: rounding of the expiry written

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


def _owner(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _mode(st: os.stat_result) -> str:
    return f"{stat.S_IMODE(st.st_mode):04o}"


class LockDir:
    """The directory of a lock file, opened once and checked; the lock, its lease and its journal are opened
    relative to it (``dir_fd``), never following a link, and checked after open (see the module docstring).

    Trusted owners are root and the directory's owner.  Use as a context manager::

        with LockDir.opened("/run/lunsafe-san", create=True) as directory:
            text = directory.read("lunsafe-san.lock.lease", what="lease")
    """

    _OPEN = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK  # NONBLOCK: a planted FIFO cannot hang us

    def __init__(self, path: str, fd: int, st: os.stat_result) -> None:
        self.path = path
        self.fd = fd
        self.st = st
        self.trusted = {0, st.st_uid}

    @classmethod
    @contextlib.contextmanager
    def opened(cls, path: str, *, create: bool = False) -> Iterator[LockDir]:
        """The checked directory ``path`` (created 0700, with missing parents, when ``create``)."""
        if create and not os.path.isdir(path):
            os.makedirs(path, mode=_DIR_MODE, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if stat.S_IMODE(st.st_mode) & 0o022:
                who = (
                    "group and others"
                    if st.st_mode & 0o020 and st.st_mode & 0o002
                    else ("others" if st.st_mode & 0o002 else "its group")
                )
                raise UnsafeFile(
                    f"the lock directory {path} (owner {_owner(st.st_uid)}, mode {_mode(st)}) is writable by {who}: "
                    "any of them could create or replace the lock, its lease or its journal there and so block or "
                    "steer this collection's work; nothing was done. Point lock_file at a file in a directory only "
                    f"root (or the lock's owner) can write, such as the default {DEFAULT_LOCK_DIR}/",
                    path=path,
                    owner=_owner(st.st_uid),
                    mode=_mode(st),
                )
            yield cls(path, fd, st)
        finally:
            os.close(fd)

    def _check(self, fd: int, name: str, what: str) -> os.stat_result:
        st = os.fstat(fd)
        path = os.path.join(self.path, name)
        details = {"path": path, "owner": _owner(st.st_uid), "mode": _mode(st)}
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"the {what} {path} is not a regular file (mode {_mode(st)}): refused", **details)
        if st.st_uid not in self.trusted:
            owners = " or ".join(_owner(uid) for uid in sorted(self.trusted))
            raise UnsafeFile(
                f"the {what} {path} belongs to {_owner(st.st_uid)} (mode {_mode(st)}), not to {owners}: another user "
                "made it, so it was not used and nothing was done. Find out who created it, then remove it",
                **details,
            )
        if stat.S_IMODE(st.st_mode) & 0o022:
            raise UnsafeFile(
                f"the {what} {path} (owner {_owner(st.st_uid)}, mode {_mode(st)}) is writable by group or others: "
                f"it was not used and nothing was done. Remove it, or chmod go-w {path}",
                **details,
            )
        return st

    def open(self, name: str, flags: int, *, what: str, create_mode: int = _FILE_MODE) -> int:
        """``name`` in this directory, opened without following a link and checked (raises FileNotFoundError
        when it does not exist and ``flags`` do not create it)."""
        try:
            fd = os.open(name, flags | self._OPEN, create_mode, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                path = os.path.join(self.path, name)
                raise UnsafeFile(
                    f"the {what} {path} is a symbolic link: refused, nothing was followed or written. Remove the "
                    "link, or point lock_file at the real file",
                    path=path,
                ) from None
            raise
        try:
            if flags & os.O_CREAT and flags & os.O_EXCL:
                os.fchmod(fd, create_mode)  # the creation mode is filtered by the umask
            self._check(fd, name, what)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read(self, name: str, *, what: str) -> Optional[str]:
        """The text of ``name`` (None when it does not exist), from a file that passed the checks."""
        try:
            fd = self.open(name, os.O_RDONLY, what=what)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(_READ_MAX + 1)
        if len(data) > _READ_MAX:
            raise UnsafeFile(
                f"the {what} {os.path.join(self.path, name)} is larger than {_READ_MAX} bytes: not ours, refused",
                path=os.path.join(self.path, name),
            )
        return data.decode("utf-8", errors="replace")

    def replace(self, name: str, text: str, *, mode: int = _FILE_MODE) -> None:
        """Replace ``name`` with ``text`` whole: a new temporary file beside it, fsync, rename. A process killed
        at any point leaves the old file or the new one, never a part."""
        tmp = f"{name}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=self.fd)  # one a killed run of the same pid left
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | self._OPEN, mode, dir_fd=self.fd)
        try:
            os.fchmod(fd, mode)
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        os.fsync(self.fd)  # the rename itself on disk: a power cut right after keeps the new file, not the old

    def unlink(self, name: str) -> None:
        """Remove ``name`` (a link itself, never what it points to); a missing file is fine."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)

    def rename(self, name: str, new_name: str) -> None:
        os.replace(name, new_name, src_dir_fd=self.fd, dst_dir_fd=self.fd)


def read_trusted(path: str, *, what: str) -> Optional[str]:
    """The text of a file beside the lock (None when it, or its directory, does not exist), checked."""
    try:
        with LockDir.opened(os.path.dirname(path)) as directory:
            return directory.read(os.path.basename(path), what=what)
    except FileNotFoundError:
        return None


def replace_file(path: str, text: str, *, mode: int = _FILE_MODE, create: bool = False) -> None:
    """Replace ``path`` (the lease or the journal beside the lock) with ``text`` whole, in its checked
    directory (see :meth:`LockDir.replace`; created 0700 when ``create``)."""
    with LockDir.opened(os.path.dirname(path), create=create) as directory:
        directory.replace(os.path.basename(path), text, mode=mode)


def remove_file(path: str) -> None:
    """Remove ``path`` (the lease or the journal) from its checked directory; a missing one is fine."""
    try:
        with LockDir.opened(os.path.dirname(path)) as directory:
            directory.unlink(os.path.basename(path))
    except FileNotFoundError:
        pass


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


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def active_lease(text: str, *, now: float, boot_id: str) -> Optional[Dict[str, Any]]:
    """The lease in ``text`` if it is still live: same boot, not expired, within its own TTL; None otherwise.

    An unreadable lease (not JSON, wrong types) counts as absent: it cannot be honoured, and the lock itself
    still serializes every step. The remaining time is capped by the lease's TTL (itself at most
    LEASE_TTL_MAX): a lease whose expiry lies further ahead than its TTL was not written by
    :meth:`HostLock.end_lease` and is not honoured either.
    """
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        return None
    expires: Any = data.get("expires")
    ttl: Any = data.get("ttl")
    live = (
        _number(expires)
        and _number(ttl)
        and 0 < ttl <= LEASE_TTL_MAX
        and not (boot_id and data.get("boot_id") != boot_id)
        and now < expires <= now + ttl + _LEASE_SLACK
    )
    if not live:
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
        if not _number(timeout) or timeout < 0:
            raise InputError(
                f"lock_timeout must be a number of seconds, 0 (one attempt) or more, got {timeout!r}",
                option="lock_timeout",
                value=timeout,
            )
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
            if not _number(lease_ttl) or not 0 < lease_ttl <= LEASE_TTL_MAX:
                raise InputError(
                    f"lock_lease.ttl must be a number of seconds from 1 to {LEASE_TTL_MAX}, got {lease_ttl!r}",
                    option="lock_lease.ttl",
                    value=lease_ttl,
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
        # what the module should tell its user about the lock file (one it did not create, that others can open)
        self.warnings: List[str] = []

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _open(self) -> int:
        """The lock file, opened for append in its checked directory (created 0600 there when missing)."""
        directory_path, name = os.path.split(self.path)
        flags = os.O_WRONLY | os.O_APPEND
        with LockDir.opened(directory_path, create=True) as directory:
            try:
                return directory.open(name, flags | os.O_CREAT | os.O_EXCL, what="lock_file")
            except FileExistsError:
                pass
            fd = directory.open(name, flags, what="lock_file")
            st = os.fstat(fd)
            if st.st_mode & 0o044 and directory.st.st_mode & 0o001:
                self.warnings.append(
                    f"the lock file {self.path} (owner {_owner(st.st_uid)}, mode {_mode(st)}) can be opened by other "
                    "users: any of them can flock it read-only and so block every run of this collection (and of "
                    f"whatever else uses it) until they stop. chmod go-rw {self.path} keeps it working for its owner"
                )
            return fd

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
        text = read_trusted(self.lease_file, what="lease")
        if text is None:
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
            remove_file(self.lease_file)
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
        replace_file(self.lease_file, text)
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
        lease_ttl=900.0 if lease.get("ttl") is None else lease["ttl"],  # 0 is refused, not taken for the default
    )
