# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""The profile of one run: every external command and every wait, in order, with when it started, how long
it took and how it ended (the ``profile`` result key).

The runner records each command it runs (:meth:`Profile.command`), the wait helper each wait
(:meth:`Profile.wait`); nothing else records, so no call site names itself. Commands are named by their tool
and the words that say what they do (``iscsiadm -m session``, ``multipathd show paths``, ``multipath -f``),
never by their values: no target name, device or CHAP secret reaches the profile. Several threads may
record at once (parallel logins), so every change holds a lock. The list is capped at :data:`MAX_STEPS`;
what comes after is still counted (``commands``, ``waits``) and the number left out is ``dropped``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Dict, List, Sequence

__all__ = ["MAX_STEPS", "Profile", "command_name"]

#: At most this many steps are listed; the counts go on.
MAX_STEPS = 300

# tool -> (options whose value names the operation, options dropped with their value: what they address)
_ISCSIADM = (
    frozenset(("-m", "--mode", "-o", "--op", "-n", "--name")),
    frozenset(("-T", "--targetname", "-p", "--portal", "-v", "--value", "-I", "--interface", "-r", "--sid")),
)
_OPTIONS = {"iscsiadm": _ISCSIADM}
# tools named by their leading subcommand words alone (``multipathd show paths``, ``dmsetup message``)
_SUBCOMMAND_WORDS = {"multipathd": 2, "dmsetup": 1, "udevadm": 1}
_MAX_NAME = 120


def _first_key_only(words: List[str]) -> List[str]:
    """An update of several keys (iscsiadm applies them at once) is named by its first key and their count."""
    keys = [i for i, word in enumerate(words) if word in ("-n", "--name")]
    if len(keys) < 2:
        return words
    return [*words[: keys[0] + 2], f"(+{len(keys) - 1} keys)"]


def command_name(argv: Sequence[str], secrets: Sequence[str] = ()) -> str:
    """The tool and the words that name what ``argv`` does, never its values (targets, portals, devices,
    secrets): the leading subcommand words of a tool that has them (``multipathd show paths``), else its
    options without their values (``--device=/dev/sdb`` gives ``--device``; iscsiadm keeps the value of
    ``-m``, ``-o`` and ``-n`` and drops ``-T``, ``-p``, ``-v`` altogether; an update of several keys is named
    by its first and their count). ``secrets`` are masked should one still show."""
    if not argv:
        return ""
    tool = os.path.basename(str(argv[0]))
    words = [tool]
    leading = _SUBCOMMAND_WORDS.get(tool)
    if leading is not None:
        for arg in argv[1 : 1 + leading]:
            if str(arg).startswith("-"):
                break
            words.append(str(arg))
    else:
        keep, drop = _OPTIONS.get(tool, (frozenset(), frozenset()))
        after = ""  # the option the current word is the value of
        for arg in argv[1:]:
            text = str(arg)
            if text.startswith("-"):
                flag = text.split("=", 1)[0]
                after = "" if "=" in text else flag
                if flag not in drop:
                    words.append(flag)
            elif after in keep and after:
                words.append(text)
                after = ""
            else:
                after = ""
    name = " ".join(_first_key_only(words))
    for secret in secrets:
        if secret:
            name = name.replace(secret, "********")
    return name[:_MAX_NAME]


class Profile:
    """The commands and waits of one run, in the order they ended (thread-safe)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, limit: int = MAX_STEPS) -> None:
        self.clock = clock
        self.limit = limit
        self.start = clock()
        self._lock = threading.Lock()
        self._steps: List[Dict[str, Any]] = []
        self.commands = 0
        self.waits = 0
        self.command_seconds = 0.0
        self.wait_seconds = 0.0
        self.dropped = 0

    def _offset(self, at: float) -> float:
        return round(max(0.0, at - self.start), 3)

    def _add(self, step: Dict[str, Any]) -> None:
        if len(self._steps) < self.limit:
            self._steps.append(step)
        else:
            self.dropped += 1

    def command(self, *, name: str, started: float, rc: int) -> None:
        """A command named ``name`` that started at ``started`` (on :attr:`clock`) and ended now with ``rc``."""
        ended = self.clock()
        duration = max(0.0, ended - started)
        with self._lock:
            self.commands += 1
            self.command_seconds += duration
            self._add(
                {
                    "kind": "command",
                    "what": name,
                    "start": self._offset(started),
                    "duration": round(duration, 3),
                    "rc": rc,
                }
            )

    def wait(self, *, what: str, method: str, deadline: float, started: float, ended_by: str) -> None:
        """A wait for ``what`` (woken by ``method``, at most ``deadline`` seconds) that started at ``started``
        and ended now: ``ready``, ``deadline`` or ``error``."""
        ended = self.clock()
        duration = max(0.0, ended - started)
        with self._lock:
            self.waits += 1
            self.wait_seconds += duration
            self._add(
                {
                    "kind": "wait",
                    "what": what,
                    "method": method,
                    "deadline": round(deadline, 3),
                    "start": self._offset(started),
                    "duration": round(duration, 3),
                    "ended": ended_by,
                }
            )

    def count(self, name_prefix: str) -> int:
        """How many listed commands have a name starting with ``name_prefix`` (for tests and benchmarks)."""
        with self._lock:
            return sum(1 for s in self._steps if s["kind"] == "command" and s["what"].startswith(name_prefix))

    def to_result(self) -> Dict[str, Any]:
        """The documented ``profile`` result key."""
        with self._lock:
            return {
                "commands": self.commands,
                "waits": self.waits,
                "command_seconds": round(self.command_seconds, 3),
                "wait_seconds": round(self.wait_seconds, 3),
                "dropped": self.dropped,
                "steps": [dict(step) for step in self._steps],
            }
