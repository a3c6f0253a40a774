# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Captures the tool output the unit tests parse from a running lab guest of any suite (issue 27):

    python3 tests/lab/capture_matrix_fixtures.py --name LAB [--out tests/unit/plugins/module_utils/fixtures/matrix]

Logs in to both portals with the kernel's own scan (4 LUNs on two sessions), waits for the four maps, and writes
FOLDER/SUITE/healthy/: multipathd's raw path and map formats (the FIELD_SEP-joined wildcards of _multipath.py),
`multipathd show status`, `multipath -ll`, `dmsetup status|table --target multipath`, `iscsiadm -m session`
and `-m session -P 1`, `iscsiadm -m node` and one node record; then the array unmaps LUN 2 and, once both of its
paths are faulty, FOLDER/SUITE/unmapped/ the same. Then it logs out and removes everything again (the lab
reset). A versions.txt says which guest the output came from."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lab as lab_module

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "unit" / "plugins" / "module_utils" / "fixtures" / "matrix"
IQN = "iqn.2003-01.org.lunsafe.lab:array"
PORTALS = ("127.0.0.1", "127.0.0.2")
SEP = "\x1f"
# the same wildcards as _multipath.PATH_FORMAT / MAP_FORMAT (test_matrix_fixtures.py asserts they are equal)
PATH_FORMAT = SEP.join(("%d", "%w", "%i", "%D", "%t", "%T", "%o", "%m", "%c"))
MAP_FORMAT = SEP.join(("%n", "%w", "%d", "%N", "%Q", "%t", "%f"))

VERSIONS = r"""
set -u
echo "kernel $(uname -r)"
echo "python $(python3 -c 'import platform; print(platform.python_version())')"
dpkg-query -W -f '${Package} ${Version}\n' open-iscsi multipath-tools udev python3-pyudev python3-os-brick targetcli-fb
"""

COMMANDS = {
    "multipathd_show_paths_raw.txt": ["multipathd", "show", "paths", "raw", "format", PATH_FORMAT],
    "multipathd_show_maps_raw.txt": ["multipathd", "show", "maps", "raw", "format", MAP_FORMAT],
    "multipathd_show_status.txt": ["multipathd", "show", "status"],
    "multipath_ll.txt": ["multipath", "-ll"],
    "dmsetup_status.txt": ["dmsetup", "status", "--target", "multipath"],
    "dmsetup_table.txt": ["dmsetup", "table", "--target", "multipath"],
    "iscsiadm_session.txt": ["iscsiadm", "-m", "session"],
    "iscsiadm_session_P1.txt": ["iscsiadm", "-m", "session", "-P", "1"],
    "iscsiadm_node.txt": ["iscsiadm", "-m", "node"],
    "iscsiadm_node_record.txt": ["iscsiadm", "-m", "node", "-T", IQN, "-p", PORTALS[0], "-o", "show"],
}


def capture(lab: lab_module.Lab, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, argv in COMMANDS.items():
        done = lab.ssh(argv, check=False, timeout=120)
        (folder / name).write_text(done.stdout, encoding="utf-8")


def wait_for(lab: lab_module.Lab, script: str, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while lab.ssh(["sh", "-c", script], check=False, timeout=60).returncode != 0:
        if time.monotonic() > deadline:
            raise lab_module.LabError(f"capture: {what} not reached within {timeout:.0f} s")
        time.sleep(2)


def capture_all(lab: lab_module.Lab, root: Path = DEFAULT_OUT) -> Path:
    """Both states of one guest into ROOT/SUITE; returns that folder."""
    suite = lab.info().get("suite", lab_module.DEFAULT_SUITE)
    out = root / suite
    lab.array(["reset", "--luns", "4"], timeout=600)
    login = " && ".join(
        f"iscsiadm -m node -T {IQN} -p {p} -o new >/dev/null && iscsiadm -m node -T {IQN} -p {p} -l" for p in PORTALS
    )
    lab.ssh(["sh", "-c", login], timeout=300)
    # four maps with two active paths each
    wait_for(lab, "test $(multipath -ll 2>/dev/null | grep -c 'active ready running') -eq 8", "4 maps x 2 paths")
    out.mkdir(parents=True, exist_ok=True)
    (out / "versions.txt").write_text(lab.ssh(["sh", "-c", VERSIONS], timeout=120).stdout, encoding="utf-8")
    capture(lab, out / "healthy")
    lab.array(["unmap", "2"])
    wait_for(lab, "test $(multipath -ll 2>/dev/null | grep -c 'failed faulty') -ge 2", "LUN 2's paths faulty", 120)
    capture(lab, out / "unmapped")
    lab.array(["reset", "--luns", "4"], timeout=600)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--name", required=True, help="the running lab")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    print(capture_all(lab_module.Lab(args.name), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
