# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for tests that run against the lab VM (a real kernel). The VMs are booted once per run by
scripts/test (or by hand with `python3 tests/lab/lab.py up`); these tests never boot or stop one.

scripts/test runs this suite on two VMs at once (pytest-xdist, `--dist load --maxschedchunk 1`): each worker
has a VM of its own and takes the next test when it is free. Two Molecule scenarios may run at once (each has
its own state directory, on its own VM); the same scenario never does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CALLBACKS = HERE / "callback_plugins"
sys.path.insert(0, str(HERE))

import lab as lab_module  # noqa: E402


def lab_name() -> str:
    """This process's lab: with pytest-xdist, worker gwN takes the N-th of $LUNSAFE_LAB_NAMES (scripts/test
    boots one VM per worker); otherwise $LUNSAFE_LAB_NAME."""
    names = os.environ.get("LUNSAFE_LAB_NAMES", "").split()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if names and worker.startswith("gw") and worker[2:].isdigit():
        return names[int(worker[2:]) % len(names)]
    return os.environ.get("LUNSAFE_LAB_NAME") or (names[0] if names else "default")


@pytest.fixture(scope="session")
def lab() -> lab_module.Lab:
    instance = lab_module.Lab(lab_name())
    instance.info()  # fails with "lab ... is not up" when nobody booted it
    return instance


@pytest.fixture(scope="session")
def collections_root() -> Iterator[Path]:
    with lab_module.collections_root() as root:
        yield root


#: An interpreter for the modules that cannot import pyudev: a wrapper puts a directory first on PYTHONPATH whose
#: sitecustomize refuses to import pyudev and drops PYTHONPATH again, so that what a module runs (labctl, whose
#: rtslib needs pyudev) is not affected. With LUNSAFE_LAB_HIDE_PYUDEV=1 the integration targets run this way,
#: every wait polling sysfs. Not under /run: the guest mounts it noexec.
NO_PYUDEV = "/usr/local/lib/lunsafe-nopyudev"
SITECUSTOMIZE = """import os, sys
os.environ.pop("PYTHONPATH", None)
class HidePyudev:
    def find_spec(self, name, path=None, target=None):
        if name == "pyudev" or name.startswith("pyudev."):
            raise ImportError("pyudev hidden by LUNSAFE_LAB_HIDE_PYUDEV")
        return None
sys.meta_path.insert(0, HidePyudev())
"""
WRAPPER = f'#!/bin/sh\nPYTHONPATH={NO_PYUDEV} exec /usr/bin/python3 "$@"\n'
HIDE_PYUDEV = (
    f"mkdir -p {NO_PYUDEV} && cat > {NO_PYUDEV}/sitecustomize.py && "
    f"printf '{WRAPPER}' > {NO_PYUDEV}/python3 && chmod 755 {NO_PYUDEV}/python3"
)


def hide_pyudev(lab: lab_module.Lab) -> list:
    """Extra ansible-playbook arguments that hide pyudev from the modules, when LUNSAFE_LAB_HIDE_PYUDEV=1: a
    second inventory source gives the lab host (only: tasks delegated to the controller keep its Python) the
    wrapper as its interpreter."""
    if os.environ.get("LUNSAFE_LAB_HIDE_PYUDEV") != "1":
        return []
    lab.ssh(["sh", "-c", HIDE_PYUDEV], stdin=SITECUSTOMIZE)
    extra = lab.state / "hide-pyudev.ini"
    extra.write_text(f"[lab]\nlunsafe-lab ansible_python_interpreter={NO_PYUDEV}/python3\n", encoding="utf-8")
    inventory = lab.state / "inventory.ini"
    return ["-i", str(inventory), "-i", str(extra), "-e", "lab_wait_method=sysfs-poll"]


class Playbook:
    def __init__(self, lab: lab_module.Lab, collections_root: Path) -> None:
        self.lab = lab
        self.collections_root = collections_root

    def run(self, playbook: Path, *extra: str, timeout: float = 2700) -> subprocess.CompletedProcess:
        argv = [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), *extra, *hide_pyudev(self.lab)]
        env = lab_module.playbook_env(self.lab, self.collections_root)
        # the slowest tasks, printed at the end of each run: where a lab test's minutes go
        env.update(ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS), ANSIBLE_CALLBACKS_ENABLED="lab_task_times")
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def playbook(lab: lab_module.Lab, collections_root: Path) -> Playbook:
    return Playbook(lab, collections_root)


#: The lab tests that take longest (minutes on a 1-vCPU TCG guest), run first so that the two VMs finish
#: together: pytest-xdist hands out tests in collection order, and a long test collected last would keep one
#: VM busy alone at the end. The rest keep their order.
LONG_FIRST = (
    "test_integration_target[iscsi_lun_attach]",
    "test_short_seeded_campaign",  # test_campaign.py: 30 steps, about 7 minutes
    "test_recorded_luns_come_back",  # test_persist_boot.py: a reboot, 8 attaches and a restore, 8-13 minutes
    "test_a_power_cut_during",  # test_persist_boot.py: two power cuts, about 5 minutes
)


def pytest_collection_modifyitems(items: list) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, name in enumerate(LONG_FIRST) if item.name.startswith(name)), len(LONG_FIRST))

    items.sort(key=rank)  # stable: the rest keep their order
