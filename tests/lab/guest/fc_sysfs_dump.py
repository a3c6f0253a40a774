# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dump the initiator-side FC sysfs state as one JSON document (fixtures for the FC unit tests).

Runs on any Linux host (standard library only, read-only: it never writes to sysfs), so the same capture can be
taken on another kernel or on real HBAs:

    python3 fc_sysfs_dump.py --label attached > attached.json

In the lab it is installed as /usr/local/lib/lunsafe-lab/fc_sysfs_dump.py; tests/lab/capture_fc_fixtures.py
drives it. What it holds:
- ``files``: every attribute file of /sys/class/fc_host/*/ and /sys/class/fc_remote_ports/*/ (and their
  statistics/), /sys/class/fc_transport/*/, /sys/class/scsi_host/*/proc_name, the scsi_device attributes the
  collection reads, and /sys/module/scsi_mod/parameters/scan: path -> text value (trailing newline stripped);
- ``unreadable``: attribute files that cannot be read (write-only ones such as issue_lip): path -> error;
- ``realpaths``: ``readlink -f`` of each fc_host, fc_remote_port, fc_transport, scsi_host and scsi_device
  ``device`` link and of /sys/class/block/* entries;
- ``links``: the raw (relative) targets of those same links, as the kernel made them;
- ``block``: per sd block device its hctl, sysfs wwid, size and holders; ``dm``: multipath maps (name, uuid,
  slaves); ``by_path`` / ``by_id``: /dev/disk/by-path and /dev/disk/by-id names -> link targets.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import sys
import time

SKIP = {"uevent", "power", "subsystem", "device"}
DEVICE_ATTRS = ("state", "wwid", "vendor", "model", "rev", "type", "scsi_level", "queue_depth", "timeout")


def read_text(path, files, unreadable):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            files[path] = handle.read().rstrip("\n")
    except OSError as exc:
        unreadable[path] = exc.strerror or str(exc)


def attribute_files(directory, subdirs=("statistics",)):
    found = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name in SKIP or os.path.islink(path):
            continue
        if os.path.isfile(path):
            found.append(path)
        elif name in subdirs and os.path.isdir(path):
            found += [os.path.join(path, n) for n in sorted(os.listdir(path)) if os.path.isfile(os.path.join(path, n))]
    return found


def link_info(path, realpaths, links):
    if os.path.islink(path):
        realpaths[path] = os.path.realpath(path)
        links[path] = os.readlink(path)


def dump(label):
    files, unreadable, realpaths, links = {}, {}, {}, {}
    for cls in ("fc_host", "fc_remote_ports", "fc_transport"):
        for entry in sorted(glob.glob(f"/sys/class/{cls}/*")):
            link_info(entry, realpaths, links)
            link_info(os.path.join(entry, "device"), realpaths, links)
            for path in attribute_files(entry):
                read_text(path, files, unreadable)
    for entry in sorted(glob.glob("/sys/class/scsi_host/*")):
        link_info(entry, realpaths, links)
        link_info(os.path.join(entry, "device"), realpaths, links)
        read_text(os.path.join(entry, "proc_name"), files, unreadable)
    for entry in sorted(glob.glob("/sys/class/scsi_device/*")):
        link_info(entry, realpaths, links)
        device = os.path.join(entry, "device")
        link_info(device, realpaths, links)
        for name in DEVICE_ATTRS:
            if os.path.exists(os.path.join(device, name)):
                read_text(os.path.join(device, name), files, unreadable)
    read_text("/sys/module/scsi_mod/parameters/scan", files, unreadable)
    block, dm = {}, {}
    for entry in sorted(glob.glob("/sys/class/block/*")):
        name = os.path.basename(entry)
        link_info(entry, realpaths, links)
        if name.startswith("sd"):
            hctl = os.listdir(os.path.join(entry, "device", "scsi_device"))
            block[name] = {
                "hctl": hctl[0] if hctl else None,
                "wwid": _read(os.path.join(entry, "device", "wwid")),
                "size": _read(os.path.join(entry, "size")),
                "holders": sorted(os.listdir(os.path.join(entry, "holders"))),
            }
        elif name.startswith("dm-"):
            dm[name] = {
                "name": _read(os.path.join(entry, "dm", "name")),
                "uuid": _read(os.path.join(entry, "dm", "uuid")),
                "slaves": sorted(os.listdir(os.path.join(entry, "slaves"))),
            }
    return {
        "label": label,
        "captured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kernel": platform.release(),
        "files": files,
        "unreadable": unreadable,
        "realpaths": realpaths,
        "links": links,
        "block": block,
        "dm": dm,
        "by_path": _dev_links("/dev/disk/by-path"),
        "by_id": _dev_links("/dev/disk/by-id"),
    }


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().rstrip("\n")
    except OSError:
        return None


def _dev_links(folder):
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return {}
    return {n: os.readlink(os.path.join(folder, n)) for n in names if os.path.islink(os.path.join(folder, n))}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="fc_sysfs_dump.py", description="Dump the initiator-side FC sysfs state as one JSON document."
    )
    parser.add_argument("--label", default="capture", help="a name for this state, stored in the dump")
    args = parser.parse_args(argv)
    json.dump(dump(args.label), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
