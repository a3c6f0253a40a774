# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A scripted CommandRunner for unit tests: no subprocess, no mocking.

ScriptedRunner answers every run() from a script of (rc, stdout, stderr) answers
and records every argv.  It derives from the production PolicyRunner, so return
codes, timeouts (rc 124/137) and redaction behave exactly as with the real Runner.

    from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.runner_fake import (
        ScriptedRunner,
        ScriptMismatch,
        Step,
    )
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Iterable, List, Optional, Sequence, Tuple, Union

from ansible_collections.lunsafe.san.plugins.module_utils._errors import LunsafeError
from ansible_collections.lunsafe.san.plugins.module_utils._runner import (
    DEFAULT_TIMEOUT,
    CommandResult,
    PolicyRunner,
    format_cmd,
    format_seconds,
)

__all__ = [
    "RecordedCall",
    "ScriptMismatch",
    "ScriptedRunner",
    "Step",
    "StepLike",
]


class ScriptMismatch(LunsafeError):
    """A scripted (fake) runner received a command it was not told to expect."""


@dataclass(frozen=True)
class Step:
    """One scripted answer; ``argv=None`` accepts any command."""

    rc: int = 0
    stdout: str = ""
    stderr: str = ""
    argv: Optional[Tuple[str, ...]] = None


@dataclass(frozen=True)
class RecordedCall:
    """A command the scripted runner received (plain strings, secrets included)."""

    argv: Tuple[str, ...]
    ok_rcs: Tuple[int, ...]
    timeout: float
    data: Optional[str]


StepLike = Union[Step, Tuple[int, str, str], Tuple[Sequence[str], int, str, str]]


def _to_step(item: StepLike) -> Step:
    if isinstance(item, Step):
        return item
    if len(item) == 3:
        rc, out, err = item
        return Step(rc=int(rc), stdout=str(out), stderr=str(err))
    argv, rc, out, err = item
    return Step(rc=int(rc), stdout=str(out), stderr=str(err), argv=tuple(argv))


class ScriptedRunner(PolicyRunner):
    """A CommandRunner that answers from a script and records what it was asked.

    ``script`` items are ``Step``, ``(rc, stdout, stderr)`` or
    ``(argv, rc, stdout, stderr)``; an argv given in the script must match exactly,
    otherwise ScriptMismatch is raised, as it is when the script runs out.
    ``missing_tools`` makes has_tool() false for those names.
    """

    def __init__(
        self,
        script: Iterable[StepLike] = (),
        *,
        missing_tools: Collection[str] = (),
        redact: Iterable[str] = (),
        default_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(default_timeout=default_timeout, redact=redact)
        self._steps = [_to_step(item) for item in script]
        self.missing_tools = frozenset(missing_tools)
        self.calls: List[RecordedCall] = []

    @property
    def remaining(self) -> List[Step]:
        """Scripted answers not consumed yet."""
        return list(self._steps)

    @property
    def argvs(self) -> List[List[str]]:
        """The argv of every call so far, as plain lists."""
        return [list(call.argv) for call in self.calls]

    def has_tool(self, name: str) -> bool:
        return name not in self.missing_tools

    def run(
        self,
        argv: Sequence[str],
        *,
        ok_rcs: Collection[int] = (0,),
        timeout: Optional[float] = None,
        data: Optional[str] = None,
        sensitive_output: bool = False,
    ) -> CommandResult:
        deadline = self.default_timeout if timeout is None else timeout
        format_seconds(deadline)
        plain = tuple(str(a) for a in argv)
        self.calls.append(RecordedCall(argv=plain, ok_rcs=tuple(ok_rcs), timeout=deadline, data=data))
        secrets = self._secrets_for(argv)
        if not self._steps:
            raise ScriptMismatch(f"unexpected command, the script is exhausted: {format_cmd(argv, secrets)}")
        step = self._steps.pop(0)
        if step.argv is not None and step.argv != plain:
            raise ScriptMismatch(
                f"unexpected command: {format_cmd(argv, secrets)}; expected: {format_cmd(step.argv, secrets)}"
            )
        return self._finish(
            display_argv=argv,
            rc=step.rc,
            stdout=step.stdout,
            stderr=step.stderr,
            ok_rcs=ok_rcs,
            timeout=deadline,
            sensitive_output=sensitive_output,
        )
