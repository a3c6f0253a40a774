# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: concurrent attach/detach of different LUNs on one host, against the real kernel of the lab VM.

    python3 tests/lab/bench_race.py [--cycles 200] [--workers 4] [--name race] [--reuse]
                                    [--procedures ours,osbrick,open_iscsi,session_rescan]
                                    [--latency-luns 4 64 256] [--out docs/benchmarks]
    python3 tests/lab/bench_race.py --transport fc [--cycles 200] [--workers 4] [--name racefc] [--reuse]
                                    [--procedures fc_ours,fc_host_scan,fc_lip] [--out docs/benchmarks]

Part 1, the race. WORKERS concurrent workers (one ansible-playbook process each, looping over its cycles)
attach and detach their own LUN of the one lab target; the array maps the LUN before each attach and
unmaps it --unmap-delay seconds after the host-side detach (as Cinder's initialize_connection and
terminate_connection do). A scan by another worker inside that window brings the deleted LUN back, and
the unmap then leaves it faulty. Procedures, in the same harness:
  ours            lunsafe.san.iscsi_lun_attach state=present / state=absent (targeted scan of one LUN);
  osbrick         OpenStack os-brick's connect_volume / disconnect_volume (Debian's python3-os-brick in the
                  guest, in-process: tests/lab/guest/osbrick.py; its own lock serializes the workers' calls);
  open_iscsi      community.general.open_iscsi discover+login+rescan, wait for the paths; detach as a
                  typical playbook does: multipath -f MAP, then echo 1 > /sys/block/sdX/device/delete;
  session_rescan  iscsiadm login with automatic scan and iscsiadm -m session -R; the same naive detach.
After each procedure it counts faulty paths and dead maps (lunsafe.san.multipath_faulty_facts), unrequested
SCSI devices (sysfs: every iSCSI device left once all workers are done and all LUNs unmapped), devices
brought back during the run (found at the next map of their LUN), failed attaches, and per-cycle timings.
The lab is reset (lab.py array reset) before each procedure.

Over Fibre Channel (--transport fc: the lab's FCoE VN2VN ports and LIO tcm_fc, 2 initiator fc_hosts x 2
target ports = 4 paths a LUN), the same workers, cycles and counts, with the kernel's default scan mode
(scsi_mod.scan=sync, what lab.py up leaves) for every procedure:
  fc_ours         lunsafe.san.fc_lun_attach state=present / state=absent with both target WWPNs (targeted
                  scans `C T L` of the one LUN on each initiator host);
  fc_host_scan    echo '- - -' > /sys/class/scsi_host/hostH/scan on every FC initiator host, wait for the
                  paths and the map; the naive detach (multipath -f MAP, delete each path);
  fc_lip          echo 1 > /sys/class/fc_host/hostH/issue_lip on every FC initiator host (the rports log in
                  again and the FC transport scans each whole target); the same wait and naive detach.
The array maps and unmaps through tcm_fc's configfs ACLs (both initiator WWPNs on both target ports); FC
devices are counted on /sys/class/fc_host hosts only. Writes OUT/race-fc.md, .json and .png; no part 2.

Part 2 (iSCSI), attach latency against the number of LUNs mapped: lunsafe.san.iscsi_lun_attach vs a session
rescan (what open_iscsi rescan=true runs), median of --samples attaches of distinct LUNs.

Writes OUT/race.md and OUT/race.png (matplotlib from tests/bench-requirements.txt, installed into .venv
when missing) and keeps raw results and logs under ~/.cache/lunsafe-san/bench. Boots its own lab
(--luns = workers) and stops it at the end, unless --reuse finds one running. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_attach  # noqa: E402
import lab as lab_module  # noqa: E402

REPO = lab_module.REPO
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
VENV_BIN = VENV_PYTHON.parent
PLAYBOOKS = HERE / "bench_race"
BENCH_REQUIREMENTS = REPO / "tests" / "bench-requirements.txt"
# the `ansible` community package whose community.general goes with ansible-core 2.19 (our pin);
# only its community/general folder is used, never installed into .venv
ANSIBLE_PACKAGE_VERSION = "12.3.0"
ISCSI_PROCEDURES = ("ours", "osbrick", "open_iscsi", "session_rescan")
FC_PROCEDURES = ("fc_ours", "fc_host_scan", "fc_lip")
PROCEDURES = ISCSI_PROCEDURES + FC_PROCEDURES  # the report's row order
OURS = ("ours", "fc_ours")
# per transport: its procedures, and the report's file names under --out (and the saved results' name)
TRANSPORTS = {
    "iscsi": {"procedures": ISCSI_PROCEDURES, "report": "race"},
    "fc": {"procedures": FC_PROCEDURES, "report": "race-fc"},
}
TARGET = bench_attach.IQN
PORTALS = bench_attach.PORTALS

# runs in the guest: the iSCSI SCSI devices (never the guest's own disks), their state, and the dm maps
GUEST_DEVICES = r"""
import glob, json, os, subprocess
devices = []
for path in sorted(glob.glob("/sys/class/iscsi_session/session*/device/target*/*:*:*:*")):
    hctl = os.path.basename(path)
    if hctl.count(":") != 3:
        continue
    blocks = [os.path.basename(b) for b in glob.glob(path + "/block/*")]
    try:
        state = open(path + "/state").read().strip()
    except OSError:
        state = "?"
    devices.append({"hctl": hctl, "lun": int(hctl.split(":")[3]), "block": blocks[0] if blocks else None,
                    "state": state})
maps = subprocess.run(["dmsetup", "ls", "--target", "multipath"], capture_output=True, text=True).stdout
names = [line.split()[0] for line in maps.splitlines() if line.split() and line.split()[0] != "No"]
print(json.dumps({"devices": devices, "maps": names}))
"""

# runs in the guest: the array unmaps every LUN from this host (LIO configfs, as labctl.py unmap does)
GUEST_UNMAP_ALL = r"""
import glob, json, os
with open("/etc/iscsi/initiatorname.iscsi") as handle:
    initiator = [l.split("=", 1)[1].strip() for l in handle if l.startswith("InitiatorName=")][0]
acl = "/sys/kernel/config/target/iscsi/iqn.2003-01.org.lunsafe.lab:array/tpgt_1/acls/" + initiator
unmapped = []
for folder in glob.glob(acl + "/lun_*"):
    for entry in os.listdir(folder):
        if os.path.islink(os.path.join(folder, entry)):
            os.unlink(os.path.join(folder, entry))
    os.rmdir(folder)
    unmapped.append(int(folder.rsplit("_", 1)[1]))
print(json.dumps({"unmapped": sorted(unmapped)}))
"""

# runs in the guest: the SCSI devices on FC hosts (every /sys/class/fc_host host; never the iSCSI or virtio
# disks), their state, and the dm maps
GUEST_FC_DEVICES = r"""
import glob, json, os, subprocess
hosts = sorted(int(os.path.basename(p)[4:]) for p in glob.glob("/sys/class/fc_host/host*"))
devices = []
for host in hosts:
    for path in sorted(glob.glob("/sys/class/scsi_device/%d:*" % host)):
        hctl = os.path.basename(path)
        blocks = [os.path.basename(b) for b in glob.glob(path + "/device/block/*")]
        try:
            state = open(path + "/device/state").read().strip()
        except OSError:
            state = "?"
        devices.append({"hctl": hctl, "lun": int(hctl.split(":")[3]), "block": blocks[0] if blocks else None,
                        "state": state})
maps = subprocess.run(["dmsetup", "ls", "--target", "multipath"], capture_output=True, text=True).stdout
names = [line.split()[0] for line in maps.splitlines() if line.split() and line.split()[0] != "No"]
print(json.dumps({"devices": devices, "maps": names, "fc_hosts": hosts}))
"""

# runs in the guest: the array unmaps every LUN from every initiator ACL of every tcm_fc target port (the
# configfs steps labctl.py fc-unmap does through rtslib)
GUEST_FC_UNMAP_ALL = r"""
import glob, json, os
unmapped = set()
for folder in glob.glob("/sys/kernel/config/target/fc/*:*/tpgt_1/acls/*:*/lun_*"):
    for entry in os.listdir(folder):
        if os.path.islink(os.path.join(folder, entry)):
            os.unlink(os.path.join(folder, entry))
    os.rmdir(folder)
    unmapped.add(int(folder.rsplit("_", 1)[1]))
print(json.dumps({"unmapped": sorted(unmapped)}))
"""

# runs in the guest before each FC procedure's reset: the leftovers of the one before go (every map made to
# fail, not queue, then flushed; every SCSI device on an FC host deleted). labctl's reset starts with
# `vgchange -an`, which hung (D state, in exit_aio) over the 6 dead maps and 22 faulty paths an 8-cycle fc_lip
# run left; after fc_host_scan's 3 dead maps it passed.
GUEST_FC_CLEAR = r"""
import glob, json, os, subprocess
def run(argv, timeout=30):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        return "timeout"
out = subprocess.run(["dmsetup", "ls", "--target", "multipath"], capture_output=True, text=True, timeout=30).stdout
maps = [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0] != "No"]
flushed = {}
for name in maps:
    run(["dmsetup", "message", name, "0", "fail_if_no_path"], timeout=10)
    flushed[name] = run(["multipath", "-f", name])
    if run(["dmsetup", "info", name], timeout=10) == 0:
        flushed[name] = run(["dmsetup", "remove", "--force", name])
deleted = []
for host in glob.glob("/sys/class/fc_host/host*"):
    for path in glob.glob("/sys/class/scsi_device/%s:*/device/delete" % os.path.basename(host)[4:]):
        try:
            with open(path, "w") as handle:
                handle.write("1")
            deleted.append(path.split("/")[4])
        except OSError:
            pass
print(json.dumps({"flushed": flushed, "deleted": deleted}))
"""

GUEST_CLEAR_DEVICES = r"""
import glob, subprocess
subprocess.run(["multipath", "-F"], capture_output=True, timeout=600)
for path in glob.glob("/sys/class/iscsi_session/session*/device/target*/*:*:*:*/delete"):
    try:
        with open(path, "w") as handle:
            handle.write("1")
    except OSError:
        pass
"""


def log(msg: str) -> None:
    print(f"[bench_race {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "lunsafe-san" / "bench"
    return Path(os.environ.get("LUNSAFE_BENCH_CACHE", str(default)))


# --------------------------------------------------------------------------- tools


def reexec_in_venv() -> None:
    """Run under the project venv (ansible-core, and matplotlib for the plot)."""
    if not VENV_PYTHON.exists():
        raise SystemExit("bench_race: no .venv: run scripts/setup-venv first")
    if Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])  # noqa: S606


def ensure_matplotlib():
    try:
        return importlib.import_module("matplotlib")
    except ImportError:
        log(f"installing the plot dependency from {BENCH_REQUIREMENTS.relative_to(REPO)} into .venv")
        subprocess.run([str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "-r", str(BENCH_REQUIREMENTS)], check=True)
        importlib.invalidate_caches()
        return importlib.import_module("matplotlib")


def community_general() -> Path:
    """A collection root holding community.general from the `ansible` wheel (Galaxy is not reachable)."""
    root = cache_dir() / f"collections-ansible-{ANSIBLE_PACKAGE_VERSION}"
    if (root / "ansible_collections" / "community" / "general" / "MANIFEST.json").exists():
        return root
    downloads = cache_dir() / "downloads"
    wheel = downloads / f"ansible-{ANSIBLE_PACKAGE_VERSION}-py3-none-any.whl"
    if not wheel.exists():
        log(f"downloading ansible=={ANSIBLE_PACKAGE_VERSION} (for community.general only)")
        subprocess.run(
            [
                str(VENV_PYTHON),
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "-d",
                str(downloads),
                f"ansible=={ANSIBLE_PACKAGE_VERSION}",
            ],
            check=True,
        )
    prefix = "ansible_collections/community/general/"
    work = Path(tempfile.mkdtemp(prefix="collections-", dir=cache_dir()))
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.namelist() if m.startswith(prefix) and ".." not in m]
            archive.extractall(work, members=members)
        shutil.rmtree(root, ignore_errors=True)
        work.rename(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return root


def ansible_env(lab: lab_module.Lab, ours_root: Path, cg_root: Path, log_path: Path | None = None) -> dict:
    env = lab_module.playbook_env(lab, ours_root)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=f"{ours_root}:{cg_root}",
        ANSIBLE_CALLBACK_PLUGINS=str(PLAYBOOKS / "callback_plugins"),
        ANSIBLE_CALLBACKS_ENABLED="bench_race_log",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_COLLECTIONS_ON_ANSIBLE_VERSION_MISMATCH="ignore",
        BENCH_RACE_LOG=str(log_path) if log_path else "",
    )
    return env


def adhoc(env: dict, module: str, args: str = "", timeout: float = 600) -> dict:
    argv = [str(VENV_BIN / "ansible"), "lab", "-o", "-m", module]
    if args:
        argv += ["-a", args]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if "=>" not in line:
        raise SystemExit(f"bench_race: ansible {module} failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    return json.loads(line.split("=>", 1)[1])


def host_state() -> dict:
    """This machine's load average (1, 5, 15 min) and how many qemu VMs run on it (this lab's included)."""
    proc = subprocess.run(
        ["pgrep", "-c", "--runstates", "RSD", "qemu-system"], capture_output=True, text=True, timeout=30, check=False
    )
    return {"load": [round(x, 2) for x in os.getloadavg()], "vms": int(proc.stdout.strip() or 0)}


def repo_commit() -> str:
    """The checkout's commit (short), with +dirty when tracked files differ from it."""
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout.strip()
    return (head or "unknown") + ("+dirty" if dirty else "")


def guest_json(lab: lab_module.Lab, code: str, timeout: float = 600) -> dict:
    proc = lab.ssh(["python3", "-c", code], timeout=timeout)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- part 1: the race


def split_cycles(total: int, workers: int) -> list[int]:
    return [total // workers + (1 if w < total % workers else 0) for w in range(workers)]


def parse_worker_log(path: Path) -> list[dict]:
    """Per-cycle records with the seconds spent in each phase (array map, attach, detach, array unmap)."""
    cycles: list[dict] = []
    tasks: list[dict] = []
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            entry["task"] = str(entry.get("task", "")).lower()
            if entry["task"] == "bench record" and isinstance(entry.get("record"), dict):
                record = dict(entry["record"])
                phases: dict[str, float] = {}
                for task in tasks:
                    name = task["task"]
                    if name.startswith("array: "):
                        key = name.replace("array: ", "array_")
                    elif name.startswith(("attach:", "detach:")):
                        key = name.split(":", 1)[0]
                    else:
                        continue
                    phases[key] = phases.get(key, 0.0) + task["end"] - task["start"]
                record["phases"] = phases
                record["start"] = tasks[0]["start"] if tasks else entry["start"]
                record["end"] = entry["end"]
                record["failed_tasks"] = [t for t in tasks if t["status"] != "ok"]
                cycles.append(record)
                tasks = []
            elif entry.get("task") not in ("bench reset flags",):
                tasks.append(entry)
    return cycles


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _p90(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def procedure_cycles(procedure: str, args: argparse.Namespace) -> int:
    """Cycles for one procedure: the 200 the issue asks of ours; the baselines only have to show the race."""
    if procedure in OURS or args.baseline_cycles is None:
        return args.cycles
    return args.baseline_cycles


def run_procedure(
    lab: lab_module.Lab, ours_root: Path, cg_root: Path, procedure: str, *, args: argparse.Namespace, logs: Path
) -> dict:
    planned = procedure_cycles(procedure, args)
    per_worker = split_cycles(planned, args.workers)
    luns = args.workers * max(per_worker)  # one LUN per cycle: worker w, cycle k uses LUN w + k * workers
    transport_vars: dict = {"bench_transport": args.transport}
    if args.transport == "fc":
        cleared = guest_json(lab, GUEST_FC_CLEAR, timeout=900)  # the previous procedure's faulty paths, dead maps
        log(f"{procedure}: cleared {len(cleared['flushed'])} maps and {len(cleared['deleted'])} FC devices left")
        log(f"{procedure}: resetting the lab ({luns} FC LUs)")
        lab.array(["reset", "--luns", "4", "--fc-luns", str(luns), "--size-mb", "1"], timeout=3600)
        # every LUN starts unmapped: each cycle maps its LUN first, as initialize_connection does
        guest_json(lab, GUEST_FC_UNMAP_ALL)
        fc = lab.array(["fc-status"])
        hosts = [p["host"] for p in fc["initiators"] if p["host"] is not None]
        targets = [p["port_name"] for p in fc["targets"] if p["port_name"]]
        if fc["scan_mode"] != "sync" or len(hosts) < 2 or len(targets) < 2 or len(fc["luns"]) < luns:
            raise SystemExit(
                f"bench_race: FC lab not as expected after the reset (scan mode {fc['scan_mode']}, initiator "
                f"hosts {hosts}, target ports {targets}, {len(fc['luns'])} LUs for {luns} wanted)"
            )
        transport_vars.update(bench_fc_hosts=hosts, bench_fc_targets=targets, bench_fc_paths=len(hosts) * len(targets))
        fc_lab = {
            "hosts": hosts,
            "initiators": [p["port_name"] for p in fc["initiators"]],
            "targets": targets,
            "paths": len(hosts) * len(targets),
            "scan_mode": fc["scan_mode"],
            "luns": len(fc["luns"]),
        }
    else:
        log(f"{procedure}: resetting the lab ({luns} LUNs)")
        lab.array(["reset", "--luns", str(luns), "--size-mb", "1"], timeout=1800)
        # every LUN starts unmapped: each cycle maps its LUN first, as initialize_connection does
        guest_json(lab, GUEST_UNMAP_ALL)
        fc_lab = None
    host = host_state()
    commit = repo_commit()  # at the start: commits made during a long run must not be reported as its code
    procs = []
    start = time.monotonic()
    for worker, cycles in enumerate(per_worker):
        jsonl = logs / f"{procedure}-w{worker}.jsonl"
        jsonl.unlink(missing_ok=True)
        extra = {
            **transport_vars,
            "bench_procedure": procedure,
            "bench_worker": worker,
            "bench_workers": args.workers,
            "bench_cycles": cycles,
            "bench_unmap_delay": args.unmap_delay,
            "bench_gap": args.gap,
        }
        out = open(logs / f"{procedure}-w{worker}.out", "w", encoding="utf-8")  # noqa: SIM115
        proc = subprocess.Popen(
            [str(VENV_BIN / "ansible-playbook"), str(PLAYBOOKS / "worker.yml"), "-e", json.dumps(extra)],
            env=ansible_env(lab, ours_root, cg_root, jsonl),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        procs.append((proc, out, jsonl))
        time.sleep(args.stagger)
    log(f"{procedure}: {len(procs)} workers running {per_worker} cycles")
    deadline = start + args.procedure_timeout
    rcs = []
    for proc, out, _jsonl in procs:
        try:
            rcs.append(proc.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            rcs.append("timeout")
        out.close()
    wall = time.monotonic() - start
    time.sleep(args.settle)  # let multipathd's checkers (polling_interval 2) see the unmapped LUNs
    env = ansible_env(lab, ours_root, cg_root)
    facts = adhoc(env, "lunsafe.san.multipath_faulty_facts")
    summary = facts.get("summary") or facts.get("ansible_facts", {}).get("lunsafe_multipath", {}).get("summary", {})
    faulty_maps = [
        {"name": m.get("name"), "reasons": m.get("reasons")}
        for m in facts.get("maps") or facts.get("ansible_facts", {}).get("lunsafe_multipath", {}).get("maps", [])
        if m.get("faulty")
    ]
    devices = guest_json(lab, GUEST_FC_DEVICES if args.transport == "fc" else GUEST_DEVICES)
    host_end = host_state()
    cycles = [c for _p, _o, jsonl in procs for c in parse_worker_log(jsonl)]
    durations = [c["end"] - c["start"] for c in cycles]
    attach = [c["phases"]["attach"] for c in cycles if "attach" in c["phases"] and not c["attach_failed"]]
    detach = [c["phases"]["detach"] for c in cycles if "detach" in c["phases"]]
    module_total = [c["module_timings"]["total"] for c in cycles if (c.get("module_timings") or {}).get("total")]
    detach_total = [c["detach_timings"]["total"] for c in cycles if (c.get("detach_timings") or {}).get("total")]
    result = {
        "procedure": procedure,
        "transport": args.transport,
        "fc": fc_lab,
        "commit": commit,
        "load_start": host["load"],
        "load_end": host_end["load"],
        "vms_start": host["vms"],
        "vms_end": host_end["vms"],
        "workers": args.workers,
        "cycles_planned": planned,
        "per_worker": per_worker,
        "cycles": len(cycles),
        "worker_rc": rcs,
        "wall_s": wall,
        "attach_failed": sum(1 for c in cycles if c["attach_failed"]),
        "detach_failed": sum(1 for c in cycles if c["detach_failed"]),
        "resurrected_paths": sum(int(c["resurrected"]) for c in cycles),
        "resurrected_cycles": sum(1 for c in cycles if int(c["resurrected"]) > 0),
        "faulty_paths": summary.get("faulty_paths"),
        "dead_maps": summary.get("dead_maps"),
        "faulty_maps": summary.get("faulty_maps"),
        "unpresented_maps": summary.get("unpresented_maps"),
        "orphans": summary.get("orphans"),
        "faulty_map_details": faulty_maps[:20],
        # all workers are done and every LUN is unmapped: no device is wanted any more
        "unrequested_devices": len(devices["devices"]),
        "leftover_devices": devices["devices"],
        "leftover_maps": devices["maps"],
        "failure_samples": sorted(
            {
                f"{t['task']}: {(t.get('msg') or '').splitlines()[0][:160] if t.get('msg') else t['status']}"
                for c in cycles
                for t in c["failed_tasks"]
            }
        )[:6],
        "cycle_s_median": _median(durations),
        "cycle_s_p90": _p90(durations),
        "attach_s_median": _median(attach),
        "attach_s_p90": _p90(attach),
        "detach_s_median": _median(detach),
        "module_total_s_median": _median(module_total),
        "detach_module_total_s_median": _median(detach_total),
        "cycles_detail": [
            {k: c[k] for k in ("worker", "cycle", "lun", "resurrected", "attach_failed", "phases", "start", "end")}
            for c in cycles
        ],
    }
    log(
        f"{procedure}: {len(cycles)} cycles in {wall:.0f}s, faulty paths {result['faulty_paths']}, dead maps "
        f"{result['dead_maps']}, unrequested devices {result['unrequested_devices']}, brought back "
        f"{result['resurrected_paths']} paths in {result['resurrected_cycles']} cycles, failed attaches "
        f"{result['attach_failed']}"
    )
    return result


# --------------------------------------------------------------------------- part 2: latency


def latency(
    lab: lab_module.Lab, ours_root: Path, luns: int, *, samples: int, rescan_max: int, rescan_budget: float
) -> dict:
    log(f"latency: {luns} LUNs mapped")
    lab.array(["reset", "--luns", str(luns), "--size-mb", "1"], timeout=3600)
    lab.ssh(["sh", "-c", bench_attach.GUEST_LOGIN])  # both sessions, manual scan: no LUN attached yet
    count = max(1, min(samples, luns - 1))
    ours = []
    for i in range(count):
        before = bench_attach.count_sd(lab)
        sample = bench_attach.ours(lab, ours_root, luns - 1 - i)
        sample["unrequested"] = bench_attach.count_sd(lab) - before - sample["devices"]
        ours.append(sample)
    rescans = []
    if luns <= rescan_max:
        # LUN 0 is skipped: the guest's own SCSI CD-ROM sits at 1:0:0:0 and the probe globs all SCSI hosts
        spent = time.monotonic()
        for i in range(count):
            if rescans and time.monotonic() - spent > rescan_budget:
                break  # fewer samples at large LUN counts: each rescan attaches every mapped LUN
            guest_json(lab, GUEST_CLEAR_DEVICES + "\nprint('{}')", timeout=3600)
            rescans.append(bench_attach.guest_python(lab, bench_attach.GUEST_MEASURE, "rescan", str(1 + i)))
    row = {
        "luns": luns,
        "ours_module_total_s": _median([s["timings"]["total"] for s in ours]),
        "ours_scan_s": _median([s["timings"].get("scan", 0.0) for s in ours]),
        "ours_wall_s": _median([s["wall"] for s in ours]),
        "ours_unrequested": max(s["unrequested"] for s in ours),
        "ours_samples": len(ours),
        "rescan_s": _median([r["seconds"] for r in rescans]),
        "rescan_new_devices": max((r["new_devices"] for r in rescans), default=None),
        "rescan_samples": len(rescans),
    }
    log(f"latency {luns}: {json.dumps(row)}")
    lab.array(["reset", "--luns", "4", "--size-mb", "1"], timeout=3600)
    return row


# --------------------------------------------------------------------------- report


def _fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def verdict(race: dict) -> list[str]:
    """What the counts say, and where the run falls short of what the issue asks."""
    out = []
    for r in race["procedures"]:
        left = (r["faulty_paths"] or 0) + (r["dead_maps"] or 0) + r["unrequested_devices"]
        out.append(
            f"- **{r['procedure']}**: {r['cycles']} cycles, {_fmt(r['faulty_paths'])} faulty paths, "
            f"{_fmt(r['dead_maps'])} dead maps and {r['unrequested_devices']} unrequested devices left; "
            f"{r['resurrected_paths']} deleted paths brought back by another worker's scan during the run; "
            f"{r['attach_failed']} failed attaches."
            + (
                ""
                if left or r["resurrected_paths"] or r["procedure"] in OURS
                else " This baseline showed no "
                "race in this run: the harness did not exercise it (more cycles or workers, or a longer "
                "--unmap-delay)."
            )
        )
    ours = [r for r in race["procedures"] if r["procedure"] in OURS]
    if ours and ours[0]["cycles"] < 200:
        r = ours[0]
        out.append(
            f"- ours ran {r['cycles']} cycles, fewer than the 200 (over all workers) the issue asks for: in the "
            f"TCG-emulated lab a cycle costs {r['wall_s'] / max(1, r['cycles']):.0f} s of wall time, so the run "
            "was cut to fit the time available. `--cycles 200` runs the full count."
        )
    baselines = [r for r in race["procedures"] if r["procedure"] not in OURS]
    if baselines and any(r["cycles"] < (ours[0]["cycles"] if ours else 0) for r in baselines):
        out.append(
            "- the baselines ran fewer cycles than ours: they only have to show that the harness exercises the "
            "race, and each of their cycles costs as much lab time as one of ours."
        )
    return out


def _leftover_lines(race: dict) -> list[str]:
    lines: list[str] = []
    for r in race["procedures"]:
        if r["leftover_devices"] or r["faulty_map_details"]:
            devs = ", ".join(f"{d['hctl']} ({d['block']}, {d['state']})" for d in r["leftover_devices"][:12])
            maps = "; ".join(f"{m['name']}: {', '.join(m['reasons'] or [])}" for m in r["faulty_map_details"][:6])
            lines.append(f"- {r['procedure']} left: devices {devs or 'none'}; faulty maps {maps or 'none'}")
        for sample in r.get("failure_samples") or []:
            lines.append(f"- {r['procedure']} failed task: `{sample}`")
        if any(rc not in (0, "0") for rc in r["worker_rc"]):
            lines.append(f"- {r['procedure']}: worker exit codes {r['worker_rc']}")
    return lines


def merge_rows(rows: list[dict], previous: dict | None, *, args: argparse.Namespace) -> list[dict]:
    """This run's rows, plus the previous run's rows of procedures not run now when that run used the same
    harness settings (workers, unmap delay, gap, stagger): procedures can then be run one invocation each."""
    done = {r["procedure"] for r in rows}
    kept = []
    for r in (previous or {}).get("procedures", []):
        # rows recorded before the stagger was kept ran with 1.5 s
        settings = (r.get("workers"), r.get("unmap_delay"), r.get("gap"), r.get("stagger", 1.5))
        same = settings == (args.workers, args.unmap_delay, args.gap, args.stagger)
        mine = r["procedure"] in TRANSPORTS[args.transport]["procedures"]
        if r["procedure"] not in done and same and mine and r.get("command"):
            kept.append(r)
    order = {name: i for i, name in enumerate(PROCEDURES)}
    return sorted(rows + kept, key=lambda r: order[r["procedure"]])


def _run_lines(race: dict) -> list[str]:
    """One line per invocation whose rows are in the table (procedures may come from separate runs)."""
    lines = []
    for cmd in dict.fromkeys(r.get("command") for r in race["procedures"]):
        rows = [r for r in race["procedures"] if r.get("command") == cmd]
        dates = ", ".join(sorted({r.get("date") or race["date"] for r in rows}))
        line = f"- run: `{cmd or race['command']}` on {dates} ({', '.join(r['procedure'] for r in rows)})"
        if any("load_start" in r for r in rows):
            line += (
                "; commit "
                + ", ".join(sorted({r.get("commit") or "?" for r in rows}))
                + "; host load average (1/5/15 min) at start and end: "
                + "; ".join(f"{r['procedure']} {r['load_start']} -> {r['load_end']}" for r in rows if "load_start" in r)
                + "; qemu VMs on the machine (this lab's included): "
                + ", ".join(f"{r['procedure']} {r['vms_start']} -> {r['vms_end']}" for r in rows if "vms_start" in r)
            )
        lines.append(line)
    return lines


def _vcpus(race: dict) -> str:
    count = race.get("vcpus", 2)  # rows recorded before the count was kept ran with 2
    return f"{count} vCPU" + ("" if count == 1 else "s")


def _lab_line(race: dict) -> str:
    if race.get("transport") != "fc":
        return (
            f"- lab: kernel {race['kernel']}, accel {race['accel']} (qemu VM, {_vcpus(race)}), one LIO "
            "target on portals "
            f"{' and '.join(PORTALS)}"
        )
    fc = race.get("fc") or {}
    return (
        f"- lab: kernel {race['kernel']}, accel {race['accel']} (qemu VM, {_vcpus(race)}), Fibre "
        "Channel over FCoE VN2VN between the VM's own NICs: initiator fc_hosts "
        + ", ".join(f"host{h}" for h in fc.get("hosts", []))
        + " ("
        + ", ".join(fc.get("initiators", []))
        + "), LIO tcm_fc target ports "
        + ", ".join(fc.get("targets", []))
        + f", so {fc.get('paths', '?')} paths a LUN; `scsi_mod.scan` = `{fc.get('scan_mode')}` (the kernel's "
        "default, what `lab.py up` leaves) for every procedure, ours included"
    )


def _transport_notes(race: dict) -> list[str]:
    if race.get("transport") != "fc":
        return [
            "- *unrequested devices left*: iSCSI SCSI devices in sysfs at that point (no worker wants any LUN).",
            "- `open_iscsi` logs in to every portal SendTargets discovery returns (the module's single-target "
            "login passes no portal to iscsiadm), here also `[::1]`: its LUNs have 3 paths; `ours`, `osbrick` and "
            "`session_rescan` log in to the two portals asked for.",
            "- the unmap delay stands for what happens between a host-side detach and the array's unmap in "
            "OpenStack: os-brick's disconnect returns to Nova, Nova asks Cinder to delete the attachment, Cinder's "
            "volume driver calls the array (seconds of API round trips). At 2 s, 24 cycles of the open_iscsi "
            "baseline showed no race (its rescans are rare: one attach takes a minute under TCG); at 6 s they do.",
            "- the array's map/unmap write LIO's configfs directly (the same kernel steps as "
            "`labctl.py map/unmap`, without rtslib's seconds of start-up per call in the emulated guest).",
        ]
    return [
        "- *unrequested devices left*: SCSI devices on the FC hosts (`/sys/class/fc_host/host*`; never the "
        "iSCSI or virtio disks) at that point (no worker wants any LUN).",
        "- procedures: `fc_ours` is `lunsafe.san.fc_lun_attach` state=present / state=absent with both target "
        "WWPNs (it writes `C T L` for the one LUN on each initiator host, and detaches only that LUN); "
        "`fc_host_scan` writes `- - -` to `/sys/class/scsi_host/hostH/scan` of every FC initiator host, "
        "`fc_lip` writes 1 to `/sys/class/fc_host/hostH/issue_lip` of every FC initiator host (the remote "
        "ports log in again, and with `scsi_mod.scan=sync` the FC transport scans each whole target); both "
        "then wait for every path and the map, and detach as a typical playbook does (`multipath -f MAP`, then "
        "`echo 1 > /sys/block/sdX/device/delete`).",
        "- the unmap delay stands for what happens between a host-side detach and the array's unmap (the "
        "orchestrator's and the array API's round trips), as in the iSCSI run ([race.md](race.md)).",
        "- the array's map/unmap write LIO's tcm_fc configfs directly (a mapped LUN in the ACL of each initiator "
        "WWPN on each target port: the same kernel steps as `labctl.py fc-map/fc-unmap`, without rtslib's "
        "seconds of start-up per call in the emulated guest).",
    ]


def write_markdown(path: Path, results: dict) -> None:
    race = results.get("race") or {}
    lat = results.get("latency") or {}
    fc = race.get("transport") == "fc"
    title = "over Fibre Channel: faults left" if fc else ": faults left and attach latency"
    lines = [f"# Concurrent attach/detach race{' ' if fc else ''}{title}", ""]
    commands = []
    for part in (race, lat):
        for cmd in (part or {}).get("command", "").split(" ; "):
            if cmd and cmd not in commands:
                commands.append(cmd)
    lines += [
        "Regenerate (in a checkout with `.venv`, on a machine that can boot the lab; the full run is "
        f"`python3 tests/lab/bench_race.py{' --transport fc --name racefc' if fc else ''}`):",
        "",
        "```",
        *(commands or [results.get("command", "")]),
        "```",
        "",
    ]
    if race:
        lines += [*verdict(race), ""]
    if race:
        lines += [
            "## Race: concurrent workers attaching and detaching different LUNs",
            "",
            *_run_lines(race),
            _lab_line(race),
            f"- {race['workers']} workers"
            + (f" started {race['stagger']:g} s apart" if race.get("stagger") is not None else "")
            + "; cycles in total per procedure: "
            + ", ".join(
                f"{r['procedure']} {r['cycles_planned']} ({r.get('per_worker')} per worker)" for r in race["procedures"]
            )
            + "; each cycle with a LUN of its own (worker w, cycle k: LUN w + k x workers), as Cinder "
            "attaches a new volume each time: the array maps it right before the attach and unmaps it for good "
            f"{race['unmap_delay']} s after the host-side detach returns (plus one Ansible task start)",
            "",
            "| procedure | cycles done | faulty paths left | dead maps left | faulty maps left "
            "| unrequested devices left | paths brought back during the run (cycles) | failed attaches "
            "| failed detaches | cycle s median / p90 | attach s median / p90 | detach s median "
            "| module total s attach / detach | wall s |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in race["procedures"]:
            lines.append(
                f"| {r['procedure']} | {r['cycles']} | {_fmt(r['faulty_paths'])} | {_fmt(r['dead_maps'])} "
                f"| {_fmt(r['faulty_maps'])} | {r['unrequested_devices']} "
                f"| {r['resurrected_paths']} ({r['resurrected_cycles']}) | {r['attach_failed']} "
                f"| {r['detach_failed']} | {_fmt(r['cycle_s_median'])} / {_fmt(r['cycle_s_p90'])} "
                f"| {_fmt(r['attach_s_median'])} / {_fmt(r['attach_s_p90'])} | {_fmt(r['detach_s_median'])} "
                f"| {_fmt(r['module_total_s_median'])} / {_fmt(r.get('detach_module_total_s_median'))} "
                f"| {r['wall_s']:.0f} |"
            )
        lines += [
            "",
            "- *faulty paths / dead maps / faulty maps left*: `lunsafe.san.multipath_faulty_facts` summary "
            f"(`faulty_paths`, `dead_maps`, `faulty_maps`), {race['settle']} s after the last worker finished; "
            "every LUN is unmapped by then, so any path still there is one the array no longer presents.",
            "- *paths brought back during the run*: SCSI devices of a worker's LUN still present "
            f"{race.get('gap', 2.0)} s after the array unmapped it, although the worker's own detach had deleted "
            "them: another worker's scan brought them back inside the window between host-side delete and unmap "
            "(the race). The LUN is never mapped again, so each one stays as a faulty path (and its map dead) "
            "until the end: they are what the *left* columns count.",
            *_transport_notes(race),
            "- timings are Ansible task wall times seen by the controller (SSH, module start-up included) under "
            f"TCG emulation with all workers competing for the same {_vcpus(race)}; attach for the "
            "baselines includes waiting for the paths and the multipath map. *module total* is the module's own "
            "timing on the host (`timings.total`; it includes waiting for the module's host lock, which "
            "serializes concurrent runs): the rest of the task time is Ansible's transport and module start-up "
            "in the emulated guest."
            + (
                ""
                if fc
                else " For osbrick it is the driver's clock around connect_volume / disconnect_volume (waiting "
                "for os-brick's own lock included; its Python start-up and import not)."
            ),
            "",
        ]
        lines += _leftover_lines(race)
        lines.append("")
    if lat:
        lines += [
            "## Attach latency against the number of LUNs mapped",
            "",
            f"- run: `{lat['command']}` on {lat['date']} (kernel {lat['kernel']}, accel {lat['accel']})",
            "- both sessions logged in with manual scan, no LUN attached; medians of "
            f"{lat['samples']} attaches of distinct LUNs each",
            "- ours: `lunsafe.san.iscsi_lun_attach` module total (timed inside the module) and the ad-hoc "
            "`ansible` wall time; baseline: `iscsiadm -m session -R` (what `community.general.open_iscsi` "
            "`rescan: true` runs) timed in the guest until the wanted LUN has both paths, starting each time "
            "with no SCSI device attached",
            "",
            "| LUNs mapped | ours module total s | ours scan phase s | ours ansible wall s | ours unrequested devices "
            "| session rescan s | rescan new devices (wanted: 2) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in lat["rows"]:
            rescan = "not run" if not r["rescan_samples"] else _fmt(r["rescan_s"], 2)
            new = "not run" if not r["rescan_samples"] else str(r["rescan_new_devices"])
            lines.append(
                f"| {r['luns']} | {_fmt(r['ours_module_total_s'], 2)} | {_fmt(r['ours_scan_s'], 3)} "
                f"| {_fmt(r['ours_wall_s'])} | {r['ours_unrequested']} | {rescan} | {new} |"
            )
        if any(not r["rescan_samples"] for r in lat["rows"]):
            lines += [
                "",
                f"- the session rescan was run only up to {lat['rescan_max']} LUNs (`--rescan-max`): under TCG a "
                "rescan that attaches hundreds of LUNs takes many minutes",
            ]
        lines.append("")
    plot = path.with_suffix(".png").name
    lines += [f"![faults per procedure{'' if fc else ' and attach latency'}]({plot})", ""]
    for note in results.get("notes", []):
        lines.append(f"- {note}")
    path.write_text("\n".join(lines).rstrip() + "\n")


def write_plot(path: Path, results: dict) -> None:
    matplotlib = ensure_matplotlib()
    matplotlib.use("Agg")
    pyplot = importlib.import_module("matplotlib.pyplot")
    race = results.get("race") or {}
    if race.get("transport") == "fc":  # no latency part over FC: the race panel alone
        figure, left = pyplot.subplots(1, 1, figsize=(7.5, 4.8))
        right = None
    else:
        figure, (left, right) = pyplot.subplots(1, 2, figsize=(12, 4.8))
    if race:
        names = [r["procedure"] for r in race["procedures"]]
        series = [
            ("faulty paths left", "faulty_paths"),
            ("dead maps left", "dead_maps"),
            ("unrequested devices left", "unrequested_devices"),
            ("paths brought back (run)", "resurrected_paths"),
            ("failed attaches", "attach_failed"),
        ]
        width = 0.8 / len(series)
        for i, (label, key) in enumerate(series):
            values = [r.get(key) or 0 for r in race["procedures"]]
            xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(names))]
            bars = left.bar(xs, values, width, label=label)
            left.bar_label(bars, fontsize=7)
        left.set_xticks(range(len(names)), names)
        left.set_ylabel("count")
        left.set_title(
            ("FC, " if race.get("transport") == "fc" else "")
            + f"{race['workers']} workers; cycles: "
            + ", ".join(str(r["cycles"]) for r in race["procedures"])
        )
        left.set_ylim(bottom=0)
        left.legend(fontsize=8)
    else:
        left.axis("off")
    lat = results.get("latency") or {}
    if right is None:
        pass
    elif lat:
        rows = lat["rows"]
        xs = [r["luns"] for r in rows]
        right.plot(xs, [r["ours_module_total_s"] for r in rows], "o-", label="iscsi_lun_attach (module total)")
        right.plot(xs, [r["ours_wall_s"] for r in rows], "s--", label="iscsi_lun_attach (ansible wall)")
        pts = [(r["luns"], r["rescan_s"]) for r in rows if r["rescan_samples"]]
        if pts:
            right.plot([p[0] for p in pts], [p[1] for p in pts], "^-", label="iscsiadm -m session -R")
        right.set_xscale("log", base=2)
        right.set_yscale("log")
        right.set_xticks(xs, [str(x) for x in xs])
        right.set_xlabel("LUNs mapped to the host")
        right.set_ylabel("seconds to attach one LUN (median)")
        right.set_title("attach latency (TCG lab)")
        right.legend(fontsize=8)
    else:
        right.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)


# --------------------------------------------------------------------------- main


def transport_defaults(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The procedures to run (the transport's own only) and the latency default (iSCSI only)."""
    known = TRANSPORTS[args.transport]["procedures"]
    if args.procedures is None:
        args.procedures = ",".join(known)
    procedures = [p for p in args.procedures.split(",") if p]
    unknown = set(procedures) - set(known)
    if unknown:
        parser.error(f"unknown {args.transport} procedures {sorted(unknown)}; choose from {', '.join(known)}")
    if args.latency_luns is None:
        args.latency_luns = [4, 64, 256] if args.transport == "iscsi" else []
    if args.stagger is None:
        args.stagger = 1.5 if args.transport == "iscsi" else 15.0
    if args.latency_luns and args.transport != "iscsi":
        parser.error("--latency-luns: the latency part is iSCSI only")
    return procedures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--cycles", type=int, default=200, help="cycles per procedure, in total over the workers")
    parser.add_argument(
        "--baseline-cycles", type=int, default=None, help="cycles for each baseline procedure (default: --cycles)"
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--transport",
        choices=sorted(TRANSPORTS),
        default="iscsi",
        help="iscsi (race.md) or fc (race-fc.md: procedures fc_ours, fc_host_scan, fc_lip; no latency part)",
    )
    parser.add_argument("--name", default="race", help="lab name")
    parser.add_argument("--reuse", action="store_true", help="use a running lab of that name (left running)")
    parser.add_argument(
        "--procedures", default=None, help="comma list (default: the transport's all); empty to skip part 1"
    )
    parser.add_argument(
        "--latency-luns", type=int, nargs="*", default=None, help="iSCSI only (default 4 64 256); none to skip part 2"
    )
    parser.add_argument("--samples", type=int, default=3, help="attaches per LUN count in part 2")
    parser.add_argument("--rescan-max", type=int, default=64, help="run the session rescan up to this LUN count")
    parser.add_argument(
        "--rescan-budget", type=float, default=300, help="seconds of session rescans per LUN count (min 1 sample)"
    )
    parser.add_argument(
        "--unmap-delay",
        type=float,
        default=6.0,
        help="seconds from host-side detach to unmap: in OpenStack the host's disconnect returns to Nova, which "
        "asks Cinder to delete the attachment, whose driver then calls the array (seconds of API round trips); "
        "at 2 s the open_iscsi baseline showed no race in 24 cycles, at 6 s it does",
    )
    parser.add_argument("--gap", type=float, default=2.0, help="seconds from unmap to counting the LUN's devices")
    parser.add_argument(
        "--stagger",
        type=float,
        default=None,
        help="seconds between worker starts (default 1.5 for iSCSI, 15 for FC: a quarter of an FC cycle; FC "
        "whole-host scans and device deletes queue on the host's scan mutex, which keeps workers started together "
        "in lockstep: all scan, then all detach, then all unmap, and no scan falls between another worker's delete "
        "and unmap in a short run, as seen in an 8-cycle run at 1.5 s)",
    )
    parser.add_argument("--settle", type=float, default=8.0, help="seconds to wait before counting faults")
    parser.add_argument("--procedure-timeout", type=float, default=4 * 3600)
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks"))
    parser.add_argument("--note", action="append", default=[], help="a line to add under the results (repeatable)")
    args = parser.parse_args()
    procedures = transport_defaults(parser, args)
    report = TRANSPORTS[args.transport]["report"]
    reexec_in_venv()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    logs = cache_dir() / "runs" / stamp
    logs.mkdir(parents=True, exist_ok=True)
    saved = cache_dir() / f"{report}-results.json"
    command = "python3 tests/lab/bench_race.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        previous = json.loads(saved.read_text())
    except (FileNotFoundError, ValueError):
        previous = {}
    results: dict = {"command": command, "notes": []}
    notes_given = args.note or previous.get("notes_given") or []  # kept until a run gives others
    results["notes"] += notes_given
    ensure_matplotlib()
    cg_root = community_general() if "open_iscsi" in procedures else cache_dir()  # its only user
    lab = lab_module.Lab(args.name)
    booted = False
    if lab.pid() and not args.reuse:
        raise SystemExit(f"bench_race: lab {args.name!r} is already running: pass --reuse, or stop it first")
    if not lab.pid():
        lab.up(
            luns=max(args.workers, 4),
            accel=os.environ.get("LUNSAFE_LAB_ACCEL", "auto"),
            boot_timeout=300,
            watch_pid=os.getpid(),
        )
        booted = True
    info = lab.info()
    log(f"lab {args.name} up (kernel {info['kernel']}, accel {info['accel']}); logs in {logs}")
    try:
        with lab_module.collections_root() as ours_root:
            if procedures:
                rows = []
                for procedure in procedures:
                    row = run_procedure(lab, ours_root, cg_root, procedure, args=args, logs=logs)
                    row.update(
                        command=command, date=date, unmap_delay=args.unmap_delay, gap=args.gap, stagger=args.stagger
                    )
                    rows.append(row)
                    (logs / "race.json").write_text(json.dumps(rows, indent=1))
                rows = merge_rows(rows, previous.get("race"), args=args)
                results["race"] = {
                    "command": " ; ".join(sorted({r["command"] for r in rows}, key=lambda c: c != command)),
                    "transport": args.transport,
                    "fc": next((r["fc"] for r in rows if r.get("fc")), None),
                    "vcpus": lab_module.guest_vcpus(),
                    "date": date,
                    "kernel": info["kernel"],
                    "accel": info["accel"],
                    "workers": args.workers,
                    "cycles": args.cycles,
                    "baseline_cycles": args.baseline_cycles,
                    "unmap_delay": args.unmap_delay,
                    "gap": args.gap,
                    "settle": args.settle,
                    "stagger": args.stagger,
                    "procedures": rows,
                }
            elif previous.get("race"):
                results["race"] = previous["race"]
                results["notes"].append("the race table is from the earlier run named in it (not re-run)")
            if args.latency_luns:
                lat_rows = [
                    latency(
                        lab,
                        ours_root,
                        n,
                        samples=args.samples,
                        rescan_max=args.rescan_max,
                        rescan_budget=args.rescan_budget,
                    )
                    for n in args.latency_luns
                ]
                results["latency"] = {
                    "command": command,
                    "date": date,
                    "kernel": info["kernel"],
                    "accel": info["accel"],
                    "samples": args.samples,
                    "rescan_max": args.rescan_max,
                    "rows": lat_rows,
                }
            elif previous.get("latency"):
                results["latency"] = previous["latency"]
                results["notes"].append("the latency table is from the earlier run named in it (not re-run)")
    finally:
        if booted:
            lab.down(purge=True)
    saved.write_text(
        json.dumps({**{k: results.get(k) for k in ("race", "latency")}, "notes_given": notes_given}, indent=1)
    )
    (logs / "results.json").write_text(json.dumps(results, indent=1))
    write_markdown(out / f"{report}.md", results)
    write_plot(out / f"{report}.png", results)
    written = [out / f"{report}.md", out / f"{report}.png"]
    if args.transport == "fc":  # race.md predates the rule; the FC page keeps its figures beside it
        (out / f"{report}.json").write_text(json.dumps(results, indent=1) + "\n")
        written.append(out / f"{report}.json")
    log(f"wrote {', '.join(str(w) for w in written)} (raw results: {logs / 'results.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
