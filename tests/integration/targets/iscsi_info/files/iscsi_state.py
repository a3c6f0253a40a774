# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Print, as JSON, the initiator's iSCSI state as sysfs and iscsiadm show it, read independently of the
collection's code (the assertions of the iscsi_info target compare the module's result with it).

{"sessions": [{"sid": 1, "target": ..., "portal": "127.0.0.1:3260", "iface": "default", "host": 2,
               "state": "LOGGED_IN", "connection_state": "up", "luns": [{"hctl": "2:0:0:1", "device": "sda",
               "size_bytes": 67108864, "multipath_map": "mpatha"}]}],
 "nodes": [{"portal": "127.0.0.1:3260", "target": ..., "scan": "manual", "startup": "manual",
            "authmethod": "CHAP"}],
 "discovery": ["127.0.0.1:3260 via sendtargets"], "node_rc": 0, "discovery_rc": 0}
"""

import glob
import json
import os
import subprocess


def read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return None


def portal(address, port):
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def luns(session_dir, host):
    found = []
    for device_dir in sorted(glob.glob(f"{session_dir}/target{host}:*/{host}:*")):
        hctl = os.path.basename(device_dir)
        blocks = os.listdir(device_dir + "/block") if os.path.isdir(device_dir + "/block") else []
        device = blocks[0] if blocks else None
        entry = {"hctl": hctl, "device": device, "size_bytes": None, "multipath_map": None}
        if device:
            entry["size_bytes"] = int(read(f"/sys/block/{device}/size")) * 512
            for holder in os.listdir(f"/sys/block/{device}/holders"):
                if (read(f"/sys/block/{holder}/dm/uuid") or "").startswith("mpath-"):
                    entry["multipath_map"] = read(f"/sys/block/{holder}/dm/name")
        found.append(entry)
    return sorted(found, key=lambda e: [int(x) for x in e["hctl"].split(":")])


sessions = []
for link in sorted(glob.glob("/sys/class/iscsi_session/session*"), key=lambda p: int(p.rsplit("session", 1)[1])):
    sid = int(link.rsplit("session", 1)[1])
    session_dir = os.path.realpath(link + "/device")
    host = int(os.path.basename(os.path.dirname(session_dir))[len("host") :])
    conn = glob.glob(f"/sys/class/iscsi_connection/connection{sid}:*")[0]
    sessions.append(
        {
            "sid": sid,
            "target": read(link + "/targetname"),
            "portal": portal(read(conn + "/persistent_address"), read(conn + "/persistent_port")),
            "iface": read(link + "/ifacename"),
            "host": host,
            "state": read(link + "/state"),
            "connection_state": read(conn + "/state"),
            "luns": luns(session_dir, host),
        }
    )

listed = subprocess.run(["iscsiadm", "-m", "node"], capture_output=True, text=True, check=False)
nodes = []
for line in listed.stdout.splitlines():
    hostport, target = line.split()
    hostport = hostport.rsplit(",", 1)[0]
    shown = subprocess.run(
        ["iscsiadm", "-m", "node", "-T", target, "-p", hostport, "-o", "show"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    settings = dict(line.split(" = ", 1) for line in shown.splitlines() if " = " in line)
    nodes.append(
        {
            "portal": hostport,
            "target": target,
            "scan": settings.get("node.session.scan"),
            "startup": settings.get("node.startup"),
            "authmethod": settings.get("node.session.auth.authmethod"),
        }
    )
discovery = subprocess.run(["iscsiadm", "-m", "discoverydb"], capture_output=True, text=True, check=False)
print(
    json.dumps(
        {
            "sessions": sessions,
            "nodes": sorted(nodes, key=lambda n: n["portal"]),
            "discovery": discovery.stdout.split("\n")[:-1],
            "node_rc": listed.returncode,
            "discovery_rc": discovery.returncode,
        }
    )
)
