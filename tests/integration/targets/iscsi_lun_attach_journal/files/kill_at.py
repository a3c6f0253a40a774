"""Wait for a run's journal entry to record a write, then SIGKILL that run (lab guest only).

    kill_at.py JOURNAL OP PREFIX TIMEOUT [GLOB COUNT]

Polls JOURNAL (the iscsi_lun_attach journal beside the host lock) until an entry of operation OP has a
write starting with PREFIX in its ``done`` list (and, with GLOB, until at least COUNT paths match GLOB: a
write is recorded just before it is made, so this waits for its effect), kills that entry's pid with
SIGKILL, and prints {"pid": ..., "done": [...]} as JSON. Exits 1 if that does not happen within TIMEOUT s.
"""

import glob
import json
import os
import signal
import sys
import time

READY = "/run/lunsafe-watcher-ready"  # created once this watcher polls: the task that starts the run waits for it

path, op, prefix, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
pattern, count = (sys.argv[5], int(sys.argv[6])) if len(sys.argv) > 6 else (None, 0)
deadline = time.monotonic() + timeout
with open(READY, "w", encoding="ascii") as ready:
    ready.write(str(os.getpid()))
while time.monotonic() < deadline:
    try:
        with open(path, encoding="utf-8") as handle:
            entries = json.load(handle)["entries"]
    except (OSError, ValueError, KeyError):
        entries = []
    for entry in entries:
        if (
            entry.get("op") == op
            and any(str(w).startswith(prefix) for w in entry.get("done", []))
            and (pattern is None or len(glob.glob(pattern)) >= count)
        ):
            os.kill(entry["pid"], signal.SIGKILL)
            print(json.dumps({"pid": entry["pid"], "done": entry["done"]}))
            sys.exit(0)
    time.sleep(0.02)
print(json.dumps({"error": f"no {op} entry with a write starting {prefix!r} ({pattern} x{count}) in {timeout:g}s"}))
sys.exit(1)
