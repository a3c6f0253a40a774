# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module_utils is PRIVATE and should only be used by this collection. Breaking changes can occur at any time.

"""Narrow exception classes shared by lunsafe.san.

Helpers in module_utils raise these; only a module's main() turns one into
module.fail_json(**exc.to_fail_kwargs()).  Every string an exception carries has
already been redacted by whoever built it (the runner masks CHAP secrets);
to_fail_kwargs(redact=...) can mask more on the way out.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

REDACTED = "********"

__all__ = [
    "REDACTED",
    "DaemonUnavailable",
    "InputError",
    "LockTimeout",
    "LunsafeError",
    "ParseError",
    "ToolError",
    "ToolTimeout",
    "UnsafeFile",
    "WaitTimeout",
    "redact_text",
]


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every non-empty secret replaced by ``********``.

    Longer secrets are replaced first so that a secret containing another one is
    masked as a whole.
    """
    result = text
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        result = result.replace(secret, REDACTED)
    return result


def _jsonable(value: Any) -> Any:
    """Turn an observation into something fail_json can serialise."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return _jsonable(to_dict())
    return repr(value)


def _redact_any(value: Any, secrets: Iterable[str]) -> Any:
    secrets = list(secrets)
    if not secrets:
        return value
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, dict):
        return {k: _redact_any(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_any(v, secrets) for v in value]
    return value


class LunsafeError(Exception):
    """Base class of every error this collection raises on purpose.

    ``msg`` is lower-case and actionable; ``details`` are extra keys for
    ``fail_json`` (``None`` values are left out).
    """

    def __init__(self, msg: str, **details: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details: Dict[str, Any] = details

    def to_fail_kwargs(self, *, redact: Iterable[str] = ()) -> Dict[str, Any]:
        """Keyword arguments for ``module.fail_json()``, secrets masked."""
        kwargs: Dict[str, Any] = {"msg": self.msg}
        for key, value in self.details.items():
            if value is not None:
                kwargs[key] = _jsonable(value)
        return _redact_any(kwargs, redact)


class InputError(LunsafeError, ValueError):
    """A value given by the user (or a caller) is invalid: nothing was run."""

    def __init__(self, msg: str, *, option: Optional[str] = None, value: Any = None) -> None:
        super().__init__(msg, option=option, value=value)
        self.option = option
        self.value = value


class ParseError(LunsafeError, ValueError):
    """A tool printed something that cannot be understood."""

    def __init__(self, msg: str, *, text: Optional[str] = None) -> None:
        super().__init__(msg, text=text)
        self.text = text


class ToolError(LunsafeError):
    """A command ended with a return code outside its accepted set.

    ``cmd``, ``stdout`` and ``stderr`` are already redacted.
    """

    def __init__(
        self,
        msg: str,
        *,
        cmd: str,
        rc: int,
        stdout: str = "",
        stderr: str = "",
        **details: Any,
    ) -> None:
        super().__init__(msg, cmd=cmd, rc=rc, stdout=stdout, stderr=stderr, **details)
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr


class ToolTimeout(ToolError):
    """A command did not finish before its deadline and was killed."""

    def __init__(
        self,
        msg: str,
        *,
        cmd: str,
        rc: int,
        timeout: float,
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        super().__init__(msg, cmd=cmd, rc=rc, stdout=stdout, stderr=stderr, timeout=timeout)
        self.timeout = timeout


class DaemonUnavailable(ToolError):
    """A daemon (multipathd, iscsid) is not running or does not answer."""


class LockTimeout(LunsafeError):
    """The host lock could not be taken before the deadline."""

    def __init__(self, msg: str, *, lock_file: str, timeout: float, holder: Optional[str] = None) -> None:
        super().__init__(msg, lock_file=lock_file, timeout=timeout, holder=holder)
        self.lock_file = lock_file
        self.timeout = timeout
        self.holder = holder


class UnsafeFile(LunsafeError):
    """A file beside the host lock (the lock, its lease or journal, or their directory) that someone other than
    root (or the lock directory's owner) could have written or planted: not used, nothing changed."""

    def __init__(self, msg: str, *, path: str, owner: Optional[str] = None, mode: Optional[str] = None) -> None:
        # one key: fail_json would take a top-level 'path' for a file of its own and stat it
        super().__init__(msg, unsafe_file={"path": path, "owner": owner, "mode": mode})
        self.path = path
        self.owner = owner
        self.mode = mode


class WaitTimeout(LunsafeError):
    """A condition did not become true before the deadline.

    ``last_observed`` is what the last poll returned (or the last error it
    raised), so that the failure says what the host looked like.
    """

    def __init__(self, msg: str, *, waited_for: str, timeout: float, last_observed: Any = None) -> None:
        super().__init__(msg, waited_for=waited_for, timeout=timeout, last_observed=last_observed)
        self.waited_for = waited_for
        self.timeout = timeout
        self.last_observed = last_observed
