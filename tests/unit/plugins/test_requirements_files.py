# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The requirement files in meta/ against what the code really imports and runs.

* meta/execution-environment.yml names requirement files that exist;
* every package a module or module_utils imports (outside the standard library, ansible-core and this
  collection) is in meta/managed-node-requirements.txt;
* every command the modules run is provided by a package of meta/managed-node-bindep.txt
  (``# provides:`` comments); commands are found in the source: the tool-name constants the argv builders
  start with, ``has_tool("x")``/``bin_path("x")`` calls, and absolute helper paths such as udev's scsi_id;
* every package a controller-side plugin (filter, plugin_utils, any plugin folder but modules, module_utils
  and doc_fragments) imports is in meta/ee-requirements.txt, jmespath among them (imported by the
  json_query filter of plugins/filter), and each package there is imported by the plugin files its
  ``# name: path ...`` comment names, no more and no fewer;
* every role's meta/main.yml claims the ansible-core of meta/runtime.yml as its min_ansible_version, and
  only the platform the lab tests (the Debian release tests/lab/lab.py builds its guest from);
* a filter that needs a Python package (``json_query`` -> jmespath, ours or community.general's, and
  ``select_maps``, which evaluates through our ``json_query``) is only used by roles and playbooks when
  meta/ee-requirements.txt has that package.
The finders are tested on small synthetic sources too, so that a new tool or import cannot slip past them.
"""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
PLUGINS = ROOT / "plugins"
META = ROOT / "meta"
# plugin folders whose code runs on the managed node, or is documentation only
_NOT_CONTROLLER = ("modules", "module_utils", "doc_fragments")

# module-level constants that name a command: TOOL = "iscsiadm", DMSETUP = "dmsetup" ...
_TOOL_CONSTANT_RE = re.compile(r"^(TOOL|[A-Z][A-Z0-9]*)$")
_COMMAND_RE = re.compile(r"^[a-z][a-z0-9_.-]*$")
_STDLIB: Set[str] = set(getattr(sys, "stdlib_module_names", ())) | {"__future__"}


def _python_files(folder: Path) -> Iterable[Path]:
    return sorted(path for path in folder.rglob("*.py") if "__pycache__" not in path.parts)


def third_party_imports(source: str) -> Set[str]:
    """Top-level names of the packages a source imports, without the stdlib, ansible and the collections."""
    names: Set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {name for name in names if name not in _STDLIB and name not in ("ansible", "ansible_collections")}


_HELPER_PATH_RE = re.compile(r"(/usr)?/s?bin/[a-z_]+|(/usr)?/lib/udev/[a-z_]+")


def _tool_constants(tree: ast.Module) -> Dict[str, str]:
    constants: Dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name) and _TOOL_CONSTANT_RE.match(target.id):
                    constants[target.id] = node.value.value
    return constants


def _builder_command(node: ast.Return, constants: Dict[str, str]) -> Optional[str]:
    """The command of an argv builder: ``return [TOOL, ...]`` or ``return ["tool", ...]``."""
    if not isinstance(node.value, ast.List) or not node.value.elts:
        return None
    first = node.value.elts[0]
    if isinstance(first, ast.Name):
        return constants.get(first.id)
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def _checked_tool(node: ast.Call) -> Optional[str]:
    """The literal argument of ``x.has_tool("tool")`` / ``x.bin_path("tool")``."""
    if isinstance(node.func, ast.Attribute) and node.func.attr in ("has_tool", "bin_path") and node.args:
        arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
    return None


def commands_run(source: str) -> Set[str]:
    """The commands a source can run, as far as the source says so literally."""
    tree = ast.parse(source)
    constants = _tool_constants(tree)
    found: Set[Optional[str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Return):
            found.add(_builder_command(node, constants))
        elif isinstance(node, ast.Call):
            found.add(_checked_tool(node))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _HELPER_PATH_RE.fullmatch(node.value):
            found.add(os.path.basename(node.value))
    return {command for command in found if command is not None and _COMMAND_RE.match(command)}


def provided_commands(bindep: str) -> Set[str]:
    commands: Set[str] = set()
    for line in bindep.splitlines():
        comment = line.partition("# provides:")[2]
        if comment and not line.lstrip().startswith("#"):
            commands.update(comment.split())
    return commands


def requirement_names(text: str) -> Set[str]:
    names = set()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower().replace("-", "_"))
    return names


_WHERE_USED_RE = re.compile(r"^#\s*([A-Za-z0-9_.-]+):\s*(.*)$")
_PLUGIN_PATH_RE = re.compile(r"\bplugins/[A-Za-z0-9_/]+\.py\b")


def where_used(text: str) -> Dict[str, Set[str]]:
    """The plugin files each package's ``# name: path ...`` comment names (continued on ``#   `` lines)."""
    named: Dict[str, Set[str]] = {}
    current: Optional[str] = None
    for line in text.splitlines():
        match = _WHERE_USED_RE.match(line)
        if match:
            current = match.group(1).lower().replace("-", "_")
            named.setdefault(current, set()).update(_PLUGIN_PATH_RE.findall(match.group(2)))
        elif current is not None and line.startswith("#   "):
            named[current].update(_PLUGIN_PATH_RE.findall(line))
        else:
            current = None
    return named


def controller_plugin_files() -> List[Path]:
    return [
        path
        for folder in sorted(PLUGINS.iterdir())
        if folder.is_dir() and folder.name not in _NOT_CONTROLLER
        for path in _python_files(folder)
    ]


# --- the finders, on synthetic sources ---------------------------------------------------------------------


def test_finders_see_builders_tool_checks_and_helper_paths() -> None:
    source = (
        'TOOL = "newtool"\nLABEL = "not a command"\n'
        "def build():\n    return [TOOL, '-x']\n"
        "def other():\n    return ['plaintool', 'arg']\n"
        "def check(runner):\n    return runner.has_tool('optional') or runner.bin_path('needed')\n"
        "HELPERS = ('/usr/lib/udev/helper_id',)\n"
        "def data():\n    return [1, 2]\n"
    )
    assert commands_run(source) == {"newtool", "plaintool", "optional", "needed", "helper_id"}


def test_finders_see_third_party_imports_only() -> None:
    source = (
        "import os, json\nimport pyudev\nfrom foo.bar import baz\nfrom . import local\n"
        "from ansible.module_utils.basic import AnsibleModule\n"
        "from ansible_collections.lunsafe.san.plugins.module_utils import _hctl\n"
        "try:\n    import yaml\nexcept ImportError:\n    yaml = None\n"
    )
    assert third_party_imports(source) == {"pyudev", "foo", "yaml"}


def test_bindep_parsing_reads_provides_comments() -> None:
    text = "# provides: commented-out\npkg [platform:dpkg]  # provides: a b\nother\n"
    assert provided_commands(text) == {"a", "b"}
    assert requirement_names("jmespath>=1.0\n# c\nPy-Udev ; python_version>'3'\n") == {"jmespath", "py_udev"}


def test_where_used_reads_the_comment_of_each_package() -> None:
    text = (
        "# Packages for the EE.\n# Each has a line naming its users.\n"
        "# jmespath: plugins/filter/json_query.py, the filter, and\n#   plugins/lookup/other.py\n"
        "jmespath\n# Py-Udev: nothing under plugins yet\npy-udev\n# note: see plugins/filter/x.py\n"
    )
    assert where_used(text) == {
        "jmespath": {"plugins/filter/json_query.py", "plugins/lookup/other.py"},
        "py_udev": set(),
        "note": {"plugins/filter/x.py"},
    }


# --- the real files --------------------------------------------------------------------------------------


@pytest.mark.skipif(not _STDLIB, reason="sys.stdlib_module_names needs Python 3.10+")
def test_every_import_of_the_modules_is_declared_for_the_managed_node() -> None:
    declared = requirement_names((META / "managed-node-requirements.txt").read_text(encoding="utf-8"))
    imports: Dict[str, Set[str]] = {}
    for path in list(_python_files(PLUGINS / "modules")) + list(_python_files(PLUGINS / "module_utils")):
        for name in third_party_imports(path.read_text(encoding="utf-8")):
            imports.setdefault(name.lower(), set()).add(str(path.relative_to(ROOT)))
    missing = {name: sorted(files) for name, files in imports.items() if name not in declared}
    assert missing == {}, f"imported but not in meta/managed-node-requirements.txt: {missing}"


def test_every_command_the_modules_run_is_provided_by_a_managed_node_package() -> None:
    provided = provided_commands((META / "managed-node-bindep.txt").read_text(encoding="utf-8"))
    commands: Dict[str, Set[str]] = {}
    for path in list(_python_files(PLUGINS / "modules")) + list(_python_files(PLUGINS / "module_utils")):
        for command in commands_run(path.read_text(encoding="utf-8")):
            commands.setdefault(command, set()).add(str(path.relative_to(ROOT)))
    # the tools this collection is about must be among those found, or the finder has gone blind
    assert {"iscsiadm", "multipathd", "multipath", "dmsetup", "scsi_id"} <= set(commands), sorted(commands)
    missing = {command: sorted(files) for command, files in commands.items() if command not in provided}
    assert missing == {}, f"run by the modules but provided by no package of meta/managed-node-bindep.txt: {missing}"


def test_execution_environment_names_existing_requirement_files() -> None:
    text = (META / "execution-environment.yml").read_text(encoding="utf-8")
    files = re.findall(r"^\s+(?:python|system):\s*(\S+)\s*$", text, flags=re.MULTILINE)
    assert files, "execution-environment.yml names no python/system requirement files"
    for name in files:
        assert (ROOT / name).is_file(), f"execution-environment.yml names {name}, which does not exist"


@pytest.mark.skipif(not _STDLIB, reason="sys.stdlib_module_names needs Python 3.10+")
def test_every_import_of_the_controller_plugins_is_declared_for_the_ee() -> None:
    text = (META / "ee-requirements.txt").read_text(encoding="utf-8")
    declared = requirement_names(text)
    imports: Dict[str, Set[str]] = {}
    for path in controller_plugin_files():
        for name in third_party_imports(path.read_text(encoding="utf-8")):
            imports.setdefault(name.lower(), set()).add(path.relative_to(ROOT).as_posix())
    # the JMESPath filter must be among the importers, or the finder has gone blind
    assert any(path.startswith("plugins/filter/") for path in imports.get("jmespath", ())), imports
    missing = {name: sorted(files) for name, files in imports.items() if name not in declared}
    assert missing == {}, f"imported by controller plugins but not in meta/ee-requirements.txt: {missing}"
    # each package's comment names exactly the plugin files that import it
    named = where_used(text)
    wrong = {
        name: {"comment names": sorted(named.get(name, ())), "imported by": sorted(imports.get(name, ()))}
        for name in declared
        if named.get(name, set()) != imports.get(name, set())
    }
    assert wrong == {}, f"meta/ee-requirements.txt: a package's '# name: plugins/...' comment is not true: {wrong}"


def test_controller_filters_that_need_python_packages_are_declared_for_the_ee() -> None:
    declared = requirement_names((META / "ee-requirements.txt").read_text(encoding="utf-8"))
    needs = {"json_query": "jmespath", "select_maps": "jmespath", "select_maps_problem": "jmespath"}
    used: Set[str] = set()
    for folder in ("roles", "playbooks", "demo", "extensions"):
        for path in sorted((ROOT / folder).rglob("*.yml")) if (ROOT / folder).is_dir() else []:
            text = path.read_text(encoding="utf-8")
            used.update(package for name, package in needs.items() if re.search(rf"\b{name}\b", text))
    assert used - declared == set(), f"used by roles/playbooks but not in meta/ee-requirements.txt: {used - declared}"


def _role_galaxy_info() -> Dict[str, dict]:
    infos = {}
    for path in sorted((ROOT / "roles").glob("*/meta/main.yml")):
        infos[path.parts[-3]] = yaml.safe_load(path.read_text(encoding="utf-8"))["galaxy_info"]
    assert infos, "no role has a meta/main.yml"
    return infos


def test_roles_claim_the_ansible_core_of_meta_runtime() -> None:
    requires = str(yaml.safe_load((META / "runtime.yml").read_text(encoding="utf-8"))["requires_ansible"])
    minimum = re.fullmatch(r">=\s*(\d+\.\d+)(?:\.\d+)?", requires.strip())
    assert minimum, f"meta/runtime.yml requires_ansible is not a lower bound: {requires}"
    found = {role: str(info.get("min_ansible_version")) for role, info in _role_galaxy_info().items()}
    assert found == dict.fromkeys(found, minimum.group(1)), f"min_ansible_version is not {minimum.group(1)}: {found}"


def test_roles_claim_only_the_platforms_the_lab_tests() -> None:
    """Each role's platforms: bookworm (the lab suite, in the test command), and another Debian suite of the lab
    only for a role whose Molecule scenario the guest matrix runs there (tests/lab/matrix.py CORE)."""
    lab = ROOT / "tests" / "lab" / "lab.py"
    matrix = ROOT / "tests" / "lab" / "matrix.py"
    if not lab.is_file() or not matrix.is_file():
        pytest.skip("tests/lab is not part of the collection artifact")
    text = lab.read_text(encoding="utf-8")
    suites = re.search(r"^SUITES = \(([^)]*)\)", text, re.MULTILINE)
    default = re.search(r'^DEFAULT_SUITE = "([a-z]+)"', text, re.MULTILINE)
    assert suites and default, "tests/lab/lab.py has no SUITES or DEFAULT_SUITE (the Debian suites of the lab guests)"
    lab_suites = re.findall(r'"([a-z]+)"', suites.group(1))
    in_matrix = set(re.findall(r"test_molecule_scenario\[([a-z_]+)\]", matrix.read_text(encoding="utf-8")))
    for role, info in _role_galaxy_info().items():
        platforms = info.get("platforms")
        assert isinstance(platforms, list) and len(platforms) == 1, (role, platforms)
        assert platforms[0]["name"] == "Debian", (role, platforms)
        versions = platforms[0]["versions"]
        assert default.group(1) in versions, f"{role}: the lab suite runs on {default.group(1)}, not listed: {versions}"
        assert versions == [v for v in lab_suites if v in versions], f"{role}: {versions} not among {lab_suites}"
        if versions != [default.group(1)]:
            assert role in in_matrix, f"{role} claims {versions} but its Molecule scenario is not in the matrix"
