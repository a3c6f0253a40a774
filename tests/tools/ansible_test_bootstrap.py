"""Provide ansible-test's pip bootstrap script from PyPI, for machines that only reach PyPI.

``ansible-test sanity --venv`` (and ``units --venv``) bootstrap pip into each new virtualenv by
running ``get-pip-<version>.py`` downloaded from a host outside PyPI, and cache it as
``~/.ansible/test/cache/get_pip_<version with underscores>.py``. When that host is unreachable
ansible-test fails, naming that cache path as the place for a manually provided script.

This tool writes such a script without that host:

1. it reads, from the installed ansible-test's own source, the pip version it bootstraps and the
   cache file name it looks for (so an ansible-core upgrade is followed, or fails loudly here);
2. it downloads PyPI's pip wheel of exactly that version with ``pip download`` (the ordinary client,
   which checks the index's hash) and, when the version is known below, checks its sha256 too;
3. it writes ``get_pip_<ver>.py`` beside the wheel: the script puts the wheel on ``sys.path`` and
   runs that pip's ``install --upgrade --force-reinstall`` with the arguments ansible-test passes,
   dropping get-pip's own ``--no-setuptools``/``--no-wheel`` options, which pip does not know.

Idempotent: when the wheel and a script of the same content exist, nothing is done.
Run it as ``python tests/tools/ansible_test_bootstrap.py`` with the interpreter whose ansible-test
will be used (the project's .venv python); scripts/static-checks does so before sanity.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import pathlib
import re
import subprocess
import sys
import tempfile
from typing import Dict, Optional

# sha256 of PyPI's pip-<version>-py3-none-any.whl, for the versions ansible-test has asked for.
KNOWN_WHEEL_SHA256: Dict[str, str] = {
    "23.1.2": "3ef6ac33239e4027d9a5598a381b9d30880a1477e50039db2eac6e8a8f6d1b18",  # ansible-core 2.17
    "24.2": "2cd581cf58ab7fcfca4ce8efa6dcacd0de5bf8d0a3eb9ec927e07405f4d9e2a2",  # 2.19
    "25.2": "6d67a2b4e7f14d8b31b8b52648866fa717f45a1eb70e83002f4331d07e953717",  # 2.21
}

CACHE_PATTERN_RE = re.compile(r"""['"]~/\.ansible/test/cache/get_pip_%s\.py['"]\s*%\s*pip_version\.replace\(""")

SCRIPT_TEMPLATE = '''\
"""Stand-in for get-pip.py {version}, written by lunsafe.san's tests/tools/ansible_test_bootstrap.py.

ansible-test runs this file (through its quiet_pip wrapper) inside a new virtualenv with the
options it would give get-pip.py. It runs pip {version} from PyPI's wheel saved beside this file.
"""
import os
import sys

WHEEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), {wheel_name!r})
GET_PIP_ONLY_OPTIONS = ("--no-setuptools", "--no-wheel")


def main():
    if not os.path.isfile(WHEEL):
        sys.stderr.write("missing %s: run tests/tools/ansible_test_bootstrap.py again\\n" % WHEEL)
        return 1
    sys.path.insert(0, WHEEL)
    from pip._internal.cli.main import main as pip_main

    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    # pip=={version} itself comes from the wheel beside this file: no second download.
    args = [WHEEL if arg == "pip=={version}" else arg for arg in args]
    return pip_main(["install", "--upgrade", "--force-reinstall"] + args)


if __name__ == "__main__":
    sys.exit(main())
'''


class BootstrapError(Exception):
    """Raised when ansible-test's expectations cannot be read or met."""


def ansible_test_root() -> pathlib.Path:
    """Return the installed ansible_test package directory, without importing its internals."""
    try:
        import ansible_test  # noqa: PLC0415  # imported late: this tool runs before anything else needs it
    except ImportError as exc:
        raise BootstrapError(f"ansible-test is not installed for {sys.executable}: run scripts/setup-venv") from exc
    return pathlib.Path(ansible_test.__file__).resolve().parent


def _dict_call_to_mapping(node: ast.AST) -> Optional[Dict[str, object]]:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
    if isinstance(node, ast.Dict):
        value = ast.literal_eval(node)
        return value if isinstance(value, dict) else None
    return None


def wanted_pip_version(root: pathlib.Path, python_version: str) -> str:
    """Read the pip version ansible-test bootstraps for ``python_version`` from get_venv_packages()."""
    source_path = root / "_internal" / "python_requirements.py"
    tree = ast.parse(source_path.read_text(encoding="utf-8"), str(source_path))
    for func in ast.walk(tree):
        if not (isinstance(func, ast.FunctionDef) and func.name == "get_venv_packages"):
            continue
        default: Optional[Dict[str, object]] = None
        override: Dict[str, object] = {}
        for node in ast.walk(func):
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                target = node.targets[0] if isinstance(node, ast.Assign) else node.target
                if not isinstance(target, ast.Name) or node.value is None:
                    continue
                if target.id == "default_packages":
                    default = _dict_call_to_mapping(node.value)
                elif target.id == "override_packages":
                    override = _dict_call_to_mapping(node.value) or {}
        if default is None:
            break
        packages = dict(default)
        python_override = override.get(python_version)
        if isinstance(python_override, dict):
            packages.update({k: v or default.get(k) for k, v in python_override.items()})
        version = packages.get("pip")
        if isinstance(version, str) and re.fullmatch(r"\d+(\.\d+)+", version):
            return version
        break
    raise BootstrapError(f"cannot find the pip version in get_venv_packages() of {source_path}")


def check_cache_convention(root: pathlib.Path) -> None:
    """Fail loudly if ansible-test no longer looks for ~/.ansible/test/cache/get_pip_<ver>.py."""
    source_path = root / "_util" / "target" / "setup" / "requirements.py"
    if not CACHE_PATTERN_RE.search(source_path.read_text(encoding="utf-8")):
        raise BootstrapError(f"{source_path} no longer uses ~/.ansible/test/cache/get_pip_<version>.py")


def sha256_of(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_wheel(*, version: str, cache_dir: pathlib.Path) -> pathlib.Path:
    """Download pip-<version>-py3-none-any.whl from the package index into cache_dir (if absent)."""
    wheel = cache_dir / f"pip-{version}-py3-none-any.whl"
    expected = KNOWN_WHEEL_SHA256.get(version)
    if wheel.is_file() and (expected is None or sha256_of(wheel) == expected):
        print(f"ansible-test bootstrap: using cached {wheel}")
        return wheel
    with tempfile.TemporaryDirectory(prefix="pip-wheel-", dir=str(cache_dir)) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input"]
        command += ["--no-deps", "--only-binary=:all:", "--dest", tmp, f"pip=={version}"]
        print(f"ansible-test bootstrap: downloading pip {version} wheel from the package index")
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        downloaded = pathlib.Path(tmp) / wheel.name
        if result.returncode != 0 or not downloaded.is_file():
            raise BootstrapError(f"pip download of pip=={version} failed (rc={result.returncode}):\n{result.stderr}")
        actual = sha256_of(downloaded)
        if expected is not None and actual != expected:
            raise BootstrapError(f"{wheel.name} has sha256 {actual}, expected {expected}")
        if expected is None:
            print(
                f"ansible-test bootstrap: note: pip {version} is new to this tool; sha256 {actual}, checked by pip only"
            )
        os.replace(downloaded, wheel)
    return wheel


def write_script(*, version: str, wheel: pathlib.Path, cache_dir: pathlib.Path) -> pathlib.Path:
    script = cache_dir / "get_pip_{}.py".format(version.replace(".", "_"))
    content = SCRIPT_TEMPLATE.format(version=version, wheel_name=wheel.name)
    if script.is_file() and script.read_text(encoding="utf-8") == content:
        print(f"ansible-test bootstrap: {script} is up to date")
        return script
    temp = script.with_suffix(".py.tmp")
    temp.write_text(content, encoding="utf-8")
    os.replace(temp, script)
    print(f"ansible-test bootstrap: wrote {script}")
    return script


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="3.11", help="Python version ansible-test will use (default: %(default)s)")
    parser.add_argument(
        "--cache-dir",
        default=os.path.expanduser("~/.ansible/test/cache"),
        help="ansible-test's cache directory (default: %(default)s)",
    )
    options = parser.parse_args(argv)
    try:
        root = ansible_test_root()
        check_cache_convention(root)
        version = wanted_pip_version(root, options.python)
        cache_dir = pathlib.Path(options.cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        wheel = fetch_wheel(version=version, cache_dir=cache_dir)
        write_script(version=version, wheel=wheel, cache_dir=cache_dir)
    except (BootstrapError, OSError) as exc:
        print(f"ansible-test bootstrap: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
