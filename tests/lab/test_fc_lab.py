# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's Fibre Channel array (FCoE VN2VN + LIO tcm_fc, labctl fc-*) on the booted VM: what FC cases rely on.

Each test starts from `labctl reset` (FC included): no FC SCSI device, scan mode sync, dev_loss_tmo 60. Devices
are made only by raw targeted `C T L` writes to /sys/class/scsi_host/hostH/scan, never a wildcard."""

from __future__ import annotations

import json
import re
import shlex
import time

import pytest


@pytest.fixture
def fc(lab):
    status = lab.array(["reset"])
    assert status["leftover_devices"] == [], status
    assert status["fc"]["luns"] == [0, 1, 2, 3], status["fc"]
    return lab


def status(lab) -> dict:
    return lab.array(["fc-status"])


def scan(lab, host: int, target: int, lun: int) -> None:
    """A targeted scan of exactly host H, channel 0, target T, LUN L."""
    lab.ssh(["sh", "-c", f"printf '0 {target} {lun}' > /sys/class/scsi_host/host{host}/scan"])
    lab.ssh(["udevadm", "settle", "--timeout=20"], timeout=40, check=False)


def target_ids(initiator: dict) -> dict:
    """Target WWPN -> scsi_target_id of an initiator's FCP Target rports."""
    return {r["port_name"]: r["scsi_target_id"] for r in initiator["rports"] if "FCP Target" in r["roles"]}


def devices(st: dict, lun: int | None = None) -> list:
    found = [d for i in st["initiators"] for d in i["devices"]]
    return [d for d in found if lun is None or d["hctl"].endswith(f":{lun}")]


def attach_all_paths(lab, lun: int) -> list:
    st = status(lab)
    for initiator in st["initiators"]:
        for target in target_ids(initiator).values():
            scan(lab, initiator["host"], target, lun)
    return devices(status(lab), lun)


def read_fails(lab, block: str) -> bool:
    cmd = f"dd if=/dev/{shlex.quote(block)} of=/dev/null bs=4096 count=1 iflag=direct"
    return lab.ssh(["sh", "-c", cmd], check=False, timeout=120).returncode != 0


def test_up_state(fc):
    """After up/reset: 2 initiator ports each seeing both target ports Online with target ids 0 and 1, the LUNs
    mapped to both initiators on both target ports, no FC device, kernel default scan mode."""
    st = status(fc)
    assert st["scan_mode"] == "sync"
    assert [i["port_name"] for i in st["initiators"]] == ["0x2000525400fc0001", "0x2000525400fc0002"]
    assert [t["port_name"] for t in st["targets"]] == ["0x2000525400fc0003", "0x2000525400fc0004"]
    for initiator in st["initiators"]:
        assert initiator["port_state"] == "Online"
        # target ids 0 and 1, in the order the target ports logged in (VN2VN discovery: either may be first)
        assert sorted(target_ids(initiator)) == ["0x2000525400fc0003", "0x2000525400fc0004"]
        assert sorted(target_ids(initiator).values()) == [0, 1]
        assert all(r["port_state"] == "Online" for r in initiator["rports"])
        assert initiator["dev_loss_tmo"] == "60"
        assert initiator["mtu"] == "9000"
        for target in ("0x2000525400fc0003", "0x2000525400fc0004"):
            assert st["mapping"][initiator["port_name"]][target] == {"0": 0, "1": 1, "2": 2, "3": 3}
    assert devices(st) == []
    assert [t["devices"] for t in st["targets"]] == [[], []]
    wwids = [lu["wwid"] for lu in st["luns"].values()]
    assert len(set(wwids)) == 4


def test_four_paths_after_targeted_scans(fc):
    found = attach_all_paths(fc, 1)
    assert sorted(d["hctl"] for d in found) == ["2:0:0:1", "2:0:1:1", "3:0:0:1", "3:0:1:1"]
    wwid = status(fc)["luns"]["1"]["wwid"]
    assert {d["wwid"] for d in found} == {"naa." + wwid[1:]}
    assert devices(status(fc), 0) == []  # nothing else appeared
    names = fc.ssh(["ls", "/dev/disk/by-path"]).stdout.split()
    # by-path names carry the FC NIC's PCI address (e1000 NICs are PCI functions); which slot depends on the
    # other NICs of the VM (a fleet guest has one more), so only its form is checked
    assert any(re.fullmatch(r"pci-0000:00:[0-9a-f]{2}\.0-fc-0x2000525400fc0003-lun-1", n) for n in names), names
    assert sum(1 for n in names if "-fc-0x" in n) == 4


def test_unmap_fails_io(fc):
    found = attach_all_paths(fc, 2)
    assert len(found) == 4
    gone = fc.array(["fc-unmap", "--lun", "2"])
    assert len(gone["removed"]) == 4  # 2 initiators x 2 target ports
    mapping = status(fc)["mapping"]
    assert all("2" not in per_target for targets in mapping.values() for per_target in targets.values())
    assert all(read_fails(fc, d["block"]) for d in found)
    deadline = time.monotonic() + 60
    while True:  # multipathd's checker fails the paths of the unmapped LU
        paths = fc.ssh(["multipathd", "show", "paths", "raw", "format", "%d %t %T"]).stdout.split("\n")
        states = {line.split()[0]: line.split()[1:] for line in paths if line.strip()}
        if all(states.get(d["block"], [""])[0] == "failed" for d in found) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert all(states.get(d["block"], [""])[0] == "failed" for d in found), states


def test_map_per_initiator_and_mapped_lun(fc):
    fc.array(["fc-unmap", "--lun", "1", "--initiator", "0x2000525400fc0001"])
    scan(fc, 2, 0, 1)
    scan(fc, 3, 0, 1)
    assert [d["hctl"] for d in devices(status(fc))] == ["3:0:0:1"]
    fc.array(["fc-map", "--lun", "1", "--initiator", "0x2000525400fc0001", "--mapped-lun", "7"])
    scan(fc, 2, 0, 7)
    st = status(fc)
    assert st["mapping"]["0x2000525400fc0001"]["0x2000525400fc0003"]["7"] == 1
    by_hctl = {d["hctl"]: d for d in devices(st)}
    assert sorted(by_hctl) == ["2:0:0:7", "3:0:0:1"]
    assert by_hctl["2:0:0:7"]["wwid"] == by_hctl["3:0:0:1"]["wwid"]


def test_port_down_blocks_then_dev_loss(fc):
    found = attach_all_paths(fc, 0)
    assert len(found) == 4
    down = fc.array(["fc-port", "down", "--port", "0x2000525400fc0003", "--dev-loss-tmo", "10", "--wait", "60"])
    assert down["reached"], down
    # one rport per initiator (its number is the order of the logins), both Blocked
    assert sorted(r["name"].split(":")[0] for r in down["rports"]) == ["rport-2", "rport-3"]
    assert [r["port_state"] for r in down["rports"]] == ["Blocked", "Blocked"]
    assert {r["dev_loss_tmo"] for r in down["rports"]} == {"10"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # dev_loss_tmo: Not Present, and the target's devices are removed
        st = status(fc)
        rports = [r for i in st["initiators"] for r in i["rports"] if r["port_name"] == "0x2000525400fc0003"]
        if all(r["port_state"] == "Not Present" for r in rports) and len(devices(st)) == 2:
            break
        time.sleep(1)
    assert [r["port_state"] for r in rports] == ["Not Present", "Not Present"]
    assert [r["scsi_target_id"] for r in rports] == [0, 0]  # still readable, as on real HBAs
    survivor = {i["host"]: target_ids(i)["0x2000525400fc0004"] for i in st["initiators"]}  # the port still up
    assert sorted(d["hctl"] for d in devices(st)) == sorted(f"{h}:0:{t}:0" for h, t in survivor.items())
    up = fc.array(["fc-port", "up", "--port", "0x2000525400fc0003", "--wait", "60"])
    assert up["reached"], up


def test_reuse_gives_new_wwid(fc):
    scan(fc, 2, 1, 3)
    before = status(fc)
    old = before["luns"]["3"]["wwid"]
    assert [d["wwid"] for d in devices(before)] == ["naa." + old[1:]]
    reused = fc.array(["fc-reuse", "--lun", "3"])
    assert reused["wwid"] != old
    assert reused["mapped"] == ["0x2000525400fc0001", "0x2000525400fc0002"]
    after = status(fc)
    assert after["luns"]["3"]["wwid"] == reused["wwid"]
    fc.ssh(["sh", "-c", "echo 1 > /sys/class/scsi_device/2:0:1:3/device/delete"])
    scan(fc, 3, 0, 3)
    assert [d["wwid"] for d in devices(status(fc))] == ["naa." + reused["wwid"][1:]]


def test_scan_mode_and_reset_restore(fc):
    assert fc.array(["fc-scan-mode", "manual"]) == {"scan_mode": "manual", "before": "sync"}
    fc.array(["fc-dev-loss-tmo", "12"])
    fc.array(["fc-port", "down", "--port", "0x2000525400fc0004", "--wait", "60"])  # by WWPN: NIC names move
    scan(fc, 2, 0, 2)
    st = fc.array(["reset"])
    assert st["leftover_devices"] == []
    st = status(fc)
    assert st["scan_mode"] == "sync"
    assert devices(st) == []
    assert all(i["dev_loss_tmo"] == "60" for i in st["initiators"])
    assert all(r["dev_loss_tmo"] == "60" and r["port_state"] == "Online" for i in st["initiators"] for r in i["rports"])
    assert [t["link"] for t in st["targets"]] == ["up", "up"]


OSBRICK_FC = """
import json, os, sys
import os_brick, os_brick.privileged
from os_brick.initiator import connector
from oslo_concurrency import lockutils
from oslo_config import cfg
cfg.CONF([], project="lunsafe-lab-osbrick", default_config_files=[], default_config_dirs=[])
os_brick.privileged.default.set_client_mode(False)
os.makedirs("/var/lib/lunsafe-lab/os-brick", exist_ok=True)
lockutils.set_defaults("/var/lib/lunsafe-lab/os-brick")
os_brick.setup(cfg.CONF)
brick = connector.InitiatorConnector.factory(
    "FIBRE_CHANNEL", root_helper="sudo", use_multipath=True, device_scan_attempts=3
)
props = {"target_wwn": ["2000525400fc0003", "2000525400fc0004"], "target_lun": int(sys.argv[1])}
print(json.dumps({k: str(v) for k, v in brick.connect_volume(props).items()}))
"""


def test_osbrick_fc_connector_finds_its_device(fc):
    """With e1000 FC NICs (PCI functions) os-brick 6.1's FibreChannelConnector, in-process as in
    tests/lab/guest/osbrick.py, finds its by-path names: one map over exactly the LUN's 4 paths (with
    virtio-net NICs it failed NoFibreChannelVolumeDeviceFound, LAB.md)."""
    info = fc.ssh(["python3", "-", "2"], stdin=OSBRICK_FC, timeout=300).stdout
    device = json.loads(info.strip().splitlines()[-1])
    wwid = status(fc)["luns"]["2"]["wwid"]
    assert device["multipath_id"] == wwid
    assert sorted(d["hctl"] for d in devices(status(fc))) == ["2:0:0:2", "2:0:1:2", "3:0:0:2", "3:0:1:2"]
