#!/usr/bin/python
# Copyright (c) 2025, lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: multipath_flush
short_description: Flush one multipath map, then delete its SCSI paths and make multipathd forget them
version_added: 0.1.0
description:
  - Removes one device-mapper multipath map and its SCSI path devices from the host, in the order os-brick uses
    on detach, so that nothing hangs and nothing else is touched.
  - "The map is identified by its dm uuid (C(mpath-<wwid>)), recorded before anything is done and checked again
    right before every destructive step: the kernel reuses C(dm-N) and C(sdX) names."
  - Refuses, naming what holds it and changing nothing, when the map or one of its paths is mounted, held by
    another device (LVM, dm-crypt, kpartx partitions) or open (dm open count from C(dmsetup info)), or when a path
    is C(blocked) (its session is in recovery, so deleting it could hang). O(force=true) overrides this.
  - An open map is refused naming the processes that hold it open (process id and command name, from the
    C(/proc/<pid>/fd) links to its C(dm-N) node), for example
    "map mpatha is open (open count 1) by pid 1234 (udev-worker)"; see RV(openers).
  - "Order: when the map has no active path and queues I/O (C(queue_if_no_path)), queueing is disabled first
    (C(multipathd disablequeueing map), and C(dmsetup message ... 0 fail_if_no_path) if the kernel table still
    queues), which is only done when the map is not open or O(force=true), so that the flush cannot hang;
    C(multipath -f NAME) with bounded retries; for each former path, C(offline) first if it is blocked (only
    with O(force=true)), C(1) written to its C(delete) file, a wait until it leaves sysfs and until
    C(multipathd show paths) no longer lists it, else C(multipathd del path); optionally C(multipath -w WWID)."
  - If the flush keeps failing, the module fails and leaves the paths in place; with O(force=true) it then tries
    C(multipathd del map), then C(dmsetup wipe_table) and C(dmsetup remove --deferred) as a last resort, and says
    so in RV(forced), RV(last_resort) and RV(steps).
  - A map that does not exist is not an error. The module then reports RV(found=false) and V(changed=false),
    unless a flush of the same map was killed before it had deleted every path (see below).
  - Takes the host lock (O(lock_file)) so that no attach or scan runs between its steps.
  - "Interrupted runs: while it works, a run keeps an entry in the lock's journal (C(<lock_file>.journal); for the
    default lock file C(/var/lib/lunsafe-san/lunsafe-san.lock.journal), on disk) with the map's identity, its paths
    and each step just before it runs. A flush that is killed after the map is gone but before its paths are deleted
    leaves paths that no map names any more. The next run of this module for the same map (by name, WWID, uuid or dm
    device) finds them in that entry, deletes each one that is still there with the same H:C:T:L and WWID (refusing
    one in use unless O(force)), reports them in RV(paths_removed) and the killed run in RV(interrupted), and is
    changed. Entries of other runs are reported and left alone; see M(lunsafe.san.iscsi_lun_attach) for the journal
    itself."
author: lunsafe.san developers (@lunsafe)
requirements:
  - Linux with sysfs mounted on C(/sys), and root privileges
  - C(/proc) mounted (the openers of the map are read there, and each command's deadline is enforced by
    signalling it and its children, found there)
  - C(dmsetup) (device-mapper) and C(multipath) (multipath-tools); C(multipathd) when the daemon runs (without
    it, queueing is disabled with C(dmsetup) and the multipathd steps are skipped)
extends_documentation_fragment:
  - lunsafe.san._attributes
  - lunsafe.san._attributes.LOCK
attributes:
  check_mode:
    support: full
    details:
      - Runs only read-only commands (C(dmsetup info), C(table), C(status)) and writes nothing, not even to sysfs;
        returns the steps it would take in RV(plan), and fails exactly as a real run would refuse.
  diff_mode:
    support: full
    details:
      - The map and its paths before and after.
  idempotent:
    support: full
    details:
      - Once the map is gone a second run finds nothing and reports V(changed=false).
options:
  map:
    description:
      - The multipath map to flush, as its name (alias or user friendly name such as V(mpatha)), its WWID, its
        C(dm-N) kernel name, V(/dev/mapper/NAME) or V(/dev/dm-N).
      - A device-mapper device that is not a multipath map (an LVM volume, a dm-crypt mapping, a partition) is
        refused.
      - A SCSI path device (V(sdc), V(/dev/sdc)) or one of its partitions is refused before anything is done,
        naming the multipath map that holds it (its name and WWID) and the names to give instead; a SCSI disk
        that no map holds is refused too.
    type: str
    required: true
  force:
    description:
      - Flush even when the map is mounted, held or open, or a path is blocked; data queued or cached on the map
        may be lost, and processes using it get I/O errors.
      - With V(true), a blocked path is set C(offline) before it is deleted, queueing is disabled on a dead
        open map, and a flush that keeps failing is followed by C(multipathd del map), then C(dmsetup wipe_table)
        and C(dmsetup remove --deferred) (see RV(deferred_removal)).
    type: bool
    default: false
  remove_wwid:
    description:
      - Also remove the WWID from multipath's wwids file (C(multipath -w)), so that the file does not grow
        forever with LUNs that will not come back. Also done when the map is already gone but its WWID (given
        as O(map)) is still listed.
    type: bool
    default: false
  retries:
    description:
      - How many times C(multipath -f) is retried after the first attempt fails (for example with C(map in
        use) while udev or multipathd still has it open for a moment).
    type: int
    default: 3
  retry_interval:
    description:
      - Seconds between two flush attempts; V(0) retries at once.
      - "Durations, the same rule in every module of this collection: a deadline (O(command_timeout),
        O(path_timeout), O(lock_lease.ttl)) must be a finite number of seconds greater than 0; a pause or
        patience whose 0 means something (O(retry_interval), O(lock_timeout): V(0) tries the lock once) must be
        finite and at least 0. Anything else is refused before anything runs, naming the option and the value."
    type: float
    default: 2
  command_timeout:
    description:
      - Seconds each flush or removal command may run before it is killed and counted as a failed attempt.
      - Greater than 0 and finite (see O(retry_interval) for the rule of every duration).
    type: float
    default: 30
  path_timeout:
    description:
      - Seconds to wait for each deleted path to leave sysfs, after which the module fails saying which path
        is still there.
      - Greater than 0 and finite (see O(retry_interval) for the rule of every duration).
    type: float
    default: 30
notes:
  - Processes that opened a path device (C(/dev/sdX)) directly, instead of the map, are listed in RV(openers)
    but do not make the module refuse (C(multipathd) holds every path open for its checkers and is left out
    of that list); a mount of a path device is refused.
  - A map that only udev has open (a worker's blkid, or C(kpartx) from the multipath rules, run for the
    change event that the last writer's close raises) is observed again for up to 10 seconds (at most
    O(path_timeout)) before it counts as open; a udev program still holding it then is named as such.
  - Needs neither pyudev nor C(udevadm settle). Every wait has a deadline; with pyudev on the managed node,
    the waits for the map and its paths to go wake at udev's remove events instead of polling sysfs
    (RV(wait_method)).
seealso:
  - module: lunsafe.san.multipath_faulty_facts
    description: Find dead and queueing maps and faulty paths to flush.
  - module: lunsafe.san.iscsi_lun_attach
    description: Attach and detach whole LUNs (login, targeted scan, identity checks, logout).
  - module: lunsafe.san.scsi_targeted_scan
    description: Scan exactly one LUN, the reverse of this module's path deletion.
  - name: multipathd(8)
    description: The multipathd commands used (disablequeueing, del path, del map, show paths).
    link: https://man7.org/linux/man-pages/man8/multipathd.8.html
"""

EXAMPLES = r"""
- name: Flush the map of a LUN about to be unmapped on the array
  lunsafe.san.multipath_flush:
    map: 36001405a1b2c3d4e5f60718293a4b5c6
    remove_wwid: true

- name: See what flushing mpatha would do
  lunsafe.san.multipath_flush:
    map: /dev/mapper/mpatha
  check_mode: true
  register: flush_plan

- name: Clean a dead map whose LUN the array already removed, even if a process still has it open
  lunsafe.san.multipath_flush:
    map: mpathb
    force: true
    lock_file: /var/lib/nova/tmp/os-brick-connect_volume
"""

RETURN = r"""
lock_lease:
  description:
    - What happened to O(lock_lease) at the end of the run; V(null) when no lease was given or in check mode.
    - V(held) (written or renewed), V(released) (removed). Also on a failure (a failed run removes a lease
      with O(lock_lease.state=released) and writes none with V(held)).
  returned: always
  type: str
  sample: held
found:
  description:
    - Whether O(map) named an existing multipath map when the module started.
    - Also on a refusal (mounted, held, open, blocked paths) or a failure after the map was observed, with
      RV(map), RV(holders), RV(openers) and RV(open_count) saying what was seen, in check mode too.
  returned: always
  type: bool
  sample: true
map:
  description: The map as identified before acting; empty when not found.
  returned: always
  type: dict
  contains:
    name:
      description: The map name (alias, user friendly name or WWID).
      type: str
      sample: mpatha
    dm:
      description: The kernel name it had.
      type: str
      sample: dm-0
    uuid:
      description: The dm uuid every step checked.
      type: str
      sample: mpath-36001405a1b2c3d4e5f60718293a4b5c6
    wwid:
      description: The WWID.
      type: str
      sample: 36001405a1b2c3d4e5f60718293a4b5c6
  sample: {"name": "mpatha", "dm": "dm-0", "uuid": "mpath-36001405a1b2c3d4e5f60718293a4b5c6",
           "wwid": "36001405a1b2c3d4e5f60718293a4b5c6"}
paths_removed:
  description:
    - The SCSI path devices deleted from the host (in check mode, those that would be).
  returned: always
  type: list
  elements: dict
  sample: [{"hctl": "2:0:0:1", "device": "sda", "wwid": "36001405a1b2c3d4e5f60718293a4b5c6"}]
plan:
  description:
    - The ordered steps, each with V(action) (V(disable_queueing), V(flush_map), V(offline_path),
      V(delete_path), V(forget_path), V(remove_wwid)), V(target) (map name, device or WWID), V(hctl) and
      V(reason). V(forget_path) runs only if multipathd still lists the path after its deletion.
  returned: always
  type: list
  elements: dict
  sample: [{"action": "flush_map", "target": "mpatha", "hctl": null, "reason": "dm-0 mpath-3600..."},
           {"action": "delete_path", "target": "sda", "hctl": "2:0:0:1", "reason": null}]
steps:
  description: What was actually run or written, in order, with return codes; empty in check mode.
  returned: always
  type: list
  elements: dict
  sample: [{"action": "flush_map", "cmd": "/usr/sbin/multipath -f mpatha", "rc": 0, "attempt": 1}]
holders:
  description:
    - What used the map or its paths when the module started, each with V(kind) (V(mount), V(lvm),
      V(dm-crypt), V(partition), V(dm), V(block)), V(device), V(name) and V(detail).
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "mount", "device": "dm-0", "name": "/srv/data", "detail": "ext4 from /dev/mapper/mpatha"}]
openers:
  description:
    - Processes that held the map (its C(dm-N) node) or one of its paths open when the module started, from
      C(/proc/<pid>/fd), each with V(pid), V(command) (the kernel's name of the process, C(/proc/<pid>/comm);
      never its arguments) and V(device) (the kernel name it holds open). C(multipathd) is not listed for the
      paths. Processes of another PID namespace than the module's, or exiting meanwhile, are not seen.
  returned: always
  type: list
  elements: dict
  sample: [{"pid": 1234, "command": "udev-worker", "device": "dm-0"}]
open_count:
  description: The map's device-mapper open count before acting; null when not found.
  returned: always
  type: int
  sample: 0
queueing_disabled:
  description: Whether queueing (C(queue_if_no_path)) was disabled on the dead map before the flush.
  returned: always
  type: bool
  sample: false
forced:
  description:
    - Whether O(force=true) overrode a refusal (holders, mounts, open count, blocked paths) or a last-resort
      removal (RV(last_resort)) was needed.
  returned: always
  type: bool
  sample: false
last_resort:
  description:
    - The last-resort removal used under O(force=true), else null. V(del_map) is C(multipathd del map);
      V(dmsetup_remove) is C(dmsetup wipe_table) (the table then fails all I/O, which releases the paths)
      followed by C(dmsetup remove --deferred).
  returned: always
  type: str
  sample: null
deferred_removal:
  description:
    - True when the map was still open after the last resort. It then holds no path any more, fails all I/O, and
      the kernel removes it when its last opener closes it. A warning says so.
  returned: always
  type: bool
  sample: false
elapsed_seconds:
  description: Wall-clock seconds spent with the host lock held (V(0.0) when the lock could not be taken).
  returned: always
  type: float
  sample: 1.42
timings:
  description:
    - Seconds measured inside the module on the managed node. C(lock) is the wait for the host lock (or for
      another procedure's O(lock_lease)), also when the lock could not be taken within O(lock_timeout);
      C(total) is C(lock) plus RV(elapsed_seconds).
  returned: always
  type: dict
  sample: {"lock": 0.002, "total": 1.422}
profile:
  description:
    - Where this run spent its time on the managed node, each external command (named by its tool and the
      words that say what it does, never by targets, devices or secrets) and each wait (what ended it), with
      counts and sums (on failure the steps up to the failure). The same shape as
      RV(lunsafe.san.iscsi_lun_attach#module:profile), which documents every key.
  returned: always (also on failure)
  type: dict
  sample:
    commands: 4
    waits: 1
    command_seconds: 0.311
    wait_seconds: 0.0
    dropped: 0
    steps:
      - {"kind": "command", "what": "dmsetup info", "start": 0.004, "duration": 0.031, "rc": 0}
      - {"kind": "command", "what": "dmsetup table", "start": 0.036, "duration": 0.029, "rc": 0}
      - {"kind": "command", "what": "dmsetup status", "start": 0.066, "duration": 0.03, "rc": 0}
      - {"kind": "command", "what": "multipath -f", "start": 0.1, "duration": 0.221, "rc": 0}
      - kind: wait
        what: the map to disappear
        method: sysfs-poll
        deadline: 2.0
        start: 0.322
        duration: 0.0
        ended: ready
interrupted:
  description:
    - Runs of this collection's modules that were killed before this one and left an entry in the journal beside
      the lock, each with C(module), C(op), C(pid), C(started), what it was asked (C(request)), the writes it had
      started (C(done)) and C(resolution).
    - C(resolution) is V(removed) (a flush of the same map; this run deleted the paths it left), V(left) (another
      request, or this run failed; left alone, the entry stays), or V(gone) (before the last reboot, or nothing it
      left remains; reported once, then dropped).
  returned: always
  type: list
  elements: dict
  sample: [{"module": "multipath_flush", "op": "flush", "pid": 4242, "started": "2026-12-02T13:40:07+00:00",
            "request": {"map": "mpatha", "name": "mpatha", "uuid": "mpath-36001405a1b2c3d4e5f60718293a4b5c6"},
            "done": ["flush map mpatha (mpath-36001405a1b2c3d4e5f60718293a4b5c6), then delete its paths sdc (2:0:0:1)",
                     "delete sdc (2:0:0:1)"],
            "resolution": "removed"}]
wait_method:
  description:
    - How the waits for the map and its paths to go were done. V(udev-events) when the waits lasted over 1.5
      seconds (until then they poll udev's database every 0.1 s), pyudev imports on the managed node, udevd
      runs and a netlink monitor of its events could be opened; V(sysfs-poll) otherwise, also when every wait
      ended within that time (pyudev not imported).
  returned: always
  type: str
  sample: udev-events
wait_method_reason:
  description: Why RV(wait_method) was chosen (for example that pyudev is not installed), and the source used.
  returned: always
  type: str
  sample: "pyudev 0.24.0: a netlink monitor of block, scsi events"
"""

from typing import Any, Callable, Dict, Optional

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lunsafe.san.plugins.module_utils._durations import check_durations
from ansible_collections.lunsafe.san.plugins.module_utils._errors import InputError, LunsafeError
from ansible_collections.lunsafe.san.plugins.module_utils._flush import (
    UDEV_SETTLE_TIMEOUT,
    FlushFailed,
    Observation,
    Settings,
    apply_plan,
    entry_covers,
    entry_settled,
    finish_interrupted,
    journal_request,
    leftover_paths,
    observe,
    observe_settled,
    plan_flush,
    refusal,
)
from ansible_collections.lunsafe.san.plugins.module_utils._host import Host, system_host
from ansible_collections.lunsafe.san.plugins.module_utils._journal import Trail, journal_for
from ansible_collections.lunsafe.san.plugins.module_utils._lock import LOCK_ARGUMENT_SPEC, HostLock, lock_from_params
from ansible_collections.lunsafe.san.plugins.module_utils._profile import Profile
from ansible_collections.lunsafe.san.plugins.module_utils._runner import Runner
from ansible_collections.lunsafe.san.plugins.module_utils._sysfs import Snapshot

ARGUMENT_SPEC: Dict[str, Any] = {
    "map": {"type": "str", "required": True},
    "force": {"type": "bool", "default": False},
    "remove_wwid": {"type": "bool", "default": False},
    "retries": {"type": "int", "default": 3},
    "retry_interval": {"type": "float", "default": 2},
    "command_timeout": {"type": "float", "default": 30},
    "path_timeout": {"type": "float", "default": 30},
    **LOCK_ARGUMENT_SPEC,
}

# the duration options (seconds), checked by one rule before anything runs (see _durations)
DEADLINES = ("command_timeout", "path_timeout", "lock_lease.ttl")
ZERO_ALLOWED = ("retry_interval", "lock_timeout")


def _validate(params: Dict[str, Any]) -> None:
    if not params["map"] or not params["map"].strip():
        raise InputError("map must name a multipath map, got an empty string", option="map", value=params["map"])
    if params["retries"] < 0:
        raise InputError(
            f"retries must not be negative, got {params['retries']}", option="retries", value=params["retries"]
        )
    check_durations(params, deadlines=DEADLINES, zero_allowed=ZERO_ALLOWED)


def _describe(observation: Observation) -> Dict[str, Any]:
    """The diff side for one observation: the map and its paths, or nothing."""
    identity = observation.identity
    if identity is None:
        return {}
    return {
        "map": f"{identity.name} ({identity.dm}, {identity.uuid})",
        "paths": [f"{path.hctl} {path.device}" for path in observation.paths],
    }


# every key RETURN documents as always, for a run that failed before it could fill them (the error's own
# details, such as the plan, the steps done and the holders of a refused map, take precedence)
FAILED_RESULT: Dict[str, Any] = {
    "changed": False,
    "lock_lease": None,
    "found": False,
    "map": {},
    "paths_removed": [],
    "plan": [],
    "steps": [],
    "holders": [],
    "openers": [],
    "open_count": None,
    "queueing_disabled": False,
    "forced": False,
    "last_resort": None,
    "deferred_removal": False,
    "elapsed_seconds": 0.0,
    "timings": {"lock": 0.0, "total": 0.0},
    "interrupted": [],
    "wait_method": "sysfs-poll",
    "wait_method_reason": "the run failed before it waited",
}


def run(module: AnsibleModule, host: Host) -> Dict[str, Any]:
    """args -> lock -> observe -> plan -> (unless check mode) apply -> observe -> result.

    The lease and the timings are read once the lock's ``__exit__`` has ended the lease (written, renewed or
    released) and released the lock, on success and on failure alike (a failure carries them in its details).
    """
    params = module.params
    _validate(params)
    lock = lock_from_params(params, check_mode=module.check_mode)
    try:
        if lock is None:  # check mode without a lock file: nothing to wait for
            result = _work(module, host)
        else:
            with lock:
                result = _work(module, host)
    except LunsafeError as exc:
        exc.details.update(_lock_keys(lock, exc.details.get("elapsed_seconds", 0.0)))
        raise
    finally:
        for warning in lock.warnings if lock is not None else []:  # a lock file other users can open
            module.warn(warning)
    result.update(_lock_keys(lock, result["elapsed_seconds"]))
    return result


def _lock_keys(lock: Optional[HostLock], elapsed: float) -> Dict[str, Any]:
    """``lock_lease`` and ``timings`` once the lock is released (``waited`` is set on a lock timeout too)."""
    waited = round(lock.waited, 3) if lock is not None else 0.0
    return {
        "lock_lease": lock.lease_outcome if lock is not None else None,
        "timings": {"lock": waited, "total": round(waited + elapsed, 3)},
    }


def _observed(observation: Observation) -> Dict[str, Any]:
    """The result keys that say what the run found, also for a refusal or a failure after the observation."""
    identity = observation.identity
    return {
        "found": observation.found,
        "map": identity.to_dict() if identity is not None else {},
        "holders": [holder.to_dict() for holder in observation.holders],
        "openers": [opener.to_dict() for opener in observation.openers],
        "open_count": observation.open_count,
    }


def _work(module: AnsibleModule, host: Host) -> Dict[str, Any]:
    params = module.params
    start = host.clock()
    snapshot = host.snapshot()
    # udev's helpers open a map for a moment after a writer's last close: waited for (bounded), not refused
    before = observe_settled(
        ref=params["map"].strip(),
        host=host,
        snapshot=snapshot,
        timeout=min(UDEV_SETTLE_TIMEOUT, params["path_timeout"]),
    )
    try:
        result = _flush_observed(module, host, before, snapshot)
    except LunsafeError as exc:
        # a refusal or a failure says what was observed: the map exists (found), what holds it, who has it open
        for key, value in _observed(before).items():
            if exc.details.get(key) is None:
                exc.details[key] = value
        exc.details["elapsed_seconds"] = round(host.clock() - start, 3)
        raise
    result["elapsed_seconds"] = round(host.clock() - start, 3)
    return result


def _flush_observed(module: AnsibleModule, host: Host, before: Observation, snapshot: Snapshot) -> Dict[str, Any]:
    params = module.params
    settings = Settings(
        host=host,
        retries=params["retries"],
        retry_interval=params["retry_interval"],
        command_timeout=params["command_timeout"],
        path_timeout=params["path_timeout"],
        force=params["force"],
    )
    ref = params["map"].strip()
    plan = plan_flush(observation=before, force=params["force"], remove_wwid_file=params["remove_wwid"])
    if plan.refusals and not params["force"]:
        raise refusal(observation=before, plan=plan)
    # the journal beside the lock: a flush of this map killed between the map's flush and its paths' deletes
    # left paths that no map names any more; this run finishes it
    trail = Trail(
        journal_for(params["lock_file"]),
        module="multipath_flush",
        op="flush",
        request=journal_request(ref, before),
        read_only=module.check_mode,
    )
    found = trail.review(
        lambda entry: entry_covers(entry, ref=ref, identity=before.identity),
        settled=lambda entry: entry_settled(entry, snapshot),
    )
    leftovers = leftover_paths(
        [entry for entry in found if entry["resolution"] == "removed"], snapshot, exclude=before.paths
    )
    if module.check_mode:
        after = None
        steps = []
        paths_removed = [
            {"hctl": str(path.hctl), "device": path.device, "wwid": path.wwid}
            for path in before.paths + tuple(leftovers)
        ]
        queueing_disabled = False
        last_resort = None
        deferred = False
        changed = bool(plan.steps or leftovers or trail.adopted_writes)
    else:
        try:
            outcome = apply_plan(plan=plan, observation=before, settings=settings, trail=trail)
            finish_interrupted(leftovers, settings=settings, trail=trail, record=outcome)
        except LunsafeError as exc:
            trail.end(succeeded=False)
            for warning in trail.warnings:
                module.warn(warning)
            exc.details["changed"] = bool(exc.details.get("done"))
            exc.details["steps"] = exc.details.get("done") or []
            exc.details["plan"] = [step.to_dict() for step in plan.steps]
            exc.details["interrupted"] = trail.result()
            raise
        wwid = before.identity.wwid if before.identity is not None else None
        after = observe(
            ref=before.identity.uuid if before.identity is not None else ref,
            host=host,
            wwid=wwid,
        )
        if after.found and not outcome.deferred:
            trail.end(succeeded=False)
            for warning in trail.warnings:
                module.warn(warning)
            raise FlushFailed(
                f"map {before.identity.uuid if before.identity else ref} is still present after the flush",
                changed=True,
                done=outcome.done,
                interrupted=trail.result(),
            )
        trail.end(succeeded=True)
        steps = outcome.done
        for warning in outcome.warnings:
            module.warn(warning)
        paths_removed = outcome.paths_removed
        queueing_disabled = outcome.queueing_disabled
        last_resort = outcome.last_resort
        deferred = outcome.deferred
        changed = (
            before.found
            or bool(paths_removed)
            or (before.wwid_listed and not after.wwid_listed)
            or trail.adopted_writes
        )
    for warning in trail.warnings:
        module.warn(warning)
    result: Dict[str, Any] = {
        "changed": changed,
        **_observed(before),
        "paths_removed": paths_removed,
        "plan": [step.to_dict() for step in plan.steps],
        "steps": steps,
        "queueing_disabled": queueing_disabled,
        "forced": plan.forced or last_resort is not None,
        "last_resort": last_resort,
        "deferred_removal": deferred,
        "interrupted": trail.result(),
        **host.wait_info(),
    }
    if module._diff:
        result["diff"] = {"before": _describe(before), "after": _describe(after) if after is not None else {}}
    return result


def main(make_host: Callable[[Runner], Host] = system_host) -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    profile = Profile()  # replaced by the host runner's once the host exists
    try:
        _validate(module.params)  # before the runner takes command_timeout as its default deadline
        host = make_host(Runner(module, default_timeout=module.params["command_timeout"]))
        profile = host.runner.profile
        result = run(module, host)
    except LunsafeError as exc:
        module.fail_json(**{**FAILED_RESULT, **exc.to_fail_kwargs(), "profile": profile.to_result()})
    module.exit_json(**result, profile=profile.to_result())


if __name__ == "__main__":
    main()
