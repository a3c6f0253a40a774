# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check a built lunsafe.san collection artifact: only what users run, and small.

    python scripts/check-artifact.py ARTIFACT.tar.gz [ARTIFACT.tar.gz ...]

Lists each tarball and fails (exit 1) on a member that is developer material (the lab, contributor
scripts, the demo, Molecule scenarios, the built docsite or any HTML, tool configuration) or a tarball
over 1 MiB, printing every offender. galaxy.yml's build_ignore is what keeps them out; this is its test.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import tarfile
from typing import List, Tuple

MAX_BYTES = 1024 * 1024

# (pattern over the member path, why it does not belong in the artifact)
FORBIDDEN: Tuple[Tuple[str, str], ...] = (
    ("tests/lab", "the qemu lab, array emulator and benchmarks"),
    ("tests/lab/*", "the qemu lab, array emulator and benchmarks"),
    ("tests/tools", "contributor tooling"),
    ("tests/tools/*", "contributor tooling"),
    ("tests/*requirements.txt", "contributor tooling pins"),
    ("tests/requirements-core-*.txt", "contributor tooling pins"),
    ("scripts", "contributor scripts (one runs apt-get)"),
    ("scripts/*", "contributor scripts (one runs apt-get)"),
    ("demo", "the lab demo"),
    ("demo/*", "the lab demo"),
    ("extensions", "Molecule scenarios (they need the lab)"),
    ("extensions/*", "Molecule scenarios (they need the lab)"),
    ("ee", "the execution environment build files"),
    ("ee/*", "the execution environment build files"),
    ("docs/docsite/build", "the built docsite (scripts/build-docs)"),
    ("docs/docsite/build/*", "the built docsite (scripts/build-docs)"),
    ("*.html", "built documentation"),
    ("*.png", "images"),
    ("pyproject.toml", "tool configuration"),
    (".*", "hidden tool configuration or state"),
    ("*/.*", "hidden tool configuration or state"),
    ("*.tar.gz", "a nested artifact"),
    ("*__pycache__*", "Python caches"),
    ("*.pyc", "Python caches"),
)


def offenders(names: List[str]) -> List[Tuple[str, str]]:
    found = []
    for name in names:
        for pattern, why in FORBIDDEN:
            if fnmatch.fnmatchcase(name, pattern):
                found.append((name, why))
                break
    return found


def check(path: str) -> bool:
    size = os.path.getsize(path)
    with tarfile.open(path, "r:gz") as tar:
        names = [member.name.lstrip("./") for member in tar.getmembers()]
    ok = True
    print(f"artifact {path}: {len(names)} members, {size} bytes")
    for name, why in offenders(names):
        print(f"  does not belong in the artifact: {name} ({why})")
        ok = False
    if size > MAX_BYTES:
        print(f"  {size} bytes is over the {MAX_BYTES} bytes (1 MiB) limit; the largest members:")
        with tarfile.open(path, "r:gz") as tar:
            largest = sorted(tar.getmembers(), key=lambda member: member.size, reverse=True)[:10]
        for member in largest:
            print(f"    {member.size:>10}  {member.name}")
        ok = False
    if not ok:
        print("  fix: add the paths to build_ignore in galaxy.yml")
    return ok


def main(argv: List[str]) -> int:
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    results = [check(path) for path in argv]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
