# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the boot-time restore of recorded LUNs (issue 28) against open-iscsi's automatic login and scan,
on one lab VM through real reboots. Run by hand, with no other VM running; not part of the test suite.

    python3 tests/lab/lab.py --name boot up --luns 4 --fc-luns 0
    .venv/bin/python tests/lab/bench_boot.py --name boot [--recorded 1 8 32] [--mapped 40] \
        [--out docs/benchmarks/boot.md]

For each count N of --recorded, the array maps --mapped LUNs to the host (more than N: a real host sees LUNs
that are not its business, or not yet), and the lun_attach role attaches LUNs 0..N-1 with persist on. The
array's configuration is saved so that it comes back at boot (the array is LIO in the same guest), and then:

- **restore**: the guest reboots with the restore service enabled (the node records as the module leaves
  them: node.startup=manual, node.session.scan=manual). Start: the service's start (systemd's
  InactiveExitTimestampMonotonic, both units are oneshot); end: the last
  of the recorded LUNs' multipath maps initialised (udev's USEC_INITIALIZED of its dm device, the same
  monotonic clock as systemd's timestamps). The service's own run time (start to exit) is beside it.
- **automatic**: the same host, the restore service disabled and both node records set to
  node.startup=automatic and node.session.scan=auto (what a user does without persistence). Start: the start of
  open-iscsi.service (its login of the automatic records; the kernel scans every LUN the array maps);
  end: the last of the same N maps initialised.

After each boot it counts the SCSI disks and multipath maps of LUNs nobody recorded (LUN >= N). The figure
"start to maps ready" is what a `_netdev` mount waits for.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import lab as lab_module  # noqa: E402
from test_persist_boot import DROP_IN, SAVED, save_array  # noqa: E402 - the array saved for the boot, as the test does

IQN = "iqn.2003-01.org.lunsafe.lab:array"
PORTALS = ("127.0.0.1", "127.0.0.2")
UNIT = "lunsafe-san-restore.service"
STATE = "/var/lib/lunsafe-san/persist.json"

#: run in the guest after a boot: when each LUN's map was initialised and what the kernel has of every LUN
PROBE = r"""
import glob, json, os, subprocess, sys
recorded = set(json.loads(sys.argv[1]))
def prop(dev, key):
    out = subprocess.run(["udevadm", "info", "--query=property", "--name", dev], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith(key + "="):
            return line.split("=", 1)[1]
    return None
disks = {}
for path in glob.glob("/sys/class/scsi_disk/*"):
    hctl = os.path.basename(path)
    block = glob.glob(path + "/device/block/*")
    disks[hctl] = os.path.basename(block[0]) if block else None
maps = {}
for dm in glob.glob("/sys/block/dm-*"):
    try:
        uuid = open(dm + "/dm/uuid").read().strip()
    except OSError:
        continue
    if not uuid.startswith("mpath-"):
        continue
    slaves = sorted(os.listdir(dm + "/slaves"))
    luns = set()
    for hctl, block in disks.items():
        if block in slaves:
            luns.add(int(hctl.split(":")[3]))
    usec = prop("/dev/" + os.path.basename(dm), "USEC_INITIALIZED")
    maps[os.path.basename(dm)] = {"luns": sorted(luns), "paths": len(slaves), "usec": int(usec) if usec else None}
def unit(name):
    out = subprocess.run(["systemctl", "show", name, "-p", "InactiveExitTimestampMonotonic",
                          "-p", "ExecMainExitTimestampMonotonic", "-p", "ActiveState"],
                         capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.split())
print(json.dumps({
    "disks": {h: b for h, b in disks.items()},
    "maps": maps,
    "restore": unit("lunsafe-san-restore.service"),
    "iscsi": unit("open-iscsi.service"),
    "recorded": sorted(recorded),
}))
"""


def log(message: str) -> None:
    print(f"[bench_boot {time.strftime('%H:%M:%S')}] {message}", flush=True)


def playbook(lab: lab_module.Lab, root: Path, name: str, variables: Dict[str, Any]) -> None:
    env = lab_module.playbook_env(lab, root)
    argv = [str(lab_module.REPO / ".venv" / "bin" / "ansible-playbook"), str(HERE / "bench_boot" / name)]
    proc = subprocess.run(
        [*argv, "-e", json.dumps(variables)], check=False, env=env, capture_output=True, text=True, timeout=3600
    )
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{(proc.stdout + proc.stderr)[-6000:]}")


def wait_restore(lab: lab_module.Lab, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = lab.ssh(["systemctl", "show", UNIT, "-p", "ActiveState", "--value"], check=False).stdout.strip()
        if state != "activating":
            return
        time.sleep(3)
    raise SystemExit(f"{UNIT} still running after {timeout:.0f}s")


def wait_maps(lab: lab_module.Lab, recorded: List[int], timeout: float = 900) -> dict:
    """The probe once every recorded LUN has a map with both paths (or at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        probe = json.loads(lab.ssh(["python3", "-c", PROBE, json.dumps(recorded)], timeout=300).stdout)
        ready = {lun for m in probe["maps"].values() if m["paths"] >= len(PORTALS) for lun in m["luns"]}
        if set(recorded) <= ready or time.monotonic() > deadline:
            probe["complete"] = set(recorded) <= ready
            return probe
        time.sleep(5)


def figures(probe: dict, start_unit: str) -> Dict[str, Any]:
    recorded = set(probe["recorded"])
    unit = probe[start_unit]
    start = int(unit.get("InactiveExitTimestampMonotonic", 0) or 0)  # the unit left inactive: its start
    usecs = [m["usec"] for m in probe["maps"].values() if set(m["luns"]) & recorded and m["usec"]]
    exit_usec = int(probe["restore"].get("ExecMainExitTimestampMonotonic", 0) or 0)
    other_disks = sorted(h for h in probe["disks"] if int(h.split(":")[3]) not in recorded)
    other_maps = sorted(d for d, m in probe["maps"].items() if not set(m["luns"]) & recorded)
    return {
        "complete": probe["complete"],
        "maps_ready_s": (max(usecs) - start) / 1e6 if usecs and start and probe["complete"] else None,
        "service_s": (exit_usec - start) / 1e6 if start_unit == "restore" and exit_usec > start else None,
        "unrecorded_disks": len(other_disks),
        "unrecorded_maps": len(other_maps),
        "disks": len(probe["disks"]),
        "maps": len(probe["maps"]),
    }


def one_count(lab: lab_module.Lab, root: Path, recorded: int, mapped: int) -> Dict[str, Any]:
    luns = list(range(recorded))
    status = lab.array(["reset", "--luns", str(mapped), "--fc-luns", "0"], timeout=900)
    if status.get("leftover_devices"):
        raise SystemExit(f"the reset left devices: {status['leftover_devices']}")
    log(f"{recorded} recorded of {mapped} mapped: attach with persist")
    playbook(lab, root, "attach.yml", {"bench_boot_luns": [{"lun": str(n)} for n in luns]})
    save_array(lab)
    row: Dict[str, Any] = {"recorded": recorded, "mapped": mapped}

    log("reboot with the restore service")
    lab.restart(power_cut=False)
    wait_restore(lab)
    row["restore"] = figures(wait_maps(lab, luns), "restore")
    log(f"restore: {row['restore']}")

    log("reboot with automatic login and scan instead")
    lab.ssh(["systemctl", "disable", "--quiet", UNIT])
    for portal in PORTALS:
        for name, value in (("node.startup", "automatic"), ("node.session.scan", "auto")):
            lab.ssh(["iscsiadm", "-m", "node", "-T", IQN, "-p", portal, "-o", "update", "-n", name, "-v", value])
    lab.ssh(["sync"])
    lab.restart(power_cut=False)
    row["automatic"] = figures(wait_maps(lab, luns), "iscsi")
    log(f"automatic: {row['automatic']}")

    # what the next count starts from: no record, no service, no node record (the reset logs out and deletes them)
    lab.ssh(["rm", "-f", STATE])
    lab.ssh(["sh", "-c", f"rm -f /etc/systemd/system/{UNIT} && systemctl daemon-reload"])
    return row


def _f(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}"


def report(rows: List[Dict[str, Any]], stamp: str, load: str, notes: List[str]) -> List[str]:
    lines = [
        "# Boot: recorded LUNs restored at boot against open-iscsi's automatic scan (issue 28)",
        "",
        f"Recorded {stamp} by `tests/lab/bench_boot.py` on one lab VM (TCG, 1 vCPU; the array is LIO in the same",
        f"guest, restored by rtslib-fb-targetctl before either). Host load at the end: {load}.",
        "One reboot per row and arm. Seconds from the start of the service that logs in (the restore, or",
        "open-iscsi.service's login of the automatic records) to the last recorded LUN's multipath map initialised",
        "(udev's USEC_INITIALIZED): what a `_netdev` mount of the LUNs waits for.",
        "",
        "| recorded LUNs | mapped LUNs | restore: start to maps ready s | restore: service run s | automatic: start "
        "to maps ready s | restore / automatic | unrecorded disks, maps: restore | unrecorded disks, maps: automatic |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ours, auto = row["restore"], row["automatic"]
        ratio = (
            f"{ours['maps_ready_s'] / auto['maps_ready_s']:.2f}"
            if ours["maps_ready_s"] and auto["maps_ready_s"]
            else "-"
        )
        lines.append(
            f"| {row['recorded']} | {row['mapped']} | {_f(ours['maps_ready_s'])} | {_f(ours['service_s'])} | "
            f"{_f(auto['maps_ready_s'])} | {ratio} | {ours['unrecorded_disks']}, {ours['unrecorded_maps']} | "
            f"{auto['unrecorded_disks']}, {auto['unrecorded_maps']} |"
        )
    lines += ["", *notes] if notes else []
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--name", default="boot", help="a running lab VM (left running)")
    parser.add_argument("--recorded", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--mapped", type=int, default=40)
    parser.add_argument("--out", help="write the report here (markdown; the raw figures as .json beside it)")
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args()
    if any(n > args.mapped for n in args.recorded):
        parser.error("--mapped must be at least the largest --recorded")
    lab = lab_module.Lab(args.name)
    lab.info()
    rows = []
    try:
        with lab_module.collections_root() as root:
            for recorded in args.recorded:
                rows.append(one_count(lab, root, recorded, args.mapped))
    finally:
        lab.ssh(["rm", "-rf", str(Path(DROP_IN).parent), SAVED, STATE], check=False)
        lab.ssh(["systemctl", "disable", "--quiet", "rtslib-fb-targetctl.service", UNIT], check=False)
        lab.ssh(["systemctl", "daemon-reload"], check=False)
        lab.array(["reset", "--luns", "4", "--fc-luns", "0"], timeout=900)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg()) + f" (1/5/15 min), {os.cpu_count()} CPUs"
    lines = report(rows, stamp, load, args.note)
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
        Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0 if all(r["restore"]["complete"] and r["automatic"]["complete"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
