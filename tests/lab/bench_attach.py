# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: iscsi_lun_attach against a bare targeted scan and a whole-session rescan, and several LUNs per
call against one call per LUN. Run by hand in the lab; prints tables; not part of the test suite.

    python3 tests/lab/bench_attach.py [--luns 4 64 256] [--per-call 1 8 32] [--samples 3]
                                      [--name bench] [--reuse] [--out docs/benchmarks/attach.md]

Boots its own lab (or uses a running one with --reuse, left running), and for each count N of LUNs mapped:
resets the array to N LUNs of 1 MiB on two portals (127.0.0.1, 127.0.0.2), logs in with manual scan (no
LUN attached), then measures on the real kernel:

Part 1, LUNs per call (--per-call K ..., with --samples S; K larger than N is measured as K = N):
  - batch:   ONE `iscsi_lun_attach` task with `luns: [K LUNs]`;
  - single:  K tasks with `lun: L` (one task looped over the K LUNs, as the lun_attach role did);
  each run by ansible-playbook against the lab, and for each: the module time (the sum of the module's own
  `timings.total` over its calls: no Ansible transport), the Ansible wall time (controller clock from
  before the attach task to after it: SSH, module transfer and start-up per call included, the
  ansible-playbook process start-up not), both also per LUN, and the devices left unrequested (SCSI
  devices on the sessions whose LUN nobody asked for). After every run all devices are detached (maps
  flushed, paths deleted, /etc/multipath/wwids emptied so every LUN is new to multipathd again), so each
  run starts from both sessions up and no device. The arms alternate which goes first; the LUNs rotate
  through the mapped ones from sample to sample.

Part 2, one LUN (--repeat R; --parts single-lun):
  - bare:    write "0 0 L" to both sessions' scan files, poll sysfs until both block devices exist (the floor);
  - ours:    lunsafe.san.iscsi_lun_attach for another LUN; the module's own timings (no Ansible transport)
             and the wall time of the ad-hoc call;
  - rescan:  iscsiadm -m session -R, until the wanted LUN's two block devices exist (up to --rescan-max);
  and counts the unrequested SCSI devices each leaves.

With --out FILE.md the results are also kept in FILE.json (merged with the ones recorded there before, one
row per LUN count mapped) and written as markdown to FILE.md with the command, lab kernel, accel and date.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lab as lab_module

IQN = "iqn.2003-01.org.lunsafe.lab:array"
PORTALS = ["127.0.0.1", "127.0.0.2"]
PARTS = ("per-call", "single-lun")
ARMS = ("batch", "single", "bare")
TABLE_ARMS = ("batch", "single")

GUEST_LOGIN = f"""
set -e
for p in {" ".join(PORTALS)}; do
  iscsiadm -m node -T {IQN} -p $p -o new >/dev/null
  iscsiadm -m node -T {IQN} -p $p -o update -n node.session.scan -v manual
  iscsiadm -m node -T {IQN} -p $p --login >/dev/null
done
"""

# runs in the guest: bare targeted scan or whole-session rescan, then poll for LUN's block devices
GUEST_MEASURE = r"""
import glob, json, os, subprocess, sys, time
mode, lun = sys.argv[1], int(sys.argv[2])
def disks():
    return sorted(os.path.basename(p) for p in glob.glob("/sys/class/scsi_device/*/device/block/*"))
def lun_paths():
    return glob.glob("/sys/class/scsi_device/*:*:*:%d/device/block/*" % lun)
before = disks()
hosts = sorted({os.path.basename(os.path.dirname(os.path.realpath(s + "/device")))
                for s in glob.glob("/sys/class/iscsi_session/session*")})
start = time.monotonic()
if mode == "bare":
    for host in hosts:
        with open("/sys/class/scsi_host/%s/scan" % host, "w") as f:
            f.write("0 0 %d" % lun)
else:
    subprocess.run(["iscsiadm", "-m", "session", "-R"], capture_output=True, timeout=1800)
returned = time.monotonic() - start
while len(lun_paths()) < len(hosts) and time.monotonic() - start < 1800:
    time.sleep(0.01)
elapsed = time.monotonic() - start
after = disks()
print(json.dumps({"seconds": elapsed, "returned": returned, "new_devices": len(after) - len(before),
                  "lun_paths": len(lun_paths())}))
"""

# runs in the guest: what is on the iSCSI sessions now (devices by LUN, multipath maps, session states),
# then, unless argv[1] is "look", detach everything: maps flushed (never queueing), paths deleted, wait until
# the kernel and multipathd have let go of them, and /etc/multipath/wwids emptied (every LUN new again).
# argv[2], optional: the sysfs glob of the SCSI devices to take instead of the iSCSI sessions' (FC: FC_DEVICES).
GUEST_DETACH = r"""
import glob, json, os, subprocess, sys, time
start = time.monotonic()
pattern = sys.argv[2] if len(sys.argv) > 2 else "/sys/class/iscsi_session/session*/device/target*/*:*:*:*"
def run(argv, timeout=120):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
def devices():
    found = []
    for path in sorted(glob.glob(pattern)):
        hctl = os.path.basename(path)
        if hctl.count(":") == 3:
            blocks = [os.path.basename(b) for b in glob.glob(path + "/block/*")]
            found.append({"hctl": hctl, "lun": int(hctl.split(":")[3]), "block": blocks[0] if blocks else None,
                          "path": path})
    return found
def maps():
    proc = run(["dmsetup", "ls", "--target", "multipath"], timeout=30)
    out = proc.stdout if proc else ""
    return [l.split()[0] for l in out.splitlines() if l.split() and l.split()[0] != "No"]
def sessions():
    states = []
    for folder in sorted(glob.glob("/sys/class/iscsi_session/session*")):
        try:
            with open(folder + "/state") as handle:
                states.append(handle.read().strip())
        except OSError:
            states.append("?")
    return states
def mpath_sd_paths():
    proc = run(["multipathd", "show", "paths", "format", "%d"], timeout=60)
    return [l.strip() for l in (proc.stdout if proc else "").splitlines() if l.strip().startswith("sd")]
found, found_maps = devices(), maps()
report = {"devices": [{k: d[k] for k in ("hctl", "lun", "block")} for d in found], "maps": found_maps}
if sys.argv[1:2] != ["look"]:
    for name in found_maps:
        run(["dmsetup", "message", name, "0", "fail_if_no_path"], timeout=30)
        run(["multipath", "-f", name], timeout=120)
        info = run(["dmsetup", "info", name], timeout=30)
        if info is not None and info.returncode == 0:
            run(["dmsetup", "remove", "--force", name], timeout=60)
    for d in found:
        try:
            with open(d["path"] + "/delete", "w") as handle:
                handle.write("1")
        except OSError:
            pass
    deadline = time.monotonic() + 600
    while (devices() or maps() or mpath_sd_paths()) and time.monotonic() < deadline:
        time.sleep(0.2)
    if os.path.exists("/etc/multipath/wwids"):
        with open("/etc/multipath/wwids", "w") as handle:
            handle.write("")
    run(["udevadm", "settle", "--timeout=120"], timeout=150)
    report.update(left_devices=len(devices()), left_maps=len(maps()), left_mpath_paths=len(mpath_sd_paths()))
report.update(sessions=sessions(), seconds=round(time.monotonic() - start, 3))
print(json.dumps(report))
"""

# runs in the guest: the floor of a K-LUN attach - the same scan writes as the module (one per LUN and
# session), then multipathd alone (never helped) until every path has its block device and an mpath map (the
# floor, "seconds"); the same polls go on until udev has processed every block device and every map with its
# table loaded (its DM_UUID and dm-uuid- link in udev's database), the readiness the module waits for (the
# floor with udev, "udev"): a map is usable by name only then (/dev/mapper and /dev/disk/by-id are udev's)
GUEST_BARE_BATCH = r"""
import glob, json, os, sys, time
luns, timeout = [int(x) for x in sys.argv[1].split(",")], float(sys.argv[2])
hosts = sorted({os.path.basename(os.path.dirname(os.path.realpath(s + "/device")))
                for s in glob.glob("/sys/class/iscsi_session/session*")})
def blocks(lun):
    found = []
    for host in hosts:
        found += glob.glob("/sys/class/scsi_device/%s:*:*:%d/device/block/*" % (host[4:], lun))
    return [os.path.basename(b) for b in found]
def udev_db(name):
    try:
        with open("/sys/class/block/%s/dev" % name) as handle:
            number = handle.read().strip()
        with open("/run/udev/data/b" + number) as handle:
            return handle.read()
    except OSError:
        return None
def map_of(name):
    for holder in glob.glob("/sys/block/%s/holders/dm-*" % name):
        try:
            with open(holder + "/dm/uuid") as handle:
                uuid = handle.read().strip()
        except OSError:
            continue
        if uuid.startswith("mpath-"):
            return os.path.basename(holder), uuid
    return None
def map_udev_ready(dm, uuid):
    text = udev_db(dm) or ""
    return "E:DM_UUID=%s\n" % uuid in text and "S:disk/by-id/dm-uuid-%s\n" % uuid in text
start = time.monotonic()
for lun in luns:
    for host in hosts:
        with open("/sys/class/scsi_host/%s/scan" % host, "w") as handle:
            handle.write("0 0 %d" % lun)
written = time.monotonic() - start
marks = {}
waiting, unmapped, unprocessed = set(luns), set(luns), set(luns)
while (waiting or unmapped or unprocessed) and time.monotonic() - start < timeout:
    paths = {lun: blocks(lun) for lun in luns}
    waiting = {lun for lun in luns if len(paths[lun]) < len(hosts)}
    maps = {lun: [map_of(b) for b in paths[lun]] for lun in luns}
    unmapped = waiting | {lun for lun in luns if not all(maps[lun])}
    unprocessed = unmapped | {lun for lun in set(luns) - unmapped
                              if not all(udev_db(b) is not None for b in paths[lun])
                              or not all(map_udev_ready(*m) for m in maps[lun])}
    now = round(time.monotonic() - start, 3)
    for name, left in (("scan", waiting), ("seconds", unmapped), ("udev", unprocessed)):
        if not left and name not in marks:
            marks[name] = now
    if waiting or unmapped or unprocessed:
        time.sleep(0.05)
now = round(time.monotonic() - start, 3)
print(json.dumps({"seconds": marks.get("seconds", now), "written": round(written, 3),
                  "scan": marks.get("scan", now), "udev": marks.get("udev", now),
                  "paths_missing": sorted(waiting), "maps_missing": sorted(unmapped),
                  "udev_missing": sorted(unprocessed - unmapped)}))
"""

PLAYBOOK = """\
- name: Bench attach, one arm
  hosts: lab
  gather_facts: false
  tasks:
    - name: Start clock
      ansible.builtin.set_fact:
        bench_t0: "{{{{ now(utc=true).timestamp() }}}}"
{attach}
    - name: Stop clock
      ansible.builtin.set_fact:
        bench_t1: "{{{{ now(utc=true).timestamp() }}}}"
    - name: Save result
      ansible.builtin.copy:
        content: "{{{{ {{'t0': bench_t0, 't1': bench_t1, 'result': bench_result}} | to_json }}}}"
        dest: "{{{{ bench_out }}}}"
        mode: "0600"
      delegate_to: localhost
"""

ATTACH_BATCH = """\
    - name: Attach the LUNs in one call
      lunsafe.san.iscsi_lun_attach:
        target: "{{ bench_target }}"
        portals: "{{ bench_portals }}"
        luns: "{{ bench_luns }}"
        timeout: "{{ bench_timeout }}"
      register: bench_result
      ignore_errors: true
"""

ATTACH_SINGLE = """\
    - name: Attach the LUNs one call each
      lunsafe.san.iscsi_lun_attach:
        target: "{{ bench_target }}"
        portals: "{{ bench_portals }}"
        lun: "{{ item }}"
        timeout: "{{ bench_timeout }}"
      loop: "{{ bench_luns }}"
      register: bench_result
      ignore_errors: true
"""


def log(msg: str) -> None:
    print(f"[bench_attach {time.strftime('%H:%M:%S', time.gmtime())}] {msg}", file=sys.stderr, flush=True)


def wait_for_stray_runs(lab: lab_module.Lab, timeout: float = 900) -> None:
    """Module runs of an interrupted benchmark go on in the guest (killing ansible does not stop them): one that
    times out later rolls back its LUN, and after an array reset that may be another run's device. Wait until
    nothing holds the host lock file before measuring."""
    deadline = time.monotonic() + timeout
    while True:
        proc = lab.ssh(["sh", "-c", "fuser /run/lunsafe-san/lunsafe-san.lock 2>/dev/null || true"], timeout=60)
        holders = proc.stdout.split()
        if not holders:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_attach: processes {holders} in the guest still hold the host lock")
        log(f"waiting for earlier module runs in the guest to end (pids {' '.join(holders)})")
        time.sleep(15)


def guest_python(lab: lab_module.Lab, code: str, *args: str, timeout: float = 3600) -> dict:
    proc = lab.ssh(["python3", "-c", code, *args], timeout=timeout)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def count_sd(lab: lab_module.Lab) -> int:
    proc = lab.ssh(["sh", "-c", "ls /sys/block | grep -c '^sd' || true"])
    return int(proc.stdout.strip() or 0)


def adhoc_attach(
    lab: lab_module.Lab,
    root: Path,
    args: str,
    timeout: float = 600,
    extra: tuple = (),
    *,
    module: str = "lunsafe.san.iscsi_lun_attach",
) -> tuple:
    """One ad-hoc `ansible -m MODULE -a ARGS [EXTRA...]` against the lab (MODULE: iscsi_lun_attach unless
    given): (result, wall seconds). A run that fails or returns no timings stops the benchmark."""
    env = lab_module.playbook_env(lab, root)
    ansible = str(lab_module.REPO / ".venv" / "bin" / "ansible")
    start = time.monotonic()
    proc = subprocess.run(
        [ansible, "lab", "-o", "-m", module, "-a", args, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    wall = time.monotonic() - start
    line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if "=>" not in line:
        raise SystemExit(f"ansible failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    result = json.loads(line.split("=>", 1)[1])
    if result.get("failed") or "timings" not in result:
        raise SystemExit(f"{module} {args} failed: {result.get('msg')}")
    return result, wall


def ours(lab: lab_module.Lab, root: Path, lun: int) -> dict:
    result, wall = adhoc_attach(lab, root, f"target={IQN} portals={','.join(PORTALS)} lun={lun}")
    return {
        "wall": wall,
        "timings": result["timings"],
        "devices": len(result["devices"]),
        "commands": (result.get("profile") or {}).get("commands"),  # external commands the module ran
    }


# --------------------------------------------------------------------------- part 1: LUNs per call


def _numeric_sum(dicts: List[dict]) -> Dict[str, float]:
    """Phase by phase sum of the module's timings over its calls (keys any call had)."""
    out: Dict[str, float] = {}
    for timings in dicts:
        for key, value in (timings or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[key] = round(out.get(key, 0.0) + value, 3)
    return out


def _calls(saved: dict, arm: str) -> List[dict]:
    """The module results of one arm's run: one for batch, one per loop item for single."""
    result = saved.get("result") or {}
    if arm == "single":
        return [r for r in result.get("results", []) if isinstance(r, dict)]
    return [result]


def _lun_outcomes(arm: str, calls: List[dict], luns: List[int]) -> Dict[str, dict]:
    """Per requested LUN: state and number of paths the module reported."""
    out: Dict[str, dict] = {}
    if arm == "single":
        for lun, call in zip(luns, calls):
            state = "failed" if call.get("failed") else "attached"
            out[str(lun)] = {"state": state, "paths": len(call.get("devices") or []), "msg": call.get("msg")}
        return out
    call = calls[0] if calls else {}
    for entry in call.get("luns") or []:
        if isinstance(entry, dict):
            key = str(entry.get("linux_lun", entry.get("lun")))
            out[key] = {"state": entry.get("state"), "paths": len(entry.get("devices") or []), "msg": entry.get("msg")}
    if call.get("failed") and not out:
        out = {str(lun): {"state": "failed", "paths": 0, "msg": call.get("msg")} for lun in luns}
    return out


def run_bare(lab: lab_module.Lab, *, luns: List[int], timeout: int) -> dict:
    """The floor on LUNs `luns` (scan writes, multipathd alone), then a clean detach. Returns the sample."""
    floor = guest_python(lab, GUEST_BARE_BATCH, ",".join(map(str, luns)), str(timeout), timeout=timeout + 300)
    detach = guest_python(lab, GUEST_DETACH, "detach", timeout=1200)
    wanted = set(luns)
    present = detach["devices"]
    incomplete = bool(floor["paths_missing"] or floor["maps_missing"])
    return {
        "arm": "bare",
        "luns": luns,
        "calls": 0,
        "module_s": floor["seconds"],
        "wall_s": None,
        "phases_s": {
            "write": floor["written"],
            "scan": floor["scan"],
            "total": floor["seconds"],
            "udev": floor["udev"],
        },
        "devices": len(present),
        "maps": len(detach["maps"]),
        "unrequested": sum(1 for d in present if d["lun"] not in wanted),
        "unrequested_hctl": [d["hctl"] for d in present if d["lun"] not in wanted],
        "paths_missing": sum(max(0, len(PORTALS) - sum(1 for d in present if d["lun"] == lun)) for lun in luns),
        "failed": sorted(str(n) for n in set(floor["paths_missing"]) | set(floor["maps_missing"])),
        "errors": [f"incomplete after {timeout}s: {floor}"] if incomplete else [],
        "call_failed": incomplete,
        "multipath_actions": 0,
        "detach_s": detach["seconds"],
        "left_after_detach": detach.get("left_devices", 0) + detach.get("left_maps", 0),
        "sessions": detach["sessions"],
        "_raw": floor,
    }


def run_arm(lab: lab_module.Lab, root: Path, work: Path, *, arm: str, luns: List[int], timeout: int) -> dict:
    """One ansible-playbook run of one arm on LUNs `luns`, then a clean detach. Returns the sample."""
    if arm == "bare":
        return run_bare(lab, luns=luns, timeout=min(timeout, 600))
    playbook = work / f"attach-{arm}.yml"
    playbook.write_text(PLAYBOOK.format(attach=ATTACH_BATCH if arm == "batch" else ATTACH_SINGLE))
    out = work / f"result-{arm}-{len(luns)}.json"
    out.unlink(missing_ok=True)
    extra = {
        "bench_target": IQN,
        "bench_portals": PORTALS,
        "bench_luns": luns,
        "bench_timeout": timeout,
        "bench_out": str(out),
    }
    (work / "vars.json").write_text(json.dumps(extra))
    env = lab_module.playbook_env(lab, root)
    argv = [str(lab_module.REPO / ".venv" / "bin" / "ansible-playbook"), str(playbook), "-e", f"@{work / 'vars.json'}"]
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout * len(luns) + 900, check=False)
    process_wall = time.monotonic() - start
    if not out.exists():
        raise SystemExit(
            f"bench_attach: ansible-playbook ({arm}) wrote no result:\n{proc.stdout[-3000:]}\n{proc.stderr}"
        )
    saved = json.loads(out.read_text())
    calls = _calls(saved, arm)
    detach = guest_python(lab, GUEST_DETACH, "detach", timeout=1200)
    wanted = set(luns)
    present = detach["devices"]
    outcomes = _lun_outcomes(arm, calls, luns)
    sample = {
        "arm": arm,
        "luns": luns,
        "calls": len(calls),
        "module_s": round(sum(float((c.get("timings") or {}).get("total", 0.0)) for c in calls), 3),
        "wall_s": round(float(saved["t1"]) - float(saved["t0"]), 3),
        "process_wall_s": round(process_wall, 3),
        "phases_s": _numeric_sum([c.get("timings") or {} for c in calls]),
        "devices": len(present),
        "maps": len(detach["maps"]),
        "unrequested": sum(1 for d in present if d["lun"] not in wanted),
        "unrequested_hctl": [d["hctl"] for d in present if d["lun"] not in wanted],
        "paths_missing": sum(max(0, len(PORTALS) - sum(1 for d in present if d["lun"] == lun)) for lun in luns),
        "failed": sorted(k for k, v in outcomes.items() if v.get("state") == "failed"),
        "errors": sorted({str(v.get("msg")) for v in outcomes.values() if v.get("state") == "failed"})[:5],
        "call_failed": any(bool(c.get("failed")) for c in calls),
        "multipath_actions": sum(len(c.get("multipath_actions") or []) for c in calls),
        "commands": sum(int((c.get("profile") or {}).get("commands") or 0) for c in calls),  # over its calls
        "warnings": sorted({str(w) for c in calls for w in (c.get("warnings") or [])})[:5],
        "changed": [bool(c.get("changed")) for c in calls]
        if arm == "single"
        else bool(calls and calls[0].get("changed")),
        "detach_s": detach["seconds"],
        "left_after_detach": detach.get("left_devices", 0) + detach.get("left_maps", 0),
        "sessions": detach["sessions"],
    }
    if sample["call_failed"] and not sample["errors"]:
        sample["errors"] = sorted({str(c.get("msg")) for c in calls if c.get("failed")})[:5]
    sample["_raw"] = saved  # full module results: kept in the raw log, stripped from the recorded JSON
    return sample


def _median(values: List[float]) -> Optional[float]:
    return round(statistics.median(values), 3) if values else None


def summarize(samples: List[dict], per_call: int) -> dict:
    ok = [s for s in samples if not s["call_failed"]] or samples
    module = _median([s["module_s"] for s in ok])
    wall = _median([s["wall_s"] for s in ok if s["wall_s"] is not None])
    return {
        "samples": len(samples),
        "failed_samples": sum(1 for s in samples if s["call_failed"]),
        "module_s": module,
        "module_per_lun_s": round(module / per_call, 3) if module is not None else None,
        "wall_s": wall,
        "wall_per_lun_s": round(wall / per_call, 3) if wall is not None else None,
        "module_s_all": [s["module_s"] for s in samples],
        "wall_s_all": [s["wall_s"] for s in samples],
        "unrequested": max(s["unrequested"] for s in samples),
        "paths_missing": max(s["paths_missing"] for s in samples),
        "commands": _median([s["commands"] for s in ok if "commands" in s]),  # per run of the arm, all calls
        "phases_s": {
            key: _median([s["phases_s"][key] for s in ok if key in s["phases_s"]]) for key in ok[0]["phases_s"]
        },
    }


def per_call_sizes(wanted: List[int], mapped: int) -> List[int]:
    """LUNs per call that fit in `mapped`; a size above it is measured once as `mapped` itself."""
    sizes = sorted({min(k, mapped) for k in wanted if k > 0})
    return sizes


def measure_per_call(
    lab: lab_module.Lab,
    root: Path,
    *,
    mapped: int,
    sizes: List[int],
    samples: int,
    single_samples: int,
    arms: List[str],
    timeout: int,
    deadline: Optional[float],
    remaining_counts: int,
    raw_log: Optional[Path],
) -> dict:
    """Part 1 at one count of LUNs mapped (array already reset and sessions logged in)."""
    look = guest_python(lab, GUEST_DETACH, "detach", timeout=1200)  # start clean even after an aborted run
    if look["devices"]:
        log(f"{mapped} mapped: {len(look['devices'])} devices were left before part 1; detached")
    rows: Dict[int, Dict[str, List[dict]]] = {k: {arm: [] for arm in arms} for k in sizes}
    sample_seconds: List[float] = []
    done = 0
    with tempfile.TemporaryDirectory(prefix="bench-attach-") as tmp:
        work = Path(tmp)
        for s in range(samples):
            if s and deadline is not None and sample_seconds:
                estimate = statistics.mean(sample_seconds)
                if time.time() + estimate * (1 + remaining_counts) > deadline:
                    log(f"{mapped} mapped: stopping after {s} sample(s): another would pass the deadline")
                    break
            t0 = time.monotonic()
            for k in sizes:
                start = (s * k) % mapped
                luns = sorted((start + j) % mapped for j in range(k))
                order = arms if s % 2 == 0 else list(reversed(arms))
                for arm in order:
                    if arm == "single" and k > 1 and s >= single_samples:
                        continue  # its k calls are k measurements already: fewer runs of it where asked
                    sample = run_arm(lab, root, work, arm=arm, luns=luns, timeout=timeout)
                    raw = sample.pop("_raw")
                    if raw_log is not None:
                        with raw_log.open("a", encoding="utf-8") as handle:
                            handle.write(json.dumps({"mapped": mapped, "sample": s, **sample, "raw": raw}) + "\n")
                    log(
                        f"{mapped} mapped, {k} per call, {arm}, sample {s + 1}: module {sample['module_s']:.2f}s, "
                        f"wall {_f(sample['wall_s'])}s, unrequested {sample['unrequested']}, "
                        f"missing paths {sample['paths_missing']}, failed {sample['failed'] or '-'} "
                        f"(detach {sample['detach_s']:.1f}s)"
                    )
                    if sample["errors"]:
                        log(f"   errors: {sample['errors']}")
                    rows[k][arm].append(sample)
            sample_seconds.append(time.monotonic() - t0)
            done = s + 1
    result = []
    for k in sizes:
        entry: Dict[str, Any] = {"per_call": k}
        for arm in arms:
            entry[arm] = summarize(rows[k][arm], k) if rows[k][arm] else None
            entry[arm + "_samples"] = rows[k][arm]
        result.append(entry)
    return {"samples": done, "sizes": result}


# --------------------------------------------------------------------------- part 2: one LUN


def measure_single_lun(lab: lab_module.Lab, root: Path, luns: int, rescan_max: int, repeat: int) -> dict:
    """Bare targeted scan, ours (ad hoc) and a session rescan, on distinct LUNs from the top (sessions up)."""
    # `repeat` samples of each, on distinct LUNs from the top: bare on luns-1, luns-3, ...; ours on luns-2, ...
    samples = max(1, min(repeat, luns // 2))
    bares, mines = [], []
    for i in range(samples):
        bares.append(guest_python(lab, GUEST_MEASURE, "bare", str(luns - 1 - 2 * i)))
        before = count_sd(lab)
        sample = ours(lab, root, luns - 2 - 2 * i)
        sample["unrequested"] = count_sd(lab) - before - sample["devices"]
        mines.append(sample)
    bare = dict(bares[0], seconds=statistics.median(b["seconds"] for b in bares), samples=len(bares))
    bare["new_devices"] = max(b["new_devices"] for b in bares)
    mine = {
        "wall": statistics.median(m["wall"] for m in mines),
        "timings": {
            key: statistics.median(m["timings"][key] for m in mines)
            for key in mines[0]["timings"]
            if all(isinstance(m["timings"].get(key), (int, float)) for m in mines)
        },
        "devices": max(m["devices"] for m in mines),
        "unrequested": max(m["unrequested"] for m in mines),
        "samples": len(mines),
        "totals": [m["timings"].get("total") for m in mines],
        "commands": _median([m["commands"] for m in mines if isinstance(m["commands"], int)]),
    }
    # a whole-session rescan attaches every mapped LUN: at 64 LUNs under TCG it takes minutes and can leave
    # the guest unresponsive, so it is only measured up to --rescan-max
    # from no device (the samples above attached up to every LUN at small counts): its new devices are then
    # every mapped LUN on every session, the one wanted (LUN 1) included
    rescan = None
    if luns <= rescan_max:
        guest_python(lab, GUEST_DETACH, "detach", timeout=1200)
        rescan = guest_python(lab, GUEST_MEASURE, "rescan", str(1))
    return {"bare": bare, "ours": mine, "rescan": rescan}


def measure(
    lab: lab_module.Lab,
    root: Path,
    luns: int,
    rescan_max: int,
    repeat: int,
    *,
    args: Optional[argparse.Namespace] = None,
    remaining_counts: int = 0,
    raw_log: Optional[Path] = None,
) -> dict:
    """Everything at one count of LUNs mapped: reset the array, log in, part 1, part 2, reset to 4 LUNs."""
    parts = list(args.parts) if args is not None else ["single-lun"]
    t0 = time.monotonic()
    lab.array(["reset", "--luns", str(luns), "--size-mb", "1"], timeout=1800)
    provision = time.monotonic() - t0
    lab.ssh(["sh", "-c", GUEST_LOGIN])
    wait_for_stray_runs(lab)  # again: a run already sent by a killed ansible may start seconds after the first check
    row: Dict[str, Any] = {"luns": luns, "provision": provision}
    if "per-call" in parts and args is not None:
        row["per_call"] = measure_per_call(
            lab,
            root,
            mapped=luns,
            sizes=per_call_sizes(args.per_call, luns),
            samples=args.samples,
            single_samples=args.single_samples if args.single_samples is not None else args.samples,
            arms=list(args.arms),
            timeout=args.module_timeout,
            deadline=args.deadline,
            remaining_counts=remaining_counts,
            raw_log=raw_log,
        )
    if "single-lun" in parts:
        row.update(measure_single_lun(lab, root, luns, rescan_max, repeat))
    t1 = time.monotonic()
    lab.array(["reset", "--luns", "4", "--size-mb", "1"], timeout=3600)
    row["cleanup"] = time.monotonic() - t1
    return row


# --------------------------------------------------------------------------- report


def _rescan(row: dict, key: str) -> str:
    rescan = row["rescan"]
    if rescan is None:
        return "not run"
    return f"{rescan[key]:.1f}" if key == "seconds" else str(rescan[key])


def _f(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def per_call_lines(rows: List[dict]) -> List[str]:
    lines = [
        "| LUNs mapped | LUNs | one call: module s | per LUN | wall s | per LUN | unreq. "
        "| one call per LUN: module s | per LUN | wall s | per LUN | unreq. | wall: per-LUN calls / one call "
        "| samples |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for entry in (row.get("per_call") or {}).get("sizes", []):
            cells = [str(row["luns"]), str(entry["per_call"])]
            for arm in TABLE_ARMS:
                s = entry.get(arm)
                if not s:
                    cells += ["not run"] + ["-"] * 4
                    continue
                failed = f" ({s['failed_samples']} failed)" if s["failed_samples"] else ""
                missing = f", {s['paths_missing']} paths missing" if s["paths_missing"] else ""
                cells += [
                    _f(s["module_s"]) + failed,
                    _f(s["module_per_lun_s"]),
                    _f(s["wall_s"], 1),
                    _f(s["wall_per_lun_s"]),
                    f"{s['unrequested']}{missing}",
                ]
            b, single = entry.get("batch"), entry.get("single")
            ratio = single["wall_s"] / b["wall_s"] if b and single and b["wall_s"] else None
            cells.append(_f(ratio, 1))
            cells.append("/".join(str(entry[arm]["samples"]) if entry.get(arm) else "0" for arm in TABLE_ARMS))
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def floor_lines(rows: List[dict]) -> List[str]:
    """The bare floor of K LUNs against the module's one call on K LUNs."""
    lines = [
        "| LUNs mapped | LUNs | floor: scan writes s | floor: devices s | floor: devices + maps s | per LUN "
        "| floor with udev s | one call: module s | module / floor | module - floor with udev s | unreq. | samples |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for entry in (row.get("per_call") or {}).get("sizes", []):
            floor, batch = entry.get("bare"), entry.get("batch")
            if not floor:
                continue
            phases = floor.get("phases_s") or {}
            incomplete = f" ({floor['failed_samples']} incomplete)" if floor["failed_samples"] else ""
            ratio = batch["module_s"] / floor["module_s"] if batch and floor["module_s"] else None
            udev = phases.get("udev")  # not in rows recorded before 2026-12-06
            above = batch["module_s"] - udev if batch and udev is not None else None
            lines.append(
                f"| {row['luns']} | {entry['per_call']} | {_f(phases.get('write'))} | {_f(phases.get('scan'))} "
                f"| {_f(floor['module_s'])}{incomplete} | {_f(floor['module_per_lun_s'])} | {_f(udev)} "
                f"| {_f(batch['module_s']) if batch else '-'} | {_f(ratio, 1)} | {_f(above)} | {floor['unrequested']} "
                f"| {floor['samples']} |"
            )
    return lines if len(lines) > 2 else []


def goal_lines(rows: List[dict]) -> List[str]:
    """The issue's goal: 32 LUNs in one call within 3x one LUN, flat in LUNs mapped, nothing unrequested."""
    lines = []
    biggest: Dict[int, dict] = {}  # LUNs mapped -> the largest one-call size measured there
    for row in rows:
        sizes = {e["per_call"]: e for e in (row.get("per_call") or {}).get("sizes", [])}
        one = sizes.get(1, {}).get("batch") or sizes.get(1, {}).get("single")
        top = max(sizes) if sizes else None
        if top is None or top == 1 or not one or not sizes[top].get("batch"):
            continue
        many = sizes[top]["batch"]
        biggest[row["luns"]] = {"k": top, "many": many}
        module_ratio = many["module_s"] / one["module_s"] if one["module_s"] else None
        wall_ratio = many["wall_s"] / one["wall_s"] if one["wall_s"] else None
        verdict = "within" if module_ratio is not None and module_ratio <= 3 else "NOT within"
        lines.append(
            f"- {row['luns']} LUNs mapped: {top} LUNs in one call took {_f(module_ratio, 1)}x the module time and "
            f"{_f(wall_ratio, 1)}x the Ansible wall time of one LUN in one call ({verdict} 3x)."
        )
    top_k = max((v["k"] for v in biggest.values()), default=0)
    counts = sorted(m for m, v in biggest.items() if v["k"] == top_k)
    if len(counts) > 1:
        lo, hi = biggest[counts[0]]["many"], biggest[counts[-1]]["many"]
        lines.append(
            f"- {top_k} LUNs in one call with {counts[-1]} vs {counts[0]} LUNs mapped: module time "
            f"x{_f(hi['module_s'] / lo['module_s'], 2)}, Ansible wall time x{_f(hi['wall_s'] / lo['wall_s'], 2)} "
            "(1.00 is flat)."
        )
    unrequested = [
        e[arm]["unrequested"]
        for row in rows
        for e in (row.get("per_call") or {}).get("sizes", [])
        for arm in TABLE_ARMS
        if e.get(arm)
    ]
    if unrequested:
        lines.append(f"- Devices left unrequested, most in any run of either arm: {max(unrequested)}.")
    return lines


def single_lun_lines(rows: List[dict]) -> List[str]:
    lines = [
        "| LUNs mapped | bare scan s | ours: scan phase s | ours: module total s | ours: ansible wall s "
        "| ours unrequested | rescan s | rescan new devices (wanted: 2, mapped: 2 per LUN) | ours commands |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "ours" not in r:
            continue
        o = r["ours"]
        lines.append(
            f"| {r['luns']} | {r['bare']['seconds']:.3f} | {o['timings'].get('scan', 0):.3f} | "
            f"{o['timings'].get('total', 0):.3f} | {o['wall']:.1f} | {o['unrequested']} | "
            f"{_rescan(r, 'seconds')} | {_rescan(r, 'new_devices')} | {_f(o.get('commands'), 0)} |"
        )
    return lines


def print_report(rows: List[dict]) -> None:
    if any(r.get("per_call") for r in rows):
        print("\nLUNs per call (medians; module = sum of timings.total over the calls; wall = Ansible task time)")
        print("\n".join(per_call_lines(rows)))
        print("\n".join(goal_lines(rows)))
        if floor_lines(rows):
            print("\nFloor: the same scan writes without the module, multipathd building the maps alone (medians)")
            print("\n".join(floor_lines(rows)))
    single = [r for r in rows if "ours" in r]
    if single:
        print("\nOne LUN: iscsi_lun_attach vs a bare targeted scan vs a session rescan (medians)")
        print("\n".join(single_lun_lines(single)))
    if len(single) > 1:
        first, last = single[0]["ours"]["timings"]["total"], single[-1]["ours"]["timings"]["total"]
        print(f"\nours t({single[-1]['luns']})/t({single[0]['luns']}) = {last / first:.2f} (module total, medians)")
        first, last = single[0]["ours"]["timings"]["scan"], single[-1]["ours"]["timings"]["scan"]
        print(f"ours t({single[-1]['luns']})/t({single[0]['luns']}) = {last / first:.2f} (scan phase, medians)")
        for r in single:
            ratio = r["ours"]["timings"]["scan"] / r["bare"]["seconds"]
            print(f"ours scan phase / bare scan at {r['luns']} LUNs = {ratio:.2f}")


def _merge_per_call(old: dict, new: dict) -> dict:
    """Arms measured in this run replace the recorded ones of the same size; the other arms are kept."""
    sizes: Dict[int, dict] = {e["per_call"]: dict(e) for e in old.get("sizes", [])}
    for entry in new.get("sizes", []):
        merged = sizes.setdefault(entry["per_call"], {"per_call": entry["per_call"]})
        for key, value in entry.items():
            if value is not None and value != []:
                merged[key] = value
    return {"samples": max(old.get("samples", 0), new.get("samples", 0)), "sizes": [sizes[k] for k in sorted(sizes)]}


def merge(previous: dict, rows: List[dict], stamp: dict) -> dict:
    """Rows of this run replace the recorded ones of the same LUN count mapped (per part); others are kept."""
    by_count: Dict[int, dict] = {r["luns"]: r for r in previous.get("rows", [])}
    for row in rows:
        old = by_count.get(row["luns"], {})
        merged = dict(old)
        for key, value in row.items():
            merged[key] = value
        if "per_call" in row and "per_call" in old:
            merged["per_call"] = _merge_per_call(old["per_call"], row["per_call"])
        if "per_call" in row:
            merged["per_call_run"] = stamp
        if "ours" in row:
            merged["single_lun_run"] = stamp
        by_count[row["luns"]] = merged
    runs = [
        r for r in previous.get("runs", []) if r.get("command") != stamp["command"] or r.get("date") != stamp["date"]
    ]
    return {**previous, "rows": [by_count[k] for k in sorted(by_count)], "runs": [*runs, stamp]}


def write_report(out: Path, rows: List[dict], stamp: Optional[dict], notes: List[str]) -> None:
    """Merge this run's rows into OUT's .json and write OUT; without a stamp, only re-render (notes updated)."""
    json_path = out.with_suffix(".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        previous = json.loads(json_path.read_text())
    except (FileNotFoundError, ValueError):
        previous = {}
    recorded = merge(previous, rows, stamp) if stamp is not None else dict(previous, rows=previous.get("rows", []))
    recorded.setdefault("runs", [])
    recorded["notes"] = notes or previous.get("notes", [])
    json_path.write_text(json.dumps(recorded, indent=1) + "\n")
    all_rows = recorded["rows"]
    text = [
        "# Attach: several LUNs per call, and one LUN against a bare scan and a session rescan",
        "",
        f"Written by `tests/lab/bench_attach.py --out` (commands below; raw figures in [{json_path.name}]"
        f"({json_path.name})), in the lab VM: a real kernel under qemu with two iSCSI sessions (portals "
        "127.0.0.1 and 127.0.0.2) to an LIO array in the same guest, LUNs of 1 MiB, multipathd with "
        "`find_multipaths yes`. Seconds, medians over the samples.",
        "",
        "## LUNs per call",
        "",
        "*One call*: one `iscsi_lun_attach` task with `luns:` (K LUNs); *one call per LUN*: K tasks with `lun:` "
        "(one task looped over the LUNs, as a role loops). *Module s*: the module's own `timings.total`, summed "
        "over the calls (no Ansible transport). *Wall s*: the controller's clock from before the attach task to "
        "after it (SSH, module transfer and start-up per call included; the ansible-playbook process start-up "
        "not). *Unreq.*: SCSI devices present afterwards whose LUN nobody asked for. Every run starts from both "
        "sessions logged in and no device: after each run every map is flushed, every path deleted and "
        "`/etc/multipath/wwids` emptied, so each LUN is new to multipathd as on first attach. Where the array "
        "maps fewer LUNs than asked for per call, the call takes all of them (K = LUNs mapped).",
        "",
        *per_call_lines(all_rows),
        "",
        "Goal of issue 10: 32 LUNs in one call within 3x the time of one LUN, flat in the number of LUNs mapped, "
        "no device left unrequested.",
        "",
        *goal_lines(all_rows),
        "",
    ]
    if floor_lines(all_rows):
        text += [
            "### The floor: the same scan writes without the module",
            "",
            "*Floor*: in the guest, the same scan-file writes the module makes (`0 0 L` to each session's host, per "
            "LUN), then polling sysfs until every path has its block device (*devices*) and sits in an `mpath-` "
            "map that multipathd built by itself (*devices + maps*); no lock, no checks, no help to multipathd. "
            "What multipathd needs to build K maps bounds any K-LUN attach from below.",
            "",
            *floor_lines(all_rows),
            "",
        ]
    phase_lines = []
    for row in all_rows:
        for entry in (row.get("per_call") or {}).get("sizes", []):
            for arm in ARMS:
                s = entry.get(arm)
                if s and s.get("phases_s"):
                    phases = ", ".join(f"{k} {v}" for k, v in s["phases_s"].items() if k != "total")
                    phase_lines.append(f"- {row['luns']} mapped, {entry['per_call']} LUNs, {arm}: {phases}")
    if phase_lines:
        text += ["Where the module time goes (seconds by phase, summed over the calls, medians):", "", *phase_lines, ""]
    single = [r for r in all_rows if "ours" in r]
    if single:
        text += [
            "## One LUN: iscsi_lun_attach, a bare targeted scan, a session rescan",
            "",
            "*Bare scan*: `0 0 L` written to both sessions' scan files, until both block devices exist (the floor). "
            "*Ours*: an ad-hoc `ansible -m lunsafe.san.iscsi_lun_attach` of another LUN (module timings, and the "
            "wall time of the whole `ansible` command). *Rescan*: `iscsiadm -m session -R` until the wanted LUN's "
            "two devices exist (only at small LUN counts: it attaches every mapped LUN).",
            "",
            *single_lun_lines(single),
            "",
        ]
    if recorded["notes"]:
        text += ["Notes:", "", *(f"- {n}" for n in recorded["notes"]), ""]
    text += ["Runs (regenerate with the same command on a lab of the same kind):", ""]
    for run in recorded["runs"]:
        text.append(
            f"- `{run['command']}` on {run['date']} (lab kernel {run.get('kernel')}, accel {run.get('accel')}, "
            f"{run.get('vcpus', 2)} vCPUs on a {run.get('host_cores')}-core host, code {run.get('code')}): "
            f"{run.get('what', '')}"
        )
    out.write_text("\n".join(text).rstrip() + "\n")
    log(f"wrote {out} and {json_path}")


@contextlib.contextmanager
def code_under_test(ref: Optional[str]) -> Iterator[Path]:
    """A collection root holding lunsafe.san: the checkout as it is, or with --ref the files of that git ref."""
    if ref is None:
        with lab_module.collections_root() as root:
            yield root
        return
    with tempfile.TemporaryDirectory(prefix="bench-attach-ref-") as tmp:
        target = Path(tmp) / "ansible_collections" / "lunsafe" / "san"
        target.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(lab_module.REPO), "archive", "--format=tar", ref], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
        yield Path(tmp)


def code_version(ref: Optional[str]) -> str:
    """Which code was measured: a commit, and whether the checkout had changes under plugins/."""

    def git(*argv: str) -> str:
        proc = subprocess.run(["git", "-C", str(lab_module.REPO), *argv], capture_output=True, text=True, check=False)
        return proc.stdout.strip()

    if ref is not None:
        return git("rev-parse", "--short", ref)
    dirty = git("status", "--porcelain", "--", "plugins")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes under plugins/" if dirty else "")


def _strip_samples(rows: List[dict]) -> List[dict]:
    """Recorded JSON: per-sample figures kept, the module's full results left in the raw log only."""
    return json.loads(json.dumps(rows, default=str))


def _deadline(text: Optional[str]) -> Optional[float]:
    """HH:MM (UTC, today or, if already past, tomorrow) to an epoch time."""
    if not text:
        return None
    hour, minute = (int(x) for x in text.split(":"))
    now = datetime.datetime.now(datetime.timezone.utc)
    when = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if when < now:
        when += datetime.timedelta(days=1)
    return when.timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--luns", type=int, nargs="+", default=[4, 64, 256], help="LUN counts mapped")
    parser.add_argument("--name", default="bench")
    parser.add_argument("--reuse", action="store_true", help="use a running lab of that name (left running)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to measure")
    parser.add_argument("--per-call", type=int, nargs="+", default=[1, 8, 32], help="LUNs per call (part 1)")
    parser.add_argument(
        "--arms",
        nargs="+",
        choices=ARMS,
        default=list(ARMS),
        help="part 1: batch (one call), single (a call per LUN), bare (the floor: scan writes, multipathd alone)",
    )
    parser.add_argument("--samples", type=int, default=3, help="part 1: runs of each arm per size; medians shown")
    parser.add_argument(
        "--single-samples",
        type=int,
        help="part 1: at most this many runs of the single arm for sizes above 1 (default: --samples)",
    )
    parser.add_argument("--module-timeout", type=int, default=600, help="part 1: the module's timeout option")
    parser.add_argument(
        "--deadline", help="part 1: HH:MM UTC; take fewer samples (at least 1) where another would end after it"
    )
    parser.add_argument("--rescan-max", type=int, default=4, help="measure the session rescan up to this LUN count")
    parser.add_argument("--repeat", type=int, default=3, help="part 2: attaches (and bare scans) per LUN count")
    parser.add_argument("--out", help="record the results in OUT's .json and write OUT as markdown")
    parser.add_argument("--note", action="append", default=[], help="a line for the notes under the results")
    parser.add_argument("--ref", help="measure the collection as committed at this git ref (default: the checkout)")
    parser.add_argument(
        "--render", action="store_true", help="no lab: rewrite --out from its recorded .json (with --note lines)"
    )
    args = parser.parse_args()
    args.deadline = _deadline(args.deadline)
    if args.render:
        if not args.out:
            parser.error("--render needs --out")
        write_report(Path(args.out), [], None, args.note)
        return 0
    command = "python3 tests/lab/bench_attach.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lab = lab_module.Lab(args.name)
    booted = False
    if lab.pid() and not args.reuse:
        raise SystemExit(f"bench_attach: lab {args.name!r} is already running: pass --reuse, or stop it first")
    if not lab.pid():
        lab.up(
            luns=4,
            accel=os.environ.get("LUNSAFE_LAB_ACCEL", "auto"),
            boot_timeout=300,
            watch_pid=os.getpid(),
            suite=lab_module.default_suite(),  # $LUNSAFE_LAB_SUITE: bench_matrix.py measures each suite
        )
        booted = True
    info = lab.info()
    if args.ref is not None:  # one commit for the whole run, even if the branch moves meanwhile
        args.ref = subprocess.run(
            ["git", "-C", str(lab_module.REPO), "rev-parse", "--verify", args.ref + "^{commit}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    code = code_version(args.ref)
    wait_for_stray_runs(lab)
    raw_dir = lab_module.REPO / ".lab" / "bench-attach"
    raw_dir.mkdir(parents=True, exist_ok=True)
    raw_log = raw_dir / time.strftime("raw-%Y%m%dT%H%M%SZ.jsonl", time.gmtime())
    log(f"lab {args.name} (kernel {info.get('kernel')}, accel {info.get('accel')}); module results in {raw_log}")
    rows = []
    try:
        with code_under_test(args.ref) as root:
            for i, n in enumerate(args.luns):
                row = measure(
                    lab,
                    root,
                    n,
                    args.rescan_max,
                    args.repeat,
                    args=args,
                    remaining_counts=len(args.luns) - i - 1,
                    raw_log=raw_log,
                )
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        if booted:
            lab.down(purge=True)
    print_report(rows)
    if args.out:
        samples = sorted({r["per_call"]["samples"] for r in rows if r.get("per_call")})
        stamp = {
            "command": command,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "code": code,
            "kernel": info.get("kernel"),
            "accel": info.get("accel"),
            "vcpus": 2,
            "host_cores": os.cpu_count(),
            "what": ", ".join(f"{r['luns']} mapped" for r in rows)
            + (f"; part 1 with {'/'.join(map(str, samples))} sample(s) per arm and size" if samples else "")
            + (
                f" (the single arm: {args.single_samples} above 1 LUN per call)"
                if samples and args.single_samples is not None and args.single_samples < max(samples)
                else ""
            ),
        }
        write_report(Path(args.out), _strip_samples(rows), stamp, args.note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
