# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark, run by hand against a running lab (not part of the test suite): a targeted scan of one LUN
versus `iscsiadm -m session -R`, with 4 and 64 LUNs mapped, two sessions (two portals) each time.

    python3 tests/lab/lab.py --name NAME up --luns 4
    python3 tests/lab/bench_scan.py --name NAME [--luns 4 64] [--settle 3]
    python3 tests/lab/lab.py --name NAME down

For each LUN count and each method the array is reset (`array reset --luns N`: every map flushed, every
device deleted, logged out), then, inside the guest, both portals are logged in with
node.session.scan=manual and LUN 1 is attached:

* targeted: this collection's module_utils (copied into the guest), exactly as the module runs them:
  read a sysfs snapshot, plan, write `0 0 1` to each session's host scan file, poll sysfs until both block
  devices exist;
* global: `iscsiadm -m session -R`, then the same poll for LUN 1's two block devices.

Then it waits until the number of SCSI devices on the sessions' hosts has not changed for --settle seconds
(asynchronous probing and udev/multipathd work included) and counts the devices nobody asked for (any
LUN other than 1). Times are measured in the guest with a monotonic clock. Prints one JSON line per run
and a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import lab as lab_harness  # noqa: E402  (tests/lab/lab.py, standard library only)

GUEST_ROOT = "/tmp/lunsafe-bench"
MODULE_UTILS = ("_errors.py", "_hctl.py", "_sysfs.py", "_wait.py", "_scan.py")

INSTALL = r"""
import json, os, sys
files = json.load(sys.stdin)
for rel, text in files.items():
    path = os.path.join(sys.argv[1], rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
"""

GUEST = r"""
import json, os, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.lunsafe.san.plugins.module_utils import _scan, _sysfs

method, settle = sys.argv[2], float(sys.argv[3])
IQN = "iqn.2003-01.org.lunsafe.lab:array"
PORTALS = ("127.0.0.1", "127.0.0.2")
LUN = 1

def run(argv, timeout=900):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

for portal in PORTALS:
    run(["iscsiadm", "-m", "node", "-T", IQN, "-p", portal, "-o", "new"])
    run(["iscsiadm", "-m", "node", "-T", IQN, "-p", portal, "-o", "update", "-n", "node.session.scan", "-v", "manual"])
    login = run(["iscsiadm", "-m", "node", "-T", IQN, "-p", portal, "--login"])
    if login.returncode not in (0, 15):
        sys.exit("login failed: " + login.stderr)

snapshot = _sysfs.read_snapshot()
hosts = {session.host for session in snapshot.sessions_for(targetname=IQN)}
if len(hosts) != 2:
    sys.exit("expected two sessions on two hosts, got %r" % (snapshot.sessions,))

def sdevs():
    found = []
    for name in os.listdir("/sys/class/scsi_device"):
        host = int(name.split(":")[0])
        if host in hosts:
            found.append(name)
    return sorted(found)

def lun_disks():
    return [name for name in sdevs() if name.endswith(":%d" % LUN)
            and os.path.isdir("/sys/class/scsi_device/%s/device/block" % name)
            and os.listdir("/sys/class/scsi_device/%s/device/block" % name)]

start = time.monotonic()
if method == "targeted":
    request = _scan.build_request(target=IQN, luns=[LUN])
    plan = _scan.plan_scan(request=request, snapshot=_sysfs.read_snapshot())
    writes = _scan.apply_plan(plan=plan, sysfs_root="/sys")
    command_s = time.monotonic() - start
    _scan.wait_for_devices(plan=plan, sysfs_root="/sys", timeout=600, scanned=writes)
    lines = ["host%d '%s'" % (w.host, w.text) for w in writes]
else:
    proc = run(["iscsiadm", "-m", "session", "-R"])
    command_s = time.monotonic() - start
    lines = ["iscsiadm -m session -R rc=%d" % proc.returncode]
    deadline = time.monotonic() + 600
    while len(lun_disks()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
ready_s = time.monotonic() - start

count, stable_since = len(sdevs()), time.monotonic()
deadline = time.monotonic() + 900
while time.monotonic() - stable_since < settle and time.monotonic() < deadline:
    time.sleep(0.2)
    now = len(sdevs())
    if now != count:
        count, stable_since = now, time.monotonic()
settled_s = stable_since - start

devices = sdevs()
print(json.dumps({
    "method": method,
    "writes": lines,
    "command_s": round(command_s, 3),
    "lun_ready_s": round(ready_s, 3),
    "settled_s": round(settled_s, 3),
    "devices": len(devices),
    "lun_paths": len(lun_disks()),
    "unrequested": len([d for d in devices if not d.endswith(":%d" % LUN)]),
}))
"""


def install(lab: lab_harness.Lab) -> None:
    files = {}
    for name in MODULE_UTILS:
        rel = f"ansible_collections/lunsafe/san/plugins/module_utils/{name}"
        files[rel] = (REPO / "plugins" / "module_utils" / name).read_text(encoding="utf-8")
    lab.ssh(["python3", "-c", INSTALL, GUEST_ROOT], stdin=json.dumps(files), timeout=120)


def measure(lab: lab_harness.Lab, *, luns: int, method: str, settle: float) -> dict:
    reset = lab.array(["reset", "--luns", str(luns)], timeout=1800)
    if reset.get("leftover_devices"):
        raise SystemExit(f"reset left devices behind: {reset['leftover_devices']}")
    proc = lab.ssh(["python3", "-c", GUEST, GUEST_ROOT, method, str(settle)], timeout=3600)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["luns_mapped"] = luns
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--name", default="default", help="lab name (as given to lab.py --name)")
    parser.add_argument("--luns", type=int, nargs="+", default=[4, 64], help="LUN counts to map")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds without device changes = settled")
    args = parser.parse_args()
    lab = lab_harness.Lab(args.name)
    install(lab)
    results = []
    try:
        for luns in args.luns:
            for method in ("targeted", "global"):
                result = measure(lab, luns=luns, method=method, settle=args.settle)
                print(json.dumps(result), flush=True)
                results.append(result)
    finally:
        try:  # best effort: leave the lab clean, but never lose the figures over it
            lab.array(["reset", "--luns", "4"], timeout=1800)
        except lab_harness.LabError as exc:
            print(f"warning: final array reset failed: {exc}", file=sys.stderr)
    print()
    print(
        f"{'LUNs':>5} {'method':<9} {'command s':>10} {'LUN 1 ready s':>14} {'settled s':>10} "
        f"{'devices':>8} {'unrequested':>12}"
    )
    for r in results:
        print(
            f"{r['luns_mapped']:>5} {r['method']:<9} {r['command_s']:>10.3f} {r['lun_ready_s']:>14.3f} "
            f"{r['settled_s']:>10.3f} {r['devices']:>8} {r['unrequested']:>12}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
