# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: iscsi_lun_attach beside OpenStack's os-brick (Debian's python3-os-brick in the lab guest), one
LUN attached and detached, side by side in one run on the same lab. Run by hand; not part of the test suite.

    python3 tests/lab/bench_osbrick.py [--luns 4 64 256] [--samples 3] [--modes sessions-up no-session]
                                       [--name osbench] [--reuse] [--out docs/benchmarks/osbrick.md]

For each count N of LUNs mapped (the array reset to N LUNs of 1 MiB on portals 127.0.0.1 and 127.0.0.2):
  sessions-up:  both sessions logged in (manual scan), no device. ours: `iscsi_lun_attach lun=1`, then
                `state=absent logout=false`; os-brick: connect_volume of LUN 2 (target_portals/iqns/luns of
                both paths, multipath), then disconnect_volume.
  no-session:   no session and no node record before each attach. ours: attach LUN 1 (logs in), detach
                (logs out, drops the records); os-brick: connect LUN 2 (logs in), disconnect (logs out).
Ours is timed by the module's own `timings.total` (no Ansible transport, no module start-up) and by the wall
time of the ad-hoc `ansible` call; os-brick by the driver's clock around connect_volume/disconnect_volume in
its process (no Python start-up, no import: tests/lab/guest/osbrick.py). Before every attach all devices and
maps are gone and /etc/multipath/wwids is emptied, so each LUN is new to multipathd, for both. The two
alternate which goes first. After each attach the SCSI devices nobody asked for are counted.

Writes OUT (markdown) and OUT's .json (merged with the rows recorded there, one row per LUN count and mode).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_attach
import lab as lab_module

IQN = bench_attach.IQN
PORTALS = bench_attach.PORTALS
DRIVER = "/usr/local/lib/lunsafe-lab/osbrick.py"
# both sessions up with manual scan, whatever the last sample left (ours keeps them, os-brick logs out)
LOGIN_BOTH = f"""
set -e
for p in {" ".join(PORTALS)}; do
  if ! iscsiadm -m session 2>/dev/null | grep -qE " $p:3260,[0-9]+ {IQN}( |$)"; then
    iscsiadm -m node -T {IQN} -p $p -o new >/dev/null
    iscsiadm -m node -T {IQN} -p $p -o update -n node.session.scan -v manual
    iscsiadm -m node -T {IQN} -p $p --login >/dev/null
  fi
done
"""
LOGOUT_ALL = "iscsiadm -m node -u >/dev/null 2>&1; iscsiadm -m node -o delete >/dev/null 2>&1; true"


def log(msg: str) -> None:
    print(f"[bench_osbrick {time.strftime('%H:%M:%S', time.gmtime())}] {msg}", file=sys.stderr, flush=True)


def module(lab: lab_module.Lab, root: Path, args: str, name: str = "lunsafe.san.iscsi_lun_attach") -> Dict[str, Any]:
    result, wall = bench_attach.adhoc_attach(lab, root, args, timeout=900, module=name)
    return {
        "seconds": result["timings"]["total"],
        "wall": round(wall, 3),
        "devices": len(result.get("devices") or []),
        "timings": result["timings"],
        "commands": (result.get("profile") or {}).get("commands"),  # None from a module without a profile
        "profile": result.get("profile"),
    }


def brick(
    lab: lab_module.Lab,
    command: str,
    lun: int,
    extra: Optional[List[str]] = None,
    target: Optional[List[str]] = None,
) -> Dict[str, Any]:
    """os-brick's connect_volume / disconnect_volume of LUN in the guest driver; TARGET: the driver's target
    arguments (default: the iSCSI array's IQN and both portals; FC: --target-wwn once per port)."""
    if target is None:
        target = ["--iqn", IQN]
        for portal in PORTALS:
            target += ["--portal", portal]
    argv = ["python3", DRIVER, command, *target, "--lun", str(lun)]
    start = time.monotonic()
    proc = lab.ssh(argv + (extra or []), timeout=900, check=False)
    wall = time.monotonic() - start
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines else {"error": proc.stderr[-2000:]}
    if result.get("error"):
        raise SystemExit(f"os-brick {command} LUN {lun} failed: {result['error']}")
    result["wall"] = round(wall, 3)
    return result


def fresh(lab: lab_module.Lab, *, sessions: bool) -> None:
    """No device, no map, wwids emptied; sessions up (manual scan) or none at all."""
    bench_attach.guest_python(lab, bench_attach.GUEST_DETACH, "detach", timeout=1200)
    if sessions:
        lab.ssh(["sh", "-c", LOGIN_BOTH])
    else:
        lab.ssh(["sh", "-c", LOGOUT_ALL], timeout=300)


SILENT = "one-silent"
SILENT_PORTAL = "::1"  # the array's third portal; labctl drops its packets both ways (nft), so logins hang
THREE_PORTALS = [*PORTALS, f"[{SILENT_PORTAL}]"]


def tolerant(lab: lab_module.Lab, root: Path, args: str) -> Dict[str, Any]:
    """An ad-hoc module call that may fail: seconds (its timings.total), wall, failed, msg, commands."""
    env = lab_module.playbook_env(lab, root)
    ansible = str(lab_module.REPO / ".venv" / "bin" / "ansible")
    start = time.monotonic()
    proc = subprocess.run(
        [ansible, "lab", "-o", "-m", "lunsafe.san.iscsi_lun_attach", "-a", args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    wall = time.monotonic() - start
    line = next((x for x in reversed(proc.stdout.splitlines()) if "=>" in x), "")
    if not line:
        raise SystemExit(f"ansible gave no result: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    result = json.loads(line.split("=>", 1)[1])
    return {
        "seconds": (result.get("timings") or {}).get("total"),
        "wall": round(wall, 3),
        # the oneline callback leaves `failed` out of the result it prints after "FAILED! =>"
        "failed": bool(result.get("failed")) or "FAILED!" in line.split("=>", 1)[0],
        "msg": (result.get("msg") or "")[:300],
        "devices": len(result.get("devices") or []),
        "commands": (result.get("profile") or {}).get("commands"),
    }


def silent_sample(lab: lab_module.Lab, root: Path, *, ours_first: bool, login_timeout: int) -> Dict[str, Any]:
    """Three portals, the third silent, no session before: how long each takes to its outcome, and what it is."""
    out: Dict[str, Any] = {}
    for who in ("ours", "osbrick") if ours_first else ("osbrick", "ours"):
        fresh(lab, sessions=False)
        lab.array(["portal", "down", SILENT_PORTAL])
        before = bench_attach.count_sd(lab)
        try:
            if who == "ours":
                got = tolerant(
                    lab, root, f"target={IQN} portals={','.join(THREE_PORTALS)} lun=1 login_timeout={login_timeout}"
                )
                out[who] = {**got, "paths": bench_attach.count_sd(lab) - before}
            else:
                target = ["--iqn", IQN]
                for portal in THREE_PORTALS:
                    target += ["--portal", portal]
                argv = ["python3", DRIVER, "connect", *target, "--lun", "2"]
                start = time.monotonic()
                proc = lab.ssh(argv, timeout=900, check=False)
                wall = time.monotonic() - start
                lines = proc.stdout.strip().splitlines()
                result = json.loads(lines[-1]) if lines else {"error": proc.stderr[-300:]}
                paths = bench_attach.count_sd(lab) - before
                out[who] = {
                    "seconds": result.get("seconds"),
                    "wall": round(wall, 3),
                    "failed": bool(result.get("error")),
                    "msg": str(result.get("error") or "")[:300],
                    "paths": paths,
                    "commands": result.get("commands"),
                }
        finally:
            lab.array(["portal", "up", SILENT_PORTAL])
    fresh(lab, sessions=False)
    return out


def silent_table(rows: List[Dict[str, Any]]) -> List[str]:
    lines = [
        "| LUNs mapped | ours: outcome, s (wall), paths | os-brick connect: outcome, s (wall), paths |",
        "|---|---|---|",
    ]

    def cell(o: Dict[str, Any]) -> str:
        outcome = "failed" if o.get("failed") else "attached"
        seconds = "-" if o.get("seconds") is None else f"{o['seconds']:.2f}"
        paths = "-" if o.get("paths") is None else f"{o['paths']:g}"
        return f"{outcome}, {seconds} ({o['wall']:.1f}), {paths}"

    for r in sorted(rows, key=lambda r: r["luns"]):
        lines.append(f"| {r['luns']} | {cell(r['ours'])} | {cell(r['osbrick'])} |")
    return lines


def sample(lab: lab_module.Lab, root: Path, *, mode: str, ours_first: bool) -> Dict[str, Any]:
    up = mode == "sessions-up"
    out: Dict[str, Any] = {}
    for who in ("ours", "osbrick") if ours_first else ("osbrick", "ours"):
        fresh(lab, sessions=up)
        before = bench_attach.count_sd(lab)
        if who == "ours":
            attach = module(lab, root, f"target={IQN} portals={','.join(PORTALS)} lun=1")
            unrequested = bench_attach.count_sd(lab) - before - attach["devices"]
            detach = module(
                lab,
                root,
                f"target={IQN} portals={','.join(PORTALS)} lun=1 state=absent logout={'false' if up else 'true'}",
            )
        else:
            attach = brick(lab, "connect", 2)
            unrequested = bench_attach.count_sd(lab) - before - 2
            detach = brick(lab, "disconnect", 2, ["--device-info", json.dumps(attach.get("device_info") or {})])
        out[who] = {
            "attach": attach["seconds"],
            "attach_wall": attach["wall"],
            "detach": detach["seconds"],
            "detach_wall": detach["wall"],
            "unrequested": unrequested,
            # ours: the module's profile; os-brick: its processutils.execute calls (tests/lab/guest/osbrick.py)
            "attach_commands": attach.get("commands"),
            "detach_commands": detach.get("commands"),
        }
        if who == "ours":
            out[who]["profiles"] = {"attach": attach.get("profile"), "detach": detach.get("profile")}
        else:
            out[who]["command_names"] = {"attach": attach.get("command_names"), "detach": detach.get("command_names")}
    return out


def measure(  # noqa: PLR0917 - the run's settings, as main() has them
    lab: lab_module.Lab, root: Path, luns: int, modes: List[str], samples: int, login_timeout: int = 10
) -> List[Dict[str, Any]]:
    t0 = time.monotonic()
    lab.array(["reset", "--luns", str(luns), "--size-mb", "1"], timeout=1800)
    log(f"{luns} LUNs mapped ({time.monotonic() - t0:.0f}s)")
    rows = []
    for mode in modes:
        if mode == SILENT:
            picked = [
                silent_sample(lab, root, ours_first=i % 2 == 0, login_timeout=login_timeout) for i in range(samples)
            ]
            row = {"luns": luns, "mode": mode, "samples": len(picked), "login_timeout": login_timeout}
            for who in ("ours", "osbrick"):
                done = [p[who] for p in picked]
                secs = [d["seconds"] for d in done if d["seconds"] is not None]
                row[who] = {
                    "seconds": round(statistics.median(secs), 3) if secs else None,
                    "wall": round(statistics.median(d["wall"] for d in done), 3),
                    "failed": sum(d["failed"] for d in done),
                    "paths": statistics.median(d["paths"] for d in done),
                    "all": done,
                }
                row[who]["failed"] = row[who]["failed"] == len(done)
            rows.append(row)
            log(json.dumps(row))
            continue
        got = [sample(lab, root, mode=mode, ours_first=i % 2 == 0) for i in range(samples)]
        row: Dict[str, Any] = {"luns": luns, "mode": mode, "samples": len(got)}
        for who in ("ours", "osbrick"):
            row[who] = {
                key: round(statistics.median(g[who][key] for g in got), 3)
                for key in ("attach", "attach_wall", "detach", "detach_wall")
            }
            row[who]["unrequested"] = max(g[who]["unrequested"] for g in got)
            row[who]["attach_all"] = [g[who]["attach"] for g in got]
            row[who].update(commands_median(got, who))
        # what each ran once, for the record: ours by the profile of its first sample, os-brick by name
        row["ours"]["profile_first"] = got[0]["ours"].get("profiles")
        row["osbrick"]["command_names_first"] = got[0]["osbrick"].get("command_names")
        rows.append(row)
        log(json.dumps(row))
    fresh(lab, sessions=False)
    lab.array(["reset", "--luns", "4", "--size-mb", "1"], timeout=3600)
    return rows


def commands_median(got: List[Dict[str, Any]], who: str) -> Dict[str, Any]:
    """Median commands per attach and per detach over the samples (None when a run did not count them)."""
    out: Dict[str, Any] = {}
    for key in ("attach_commands", "detach_commands"):
        counts = [g[who].get(key) for g in got]
        out[key] = statistics.median(counts) if counts and all(isinstance(c, int) for c in counts) else None
    return out


def count_cell(row: Dict[str, Any], key: str) -> str:
    """``ours / os-brick`` commands, ``-`` for rows recorded before commands were counted."""
    values = [row[who].get(key) for who in ("ours", "osbrick")]
    return " / ".join("-" if v is None else f"{v:g}" for v in values)


def table(rows: List[Dict[str, Any]]) -> List[str]:
    lines = [
        "| LUNs mapped | from | ours attach s (wall) | os-brick connect s (wall) | ours / os-brick | "
        "ours detach s | os-brick disconnect s | unrequested ours / os-brick | commands per attach ours / os-brick "
        "| per detach |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted((r for r in rows if r["mode"] != SILENT), key=lambda r: (r["mode"], r["luns"])):
        o, b = r["ours"], r["osbrick"]
        ratio = o["attach"] / b["attach"] if b["attach"] else float("nan")
        lines.append(
            f"| {r['luns']} | {r['mode']} | {o['attach']:.2f} ({o['attach_wall']:.1f}) | "
            f"{b['attach']:.2f} ({b['attach_wall']:.1f}) | {ratio:.2f} | {o['detach']:.2f} | {b['detach']:.2f} | "
            f"{o['unrequested']} / {b['unrequested']} | {count_cell(r, 'attach_commands')} | "
            f"{count_cell(r, 'detach_commands')} |"
        )
    return lines


def write(out: Path, rows: List[Dict[str, Any]], stamp: Optional[Dict[str, Any]], notes: List[str]) -> None:
    json_path = out.with_suffix(".json")
    try:
        recorded = json.loads(json_path.read_text())
    except (FileNotFoundError, ValueError):
        recorded = {"rows": [], "runs": [], "notes": []}
    keep = {(r["luns"], r["mode"]) for r in rows}
    recorded["rows"] = [r for r in recorded["rows"] if (r["luns"], r["mode"]) not in keep] + rows
    if stamp is not None:
        recorded["runs"].append(stamp)
    recorded["notes"] = notes or recorded.get("notes", [])
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(recorded, indent=1) + "\n")
    text = [
        "# Attach and detach beside os-brick",
        "",
        f"Written by `tests/lab/bench_osbrick.py --out` (raw figures in [{json_path.name}]({json_path.name})), in "
        "the lab VM: a real kernel under qemu (TCG) with an LIO array on portals 127.0.0.1 and 127.0.0.2, LUNs of "
        "1 MiB, multipathd with `find_multipaths yes`, and Debian's python3-os-brick run in-process as root "
        "(privsep client mode off, `tests/lab/guest/osbrick.py`). One LUN each, every LUN new to multipathd "
        "(wwids emptied before each attach), medians over the samples; the two alternate which goes first.",
        "",
        "*ours*: `iscsi_lun_attach`'s own `timings.total` (the module's work, no Ansible transport), and in "
        "brackets the wall time of the ad-hoc `ansible` call. *os-brick*: the clock around `connect_volume` / "
        "`disconnect_volume` in its process (its Python start-up and import not counted), in brackets the wall "
        "time of the SSH call running the driver. *from sessions-up*: both sessions logged in, no device; "
        "*from no-session*: no session, no node record (the attach logs in, the detach logs out). *commands*: "
        "medians of the external commands each ran: ours from the module's `profile`, os-brick's by counting "
        "its `processutils.execute` calls in the driver (each run's list is in the .json).",
        "",
        *table(recorded["rows"]),
        "",
        "Goals: issue 12, our module time at most half of os-brick's connect_volume at every LUN count; issue 26, "
        "at most 0.7x os-brick's connect_volume and disconnect_volume in every row.",
        "",
    ]
    silent = [r for r in recorded["rows"] if r["mode"] == SILENT]
    if silent:
        text += [
            "## One portal silent of three",
            "",
            f"No session before; the array's portals 127.0.0.1, 127.0.0.2 and [::1], packets to and from [::1] "
            "dropped (`labctl portal down ::1`). *ours*: `iscsi_lun_attach` of LUN 1 over the three portals with "
            f"`login_timeout={silent[0].get('login_timeout')}` (every requested portal must log in: the run fails, "
            "and what it created is rolled back); *os-brick*: connect_volume of LUN 2 over the three. Time to the "
            "outcome, medians.",
            "",
            *silent_table(silent),
            "",
        ]
    if recorded["notes"]:
        text += ["Notes:", "", *(f"- {n}" for n in recorded["notes"]), ""]
    text += ["Runs:", ""]
    for run in recorded["runs"]:
        text.append(
            f"- `{run['command']}` on {run['date']} (lab kernel {run.get('kernel')}, accel {run.get('accel')}, "
            f"{run.get('host_cores')}-core host, code {run.get('code')}): {run.get('what', '')}"
        )
    out.write_text("\n".join(text).rstrip() + "\n")
    log(f"wrote {out} and {json_path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--luns", type=int, nargs="+", default=[4, 64, 256])
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=["sessions-up", "no-session", SILENT],
        default=["sessions-up", "no-session"],
    )
    parser.add_argument("--login-timeout", type=int, default=10, help=f"ours in {SILENT} (default 10 s)")
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--name", default="osbench")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--out")
    parser.add_argument("--note", action="append", default=[])
    parser.add_argument("--render", action="store_true", help="no lab: rewrite --out from its .json")
    args = parser.parse_args()
    if args.render:
        write(Path(args.out), [], None, args.note)
        return 0
    command = "python3 tests/lab/bench_osbrick.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lab = lab_module.Lab(args.name)
    booted = False
    if lab.pid() and not args.reuse:
        raise SystemExit(f"bench_osbrick: lab {args.name!r} is already running: pass --reuse, or stop it first")
    if not lab.pid():
        lab.up(luns=4, accel=os.environ.get("LUNSAFE_LAB_ACCEL", "auto"), boot_timeout=300, watch_pid=os.getpid())
        booted = True
    info = lab.info()
    bench_attach.wait_for_stray_runs(lab)
    rows: List[Dict[str, Any]] = []
    try:
        with lab_module.collections_root() as root:
            for n in args.luns:
                rows += measure(lab, root, n, args.modes, args.samples, args.login_timeout)
    finally:
        if booted:
            lab.down(purge=True)
    print("\n".join(table(rows)))
    if any(r["mode"] == SILENT for r in rows):
        print("\n".join(silent_table([r for r in rows if r["mode"] == SILENT])))
    if args.out:
        stamp = {
            "command": command,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "code": bench_attach.code_version(None),
            "kernel": info.get("kernel"),
            "accel": info.get("accel"),
            "host_cores": os.cpu_count(),
            "what": f"{args.samples} sample(s) per LUN count and mode",
        }
        write(Path(args.out), rows, stamp, args.note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
