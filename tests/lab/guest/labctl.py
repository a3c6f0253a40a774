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
SEGMENT_FILE = os.path.join(STATE, "segment.json")  # portals of target A on the segment between guests
PRISTINE = "/usr/local/share/lunsafe-lab/pristine"
CONFIGFS_ISCSI = "/sys/kernel/config/target/iscsi"


def _rtslib():  # imported lazily: the reset path must work even if rtslib is broken
    import rtslib_fb  # noqa: PLC0415

    return rtslib_fb


def run(argv, timeout=30, check=False):
    """Run a tool with a deadline; never a shell string."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            # stuck in the kernel (D state: I/O on a queueing map): SIGKILL waits for the I/O to end, which may
            # be never; subprocess.run would wait for it forever, so leave it behind and say so
            return {"argv": argv, "rc": 124, "stdout": "", "stderr": f"timed out after {timeout}s, left unkillable"}
        return {"argv": argv, "rc": 124, "stdout": "", "stderr": f"timed out after {timeout}s"}
    result = {"argv": argv, "rc": proc.returncode, "stdout": stdout, "stderr": stderr}
    if check and proc.returncode != 0:
        raise SystemExit(f"labctl: {argv} failed rc={proc.returncode}: {stderr.strip()}")
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
    for extra in [*(args.listen or ()), *_segment_portals()]:
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
    run(["nft", "delete", "table", "inet", "lunsafe_cut"], timeout=10)
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


def _multipath_maps():
    """The names of the multipath maps device-mapper has now."""
    maps = run(["dmsetup", "ls", "--target", "multipath"], timeout=20)
    names = [line.split()[0] for line in maps["stdout"].splitlines() if line.split()]
    return [name for name in names if name != "No"]


#: open-iscsi's node and discovery records: under /etc/iscsi up to bookworm (2.1.8), under /var/lib/iscsi in
#: trixie's open-iscsi (2.1.11)
ISCSI_RECORDS = ("/etc/iscsi/nodes", "/etc/iscsi/send_targets", "/var/lib/iscsi/nodes", "/var/lib/iscsi/send_targets")


def _forget_iscsi_records():
    for folder in ISCSI_RECORDS:
        if os.path.isdir(folder):
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder, exist_ok=True)


def cmd_reset(args):
    """Bring the initiator back to a clean state and rebuild the array: between test targets."""
    steps = []
    fc_before = load_state().get("fc")
    for mount in _lab_mounts():
        steps.append(run(["umount", "-l", mount], timeout=20))
    # no map may queue I/O from here on: vgchange reads every block device, and one read of a dead map that
    # queues (the faults a naive detach leaves) would hang it in the kernel, and the reset with it
    for name in _multipath_maps():
        run(["dmsetup", "message", name, "0", "fail_if_no_path"], timeout=10)
    steps.append(run(["vgchange", "-an", "--select", "vg_name=~^lunsafe"], timeout=20))
    run(["nft", "delete", "table", "inet", "lunsafe"], timeout=10)
    run(["nft", "delete", "table", "inet", "lunsafe_cut"], timeout=10)
    steps.extend(_remove_test_leftovers())
    # maps first (never queue: a dead queueing map must not hang the reset), then paths, then sessions
    for name in _multipath_maps():
        steps.append(run(["dmsetup", "message", name, "0", "fail_if_no_path"], timeout=10))
        steps.append(run(["multipath", "-f", name], timeout=30))
        if run(["dmsetup", "info", name], timeout=10)["rc"] == 0:
            steps.append(run(["dmsetup", "remove", "--force", name], timeout=30))
    fc_quiet = fc_quiesce()  # after the maps: FC devices go now, the FC array is rebuilt below
    for dev in _iscsi_block_devices():
        try:
            with open(f"/sys/block/{dev}/device/delete", "w", encoding="ascii") as handle:
                handle.write("1")
        except OSError as exc:
            steps.append({"delete": dev, "error": str(exc)})
    steps.append(run(["iscsiadm", "-m", "session", "-u"], timeout=60))
    _forget_iscsi_records()
    for name in ("iscsid.conf", "multipath.conf"):
        src = os.path.join(PRISTINE, name)
        dst = "/etc/iscsi/iscsid.conf" if name == "iscsid.conf" else "/etc/multipath.conf"
        if os.path.exists(src):
            shutil.copyfile(src, dst)
    for leftover in ("/etc/multipath/wwids", "/etc/multipath/bindings"):
        if os.path.exists(leftover):
            with open(leftover, "w", encoding="ascii") as handle:
                handle.write("")
    # the host's lock state and what earlier runs left on disk for the next one: the default lock's journal
    # (on disk since it must outlive a reboot) and the records of the boot restore; each target starts clean
    leftovers = glob.glob("/run/lunsafe-san/*") + glob.glob("/run/lock/lunsafe*")
    leftovers += [*glob.glob("/var/lib/lunsafe-san/*.journal"), "/var/lib/lunsafe-san/persist.json"]
    for lock in leftovers:
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
    _fc_reset(args, fc_before or {}, fc_quiet, result)
    return result


def _fc_reset(args, fc_before, fc_quiet, result):
    """Reset, second half: the FC array as it was provisioned (LU count, size), logins back, scan mode sync,
    dev_loss_tmo back; FC devices left on any lab port count as leftover devices. Nothing without FC ports."""
    if not fc_quiet["fc"] and not fc_before:
        return  # a lab without FC ports
    # FC ports but also none (the guest rebooted: ports, targets and logins are gone) are provisioned again
    fc_luns = args.fc_luns if args.fc_luns is not None else len(fc_before.get("luns", {})) or 4
    fc_state = fc_provision(fc_luns, fc_before.get("size_mb", args.size_mb), load_state())
    result["fc"] = {"luns": sorted(int(n) for n in fc_state["luns"]), "deleted_devices": fc_quiet.get("deleted", [])}
    result["leftover_devices"] += [d["block"] or d["hctl"] for h in _all_fc_hosts() for d in _scsi_devices_of(h)]


def _all_fc_hosts():
    return [p["host"] for p in _fc_ports() if p["host"] is not None]


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


# --------------------------------------------------------------------------- Fibre Channel (FCoE VN2VN + LIO tcm_fc)
#
# Four NICs on one qemu hub inside the VM's own qemu process (tests/lab/lab.py adds them; no IP address on any
# of them). The ports with MACs ...:01 and ...:02 are the initiator ports (this host's FC HBAs, as a fleet host
# has them); ...:03 and ...:04 are the array's target ports (LIO tcm_fc), so each FC LUN has 2 x 2 = 4 paths.
# fcoe gives each port the WWPN 0x2000<MAC> and the WWNN 0x1000<MAC>.

FC_PORTS = (
    ("52:54:00:fc:00:01", "initiator"),
    ("52:54:00:fc:00:02", "initiator"),
    ("52:54:00:fc:00:03", "target"),
    ("52:54:00:fc:00:04", "target"),
)
# A lab of two guests (lab.py up --fc-array): the array guest has the target ports only, the host guest the
# initiator ports only, and their FC hubs are joined by a TCP connection between the two qemu processes (FCoE
# frames only, no IP; the comment above FC_LINK_ROLES in lab.py says why not UDP). The host guest's labctl
# then asks the array guest's (SSH over the segment between them) for everything on the array side: the
# targets and LUs at setup and reset, fc-map, fc-unmap, fc-reuse, the link of fc-port, and fc-status's targets
# and LUNs. A hang in tcm_fc then stays in the array's kernel, and the
# host's kernel shows what an initiator does when a target port stops answering.
FC_LINK_FILE = os.path.join(STATE, "fc-link.json")  # {"side": "array"} or {"side": "host", "array": ADDR}
FC_ARRAY_KEY = "/root/.ssh/lunsafe_lab_array"  # the lab's throwaway key, put there by lab.py on the host guest
FC_SIDE_ROLES = {"both": ("initiator", "target"), "host": ("initiator",), "array": ("target",)}
#: commands that only act on the array side: on the host guest they run on the array guest as they are
FC_ARRAY_COMMANDS = ("fc-map", "fc-unmap", "fc-reuse")
FC_REMOTE_TIMEOUT = 240  # s for one labctl command on the array guest (the driver gives a labctl call 300 s)
SCAN_PARAM = "/sys/module/scsi_mod/parameters/scan"
FC_MTU = 9000  # FCoE carries 2112-byte FC payloads: the NIC needs more than the Ethernet default of 1500
FC_DEFAULT_DEV_LOSS_TMO = 60
FC_LOGIN_TIMEOUT = 90.0


def _read(path, default=None):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return default


def _write(path, text):
    """Write exactly ``text`` (no newline: the scan parameter holds 6 characters and `manual\\n` does not fit)."""
    with open(path, "w", encoding="ascii") as handle:
        handle.write(text)


def fc_wwpn(mac):
    return "0x2000" + mac.replace(":", "").lower()


def _fc_link():
    """This guest's side of a two-guest FC lab; {} in a one-guest lab (both sides here)."""
    try:
        with open(FC_LINK_FILE, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {}


def _save_fc_link(link):
    """fc-link.json replaced whole (a reader never sees it half written)."""
    os.makedirs(STATE, exist_ok=True)
    with open(FC_LINK_FILE + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(link, handle)
    os.replace(FC_LINK_FILE + ".tmp", FC_LINK_FILE)


def _fc_side():
    return _fc_link().get("side", "both")


def _local_fc_ports():
    """(MAC, role) of the FC ports this guest has: all four, or one side's two in a two-guest lab."""
    roles = FC_SIDE_ROLES[_fc_side()]
    return [(mac, role) for mac, role in FC_PORTS if role in roles]


def _fc_wwpns(role):
    """The lab's WWPNs of one role, wherever the ports are (the same in one guest or two)."""
    return [fc_wwpn(mac) for mac, port_role in FC_PORTS if port_role == role]


def _array_labctl(*args):
    """labctl on the array guest of a two-guest FC lab (SSH over the segment, argv only), its JSON answer."""
    link = _fc_link()
    argv = [
        "ssh",
        "-i",
        FC_ARRAY_KEY,
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=15",
        "-o",
        "LogLevel=ERROR",
        f"root@{link['array']}",
        "python3",
        os.path.abspath(__file__),
        *args,
    ]
    result = run(argv, timeout=FC_REMOTE_TIMEOUT)
    if result["rc"] != 0:
        raise SystemExit(
            f"labctl: on the array guest ({link['array']}) `labctl {' '.join(args)}` failed rc={result['rc']}: "
            f"{result['stderr'].strip()[-400:]}"
        )
    return json.loads(result["stdout"])


def _ifname_of(mac):
    for path in glob.glob("/sys/class/net/*/address"):
        if (_read(path) or "").lower() == mac:
            return path.split("/")[-2]
    return None


def _fc_host_of(ifname):
    """The scsi host number of the fcoe fc_host on NIC ``ifname`` (its device path runs through net/IF/)."""
    for path in glob.glob("/sys/class/fc_host/host*"):
        if f"/net/{ifname}/" in os.path.realpath(os.path.join(path, "device")):
            return int(os.path.basename(path)[4:])
    return None


def _ctlr_of(ifname):
    found = glob.glob(f"/sys/class/net/{ifname}/ctlr_*")
    return found[0] if found else None


def _fc_ports():
    """Every lab FC port: MAC, role, NIC name, controller, scsi host, WWPN (None until created)."""
    ports = []
    for mac, role in _local_fc_ports():
        ifname = _ifname_of(mac)
        host = _fc_host_of(ifname) if ifname else None
        ports.append(
            {
                "mac": mac,
                "role": role,
                "ifname": ifname,
                "ctlr": _ctlr_of(ifname) if ifname else None,
                "host": host,
                "wwpn": fc_wwpn(mac),
            }
        )
    return ports


def _scan_mode():
    return _read(SCAN_PARAM)


def _set_scan_mode(mode):
    _write(SCAN_PARAM, mode)
    now = _scan_mode()
    if now != mode:
        raise SystemExit(f"labctl: scsi_mod scan mode is {now!r} after writing {mode!r}")
    return now


def _rport_view(path):
    name = os.path.basename(path)
    target_id = _read(os.path.join(path, "scsi_target_id"))
    return {
        "name": name,
        "port_name": _read(os.path.join(path, "port_name")),
        "node_name": _read(os.path.join(path, "node_name")),
        "port_id": _read(os.path.join(path, "port_id")),
        "roles": [r.strip() for r in (_read(os.path.join(path, "roles")) or "").split(",") if r.strip()],
        "port_state": _read(os.path.join(path, "port_state")),
        "scsi_target_id": int(target_id) if target_id not in (None, "") else None,
        "dev_loss_tmo": _read(os.path.join(path, "dev_loss_tmo")),
        "fast_io_fail_tmo": _read(os.path.join(path, "fast_io_fail_tmo")),
    }


def _rports_of(host):
    return [_rport_view(p) for p in sorted(glob.glob(f"/sys/class/fc_remote_ports/rport-{host}:*"))]


def _scsi_devices_of(host):
    """SCSI devices on scsi host ``host``: H:C:T:L, block name, state, sysfs wwid."""
    devices = []
    for path in sorted(glob.glob(f"/sys/class/scsi_device/{host}:*")):
        hctl = os.path.basename(path)
        blocks = _listdir(os.path.join(path, "device", "block"))
        devices.append(
            {
                "hctl": hctl,
                "block": blocks[0] if blocks else None,
                "state": _read(os.path.join(path, "device", "state")),
                "wwid": _read(os.path.join(path, "device", "wwid")),
            }
        )
    return devices


def _fc_targets():
    """tcm_fc targets as {target WWPN: {tpg_luns: {lun: backstore}, acls: {initiator WWPN: {mapped: tpg lun}}}},
    read straight from configfs (names there are colon-separated WWPNs)."""
    view = {}
    for tdir in sorted(glob.glob("/sys/kernel/config/target/fc/*:*")):
        wwpn = "0x" + os.path.basename(tdir).replace(":", "")
        tpg = os.path.join(tdir, "tpgt_1")
        luns = {}
        for ldir in sorted(glob.glob(os.path.join(tpg, "lun", "lun_*"))):
            links = [os.path.realpath(p) for p in glob.glob(os.path.join(ldir, "*")) if os.path.islink(p)]
            luns[int(os.path.basename(ldir)[4:])] = os.path.basename(links[0]) if links else None
        acls = {}
        for adir in sorted(glob.glob(os.path.join(tpg, "acls", "*"))):
            mapped = {}
            for mdir in sorted(glob.glob(os.path.join(adir, "lun_*"))):
                links = [os.path.realpath(p) for p in glob.glob(os.path.join(mdir, "*")) if os.path.islink(p)]
                mapped[int(os.path.basename(mdir)[4:])] = int(os.path.basename(links[0])[4:]) if links else None
            acls["0x" + os.path.basename(adir).replace(":", "")] = mapped
        view[wwpn] = {"tpg_luns": luns, "acls": acls}
    return view


def fc_wwid(wwn):
    """The WWID the initiator sees for an LIO LU (VPD 0x83 NAA 6, OUI 001405, then the unit serial's hex digits),
    as udev/multipath spell it: the iSCSI tests compute it the same way."""
    return "36001405" + wwn.replace("-", "")[:25]


def cmd_fc_status(_args):
    state = load_state().get("fc", {})
    ports = _fc_ports()
    initiators, targets = [], []
    for port in ports:
        host = port["host"]
        base = f"/sys/class/fc_host/host{host}" if host is not None else None
        entry = {
            "ifname": port["ifname"],
            "mac": port["mac"],
            "host": host,
            "port_name": _read(os.path.join(base, "port_name")) if base else None,
            "node_name": _read(os.path.join(base, "node_name")) if base else None,
            "port_state": _read(os.path.join(base, "port_state")) if base else None,
            "link": _read(f"/sys/class/net/{port['ifname']}/operstate") if port["ifname"] else None,
            "mtu": _read(f"/sys/class/net/{port['ifname']}/mtu") if port["ifname"] else None,
        }
        if port["role"] == "initiator":
            entry["dev_loss_tmo"] = _read(os.path.join(base, "dev_loss_tmo")) if base else None
            entry["rports"] = _rports_of(host) if host is not None else []
            entry["devices"] = _scsi_devices_of(host) if host is not None else []
            initiators.append(entry)
        else:
            entry["devices"] = _scsi_devices_of(host) if host is not None else []
            targets.append(entry)
    if _fc_side() == "host":
        # the target ports, LUs and mappings are the array guest's: its view, its ports on no local scsi host
        remote = _array_labctl("fc-status")
        return {
            "scan_mode": _scan_mode(),
            "initiators": initiators,
            "targets": [{**port, "host": None, "devices": [], "remote": True} for port in remote["targets"]],
            "luns": remote["luns"],
            "tpg_luns": remote["tpg_luns"],
            "mapping": remote["mapping"],
            "setup_seconds": state.get("setup_seconds"),
            "setup_phases": state.get("phases"),
            "array": _fc_link()["array"],
            "tcm_fc": remote.get("tcm_fc"),
        }
    config = _fc_targets()
    mapping = {}
    for twwpn, tview in config.items():
        for iwwpn, mapped in tview["acls"].items():
            mapping.setdefault(iwwpn, {})[twwpn] = {str(k): v for k, v in mapped.items()}
    luns = {}
    for lun, entry in sorted(state.get("luns", {}).items(), key=lambda kv: int(kv[0])):
        luns[lun] = {**entry, "wwid": fc_wwid(entry["wwn"])}
    return {
        "scan_mode": _scan_mode(),
        "initiators": initiators,
        "targets": targets,
        "luns": luns,
        "tpg_luns": {t: sorted(v["tpg_luns"]) for t, v in config.items()},
        "mapping": mapping,
        "setup_seconds": state.get("setup_seconds"),
        "setup_phases": state.get("phases"),
        # which tcm_fc serves: the lab's patched build names itself (lab.py build_tcm_fc), the stock one has no version
        "tcm_fc": _read("/sys/module/tcm_fc/version") or "stock",
    }


def _fc_create_ports(steps):
    """Load the drivers, create one VN2VN fcoe controller per lab NIC (disabled: mode first), no IP on any."""
    for module in ("e1000", "fcoe", "tcm_fc"):
        steps.append(run(["modprobe", module], timeout=60, check=True))
    deadline = time.monotonic() + 30
    local = _local_fc_ports()
    while any(_ifname_of(mac) is None for mac, _role in local):
        if time.monotonic() > deadline:
            raise SystemExit(f"labctl: FC NICs missing (MACs {[m for m, _r in local]}); was the VM booted with them?")
        time.sleep(0.2)
    for mac, _role in local:
        ifname = _ifname_of(mac)
        _write(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "1")  # no link-local address either
        run(["ip", "link", "set", ifname, "mtu", str(FC_MTU)], timeout=10, check=True)
        run(["ip", "link", "set", ifname, "up"], timeout=10, check=True)
        if _ctlr_of(ifname) is None:
            _write("/sys/bus/fcoe/ctlr_create", ifname)
        ctlr = _ctlr_of(ifname)
        if ctlr is None:
            raise SystemExit(f"labctl: no fcoe controller on {ifname} after ctlr_create")
        if _read(os.path.join(ctlr, "enabled")) != "1" and _read(os.path.join(ctlr, "mode")) != "VN2VN":
            # the kernel's own spelling: 6.1 compares the mode's name without case, 6.12 (sysfs_match_string) with it
            _write(os.path.join(ctlr, "mode"), "VN2VN")


# A port fault as a cut in the fabric (`fc-port down --how cut`, the default in a two-guest lab): the target
# port's link stays up, and every frame it sends is dropped after its driver took it (netem loss 100 %: the send
# succeeds) and every frame it would receive is dropped at its ingress. Both sides stop hearing each other, as
# behind a dead switch port, and tcm_fc never sees a send fail. With the link itself down (`--how link`) libfc
# resets every exchange of the port, and the stock tcm_fc strands every command still in its backend (see
# _fc_drain): in the two-guest lab the array guest's kworkers blocked at the first port loss (2026-12-06, seed
# 101), with the initiator's kernel fine and SSH to it alive. A cut alone did not avoid the hang either. The
# two-guest array now runs the lab's patched tcm_fc (lab.py build_tcm_fc), which releases those commands.
FC_CUT_TABLE = "lunsafe_fc_cut_"


def _fc_cut(ifname, cut):
    table = FC_CUT_TABLE + ifname
    marker = os.path.join(STATE, "fc-cut-" + ifname)  # so that a reset undoes only the cuts there are
    if cut:
        os.makedirs(STATE, exist_ok=True)
        with open(marker, "w", encoding="ascii") as handle:
            handle.write(ifname)
        run(["modprobe", "sch_netem"], timeout=30, check=True)
        run(["tc", "qdisc", "replace", "dev", ifname, "root", "netem", "loss", "100%"], timeout=10, check=True)
        run(["nft", "add", "table", "netdev", table], timeout=10, check=True)
        run(
            [
                "nft",
                "add",
                "chain",
                "netdev",
                table,
                "in",
                f'{{ type filter hook ingress device "{ifname}" priority 0; policy drop; }}',
            ],
            timeout=10,
            check=True,
        )
    else:
        run(["tc", "qdisc", "del", "dev", ifname, "root"], timeout=10)  # rc 2 when there was none
        run(["nft", "delete", "table", "netdev", table], timeout=10)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(marker)


def _fc_uncut_all():
    for marker in glob.glob(os.path.join(STATE, "fc-cut-*")):
        _fc_cut(os.path.basename(marker)[len("fc-cut-") :], False)


def _fc_enable(enable):
    wanted = "1" if enable else "0"
    for port in _fc_ports():
        if port["ctlr"] and _read(os.path.join(port["ctlr"], "enabled")) != wanted:
            _write(os.path.join(port["ctlr"], "enabled"), wanted)


def _fc_configure_targets(rts, state, *, luns, size_mb, initiators, targets):
    """One tcm_fc target per target port, the same LUs on both (separate backstores from the iSCSI LUs),
    LUNs mapped to each initiator WWPN through its own ACL (no automatic mapping of new LUNs)."""
    fabric = rts.FabricModule("tcm_fc")
    for target in list(fabric.targets):
        target.delete()
    tpgs = []
    for twwpn in targets:
        target = rts.Target(fabric, "naa." + twwpn[2:], mode="create")
        tpg = rts.TPG(target, 1, mode="create")
        acls = {iwwpn: rts.NodeACL(tpg, "naa." + iwwpn[2:], mode="create") for iwwpn in initiators}
        tpgs.append((tpg, acls))
    fc_state = {"luns": {}, "size_mb": size_mb, "initiators": initiators, "targets": targets}
    for lun in range(luns):
        so, name = _new_fc_backstore(rts, state, lun, size_mb)
        for tpg, acls in tpgs:
            tpg_lun = rts.LUN(tpg, lun=lun, storage_object=so)
            for acl in acls.values():
                rts.MappedLUN(acl, lun, tpg_lun)
        fc_state["luns"][str(lun)] = {"backstore": name, "wwn": so.wwn, "mapped": sorted(initiators)}
    return fc_state


def _new_fc_backstore(rts, state, lun, size_mb):
    state["generation"] = state.get("generation", 0) + 1
    name = f"fc{lun}_g{state['generation']}"
    so = rts.FileIOStorageObject(
        name, dev=os.path.join(STATE, name + ".img"), size=size_mb * 1024 * 1024, write_back=False
    )
    return so, name


def _fc_wait_logins(initiator_hosts, targets, timeout=FC_LOGIN_TIMEOUT):
    """Until every initiator host sees every target port as an Online FCP Target with a SCSI target id."""
    deadline = time.monotonic() + timeout
    while True:
        missing = []
        for host in initiator_hosts:
            seen = {
                r["port_name"]
                for r in _rports_of(host)
                if "FCP Target" in r["roles"]
                and r["port_state"] == "Online"
                and r["scsi_target_id"] is not None
                and r["scsi_target_id"] >= 0
            }
            missing += [f"host{host} -> {t}" for t in targets if t not in seen]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"labctl: FC logins missing after {timeout:.0f}s: {', '.join(missing)}")
        time.sleep(0.25)


def _fc_delete_devices(hosts):
    """Delete every SCSI device on the given (lab FC) hosts; returns what it deleted."""
    deleted = []
    for host in hosts:
        for device in _scsi_devices_of(host):
            try:
                _write(f"/sys/class/scsi_device/{device['hctl']}/device/delete", "1")
                deleted.append(device["hctl"])
            except OSError as exc:
                deleted.append({"hctl": device["hctl"], "error": str(exc)})
    return deleted


def _fc_set_dev_loss_tmo(hosts, seconds):
    """dev_loss_tmo of the hosts (the default for rports found later) and of their present rports."""
    results = []
    for host in hosts:
        try:
            _write(f"/sys/class/fc_host/host{host}/dev_loss_tmo", str(seconds))
        except OSError as exc:
            results.append({"host": host, "error": str(exc)})
        for rport in _rports_of(host):
            path = f"/sys/class/fc_remote_ports/{rport['name']}/dev_loss_tmo"
            try:
                _write(path, str(seconds))
                results.append({"rport": rport["name"], "dev_loss_tmo": _read(path)})
            except OSError as exc:  # EBUSY on a Blocked / Not Present rport; EINVAL at or below fast_io_fail_tmo
                results.append({"rport": rport["name"], "error": str(exc), "port_state": rport["port_state"]})
    return results


def _fc_settle(hosts, seconds=1.0):
    """Let the scan work the logins queued run (under manual it does nothing) before the mode changes back."""
    time.sleep(seconds)
    run(["udevadm", "settle", "--timeout=30"], timeout=40)
    return [d for host in hosts for d in _scsi_devices_of(host)]


FC_SCSI_TIMEOUT = 120
FC_TIMEOUT_RULE = "/run/udev/rules.d/59-lunsafe-lab-fc-timeout.rules"


def _fc_timeout_rule():
    """SCSI command timeout FC_SCSI_TIMEOUT s on every device behind an FC remote port (a runtime udev rule).

    The lab's FCoE VN2VN initiators learn that a target port is gone only when its beacons stop (15-30 s under
    TCG, longer on a busy host), a real fabric's RSCN says so at once. With the kernel's 30 s default, commands
    in flight to a lost port then time out before its remote port is Blocked, SCSI error handling aborts them
    and resets the host, and in this one-kernel lab that wedges it: tcm_fc's PRLO waits for the aborted
    commands for good (ft_prlo -> target_wait_for_cmds), libfc's remote-port work stops behind it, scsi_eh
    spins (soft lockup) and SSH dies (reproduced 2026-12-05 with 3 s timeouts and I/O in flight, twice).
    Above the time VN2VN needs, the remote port is Blocked first and libfc ends the commands itself, as a
    fabric's notice would."""
    os.makedirs(os.path.dirname(FC_TIMEOUT_RULE), exist_ok=True)
    with open(FC_TIMEOUT_RULE, "w", encoding="ascii") as handle:
        handle.write(
            "# lunsafe lab (labctl fc-setup): see _fc_timeout_rule in labctl.py\n"
            'ACTION=="add", SUBSYSTEM=="scsi", ENV{DEVTYPE}=="scsi_device", DEVPATH=="*/rport-*", '
            f'ATTR{{timeout}}="{FC_SCSI_TIMEOUT}"\n'
        )
    run(["udevadm", "control", "--reload"], timeout=30, check=True)


def fc_provision(luns, size_mb, state):
    """Ports, array and logins from any state, with the kernel's automatic scans off while the rports log in
    (LUNs would appear otherwise); ends in the kernel default (sync) with no FC SCSI device on any lab port.
    ``phases`` says where the time went (seconds since the start). In a two-guest lab the array guest builds
    its side only (:func:`_fc_provision_array`), and the host guest has it rebuilt while its own ports are off."""
    start = time.monotonic()
    phases = {}
    steps = []
    side = _fc_side()
    if side == "array":
        return _fc_provision_array(luns, size_mb, state, start, steps)
    _set_scan_mode("manual")
    _fc_timeout_rule()
    _fc_create_ports(steps)
    _fc_uncut_all()
    _fc_enable(False)  # every rport logs out: the array changes while nobody is logged in
    ports = _fc_ports()
    for port in ports:
        run(["ip", "link", "set", port["ifname"], "up"], timeout=10, check=True)
    all_hosts = [p["host"] for p in ports if p["host"] is not None]
    deleted = _fc_delete_devices(all_hosts)
    phases["ports"] = round(time.monotonic() - start, 2)
    initiators = _fc_wwpns("initiator")
    targets = _fc_wwpns("target")
    initiator_hosts = [p["host"] for p in ports if p["role"] == "initiator"]
    if side == "host":
        remote = _array_labctl("fc-setup", "--luns", str(luns), "--size-mb", str(size_mb))
        # which tcm_fc the array runs decides whether a port cut drains this host's devices first (cmd_fc_port)
        _save_fc_link({**_fc_link(), "array_tcm_fc": remote.get("tcm_fc")})
        fc_state = {
            "luns": {lun: {"wwn": entry["wwn"], "mapped": entry["mapped"]} for lun, entry in remote["luns"].items()},
            "size_mb": size_mb,
            "initiators": initiators,
            "targets": targets,
        }
    else:
        fc_state = _fc_configure_targets(
            _rtslib(), state, luns=luns, size_mb=size_mb, initiators=initiators, targets=targets
        )
    phases["array"] = round(time.monotonic() - start, 2)
    _fc_enable(True)
    try:
        _fc_wait_logins(initiator_hosts, targets)
    except SystemExit as missing:
        # once, in a pre-run (2026-12-06): the first provisioning after two power cuts left one initiator port
        # without its VN2VN logins for the whole wait, and the next reset's worked. Restart FIP on every port
        # and wait once more before failing.
        phases["login_retry"] = str(missing)
        _fc_enable(False)
        time.sleep(1)
        _fc_enable(True)
        _fc_wait_logins(initiator_hosts, targets)
    phases["logins"] = round(time.monotonic() - start, 2)
    leftover = _fc_settle(all_hosts)
    _fc_set_dev_loss_tmo(initiator_hosts, FC_DEFAULT_DEV_LOSS_TMO)
    _set_scan_mode("sync")
    time.sleep(0.5)
    leftover += [d for host in all_hosts for d in _scsi_devices_of(host)]
    if leftover:
        raise SystemExit(f"labctl: FC SCSI devices appeared during provisioning: {leftover}")
    phases["settled"] = round(time.monotonic() - start, 2)
    fc_state["setup_seconds"] = phases["settled"]
    fc_state["phases"] = phases
    fc_state["deleted_devices"] = deleted
    state["fc"] = fc_state
    save_state(state)
    return fc_state


def _fc_provision_array(luns, size_mb, state, start, steps):
    """The array guest's side: its target ports (off while the targets, LUs and ACLs of the lab's initiator
    WWPNs are rebuilt), then on. The host guest waits for the logins."""
    _fc_create_ports(steps)
    _fc_uncut_all()
    # the kernel's messages at every level on the console: a hang in tcm_fc leaves its stacks in the console log
    run(["dmesg", "--console-level", "7"], timeout=10)
    _fc_enable(False)
    for port in _fc_ports():
        run(["ip", "link", "set", port["ifname"], "up"], timeout=10, check=True)
    fc_state = _fc_configure_targets(
        _rtslib(), state, luns=luns, size_mb=size_mb, initiators=_fc_wwpns("initiator"), targets=_fc_wwpns("target")
    )
    _fc_enable(True)
    fc_state["setup_seconds"] = round(time.monotonic() - start, 2)
    fc_state["phases"] = {"array": fc_state["setup_seconds"]}
    state["fc"] = fc_state
    save_state(state)
    return fc_state


def cmd_fc_setup(args):
    if args.side:
        link = {"side": args.side}
        if args.side == "host":
            if not args.array:
                raise SystemExit("labctl: fc-setup --side host needs --array ADDRESS (the array guest on the segment)")
            link["array"] = args.array
        _save_fc_link(link)
    fc_provision(args.luns, args.size_mb, load_state())
    return cmd_fc_status(args)


def _fc_objects():
    rts = _rtslib()
    fabric = rts.FabricModule("tcm_fc")
    state = load_state()
    if "fc" not in state:
        raise SystemExit("labctl: no FC array here: run fc-setup first")
    tpgs = [
        rts.TPG(rts.Target(fabric, "naa." + t[2:], mode="lookup"), 1, mode="lookup") for t in state["fc"]["targets"]
    ]
    return rts, state, tpgs


def _chosen_initiators(args, state):
    known = state["fc"]["initiators"]
    chosen = [
        w.lower() if w.lower().startswith("0x") else "0x" + w.lower().replace(":", "") for w in args.initiator or known
    ]
    unknown = [w for w in chosen if w not in known]
    if unknown:
        raise SystemExit(f"labctl: {unknown} are not lab initiator WWPNs ({known})")
    return chosen


def _acl(rts, tpg, wwpn):
    return rts.NodeACL(tpg, "naa." + wwpn[2:], mode="lookup")


def cmd_fc_map(args):
    """Map TPG LUN --lun to the initiator(s) as LUN --mapped-lun (default the same number) on both target ports."""
    rts, state, tpgs = _fc_objects()
    initiators = _chosen_initiators(args, state)
    mapped_lun = args.lun if args.mapped_lun is None else args.mapped_lun
    changed = []
    for tpg in tpgs:
        tpg_lun = rts.LUN(tpg, lun=args.lun)  # no storage object: a lookup
        for wwpn in initiators:
            acl = _acl(rts, tpg, wwpn)
            if not any(m.mapped_lun == mapped_lun for m in acl.mapped_luns):
                rts.MappedLUN(acl, mapped_lun, tpg_lun)
                changed.append({"target": "0x" + tpg.parent_target.wwn[4:], "initiator": wwpn})
    entry = state["fc"]["luns"].setdefault(str(args.lun), {})
    entry["mapped"] = sorted(set(entry.get("mapped", [])) | set(initiators))
    save_state(state)
    return {"mapped": args.lun, "mapped_lun": mapped_lun, "initiators": initiators, "changed": changed}


def cmd_fc_unmap(args):
    """Remove every mapping of TPG LUN --lun for the initiator(s), on both target ports."""
    rts, state, tpgs = _fc_objects()
    initiators = _chosen_initiators(args, state)
    removed = []
    for tpg in tpgs:
        for wwpn in initiators:
            for mapped in _acl(rts, tpg, wwpn).mapped_luns:
                if mapped.tpg_lun.lun == args.lun:
                    removed.append(
                        {"target": "0x" + tpg.parent_target.wwn[4:], "initiator": wwpn, "mapped_lun": mapped.mapped_lun}
                    )
                    mapped.delete()
    entry = state["fc"]["luns"].setdefault(str(args.lun), {})
    entry["mapped"] = sorted(set(entry.get("mapped", [])) - set(initiators))
    save_state(state)
    return {"unmapped": args.lun, "initiators": initiators, "removed": removed}


def cmd_fc_reuse(args):
    """A new LU (new WWID) at TPG LUN --lun on both target ports, mapped again to whoever had it mapped."""
    rts, state, tpgs = _fc_objects()
    old_name = state["fc"]["luns"].get(str(args.lun), {}).get("backstore")
    remap = []  # (tpg index, initiator, mapped lun)
    old_so = None
    for index, tpg in enumerate(tpgs):
        for lun in tpg.luns:
            if lun.lun == args.lun:
                for acl in tpg.node_acls:
                    for mapped in acl.mapped_luns:
                        if mapped.tpg_lun.lun == args.lun:
                            remap.append((index, acl.node_wwn, mapped.mapped_lun))
                old_so = lun.storage_object
                lun.delete()
    if old_so is not None and old_so.name == old_name:
        old_so.delete()
    so, name = _new_fc_backstore(rts, state, args.lun, args.size_mb or state["fc"].get("size_mb", 64))
    tpg_luns = [rts.LUN(tpg, lun=args.lun, storage_object=so) for tpg in tpgs]
    if args.map:
        for index, node_wwn, mapped_lun in remap:
            rts.MappedLUN(rts.NodeACL(tpgs[index], node_wwn, mode="lookup"), mapped_lun, tpg_luns[index])
    mapped = sorted({"0x" + w.replace("naa.", "").replace(":", "") for _i, w, _m in remap}) if args.map else []
    state["fc"]["luns"][str(args.lun)] = {"backstore": name, "wwn": so.wwn, "mapped": mapped}
    save_state(state)
    return {"reused": args.lun, "backstore": name, "wwn": so.wwn, "wwid": fc_wwid(so.wwn), "mapped": mapped}


def _fc_port(text):
    text = text.strip().lower()
    for port in _fc_ports():
        if port["role"] == "target" and text in (port["ifname"], port["wwpn"], port["wwpn"][2:]):
            return port
    raise SystemExit(f"labctl: {text!r} is no lab FC target port (ifname or WWPN)")


def _initiator_hosts():
    return [p["host"] for p in _fc_ports() if p["role"] == "initiator" and p["host"] is not None]


# libfc's VN2VN (fcoe_ctlr_vn_beacon) logs in to a port again only when that port's beacons had expired on this
# side; a port whose link came back before the initiators aged it out, or whose remote port went Not Present
# meanwhile, is sometimes never logged in to again (seen: Not Present for good with both links up). A fabric
# would send an RSCN; the lab's stand-in is a LIP on each initiator that still lacks the port, with automatic
# scans off during it (a LIP re-logs in every remote port of that initiator; under sync the kernel would
# then scan whole targets and add LUNs nobody asked for).
RELOGIN_GRACE = 20.0  # seconds after the link came up; a normal re-login takes 4-5 s in the lab


def _fc_relogin(wwpn, wait=30.0):
    """LIP on each initiator host whose remote port of ``wwpn`` is not Online, with scsi_mod.scan manual
    until they are (or ``wait`` seconds passed); the scan mode is put back as it was."""
    stuck = [
        host
        for host in _initiator_hosts()
        if not any(r["port_name"] == wwpn and r["port_state"] == "Online" for r in _rports_of(host))
    ]
    before = _scan_mode()
    if before != "manual":
        _set_scan_mode("manual")
    try:
        for host in stuck:
            _write(f"/sys/class/fc_host/host{host}/issue_lip", "1")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            rports = [r for host in stuck for r in _rports_of(host) if r["port_name"] == wwpn]
            if rports and all(r["port_state"] == "Online" for r in rports):
                break
            time.sleep(0.25)
    finally:
        if before != "manual":
            _set_scan_mode(before)
    return {"lip": [f"host{host}" for host in stuck], "scan_mode": before}


def _fc_remote_port(text):
    wwpn = text.strip().lower().replace(":", "")
    wwpn = wwpn if wwpn.startswith("0x") else "0x" + wwpn
    if wwpn not in _fc_wwpns("target"):
        raise SystemExit(f"labctl: {text!r} is no lab FC target port WWPN ({_fc_wwpns('target')})")
    return {"wwpn": wwpn, "ifname": None}


FC_DRAIN_TIMEOUT = 60.0
# the MODULE_VERSION of the lab's patched tcm_fc (tests/lab/tcm_fc-release-aborted.patch, lab.py build_tcm_fc): it
# releases the commands whose exchange is gone, so a cut needs no drain with it
TCM_FC_LAB_VERSION = "lunsafe-lab-release-aborted"


def _fc_drain(wwpn, timeout=FC_DRAIN_TIMEOUT):
    """Before a two-guest lab cuts target port ``wwpn``: this host's SCSI devices behind it set offline (new
    commands fail at once, multipathd fails those paths) until none has a command in flight; the caller sets
    them running again once the cut is in place. tcm_fc never releases a write whose data-out the cut lost,
    nor a command whose exchange libfc reset (ft_recv_seq only marks it aborted); when the initiator's session
    then goes, ft_prlo waits for it for good and the array's FC work stops on both target ports (seen
    2026-12-06; the analysis is in docs/benchmarks/campaign.md). A real array's port does not strand its
    commands; with the stock driver the lab drains them so that the fault shows the initiator's side only. The
    lab's patched tcm_fc (TCM_FC_LAB_VERSION) releases them, and with it cmd_fc_port does not drain."""
    devices = []
    for host in _initiator_hosts():
        for rport in _rports_of(host):
            if rport["port_name"] != wwpn or rport["scsi_target_id"] is None or rport["scsi_target_id"] < 0:
                continue
            for path in sorted(glob.glob(f"/sys/class/scsi_device/{host}:*:{rport['scsi_target_id']}:*")):
                hctl = os.path.basename(path)
                if _read(os.path.join(path, "device", "state")) == "running":
                    _write(os.path.join(path, "device", "state"), "offline\n")  # the kernel wants the newline
                    devices.append({"hctl": hctl})
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    while True:
        busy = []
        for device in devices:
            for inflight in glob.glob(f"/sys/class/scsi_device/{device['hctl']}/device/block/*/inflight"):
                if (_read(inflight) or "0 0").split() != ["0", "0"]:
                    busy.append(device["hctl"])
        if not busy or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for device in devices:
        device["drain_s"] = round(time.monotonic() - start, 2)
        device["busy"] = device["hctl"] in busy
    return devices


def _fc_undrain(hctl):
    """A drained device running again, if it is still there and offline: a short dev_loss_tmo may have removed
    it while the array cut the port (the kernel then refuses any state with EINVAL), and the kernel takes a new
    state only from running or offline."""
    path = f"/sys/class/scsi_device/{hctl}/device/state"
    if _read(path) != "offline":
        return False
    try:
        _write(path, "running\n")
    except OSError:
        if _read(path) == "offline":  # still there and still offline: the write failed for another reason
            raise
        return False
    return True


def cmd_fc_port(args):
    """Take a target port's link down or up; then wait (--wait S) until every initiator's rport of it is
    Blocked (down) or Online (up). After dev_loss_tmo a Blocked rport becomes Not Present and its devices go.
    On the host guest of a two-guest lab the array guest's labctl takes the link down or up (its own wait 0:
    it has no initiator), and the wait and the re-login are the host's, as here."""
    remote = _fc_side() == "host"
    port = _fc_remote_port(args.port) if remote else _fc_port(args.port)
    how = args.how or ("link" if _fc_side() == "both" else "cut")
    result = {"port": port["wwpn"], "ifname": port["ifname"], "action": args.action, "how": how}
    if args.dev_loss_tmo is not None:
        result["dev_loss_tmo"] = _fc_set_dev_loss_tmo(_initiator_hosts(), args.dev_loss_tmo)
    start = time.monotonic()
    if remote:
        drain = args.drain
        if drain is None:  # only where the array's tcm_fc strands what the cut catches in flight (stock)
            drain = _fc_link().get("array_tcm_fc") != TCM_FC_LAB_VERSION
        result["drain"] = drain
        drained = _fc_drain(port["wwpn"]) if args.action == "down" and drain else []
        try:
            link = _array_labctl("fc-port", args.action, "--port", port["wwpn"], "--wait", "0", "--how", how)
        finally:
            for device in drained:
                device["restored"] = _fc_undrain(device["hctl"])
        result["ifname"] = link.get("ifname")
        result["drained"] = drained
    elif how == "cut":
        _fc_cut(port["ifname"], args.action == "down")
    else:
        run(["ip", "link", "set", port["ifname"], args.action], timeout=10, check=True)
    wanted = ("Blocked", "Not Present") if args.action == "down" else ("Online",)
    deadline = start + args.wait
    relogin_at = start + RELOGIN_GRACE if args.action == "up" else None
    while True:
        rports = [r for host in _initiator_hosts() for r in _rports_of(host) if r["port_name"] == port["wwpn"]]
        if rports and all(r["port_state"] in wanted for r in rports):
            break
        if time.monotonic() > deadline:
            break
        if relogin_at is not None and time.monotonic() > relogin_at:
            relogin_at = None
            result["relogin"] = _fc_relogin(port["wwpn"])
        time.sleep(0.25)
    result["seconds"] = round(time.monotonic() - start, 2)
    result["rports"] = rports
    result["reached"] = bool(rports) and all(r["port_state"] in wanted for r in rports)
    return result


def cmd_fc_dev_loss_tmo(args):
    """dev_loss_tmo of the initiator hosts and their present rports (must exceed fast_io_fail_tmo, 5 s)."""
    return {"dev_loss_tmo": args.seconds, "results": _fc_set_dev_loss_tmo(_initiator_hosts(), args.seconds)}


def cmd_fc_scan_mode(args):
    before = _scan_mode()
    return {"scan_mode": _set_scan_mode(args.mode), "before": before}


def fc_quiesce():
    """Reset, first half: automatic scans off, every lab FC SCSI device deleted (the maps over them are gone by
    now), links up, controllers off (rports log out: the array is rebuilt under nobody's session)."""
    if not glob.glob("/sys/bus/fcoe/devices/ctlr_*"):
        return {"fc": False}
    _set_scan_mode("manual")
    ports = _fc_ports()
    deleted = _fc_delete_devices([p["host"] for p in ports if p["host"] is not None])
    _fc_enable(False)
    return {"fc": True, "deleted": deleted}


# --------------------------------------------------------------------------- several hosts on one array (issue 25)


def cmd_initiator_name(args):
    """Give this host its own initiator name (guests made from one image share the image's), then restart
    iscsid so that new sessions carry it. Only with no session open: a live session keeps the old name."""
    current = initiator_name()
    if current == args.name:
        return {"initiator_name": current, "changed": False}
    if run(["iscsiadm", "-m", "session"], timeout=30)["rc"] == 0:
        raise SystemExit("labctl: sessions are open; log them out before renaming the initiator")
    tmp = "/etc/iscsi/initiatorname.iscsi.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(f"InitiatorName={args.name}\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, "/etc/iscsi/initiatorname.iscsi")
    run(["systemctl", "restart", "iscsid.service"], timeout=60, check=True)
    return {"initiator_name": args.name, "changed": True, "was": current}


def cmd_segment(args):
    """The NIC on the lab's private segment between guests (found by MAC): link up or down, and its
    link-local addresses (static, never routed; LAB.md)."""
    ifname = _ifname_of(args.mac.lower())
    if ifname is None:
        raise SystemExit(f"labctl: no NIC with MAC {args.mac}")
    run(["ip", "link", "set", ifname, args.link], timeout=10, check=True)
    have = run(["ip", "-o", "-4", "addr", "show", "dev", ifname], timeout=10, check=True)["stdout"]
    for address in args.address or ():
        if f" {address}/" not in have:
            run(["ip", "addr", "add", f"{address}/16", "dev", ifname], timeout=10, check=True)
    if args.link == "up":
        _wait_carrier(ifname)
    if args.serve is not None:
        _serve_segment([f"{address}:3260" for address in args.address or ()] if args.serve else [])
    return {"ifname": ifname, "link": args.link, "addresses": _addresses_of(ifname), "portals": _segment_portals()}


def _serve_segment(portals):
    """Target A listens on the segment's portals (also after every reset: setup reads SEGMENT_FILE), or no
    longer does (``portals`` empty). Off by default: the other lab tests expect only the local portals."""
    before = _segment_portals()
    os.makedirs(STATE, exist_ok=True)
    with open(SEGMENT_FILE, "w", encoding="utf-8") as handle:
        json.dump({"portals": portals}, handle)
    if not _target_exists(TARGET_IQN):
        return
    rts, _fabric, tpg, _acl = _objects(TARGET_IQN)
    wanted = {parse_portal(p) for p in portals}
    for np in list(tpg.network_portals):
        key = (np.ip_address.strip("[]"), np.port)
        if key not in wanted and f"{key[0]}:{key[1]}" in before:
            np.delete()
    have = {(np.ip_address.strip("[]"), np.port) for np in tpg.network_portals}
    for portal in sorted(wanted - have):
        _add_portal(rts, tpg, *portal)


def _segment_portals():
    try:
        with open(SEGMENT_FILE, encoding="utf-8") as handle:
            return list(json.load(handle)["portals"])
    except FileNotFoundError:
        return []


def _wait_carrier(ifname, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _read(f"/sys/class/net/{ifname}/operstate") not in ("up", "unknown"):
        time.sleep(0.2)


def _addresses_of(ifname):
    out = run(["ip", "-o", "-4", "addr", "show", "dev", ifname], timeout=10)["stdout"]
    return [line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3]


def _host_acl(rts, tpg, initiator):
    return rts.NodeACL(tpg, initiator, mode="any")  # the host's ACL, created on its first map


def cmd_host_map(args):
    """Map the array's LUN (its LU) to another host's initiator under the LUN number that host sees, as
    arrays number LUNs per host: the same LU can be LUN 2 here and LUN 7 there."""
    rts, _fabric, tpg, _acl = _objects(TARGET_IQN)
    tpg_lun = next((lun for lun in tpg.luns if lun.lun == args.lun), None)
    if tpg_lun is None:
        raise SystemExit(f"labctl: the array has no LUN {args.lun}")
    acl = _host_acl(rts, tpg, args.initiator)
    number = args.lun if args.as_lun is None else args.as_lun
    existing = {m.mapped_lun: m for m in acl.mapped_luns}
    if number in existing and existing[number].tpg_lun.lun != args.lun:
        raise SystemExit(
            f"labctl: {args.initiator} already sees LUN {number} as array LUN {existing[number].tpg_lun.lun}"
        )
    if number not in existing:
        rts.MappedLUN(acl, number, tpg_lun)
    return {
        "initiator": args.initiator,
        "lun": args.lun,
        "as": number,
        "wwn": tpg_lun.storage_object.wwn,
        "changed": number not in existing,
    }


def cmd_host_unmap(args):
    """Remove another host's view of a LUN (by the number that host sees)."""
    rts, _fabric, tpg, _acl = _objects(TARGET_IQN)
    acl = _host_acl(rts, tpg, args.initiator)
    removed = False
    for mapped in acl.mapped_luns:
        if mapped.mapped_lun == args.as_lun:
            mapped.delete()
            removed = True
    return {"initiator": args.initiator, "as": args.as_lun, "was_mapped": removed}


def cmd_cut_ssh(args):
    """Cut this host off from the controller for N seconds (a host lost in the middle of a play): new SSH
    connections are dropped by nftables, open sessions are ended, and a transient systemd unit (not this SSH
    session, which dies with the cut) lifts the cut."""
    unit = "lunsafe-lab-cut-ssh"
    run(["systemctl", "reset-failed", f"{unit}.service"], timeout=10)
    argv = [sys.executable, os.path.abspath(__file__), "cut-ssh-run", "--seconds", str(args.seconds)]
    run(["systemd-run", f"--unit={unit}", "--collect", *argv], timeout=30, check=True)
    if args.hold:
        # the cut ends this very SSH session: the caller's task is the one that finds the host unreachable (a
        # task after it could otherwise start in between and do its work on the host, answer unheard)
        time.sleep(args.hold)
    return {"cut_seconds": args.seconds, "unit": unit}


def cmd_cut_ssh_run(args):
    table = ["inet", "lunsafe_cut"]
    run(["nft", "add", "table", *table], timeout=10, check=True)
    run(["nft", "add", "chain", *table, "input", "{ type filter hook input priority -10 ; }"], timeout=10, check=True)
    run(["nft", "add", "rule", *table, "input", "tcp", "dport", "22", "drop"], timeout=10, check=True)
    # established sessions too (a controller's SSH master connection would otherwise just stall and resume):
    # end every sshd session process, not the listener, as when the host's sshd dies
    run(["pkill", "--signal", "KILL", "-f", "^sshd: root"], timeout=10)
    try:
        time.sleep(args.seconds)
    finally:
        run(["nft", "delete", "table", *table], timeout=10)
    return {"cut_seconds": args.seconds}


def cmd_hosts(_args):
    """Every initiator the array knows and the LUNs each sees (its number -> the array's LUN and WWN)."""
    _rts, _fabric, tpg, _acl = _objects(TARGET_IQN)
    return {
        acl.node_wwn: {
            str(m.mapped_lun): {"lun": m.tpg_lun.lun, "wwn": m.tpg_lun.storage_object.wwn} for m in acl.mapped_luns
        }
        for acl in tpg.node_acls
    }


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
        if name == "reset":
            p.add_argument("--fc-luns", type=int, help="FC LUNs after the reset (default: as many as before)")
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
    p = sub.add_parser("fc-setup", help="FC ports (FCoE VN2VN), tcm_fc targets, LUs and ACLs; no FC device left")
    p.add_argument("--luns", type=int, default=4)
    p.add_argument("--size-mb", type=int, default=64)
    p.add_argument(
        "--side",
        choices=("both", "host", "array"),
        help="a two-guest FC lab: this guest's side from now on (kept over resets); default: as it was (both)",
    )
    p.add_argument("--array", metavar="ADDRESS", help="with --side host: the array guest's address on the segment")
    sub.add_parser("fc-status")
    for name in ("fc-map", "fc-unmap"):
        p = sub.add_parser(name)
        p.add_argument("--lun", type=int, required=True, help="the array's (TPG) LUN number")
        p.add_argument("--initiator", action="append", metavar="WWPN", help="default: both initiator ports")
        if name == "fc-map":
            p.add_argument("--mapped-lun", type=int, help="the LUN number the initiator sees (default: --lun)")
    p = sub.add_parser("fc-reuse")
    p.add_argument("--lun", type=int, required=True)
    p.add_argument("--no-map", dest="map", action="store_false")
    p.add_argument("--size-mb", type=int)
    p = sub.add_parser("fc-port")
    p.add_argument("action", choices=("down", "up"))
    p.add_argument("--port", required=True, help="a target port's WWPN or NIC name")
    p.add_argument("--wait", type=float, default=60, help="seconds to wait for the initiators' rports (0: none)")
    p.add_argument("--dev-loss-tmo", type=int, help="first set the initiators' rports' dev_loss_tmo (seconds)")
    p.add_argument(
        "--how",
        choices=("link", "cut"),
        help="link: the port's link down/up; cut: its link stays up, every frame to and from it dropped (see "
        "_fc_cut); default: link in one guest, cut in a two-guest lab",
    )
    p.add_argument(
        "--drain",
        action=argparse.BooleanOptionalAction,
        help="two-guest lab, down: set this host's devices behind the port offline until nothing is in flight "
        "before the cut (_fc_drain); default: only if the array runs the stock tcm_fc",
    )
    p = sub.add_parser("fc-dev-loss-tmo")
    p.add_argument("seconds", type=int)
    p = sub.add_parser("fc-scan-mode")
    p.add_argument("mode", choices=("manual", "sync", "async"))
    p = sub.add_parser("initiator-name", help="this host's own initiator name (restarts iscsid; no session open)")
    p.add_argument("name")
    p = sub.add_parser("segment", help="the NIC on the private segment between lab guests")
    p.add_argument("--mac", required=True)
    p.add_argument("--link", choices=("up", "down"), default="up")
    p.add_argument("--address", action="append", help="a link-local address (169.254.0.0/16) to add")
    p.add_argument(
        "--serve",
        action=argparse.BooleanOptionalAction,
        help="--serve: target A listens on these addresses (port 3260) from now on, also after resets; --no-serve: not",
    )
    for name in ("host-map", "host-unmap"):
        p = sub.add_parser(name, help="another host's view of an array LUN (target A)")
        p.add_argument("--initiator", required=True, help="the other host's initiator name")
        if name == "host-map":
            p.add_argument("--lun", type=int, required=True, help="the array's (TPG) LUN number")
            p.add_argument("--as", dest="as_lun", type=int, help="the LUN number that host sees (default: --lun)")
        else:
            p.add_argument("--as", dest="as_lun", type=int, required=True, help="the LUN number that host sees")
    sub.add_parser("hosts", help="every initiator the array knows and what it sees")
    for name in ("cut-ssh", "cut-ssh-run"):
        p = sub.add_parser(name, help="drop SSH to this guest for N seconds (a host cut off from the controller)")
        p.add_argument("--seconds", type=int, required=True)
        if name == "cut-ssh":
            p.add_argument("--hold", type=float, default=0, help="then wait this long (the cut ends this session)")
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
        "fc-setup": cmd_fc_setup,
        "fc-status": cmd_fc_status,
        "fc-map": cmd_fc_map,
        "fc-unmap": cmd_fc_unmap,
        "fc-reuse": cmd_fc_reuse,
        "fc-port": cmd_fc_port,
        "fc-dev-loss-tmo": cmd_fc_dev_loss_tmo,
        "fc-scan-mode": cmd_fc_scan_mode,
        "initiator-name": cmd_initiator_name,
        "segment": cmd_segment,
        "host-map": cmd_host_map,
        "host-unmap": cmd_host_unmap,
        "hosts": cmd_hosts,
        "cut-ssh": cmd_cut_ssh,
        "cut-ssh-run": cmd_cut_ssh_run,
    }[args.command]
    if args.command in FC_ARRAY_COMMANDS and _fc_side() == "host":
        # the host guest of a two-guest FC lab: the array guest's labctl does it, with the same arguments
        result = _array_labctl(*(sys.argv[1:] if argv is None else argv))
    else:
        result = handler(args)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
