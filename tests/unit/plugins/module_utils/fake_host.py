# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fake host for the attach/detach procedure: an array, iscsid, the SCSI midlayer and multipathd as data.

The state (node records, sessions, devices, maps) is plain data; the fake sysfs tree is rebuilt from it
after every change, so the procedure reads it through the real ``_sysfs`` reader. Commands may come from
several threads (the logins of a run go side by side): the fake answers one at a time, and a portal's login
or logout can take real time outside that lock (``delays``, ``logout_delays``) or never answer (``silent``:
the runner's deadline ends it, rc 124). With ``parallel=1`` (the default) the host runs one login at a time,
so session and host numbers follow the order of the paths as the tests expect them. The host's one sysfs
writer is :meth:`FakeHost.write`: a scan line adds the LUN's device on that session if the array presents
it there, a delete removes a device, anything else fails like the kernel. iscsiadm, multipathd, multipath
and dmsetup answer from the same state (:meth:`FakeHost.run`), and every call is recorded.

    fake = FakeHost(tmp_path, luns={IQN: {1: WWID1, 2: WWID2}}, portals={"127.0.0.1:3260": IQN})
    outcome = attach(fake.host(), request, check=False, timings={})
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable, Collection, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.lunsafe.san.plugins.module_utils._host import Host
from ansible_collections.lunsafe.san.plugins.module_utils._multipath import FIELD_SEP
from ansible_collections.lunsafe.san.plugins.module_utils._profile import Profile
from ansible_collections.lunsafe.san.plugins.module_utils._runner import CommandResult, PolicyRunner
from ansible_collections.lunsafe.san.tests.unit.plugins.module_utils.sysfs_tree import build_sysfs

IQN = "iqn.2003-01.org.lunsafe.lab:array"
IQN_B = "iqn.2003-01.org.lunsafe.lab:array.b"
SIZE = 2097152  # sectors
SCSI_ID = "/lib/udev/scsi_id"


def wwid_of(lun: int, *, generation: int = 0) -> str:
    """A LIO-like WWID (multipath spelling) per LUN number and backstore generation."""
    return f"36001405{generation:02x}{lun:06x}" + "a" * 17


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.on_sleep: List[Callable[[], None]] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        for hook in self.on_sleep:
            hook()


@dataclasses.dataclass
class FakeHost:
    """The host and the array. ``luns``: target -> {LUN: WWID} presented to this initiator; ``portals``: portal
    (``address:port``) -> the target names it offers; ``down``: portals that do not answer."""

    tmp_path: Path
    luns: Dict[str, Dict[int, str]]
    portals: Dict[str, Collection[str]]
    down: List[str] = dataclasses.field(default_factory=list)
    auto_map: bool = True  # multipathd builds a map as soon as a WWID has a device
    multipathd: bool = True
    map_on_add: bool = True  # ... or when it is handed the path (multipathd add path)
    map_every: Optional[float] = None  # ... or one map after the other, this many seconds apart
    nodes: Dict[Tuple[str, str], Dict[str, str]] = dataclasses.field(default_factory=dict)
    sessions: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    devices: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    maps: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    discovery: List[str] = dataclasses.field(default_factory=list)
    mounts: List[str] = dataclasses.field(default_factory=list)  # names of mounted block devices
    open_counts: Dict[str, int] = dataclasses.field(default_factory=dict)  # map name -> open count
    stuck: List[str] = dataclasses.field(default_factory=list)  # devices whose delete the kernel fails (EIO)
    writes: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
    clock: FakeClock = dataclasses.field(default_factory=FakeClock)
    resolve: Dict[str, List[str]] = dataclasses.field(default_factory=lambda: {"localhost": ["127.0.0.1", "::1"]})
    hosts: List[Dict[str, Any]] = dataclasses.field(default_factory=list)  # SCSI hosts without a session (FC)
    parallel: int = 1  # the host's bound on logins (logouts) at once; 1 keeps session numbers in path order
    delays: Dict[str, float] = dataclasses.field(default_factory=dict)  # portal -> real seconds a login takes
    logout_delays: Dict[str, float] = dataclasses.field(default_factory=dict)  # ... and a logout
    silent: List[str] = dataclasses.field(default_factory=list)  # portals whose login/logout the deadline ends
    # portals whose logins all start before any answers, then answer in this order (whatever the machine's load)
    login_order: List[str] = dataclasses.field(default_factory=list)
    refuse: Dict[str, int] = dataclasses.field(default_factory=dict)  # portal -> the rc its logins fail with

    def __post_init__(self) -> None:
        self.tmp_path.mkdir(parents=True, exist_ok=True)
        self.runner = _Runner(self)
        self._next_sid = 1
        self._next_host = 2
        self._next_sd = 0
        self._next_dm = 0
        self._scheduled: List[Tuple[float, str]] = []  # (when, WWID) of maps multipathd is working towards
        self.clock.on_sleep.append(self._tick)
        self.rebuild()

    # -- the world as data -----------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return self.tmp_path / "sys"

    def rebuild(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        build_sysfs(self.tmp_path, hosts=self.hosts, sessions=self.sessions, devices=self.devices, maps=self.maps)
        devts = {d["name"]: f"8:{16 * i}" for i, d in enumerate(self.devices)}
        for device in self.devices:
            if device["name"] is None:  # a LUN being probed: no block device yet
                continue
            dev_file = self.root / "class" / "block" / device["name"] / "dev"
            dev_file.write_text(devts[device["name"]] + "\n", encoding="utf-8")
        for dm_map in self.maps:
            (self.root / "class" / "block" / dm_map["dm"] / "dev").write_text(
                f"254:{dm_map['dm'][3:]}\n", encoding="utf-8"
            )
        lines = []
        for index, name in enumerate(self.mounts):
            if not (self.root / "class" / "block" / name).exists():
                continue  # deleted under its mount (force): the kernel keeps the mount, we drop the line
            devt = (self.root / "class" / "block" / name / "dev").read_text(encoding="utf-8").strip()
            lines.append(f"{40 + index} 1 {devt} / /mnt/{name} rw,relatime shared:1 - ext4 /dev/{name} rw")
        (self.tmp_path / "mountinfo").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def host(self) -> Host:
        proc = self.tmp_path / "proc"
        proc.mkdir(exist_ok=True)
        return Host(
            runner=self.runner,
            sysfs_root=str(self.root),
            proc_root=str(proc),
            mountinfo_path=str(self.tmp_path / "mountinfo"),
            wwids_file=str(self.tmp_path / "wwids"),
            writer=self.write,
            clock=self.clock,
            sleep=self.clock.sleep,
            resolver=self._resolve,
            scsi_id=SCSI_ID,
            connect=self._connect,
            parallel=self.parallel,
        )

    def _connect(self, address: str, port: int, _timeout: float) -> bool:
        portal = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        return portal in self.portals and portal not in self.down and portal not in self.silent

    def _resolve(self, name: str) -> List[str]:
        if name not in self.resolve:
            raise OSError(-2, "Name or service not known")
        return self.resolve[name]

    def login(self, target: str, portal: str, *, state: str = "LOGGED_IN") -> Dict[str, Any]:
        address, _sep, port = portal.rpartition(":")
        session = {
            "sid": self._next_sid,
            "host": self._next_host,
            "targetname": target,
            "address": address.strip("[]"),
            "port": int(port),
            "state": state,
        }
        self._next_sid += 1
        self._next_host += 1
        self.sessions.append(session)
        self.rebuild()
        return session

    def attach_device(self, session: Mapping[str, Any], lun: int, wwid: Optional[str] = None) -> Dict[str, Any]:
        """A device on a session, as a scan (or an earlier run) leaves it."""
        wwid = wwid or self.luns[session["targetname"]][lun]
        name = "sd" + chr(ord("a") + self._next_sd)
        self._next_sd += 1
        device = {
            "hctl": f"{session['host']}:0:0:{lun}",
            "sid": session["sid"],
            "name": name,
            "wwid": "naa." + wwid[1:],
            "size": SIZE,
        }
        self.devices.append(device)
        if self.auto_map:
            self._map_for(wwid)
        elif self.map_every is not None and wwid not in [w for _when, w in self._scheduled]:
            last = max([self.clock.now] + [when for when, _w in self._scheduled])
            self._scheduled.append((last + self.map_every, wwid))
        self.rebuild()
        return device

    def _tick(self) -> None:
        due = [wwid for when, wwid in self._scheduled if when <= self.clock.now]
        if due:
            self._scheduled = [(when, wwid) for when, wwid in self._scheduled if wwid not in due]
            for wwid in due:
                self._map_for(wwid)
            self.rebuild()

    def _map_for(self, wwid: str) -> None:
        slaves = [d["name"] for d in self.devices if d["wwid"] == "naa." + wwid[1:]]
        if not slaves:  # the paths are gone already: multipathd builds nothing
            return
        for dm_map in self.maps:
            if dm_map["uuid"] == f"mpath-{wwid}":
                dm_map["slaves"] = slaves
                return
        self.maps.append(
            {
                "dm": f"dm-{self._next_dm}",
                "name": f"mpath{chr(ord('a') + self._next_dm)}",
                "uuid": f"mpath-{wwid}",
                "slaves": slaves,
            }
        )
        self._next_dm += 1

    # -- the host's sysfs writer -----------------------------------------------------------------------

    def write(self, path: str, text: str) -> None:
        self.writes.append((path[len(str(self.root)) :], text))
        parts = Path(path).relative_to(self.root).parts
        if parts[:2] == ("class", "scsi_host") and parts[3] == "scan":
            host = int(parts[2][4:])
            channel, target, lun = (int(x) for x in text.split())
            session = next(s for s in self.sessions if s["host"] == host)
            presented = self.luns.get(session["targetname"], {})
            address = f"{session['host']}:{channel}:{target}:{lun}"
            if lun in presented and not any(d["hctl"] == address for d in self.devices):
                self.attach_device(session, lun)
            return
        if parts[:2] == ("class", "scsi_device") and parts[-2:] in (("device", "state"), ("device", "rescan")):
            device = next((d for d in self.devices if d["hctl"] == parts[2]), None)
            if device is None:
                raise FileNotFoundError(2, "No such file or directory", path)
            if parts[-1] == "state":
                # as the kernel's store_state_field: a state name followed by its newline, running or offline
                if text not in ("running\n", "offline\n"):
                    raise OSError(22, "Invalid argument", path)
                device["state"] = text.strip()
                self.rebuild()
            return
        if parts[:2] == ("class", "scsi_device") and parts[-1] == "delete":
            hctl = parts[2]
            device = next((d for d in self.devices if d["hctl"] == hctl), None)
            if device is None:
                raise FileNotFoundError(2, "No such file or directory", path)
            if device["name"] in self.stuck:
                raise OSError(5, "Input/output error", path)
            if any(device["name"] in m["slaves"] for m in self.maps):
                # the kernel deletes it; multipathd drops it from its map
                for dm_map in self.maps:
                    if device["name"] in dm_map["slaves"]:
                        dm_map["slaves"] = [s for s in dm_map["slaves"] if s != device["name"]]
            self.devices.remove(device)
            self.rebuild()
            return
        raise OSError(22, "Invalid argument", path)

    # -- iscsiadm, multipathd, dmsetup -----------------------------------------------------------------

    def answer(self, command: Sequence[str]) -> Tuple[int, str, str]:  # noqa: PLR0911 (a dispatcher)
        argv = list(command)
        tool = argv[0]
        if tool == SCSI_ID:  # a fresh INQUIRY: what the array presents at the device's LUN now
            name = argv[-1][len("--device=/dev/") :]
            device = next((d for d in self.devices if d["name"] == name), None)
            if device is None:
                return 1, "", ""
            session = next(s for s in self.sessions if s["sid"] == device["sid"])
            now = self.luns.get(session["targetname"], {}).get(int(device["hctl"].split(":")[3]))
            return (0, now + "\n", "") if now else (1, "", "")
        if tool == "iscsiadm":
            return self._iscsiadm(argv)
        if tool == "multipathd":
            if not self.multipathd:
                return 1, "", "ux_socket_connect: Connection refused\n"
            if argv[1:3] == ["show", "status"]:
                return 0, "path checker states:\nup 2\n", ""
            if argv[1:3] == ["show", "paths"]:
                return 0, "", ""  # the format query: no path listed (dropped at once)
            if argv[1:3] == ["add", "path"] and self.map_on_add:
                device = next((d for d in self.devices if d["name"] == argv[3]), None)
                if device is not None:
                    self._map_for("3" + device["wwid"][len("naa.") :])
                    self.rebuild()
            return 0, "ok\n", ""
        if tool == "multipath" and argv[1] == "-a":
            return 0, f"wwid '{argv[2]}' added\n", ""
        if tool == "multipath" and argv[1] == "-f":
            self.maps = [m for m in self.maps if m["name"] != argv[2]]
            self.rebuild()
            return 0, "", ""
        if tool == "dmsetup":
            return self._dmsetup(argv)
        return 127, "", f"{tool}: not found\n"

    def _dmsetup(self, argv: List[str]) -> Tuple[int, str, str]:
        uuid = argv[-1]
        dm_map = next((m for m in self.maps if m["uuid"] == uuid), None)
        if dm_map is None:
            return 1, "", "Device does not exist.\n"
        if argv[1] == "info":
            count = self.open_counts.get(dm_map["name"], 0)
            return 0, FIELD_SEP.join([dm_map["name"], uuid, str(count)]) + "\n", ""
        if argv[1] == "table":
            return 0, "0 2097152 multipath 0 1 alua 1 1 service-time 0 2 2 8:16 1 1 8:32 1 1\n", ""
        return 0, "0 2097152 multipath 2 0 0 0 1 1 A 0 2 2 8:16 A 0 0 1 8:32 A 0 0 1\n", ""

    def _iscsiadm(self, argv: List[str]) -> Tuple[int, str, str]:  # noqa: PLR0911, PLR0912 (a dispatcher)
        def opt(flag: str) -> Optional[str]:
            return argv[argv.index(flag) + 1] if flag in argv else None

        mode, target, portal = opt("-m"), opt("-T"), opt("-p")
        if mode == "discovery":  # the SendTargets probe after a failed login
            if portal in self.down or portal in self.silent or portal not in self.portals:
                return 4, "", "iscsiadm: connection refused\n"
            return 0, "".join(f"{portal},1 {t}\n" for t in self.portals[portal]), ""
        if mode == "discoverydb":
            if "--discover" in argv:
                assert portal is not None
                for name in self.portals.get(portal, ()):
                    self.nodes.setdefault((name, portal), {"node.session.scan": "auto"})
                return 0, "".join(f"{portal},1 {t}\n" for t in self.portals.get(portal, ())), ""
            if opt("-o") == "new":
                self.discovery.append(portal or "")
            if opt("-o") == "delete":
                self.discovery.remove(portal or "")
            if len(argv) == 3:
                return (
                    (0, "".join(f"{p} via sendtargets\n" for p in self.discovery), "")
                    if self.discovery
                    else (21, "", "")
                )
            return 0, "", ""
        if mode == "node" and target is None:
            if not self.nodes:
                return 21, "", "iscsiadm: No records found\n"
            return 0, "".join(f"{p},1 {t}\n" for (t, p) in self.nodes), ""
        if mode == "node":
            assert target is not None and portal is not None
            key = (target, portal)
            if "--login" in argv:
                return self._login(target, portal)
            if "--logout" in argv:
                before = len(self.sessions)
                gone = {s["sid"] for s in self.sessions if self._is(s, target, portal)}
                self.sessions = [s for s in self.sessions if s["sid"] not in gone]
                self.devices = [d for d in self.devices if d.get("sid") not in gone]  # the kernel removes them
                self.rebuild()
                return (0, "", "") if len(self.sessions) < before else (21, "", "")
            op = opt("-o")
            if op == "show":
                if key not in self.nodes:
                    return 21, "", "iscsiadm: No records found\n"
                return 0, "".join(f"{k} = {v}\n" for k, v in sorted(self.nodes[key].items())), ""
            if op == "new":
                self.nodes[key] = {}
                return 0, "", ""
            if op == "update":  # every -n/-v pair, written at once (as iscsiadm's user_param list)
                names = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "-n"]
                values = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "-v"]
                assert names and len(names) == len(values), argv
                self.nodes[key].update(zip(names, values))
                return 0, "", ""
            if op == "delete":
                return (0, "", "") if self.nodes.pop(key, None) is not None else (21, "", "")
        return 22, "", f"unexpected iscsiadm call {argv}"

    @staticmethod
    def _is(session: Mapping[str, Any], target: str, portal: str) -> bool:
        address = f"[{session['address']}]" if ":" in session["address"] else session["address"]
        return session["targetname"] == target and f"{address}:{session['port']}" == portal

    def _login(self, target: str, portal: str) -> Tuple[int, str, str]:
        if any(self._is(s, target, portal) for s in self.sessions):
            return 15, "", "iscsiadm: default: 1 session requested, but 1 already present.\n"
        if portal in self.down:
            return 8, "", "iscsiadm: Could not login to [iface: default, target: x, portal: y].\n"
        if portal in self.refuse:
            return self.refuse[portal], "", "iscsiadm: Could not login to [iface: default, target: x, portal: y].\n"
        if target not in self.portals.get(portal, ()):
            return 19, "", "iscsiadm: initiator reported error (19 - encountered non-retryable iSCSI login failure)\n"
        address, _sep, port = portal.rpartition(":")
        self.login(target, f"{address}:{port}")
        return 0, "Login to [...] successful.\n", ""

    @property
    def calls(self) -> List[List[str]]:
        return [list(call) for call in self.runner.calls]


class _Runner(PolicyRunner):
    """The CommandRunner of the fake host: answers from the fake's state, records every argv."""

    def __init__(self, fake: FakeHost) -> None:
        super().__init__(default_timeout=60, redact=())
        self.fake = fake
        self.calls: List[Tuple[str, ...]] = []
        self.deadlines: List[Tuple[Tuple[str, ...], float]] = []  # (argv, timeout) of every call
        self.busy = 0  # commands running now
        self.most_busy = 0  # the most commands that ran at once
        self._lock = threading.Lock()
        self._turns = threading.Condition()  # login_order: who has started, who has answered
        self._started: List[str] = []
        self._answered: List[str] = []

    def has_tool(self, name: str) -> bool:
        return name != "multipathd" or self.fake.multipathd

    def _wait_for_turn(self, portal: str) -> None:
        """A login of ``login_order``: until every one of them has started and those before it have answered."""
        order = self.fake.login_order
        with self._turns:
            self._started.append(portal)
            self._turns.notify_all()
            if not self._turns.wait_for(
                lambda: set(self._started) >= set(order) and self._answered == order[: order.index(portal)],
                timeout=30,
            ):
                raise AssertionError(f"the login of {portal} waited 30 s for its turn in {order}: {self._started}")

    def restart_profile(self) -> None:
        """A new, empty profile on the fake clock: what a module run of its own would start with."""
        self._profile = Profile(clock=self.fake.clock)

    def run(
        self,
        argv: Sequence[str],
        *,
        ok_rcs: Collection[int] = (0,),
        timeout: Optional[float] = None,
        data: Optional[str] = None,
        sensitive_output: bool = False,
    ) -> CommandResult:
        plain = tuple(str(a) for a in argv)
        deadline = 60.0 if timeout is None else timeout
        portal = plain[plain.index("-p") + 1] if "-p" in plain else None
        delays = self.fake.delays if "--login" in plain else self.fake.logout_delays
        session_call = plain[0] == "iscsiadm" and ("--login" in plain or "--logout" in plain)
        with self._lock:
            self.calls.append(plain)
            self.deadlines.append((plain, deadline))
            self.busy += 1
            self.most_busy = max(self.most_busy, self.busy)
        ordered = "--login" in plain and portal in self.fake.login_order
        try:
            if session_call and portal is not None:
                time.sleep(delays.get(portal, 0.0))  # the login's own time: other threads go on
            if ordered:
                self._wait_for_turn(str(portal))
            if session_call and portal in self.fake.silent:
                rc, out, err = 124, "", ""  # the runner's deadline killed it
            else:
                with self._lock:
                    rc, out, err = self.fake.answer(plain)
            if ordered:
                with self._turns:
                    self._answered.append(str(portal))
                    self._turns.notify_all()
        finally:
            with self._lock:
                self.busy -= 1
        return self._finish(
            display_argv=argv,
            rc=rc,
            stdout=out,
            stderr=err,
            ok_rcs=ok_rcs,
            timeout=deadline,
            sensitive_output=sensitive_output,
        )
