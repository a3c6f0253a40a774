# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel and iscsid state for the osbrick_interop target, read in the lab guest (prints JSON).

    osbrick_state.py state --target IQN --lock-file F [--save-records NAME] [--diff-records NAME]
    osbrick_state.py wait-holder --lock-file F [--timeout S]     until a process holds the lock file
    osbrick_state.py wait-opener --lock-file F --not-pid N  until another process has the lock file open
    osbrick_state.py monitor --lock-file F --stop FILE [--max S] who holds the lock file, sampled until FILE exists

Node records are read in full (`iscsiadm -m node -T IQN -p PORTAL`, every setting) and can be saved under a
name and compared with a saved set. Lock holders come from /proc/locks (POSIX and FLOCK, by inode).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time

SAVED = "/var/lib/lunsafe-lab/osbrick-interop-records-{}.json"


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False).stdout


def read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return None


def sessions():
    found = []
    for path in sorted(glob.glob("/sys/class/iscsi_session/session*")):
        conn = glob.glob(path + "/device/connection*/iscsi_connection/connection*")
        found.append(
            {
                "sid": int(path.rsplit("session", 1)[1]),
                "target": read(path + "/targetname"),
                "state": read(path + "/state"),
                "portal": "{}:{}".format(read(conn[0] + "/persistent_address"), read(conn[0] + "/persistent_port"))
                if conn
                else None,
            }
        )
    return found


def disks():
    """Every SCSI disk in sysfs (the lab's root disk is virtio): H:C:T:L, name, state."""
    found = []
    for path in sorted(glob.glob("/sys/class/scsi_disk/*")):
        hctl = os.path.basename(path)
        block = glob.glob(path + "/device/block/*")
        found.append(
            {
                "hctl": hctl,
                "lun": int(hctl.rsplit(":", 1)[1]),
                "name": os.path.basename(block[0]) if block else None,
                "state": read(path + "/device/state"),
            }
        )
    return found


def records(target):
    """{portal: {setting: value}} for every node record of the target."""
    found = {}
    for line in run(["iscsiadm", "-m", "node"]).splitlines():
        fields = line.split()
        if len(fields) != 2 or fields[1] != target:
            continue
        portal = fields[0].rsplit(",", 1)[0]
        settings = {}
        for entry in run(["iscsiadm", "-m", "node", "-T", target, "-p", portal]).splitlines():
            if " = " in entry and not entry.startswith("#"):
                key, value = entry.split(" = ", 1)
                settings[key.strip()] = value.strip()
        found[portal] = settings
    return found


def diff_records(before, after):
    """{portal: {setting: [before, after]}} for every setting that differs (None: absent)."""
    changes = {}
    for portal in sorted(set(before) | set(after)):
        old, new = before.get(portal, {}), after.get(portal, {})
        changed = {
            key: [old.get(key), new.get(key)] for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)
        }
        if changed:
            changes[portal] = changed
    return changes


def holders(lock_file):
    """[{"pid": N, "kind": "POSIX"|"FLOCK", "comm": ...}] holding a lock on lock_file now."""
    try:
        st = os.stat(lock_file)
        with open("/proc/locks", encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return []
    wanted = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or "->" in fields[:2]:
            continue
        ident = fields[5].split(":")
        if len(ident) != 3:
            continue
        if (int(ident[0], 16), int(ident[1], 16), int(ident[2])) != wanted:
            continue
        pid = int(fields[4])
        found.append({"pid": pid, "kind": fields[1], "comm": read(f"/proc/{pid}/comm")})
    return found


def multipath_paths():
    paths = []
    for line in run(["multipathd", "show", "paths", "raw", "format", "%d|%i|%w|%m|%t|%T"]).splitlines():
        fields = line.split("|")
        if len(fields) == 6:
            paths.append(dict(zip(("dev", "hctl", "wwid", "map", "dm_state", "checker"), fields)))
    return paths


def cmd_state(args):
    now = records(args.target)
    result = {
        "sessions": sessions(),
        "disks": disks(),
        "maps": sorted(
            line.split()[0] for line in run(["dmsetup", "ls", "--target", "multipath"]).splitlines() if "(" in line
        ),
        "paths": multipath_paths(),
        "records": now,
        "lock_holders": holders(args.lock_file),
        "lock_file_exists": os.path.exists(args.lock_file),
    }
    result["luns"] = sorted(disk["lun"] for disk in result["disks"])
    # Jinja's attribute= cannot name a key with dots: these two settings by portal, in portal order
    result["startup"] = [now[portal].get("node.startup") for portal in sorted(now)]
    result["scan"] = [now[portal].get("node.session.scan") for portal in sorted(now)]
    if args.save_records:
        with open(SAVED.format(args.save_records), "w", encoding="utf-8") as handle:
            json.dump(now, handle)
    if args.diff_records:
        with open(SAVED.format(args.diff_records), encoding="utf-8") as handle:
            result["records_diff"] = diff_records(json.load(handle), now)
    return result


def cmd_wait_holder(args):
    start = time.monotonic()
    while True:
        found = holders(args.lock_file)
        if found:
            return {"holders": found, "pid": found[0]["pid"], "waited": round(time.monotonic() - start, 3)}
        if time.monotonic() - start > args.timeout:
            raise SystemExit(json.dumps({"error": f"nobody took {args.lock_file} within {args.timeout}s"}))
        time.sleep(0.05)


def openers(lock_file):
    """Pids with the lock file open: a lunsafe.san module waiting for the lock keeps it open and polls."""
    target = os.path.realpath(lock_file)
    found = set()
    for link in glob.glob("/proc/[0-9]*/fd/*"):
        try:
            if os.readlink(link) == target:
                found.add(int(link.split("/")[2]))
        except OSError:
            continue
    return sorted(found)


def cmd_wait_opener(args):
    start = time.monotonic()
    while True:
        found = [pid for pid in openers(args.lock_file) if pid != args.not_pid and pid != os.getpid()]
        if found:
            return {
                "pids": found,
                "comm": [read(f"/proc/{pid}/comm") for pid in found],
                "holders": holders(args.lock_file),
            }
        if time.monotonic() - start > args.timeout:
            raise SystemExit(json.dumps({"error": f"nobody else opened {args.lock_file} within {args.timeout}s"}))
        time.sleep(0.1)


def cmd_monitor(args):
    """Sample the holders until the stop file appears: each run of one holder set, and any overlap."""
    if os.path.exists(args.stop):  # left by an earlier run
        os.unlink(args.stop)
    start = time.monotonic()
    runs, samples, overlaps = [], 0, []
    while not os.path.exists(args.stop) and time.monotonic() - start < args.max:
        pids = sorted({holder["pid"] for holder in holders(args.lock_file)})
        stamp = round(time.time(), 3)
        samples += 1
        if len(pids) > 1:
            overlaps.append({"at": stamp, "pids": pids})
        if pids and (not runs or runs[-1]["pids"] != pids):
            runs.append({"pids": pids, "from": stamp, "to": stamp})
        elif pids:
            runs[-1]["to"] = stamp
        time.sleep(0.05)
    return {"samples": samples, "runs": runs, "overlaps": overlaps, "seconds": round(time.monotonic() - start, 1)}


def main():
    parser = argparse.ArgumentParser(prog="osbrick_state.py")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("state")
    p.add_argument("--target", required=True)
    p.add_argument("--lock-file", required=True)
    p.add_argument("--save-records")
    p.add_argument("--diff-records")
    p = sub.add_parser("wait-holder")
    p.add_argument("--lock-file", required=True)
    p.add_argument("--timeout", type=float, default=180)
    p = sub.add_parser("wait-opener")
    p.add_argument("--lock-file", required=True)
    p.add_argument("--not-pid", type=int, required=True)
    p.add_argument("--timeout", type=float, default=180)
    p = sub.add_parser("monitor")
    p.add_argument("--lock-file", required=True)
    p.add_argument("--stop", required=True)
    p.add_argument("--max", type=float, default=600)
    args = parser.parse_args()
    handlers = {
        "state": cmd_state,
        "wait-holder": cmd_wait_holder,
        "wait-opener": cmd_wait_opener,
        "monitor": cmd_monitor,
    }
    handler = handlers[args.command]
    print(json.dumps(handler(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
