# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seeded fault campaign, guest side: runs the collection's modules on this host, round after round, with faults.

Copied into the lab guest by tests/lab/campaign.py and run there as root, so that a step costs a module run
and not a controller round trip. It only ever runs inside the throwaway lab VM.

The modules run directly (``python3 -m ansible_collections.lunsafe.san.plugins.modules.X ARGS.json``) from a
staged tree holding the collection's plugins and ansible-core's module_utils. The array is driven through
labctl.

Rounds: in each round ``--workers`` steps run at once, one thread each. A round is planned first, step after
step, each step from its own ``random.Random(f"{seed}:{i}")``: its kind, its LUNs (disjoint from the other
steps' of the round) and its fault points. Faults that reach the whole host (a portal down, a daemon restart)
hit every step of the round; at most one of them runs per round. The module runs serialize on the host lock.
After every round (a barrier) the invariants are checked once (see :func:`Campaign.problems`); a violation is
reported with every step of the round. What the kernel and the daemons do in between is not seeded, so the
LUNs a step can draw from, and the outcomes, can differ between two runs of one seed.

Data: LUNs with ``n % 4 == 3`` carry an ext4 filesystem with a checksummed file, mounted while held (a
detach while mounted must be refused with nothing changed); the others carry a raw checksummed pattern
written through the map before each detach and read back after each re-attach. ``inflight_write`` steps
write through a held map with O_DIRECT while the portal 127.0.0.2 is down and read it back.

Steps through the roles: with ``--role-every K`` every K-th round is a role step that the controller runs
(ansible-playbook with the collection's lun_attach or lun_detach role). The driver plans it, saves its state
in ``--state`` and exits with ``{"summary": ..., "role": {...}}``; the controller runs the role and starts the
driver again with ``--role-result``, which completes the step (held LUNs, data read back, invariants).

Reboots and power cuts (issue 28): with ``--boot-every K`` every K-th round is a boot round. The attaches then
pass ``persist: true`` and the role steps install the boot restore (the first role step attaches, so that the
service exists). The driver writes and syncs every held LUN's data, records what the host has recorded and
whether the restore service is installed, saves its state and exits with ``{"boot": {...}}``; the controller
saves the array's configuration, reboots the guest or kills its qemu, waits for the restore and starts the
driver again with ``--boot-result``. A recorded, held LUN must then be back (same WWID, data and files intact,
ext4 clean after its journal replay); a held LUN that was not recorded must not be (nothing scans it).

One JSON line per step goes to stdout, and one ``{"summary": ...}`` line at the end of each segment.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import json
import mmap
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

IQN = "iqn.2003-01.org.lunsafe.lab:array"
PORTALS = ("127.0.0.1:3260", "127.0.0.2:3260")
FLAP_PORTAL = "127.0.0.2"
LABCTL = ["python3", "/usr/local/lib/lunsafe-lab/labctl.py"]
LABCTL_STATE = "/var/lib/lunsafe-lab/state.json"
PERSIST_FILE = "/var/lib/lunsafe-san/persist.json"  # the LUNs recorded with persist: true (issue 28)
RESTORE_UNIT = "/etc/systemd/system/lunsafe-san-restore.service"  # installed by the lun_attach role
LOCK_FILE = "/run/lunsafe-san/lunsafe-san.lock"
JOURNAL = "/var/lib/lunsafe-san/lunsafe-san.lock.journal"  # the default lock file's journal is on disk
LOCK_TIMEOUT = 1200  # module runs queue on the host lock behind the other workers' runs: generous on purpose
PATTERN_BYTES = 4 * 1024 * 1024  # written through the map before each detach, read back after re-attach
INFLIGHT_OFFSET = 16 * 1024 * 1024  # the in-flight writes go here, away from the pattern
INFLIGHT_CHUNK = 256 * 1024
INFLIGHT_BYTES = 4 * 1024 * 1024
INFLIGHT_PAUSE = 0.5  # between two passes over the region while the portal is down
FS_FILE_BYTES = 1024 * 1024
MOUNT_ROOT = "/mnt/lunsafe-campaign"  # labctl reset unmounts /mnt/lunsafe*
#: what else may refuse a detach of a mounted LUN first while a fault of the round is running (a path blocked
#: while its portal is down): still a clear refusal
OTHER_REFUSALS = ("blocked", "recovery", "offline", "timed out")
SETTLE_SECONDS = 90  # how long paths may take to come back after a fault before that is a violation
POLL = 0.5

STEP_WEIGHTS = {
    "attach": 28,
    "detach": 24,
    "race_unmap": 7,
    "reuse": 4,
    "portal_flap": 6,
    "inflight_write": 5,
    "iscsid_restart": 3,
    "multipathd_restart": 3,
    "kill": 8,
    "remap": 8,
    # Fibre Channel (--fc-luns > 0): last in the table, so that with FC off (weight 0) a seed draws the same
    # kinds as before FC existed
    "fc_attach": 10,
    "fc_detach": 8,
    "fc_kill": 5,
    "fc_reuse": 3,
    "fc_port_flap": 3,
    "fc_port_loss": 2,
}
FC_KINDS = ("fc_attach", "fc_detach", "fc_kill", "fc_reuse", "fc_port_flap", "fc_port_loss")
#: steps whose fault reaches the whole host: at most one per round
GLOBAL_KINDS = ("portal_flap", "inflight_write", "iscsid_restart", "multipathd_restart", "fc_port_flap", "fc_port_loss")
FC_PORT_KINDS = ("fc_port_flap", "fc_port_loss")
FC_PATHS = 4  # the lab's 2 initiator ports x 2 target ports
#: The campaign runs FC with scsi_mod.scan=manual: with the kernel default (sync) every rport (re)login after a
#: port flap or loss scans whole targets and brings back every LUN mapped to the host, so "no FC device of a LUN
#: not held" would only hold if the array mapped nothing but the held LUNs and a detach's unmap always won the
#: race against the re-login; manual is the collection's documented hardening and leaves only the modules'
#: targeted scans, so any unrequested FC device is a finding.
FC_SCAN_MODE = "manual"
FC_DEV_LOSS_TMO = 60  # the lab's default: a port flap (down 2-10 s) stays well inside it
FC_UP_WAIT = 60  # s for a port's remote ports to be Online again after its link came up
FC_LOSS_DEV_LOSS_TMO = 8  # fc_port_loss: short (above fast_io_fail_tmo, 5 s), the port stays down past it


def sh(argv, timeout=120):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout}s"
    return proc.returncode, proc.stdout, proc.stderr


LABCTL_LOCK = threading.Lock()  # labctl keeps a state file: one labctl process at a time


def labctl(*args, timeout=300):
    with LABCTL_LOCK:
        rc, out, err = sh([*LABCTL, *args], timeout=timeout)
    if rc != 0:
        raise RuntimeError(f"labctl {' '.join(args)} failed rc={rc}: {err.strip()[-300:]}")
    return json.loads(out)


def is_fs_lun(lun):
    return lun % 4 == 3


class ModuleRun:
    """One module run as a process of its own (its own process group, so a kill reaches its children)."""

    def __init__(self, stage, module, params):
        self.fd, self.args_path = tempfile.mkstemp(prefix="campaign-", suffix=".json", dir="/var/tmp")
        with os.fdopen(self.fd, "w") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": params}, handle)
        env = dict(os.environ, PYTHONPATH=stage)
        self.start = time.monotonic()
        self.wall_start = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"ansible_collections.lunsafe.san.plugins.modules.{module}", self.args_path],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.module = module
        self.seconds = 0.0

    @property
    def pid(self):
        return self.proc.pid

    def kill(self):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def result(self, timeout=1800):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.proc.communicate()
            return {"failed": True, "msg": f"campaign: {self.module} did not end within {timeout}s", "hung": True}
        finally:
            os.unlink(self.args_path)
            self.seconds = time.monotonic() - self.start
        if self.proc.returncode == -signal.SIGKILL:
            return {"failed": True, "killed": True, "msg": "killed by the campaign"}
        try:
            result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        except ValueError:
            result = {}
        if not result:
            result = {"failed": True, "msg": f"no JSON result (rc {self.proc.returncode})", "no_result": True}
        if "Traceback" in out or "Traceback" in err:
            result["traceback"] = (err or out)[-2000:]
        return result


class Campaign:
    def __init__(self, args):
        self.args = args
        self.mu = threading.RLock()  # the campaign's state and counts, shared by the workers of a round
        self.luns = list(range(args.luns))
        # the array's view: LUN -> mapped, generation (a reuse makes a new LU with a new WWID)
        self.mapped = {lun: True for lun in self.luns}
        self.generation = {lun: 0 for lun in self.luns}
        # the host's view as the campaign wants it: LUN -> {"wwid", "map"} while attached
        self.held = {}
        self.pattern = {}  # "lun:generation" -> sha256 of the raw pattern (or of the file on a filesystem LUN)
        self.cycle = {}  # "lun:generation" -> how many times the data was rewritten (seeds the next pattern)
        self.formatted = set()  # "lun:generation" with a filesystem on it
        self.mounted = set()  # LUNs whose filesystem is mounted now
        self.next_step = 0
        self.next_round = 0
        self.pending_role = None
        self.pending_boot = None  # a reboot or power cut planned by the last segment (--boot-every)
        # Fibre Channel: the array's FC LUNs (mapped to both initiator ports all along), their generation (an
        # fc-reuse makes a new LU), the WWID the array presents now, and the FC LUNs the host holds
        self.fc_luns = list(range(args.fc_luns))
        self.fc_generation = {lun: 0 for lun in self.fc_luns}
        self.fc_wwid = {}
        self.fc_held = {}
        self.fc_targets = []  # target port WWPNs (both in every fc_lun_attach), read from labctl fc-status
        self.fc_initiator_hosts = []
        self.fc_hosts = []  # every lab fc_host, target ports included: an FC device on any of them is counted
        self.ended_pids = {}  # pid -> (start, end) of the module runs that ended by themselves (this segment)
        self.killed_pids = set()
        self.counts = {
            "steps": {},
            "faults": {},
            "errors": {},
            "violations": [],
            "kills": {},
            "refusals": {},
            "journal": {"results_with_interrupted": 0, "results_without_interrupted": 0, "entries": {}},
            "roles": {},
            "boots": {},
            "fc": {},
            "timing": {"module_s": 0.0, "check_s": 0.0, "rounds_s": 0.0, "rounds": 0, "role_s": 0.0},
            "data": {
                "written_bytes": 0,
                "verified_bytes": 0,
                "verified": 0,
                "mismatches": 0,
                "fs_verified": 0,
                "fsck_clean": 0,
                "inflight_written_bytes": 0,
                "inflight_verified_bytes": 0,
                "inflight_writes": 0,
            },
        }

    # -- state across segments ----------------------------------------------------------------------------

    STATE_KEYS = (
        "mapped",
        "generation",
        "held",
        "pattern",
        "cycle",
        "next_step",
        "next_round",
        "pending_role",
        "pending_boot",
        "fc_generation",
        "fc_wwid",
        "fc_held",
    )

    def save(self, path):
        state = {key: getattr(self, key) for key in self.STATE_KEYS}
        state["formatted"] = sorted(self.formatted)
        state["mounted"] = sorted(self.mounted)
        state["counts"] = self.counts
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(state, handle)
        os.replace(tmp, path)

    def load(self, path):
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
        for key in ("mapped", "generation", "held", "fc_generation", "fc_wwid", "fc_held"):
            setattr(self, key, {int(k): v for k, v in state.get(key, {}).items()})
        for key in ("pattern", "cycle", "next_step", "next_round", "pending_role"):
            setattr(self, key, state[key])
        self.pending_boot = state.get("pending_boot")
        self.formatted = set(state["formatted"])
        self.mounted = set(state["mounted"])
        self.counts = state["counts"]
        self.counts.setdefault("boots", {})

    # -- counting -----------------------------------------------------------------------------------------

    def bump(self, table, key, by=1):
        with self.mu:
            self.counts[table][key] = self.counts[table].get(key, 0) + by

    def fault(self, kind):
        self.bump("faults", kind)

    def data(self, key, by=1):
        self.bump("data", key, by)

    # -- modules ------------------------------------------------------------------------------------------

    def run(self, module, params, step, timeout=1800):
        run = ModuleRun(self.args.stage, module, params)
        result = run.result(timeout)
        self.took(step, run, result)
        self.note_journal(step, result)
        return result

    def took(self, step, run, result):
        """Time spent in module runs, by the module's own phases (lock wait, scan, map wait, ...)."""
        step["module_s"] = round(step.get("module_s", 0) + run.seconds, 1)
        phases = step.setdefault("phases", {})
        with self.mu:
            self.counts["timing"]["module_s"] += run.seconds
            self.counts["timing"]["module_runs"] = self.counts["timing"].get("module_runs", 0) + 1
            table = self.counts["timing"].setdefault("phases", {})
            for phase, seconds in (result.get("timings") or {}).items():
                if isinstance(seconds, (int, float)) and phase != "total":
                    phases[phase] = round(phases.get(phase, 0) + seconds, 2)
                    table[phase] = table.get(phase, 0) + seconds
            if result.get("killed") or result.get("hung"):
                self.killed_pids.add(run.pid)
            else:
                self.ended_pids[run.pid] = (run.wall_start, time.time())

    def attach_params(self, luns, state="present"):
        params = {
            "target": IQN,
            "portals": list(PORTALS),
            "luns": luns,
            "state": state,
            "timeout": 60,
            "lock_file": LOCK_FILE,
            "lock_timeout": LOCK_TIMEOUT,
        }
        if state == "absent":
            params.update(logout=False)
        elif self.args.boot_every:
            params["persist"] = True  # recorded, so that the boot restore brings the LUN back (issue 28)
        return params

    def note_error(self, step, result):
        if not result.get("failed"):
            return
        msg = str(result.get("msg", ""))
        key = msg.split(":", maxsplit=1)[0][:120] if msg else "(no message)"
        self.bump("errors", key)
        step.setdefault("errors", []).append(msg[:300])
        if result.get("traceback") or result.get("no_result") or result.get("hung") or not msg.strip():
            step["violations"].append(f"not a clear error: {msg[:200]} {result.get('traceback', '')[-300:]}")

    def note_journal(self, step, result):
        """The journal's report (issue 14 item 4): counted whenever a result carries it."""
        if result.get("killed") or result.get("hung") or result.get("no_result"):
            return
        if "interrupted" not in result:
            self.bump("journal", "results_without_interrupted")
            return
        self.bump("journal", "results_with_interrupted")
        for entry in result.get("interrupted") or []:
            if not isinstance(entry, dict):
                step["violations"].append(f"interrupted entry is not a dict: {entry!r:.200}")
                continue
            key = f"{entry.get('op')}: {entry.get('resolution')}"
            with self.mu:
                table = self.counts["journal"]["entries"]
                table[key] = table.get(key, 0) + 1
            step.setdefault("interrupted", []).append({k: entry.get(k) for k in ("op", "pid", "resolution", "done")})
            if entry.get("resolution") not in ("adopted", "removed", "left", "gone"):
                step["violations"].append(f"interrupted entry with resolution {entry.get('resolution')!r}")
            if self.ended_normally(entry):
                what = f"{entry.get('op')} pid {entry.get('pid')} started {entry.get('started')}"
                step["violations"].append(
                    f"a run that was not killed is reported as interrupted: {what}, resolution "
                    f"{entry.get('resolution')}, done {str(entry.get('done'))[:200]}"
                )
        pids = [(e.get("pid"), e.get("started")) for e in result.get("interrupted") or [] if isinstance(e, dict)]
        if len(set(pids)) != len(pids):
            step["violations"].append(f"the same interrupted run reported twice in one result: {pids}")

    def ended_normally(self, entry):
        """Whether the entry's pid is a module run of this campaign that ended by itself (its entry should be gone)."""
        window = self.ended_pids.get(entry.get("pid"))
        if window is None:
            return False
        try:
            import datetime  # noqa: PLC0415

            started = datetime.datetime.fromisoformat(str(entry.get("started")).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return True  # the pid alone: pids are not reused within one segment's runs in practice
        return window[0] - 5 <= started <= window[1] + 5

    # -- data ---------------------------------------------------------------------------------------------

    def key(self, lun):
        return f"{lun}:{self.generation[lun]}"

    def _pattern(self, lun, size, key=None):
        key = key or self.key(lun)
        with self.mu:
            self.cycle[key] = self.cycle.get(key, 0) + 1
            seed = f"{self.args.seed}:{key}:{self.cycle[key]}"
        return random.Random(seed).randbytes(size)  # noqa: S311 - a test pattern, not a secret

    def dev(self, lun):
        entry = self.held.get(lun)
        return f"/dev/mapper/{entry['map']}" if entry and entry.get("map") else None

    def write_data(self, lun, step):
        """Before a detach: the raw pattern, or the file on the filesystem (then unmounted)."""
        dev = self.dev(lun)
        if not dev:
            return
        if is_fs_lun(lun):
            self.write_file(lun, step)
            return
        self.write_raw(dev, self.key(lun), step, lun)

    def write_raw(self, dev, key, step, label):
        data = self._pattern(None, PATTERN_BYTES, key)
        fd = os.open(dev, os.O_WRONLY | os.O_SYNC)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        with self.mu:
            self.pattern[key] = hashlib.sha256(data).hexdigest()
        self.data("written_bytes", len(data))
        step.setdefault("data", []).append(f"wrote {label}")

    def verify_data(self, lun, step):
        """After an attach: read the pattern back, or fsck and mount the filesystem and check its file."""
        dev = self.dev(lun)
        if not dev:
            return
        if is_fs_lun(lun):
            self.mount_fs(lun, step)
            return
        self.verify_raw(dev, self.key(lun), step, lun)

    def verify_raw(self, dev, key, step, label):
        want = self.pattern.get(key)
        if want is None:
            self.write_raw(dev, key, step, label)
            return
        fd = os.open(dev, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, PATTERN_BYTES, os.POSIX_FADV_DONTNEED)
            data = os.read(fd, PATTERN_BYTES)
        finally:
            os.close(fd)
        self.data("verified")
        self.data("verified_bytes", len(data))
        if hashlib.sha256(data).hexdigest() != want:
            self.data("mismatches")
            step["violations"].append(f"data mismatch on LUN {label} (LUN:generation {key})")
        step.setdefault("data", []).append(f"verified {label}")

    def mountpoint(self, lun):
        return f"{MOUNT_ROOT}/lun{lun}"

    def mount_fs(self, lun, step):
        """fsck -n, mount, compare the file's checksum (a fresh LU or one never formatted gets mkfs first)."""
        dev = self.dev(lun)
        key = self.key(lun)
        os.makedirs(self.mountpoint(lun), exist_ok=True)
        if lun in self.mounted:
            return
        if key not in self.formatted:
            rc, _out, err = sh(["mkfs.ext4", "-q", "-F", "-E", "nodiscard", dev], timeout=120)
            if rc != 0:
                step["violations"].append(f"harness: mkfs.ext4 on LUN {lun} failed: {err.strip()[-200:]}")
                return
            with self.mu:
                self.formatted.add(key)
                self.pattern.pop(key, None)
            step.setdefault("data", []).append(f"mkfs {lun}")
        else:
            self.fsck(lun, step, "")
        rc, _out, err = sh(["mount", "-t", "ext4", dev, self.mountpoint(lun)], timeout=60)
        if rc != 0:
            self.data("mismatches")
            step["violations"].append(f"mount of LUN {lun} failed: {err.strip()[-200:]}")
            return
        with self.mu:
            self.mounted.add(lun)
        want = self.pattern.get(key)
        if want is None:
            self.write_file(lun, step, unmount=False)
            return
        self.check_file(lun, step, want, f"file checksum mismatch on LUN {lun} generation {self.generation[lun]}")
        step.setdefault("data", []).append(f"fs verified {lun}")

    def check_file(self, lun, step, want, mismatch):
        """The checksum of the mounted LUN's data file against ``want`` (``mismatch``: the violation)."""
        try:
            with open(f"{self.mountpoint(lun)}/data.bin", "rb") as handle:
                got = hashlib.sha256(handle.read()).hexdigest()
        except OSError as exc:
            got = f"unreadable: {exc}"
        self.data("verified")
        self.data("fs_verified")
        self.data("verified_bytes", FS_FILE_BYTES)
        if got != want:
            self.data("mismatches")
            step["violations"].append(mismatch)

    def write_file(self, lun, step, unmount=True):
        if lun not in self.mounted:
            self.mount_fs(lun, step)
            if lun not in self.mounted:
                return
        data = self._pattern(lun, FS_FILE_BYTES)
        path = f"{self.mountpoint(lun)}/data.bin"
        with open(path + ".tmp", "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(path + ".tmp", path)
        dirfd = os.open(self.mountpoint(lun), os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)
        with self.mu:
            self.pattern[self.key(lun)] = hashlib.sha256(data).hexdigest()
        self.data("written_bytes", len(data))
        step.setdefault("data", []).append(f"fs wrote {lun}")
        if unmount:
            self.unmount(lun, step)

    def unmount(self, lun, step):
        if lun not in self.mounted:
            return
        rc, _out, err = sh(["umount", self.mountpoint(lun)], timeout=120)
        if rc != 0:
            step["violations"].append(f"harness: umount of LUN {lun} failed: {err.strip()[-200:]}")
            return
        with self.mu:
            self.mounted.discard(lun)

    # -- the host as sysfs shows it -----------------------------------------------------------------------

    def lun_view(self, lun):
        """The LUN's SCSI devices (hctl, state, name) and the multipath maps above them."""
        devices = []
        maps = set()
        for path in glob.glob(f"/sys/class/iscsi_session/session*/device/target*/*:*:*:{lun}"):
            block = glob.glob(f"{path}/block/*")
            name = os.path.basename(block[0]) if block else None
            devices.append((os.path.basename(path), _read(f"{path}/state"), name))
            for holder in glob.glob(f"/sys/block/{name}/holders/dm-*") if name else []:
                dm_name = _read(f"{holder}/dm/name")
                uuid = _read(f"{holder}/dm/uuid") or ""
                maps.add((dm_name, uuid[len("mpath-") :] if uuid.startswith("mpath-") else uuid))
        return sorted(devices, key=str), sorted(maps, key=str)

    def footprint(self, lun):
        """What a run can add or remove for the LUN: its devices and maps (not their states, which a portal flap
        or a daemon restart of the same round changes)."""
        devices, maps = self.lun_view(lun)
        return sorted((hctl, name) for hctl, _state, name in devices), [name for name, _wwid in maps]

    def adopt_observed(self, lun):
        """A LUN attached by someone else (a role): held when a multipath map sits on its paths."""
        _devices, maps = self.lun_view(lun)
        if maps:
            with self.mu:
                self.held[lun] = {"wwid": maps[0][1], "map": maps[0][0]}
            return True
        return False

    # -- planning -----------------------------------------------------------------------------------------

    def plan(self, index, reserved, global_taken):
        """Draw step ``index``: its kind and its LUNs (not in ``reserved``), with its own RNG."""
        rng = random.Random(f"{self.args.seed}:{index}")  # noqa: S311 - seeded on purpose: replayable
        weights = {**STEP_WEIGHTS, **self.args.weights}
        kinds = list(weights)
        kind = rng.choices(kinds, [weights[k] for k in kinds])[0]
        step = {"i": index, "kind": kind, "drawn": kind, "violations": []}
        if kind in GLOBAL_KINDS and global_taken:
            kind = "attach"  # one host-wide fault per round: the others of the round become attaches
        if kind in FC_KINDS and ("fc-port" in reserved or (kind in FC_PORT_KINDS and "fc-step" in reserved)):
            kind = "attach"  # an FC port fault has the FC LUNs to itself: its round has no other FC step
        plan = getattr(self, f"plan_{kind}")(rng, step, reserved)
        if step["kind"] in GLOBAL_KINDS:
            step["global"] = True
        if step["kind"] in FC_KINDS:
            reserved.add("fc-port" if step["kind"] in FC_PORT_KINDS else "fc-step")
        reserved.update(step.get("luns", []))
        reserved.update([step["victim"]] if "victim" in step else [])
        return rng, step, plan

    def attachable(self, reserved):
        return [lun for lun in self.luns if lun not in self.held and self.mapped[lun] and lun not in reserved]

    def detachable(self, reserved):
        return [lun for lun in sorted(self.held) if lun not in reserved]

    def plan_attach(self, rng, step, reserved):
        step["kind"] = "attach"
        pool = self.attachable(reserved)
        if not pool:
            return self.plan_remap(rng, step, reserved)
        step["luns"] = sorted(rng.sample(pool, min(len(pool), rng.randint(1, 3))))
        return self.step_attach

    def plan_detach(self, rng, step, reserved):
        step["kind"] = "detach"
        pool = self.detachable(reserved)
        if not pool:
            return self.plan_attach(rng, step, reserved)
        step["luns"] = sorted(rng.sample(pool, min(len(pool), rng.randint(1, 2))))
        step["try_mounted"] = rng.random() < 0.7
        return self.step_detach

    def plan_race_unmap(self, rng, step, reserved):
        pool = self.attachable(reserved)
        held = self.detachable(reserved)
        if not held or not pool:
            return self.plan_attach(rng, step, reserved)
        victim = rng.choice(held)
        step.update(luns=[rng.choice(pool)], victim=victim, unmap_after=round(rng.uniform(0, 4), 2))
        return self.step_race_unmap

    def plan_remap(self, rng, step, reserved):
        step["kind"] = "remap"
        unmapped = [lun for lun in self.luns if not self.mapped[lun] and lun not in reserved]
        if not unmapped:
            step["kind"] = "noop"
            return lambda step: {}
        step["luns"] = [rng.choice(unmapped)]
        return self.step_remap

    def plan_reuse(self, rng, step, reserved):
        free = [lun for lun in self.luns if lun not in self.held and lun not in reserved]
        if not free:
            return self.plan_detach(rng, step, reserved)
        step["luns"] = [rng.choice(free)]
        return self.step_reuse

    def plan_portal_flap(self, rng, step, reserved):
        during = rng.choice(["attach", "detach"])
        step.update(down_for=round(rng.uniform(2, 10), 2), start_after=round(rng.uniform(0, 3), 2))
        inner = (self.plan_attach if during == "attach" else self.plan_detach)(rng, step, reserved)
        step.update(kind="portal_flap", during=step["kind"])
        return lambda step: self.step_portal_flap(step, inner)

    def plan_inflight_write(self, rng, step, reserved):
        pool = [lun for lun in self.detachable(reserved) if not is_fs_lun(lun)]
        if not pool:
            return self.plan_portal_flap(rng, step, reserved)
        step.update(
            luns=[rng.choice(pool)],
            down_after=round(rng.uniform(0, 1), 2),
            down_for=round(rng.uniform(2, 8), 2),
            write_seed=rng.randrange(2**32),
        )
        return self.step_inflight_write

    def plan_iscsid_restart(self, rng, step, reserved):
        return lambda step: self.step_restart(step, "iscsid")

    def plan_multipathd_restart(self, rng, step, reserved):
        return lambda step: self.step_restart(step, "multipathd")

    def plan_kill(self, rng, step, reserved):
        pool = self.attachable(reserved)
        held = self.detachable(reserved)
        detach = bool(held) and (not pool or rng.random() < 0.4)
        if not held and not pool:
            return self.plan_remap(rng, step, reserved)
        step.update(
            luns=[rng.choice(held if detach else pool)],
            action="detach" if detach else "attach",
            kill_after=round(rng.uniform(0, 6), 2),
        )
        return self.step_kill

    # -- steps --------------------------------------------------------------------------------------------

    def record_attach(self, result, luns, step):
        for entry in result.get("luns", []) or []:
            lun = entry.get("linux_lun")
            if lun in luns and entry.get("state") == "attached":
                dm = entry.get("dm") or {}
                with self.mu:
                    self.held[lun] = {"wwid": entry.get("wwid"), "map": dm.get("name")}
        for lun in luns:
            if lun in self.held:
                self.verify_data(lun, step)

    def step_attach(self, step):
        luns = step["luns"]
        result = self.run("iscsi_lun_attach", self.attach_params(luns), step)
        self.note_error(step, result)
        step["ok"] = not result.get("failed")
        self.record_attach(result, luns, step)
        return result

    def detach(self, luns, step, try_mounted=False):
        fs_luns = [lun for lun in luns if lun in self.mounted]
        if try_mounted and fs_luns:
            self.refuse_mounted(fs_luns[0], step)
        for lun in luns:
            self.write_data(lun, step)
        result = self.run("iscsi_lun_attach", self.attach_params(luns, "absent"), step)
        self.note_error(step, result)
        if not result.get("failed"):
            with self.mu:
                for lun in luns:
                    self.held.pop(lun, None)
        else:
            self.after_failed_detach(luns, step)
        return result

    def after_failed_detach(self, luns, step):
        """A detach that failed: the LUNs it left whole stay held (their filesystem mounted again)."""
        for lun in luns:
            devices, maps = self.lun_view(lun)
            if not devices and not maps:
                with self.mu:
                    self.held.pop(lun, None)
            elif lun in self.held and is_fs_lun(lun) and maps:
                self.mount_fs(lun, step)

    def refuse_mounted(self, lun, step):
        """A detach of a mounted LUN must be refused with a clear error naming the mount, nothing changed."""
        before = self.footprint(lun)
        result = self.run("iscsi_lun_attach", self.attach_params([lun], "absent"), step)
        after = self.footprint(lun)
        msg = str(result.get("msg", ""))
        if not result.get("failed"):
            outcome = "not refused"
            step["violations"].append(f"detach of mounted LUN {lun} was not refused: {json.dumps(result)[:300]}")
            with self.mu:
                self.held.pop(lun, None)
                self.mounted.discard(lun)
            sh(["umount", "-l", self.mountpoint(lun)], timeout=60)
        elif after != before:
            outcome = "refused, but changed"
            step["violations"].append(f"refused detach of mounted LUN {lun} changed it: {before} -> {after}")
        elif "mount" in msg.lower() and not result.get("traceback"):
            outcome = "refused, nothing changed"
        elif any(word in msg.lower() for word in OTHER_REFUSALS) and not result.get("traceback"):
            outcome = "refused for another cause first (a fault of the round), nothing changed"
        else:
            outcome = "refused without naming the mount"
            step["violations"].append(f"refused detach of mounted LUN {lun} is not a clear error: {msg[:300]}")
        self.bump("refusals", f"mounted detach: {outcome}")
        step["refused"] = outcome
        step.setdefault("refusal_msg", msg[:200])

    def step_detach(self, step):
        result = self.detach(step["luns"], step, try_mounted=step.get("try_mounted", False))
        step["ok"] = not result.get("failed")
        return result

    def step_race_unmap(self, step):
        """Detach LUN B, then attach LUN A while the array unmaps B at a random point of A's attach.

        The array unmaps B only when its detach succeeded, as a runbook (and the lun_detach role's unmap hook)
        does: unmapping a LUN the host still holds makes faulty paths that no module can prevent."""
        victim, delay = step["victim"], step["unmap_after"]
        detached = not self.detach([victim], step).get("failed")
        timer = threading.Timer(delay, lambda: self._unmap(victim)) if detached else None
        if timer is None:
            step["unmap"] = "skipped: the detach failed"
        else:
            timer.start()
        result = self.run("iscsi_lun_attach", self.attach_params(step["luns"]), step)
        if timer is not None:
            timer.join()
            self.fault("array_unmap")
        self.note_error(step, result)
        step["ok"] = not result.get("failed")
        self.record_attach(result, step["luns"], step)
        return result

    def _unmap(self, lun):
        labctl("unmap", str(lun))
        with self.mu:
            self.mapped[lun] = False

    def step_remap(self, step):
        lun = step["luns"][0]
        labctl("map", str(lun))
        with self.mu:
            self.mapped[lun] = True
        return {}

    def step_reuse(self, step):
        lun = step["luns"][0]
        labctl("reuse", str(lun))
        with self.mu:
            self.generation[lun] += 1
            self.mapped[lun] = True
        self.fault("lun_reused")
        return {}

    def portal_down(self, after, down_for, step):
        """Portal 127.0.0.2 down ``after`` s from now for ``down_for`` s, in a thread (joined by the caller)."""

        def flap():
            time.sleep(after)
            try:
                labctl("portal", "down", FLAP_PORTAL)
                step["portal_down_at"] = round(time.monotonic() - started, 2)
                time.sleep(down_for)
            except RuntimeError as exc:
                step["violations"].append(f"harness: {exc}")
            finally:
                labctl("portal", "up", FLAP_PORTAL)

        started = time.monotonic()
        thread = threading.Thread(target=flap)
        thread.start()
        self.fault("portal_flap")
        return thread

    def step_portal_flap(self, step, inner):
        """Portal 127.0.0.2 down for a few seconds during an attach or a detach."""
        thread = self.portal_down(step["start_after"], step["down_for"], step)
        try:
            return inner(step)
        finally:
            thread.join()

    def step_inflight_write(self, step):
        """Writes in flight through a held map (O_DIRECT, O_SYNC) while the portal 127.0.0.2 goes down and comes
        back: they must complete through the other path and read back intact."""
        lun = step["luns"][0]
        dev = self.dev(lun)
        data = random.Random(step["write_seed"]).randbytes(INFLIGHT_BYTES)  # noqa: S311 - a test pattern
        buffer = mmap.mmap(-1, INFLIGHT_CHUNK)  # page aligned, as O_DIRECT wants
        thread = self.portal_down(step["down_after"], step["down_for"], step)
        started = time.monotonic()
        error = None
        passes = 0
        try:
            fd = os.open(dev, os.O_WRONLY | os.O_DIRECT | os.O_SYNC)
            try:
                # the same data, pass after pass, until the portal is back: writes are in flight all along
                while passes == 0 or thread.is_alive():
                    for offset in range(0, INFLIGHT_BYTES, INFLIGHT_CHUNK):
                        buffer.seek(0)
                        buffer.write(data[offset : offset + INFLIGHT_CHUNK])
                        written = os.pwritev(fd, [buffer], INFLIGHT_OFFSET + offset)
                        if written != INFLIGHT_CHUNK:
                            raise OSError(f"short write {written} at {offset}")
                    passes += 1
                    time.sleep(INFLIGHT_PAUSE)  # paced: a few passes while the path is down, not hundreds of MiB
            finally:
                os.close(fd)
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
        step["passes"] = passes
        step["write_s"] = round(time.monotonic() - started, 2)
        thread.join()
        self.data("inflight_writes")
        if error:
            self.data("mismatches")
            step["violations"].append(f"in-flight write to LUN {lun} failed during the path failure: {error}")
            return {}
        self.data("inflight_written_bytes", INFLIGHT_BYTES * passes)
        got = bytearray()
        fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
        try:
            for offset in range(0, INFLIGHT_BYTES, INFLIGHT_CHUNK):
                count = os.preadv(fd, [buffer], INFLIGHT_OFFSET + offset)
                got += buffer[:count]
        finally:
            os.close(fd)
            buffer.close()
        self.data("inflight_verified_bytes", len(got))
        if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
            self.data("mismatches")
            step["violations"].append(f"in-flight data mismatch on LUN {lun}")
        step.setdefault("data", []).append(f"in-flight {INFLIGHT_BYTES // 2**20} MiB verified {lun}")
        return {}

    def step_restart(self, step, unit):
        sh(["systemctl", "restart", unit], timeout=120)
        self.fault(f"{unit}_restart")
        return {}

    def step_kill(self, step):
        """Start an attach (or detach), SIGKILL the module at a random point, then run the same request again:
        it must converge, and report what the killed run had left (the journal, when the module has it).
        fc_kill: the same with fc_lun_attach on an FC LUN (4 paths, no login)."""
        fc = step["kind"] == "fc_kill"
        lun, detach = (step["fc"] if fc else step["luns"])[0], step["action"] == "detach"
        if detach:
            (self.fc_write if fc else self.write_data)(lun, step)
        state = "absent" if detach else "present"
        params = self.fc_params([lun], state) if fc else self.attach_params([lun], state)
        module = "fc_lun_attach" if fc else "iscsi_lun_attach"
        footprint = self.fc_footprint if fc else self.footprint
        before = footprint(lun)
        run = ModuleRun(self.args.stage, module, params)
        cancel = threading.Event()

        def killer():  # the kill point counts from the moment the run holds the host lock, not from its start
            waited = wait_lock_holder(run.proc, cancel)
            step["lock_wait_s"] = round(waited, 2)
            if not cancel.wait(step["kill_after"]):
                run.kill()

        timer = threading.Thread(target=killer)
        timer.start()
        first = run.result()
        cancel.set()
        timer.join()
        self.took(step, run, first)
        step["killed"] = bool(first.get("killed"))
        self.fault("fc_sigkill" if fc else "sigkill")
        between = footprint(lun)
        # what the killed run left: its journal entry (the module's own trail) and the LUN's devices and maps
        step["journal_entry"] = journal_has(run.pid) if step["killed"] else None
        partial = between[0] if detach else not (len(between[0]) == (FC_PATHS if fc else len(PORTALS)) and between[1])
        step["changed_by_kill"] = step["killed"] and between != before
        leftovers = step["killed"] and (step["journal_entry"] or (between != before and partial))
        step["left_by_kill"] = bool(leftovers)
        again = self.run(module, params, step)
        self.note_error(step, again)
        step["ok"] = not again.get("failed")
        step["rerun_changed"] = again.get("changed")
        outcome = self.kill_outcome(step, run.pid, first, again, leftovers)
        self.bump("kills", f"{'FC ' if fc else ''}{step['action']}: {outcome}")
        if detach and not again.get("failed"):
            with self.mu:
                (self.fc_held if fc else self.held).pop(lun, None)
        elif detach:
            (self.fc_after_failed_detach if fc else self.after_failed_detach)([lun], step)
        else:
            (self.fc_record_attach if fc else self.record_attach)(again, [lun], step)
        return again

    def kill_outcome(self, step, pid, first, again, leftovers):  # noqa: PLR0911 - one return per outcome
        if not step["killed"]:
            return "not killed (the run ended first)" if not first.get("failed") else "not killed (failed first)"
        if "interrupted" not in again:  # the module has no journal yet: counted as before, nothing checked
            return f"re-run {'changed' if again.get('changed') else 'unchanged'} (no journal in the result)"
        mine = [e for e in again.get("interrupted") or [] if isinstance(e, dict) and e.get("pid") == pid]
        want = "removed" if step["action"] == "detach" else "adopted"
        if not mine:
            if leftovers:
                trail = "its journal entry" if step["journal_entry"] else "a partial LUN and no journal entry"
                step["violations"].append(
                    f"unreported leftovers: the killed {step['action']} (pid {pid}) left {trail} for LUN "
                    f"{step['luns'][0]} and the re-run reports no interrupted run"
                )
                return "unreported leftovers"
            if step["changed_by_kill"]:
                return "killed after its work was done (no entry left, nothing to report)"
            return "nothing left"
        entry = mine[0]
        resolution = entry.get("resolution")
        if resolution != want and not again.get("failed"):
            step["violations"].append(
                f"the re-run of the same request resolved the killed {step['action']} as {resolution!r}, not {want}"
            )
        if resolution == "adopted" and entry.get("done") and not again.get("changed"):
            step["violations"].append("the re-run adopted the killed run's leftovers but reports changed=false")
        if entry.get("done"):
            return f"{resolution} and reported"
        return f"nothing written, entry {resolution}"

    # -- Fibre Channel ------------------------------------------------------------------------------------

    def fc_setup(self):
        """Once per segment: automatic scans off (see FC_SCAN_MODE), the default dev_loss_tmo, and the ports and
        LUNs as labctl fc-status shows them (target ports sorted, so that a seed draws the same port)."""
        labctl("fc-scan-mode", FC_SCAN_MODE)
        labctl("fc-dev-loss-tmo", str(FC_DEV_LOSS_TMO))
        weights = {**STEP_WEIGHTS, **self.args.weights}
        if any(weights.get(kind) for kind in FC_PORT_KINDS):
            # the kernel's messages at every level to the console too: when a port fault wedges the guest (seen:
            # kworkers blocked, SSH gone), the console log on the controller keeps the blocked tasks' stacks
            sh(["dmesg", "--console-level", "7"], timeout=30)
        status = labctl("fc-status")
        self.fc_targets = sorted(port["port_name"] for port in status["targets"])
        self.fc_initiator_hosts = [port["host"] for port in status["initiators"]]
        # the target ports' hosts too (an FC device on one is counted); a two-guest lab's are in the array guest
        self.fc_hosts = [port["host"] for port in status["initiators"] + status["targets"] if port["host"] is not None]
        with self.mu:
            for lun in self.fc_luns:
                self.fc_wwid.setdefault(lun, status["luns"][str(lun)]["wwid"])
            where = f", the FC target in a guest of its own ({status['array']})" if status.get("array") else ""
            self.counts["fc"].setdefault("setup", f"{len(self.fc_luns)} FC LUNs, scsi_mod.scan {FC_SCAN_MODE}{where}")

    def fc_params(self, luns, state="present", wwids=None):
        """fc_lun_attach for ``luns`` through both target ports, each LUN with the WWID it must carry: the
        array's current one for an attach (what Cinder knows), the held one for a detach."""
        wwids = wwids or {}
        entries = []
        for lun in luns:
            wwid = wwids.get(lun) or (self.fc_held.get(lun, {}).get("wwid") if state == "absent" else None)
            entries.append({"lun": str(lun), "expected_wwid": wwid or self.fc_wwid[lun]})
        return {
            "targets": list(self.fc_targets),
            "luns": entries,
            "state": state,
            "timeout": 60,
            "lock_file": LOCK_FILE,
            "lock_timeout": LOCK_TIMEOUT,
        }

    def fc_devices(self):
        """Every SCSI device on the lab's fc_hosts, by LUN: hctl, host, state, block name, WWID (multipath form)."""
        devices = {}
        for host in self.fc_hosts:
            for path in glob.glob(f"/sys/class/scsi_device/{host}:*:*:*"):
                hctl = os.path.basename(path)
                block = glob.glob(f"{path}/device/block/*")
                wwid = _read(f"{path}/device/wwid") or ""
                devices.setdefault(int(hctl.rsplit(":", 1)[1]), []).append(
                    {
                        "hctl": hctl,
                        "host": host,
                        "state": _read(f"{path}/device/state"),
                        "name": os.path.basename(block[0]) if block else None,
                        "wwid": "3" + wwid[4:] if wwid.startswith("naa.") else wwid,
                    }
                )
        return devices

    def fc_lun_view(self, lun):
        devices = self.fc_devices().get(lun, [])
        maps = set()
        for device in devices:
            for holder in glob.glob(f"/sys/block/{device['name']}/holders/dm-*") if device["name"] else []:
                uuid = _read(f"{holder}/dm/uuid") or ""
                maps.add((_read(f"{holder}/dm/name"), uuid[len("mpath-") :] if uuid.startswith("mpath-") else uuid))
        return sorted(devices, key=lambda d: d["hctl"]), sorted(maps, key=str)

    def fc_footprint(self, lun):
        devices, maps = self.fc_lun_view(lun)
        return sorted((d["hctl"], d["name"]) for d in devices), [name for name, _wwid in maps]

    def fc_running(self, lun):
        return [d for d in self.fc_devices().get(lun, []) if d["name"] and d["state"] == "running"]

    def fc_write(self, lun, step):
        """Before an FC detach: the raw pattern through the map (FC LUNs carry no filesystem)."""
        entry = self.fc_held.get(lun)
        if entry and entry.get("map"):
            self.write_raw(f"/dev/mapper/{entry['map']}", f"fc{lun}:{self.fc_generation[lun]}", step, f"fc{lun}")

    def fc_verify(self, lun, step):
        """After an FC attach (or a path loss): the pattern read back, or a first one written on a new LU."""
        entry = self.fc_held.get(lun)
        if entry and entry.get("map"):
            self.verify_raw(f"/dev/mapper/{entry['map']}", f"fc{lun}:{self.fc_generation[lun]}", step, f"fc{lun}")

    def fc_record_attach(self, result, luns, step):
        """The LUNs the run attached are held; each must carry the WWID the array presents at that number now."""
        for entry in result.get("luns", []) or []:
            lun = entry.get("linux_lun")
            if lun in luns and entry.get("state") == "attached":
                if entry.get("wwid") != self.fc_wwid[lun]:
                    step["violations"].append(
                        f"FC LUN {lun} attached as WWID {entry.get('wwid')}, the array presents {self.fc_wwid[lun]}"
                    )
                with self.mu:
                    self.fc_held[lun] = {"wwid": entry.get("wwid"), "map": (entry.get("dm") or {}).get("name")}
        for lun in luns:
            if lun in self.fc_held:
                self.fc_verify(lun, step)

    def fc_after_failed_detach(self, luns, step):
        for lun in luns:
            devices, maps = self.fc_lun_view(lun)
            if not devices and not maps:
                with self.mu:
                    self.fc_held.pop(lun, None)

    def fc_port_rports(self, port):
        """The initiators' remote ports of target port ``port`` (WWPN) and their states."""
        states = []
        for host in self.fc_initiator_hosts:
            for path in glob.glob(f"/sys/class/fc_remote_ports/rport-{host}:*"):
                if _read(f"{path}/port_name") == port:
                    states.append(_read(f"{path}/port_state"))
        return states

    def fc_paths_now(self, luns, present=False):
        """Running paths (or with ``present`` every SCSI device, whatever its state) per FC LUN."""
        devices = self.fc_devices()
        counts = {}
        for lun in luns:
            counts[lun] = len([d for d in devices.get(lun, []) if present or (d["name"] and d["state"] == "running")])
        return counts

    def fc_expect_paths(self, luns, want, step, when, *, wait=0.0, present=False):
        """Each of ``luns`` has ``want`` running FC paths (polled for up to ``wait`` s: the kernel blocks or
        removes a port's devices a moment after the remote port's state changed)."""
        deadline = time.monotonic() + wait
        counts = self.fc_paths_now(luns, present)
        while any(count != want for count in counts.values()) and time.monotonic() < deadline:
            time.sleep(POLL)
            counts = self.fc_paths_now(luns, present)
        step.setdefault("fc_paths", {})[when] = {str(k): v for k, v in counts.items()}
        for lun, count in counts.items():
            if count != want:
                step["violations"].append(f"held FC LUN {lun}: {count} running paths {when}, expected {want}")
        self.bump("fc", f"{step['kind']}: held LUNs with {want} of {FC_PATHS} paths {when}", len(counts))

    # FC planning: FC LUNs are reserved as "fcN" (the iSCSI LUNs as numbers); step["luns"] names them so,
    # step["fc"] holds the numbers

    def fc_attachable(self, reserved):
        return [lun for lun in self.fc_luns if lun not in self.fc_held and f"fc{lun}" not in reserved]

    def fc_detachable(self, reserved):
        return [lun for lun in sorted(self.fc_held) if f"fc{lun}" not in reserved]

    def fc_choose(self, step, luns):
        step.update(fc=sorted(luns), luns=[f"fc{lun}" for lun in sorted(luns)])

    def plan_noop(self, step):
        step["kind"] = "noop"
        return lambda step: {}

    def plan_fc_attach(self, rng, step, reserved, fallback=True):
        step["kind"] = "fc_attach"
        pool = self.fc_attachable(reserved)
        if not pool:
            return self.plan_fc_detach(rng, step, reserved, fallback=False) if fallback else self.plan_noop(step)
        self.fc_choose(step, rng.sample(pool, min(len(pool), rng.randint(1, 2))))
        return self.step_fc_attach

    def plan_fc_detach(self, rng, step, reserved, fallback=True):
        step["kind"] = "fc_detach"
        pool = self.fc_detachable(reserved)
        if not pool:
            return self.plan_fc_attach(rng, step, reserved, fallback=False) if fallback else self.plan_noop(step)
        self.fc_choose(step, rng.sample(pool, min(len(pool), rng.randint(1, 2))))
        return self.step_fc_detach

    def plan_fc_kill(self, rng, step, reserved):
        pool = self.fc_attachable(reserved)
        held = self.fc_detachable(reserved)
        if not held and not pool:
            return self.plan_noop(step)
        detach = bool(held) and (not pool or rng.random() < 0.4)
        self.fc_choose(step, [rng.choice(held if detach else pool)])
        step.update(action="detach" if detach else "attach", kill_after=round(rng.uniform(0, 6), 2))
        return self.step_kill

    def plan_fc_reuse(self, rng, step, reserved):
        pool = [lun for lun in self.fc_luns if f"fc{lun}" not in reserved]
        if not pool:
            return self.plan_noop(step)
        self.fc_choose(step, [rng.choice(pool)])
        return self.step_fc_reuse

    def plan_fc_attach_first(self, rng, step, reserved):
        """A port fault needs a held FC LUN to say anything: with none held, its step attaches one first."""
        pool = self.fc_attachable(reserved)
        if not self.fc_detachable(reserved) and pool:
            step["attach_first"] = [rng.choice(pool)]
            reserved.add(f"fc{step['attach_first'][0]}")

    def fc_attach_first(self, step):
        if step.get("attach_first"):
            result = self.run("fc_lun_attach", self.fc_params(step["attach_first"]), step)
            self.note_error(step, result)
            self.fc_record_attach(result, step["attach_first"], step)

    def plan_fc_port_flap(self, rng, step, reserved):
        during = rng.choice(["fc_attach", "fc_detach", "none"])
        self.plan_fc_attach_first(rng, step, reserved)
        step.update(
            port=rng.choice(self.fc_targets),
            down_for=round(rng.uniform(2, 10), 2),
            start_after=round(rng.uniform(0, 3), 2),
        )
        if during == "none":
            inner = self.plan_noop(step)
        else:
            inner = (self.plan_fc_attach if during == "fc_attach" else self.plan_fc_detach)(rng, step, reserved)
        step.update(kind="fc_port_flap", during=step["kind"])
        return lambda step: self.step_fc_port_flap(step, inner)

    def plan_fc_port_loss(self, rng, step, reserved):
        self.plan_fc_attach_first(rng, step, reserved)
        step.update(port=rng.choice(self.fc_targets), past_loss=round(rng.uniform(1, 5), 2))
        return self.step_fc_port_loss

    # FC steps

    def step_fc_attach(self, step):
        luns = step["fc"]
        result = self.run("fc_lun_attach", self.fc_params(luns), step)
        self.note_error(step, result)
        step["ok"] = not result.get("failed")
        self.fc_record_attach(result, luns, step)
        return result

    def step_fc_detach(self, step):
        luns = step["fc"]
        for lun in luns:
            self.fc_write(lun, step)
        result = self.run("fc_lun_attach", self.fc_params(luns, "absent"), step)
        self.note_error(step, result)
        step["ok"] = not result.get("failed")
        if step["ok"]:
            with self.mu:
                for lun in luns:
                    self.fc_held.pop(lun, None)
        else:
            self.fc_after_failed_detach(luns, step)
        return result

    def step_fc_reuse(self, step):
        """The array puts a new LU (new WWID) behind the LUN number. Released: the next fc_attach must hand out
        the new LU (its WWID is what that attach expects and checks). Held: the host's paths now lead to the new
        LU while their devices still carry the old identity: an attach expecting the new WWID must refuse and
        change nothing (stale_device=fail), and a detach expecting the held WWID releases the stale paths."""
        lun = step["fc"][0]
        held = self.fc_held.get(lun)
        out = labctl("fc-reuse", "--lun", str(lun))
        with self.mu:
            self.fc_generation[lun] += 1
            self.fc_wwid[lun] = out["wwid"]
        self.fault("fc_lun_reused_held" if held else "fc_lun_reused")
        step["held"] = bool(held)
        if not held:
            return {}
        before = self.fc_footprint(lun)
        result = self.run("fc_lun_attach", self.fc_params([lun]), step)
        after = self.fc_footprint(lun)
        msg = str(result.get("msg", ""))
        if not result.get("failed"):
            outcome = "attach not refused"
            step["violations"].append(
                f"attach of FC LUN {lun} (reused while held, new WWID {out['wwid']}) was not refused: "
                f"{json.dumps(result.get('luns'))[:300]}"
            )
        elif after != before:
            outcome = "attach refused, but changed"
            step["violations"].append(f"refused attach of reused FC LUN {lun} changed it: {before} -> {after}")
        elif result.get("traceback") or not msg.strip():
            outcome = "attach refused without a clear error"
            step["violations"].append(f"refused attach of reused FC LUN {lun}: not a clear error: {msg[:300]}")
        else:
            outcome = "attach refused, nothing changed"
        self.bump("refusals", f"FC LUN reused while held: {outcome}")
        step["refused"] = outcome
        step["refusal_msg"] = msg[:200]
        result = self.run("fc_lun_attach", self.fc_params([lun], "absent", {lun: held["wwid"]}), step)
        self.note_error(step, result)
        step["ok"] = not result.get("failed")
        self.fc_after_failed_detach([lun], step)
        if lun in self.fc_held:
            step["violations"].append(f"FC LUN {lun} reused while held: the stale paths could not be released")
        self.bump("fc", f"reused while held, then released: {'yes' if lun not in self.fc_held else 'no'}")
        return result

    def fc_port_down(self, port, after, down_for, step, held):
        """Target port ``port`` down ``after`` s from now until its remote ports are Blocked, then ``down_for`` s
        more (all well inside dev_loss_tmo), in a thread (joined by the caller);
        while it is down the held FC LUNs (``held``) must run on the other 2 of their 4 paths."""

        def flap():
            time.sleep(after)
            try:
                out = labctl("fc-port", "down", "--port", port, "--wait", "30")
                step["down_at"] = round(time.monotonic() - started, 2)
                step["rports_down"] = [r["port_state"] for r in out.get("rports", [])]
                self.fc_expect_paths(held, FC_PATHS // 2, step, "while the port was down", wait=10)
                time.sleep(down_for)  # Blocked this long (the lab's VN2VN initiators notice a link down in ~20 s)
            except RuntimeError as exc:
                step["violations"].append(f"harness: {exc}")
            finally:
                self.fc_port_up(port, step)

        started = time.monotonic()
        thread = threading.Thread(target=flap)
        thread.start()
        self.fault("fc_port_flap")
        return thread

    def fc_port_up(self, port, step):
        """The port's link up, until the initiators' remote ports of it are Online again (at most FC_UP_WAIT s).
        The lab's FCoE VN2VN target port at times does not log in again after its link came back (seed 14 smoke,
        2026-12-05: Blocked until dev_loss_tmo, then Not Present with the link up; neither a second link toggle
        nor disabling and enabling its fcoe controller brought it back): that is counted and reported as a
        violation named "lab:", so that it is not mistaken for the module's."""
        out = labctl("fc-port", "up", "--port", port, "--wait", str(FC_UP_WAIT))
        step["rports_up"] = [r["port_state"] for r in out.get("rports", [])]
        step["up_s"] = out.get("seconds")
        if not out.get("reached"):
            self.bump("fc", f"lab: target port's remote ports not Online {FC_UP_WAIT} s after its link came up")
            step["violations"].append(
                f"lab: target port {port} not Online again after its link came up: "
                f"{step['rports_up']} (the held FC LUNs keep 2 paths)"
            )

    def step_fc_port_flap(self, step, inner):
        """One target port down for less than dev_loss_tmo, during an FC attach or detach (or alone): the held
        FC LUNs keep 2 of 4 paths meanwhile and get all 4 back after (the round's check: no faulty path)."""
        self.fc_attach_first(step)
        held = [lun for lun in sorted(self.fc_held) if lun not in step.get("fc", [])]
        thread = self.fc_port_down(step["port"], step["start_after"], step["down_for"], step, held)
        try:
            return inner(step)
        finally:
            thread.join()
            for lun in held:
                if lun in self.fc_held:
                    self.fc_verify(lun, step)

    def step_fc_port_loss(self, step):
        """One target port down past a short dev_loss_tmo: its remote ports go Not Present and the kernel removes
        those paths (the held FC LUNs keep 2); after the port is back nothing appears by itself (manual scans),
        and a re-run of fc_lun_attach for the held LUNs brings each back to 4 paths, data intact."""
        port = step["port"]
        self.fc_attach_first(step)
        held = sorted(self.fc_held)
        step.update(fc=held, luns=[f"fc{lun}" for lun in held], lost=False)
        self.fault("fc_port_loss")
        labctl("fc-dev-loss-tmo", str(FC_LOSS_DEV_LOSS_TMO))
        try:
            labctl("fc-port", "down", "--port", port, "--wait", "30")
            start = time.monotonic()
            deadline = start + FC_LOSS_DEV_LOSS_TMO + 60
            while time.monotonic() < deadline:
                states = self.fc_port_rports(port)
                if not states or all(state == "Not Present" for state in states):
                    break
                time.sleep(POLL)
            step["not_present_after_s"] = round(time.monotonic() - start, 1)
            step["rports_down"] = self.fc_port_rports(port)
            step["lost"] = bool(step["rports_down"]) and all(state == "Not Present" for state in step["rports_down"])
            if step["lost"]:
                self.fc_expect_paths(
                    held, FC_PATHS // 2, step, "past dev_loss_tmo (devices left)", wait=30, present=True
                )
                self.bump("fc", "fc_port_loss: remote ports Not Present")
            else:
                self.bump("fc", f"fc_port_loss: remote ports {step['rports_down']}, not Not Present")
            time.sleep(step["past_loss"])
        finally:
            self.fc_port_up(port, step)
            labctl("fc-dev-loss-tmo", str(FC_DEV_LOSS_TMO))
        time.sleep(2)  # the re-login's work, if any: with manual scans it must add nothing
        appeared = {lun: devs for lun, devs in self.fc_devices().items() if lun not in held}
        if appeared:
            step["violations"].append(f"FC devices appeared after the port came back, unrequested: {appeared}")
        if step["lost"]:
            self.fc_expect_paths(held, FC_PATHS // 2, step, "after the port came back, before the re-run", present=True)
        if not held:
            return {}
        step["devices_before_rerun"] = {lun: self.fc_devices().get(lun, []) for lun in held}
        result = self.run("fc_lun_attach", self.fc_params(held), step)
        self.note_error(step, result)
        step["rerun"] = {key: result.get(key) for key in ("scanned", "warnings", "timings")}
        step["ok"] = not result.get("failed")
        if step["ok"]:
            self.fc_expect_paths(held, FC_PATHS, step, "after the re-run of fc_lun_attach", wait=10)
        for lun in held:
            self.fc_verify(lun, step)
        return result

    # -- invariants ---------------------------------------------------------------------------------------

    def observe(self):
        devices = {}
        for path in glob.glob("/sys/class/iscsi_session/session*/device/target*/*:*:*:*"):
            hctl = os.path.basename(path)
            lun = int(hctl.rsplit(":", 1)[1])
            state = _read(f"{path}/state")
            block = glob.glob(f"{path}/block/*")
            devices.setdefault(lun, []).append(
                {"hctl": hctl, "state": state, "name": os.path.basename(block[0]) if block else None}
            )
        rc, out, _err = sh(["multipathd", "show", "paths", "raw", "format", "%d %t %T %o %w"], timeout=30)
        paths = [line.split() for line in out.splitlines() if line.strip()] if rc == 0 else []
        rc, out, _err = sh(["multipathd", "show", "maps", "raw", "format", "%n %w %N %Q"], timeout=30)
        maps = [line.split() for line in out.splitlines() if line.strip()] if rc == 0 else []
        return devices, paths, maps

    def problems(self):  # noqa: PLR0912 - one branch per invariant
        devices, paths, maps = self.observe()
        found = []
        for lun in self.luns:
            present = [d for d in devices.get(lun, []) if d["name"]]
            if lun in self.held:
                running = [d for d in present if d["state"] == "running"]
                if len(running) != len(PORTALS):
                    found.append(f"held LUN {lun}: {len(running)} running paths of {len(PORTALS)} ({present})")
            elif devices.get(lun):
                found.append(f"LUN {lun} is not held but has devices {devices[lun]}")
        for path in paths:
            if len(path) >= 3 and (path[1] in ("failed",) or path[2] in ("faulty", "shaky")):
                found.append(f"faulty path {' '.join(path)}")
            if path and path[0].startswith("#"):
                found.append(f"orphan path {' '.join(path)}")
        held_wwids = {entry.get("wwid") for entry in self.held.values()}
        held_wwids |= {entry.get("wwid") for entry in self.fc_held.values()}
        found += self.fc_problems(maps)
        for dm_map in maps:
            if len(dm_map) >= 3 and dm_map[1] not in held_wwids:
                found.append(f"map {dm_map[0]} of WWID {dm_map[1]} for a LUN nobody holds")
            if len(dm_map) >= 3 and dm_map[2] == "0":
                found.append(f"map {dm_map[0]} has no path")
        for lease in glob.glob("/run/lunsafe-san/*.lease"):
            age = time.time() - os.path.getmtime(lease)
            if age > 600:
                found.append(f"lock lease {lease} held {age:.0f}s after the step")
        mounted = set(_lab_mounts())
        for lun in self.luns:
            if (self.mountpoint(lun) in mounted) != (lun in self.mounted):
                found.append(f"harness: LUN {lun} mounted={self.mountpoint(lun) in mounted}, expected the opposite")
        return found

    def fc_problems(self, maps):
        """FC: each held FC LUN has its 4 running paths, all of its WWID, and one map of that WWID over 4 paths;
        no FC SCSI device of a LUN not held on any lab fc_host (nothing the campaign did not ask for)."""
        if not self.fc_luns:
            return []
        found = []
        devices = self.fc_devices()
        for lun in sorted(set(self.fc_luns) | set(devices)):
            present = devices.get(lun, [])
            entry = self.fc_held.get(lun)
            if entry is None:
                if present:
                    found.append(f"FC LUN {lun} is not held but has devices {present}")
                continue
            running = [d for d in present if d["name"] and d["state"] == "running"]
            if len(running) != FC_PATHS or len(present) != FC_PATHS:
                found.append(f"held FC LUN {lun}: {len(running)} running paths of {FC_PATHS} ({present})")
            other = [d for d in present if d["wwid"] != entry.get("wwid")]
            if other:
                found.append(f"held FC LUN {lun} (WWID {entry.get('wwid')}) has paths of another WWID: {other}")
            mine = [m for m in maps if len(m) >= 3 and m[1] == entry.get("wwid")]
            if len(mine) != 1 or mine[0][2] != str(FC_PATHS):
                found.append(f"held FC LUN {lun}: maps of its WWID {mine}, expected one with {FC_PATHS} paths")
        return found

    def check(self):
        """The invariants once the host settled: polled every POLL s, for at most SETTLE_SECONDS."""
        start = time.monotonic()
        deadline = start + SETTLE_SECONDS
        found = self.problems()
        while found and time.monotonic() < deadline:
            time.sleep(POLL)
            found = self.problems()
        seconds = time.monotonic() - start
        with self.mu:
            self.counts["timing"]["check_s"] += seconds
        return found, seconds

    # -- the run ------------------------------------------------------------------------------------------

    def run_round(self):
        reserved = set()
        planned = []
        global_taken = False
        for _worker in range(self.args.workers):
            if self.next_step >= self.args.steps:
                break
            _rng, step, plan = self.plan(self.next_step, reserved, global_taken)
            global_taken = global_taken or step.get("global", False)
            step.update(round=self.next_round, worker=len(planned))
            planned.append((step, plan))
            self.next_step += 1
        start = time.monotonic()
        threads = [threading.Thread(target=self.execute, args=(step, plan)) for step, plan in planned]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        found, check_s = self.check()
        self.finish_round([step for step, _plan in planned], found, check_s, start)

    def execute(self, step, plan):
        start = time.monotonic()
        try:
            plan(step)
        except Exception as exc:  # a harness failure is reported as the step's violation
            step["violations"].append(f"harness: {type(exc).__name__}: {exc}")
        step["seconds"] = round(time.monotonic() - start, 1)

    def finish_round(self, steps, found, check_s, start):
        round_s = time.monotonic() - start
        with self.mu:
            self.counts["timing"]["rounds_s"] += round_s
            self.counts["timing"]["rounds"] += 1
            for what in found:
                self.counts["violations"].append(
                    {"round": self.next_round, "steps": [s["i"] for s in steps], "kind": "round", "what": what}
                )
            if found or any(step["violations"] for step in steps):
                # what the kernel said meanwhile: the first clue when a violation is the lab's, not ours
                _rc, out, _err = sh(["dmesg", "--ctime"], timeout=30)
                steps[0]["dmesg"] = out.splitlines()[-60:]
            for step in steps:
                self.counts["violations"].extend(
                    {"round": self.next_round, "steps": [step["i"]], "kind": step["kind"], "what": v}
                    for v in step["violations"]
                )
                step["violations"].extend(found)
                step.update(check_s=round(check_s, 1), round_s=round(round_s, 1))
                self.counts["steps"][step["kind"]] = self.counts["steps"].get(step["kind"], 0) + 1
                print(json.dumps(step), flush=True)
        self.next_round += 1

    def is_role_round(self, index):
        every = self.args.role_every
        return every > 0 and index % every == every - 1

    def plan_role(self):
        """Plan the role step of this round: the controller runs it, the driver completes it on resume."""
        rng = random.Random(f"{self.args.seed}:{self.next_step}")  # noqa: S311 - seeded on purpose
        pool, held = self.attachable(set()), self.detachable(set())
        detach = bool(held) and (not pool or rng.random() < 0.5)
        if self.args.boot_every and pool and not os.path.exists(RESTORE_UNIT):
            detach = False  # the first role attach installs the boot restore (lun_attach_persist)
        if not held and not pool:
            return None
        luns = sorted(rng.sample(held if detach else pool, min(len(held if detach else pool), rng.randint(1, 2))))
        role = {
            "i": self.next_step,
            "round": self.next_round,
            "action": "detach" if detach else "attach",
            "luns": luns,
            "unmap": detach and rng.random() < 0.5,
            "target": IQN,
            "portals": list(PORTALS),
            "lock_file": LOCK_FILE,
            "lock_timeout": LOCK_TIMEOUT,
            "persist": bool(self.args.boot_every),
        }
        step = {"violations": []}
        if detach:
            for lun in luns:
                self.write_data(lun, step)  # the pattern (or the file, then unmounted) before the role's detach
        role["prepare"] = step
        return role

    def finish_role(self, outcome):  # noqa: PLR0912 - one branch per outcome
        role = self.pending_role
        self.pending_role = None
        start = time.monotonic()
        step = {
            "i": role["i"],
            "kind": f"role_{role['action']}",
            "round": role["round"],
            "worker": 0,
            "luns": role["luns"],
            "violations": list(role["prepare"]["violations"]),
            "data": list(role["prepare"].get("data", [])),
            "ok": outcome.get("rc") == 0,
            "playbook_s": outcome.get("seconds"),
        }
        if role.get("unmap"):
            step["unmap"] = True
        self.bump("roles", f"{role['action']}: {'ok' if step['ok'] else 'failed'}")
        with self.mu:
            self.counts["timing"]["role_s"] += outcome.get("seconds") or 0
        if not step["ok"]:
            msg = outcome.get("msg") or ""
            step["errors"] = [msg[:300]]
            self.bump("errors", "role: " + (msg.split(":", maxsplit=1)[0][:100] or "(no message)"))
            if outcome.get("traceback") or not msg.strip():
                step["violations"].append(f"role failed without a clear error: {msg[:300]}")
        try:
            mapped = _load_json(LABCTL_STATE).get("luns", {})
            with self.mu:
                for lun in self.luns:
                    self.mapped[lun] = bool(mapped.get(str(lun), {}).get("mapped", self.mapped[lun]))
            for lun in role["luns"]:
                if role["action"] == "attach":
                    if self.adopt_observed(lun):
                        self.verify_data(lun, step)
                    elif step["ok"]:
                        step["violations"].append(f"the role attached LUN {lun} but it has no map")
                else:
                    devices, maps = self.lun_view(lun)
                    if not devices and not maps:
                        with self.mu:
                            self.held.pop(lun, None)
                    elif step["ok"]:
                        step["violations"].append(f"the role detached LUN {lun} but it has {devices} {maps}")
                    else:
                        self.after_failed_detach([lun], step)
        except Exception as exc:  # a harness failure is reported as the step's violation
            step["violations"].append(f"harness: {type(exc).__name__}: {exc}")
        step["seconds"] = round((outcome.get("seconds") or 0) + time.monotonic() - start, 1)
        found, check_s = self.check()
        self.finish_round([step], found, check_s, start)

    # -- reboots and power cuts (issue 28) ----------------------------------------------------------------

    def is_boot_round(self, index):
        every = self.args.boot_every
        return every > 0 and index > 0 and index % every == 0

    def plan_boot(self):
        """Plan this round's reboot or power cut; the controller does it, the driver completes it on resume.

        Before it, every held LUN gets its data written and synced (the raw pattern with O_SYNC, the file on a
        filesystem LUN with fsync of the file and its directory). A clean reboot finds the filesystems unmounted
        (as a playbook or fstab's _netdev would before the logout); a power cut finds them mounted, with a
        scratch file written without fsync on top, which the cut may lose: fsck after the journal replay must
        find the filesystem clean and the synced file intact. What comes back at boot is decided by what the
        host had recorded (persist.json) and whether the restore service is installed, read now."""
        rng = random.Random(f"{self.args.seed}:{self.next_step}:boot")  # noqa: S311 - seeded on purpose
        kind = "power_cut" if rng.random() < 0.5 else "reboot"
        step = {"violations": []}
        for lun in sorted(self.held):
            if is_fs_lun(lun):
                self.write_file(lun, step, unmount=kind == "reboot")
                if kind == "power_cut" and lun in self.mounted:
                    with open(f"{self.mountpoint(lun)}/scratch.bin", "wb") as handle:
                        handle.write(self._pattern(None, FS_FILE_BYTES, f"{self.key(lun)}:scratch"))
            else:
                self.write_data(lun, step)
        records = _load_json(PERSIST_FILE).get("records", [])
        recorded = sorted({r.get("linux_lun") for r in records if r.get("transport") == "iscsi"} - {None})
        boot = {
            "i": self.next_step,
            "round": self.next_round,
            "kind": kind,
            "held": sorted(self.held),
            "recorded": recorded,
            "service": os.path.exists(RESTORE_UNIT),
            "mounted": sorted(self.mounted),
            "prepare": step,
        }
        return boot

    def finish_boot(self, outcome):
        """After the boot: a recorded, held LUN is back with its WWID and its data (fsck clean); a held LUN that
        was not recorded (or any, without the restore service) is not."""
        boot = self.pending_boot
        self.pending_boot = None
        start = time.monotonic()
        step = {
            "i": boot["i"],
            "kind": boot["kind"],
            "round": boot["round"],
            "worker": 0,
            "luns": boot["held"],
            "violations": list(boot["prepare"]["violations"]),
            "data": list(boot["prepare"].get("data", [])),
            "ok": bool(outcome.get("ok")),
            "boot_s": outcome.get("seconds"),
            "restore": outcome.get("restore"),
        }
        self.bump("boots", boot["kind"])
        if not step["ok"]:
            step["violations"].append(f"the {boot['kind']} failed: {outcome.get('msg', '')[:300]}")
        with self.mu:
            self.mounted = set()  # the campaign's mounts are not in fstab: none survives a boot
        back = set(boot["recorded"]) if boot["service"] else set()
        try:
            mapped = _load_json(LABCTL_STATE).get("luns", {})
            with self.mu:
                for lun in self.luns:
                    self.mapped[lun] = bool(mapped.get(str(lun), {}).get("mapped", self.mapped[lun]))
            for lun in sorted(set(boot["held"]) | back):
                before = self.held.get(lun)
                if lun in back and lun in boot["held"]:
                    if not self.adopt_observed(lun):
                        self.bump("boots", "recorded LUN not back")
                        step["violations"].append(f"LUN {lun} was recorded and held but did not come back at boot")
                        with self.mu:
                            self.held.pop(lun, None)
                        continue
                    if before and self.held[lun]["wwid"] != before.get("wwid"):
                        step["violations"].append(
                            f"LUN {lun} came back as WWID {self.held[lun]['wwid']}, held as {before.get('wwid')}"
                        )
                    self.bump("boots", "restored")
                    self.boot_data_check(lun, step, boot["kind"])
                elif lun in back:
                    # recorded but not held: it went at an earlier boot before the restore service existed (its
                    # record stays until a detach forgets it). The restore brings it back when the array still
                    # presents its LU, and it is held again; an LU the array changed is refused, not a finding.
                    if self.adopt_observed(lun):
                        self.bump("boots", "recorded, not held: back")
                        self.boot_data_check(lun, step, boot["kind"])
                    else:
                        self.bump("boots", "recorded, not held: not back")
                else:  # held, not recorded (or no restore service): gone with the boot, nothing scans it
                    devices, maps = self.lun_view(lun)
                    if devices or maps:
                        step["violations"].append(f"LUN {lun} was not recorded but is back: {devices} {maps}")
                    with self.mu:
                        self.held.pop(lun, None)
                    self.bump("boots", "held, gone: not recorded or no restore service")
        except Exception as exc:  # a harness failure is reported as the step's violation
            step["violations"].append(f"harness: {type(exc).__name__}: {exc}")
        step["seconds"] = round((outcome.get("seconds") or 0) + time.monotonic() - start, 1)
        found, check_s = self.check()
        self.finish_round([step], found, check_s, start)

    def boot_data_check(self, lun, step, kind):
        """A LUN back after a boot: its raw pattern read back, or its filesystem checked (:meth:`boot_fs_check`)."""
        if is_fs_lun(lun):
            self.boot_fs_check(lun, step, kind)
        else:
            self.verify_data(lun, step)

    def boot_fs_check(self, lun, step, kind):
        """A filesystem LUN after a boot: mount (replays ext4's journal after a power cut), check the synced file,
        unmount, then fsck -n -f must find it clean."""
        dev = self.dev(lun)
        os.makedirs(self.mountpoint(lun), exist_ok=True)
        rc, _out, err = sh(["mount", "-t", "ext4", dev, self.mountpoint(lun)], timeout=60)
        if rc != 0:
            self.data("mismatches")
            step["violations"].append(f"mount of LUN {lun} after the {kind} failed: {err.strip()[-200:]}")
            return
        want = self.pattern.get(self.key(lun))
        if want is not None:
            self.check_file(lun, step, want, f"the synced file on LUN {lun} changed across the {kind}")
        rc, _out, err = sh(["umount", self.mountpoint(lun)], timeout=120)
        if rc != 0:
            step["violations"].append(f"harness: umount of LUN {lun} failed: {err.strip()[-200:]}")
            with self.mu:
                self.mounted.add(lun)
            return
        self.fsck(lun, step, f" after the {kind}")
        step.setdefault("data", []).append(f"{kind} fs checked {lun}")

    def fsck(self, lun, step, when):
        """``fsck.ext4 -n -f`` of the unmounted LUN: anything but clean is a data mismatch."""
        rc, out, err = sh(["fsck.ext4", "-n", "-f", self.dev(lun)], timeout=120)
        if rc != 0:
            self.data("mismatches")
            step["violations"].append(f"fsck -n of LUN {lun}{when} rc={rc}: {(out + err).strip()[-300:]}")
        else:
            self.data("fsck_clean")

    def run_segment(self):
        """Rounds until the steps are done or a role or boot round comes (planned, then the driver exits)."""
        while self.next_step < self.args.steps:
            if self.is_role_round(self.next_round):
                role = self.plan_role()
                if role is not None:
                    self.pending_role = role
                    self.next_step += 1
                    return role, None
            if self.is_boot_round(self.next_round):
                self.pending_boot = self.plan_boot()
                self.next_step += 1
                return None, self.pending_boot
            self.run_round()
        for lun in sorted(self.mounted):  # done: unmount, so the next reset finds no filesystem in use
            self.unmount(lun, {"violations": []})
        return None, None


def journal_has(pid):
    """Whether the journal beside the host lock holds an entry of ``pid`` (any JSON shape: dicts with "pid")."""
    try:
        with open(JOURNAL, encoding="utf-8") as handle:
            text = handle.read()
        document = json.loads(text) if text.strip() else []
    except (OSError, ValueError):
        return False
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("pid") == pid:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def wait_lock_holder(proc, cancel, limit=LOCK_TIMEOUT):
    """Seconds until ``proc`` holds the host lock (as /proc/locks shows it), or until it ended or was cancelled."""
    start = time.monotonic()
    while not cancel.is_set() and proc.poll() is None and time.monotonic() - start < limit:
        try:
            inode = os.stat(LOCK_FILE).st_ino
            with open("/proc/locks", encoding="ascii") as handle:
                for line in handle:
                    fields = line.split()
                    if "->" in fields:
                        continue  # a waiter, not a holder
                    if len(fields) > 5 and fields[4] == str(proc.pid) and fields[5].rsplit(":", 1)[-1] == str(inode):
                        return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.05)
    return time.monotonic() - start


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _load_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def _lab_mounts():
    with open("/proc/self/mounts", encoding="utf-8") as handle:
        return [line.split()[1] for line in handle if len(line.split()) > 1 and line.split()[1].startswith(MOUNT_ROOT)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--luns", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--role-every", type=int, default=0, help="every K-th round is a role step (0: none)")
    parser.add_argument("--stage", required=True)
    parser.add_argument("--state", help="the campaign's state between segments (resumed when it exists)")
    parser.add_argument("--role-result", help="JSON: the outcome of the role step the last segment planned")
    parser.add_argument("--weights", default="", help="KIND=N,... overriding the step weights (a targeted run)")
    parser.add_argument("--fc-luns", type=int, default=0, help="the lab's FC LUNs (0: no FC steps, as before FC)")
    parser.add_argument("--boot-every", type=int, default=0, help="every K-th round a reboot or power cut (0: none)")
    parser.add_argument("--boot-result", help="JSON: the outcome of the boot the last segment planned")
    args = parser.parse_args()
    args.weights = {k: int(v) for k, v in (item.split("=") for item in args.weights.split(",") if item)}
    unknown = set(args.weights) - set(STEP_WEIGHTS)
    if unknown:
        parser.error(f"unknown step kinds in --weights: {sorted(unknown)}")
    if not args.fc_luns:
        args.weights.update(dict.fromkeys(FC_KINDS, 0))
    campaign = Campaign(args)
    if args.state and os.path.exists(args.state):
        campaign.load(args.state)
    if args.fc_luns:
        campaign.fc_setup()
    if campaign.pending_role:
        campaign.finish_role(json.loads(args.role_result or '{"rc": -1, "msg": "no role result given"}'))
    if campaign.pending_boot:
        campaign.finish_boot(json.loads(args.boot_result or '{"ok": false, "msg": "no boot result given"}'))
    role, boot = campaign.run_segment()
    if args.state:
        campaign.save(args.state)
    if boot is not None:
        os.sync()  # the state, the data and the journal on disk before the controller cuts the power
    done = role is None and boot is None
    print(json.dumps({"summary": campaign.counts, "role": role, "boot": boot, "done": done}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
