# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The boot restore (issue 28): the recorded LUNs come back through the module's attach procedure, a LUN whose
WWID changed is refused, a LUN that is gone is reported, and nothing that is not recorded is scanned."""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Set

import pytest

from ansible_collections.lunsafe.san.plugins.module_utils import _attach as attach
from ansible_collections.lunsafe.san.plugins.module_utils import _persist as persist
from ansible_collections.lunsafe.san.plugins.module_utils import _restore as restore
from ansible_collections.lunsafe.san.plugins.module_utils._errors import LunsafeError
from ansible_collections.lunsafe.san.plugins.module_utils._runner import Runner
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.fake_host import IQN, FakeHost, wwid_of

REPO = Path(__file__).resolve().parents[4]
PORTALS = {"127.0.0.1:3260": [IQN], "127.0.0.2:3260": [IQN]}


def before_reboot(tmp_path: Path, luns: List[int]) -> FakeHost:
    """A host that attached ``luns`` with persist: the state file holds their records."""
    fake = FakeHost(tmp_path / "before", luns={IQN: {n: wwid_of(n) for n in range(8)}}, portals=dict(PORTALS))
    params: Dict[str, Any] = {"target": IQN, "portals": ["127.0.0.1", "127.0.0.2"], "luns": luns, "timeout": 10}
    request = attach.build_request(params, resolver=lambda name: [])
    outcome = attach.attach(fake.host(), request, check=False, timings={})
    assert outcome.error is None
    records = [
        persist.make_record(
            transport=request.transport,
            lun={"lun": entry["lun"]},
            linux_lun=entry["linux_lun"],
            lun_addressing="peripheral",
            wwid=entry["wwid"],
            multipath=True,
        )
        for entry in outcome.result["luns"]
    ]
    persist.StateFile(str(tmp_path / "lib" / "persist.json")).write(records)
    return fake


def after_reboot(tmp_path: Path, before: FakeHost, presented: Dict[int, str]) -> FakeHost:
    """The same host after a reboot: its node records, no session, device or map; the array presents
    ``presented`` (LUN -> WWID) now."""
    return FakeHost(tmp_path / "after", luns={IQN: presented}, portals=dict(PORTALS), nodes=dict(before.nodes))


def run(tmp_path: Path, fake: FakeHost, lines: List[str]) -> List[restore.Outcome]:
    return restore.restore(
        fake.host(),
        state_file=str(tmp_path / "lib" / "persist.json"),
        lock_file=str(tmp_path / "run" / "lock"),
        timeout=5,
        say=lines.append,
    )


def scanned_luns(fake: FakeHost) -> Set[int]:
    return {int(text.split()[2]) for path, text in fake.writes if path.endswith("/scan")}


def test_recorded_luns_come_back_by_targeted_scan_and_nothing_else_is_scanned(tmp_path: Path) -> None:
    before = before_reboot(tmp_path, [1, 2])
    fake = after_reboot(tmp_path, before, {n: wwid_of(n) for n in range(8)})
    lines: List[str] = []
    outcomes = run(tmp_path, fake, lines)
    assert [o.status for o in outcomes] == ["restored", "restored"]
    assert scanned_luns(fake) == {1, 2}  # LUNs 0, 3-7 are presented too, and never scanned
    assert sorted(d["hctl"].split(":")[3] for d in fake.devices) == ["1", "1", "2", "2"]
    assert len(fake.maps) == 2
    logins = [c for c in fake.calls if c[:2] == ["iscsiadm", "-m"] and "--login" in c]
    assert len(logins) == 2  # the module's own login code, one per recorded portal
    assert lines[0].startswith("restoring 2 recorded LUNs") and lines[1].startswith(f"restored iscsi {IQN} LUN 1")
    assert not Path(tmp_path / "run" / "lock.journal").exists()  # the run ended in a controlled way


def test_a_lun_whose_wwid_changed_is_refused_rolled_back_and_reported(tmp_path: Path) -> None:
    before = before_reboot(tmp_path, [1, 2])
    fake = after_reboot(tmp_path, before, {1: wwid_of(1), 2: wwid_of(2, generation=1)})
    lines: List[str] = []
    outcomes = run(tmp_path, fake, lines)
    assert [o.status for o in outcomes] == ["restored", "refused"]
    assert wwid_of(2, generation=1) in outcomes[1].detail and "another LU" in outcomes[1].detail
    assert [d["hctl"].split(":")[3] for d in fake.devices] == ["1", "1"]  # what the scan made of LUN 2 is gone
    assert any(line.startswith(f"refused iscsi {IQN} LUN 2") for line in lines)
    assert any(line.startswith("rolled back: deleted") for line in lines)


def test_a_lun_that_no_longer_answers_is_reported_missing(tmp_path: Path) -> None:
    before = before_reboot(tmp_path, [1, 2])
    fake = after_reboot(tmp_path, before, {1: wwid_of(1)})
    outcomes = run(tmp_path, fake, [])
    assert [o.status for o in outcomes] == ["restored", "missing"]
    assert "no longer answers" in outcomes[1].detail and "does not present LUN 2" in outcomes[1].detail
    assert scanned_luns(fake) == {1, 2}


def test_every_lun_gone_rolls_back_the_sessions_too(tmp_path: Path) -> None:
    before = before_reboot(tmp_path, [1])
    fake = after_reboot(tmp_path, before, {0: wwid_of(0)})
    outcomes = run(tmp_path, fake, [])
    assert [o.status for o in outcomes] == ["missing"]
    assert fake.sessions == [] and fake.devices == []


def test_a_portal_that_does_not_answer_fails_its_luns(tmp_path: Path) -> None:
    before = before_reboot(tmp_path, [1])
    fake = after_reboot(tmp_path, before, {1: wwid_of(1)})
    fake.down.append("127.0.0.2:3260")
    outcomes = run(tmp_path, fake, [])
    assert [o.status for o in outcomes] == ["missing"]  # nothing attached: the login failed
    assert "127.0.0.2:3260" in outcomes[0].detail


def test_nothing_recorded_changes_nothing(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path / "host", luns={IQN: {1: wwid_of(1)}}, portals=dict(PORTALS))
    lines: List[str] = []
    assert run(tmp_path, fake, lines) == []
    assert fake.calls == [] and fake.writes == []
    assert lines == [f"no LUN is recorded in {tmp_path / 'lib' / 'persist.json'}: nothing to restore"]


def test_a_record_the_parser_refuses_fails_alone(tmp_path: Path) -> None:
    before = before_reboot(tmp_path, [1])
    store = persist.StateFile(str(tmp_path / "lib" / "persist.json"))
    good = store.read()[0]
    bad = {**good, "linux_lun": 5, "lun": "5", "lun_addressing": "peripheral", "wwid": "not-a-wwid"}
    bad["paths"] = {**good["paths"], "iface": None, "portals": [{"portal": "127.0.0.9", "target": IQN}]}
    store.write([good, bad])
    fake = after_reboot(tmp_path, before, {1: wwid_of(1)})
    outcomes = run(tmp_path, fake, [])
    assert [o.status for o in outcomes] == ["restored", "failed"]
    assert "not a WWID" in outcomes[1].detail


def test_the_service_prints_a_line_per_record_and_a_summary_and_exits_by_outcome(tmp_path: Path) -> None:
    before = before_reboot(tmp_path, [1, 2])
    fake = after_reboot(tmp_path, before, {1: wwid_of(1)})
    argv = ["--state-file", str(tmp_path / "lib" / "persist.json"), "--lock-file", str(tmp_path / "run" / "lock")]
    lines: List[str] = []

    def service(host: FakeHost, *extra: str) -> int:
        return restore.run_service(
            [*argv, *extra], runner=host.runner, say=lines.append, make_host=lambda r: host.host()
        )

    assert service(fake, "--timeout", "5") == 1
    assert lines[-1].startswith("lunsafe-san-restore: 1 of 2 recorded LUNs restored in ")
    assert lines[-1].endswith("(0 refused, 1 missing, 0 failed)")
    fine = after_reboot(tmp_path / "again", before, {1: wwid_of(1), 2: wwid_of(2)})
    assert service(fine) == 0
    (tmp_path / "lib" / "persist.json").write_text("{")
    assert service(fine) == 2
    assert "nothing was restored: the persistence state file" in lines[-1]


def entry_script() -> Any:
    """The role's entry script, loaded as a module (it has no .py suffix: it is not a plugin)."""
    path = REPO / "roles" / "lun_attach" / "files" / "lunsafe-san-restore"
    loader = importlib.machinery.SourceFileLoader("lunsafe_san_restore", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    script = importlib.util.module_from_spec(spec)
    loader.exec_module(script)
    return script


def test_the_entry_script_runs_commands_for_the_runner_without_ansible() -> None:
    module = entry_script().ProcessModule()
    assert module.get_bin_path("sh") is not None and module.get_bin_path("no-such-tool-here") is None
    with pytest.raises(FileNotFoundError, match="no-such-tool-here"):
        module.get_bin_path("no-such-tool-here", required=True)
    runner = Runner(module, default_timeout=10)
    result = runner.run(["sh", "-c", 'read x; echo "$x $LC_ALL"; echo err >&2; exit 3'], data="hi\n", ok_rcs=(3,))
    assert (result.rc, result.stdout, result.stderr) == (3, "hi C\n", "err\n")
    with pytest.raises(LunsafeError):
        runner.run(["sleep", "5"], timeout=0.2)  # the runner's deadline reaches the child through the adapter


def test_the_entry_script_runs_the_service_and_prints_its_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--state-file", str(tmp_path / "lib" / "persist.json"), "--lock-file", str(tmp_path / "run" / "lock")]
    assert entry_script().main(argv) == 0  # nothing recorded: the real host is only read, never touched
    assert capsys.readouterr().out.splitlines()[0].startswith("no LUN is recorded in ")


def test_the_role_installs_every_module_util_the_restore_imports() -> None:
    """The role copies an explicit list of module_utils files next to the entry script: it must be the import
    closure of _restore (a file missing there would fail at boot)."""
    utils = REPO / "plugins" / "module_utils"
    prefix = "ansible_collections.lunsafe.san.plugins.module_utils"
    needed: Set[str] = set()
    todo = ["_restore"]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        for node in ast.walk(ast.parse((utils / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == prefix:
                todo.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(prefix + "."):
                todo.append((node.module or "").rsplit(".", 1)[1])
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ansible"):
                pytest.fail(f"{name} imports {node.module}: the service runs without Ansible")
    listed = json.loads(json.dumps(_role_list()))
    assert sorted(listed) == sorted(f"{name}.py" for name in needed)


def _role_list() -> List[str]:
    import yaml  # noqa: PLC0415

    data = yaml.safe_load((REPO / "roles" / "lun_attach" / "vars" / "main.yml").read_text())
    files: List[str] = data["lun_attach__restore_module_utils"]
    return files


def test_the_role_bundle_unpacks_into_a_private_directory_and_imports_without_ansible(tmp_path: Path) -> None:
    """The role copies the listed module_utils as one JSON file; the entry script writes them out for its run
    in a new mode-0700 directory, from which the restore's code imports alone (python3 -I: no Ansible, no
    PYTHONPATH)."""
    utils = REPO / "plugins" / "module_utils"
    # the role reads each file with the file lookup, which strips trailing whitespace
    bundle = {name: (utils / name).read_text(encoding="utf-8").rstrip() for name in _role_list()}
    path = tmp_path / "module_utils.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    scratch = tmp_path / "run"
    scratch.mkdir()
    top = Path(entry_script().unpack_code(str(path), str(scratch)))
    assert top.parent == scratch and oct(top.stat().st_mode & 0o777) == "0o700"
    package = top / "ansible_collections" / "lunsafe" / "san" / "plugins" / "module_utils"
    assert sorted(p.name for p in package.iterdir()) == sorted(bundle)
    probe = (
        f"import sys; sys.path.insert(0, {str(top)!r}); from {'.'.join(package.relative_to(top).parts)} import _restore"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe + "; print(_restore.__file__)"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(package / "_restore.py")


@pytest.mark.parametrize("name", ["../evil.py", "sub/_x.py", "_x.sh", ".hidden.py"])
def test_a_bundle_name_that_is_not_a_module_util_file_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "module_utils.json"
    path.write_text(json.dumps({"_errors.py": "X = 1", name: "X = 2"}), encoding="utf-8")
    with pytest.raises(ValueError, match="is not a module_utils file name"):
        entry_script().unpack_code(str(path), str(tmp_path))
    assert list(tmp_path.iterdir()) == [path]  # nothing left behind
