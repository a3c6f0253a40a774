# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: iscsi_lun_attach's waits with pyudev (udev events) and without it (sysfs poll), beside the bare
targeted scan, one LUN at a time. Run by hand in the lab; prints a table; not part of the test suite.

    python3 tests/lab/bench_udev.py [--luns 4 64 256] [--samples 3] [--name bench] [--reuse]
                                    [--out docs/benchmarks/udev.md]

For each count N of LUNs mapped (LUNs of 1 MiB, two portals, both sessions logged in with manual scan, no
device): S samples of three arms on distinct LUNs, in an order that rotates from sample to sample:
  - bare:    "0 0 L" written to both sessions' scan files, then sysfs polled (10 ms) until both block devices
             exist and both are held by a multipath map (multipathd alone): the floor of any attach;
  - events:  lunsafe.san.iscsi_lun_attach with pyudev (the lab image has python3-pyudev): wait_method
             udev-events;
  - poll:    the same with pyudev hidden from the module's Python (a package named pyudev that fails to import,
             first on PYTHONPATH, through an interpreter wrapper): wait_method sysfs-poll.
For ours: the module's own timings (total, scan = writes until udev processed both paths, map = until the
map is complete and processed) and the ad-hoc `ansible` wall time. After each arm everything is detached and
/etc/multipath/wwids emptied (every LUN new to multipathd). Goal of issue 11: a one-LUN attach with pyudev
within 2x of the bare scan to both block devices plus the map.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_attach as ba
import lab as lab_module

ARMS = ("bare", "events", "poll")
HIDE = (
    "mkdir -p /usr/local/lib/lunsafe-nopyudev/pyudev && "
    "echo 'raise ImportError(\"hidden by bench_udev\")' > /usr/local/lib/lunsafe-nopyudev/pyudev/__init__.py && "
    "printf '#!/bin/sh\\nPYTHONPATH=/usr/local/lib/lunsafe-nopyudev exec /usr/bin/python3 \"$@\"\\n' "
    "> /usr/local/lib/lunsafe-nopyudev/python3 && chmod 755 /usr/local/lib/lunsafe-nopyudev/python3"
)
POLL_EXTRA = ("-e", "ansible_python_interpreter=/usr/local/lib/lunsafe-nopyudev/python3")


def arm_sample(lab: lab_module.Lab, root: Path, arm: str, lun: int) -> Dict[str, Any]:
    before = ba.count_sd(lab)
    if arm == "bare":
        floor = ba.guest_python(lab, ba.GUEST_BARE_BATCH, str(lun), "120", timeout=600)
        if floor["paths_missing"] or floor["maps_missing"]:
            raise SystemExit(f"bare scan of LUN {lun} incomplete: {floor}")
        sample: Dict[str, Any] = {"total": floor["seconds"], "scan": floor["scan"], "wall": None}
        devices = 2
    else:
        result, wall = ba.adhoc_attach(
            lab,
            root,
            f"target={ba.IQN} portals={','.join(ba.PORTALS)} lun={lun}",
            extra=POLL_EXTRA if arm == "poll" else (),
        )
        want = "udev-events" if arm == "events" else "sysfs-poll"
        if result.get("wait_method") != want:
            raise SystemExit(f"{arm}: wait_method {result.get('wait_method')} ({result.get('wait_method_reason')})")
        timings = result["timings"]
        sample = {"total": timings["total"], "scan": timings.get("scan"), "map": timings.get("map"), "wall": wall}
        sample["udev_links"] = len((result.get("dm") or {}).get("udev", {}).get("links") or [])
        devices = len(result["devices"])
    sample["unrequested"] = ba.count_sd(lab) - before - devices
    sample["lun"] = lun
    ba.guest_python(lab, ba.GUEST_DETACH, "detach", timeout=1200)
    return sample


def _median(values: List[Optional[float]]) -> Optional[float]:
    found = [v for v in values if isinstance(v, (int, float))]
    return round(statistics.median(found), 3) if found else None


def measure(lab: lab_module.Lab, root: Path, luns: int, samples: int) -> Dict[str, Any]:
    lab.array(["reset", "--luns", str(luns), "--size-mb", "1"], timeout=1800)
    lab.ssh(["sh", "-c", ba.GUEST_LOGIN])
    ba.wait_for_stray_runs(lab)
    got: Dict[str, List[Dict[str, Any]]] = {arm: [] for arm in ARMS}
    step = 0
    for i in range(samples):
        order = ARMS[i % 3 :] + ARMS[: i % 3]
        for arm in order:
            lun = (luns - 1 - step) % luns  # from the top; every arm detaches all and empties wwids, so LUNs reuse
            got[arm].append(arm_sample(lab, root, arm, lun))
            ba.log(f"{luns} LUNs, sample {i + 1}, {arm}: {got[arm][-1]}")
            step += 1
    row: Dict[str, Any] = {"luns": luns, "samples": samples}
    for arm in ARMS:
        row[arm] = {key: _median([s.get(key) for s in got[arm]]) for key in ("total", "scan", "map", "wall")}
        row[arm]["unrequested"] = max(s["unrequested"] for s in got[arm])
        row[arm]["raw"] = got[arm]
    lab.array(["reset", "--luns", "4", "--size-mb", "1"], timeout=3600)
    return row


def _f(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def table(rows: List[Dict[str, Any]]) -> List[str]:
    lines = [
        "| LUNs mapped | bare scan + map s | events: total s (scan / map) | poll: total s (scan / map) "
        "| events / bare | poll / bare | events / poll | wall s events / poll | unrequested bare / events / poll |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        bare, ev, po = row["bare"], row["events"], row["poll"]
        lines.append(
            f"| {row['luns']} | {_f(bare['total'])} | {_f(ev['total'])} ({_f(ev['scan'])} / {_f(ev['map'])}) "
            f"| {_f(po['total'])} ({_f(po['scan'])} / {_f(po['map'])}) | {ev['total'] / bare['total']:.2f} "
            f"| {po['total'] / bare['total']:.2f} | {ev['total'] / po['total']:.2f} "
            f"| {_f(ev['wall'])} / {_f(po['wall'])} "
            f"| {bare['unrequested']} / {ev['unrequested']} / {po['unrequested']} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--luns", type=int, nargs="+", default=[4, 64, 256])
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--name", default="bench")
    parser.add_argument("--reuse", action="store_true", help="use a running lab of that name (left running)")
    parser.add_argument("--out", help="write the table and notes to this markdown file (raw figures beside it)")
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args()
    command = "python3 tests/lab/bench_udev.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lab = lab_module.Lab(args.name)
    booted = False
    if lab.pid() and not args.reuse:
        raise SystemExit(f"bench_udev: lab {args.name!r} is already running: pass --reuse, or stop it first")
    if not lab.pid():
        lab.up(luns=4, accel=os.environ.get("LUNSAFE_LAB_ACCEL", "auto"), boot_timeout=600, watch_pid=os.getpid())
        booted = True
    info = lab.info()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    code = ba.code_version(None)
    rows = []
    try:
        lab.ssh(["sh", "-c", HIDE])
        with ba.code_under_test(None) as root:
            for n in args.luns:
                rows.append(measure(lab, root, n, args.samples))
                print(json.dumps(rows[-1]), flush=True)
    finally:
        if booted:
            lab.down(purge=True)
    lines = table(rows)
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
        text = [
            "# udev event waits (pyudev) against polling, beside the bare targeted scan",
            "",
            f"Written by `tests/lab/bench_udev.py --out` (raw samples in [{out.with_suffix('.json').name}]"
            f"({out.with_suffix('.json').name})). Lab VM: a real kernel under qemu ({info.get('accel')}), LIO on "
            "portals 127.0.0.1 and 127.0.0.2, LUNs of 1 MiB, multipathd with `find_multipaths yes`; both sessions "
            "logged in, no device, every LUN new to multipathd (wwids emptied after each arm). Medians over the "
            "samples; the arms rotate which goes first. *events*: `iscsi_lun_attach` with pyudev (`wait_method: "
            "udev-events`); *poll*: the same with pyudev hidden from the module's Python (`sysfs-poll`); *bare*: "
            "the scan writes and a 10 ms sysfs poll until both block devices exist and a multipath map holds both "
            "(multipathd alone). Module times are the module's own `timings` (no Ansible transport).",
            "",
            *lines,
            "",
            "Goal of issue 11: a one-LUN attach with pyudev within 2x of the bare scan to both block devices plus "
            "the map (*events / bare* at most 2).",
            "",
            "Notes:",
            "",
            *[f"- {note}" for note in args.note],
            "",
            "Run:",
            "",
            f"- `{command}` on {started} (lab kernel {info.get('kernel')}, accel {info.get('accel')}, code {code}): "
            f"{args.samples} sample(s) per arm and LUN count",
        ]
        out.write_text("\n".join(text) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
