# Copyright: lunsafe.san contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lunsafe.san lab: a throwaway qemu VM with a real kernel, an LIO iSCSI target, open-iscsi,
multipathd and udev, reached over SSH like any fleet host.

    python3 tests/lab/lab.py build            build (or reuse) the cached guest image
    python3 tests/lab/lab.py up [--luns N] [--fc-luns N] [--segment listen|LAB]
                                              boot it, wait for SSH, provision the array (iSCSI, then FC
                                              over FCoE VN2VN: --fc-luns 0 boots without FC ports),
                                              write inventory; --segment: a private segment between two
                                              guests (a fleet: `listen` on the first, its name on the second)
    python3 tests/lab/lab.py fleet            write the fleet inventory (on the lab that joined a segment)
    python3 tests/lab/lab.py down             stop the VM by PID (idempotent)
    python3 tests/lab/lab.py ssh -- CMD...    run a command in the guest
    python3 tests/lab/lab.py array ARGS...    act as the array (labctl.py: setup, reset, map, unmap, reuse,
                                              portal, listen, target-b, status, and for FC fc-setup,
                                              fc-status, fc-map, fc-unmap, fc-reuse, fc-port,
                                              fc-dev-loss-tmo, fc-scan-mode)

Standard library only: it runs before any venv exists. The image is cached under
$LUNSAFE_LAB_CACHE (default ~/.cache/lunsafe-san/lab) in a folder named by the hash of the recipe;
per-VM state (overlay disk, PID, port, console log, inventory) lives in .lab/<name>/ in the checkout.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
GUEST_FILES = HERE / "guest"
BOOT_LIMIT = 1800.0  # seconds: the longest a boot may take even while the guest keeps printing
BYTECODE_HOOK = "lunsafe_lab_zip_bytecode"  # guest/lunsafe_lab_zip_bytecode.py, with LUNSAFE_LAB_BYTECODE_CACHE=1
SITE_DIR = "/usr/lib/python3/dist-packages"  # on every Debian suite's sys.path, whatever the Python version
GUEST_TOOLS = ("labctl.py", "osbrick.py", "fc_sysfs_dump.py")  # copied to /usr/local/lib/lunsafe-lab/ at each boot

# Everything that goes into the image. Changing any of it changes the cache key.
PACKAGES = [
    "systemd-sysv",
    "udev",
    "dbus",
    "linux-image-amd64",
    "openssh-server",
    "python3",
    "python3-pyudev",
    "open-iscsi",
    "multipath-tools",
    "targetcli-fb",
    "python3-rtslib-fb",
    "sg3-utils",
    "lsscsi",
    "iproute2",
    "kmod",
    "ifupdown",
    "isc-dhcp-client",
    "procps",
    "nftables",
    "lvm2",
    "e2fsprogs",
    "util-linux",
    "psmisc",
    "kpartx",
    # OpenStack's iSCSI connector (with oslo.*) as a neighbour on the host (issue 12): tests/lab/guest/osbrick.py
    "python3-os-brick",
]
#: Debian suites the lab builds guests of (issue 27): bookworm runs the whole lab suite; the others are the
#: older and the newer generation of kernel, open-iscsi, multipath-tools and Python a fleet also runs.
SUITES = ("bullseye", "bookworm", "trixie")
DEFAULT_SUITE = "bookworm"
IMAGE_SIZE = "3G"
RECIPE_VERSION = "4"  # bump when the build steps below change meaning

# Units that only cost boot time in a throwaway VM (udev settle waits, scrubbers, monitors).
KERNEL_ARGS = [
    "root=/dev/vda",
    "rw",
    "console=ttyS0",
    "net.ifnames=0",
    "quiet",
    "systemd.show_status=1",  # a line per unit on the console: how _wait_ssh sees a slow boot progress
    "systemd.mask=ifupdown-pre.service",
    "systemd.mask=e2scrub_reap.service",
    "systemd.mask=lvm2-monitor.service",
    "systemd.mask=apt-daily.timer",
    "systemd.mask=apt-daily-upgrade.timer",
    "systemd.mask=man-db.timer",
    "systemd.mask=fstrim.timer",
    "systemd.mask=e2scrub_all.timer",
]

MULTIPATH_CONF = """\
# lunsafe.san lab: a common fleet configuration (friendly names, maps only for LUNs with 2+ paths)
defaults {
    user_friendly_names yes
    find_multipaths yes
    polling_interval 2
    no_path_retry fail
}
blacklist {
    devnode "^vd[a-z]"
}
"""

INTERFACES = """\
auto lo
iface lo inet loopback
    up ip addr add 127.0.0.2/8 dev lo || true

# qemu user networking always gives the guest 10.0.2.15; a static address saves the DHCP wait at boot
auto eth0
iface eth0 inet static
    address 10.0.2.15/24
    gateway 10.0.2.2
"""

# Fibre Channel ports (FCoE VN2VN over a qemu hub inside this VM's own qemu process: no IP anywhere, no frame
# leaves the process). labctl.py finds each port by its MAC and gives it its role; fcoe derives the WWPN from the
# MAC (0x2000 + MAC), so initiators are 0x2000525400fc0001/2 and target ports 0x2000525400fc0003/4.
# e1000 NICs are PCI functions themselves, so udev's by-path names carry a PCI id (os-brick's FC connector
# needs one); with virtio-net the sysfs element before net/ is virtioN. Override: $LUNSAFE_LAB_FC_NIC.
FC_PORTS = (
    ("52:54:00:fc:00:01", "initiator"),
    ("52:54:00:fc:00:02", "initiator"),
    ("52:54:00:fc:00:03", "target"),
    ("52:54:00:fc:00:04", "target"),
)
FC_HUB = 7
# A two-guest FC lab (`up --fc-array listen|LAB`, for the campaign's port faults): the array guest has the two
# target ports, the host guest the two initiator ports, and each qemu's FC hub gets one more port, bound to a TCP
# connection on the loopback between the two qemu processes (the array's qemu listens, the host's connects; FCoE
# frames only, no IP on it). TCP, not UDP as the segment: FCoE assumes a lossless Ethernet and has no
# retransmission of its own, and over UDP a burst of read data overran the slower guest's socket buffer: reads
# failed with DID_SOFT_ERROR on every path within seconds of the first attach (2026-12-06). The FC target then
# runs in a kernel of its own: tcm_fc hangs under port faults stay in the array guest
# (docs/benchmarks/campaign.md). The host reaches the array's labctl over the segment between the two guests,
# which --fc-array opens as well. Neither guest of the pair can reboot (the connection would not come back).
FC_LINK_ROLES = {"array": ("target",), "host": ("initiator",)}

# The segment between two lab guests (issue 25, a fleet): one virtio NIC per guest on a qemu socket netdev in
# UDP mode on the loopback (each qemu binds its own port and sends to the other's: frames travel between the two
# qemu processes and nowhere else, and either guest can reboot or lose power without breaking the segment, which
# a TCP listen/connect pair would). Its addresses are IPv4 link-local (169.254.0.0/16, static, never
# routed): they exist nowhere outside the lab. The listening guest is the array of the fleet: target A listens
# on two addresses there (two paths from the other host); each guest has its own initiator name.
SEGMENT_ADDRESSES = {"listen": ("169.254.77.1", "169.254.77.11"), "connect": ("169.254.77.2",)}
SEGMENT_MACS = {"listen": "52:54:00:5e:77:01", "connect": "52:54:00:5e:77:02"}


def fc_nic_model() -> str:
    return os.environ.get("LUNSAFE_LAB_FC_NIC", "e1000")


SSHD_CONF = """\
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
"""


def log(msg: str, start: float | None = None) -> None:
    stamp = "" if start is None else " (%.1fs)" % (time.monotonic() - start)
    print(f"[lab] {msg}{stamp}", file=sys.stderr, flush=True)


class LabError(Exception):
    pass


# --------------------------------------------------------------------------- image


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "lunsafe-san" / "lab"
    return Path(os.environ.get("LUNSAFE_LAB_CACHE", str(default)))


def default_suite() -> str:
    """$LUNSAFE_LAB_SUITE, or bookworm."""
    chosen = os.environ.get("LUNSAFE_LAB_SUITE") or DEFAULT_SUITE
    if chosen not in SUITES:
        raise LabError(f"LUNSAFE_LAB_SUITE={chosen!r}: the lab builds guests of {', '.join(SUITES)}")
    return chosen


def recipe_key(suite: str = DEFAULT_SUITE) -> str:
    digest = hashlib.sha256()
    for part in (RECIPE_VERSION, suite, IMAGE_SIZE, " ".join(PACKAGES), MULTIPATH_CONF, INTERFACES, SSHD_CONF):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def image_dir(suite: str = DEFAULT_SUITE) -> Path:
    return cache_root() / recipe_key(suite)


def image_ready(folder: Path) -> bool:
    return all((folder / name).exists() for name in ("lab.img", "vmlinuz", "initrd.img", "id_ed25519", "READY"))


def build_image(force: bool = False, suite: str = DEFAULT_SUITE) -> Path:
    folder = image_dir(suite)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".build-{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image_ready(folder) and not force:
            log(f"image {recipe_key(suite)} ({suite}) cached at {folder}")
            return folder
        start = time.monotonic()
        for tool in ("mmdebstrap", "mke2fs", "qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen"):
            if not shutil.which(tool):
                raise LabError(f"{tool} not found: run scripts/setup-host (apt packages) first")
        shutil.rmtree(folder, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix="build-", dir=folder.parent))
        try:
            _build_into(work, start, suite)
            (work / "suite").write_text(suite + "\n")
            work.rename(folder)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        (folder / "READY").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
        log(f"image {recipe_key(suite)} ({suite}) built", start)
        _prune_old_images(keep=folder)
        return folder


def _build_into(work: Path, start: float, suite: str) -> None:
    root = work / "rootfs"
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lunsafe-lab", "-f", str(key)], check=True)
    files = work / "files"
    files.mkdir()
    (files / "multipath.conf").write_text(MULTIPATH_CONF)
    (files / "interfaces").write_text(INTERFACES)
    (files / "sshd.conf").write_text(SSHD_CONF)
    shutil.copy(str(key) + ".pub", files / "authorized_keys")
    hooks = [
        'echo lunsafe-lab > "$1/etc/hostname"',
        'printf "127.0.0.1 localhost\\n127.0.1.1 lunsafe-lab\\n" > "$1/etc/hosts"',
        'printf "/dev/vda / ext4 rw,errors=remount-ro 0 1\\n" > "$1/etc/fstab"',
        'install -d -m 0700 "$1/root/.ssh"',
        'install -m 0600 {f}/authorized_keys "$1/root/.ssh/authorized_keys"',
        'install -m 0644 {f}/interfaces "$1/etc/network/interfaces"',
        'install -m 0644 {f}/sshd.conf "$1/etc/ssh/sshd_config.d/lunsafe-lab.conf"',
        'install -m 0644 {f}/multipath.conf "$1/etc/multipath.conf"',
        'install -d "$1/usr/local/lib/lunsafe-lab" "$1/usr/local/share/lunsafe-lab/pristine" "$1/var/lib/lunsafe-lab"',
        'cp "$1/etc/iscsi/iscsid.conf" "$1/etc/multipath.conf" "$1/usr/local/share/lunsafe-lab/pristine/"',
        # the array is provisioned by labctl at each boot; never restore a saved target config
        'chroot "$1" systemctl disable rtslib-fb-targetctl.service >/dev/null 2>&1 || true',
        'chroot "$1" systemctl enable iscsid.service multipathd.service >/dev/null 2>&1 || true',
        'rm -f "$1/etc/ssh/ssh_host_"*',
        'chroot "$1" ssh-keygen -A',
        'mkdir -p "$1/etc/systemd/journald.conf.d"',
        'printf "[Journal]\\nStorage=volatile\\n" > "$1/etc/systemd/journald.conf.d/lab.conf"',
    ]
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--mode=root",
        "--quiet",
        "--include=" + ",".join(PACKAGES),
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
    ]
    for hook in hooks:
        argv.append("--customize-hook=" + hook.replace("{f}", shlex.quote(str(files))))
    argv += [suite, str(root)]
    log(f"building a {suite} guest image with mmdebstrap ({len(PACKAGES)} packages)", start)
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"mmdebstrap failed rc={proc.returncode}:\n{proc.stdout[-4000:]}")
    log("root filesystem ready", start)
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise LabError("no kernel or initrd in the guest's /boot")
    shutil.copy(kernels[-1], work / "vmlinuz")
    shutil.copy(initrds[-1], work / "initrd.img")
    (work / "kernel-version").write_text(kernels[-1].name[len("vmlinuz-") :] + "\n")
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(root), str(work / "lab.img"), IMAGE_SIZE], check=True)
    shutil.rmtree(root)
    shutil.rmtree(files)
    log(f"disk image written (kernel {kernels[-1].name})", start)


def _prune_old_images(keep: Path, newest: int = 3) -> None:
    """Keep the few newest images (other checkouts may still boot them); a running VM keeps its base
    image open, so removing one under it is harmless."""

    def suite_of(folder: Path) -> str:
        try:
            return (folder / "suite").read_text().strip()
        except FileNotFoundError:  # built before the lab had suites
            return DEFAULT_SUITE

    suite = suite_of(keep)
    images = [d for d in keep.parent.iterdir() if d.is_dir() and d != keep and image_ready(d) and suite_of(d) == suite]
    images.sort(key=lambda d: (d / "READY").stat().st_mtime, reverse=True)
    for other in images[newest - 1 :]:
        shutil.rmtree(other, ignore_errors=True)


# --------------------------------------------------------------------------- the FC array's tcm_fc

# The two-guest FC lab's array runs a tcm_fc of its own: the stock driver never releases a command whose exchange
# is gone, so the first port fault with a command in flight hangs the array's FC work for good (the patch's header
# and docs/benchmarks/campaign.md say how). Built on the controller from Debian's linux-source for the image's own
# kernel, out of tree against that kernel's headers (both fetched with apt-get download), cached beside the image
# by the patch's hash and the kernel package's version. LUNSAFE_LAB_STOCK_TCM_FC=1 keeps the stock driver.
TCM_FC_PATCH = HERE / "tcm_fc-release-aborted.patch"
TCM_FC_LAB_VERSION = "lunsafe-lab-release-aborted"  # the patch's MODULE_VERSION: /sys/module/tcm_fc/version


def build_tcm_fc(folder: Path, package_version: str) -> Path:
    """The patched tcm_fc.ko for the image in ``folder``, whose kernel package is at ``package_version``."""
    kernel = (folder / "kernel-version").read_text().strip()
    match = re.fullmatch(r"(\d+\.\d+)\.\d+-\d+-amd64", kernel)
    if not match:
        raise LabError(f"the patched tcm_fc builds for Debian's bookworm kernels (6.1.0-N-amd64), not {kernel}")
    series, abi = match.group(1), kernel.rsplit("-", 1)[0]  # "6.1", "6.1.0-57"
    digest = hashlib.sha256(TCM_FC_PATCH.read_bytes() + f"\0{kernel}\0{package_version}".encode()).hexdigest()
    ko = folder / f"tcm_fc-{digest[:12]}.ko"
    if ko.exists():
        return ko
    for tool in ("apt-get", "dpkg-deb", "make", "gcc", "patch", "tar", "xz"):
        if not shutil.which(tool):
            raise LabError(f"{tool} not found: the patched tcm_fc builds on the controller (Debian tools)")
    start = time.monotonic()
    packages = [
        f"linux-headers-{kernel}={package_version}",
        f"linux-headers-{abi}-common={package_version}",
        f"linux-kbuild-{series}={package_version}",
        f"linux-source-{series}={package_version}",
    ]
    with tempfile.TemporaryDirectory(prefix="tcm_fc-", dir=folder.parent) as tmp:
        work = Path(tmp)

        def step(argv: list[str], timeout: float, cwd: Path = work) -> None:
            proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
            if proc.returncode != 0:
                raise LabError(f"tcm_fc build: `{' '.join(argv)}` failed rc={proc.returncode}: {proc.stderr[-1500:]}")

        step(["apt-get", "download", *packages], timeout=900)
        for deb in sorted(work.glob("*.deb")):
            step(["dpkg-deb", "-x", str(deb), str(work / ("src" if "linux-source" in deb.name else "root"))], 300)
        source = f"linux-source-{series}"
        step(["tar", "-xJf", f"src/usr/src/{source}.tar.xz", f"{source}/drivers/target/tcm_fc"], timeout=600)
        with open(TCM_FC_PATCH, "rb") as patch:
            proc = subprocess.run(
                ["patch", "-p1", "--forward", "--batch", "-d", str(work / source)],
                stdin=patch,
                capture_output=True,
                timeout=60,
                check=False,
            )
        if proc.returncode != 0:
            raise LabError(f"tcm_fc build: the patch does not apply to {source} {package_version}: {proc.stdout!r}")
        headers = work / "root" / "usr" / "src" / f"linux-headers-{kernel}"
        # the flavour's Makefile includes the common headers by absolute path: point it into this tree
        makefile = headers / "Makefile"
        makefile.write_text(makefile.read_text().replace("include /usr/src/", f"include {work}/root/usr/src/"))
        module_dir = work / source / "drivers" / "target" / "tcm_fc"
        step(["make", "-C", str(headers), f"M={module_dir}", "CONFIG_TCM_FC=m", "modules"], timeout=600)
        shutil.copy(module_dir / "tcm_fc.ko", str(ko) + ".tmp")
        os.replace(str(ko) + ".tmp", ko)
    log(f"patched tcm_fc built for {kernel} ({package_version}): {ko.name}", start)
    return ko


# --------------------------------------------------------------------------- VM


class Lab:
    def __init__(self, name: str) -> None:
        self.name = name
        self.state = Path(os.environ.get("LUNSAFE_LAB_STATE", str(REPO / ".lab" / name)))

    # files of this VM
    @property
    def info_file(self) -> Path:
        return self.state / "lab.json"

    def info(self) -> dict:
        try:
            return json.loads(self.info_file.read_text())
        except FileNotFoundError:
            raise LabError(f"lab {self.name!r} is not up (no {self.info_file}): run `lab.py up` first") from None

    def pid(self) -> int | None:
        try:
            pid = int((self.state / "qemu.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            return None
        # never signal a recycled PID: it must be our qemu with our overlay
        return pid if str(self.state / "overlay.qcow2").encode() in cmdline else None

    def up(
        self,
        *,
        luns: int,
        accel: str,
        boot_timeout: float,
        watch_pid: int | None,
        fc_luns: int = 4,
        segment: str | None = None,
        suite: str = DEFAULT_SUITE,
        fc_array: str | None = None,
    ) -> dict:
        """Boot and provision. ``segment``: None, "listen" (this guest opens the segment between guests; its
        array is the fleet's, serving the segment once a fleet test says `labctl segment --serve`), or the
        name of a running lab that listens (this guest joins its segment). ``fc_array``: None, "listen" (this
        guest is the FC array of a two-guest FC lab: target ports only) or the name of that array's running lab
        (this guest is its FC host: initiator ports only); it opens or joins the segment too."""
        start = time.monotonic()
        if fc_array:
            if segment not in (None, fc_array):
                raise LabError(f"--fc-array {fc_array} needs the segment of the same pair, not --segment {segment}")
            if fc_luns <= 0:
                raise LabError("--fc-array needs FC LUNs (--fc-luns above 0)")
            segment = fc_array
        fc_link = self._fc_link_plan(fc_array)
        seg = self._segment_plan(segment)
        if self.pid():
            log(f"lab {self.name!r} already running (pid {self.pid()})")
            return self.info()
        folder = build_image(suite=suite)
        self.state.mkdir(parents=True, exist_ok=True)
        overlay = self.state / "overlay.qcow2"
        overlay.unlink(missing_ok=True)
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(folder / "lab.img"), str(overlay)],
            check=True,
        )
        key = self.state / "id_ed25519"
        shutil.copy(folder / "id_ed25519", key)
        key.chmod(0o600)
        chosen = _choose_accel(accel, folder)
        port = self._boot(folder, chosen, start, fc=fc_luns > 0, segment=seg, fc_link=fc_link)
        info = {
            "name": self.name,
            "port": port,
            "host": "127.0.0.1",
            "key": str(key),
            "accel": chosen,
            "kernel": (folder / "kernel-version").read_text().strip(),
            "suite": suite,
            "image": str(folder),
            "state": str(self.state),
            "fc": {"nic": fc_nic_model(), "luns": fc_luns, "link": fc_link} if fc_luns > 0 else None,
            "initiator_name": self.initiator_name,
            "segment": seg,
        }
        if watch_pid:
            info["watch_pid"] = watch_pid
        self.info_file.write_text(json.dumps(info, indent=2))
        if watch_pid:
            self._start_watchdog(watch_pid)
        try:
            self._wait_ssh(boot_timeout, start)
            log(f"SSH up on port {port} (accel {chosen}, kernel {info['kernel']})", start)
            self._write_inventory(info)
            self._wait_services(start)
            self.install_guest_tools()
            self.array(["initiator-name", self.initiator_name])
            if seg:
                done = self.segment()  # the array serves the segment only when a fleet test asks (serve=True)
                log(f"segment {done['ifname']} up: {' '.join(done['addresses'])} ({seg['role']})", start)
            status = self.array(["setup", "--luns", str(luns)])
            log(
                f"array provisioned: {len(status['tpg_luns'])} LUNs on portals {', '.join(status['portals'])}",
                start,
            )
            if fc_link and fc_link["role"] == "array" and os.environ.get("LUNSAFE_LAB_STOCK_TCM_FC") != "1":
                self.install_tcm_fc(folder, start)
            if fc_luns > 0:
                fc_status = self.array(["fc-setup", "--luns", str(fc_luns), *self._fc_side_args(fc_link)])
                log(
                    "FC provisioned in {:.1f}s: initiators {}, target ports {}, {} LUNs, scan mode {}".format(
                        fc_status["setup_seconds"],
                        " ".join(p["port_name"] for p in fc_status["initiators"]),
                        " ".join(p["port_name"] for p in fc_status["targets"]),
                        len(fc_status["luns"]),
                        fc_status["scan_mode"],
                    ),
                    start,
                )
        except BaseException:
            self.down()
            raise
        return info

    def segment(self, serve: bool | None = None) -> dict:
        """The guest's NIC on its segment up with its link-local addresses (labctl segment); ``serve``: the
        array starts (True) or stops (False) listening on them, None leaves that as it is."""
        seg = self.info()["segment"]
        argv = ["segment", "--mac", seg["mac"], *(f"--address={a}" for a in seg["addresses"])]
        if serve is not None:
            argv.append("--serve" if serve else "--no-serve")
        return self.array(argv)

    @property
    def initiator_name(self) -> str:
        """Each guest's own initiator name (guests made from one image would share the image's)."""
        return "iqn.2003-01.org.lunsafe.lab:host-" + re.sub(r"[^a-z0-9.-]", "-", self.name.lower())

    def _segment_plan(self, segment: str | None) -> dict | None:
        if not segment:
            return None
        if segment == "listen":
            return {
                "role": "listen",
                "port": _free_port(socket.SOCK_DGRAM),  # this guest's end of the segment
                "peer_port": _free_port(socket.SOCK_DGRAM),  # the joining guest's end
                "mac": SEGMENT_MACS["listen"],
                "addresses": list(SEGMENT_ADDRESSES["listen"]),
                "peer": None,
            }
        peer = Lab(segment).info().get("segment")
        if not peer or peer["role"] != "listen":
            raise LabError(f"lab {segment!r} does not listen on a segment: boot it with `up --segment listen`")
        return {
            "role": "connect",
            "port": peer["peer_port"],
            "peer_port": peer["port"],
            "mac": SEGMENT_MACS["connect"],
            "addresses": list(SEGMENT_ADDRESSES["connect"]),
            "peer": segment,
        }

    def _fc_link_plan(self, fc_array: str | None) -> dict | None:
        if not fc_array:
            return None
        if fc_array == "listen":
            return {"role": "array", "port": _free_port(), "peer": None}
        peer = (Lab(fc_array).info().get("fc") or {}).get("link")
        if not peer or peer["role"] != "array":
            raise LabError(f"lab {fc_array!r} is no FC array: boot it with `up --fc-array listen`")
        return {"role": "host", "port": peer["port"], "peer": fc_array}

    def _fc_side_args(self, fc_link: dict | None) -> list[str]:
        """labctl fc-setup's side: the array's own, or the host's with the array's address on the segment (and
        the lab's throwaway key in the host guest, for labctl to reach the array's labctl)."""
        if not fc_link:
            return []
        if fc_link["role"] == "array":
            return ["--side", "array"]
        array = Lab(fc_link["peer"])
        key = Path(array.info()["key"]).read_text()
        self.ssh(
            ["sh", "-c", "umask 077 && mkdir -p /root/.ssh && cat > /root/.ssh/lunsafe_lab_array"],
            stdin=key,
        )
        return ["--side", "host", "--array", array.info()["segment"]["addresses"][0]]

    def _boot(
        self,
        folder: Path,
        accel: str,
        start: float,
        *,
        fc: bool = True,
        segment: dict | None = None,
        fc_link: dict | None = None,
    ) -> int:
        console = self.state / "console.log"
        seg_args = []
        if segment:
            # UDP between the two qemu processes on the loopback (each binds its own end, sends to the other's):
            # no connection, so either guest can reboot or lose power and the segment carries on
            seg_args = [
                "-netdev",
                f"socket,id=seg,localaddr=127.0.0.1:{segment['port']},udp=127.0.0.1:{segment['peer_port']}",
                "-device",
                f"virtio-net-pci,netdev=seg,mac={segment['mac']}",
            ]
        for _attempt in range(3):
            port = _free_port()
            console.unlink(missing_ok=True)
            vcpus = guest_vcpus()
            argv = [
                "qemu-system-x86_64",
                "-name",
                f"lunsafe-lab-{self.name}",
                "-accel",
                accel,
                "-smp",
                str(vcpus),
                "-m",
                "2048",
                "-kernel",
                str(folder / "vmlinuz"),
                "-initrd",
                str(folder / "initrd.img"),
                "-append",
                " ".join(KERNEL_ARGS + fc_kernel_args(fc)),
                "-drive",
                "file=%s,format=qcow2,if=virtio,cache=unsafe,discard=unmap" % (self.state / "overlay.qcow2"),
                "-netdev",
                f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22",
                "-device",
                "virtio-net-pci,netdev=n0",
                *seg_args,
                *fc_qemu_args(fc, fc_link),
                "-display",
                "none",
                "-monitor",
                "none",
                "-serial",
                f"file:{console}",
                "-no-reboot",
                "-daemonize",
                "-pidfile",
                str(self.state / "qemu.pid"),
            ]
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode == 0:
                log(f"qemu started (pid {self.pid()}, port {port}, {vcpus} vCPU)", start)
                return port
            if "hostfwd" not in proc.stderr and "Could not set up host forwarding" not in proc.stderr:
                raise LabError(f"qemu failed rc={proc.returncode}: {proc.stderr.strip()}")
        raise LabError("qemu could not bind a local port after 3 attempts")

    def restart(self, *, power_cut: bool, boot_timeout: float = 180, shutdown_timeout: float = 600) -> dict:
        """Reboot the guest keeping its disk, or cut its power. The VM runs with ``-no-reboot``, so a guest
        reboot ends qemu: ``power_cut=False`` asks the guest to reboot (``systemctl reboot``: a clean shutdown)
        and waits for qemu to exit; ``power_cut=True`` SIGKILLs qemu (no shutdown, no flush inside the guest).
        Then qemu starts again on the same overlay (a new SSH port: the inventory is rewritten), and this waits
        for SSH and the services and copies the guest tools in again. The array (LIO in the guest) comes back
        only from a saved configuration: see tests/lab/test_persist_boot.py."""
        info = self.info()
        start = time.monotonic()
        pid = self.pid()
        if pid is None:
            raise LabError(f"lab {self.name!r} is not running")
        if (info.get("fc") or {}).get("link"):
            raise LabError(f"lab {self.name!r} is half of a two-guest FC lab: its FC link would not come back")
        if power_cut:
            os.kill(pid, signal.SIGKILL)
        else:
            self.ssh(["systemctl", "reboot"], check=False, timeout=60)  # the connection may drop at once
        deadline = time.monotonic() + (10 if power_cut else shutdown_timeout)
        # gone entirely: a qemu that is still exiting holds its image lock, and a new one would fail to start
        while self.pid() is not None or Path(f"/proc/{pid}").exists():
            if time.monotonic() > deadline:
                tail = self.console_tail()
                raise LabError(f"qemu (pid {pid}) did not exit after the guest was told to reboot\n{tail}")
            time.sleep(0.5)
        log(f"lab {self.name!r} {'power cut' if power_cut else 'shut down for a reboot'} (pid {pid})", start)
        folder = Path(info["image"])
        # a fleet guest's network segment is kept (its UDP ends do not change)
        segment = {"segment": info["segment"]} if info.get("segment") else {}
        info["port"] = self._boot(folder, info["accel"], start, fc=bool(info.get("fc")), **segment)
        self.info_file.write_text(json.dumps(info, indent=2))
        self._wait_ssh(boot_timeout, start)
        self._write_inventory(info)
        self._wait_services(start)
        self.install_guest_tools()
        if info.get("segment"):  # its addresses were set at run time: set them again (the initiator name is on disk)
            self.segment()
        if info.get("watch_pid"):  # the old watchdog ended with the old qemu
            self._start_watchdog(int(info["watch_pid"]))
        log(f"lab {self.name!r} back after the {'power cut' if power_cut else 'reboot'}", start)
        return info

    def _start_watchdog(self, watch_pid: int) -> None:
        """A detached process that stops the VM when the process that asked for it dies (even by SIGKILL)."""
        code = (
            "import os,sys,time,signal\n"
            "w,q=int(sys.argv[1]),int(sys.argv[2])\n"
            "def alive(p):\n"
            "    try: os.kill(p,0); return True\n"
            "    except OSError: return False\n"
            "while alive(w) and alive(q): time.sleep(2)\n"
            "if alive(q):\n"
            "    os.kill(q,signal.SIGTERM); time.sleep(5)\n"
            "    if alive(q): os.kill(q,signal.SIGKILL)\n"
        )
        qpid = self.pid()
        if qpid:
            subprocess.Popen(
                [sys.executable, "-c", code, str(watch_pid), str(qpid)],
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def _ssh_argv(self, info: dict) -> list[str]:
        return [
            "ssh",
            "-q",
            "-i",
            info["key"],
            "-p",
            str(info["port"]),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=30",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "LogLevel=ERROR",
            "root@{}".format(info["host"]),
        ]

    def ssh(
        self, argv: list[str], *, timeout: float = 120, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess:
        info = self.info()
        cmd = [*self._ssh_argv(info), "--", " ".join(shlex.quote(a) for a in argv)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=stdin, check=False)
        except subprocess.TimeoutExpired:
            raise LabError("ssh {}: no answer within {}s".format(" ".join(argv), timeout)) from None
        if check and proc.returncode != 0:
            raise LabError(
                f"in the lab `{' '.join(argv)}` failed rc={proc.returncode}\n"
                f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}"
            )
        return proc

    def _wait_ssh(self, stall: float, start: float, limit: float = BOOT_LIMIT) -> None:
        """Wait for SSH as long as the guest makes progress: it gives up only when the console has been
        silent for ``stall`` seconds without SSH answering (a stuck guest), or after ``limit`` seconds in all.
        A slow host only makes the boot longer; every 30 s a line says what the guest is doing and how busy
        the host is."""
        console = self.state / "console.log"
        last, size, cpu = "", -1, 0.0
        progress = note = time.monotonic()
        while True:
            if not self.pid():
                raise LabError("qemu exited during boot\n" + self.console_tail())
            try:
                proc = self.ssh(["true"], timeout=15, check=False)
            except LabError as exc:
                last = str(exc)
            else:
                if proc.returncode == 0:
                    return
                last = f"rc={proc.returncode} {proc.stderr.strip()}"
            now = time.monotonic()
            current = console.stat().st_size if console.exists() else 0
            used = qemu_cpu_seconds(self.pid())
            if current != size or used - cpu >= 0.5:  # it printed, or its vCPU ran (TCG: a booting guest computes)
                size, cpu, progress = current, used, now
            if now - progress > stall:
                raise LabError(
                    f"no SSH after {now - start:.0f}s, and for {stall:.0f}s the guest has printed nothing and hardly "
                    f"used the CPU: it looks stuck, not slow. {host_load(console)} Last SSH error: {last}\n"
                    + self.console_tail()
                )
            if now - start > limit:
                raise LabError(
                    f"no SSH after {now - start:.0f}s although the guest kept printing: {host_load(console)} "
                    f"Last SSH error: {last}\n{self.console_tail()}"
                )
            if now - note >= 30:
                note = now
                log(f"guest still booting: {last_console_line(console)!r}. {host_load(console)}", start)
            time.sleep(1)

    def _wait_services(self, start: float) -> None:
        """iscsid and multipathd up, udev settled once after boot (nothing else runs yet)."""
        deadline = time.monotonic() + 300  # a busy host starts them late, and SSH is up already
        while True:
            proc = self.ssh(["systemctl", "is-active", "iscsid", "multipathd"], check=False, timeout=60)
            if proc.stdout.split() == ["active", "active"]:
                break
            if time.monotonic() > deadline:
                raise LabError(f"guest services not active: {proc.stdout.split()}")
            time.sleep(1)
        log("iscsid and multipathd active", start)

    def console_tail(self, lines: int = 30) -> str:
        try:
            text = (self.state / "console.log").read_text(errors="replace")
        except FileNotFoundError:
            return "(no console log)"
        return "--- console tail ---\n" + "\n".join(text.splitlines()[-lines:])

    def _write_inventory(self, info: dict) -> None:
        ssh_args = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ServerAliveInterval=15"
        inventory = (
            "[lab]\n"
            "lunsafe-lab ansible_host={host} ansible_port={port} ansible_user=root "
            "ansible_ssh_private_key_file={key} ansible_python_interpreter=/usr/bin/python3 "
            "ansible_ssh_common_args='{args}'\n"
        ).format(host=info["host"], port=info["port"], key=info["key"], args=ssh_args)
        (self.state / "inventory.ini").write_text(inventory)

    def host_line(self, alias: str) -> str:
        """This guest as one line of an inventory (a fleet's), with what the fleet needs to know of it."""
        info = self.info()
        seg = info.get("segment") or {}
        return (
            f"{alias} ansible_host={info['host']} ansible_port={info['port']} ansible_user=root "
            f"ansible_ssh_private_key_file={info['key']} ansible_python_interpreter=/usr/bin/python3 "
            "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            "-o ServerAliveInterval=15' "
            f"lab_name={self.name} lab_initiator_name={info.get('initiator_name', '')} "
            f"lab_segment_addresses={','.join(seg.get('addresses', []))}"
        )

    def install_guest_tools(self) -> None:
        """Copy the guest helpers in at each boot, so editing them never forces an image rebuild: the array
        (labctl.py) and the os-brick driver (osbrick.py)."""
        for name in GUEST_TOOLS:
            self.ssh(["sh", "-c", f"cat > /usr/local/lib/lunsafe-lab/{name}"], stdin=(GUEST_FILES / name).read_text())
        if os.environ.get("LUNSAFE_LAB_BYTECODE_CACHE") == "1":
            # the test command's guests: Python caches the bytecode of the modules' zips (guest/BYTECODE_HOOK says
            # why and what it changes); the benchmarks boot without it
            hook = f"{SITE_DIR}/{BYTECODE_HOOK}"
            install = f"cat > {hook}.py && echo 'import {BYTECODE_HOOK}' > {hook}.pth"
            self.ssh(["sh", "-c", install], stdin=(GUEST_FILES / f"{BYTECODE_HOOK}.py").read_text())

    def install_tcm_fc(self, folder: Path, start: float) -> None:
        """The FC array guest's tcm_fc: the lab's patched build (build_tcm_fc) in the kernel's updates folder,
        which modprobe prefers, before labctl fc-setup loads it. A tcm_fc already loaded (nothing loads it
        before fc-setup) would keep running: refused."""
        kernel = self.info()["kernel"]
        version = self.ssh(["dpkg-query", "-W", "-f", "${Version}", f"linux-image-{kernel}"]).stdout.strip()
        ko = build_tcm_fc(folder, version)
        target = f"/lib/modules/{kernel}/updates/lunsafe"
        script = (
            f"test ! -e /sys/module/tcm_fc || {{ echo 'tcm_fc is loaded already' >&2; exit 3; }}; "
            f"mkdir -p {shlex.quote(target)} && base64 -d > {shlex.quote(target)}/tcm_fc.ko && depmod -a "
            f"&& modinfo -F version tcm_fc"
        )
        proc = self.ssh(["sh", "-c", script], stdin=base64.b64encode(ko.read_bytes()).decode(), timeout=180)
        if proc.stdout.strip() != TCM_FC_LAB_VERSION:
            raise LabError(f"the array's modprobe would load tcm_fc version {proc.stdout.strip()!r}, not the lab's")
        log(f"tcm_fc: the lab's patched build installed ({ko.name})", start)

    def array(self, argv: list[str], timeout: float = 300) -> dict:
        proc = self.ssh(["python3", "/usr/local/lib/lunsafe-lab/labctl.py", *argv], timeout=timeout)
        return json.loads(proc.stdout)

    def down(self, purge: bool = False) -> bool:
        stopped = self._stop()
        if purge:
            shutil.rmtree(self.state, ignore_errors=True)
        return stopped

    def _stop(self) -> bool:
        pid = self.pid()
        if pid is None:
            (self.state / "overlay.qcow2").unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.pid():
            time.sleep(0.2)
        if self.pid():
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        (self.state / "overlay.qcow2").unlink(missing_ok=True)
        self.info_file.unlink(missing_ok=True)
        log(f"lab {self.name!r} stopped (pid {pid})")
        return True


def write_fleet_inventory(member: Lab) -> Path:
    """The fleet's inventory, from the lab that joined a segment: group ``fleet`` with host_a (the guest that
    listens, whose LIO is also the fleet's array: group ``array``) and host_b; the array's portals on the
    segment are a group variable. Written to the joining lab's state folder as fleet.ini."""
    seg = member.info().get("segment") or {}
    if seg.get("role") != "connect":
        raise LabError(f"lab {member.name!r} did not join a segment: boot it with `up --segment NAME_OF_LISTENER`")
    array = Lab(seg["peer"])
    portals = ",".join((array.info().get("segment") or {}).get("addresses", []))
    text = (
        "[fleet]\n"
        f"{array.host_line('host_a')}\n"
        f"{member.host_line('host_b')}\n"
        "\n[array]\nhost_a\n"
        f"\n[fleet:vars]\nlab_array_portals={portals}\nlab_array_target=iqn.2003-01.org.lunsafe.lab:array\n"
    )
    path = member.state / "fleet.ini"
    path.write_text(text)
    return path


def fc_qemu_args(enabled: bool, link: dict | None = None) -> list[str]:
    """Four FC-capable NICs on one qemu hub (hubport netdevs: frames stay inside this qemu process); in a
    two-guest FC lab (``link``) this side's two NICs, and the hub's port to the other qemu (TCP on the loopback)."""
    if not enabled:
        return []
    argv = []
    roles = FC_LINK_ROLES[link["role"]] if link else ("initiator", "target")
    for index, (mac, role) in enumerate(FC_PORTS, start=1):
        if role not in roles:
            continue
        argv += [
            "-netdev",
            f"hubport,id=fc{index},hubid={FC_HUB}",
            "-device",
            f"{fc_nic_model()},netdev=fc{index},mac={mac}",
        ]
    if link:
        end = "listen" if link["role"] == "array" else "connect"
        argv += [
            "-netdev",
            f"socket,id=fclink,{end}=127.0.0.1:{link['port']}",
            "-netdev",
            f"hubport,id=fchub,hubid={FC_HUB},netdev=fclink",
        ]
    return argv


def fc_kernel_args(enabled: bool) -> list[str]:
    """With e1000 FC NICs the guest must not load e1000 at boot: its NICs could then be probed before the
    virtio one and take the name eth0, which carries the SSH address. labctl fc-setup loads it by name (an
    explicit modprobe ignores the blacklist) and finds each port by its MAC."""
    if enabled and fc_nic_model() == "e1000":
        return ["modprobe.blacklist=e1000"]
    return []


def playbook_env(lab: Lab, collections_root: Path) -> dict:
    """Environment for ansible-playbook against the lab: this checkout as lunsafe.san, SSH pipelining,
    facts only under ansible_facts (as ansible-core 2.20 will have it)."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(collections_root),
        ANSIBLE_ROLES_PATH=f"{REPO / 'tests' / 'integration' / 'targets'}:{REPO / 'roles'}",
        ANSIBLE_INVENTORY=str(lab.state / "inventory.ini"),
        ANSIBLE_PIPELINING="True",
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_INJECT_FACT_VARS="False",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_NOCOLOR="True",
        ANSIBLE_CALLBACK_RESULT_FORMAT="yaml",
        ANSIBLE_DISPLAY_SKIPPED_HOSTS="False",
        ANSIBLE_TIMEOUT="30",
        ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
    )
    return env


@contextlib.contextmanager
def collections_root() -> Iterator[Path]:
    """A temporary collection root holding this checkout as lunsafe.san (the code under test)."""
    with tempfile.TemporaryDirectory(prefix="lunsafe-collections-") as tmp:
        parent = Path(tmp) / "ansible_collections" / "lunsafe"
        parent.mkdir(parents=True)
        (parent / "san").symlink_to(REPO)
        yield Path(tmp)


def run_playbook(lab: Lab, argv: list[str]) -> int:
    ansible_playbook = shutil.which("ansible-playbook", path=str(REPO / ".venv" / "bin")) or shutil.which(
        "ansible-playbook"
    )
    if not ansible_playbook:
        raise LabError("ansible-playbook not found: run scripts/setup-venv first")
    with collections_root() as root:
        return subprocess.call([ansible_playbook, *argv], env=playbook_env(lab, root))


def guest_vcpus() -> int:
    """vCPUs per lab guest: $LUNSAFE_LAB_VCPUS, else 1 on a host with 2 CPUs or fewer (two TCG guests with two
    vCPUs each starve one another there: soft lockups in the guest, boots several times slower), else 2."""
    wanted = os.environ.get("LUNSAFE_LAB_VCPUS")
    if wanted:
        return max(1, int(wanted))
    return 1 if (os.cpu_count() or 1) <= 2 else 2


def qemu_cpu_seconds(pid: int | None) -> float:
    """CPU seconds qemu has used (user + system, from /proc/PID/stat); 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def last_console_line(console: Path) -> str:
    try:
        lines = [line.strip() for line in console.read_text(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return "(no console output yet)"
    return re.sub(r"\x1b\[[0-9;]*m", "", lines[-1])[-120:] if lines else "(no console output yet)"


def host_load(console: Path) -> str:
    """How busy this machine is, and whether the guest reported starving (soft lockups, RCU stalls)."""
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    try:
        text = console.read_text(errors="replace")
    except FileNotFoundError:
        text = ""
    lockups = text.count("soft lockup")
    stalls = text.count("rcu_sched self-detected stall") + text.count("rcu: INFO")
    said = f"Host load {load:.1f} on {cpus} CPUs"
    if load > cpus:
        said += " (busy: TCG guests boot several times slower)"
    if lockups or stalls:
        said += f"; the guest logged {lockups} soft lockups and {stalls} RCU stall reports (it is starved of CPU)"
    return said + "."


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, kind)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _choose_accel(requested: str, folder: Path) -> str:
    """TCG unless KVM has been proven to run a guest on this machine (the probe's verdict is cached)."""
    if requested in ("tcg", "kvm"):
        return requested
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    verdict = folder.parent / ("kvm-verdict-" + os.uname().release)
    if verdict.exists():
        return verdict.read_text().strip()
    result = "kvm" if _kvm_probe(folder) else "tcg"
    verdict.write_text(result + "\n")
    log("KVM probe: guests {} under KVM here; using {}".format("run" if result == "kvm" else "do not run", result))
    return result


def _kvm_probe(folder: Path, seconds: float = 10) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        console = Path(tmp) / "console"
        argv = [
            "qemu-system-x86_64",
            "-accel",
            "kvm",
            "-m",
            "512",
            "-kernel",
            str(folder / "vmlinuz"),
            "-append",
            "console=ttyS0 panic=-1",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            f"file:{console}",
            "-no-reboot",
        ]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and proc.poll() is None:
                if console.exists() and b"Linux version" in console.read_bytes():
                    return True
                time.sleep(0.5)
            return False
        finally:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--name",
        default=os.environ.get("LUNSAFE_LAB_NAME", "default"),
        help="lab name: two labs with different names run side by side",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    parser.add_argument(
        "--suite",
        choices=SUITES,
        default=None,
        help=f"the guest's Debian suite (build, key, up; default $LUNSAFE_LAB_SUITE or {DEFAULT_SUITE})",
    )
    p = sub.add_parser("build", help="build the guest image unless the cached one matches the recipe")
    p.add_argument("--force", action="store_true")
    sub.add_parser("key", help="print the recipe hash (the cache key)")
    p = sub.add_parser("up", help="boot, wait for SSH, provision the array")
    p.add_argument("--luns", type=int, default=4)
    p.add_argument(
        "--fc-luns",
        type=int,
        default=int(os.environ.get("LUNSAFE_LAB_FC_LUNS", "4")),
        help="FC LUNs (own LUs, mapped to both initiator WWPNs); 0: no FC ports at all",
    )
    p.add_argument("--accel", choices=("auto", "tcg", "kvm"), default=os.environ.get("LUNSAFE_LAB_ACCEL", "auto"))
    p.add_argument(
        "--boot-timeout",
        type=float,
        default=180,
        help="give up when the guest prints nothing for this long without SSH (a slow boot that keeps printing "
        f"is waited for, up to {BOOT_LIMIT:.0f}s)",
    )
    p.add_argument("--watch-pid", type=int, help="stop the VM when this process exits")
    p.add_argument(
        "--segment",
        metavar="listen|LAB",
        help="a private segment between two guests (a fleet): `listen` opens it (this guest's array is the fleet's), "
        "or the name of a running lab that listens (this guest joins it); boot the listener first",
    )
    p.add_argument(
        "--fc-array",
        metavar="listen|LAB",
        help="a two-guest FC lab: `listen` boots the FC array (target ports only), or the name of that running lab "
        "boots its FC host (initiator ports only); their FC hubs are joined, and so are they on a segment",
    )
    p = sub.add_parser("down", help="stop the VM (idempotent)")
    p.add_argument("--purge", action="store_true", help="also remove the lab's state folder")
    sub.add_parser("reboot", help="reboot the guest (clean shutdown) keeping its disk, wait for SSH again")
    sub.add_parser("power-cut", help="SIGKILL qemu (no shutdown) and boot again on the same disk")
    p = sub.add_parser("playbook", help="run ansible-playbook against the lab with this checkout as lunsafe.san")
    p.add_argument("args", nargs=argparse.REMAINDER)
    sub.add_parser("info", help="print the running lab's JSON description")
    sub.add_parser("fleet", help="write the fleet inventory (this lab joined a segment) and print its path")
    p = sub.add_parser("ssh", help="run a command in the guest")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p = sub.add_parser(
        "array",
        help="act as the array: setup|reset|map|unmap|reuse|portal|listen|target-b|status, FC: fc-setup|fc-status|"
        "fc-map|fc-unmap|fc-reuse|fc-port|fc-dev-loss-tmo|fc-scan-mode ...",
    )
    p.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    lab = Lab(args.name)
    try:
        suite = args.suite or default_suite()
        if args.command == "build":
            print(build_image(force=args.force, suite=suite))
        elif args.command == "key":
            print(recipe_key(suite))
        elif args.command == "up":
            print(
                json.dumps(
                    lab.up(
                        luns=args.luns,
                        accel=args.accel,
                        boot_timeout=args.boot_timeout,
                        watch_pid=args.watch_pid,
                        fc_luns=args.fc_luns,
                        segment=args.segment,
                        suite=suite,
                        fc_array=args.fc_array,
                    ),
                    indent=2,
                )
            )
        elif args.command == "down":
            lab.down(purge=args.purge)
        elif args.command in ("reboot", "power-cut"):
            print(json.dumps(lab.restart(power_cut=args.command == "power-cut"), indent=2))
        elif args.command == "playbook":
            lab.info()
            return run_playbook(lab, args.args[1:] if args.args[:1] == ["--"] else args.args)
        elif args.command == "info":
            print(json.dumps(lab.info(), indent=2))
        elif args.command == "fleet":
            print(write_fleet_inventory(lab))
        elif args.command == "ssh":
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            proc = lab.ssh(cmd, check=False, timeout=600)
            sys.stdout.write(proc.stdout)
            sys.stderr.write(proc.stderr)
            return proc.returncode
        elif args.command == "array":
            print(json.dumps(lab.array(args.args), indent=2))
    except LabError as exc:
        print(f"lab.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
