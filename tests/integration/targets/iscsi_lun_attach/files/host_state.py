"""Print the lab host's iSCSI/SCSI/multipath state as JSON (run in the lab guest by the tests).

--array adds the array's view (labctl status: over a second under TCG), --units the systemd units' states;
the reads that assert on them ask for them (state.yml's state_args)."""

import glob
import json
import os
import subprocess
import sys

# node record keys the tests look at (CHAP user names and methods; secrets only as "set or not")
AUTH_KEYS = (
    "node.session.auth.authmethod",
    "node.session.auth.username",
    "node.session.auth.username_in",
    "node.startup",
)
SECRET_KEYS = ("node.session.auth.password", "node.session.auth.password_in")


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False).stdout


def unit_states(units):
    proc = subprocess.run(["systemctl", "is-active", *units], capture_output=True, text=True, timeout=30, check=False)
    return dict(zip(units, proc.stdout.split()))


def session_address(session, name="persistent_address"):
    found = glob.glob(session + "/device/connection*/iscsi_connection/connection*/" + name)
    return read(found[0]) if found else None


def session_port(session):
    port = session_address(session, "persistent_port")
    return int(port) if port and port.isdigit() else None


sessions = [
    {
        "sid": int(s.rsplit("session", 1)[1]),
        "state": read(s + "/state"),
        "target": read(s + "/targetname"),
        "address": session_address(s),
        "port": session_port(s),
    }
    for s in sorted(glob.glob("/sys/class/iscsi_session/session*"))
]
disks = sorted(os.path.basename(d) for d in glob.glob("/sys/class/scsi_disk/*"))
nodes = [line for line in run(["iscsiadm", "-m", "node"]).splitlines() if line.strip()]
scan_modes = []
records = {}
for node in nodes:
    portal, target = node.split()[0].rsplit(",", 1)[0], node.split()[1]
    record = run(["iscsiadm", "-m", "node", "-T", target, "-p", portal])
    values = dict(line.split(" = ", 1) for line in record.splitlines() if " = " in line)
    scan_modes += [line.split(" = ", 1)[1] for line in record.splitlines() if line.startswith("node.session.scan = ")]
    entry = {key: values.get(key, "") for key in AUTH_KEYS}
    entry["scan"] = values.get("node.session.scan", "")
    # iscsiadm masks secrets without -S: only say whether one is stored
    entry["secrets_set"] = [key for key in SECRET_KEYS if values.get(key, "<empty>") not in ("", "<empty>")]
    records[portal] = entry
discovery = sorted(
    line.strip() for line in run(["iscsiadm", "-m", "discoverydb"]).splitlines() if "via sendtargets" in line
)
paths = []
for line in run(["multipathd", "show", "paths", "raw", "format", "%d|%w|%m|%t|%T|%i"]).splitlines():
    fields = line.split("|")
    if len(fields) == 6:
        paths.append(dict(zip(("dev", "wwid", "map", "dm_state", "checker", "hctl"), fields)))
maps = [line.split()[0] for line in run(["dmsetup", "ls", "--target", "multipath"]).splitlines() if "(" in line]
state = {
    "sessions": sessions,
    "disks": disks,
    "nodes": nodes,
    "scan_modes": scan_modes,
    "records": records,
    "discovery": discovery,
    "paths": paths,
    "maps": maps,
}
if "--units" in sys.argv:
    state["units"] = unit_states(["iscsid.service", "iscsid.socket", "multipathd.service", "multipathd.socket"])
if "--array" in sys.argv:
    state["array"] = json.loads(run(["python3", "/usr/local/lib/lunsafe-lab/labctl.py", "status"]) or "{}")
print(json.dumps(state))
