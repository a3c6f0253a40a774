# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for tests that run against the lab VM (a real kernel). The VM is booted once per run by
scripts/test (or by hand with `python3 tests/lab/lab.py up`); these tests never boot or stop it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
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
    """A collection root holding this checkout as lunsafe.san, so playbooks use the code under test."""
    with tempfile.TemporaryDirectory(prefix="lunsafe-collections-") as tmp:
        parent = Path(tmp) / "ansible_collections" / "lunsafe"
        parent.mkdir(parents=True)
        (parent / "san").symlink_to(REPO)
        yield Path(tmp)


class Playbook:
    def __init__(self, lab: lab_module.Lab, collections_root: Path) -> None:
        self.lab = lab
        self.collections_root = collections_root

    def env(self) -> dict:
        env = dict(os.environ)
        env.update(
            ANSIBLE_COLLECTIONS_PATH=str(self.collections_root),
            ANSIBLE_ROLES_PATH=str(REPO / "tests" / "integration" / "targets") + ":" + str(REPO / "roles"),
            ANSIBLE_PIPELINING="True",
            ANSIBLE_HOST_KEY_CHECKING="False",
            ANSIBLE_INJECT_FACT_VARS="False",
            ANSIBLE_RETRY_FILES_ENABLED="False",
            ANSIBLE_FORCE_COLOR="False",
            ANSIBLE_NOCOLOR="True",
            ANSIBLE_STDOUT_CALLBACK="default",
            ANSIBLE_CALLBACK_RESULT_FORMAT="yaml",
            ANSIBLE_DISPLAY_SKIPPED_HOSTS="False",
            ANSIBLE_TIMEOUT="30",
        )
        return env

    def run(self, playbook: Path, *extra: str, timeout: float = 1200) -> subprocess.CompletedProcess:
        inventory = self.lab.state / "inventory.ini"
        argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook), *extra]
        return subprocess.run(argv, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def playbook(lab: lab_module.Lab, collections_root: Path) -> Playbook:
    return Playbook(lab, collections_root)
