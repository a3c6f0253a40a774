# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: attaching one LUN with iscsi_lun_attach vs a whole-session rescan vs a bare targeted scan.

    python3 tests/lab/bench_attach.py [--luns 4 64 256] [--name bench]

Boots its own lab (or uses a running one with --reuse), and for each LUN count N: provisions N LUNs on
two portals, logs in with manual scan, then measures on the real kernel
  - bare:    write "0 0 L" to both sessions' scan files, poll sysfs until both block devices exist (the floor);
  - ours:    lunsafe.san.iscsi_lun_attach for another LUN; the module's own timings (no Ansible transport)
             and the wall time of the ad-hoc call;
  - rescan:  iscsiadm -m session -R, until the wanted LUN's two block devices exist;
and counts the unrequested SCSI devices each leaves. Prints a table; not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lab as lab_module

IQN = "iqn.2003-01.org.lunsafe.lab:array"
PORTALS = ["127.0.0.1", "127.0.0.2"]

GUEST_LOGIN = f"""
set -e
for p in {" ".join(PORTALS)}; do
  iscsiadm -m node -T {IQN} -p $p -o new >/dev/null
  iscsiadm -m node -T {IQN} -p $p -o update -n node.session.scan -v manual
  iscsiadm -m node -T {IQN} -p $p --login >/dev/null
done
"""

# runs in the guest: bare targeted scan or whole-session rescan, then poll for LUN's block devices
GUEST_MEASURE = r"""
import glob, json, os, subprocess, sys, time
mode, lun = sys.argv[1], int(sys.argv[2])
def disks():
    return sorted(os.path.basename(p) for p in glob.glob("/sys/class/scsi_device/*/device/block/*"))
def lun_paths():
    return glob.glob("/sys/class/scsi_device/*:*:*:%d/device/block/*" % lun)
before = disks()
hosts = sorted({os.path.basename(os.path.dirname(os.path.realpath(s + "/device")))
                for s in glob.glob("/sys/class/iscsi_session/session*")})
start = time.monotonic()
if mode == "bare":
    for host in hosts:
        with open("/sys/class/scsi_host/%s/scan" % host, "w") as f:
            f.write("0 0 %d" % lun)
else:
    subprocess.run(["iscsiadm", "-m", "session", "-R"], capture_output=True, timeout=1800)
returned = time.monotonic() - start
while len(lun_paths()) < len(hosts) and time.monotonic() - start < 1800:
    time.sleep(0.01)
elapsed = time.monotonic() - start
after = disks()
print(json.dumps({"seconds": elapsed, "returned": returned, "new_devices": len(after) - len(before),
                  "lun_paths": len(lun_paths())}))
"""


def guest_python(lab: lab_module.Lab, code: str, *args: str, timeout: float = 3600) -> dict:
    proc = lab.ssh(["python3", "-c", code, *args], timeout=timeout)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def count_sd(lab: lab_module.Lab) -> int:
    proc = lab.ssh(["sh", "-c", "ls /sys/block | grep -c '^sd' || true"])
    return int(proc.stdout.strip() or 0)


def ours(lab: lab_module.Lab, root: Path, lun: int) -> dict:
    env = lab_module.playbook_env(lab, root)
    ansible = str(lab_module.REPO / ".venv" / "bin" / "ansible")
    args = f"target={IQN} portals={','.join(PORTALS)} lun={lun}"
    start = time.monotonic()
    proc = subprocess.run(
        [ansible, "lab", "-o", "-m", "lunsafe.san.iscsi_lun_attach", "-a", args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    wall = time.monotonic() - start
    line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if "=>" not in line:
        raise SystemExit(f"ansible failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    result = json.loads(line.split("=>", 1)[1])
    if result.get("failed"):
        raise SystemExit(f"attach failed: {result.get('msg')}")
    return {"wall": wall, "timings": result["timings"], "devices": len(result["devices"])}


def measure(lab: lab_module.Lab, root: Path, luns: int, rescan_max: int, repeat: int) -> dict:
    t0 = time.monotonic()
    lab.array(["reset", "--luns", str(luns), "--size-mb", "1"], timeout=1800)
    provision = time.monotonic() - t0
    lab.ssh(["sh", "-c", GUEST_LOGIN])
    # `repeat` samples of each, on distinct LUNs from the top: bare on luns-1, luns-3, ...; ours on luns-2, ...
    samples = max(1, min(repeat, luns // 2))
    bares, mines = [], []
    for i in range(samples):
        bares.append(guest_python(lab, GUEST_MEASURE, "bare", str(luns - 1 - 2 * i)))
        before = count_sd(lab)
        sample = ours(lab, root, luns - 2 - 2 * i)
        sample["unrequested"] = count_sd(lab) - before - sample["devices"]
        mines.append(sample)
    bare = dict(bares[0], seconds=statistics.median(b["seconds"] for b in bares), samples=len(bares))
    bare["new_devices"] = max(b["new_devices"] for b in bares)
    mine = {
        "wall": statistics.median(m["wall"] for m in mines),
        "timings": {
            key: statistics.median(m["timings"][key] for m in mines)
            for key in mines[0]["timings"]
            if all(isinstance(m["timings"].get(key), (int, float)) for m in mines)
        },
        "devices": max(m["devices"] for m in mines),
        "unrequested": max(m["unrequested"] for m in mines),
        "samples": len(mines),
        "totals": [m["timings"].get("total") for m in mines],
    }
    # a whole-session rescan attaches every mapped LUN: at 64 LUNs under TCG it takes minutes and can leave
    # the guest unresponsive, so it is only measured up to --rescan-max
    rescan = guest_python(lab, GUEST_MEASURE, "rescan", str(1)) if luns <= rescan_max else None
    t1 = time.monotonic()
    lab.array(["reset", "--luns", "4", "--size-mb", "1"], timeout=3600)
    cleanup = time.monotonic() - t1
    return {"luns": luns, "provision": provision, "bare": bare, "ours": mine, "rescan": rescan, "cleanup": cleanup}


def _rescan(row: dict, key: str) -> str:
    rescan = row["rescan"]
    if rescan is None:
        return "not run"
    return f"{rescan[key]:.1f}" if key == "seconds" else str(rescan[key])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--luns", type=int, nargs="+", default=[4, 64, 256])
    parser.add_argument("--name", default="bench")
    parser.add_argument("--reuse", action="store_true", help="use a running lab of that name")
    parser.add_argument("--rescan-max", type=int, default=4, help="measure the session rescan up to this LUN count")
    parser.add_argument("--repeat", type=int, default=3, help="attaches (and bare scans) per LUN count; medians shown")
    args = parser.parse_args()
    lab = lab_module.Lab(args.name)
    booted = False
    if not (args.reuse and lab.pid()):
        lab.up(luns=4, accel=os.environ.get("LUNSAFE_LAB_ACCEL", "auto"), boot_timeout=300, watch_pid=os.getpid())
        booted = True
    rows = []
    try:
        with lab_module.collections_root() as root:
            for n in args.luns:
                row = measure(lab, root, n, args.rescan_max, args.repeat)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        if booted:
            lab.down(purge=True)
    print()
    print(
        "| LUNs mapped | bare scan s | ours: scan phase s | ours: module total s | ours: ansible wall s "
        "| ours unrequested | rescan s | rescan new devices (wanted: 2) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        o = r["ours"]
        print(
            f"| {r['luns']} | {r['bare']['seconds']:.3f} | {o['timings'].get('scan', 0):.3f} | "
            f"{o['timings'].get('total', 0):.3f} | {o['wall']:.1f} | {o['unrequested']} | "
            f"{_rescan(r, 'seconds')} | {_rescan(r, 'new_devices')} |"
        )
    if len(rows) > 1:
        first, last = rows[0]["ours"]["timings"]["total"], rows[-1]["ours"]["timings"]["total"]
        print(f"\nours t({rows[-1]['luns']})/t({rows[0]['luns']}) = {last / first:.2f} (module total, medians)")
        first, last = rows[0]["ours"]["timings"]["scan"], rows[-1]["ours"]["timings"]["scan"]
        print(f"ours t({rows[-1]['luns']})/t({rows[0]['luns']}) = {last / first:.2f} (scan phase, medians)")
        for r in rows:
            ratio = r["ours"]["timings"]["scan"] / r["bare"]["seconds"]
            print(f"ours scan phase / bare scan at {r['luns']} LUNs = {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
