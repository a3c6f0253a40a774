# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Persistence through real reboots (issue 28): the integration target persist_boot, its phases run around
`lab.py reboot`.

The array is LIO in the guest itself, so it goes down with the host: before each reboot its configuration is
saved (`targetctl save`) and rtslib-fb-targetctl.service restores it at boot, and a drop-in orders the restore
service after it (a real array is simply there). "Unmapped while the host was down" is the saved configuration
edited before the reboot: the array comes back without that mapping.

Cases: one LUN recorded, ext4 on it in /etc/fstab (_netdev,nofail), comes back mounted; eight recorded all come
back; one of eight unmapped while down is not attached, reported `missing` in the journal, and the other seven
come back. The restore's time (systemd's start to exit of the unit) is printed for 1 and 8 LUNs."""

from __future__ import annotations

import json
from pathlib import Path

RUNNER = Path(__file__).resolve().parent / "run_target.yml"
IQN = "iqn.2003-01.org.lunsafe.lab:array"
DROP_IN = "/etc/systemd/system/lunsafe-san-restore.service.d/lab-array.conf"
SAVED = "/etc/rtslib-fb-target/saveconfig.json"
UNMAP_SAVED = f"""import json
path = {SAVED!r}
config = json.load(open(path))
for target in config["targets"]:
    for tpg in target["tpgs"]:
        for acl in tpg["node_acls"]:
            acl["mapped_luns"] = [m for m in acl["mapped_luns"] if m["index"] != LUN]
json.dump(config, open(path, "w"), indent=2)
"""


def phase(playbook, name: str, **extra: object) -> str:
    variables = {"lab_target": "persist_boot", "persist_boot_phase": name, **extra}
    result = playbook.run(RUNNER, "-e", json.dumps(variables))
    output = result.stdout + result.stderr
    print(output[-12000:])
    assert result.returncode == 0 and "failed=0" in result.stdout, f"phase {name} failed:\n{output[-6000:]}"
    return output


def save_array(lab, unmap: int | None = None) -> None:
    """The array's configuration as rtslib-fb-targetctl restores it at boot (without ``unmap``'s mapping)."""
    lab.ssh(["targetctl", "save"])
    if unmap is not None:
        lab.ssh(["python3", "-c", UNMAP_SAVED.replace("LUN", str(unmap))])
    lab.ssh(["systemctl", "enable", "--quiet", "rtslib-fb-targetctl.service"])
    lab.ssh(["mkdir", "-p", str(Path(DROP_IN).parent)])
    lab.ssh(
        ["sh", "-c", f"cat > {DROP_IN}"],
        stdin="[Unit]\nWants=rtslib-fb-targetctl.service\nAfter=rtslib-fb-targetctl.service\n",
    )
    lab.ssh(["systemctl", "daemon-reload"])


def restore_seconds(lab) -> float:
    """From systemd's start of the restore's process to its exit, this boot."""
    proc = lab.ssh(
        [
            "systemctl",
            "show",
            "lunsafe-san-restore.service",
            "-p",
            "ExecMainStartTimestampMonotonic",
            "-p",
            "ExecMainExitTimestampMonotonic",
        ]
    )
    values = dict(line.split("=", 1) for line in proc.stdout.split())
    return (int(values["ExecMainExitTimestampMonotonic"]) - int(values["ExecMainStartTimestampMonotonic"])) / 1e6


def test_recorded_luns_come_back_after_reboots_and_an_unmapped_one_is_reported(lab, playbook) -> None:
    status = lab.array(["reset", "--luns", "8"])
    assert status["leftover_devices"] == [], status
    try:
        phase(playbook, "attach", persist_boot_luns=[{"lun": "0"}])
        save_array(lab)
        lab.restart(power_cut=False)
        phase(playbook, "booted", persist_boot_restored=[0], persist_boot_missing=[])
        one = restore_seconds(lab)

        phase(playbook, "attach", persist_boot_luns=[{"lun": str(n)} for n in range(8)])
        save_array(lab)
        lab.restart(power_cut=False)
        phase(playbook, "booted", persist_boot_restored=list(range(8)), persist_boot_missing=[])
        eight = restore_seconds(lab)

        save_array(lab, unmap=7)
        lab.restart(power_cut=False)
        phase(playbook, "booted", persist_boot_restored=list(range(7)), persist_boot_missing=[7])
        missing = restore_seconds(lab)
        journal = lab.ssh(["journalctl", "-b", "-u", "lunsafe-san-restore", "-o", "cat", "--no-pager"]).stdout
        print(journal)
        print(f"restore seconds: 1 LUN {one:.2f}, 8 LUNs {eight:.2f}, 8 recorded with one unmapped {missing:.2f}")
    finally:
        phase(playbook, "cleanup")
        lab.ssh(["rm", "-rf", str(Path(DROP_IN).parent), SAVED], check=False)
        lab.ssh(["systemctl", "disable", "--quiet", "rtslib-fb-targetctl.service"], check=False)
        lab.ssh(["systemctl", "daemon-reload"], check=False)
