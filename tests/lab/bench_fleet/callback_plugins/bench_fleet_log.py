# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark-only callback: one JSON line per play start and per task result (play, task, action, host, the
host a task was delegated to, status, per-host start and end) in $BENCH_FLEET_LOG, so tests/lab/bench_fleet.py
can count the module calls each role makes per host and time them. Not part of the collection."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_fleet_log
type: aggregate
short_description: JSON lines of per-host task results for tests/lab/bench_fleet.py
description: Writes one JSON line per play start and task result to the file named by BENCH_FLEET_LOG.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_fleet_log"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("BENCH_FLEET_LOG")
        self._start: dict = {}
        self._play = ""

    def _write(self, record: dict) -> None:
        if self._path:
            with open(self._path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, default=str) + "\n")

    def v2_playbook_on_play_start(self, play) -> None:
        self._play = play.get_name()
        self._write({"play": self._play, "event": "play_start", "time": time.time()})

    def v2_runner_on_start(self, host, task) -> None:
        self._start[(host.get_name(), task._uuid)] = time.time()

    def _result(self, result, status: str) -> None:
        task, host = result._task, result._host.get_name()
        self._write(
            {
                "play": self._play,
                "event": "result",
                "task": task.get_name(),
                "action": task.action,
                "host": host,
                "delegated": bool(result._result.get("_ansible_delegated_vars")),
                "items": len(result._result["results"]) if isinstance(result._result.get("results"), list) else None,
                "status": status,
                "start": self._start.pop((host, task._uuid), time.time()),
                "end": time.time(),
            }
        )

    def v2_runner_on_ok(self, result) -> None:
        self._result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        self._result(result, "failed")

    def v2_runner_on_skipped(self, result) -> None:
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result) -> None:
        self._result(result, "unreachable")

    def v2_playbook_on_stats(self, stats) -> None:
        self._write({"play": self._play, "event": "end", "time": time.time()})
