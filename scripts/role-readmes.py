# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write (or check) each role's README.md from its meta/argument_specs.yml.

    .venv/bin/python scripts/role-readmes.py            # rewrite roles/*/README.md
    .venv/bin/python scripts/role-readmes.py --check    # exit 1 and name the stale READMEs (static checks)

The part between the GENERATED markers is the argument spec rendered as Markdown (description, then a
variable table with type, default, required and description); the text around the markers is kept, so
each README can carry a hand-written example playbook and notes.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BEGIN = "<!-- BEGIN GENERATED from meta/argument_specs.yml by scripts/role-readmes.py: do not edit -->"
END = "<!-- END GENERATED -->"
_MARKUP = re.compile(r"\b([MOVCRIPLEU]|RV)\(([^()]*(?:\([^()]*\)[^()]*)*)\)")


def plain(text: str) -> str:
    """Ansible semantic markup to Markdown: O(x)/V(x)/C(x)/RV(x) as code, M(x) as the module name."""

    def sub(match: re.Match) -> str:
        kind, body = match.group(1), match.group(2)
        if kind in ("I",):
            return f"*{body}*"
        if kind in ("U",):
            return body
        if kind in ("L", "R"):
            return body.split(",")[0]
        return f"`{body}`"

    return _MARKUP.sub(sub, text)


def lines(value: object) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def option_rows(options: dict, prefix: str = "") -> list[str]:
    rows = []
    for name, spec in options.items():
        kind = spec.get("type", "str")
        if spec.get("elements"):
            kind += f" of {spec['elements']}"
        shown = ""
        if "default" in spec:
            shown = "`" + yaml.safe_dump(spec["default"]).strip().removesuffix("...").strip() + "`"
        flags = "yes" if spec.get("required") else ""
        extra = []
        if spec.get("choices"):
            extra.append("Choices: " + ", ".join(f"`{c}`" for c in spec["choices"]) + ".")
        if spec.get("no_log"):
            extra.append("Never logged.")
        desc = " ".join(plain(x) for x in lines(spec.get("description")) + extra)
        rows.append(f"| `{prefix}{name}` | {kind} | {shown} | {flags} | {cell(desc)} |")
        if spec.get("options"):
            rows.extend(
                option_rows(
                    spec["options"],
                    prefix=f"{prefix}{name}[]." if spec.get("type") == "list" else f"{prefix}{name}.",
                )
            )
    return rows


def render(role: str, specs: dict) -> str:
    out = []
    for entry, spec in specs["argument_specs"].items():
        title = f"`lunsafe.san.{role}`" + ("" if entry == "main" else f" entry point `{entry}`")
        out.append(f"### {title}: {plain(spec.get('short_description', ''))}")
        out.append("")
        for paragraph in lines(spec.get("description")):
            out.append("- " + " ".join(plain(paragraph).split()))
        out.append("")
        out.append("| Variable | Type | Default | Required | Description |")
        out.append("|---|---|---|---|---|")
        out.extend(option_rows(spec.get("options", {})))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def updated(readme: str, generated: str, role: str) -> str:
    block = f"{BEGIN}\n{generated}{END}"
    if BEGIN in readme and END in readme:
        head, rest = readme.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        return f"{head}{block}{tail}"
    return f"# Role lunsafe.san.{role}\n\n{block}\n"


def spec_problems(role: str, specs: dict, defaults: dict) -> list[str]:
    """Variables not prefixed with the role name, and defaults/main.yml disagreeing with the spec."""
    problems = []
    options = specs["argument_specs"]["main"].get("options", {})
    for name, spec in options.items():
        if not name.startswith(f"{role}_"):
            problems.append(f"{role}: variable {name} is not prefixed with the role name")
        if spec.get("required"):
            if name in defaults:
                problems.append(f"{role}: required {name} has a value in defaults/main.yml (it would never be missing)")
            continue
        if name not in defaults:
            problems.append(f"{role}: {name} has no value in defaults/main.yml")
        elif defaults[name] != spec.get("default"):
            problems.append(f"{role}: {name} defaults to {defaults[name]!r} but the spec says {spec.get('default')!r}")
    for name in defaults:
        if name not in options:
            problems.append(f"{role}: defaults/main.yml sets {name}, which the spec does not describe")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report READMEs that differ")
    args = parser.parse_args(argv)
    stale = []
    problems = []
    for spec_file in sorted((REPO / "roles").glob("*/meta/argument_specs.yml")):
        role_dir = spec_file.parent.parent
        specs = yaml.safe_load(spec_file.read_text())
        defaults_file = role_dir / "defaults" / "main.yml"
        defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else {}
        problems.extend(spec_problems(role_dir.name, specs, defaults or {}))
        readme_path = role_dir / "README.md"
        current = readme_path.read_text() if readme_path.exists() else ""
        wanted = updated(current, render(role_dir.name, specs), role_dir.name)
        if current != wanted:
            stale.append(str(readme_path.relative_to(REPO)))
            if not args.check:
                readme_path.write_text(wanted)
    for problem in problems:
        print(problem)
    if args.check and stale:
        print("stale role READMEs (run .venv/bin/python scripts/role-readmes.py): " + ", ".join(stale))
        return 1
    print(
        ("checked" if args.check else "wrote")
        + f" role READMEs; {'stale' if args.check else 'changed'}: {stale or 'none'}"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
