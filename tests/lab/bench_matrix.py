# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark (issue 27): one-LUN attach against the bare targeted scan, on each Debian suite of the lab.

    python3 tests/lab/bench_matrix.py [--suites bullseye bookworm trixie] [--luns 4] [--samples 3]
                                      [--out docs/benchmarks/matrix-attach.md]

For each suite in turn (one guest at a time, nothing beside it: a figure taken beside another VM is a draft),
runs `bench_attach.py --parts per-call --per-call 1 --arms batch bare` on a fresh guest of that suite
(LUNSAFE_LAB_SUITE) and keeps its row: the floor (the same scan writes on both sessions, until both block
devices exist and multipathd's own map holds them; and the same until udev has processed both devices and the
map, which is what the module waits for), our `iscsi_lun_attach` of one LUN (the module's own
`timings.total`, and the task's wall time through Ansible), each from both sessions up and no device, and the
ratio of the two; so a kernel, udev or multipath-tools generation that makes us slower shows. With --out,
writes a markdown table (and the raw rows as .json beside it) with the host's load before and after.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lab as lab_module

HERE = Path(__file__).resolve().parent


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def running_vms() -> int:
    """qemu VMs running on the host now, not a zombie qemu its parent has not reaped yet (as bench_race and
    bench_fc_attach count them)."""
    proc = subprocess.run(
        ["pgrep", "-c", "--runstates", "RSD", "qemu-system"], capture_output=True, text=True, timeout=30, check=False
    )
    return int(proc.stdout.strip() or 0)


def measure(suite: str, luns: int, samples: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "attach.md"
        env = dict(os.environ, LUNSAFE_LAB_SUITE=suite)
        env.pop("LUNSAFE_LAB_BYTECODE_CACHE", None)  # as on any host: the module compiled at each call
        argv = [sys.executable, str(HERE / "bench_attach.py"), "--parts", "per-call", "--per-call", "1"]
        argv += ["--arms", "batch", "bare", "--luns", str(luns), "--samples", str(samples)]
        argv += ["--name", f"bench-{suite}", "--out", str(out)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=3600)
        if done.returncode != 0:
            return {"suite": suite, "error": (done.stderr or done.stdout)[-2000:]}
        recorded = json.loads(out.with_suffix(".json").read_text())
    row = next(r for r in recorded["rows"] if r.get("luns") == luns)
    stamp = row.get("per_call_run") or {}
    size = next(z for z in row["per_call"]["sizes"] if z["per_call"] == 1)
    ours, bare = size["batch"], size["bare"]
    floor_udev = (bare.get("phases_s") or {}).get("udev")  # the same floor until udev is done (what ours waits for)
    return {
        "suite": suite,
        "kernel": stamp.get("kernel"),
        "luns": luns,
        "floor_s": bare["module_s"],
        "floor_all": bare.get("module_s_all"),
        "module_s": ours["module_s"],
        "module_all": ours.get("module_s_all"),
        "wall_s": ours["wall_s"],
        "ratio": round(ours["module_s"] / bare["module_s"], 2) if bare["module_s"] else None,
        "over_floor_s": round(ours["module_s"] - bare["module_s"], 3),
        "floor_udev_s": floor_udev,
        "over_floor_udev_s": None if floor_udev is None else round(ours["module_s"] - floor_udev, 3),
        "samples": ours["samples"],
        "phases": ours.get("phases_s"),
        "unrequested": ours["unrequested"],
        "load_after": load(),
    }


def _f(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(rows: List[dict], started: str, before: str, argv: List[str], others: int = 0) -> str:
    lines = [
        "# One-LUN attach on each Debian suite of the lab",
        "",
        f"Recorded {started} UTC by `python3 tests/lab/bench_matrix.py {' '.join(argv)}`: one TCG guest at a "
        f"time, {f'DRAFT: {others} other VM(s) running at the start' if others else 'no other VM'} "
        f"(host load average before: {before}). Per suite, `bench_attach.py --parts per-call "
        "--per-call 1 --arms batch bare` on a fresh guest with the LUNs mapped on two portals and both sessions "
        "up, each sample from no device: the floor (the same scan writes, until both block devices exist and "
        "multipathd's own map holds them; *with udev*: the same writes until udev has also processed both "
        "block devices and the map with its table loaded, which is what the module waits for and what makes "
        "/dev/mapper and /dev/disk/by-id usable) against our `iscsi_lun_attach` of one LUN (the module's own "
        "`timings.total`; the wall time adds Ansible's transport and the module's start-up). Medians of the "
        "samples.",
        "",
        "| suite | kernel | LUNs mapped | floor (s) | floor with udev (s) | ours, module (s) | ours / floor "
        "| ours - floor (s) | ours - floor with udev (s) | ours, wall (s) | map wait in ours (s) "
        "| unrequested devices | load after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {r['suite']} | failed: {r['error'].strip().splitlines()[-1][:200]} |||||||||||")
            continue
        lines.append(
            f"| {r['suite']} | {r['kernel']} | {r['luns']} | {r['floor_s']:.2f} | {_f(r.get('floor_udev_s'))} "
            f"| {r['module_s']:.2f} | {r['ratio']:.2f} | {r['over_floor_s']:.2f} | {_f(r.get('over_floor_udev_s'))} "
            f"| {r['wall_s']:.2f} | "
            f"{(r['phases'] or {}).get('map', 0):.2f} | {r['unrequested']} | {r['load_after']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--suites", nargs="+", default=list(lab_module.SUITES), choices=lab_module.SUITES)
    parser.add_argument("--luns", type=int, default=4, help="LUNs mapped")
    parser.add_argument("--samples", type=int, default=3, help="runs of each arm per suite; medians shown")
    parser.add_argument("--out", type=Path, help="write the table as markdown (and .json beside it)")
    args = parser.parse_args(argv)
    running = running_vms()
    if running:
        print(f"bench_matrix: {running} other VM(s) running; the figures will be a draft")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    before = load()
    rows: List[Dict] = []
    for suite in args.suites:
        row = measure(suite, args.luns, args.samples)
        print(json.dumps(row), flush=True)
        rows.append(row)
    text = markdown(rows, started, before, sys.argv[1:] if argv is None else argv, others=running)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 1 if any(r.get("error") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
