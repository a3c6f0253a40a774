"""Print the lab host's iSCSI/SCSI/multipath state as JSON (run in the lab guest by the tests)."""

import glob
import json
import os
import subprocess


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False).stdout


sessions = [
    {"sid": int(s.rsplit("session", 1)[1]), "state": read(s + "/state"), "target": read(s + "/targetname")}
    for s in sorted(glob.glob("/sys/class/iscsi_session/session*"))
]
disks = sorted(os.path.basename(d) for d in glob.glob("/sys/class/scsi_disk/*"))
nodes = [line for line in run(["iscsiadm", "-m", "node"]).splitlines() if line.strip()]
scan_modes = []
for node in nodes:
    portal, target = node.split()[0].rsplit(",", 1)[0], node.split()[1]
    record = run(["iscsiadm", "-m", "node", "-T", target, "-p", portal])
    scan_modes += [line.split(" = ", 1)[1] for line in record.splitlines() if line.startswith("node.session.scan = ")]
paths = []
for line in run(["multipathd", "show", "paths", "raw", "format", "%d|%w|%m|%t|%T|%i"]).splitlines():
    fields = line.split("|")
    if len(fields) == 6:
        paths.append(dict(zip(("dev", "wwid", "map", "dm_state", "checker", "hctl"), fields)))
maps = [line.split()[0] for line in run(["dmsetup", "ls", "--target", "multipath"]).splitlines() if "(" in line]
array = json.loads(run(["python3", "/usr/local/lib/lunsafe-lab/labctl.py", "status"]) or "{}")
print(
    json.dumps(
        {
            "sessions": sessions,
            "disks": disks,
            "nodes": nodes,
            "scan_modes": scan_modes,
            "paths": paths,
            "maps": maps,
            "array": array,
        }
    )
)
