# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""The one subprocess seam of lunsafe.san.

Every external command goes through Runner.run():
* argv lists only, never a shell string; argv[0] is a tool *name* ("iscsiadm"),
  resolved once per runner with module.get_bin_path(name, required=True);
* the locale is pinned to C so that parsers see the English, unlocalised output;
* every call has a deadline.  AnsibleModule.run_command has none, so the runner arms
  two timers on the child it started (run_command hands the Popen object to
  ``before_communicate_callback``): at the deadline SIGTERM goes to the command and
  to every process it started (found through /proc), ``kill_after`` seconds later
  SIGKILL.  A timed-out call is reported with coreutils ``timeout``'s codes, 124
  (TERM sent) or 137 (KILL needed), and raises ToolTimeout.  This replaced wrapping
  every command in coreutils ``timeout``: the extra exec cost 0.07 s per call in
  the lab guest (0.17 s instead of 0.10 s for ``multipathd show paths``), and fact
  collection makes four calls.  A process stuck in uninterruptible sleep (D state,
  e.g. I/O on a queueing multipath map) cannot be killed by anyone: callers must
  not start such I/O (see _multipath);
* check_rc is never used: each call states the return codes it accepts
  (ok_rcs, default (0,)); anything else raises ToolError;
* secrets never leave: argv elements wrapped in Secret, the runner's redact list
  and the module's no_log values are replaced by ******** in every cmd, stdout and
  stderr stored in a CommandResult or an exception;
* every command is recorded in the runner's ``profile`` (a _profile.Profile: its
  name without values, when it started, how long it took, its rc), also when it
  fails or cannot start; the profile is thread-safe (logins run in parallel);
* ``$VAR`` and ``~`` in arguments are NOT expanded (expand_user_and_vars=False):
  a CHAP secret containing "$HOME" must reach iscsiadm unchanged.

Unit tests use a scripted fake of the CommandRunner protocol instead of mocking
subprocess: ScriptedRunner in tests/unit/plugins/module_utils/runner_fake.py.  It
derives from PolicyRunner, so it applies the very same rc/timeout/redaction policy
as the real runner.
"""

from __future__ import annotations

import os
import shlex
import signal
import threading
from dataclasses import dataclass
from typing import (
    Any,
    Collection,
    Dict,
    Iterable,
    List,
    Optional,
    Protocol,
    Sequence,
    Set,
    Tuple,
)

from ansible_collections.lunsafe.san.plugins.module_utils._errors import (
    REDACTED,
    InputError,
    ToolError,
    ToolTimeout,
    redact_text,
)
from ansible_collections.lunsafe.san.plugins.module_utils._profile import Profile, command_name

__all__ = [
    "DEFAULT_KILL_AFTER",
    "DEFAULT_TIMEOUT",
    "LOCALE_ENV",
    "TIMEOUT_RCS",
    "CommandResult",
    "CommandRunner",
    "Deadline",
    "ModuleLike",
    "PolicyRunner",
    "Runner",
    "Secret",
    "format_cmd",
    "format_seconds",
    "process_tree",
    "secrets_in",
]

LOCALE_ENV: Dict[str, str] = {"LANG": "C", "LC_ALL": "C", "LC_MESSAGES": "C", "LC_CTYPE": "C"}
DEFAULT_TIMEOUT = 60.0
DEFAULT_KILL_AFTER = 5.0
# coreutils timeout: 124 = the deadline passed and TERM was sent; 137 = 128 + SIGKILL,
# the command ignored TERM and was killed after --kill-after.
TIMEOUT_RCS = frozenset((124, 137))
# Exit codes with a fixed meaning: 126 = found but not executable, 127 = not found.
_TIMEOUT_WRAPPER_FAILURES = {
    126: "the command could not be executed",
    127: "the command was not found",
}


class Secret(str):
    """A string that must never be shown: an argv element such as a CHAP password.

    It behaves as a plain ``str`` when passed to a command; only ``repr()`` is
    masked.  The runner collects every Secret in an argv and redacts its value from
    everything it stores.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(REDACTED)


def secrets_in(argv: Iterable[str]) -> List[str]:
    """The values of the argv elements marked as Secret."""
    return [str(a) for a in argv if isinstance(a, Secret) and a]


def format_seconds(seconds: float) -> str:
    """A duration as coreutils ``timeout`` reads it: ``30``, ``0.5``.

    Zero or negative durations are refused: ``timeout 0`` means *no* deadline.
    """
    if seconds <= 0:
        raise InputError(f"a command deadline must be positive, got {seconds!r}", option="timeout", value=seconds)
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return text if text != "0" else "0.001"


def format_cmd(argv: Sequence[str], secrets: Iterable[str] = ()) -> str:
    """A shell-quoted, redacted rendering of ``argv`` for messages and results."""
    words = (REDACTED if isinstance(a, Secret) and a else shlex.quote(str(a)) for a in argv)
    return redact_text(" ".join(words), secrets)


@dataclass(frozen=True)
class CommandResult:
    """What a command returned; ``cmd``, ``stdout`` and ``stderr`` are redacted."""

    cmd: str
    rc: int
    stdout: str
    stderr: str

    def to_dict(self) -> Dict[str, Any]:
        return {"cmd": self.cmd, "rc": self.rc, "stdout": self.stdout, "stderr": self.stderr}


class ModuleLike(Protocol):
    """The part of AnsibleModule the runner uses."""

    def run_command(self, args: Any, **kwargs: Any) -> Tuple[int, str, str]:
        """AnsibleModule.run_command."""

    def get_bin_path(self, arg: str, required: bool = False, opt_dirs: Optional[List[str]] = None) -> Optional[str]:
        """AnsibleModule.get_bin_path."""


class CommandRunner(Protocol):
    """What modules and helpers depend on: Runner in production, a scripted fake in unit tests."""

    def run(
        self,
        argv: Sequence[str],
        *,
        ok_rcs: Collection[int] = (0,),
        timeout: Optional[float] = None,
        data: Optional[str] = None,
        sensitive_output: bool = False,
    ) -> CommandResult:
        """Run ``argv`` and return its result, or raise ToolError/ToolTimeout (Runner.run says more)."""

    def has_tool(self, name: str) -> bool:
        """Whether ``name`` is installed."""

    @property
    def profile(self) -> Profile:
        """The commands and waits of this run so far."""


class PolicyRunner:
    """The rc/timeout/redaction policy shared by Runner and the scripted test fake."""

    def __init__(self, *, default_timeout: float, redact: Iterable[str]) -> None:
        format_seconds(default_timeout)  # validate early
        self.default_timeout = default_timeout
        self._redact: Set[str] = {s for s in redact if s}
        self._profile = Profile()

    @property
    def profile(self) -> Profile:
        """The commands run so far (and the waits the host recorded), for the ``profile`` result key."""
        return self._profile

    def _record(self, argv: Sequence[str], *, started: Optional[float], rc: int) -> None:
        """Add ``argv`` to the profile; ``started`` None: the command took no time (scripted runners)."""
        profile = self._profile
        name = command_name(argv, self._secrets_for(argv))
        profile.command(name=name, started=profile.clock() if started is None else started, rc=rc)

    def add_redaction(self, *secrets: Optional[str]) -> None:
        """Mask these values (e.g. CHAP passwords from module parameters) from now on."""
        self._redact.update(s for s in secrets if s)

    def _secrets_for(self, argv: Sequence[str]) -> List[str]:
        return sorted(self._redact.union(secrets_in(argv)), key=len, reverse=True)

    def _finish(
        self,
        *,
        display_argv: Sequence[str],
        rc: int,
        stdout: str,
        stderr: str,
        ok_rcs: Collection[int],
        timeout: float,
        sensitive_output: bool,
        started: Optional[float] = None,
    ) -> CommandResult:
        self._record(display_argv, started=started, rc=rc)
        secrets = self._secrets_for(display_argv)
        cmd = format_cmd(display_argv, secrets)
        shown_out = REDACTED if (sensitive_output and stdout) else redact_text(stdout, secrets)
        shown_err = redact_text(stderr, secrets)
        if rc in TIMEOUT_RCS and rc not in ok_rcs:
            raise ToolTimeout(
                f"command did not finish within {format_seconds(timeout)}s and was killed: {cmd}",
                cmd=cmd,
                rc=rc,
                timeout=timeout,
                stdout=shown_out,
                stderr=shown_err,
            )
        if rc not in ok_rcs:
            reason = _TIMEOUT_WRAPPER_FAILURES.get(rc)
            detail = reason if reason else _first_line(shown_err) or _first_line(shown_out) or "no output"
            raise ToolError(
                f"command failed with rc {rc} ({detail}): {cmd}",
                cmd=cmd,
                rc=rc,
                stdout=shown_out,
                stderr=shown_err,
            )
        # On success the caller gets the real stdout to parse, but the stored
        # cmd/stderr stay redacted; sensitive stdout is the caller's to protect.
        return CommandResult(cmd=cmd, rc=rc, stdout=stdout if sensitive_output else shown_out, stderr=shown_err)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _children(pid: int, proc_root: str = "/proc") -> List[int]:
    """PIDs whose parent is ``pid`` (from /proc/*/stat; processes that vanish meanwhile are skipped)."""
    found: List[int] = []
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc_root, entry, "stat"), encoding="ascii", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")"
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry))
    return found


def process_tree(pid: int, *, proc_root: str = "/proc") -> List[int]:
    """``pid`` and all its descendants, deepest first (children are signalled before their parents)."""
    tree: List[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(child for child in _children(current, proc_root) if child not in tree)
    return list(reversed(tree))


class Deadline:
    """SIGTERM to a command and its descendants at ``seconds``, SIGKILL ``kill_after`` seconds later."""

    def __init__(self, *, seconds: float, kill_after: float) -> None:
        self.seconds = seconds
        self.kill_after = kill_after
        self.fired: Optional[int] = None
        self._proc: Any = None
        self._timers: List[threading.Timer] = []
        self._lock = threading.Lock()

    def arm(self, proc: Any) -> None:
        """run_command's before_communicate_callback: ``proc`` is the subprocess.Popen just started."""
        self._proc = proc
        for delay, sig in ((self.seconds, signal.SIGTERM), (self.seconds + self.kill_after, signal.SIGKILL)):
            timer = threading.Timer(delay, self._signal, (sig,))
            timer.daemon = True
            self._timers.append(timer)
            timer.start()

    def _signal(self, sig: int) -> None:
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                return
            self.fired = sig
            for pid in process_tree(proc.pid):
                try:
                    os.kill(pid, sig)
                except OSError:  # gone already
                    continue

    def disarm(self) -> None:
        with self._lock:
            for timer in self._timers:
                timer.cancel()
            self._proc = None


class Runner(PolicyRunner):
    """Runs commands through an AnsibleModule with a deadline, C locale and redaction."""

    def __init__(
        self,
        module: ModuleLike,
        *,
        default_timeout: float = DEFAULT_TIMEOUT,
        kill_after: float = DEFAULT_KILL_AFTER,
        redact: Iterable[str] = (),
    ) -> None:
        no_log_values = getattr(module, "no_log_values", None) or ()
        super().__init__(default_timeout=default_timeout, redact=list(redact) + [str(v) for v in no_log_values])
        format_seconds(kill_after)
        self.module = module
        self.kill_after = kill_after
        self._paths: Dict[str, Optional[str]] = {}

    def bin_path(self, name: str) -> str:
        """The absolute path of ``name``; the module fails cleanly if it is missing."""
        path = self._paths.get(name)
        if path is None:
            path = self.module.get_bin_path(name, required=True)
            if not path:  # a get_bin_path that returned instead of failing
                raise ToolError(f"required command {name!r} was not found", cmd=name, rc=127)
            self._paths[name] = path
        return path

    def has_tool(self, name: str) -> bool:
        """Whether ``name`` is installed (for optional tools such as multipathd)."""
        if name not in self._paths:
            self._paths[name] = self.module.get_bin_path(name, required=False) or None
        return self._paths[name] is not None

    def run(
        self,
        argv: Sequence[str],
        *,
        ok_rcs: Collection[int] = (0,),
        timeout: Optional[float] = None,
        data: Optional[str] = None,
        sensitive_output: bool = False,
    ) -> CommandResult:
        """Run ``argv`` and return its result, or raise ToolError/ToolTimeout.

        ``data`` is written to stdin exactly as given (no newline is appended).
        ``sensitive_output=True`` is for commands whose stdout may hold secrets the
        runner does not know (``iscsiadm -m node -S``): errors carry ``********``
        instead of stdout, and on success stdout is returned unredacted for the
        caller to parse and never store.
        """
        if not argv:
            raise InputError("empty command", option="argv", value=[])
        deadline = self.default_timeout if timeout is None else timeout
        tool = argv[0] if "/" in argv[0] else self.bin_path(argv[0])
        real_argv = [tool, *argv[1:]]
        format_seconds(deadline)  # refuses zero and negative deadlines
        watch = Deadline(seconds=deadline, kill_after=self.kill_after)
        started = self._profile.clock()
        try:
            rc, stdout, stderr = self.module.run_command(
                real_argv,
                check_rc=False,
                environ_update=dict(LOCALE_ENV),
                expand_user_and_vars=False,
                data=data,
                binary_data=True,
                errors="surrogate_then_replace",
                handle_exceptions=False,
                before_communicate_callback=watch.arm,
            )
        except OSError as exc:
            self._record(real_argv, started=started, rc=exc.errno or 1)
            secrets = self._secrets_for(real_argv)
            cmd = format_cmd(real_argv, secrets)
            raise ToolError(
                f"could not start command ({redact_text(str(exc), secrets)}): {cmd}",
                cmd=cmd,
                rc=exc.errno or 1,
            ) from None
        finally:
            watch.disarm()
        if watch.fired is not None:
            rc = 137 if watch.fired == signal.SIGKILL else 124
        return self._finish(
            display_argv=real_argv,
            rc=rc,
            stdout=stdout or "",
            stderr=stderr or "",
            ok_rcs=ok_rcs,
            timeout=deadline,
            sensitive_output=sensitive_output,
            started=started,
        )
