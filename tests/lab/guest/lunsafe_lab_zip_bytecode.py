# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lab guests only: a bytecode cache for modules imported from zip files.

Every Ansible task sends its module as a zip (AnsiballZ); Python's zipimport compiles each source in it on
every run and never writes bytecode. On a real host that costs a fraction of a second; on a TCG guest about
a second per task (measured 2026-12-06 on bookworm, 4 calls each: `command: true` 2.5 s a call, 1.6 s with
this cache; `iscsi_info` 3.0 s, 2.2 s; an `iscsi_lun_attach` with nothing to do 3.7 s, 2.6 s). With
``LUNSAFE_LAB_BYTECODE_CACHE=1`` the lab installs this file and a ``.pth`` line that imports it in the guest
(``lab.py up``), so that each source is compiled once and its code object reused, keyed by the source's
bytes and this Python's magic number: a changed source is compiled again. The module's code and behaviour
are the same; only the compile is skipped. The benchmarks boot guests without it, so their Ansible wall
times include the compile as on any host.
"""

import hashlib
import importlib.util
import marshal
import os
import stat
import zipimport

CACHE = "/var/cache/lunsafe-lab-zip-bytecode"


def _renamed(code, filename):
    consts = tuple(_renamed(c, filename) if isinstance(c, type(code)) else c for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def _trusted():
    """The cache directory, made if missing, only if this user owns it, it is no link and no one else can write
    it: another local user must not be able to feed us code."""
    try:
        os.makedirs(CACHE, mode=0o700, exist_ok=True)
        info = os.lstat(CACHE)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o022


def _install():
    original = getattr(zipimport, "_compile_source", None)
    if original is None or getattr(original, "lunsafe_lab", False):
        return

    def compile_source(pathname, source):
        if not _trusted():
            return original(pathname, source)
        key = hashlib.sha256(importlib.util.MAGIC_NUMBER + source).hexdigest()
        path = os.path.join(CACHE, key)
        try:
            with open(path, "rb") as handle:
                # our own marshal output, in a directory only we can write (_trusted)
                return _renamed(marshal.load(handle), pathname)  # noqa: S302
        except (OSError, EOFError, ValueError, TypeError, AttributeError):  # none yet, or not a code object
            pass
        code = original(pathname, source)
        try:
            scratch = f"{path}.{os.getpid()}"
            with open(scratch, "wb") as handle:
                marshal.dump(code, handle)
            os.replace(scratch, path)
        except OSError:
            pass
        return code

    compile_source.lunsafe_lab = True
    zipimport._compile_source = compile_source


_install()
