# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lab-guest driver: OpenStack's os-brick as a neighbour on the lab host (issue 12).

Runs os-brick's iSCSI connector (or, with --target-wwn, its FibreChannelConnector) in this process, as root,
the way a Nova or Cinder host uses it: multipath on, an external lock in a lock directory, no privsep daemon
(privsep's client mode is off, so each privileged call runs right here). Debian bookworm's python3-os-brick
(6.1) is in the lab image; this file is copied to /usr/local/lib/lunsafe-lab/osbrick.py at each boot
and run with /usr/bin/python3. It only ever runs inside the throwaway lab VM.

    osbrick.py [--lock-path DIR] connect --portal P [--portal P2] --iqn IQN [--iqn IQN2] --lun N
    osbrick.py [--lock-path DIR] disconnect --portal P ... --iqn IQN ... --lun N
                                 [--device-info JSON | --path DEV] [--force] [--ignore-errors]
    osbrick.py [--lock-path DIR] connect|disconnect --target-wwn WWPN [--target-wwn WWPN2] --lun N ...
                                 (Fibre Channel: target_wwn and target_lun, as a Cinder FC driver gives them)

os-brick serializes connect_volume and disconnect_volume on <lock-path>/os-brick-connect_volume (a POSIX
record lock through oslo.concurrency and fasteners); point lunsafe.san's lock_file at that file and the two
exclude each other. Every command os-brick runs is counted (``commands``, ``command_names`` in the result:
tool and first two words). Each run prints one JSON line on stdout; a failure prints {"error": ...} and exits 1.
`--hold-lock S` stays up to S seconds longer inside os-brick's locked section after its work, or until the
file given by `--release-file` appears (the driver removes it when it starts): a test hook, so that a test
can meet os-brick while it holds its own lock. The lock itself is taken and released by os-brick.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

DEFAULT_LOCK_PATH = "/var/lib/lunsafe-lab/os-brick"
LOCK_NAME = "os-brick-connect_volume"


class DriverError(Exception):
    pass


class JsonArgumentParser(argparse.ArgumentParser):
    """Bad arguments are reported like every other failure: one JSON line, exit 1."""

    def error(self, message):
        emit({"error": f"bad arguments: {message}", "type": "usage"})
        sys.exit(1)


def emit(document):
    sys.stdout.write(json.dumps(document, sort_keys=True) + "\n")
    sys.stdout.flush()


class WarningCollector(logging.Handler):
    """os-brick logs what it swallows (ignore_errors, leftovers) as warnings: keep them for the result."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        try:
            self.messages.append(f"{record.name}: {record.getMessage()}")
        except Exception:  # a log record must never break the driver
            self.messages.append(f"{record.name}: {record.msg!r}")


def normalize_portal(portal):
    """os-brick compares portals with `iscsiadm -m session` output, which always carries the port."""
    portal = portal.strip()
    if portal.startswith("["):
        return portal if "]:" in portal else portal + ":3260"
    if portal.count(":") > 1:  # a bare IPv6 address
        return f"[{portal}]:3260"
    return portal if ":" in portal else portal + ":3260"


def connection_properties(args):
    """The dict a Cinder driver hands to Nova for a multipath iSCSI volume (singular keys = first path), or for
    an FC volume with --target-wwn (target WWPNs without 0x, no initiator_target_map: every HBA is used)."""
    if args.target_wwn:
        if args.portal or args.iqn:
            raise DriverError("give --target-wwn (FC) or --portal/--iqn (iSCSI), not both")
        wwns = [w.strip().lower().removeprefix("0x").replace(":", "") for w in args.target_wwn]
        return {"target_discovered": False, "target_wwn": wwns, "target_lun": args.lun}
    if not args.portal or not args.iqn:
        raise DriverError("iSCSI needs --portal and --iqn (or give --target-wwn for FC)")
    portals = [normalize_portal(p) for p in args.portal]
    if len(args.iqn) == 1:
        iqns = args.iqn * len(portals)
    elif len(args.iqn) == len(portals):
        iqns = list(args.iqn)
    else:
        raise DriverError(f"give one --iqn for all portals or one per portal ({len(portals)}), got {len(args.iqn)}")
    return {
        "target_discovered": False,
        "target_portal": portals[0],
        "target_iqn": iqns[0],
        "target_lun": args.lun,
        "target_portals": portals,
        "target_iqns": iqns,
        "target_luns": [args.lun] * len(portals),
    }


def load_os_brick(lock_path):
    """Import os-brick and configure it for in-process use as root; returns (connector factory, seconds)."""
    start = time.monotonic()
    # imported here: the import takes seconds under emulation and is timed
    import os_brick  # noqa: PLC0415
    import os_brick.privileged  # noqa: PLC0415
    from os_brick.initiator import connector  # noqa: PLC0415
    from oslo_concurrency import lockutils  # noqa: PLC0415
    from oslo_config import cfg  # noqa: PLC0415

    cfg.CONF([], project="lunsafe-lab-osbrick", default_config_files=[], default_config_dirs=[])
    # privsep: no daemon; every privileged entrypoint runs in this (root) process
    os_brick.privileged.default.set_client_mode(False)
    # oslo.concurrency's lock_path is the default of [os_brick] lock_path, filled in by os_brick.setup()
    lockutils.set_defaults(lock_path)
    os_brick.setup(cfg.CONF)
    if cfg.CONF.os_brick.lock_path != lock_path:
        raise DriverError(f"os-brick lock_path is {cfg.CONF.os_brick.lock_path!r}, expected {lock_path!r}")
    return connector.InitiatorConnector.factory, time.monotonic() - start


class CommandCount:
    """Counts the commands os-brick runs: with privsep's client mode off, each ends in oslo.concurrency's
    ``processutils.execute``, which os-brick's ``rootwrap.custom_execute`` calls through the module attribute
    (``putils.execute``), so replacing that attribute sees every one. Keeps the tool and its first two words
    (no secrets in the lab: no CHAP)."""

    def __init__(self):
        from oslo_concurrency import processutils  # noqa: PLC0415 - imported with os-brick, after it

        self.names = []
        self._module = processutils
        self._original = processutils.execute
        processutils.execute = self

    def __call__(self, *cmd, **kwargs):
        self.names.append(" ".join(str(word) for word in cmd[:3]))
        return self._original(*cmd, **kwargs)

    def stop(self):
        self._module.execute = self._original


class LockedWork:
    """Wraps the connector method os-brick calls inside its connect_volume lock: records when the work under
    the lock started and ended (wall clock, comparable across processes) and optionally lingers there."""

    def __init__(self, method, hold, release_file=None):
        self.method = method
        self.hold = hold
        self.release_file = release_file
        self.held = 0.0
        self.started = None
        self.ended = None

    def linger(self):
        start = time.monotonic()
        while time.monotonic() - start < self.hold:
            if self.release_file and os.path.exists(self.release_file):
                break
            time.sleep(0.05)
        self.held = time.monotonic() - start

    def __call__(self, *args, **kwargs):
        self.started = time.time()
        try:
            return self.method(*args, **kwargs)
        finally:
            if self.hold > 0:
                self.linger()
            self.ended = time.time()

    def report(self, called):
        if self.started is None:
            return None
        return {
            "work_started": round(self.started, 3),
            "work_ended": round(self.ended, 3) if self.ended else None,
            "waited": round(self.started - called, 3),
            "held_for_test": round(self.held, 3),
        }


def parse_device_info(args):
    if args.device_info:
        try:
            info = json.loads(args.device_info)
        except ValueError as exc:
            raise DriverError(f"--device-info is not JSON: {exc}") from None
        if not isinstance(info, dict):
            raise DriverError("--device-info must be a JSON object")
        # a whole `connect` result is accepted as well as its device_info
        nested = info.get("device_info")
        return nested if isinstance(nested, dict) else info
    if args.path:
        return {"type": "block", "path": args.path}
    return {}


def run(args, warnings):
    if os.geteuid() != 0:
        raise DriverError("os-brick runs in-process here and needs root")
    os.makedirs(args.lock_path, mode=0o755, exist_ok=True)
    if args.release_file and os.path.exists(args.release_file):
        os.unlink(args.release_file)
    props = connection_properties(args)
    fc = "target_wwn" in props
    if fc and args.hold_lock:
        raise DriverError("--hold-lock is only wired for the iSCSI connector")
    factory, import_seconds = load_os_brick(args.lock_path)
    brick = factory(
        "FIBRE_CHANNEL" if fc else "ISCSI",
        root_helper="sudo",  # never used: privsep's client mode is off
        use_multipath=True,
        device_scan_attempts=args.scan_attempts,
    )
    result = {
        "pid": os.getpid(),
        "lock_file": os.path.join(args.lock_path, LOCK_NAME),
        "import_seconds": round(import_seconds, 3),
        "connection_properties": props,
    }
    commands = CommandCount()
    called = time.time()
    start = time.monotonic()
    work = None
    if args.command == "connect":
        if not fc:
            work = LockedWork(brick._connect_multipath_volume, args.hold_lock, args.release_file)
            brick._connect_multipath_volume = work
        device_info = brick.connect_volume(props)
        result.update(
            device_info=device_info,
            path=device_info.get("path"),
            scsi_wwn=device_info.get("scsi_wwn"),
            multipath_id=device_info.get("multipath_id"),
        )
    else:
        if not fc:
            work = LockedWork(brick._cleanup_connection, args.hold_lock, args.release_file)
            brick._cleanup_connection = work
        brick.disconnect_volume(props, parse_device_info(args), force=args.force, ignore_errors=args.ignore_errors)
    result.update(seconds=round(time.monotonic() - start, 3), error=None, lock=work.report(called) if work else None)
    commands.stop()
    result.update(commands=len(commands.names), command_names=commands.names)
    result["warnings"] = warnings.messages
    return result


def build_parser():
    parser = JsonArgumentParser(prog="osbrick.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--lock-path", default=DEFAULT_LOCK_PATH, help="os-brick's (and oslo.concurrency's) lock_path")
    parser.add_argument("--scan-attempts", type=int, default=3, help="os-brick's device_scan_attempts")
    parser.add_argument(
        "--hold-lock",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="stay up to this long inside os-brick's locked section after the work (test hook)",
    )
    parser.add_argument("--release-file", metavar="FILE", help="end --hold-lock early once FILE exists")
    parser.add_argument("-v", "--verbose", action="store_true", help="os-brick's debug log on stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("connect", "disconnect"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--portal", action="append", help="iSCSI: ADDRESS[:PORT], once per path")
        cmd.add_argument("--iqn", action="append", help="iSCSI target name: one for all, or one per portal")
        cmd.add_argument("--target-wwn", action="append", help="FC: a target port WWPN, once per target port")
        cmd.add_argument("--lun", type=int, required=True)
        if name == "disconnect":
            given = cmd.add_mutually_exclusive_group()
            given.add_argument("--device-info", help="connect's device_info (or its whole JSON result)")
            given.add_argument("--path", help="the device connect returned (e.g. /dev/dm-0)")
            cmd.add_argument("--force", action="store_true")
            cmd.add_argument("--ignore-errors", action="store_true")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    warnings = WarningCollector()
    logging.getLogger().addHandler(warnings)
    start = time.monotonic()
    try:
        emit(run(args, warnings))
    except Exception as exc:  # every failure becomes one JSON line
        emit(
            {
                "error": f"{type(exc).__name__}: {exc}",
                "type": type(exc).__name__,
                "pid": os.getpid(),
                "seconds": round(time.monotonic() - start, 3),
                "warnings": warnings.messages,
            }
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
