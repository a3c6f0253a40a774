# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The attach/detach procedure over the FC transport, on a fake host with fc_hosts, remote ports and an array."""

from __future__ import annotations

import dataclasses
import errno
import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _attach as attach
from ansible_collections.lunsafe.san.plugins.module_utils import _transport_fc as transport_fc
from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError
from ansible_collections.lunsafe.san.plugins.module_utils._host import WriteTimeout
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fake_host import wwid_of
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fc_fake_host import (
    I1,
    I2,
    T1,
    T2,
    FakeFcHost,
    fabric,
)


def world(tmp_path: Path, **kwargs: Any) -> FakeFcHost:
    kwargs.setdefault("luns", {T1: {n: wwid_of(n) for n in range(4)}, T2: {n: wwid_of(n) for n in range(4)}})
    for key, value in fabric().items():
        kwargs.setdefault(key, value)
    return FakeFcHost(tmp_path, **kwargs)


def request(tmp_path: Path, **params: Any) -> attach.Request:
    params.setdefault("targets", [T1, T2])
    params.setdefault("timeout", 10)
    if "lun" not in params and "luns" not in params:
        params["lun"] = "1"
    rules = tmp_path / "rules.d"
    rules.mkdir(exist_ok=True)

    def parse() -> Any:
        part, warnings = transport_fc.parse(params)
        return transport_fc.FcRequest(wwpns=part.wwpns, initiators=part.initiators, rules_dirs=(str(rules),)), warnings

    return attach.common_request(params, parse_transport=parse)


def run(fake: FakeFcHost, *, state: str = "present", check: bool = False, **params: Any) -> attach.Outcome:
    work = attach.detach if state == "absent" else attach.attach
    return work(fake.host(), request(fake.tmp_path, state=state, **params), check=check, timings={})


def scans(fake: FakeFcHost) -> List[str]:
    return [f"{path.split('/')[3]} {text}" for path, text in fake.writes if path.endswith("/scan")]


def deletes(fake: FakeFcHost) -> List[str]:
    return [path.split("/")[3] for path, _text in fake.writes if path.endswith("/delete")]


def entry(outcome: attach.Outcome) -> Dict[str, Any]:
    found: Dict[str, Any] = outcome.result["luns"][0]
    return found


# ---------------------------------------------------------------------------------------------------------
# the request


def test_wwpns_are_normalised_and_deduplicated_and_bad_ones_refused(tmp_path: Path) -> None:
    part, _warnings = transport_fc.parse({"targets": ["20:00:52:54:00:FC:00:03", "0x2000525400fc0003"]})
    assert part.wwpns == (T1,) and part.initiators == ()
    assert part.journal_part() == {"targets": [T1], "initiators": []}
    assert part.secrets() == [] and part.module == "fc_lun_attach" and part.targets == (T1,)
    single, _warnings = transport_fc.parse({"targets": T2, "initiators": "2000525400fc0001"})
    assert single.wwpns == (T2,) and single.initiators == (I1,)
    with pytest.raises(InputError, match="targets must name at least one WWPN"):
        transport_fc.parse({"targets": []})
    with pytest.raises(InputError, match="targets"):
        transport_fc.parse({"targets": ["0x12"]})


def test_journal_request_names_targets_initiators_and_luns(tmp_path: Path) -> None:
    req = request(tmp_path, luns=[1, 2], initiators=[I2])
    assert req.journal_request(state="present") == {
        "state": "present",
        "targets": [T1, T2],
        "initiators": [I2],
        "luns": [1, 2],
    }


# ---------------------------------------------------------------------------------------------------------
# attach


def test_attach_scans_exactly_each_nexus_and_builds_one_map_of_four_paths(tmp_path: Path) -> None:
    fake = world(tmp_path)
    outcome = run(fake)
    assert outcome.error is None, outcome.error
    # one "C T L" line per (fc_host, target port): never a wildcard, never another LUN
    assert scans(fake) == ["host2 0 0 1", "host2 0 1 1", "host3 0 0 1", "host3 0 1 1"]
    assert fake.refused == []
    lun = entry(outcome)
    assert lun["state"] == "attached" and lun["hctl"] == ["2:0:0:1", "2:0:1:1", "3:0:0:1", "3:0:1:1"]
    assert lun["wwid"] == wwid_of(1) and len(lun["dm"]["slaves"]) == 4
    assert [(p["hctl"], p["initiator"], p["target"], p["rport"]) for p in lun["paths"]] == [
        ("2:0:0:1", I1, T1, "rport-2:0-0"),
        ("2:0:1:1", I1, T2, "rport-2:0-1"),
        ("3:0:0:1", I2, T1, "rport-3:0-0"),
        ("3:0:1:1", I2, T2, "rport-3:0-1"),
    ]
    assert {d["hctl"].split(":")[3] for d in fake.devices} == {"1"}  # nothing else appeared
    assert [p["rport"] for p in outcome.result["fc_paths"]] == [
        "rport-2:0-0",
        "rport-2:0-1",
        "rport-3:0-0",
        "rport-3:0-1",
    ]
    assert outcome.result["changed"] is True and "sessions" not in outcome.result
    assert outcome.result["timings"]["resolve"] >= 0


def test_attach_again_changes_nothing_and_writes_nothing(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run(fake)
    fake.writes.clear()
    again = run(fake)
    assert again.error is None and again.result["changed"] is False
    assert fake.writes == [] and entry(again)["state"] == "attached"


def test_an_offline_path_of_the_lun_is_set_running_and_rescanned(tmp_path: Path) -> None:
    # seen in the lab: a target port gone past dev_loss_tmo with I/O queued, and SCSI error handling left two
    # of the LUN's devices offline; the port came back Online, the kernel kept them offline for good
    fake = world(tmp_path)
    run(fake)
    device = next(d for d in fake.devices if d["hctl"] == "2:0:0:1")
    device["state"] = "offline"
    fake.rebuild()
    fake.writes.clear()
    planned = run(fake, check=True)
    assert planned.error is None and planned.result["changed"] is True and fake.writes == []
    assert [(w["kind"], w["hctl"], w["line"]) for w in planned.result["scanned"]] == [
        ("state", "2:0:0:1", "running\n"),
        ("rescan", "2:0:0:1", "1"),
    ]
    outcome = run(fake)
    assert outcome.error is None and outcome.result["changed"] is True
    assert fake.writes == [
        ("/class/scsi_device/2:0:0:1/device/state", "running\n"),
        ("/class/scsi_device/2:0:0:1/device/rescan", "1"),
    ]
    assert device["state"] == "running" and entry(outcome)["state"] == "attached"
    assert any("2:0:0:1 was offline" in w for w in outcome.result["warnings"])
    fake.writes.clear()
    again = run(fake)
    assert again.result["changed"] is False and fake.writes == []


def test_an_offline_device_the_kernel_holds_fails_its_lun_only(tmp_path: Path) -> None:
    # seen in the lab: setting an offline device running rescans it inside the write, and with the target port
    # silent (SCSI error handling busy on the host) the write did not return for minutes; the bounded writer
    # raises WriteTimeout instead, and the run fails that LUN, naming the device, and attaches the other one
    fake = world(tmp_path)
    run(fake, luns=["1", "2"])
    device = next(d for d in fake.devices if d["hctl"] == "2:0:0:1")
    device["state"] = "offline"
    fake.rebuild()
    fake.writes.clear()

    def writer(path: str, text: str) -> None:
        if path.endswith("2:0:0:1/device/state"):
            raise WriteTimeout(errno.ETIMEDOUT, f"the kernel did not return from writing to {path} within 120s", path)
        fake.write(path, text)

    host = dataclasses.replace(fake.host(), writer=writer)
    outcome = attach.attach(host, request(tmp_path, luns=["1", "2"]), check=False, timings={})
    by_lun = {e["lun"]: e for e in outcome.result["luns"]}
    assert by_lun["1"]["state"] == "failed" and "could not bring offline device 2:0:0:1 back" in by_lun["1"]["msg"]
    assert "within 120s" in by_lun["1"]["msg"] and by_lun["2"]["state"] == "attached"
    assert outcome.result["scanned"][0]["error"].startswith("the kernel did not return")
    assert not any(path.endswith("/rescan") for path, _text in fake.writes)  # nothing more for that device
    assert device["state"] == "offline"  # a LUN that existed before the run is never rolled back


def test_an_offline_path_that_now_answers_with_another_lu_is_refused(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run(fake)
    for device in fake.devices:
        if device["hctl"].startswith("2:0:0:"):
            device["state"] = "offline"
    fake.luns[T1][1] = wwid_of(9)  # the array put a new LU behind LUN 1 of one target port meanwhile
    fake.rebuild()
    outcome = run(fake)
    assert outcome.error is not None and "carries another LU's identity" in outcome.error.msg
    assert ("state", "2:0:0:1", "running\n") in [(w["kind"], w["hctl"], w["line"]) for w in outcome.result["scanned"]]


def test_check_mode_plans_the_scans_and_writes_nothing(tmp_path: Path) -> None:
    fake = world(tmp_path)
    outcome = run(fake, check=True)
    assert outcome.error is None and outcome.result["changed"] is True
    assert [w["hctl"] for w in outcome.result["scanned"]] == ["2:0:0:1", "2:0:1:1", "3:0:0:1", "3:0:1:1"]
    assert fake.writes == [] and entry(outcome)["state"] == "absent"


def test_initiators_choose_the_fc_hosts(tmp_path: Path) -> None:
    fake = world(tmp_path)
    outcome = run(fake, initiators=[I2])
    assert outcome.error is None
    assert scans(fake) == ["host3 0 0 1", "host3 0 1 1"]
    assert entry(outcome)["hctl"] == ["3:0:0:1", "3:0:1:1"]


def test_an_unknown_initiator_is_diagnosed_before_any_write(tmp_path: Path) -> None:
    fake = world(tmp_path)
    outcome = run(fake, initiators=["0x2000525400fc00ff"])
    assert outcome.error is not None and "0x2000525400fc00ff is not an fc_host" in outcome.error.msg
    assert "nothing was changed" in outcome.error.msg and fake.writes == []


def test_an_unzoned_target_wwpn_is_diagnosed_before_any_write(tmp_path: Path) -> None:
    fake = world(tmp_path)
    outcome = run(fake, targets=[T1, "0x2000525400fc00ee"])
    assert outcome.error is not None
    assert "0x2000525400fc00ee is not visible from host2" in outcome.error.msg
    assert outcome.error.details["unmatched_targets"] == ["0x2000525400fc00ee"]
    assert fake.writes == [] and outcome.result["failed_luns"] == []
    checked = run(fake, check=True, targets=["0x2000525400fc00ee"])  # the same diagnosis in check mode
    assert checked.error is not None and "not visible" in checked.error.msg


def test_a_blocked_remote_port_fails_the_attach_naming_it(tmp_path: Path) -> None:
    fake = world(tmp_path)
    fake.rports[1]["port_state"] = "Blocked"  # rport-2:0-1: host2 -> T2
    fake.rebuild()
    outcome = run(fake)
    assert outcome.error is not None
    assert "rport-2:0-1 is Blocked" in outcome.error.msg and fake.writes == []


def test_a_port_that_is_no_fcp_target_is_named(tmp_path: Path) -> None:
    fake = world(tmp_path)
    for rport in fake.rports:
        if rport["port_name"] == T2:
            rport["roles"] = "FCP Initiator"
    fake.rebuild()
    outcome = run(fake)
    assert outcome.error is not None and "not an FCP target" in outcome.error.msg and fake.writes == []


def test_an_fc_host_not_zoned_to_a_target_is_no_problem_without_initiators(tmp_path: Path) -> None:
    fake = world(tmp_path)
    fake.rports = [r for r in fake.rports if not (r["host"] == 3 and r["port_name"] == T2)]
    fake.rebuild()
    outcome = run(fake)
    assert outcome.error is None
    assert entry(outcome)["hctl"] == ["2:0:0:1", "2:0:1:1", "3:0:0:1"]
    assert any("not visible from host3" in p for p in outcome.result["fc_problems"])
    fake.writes.clear()
    asked = run(fake, initiators=[I1, I2], lun="2")  # the user asked for host3 -> T2 as well
    assert asked.error is not None and "not visible from host3" in asked.error.msg and fake.writes == []


def test_an_unpresented_lun_is_diagnosed_at_once_and_leaves_nothing(tmp_path: Path) -> None:
    fake = world(tmp_path)
    fake.masked = {(I1, T1, 2), (I1, T2, 2), (I2, T1, 2), (I2, T2, 2)}
    start = fake.clock.now
    outcome = run(fake, lun="2", timeout=30)
    assert outcome.error is not None
    assert "the scans of 2:0:0:2 (" in outcome.error.msg and f"3:0:1:2 ({I2} -> {T2})" in outcome.error.msg
    assert "created nothing: the array does not present LUN 2 through these" in outcome.error.msg
    assert fake.clock.now - start < 30  # no wait for a device that cannot come
    assert fake.devices == [] and entry(outcome)["state"] == "failed"


def test_a_lun_presented_on_some_paths_only_is_rolled_back(tmp_path: Path) -> None:
    fake = world(tmp_path)
    fake.masked = {(I2, T2, 1)}
    outcome = run(fake)
    assert outcome.error is not None
    assert f"the scan of 3:0:1:1 ({I2} -> {T2}) created nothing" in outcome.error.msg
    assert f"does not present LUN 1 to initiator {I2} through target {T2}" in outcome.error.msg
    assert fake.devices == [] and fake.maps == []
    assert outcome.result["rolled_back"] == ["flushed map mpatha", "deleted sda", "deleted sdb", "deleted sdc"]
    assert deletes(fake) == ["2:0:0:1", "2:0:1:1", "3:0:0:1"]


def test_a_lun_above_the_hba_limit_fails_before_any_write(tmp_path: Path) -> None:
    fake = world(tmp_path)
    fake.fc_hosts[0].update(proc_name="lpfc", max_lun=127)
    fake.hosts[0]["proc_name"] = "lpfc"
    fake.luns[T1][200] = wwid_of(200)
    fake.rebuild()
    outcome = run(fake, lun="200")
    assert (
        outcome.error is not None and "LUN 200 is above the highest LUN host2 (lpfc) accepts (127" in outcome.error.msg
    )
    assert fake.writes == [] and fake.refused == []


def test_a_port_that_goes_away_during_the_scan_is_named(tmp_path: Path) -> None:
    fake = world(tmp_path)
    real = fake.write

    def write(path: str, text: str) -> None:
        if path.endswith("host3/scan"):
            fake.rports[2]["port_state"] = "Blocked"  # rport-3:0-0 drops before the kernel scans it
            fake.rebuild()
        real(path, text)

    fake.write = write  # type: ignore[method-assign]
    outcome = run(fake)
    assert outcome.error is not None
    assert "the scan of 3:0:0:1 reached no remote port (rport-3:0-0 is Blocked" in outcome.error.msg
    assert fake.devices == []


def test_a_device_with_another_lus_identity_at_the_address_is_refused(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run(fake)
    for target in (T1, T2):
        fake.luns[target][1] = wwid_of(1, generation=1)  # the array gave LUN 1 to another LU
    fake.writes.clear()
    outcome = run(fake)
    assert outcome.error is not None and "carries another LU's identity" in outcome.error.msg
    assert fake.writes == []


def test_a_wrong_expected_wwid_rolls_the_new_paths_back(tmp_path: Path) -> None:
    fake = world(tmp_path)
    outcome = run(fake, expected_wwid=wwid_of(3))
    assert outcome.error is not None and f"not the expected {wwid_of(3)}" in outcome.error.msg
    assert fake.devices == []


def test_warnings_about_scan_mode_and_ua_rules_come_once_per_run(tmp_path: Path) -> None:
    fake = world(tmp_path, scan_mode="async")
    rules = tmp_path / "rules.d"
    rules.mkdir()
    (rules / "90-scsi-ua.rules").write_text(
        'ACTION=="change", ENV{SDEV_UA}=="REPORTED_LUNS_DATA_HAS_CHANGED", RUN+="scan-scsi-target $env{DEVPATH}"\n',
        encoding="utf-8",
    )
    outcome = run(fake, luns=[1, 2, 3])
    assert outcome.error is None
    warnings = outcome.result["warnings"]
    assert len([w for w in warnings if "scsi_mod.scan" in w]) == 1
    assert len([w for w in warnings if "90-scsi-ua.rules" in w]) == 1


# ---------------------------------------------------------------------------------------------------------
# detach


def test_detach_removes_every_path_of_the_wwid_on_every_fc_host(tmp_path: Path) -> None:
    fake = world(tmp_path, fc_hosts=[], rports=[])
    topology = fabric(hosts=((2, I1), (3, I2), (4, "0x2000525400fc0009")))
    fake.fc_hosts, fake.rports = topology["fc_hosts"], topology["rports"]
    fake.hosts = [{"host": h["host"], "iscsi": False, "proc_name": "fcoe"} for h in fake.fc_hosts]
    fake.rebuild()
    run(fake, initiators=[I1, I2])
    fake.fc_device(4, 0, 0, 1)  # a path through a third HBA the request does not name: same LU
    assert len(fake.maps[0]["slaves"]) == 5
    outcome = run(fake, state="absent", initiators=[I1, I2])
    assert outcome.error is None, outcome.error
    assert fake.devices == [] and fake.maps == []
    lun = entry(outcome)
    assert lun["state"] == "detached" and lun["removed"]["map"] == "mpatha" and len(lun["removed"]["paths"]) == 5
    assert "4:0:0:1" in lun["hctl"]
    again = run(fake, state="absent")
    assert again.error is None and again.result["changed"] is False and entry(again)["state"] == "absent"


def test_detach_check_mode_changes_nothing(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run(fake)
    fake.writes.clear()
    outcome = run(fake, state="absent", check=True)
    assert outcome.error is None and outcome.result["changed"] is True and fake.writes == []
    assert [step["action"] for step in entry(outcome)["plan"]][:1] == ["flush_map"]


def test_detach_with_a_wrong_expected_wwid_is_refused_whatever_force_says(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run(fake)
    fake.writes.clear()
    outcome = run(fake, state="absent", expected_wwid=wwid_of(2), force=True)
    assert outcome.error is not None and "nothing was removed" in outcome.error.msg
    assert "not overridden by force" in outcome.error.msg and fake.writes == []
    assert len(fake.devices) == 4


def test_detach_of_paths_behind_a_blocked_port_needs_force(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run(fake)
    for device in fake.devices:
        if device["hctl"].startswith("3:0:0:"):
            device["state"] = "blocked"
    fake.rports[2]["port_state"] = "Blocked"
    fake.rebuild()
    refused = run(fake, state="absent")
    assert refused.error is not None and "blocked paths" in refused.error.msg
    forced = run(fake, state="absent", force=True)
    assert forced.error is None and fake.devices == []


# ---------------------------------------------------------------------------------------------------------
# the lab's real topology (fixtures captured by tests/lab/capture_fc_fixtures.py, kernel 6.1, FCoE VN2VN):
# initiators host2/host3, the array's target-mode ports host4/host5 on the same machine, each port seeing the
# others (the target ports also as plain initiators)

FIXTURES = Path(__file__).parent / "fixtures" / "fc"


def fixture_fabric(name: str) -> Dict[str, Any]:
    files: Dict[str, str] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))["files"]
    hosts, rports = [], []
    for path, text in sorted(files.items()):
        parts = path.split("/")
        if parts[3] == "fc_host" and parts[5] == "port_name":
            state = files[f"/sys/class/fc_host/{parts[4]}/port_state"]
            hosts.append({"host": int(parts[4][4:]), "port_name": text, "port_state": state})
        if parts[3] == "fc_remote_ports" and parts[5] == "port_name":
            host_channel, number = parts[4][len("rport-") :].split("-")
            host, channel = host_channel.split(":")
            attr = f"/sys/class/fc_remote_ports/{parts[4]}/"
            rports.append(
                {
                    "host": int(host),
                    "channel": int(channel),
                    "number": int(number),
                    "port_name": text,
                    "roles": files[attr + "roles"],
                    "port_state": files[attr + "port_state"],
                    "scsi_target_id": int(files[attr + "scsi_target_id"]),
                }
            )
    return {"fc_hosts": hosts, "rports": rports, "scan_mode": files["/sys/module/scsi_mod/parameters/scan"]}


def test_the_lab_topology_gives_exactly_the_four_initiator_paths(tmp_path: Path) -> None:
    fake = world(tmp_path, **fixture_fabric("attached"))
    outcome = run(fake)
    assert outcome.error is None, outcome.error
    # rport-H:0-1 is target id 0 (T1), rport-H:0-2 target id 1 (T2): no scan of the target-mode hosts 4 and 5
    assert scans(fake) == ["host2 0 0 1", "host2 0 1 1", "host3 0 0 1", "host3 0 1 1"]
    assert [p["rport"] for p in entry(outcome)["paths"]] == ["rport-2:0-1", "rport-2:0-2", "rport-3:0-1", "rport-3:0-2"]
    assert any("host4" in p for p in outcome.result["fc_problems"])  # named, not a failure
    assert run(fake, initiators=[I1, I2]).error is None


def test_the_lab_topology_with_a_port_down_names_the_blocked_remote_port(tmp_path: Path) -> None:
    fake = world(tmp_path, **fixture_fabric("port_down"))
    outcome = run(fake)
    assert outcome.error is not None and fake.writes == []
    assert "rport-2:0-1 is Blocked" in outcome.error.msg and "nothing was changed" in outcome.error.msg


def test_the_lab_topology_with_a_port_gone_past_dev_loss_tmo_names_it_not_present(tmp_path: Path) -> None:
    # the kernel clears a Not Present port's roles: it is still the target port that is missing, not a port
    # in another role to pass over, so the attach fails as for a Blocked port instead of using half the paths
    fake = world(tmp_path, **fixture_fabric("not_present"))
    outcome = run(fake)
    assert outcome.error is not None and fake.writes == []
    assert "rport-2:0-1 is Not Present" in outcome.error.msg and "rport-3:0-1 is Not Present" in outcome.error.msg
    assert "not an FCP target" not in outcome.error.msg


def test_a_port_not_present_on_one_fabric_only_is_not_passed_over(tmp_path: Path) -> None:
    # host2 lost target port A past dev_loss_tmo (roles cleared), host3 still sees it Online: without the
    # Not Present port counted as a target, the attach went on through the other paths without a word
    fabric = fixture_fabric("not_present")
    for rport in fabric["rports"]:
        if rport["host"] == 3 and rport["number"] == 1:
            rport.update(roles="FCP Target, FCP Initiator", port_state="Online")
    fake = world(tmp_path, **fabric)
    outcome = run(fake)
    assert outcome.error is not None and fake.writes == []
    assert "rport-2:0-1 is Not Present" in outcome.error.msg
    assert "rport-3:0-1" not in outcome.error.msg


def test_detach_of_paths_that_disagree_names_target_ports(tmp_path: Path) -> None:
    fake = world(tmp_path)
    run(fake)
    odd = next(d for d in fake.devices if d["hctl"] == "3:0:1:1")
    odd["wwid"] = "naa." + wwid_of(1, generation=2)[1:]  # one path now reports another LU
    fake.rebuild()
    outcome = run(fake, state="absent")
    assert outcome.error is not None and "detach through one target port at a time" in outcome.error.msg
    assert len(fake.devices) == 4
