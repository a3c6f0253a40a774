# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark, run by hand against a running lab (not part of the test suite): the fact collection of
multipath_faulty_facts versus a bare `multipathd show paths raw format` and `multipath -ll`.

    python3 tests/lab/lab.py --name NAME up --luns 4
    python3 tests/lab/bench_facts.py --name NAME [--luns 4 64] [--repeat 5]
    python3 tests/lab/bench_facts.py --name NAME --source scsi_debug --luns 256     (512 paths)
    python3 tests/lab/lab.py --name NAME down

With --source scsi_debug the paths come from two scsi_debug hosts presenting the same LUNs (same WWIDs, so
multipathd pairs them): 512 paths without 256 iSCSI LUNs behind them, removed again afterwards.
For each LUN count the array is reset (`array reset --luns N`), both portals are logged in with
node.session.scan=manual and every LUN is scanned on both sessions (2 x N paths, N maps); the script waits
until multipathd reports every path ready and udev has settled. Then, inside the guest, each of these is
timed --repeat times with a monotonic clock (the median and the maximum are printed):

* facts: this collection's module_utils (copied into the guest) as the module runs them -
  `_faults.collect()` (sysfs snapshot, multipathd show paths/maps raw format, dmsetup status/table) and
  `_faults.classify()`, each tool call under the runner's deadline watch; Ansible's own module start-up
  (about 1.5 s under TCG) is not included;
* show_paths: `multipathd show paths raw format <PATH_FORMAT>` alone;
* multipath_ll: `multipath -ll`.

With --adhoc N, the same three are also timed end to end as a fleet user runs them, from the controller,
N times each while the paths are still there: `ansible lab -m lunsafe.san.multipath_faulty_facts` against
`ansible lab -m ansible.builtin.command -a "multipathd show paths raw format ..."` and `-a "multipath -ll"`
(SSH with pipelining, module start-up in the guest included).

With --out FILE.md the results are also kept in FILE.json (merged with the ones recorded there before, one
row per source and LUN count, so that iSCSI and scsi_debug runs add up) and written as a table to FILE.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import lab as lab_harness  # noqa: E402  (tests/lab/lab.py, standard library only)

GUEST_ROOT = "/tmp/lunsafe-bench-facts"
MODULE_UTILS = ("_errors.py", "_hctl.py", "_sysfs.py", "_multipath.py", "_runner.py", "_faults.py")

INSTALL = r"""
import json, os, sys
files = json.load(sys.stdin)
for rel, text in files.items():
    path = os.path.join(sys.argv[1], rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
"""

GUEST = r"""
import json, os, shutil, statistics, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.lunsafe.san.plugins.module_utils import _faults, _multipath
from ansible_collections.lunsafe.san.plugins.module_utils._runner import Deadline, PolicyRunner

luns, repeat = int(sys.argv[2]), int(sys.argv[3])
IQN = "iqn.2003-01.org.lunsafe.lab:array"
PORTALS = ("127.0.0.1", "127.0.0.2")
ENV = dict(os.environ, LANG="C", LC_ALL="C")


def run(argv, timeout=900):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, env=ENV)


class GuestRunner(PolicyRunner):
    # the production policy (ok_rcs, timeouts, redaction) and deadline watch (Deadline, as Runner arms it
    # through run_command's before_communicate_callback) over a plain Popen: Ansible is not in the guest
    def __init__(self):
        super().__init__(default_timeout=30, redact=())

    def has_tool(self, name):
        return shutil.which(name) is not None

    def run(self, argv, *, ok_rcs=(0,), timeout=None, data=None, sensitive_output=False):
        deadline = timeout or self.default_timeout
        watch = Deadline(seconds=deadline, kill_after=5)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        watch.arm(proc)
        try:
            stdout, stderr = proc.communicate()
        finally:
            watch.disarm()
        rc = proc.returncode if watch.fired is None else 124
        return self._finish(display_argv=argv, rc=rc, stdout=stdout, stderr=stderr,
                            ok_rcs=ok_rcs, timeout=deadline, sensitive_output=sensitive_output)


source = sys.argv[4]
if source == "scsi_debug":
    # two scsi_debug hosts with the same LUNs: vpd_use_hostno=0 gives a LUN the same WWID on both hosts,
    # so multipathd pairs them into one map, as two iSCSI sessions would (no iSCSI session behind them)
    load = run(["modprobe", "scsi_debug", "add_host=2", "num_tgts=1", "max_luns=%d" % luns, "dev_size_mb=1",
                "vpd_use_hostno=0", "delay=0"])
    if load.returncode != 0:
        sys.exit("modprobe scsi_debug failed: " + load.stderr)
else:
    for portal in PORTALS:
        run(["iscsiadm", "-m", "node", "-T", IQN, "-p", portal, "-o", "new"])
        run(["iscsiadm", "-m", "node", "-T", IQN, "-p", portal, "-o", "update", "-n", "node.session.scan", "-v",
             "manual"])
        login = run(["iscsiadm", "-m", "node", "-T", IQN, "-p", portal, "--login"])
        if login.returncode not in (0, 15):
            sys.exit("login failed: " + login.stderr)
    for host in os.listdir("/sys/class/iscsi_host"):
        for lun in range(luns):
            with open("/sys/class/scsi_host/%s/scan" % host, "w") as handle:
                handle.write("0 0 %d" % lun)

deadline = time.monotonic() + 1800
ready = 0
while time.monotonic() < deadline:
    out = run(_multipath.show_paths(), timeout=60).stdout
    ready = sum(1 for line in out.splitlines() if line.split(_multipath.FIELD_SEP)[5:6] == ["ready"]
                and line.split(_multipath.FIELD_SEP)[7] != "[orphan]")
    if ready == 2 * luns:
        break
    time.sleep(2)
if ready != 2 * luns:
    sys.exit("only %d of %d paths ready" % (ready, 2 * luns))
# the udev events of the new devices and maps (by-id links, kpartx, blkid) must be over before timing
run(["udevadm", "settle", "--timeout=900"], timeout=960)


def timed(func):
    times = []
    for _ in range(repeat):
        start = time.monotonic()
        value = func()
        times.append(time.monotonic() - start)
    return {"median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3)}, value


class TimingRunner(GuestRunner):
    # the same runner, adding up the wall time of each tool call (argv[0] + argv[1])
    def __init__(self):
        super().__init__()
        self.spent = {}

    def run(self, argv, **kwargs):
        start = time.monotonic()
        try:
            return super().run(argv, **kwargs)
        finally:
            key = " ".join(argv[:2])
            self.spent[key] = self.spent.get(key, 0.0) + time.monotonic() - start


runner = GuestRunner()
facts_t, facts = timed(lambda: _faults.classify(_faults.collect(runner=runner, timeout=60)))

# where the time of one collection goes (one more run, each phase timed on its own)
timing = TimingRunner()
start = time.monotonic()
obs = _faults.collect(runner=timing, timeout=60)
collect_s = time.monotonic() - start
start = time.monotonic()
_faults.classify(obs)
phases = {key: round(value, 3) for key, value in timing.spent.items()}
phases["classify"] = round(time.monotonic() - start, 3)
phases["sysfs_and_rest"] = round(collect_s - sum(timing.spent.values()), 3)
paths_t, _ = timed(lambda: run(_multipath.show_paths()))
ll_t, _ = timed(lambda: run(["multipath", "-ll"]))
print(json.dumps({
    "luns": luns,
    "paths": facts["summary"]["paths"],
    "maps": facts["summary"]["maps"],
    "faulty_paths": facts["summary"]["faulty_paths"],
    "facts": facts_t,
    "show_paths": paths_t,
    "multipath_ll": ll_t,
    "phases_s": phases,
}))
"""


def install(lab: lab_harness.Lab) -> None:
    files = {}
    for name in MODULE_UTILS:
        rel = f"ansible_collections/lunsafe/san/plugins/module_utils/{name}"
        files[rel] = (REPO / "plugins" / "module_utils" / name).read_text(encoding="utf-8")
    for pkg in (
        "ansible_collections",
        "ansible_collections/lunsafe",
        "ansible_collections/lunsafe/san",
        "ansible_collections/lunsafe/san/plugins",
        "ansible_collections/lunsafe/san/plugins/module_utils",
    ):
        files.setdefault(f"{pkg}/__init__.py", "")
    lab.ssh(["python3", "-c", INSTALL, GUEST_ROOT], stdin=json.dumps(files), timeout=120)


SCSI_DEBUG_CLEANUP = r"""
for m in $(multipathd show maps raw format '%n' 2>/dev/null); do multipath -f "$m" >/dev/null 2>&1; done
multipath -F >/dev/null 2>&1
udevadm settle --timeout=600
modprobe -r scsi_debug
"""


def show_paths_argv() -> list[str]:
    """The collection's own `multipathd show paths raw format ...` argv (module_utils imported from here)."""
    with lab_harness.collections_root() as root:
        sys.path.insert(0, str(root))
        try:
            from ansible_collections.lunsafe.san.plugins.module_utils import _multipath  # noqa: PLC0415

            return list(_multipath.show_paths())
        finally:
            sys.path.remove(str(root))


def adhoc_times(lab: lab_harness.Lab, *, repeat: int) -> dict:
    """Median and max wall seconds of three ad-hoc `ansible` runs against the lab, as a fleet user runs them."""
    calls = {
        "facts": ["-m", "lunsafe.san.multipath_faulty_facts"],
        "show_paths": ["-m", "ansible.builtin.command", "-a", shlex.join(show_paths_argv())],
        "multipath_ll": ["-m", "ansible.builtin.command", "-a", "multipath -ll"],
    }
    ansible = REPO / ".venv" / "bin" / "ansible"
    out = {}
    with lab_harness.collections_root() as root:
        env = lab_harness.playbook_env(lab, root)
        for key, args in calls.items():
            times = []
            for _run in range(repeat):
                start = time.monotonic()
                proc = subprocess.run(
                    [str(ansible), "lab", "-o", *args],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=900,
                    check=False,
                )
                times.append(time.monotonic() - start)
                if proc.returncode != 0:
                    raise SystemExit(f"ansible {' '.join(args)} failed: {proc.stdout[-1500:]} {proc.stderr[-1500:]}")
            out[key] = {"median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3)}
    return out


def measure(lab: lab_harness.Lab, *, luns: int, repeat: int, source: str, adhoc: int = 0) -> dict:
    reset = lab.array(["reset", "--luns", str(luns if source == "iscsi" else 4)], timeout=1800)
    if reset.get("leftover_devices"):
        raise SystemExit(f"reset left devices behind: {reset['leftover_devices']}")
    try:
        proc = lab.ssh(["python3", "-c", GUEST, GUEST_ROOT, str(luns), str(repeat), source], timeout=3600, check=False)
        adhoc_s = adhoc_times(lab, repeat=adhoc) if adhoc and proc.returncode == 0 else None
    finally:
        if source == "scsi_debug":
            lab.ssh(["bash", "-c", SCSI_DEBUG_CLEANUP], timeout=1800, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"guest benchmark failed: {proc.stderr[-2000:]}")
    result: dict = json.loads(proc.stdout.strip().splitlines()[-1])
    result["source"] = source
    result["adhoc"] = adhoc_s
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--name", default="default", help="lab name (as given to lab.py --name)")
    parser.add_argument("--luns", type=int, nargs="+", default=[4, 64], help="LUN counts (2 paths each)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each method")
    parser.add_argument(
        "--source",
        choices=("iscsi", "scsi_debug"),
        default="iscsi",
        help="paths from the lab array over two iSCSI sessions, or from two scsi_debug hosts (cheaper at 512 paths)",
    )
    parser.add_argument("--out", help="record the results in OUT's .json and write OUT as a markdown table")
    parser.add_argument("--adhoc", type=int, default=0, help="also time N ad-hoc ansible runs of each, end to end")
    args = parser.parse_args()
    lab = lab_harness.Lab(args.name)
    install(lab)
    results = []
    try:
        for luns in args.luns:
            result = measure(lab, luns=luns, repeat=args.repeat, source=args.source, adhoc=args.adhoc)
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        try:  # best effort: leave the lab clean, but never lose the figures over it
            lab.array(["reset", "--luns", "4"], timeout=1800)
        except lab_harness.LabError as exc:
            print(f"warning: final array reset failed: {exc}", file=sys.stderr)
    print()
    header = f"{'paths':>6} {'maps':>5} {'facts s':>16} {'show paths s':>16} {'multipath -ll s':>16} {'facts/show':>10}"
    print(header + "   (median / max; the ratio of the medians)")
    for r in results:
        cells = [f"{r[k]['median_s']:.3f} / {r[k]['max_s']:.3f}" for k in ("facts", "show_paths", "multipath_ll")]
        ratio = r["facts"]["median_s"] / max(r["show_paths"]["median_s"], 0.001)
        print(f"{r['paths']:>6} {r['maps']:>5} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16} {ratio:>10.1f}")
    print()
    for r in results:
        print(f"{r['paths']:>6} paths, one collection by phase (s): {json.dumps(r['phases_s'])}")
    if any(r["adhoc"] for r in results):
        print()
        print(header.replace("facts s", "module s") + "   (ad-hoc `ansible` wall time from the controller)")
        for r in results:
            if not r["adhoc"]:
                continue
            a = r["adhoc"]
            cells = [f"{a[k]['median_s']:.3f} / {a[k]['max_s']:.3f}" for k in ("facts", "show_paths", "multipath_ll")]
            ratio = a["facts"]["median_s"] / max(a["show_paths"]["median_s"], 0.001)
            print(f"{r['paths']:>6} {r['maps']:>5} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16} {ratio:>10.1f}")
    if args.out:
        info = lab.info()
        command = "python3 tests/lab/bench_facts.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        stamp = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        stamp.update(kernel=info.get("kernel"), accel=info.get("accel"))
        write_report(Path(args.out), [{**r, **stamp} for r in results])
    return 0


def _cell(timing: dict | None) -> str:
    return "n/a" if not timing else f"{timing['median_s']:.3f} / {timing['max_s']:.3f}"


def write_report(out: Path, results: list[dict]) -> None:
    """Merge ``results`` into OUT's .json (one row per source and LUN count) and write OUT as markdown."""
    record = out.with_suffix(".json")
    try:
        rows = json.loads(record.read_text())
    except (FileNotFoundError, ValueError):
        rows = []
    fresh = {(r["source"], r["luns"]) for r in results}
    rows = sorted(
        [r for r in rows if (r["source"], r["luns"]) not in fresh] + results, key=lambda r: (r["paths"], r["source"])
    )
    record.write_text(json.dumps(rows, indent=1) + "\n")
    lines = [
        "# Fault facts: collection time against the bare multipathd call and `multipath -ll`",
        "",
        "Written by `tests/lab/bench_facts.py --out` (commands below); seconds as median / max of the runs, in the "
        "TCG-emulated lab VM (2 vCPUs). *In the guest*: this collection's module_utils run by a Python process "
        "in the guest (sysfs snapshot, `multipathd show paths` and `show maps` in raw format, `dmsetup status` "
        "and `table`, classification), against the bare `multipathd show paths raw format ...` and "
        "`multipath -ll` run there. *Ad hoc*: `ansible lab -m lunsafe.san.multipath_faulty_facts` against "
        "`ansible lab -m ansible.builtin.command` running each bare command, timed from the controller, as a "
        "fleet user runs them (SSH with pipelining and module start-up included).",
        "",
        "| paths | maps | source | in the guest: facts s | bare show paths s | multipath -ll s | facts / bare "
        "| ad hoc: module s | bare show paths s | multipath -ll s | module / bare |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a = r.get("adhoc") or {}
        ratio = r["facts"]["median_s"] / max(r["show_paths"]["median_s"], 0.001)
        adhoc_ratio = f"{a['facts']['median_s'] / max(a['show_paths']['median_s'], 0.001):.1f}" if a else "n/a"
        lines.append(
            f"| {r['paths']} | {r['maps']} | {r['source']} | {_cell(r['facts'])} | {_cell(r['show_paths'])} "
            f"| {_cell(r['multipath_ll'])} | {ratio:.1f} | {_cell(a.get('facts'))} | {_cell(a.get('show_paths'))} "
            f"| {_cell(a.get('multipath_ll'))} | {adhoc_ratio} |"
        )
    lines += ["", "Where the time of one collection in the guest goes (seconds, one run):", ""]
    for r in rows:
        lines.append(
            f"- {r['paths']} paths ({r['source']}): " + ", ".join(f"{k} {v}" for k, v in r["phases_s"].items())
        )
    lines += ["", "Runs:", ""]
    for cmd in dict.fromkeys(r.get("command") for r in rows):
        mine = [r for r in rows if r.get("command") == cmd]
        lines.append(
            f"- `{cmd}` on {mine[0].get('date')} (kernel {mine[0].get('kernel')}, accel {mine[0].get('accel')}): "
            + ", ".join(f"{r['paths']} paths" for r in mine)
        )
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
