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
      - "The same rule in every module that takes it: outside check mode the lock is always taken (the
        file is created if needed). In check mode it is taken only when O(lock_file) exists (check mode
        creates no file), so the prediction is read while no other run of this collection changes the
        host; leases are neither waited on nor written in check mode."
      - "Who may affect the lock: the default lives in V(/run/lunsafe-san), created with mode 0700, so no other
        user can open, plant or replace anything there. The lock's directory is refused when its group or
        others may write it (a sticky V(/tmp) or V(/run/lock) included: anyone could create the lock, its lease or
        its journal first). The default lock's journal is C(/var/lib/lunsafe-san/lunsafe-san.lock.journal) (mode
        0700 directory, on disk: a reboot keeps it). The lock, its lease and its journal are opened without following
        links and must be regular files owned by root or by the directory's owner (the service user of os-brick's
        lock path), not writable by group or others; anything else is refused naming the file, its owner and its
        mode, and nothing is changed. A lock file that other users can open (os-brick's is often mode 0644) works,
        with a warning: any of them could flock it and block every run."
      - Files this collection creates there (the lock, the lease, the journal) get mode 0600.
    type: path
    default: /run/lunsafe-san/lunsafe-san.lock
  lock_timeout:
    description:
      - Seconds to wait for the host lock (and for another run's O(lock_lease)) before failing with the
        holder's PID and name, or the lease's id. V(0) tries once and does not wait; a negative or non-finite
        value is refused.
    type: float
    default: 300
  lock_lease:
    description:
      - Keep the host lock leased to a procedure across several tasks, so that no other run of this
        collection's modules on the host (attach, scan, flush) starts in between, for example from a
        host-side detach until the array has unmapped the LUN.
      - The lease is a small file beside O(lock_file) (C(<lock_file>.lease)) written and read under the lock.
        Runs with another lease id, or none, wait for it like for the lock itself (O(lock_timeout)).
      - Only this collection honours leases; OpenStack os-brick and C(flock) see the plain lock, which is
        free between tasks.
      - Check mode never writes or waits on a lease.
    type: dict
    suboptions:
      id:
        description:
          - The lease's name; every task of one procedure passes the same id. Printable text, at most 200
            characters.
        type: str
        required: true
      state:
        description:
          - V(held) writes or renews the lease for O(lock_lease.ttl) seconds when this run's work succeeded
            (a failed run leaves no new lease).
          - V(released) removes the lease when this run ends, whatever the outcome.
        type: str
        choices: [held, released]
        default: held
      ttl:
        description:
          - Seconds the lease lives after the run that wrote it, from 1 to 86400 (a day); V(0) or more than a day
            is refused. It never outlives a reboot. It bounds how long a play that died mid-procedure can block
            the host.
          - A lease file whose expiry lies further ahead than its own TTL, or whose TTL is outside that range, was
            not written by this collection and is not honoured.
        type: int
        default: 900
"""

    # the lock options of a module that only reads: accepted for module_defaults of the action group, not used
    LOCK_UNUSED = r"""
options:
  lock_file:
    description:
      - Accepted so that one C(module_defaults) entry for the action group C(group/lunsafe.san.lunsafe) can set
        the host lock of every module of the collection; this module reads only and never takes the lock.
    type: path
    default: /run/lunsafe-san/lunsafe-san.lock
  lock_timeout:
    description:
      - Accepted for C(group/lunsafe.san.lunsafe) C(module_defaults), like O(lock_file); not used.
    type: float
    default: 300
  lock_lease:
    description:
      - Accepted for C(group/lunsafe.san.lunsafe) C(module_defaults), like O(lock_file); not used.
    type: dict
    suboptions:
      id:
        description: Not used.
        type: str
        required: true
      state:
        description: Not used.
        type: str
        choices: [held, released]
        default: held
      ttl:
        description: Not used.
        type: int
        default: 900
"""
