# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for tests that run against the lab VM (a real kernel). The VM is booted once per run by
scripts/test (or by hand with `python3 tests/lab/lab.py up`); these tests never boot or stop it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import lab as lab_module  # noqa: E402


@pytest.fixture(scope="session")
def lab() -> lab_module.Lab:
    instance = lab_module.Lab(os.environ.get("LUNSAFE_LAB_NAME", "default"))
    instance.info()  # fails with "lab ... is not up" when nobody booted it
    return instance


@pytest.fixture(scope="session")
def collections_root() -> Iterator[Path]:
    with lab_module.collections_root() as root:
        yield root


class Playbook:
    def __init__(self, lab: lab_module.Lab, collections_root: Path) -> None:
        self.lab = lab
        self.collections_root = collections_root

    def run(self, playbook: Path, *extra: str, timeout: float = 2700) -> subprocess.CompletedProcess:
        argv = [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), *extra]
        env = lab_module.playbook_env(self.lab, self.collections_root)
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def playbook(lab: lab_module.Lab, collections_root: Path) -> Playbook:
    return Playbook(lab, collections_root)
