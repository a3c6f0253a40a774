# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How much work one run does: the commands and waits of the ``profile`` result key, counted.

Each module runs main() over the fake host (iSCSI: two portals; FC: two fc_hosts and two target ports, four
paths). The expected command lists are the work that remains after the cuts of issue 26; a change that adds
a command to one of these runs fails here, and must say why in this file.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List

import pytest

from ansible_collections.lunsafe.san.plugins.modules import (
    fc_lun_attach,
    iscsi_lun_attach,
    multipath_flush,
    scsi_targeted_scan,
)
from ansible_collections.lunsafe.san.tests.unit.compat import patch_module_args
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fake_host import IQN, FakeHost, wwid_of
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fc_fake_host import T1, T2, FakeFcHost, fabric

P1, P2 = "127.0.0.1:3260", "127.0.0.2:3260"
PORTALS = ["127.0.0.1", "127.0.0.2"]


def run_main(module: ModuleType, fake: FakeHost, capsys: pytest.CaptureFixture[str], **args: Any) -> Dict[str, Any]:
    """One module run with a profile of its own; the result."""
    if "lock_file" in module.ARGUMENT_SPEC:
        args.setdefault("lock_file", str(fake.tmp_path / "lock"))
    fake.runner.restart_profile()
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main(make_host=lambda runner: fake.host())
    result: Dict[str, Any] = json.loads(capsys.readouterr().out)
    assert result.get("failed") is not True, result.get("msg")
    return result


def commands(result: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> List[str]:
    """The names of the commands the run ran (shown with ``pytest -s``)."""
    profile = result["profile"]
    names = [step["what"] for step in profile["steps"] if step["kind"] == "command"]
    assert profile["commands"] == len(names) and profile["dropped"] == 0
    assert profile["waits"] == sum(1 for step in profile["steps"] if step["kind"] == "wait")
    with capsys.disabled():
        print(f"\n{profile['commands']} commands, {profile['waits']} waits: {names}")
    return names


def waits(result: Dict[str, Any]) -> List[str]:
    return [f"{step['what']}: {step['ended']}" for step in result["profile"]["steps"] if step["kind"] == "wait"]


def iscsi_world(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path, luns={IQN: {n: wwid_of(n) for n in range(4)}}, portals={P1: [IQN], P2: [IQN]})


def test_iscsi_attach_and_detach_over_two_portals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = iscsi_world(tmp_path)
    lun = {"target": IQN, "portals": PORTALS, "timeout": 10}
    first = run_main(iscsi_lun_attach, fake, capsys, lun="2", **lun)  # from no session: records, logins
    assert commands(first, capsys) == [
        "multipathd show status",
        "iscsiadm -m node -o show -S",
        "iscsiadm -m node -o show -S",
        *[
            name
            for _portal in PORTALS
            for name in (
                "iscsiadm -m node -o new",
                # every key in one update (manual scan first), one process per record
                "iscsiadm -m node -o update -n node.session.scan (+3 keys)",
            )
        ],
        "iscsiadm -m node --login",
        "iscsiadm -m node --login",
    ]
    # sessions up, records as wanted: one probe of multipathd and one read of each node record, nothing else
    attached = run_main(iscsi_lun_attach, fake, capsys, lun="1", **lun)
    assert attached["changed"] is True and len(attached["devices"]) == 2
    assert commands(attached, capsys) == [
        "multipathd show status",
        "iscsiadm -m node -o show -S",
        "iscsiadm -m node -o show -S",
    ]
    assert waits(attached) == ["logged-in sessions: ready", "block devices: ready", "multipath maps: ready"]
    assert {step["method"] for step in attached["profile"]["steps"] if step["kind"] == "wait"} == {"sysfs-poll"}
    # detach while LUN 2 keeps the sessions: the map's identity, its flush, one question to multipathd for both
    # paths (it was one per path)
    detached = run_main(iscsi_lun_attach, fake, capsys, lun="1", state="absent", **lun)
    assert detached["changed"] is True
    assert commands(detached, capsys) == [
        "dmsetup info",
        "dmsetup table",
        "dmsetup status",
        "multipath -f",
        "multipathd show paths",
    ]
    names = [d["name"] for d in attached["devices"]]
    assert waits(detached) == [
        "the map to disappear: ready",
        *[f"{d['name']} ({d['hctl']}) to leave sysfs: ready" for d in attached["devices"]],
        f"multipathd to drop {names[0]}, {names[1]}: ready",
    ]
    last = run_main(iscsi_lun_attach, fake, capsys, lun="2", state="absent", **lun)  # the last LUN: logouts
    assert commands(last, capsys) == [
        "dmsetup info",
        "dmsetup table",
        "dmsetup status",
        "multipath -f",
        "multipathd show paths",
        # the logouts side by side, then each record deleted in the order of the paths (the delete's rc says
        # whether there was one)
        *["iscsiadm -m node --logout"] * 2,
        *["iscsiadm -m node -o delete"] * 2,
    ]


def test_fc_attach_and_detach_over_four_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeFcHost(
        tmp_path, luns={T1: {n: wwid_of(n) for n in range(4)}, T2: {n: wwid_of(n) for n in range(4)}}, **fabric()
    )
    lun = {"targets": [T1, T2], "timeout": 10}
    attached = run_main(fc_lun_attach, fake, capsys, lun="1", **lun)
    assert len(attached["hctl"]) == 4
    assert commands(attached, capsys) == ["multipathd show status"]
    detached = run_main(fc_lun_attach, fake, capsys, lun="1", state="absent", **lun)
    assert commands(detached, capsys) == [
        "dmsetup info",
        "dmsetup table",
        "dmsetup status",
        "multipath -f",
        "multipathd show paths",
    ]


def test_targeted_scan_and_flush(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = iscsi_world(tmp_path)
    for portal in (P1, P2):
        fake.login(IQN, portal)
    scanned = run_main(scsi_targeted_scan, fake, capsys, target=IQN, luns=[1], timeout=5)
    assert scanned["changed"] is True and len(scanned["devices"]) == 2
    assert commands(scanned, capsys) == []  # sysfs and udev only
    assert waits(scanned) == ["block devices: ready"]
    flushed = run_main(multipath_flush, fake, capsys, map=fake.maps[0]["name"])
    assert flushed["changed"] is True and len(flushed["paths_removed"]) == 2
    # the map's identity (name, uuid, open count; table; status), its flush, one question to multipathd for
    # both paths (it was one per path)
    assert commands(flushed, capsys) == [
        "dmsetup info",
        "dmsetup table",
        "dmsetup status",
        "multipath -f",
        "multipathd show paths",
    ]


def test_a_failed_run_returns_its_profile_up_to_the_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = iscsi_world(tmp_path)
    args = {"target": IQN, "portals": PORTALS, "timeout": 10, "lun": "1", "expected_wwid": wwid_of(3)}
    args["lock_file"] = str(fake.tmp_path / "lock")
    fake.runner.restart_profile()
    with patch_module_args(args), pytest.raises(SystemExit):
        iscsi_lun_attach.main(make_host=lambda runner: fake.host())
    failed: Dict[str, Any] = json.loads(capsys.readouterr().out)
    assert failed["failed"] is True and "expected" in failed["msg"]
    names = [step["what"] for step in failed["profile"]["steps"] if step["kind"] == "command"]
    # the logins happened, then the identity check refused the LUN and the rollback removed its devices
    assert names.count("iscsiadm -m node --login") == 2 and failed["profile"]["commands"] == len(names)
    assert [step["what"] for step in failed["profile"]["steps"] if step["kind"] == "wait"][:2] == [
        "logged-in sessions",
        "block devices",
    ]
    # a refusal before anything ran has an empty profile, still with its keys
    args["timeout"] = -1
    fake.runner.restart_profile()
    with patch_module_args(args), pytest.raises(SystemExit):
        iscsi_lun_attach.main(make_host=lambda runner: fake.host())
    refused: Dict[str, Any] = json.loads(capsys.readouterr().out)
    assert refused["failed"] is True and refused["profile"]["commands"] == 0 and refused["profile"]["steps"] == []
