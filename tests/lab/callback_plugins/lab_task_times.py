# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lab-only callback: at the end of a playbook, the slowest tasks with their file and line, so that a lab
test's output says where its minutes went (the test command's budget is spent in these playbooks). Not part
of the collection."""

from __future__ import annotations

import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: lab_task_times
type: aggregate
short_description: the slowest tasks of a lab playbook run
description: >-
  Prints the LAB_TASK_TIMES (default 15) slowest tasks, with their path, and the time per action, at the end
  of the run.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lab_task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._current: tuple | None = None
        self._times: list = []
        self._begin = time.monotonic()

    def _close(self) -> None:
        if self._current is not None:
            name, path, started, action = self._current
            self._times.append((time.monotonic() - started, name, path, action))
            self._current = None

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self._close()
        self._current = (task.get_name(), task.get_path() or "", time.monotonic(), task.action)

    def v2_playbook_on_handler_task_start(self, task) -> None:
        self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats) -> None:
        self._close()
        limit = int(os.environ.get("LAB_TASK_TIMES", "15"))
        total = time.monotonic() - self._begin
        self._display.display(f"LAB TASK TIMES: {total:.0f} s in all, the {limit} slowest tasks:")
        for seconds, name, path, _action in sorted(self._times, reverse=True)[:limit]:
            where = "/".join(path.split("/")[-3:])
            self._display.display(f"  {seconds:7.1f} s  {name}  ({where})")
        # per action: how many tasks started and their time (a task that loops or retries counts once)
        by_action: dict = {}
        for seconds, _name, _path, action in self._times:
            count, summed = by_action.get(action, (0, 0.0))
            by_action[action] = (count + 1, summed + seconds)
        ranked = sorted(by_action.items(), key=lambda item: item[1][1], reverse=True)[:limit]
        self._display.display("LAB TASK TIMES by action: " + ", ".join(f"{a} {c}x {s:.0f} s" for a, (c, s) in ranked))
