# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab guests' bytecode cache for zip imports (tests/lab/guest/lunsafe_lab_zip_bytecode.py): a source is
compiled once and reused from any zip, with the importing zip's path in its code; a changed source is compiled
anew. Each import runs in a fresh interpreter, as each Ansible task does."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

HOOK = Path(__file__).resolve().parents[2] / "lab" / "guest"

PROBE = """
import sys
sys.path.insert(0, {hook!r})
import lunsafe_lab_zip_bytecode as hook
hook.CACHE = {cache!r}
sys.path.insert(0, {archive!r})
import probe_mod
print(probe_mod.VALUE, probe_mod.where.__code__.co_filename, probe_mod.Inner.method.__code__.co_filename)
"""


def _zip(path: Path, value: str) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "probe_mod.py",
            f"VALUE = {value!r}\n\ndef where():\n    return 1\n\n"
            "class Inner:\n    def method(self):\n        return 2\n",
        )
    return path


def _run(tmp_path: Path, archive: Path) -> list:
    probe = PROBE.format(hook=str(HOOK), cache=str(tmp_path / "cache"), archive=str(archive))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_a_source_is_compiled_once_and_reused_from_another_zip_with_that_zips_path(tmp_path: Path) -> None:
    first = _zip(tmp_path / "one.zip", "a")
    assert _run(tmp_path, first) == ["a", f"{first}/probe_mod.py", f"{first}/probe_mod.py"]
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    second = _zip(tmp_path / "two.zip", "a")  # the same source in another zip, as each task's temp dir is
    assert _run(tmp_path, second) == ["a", f"{second}/probe_mod.py", f"{second}/probe_mod.py"]
    # read, not rewritten
    assert list((tmp_path / "cache").iterdir()) == cached and cached[0].stat().st_mtime_ns == stamp


def test_a_changed_source_is_compiled_again(tmp_path: Path) -> None:
    _run(tmp_path, _zip(tmp_path / "one.zip", "a"))
    assert _run(tmp_path, _zip(tmp_path / "two.zip", "b"))[0] == "b"
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_a_corrupt_cache_entry_is_compiled_again(tmp_path: Path) -> None:
    _run(tmp_path, _zip(tmp_path / "one.zip", "a"))
    (entry,) = (tmp_path / "cache").iterdir()
    entry.write_bytes(b"not marshal data")
    assert _run(tmp_path, _zip(tmp_path / "two.zip", "a"))[0] == "a"
    assert entry.read_bytes() != b"not marshal data"


def test_a_cache_others_can_write_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir(mode=0o777)
    (tmp_path / "cache").chmod(0o777)
    assert _run(tmp_path, _zip(tmp_path / "one.zip", "a"))[0] == "a"
    assert list((tmp_path / "cache").iterdir()) == []


def test_an_unwritable_cache_still_imports(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("a file where the directory should be")
    assert _run(tmp_path, _zip(tmp_path / "one.zip", "a"))[0] == "a"
