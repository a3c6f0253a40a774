# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: what each role costs per host on a fleet (issue 25), beside the bare module call(s) it wraps,
on one host and on two hosts with forks 2, side by side in one run. Run by hand on the fleet lab; not part of
the test suite.

    python3 tests/lab/lab.py --name fleet-a up --segment listen
    python3 tests/lab/lab.py --name fleet-b up --segment fleet-a
    .venv/bin/python tests/lab/bench_fleet.py --fleet fleet-b [--samples 2] [--out docs/benchmarks/fleet.md]

Each sample runs tests/lab/bench_fleet/bench.yml twice, on host_a alone and on both hosts (--forks 2), in
alternating order: bare attach (iscsi_lun_attach), bare detach (iscsi_lun_attach state=absent + the array
hook), the lun_attach role, the lun_detach role (same hook), bare flush of a faulty map (multipath_flush), the
faulty_remediation role on the same kind of map. A callback (bench_fleet/callback_plugins) logs every task
result per host: module calls are the results of tasks that run on the host (not set_fact, assert, debug,
include, and not those delegated to the array host, counted apart), a loop counting one call per item. A
host's wall time is its first task's start to its last task's end in the play; the play's, start to end.
Then the fleet facts: the ad-hoc `multipath_faulty_facts` over both hosts against `multipathd show paths` with
the command module, alternating, `--samples` times each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import lab as lab_module  # noqa: E402
from test_fleet import Fleet  # noqa: E402

BENCH = HERE / "bench_fleet"
#: actions that run on the controller only: no module is sent to the host
CONTROLLER = {
    "set_fact",
    "assert",
    "debug",
    "fail",
    "include_tasks",
    "import_tasks",
    "include_role",
    "import_role",
    "meta",
    "pause",
    "validate_argument_spec",
    "include_vars",
}
PAIRS = (
    ("attach one LUN", "bare attach", "lun_attach role"),
    ("detach one LUN with the hook", "bare detach", "lun_detach role"),
    ("clean one faulty map", "bare flush", "faulty_remediation role"),
)
VARS = {
    "bench_portals": {
        "host_a": ["127.0.0.1:3260", "127.0.0.2:3260"],
        "host_b": ["169.254.77.1:3260", "169.254.77.11:3260"],
    },
    "bench_lun": {"host_a": "1", "host_b": "7"},
    "bench_array_lun": {"host_a": "1", "host_b": "2"},
}


def log(msg: str) -> None:
    print(f"[bench_fleet {time.strftime('%H:%M:%S', time.gmtime())}] {msg}", file=sys.stderr, flush=True)


def short(action: str) -> str:
    return action.rsplit(".", 1)[-1]


def parse(path: Path) -> Dict[str, Any]:
    """{play: {"wall": s, "hosts": {host: {"calls": n, "delegated": n, "wall": s, "tasks": [...]}}}}."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    plays: Dict[str, Any] = {}
    order = [r for r in records if r["event"] in ("play_start", "end")]
    for i, rec in enumerate(order):
        if rec["event"] != "play_start" or not rec["play"].startswith("Measure: "):
            continue
        end = order[i + 1]["time"] if i + 1 < len(order) else rec["time"]
        plays[rec["play"][len("Measure: ") :]] = {"wall": round(end - rec["time"], 2), "hosts": {}}
    per: Dict[tuple, List[dict]] = defaultdict(list)
    for rec in records:
        if rec["event"] == "result" and rec["play"].startswith("Measure: "):
            per[(rec["play"][len("Measure: ") :], rec["host"])].append(rec)
    for (play, host), results in per.items():
        calls = delegated = 0
        tasks = []
        for rec in results:
            if rec["status"] == "skipped" or short(rec["action"]) in CONTROLLER:
                continue
            count = rec["items"] or 1
            if rec["delegated"]:
                delegated += count
            else:
                calls += count
            tasks.append(f"{short(rec['action'])}{'@array' if rec['delegated'] else ''}")
        plays[play]["hosts"][host] = {
            "calls": calls,
            "delegated": delegated,
            "wall": round(max(r["end"] for r in results) - min(r["start"] for r in results), 2),
            "failed": sum(1 for r in results if r["status"] in ("failed", "unreachable")),
            "tasks": tasks,
        }
    return plays


def run_sample(fleet: Fleet, hosts: str, varsfile: Path) -> Dict[str, Any]:
    with tempfile.NamedTemporaryFile(prefix="bench-fleet-", suffix=".jsonl", delete=False) as handle:
        logfile = Path(handle.name)
    env = fleet.env()
    env.update(
        BENCH_FLEET_LOG=str(logfile),
        ANSIBLE_CALLBACK_PLUGINS=str(BENCH / "callback_plugins"),
        ANSIBLE_CALLBACKS_ENABLED="bench_fleet_log",
    )
    argv = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        str(BENCH / "bench.yml"),
        "--forks",
        "2",
        "-e",
        f"@{varsfile}",
        "-e",
        f"bench_hosts={hosts}",
    ]
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        raise SystemExit(
            f"bench.yml on {hosts} failed rc={proc.returncode}:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
        )
    plays = parse(logfile)
    logfile.unlink()
    log(f"{hosts}: {time.monotonic() - start:.0f} s")
    return plays


def ad_hoc(fleet: Fleet, module: str, args: str | None) -> float:
    argv = [str(Path(sys.executable).parent / "ansible"), "fleet", "-o", "--forks", "2", "-m", module]
    if args:
        argv += ["-a", args]
    start = time.monotonic()
    proc = subprocess.run(argv, env=fleet.env(), capture_output=True, text=True, timeout=600, check=False)
    took = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"ansible fleet -m {module} failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return round(took, 2)


def med(values: List[float]) -> float:
    return round(statistics.median(values), 2) if values else float("nan")


def render(data: Dict[str, Any]) -> str:
    s = data["samples"]
    lines = [
        "# Fleet: what each role costs per host (issue 25)",
        "",
        f"Recorded {data['when']} by `tests/lab/bench_fleet.py --samples {data['n']}` on the fleet lab",
        "(two TCG guests, 1 vCPU each, joined by a private segment; host_a is also the array). " + data["load"],
        "Medians of the samples. Module calls are per host (delegated calls, to the array host, apart).",
        "",
        "## Roles beside the bare module calls they wrap",
        "",
        "| procedure | bare: calls per host (+ delegated) | role: calls per host (+ delegated) "
        "| bare s per host, 1 host | role s per host, 1 host | role / bare | role play s, 1 host "
        "| role play s, 2 hosts | 2 hosts / 1 host |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, bare, role in PAIRS:

        def host_vals(mode: str, play: str, key: str) -> List[float]:
            return [smp[mode][play]["hosts"]["host_a"][key] for smp in s]

        def play_walls(mode: str, play: str) -> List[float]:
            return [smp[mode][play]["wall"] for smp in s]

        b_calls = s[0]["one"][bare]["hosts"]["host_a"]
        r_calls = s[0]["one"][role]["hosts"]["host_a"]
        b_s, r_s = med(host_vals("one", bare, "wall")), med(host_vals("one", role, "wall"))
        one, two = med(play_walls("one", role)), med(play_walls("two", role))
        lines.append(
            f"| {label} | {b_calls['calls']} (+{b_calls['delegated']}) | {r_calls['calls']} (+{r_calls['delegated']}) "
            f"| {b_s} | {r_s} | {r_s / b_s:.2f} | {one} | {two} | {two / one:.2f} |"
        )
    lines += [
        "",
        "Module calls of one run of each role on host_a (in order; `@array`: delegated to the array host):",
        "",
    ]
    for _label, _bare, role in PAIRS:
        lines.append(f"- {role}: {', '.join(s[0]['one'][role]['hosts']['host_a']['tasks'])}")
    facts = data["facts"]
    lines += [
        "",
        "## Fleet facts, ad hoc over both hosts (forks 2)",
        "",
        "| call | median s | samples |",
        "|---|---|---|",
        f"| `ansible fleet -m lunsafe.san.multipath_faulty_facts` | {med(facts['facts'])} | {facts['facts']} |",
        f"| `ansible fleet -m command -a 'multipathd show paths'` | {med(facts['command'])} | {facts['command']} |",
        "",
    ]
    lines += [f"{note}" for note in data.get("notes", [])]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--fleet", default=os.environ.get("LUNSAFE_LAB_FLEET", "fleet-b"), help="the lab that joined")
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--out")
    parser.add_argument("--note", action="append", default=[])
    args = parser.parse_args()
    with lab_module.collections_root() as root:
        fleet = Fleet(lab_module.Lab(args.fleet), root)
        log("reset both hosts, host_b sees array LUN 2 as 7")
        fleet.reset()
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(VARS, handle)
            varsfile = Path(handle.name)
        samples = []
        try:
            for i in range(args.samples):
                modes = [("one", "host_a"), ("two", "fleet")]
                sample = {}
                for mode, hosts in modes if i % 2 == 0 else modes[::-1]:
                    sample[mode] = run_sample(fleet, hosts, varsfile)
                samples.append(sample)
            facts: Dict[str, List[float]] = {"facts": [], "command": []}
            for i in range(args.samples):
                pair = [
                    ("facts", "lunsafe.san.multipath_faulty_facts", None),
                    ("command", "ansible.builtin.command", "multipathd show paths"),
                ]
                for key, module, margs in pair if i % 2 == 0 else pair[::-1]:
                    facts[key].append(ad_hoc(fleet, module, margs))
        finally:
            varsfile.unlink()
            fleet.serve(False)
    load = os.getloadavg()
    data = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "n": args.samples,
        "load": f"Host load at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min), "
        f"{os.cpu_count()} CPUs.",
        "samples": samples,
        "facts": facts,
        "notes": args.note,
    }
    text = render(data)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        Path(args.out).with_suffix(".json").write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
