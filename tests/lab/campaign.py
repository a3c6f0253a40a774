# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seeded fault campaign against a running lab (a benchmark: it prints and records figures, it is no test).

    python3 tests/lab/lab.py --name camp up --luns 16
    LUNSAFE_LAB_NAME=camp .venv/bin/python tests/lab/campaign.py --seed 1 --steps 50 --workers 2 --out /tmp/camp.md

Stages the collection's plugins and ansible-core's module_utils in the guest, resets the array with --luns
LUNs, and runs tests/lab/guest/campaign_driver.py there: rounds of --workers seeded steps at once (attach,
detach, the array unmapping a LUN during another LUN's attach, a LUN number reused with a new LU, portal flaps
during attach or detach, writes in flight while a portal is down, iscsid and multipathd restarts, SIGKILL of a
module run followed by the same request), data checked across detach and re-attach (a raw pattern, or an ext4
filesystem with a checksummed file), and the invariants checked after every round. On a lab with FC ports
(--fc-luns, default 4; 0 for none) the driver also draws FC steps through fc_lun_attach: attach, detach,
SIGKILL mid-attach or mid-detach, an FC LUN number reused while held or released, a target port down shorter
and longer than dev_loss_tmo (docs/benchmarks/campaign.md, "Fibre Channel steps"). Every --role-every rounds
the driver stops and this controller runs the collection's lun_attach or lun_detach role through
ansible-playbook, then the driver resumes from its state file and checks the outcome. Prints one line per step
and the totals; --out writes the report (and the step lines as .jsonl beside it).

A long run is split into seeded shards over several VMs at once (each 1-vCPU TCG guest uses one core):

    python3 tests/lab/lab.py --name campA up --luns 16; python3 tests/lab/lab.py --name campB up --luns 16
    .venv/bin/python tests/lab/campaign.py --labs campA,campB --seed S --shards 10 --steps 100 --out /tmp/c.md

Shard k runs seed S + k from a reset array on the next free VM; each finished shard is written at once to
OUT.shards/shard-k.json (its step lines stream to shard-k.log), so a stopped run keeps what it finished and a
second invocation (at once on other VMs, or later) runs only the shards not started (delete a stopped shard's
log to run it again). --merge OUT.shards --out F.md reports what is there. The report
sums the shards' figures and lists each shard. Run it from a checkout nobody edits meanwhile: the role steps use
the checkout's roles as they are when they run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import lab as lab_module  # noqa: E402

STAGE = "/var/tmp/lunsafe-campaign"
FC_LUNS = 4  # the lab's default FC LUN count; 0 runs no FC step


def stage_tar() -> bytes:
    """The collection's plugins and ansible-core's module_utils, as the modules import them."""
    import ansible  # noqa: PLC0415 - from the checkout's venv

    buffer = io.BytesIO()
    skip = ("__pycache__",)
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(
            REPO / "plugins",
            arcname="ansible_collections/lunsafe/san/plugins",
            filter=lambda info: None if any(part in skip for part in info.name.split("/")) else info,
        )
        tar.add(
            Path(ansible.__file__).parent / "module_utils",
            arcname="ansible/module_utils",
            filter=lambda info: None if any(part in skip for part in info.name.split("/")) else info,
        )
        empty = tarfile.TarInfo("ansible/__init__.py")
        tar.addfile(empty, io.BytesIO(b""))
    return buffer.getvalue()


def push(lab: lab_module.Lab) -> None:
    import base64  # noqa: PLC0415

    payload = base64.b64encode(stage_tar()).decode()
    lab.ssh(["sh", "-c", f"rm -rf {STAGE} && mkdir -p {STAGE} && base64 -d | tar -xz -C {STAGE}"], stdin=payload)
    driver = (HERE / "guest" / "campaign_driver.py").read_text()
    lab.ssh(["sh", "-c", f"cat > {STAGE}/campaign_driver.py"], stdin=driver)


DRIVER_STATE = f"{STAGE}/state.json"

ATTACH_PLAY = """---
- name: Campaign step through the lun_attach role
  hosts: lab
  gather_facts: false
  tasks:
    - name: Attach through the role
      ansible.builtin.include_role:
        name: lunsafe.san.lun_attach
      vars:
        lun_attach_target: "{{ campaign_target }}"
        lun_attach_portals: "{{ campaign_portals }}"
        lun_attach_luns: "{{ campaign_luns }}"
        lun_attach_lock_file: "{{ campaign_lock_file }}"
        lun_attach_lock_timeout: "{{ campaign_lock_timeout }}"
        lun_attach_persist: "{{ campaign_persist }}"
"""

DETACH_PLAY = """---
- name: Campaign step through the lun_detach role
  hosts: lab
  gather_facts: false
  tasks:
    - name: Detach through the role
      ansible.builtin.include_role:
        name: lunsafe.san.lun_detach
      vars:
        lun_detach_target: "{{ campaign_target }}"
        lun_detach_portals: "{{ campaign_portals }}"
        lun_detach_luns: "{{ campaign_luns }}"
        lun_detach_unmap_tasks: "{{ campaign_unmap_tasks }}"
        lun_detach_lock_file: "{{ campaign_lock_file }}"
        lun_detach_lock_timeout: "{{ campaign_lock_timeout }}"
"""

UNMAP_TASKS = """---
- name: Unmap the LUNs on the lab's array
  ansible.builtin.command:
    argv: [python3, /usr/local/lib/lunsafe-lab/labctl.py, unmap, "{{ item.lun }}"]
  loop: "{{ lun_detach_unmap_luns }}"
  changed_when: true
"""


def role_step(lab: lab_module.Lab, role: dict) -> dict:
    """Run the lun_attach or lun_detach role for the LUNs the driver planned; the outcome goes back to the driver."""
    import subprocess  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lunsafe-campaign-") as tmp, lab_module.collections_root() as root:
        folder = Path(tmp)
        play = folder / "play.yml"
        play.write_text(ATTACH_PLAY if role["action"] == "attach" else DETACH_PLAY)
        (folder / "unmap.yml").write_text(UNMAP_TASKS)
        extra = {
            "campaign_target": role["target"],
            "campaign_portals": role["portals"],
            "campaign_luns": [{"lun": str(lun)} for lun in role["luns"]],
            "campaign_lock_file": role["lock_file"],
            "campaign_lock_timeout": role["lock_timeout"],
            "campaign_unmap_tasks": str(folder / "unmap.yml") if role.get("unmap") else "",
            "campaign_persist": bool(role.get("persist")),
        }
        argv = [str(Path(sys.executable).parent / "ansible-playbook"), str(play), "-e", json.dumps(extra)]
        env = lab_module.playbook_env(lab, root)
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600, check=False)
    output = proc.stdout + proc.stderr
    outcome = {"rc": proc.returncode, "seconds": round(time.monotonic() - start, 1)}
    if proc.returncode != 0:
        fatal = [line for line in output.splitlines() if "fatal:" in line or "msg:" in line or "FAILED" in line]
        outcome["msg"] = " | ".join(fatal)[-600:] or output[-600:]
        outcome["output"] = output[-4000:]
        if "Traceback" in output:
            outcome["traceback"] = True
    return outcome


def boot_step(lab: lab_module.Lab, boot: dict) -> dict:
    """A reboot or power cut the driver planned: the array's configuration saved so that it comes back at boot,
    the guest rebooted (``systemctl reboot``) or its qemu killed, then the boot restore waited for. The outcome
    goes back to the driver."""
    from test_persist_boot import save_array  # noqa: PLC0415 - the array saved for the boot, as the test does

    start = time.monotonic()
    try:
        save_array(lab)
        lab.restart(power_cut=boot["kind"] == "power_cut")
        restore = {"installed": boot.get("service", False)}
        if restore["installed"]:
            deadline = time.monotonic() + 900
            while True:
                shown = lab.ssh(
                    ["systemctl", "show", "lunsafe-san-restore.service", "-p", "ActiveState", "-p", "Result"],
                    check=False,
                ).stdout
                values = dict(line.split("=", 1) for line in shown.split() if "=" in line)
                if values.get("ActiveState") not in ("activating", "reloading") or time.monotonic() > deadline:
                    break
                time.sleep(2)
            journal = lab.ssh(
                ["journalctl", "-b", "-u", "lunsafe-san-restore", "-o", "cat", "--no-pager"], check=False
            ).stdout
            restore.update(state=values.get("ActiveState"), result=values.get("Result"))
            restore["summary"] = [line for line in journal.splitlines() if "lunsafe-san-restore:" in line][-1:]
            restore["lines"] = [line[:200] for line in journal.splitlines()[-40:]]
        return {"ok": True, "seconds": round(time.monotonic() - start, 1), "restore": restore}
    except Exception as exc:  # reported to the driver as the step's failure
        return {"ok": False, "seconds": round(time.monotonic() - start, 1), "msg": f"{type(exc).__name__}: {exc}"}


def step_line(record: dict) -> str:
    flag = "VIOLATION " + "; ".join(record["violations"]) if record["violations"] else ""
    extra = ""
    for key in ("refused", "killed", "during", "unmap"):
        if key in record:
            extra += f" {key}={record[key]}"
    if record.get("errors"):
        extra += f" error={record['errors'][0][:100]!r}"
    return (
        f"step {record['i']:>4} r{record.get('round', 0):<4} w{record.get('worker', 0)} {record['kind']:<18} "
        f"luns={record.get('luns', [])} ok={record.get('ok', '-')} {record['seconds']:>6}s "
        f"(module {record.get('module_s', 0)}s, round {record.get('round_s', 0)}s){extra} {flag}"
    )


def run(  # noqa: PLR0912 - one branch per segment outcome
    lab: lab_module.Lab,
    *,
    seed: int,
    steps: int,
    luns: int,
    workers: int = 2,
    role_every: int = 0,
    weights: str = "",
    fc_luns: int = FC_LUNS,
    boot_every: int = 0,
    emit=print,
) -> tuple[list[dict], dict]:
    """Reset the array, then run the driver segment after segment (a role step between two segments).

    With ``fc_luns`` > 0 and a lab with FC ports the array gets that many FC LUNs and the driver draws FC steps
    too; a lab without FC ports (or ``fc_luns`` 0) runs the iSCSI steps alone, with the same draws as before.
    With ``boot_every`` > 0 every K-th round is a reboot or a power cut of the guest (:func:`boot_step`); the
    driver's attaches then record their LUNs (``persist``) and the role's install the boot restore."""
    import shlex  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    if boot_every and fc_luns:
        # the lab's FC array (tcm_fc over FCoE in the guest) is not part of the configuration saved for a boot
        raise SystemExit("campaign: --boot-every runs the iSCSI steps only: add --fc-luns 0")
    status = lab.array(["reset", "--luns", str(luns), *(["--fc-luns", str(fc_luns)] if fc_luns else [])])
    if status.get("leftover_devices"):
        raise SystemExit(f"campaign: the reset left devices behind: {status['leftover_devices']}")
    fc_luns = len(status.get("fc", {}).get("luns", [])) if fc_luns else 0
    lab.ssh(["rm", "-f", DRIVER_STATE])  # the reset above removed the persist records of earlier runs
    info = lab.info()
    records: list[dict] = []
    summary: dict = {}
    role_result = None
    boot_result = None
    while True:
        command = (
            f"python3 {STAGE}/campaign_driver.py --seed {seed} --steps {steps} --luns {luns} --workers {workers} "
            f"--role-every {role_every} --stage {STAGE} --state {DRIVER_STATE} --fc-luns {fc_luns}"
        )
        if weights:
            command += f" --weights {shlex.quote(weights)}"
        if role_result is not None:
            command += f" --role-result {shlex.quote(json.dumps(role_result))}"
        if boot_every:
            command += f" --boot-every {boot_every}"
        if boot_result is not None:
            command += f" --boot-result {shlex.quote(json.dumps(boot_result))}"
        role_result = boot_result = None
        argv = [*lab._ssh_argv(info), "--", command]
        last = None
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    record = json.loads(line)
                except ValueError:
                    emit(line.rstrip())
                    continue
                if "summary" in record:
                    last = record
                    continue
                records.append(record)
                emit(step_line(record))
        if last is None:
            raise SystemExit(f"campaign: the driver ended without a summary (rc {proc.returncode})")
        summary = last["summary"]
        if last.get("boot"):
            boot = last["boot"]
            emit(
                f"boot step {boot['i']}: {boot['kind']} with LUNs {boot['held']} held, {boot['recorded']} recorded, "
                f"restore service {'installed' if boot['service'] else 'not installed'}"
            )
            boot_result = boot_step(lab, boot)
            info = lab.info()  # a new SSH port after the boot
            emit(f"boot step {boot['i']}: {json.dumps(boot_result)[:600]}")
            continue
        if last.get("done") or not last.get("role"):
            break
        role = last["role"]
        emit(f"role step {role['i']}: {role['action']} {role['luns']} unmap={role.get('unmap')} (ansible-playbook)")
        role_result = role_step(lab, role)
        if role_result["rc"] != 0:
            emit(f"role step {role['i']} failed: {role_result.get('msg', '')}")
    return records, summary


def totals(records: list[dict], summary: dict, seconds: float) -> dict:
    """The figures a test or a report needs: steps, violations, mismatches, errors that were not clear."""
    data = summary.get("data", {})
    return {
        "steps": len(records),
        "violations": summary.get("violations", []),
        "mismatches": data.get("mismatches", 0),
        "seconds": seconds,
        "s_per_step": seconds / max(1, len(records)),
    }


def _table(title: str, header: str, table: dict, note: str = "") -> list[str]:
    rows = sorted(table.items(), key=lambda item: (-item[1], item[0])) if table else []
    return [
        f"## {title}",
        "",
        *([note, ""] if note else []),
        f"| {header} | count |",
        "|---|---:|",
        *[f"| {key} | {count} |" for key, count in rows],
        "",
    ]


def _shard_table(shards: list[dict]) -> list[str]:
    lines = [
        "## Shards",
        "",
        "| shard | seed | lab | steps | time (s) | s/step | violations | data mismatches |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for shard in sorted(shards, key=lambda item: item["shard"]):
        summary = shard["summary"]
        steps = len(shard["records"])
        lines.append(
            f"| {shard['shard']} | {shard['seed']} | {shard['lab']} | {steps} | {shard['seconds']:.0f} | "
            f"{shard['seconds'] / max(1, steps):.1f} | {len(summary.get('violations', []))} | "
            f"{summary.get('data', {}).get('mismatches', 0)} |"
        )
    return [*lines, ""]


def merge_counts(total: dict, part: dict, shard: int) -> dict:
    """Sum one shard's counts into the total: numbers add up, tables merge, violations are tagged by shard."""
    for key, value in part.items():
        if isinstance(value, dict):
            merge_counts(total.setdefault(key, {}), value, shard)
        elif isinstance(value, list):
            total.setdefault(key, []).extend(
                {**item, "shard": shard} if isinstance(item, dict) else item for item in value
            )
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value
        else:
            total.setdefault(key, value)
    return total


def merged(shards: list[dict]) -> tuple[list[dict], dict]:
    records: list[dict] = []
    summary: dict = {}
    for shard in sorted(shards, key=lambda item: item["shard"]):
        records.extend({**record, "shard": shard["shard"]} for record in shard["records"])
        merge_counts(summary, shard["summary"], shard["shard"])
    return records, summary


def load_shards(folder: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("shard-*.json"))]


def run_shards(
    labs: list[lab_module.Lab],
    *,
    seed: int,
    shards: int,
    steps: int,
    luns: int,
    workers: int,
    role_every: int,
    weights: str,
    folder: Path,
    stop_after: float,
    fc_luns: int = FC_LUNS,
    boot_every: int = 0,
) -> None:
    """Share --shards seeded shards out over the labs, one shard per lab at a time; each finished shard is
    written to folder/shard-K.json at once, so a stopped campaign keeps what it finished (merge with --merge).
    No new shard starts after stop_after seconds."""
    import threading  # noqa: PLC0415

    folder.mkdir(parents=True, exist_ok=True)
    # a shard with a log was started by this or another invocation (running beside this one on other labs, or
    # stopped: delete its log to run it again)
    started = {int(path.stem.split("-")[1]) for path in folder.glob("shard-*.log")}
    queue = [k for k in range(shards) if k not in started]
    mu = threading.Lock()
    start = time.monotonic()

    def worker(lab: lab_module.Lab) -> None:
        push(lab)
        while True:
            with mu:
                shard = None
                while queue and time.monotonic() - start <= stop_after:
                    candidate = queue.pop(0)
                    try:  # the log claims the shard: another invocation may have started it since this one began
                        log = (folder / f"shard-{candidate:02d}.log").open("x", encoding="utf-8")
                    except FileExistsError:
                        continue
                    shard = candidate
                    break
                if shard is None:
                    return

            def emit(line: str, shard: int = shard, log=log) -> None:
                log.write(line + "\n")
                log.flush()
                print(f"[{lab.name} shard {shard}] {line}", flush=True)

            began = time.monotonic()
            emit(f"shard {shard}: seed {seed + shard}, {steps} steps on {lab.name}")
            records, summary = run(
                lab,
                seed=seed + shard,
                steps=steps,
                luns=luns,
                workers=workers,
                role_every=role_every,
                weights=weights,
                fc_luns=fc_luns,
                boot_every=boot_every,
                emit=emit,
            )
            result = {
                "shard": shard,
                "seed": seed + shard,
                "lab": lab.name,
                "seconds": time.monotonic() - began,
                "records": records,
                "summary": summary,
            }
            path = folder / f"shard-{shard:02d}.json"
            path.with_suffix(".tmp").write_text(json.dumps(result))
            path.with_suffix(".tmp").replace(path)
            log.close()

    threads = [threading.Thread(target=worker, args=(lab,), name=lab.name) for lab in labs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def report_lines(
    *,
    seed: int,
    luns: int,
    workers: int,
    role_every: int,
    records: list[dict],
    summary: dict,
    seconds: float,
    weights: str = "",
    shards: list[dict] | None = None,
) -> list[str]:
    data = summary.get("data", {})
    violations = summary.get("violations", [])
    timing = summary.get("timing", {})
    fc = summary.get("fc", {})
    journal = summary.get("journal", {})
    journal_active = journal.get("results_with_interrupted", 0) > 0
    steps = max(1, len(records))
    kills_note = "The journal check is active" + (
        " (the module reports `interrupted`)."
        if journal_active
        else " only once the module reports `interrupted`; this run's module did not (outcomes marked"
        " `no journal in the result` are counted, not checked)."
    )
    if shards:
        labs = sorted({shard["lab"] for shard in shards})
        how = [
            f"`python3 tests/lab/campaign.py --labs {','.join(labs)} --seed {seed} --shards {len(shards)} --steps N"
            f" --workers {workers} --role-every {role_every}`: {len(shards)} seeded shards (seed {seed} + shard",
            f"number) shared out over {len(labs)} lab VMs (TCG, one vCPU each) that ran at once; each shard resets its",
            "VM's array and runs the driver from a clean host. The driver runs in the guest, the role steps run",
            "through ansible-playbook from the controller. The figures below are summed over the shards.",
        ]
    else:
        how = [
            "`python3 tests/lab/campaign.py --seed N --steps N --workers W --role-every K` against one lab VM (TCG);"
            " the",
            "driver runs in the guest, the role steps run through ansible-playbook from the controller.",
        ]
    return [
        "# Seeded fault campaign",
        "",
        *how,
        "",
        f"seed: {seed}",
        f"LUNs: {luns} over 2 portals (ext4 with a checksummed file on LUNs n % 4 == 3)",
        *(
            [f"Fibre Channel: {fc['setup']} (see tests/lab/guest/campaign_driver.py, FC_SCAN_MODE), 4 paths each"]
            if fc.get("setup")
            else ["Fibre Channel: none (no FC steps)"]
        ),
        f"workers: {workers}",
        *([f"step weights changed: {weights}"] if weights else []),
        f"role step every {role_every} rounds" if role_every else "role steps: none",
        f"steps: {len(records)}",
        f"invariant violations: {len(violations)}",
        f"data mismatches: {data.get('mismatches', 0)}",
        f"time: {seconds:.0f} s" + (" (wall time, shards at once)" if shards else ""),
        f"throughput: {seconds / steps:.1f} s/step" + (" (wall time over all VMs)" if shards else ""),
        f"data verified: {data.get('verified', 0)} read-backs ({data.get('fs_verified', 0)} files on ext4, "
        f"{data.get('fsck_clean', 0)} clean fsck -n), {data.get('verified_bytes', 0) / 2**30:.3f} GiB; "
        f"written {data.get('written_bytes', 0) / 2**30:.3f} GiB",
        f"writes in flight during a path failure: {data.get('inflight_writes', 0)} steps, "
        f"{data.get('inflight_written_bytes', 0) / 2**20:.0f} MiB written, "
        f"{data.get('inflight_verified_bytes', 0) / 2**20:.0f} MiB read back",
        "",
        *(_shard_table(shards) if shards else []),
        "## Where the time goes",
        "",
        f"- rounds: {timing.get('rounds', 0)}, {timing.get('rounds_s', 0):.0f} s in all",
        f"- module runs (wall time, lock waits included, summed over workers): {timing.get('module_s', 0):.0f} s",
        f"- invariant checks (settling after faults included): {timing.get('check_s', 0):.0f} s",
        f"- role steps (ansible-playbook): {timing.get('role_s', 0):.0f} s",
        "",
        *_table("Steps by kind", "kind", summary.get("steps", {})),
        *_table("Faults injected", "fault", summary.get("faults", {})),
        *_table(
            "Kills (SIGKILL of a module run, then the same request again)",
            "action: outcome",
            summary.get("kills", {}),
            kills_note,
        ),
        *_table("Journal: interrupted runs reported", "op: resolution", journal.get("entries", {})),
        *_table(
            "Refusals (detach of a mounted filesystem, attach of an FC LUN reused while held)",
            "outcome",
            summary.get("refusals", {}),
        ),
        *_table(
            "Fibre Channel port faults and reuse: what the host showed",
            "observation",
            {key: count for key, count in fc.items() if isinstance(count, int)},
        ),
        *_table("Role steps", "role: outcome", summary.get("roles", {})),
        *_table(
            "Reboots and power cuts (issue 28): what came back",
            "boot: outcome",
            summary.get("boots", {}),
            "A recorded LUN (persist) must come back at boot through the restore service with its WWID, its synced "
            "pattern or file (fsck -n clean after the journal replay); a held LUN that was not recorded must not.",
        ),
        *_table(
            "Errors by message (module failures; each must be a clear error)", "message", summary.get("errors", {})
        ),
        "## Invariant violations",
        "",
        *(
            [
                f"- {'shard ' + str(v['shard']) + ', ' if 'shard' in v else ''}steps {v['steps']} ({v['kind']}): "
                f"{v['what']}"
                for v in violations
            ]
            or ["none"]
        ),
        "",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=None, help="default: a random seed, printed")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--luns", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="steps run at once in each round")
    parser.add_argument("--role-every", type=int, default=10, help="every K-th round is a role step (0: none)")
    parser.add_argument("--weights", default="", help="KIND=N,... overriding step weights (e.g. kill=40)")
    parser.add_argument("--fc-luns", type=int, default=FC_LUNS, help="FC LUNs (0: no FC steps; none without FC ports)")
    parser.add_argument("--boot-every", type=int, default=0, help="every K-th round a reboot or power cut (0: none)")
    parser.add_argument("--out", type=Path, help="write the report (markdown) here, the step lines beside it")
    parser.add_argument("--labs", default="", help="NAME,NAME: run --shards shards over these lab VMs at once")
    parser.add_argument("--shards", type=int, default=0, help="with --labs: seeded shards of --steps steps each")
    parser.add_argument("--shard-dir", type=Path, help="with --labs: where finished shards go (default: OUT.shards)")
    parser.add_argument("--stop-after", type=float, default=float("inf"), help="with --labs: no new shard after S s")
    parser.add_argument("--merge", type=Path, help="write the report from the finished shards in this folder")
    args = parser.parse_args()
    if args.labs or args.merge:
        return main_shards(args)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**9)
    print(
        f"campaign: seed {seed}, {args.steps} steps, {args.luns} LUNs, {args.workers} workers, "
        f"role step every {args.role_every} rounds",
        flush=True,
    )
    lab = lab_module.Lab(os.environ.get("LUNSAFE_LAB_NAME", "default"))
    push(lab)
    start = time.monotonic()
    records, summary = run(
        lab,
        seed=seed,
        steps=args.steps,
        luns=args.luns,
        workers=args.workers,
        role_every=args.role_every,
        weights=args.weights,
        fc_luns=args.fc_luns,
        boot_every=args.boot_every,
    )
    lines = report_lines(
        seed=seed,
        luns=args.luns,
        workers=args.workers,
        role_every=args.role_every,
        records=records,
        summary=summary,
        seconds=time.monotonic() - start,
        weights=args.weights,
    )
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines))
        (args.out.with_suffix(".jsonl")).write_text("".join(json.dumps(r) + "\n" for r in records))
    return 1 if summary.get("violations") or summary.get("data", {}).get("mismatches") else 0


def wall_seconds(folder: Path) -> float:
    """The wall time of the invocations that ran the shards (runs.txt: start and end of each, epoch seconds):
    the length of the union of their intervals, so invocations side by side count once."""
    runs_file = folder / "runs.txt"
    if not runs_file.exists():
        return 0.0
    intervals = sorted(
        (float(fields[0]), float(fields[1]))
        for fields in (line.split() for line in runs_file.read_text().splitlines())
        if len(fields) >= 2
    )
    total, end = 0.0, float("-inf")
    for start, stop in intervals:
        total += max(0.0, stop - max(start, end))
        end = max(end, stop)
    return total


def main_shards(args: argparse.Namespace) -> int:
    """--labs: run the shards (or those not finished yet), then report; --merge: report what is finished."""
    folder = args.merge or args.shard_dir or (args.out.with_suffix(".shards") if args.out else None)
    if folder is None:
        raise SystemExit("campaign: --labs needs --out or --shard-dir")
    if args.labs:
        if args.seed is None or args.shards < 1:
            raise SystemExit("campaign: --labs needs --seed and --shards")
        labs = [lab_module.Lab(name) for name in args.labs.split(",") if name]
        print(f"campaign: seed {args.seed}, {args.shards} shards of {args.steps} steps over {args.labs}", flush=True)
        start = time.monotonic()
        run_shards(
            labs,
            seed=args.seed,
            shards=args.shards,
            steps=args.steps,
            luns=args.luns,
            workers=args.workers,
            role_every=args.role_every,
            weights=args.weights,
            folder=folder,
            stop_after=args.stop_after,
            fc_luns=args.fc_luns,
            boot_every=args.boot_every,
        )
        with (folder / "runs.txt").open("a", encoding="utf-8") as runs:
            runs.write(f"{time.time() - (time.monotonic() - start):.0f} {time.time():.0f} {args.labs}\n")
    shards = load_shards(folder)
    if not shards:
        raise SystemExit(f"campaign: no finished shard in {folder}")
    wall = wall_seconds(folder) or max(shard["seconds"] for shard in shards)
    records, summary = merged(shards)
    lines = report_lines(
        seed=min(shard["seed"] - shard["shard"] for shard in shards),
        luns=args.luns,
        workers=args.workers,
        role_every=args.role_every,
        records=records,
        summary=summary,
        seconds=wall,
        weights=args.weights,
        shards=shards,
    )
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines))
        (args.out.with_suffix(".jsonl")).write_text("".join(json.dumps(r) + "\n" for r in records))
    return 1 if summary.get("violations") or summary.get("data", {}).get("mismatches") else 0


if __name__ == "__main__":
    sys.exit(main())
