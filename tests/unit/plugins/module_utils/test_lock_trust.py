# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Who may affect the host lock: the lock, its lease and its journal are trusted only from root (or the lock
directory's owner), opened without following links, in a directory nobody else can write (issue 23)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError, LockTimeout, UnsafeFile
from ansible_collections.lunsafe.san.plugins.module_utils._journal import Journal
from ansible_collections.lunsafe.san.plugins.module_utils._lock import (
    DEFAULT_LOCK_FILE,
    LEASE_TTL_MAX,
    HostLock,
    LockDir,
    active_lease,
    lock_from_params,
    read_trusted,
    render_lease,
    replace_file,
)

OTHER = 65534  # nobody
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def proc_root(tmp_path: Path) -> str:
    root = tmp_path / "proc"
    (root / "sys" / "kernel" / "random").mkdir(parents=True)
    (root / "sys" / "kernel" / "random" / "boot_id").write_text("boot-1\n")
    (root / "locks").write_text("")
    return str(root)


def lock_dir(tmp_path: Path, mode: int = 0o755) -> Path:
    directory = tmp_path / "locks"
    directory.mkdir()
    directory.chmod(mode)
    return directory


def plant(path: Path, text: str, *, uid: int = 0, mode: int = 0o600) -> None:
    path.write_text(text)
    os.chown(path, uid, -1)
    path.chmod(mode)


def test_default_lock_is_in_a_root_only_directory() -> None:
    assert DEFAULT_LOCK_FILE == "/run/lunsafe-san/lunsafe-san.lock"  # not /run/lock, which anyone may write


@pytest.mark.parametrize("mode", [0o1777, 0o777, 0o775, 0o757])
def test_a_directory_others_can_write_is_refused_before_anything_is_created(tmp_path: Path, mode: int) -> None:
    directory = lock_dir(tmp_path, mode)
    with pytest.raises(UnsafeFile) as info:
        HostLock(str(directory / "x.lock"), timeout=0).acquire()
    assert f"the lock directory {directory}" in info.value.msg
    assert f"mode {mode:04o}" in info.value.msg and "owner root (uid 0)" in info.value.msg
    assert "/run/lunsafe-san/" in info.value.msg  # what to use instead
    assert list(directory.iterdir()) == []


@needs_root
def test_a_lock_file_another_user_created_is_refused(tmp_path: Path) -> None:
    directory = lock_dir(tmp_path)
    plant(directory / "x.lock", "", uid=OTHER, mode=0o644)
    with pytest.raises(UnsafeFile) as info:
        HostLock(str(directory / "x.lock"), timeout=0).acquire()
    msg = info.value.msg
    assert f"the lock_file {directory}/x.lock belongs to nobody (uid {OTHER}) (mode 0644)" in msg
    assert "not to root (uid 0)" in msg
    assert info.value.to_fail_kwargs()["unsafe_file"] == {
        "path": f"{directory}/x.lock",
        "owner": f"nobody (uid {OTHER})",
        "mode": "0644",
    }


@needs_root
def test_the_directory_owner_is_trusted_as_for_os_bricks_lock_path(tmp_path: Path) -> None:
    """os-brick's lock path belongs to the service user (nova); its lock file too, usually 0644."""
    directory = lock_dir(tmp_path)
    os.chown(directory, OTHER, -1)
    plant(directory / "os-brick-connect_volume", "", uid=OTHER, mode=0o644)
    with HostLock(str(directory / "os-brick-connect_volume"), timeout=0) as lock:
        assert lock.held
    assert len(lock.warnings) == 1
    assert "can be opened by other users" in lock.warnings[0] and "chmod go-rw" in lock.warnings[0]
    # the lease written beside it is root's, 0600, and trusted on the next run
    lease = directory / "os-brick-connect_volume.lease"
    with HostLock(str(directory / "os-brick-connect_volume"), timeout=0, lease_id="d1", lease_ttl=60):
        pass
    assert stat.S_IMODE(lease.stat().st_mode) == 0o600 and lease.stat().st_uid == 0
    with pytest.raises(LockTimeout, match="lease 'd1'"):
        HostLock(str(directory / "os-brick-connect_volume"), timeout=0).acquire()


def test_a_lock_file_others_cannot_reach_gives_no_warning(tmp_path: Path) -> None:
    directory = lock_dir(tmp_path, 0o700)
    plant(directory / "x.lock", "", mode=0o644)
    with HostLock(str(directory / "x.lock"), timeout=0) as lock:
        assert lock.warnings == []


def test_a_lock_file_others_can_write_is_refused(tmp_path: Path) -> None:
    directory = lock_dir(tmp_path)
    plant(directory / "x.lock", "", mode=0o666)
    with pytest.raises(UnsafeFile, match="is writable by group or others"):
        HostLock(str(directory / "x.lock"), timeout=0).acquire()


@pytest.mark.parametrize("name", ["x.lock", "x.lock.lease"])
def test_symlinks_are_refused_and_never_followed(tmp_path: Path, name: str) -> None:
    directory = lock_dir(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (directory / name).symlink_to(victim)
    lock = HostLock(str(directory / "x.lock"), timeout=0, lease_id="d", lease_ttl=60)
    with pytest.raises(UnsafeFile, match="is a symbolic link"):
        lock.acquire()
    assert victim.read_text() == "keep me"
    assert (directory / name).is_symlink()


def test_a_fifo_planted_as_lease_is_refused_without_hanging(tmp_path: Path) -> None:
    directory = lock_dir(tmp_path)
    os.mkfifo(directory / "x.lock.lease", 0o600)
    with pytest.raises(UnsafeFile, match="is not a regular file"):
        HostLock(str(directory / "x.lock"), timeout=0).acquire()


@needs_root
def test_a_planted_lease_is_refused_naming_owner_and_mode(tmp_path: Path) -> None:
    directory = lock_dir(tmp_path)
    text = render_lease(lease_id="evil", ttl=99999, now=0.0, boot_id="boot-1", pid=1)
    plant(directory / "x.lock.lease", text, uid=OTHER, mode=0o644)
    lock = HostLock(str(directory / "x.lock"), timeout=5, proc_root=proc_root(tmp_path), lease_clock=Clock())
    with pytest.raises(UnsafeFile) as info:
        lock.acquire()
    assert f"the lease {directory}/x.lock.lease belongs to nobody (uid {OTHER}) (mode 0644)" in info.value.msg
    assert not lock.held
    assert (directory / "x.lock.lease").read_text() == text  # left for the operator to look at


def test_a_lease_file_others_can_write_is_refused(tmp_path: Path) -> None:
    directory = lock_dir(tmp_path)
    plant(directory / "x.lock.lease", "{}", mode=0o622)
    with pytest.raises(UnsafeFile, match=r"lease .* is writable by group or others"):
        HostLock(str(directory / "x.lock"), timeout=0).acquire()


def test_a_lease_is_capped_by_its_ttl() -> None:
    text = render_lease(lease_id="d", ttl=60, now=100.0, boot_id="b", pid=1)
    assert active_lease(text, now=100.0, boot_id="b") is not None
    # an expiry further ahead than the lease's own TTL was not written by us: not honoured
    forged = json.dumps({"id": "d", "expires": 100.0 + 98964, "ttl": 60, "boot_id": "b", "pid": 1})
    assert active_lease(forged, now=100.0, boot_id="b") is None
    for ttl in (None, 0, -5, True, "60", LEASE_TTL_MAX + 1):
        data = {"id": "d", "expires": 150.0, "ttl": ttl, "boot_id": "b", "pid": 1}
        assert active_lease(json.dumps(data), now=100.0, boot_id="b") is None, ttl


@pytest.mark.parametrize("ttl", [0, -1, LEASE_TTL_MAX + 1])
def test_a_lease_ttl_out_of_range_is_refused_not_replaced_by_the_default(tmp_path: Path, ttl: int) -> None:
    params = {"lock_file": str(tmp_path / "x.lock"), "lock_timeout": 0, "lock_lease": {"id": "d", "ttl": ttl}}
    with pytest.raises(InputError) as info:
        lock_from_params(params, check_mode=False)
    assert info.value.details["option"] == "lock_lease.ttl"
    assert f"got {ttl}" in info.value.msg
    assert not (tmp_path / "x.lock").exists()


def test_the_default_ttl_applies_only_when_none_is_given(tmp_path: Path) -> None:
    params = {"lock_file": str(tmp_path / "x.lock"), "lock_timeout": 0, "lock_lease": {"id": "d", "ttl": None}}
    lock = lock_from_params(params, check_mode=False)
    assert lock is not None and lock.lease_ttl == 900


@needs_root
def test_a_planted_journal_is_refused_and_never_carried_over(tmp_path: Path) -> None:
    directory = lock_dir(tmp_path)
    forged = {
        "version": 1,
        "entries": [
            {
                "id": "1",
                "module": "iscsi_lun_attach",
                "op": "detach",
                "pid": 1,
                "request": {"targets": ["iqn.x"], "luns": [1]},
                "done": [],
            }
        ],
    }
    plant(directory / "x.lock.journal", json.dumps(forged), uid=OTHER, mode=0o600)
    journal = Journal(str(directory / "x.lock.journal"))
    with pytest.raises(UnsafeFile, match=f"the journal .* belongs to nobody \\(uid {OTHER}\\)"):
        journal.read()
    assert (directory / "x.lock.journal").stat().st_uid == OTHER  # not rewritten as root


def test_a_journal_symlink_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    directory = lock_dir(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text('{"version": 1, "entries": []}')
    (directory / "x.lock.journal").symlink_to(victim)
    journal = Journal(str(directory / "x.lock.journal"))
    with pytest.raises(UnsafeFile, match="symbolic link"):
        journal.read()
    journal.write([{"id": "a"}])  # the write replaces the link itself, never writes through it
    assert victim.read_text() == '{"version": 1, "entries": []}'
    assert not (directory / "x.lock.journal").is_symlink()
    assert stat.S_IMODE((directory / "x.lock.journal").stat().st_mode) == 0o600
    journal.write([])
    assert not (directory / "x.lock.journal").exists()


def test_an_unreadable_journal_is_kept_aside_in_its_directory(tmp_path: Path) -> None:
    directory = lock_dir(tmp_path)
    plant(directory / "x.lock.journal", "not json")
    journal = Journal(str(directory / "x.lock.journal"))
    assert journal.read() == []
    assert journal.problem is not None and "x.lock.journal.bad" in journal.problem
    assert (directory / "x.lock.journal.bad").read_text() == "not json"


def test_replace_never_writes_through_a_planted_temporary_name(tmp_path: Path) -> None:
    directory = lock_dir(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (directory / f"x.lock.lease.{os.getpid()}.tmp").symlink_to(victim)
    replace_file(str(directory / "x.lock.lease"), "{}")
    assert victim.read_text() == "keep me"
    assert (directory / "x.lock.lease").read_text() == "{}"
    assert sorted(p.name for p in directory.iterdir()) == ["x.lock.lease"]


def test_read_trusted_of_what_does_not_exist(tmp_path: Path) -> None:
    assert read_trusted(str(tmp_path / "missing-dir" / "x.lock.lease"), what="lease") is None
    assert read_trusted(str(tmp_path / "x.lock.lease"), what="lease") is None


def test_an_oversized_file_is_refused(tmp_path: Path) -> None:
    directory = lock_dir(tmp_path)
    with open(directory / "x.lock.journal", "wb") as handle:
        handle.truncate(16 * 1024 * 1024 + 1)
    with pytest.raises(UnsafeFile, match="larger than"):
        read_trusted(str(directory / "x.lock.journal"), what="journal")


def test_the_directory_is_checked_once_per_use(tmp_path: Path) -> None:
    directory = lock_dir(tmp_path, 0o750)
    with LockDir.opened(str(directory)) as opened:
        assert opened.trusted == {0, directory.stat().st_uid}
        assert opened.read("missing", what="lease") is None
