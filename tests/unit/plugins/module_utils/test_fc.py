# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _fc
from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import read_snapshot
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fc_fixture import build_from_capture
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fc_tree import build_fc_sysfs
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.sysfs_tree import remove_path

INI_A = "0x2000525400fc0001"
INI_B = "0x2000525400fc0002"
TGT_A = "0x2000525400fc0003"
TGT_B = "0x2000525400fc0004"
VPORT = "0x2000525400fc00aa"


def host_of(view: _fc.FcView, number: int) -> _fc.FcHost:
    host = view.host(number)
    assert host is not None
    return host


def text_of(value: Optional[str]) -> str:
    assert value is not None
    return value


def lab_like(tmp_path: Path, **overrides: Any) -> Path:
    """Two initiator fc_hosts (2, 3), each seeing both target ports as target ids 0 and 1 (4 paths), and
    the target ports themselves as fc_hosts 4 and 5 seeing the initiators (no target role)."""
    spec: Dict[str, Any] = {
        "fc_hosts": [
            {"host": 2, "port_name": INI_A},
            {"host": 3, "port_name": INI_B},
            {"host": 4, "port_name": TGT_A},
            {"host": 5, "port_name": TGT_B},
        ],
        "rports": [
            {"host": 2, "number": 0, "port_name": TGT_A, "scsi_target_id": 0},
            {"host": 2, "number": 1, "port_name": TGT_B, "scsi_target_id": 1},
            {"host": 3, "number": 0, "port_name": TGT_B, "scsi_target_id": 0},
            {"host": 3, "number": 1, "port_name": TGT_A, "scsi_target_id": 1},
            {"host": 4, "number": 0, "port_name": INI_A, "roles": "FCP Initiator"},
            {"host": 5, "number": 0, "port_name": INI_A, "roles": "FCP Initiator"},
        ],
    }
    spec.update(overrides)
    return build_fc_sysfs(tmp_path, **spec)


# normalize_wwpn -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "0x2000525400fc0003",
        "0X2000525400FC0003",
        "2000525400fc0003",
        "20:00:52:54:00:fc:00:03",
        "20-00-52-54-00-FC-00-03",
        " 0x2000525400fc0003\n",
    ],
)
def test_normalize_wwpn_accepts_common_spellings(text: object) -> None:
    assert _fc.normalize_wwpn(text) == "0x2000525400fc0003"


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "  ",
        "0x2000525400fc00",
        "2000525400fc00033",
        "20:00:52:54:00:fc:00",
        "2:00:52:54:00:fc:00:03:0",
        "0xg000525400fc0003",
        2000525400,
        "20:00:52:54:00:fc:0:003",
    ],
)
def test_normalize_wwpn_refuses_others_naming_the_option(text: object) -> None:
    with pytest.raises(InputError) as caught:
        _fc.normalize_wwpn(text, option="targets")
    assert caught.value.msg.startswith("targets: ")
    assert caught.value.option == "targets"


# read_fc ------------------------------------------------------------------------------------------------


def test_read_fc_without_fc_is_empty(tmp_path: Path) -> None:
    view = _fc.read_fc(sysfs_root=str(tmp_path / "nothing"))
    assert view.hosts == () and view.rports == () and view.scan_mode is None
    assert _fc.resolve(view, targets=[TGT_A]).problems == (
        "this machine has no Fibre Channel host (/sys/class/fc_host is empty or missing).",
    )


def test_read_fc_reads_hosts_and_rports(tmp_path: Path) -> None:
    root = lab_like(tmp_path, scan_mode="async")
    view = _fc.read_fc(sysfs_root=str(root))
    assert [host.host for host in view.hosts] == [2, 3, 4, 5]
    host = host_of(view, 2)
    assert host == _fc.FcHost(
        host=2,
        port_name=INI_A,
        node_name="0x1000525400fc0002",
        port_state="Online",
        port_type="NPort (fabric via point-to-point)",
        speed="10 Gbit",
        fabric_name="0x1000525400fc0001",
        symbolic_name="fcoe v0.1 over eth1",
        dev_loss_tmo=60,
        vport=False,
        parent_host=None,
        max_lun=None,
        proc_name="fcoe",
        port_id="0x000002",
        vport_name=None,
    )
    assert host.online and view.host(9) is None
    found = view.host_by_wwpn(TGT_B)
    assert found is not None and found.host == 5
    rport = view.rport_at(host=3, channel=0, target=1)
    assert rport is not None and rport.name == "rport-3:0-1" and rport.port_name == TGT_A
    assert rport.roles == ("FCP Target", "FCP Initiator") and rport.usable
    assert rport.dev_loss_tmo == 60 and rport.fast_io_fail_tmo == "5" and rport.port_id == "0x000001"
    assert view.rport_at(host=3, channel=0, target=7) is None
    assert [r.name for r in view.rports_of(host=4)] == ["rport-4:0-0"]
    assert not view.rports_of(host=4)[0].is_fcp_target
    assert [r.name for r in view.rports_with_wwpn(INI_A)] == ["rport-4:0-0", "rport-5:0-0"]
    assert view.scan_mode == "async"


def test_read_fc_tolerates_missing_and_vanishing_entries(tmp_path: Path) -> None:
    root = lab_like(tmp_path, scan_mode=None)
    remove_path(root, "class/fc_host/host2")  # dangling? no: the class link is gone, the host is skipped
    target = os.readlink(root / "class" / "fc_remote_ports" / "rport-3:0-0")
    real = (root / "class" / "fc_remote_ports" / target).resolve()
    for attribute in ("port_state", "port_name"):
        (real / attribute).unlink()  # an rport that went away between listing and reading
    (root / "class" / "fc_remote_ports" / "not-an-rport").mkdir()
    for attribute in ("speed", "fabric_name", "dev_loss_tmo"):
        remove_path(root, f"class/fc_host/host3/{attribute}")
    (root / "class" / "fc_host" / "host3" / "port_name").write_text("garbage\n")
    view = _fc.read_fc(sysfs_root=str(root))
    assert [host.host for host in view.hosts] == [3, 4, 5]
    host = host_of(view, 3)
    assert host.port_name is None and host.speed is None and host.fabric_name is None and host.dev_loss_tmo is None
    assert "rport-3:0-0" not in [r.name for r in view.rports]
    assert view.scan_mode is None


def test_npiv_vport_is_a_host_of_its_own(tmp_path: Path) -> None:
    root = build_fc_sysfs(
        tmp_path,
        fc_hosts=[{"host": 2, "port_name": INI_A, "proc_name": "lpfc", "scsi_host_attrs": {"lpfc_max_luns": 255}}],
        vports=[{"parent": 2, "number": 0, "port_name": VPORT, "host_spec": {"host": 7, "proc_name": "lpfc"}}],
        rports=[
            {"host": 2, "number": 0, "port_name": TGT_A, "scsi_target_id": 0},
            {"host": 7, "number": 0, "port_name": TGT_A, "scsi_target_id": 0},
        ],
    )
    view = _fc.read_fc(sysfs_root=str(root))
    vport = host_of(view, 7)
    assert vport.vport and vport.parent_host == 2 and vport.vport_name == "vport-2:0-0"
    assert vport.port_name == VPORT and vport.port_type == "NPIV VPORT"
    assert not host_of(view, 2).vport and host_of(view, 2).max_lun == 255
    only_vport = _fc.resolve(view, targets=[TGT_A], initiators=[VPORT])
    assert [(p.host, p.channel, p.target) for p in only_vport.paths] == [(7, 0, 0)]
    assert only_vport.hosts == (7,)


def test_vport_found_from_its_path_without_the_vports_class(tmp_path: Path) -> None:
    root = build_fc_sysfs(
        tmp_path,
        fc_hosts=[{"host": 2, "port_name": INI_A}],
        vports=[{"parent": 2, "number": 3, "port_name": VPORT, "host_spec": {"host": 6, "port_type": "NPort"}}],
    )
    remove_path(root, "class/fc_vports/vport-2:0-3")
    vport = host_of(_fc.read_fc(sysfs_root=str(root)), 6)
    assert vport.vport and vport.parent_host == 2 and vport.vport_name == "vport-2:0-3"


def test_max_lun_of_qla2xxx_from_its_module_parameter(tmp_path: Path) -> None:
    root = build_fc_sysfs(
        tmp_path,
        fc_hosts=[{"host": 2, "port_name": INI_A, "proc_name": "qla2xxx"}],
        module_params={"qla2xxx": {"ql2xmaxlun": 65535}},
    )
    host = host_of(_fc.read_fc(sysfs_root=str(root)), 2)
    assert host.max_lun == 65535
    assert _fc.check_lun_limit(host, 65535) is None
    message = text_of(_fc.check_lun_limit(host, 65536))
    assert message.startswith("LUN 65536 is above the highest LUN host2 (qla2xxx) accepts (65535,")
    assert "ql2xmaxlun" in message


def test_check_lun_limit_unknown_or_lpfc() -> None:
    host = _fc.FcHost(2, INI_A, None, "Online", None, None, None, None, None, False, None, None, "fcoe")
    assert _fc.check_lun_limit(host, 1 << 40) is None
    lpfc = _fc.FcHost(2, INI_A, None, "Online", None, None, None, None, None, False, None, 255, "lpfc")
    assert "lpfc_max_luns" in text_of(_fc.check_lun_limit(lpfc, 256))
    other = _fc.FcHost(2, INI_A, None, "Online", None, None, None, None, None, False, None, 10, None)
    message = text_of(_fc.check_lun_limit(other, 11))
    assert "unknown driver" in message and "the driver's LUN limit" in message


# resolve ------------------------------------------------------------------------------------------------


def test_resolve_gives_exact_nexus_per_host_and_target(tmp_path: Path) -> None:
    view = _fc.read_fc(sysfs_root=str(lab_like(tmp_path)))
    result = _fc.resolve(view, targets=[TGT_A, TGT_B], initiators=[INI_A, INI_B])
    assert [(p.host, p.channel, p.target, p.rport.name, p.initiator) for p in result.paths] == [
        (2, 0, 0, "rport-2:0-0", INI_A),
        (2, 0, 1, "rport-2:0-1", INI_A),
        (3, 0, 0, "rport-3:0-0", INI_B),
        (3, 0, 1, "rport-3:0-1", INI_B),
    ]
    assert result.problems == () and result.unmatched_targets == () and result.unmatched_initiators == ()
    assert result.paths[0].label == "host2 -> 0x2000525400fc0003 (rport-2:0-0, target 2:0:0)"


def test_resolve_one_target_uses_scsi_target_id_not_the_rport_number(tmp_path: Path) -> None:
    view = _fc.read_fc(sysfs_root=str(lab_like(tmp_path)))
    result = _fc.resolve(view, targets=[TGT_A], initiators=[INI_B])
    assert [(p.host, p.channel, p.target) for p in result.paths] == [(3, 0, 1)]
    assert result.paths[0].rport.number == 1 and result.paths[0].rport.name == "rport-3:0-1"


def test_resolve_without_initiators_tries_every_fc_host_and_names_each_pair(tmp_path: Path) -> None:
    view = _fc.read_fc(sysfs_root=str(lab_like(tmp_path)))
    result = _fc.resolve(view, targets=[TGT_A, TGT_A])
    assert [(p.host, p.target) for p in result.paths] == [(2, 0), (3, 1)]
    assert result.hosts == (2, 3, 4, 5)
    assert result.problems == (
        f"target {TGT_A} is not visible from host4 ({TGT_A}): no remote port with that WWPN has logged in on "
        "this fc_host (not zoned to this initiator, the target port is down, or the WWPN is wrong).",
        f"target {TGT_A} is not visible from host5 ({TGT_B}): no remote port with that WWPN has logged in on "
        "this fc_host (not zoned to this initiator, the target port is down, or the WWPN is wrong).",
    )
    assert result.unmatched_targets == ()


def test_resolve_names_blocked_not_present_and_role(tmp_path: Path) -> None:
    root = lab_like(
        tmp_path,
        fc_hosts=[{"host": 2, "port_name": INI_A, "port_state": "Linkdown"}, {"host": 3, "port_name": INI_B}],
        rports=[
            {"host": 2, "number": 0, "port_name": TGT_A, "scsi_target_id": 0, "port_state": "Blocked"},
            {"host": 3, "number": 0, "port_name": TGT_A, "scsi_target_id": 0, "port_state": "Not Present"},
            {"host": 3, "number": 1, "port_name": TGT_B, "roles": "FCP Initiator"},
            {"host": 2, "number": 1, "port_name": TGT_B, "roles": "FCP Target", "scsi_target_id": -1},
        ],
    )
    result = _fc.resolve(_fc.read_fc(sysfs_root=str(root)), targets=[TGT_A, TGT_B])
    assert result.paths == ()
    assert result.unmatched_targets == (TGT_A, TGT_B)
    assert result.problems == (
        f"target {TGT_A} has no usable path from host2 ({INI_A}): rport-2:0-0 is Blocked (the link to it is down "
        "and the kernel waits dev_loss_tmo for it to return); the fc_host itself is Linkdown, not Online.",
        f"target {TGT_B} has no usable path from host2 ({INI_A}): rport-2:0-1 has no SCSI target id yet "
        "(scsi_target_id -1); the fc_host itself is Linkdown, not Online.",
        f"target {TGT_A} has no usable path from host3 ({INI_B}): rport-3:0-0 is Not Present (it stayed away "
        "longer than dev_loss_tmo and its LUNs were removed).",
        f"target {TGT_B} has no usable path from host3 ({INI_B}): rport-3:0-1 is not an FCP target "
        "(roles: FCP Initiator).",
    )


def test_resolve_marginal_is_usable_and_odd_states_are_named(tmp_path: Path) -> None:
    root = lab_like(
        tmp_path,
        fc_hosts=[{"host": 2, "port_name": INI_A}],
        rports=[
            {"host": 2, "number": 0, "port_name": TGT_A, "scsi_target_id": 0, "port_state": "Marginal"},
            {"host": 2, "number": 1, "port_name": TGT_B, "scsi_target_id": 1, "port_state": "Deleted"},
            {"host": 2, "number": 2, "port_name": TGT_B, "roles": "unknown", "omit": ["port_state"]},
        ],
    )
    result = _fc.resolve(_fc.read_fc(sysfs_root=str(root)), targets=[TGT_A, TGT_B])
    assert [p.target for p in result.paths] == [0]
    assert result.problems == (
        f"target {TGT_B} has no usable path from host2 ({INI_A}): rport-2:0-1 is Deleted (the kernel scans only "
        "Online or Marginal remote ports); rport-2:0-2 is not an FCP target (roles: none).",
    )


def test_resolve_unknown_initiator(tmp_path: Path) -> None:
    view = _fc.read_fc(sysfs_root=str(lab_like(tmp_path)))
    result = _fc.resolve(view, targets=[TGT_A], initiators=["0x2000525400fc0999", INI_A])
    assert [p.host for p in result.paths] == [2]
    assert result.unmatched_initiators == ("0x2000525400fc0999",)
    assert result.problems == (
        "initiator 0x2000525400fc0999 is not an fc_host on this machine (no /sys/class/fc_host port has it).",
    )


def test_fc_devices_have_no_session(tmp_path: Path) -> None:
    root = lab_like(
        tmp_path,
        devices=[{"hctl": "2:0:0:1", "rport": "rport-2:0-0", "name": "sdb", "wwid": "naa.6001405aa"}],
    )
    snapshot = read_snapshot(sysfs_root=str(root))
    assert [(str(d.hctl), d.name, d.sid, d.wwid) for d in snapshot.devices] == [("2:0:0:1", "sdb", None, "36001405aa")]


# warnings -----------------------------------------------------------------------------------------------


def test_scan_mode_warning(tmp_path: Path) -> None:
    view = _fc.read_fc(sysfs_root=str(lab_like(tmp_path, scan_mode="sync")))
    message = text_of(_fc.scan_mode_warning(view))
    assert message.startswith("scsi_mod.scan is 'sync' on a host with Fibre Channel ports")
    assert "scsi_mod.scan=manual" in message and "boot" in message
    assert _fc.scan_mode_warning(_fc.FcView("/sys", view.hosts, (), "manual")) is None
    assert _fc.scan_mode_warning(_fc.FcView("/sys", view.hosts, (), None)) is None
    assert _fc.scan_mode_warning(_fc.FcView("/sys", (), (), "async")) is None


UA_RULE = (
    "# libstoragemgmt\n"
    'ACTION=="change", SUBSYSTEM=="scsi", ENV{SDEV_UA}=="CAPACITY_DATA_HAS_CHANGED", TEST=="rescan", '
    'ATTR{rescan}="x"\n'
    'ACTION=="change", SUBSYSTEM=="scsi", ENV{SDEV_UA}=="REPORTED_LUNS_DATA_HAS_CHANGED", '
    'RUN+="scan-scsi-target $env{DEVPATH}"\n'
)


def test_ua_rule_warning_finds_the_rule(tmp_path: Path) -> None:
    etc, lib = tmp_path / "etc", tmp_path / "lib"
    etc.mkdir()
    lib.mkdir()
    (lib / "90-scsi-ua.rules").write_text(UA_RULE)
    (lib / "80-other.rules").write_text("# REPORTED_LUNS_DATA_HAS_CHANGED RUN in a comment\n")
    (lib / "README").write_text(UA_RULE)
    message = text_of(_fc.ua_rule_warning(rules_dirs=(str(etc), str(tmp_path / "missing"), str(lib))))
    assert message.startswith(f"udev rule {lib / '90-scsi-ua.rules'} rescans a whole SCSI target")
    assert "ln -s /dev/null /etc/udev/rules.d/90-scsi-ua.rules" in message


def test_ua_rule_warning_masked_by_a_link_or_overridden(tmp_path: Path) -> None:
    etc, lib = tmp_path / "etc", tmp_path / "lib"
    etc.mkdir()
    lib.mkdir()
    (lib / "90-scsi-ua.rules").write_text(UA_RULE)
    os.symlink("/dev/null", etc / "90-scsi-ua.rules")
    assert _fc.ua_rule_warning(rules_dirs=(str(etc), str(lib))) is None
    os.unlink(etc / "90-scsi-ua.rules")
    (etc / "90-scsi-ua.rules").write_text("# emptied by the admin\n")
    assert _fc.ua_rule_warning(rules_dirs=(str(etc), str(lib))) is None
    os.unlink(etc / "90-scsi-ua.rules")
    (etc / "90-scsi-ua.rules").mkdir()
    assert _fc.ua_rule_warning(rules_dirs=(str(etc), str(lib))) is None


def test_ua_rule_warning_uses_the_opener(tmp_path: Path) -> None:
    (tmp_path / "90-scsi-ua.rules").write_text("")
    seen: List[str] = []

    def opener(path: str) -> Optional[str]:
        seen.append(path)
        return UA_RULE

    assert _fc.ua_rule_warning(rules_dirs=(str(tmp_path),), opener=opener) is not None
    assert seen == [str(tmp_path / "90-scsi-ua.rules")]


# the real capture from the lab (FCoE VN2VN + LIO tcm_fc, kernel 6.1) ----------------------------------------


def test_capture_attached_reads_and_resolves(tmp_path: Path) -> None:
    root = build_from_capture(tmp_path, "attached")
    view = _fc.read_fc(sysfs_root=str(root))
    assert [(h.host, h.port_name, h.port_state, h.proc_name, h.vport) for h in view.hosts] == [
        (2, INI_A, "Online", "fcoe", False),
        (3, INI_B, "Online", "fcoe", False),
        (4, TGT_A, "Online", "fcoe", False),
        (5, TGT_B, "Online", "fcoe", False),
    ]
    assert host_of(view, 2).fabric_name is None  # VN2VN: the kernel prints 0x0
    assert view.scan_mode == "sync"
    initiator_side = [r for r in view.rports if r.host == 2]
    assert [(r.name, r.port_name, r.roles, r.scsi_target_id, r.fast_io_fail_tmo, r.usable) for r in initiator_side] == [
        ("rport-2:0-0", INI_B, ("FCP Initiator",), -1, "off", False),
        ("rport-2:0-1", TGT_A, ("FCP Target", "FCP Initiator"), 0, "5", True),
        ("rport-2:0-2", TGT_B, ("FCP Target", "FCP Initiator"), 1, "5", True),
    ]
    result = _fc.resolve(view, targets=[TGT_A, TGT_B])
    assert [(p.host, p.channel, p.target, p.rport.name) for p in result.paths] == [
        (2, 0, 0, "rport-2:0-1"),
        (2, 0, 1, "rport-2:0-2"),
        (3, 0, 0, "rport-3:0-1"),
        (3, 0, 1, "rport-3:0-2"),
    ]
    # the target-mode ports (hosts 4 and 5) do not resolve, and are no reason for a warning
    assert len(result.problems) == 4 and result.degraded() == ()
    snapshot = read_snapshot(sysfs_root=str(root))
    fc_devices = [d for d in snapshot.devices if d.hctl.host in (2, 3)]
    assert [(str(d.hctl), d.name, d.sid, d.holders) for d in fc_devices] == [
        ("2:0:0:1", "sda", None, ("dm-0",)),
        ("2:0:1:1", "sdb", None, ("dm-0",)),
        ("3:0:0:1", "sdc", None, ("dm-0",)),
        ("3:0:1:1", "sdd", None, ("dm-0",)),
    ]
    assert _fc.scan_mode_warning(view) is not None


def test_capture_port_down_names_the_blocked_rports(tmp_path: Path) -> None:
    view = _fc.read_fc(sysfs_root=str(build_from_capture(tmp_path, "port_down")))
    assert host_of(view, 4).port_state == "Linkdown"
    result = _fc.resolve(view, targets=[TGT_A], initiators=[INI_A, INI_B])
    assert result.paths == () and result.unmatched_targets == (TGT_A,)
    assert result.problems == (
        f"target {TGT_A} has no usable path from host2 ({INI_A}): rport-2:0-1 is Blocked (the link to it is down "
        "and the kernel waits dev_loss_tmo for it to return).",
        f"target {TGT_A} has no usable path from host3 ({INI_B}): rport-3:0-1 is Blocked (the link to it is down "
        "and the kernel waits dev_loss_tmo for it to return).",
    )
    both = _fc.resolve(view, targets=[TGT_A, TGT_B], initiators=[INI_A, INI_B])
    assert [p.label for p in both.paths] == [
        f"host2 -> {TGT_B} (rport-2:0-2, target 2:0:1)",
        f"host3 -> {TGT_B} (rport-3:0-2, target 3:0:1)",
    ]
    assert both.degraded() == both.problems and len(both.problems) == 2


def test_capture_not_present_is_still_a_target_port(tmp_path: Path) -> None:
    # Target port ...03 stayed down past dev_loss_tmo: the kernel deleted its SCSI targets, set the remote
    # ports' roles to "unknown" and kept their WWPN and target id. The cause to name is the state, not a role.
    root = build_from_capture(tmp_path, "not_present")
    view = _fc.read_fc(sysfs_root=str(root))
    gone = [r for r in view.rports if r.port_name == TGT_A and r.host in (2, 3)]
    assert [(r.name, r.port_state, r.roles, r.scsi_target_id) for r in gone] == [
        ("rport-2:0-1", "Not Present", (), 0),
        ("rport-3:0-1", "Not Present", (), 0),
    ]
    assert all(r.lost_target and r.target_role and not r.is_fcp_target and not r.usable for r in gone)
    initiator_peer = next(r for r in view.rports if r.name == "rport-2:0-0")
    assert not initiator_peer.lost_target and not initiator_peer.target_role  # no target id: never a target
    result = _fc.resolve(view, targets=[TGT_A], initiators=[INI_A, INI_B])
    assert result.paths == () and result.unmatched_targets == (TGT_A,)
    assert result.problems == (
        f"target {TGT_A} has no usable path from host2 ({INI_A}): rport-2:0-1 is Not Present (it stayed away "
        "longer than dev_loss_tmo and its LUNs were removed).",
        f"target {TGT_A} has no usable path from host3 ({INI_B}): rport-3:0-1 is Not Present (it stayed away "
        "longer than dev_loss_tmo and its LUNs were removed).",
    )
    both = _fc.resolve(view, targets=[TGT_A, TGT_B], initiators=[INI_A, INI_B])
    assert [(p.host, p.target) for p in both.paths] == [(2, 1), (3, 1)]
    assert both.degraded() == both.problems and len(both.problems) == 2
    snapshot = read_snapshot(sysfs_root=str(root))
    assert [(str(d.hctl), d.name) for d in snapshot.devices if d.hctl.host in (2, 3)] == [
        ("2:0:1:1", "sdb"),
        ("3:0:1:1", "sdd"),
    ]
