# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check the playbooks README.md shows against the roles they call.

    python scripts/check-readme.py [--collections-path PATH]

Every ```yaml block of README.md that is a playbook: each task that includes or imports a role
lunsafe.san.ROLE may only set variables of that role's meta/argument_specs.yml (those starting with
``ROLE_``), must set its required ones, and a literal value must fit the option's type and choices. With
--collections-path (an installed lunsafe.san), the playbooks are also run through
``ansible-playbook --syntax-check`` there. Exit 1 on any problem (or when no role call is found).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List

import yaml

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "lunsafe.san."
_TYPES = {"str": str, "list": list, "dict": dict, "bool": bool, "int": int, "path": str, "raw": object}


def yaml_blocks(text: str) -> List[Any]:
    return [yaml.safe_load(block) for block in re.findall(r"^```yaml\n(.*?)^```", text, re.MULTILINE | re.DOTALL)]


def is_playbook(data: Any) -> bool:
    return isinstance(data, list) and bool(data) and all(isinstance(play, dict) and "hosts" in play for play in data)


def tasks_of(items: Any) -> Iterator[Dict[str, Any]]:
    for task in items or []:
        if not isinstance(task, dict):
            continue
        yield task
        for key in ("block", "rescue", "always"):
            yield from tasks_of(task.get(key))


def role_calls(playbook: List[Dict[str, Any]]) -> Iterator[Dict[str, Any]]:
    for play in playbook:
        for section in ("pre_tasks", "tasks", "post_tasks"):
            for task in tasks_of(play.get(section)):
                for action in (
                    "ansible.builtin.include_role",
                    "ansible.builtin.import_role",
                    "include_role",
                    "import_role",
                ):
                    if isinstance(task.get(action), dict):
                        yield {
                            "role": task[action].get("name", ""),
                            "vars": task.get("vars") or {},
                            "task": task.get("name"),
                        }


def check_call(call: Dict[str, Any]) -> List[str]:
    role = call["role"]
    if not role.startswith(NAMESPACE):
        return []
    short = role[len(NAMESPACE) :]
    spec_path = ROOT / "roles" / short / "meta" / "argument_specs.yml"
    if not spec_path.is_file():
        return [f"task {call['task']!r}: role {role} does not exist"]
    options = yaml.safe_load(spec_path.read_text(encoding="utf-8"))["argument_specs"]["main"]["options"]
    problems = []
    for name, value in call["vars"].items():
        if not name.startswith(short + "_"):
            continue
        if name not in options:
            problems.append(f"task {call['task']!r}: {name} is not a variable of {role}")
            continue
        option = options[name]
        templated = isinstance(value, str) and "{{" in value
        wanted = _TYPES.get(option.get("type", "str"), object)
        if not templated and not isinstance(value, wanted):
            problems.append(
                f"task {call['task']!r}: {name} is {type(value).__name__}, the role wants {option.get('type')}"
            )
        if not templated and "choices" in option and value not in option["choices"]:
            problems.append(f"task {call['task']!r}: {name}={value!r} is not one of {option['choices']}")
    for name, option in options.items():
        if option.get("required") and name not in call["vars"]:
            problems.append(f"task {call['task']!r}: {role} requires {name}")
    return problems


def syntax_check(blocks: List[Any], collections_path: str) -> List[str]:
    problems = []
    with tempfile.TemporaryDirectory() as work:
        for index, block in enumerate(blocks):
            if not is_playbook(block):
                continue
            path = Path(work, f"playbook{index}.yml")
            path.write_text(yaml.safe_dump(block, sort_keys=False), encoding="utf-8")
            env = {"ANSIBLE_COLLECTIONS_PATH": collections_path, "PATH": "/usr/bin:/bin", "ANSIBLE_NOCOLOR": "1"}
            bin_dir = Path(sys.executable).parent
            result = subprocess.run(
                [str(bin_dir / "ansible-playbook"), "--syntax-check", "-i", "localhost,", str(path)],
                capture_output=True,
                text=True,
                check=False,
                env=env,
                cwd=work,
            )
            if result.returncode != 0:
                output = result.stdout + result.stderr
                problems.append(f"playbook {index} of README.md: ansible-playbook --syntax-check failed:\n{output}")
    return problems


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--collections-path", help="where lunsafe.san is installed, for ansible-playbook --syntax-check"
    )
    args = parser.parse_args(argv)
    blocks = yaml_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    playbooks = [block for block in blocks if is_playbook(block)]
    calls = [call for playbook in playbooks for call in role_calls(playbook)]
    problems = [problem for call in calls for problem in check_call(call)]
    if args.collections_path:
        problems += syntax_check(blocks, args.collections_path)
    for problem in problems:
        print("README.md: " + problem)
    print(f"README.md: {len(playbooks)} playbooks, {len(calls)} role calls checked, {len(problems)} problems")
    return 1 if problems or not calls else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
