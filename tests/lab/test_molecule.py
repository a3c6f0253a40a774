# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs every Molecule scenario of the collection (extensions/molecule/<scenario>) against the lab VM.

Each scenario's state from an earlier run is reset first. The scenarios' create step reuses the lab this run
booted ($LUNSAFE_LAB_NAME) and their destroy step leaves it running; each scenario's prepare resets the array
and the initiator. Molecule runs with this checkout as lunsafe.san on ANSIBLE_COLLECTIONS_PATH (prerun is off:
nothing is installed into ~/.ansible)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
SCENARIOS = REPO / "extensions" / "molecule"


def _scenarios() -> list[str]:
    if not SCENARIOS.is_dir():
        return []
    return sorted(p.parent.name for p in SCENARIOS.glob("*/molecule.yml"))


@pytest.mark.parametrize("scenario", _scenarios())
def test_molecule_scenario(scenario: str, lab, collections_root: Path) -> None:
    bindir = Path(sys.executable).parent
    env = dict(os.environ)
    env.update(
        PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}",
        LUNSAFE_LAB_NAME=lab.name,
        ANSIBLE_COLLECTIONS_PATH=str(collections_root),
        NO_COLOR="1",
        ANSIBLE_NOCOLOR="1",
    )
    env.pop("ANSIBLE_INVENTORY", None)

    def molecule(command: str, timeout: int) -> str:
        """``molecule COMMAND --scenario-name SCENARIO``; asserts it succeeded, returns stdout and stderr."""
        done = subprocess.run(
            [str(bindir / "molecule"), command, "--scenario-name", scenario],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        text = done.stdout + done.stderr
        if command == "test":
            print(text[-30000:])
        assert done.returncode == 0, f"molecule {command} {scenario} failed:\n{text[-8000:]}"
        return text

    # A run killed earlier (a stopped CI job, a timeout) leaves the scenario's ephemeral state under
    # ~/.ansible/tmp/molecule.*: its inventory and state file then point the next run at a lab that is gone.
    # `molecule reset` removes that folder (the destroy step leaves the lab alone, so nothing else happens).
    molecule("reset", 300)
    output = molecule("test", 1800)
    for step in ("check", "converge", "idempotence", "verify"):
        assert f"{scenario} > {step}: Executed: Successful" in output, f"step {step} did not run:\n{output[-4000:]}"
