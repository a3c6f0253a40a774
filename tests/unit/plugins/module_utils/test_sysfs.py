# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Dict, List

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _sysfs
from ansible_collections.lunsafe.san.plugins.module_utils._hctl import Hctl, linux_lun
from ansible_collections.lunsafe.san.plugins.module_utils._portal import Portal
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import (
    Snapshot,
    SysfsError,
    normalize_wwid,
    read_snapshot,
    scsi_device_delete_path,
    scsi_device_rescan_path,
    scsi_host_scan_path,
    wwid_from_dm_uuid,
)
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.sysfs_tree import (
    build_sysfs,
    remove_path,
    remove_scsi_device,
)

IQN = "iqn.2003-01.org.linux-iscsi.array1:sn.0001"
OTHER_IQN = "iqn.2003-01.org.linux-iscsi.array2:sn.0002"
WWID_RAW = "naa.6001405abcdef0123456789abcdef012"
WWID = "36001405abcdef0123456789abcdef012"
QEMU_T10 = "t10.ATA     QEMU HARDDISK                           QM00001"


def snapshot(root: Path) -> Snapshot:
    return read_snapshot(sysfs_root=str(root))


def two_path_host(tmp_path: Path, **extra: List[Dict[str, Any]]) -> Path:
    """Two iscsi_tcp sessions to one target through two portals, one LUN, one multipath map."""
    return build_sysfs(
        tmp_path,
        sessions=[
            {"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10"},
            {"sid": 2, "host": 3, "targetname": IQN, "address": "192.0.2.11"},
            *extra.get("sessions", []),
        ],
        devices=[
            {"hctl": "2:0:0:1", "sid": 1, "name": "sdb", "wwid": WWID_RAW},
            {"hctl": "3:0:0:1", "sid": 2, "name": "sdc", "wwid": WWID_RAW},
            *extra.get("devices", []),
        ],
        maps=[
            {"dm": "dm-0", "name": "mpatha", "uuid": f"mpath-{WWID}", "slaves": ["sdb", "sdc"]},
            *extra.get("maps", []),
        ],
    )


# --- software iSCSI, two sessions, multipath ------------------------------------------------------------


def test_two_software_sessions_with_multipath(tmp_path: Path) -> None:
    snap = snapshot(two_path_host(tmp_path))

    assert [(s.sid, s.host, s.transport, s.targets) for s in snap.sessions] == [
        (1, 2, "iscsi_tcp", ((0, 0),)),
        (2, 3, "iscsi_tcp", ((0, 0),)),
    ]
    first = snap.sessions[0]
    assert first.targetname == IQN
    assert first.state == "LOGGED_IN"
    assert first.logged_in
    assert first.tpgt == 1
    assert first.ifacename == "default"
    assert first.initiatorname == "iqn.1994-05.com.redhat:client1"
    assert first.portal == Portal(address="192.0.2.10", port=3260)
    assert first.persistent_portal == Portal(address="192.0.2.10", port=3260)

    sdb = snap.device(name="/dev/sdb")
    assert sdb is not None
    assert sdb.hctl == Hctl(host=2, channel=0, target=0, lun=1)
    assert (sdb.sid, sdb.state, sdb.sysfs_wwid, sdb.wwid) == (1, "running", WWID_RAW, WWID)
    assert (sdb.vendor, sdb.model, sdb.rev) == ("LIO-ORG", "disk", "4.0")
    assert sdb.size_bytes == 2097152 * 512
    assert sdb.read_only is False
    assert sdb.holders == ("dm-0",)
    assert sdb.partitions == ()

    dm = snap.multipath_map_for(names=["sdb", "/dev/sdc"])
    assert dm is not None
    assert (dm.dm, dm.name, dm.wwid, dm.slaves, dm.suspended) == ("dm-0", "mpatha", WWID, ("sdb", "sdc"), False)
    assert [d.name for d in snap.paths_of(dm="mpatha")] == ["sdb", "sdc"]
    assert [d.name for d in snap.devices_with_wwid(wwid=WWID)] == ["sdb", "sdc"]
    assert [h.number for h in snap.hosts] == [2, 3]
    assert all(h.iscsi for h in snap.hosts)


def test_sessions_for_target_and_portal(tmp_path: Path) -> None:
    snap = snapshot(two_path_host(tmp_path))

    assert [s.sid for s in snap.sessions_for(targetname=IQN)] == [1, 2]
    assert [s.sid for s in snap.sessions_for(targetname=IQN.upper())] == [1, 2]
    assert [s.sid for s in snap.sessions_for(targetname=IQN, portal="192.0.2.11:3260")] == [2]
    assert [s.sid for s in snap.sessions_for(targetname=IQN, portal="192.0.2.11")] == [2]
    assert snap.sessions_for(targetname=IQN, portal="192.0.2.11:3261") == ()
    assert snap.sessions_for(targetname=OTHER_IQN) == ()
    assert snap.sessions_for(targetname=IQN, portal="192.0.2.99") == ()


def test_devices_for_session_and_lun(tmp_path: Path) -> None:
    root = two_path_host(tmp_path, devices=[{"hctl": "2:0:0:2", "sid": 1, "name": "sdd", "wwid": "naa.600140511"}])
    snap = snapshot(root)

    assert [d.name for d in snap.devices_for(sid=1, lun=1)] == ["sdb"]
    assert [d.name for d in snap.devices_for(sid=2, lun=1)] == ["sdc"]
    assert [d.name for d in snap.devices_for(sid=1, lun=2)] == ["sdd"]
    assert snap.devices_for(sid=2, lun=2) == ()
    assert [d.name for d in snap.devices_of_session(sid=1)] == ["sdb", "sdd"]
    assert snap.device_at(hctl="3:0:0:1") == snap.device(name="sdc")
    assert snap.device_at(hctl=Hctl(host=9, channel=0, target=0, lun=0)) is None


def test_belong_and_others_split(tmp_path: Path) -> None:
    root = two_path_host(
        tmp_path,
        sessions=[{"sid": 3, "host": 4, "targetname": OTHER_IQN, "address": "192.0.2.10"}],
        devices=[
            {"hctl": "2:0:0:2", "sid": 1, "name": "sdd"},
            {"hctl": "2:0:0:0", "sid": 1, "name": None},  # LUN 0 placeholder without a disk
            {"hctl": "4:0:0:1", "sid": 3, "name": "sde"},  # same LUN number, other target
        ],
    )
    snap = snapshot(root)

    split = snap.split(targetname=IQN, lun=1)
    assert [s.sid for s in split.sessions] == [1, 2]
    assert [d.name for d in split.belong] == ["sdb", "sdc"]
    assert [d.name for d in split.others] == ["sdd"]
    assert [s.sid for s in split.sessions_without_others()] == [2]

    through_one_portal = snap.split(targetname=IQN, lun=1, portal="192.0.2.10:3260")
    assert [d.name for d in through_one_portal.belong] == ["sdb"]

    lun0 = snap.split(targetname=IQN, lun=0)
    assert [str(d.hctl) for d in lun0.belong] == ["2:0:0:0"]
    assert [d.name for d in lun0.others] == ["sdb", "sdd", "sdc"]


def test_devices_held_by_different_maps_are_reported(tmp_path: Path) -> None:
    root = two_path_host(
        tmp_path,
        devices=[{"hctl": "2:0:0:2", "sid": 1, "name": "sdd"}],
        maps=[{"dm": "dm-3", "name": "mpathb", "uuid": "mpath-36001405ffff", "slaves": ["sdd"]}],
    )
    snap = snapshot(root)

    with pytest.raises(SysfsError, match="different multipath maps: dm-0 \\(mpatha\\), dm-3 \\(mpathb\\)"):
        snap.multipath_map_for(names=["sdb", "sdd"])
    assert snap.multipath_map_for(names=["sdx"]) is None


# --- offload host: several sessions on one host ---------------------------------------------------------


def test_offload_host_with_several_sessions(tmp_path: Path) -> None:
    root = build_sysfs(
        tmp_path,
        hosts=[{"host": 5, "proc_name": "bnx2i", "parent": "pci0000:00/0000:00:03.0"}],
        sessions=[
            {"sid": 3, "host": 5, "targetname": IQN, "address": "192.0.2.10", "target_id": 1},
            {"sid": 4, "host": 5, "targetname": OTHER_IQN, "address": "192.0.2.20", "target_id": 2},
        ],
        devices=[
            {"hctl": "5:0:1:0", "sid": 3, "name": "sdd"},
            {"hctl": "5:0:2:0", "sid": 4, "name": "sde"},
        ],
    )
    snap = snapshot(root)

    assert [(s.sid, s.host, s.targets, s.transport) for s in snap.sessions] == [
        (3, 5, ((0, 1),), "bnx2i"),
        (4, 5, ((0, 2),), "bnx2i"),
    ]
    assert [s.sid for s in snap.sessions_on_host(host=5)] == [3, 4]
    # same host, same LUN number: each session only sees its own target's device
    assert [d.name for d in snap.devices_for(sid=3, lun=0)] == ["sdd"]
    assert [d.name for d in snap.devices_for(sid=4, lun=0)] == ["sde"]
    assert snap.scan_address(sid=3) == (5, 0, 1)
    assert snap.scan_address(sid=4) == (5, 0, 2)
    assert [d.name for d in snap.split(targetname=OTHER_IQN, lun=0).belong] == ["sde"]


# --- session right after login with manual scan ---------------------------------------------------------


def test_session_before_first_scan_has_no_target_dir(tmp_path: Path) -> None:
    root = build_sysfs(
        tmp_path,
        hosts=[{"host": 6, "proc_name": "qla4xxx", "parent": "pci0000:00/0000:00:04.0"}],
        sessions=[
            {"sid": 7, "host": 6, "targetname": IQN, "address": "192.0.2.10", "target_id": 4},
            {"sid": 8, "host": 6, "targetname": OTHER_IQN, "address": "192.0.2.10", "omit": ["target_id"]},
        ],
    )
    snap = snapshot(root)

    fresh = snap.session(sid=7)
    assert fresh is not None
    assert (fresh.host, fresh.targets, fresh.target_id) == (6, (), 4)
    assert snap.devices_of_session(sid=7) == ()
    # known without a scan from the kernel's target_id: no wildcard needed
    assert snap.scan_address(sid=7) == (6, 0, 4)
    # older kernels without target_id: unknown, and the host is shared, so a wildcard would hit sid 8 too
    assert snap.scan_address(sid=8) is None
    assert len(snap.sessions_on_host(host=6)) == 2
    assert snap.scan_address(sid=99) is None


def test_session_host_found_through_iscsi_host_when_device_link_is_missing(tmp_path: Path) -> None:
    root = build_sysfs(tmp_path, sessions=[{"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10"}])
    remove_path(root, "class/iscsi_session/session1/device")

    session = snapshot(root).session(sid=1)
    assert session is not None
    assert session.host == 2
    assert session.targetname == IQN


def test_explicit_target_dir_after_first_scan_without_devices(tmp_path: Path) -> None:
    root = build_sysfs(
        tmp_path, sessions=[{"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10", "targets": [(0, 0)]}]
    )
    snap = snapshot(root)
    assert snap.sessions[0].targets == ((0, 0),)
    assert snap.scan_address(sid=1) == (2, 0, 0)


# --- LUN numbers beyond 255 -----------------------------------------------------------------------------


def test_lun_above_255_in_flat_space(tmp_path: Path) -> None:
    root = build_sysfs(
        tmp_path,
        sessions=[{"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10"}],
        devices=[{"hctl": "2:0:0:16640", "sid": 1, "name": "sdq", "wwid": WWID_RAW}],
    )
    snap = snapshot(root)

    wanted = linux_lun(lun=256, addressing="sam2")
    assert [d.name for d in snap.devices_for(sid=1, lun=wanted)] == ["sdq"]
    assert snap.devices_for(sid=1, lun=256) == ()
    assert snap.devices[0].hctl.lun == 16640


# --- reused host and session numbers --------------------------------------------------------------------


def test_reused_host_number_is_resolved_afresh(tmp_path: Path) -> None:
    before = build_sysfs(
        tmp_path,
        name="before",
        sessions=[{"sid": 5, "host": 3, "targetname": IQN, "address": "192.0.2.10"}],
        devices=[{"hctl": "3:0:0:1", "sid": 5, "name": "sdb", "wwid": WWID_RAW}],
    )
    after = build_sysfs(
        tmp_path,
        name="after",
        sessions=[{"sid": 8, "host": 3, "targetname": OTHER_IQN, "address": "192.0.2.20"}],
        devices=[{"hctl": "3:0:0:1", "sid": 8, "name": "sdb", "wwid": "naa.6001405aaaa"}],
    )
    old, new = snapshot(before), snapshot(after)

    assert [s.host for s in old.sessions_for(targetname=IQN)] == [3]
    assert new.sessions_for(targetname=IQN) == ()
    assert [(s.sid, s.host) for s in new.sessions_for(targetname=OTHER_IQN)] == [(8, 3)]
    reused = new.device_at(hctl="3:0:0:1")
    assert reused is not None
    assert (reused.sid, reused.wwid) == (8, "36001405aaaa")
    assert old.device_at(hctl="3:0:0:1") != reused


# --- devices without disks, partitions, local disks -----------------------------------------------------


def test_scsi_device_without_block_dir(tmp_path: Path) -> None:
    root = build_sysfs(
        tmp_path,
        sessions=[{"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10"}],
        devices=[{"hctl": "2:0:0:0", "sid": 1, "name": None, "vendor": "LIO-ORG", "omit": ["wwid"]}],
    )
    device = snapshot(root).devices[0]

    assert str(device.hctl) == "2:0:0:0"
    assert device.name is None
    assert (device.size_bytes, device.read_only, device.holders, device.partitions) == (None, None, (), ())
    assert (device.sysfs_wwid, device.wwid) == (None, None)
    assert device.sid == 1


def test_partitions_are_listed_but_never_taken_for_the_disk(tmp_path: Path) -> None:
    root = build_sysfs(
        tmp_path,
        sessions=[{"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10"}],
        devices=[{"hctl": "2:0:0:1", "sid": 1, "name": "sdb", "partitions": ["sdb1", "sdb2"]}],
        maps=[{"dm": "dm-2", "name": "vg0-data", "uuid": "LVM-abcdef", "slaves": ["sdb1"]}],
    )
    snap = snapshot(root)
    device = snap.devices[0]

    assert device.name == "sdb"
    assert device.partitions == ("sdb1", "sdb2")
    assert device.holders == ()  # the LV sits on the partition, not on the disk
    assert snap.device(name="sdb1") is None
    held = snap.maps_holding(names=["sdb1"])
    assert [m.dm for m in held] == ["dm-2"]
    assert snap.multipath_map_for(names=["sdb1"]) is None


def test_local_disk_has_no_session(tmp_path: Path) -> None:
    root = build_sysfs(
        tmp_path,
        hosts=[{"host": 0, "proc_name": "ahci", "iscsi": False, "parent": "pci0000:00/0000:00:1f.2/ata1"}],
        devices=[{"hctl": "0:0:0:0", "name": "sda", "wwid": QEMU_T10}],
    )
    snap = snapshot(root)

    assert snap.sessions == ()
    assert [(h.number, h.proc_name, h.iscsi) for h in snap.hosts] == [(0, "ahci", False)]
    sda = snap.devices[0]
    assert (sda.name, sda.sid, sda.wwid) == ("sda", None, "1ATA_QEMU_HARDDISK_QM00001")


# --- portals --------------------------------------------------------------------------------------------


def test_ipv6_portal_matches_unbracketed_and_case_insensitively(tmp_path: Path) -> None:
    root = build_sysfs(
        tmp_path, sessions=[{"sid": 1, "host": 2, "targetname": IQN, "address": "FD00:0:0:0::A", "port": 3260}]
    )
    snap = snapshot(root)

    for portal in ("[fd00::a]:3260", "fd00::a", "[FD00::A]", Portal(address="fd00:0::a", port=3260)):
        assert [s.sid for s in snap.sessions_for(targetname=IQN, portal=portal)] == [1], portal
    assert snap.sessions_for(targetname=IQN, portal="[fd00::b]:3260") == ()
    assert snap.sessions_for(targetname=IQN, portal="[fd00::a]:860") == ()
    assert str(snap.sessions[0].portal) == "[FD00:0:0:0::A]:3260"


def test_redirected_session_matches_current_and_persistent_portal(tmp_path: Path) -> None:
    root = build_sysfs(
        tmp_path,
        sessions=[
            {
                "sid": 1,
                "host": 2,
                "targetname": IQN,
                "address": "192.0.2.30",
                "port": 3260,
                "persistent_address": "192.0.2.10",
                "persistent_port": 3260,
            }
        ],
    )
    snap = snapshot(root)

    assert [s.sid for s in snap.sessions_for(targetname=IQN, portal="192.0.2.10:3260")] == [1]
    assert [s.sid for s in snap.sessions_for(targetname=IQN, portal="192.0.2.30:3260")] == [1]
    assert snap.sessions[0].persistent_portal == Portal(address="192.0.2.10", port=3260)


def test_a_session_side_without_port_is_no_portal(tmp_path: Path) -> None:
    """Port policy: a side whose port the kernel does not show matches no portal (never "any port")."""
    root = build_sysfs(
        tmp_path,
        sessions=[{"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.30", "persistent_address": "192.0.2.10",
                   "omit": ["port"]}],
    )  # fmt: skip
    session = snapshot(root).sessions[0]
    assert (session.portal, session.persistent_portal) == (None, Portal("192.0.2.10", 3260))
    assert session.matches(targetname=IQN, portal="192.0.2.10")
    assert not session.matches(targetname=IQN, portal="192.0.2.30")


# --- missing attributes and races ------------------------------------------------------------------------


def test_device_removed_while_reading_is_skipped(tmp_path: Path) -> None:
    root = two_path_host(tmp_path)
    remove_scsi_device(root, hctl="3:0:0:1")
    assert os.path.islink(root / "class" / "scsi_device" / "3:0:0:1")  # the dangling link is still listed

    snap = snapshot(root)
    assert [d.name for d in snap.devices] == ["sdb"]
    assert snap.device(name="sdc") is None
    dm = snap.map(ref="mpatha")
    assert dm is not None
    assert dm.slaves == ("sdb", "sdc")  # the map still names the gone path until multipathd drops it
    assert [d.name for d in snap.paths_of(dm="dm-0")] == ["sdb"]


def test_failed_session_without_connection_address(tmp_path: Path) -> None:
    root = build_sysfs(
        tmp_path,
        sessions=[
            {
                "sid": 1,
                "host": 2,
                "targetname": IQN,
                "state": "FAILED",
                "address": "192.0.2.10",
                "omit": ["address", "port", "initiatorname"],
            }
        ],
    )
    session = snapshot(root).sessions[0]

    assert (session.state, session.logged_in, session.portal, session.initiatorname) == ("FAILED", False, None, None)
    assert session.persistent_portal == Portal(address="192.0.2.10", port=3260)
    assert session.matches(targetname=IQN, portal="192.0.2.10")


def test_dm_map_removed_while_reading_is_skipped(tmp_path: Path) -> None:
    root = two_path_host(tmp_path, maps=[{"dm": "dm-1", "name": "gone", "uuid": "mpath-3600", "slaves": []}])
    remove_path(root, "devices/virtual/block/dm-1")

    assert [m.dm for m in snapshot(root).maps] == ["dm-0"]


def test_empty_or_non_scsi_host(tmp_path: Path) -> None:
    empty = tmp_path / "sys"
    empty.mkdir()
    snap = snapshot(empty)
    assert (snap.hosts, snap.sessions, snap.devices, snap.maps) == ((), (), (), ())
    assert snap.split(targetname=IQN, lun=1).belong == ()


def test_snapshot_is_immutable(tmp_path: Path) -> None:
    snap = snapshot(two_path_host(tmp_path))
    device: Any = snap.devices[0]  # the assignment below is the point of the test: let mypy allow it
    with pytest.raises(dataclasses.FrozenInstanceError):
        device.state = "offline"
    assert isinstance(snap.devices, tuple)


# --- device-mapper ---------------------------------------------------------------------------------------


def test_multipath_map_with_lvm_holder(tmp_path: Path) -> None:
    root = two_path_host(
        tmp_path,
        maps=[{"dm": "dm-1", "name": "vg0-lv0", "uuid": "LVM-Xa1b2c3d4e5f6", "slaves": ["dm-0"], "suspended": 1}],
    )
    snap = snapshot(root)

    mpath = snap.map(ref="/dev/mapper/mpatha")
    lvm = snap.map(ref="/dev/dm-1")
    assert mpath is not None
    assert lvm is not None
    assert mpath.holders == ("dm-1",)
    assert (lvm.is_multipath, lvm.wwid, lvm.slaves, lvm.suspended) == (False, None, ("dm-0",), True)
    assert snap.map(ref=WWID) == mpath
    assert snap.map(ref=f"mpath-{WWID}") == mpath
    assert snap.map(ref="nothing") is None
    assert [m.dm for m in snap.maps_holding(names=["dm-0"])] == ["dm-1"]
    assert snap.paths_of(dm="vg0-lv0") == ()
    assert snap.paths_of(dm="nothing") == ()


def test_maps_sort_numerically(tmp_path: Path) -> None:
    root = build_sysfs(
        tmp_path,
        maps=[
            {"dm": "dm-10", "name": "b", "uuid": "mpath-3b"},
            {"dm": "dm-9", "name": "a", "uuid": "mpath-3a"},
        ],
    )
    assert [m.dm for m in snapshot(root).maps] == ["dm-9", "dm-10"]


# --- WWIDs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("naa.6001405ABCDEF", "36001405abcdef"),
        ("eui.0123456789ABCDEF", "20123456789abcdef"),
        (QEMU_T10, "1ATA_QEMU_HARDDISK_QM00001"),
        ("t10.LIO-ORG disk1 / 4   ", "1LIO-ORG_disk1___4"),
        ("iqn.2003-01.org.example:lun,t,0x1", "8iqn.2003-01.org.example:lun,t,0x1"),
        ("naa.6001405abcdef\n", "36001405abcdef"),
    ],
)
def test_normalize_wwid(raw: str, expected: str) -> None:
    assert normalize_wwid(raw) == expected


def test_wwid_through_the_tree(tmp_path: Path) -> None:
    root = build_sysfs(
        tmp_path,
        sessions=[{"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10"}],
        devices=[
            {"hctl": "2:0:0:1", "sid": 1, "name": "sdb", "wwid": "eui.00A0B8C1D2E3F405"},
            {"hctl": "2:0:0:2", "sid": 1, "name": "sdc", "wwid": "t10.LIO-ORG   block1"},
        ],
    )
    assert [(d.sysfs_wwid, d.wwid) for d in snapshot(root).devices] == [
        ("eui.00A0B8C1D2E3F405", "200a0b8c1d2e3f405"),
        ("t10.LIO-ORG   block1", "1LIO-ORG_block1"),
    ]


@pytest.mark.parametrize(
    ("uuid", "expected"),
    [(f"mpath-{WWID}", WWID), ("LVM-abc", None), (f"part1-mpath-{WWID}", None), ("mpath-", None), (None, None)],
)
def test_wwid_from_dm_uuid(uuid: str, expected: str) -> None:
    assert wwid_from_dm_uuid(uuid) == expected


# --- paths for writers ----------------------------------------------------------------------------------


def test_write_paths_follow_the_root(tmp_path: Path) -> None:
    root = two_path_host(tmp_path)
    hctl = Hctl(host=2, channel=0, target=0, lun=1)

    scan = scsi_host_scan_path(host=2, sysfs_root=str(root))
    assert scan == os.path.join(str(root), "class", "scsi_host", "host2", "scan")
    assert os.path.isfile(scan)
    assert os.path.isfile(scsi_device_delete_path(hctl=hctl, sysfs_root=str(root)))
    assert os.path.isfile(scsi_device_rescan_path(hctl=hctl, sysfs_root=str(root)))
    assert scsi_host_scan_path(host=7) == "/sys/class/scsi_host/host7/scan"


def test_link_resolution_matches_realpath_for_every_device(tmp_path: Path) -> None:
    """_resolve() replaces os.path.realpath on sysfs links: it must land on the very same directories."""
    root = build_sysfs(
        Path(os.path.realpath(tmp_path)),
        sessions=[
            {"sid": 1, "host": 2, "targetname": IQN, "address": "192.0.2.10"},
            {"sid": 2, "host": 3, "targetname": IQN, "address": "192.0.2.11"},
        ],
        devices=[
            {"hctl": "2:0:0:1", "sid": 1, "name": "sdb", "partitions": ["sdb1"]},
            {"hctl": "3:0:0:1", "sid": 2, "name": "sdc"},
            {"hctl": "3:0:0:300", "sid": 2, "name": "sdd"},
        ],
    )
    class_dir = os.path.join(str(root), "class", "scsi_device")
    entries = sorted(os.listdir(class_dir))
    assert len(entries) == 3
    for entry in entries:
        link = os.path.join(class_dir, entry)
        assert _sysfs._resolve(os.path.join(_sysfs._resolve(link), "device")) == os.path.realpath(
            os.path.join(link, "device")
        )
        # the snapshot's single readlink per device finds the same directory lexically
        assert _sysfs._scsi_device_dir(link) == os.path.realpath(os.path.join(link, "device"))
    assert _sysfs._resolve(str(root)) == os.path.normpath(str(root))  # not a link: itself


def test_snapshot_without_device_detail_keeps_what_fault_facts_need(tmp_path: Path) -> None:
    root = two_path_host(tmp_path)
    full = read_snapshot(sysfs_root=str(root))
    lite = read_snapshot(sysfs_root=str(root), device_detail=False)
    assert [(d.hctl, d.name, d.state, d.wwid, d.sid) for d in lite.devices] == [
        (d.hctl, d.name, d.state, d.wwid, d.sid) for d in full.devices
    ]
    sdb = lite.device(name="sdb")
    assert sdb is not None
    assert (sdb.size_bytes, sdb.read_only, sdb.vendor, sdb.holders, sdb.partitions) == (None, None, None, (), ())
    assert lite.sessions == full.sessions and lite.maps == full.maps
    assert [d.name for d in lite.paths_of(dm="mpatha")] == ["sdb", "sdc"]


def test_class_entry_that_is_a_directory_is_followed_through_its_device_link(tmp_path: Path) -> None:
    """Without class links (a class entry that is a plain directory) the device is found via ``device``."""
    root = two_path_host(tmp_path)
    entry = root / "class" / "scsi_device" / "2:0:0:1"
    device_dir = os.path.realpath(entry / "device")
    entry.unlink()
    entry.mkdir()
    os.symlink(device_dir, entry / "device")
    assert _sysfs._scsi_device_dir(str(entry)) == device_dir
    sdb = read_snapshot(sysfs_root=str(root)).device(name="sdb")
    assert sdb is not None and sdb.hctl == Hctl(2, 0, 0, 1) and sdb.sid == 1


def test_attribute_longer_than_one_read_is_read_whole(tmp_path: Path) -> None:
    text = "x" * (3 * _sysfs._READ_CHUNK + 17)
    (tmp_path / "attr").write_text(text + "\n")
    assert _sysfs.read_attribute(str(tmp_path / "attr")) == text
    (tmp_path / "exact").write_text("y" * _sysfs._READ_CHUNK)
    assert _sysfs.read_attribute(str(tmp_path / "exact")) == "y" * _sysfs._READ_CHUNK
    (tmp_path / "blank").write_text(" \n")
    assert _sysfs.read_attribute(str(tmp_path / "blank")) is None
    assert _sysfs.read_attribute(str(tmp_path / "missing")) is None
    assert _sysfs.read_attribute(str(tmp_path)) is None  # a directory: EISDIR on read
