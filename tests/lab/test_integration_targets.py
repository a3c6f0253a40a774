# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs every integration target in tests/integration/targets against the lab VM, one test each.

Each target is an ansible-test style role (tasks/main.yml, aliases). Before each target the array
and the initiator are reset without a reboot; the target's aliases may ask for a LUN count with
`lab/luns/N`. A target whose aliases contain `disabled` is not run."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

TARGETS = Path(__file__).resolve().parent.parent / "integration" / "targets"
RUNNER = Path(__file__).resolve().parent / "run_target.yml"


def _aliases(target: Path) -> list[str]:
    path = target / "aliases"
    return path.read_text().split() if path.exists() else []


def _targets() -> list[str]:
    found = []
    for target in sorted(TARGETS.iterdir()) if TARGETS.is_dir() else []:
        if (target / "tasks" / "main.yml").exists() and "disabled" not in _aliases(target):
            found.append(target.name)
    return found


def _lun_count(target: Path) -> int:
    for alias in _aliases(target):
        if alias.startswith("lab/luns/"):
            return int(alias.rsplit("/", 1)[1])
    return 4


def failed_tasks(stdout: str, limit: int = 12) -> str:
    """The task headers and the first lines of each ``fatal:`` result, at the end of a failure's message: CI
    prints a long message's head and tail only, and a failed assert's dump can push its task out of both."""
    lines = stdout.splitlines()
    summary = []
    task = ""
    for index, line in enumerate(lines):
        if line.startswith("TASK ["):
            task = line.rstrip(" *")
        elif line.startswith("fatal: ["):
            result = itertools.takewhile(lambda text: text.strip() != "", lines[index + 1 : index + 400])
            block = [line, *[text for text in result if text.startswith(("    assertion:", "    msg:"))][:2]]
            summary += [task, *(text[:300] for text in block)]
    if not summary:
        return "failed tasks: none printed a fatal result"
    return "failed tasks (summary):\n" + "\n".join(summary[-limit:])


@pytest.mark.parametrize("target", _targets())
def test_integration_target(target: str, lab, playbook) -> None:
    status = lab.array(["reset", "--luns", str(_lun_count(TARGETS / target))])
    assert status["leftover_devices"] == [], status
    # LUNSAFE_LAB_CORE=1 (the guest matrix, tests/lab/matrix.py): a target with a long tail runs its core only;
    # a comma-separated list of targets: those targets only (matrix.py --full)
    wanted = os.environ.get("LUNSAFE_LAB_CORE", "")
    core = ["-e", "lab_core=true"] if wanted == "1" or target in wanted.split(",") else []
    result = playbook.run(RUNNER, "-e", f"lab_target={target}", *core)
    output = result.stdout + result.stderr
    print(output[-20000:])
    assert result.returncode == 0, (
        f"integration target {target} failed:\n{output[-6000:]}\n{failed_tasks(result.stdout)}"
    )
    assert "failed=0" in result.stdout
