# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Iterator, List

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError, LockTimeout, UnsafeFile
from ansible_collections.lunsafe.san.plugins.module_utils._lock import (
    HostLock,
    active_lease,
    describe_holders,
    lock_from_params,
    parse_proc_locks,
    render_lease,
)

# A second, independent process.  "posix" holds the lock the way fasteners /
# oslo.concurrency / os-brick do (fcntl.lockf), "flock" the way flock(1) does,
# "hostlock" through our HostLock.  "probe-*" try once without blocking.
CHILD = textwrap.dedent(
    """
    import fcntl, os, sys
    path, how = sys.argv[1], sys.argv[2]
    if how == "hostlock":
        from ansible_collections.lunsafe.san.plugins.module_utils._lock import HostLock
        lock = HostLock(path, timeout=5).acquire()
    else:
        handle = open(path, "a")
        try:
            if how in ("posix", "probe-posix"):
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            print("busy", flush=True)
            sys.exit(0)
        if how.startswith("probe-"):
            print("free", flush=True)
            sys.exit(0)
    print("locked", flush=True)
    sys.stdin.read()
    """
)


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


@pytest.fixture
def holders() -> Iterator[List[subprocess.Popen]]:
    started: List[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def hold(path: Path, how: str, started: List[subprocess.Popen]) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    started.append(proc)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def release(proc: subprocess.Popen) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=10)


def probe(path: Path, kind: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), f"probe-{kind}"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


def test_creates_a_root_only_directory_and_a_0600_file(tmp_path: Path) -> None:
    path = tmp_path / "run" / "lunsafe-san" / "lunsafe-san.lock"
    old_umask = os.umask(0)
    try:
        with HostLock(str(path), timeout=1) as lock:
            assert lock.held
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # nobody else can open it, not even for a read-only flock
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert lock.warnings == []
    assert path.read_text() == ""  # never written
    assert not lock.held


def test_existing_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "os-brick-connect_volume"
    path.write_text("")
    path.chmod(0o600)
    with HostLock(str(path), timeout=1):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.exists()  # never removed


def test_os_brick_style_holder_excludes_us_and_is_named(tmp_path: Path, holders: List[subprocess.Popen]) -> None:
    path = tmp_path / "os-brick-connect_volume"
    proc = hold(path, "posix", holders)
    start = time.monotonic()
    with pytest.raises(LockTimeout) as info:
        HostLock(str(path), timeout=0.5, poll_interval=0.05).acquire()
    assert 0.4 <= time.monotonic() - start < 5
    exc = info.value
    assert exc.lock_file == str(path)
    assert exc.holder is not None and f"pid {proc.pid}" in exc.holder and "POSIX" in exc.holder
    assert str(path) in exc.msg and f"pid {proc.pid}" in exc.msg
    kwargs = exc.to_fail_kwargs()
    assert kwargs["lock_file"] == str(path) and kwargs["timeout"] == 0.5


def test_flock_alone_would_not_exclude_os_brick(tmp_path: Path, holders: List[subprocess.Popen]) -> None:
    """The finding behind the default mode: flock() and fcntl locks ignore each other."""
    path = tmp_path / "os-brick-connect_volume"
    hold(path, "posix", holders)
    with HostLock(str(path), timeout=0, mode="flock") as lock:
        assert lock.held
    with pytest.raises(LockTimeout):
        HostLock(str(path), timeout=0, mode="posix").acquire()


def test_flock_holder_excludes_us(tmp_path: Path, holders: List[subprocess.Popen]) -> None:
    path = tmp_path / "lunsafe-san.lock"
    hold(path, "flock", holders)
    with pytest.raises(LockTimeout) as info:
        HostLock(str(path), timeout=0.3, poll_interval=0.05).acquire()
    assert info.value.holder is not None and "FLOCK" in info.value.holder
    with HostLock(str(path), timeout=0, mode="posix"):
        pass


def test_our_lock_excludes_both_kinds_of_other_process(tmp_path: Path) -> None:
    path = tmp_path / "lunsafe-san.lock"
    with HostLock(str(path), timeout=1):
        assert probe(path, "posix") == "busy"
        assert probe(path, "flock") == "busy"
    assert probe(path, "posix") == "free"
    assert probe(path, "flock") == "free"


def test_waits_for_another_hostlock_holder(tmp_path: Path, holders: List[subprocess.Popen]) -> None:
    path = tmp_path / "lunsafe-san.lock"
    proc = hold(path, "hostlock", holders)
    with pytest.raises(LockTimeout):
        HostLock(str(path), timeout=0.2, poll_interval=0.05).acquire()
    start = time.monotonic()
    lock = HostLock(str(path), timeout=10, poll_interval=0.05)

    releaser = threading.Timer(0.5, release, args=(proc,))
    releaser.start()
    try:
        with lock:
            assert lock.held
            assert lock.waited >= 0.3
    finally:
        releaser.join()
    assert time.monotonic() - start < 8


def test_timeout_uses_the_injected_clock(tmp_path: Path, holders: List[subprocess.Popen]) -> None:
    path = tmp_path / "lunsafe-san.lock"
    hold(path, "flock", holders)
    now = [0.0]
    sleeps: List[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    lock = HostLock(str(path), timeout=1, poll_interval=0.3, clock=lambda: now[0], sleep=sleep)
    with pytest.raises(LockTimeout):
        lock.acquire()
    assert sleeps == pytest.approx([0.3, 0.3, 0.3, 0.1])
    assert lock.waited == pytest.approx(1.0)  # a failed run's timings say how long it waited
    assert not lock.held


def test_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "real"
    target.write_text("")
    link = tmp_path / "link.lock"
    link.symlink_to(target)
    with pytest.raises(UnsafeFile, match="symbolic link"):
        HostLock(str(link), timeout=0).acquire()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"path": "relative.lock"},
        {"mode": "fcntl"},
        {"timeout": -1},
        {"timeout": float("nan")},
        {"timeout": float("inf")},
        {"poll_interval": 0},
    ],
)
def test_invalid_arguments(tmp_path: Path, kwargs: dict) -> None:
    arguments = {"path": str(tmp_path / "x.lock"), **kwargs}
    with pytest.raises(InputError):
        HostLock(**arguments)


def test_release_is_idempotent_and_reacquire_works(tmp_path: Path) -> None:
    lock = HostLock(str(tmp_path / "x.lock"), timeout=0)
    lock.release()
    assert lock.acquire() is lock
    assert lock.acquire() is lock  # already held: no second descriptor
    lock.release()
    lock.release()
    with lock:
        assert lock.held


def test_parse_proc_locks() -> None:
    text = (
        "1: POSIX  ADVISORY  WRITE 4242 00:19:1234 0 EOF\n"
        "1: -> POSIX  ADVISORY  WRITE 4343 00:19:1234 0 EOF\n"
        "2: FLOCK  ADVISORY  WRITE 4444 fd:01:1234 0 EOF\n"
        "3: FLOCK  ADVISORY  WRITE 4545 00:19:99 0 EOF\n"
        "4: OFDLCK ADVISORY  READ  -1 00:19:1234 0 EOF\n"
        "garbage\n"
    )
    assert parse_proc_locks(text, major=0, minor=0x19, inode=1234) == [
        {"kind": "POSIX", "pid": 4242},
        {"kind": "OFDLCK", "pid": -1},
    ]
    assert parse_proc_locks(text, major=0xFD, minor=1, inode=1234) == [{"kind": "FLOCK", "pid": 4444}]


def test_describe_holders_with_a_fake_proc(tmp_path: Path) -> None:
    lock_file = tmp_path / "x.lock"
    lock_file.write_text("")
    st = lock_file.stat()
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "comm").write_text("nova-compute\n")
    ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    (proc / "locks").write_text(
        f"1: POSIX  ADVISORY  WRITE 4242 {ident} 0 EOF\n2: FLOCK  ADVISORY  WRITE 77 {ident} 0 EOF\n"
    )
    assert describe_holders(str(lock_file), proc_root=str(proc)) == "pid 4242 (nova-compute) POSIX, pid 77 FLOCK"
    assert describe_holders(str(tmp_path / "missing"), proc_root=str(proc)) is None


# ----- leases: the lock held across several tasks ---------------------------------------------------


class FakeBootClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fake_proc(tmp_path: Path, boot_id: str = "boot-1") -> str:
    root = tmp_path / "proc"
    (root / "sys" / "kernel" / "random").mkdir(parents=True, exist_ok=True)
    (root / "sys" / "kernel" / "random" / "boot_id").write_text(boot_id + "\n")
    (root / "locks").write_text("")
    return str(root)


def leased(path: Path, proc: str, clock: FakeBootClock, lease_id: str, **kwargs: object) -> HostLock:
    return HostLock(str(path), proc_root=proc, lease_clock=clock, lease_id=lease_id, **kwargs)  # type: ignore[arg-type]


def test_active_lease_rules() -> None:
    text = render_lease(lease_id="detach-7", ttl=60, now=100.0, boot_id="b1", pid=42)
    assert active_lease(text, now=100.0, boot_id="b1") == {"id": "detach-7", "expires": 160.0, "remaining": 60.0}
    assert active_lease(text, now=160.0, boot_id="b1") is None  # expired
    assert active_lease(text, now=100.0, boot_id="b2") is None  # another boot
    assert active_lease("not json", now=0.0, boot_id="b1") is None
    assert active_lease('{"id": 3, "expires": 500}', now=0.0, boot_id="") is None
    assert active_lease('{"id": "x", "expires": true}', now=0.0, boot_id="") is None
    assert active_lease('["id"]', now=0.0, boot_id="") is None


def test_held_lease_excludes_other_runs_until_released(tmp_path: Path) -> None:
    path = tmp_path / "lunsafe-san.lock"
    proc = fake_proc(tmp_path)
    clock = FakeBootClock()
    with leased(path, proc, clock, "detach-lun-3", lease_ttl=600) as lock:
        pass
    assert lock.lease_outcome == "held"
    data = json.loads((tmp_path / "lunsafe-san.lock.lease").read_text())
    assert data["id"] == "detach-lun-3" and data["expires"] == 1600.0 and data["boot_id"] == "boot-1"

    # the plain lock is free between tasks, but another run of ours waits for the lease and names it
    with pytest.raises(LockTimeout) as info:
        HostLock(str(path), timeout=0.2, poll_interval=0.05, proc_root=proc, lease_clock=clock).acquire()
    assert info.value.holder == "lease 'detach-lun-3' for 600s more"
    assert "lease 'detach-lun-3'" in info.value.msg
    with pytest.raises(LockTimeout):
        leased(path, proc, clock, "attach-lun-4", timeout=0.1, poll_interval=0.05).acquire()
    assert probe(path, "flock") == "free"  # os-brick and flock(1) do not know leases

    # the same id passes, renews, and finally releases
    clock.now += 100
    with leased(path, proc, clock, "detach-lun-3", lease_ttl=600):
        pass
    assert json.loads((tmp_path / "lunsafe-san.lock.lease").read_text())["expires"] == 1700.0
    with leased(path, proc, clock, "detach-lun-3", lease_state="released") as lock:
        pass
    assert lock.lease_outcome == "released"
    assert not (tmp_path / "lunsafe-san.lock.lease").exists()
    with HostLock(str(path), timeout=0, proc_root=proc, lease_clock=clock) as plain:
        assert plain.held


def test_a_failed_run_writes_no_lease_but_released_always_removes(tmp_path: Path) -> None:
    path = tmp_path / "lunsafe-san.lock"
    proc = fake_proc(tmp_path)
    clock = FakeBootClock()
    with pytest.raises(RuntimeError), leased(path, proc, clock, "detach-1"):
        raise RuntimeError("flush refused")
    assert not (tmp_path / "lunsafe-san.lock.lease").exists()
    with leased(path, proc, clock, "detach-1"):
        pass
    with pytest.raises(RuntimeError), leased(path, proc, clock, "detach-1", lease_state="released"):
        raise RuntimeError("logout failed")
    assert not (tmp_path / "lunsafe-san.lock.lease").exists()


def test_work_that_failed_without_raising_writes_no_lease(tmp_path: Path) -> None:
    """A caller that reports a failure (fail_json after collecting errors) sets work_failed under the lock."""
    path = tmp_path / "lunsafe-san.lock"
    proc = fake_proc(tmp_path)
    clock = FakeBootClock()
    with leased(path, proc, clock, "attach-1") as lock:
        assert lock.work_failed is False
        lock.work_failed = True
    assert lock.lease_outcome is None
    assert not (tmp_path / "lunsafe-san.lock.lease").exists()
    assert not lock.held
    with leased(path, proc, clock, "attach-1") as lock:
        pass
    assert lock.lease_outcome == "held"
    with leased(path, proc, clock, "attach-1", lease_state="released") as lock:
        lock.work_failed = True  # a release is done whatever the outcome
    assert lock.lease_outcome == "released"
    assert not (tmp_path / "lunsafe-san.lock.lease").exists()


def test_expired_or_other_boot_lease_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "lunsafe-san.lock"
    proc = fake_proc(tmp_path)
    clock = FakeBootClock()
    with leased(path, proc, clock, "detach-1", lease_ttl=10):
        pass
    clock.now += 10
    with HostLock(str(path), timeout=0, proc_root=proc, lease_clock=clock):
        pass
    clock.now = 1000.0
    fake_proc(tmp_path, boot_id="boot-2")  # rebooted (a lease on a persistent lock path survived)
    with HostLock(str(path), timeout=0, proc_root=proc, lease_clock=clock):
        pass


def test_releasing_never_removes_another_procedures_lease(tmp_path: Path) -> None:
    path = tmp_path / "lunsafe-san.lock"
    proc = fake_proc(tmp_path)
    clock = FakeBootClock()
    with leased(path, proc, clock, "detach-A"):
        pass
    lock = leased(path, proc, clock, "detach-B", lease_state="released", timeout=0)
    with pytest.raises(LockTimeout):
        lock.acquire()
    assert json.loads((tmp_path / "lunsafe-san.lock.lease").read_text())["id"] == "detach-A"


def test_check_mode_lock_ignores_leases_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "lunsafe-san.lock"
    params = {"lock_file": str(path), "lock_timeout": 0, "lock_lease": {"id": "detach-1", "state": "held", "ttl": 60}}
    assert lock_from_params(params, check_mode=True) is None
    assert not path.exists()
    proc = fake_proc(tmp_path)
    clock = FakeBootClock()
    with leased(path, proc, clock, "detach-other"):
        pass
    lock = lock_from_params(params, check_mode=True)
    assert lock is not None and lock.lease_id is None and not lock.honour_leases
    lock = lock_from_params(params, check_mode=False)
    assert lock is not None and (lock.lease_id, lock.lease_state, lock.lease_ttl) == ("detach-1", "held", 60.0)


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"lease_id": ""}, "lock_lease.id"),
        ({"lease_id": "a\nb"}, "lock_lease.id"),
        ({"lease_id": "x" * 201}, "lock_lease.id"),
        ({"lease_id": "ok", "lease_state": "kept"}, "lock_lease.state"),
        ({"lease_id": "ok", "lease_ttl": 0}, "lock_lease.ttl"),
    ],
)
def test_bad_lease_input_is_refused(tmp_path: Path, kwargs: dict, option: str) -> None:
    with pytest.raises(InputError) as info:
        HostLock(str(tmp_path / "lock"), **kwargs)
    assert info.value.details["option"] == option
    assert not (tmp_path / "lock").exists()
