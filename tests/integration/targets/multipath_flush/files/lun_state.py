# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Print, as JSON, what the kernel and multipathd show for some LUNs (read-only; used by the assertions).

python3 lun_state.py [--fc] 1 2 3  ->  {"luns": {"1": {"paths": ["sda", "sdb"], "hctls": [...], "wwids": [...],
                          "maps": ["mpatha"]}, ...},
                         "maps": {"mpatha": {"dm": "dm-0", "uuid": "mpath-36...", "slaves": [...],
                                  "by_id": true}},
                         "multipathd_paths": {"sda": "mpatha", ...}, "by_id_scsi": ["scsi-36...", ...]}

The LUNs' paths are the SCSI devices behind an iSCSI session, or with --fc those behind a Fibre Channel remote
port (rport-H:C-N in their sysfs path).
"""

import glob
import json
import os
import subprocess
import sys


def read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return None


result = {"luns": {}, "maps": {}, "multipathd_paths": {}, "by_id_scsi": []}
for dm_dir in sorted(glob.glob("/sys/block/dm-*")):
    uuid = read(dm_dir + "/dm/uuid") or ""
    if uuid.startswith("mpath-"):
        result["maps"][read(dm_dir + "/dm/name")] = {
            "dm": os.path.basename(dm_dir),
            "uuid": uuid,
            "slaves": sorted(os.listdir(dm_dir + "/slaves")),
            "by_id": os.path.lexists("/dev/disk/by-id/dm-uuid-" + uuid),
        }
args = sys.argv[1:]
behind = "/session"
if args and args[0] == "--fc":
    args, behind = args[1:], "/rport-"
for lun in args:
    entry = {"paths": [], "hctls": [], "wwids": [], "states": [], "maps": []}
    for device in sorted(glob.glob(f"/sys/class/scsi_device/*:*:*:{lun}/device")):
        if behind not in os.path.realpath(device):
            continue  # not behind an iSCSI session (or an FC remote port; the guest's CD-ROM is 1:0:0:0)
        for block in sorted(glob.glob(device + "/block/*")):
            name = os.path.basename(block)
            entry["paths"].append(name)
            entry["hctls"].append(os.path.basename(os.path.dirname(device)))
            entry["wwids"].append(read(device + "/wwid"))
            entry["states"].append(read(device + "/state"))
            for holder in sorted(os.listdir(block + "/holders")):
                map_name = read(f"/sys/block/{holder}/dm/name")
                if map_name not in entry["maps"]:
                    entry["maps"].append(map_name)
    result["luns"][lun] = entry
reply = subprocess.run(
    ["multipathd", "show", "paths", "raw", "format", "%d %m"],
    capture_output=True,
    text=True,
    timeout=20,
    check=False,
)
for line in reply.stdout.splitlines():
    fields = line.split()
    if len(fields) == 2:
        result["multipathd_paths"][fields[0]] = fields[1]
result["by_id_scsi"] = sorted(os.path.basename(link) for link in glob.glob("/dev/disk/by-id/scsi-*"))
print(json.dumps(result, sort_keys=True))
