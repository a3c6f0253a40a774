# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guest matrix (issue 27): the lab suite's core on Debian suites other than bookworm, one guest per suite.

    python3 tests/lab/matrix.py [--suites bullseye trixie] [--out docs/benchmarks/matrix.md] [--keep]

For each suite it builds the guest image (cached by recipe, like bookworm's), boots a lab VM `matrix-SUITE`
with iSCSI and FC, reads the versions that matter (kernel, Python, open-iscsi, multipath-tools, udev, pyudev,
os-brick) and runs the core set against it with pytest: the integration targets and the Molecule scenario below,
each target with LUNSAFE_LAB_CORE=1 (its core: the cases whose kernel, tool and udev behaviour differs between
suites, not its long tail). Two suites run side by side, one VM each (the most these 2-core machines take); the
VMs are stopped at the end unless --keep.

Prints a table per suite (test, outcome, seconds) and, with --out, writes it as markdown (and the raw results
beside it as .json) with the host's load. The test command (scripts/test) runs the whole lab suite on bookworm
and this script on bullseye under ansible-core 2.17 and trixie under 2.21 (--cores), beside its fleet scenarios.
--full runs the targets whole (but iscsi_lun_attach's long tail), by hand: about half an hour per suite.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lab as lab_module
from capture_matrix_fixtures import VERSIONS, capture_all

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

#: the core set (issue 27): attach/detach of several LUNs over two portals with the identity and wrong-LU cases
#: (iscsi_lun_attach), iscsi_info, the facts with the race (multipath_faulty_facts: a LUN unmapped while attached,
#: and a host-side detach, a global rescan and the array's unmap), the targeted scan (only the LUN asked for, the
#: others mapped and left alone) with the online resize, the flush of a healthy and of a dead queueing map, the FC
#: cases (fc_info, fc_lun_attach) and one Molecule scenario. Each target runs its core (LUNSAFE_LAB_CORE=1, the
#: playbooks' lab_core): the cases whose kernel, tool or udev behaviour differs between suites, not the long tail
#: of refusals, result keys and fault variants that bookworm's whole lab suite runs. The test command runs this set
#: on bullseye and trixie; --full runs every target but iscsi_lun_attach whole (by hand: about half an hour per
#: suite on two cores, more than the test command's budget holds beside the bookworm suite).
CORE = [
    "test_integration_targets.py::test_integration_target[iscsi_lun_attach]",
    "test_integration_targets.py::test_integration_target[iscsi_info]",
    "test_integration_targets.py::test_integration_target[multipath_faulty_facts]",
    "test_integration_targets.py::test_integration_target[scsi_targeted_scan]",
    "test_integration_targets.py::test_integration_target[multipath_flush]",
    "test_integration_targets.py::test_integration_target[fc_info]",
    "test_integration_targets.py::test_integration_target[fc_lun_attach]",
    "test_molecule.py::test_molecule_scenario[lun_attach]",
]

#: what --full adds: the lab's own smoke target
FULL = ["test_integration_targets.py::test_integration_target[lab_smoke]", *CORE]


def versions(lab: lab_module.Lab) -> Dict[str, str]:
    out = lab.ssh(["sh", "-c", VERSIONS], timeout=120).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def junit_rows(path: Path) -> List[dict]:
    if not path.exists():
        return []
    rows = []
    for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314 - our own pytest junit file
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped") is not None
        outcome = "failed" if bad is not None else "skipped" if skipped else "passed"
        message = ""
        if bad is not None:
            # the failed task's assertion from the failure's summary (test_integration_targets.failed_tasks)
            text = (bad.get("message") or "") + "\n" + (bad.text or "")
            said = [line.strip(" E") for line in text.splitlines() if line.strip(" E").startswith("assertion:")]
            message = (said[-1] if said else (bad.get("message") or "").splitlines()[0])[:300]
        rows.append(
            {"test": case.get("name"), "outcome": outcome, "seconds": float(case.get("time", 0)), "message": message}
        )
    return rows


def run_suite(
    suite: str,
    results: dict,
    keep: bool,
    boot_lock: threading.Lock,
    fixtures: Path | None,
    *,
    tests: List[str] | None = None,
    prefix: str = "matrix",
    watch_pid: int | None = None,
    core: str | None = None,
    full: bool = False,
) -> None:
    name = f"{prefix}-{suite}"
    lab = lab_module.Lab(name)
    entry = results[suite] = {"suite": suite, "lab": name, "rows": [], "error": None}
    start = time.monotonic()
    try:
        with boot_lock:  # one boot at a time: two booting TCG guests starve each other
            info = lab.up(luns=4, accel="auto", boot_timeout=300, watch_pid=watch_pid or os.getpid(), suite=suite)
        entry["boot_seconds"] = round(time.monotonic() - start, 1)
        entry["kernel"] = info["kernel"]
        entry["versions"] = versions(lab)
        junit = REPO / ".lab" / f"{name}-junit.xml"
        # the controller: this Python's ansible-core, or with a core version the venv that
        # `scripts/setup-venv --core X.Y` made (ansible-playbook and molecule beside its python)
        python = str(REPO / f".venv-core-{core}" / "bin" / "python") if core else sys.executable
        entry["controller"] = subprocess.run(
            [str(Path(python).parent / "ansible"), "--version"], capture_output=True, text=True, check=False
        ).stdout.split("\n", 1)[0]
        # the core of each target (lab_core), or with --full only iscsi_lun_attach's (test_integration_targets)
        env = dict(os.environ, LUNSAFE_LAB_NAME=name, LUNSAFE_LAB_CORE="iscsi_lun_attach" if full else "1")
        env.pop("LUNSAFE_LAB_NAMES", None)
        log = REPO / ".lab" / f"{name}.log"
        began = time.monotonic()
        with open(log, "w", encoding="utf-8") as out:
            done = subprocess.run(
                [
                    python,
                    "-m",
                    "pytest",
                    "-p",
                    "no:cacheprovider",
                    "-rA",
                    "-s",
                    f"--junitxml={junit}",
                    *(str(HERE / test) for test in (tests or CORE)),
                ],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=5400,
            )
        entry["suite_seconds"] = round(time.monotonic() - began, 1)
        entry["rc"] = done.returncode
        entry["log"] = str(log)
        entry["junit"] = str(junit)
        entry["rows"] = junit_rows(junit)
        if fixtures:
            entry["fixtures"] = str(capture_all(lab, fixtures))
    except Exception as exc:  # reported per suite, the other suite goes on
        entry["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if entry["error"] or entry.get("rc"):
            keep_console(lab, entry)
        if not keep:
            lab.down(purge=True)


def keep_console(lab: lab_module.Lab, entry: dict, lines: int = 30) -> None:
    """A failed suite's guest console, kept beside the logs (down --purge removes the lab's state) and its last
    lines in the report: a guest that stopped answering SSH under load (trixie, 2026-12-07) left nothing else."""
    console = lab.state / "console.log"
    try:
        text = console.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    kept = REPO / ".lab" / f"{lab.name}-console.log"
    kept.write_text(text, encoding="utf-8")
    entry["console"] = str(kept)
    entry["console_tail"] = text.splitlines()[-lines:]


def markdown(results: dict, load: str, started: str, argv: List[str]) -> str:
    suites = list(results)
    lines = [
        "# The guest matrix: the lab suite's core on other Debian suites",
        "",
        f"Recorded {started} UTC by `python3 tests/lab/{' '.join(['matrix.py', *argv])}` (one TCG guest per "
        f"suite, two side by side; host load average at the end: {load}). bookworm runs the whole lab suite in "
        "the test command; these suites run the core set: the integration targets below and the `lun_attach` "
        "Molecule scenario, "
        + (
            "each target whole but `iscsi_lun_attach`, which runs its core (`LUNSAFE_LAB_CORE=iscsi_lun_attach`)."
            if "--full" in argv
            else "each target's core (`LUNSAFE_LAB_CORE=1`: the cases whose kernel, tool and udev behaviour "
            "differs between suites, not the long tail of refusals, result keys and fault variants)."
        ),
        "",
        "## Versions",
        "",
        "| | " + " | ".join(suites) + " |",
        "|---|" + "---|" * len(suites),
    ]
    keys: List[str] = []
    for entry in results.values():
        for key in entry.get("versions", {}):
            if key not in keys:
                keys.append(key)
    for key in keys:
        lines.append(f"| {key} | " + " | ".join(results[s].get("versions", {}).get(key, "-") for s in suites) + " |")
    lines.append("| controller | " + " | ".join(results[s].get("controller") or "-" for s in suites) + " |")
    lines += ["", "## Core set", "", "| test | " + " | ".join(suites) + " |", "|---|" + "---|" * len(suites)]
    tests: List[str] = []
    for entry in results.values():
        for row in entry["rows"]:
            if row["test"] not in tests:
                tests.append(row["test"])
    for test in tests:
        cells = []
        for suite in suites:
            row = next((r for r in results[suite]["rows"] if r["test"] == test), None)
            cells.append(f"{row['outcome']}, {row['seconds']:.0f} s" if row else "-")
        lines.append(f"| `{test}` | " + " | ".join(cells) + " |")
    lines.append(
        "| the whole set | "
        + " | ".join(
            f"{results[s].get('suite_seconds', 0):.0f} s (boot {results[s].get('boot_seconds', 0):.0f} s)"
            for s in suites
        )
        + " |"
    )
    for suite in suites:
        lines += what_failed(suite, results[suite])
    return "\n".join(lines) + "\n"


def what_failed(suite: str, entry: dict) -> List[str]:
    """A suite's failures for the report (none: no lines), with its guest's last console lines if kept."""
    bad = [r for r in entry["rows"] if r["outcome"] == "failed"]
    if not (entry["error"] or bad):
        return []
    lines = ["", f"### {suite}: what failed", ""]
    if entry["error"]:
        lines.append(f"- {entry['error']}")
    lines += [f"- `{r['test']}`: {r['message']}" for r in bad]
    if entry.get("console_tail"):
        lines += ["", f"The guest's console, last lines ({entry['console']}):", "", "```"]
        lines += [*entry["console_tail"], "```"]
    return lines


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--suites", nargs="+", default=["bullseye", "trixie"], choices=lab_module.SUITES)
    parser.add_argument("--out", type=Path, help="write the table as markdown (and .json beside it)")
    parser.add_argument("--keep", action="store_true", help="leave the VMs running")
    parser.add_argument(
        "--full", action="store_true", help="every target of the core set whole (but iscsi_lun_attach), not its core"
    )
    parser.add_argument("--prefix", default="matrix", help="the VMs are named PREFIX-SUITE")
    parser.add_argument("--watch-pid", type=int, help="the VMs stop when this process ends (the test command's)")
    parser.add_argument(
        "--cores",
        nargs="+",
        default=[],
        metavar="SUITE=X.Y",
        help="run SUITE's tests with ansible-core X.Y (.venv-core-X.Y, scripts/setup-venv --core X.Y)",
    )
    parser.add_argument(
        "--fixtures",
        type=Path,
        help="after the core set, capture the unit tests' fixtures of each suite into FIXTURES/SUITE "
        "(tests/unit/plugins/module_utils/fixtures/matrix)",
    )
    args = parser.parse_args(argv)
    if len(args.suites) > 2:
        parser.error("at most two suites side by side (two guests on a 2-core machine)")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    results: dict = {}
    boot_lock = threading.Lock()
    # the guests cache the bytecode of the modules' zips (lab.py, guest/lunsafe_lab_zip_bytecode.py): these are
    # tests, not benchmarks, and the compile is most of a task's time under TCG
    os.environ["LUNSAFE_LAB_BYTECODE_CACHE"] = "1"
    options = {
        "tests": FULL if args.full else CORE,
        "full": args.full,
        "prefix": args.prefix,
        "watch_pid": args.watch_pid,
    }
    cores = dict(item.split("=", 1) for item in args.cores)
    threads = [
        threading.Thread(
            target=run_suite,
            args=(s, results, args.keep, boot_lock, args.fixtures),
            kwargs=dict(options, core=cores.get(s)),
        )
        # the newest suite boots first: trixie boots and runs slowest, and the boots take turns (boot_lock)
        for s in sorted(args.suites, key=lab_module.SUITES.index, reverse=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results = {s: results[s] for s in args.suites}
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    text = markdown(results, load, started, sys.argv[1:] if argv is None else argv)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    failed = any(
        e["error"] or e.get("rc") or any(r["outcome"] == "failed" for r in e["rows"]) for e in results.values()
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
