# Copyright (c) 2026, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Materialize a real FC sysfs capture (fixtures/fc/*.json, made by tests/lab/guest/fc_sysfs_dump.py in the
lab) as a sysfs tree under tmp_path: the kernel's own layout, links and attribute texts.

Every captured path is placed at its real location (the longest captured link prefix replaced by its
``realpath``), links are re-created with the kernel's relative targets, and the block devices and multipath
maps of the capture's ``block`` / ``dm`` sections get the files the sysfs reader needs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict

FIXTURES = Path(__file__).parent / "fixtures" / "fc"
_SYS = "/sys"


def load_capture(name: str) -> Dict[str, Any]:
    with open(FIXTURES / f"{name}.json", encoding="utf-8") as handle:
        capture: Dict[str, Any] = json.load(handle)
    return capture


def _real(path: str, realpaths: Dict[str, str]) -> str:
    """``path`` with its longest captured link prefix replaced by that link's real path."""
    best = ""
    for link in realpaths:
        if (path == link or path.startswith(link + "/")) and len(link) > len(best):
            best = link
    return path if not best else realpaths[best] + path[len(best) :]


def _local(root: Path, path: str) -> Path:
    return root / os.path.relpath(path, _SYS)


def build_from_capture(tmp_path: Path, name: str, *, root_name: str = "sys") -> Path:
    """The capture ``name`` (``attached``, ``port_down``) as a sysfs tree; returns its root."""
    capture = load_capture(name)
    realpaths: Dict[str, str] = capture["realpaths"]
    root = tmp_path / root_name
    for sub in ("block", "class/block", "class/scsi_host", "class/scsi_device", "devices/virtual/block"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for real in realpaths.values():
        _local(root, real).mkdir(parents=True, exist_ok=True)
    for path, text in capture["files"].items():
        target = _local(root, _real(path, realpaths))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text + "\n", encoding="utf-8")
    # links, deepest last: a link inside a linked directory goes to the real directory
    for path in sorted(capture["links"], key=lambda p: p.count("/")):
        parent = _local(root, _real(os.path.dirname(path), realpaths))
        parent.mkdir(parents=True, exist_ok=True)
        link = parent / os.path.basename(path)
        if not link.exists() and not link.is_symlink():
            os.symlink(capture["links"][path], link)
    for disk, info in capture["block"].items():
        disk_dir = _local(root, realpaths[f"/sys/class/block/{disk}"])
        (disk_dir / "holders").mkdir(parents=True, exist_ok=True)
        (disk_dir / "size").write_text(f"{info['size']}\n", encoding="utf-8")
        (disk_dir / "ro").write_text("0\n", encoding="utf-8")
        block_link = root / "block" / disk
        if not block_link.is_symlink():
            os.symlink(os.path.relpath(disk_dir, block_link.parent), block_link)
    for dm, info in capture["dm"].items():
        dm_dir = root / "devices" / "virtual" / "block" / dm
        (dm_dir / "dm").mkdir(parents=True, exist_ok=True)
        (dm_dir / "slaves").mkdir(exist_ok=True)
        (dm_dir / "holders").mkdir(exist_ok=True)
        (dm_dir / "dm" / "name").write_text(f"{info['name']}\n", encoding="utf-8")
        (dm_dir / "dm" / "uuid").write_text(f"{info['uuid']}\n", encoding="utf-8")
        (dm_dir / "dm" / "suspended").write_text("0\n", encoding="utf-8")
        os.symlink(os.path.relpath(dm_dir, root / "block"), root / "block" / dm)
        for slave in info["slaves"]:
            disk_dir = _local(root, realpaths[f"/sys/class/block/{slave}"])
            os.symlink(os.path.relpath(disk_dir, dm_dir / "slaves"), dm_dir / "slaves" / slave)
            holder = disk_dir / "holders" / dm
            if not holder.is_symlink():
                os.symlink(os.path.relpath(dm_dir, holder.parent), holder)
    return root
