# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A session that goes into recovery while its LUN is being scanned: the kernel drops a scan written to a session
that is not logged in (iscsi_user_scan_session), and nothing scans again once it has recovered. The fake does the
same: the first scan written to the chosen SCSI host takes its session to FAILED and is lost."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _attach as attach
from ansible_collections.lunsafe.san.plugins.module_utils import _scan as scan
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fake_host import IQN, FakeHost, wwid_of

P1, P2 = "127.0.0.1:3260", "127.0.0.2:3260"


def world(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path, luns={IQN: {n: wwid_of(n) for n in range(4)}}, portals={P1: [IQN], P2: [IQN]})


def outage_at_first_scan(fake: FakeHost, *, host: int, seconds: Optional[float]) -> Dict[str, Any]:
    """The first scan written to ``host`` puts its session in recovery for ``seconds`` (None: for good); every
    scan written to it while it is not logged in is dropped, as the kernel does."""
    real = fake.write
    state: Dict[str, Any] = {"until": None, "dropped": 0}

    def session() -> Dict[str, Any]:
        found: Dict[str, Any] = next(s for s in fake.sessions if s["host"] == host)
        return found

    def write(path: str, text: str) -> None:
        if path.endswith(f"/host{host}/scan"):
            if state["until"] is None:
                session()["state"] = "FAILED"
                state["until"] = fake.clock.now + seconds if seconds is not None else float("inf")
                fake.rebuild()
            if session()["state"] != "LOGGED_IN":
                fake.writes.append((path[len(str(fake.root)) :], text))
                state["dropped"] += 1
                return
        real(path, text)

    def tick() -> None:
        if state["until"] is not None and fake.clock.now >= state["until"] and session()["state"] != "LOGGED_IN":
            session()["state"] = "LOGGED_IN"
            fake.rebuild()

    fake.clock.on_sleep.append(tick)
    fake.write = write  # type: ignore[method-assign]
    return state


def attach_lun(fake: FakeHost, lun: str = "1", timeout: float = 30) -> attach.Outcome:
    request = attach.build_request(
        {"target": IQN, "portals": ["127.0.0.1", "127.0.0.2"], "lun": lun, "timeout": timeout, "state": "present"},
        resolver=lambda name: [name],
    )
    return attach.attach(fake.host(), request, check=False, timings={})


def scans_to(fake: FakeHost, host: int) -> List[str]:
    return [text for path, text in fake.writes if path == f"/class/scsi_host/host{host}/scan"]


def test_a_scan_lost_to_a_session_outage_is_written_again_once_the_session_is_back(tmp_path: Path) -> None:
    fake = world(tmp_path)
    attach_lun(fake, "2")  # sessions up: hosts 2 and 3
    fake.writes.clear()
    state = outage_at_first_scan(fake, host=3, seconds=8)
    outcome = attach_lun(fake, "1")
    assert outcome.error is None, outcome.error
    assert state["dropped"] == 1 and scans_to(fake, 3) == ["0 0 1", "0 0 1"]
    assert [w["hctl"] for w in outcome.result["scanned"]] == ["2:0:0:1", "3:0:0:1", "3:0:0:1"]
    assert outcome.result["luns"][0]["hctl"] == ["2:0:0:1", "3:0:0:1"]
    assert outcome.result["warnings"] == [
        "the session of host3 went into recovery after the scan of 3:0:0:1 was written; the kernel drops such a "
        "scan, so it was written again once the session had logged in"
    ]


def test_a_session_that_stays_in_recovery_is_named_as_the_cause(tmp_path: Path) -> None:
    fake = world(tmp_path)
    attach_lun(fake, "2")
    state = outage_at_first_scan(fake, host=3, seconds=None)
    outcome = attach_lun(fake, "1", timeout=10)
    assert outcome.error is not None and state["dropped"] == 1
    assert outcome.error.msg == (
        "timed out after 10s waiting for its block device at 3:0:0:1 (its session 2 (host3) was FAILED during the "
        "wait: the portal or the network path went away)"
    )
    assert "LUN masking" not in outcome.error.msg
    assert outcome.result["rolled_back"] == ["flushed map mpathb", "deleted sdc"]  # the path that came, and its map


def test_wait_for_devices_names_the_outage_and_every_line_written(tmp_path: Path) -> None:
    fake = world(tmp_path)
    attach_lun(fake, "2")
    outage_at_first_scan(fake, host=3, seconds=None)
    host = fake.host()
    snapshot = host.snapshot()
    session = next(s for s in snapshot.sessions if s.host == 3)
    item = scan.session_item(snapshot=snapshot, session=session, lun=1, array_lun=1)
    plan = scan.ScanPlan(items=(item,), sessions=(session,))
    writes = scan.apply_plan(plan=plan, host=host)
    again: List[scan.SysfsWrite] = []
    with pytest.raises(scan.ScanTimeout) as caught:
        scan.wait_for_devices(plan=plan, host=host, timeout=5, scanned=writes, again=again)
    assert again == []
    assert caught.value.details["recovery"] == {"3:0:0:1": "session 2 (host3) was FAILED"}
    assert "The session went into recovery during the wait (session 2 (host3) was FAILED)" in caught.value.msg
    assert "Scanned: host3 '0 0 1'." in caught.value.msg


def test_a_scan_written_to_a_session_in_recovery_is_written_again_even_if_it_is_back_before_the_wait(
    tmp_path: Path,
) -> None:
    fake = world(tmp_path)
    attach_lun(fake, "2")
    session = next(s for s in fake.sessions if s["host"] == 3)
    real = fake.write

    def write(path: str, text: str) -> None:  # the kernel ignores the scan; the session is back right after
        if path.endswith("/host3/scan") and session["state"] != "LOGGED_IN":
            fake.writes.append((path[len(str(fake.root)) :], text))
            session["state"] = "LOGGED_IN"
            fake.rebuild()
            return
        real(path, text)

    fake.write = write  # type: ignore[method-assign]
    fake.writes.clear()
    host = fake.host()
    snapshot = host.snapshot()
    sessions = tuple(sorted(snapshot.sessions, key=lambda s: s.sid))
    items = tuple(scan.session_item(snapshot=snapshot, session=s, lun=1, array_lun=1) for s in sessions)
    plan = scan.ScanPlan(items=items, sessions=sessions)
    session["state"] = "FAILED"  # between the plan and the write: the portal went away
    fake.rebuild()
    writes = scan.apply_plan(plan=plan, host=host)
    assert [w.session_state for w in writes] == ["LOGGED_IN", "FAILED"]
    again: List[scan.SysfsWrite] = []
    after, _waited = scan.wait_for_devices(plan=plan, host=host, timeout=5, scanned=writes, again=again)
    assert [w.address for w in again] == ["3:0:0:1"] and scans_to(fake, 3) == ["0 0 1", "0 0 1"]
    assert after.device_at(hctl=items[1].hctl) is not None  # type: ignore[arg-type]


def test_a_scan_written_again_that_the_kernel_refuses_is_reported_with_its_error(tmp_path: Path) -> None:
    fake = world(tmp_path)
    attach_lun(fake, "2")
    session = next(s for s in fake.sessions if s["host"] == 3)
    real = fake.write
    refused: List[str] = []

    def write(path: str, text: str) -> None:  # the first scan is dropped; the one written again is refused
        if path.endswith("/host3/scan"):
            if session["state"] != "LOGGED_IN":
                session["state"] = "LOGGED_IN"
                fake.rebuild()
                return
            refused.append(text)
            raise OSError(errno.ENODEV, "No such device")
        real(path, text)

    fake.write = write  # type: ignore[method-assign]
    host = fake.host()
    snapshot = host.snapshot()
    sessions = tuple(sorted(snapshot.sessions, key=lambda s: s.sid))
    items = tuple(scan.session_item(snapshot=snapshot, session=s, lun=1, array_lun=1) for s in sessions)
    plan = scan.ScanPlan(items=items, sessions=sessions)
    session["state"] = "FAILED"
    fake.rebuild()
    writes = scan.apply_plan(plan=plan, host=host)
    with pytest.raises(scan.ScanWriteError, match=r"host3/scan failed: No such device \(after 2 write") as info:
        scan.wait_for_devices(plan=plan, host=host, timeout=5, scanned=writes, again=[])
    assert [(e["hctl"], e.get("error")) for e in info.value.details["scanned"]] == [
        ("2:0:0:1", None),
        ("3:0:0:1", None),
        ("3:0:0:1", "No such device"),
    ]
    assert refused == ["0 0 1"]
