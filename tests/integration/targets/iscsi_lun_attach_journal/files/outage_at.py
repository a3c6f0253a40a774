"""Put a portal's session into recovery right before an attach writes its scans (lab guest only).

    outage_at.py JOURNAL ADDRESS DOWN_SECONDS TIMEOUT [OP PREFIX]

Waits until an attach's journal entry records a scan (written just before the scan writes), or the entry of
op OP records a write starting with PREFIX (``detach`` and ``flush map``: right before a detach flushes a map
and deletes its paths), stops that run (SIGSTOP), drops the packets of portal ADDRESS (labctl portal down),
waits until the kernel has taken its session out of LOGGED_IN (NOP-Out timeout), lets the run go on
(SIGCONT): its scan of that session is now written while the session is in recovery, which the kernel
ignores (a detach meets that session's path blocked). The portal comes back DOWN_SECONDS later.
Prints {"pid", "state", "stopped_for"} as JSON; exits 1 if no such entry shows up within TIMEOUT seconds.
"""

import glob
import json
import os
import signal
import subprocess
import sys
import time

READY = "/run/lunsafe-watcher-ready"  # created once this watcher polls: the task that starts the run waits for it

LABCTL = ["python3", "/usr/local/lib/lunsafe-lab/labctl.py"]
path, address, down_for, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
op, prefix = (sys.argv[5], sys.argv[6]) if len(sys.argv) > 6 else ("attach", "scan ")


def session_state():
    for session in glob.glob("/sys/class/iscsi_session/session*"):
        for found in glob.glob(session + "/device/connection*/iscsi_connection/connection*/persistent_address"):
            with open(found, encoding="ascii") as handle:
                if handle.read().strip() == address:
                    with open(session + "/state", encoding="ascii") as state:
                        return state.read().strip()
    return None


deadline = time.monotonic() + timeout
with open(READY, "w", encoding="ascii") as ready:
    ready.write(str(os.getpid()))
pid = None
while pid is None and time.monotonic() < deadline:
    try:
        with open(path, encoding="utf-8") as handle:
            entries = json.load(handle)["entries"]
    except (OSError, ValueError, KeyError):
        entries = []
    for entry in entries:
        if entry.get("op") == op and any(str(w).startswith(prefix) for w in entry.get("done", [])):
            pid = entry["pid"]
            break
    else:
        time.sleep(0.02)
if pid is None:
    print(json.dumps({"error": f"no {op} recorded {prefix!r} within {timeout:g}s"}))
    sys.exit(1)
os.kill(pid, signal.SIGSTOP)
stopped = time.monotonic()
try:
    subprocess.run([*LABCTL, "portal", "down", address], check=True, capture_output=True, timeout=60)
    while session_state() == "LOGGED_IN" and time.monotonic() < stopped + 60:
        time.sleep(0.2)
    state = session_state()
finally:
    os.kill(pid, signal.SIGCONT)
time.sleep(down_for)
subprocess.run([*LABCTL, "portal", "up", address], check=True, capture_output=True, timeout=60)
print(json.dumps({"pid": pid, "state": state, "stopped_for": round(time.monotonic() - stopped, 1)}))
