# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check an execution environment build context made by ``bash scripts/build-ee --create CONTEXT``.

    python scripts/check-ee-context.py REPO CONTEXT INSTALLED_COLLECTIONS_PATH

No container engine is needed: what would be built is read from the context ansible-builder wrote.
Checks that the Containerfile starts from ee/execution-environment.yml's base image, installs an
ansible-core range whose lower bound is meta/runtime.yml's requires_ansible, and installs the
collections of _build/requirements.yml; that the staged artifact is lunsafe.san at galaxy.yml's version;
and that ansible-builder's introspection of the installed collection (what the image build runs) finds
the packages of meta/ee-requirements.txt and meta/ee-bindep.txt. Prints each finding; exit 1 on any failure.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, List

import yaml


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def requirement_names(text: str) -> List[str]:
    return [re.split(r"[\s<>=!~;\[]", line, maxsplit=1)[0] for line in uncommented(text)]


def uncommented(text: str) -> List[str]:
    """The lines of a requirements or bindep file without comments and blank lines."""
    return [line for line in (raw.split("#", 1)[0].strip() for raw in text.splitlines()) if line]


def main(argv: List[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    repo, context, installed = (Path(arg) for arg in argv)
    problems: List[str] = []

    def expect(condition: bool, what: str) -> None:
        print(("ok: " if condition else "FAILED: ") + what)
        if not condition:
            problems.append(what)

    definition = load_yaml(repo / "ee" / "execution-environment.yml")
    galaxy = load_yaml(repo / "galaxy.yml")
    runtime = load_yaml(repo / "meta" / "runtime.yml")
    containerfile = (context / "Containerfile").read_text(encoding="utf-8")

    base = definition["images"]["base_image"]["name"]
    expect(f'ARG EE_BASE_IMAGE="{base}"' in containerfile, f"the Containerfile starts from the base image {base}")

    minimum = str(runtime["requires_ansible"]).lstrip(">=")
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"', containerfile, re.MULTILINE)
    core = re.search(r"ansible-core(\S*)", refs.group(1)) if refs else None
    expect(
        core is not None and f">={minimum}" in core.group(1).split(","),
        f"the image installs ansible-core >={minimum} (meta/runtime.yml), got {core.group(0) if core else 'none'}",
    )
    expect(
        re.search(r"ansible-galaxy collection install .*-r requirements\.yml", containerfile) is not None,
        "the Containerfile installs the collections of requirements.yml",
    )

    requirements = load_yaml(context / "_build" / "requirements.yml")
    files = [entry["name"] for entry in requirements.get("collections", []) if entry.get("type") == "file"]
    expect(len(files) == 1, f"requirements.yml installs one collection artifact: {files}")
    for name in files:
        artifact = context / "_build" / name
        expect(artifact.is_file(), f"the artifact {name} is in the build context")
        if artifact.is_file():
            with tarfile.open(artifact, "r:gz") as tar:
                member = tar.extractfile("MANIFEST.json")
                info = json.load(member)["collection_info"] if member else {}
            found = f"{info.get('namespace')}.{info.get('name')} {info.get('version')}"
            wanted = f"{galaxy['namespace']}.{galaxy['name']} {galaxy['version']}"
            expect(found == wanted, f"the artifact is {wanted} (galaxy.yml), found {found}")

    # the ansible-builder beside this interpreter (.venv), else the one on PATH
    builder = Path(sys.executable).with_name("ansible-builder")
    introspected = subprocess.run(
        [str(builder) if builder.is_file() else "ansible-builder", "introspect", "--sanitize", str(installed)],
        capture_output=True,
        text=True,
        check=False,
    )
    expect(
        introspected.returncode == 0,
        f"ansible-builder introspect exits 0 ({introspected.returncode}) {introspected.stderr.strip()}",
    )
    found_deps = load_yaml_text(introspected.stdout)
    python_found = requirement_names("\n".join(found_deps.get("python") or []))
    system_found = "\n".join(found_deps.get("system") or [])
    for name in requirement_names((repo / "meta" / "ee-requirements.txt").read_text(encoding="utf-8")):
        expect(name in python_found, f"introspection of the installed collection finds the Python package {name}")
    for line in uncommented((repo / "meta" / "ee-bindep.txt").read_text(encoding="utf-8")):
        expect(line in system_found, f"introspection of the installed collection finds the system package {line}")
    return 1 if problems else 0


def load_yaml_text(text: str) -> Any:
    data = yaml.safe_load(text)
    return data if isinstance(data, dict) else {}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
