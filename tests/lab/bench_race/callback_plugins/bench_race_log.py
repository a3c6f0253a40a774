# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark-only callback: one JSON line per task result (name, start, end, status) in $BENCH_RACE_LOG,
plus the msg of each "bench record" task, so tests/lab/bench_race.py can rebuild per-cycle timings even
when a worker dies half way. Not part of the collection."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_race_log
type: aggregate
short_description: JSON lines of task timings for tests/lab/bench_race.py
description: Writes one JSON line per task result to the file named by BENCH_RACE_LOG.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_race_log"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("BENCH_RACE_LOG")
        self._start: dict = {}

    def _write(self, record: dict) -> None:
        if not self._path:
            return
        with open(self._path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self._start[task._uuid] = time.time()

    def _result(self, result, status: str) -> None:
        task = result._task
        name = task.get_name().lower()  # names are capitalized for ansible-lint; bench_race.py matches lower case
        record = {
            "task": name,
            "status": status,
            "start": self._start.get(task._uuid, time.time()),
            "end": time.time(),
        }
        data = result._result
        if name == "bench record" and status == "ok":
            record["record"] = data.get("msg")
        elif status == "failed":
            # a loop's own msg only says an item failed: keep the first failed item's
            items = [i for i in data.get("results") or [] if isinstance(i, dict) and i.get("failed")]
            source = items[0] if items else data
            record["msg"] = str(source.get("msg", ""))[:500]
            record["stderr"] = str(source.get("stderr", ""))[-500:]
        self._write(record)

    def v2_runner_on_ok(self, result) -> None:
        self._result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        self._result(result, "failed")

    def v2_runner_on_unreachable(self, result) -> None:
        self._result(result, "unreachable")
