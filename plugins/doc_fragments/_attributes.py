# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# This doc fragment is PRIVATE to lunsafe.san: it may change without notice.

from __future__ import annotations


class ModuleDocFragment:
    # Standard documentation fragment
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
  diff_mode:
    description:
      - Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
      - This assumes that the system controlled/queried by the module has not changed in a relevant way.
"""

    # Should be used together with the standard fragment
    FACTS = r"""
options: {}
attributes:
  facts:
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
    support: full
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
"""

    # Should be used together with the standard fragment
    LOCK = r"""
options:
  lock_file:
    description:
      - Path of the host lock that serializes attach and detach work on this host.
      - The lock is taken both as a POSIX record lock and as a C(flock) lock, so it excludes other runs
        of this collection and OpenStack os-brick (oslo.concurrency) when pointed at its lock file,
        for example V(/var/lib/nova/tmp/os-brick-connect_volume).
    type: path
    default: /run/lock/lunsafe-san.lock
  lock_timeout:
    description:
      - Seconds to wait for the host lock before failing with the holder's PID and name.
    type: int
    default: 300
"""
