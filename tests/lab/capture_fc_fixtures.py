# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Capture the FC unit-test fixtures from a booted lab (a real kernel's sysfs, FCoE VN2VN + LIO tcm_fc):

    python3 tests/lab/lab.py --name lab-a up
    python3 tests/lab/capture_fc_fixtures.py --name lab-a [--lun 1] [--out DIR]

Two states, each one JSON file written by tests/lab/guest/fc_sysfs_dump.py in the guest:
- attached.json: LUN --lun attached over its 4 paths (a targeted `0 T L` write per initiator host and target
  port, then the multipath map over the 4 devices);
- port_down.json: the same with the first target port's link down (the initiators' rports of it Blocked,
  within dev_loss_tmo: the devices are still there, state blocked);
- not_present.json: the same port still down after dev_loss_tmo (60 s): its rports Not Present (port_name and
  scsi_target_id still readable), their devices removed, the map on the other 2 paths.
The target port comes back up afterwards, and the array is reset (FC devices deleted, mapping restored).
Run it on a fresh lab: it expects no FC SCSI device on the initiator hosts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import lab as lab_module  # noqa: E402

DEFAULT_OUT = HERE.parent / "unit" / "plugins" / "module_utils" / "fixtures" / "fc"
DUMP = "/usr/local/lib/lunsafe-lab/fc_sysfs_dump.py"


def attach(lab: lab_module.Lab, lun: int) -> dict:
    status = lab.array(["fc-status"])
    wanted = {t["port_name"] for t in status["targets"]}
    writes = []
    for initiator in status["initiators"]:
        for rport in initiator["rports"]:
            if rport["port_name"] in wanted and rport["scsi_target_id"] is not None and rport["scsi_target_id"] >= 0:
                line = "0 {} {}".format(rport["scsi_target_id"], lun)
                lab.ssh(["sh", "-c", f"printf '{line}' > /sys/class/scsi_host/host{initiator['host']}/scan"])
                writes.append((initiator["host"], line))
    wwid = status["luns"][str(lun)]["wwid"]
    deadline = time.monotonic() + 60
    while True:
        lab.ssh(["udevadm", "settle", "--timeout=20"], timeout=40, check=False)
        maps = lab.ssh(["multipath", "-ll", wwid], check=False).stdout
        paths = sum(1 for line in maps.splitlines() if "active ready running" in line)
        if paths == len(writes):
            return {"writes": writes, "wwid": wwid, "multipath": maps}
        if time.monotonic() > deadline:
            raise SystemExit(f"LUN {lun} ({wwid}): {paths} of {len(writes)} paths after 60s:\n{maps}")
        time.sleep(1)


def capture(lab: lab_module.Lab, label: str, out: Path) -> Path:
    text = lab.ssh(["python3", DUMP, "--label", label]).stdout
    json.loads(text)
    path = out / f"{label}.json"
    path.write_text(text, encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="lab-a")
    parser.add_argument("--lun", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    lab = lab_module.Lab(args.name)
    lab.install_guest_tools()
    args.out.mkdir(parents=True, exist_ok=True)
    done = attach(lab, args.lun)
    print(f"attached LUN {args.lun} ({done['wwid']}) via {done['writes']}", file=sys.stderr)
    print(capture(lab, "attached", args.out))
    port = lab.array(["fc-status"])["targets"][0]["port_name"]
    down = lab.array(["fc-port", "down", "--port", port, "--wait", "60"])
    print(
        f"port {port} down: rports {[(r['name'], r['port_state']) for r in down['rports']]} after {down['seconds']}s",
        file=sys.stderr,
    )
    if not down["reached"]:
        raise SystemExit(f"the initiators' rports of {port} did not go Blocked: {down}")
    print(capture(lab, "port_down", args.out))
    deadline = time.monotonic() + 120
    while True:
        st = lab.array(["fc-status"])
        rports = [r for i in st["initiators"] for r in i["rports"] if r["port_name"] == port]
        gone = {f"{i['host']}:0:{r['scsi_target_id']}" for i in st["initiators"] for r in i["rports"] if r in rports}
        left = [d["hctl"] for i in st["initiators"] for d in i["devices"] if d["hctl"].rsplit(":", 1)[0] in gone]
        if all(r["port_state"] == "Not Present" for r in rports) and not left:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"the rports of {port} are not Not Present after dev_loss_tmo: {rports}")
        time.sleep(2)
    lab.ssh(["udevadm", "settle", "--timeout=20"], timeout=40, check=False)
    time.sleep(3)  # multipathd drops the removed paths from the map
    print(capture(lab, "not_present", args.out))
    lab.array(["fc-port", "up", "--port", port, "--wait", "60"])
    reset = lab.array(["reset"])
    print(f"reset: leftover devices {reset['leftover_devices']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
