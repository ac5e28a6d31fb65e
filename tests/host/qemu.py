"""QEMU guest control for the PCIe port services tests (standard library only).

A Guest boots a kernel with the harness initramfs on one of the named
topologies, talks to the in-guest agent on the second serial port
(tests/guest/init) and to QEMU over QMP.
"""
import json
import os
import shutil
import queue
import re
import shlex
import socket
import subprocess
import tempfile
import threading
import time

QEMU = os.environ.get("QEMU", "qemu-system-x86_64")

# Two CPUs, the guest config's NR_CPUS, so that the services' stop, PM and
# error recovery can race as on real machines (PCIE_GUEST_SMP overrides).
SMP = os.environ.get("PCIE_GUEST_SMP", "2")

# q35 only grants native PCIe hotplug in _OSC when ACPI PCI hotplug of
# bridges is off; a BIOS date of 2015 or later lets pci_bridge_d3_possible()
# put idle ports into D3hot, as on current machines.
BASE_ARGS = [
    "-accel", "tcg", "-M", "q35", "-m", "512",
    "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
    "-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",
    "-smbios", "type=0,date=01/01/2020",
    "-rtc", "base=utc,clock=vm",
    # firmware from Debian's packages, also for the project's QEMU run from
    # its build directory (Debian's source ships no firmware blobs)
    "-L", "/usr/share/qemu", "-L", "/usr/share/seabios",
]


# The arm64 guest (issue 14): QEMU virt with GICv3 and its ITS (MSI and
# MSI-X through the ITS doorbell) and an SMMUv3 in front of the PCIe host
# bridge, booted with QEMU's device tree ("dt") or through UEFI (Debian's
# qemu-efi-aarch64) with QEMU's ACPI tables ("acpi").  The PL011 takes the
# kernel console; the agent talks over a virtio console (hvc0) on
# virtio-mmio, which adds no PCI device.
QEMU_ARM64 = os.environ.get("QEMU_ARM64", "qemu-system-aarch64")
ARM64_UEFI = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"
ARCHES = ("x86_64", "arm64")
ARM64_BOOTS = ("dt", "acpi")


def arm64_base_args(boot):
    if boot not in ARM64_BOOTS:
        raise ValueError(f"arm64 boots with {' or '.join(ARM64_BOOTS)}, not {boot!r}")
    m = "virt,gic-version=3,its=on,iommu=smmuv3" + (",acpi=off" if boot == "dt" else "")
    a = ["-accel", "tcg", "-M", m, "-cpu", "cortex-a57", "-m", "512",
         "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]
    if boot == "acpi":
        a += ["-bios", ARM64_UEFI]
    return a


def _rp(id_, chassis, addr, dev="pcie-root-port", **kw):
    opts = [dev, f"id={id_}", "bus=pcie.0", f"chassis={chassis}", f"slot={chassis}",
            f"addr={addr}"] + [f"{k}={v}" for k, v in kw.items()]
    return ["-device", ",".join(opts)]


def _ep(id_, bus, dev="e1000e"):
    # No option ROM: the guest boots a kernel directly, and the project's
    # QEMU, run from its build directory, has none to load.
    return ["-device", f"{dev},id={id_},bus={bus},romfile="]


def topology_basic():
    """MSI-X root port with an endpoint, an empty MSI-X hotplug slot, an MSI
    root port (ioh3420) with an endpoint, a switch below a root port with
    an endpoint and an empty slot, and an empty root port without hotplug."""
    a = []
    a += _rp("rp1", 1, "0x2.0x0", multifunction="on") + _ep("ep1", "rp1")
    a += _rp("rp2", 2, "0x2.0x1")
    a += _rp("rp3", 3, "0x3.0x0", dev="ioh3420") + _ep("ep3", "rp3")
    a += _rp("rp4", 4, "0x4.0x0")
    a += ["-device", "x3130-upstream,id=up1,bus=rp4"]
    a += ["-device", "xio3130-downstream,id=dp1,bus=up1,chassis=5,slot=5"]
    a += _ep("ep5", "dp1")
    a += ["-device", "xio3130-downstream,id=dp2,bus=up1,chassis=6,slot=6"]
    a += _rp("rp5", 7, "0x5.0x0", hotplug="off")
    return a


def topology_basic_iommu():
    """basic behind QEMU's Intel IOMMU with interrupt remapping (the device
    comes first, before the PCI devices it translates for): every MSI goes
    through an IRTE, and the IOMMU drops a compatibility-format one (Linux
    blocks them when it enables remapping)."""
    return ["-device", "intel-iommu,intremap=on"] + topology_basic()


def topology_cxl(tmpdir):
    """pxb-cxl host bridge, a CXL root port with a type 3 memory device (DOE
    mailbox), a CXL switch with its DOE on MSI vector 1 and a downstream port."""
    a = ["-M", "q35,cxl=on"]
    a += ["-object", "memory-backend-ram,id=cxl-mem0,size=256M",
          "-object", "memory-backend-ram,id=cxl-lsa0,size=256M",
          "-object", "memory-backend-ram,id=cxl-mem1,size=256M",
          "-object", "memory-backend-ram,id=cxl-lsa1,size=256M"]
    a += ["-device", "pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1"]
    a += ["-device", "cxl-rp,port=0,bus=cxl.1,id=crp0,chassis=0,slot=2"]
    a += ["-device", "cxl-type3,bus=crp0,memdev=cxl-mem0,lsa=cxl-lsa0,id=cxl-mem0dev"]
    a += ["-device", "cxl-rp,port=1,bus=cxl.1,id=crp1,chassis=0,slot=3"]
    a += ["-device", "cxl-upstream,bus=crp1,id=cus0"]
    a += ["-device", "cxl-downstream,port=0,bus=cus0,id=cds0,chassis=0,slot=4"]
    a += ["-device", "cxl-type3,bus=cds0,memdev=cxl-mem1,lsa=cxl-lsa1,id=cxl-mem1dev"]
    a += ["-M", "cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G"]
    a += ["-m", "512,maxmem=8G,slots=4"]
    return a


def topology_cxl_project(tmpdir):
    """Needs the project's QEMU: the cxl topology with CXL Performance
    Monitoring Units on the type 3 device below crp0 (overflow interrupt on
    MSI-X entry 5), on crp0 (MSI-X entry 2 of a 4-entry table whose PCIe
    services use entries 0 and 1, and a DOE mailbox on entry 3) and on the
    switch's ports cus0 and cds0 (MSI vector 1)."""
    a = topology_cxl(tmpdir)
    i = a.index("cxl-type3,bus=crp0,memdev=cxl-mem0,lsa=cxl-lsa0,id=cxl-mem0dev")
    a[i] += ",cpmu=on,cpmu-msg-num=5"
    i = a.index("cxl-rp,port=0,bus=cxl.1,id=crp0,chassis=0,slot=2")
    a[i] += (",msix-vectors=4,pcie-int-msg-num=1,cpmu=on,cpmu-msg-num=2,"
             "doe=on,doe-msg-num=3")
    i = a.index("cxl-upstream,bus=crp1,id=cus0")
    a[i] += ",cpmu=on"
    i = a.index("cxl-downstream,port=0,bus=cus0,id=cds0,chassis=0,slot=4")
    a[i] += ",cpmu=on"
    return a


def topology_cxl_doe(tmpdir):
    """cxl-project and two more CXL root ports with nothing below, 4-entry
    MSI-X tables (services on entry 0) and DOE mailboxes: crp2's on entry
    2, crp3's Interrupt Message Number 9 beyond its table.  cus0's CDAT
    mailbox interrupts on MSI vector 0 (cxl-project: 1, the default, which
    x86 without interrupt remapping does not give)."""
    a = topology_cxl_project(tmpdir)
    i = a.index("cxl-upstream,bus=crp1,id=cus0,cpmu=on")
    a[i] += ",doe-msg-num=0"
    i = a.index("cxl-rp,port=1,bus=cxl.1,id=crp1,chassis=0,slot=3")
    a[i + 1:i + 1] = ["-device", "cxl-rp,port=2,bus=cxl.1,id=crp2,chassis=0,slot=5,"
                      "msix-vectors=4,doe=on,doe-msg-num=2",
                      "-device", "cxl-rp,port=3,bus=cxl.1,id=crp3,chassis=0,slot=6,"
                      "msix-vectors=4,doe=on,doe-msg-num=9"]
    return a


def topology_cxl_switch_pmu(tmpdir):
    """cxl-project with the switch ports' CPMUs on MSI vector 0, the one
    x86 without interrupt remapping gives: cus0's shared with its CDAT
    mailbox (doe-msg-num=0), cds0's with its services."""
    a = topology_cxl_project(tmpdir)
    i = a.index("cxl-upstream,bus=crp1,id=cus0,cpmu=on")
    a[i] += ",doe-msg-num=0,cpmu-msg-num=0"
    i = a.index("cxl-downstream,port=0,bus=cus0,id=cds0,chassis=0,slot=4,cpmu=on")
    a[i] += ",cpmu-msg-num=0"
    return a


def topology_many(n=64):
    """n empty generic root ports (8 functions in each of n/8 slots)."""
    a = []
    for i in range(n):
        slot, fn = 2 + i // 8, i % 8
        kw = {"multifunction": "on"} if fn == 0 else {}
        a += _rp(f"rp{i}", i + 1, f"0x{slot:x}.0x{fn:x}", **kw)
    return a


def topology_msix():
    """Needs the project's QEMU (qemu/patches): generic root ports with larger
    MSI-X tables and services on different entries.  rpa: 4 entries, PME and
    hotplug on 2, AER on 3, with an endpoint; rpb: 8 entries, both on 1, an
    empty slot; rpc: broken, hotplug on entry 5 of a 2-entry table."""
    a = []
    a += _rp("rpa", 11, "0x2.0x0", multifunction="on", **{
        "msix-vectors": 4, "pcie-int-msg-num": 2, "aer-int-msg-num": 3})
    a += _ep("epa", "rpa")
    a += _rp("rpb", 12, "0x2.0x1", **{
        "msix-vectors": 8, "pcie-int-msg-num": 1, "aer-int-msg-num": 1})
    a += _rp("rpc", 13, "0x2.0x2", **{
        "msix-vectors": 2, "pcie-int-msg-num": 5, "aer-int-msg-num": 0})
    return a


def topology_many_msix(n=64):
    """Needs the project's QEMU: n empty root ports with 8-entry MSI-X tables
    and every service on entry 1, as many real root ports have."""
    a = []
    for i in range(n):
        slot, fn = 2 + i // 8, i % 8
        kw = {"multifunction": "on"} if fn == 0 else {}
        kw.update({"msix-vectors": 8, "pcie-int-msg-num": 1, "aer-int-msg-num": 1})
        a += _rp(f"rp{i}", i + 1, f"0x{slot:x}.0x{fn:x}", **kw)
    return a


def topology_dpc():
    """Needs the project's QEMU: root ports with Downstream Port Containment
    (qemu/patches).  rpd: 4-entry MSI-X table, PME/hotplug on 0, AER on 1,
    DPC on 2, no hotplug, with an endpoint; rpe: DPC sharing the only
    entry with the other services, with an endpoint; a switch below rpf
    whose downstream port dpf has a 4-entry MSI-X table, hot-plug on
    entry 1 and DPC on entry 3, with an endpoint."""
    a = []
    a += _rp("rpd", 21, "0x2.0x0", multifunction="on", hotplug="off", dpc="on", **{
        "msix-vectors": 4, "pcie-int-msg-num": 0, "aer-int-msg-num": 1,
        "dpc-int-msg-num": 2})
    a += _ep("epd", "rpd")
    a += _rp("rpe", 22, "0x2.0x1", hotplug="off", dpc="on")
    a += _ep("epe", "rpe")
    a += _rp("rpf", 23, "0x2.0x2", hotplug="off")
    a += ["-device", "x3130-upstream,id=usf,bus=rpf"]
    a += ["-device", "xio3130-downstream,id=dpf,bus=usf,chassis=24,slot=24,msix-vectors=4,"
          "pcie-int-msg-num=1,dpc=on,dpc-int-msg-num=3"]
    a += _ep("epf", "dpf")
    return a


TOPOLOGIES = {
    "dpc": topology_dpc,
    "basic": topology_basic,
    "basic-iommu": topology_basic_iommu,
    "msix": topology_msix,
    "many-msix": topology_many_msix,
    "cxl": topology_cxl,
    "cxl-project": topology_cxl_project,
    "cxl-doe": topology_cxl_doe,
    "cxl-switch-pmu": topology_cxl_switch_pmu,
    "many": topology_many,
}


class GuestError(Exception):
    pass


class Guest:
    """A booted guest.  Use as a context manager."""

    def __init__(self, kernel, initrd, topology="basic", cmdline="", log=None,
                 boot_timeout=180, extra_args=(), scale=1, qemu=None, arch="x86_64",
                 boot="dt"):
        if arch not in ARCHES:
            raise ValueError(f"unknown guest architecture {arch!r} ({', '.join(ARCHES)})")
        self.kernel, self.initrd = kernel, initrd
        self.topology = topology
        self.arch, self.boot = arch, boot
        self.tmp = tempfile.mkdtemp(prefix="pcie-guest-")
        self.log = log or os.path.join(self.tmp, "console.log")
        self.qmp_path = os.path.join(self.tmp, "qmp.sock")
        console = "ttyAMA0" if arch == "arm64" else "ttyS0"
        acpi = "acpi=force " if arch == "arm64" and boot == "acpi" else ""
        self.cmdline = (f"console={console} {acpi}loglevel=7 panic=-1 oops=panic "
                        "printk.devkmsg=on " + cmdline).strip()
        self.boot_timeout = boot_timeout
        self.extra_args = list(extra_args)
        self.scale = scale      # multiplies every command timeout (debug kernels)
        self.qemu = qemu or (QEMU_ARM64 if arch == "arm64" else QEMU)
        self.proc = None
        self.q = queue.Queue()
        self.seq = 0
        self.qmp = None

    # -- lifecycle -----------------------------------------------------
    def argv(self):
        topo = TOPOLOGIES[self.topology]
        devs = topo(self.tmp) if self.topology.startswith("cxl") else topo()
        if self.arch == "arm64":
            base = arm64_base_args(self.boot)
            agent = ["-serial", f"file:{self.log}", "-device", "virtio-serial-device",
                     "-chardev", "stdio,id=agent,signal=off",
                     "-device", "virtconsole,chardev=agent"]
        else:
            base = BASE_ARGS
            agent = ["-serial", f"file:{self.log}", "-serial", "stdio"]
        return ([self.qemu] + base + ["-smp", SMP] + devs + self.extra_args +
                ["-kernel", self.kernel, "-initrd", self.initrd,
                 "-append", self.cmdline] + agent +
                ["-qmp", f"unix:{self.qmp_path},server=on,wait=off"])

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        argv = self.argv()
        with open(os.path.join(self.tmp, "qemu.cmd"), "w") as f:
            f.write(" ".join(shlex.quote(x) for x in argv) + "\n")
        self.stderr = open(os.path.join(self.tmp, "qemu.stderr"), "w")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, bufsize=0)
        threading.Thread(target=self._reader, daemon=True).start()
        self._wait_line("@@READY", self.boot_timeout)
        self.qmp = QMP(self.qmp_path)

    def _reader(self):
        buf = b""
        while True:
            chunk = self.proc.stdout.read1(4096) if hasattr(self.proc.stdout, "read1") \
                else os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                self.q.put(None)
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.q.put(line.decode("utf-8", "replace").rstrip("\r"))

    def _wait_line(self, want, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise GuestError(f"timeout waiting for {want!r}; console tail:\n{self.console_tail()}")
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise GuestError(f"QEMU exited (rc={self.proc.wait()}) waiting for {want!r}; "
                                 f"stderr: {self.qemu_stderr()}\nconsole tail:\n{self.console_tail()}")
            if line.strip() == want:
                return

    def stop(self):
        if self.qmp:
            try:
                self.qmp.cmd("quit")
            except Exception:
                pass
            self.qmp.close()
            self.qmp = None
        if self.proc:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        # The scratch directory (QMP socket, qemu.cmd/stderr, CXL backing
        # files) goes with the guest; PCIE_KEEP_TMP=1 keeps it for debugging.
        if getattr(self, "stderr", None):
            self.stderr.close()
            self.stderr = None
            # What QEMU printed (an assertion that ended it) stays beside
            # the console log, which outlives the scratch directory.
            err = os.path.join(self.tmp, "qemu.stderr")
            if os.path.getsize(err) and not self.log.startswith(self.tmp):
                shutil.copyfile(err, os.path.splitext(self.log)[0] + ".qemu-stderr.log")
        if not os.environ.get("PCIE_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def console(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def console_tail(self, n=40):
        return "\n".join(self.console().splitlines()[-n:])

    def qemu_stderr(self):
        try:
            with open(os.path.join(self.tmp, "qemu.stderr")) as f:
                return f.read().strip()[-2000:]
        except OSError:
            return ""

    # -- agent -----------------------------------------------------------
    def send(self, cmd):
        """Start a guest command; return its tag for finish()."""
        if "\n" in cmd:
            raise ValueError("agent commands are single lines")
        self.seq += 1
        tag = f"c{self.seq}"
        self.proc.stdin.write(f"{tag} {cmd}\n".encode())
        self.proc.stdin.flush()
        return tag

    def poke(self):
        """Send a bare newline to the agent's serial port (wakes a guest
        whose ttyS1 is a wakeup source; the agent ignores it)."""
        self.proc.stdin.write(b"\n")
        self.proc.stdin.flush()

    def finish(self, tag, cmd="", timeout=60, check=True):
        timeout *= self.scale
        out = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise GuestError(f"timeout ({timeout}s) running {cmd!r}; output so far: "
                                 f"{out[-5:]}\nconsole tail:\n{self.console_tail()}")
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise GuestError(f"QEMU exited running {cmd!r}\nconsole tail:\n{self.console_tail()}")
            # Output without a final newline runs into the marker.
            m = re.search(rf"@@DONE {tag} (\d+)$", line)
            if m:
                if line[:m.start()]:
                    out.append(line[:m.start()])
                rc = int(m.group(1))
                text = "\n".join(out)
                if check and rc != 0:
                    raise GuestError(f"guest command failed (rc={rc}): {cmd}\n{text}")
                return rc, text
            out.append(line)

    def run(self, cmd, timeout=60, check=True):
        """Run a shell command in the guest; return (rc, output)."""
        return self.finish(self.send(cmd), cmd, timeout, check)

    def wait_console(self, text, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.console():
                return True
            time.sleep(0.2)
        return False

    def sh(self, cmd, timeout=60):
        return self.run(cmd, timeout=timeout)[1]

    def hmp(self, line):
        return self.qmp.cmd("human-monitor-command", **{"command-line": line})

    def wait_for(self, cmd, timeout=30, interval=0.5):
        """Poll a guest command until it succeeds; return True if it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.run(cmd, check=False)[0] == 0:
                return True
            time.sleep(interval)
        return False


class QMP:
    """A minimal QMP client over a unix socket (line-delimited JSON)."""

    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.buf = b""
        self.events = []
        self._recv(60)  # greeting
        self.cmd("qmp_capabilities")

    def _line(self, timeout):
        """One line from the socket, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                return None
            if not chunk:
                raise GuestError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def _recv(self, timeout):
        """The next non-event message; events are queued."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._line(max(deadline - time.monotonic(), 0))
            if line is None:
                raise GuestError("QMP did not answer")
            msg = json.loads(line)
            if "event" in msg:
                self.events.append(msg)
                continue
            return msg

    def cmd(self, name, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        msg = self._recv(60)
        if "error" in msg:
            raise GuestError(f"QMP {name} failed: {msg['error']}")
        return msg.get("return")

    def wait_event(self, name, timeout=30, match=None):
        """Wait for a QMP event (optionally with data matching `match`)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                data = ev.get("data", {})
                if ev["event"] == name and all(data.get(k) == v for k, v in (match or {}).items()):
                    del self.events[i]
                    return ev
            line = self._line(max(deadline - time.monotonic(), 0))
            if line is None:
                return None
            msg = json.loads(line)
            if "event" in msg:
                self.events.append(msg)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def pci_ids(qmp):
    """Map QEMU device ids to guest BDFs (and bridge ids to their secondary
    bus) from query-pci, which reports the bus numbers the guest assigned."""
    bdf, secondary = {}, {}

    def walk(devs, bus):
        for d in devs:
            addr = f"0000:{d['bus']:02x}:{d['slot']:02x}.{d['function']:x}"
            if d.get("qdev_id"):
                bdf[d["qdev_id"]] = addr
            br = d.get("pci_bridge")
            if br:
                sec = br["bus"]["secondary"]
                if d.get("qdev_id"):
                    secondary[d["qdev_id"]] = sec
                walk(br.get("devices", []), sec)

    for b in qmp.cmd("query-pci"):
        walk(b["devices"], b["bus"])
    return bdf, secondary
