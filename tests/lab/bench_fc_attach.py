# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: one LUN over 4 Fibre Channel paths (2 initiator ports x 2 target ports of the lab's FCoE array):
fc_lun_attach against the floor (the bare targeted scans plus multipathd's map) and against os-brick's
FibreChannelConnector, side by side in one run on the same lab (issue 24). Run by hand; not part of the suite.

    python3 tests/lab/bench_fc_attach.py [--luns 4 64 256] [--samples 3] [--name benchfc] [--reuse]
                                         [--out docs/benchmarks/fc-attach.md] [--note TEXT ...]

For each count N of FC LUNs mapped to both initiators on both target ports (`labctl fc-setup --luns N
--size-mb 1`: every rport logged in, no FC device), each sample runs three arms, the order rotating from sample
to sample; before every arm all FC devices and maps are gone and /etc/multipath/wwids is emptied (each LUN is
new to multipathd):
  floor:    in the guest, `C T L` written to the scan file of each (initiator fc_host, target rport) pair (channel
            and target id from /sys/class/fc_remote_ports), then polling sysfs until the 4 block devices exist and
            a multipath map (dm uuid mpath-*) holds all 4; timed in the guest. LUN 1.
  ours:     `ansible -m lunsafe.san.fc_lun_attach -a "targets=<both target WWPNs> lun=2"`: the module's own
            `timings.total` and the wall time of the ad-hoc call; then `state=absent` (timed the same way).
  os-brick: os-brick 6.1's FibreChannelConnector in-process in the guest (tests/lab/guest/osbrick.py, target_wwn
            both target ports, target_lun 3, no initiator_target_map as in test_fc_lab.py): connect_volume then
            disconnect_volume, by the driver's clock (no Python start-up, no import).
After each attach the FC SCSI devices nobody asked for are counted (every FC device whose LUN is not the one
attached, and any beyond 4 of that LUN). Medians over the samples; ratios ours/floor, ours-floor, ours/os-brick.

Writes OUT (markdown) and OUT's .json (merged with the rows recorded there, one row per LUN count).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_attach
import bench_osbrick
import lab as lab_module

TARGETS = ["0x2000525400fc0003", "0x2000525400fc0004"]  # the lab's target ports (lab.py FC_PORTS)
PATHS = 4  # 2 initiator ports x 2 target ports
ARMS = ("floor", "ours", "osbrick")
LUN_OF = {"floor": 1, "ours": 2, "osbrick": 3}  # a different LUN per arm (all new to multipathd anyway)
# SCSI devices behind FC remote ports (the initiators' rports of the target ports; never the target side's)
FC_DEVICES = "/sys/class/fc_remote_ports/rport-*/device/target*/*:*:*:*"
MODULE = "lunsafe.san.fc_lun_attach"
GOAL_FLOOR_PLUS = 1.0
GOAL_OSBRICK_RATIO = 0.7

# runs in the guest: the floor. argv: LUN, target WWPNs (comma-separated), timeout. The (host, channel, target
# id) of each Online FCP Target rport of those WWPNs; `C T L` to its host's scan file; then until its LUN has a
# block device on every pair and one mpath map holds them all (multipathd alone builds it: never helped)
GUEST_FLOOR = r"""
import glob, json, os, sys, time
lun, targets, timeout = int(sys.argv[1]), sys.argv[2].split(","), float(sys.argv[3])
def read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""
pairs = []
for rport in sorted(glob.glob("/sys/class/fc_remote_ports/rport-*")):
    if (read(rport + "/port_name") in targets and "FCP Target" in read(rport + "/roles")
            and read(rport + "/port_state") == "Online" and read(rport + "/scsi_target_id") not in ("", "-1")):
        host, rest = os.path.basename(rport)[len("rport-"):].split(":")
        pairs.append((host, rest.split("-")[0], read(rport + "/scsi_target_id")))
def blocks():
    found = []
    for host, channel, target in pairs:
        found += glob.glob("/sys/class/scsi_device/%s:%s:%s:%d/device/block/*" % (host, channel, target, lun))
    return sorted(os.path.basename(b) for b in found)
def holding_map(names):
    for dm in glob.glob("/sys/block/dm-*"):
        if read(dm + "/dm/uuid").startswith("mpath-") and set(names) <= set(os.listdir(dm + "/slaves")):
            return read(dm + "/dm/name")
    return None
start = time.monotonic()
for host, channel, target in pairs:
    with open("/sys/class/scsi_host/host%s/scan" % host, "w") as handle:
        handle.write("%s %s %d" % (channel, target, lun))
written = time.monotonic() - start
found = blocks()
while len(found) < len(pairs) and time.monotonic() - start < timeout:
    time.sleep(0.01)
    found = blocks()
scan = time.monotonic() - start
name = None
while len(found) == len(pairs) and name is None and time.monotonic() - start < timeout:
    name = holding_map(found)
    if name is None:
        time.sleep(0.01)
print(json.dumps({"seconds": round(time.monotonic() - start, 3), "written": round(written, 3),
                  "devices": round(scan, 3), "pairs": len(pairs), "paths": found, "map": name}))
"""


def log(msg: str) -> None:
    print(f"[bench_fc_attach {time.strftime('%H:%M:%S', time.gmtime())}] {msg}", file=sys.stderr, flush=True)


def fc_state(lab: lab_module.Lab, *, detach: bool) -> Dict[str, Any]:
    """The FC devices and maps now; with detach, all of them gone afterwards and the wwids file emptied."""
    return bench_attach.guest_python(
        lab, bench_attach.GUEST_DETACH, "detach" if detach else "look", FC_DEVICES, timeout=1200
    )


def fresh(lab: lab_module.Lab) -> None:
    state = fc_state(lab, detach=True)
    if state.get("left_devices") or state.get("left_maps") or state.get("left_mpath_paths"):
        raise SystemExit(f"bench_fc_attach: FC devices or maps left after the detach: {state}")


def unrequested(lab: lab_module.Lab, lun: int) -> Dict[str, Any]:
    """FC SCSI devices present whose LUN nobody asked for, and those beyond PATHS of the attached LUN."""
    devices = fc_state(lab, detach=False)["devices"]
    own = [d for d in devices if d["lun"] == lun]
    return {"count": len(devices) - len(own) + max(0, len(own) - PATHS), "paths": len(own)}


def arm(lab: lab_module.Lab, root: Path, who: str) -> Dict[str, Any]:
    lun = LUN_OF[who]
    fresh(lab)
    if who == "floor":
        start = time.monotonic()
        got = bench_attach.guest_python(lab, GUEST_FLOOR, str(lun), ",".join(TARGETS), "600", timeout=900)
        got["wall"] = round(time.monotonic() - start, 3)
        if len(got["paths"]) != PATHS or not got["map"]:
            raise SystemExit(
                f"bench_fc_attach: the floor's scans of LUN {lun} did not give {PATHS} paths in a map: {got}"
            )
        extra = unrequested(lab, lun)
        return {"attach": got["seconds"], "attach_wall": got["wall"], "devices": got["devices"], **_extra(extra)}
    if who == "ours":
        args = f"targets={','.join(TARGETS)} lun={lun}"
        attach = bench_osbrick.module(lab, root, args, name=MODULE)
        extra = unrequested(lab, lun)
        detach = bench_osbrick.module(lab, root, args + " state=absent", name=MODULE)
        return {
            "attach": attach["seconds"],
            "attach_wall": attach["wall"],
            "detach": detach["seconds"],
            "detach_wall": detach["wall"],
            "timings": attach["timings"],
            "detach_timings": detach["timings"],
            "attach_commands": attach.get("commands"),  # from the module's profile
            "detach_commands": detach.get("commands"),
            "profiles": {"attach": attach.get("profile"), "detach": detach.get("profile")},
            **_extra(extra),
        }
    target = [a for wwpn in TARGETS for a in ("--target-wwn", wwpn)]
    attach = bench_osbrick.brick(lab, "connect", lun, target=target)
    extra = unrequested(lab, lun)
    info = json.dumps(attach.get("device_info") or {})
    detach = bench_osbrick.brick(lab, "disconnect", lun, ["--device-info", info], target=target)
    return {
        "attach": attach["seconds"],
        "attach_wall": attach["wall"],
        "detach": detach["seconds"],
        "detach_wall": detach["wall"],
        "path": attach.get("path"),
        "attach_commands": attach.get("commands"),  # its processutils.execute calls (tests/lab/guest/osbrick.py)
        "detach_commands": detach.get("commands"),
        "command_names": {"attach": attach.get("command_names"), "detach": detach.get("command_names")},
        **_extra(extra),
    }


def _extra(extra: Dict[str, Any]) -> Dict[str, Any]:
    return {"unrequested": extra["count"], "lun_paths": extra["paths"]}


def _median(values: List[float]) -> float:
    return round(statistics.median(values), 3)


def measure(lab: lab_module.Lab, root: Path, luns: int, samples: int) -> Dict[str, Any]:
    t0 = time.monotonic()
    fresh(lab)
    setup = lab.array(["fc-setup", "--luns", str(luns), "--size-mb", "1"], timeout=3600)
    mapped = len(setup["luns"])
    setup_seconds = round(time.monotonic() - t0, 1)
    log(f"{mapped} FC LUNs mapped ({setup_seconds}s, labctl phases {setup.get('setup_phases')})")
    per_pair = {f"{i} -> {t}": len(m) for i, targets in setup["mapping"].items() for t, m in targets.items()}
    if mapped != luns or len(per_pair) != PATHS or set(per_pair.values()) != {luns}:
        raise SystemExit(f"bench_fc_attach: fc-setup --luns {luns} left {mapped} LUNs, mapped in LIO: {per_pair}")
    got: List[Dict[str, Dict[str, Any]]] = []
    for i in range(samples):
        order = ARMS[i % len(ARMS) :] + ARMS[: i % len(ARMS)]
        one = {who: arm(lab, root, who) for who in order}
        one["order"] = list(order)  # type: ignore[assignment]
        log(
            f"N={luns} sample {i + 1}/{samples} ({' '.join(order)}): floor {one['floor']['attach']:.2f}s, "
            f"ours {one['ours']['attach']:.2f}s, os-brick {one['osbrick']['attach']:.2f}s; unrequested "
            f"{one['floor']['unrequested']}/{one['ours']['unrequested']}/{one['osbrick']['unrequested']}"
        )
        got.append(one)
    fresh(lab)
    row: Dict[str, Any] = {"luns": luns, "samples": len(got), "fc_setup_seconds": setup_seconds}
    for who in ARMS:
        keys = ("attach", "attach_wall") + (("detach", "detach_wall") if who != "floor" else ("devices",))
        row[who] = {key: _median([g[who][key] for g in got]) for key in keys}
        row[who]["unrequested"] = max(g[who]["unrequested"] for g in got)
        row[who]["lun_paths"] = sorted({g[who]["lun_paths"] for g in got})  # [4] when every attach had 4 paths
        row[who]["attach_all"] = [g[who]["attach"] for g in got]
    phases = sorted({k for g in got for k, v in g["ours"]["timings"].items() if isinstance(v, (int, float))})
    row["ours"]["phases"] = {
        k: _median([g["ours"]["timings"][k] for g in got if isinstance(g["ours"]["timings"].get(k), (int, float))])
        for k in phases
    }
    row["ours"]["timings_first"] = got[0]["ours"]["timings"]
    row["ours"]["detach_timings_first"] = got[0]["ours"]["detach_timings"]
    row["osbrick"]["paths"] = [g["osbrick"].get("path") for g in got]
    for who in ("ours", "osbrick"):
        row[who].update(bench_osbrick.commands_median(got, who))
    row["ours"]["profile_first"] = got[0]["ours"].get("profiles")
    row["osbrick"]["command_names_first"] = got[0]["osbrick"].get("command_names")
    row["orders"] = [g["order"] for g in got]
    row["seconds"] = round(time.monotonic() - t0, 1)
    log(f"N={luns} done in {row['seconds']}s: {json.dumps({w: row[w]['attach'] for w in ARMS})}")
    return row


def ratios(r: Dict[str, Any]) -> Dict[str, Any]:
    o, f, b = r["ours"], r["floor"], r["osbrick"]
    return {
        "ours_over_floor": round(o["attach"] / f["attach"], 2) if f["attach"] else None,
        "ours_minus_floor": round(o["attach"] - f["attach"], 3),
        "ours_over_osbrick_attach": round(o["attach"] / b["attach"], 2) if b["attach"] else None,
        "ours_over_osbrick_detach": round(o["detach"] / b["detach"], 2) if b["detach"] else None,
    }


def goal(r: Dict[str, Any]) -> str:
    q = ratios(r)
    floor_ok = q["ours_minus_floor"] <= GOAL_FLOOR_PLUS
    brick_ok = q["ours_over_osbrick_attach"] is not None and q["ours_over_osbrick_attach"] <= GOAL_OSBRICK_RATIO
    return (
        f"{r['luns']} LUNs: ours - floor = {q['ours_minus_floor']:.2f} s "
        f"({'met' if floor_ok else 'NOT met'}: at most {GOAL_FLOOR_PLUS:.0f} s), ours / os-brick = "
        f"{q['ours_over_osbrick_attach']} ({'met' if brick_ok else 'NOT met'}: at most {GOAL_OSBRICK_RATIO})"
    )


def table(rows: List[Dict[str, Any]]) -> List[str]:
    lines = [
        "| FC LUNs mapped | samples | floor s (devices) | ours attach s (wall) | os-brick connect s (wall) | "
        "ours / floor | ours - floor s | ours / os-brick | ours detach s (wall) | os-brick disconnect s (wall) | "
        "ours / os-brick detach | unrequested floor / ours / os-brick | commands per attach ours / os-brick "
        "| per detach |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["luns"]):
        f, o, b, q = r["floor"], r["ours"], r["osbrick"], ratios(r)
        lines.append(
            f"| {r['luns']} | {r['samples']} | {f['attach']:.2f} ({f['devices']:.2f}) | {o['attach']:.2f} "
            f"({o['attach_wall']:.1f}) | {b['attach']:.2f} ({b['attach_wall']:.1f}) | {q['ours_over_floor']} | "
            f"{q['ours_minus_floor']:.2f} | {q['ours_over_osbrick_attach']} | {o['detach']:.2f} "
            f"({o['detach_wall']:.1f}) | {b['detach']:.2f} ({b['detach_wall']:.1f}) | "
            f"{q['ours_over_osbrick_detach']} | {f['unrequested']} / {o['unrequested']} / {b['unrequested']} | "
            f"{bench_osbrick.count_cell(r, 'attach_commands')} | {bench_osbrick.count_cell(r, 'detach_commands')} |"
        )
    return lines


def write(out: Path, rows: List[Dict[str, Any]], stamp: Optional[Dict[str, Any]], notes: List[str]) -> None:
    json_path = out.with_suffix(".json")
    try:
        recorded = json.loads(json_path.read_text())
    except (FileNotFoundError, ValueError):
        recorded = {"rows": [], "runs": [], "notes": []}
    keep = {r["luns"] for r in rows}
    recorded["rows"] = [r for r in recorded["rows"] if r["luns"] not in keep] + [
        {**r, "ratios": ratios(r), "run": stamp["date"] if stamp else None} for r in rows
    ]
    if stamp is not None:
        recorded["runs"].append(stamp)
    recorded["notes"] = notes or recorded.get("notes", [])
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(recorded, indent=1) + "\n")
    all_rows = sorted(recorded["rows"], key=lambda r: r["luns"])
    text = [
        "# Fibre Channel: one LUN over 4 paths, fc_lun_attach beside the floor and os-brick",
        "",
        f"Written by `tests/lab/bench_fc_attach.py --out` (raw figures in [{json_path.name}]({json_path.name})), in "
        "the lab VM: a real kernel under qemu with the lab's FC array (FCoE VN2VN over 4 e1000 ports, LIO tcm_fc): "
        "2 initiator ports x 2 target ports, every LUN (1 MiB) mapped to both initiators on both target ports, so "
        "one LUN has 4 paths; multipathd with `find_multipaths yes`. Every arm starts from the rports logged in, "
        "no FC SCSI device, no map and `/etc/multipath/wwids` emptied (the LUN is new to multipathd); the order of "
        "the arms rotates from sample to sample. Seconds, medians over the samples.",
        "",
        "*floor*: in the guest, `C T L` written to the scan file of each (initiator fc_host, target rport) pair "
        "(4 writes; channel and target id from `/sys/class/fc_remote_ports`), then polling sysfs until the 4 "
        "block devices exist (*devices*) and one multipath map (dm uuid `mpath-`) holds all 4, built by "
        "multipathd alone. *ours*: `fc_lun_attach` (targets = both target WWPNs) by its own `timings.total` (no "
        "Ansible transport), in brackets the wall time of the ad-hoc `ansible` call; detach: `state=absent`. "
        "*os-brick*: Debian's python3-os-brick 6.1 FibreChannelConnector in-process as root (privsep client mode "
        "off, `tests/lab/guest/osbrick.py`; `target_wwn` both ports, `target_lun`), the clock around "
        "`connect_volume` / `disconnect_volume`, in brackets the wall time of the SSH call running the driver. "
        "*unrequested*: FC SCSI devices present after the attach whose LUN nobody asked for (maximum over the "
        "samples).",
        "",
        *table(all_rows),
        "",
        f"Goal of issue 24: ours at most the floor plus {GOAL_FLOOR_PLUS:.0f} s, and at most "
        f"{GOAL_OSBRICK_RATIO}x os-brick's connect_volume.",
        "",
        *(f"- {goal(r)}" for r in all_rows),
        "",
        "*commands*: medians of the external commands each ran per attach and per detach: ours from the "
        "module's `profile`, os-brick's by counting its `processutils.execute` calls in the driver (the lists of "
        "the first sample are in the .json).",
        "",
        "Where ours spends its time (the module's `timings`, seconds by phase, medians):",
        "",
        *(
            f"- {r['luns']} LUNs: " + ", ".join(f"{k} {v}" for k, v in r["ours"].get("phases", {}).items())
            for r in all_rows
        ),
        "",
    ]
    if recorded["notes"]:
        text += ["Notes:", "", *(f"- {n}" for n in recorded["notes"]), ""]
    text += ["Runs:", ""]
    for run in recorded["runs"]:
        text.append(
            f"- `{run['command']}` on {run['date']} (lab kernel {run.get('kernel')}, accel {run.get('accel')}, "
            f"{run.get('host_cores')}-core host, code {run.get('code')}; load average {run.get('load_start')} at "
            f"start, {run.get('load_end')} at end; other qemu VMs on the host {run.get('qemu_vms_start')} at "
            f"start, {run.get('qemu_vms_end')} at end; {run.get('seconds')} s in all): {run.get('what', '')}"
        )
    out.write_text("\n".join(text).rstrip() + "\n")
    log(f"wrote {out} and {json_path}")


def other_vms(lab: lab_module.Lab) -> int:
    """qemu VMs on the host besides this lab's own."""
    proc = subprocess.run(
        ["pgrep", "-c", "--runstates", "RSD", "qemu-system"], capture_output=True, text=True, timeout=30, check=False
    )
    return int(proc.stdout.strip() or 0) - (1 if lab.pid() else 0)


def load() -> List[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--luns", type=int, nargs="+", default=[4, 64, 256], help="FC LUN counts mapped")
    parser.add_argument("--samples", type=int, default=3, help="samples of each arm per LUN count; medians shown")
    parser.add_argument("--name", default="benchfc")
    parser.add_argument("--reuse", action="store_true", help="use a running lab of that name (left running)")
    parser.add_argument("--out")
    parser.add_argument("--note", action="append", default=[])
    parser.add_argument("--render", action="store_true", help="no lab: rewrite --out from its .json")
    args = parser.parse_args()
    if args.render:
        if not args.out:
            parser.error("--render needs --out")
        write(Path(args.out), [], None, args.note)
        return 0
    if min(args.luns) < max(LUN_OF.values()) + 1:
        parser.error(f"--luns: at least {max(LUN_OF.values()) + 1} (the arms use LUNs {sorted(LUN_OF.values())})")
    command = "python3 tests/lab/bench_fc_attach.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    started = time.monotonic()
    lab = lab_module.Lab(args.name)
    load_start, vms_start = load(), other_vms(lab)
    booted = False
    if lab.pid() and not args.reuse:
        raise SystemExit(f"bench_fc_attach: lab {args.name!r} is already running: pass --reuse, or stop it first")
    if not lab.pid():
        lab.up(luns=4, accel=os.environ.get("LUNSAFE_LAB_ACCEL", "auto"), boot_timeout=300, watch_pid=os.getpid())
        booted = True
    info = lab.info()
    if not info.get("fc"):
        raise SystemExit(f"bench_fc_attach: lab {args.name!r} has no FC ports (booted with --fc-luns 0?)")
    code = bench_attach.code_version(None)
    bench_attach.wait_for_stray_runs(lab)
    log(f"lab {args.name} (kernel {info.get('kernel')}, accel {info.get('accel')}), code {code}, load {load_start}")
    rows: List[Dict[str, Any]] = []
    try:
        with lab_module.collections_root() as root:
            for n in args.luns:
                rows.append(measure(lab, root, n, args.samples))
        if not booted:  # a reused lab goes back to its default 4 FC LUNs
            lab.array(["fc-setup", "--luns", "4"], timeout=3600)
    finally:
        load_end, vms_end = load(), other_vms(lab)
        if booted:
            lab.down(purge=True)
    print("\n".join(table(rows)))
    print("\n".join(goal(r) for r in rows))
    if args.out:
        stamp = {
            "command": command,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "code": code,
            "kernel": info.get("kernel"),
            "accel": info.get("accel"),
            "host_cores": os.cpu_count(),
            "load_start": load_start,
            "load_end": load_end,
            "qemu_vms_start": vms_start,
            "qemu_vms_end": vms_end,
            "seconds": round(time.monotonic() - started),
            "seconds_per_count": {r["luns"]: r["seconds"] for r in rows},
            "what": f"{args.samples} sample(s) per FC LUN count ({', '.join(str(r['luns']) for r in rows)})",
        }
        write(Path(args.out), rows, stamp, args.note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
