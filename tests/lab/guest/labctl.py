# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lab-guest control: plays the storage array (an LIO iSCSI target) and resets the initiator.

Installed in the lab image as /usr/local/lib/lunsafe-lab/labctl.py and driven over SSH by tests/lab/lab.py.
It only ever runs inside the throwaway lab VM: never on a developer machine.

One process does all target work through rtslib (no targetcli process per LUN), so provisioning
hundreds of LUNs takes seconds. Every command prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import shutil
import subprocess
import sys
import time

TARGET_IQN = "iqn.2003-01.org.lunsafe.lab:array"
PORTALS = ("127.0.0.1", "127.0.0.2", "::1")
# A second target name exporting the same LUs (same backstores, same WWIDs) on its own portal, as
# arrays do that present one target name per controller port. Only there after `target-b add`.
TARGET_B_IQN = "iqn.2003-01.org.lunsafe.lab:array-b"
TARGET_B_PORTALS = ("127.0.0.2:3260",)
TARGETS = {"a": TARGET_IQN, "b": TARGET_B_IQN}
STATE = "/var/lib/lunsafe-lab"
STATE_FILE = os.path.join(STATE, "state.json")
PRISTINE = "/usr/local/share/lunsafe-lab/pristine"
CONFIGFS_ISCSI = "/sys/kernel/config/target/iscsi"


def _rtslib():  # imported lazily: the reset path must work even if rtslib is broken
    import rtslib_fb  # noqa: PLC0415

    return rtslib_fb


def run(argv, timeout=30, check=False):
    """Run a tool with a deadline; never a shell string."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"argv": argv, "rc": 124, "stdout": "", "stderr": f"timed out after {timeout}s"}
    result = {"argv": argv, "rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}
    if check and proc.returncode != 0:
        raise SystemExit(f"labctl: {argv} failed rc={proc.returncode}: {proc.stderr.strip()}")
    return result


def initiator_name():
    with open("/etc/iscsi/initiatorname.iscsi", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("InitiatorName="):
                return line.split("=", 1)[1].strip()
    raise SystemExit("labctl: no InitiatorName in /etc/iscsi/initiatorname.iscsi")


def load_state():
    try:
        with open(STATE_FILE, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {"luns": {}, "generation": 0}


def save_state(state):
    os.makedirs(STATE, exist_ok=True)
    tmp = STATE_FILE + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(state, handle)
    os.replace(tmp, STATE_FILE)


def _objects(iqn=TARGET_IQN):
    rts = _rtslib()
    fabric = rts.FabricModule("iscsi")
    target = rts.Target(fabric, iqn, mode="lookup")
    tpg = rts.TPG(target, 1, mode="lookup")
    acl = rts.NodeACL(tpg, initiator_name(), mode="lookup")
    return rts, fabric, tpg, acl


def _target_exists(iqn):
    return os.path.isdir(os.path.join(CONFIGFS_ISCSI, iqn, "tpgt_1"))


def _chosen_targets(which):
    """IQNs a map/unmap/listen acts on: `a`, `b`, or `all` (every target that exists)."""
    if which == "all":
        return [iqn for iqn in TARGETS.values() if _target_exists(iqn)]
    iqn = TARGETS[which]
    if not _target_exists(iqn):
        raise SystemExit(f"labctl: target {iqn} does not exist (target-b add creates the second one)")
    return [iqn]


def parse_portal(text):
    """ADDR or ADDR:PORT or [V6]:PORT -> (address, port); the port defaults to 3260."""
    text = text.strip()
    if text.startswith("["):
        address, _bracket, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "3260"
    elif text.count(":") == 1:
        address, port = text.split(":")
    else:
        address, port = text, "3260"
    return address, int(port)


def _add_portal(rts, tpg, address, port):
    return rts.NetworkPortal(tpg, f"[{address}]" if ":" in address else address, port, mode="create")


def _new_backstore(rts, state, lun, size_mb, loop=False):
    """A new LU for LUN ``lun``: a fileio backstore on a file, or (``loop``) an iblock backstore on a loop
    device over a file, whose size follows the loop device: that LU can grow online (`grow`)."""
    state["generation"] += 1
    name = f"lun{lun}_g{state['generation']}"
    path = os.path.join(STATE, name + ".img")
    if not loop:
        so = rts.FileIOStorageObject(name, dev=path, size=size_mb * 1024 * 1024, write_back=False)
        return so, name, {}
    with open(path, "wb") as handle:
        handle.truncate(size_mb * 1024 * 1024)
    device = run(["losetup", "--find", "--show", path], timeout=20, check=True)["stdout"].strip()
    so = rts.BlockStorageObject(name, dev=device)
    return so, name, {"loop": device, "image": path}


def _detach_loops():
    """Detach the loop devices of this lab's images (growable LUNs) before the images are removed."""
    listing = run(["losetup", "--list", "--json", "--output", "NAME,BACK-FILE"], timeout=20)
    try:
        loops = json.loads(listing["stdout"] or "{}").get("loopdevices", [])
    except ValueError:
        loops = []
    for loop in loops:
        if (loop.get("back-file") or "").startswith(STATE + "/"):
            run(["losetup", "--detach", loop["name"]], timeout=20)


def cmd_setup(args):
    """Create the array from scratch: target, portals, N LUNs mapped to this host's initiator."""
    rts = _rtslib()
    root = rts.RTSRoot()
    root.clear_existing(confirm=True)
    _detach_loops()
    for leftover in glob.glob(os.path.join(STATE, "*.img")):
        os.unlink(leftover)
    state = {"luns": {}, "generation": 0, "size_mb": args.size_mb}
    os.makedirs(STATE, exist_ok=True)
    fabric = rts.FabricModule("iscsi")
    target = rts.Target(fabric, TARGET_IQN, mode="create")
    tpg = rts.TPG(target, 1, mode="create")
    tpg.set_attribute("authentication", "1" if args.chap_user else "0")
    tpg.set_attribute("generate_node_acls", "0")
    tpg.set_attribute("demo_mode_write_protect", "0")
    for address in PORTALS:
        _add_portal(rts, tpg, address, 3260)
    for extra in args.listen or ():
        _add_portal(rts, tpg, *parse_portal(extra))
    tpg.enable = True
    acl = rts.NodeACL(tpg, initiator_name(), mode="create")
    if args.chap_user:
        acl.chap_userid = args.chap_user
        acl.chap_password = args.chap_password
        if args.mutual_user:
            acl.chap_mutual_userid = args.mutual_user
            acl.chap_mutual_password = args.mutual_password
    if args.discovery_user:
        fabric.discovery_userid = args.discovery_user
        fabric.discovery_password = args.discovery_password
        fabric.discovery_enable_auth = True
    else:
        fabric.clear_discovery_auth_settings()
    for lun in range(args.luns):
        so, name, _extra = _new_backstore(rts, state, lun, args.size_mb)
        tpg_lun = rts.LUN(tpg, lun=lun, storage_object=so)
        rts.MappedLUN(acl, lun, tpg_lun)
        state["luns"][str(lun)] = {"backstore": name, "mapped": True, "wwn": so.wwn}
    save_state(state)
    if args.target_b:
        _create_target_b(rts, TARGET_B_PORTALS)
    return cmd_status(args)


def _create_target_b(rts, portals):
    """Target B: its own TPG and portals, the same backstores as target A's LUNs (same LU, same WWID),
    this host's ACL with A's CHAP settings, and A's current mapping mirrored."""
    _rts, fabric, tpg_a, acl_a = _objects(TARGET_IQN)
    if _target_exists(TARGET_B_IQN):
        raise SystemExit(f"labctl: {TARGET_B_IQN} exists already")
    target = rts.Target(fabric, TARGET_B_IQN, mode="create")
    tpg = rts.TPG(target, 1, mode="create")
    for name in ("authentication", "generate_node_acls", "demo_mode_write_protect"):
        tpg.set_attribute(name, tpg_a.get_attribute(name))
    for portal in portals:
        _add_portal(rts, tpg, *parse_portal(portal))
    tpg.enable = True
    acl = rts.NodeACL(tpg, initiator_name(), mode="create")
    for name in ("chap_userid", "chap_password", "chap_mutual_userid", "chap_mutual_password"):
        value = getattr(acl_a, name)
        if value:
            setattr(acl, name, value)
    mapped_a = {m.mapped_lun for m in acl_a.mapped_luns}
    for lun_a in sorted(tpg_a.luns, key=lambda x: x.lun):
        tpg_lun = rts.LUN(tpg, lun=lun_a.lun, storage_object=lun_a.storage_object)
        if lun_a.lun in mapped_a:
            rts.MappedLUN(acl, lun_a.lun, tpg_lun)
    return {"target": TARGET_B_IQN, "portals": list(portals), "mapped_luns": sorted(mapped_a)}


def cmd_target_b(args):
    """Add or remove the second target name (same LUs) on its own portal(s)."""
    if args.action == "add":
        return _create_target_b(_rtslib(), args.portal or TARGET_B_PORTALS)
    rts = _rtslib()
    existed = _target_exists(TARGET_B_IQN)
    if existed:
        rts.Target(rts.FabricModule("iscsi"), TARGET_B_IQN, mode="lookup").delete()
    return {"target": TARGET_B_IQN, "removed": existed}


def cmd_listen(args):
    """Make a target's TPG listen on one more portal (e.g. 127.0.0.1:3261), or stop listening there."""
    rts = _rtslib()
    address, port = parse_portal(args.portal)
    changed = []
    for iqn in _chosen_targets(args.target):
        _rts, _fabric, tpg, _acl = _objects(iqn)
        found = [np for np in tpg.network_portals if (np.ip_address.strip("[]"), np.port) == (address, port)]
        if args.action == "add" and not found:
            _add_portal(rts, tpg, address, port)
            changed.append(iqn)
        elif args.action == "remove":
            for np in found:
                np.delete()
                changed.append(iqn)
    return {"portal": args.portal, "action": args.action, "changed": changed}


def cmd_map(args):
    state = load_state()
    targets = _chosen_targets(args.target)
    for iqn in targets:
        rts, _fabric, tpg, acl = _objects(iqn)
        if not any(m.mapped_lun == args.lun for m in acl.mapped_luns):
            tpg_lun = rts.LUN(tpg, lun=args.lun)
            rts.MappedLUN(acl, args.lun, tpg_lun)
        if iqn == TARGET_IQN:
            state["luns"][str(args.lun)]["mapped"] = True
    save_state(state)
    return {"mapped": args.lun, "targets": targets}


def cmd_unmap(args):
    state = load_state()
    was_mapped = False
    targets = _chosen_targets(args.target)
    for iqn in targets:
        _rts, _fabric, _tpg, acl = _objects(iqn)
        for mapped in acl.mapped_luns:
            if mapped.mapped_lun == args.lun:
                mapped.delete()
                was_mapped = True
        if iqn == TARGET_IQN:
            state["luns"][str(args.lun)]["mapped"] = False
    save_state(state)
    return {"unmapped": args.lun, "was_mapped": was_mapped, "targets": targets}


def cmd_reuse(args):
    """Give LUN number N to a new backstore (new WWID), as an array does when it reuses LUN ids.
    With --target b only target B's LUN N changes: the two target names then present different LUs
    under one LUN number (a misconfigured array; the attach's identity check must see it)."""
    if args.target == "b":
        return _reuse_b_only(args)
    rts, _fabric, tpg, acl = _objects()
    state = load_state()
    exporting_b = []  # target B exports the same LU: give it the new one too (mapped if it was)
    if _target_exists(TARGET_B_IQN):
        _rts, _fabric, tpg_b, acl_b = _objects(TARGET_B_IQN)
        for lun_b in tpg_b.luns:
            if lun_b.lun == args.lun:
                exporting_b.append(any(m.mapped_lun == args.lun for m in acl_b.mapped_luns))
                lun_b.delete()  # also deletes its mapped LUNs
    for mapped in acl.mapped_luns:
        if mapped.mapped_lun == args.lun:
            mapped.delete()
    old = rts.LUN(tpg, lun=args.lun)
    old_so = old.storage_object
    old.delete()
    old_so.delete()
    so, name, extra = _new_backstore(rts, state, args.lun, args.size_mb or state.get("size_mb", 64), loop=args.loop)
    tpg_lun = rts.LUN(tpg, lun=args.lun, storage_object=so)
    if args.map:
        rts.MappedLUN(acl, args.lun, tpg_lun)
    if exporting_b:
        tpg_lun_b = rts.LUN(tpg_b, lun=args.lun, storage_object=so)
        if args.map and exporting_b[0]:
            rts.MappedLUN(acl_b, args.lun, tpg_lun_b)
    state["luns"][str(args.lun)] = {"backstore": name, "mapped": bool(args.map), "wwn": so.wwn, **extra}
    save_state(state)
    return {"reused": args.lun, "wwn": so.wwn, "mapped": bool(args.map), **extra}


def cmd_grow(args):
    """Grow LUN N's LU online to --size-mb, as an array does: only a LUN made with `reuse N --loop` can grow
    (its iblock backstore reports the loop device's size at every READ CAPACITY); the host sees the new size
    only after a rescan of each path."""
    state = load_state()
    entry = state["luns"].get(str(args.lun), {})
    if "loop" not in entry:
        raise SystemExit(f"labctl: LUN {args.lun} cannot grow: make it with `reuse {args.lun} --loop` first")
    old = os.path.getsize(entry["image"])
    new = args.size_mb * 1024 * 1024
    if new < old:
        raise SystemExit(f"labctl: LUN {args.lun} is {old} bytes; refusing to shrink it to {new}")
    with open(entry["image"], "r+b") as handle:
        handle.truncate(new)
    run(["losetup", "--set-capacity", entry["loop"]], timeout=20, check=True)
    with open(f"/sys/block/{os.path.basename(entry['loop'])}/size", encoding="ascii") as handle:
        size = int(handle.read()) * 512
    return {"grown": args.lun, "old_size_bytes": old, "size_bytes": size, "loop": entry["loop"]}


def _reuse_b_only(args):
    rts, _fabric, tpg_b, acl_b = _objects(TARGET_B_IQN)
    state = load_state()
    was_mapped = any(m.mapped_lun == args.lun for m in acl_b.mapped_luns)
    for lun_b in tpg_b.luns:
        if lun_b.lun == args.lun:
            old_so = lun_b.storage_object
            lun_b.delete()
            if not list(old_so.attached_luns) and old_so.name not in _backstores_of_a(state):
                old_so.delete()
    so, name, _extra = _new_backstore(rts, state, args.lun, state.get("size_mb", 64))
    tpg_lun = rts.LUN(tpg_b, lun=args.lun, storage_object=so)
    if args.map and was_mapped:
        rts.MappedLUN(acl_b, args.lun, tpg_lun)
    state.setdefault("luns_b", {})[str(args.lun)] = {"backstore": name, "wwn": so.wwn}
    save_state(state)
    return {"reused": args.lun, "target": TARGET_B_IQN, "wwn": so.wwn, "mapped": bool(args.map and was_mapped)}


def _backstores_of_a(state):
    return {entry["backstore"] for entry in state.get("luns", {}).values()}


def cmd_portal(args):
    """Take one portal down (drop its iSCSI packets both ways), or bring every portal back (`up`)."""
    family = "ip6" if ":" in args.address else "ip"
    if args.action == "down":
        run(["nft", "add", "table", "inet", "lunsafe"], timeout=10, check=True)
        for chain in ("input", "output"):
            run(
                ["nft", "add", "chain", "inet", "lunsafe", chain, f"{{ type filter hook {chain} priority 0 ; }}"],
                timeout=10,
                check=True,
            )
        run(
            [
                "nft",
                "add",
                "rule",
                "inet",
                "lunsafe",
                "input",
                family,
                "daddr",
                args.address,
                "tcp",
                "dport",
                str(args.port),
                "drop",
            ],
            timeout=10,
            check=True,
        )
        run(
            [
                "nft",
                "add",
                "rule",
                "inet",
                "lunsafe",
                "output",
                family,
                "saddr",
                args.address,
                "tcp",
                "sport",
                str(args.port),
                "drop",
            ],
            timeout=10,
            check=True,
        )
    else:
        run(["nft", "delete", "table", "inet", "lunsafe"], timeout=10)
    return {"portal": args.address, "port": args.port, "action": args.action}


def _target_connections(ports=(3260,)):
    """TCP connections the target holds on its iSCSI ports, by the portal address they reached."""
    connections = []
    for port in sorted(set(ports)):
        proc = run(["ss", "-Htn", "state", "established", "sport", "=", f":{port}"], timeout=10)
        for line in proc["stdout"].splitlines():
            fields = line.split()
            if len(fields) >= 4:
                local = fields[-2]
                connections.append({"portal": local, "peer": fields[-1]})
    return connections


def _target_view(iqn):
    base = os.path.join(CONFIGFS_ISCSI, iqn, "tpgt_1")
    return {
        "portals": sorted(_listdir(os.path.join(base, "np"))),
        "tpg_luns": sorted(int(n[4:]) for n in _listdir(os.path.join(base, "lun")) if n.startswith("lun_")),
        "mapped_luns": sorted(
            int(n[4:]) for n in _listdir(os.path.join(base, "acls", initiator_name())) if n.startswith("lun_")
        ),
    }


def cmd_status(_args):
    """Target A's view at the top level (as always); `targets` holds every target name's view."""
    state = load_state()
    targets = {iqn: _target_view(iqn) for iqn in TARGETS.values() if _target_exists(iqn)}
    view = targets.get(TARGET_IQN) or _target_view(TARGET_IQN)
    ports = {3260}
    for each in targets.values():
        ports.update(int(np.rsplit(":", 1)[1]) for np in each["portals"] if np.rsplit(":", 1)[-1].isdigit())
    return {
        "target": TARGET_IQN,
        "initiator": initiator_name(),
        "portals": view["portals"],
        "tpg_luns": view["tpg_luns"],
        "mapped_luns": view["mapped_luns"],
        "targets": targets,
        "connections": _target_connections(ports),
        "luns": state.get("luns", {}),
        "luns_b": state.get("luns_b", {}),
    }


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def _iscsi_block_devices():
    devices = []
    for path in glob.glob("/sys/class/iscsi_session/session*/device/target*/*/block/*"):
        devices.append(os.path.basename(path))
    return devices


def _remove_test_leftovers():
    """Holders the tests stack on maps (dmsetup create lunsafe-...), and a lease a failed test left on the lock."""
    steps = []
    holders = run(["dmsetup", "ls"], timeout=20)
    for line in holders["stdout"].splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith("lunsafe-"):
            steps.append(run(["dmsetup", "remove", "--force", name], timeout=30))
    # the collection's lock directory, and /run/lock where earlier versions kept the lock
    for lease in glob.glob("/run/lunsafe-san/*.lease") + glob.glob("/run/lock/*.lease"):
        os.unlink(lease)
        steps.append({"removed": lease})
    return steps


def cmd_reset(args):
    """Bring the initiator back to a clean state and rebuild the array: between test targets."""
    steps = []
    for mount in _lab_mounts():
        steps.append(run(["umount", "-l", mount], timeout=20))
    steps.append(run(["vgchange", "-an", "--select", "vg_name=~^lunsafe"], timeout=20))
    run(["nft", "delete", "table", "inet", "lunsafe"], timeout=10)
    steps.extend(_remove_test_leftovers())
    # maps first (never queue: a dead queueing map must not hang the reset), then paths, then sessions
    maps = run(["dmsetup", "ls", "--target", "multipath"], timeout=20)
    for line in maps["stdout"].splitlines():
        name = line.split()[0] if line.split() else ""
        if name and name != "No":
            steps.append(run(["dmsetup", "message", name, "0", "fail_if_no_path"], timeout=10))
            steps.append(run(["multipath", "-f", name], timeout=30))
            if run(["dmsetup", "info", name], timeout=10)["rc"] == 0:
                steps.append(run(["dmsetup", "remove", "--force", name], timeout=30))
    for dev in _iscsi_block_devices():
        try:
            with open(f"/sys/block/{dev}/device/delete", "w", encoding="ascii") as handle:
                handle.write("1")
        except OSError as exc:
            steps.append({"delete": dev, "error": str(exc)})
    steps.append(run(["iscsiadm", "-m", "session", "-u"], timeout=60))
    for folder in ("/etc/iscsi/nodes", "/etc/iscsi/send_targets"):
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder, exist_ok=True)
    for name in ("iscsid.conf", "multipath.conf"):
        src = os.path.join(PRISTINE, name)
        dst = "/etc/iscsi/iscsid.conf" if name == "iscsid.conf" else "/etc/multipath.conf"
        if os.path.exists(src):
            shutil.copyfile(src, dst)
    for leftover in ("/etc/multipath/wwids", "/etc/multipath/bindings"):
        if os.path.exists(leftover):
            with open(leftover, "w", encoding="ascii") as handle:
                handle.write("")
    for lock in glob.glob("/run/lunsafe-san/*") + glob.glob("/run/lock/lunsafe*"):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(lock)
    steps.append(run(["multipathd", "reconfigure"], timeout=30))
    _wait_no_iscsi_devices(deadline=time.monotonic() + 30)
    failed = [s for s in steps if isinstance(s, dict) and s.get("rc") not in (None, 0, 21, 5)]
    result = cmd_setup(args)
    result["reset_warnings"] = [
        {"argv": s.get("argv"), "rc": s.get("rc"), "stderr": s.get("stderr", "").strip()[:300]} for s in failed
    ]
    result["leftover_devices"] = _iscsi_block_devices()
    return result


def _lab_mounts():
    mounts = []
    with open("/proc/self/mounts", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) > 1 and fields[1].startswith("/mnt/lunsafe"):
                mounts.append(fields[1])
    return sorted(mounts, reverse=True)


def _wait_no_iscsi_devices(deadline):
    while time.monotonic() < deadline:
        if not glob.glob("/sys/class/iscsi_session/session*"):
            return
        time.sleep(0.2)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lunsafe-labctl")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("setup", "reset"):
        p = sub.add_parser(name)
        p.add_argument("--luns", type=int, default=4)
        p.add_argument("--size-mb", type=int, default=64)
        p.add_argument("--chap-user")
        p.add_argument("--chap-password")
        p.add_argument("--mutual-user")
        p.add_argument("--mutual-password")
        p.add_argument("--discovery-user")
        p.add_argument("--discovery-password")
        p.add_argument("--target-b", action="store_true", help=f"also export every LUN as {TARGET_B_IQN}")
        p.add_argument("--listen", action="append", metavar="ADDR:PORT", help="one more portal of target A")
    for name in ("map", "unmap"):
        p = sub.add_parser(name)
        p.add_argument("lun", type=int)
        p.add_argument("--target", choices=("a", "b", "all"), default="all", help="default: every target")
    p = sub.add_parser("target-b")
    p.add_argument("action", choices=("add", "remove"))
    p.add_argument("--portal", action="append", metavar="ADDR:PORT", help="default: " + " ".join(TARGET_B_PORTALS))
    p = sub.add_parser("listen")
    p.add_argument("action", choices=("add", "remove"))
    p.add_argument("portal", metavar="ADDR:PORT")
    p.add_argument("--target", choices=("a", "b", "all"), default="a")
    p = sub.add_parser("reuse")
    p.add_argument("lun", type=int)
    p.add_argument("--no-map", dest="map", action="store_false")
    p.add_argument("--target", choices=("all", "b"), default="all", help="b: only target B's LUN N")
    p.add_argument("--loop", action="store_true", help="an iblock LU on a loop device, which `grow` can grow")
    p.add_argument("--size-mb", type=int, help="default: the array's LUN size")
    p = sub.add_parser("grow")
    p.add_argument("lun", type=int)
    p.add_argument("--size-mb", type=int, required=True)
    p = sub.add_parser("portal")
    p.add_argument("action", choices=("down", "up"))
    p.add_argument("address", choices=PORTALS)
    p.add_argument("--port", type=int, default=3260)
    sub.add_parser("status")
    args = parser.parse_args(argv)
    handler = {
        "setup": cmd_setup,
        "reset": cmd_reset,
        "map": cmd_map,
        "unmap": cmd_unmap,
        "reuse": cmd_reuse,
        "grow": cmd_grow,
        "portal": cmd_portal,
        "status": cmd_status,
        "target-b": cmd_target_b,
        "listen": cmd_listen,
    }[args.command]
    json.dump(handler(args), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
