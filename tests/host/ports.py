"""Decode the guest's portdump output: which PCIe port services are active on
each port, in which interrupt mode, and which ones the capabilities, _OSC and
the kernel command line permit (the rules of drivers/pci/pcie/portdrv.c in
Linux 6.12, which the series must keep)."""
import re
from collections import Counter

import emulator

# PCIe capability (PCI_EXP_*) and extended capability offsets/bits.
CAP_EXP, ECAP_AER, ECAP_DPC, ECAP_ACS = 0x10, 0x0001, 0x001D, 0x000D
TYPE_NAMES = {0x4: "rp", 0x5: "usp", 0x6: "dsp", 0xA: "rcec"}

# /proc/interrupts action names the services register (users grep for them).
HANDLERS = {"aerdrv": "aer", "PCIe PME": "pme", "pciehp": "hp", "pcie-dpc": "dpc",
            "PCIe bwctrl": "bw"}
SERVICES = ("aer", "pme", "hp", "dpc", "bw")


class Config:
    def __init__(self, data):
        self.b = data

    def r8(self, o):
        return self.b[o] if o < len(self.b) else 0xFF

    def r16(self, o):
        return self.r8(o) | self.r8(o + 1) << 8

    def r32(self, o):
        return self.r16(o) | self.r16(o + 2) << 16

    def cap(self, cid):
        if not self.r16(0x06) & 0x10:
            return None
        pos, seen = self.r8(0x34) & ~3, 0
        while pos and seen < 48:
            if self.r8(pos) == cid:
                return pos
            pos, seen = self.r8(pos + 1) & ~3, seen + 1
        return None

    def ecap(self, cid):
        if len(self.b) <= 0x100:
            return None
        pos, seen = 0x100, 0
        while pos and seen < 512:
            h = self.r32(pos)
            if h in (0, 0xFFFFFFFF):
                return None
            if h & 0xFFFF == cid:
                return pos
            pos, seen = (h >> 20) & ~3, seen + 1
        return None


class Port:
    def __init__(self, bdf, path):
        self.bdf, self.path = bdf, path
        self.driver = None
        self.power_state = self.runtime_status = self.runtime_control = None
        self.irq = 0
        self.msi = {}          # irq -> "msi"/"msix"
        self.child_devices = 0
        self.service_devices = 0
        self.pci_children = 0
        self.cfgbytes = bytearray()
        self.lnkctl_writable = False
        self.iommu_group = None

    def finish(self):
        self.cfg = Config(bytes(self.cfgbytes))
        c = self.cfg
        self.exp = c.cap(CAP_EXP)
        self.aer = c.ecap(ECAP_AER)
        self.dpc = c.ecap(ECAP_DPC)
        flags = c.r16(self.exp + 2) if self.exp else 0
        self.type = TYPE_NAMES.get((flags >> 4) & 0xF, "other")
        self.msix_cap = c.cap(0x11) is not None
        self.msi_cap = c.cap(0x05) is not None
        self.pm_cap = c.cap(0x01) is not None
        msix = c.cap(0x11)
        self.msix_table = (c.r16(msix + 2) & 0x7FF) + 1 if msix else 0
        self.int_pin = c.r8(0x3D)
        e = self.exp or 0
        self.slot_implemented = bool(flags & 0x100)
        self.hpc = self.exp is not None and self.slot_implemented and bool(c.r32(e + 0x14) & 0x40)
        self.lbnc = self.exp is not None and bool(c.r32(e + 0x0C) & (1 << 21))
        # More than one link speed: Supported Link Speeds Vector (Link
        # Capabilities 2, PCIe r3.0+), else Max Link Speed above 2.5 GT/s.
        sls = (c.r32(e + 0x2C) >> 1) & 0x7F if self.exp else 0
        self.multi_speed = bin(sls).count("1") > 1 if sls else \
            self.exp is not None and (c.r32(e + 0x0C) & 0xF) > 1
        self.lnkctl = c.r16(e + 0x10) if self.exp else 0
        self.sltctl = c.r16(e + 0x18) if self.hpc else 0
        self.rtctl = c.r16(e + 0x1C) if self.type in ("rp", "rcec") and self.exp else 0
        self.rootcmd = c.r32(self.aer + 0x2C) if self.aer and self.type in ("rp", "rcec") else 0
        self.dpcctl = c.r16(self.dpc + 6) if self.dpc else 0
        acs = c.ecap(ECAP_ACS)
        # ACS Capability and Control registers, None without the capability
        self.acs_cap = c.r16(acs + 4) if acs else None
        self.acs_ctrl = c.r16(acs + 6) if acs else None
        # pci0000:00 of /sys/devices/pci0000:00/... (x86, ACPI) or of
        # /sys/devices/platform/<host bridge>/pci0000:00/... (device tree)
        m = re.search(r"/(pci[0-9a-f]{4}:[0-9a-f]{2})/", self.path)
        self.hostbridge = m.group(1) if m else ""

    def msg_num(self, svc):
        """Interrupt Message Number a service uses (PCIe r6.0, 7.5.3.2,
        7.8.4.10, 7.9.14.2)."""
        if svc in ("pme", "hp", "bw"):
            return (self.cfg.r16(self.exp + 2) >> 9) & 0x1F if self.exp else 0
        if svc == "aer":
            return (self.cfg.r32(self.aer + 0x30) >> 27) & 0x1F if self.aer else 0
        if svc == "dpc":
            return self.cfg.r16(self.dpc + 4) & 0x1F if self.dpc else 0
        return 0

    def msg_nums(self, services):
        return sorted({self.msg_num(s) for s in services})

    def hw_enabled(self, svc):
        """Is the service's interrupt enabled in the port's registers?  None
        where the platform makes that unreadable: QEMU 7.2 hard-wires Root
        Control's PME Interrupt Enable to 0 (it is not in the register's
        wmask), so PME is judged by its interrupt handler alone; likewise
        Link Control's bandwidth interrupt enables, which stock QEMU 7.2
        does not let software set although it advertises Link Bandwidth
        Notification.  The project's QEMU makes them writable on every port
        with LBNC (qemu/patches 0007), and there a clear bit is False."""
        if svc == "bw":
            if self.lnkctl & 0xC00:
                return True
            return False if self.lnkctl_writable and self.lbnc else None
        return {
            "aer": bool(self.rootcmd & 0x7),
            "pme": True if self.rtctl & 0x8 else None,
            "hp": bool(self.sltctl & 0x20),
            "dpc": bool(self.dpcctl & 0x8),
        }[svc]

    def bw_capable(self):
        """Bandwidth notification is for Root and Downstream Ports whose
        link has LBNC and more than one speed (config space alone)."""
        return self.lbnc and self.multi_speed and self.type in ("rp", "dsp")

    def irq_mode(self, handlers=True):
        """Interrupt mode of the port's services ("none" without any)."""
        if not handlers:
            return "none"
        modes = set(self.msi.values())
        if "msix" in modes:
            return "msix"
        if "msi" in modes:
            return "msi"
        return "intx" if self.irq else "none"


# The line each service prints with its interrupt when it starts, where it
# prints one (the same on base and series): evidence, per device, of a
# service whose enable bit the platform does not let us read.
ANNOUNCE = {"pme": "PME: Signaling with IRQ", "aer": "AER: enabled with IRQ",
            "dpc": "DPC: enabled with IRQ"}


class Dump:
    def __init__(self, text, dmesg="", lnkctl_writable=False):
        """`dmesg` is the guest's kernel log (for the services' own lines);
        `lnkctl_writable` says the emulator lets software set the Link
        Control bandwidth interrupt enables (the project's QEMU)."""
        self.dmesg = dmesg
        self.cmdline = ""
        self.bios_year = 0
        self.arch = ""          # uname -m; "" from a dump without it (x86)
        self.osc = []           # (acpi device, text)
        self.hostbridges = {}   # pci0000:00 -> PNP0A08:00
        self.interrupts = {}    # irq -> [action names]
        self.irq_chips = {}     # irq -> irqchip name
        self.ports = []
        port, in_irq, irq_lines = None, False, []
        complete = False
        for line in text.splitlines():
            if in_irq:
                if line == "@interrupts-end":
                    in_irq = False
                    self._parse_interrupts(irq_lines)
                else:
                    irq_lines.append(line)
                continue
            key, _, val = line.partition(" ")
            if key == "@cmdline":
                self.cmdline = val
            elif key == "@osc":
                m = re.match(r"\S+ (\S+): _OSC: (.*)", val)
                if m:
                    self.osc.append((m.group(1).rstrip(":"), m.group(2)))
            elif key == "@hostbridge":
                hb, fw = val.split()
                self.hostbridges[hb] = fw
            elif key == "@interrupts-begin":
                in_irq = True
            elif key == "@port":
                if port:
                    port.finish()
                bdf, path = val.split()
                port = Port(bdf, path)
                self.ports.append(port)
            elif key == "@driver":
                port.driver = None if val == "none" else val
            elif key == "@power_state":
                port.power_state = val
            elif key == "@runtime_control":
                port.runtime_control = val
            elif key == "@arch":
                self.arch = val
            elif key == "@bios_date":
                self.bios_year = int(val[-4:]) if re.match(r".*\d{4}$", val) else 0
            elif key == "@runtime_status":
                port.runtime_status = val
            elif key == "@irq":
                port.irq = int(val)
            elif key == "@msi_irq":
                n, mode = val.split()
                port.msi[int(n)] = mode
            elif key == "@pci_children":
                port.pci_children = int(val)
            elif key == "@child_devices":
                port.child_devices = int(val)
            elif key == "@iommu_group":
                port.iommu_group = None if val == "none" else val
            elif key == "@service_devices":
                port.service_devices = int(val)
            elif key == "@cfg":
                port.cfgbytes += bytes(int(x, 16) for x in val.split()[1:])
            elif key == "@end":
                complete = True
        if port:
            port.finish()
        for p in self.ports:
            p.lnkctl_writable = lnkctl_writable
        if not complete:
            raise ValueError("portdump output is truncated")

    def _parse_interrupts(self, lines):
        ncpu = len(lines[0].split()) if lines else 1
        for line in lines[1:]:
            f = line.split()
            if not f or not f[0].endswith(":") or not f[0][:-1].isdigit():
                continue
            # IRQ: <ncpu counts> <chip> <hwirq-type> <actions, ...>, where
            # x86 prints the hwirq and type as one word ("0-edge") and the
            # GIC as two ("0 Edge")
            rest = f[1 + ncpu + 1:]
            if rest and re.fullmatch(r"\d+", rest[0]) and len(rest) > 1 and \
                    rest[1] in ("Edge", "Level"):
                rest = rest[2:]
            else:
                rest = rest[1:]
            names = [n.strip() for n in " ".join(rest).split(",") if n.strip()]
            self.interrupts[int(f[0][:-1])] = names
            # the irqchip without the device: "IR-PCI-MSIX" (remapped),
            # "PCI-MSI", "ITS-PCI-MSIX", "IO-APIC", "GICv3"
            if len(f) > 1 + ncpu:
                self.irq_chips[int(f[0][:-1])] = re.sub(r"-[0-9a-f]{4}:[0-9a-f:.]+$", "",
                                                        f[1 + ncpu])

    def port_irqs(self, p):
        return sorted(p.msi) if p.msi else ([p.irq] if p.irq else [])

    def port_irq_chips(self, p):
        """The irqchips of the port's interrupts that /proc/interrupts lists
        (those with a handler; a vector allocated and never requested is
        not listed), one name each kind."""
        return sorted({self.irq_chips[i] for i in self.port_irqs(p) if i in self.irq_chips})

    def intx_sharers(self, p):
        """The ports whose services use INTx line p.irq (p among them)."""
        return [q for q in self.ports if not q.msi and q.irq == p.irq]

    def announced(self, q, svc):
        """Did the service print its start line with q's INTx line?"""
        what = ANNOUNCE.get(svc)
        return what is not None and re.search(
            rf"{re.escape(q.bdf)}: {what} {q.irq}$", self.dmesg, re.M) is not None

    def claims(self, q, svc):
        """Does port q claim to run `svc` on its INTx line?  Its enable bit
        where the platform lets it be read; else the service's own start
        line (PME); else, for bandwidth notification, whether config space
        makes the port capable of it."""
        hw = q.hw_enabled(svc)
        if hw is not None:
            return hw
        if svc == "bw":
            return q.bw_capable()
        return self.announced(q, svc)

    def handlers(self, p):
        """The services whose interrupt handler is installed for port p.
        MSI and MSI-X vectors are the port's own.  An INTx line is shared
        (with other ports among others), and /proc/interrupts names the
        actions on a line, not whose they are: a service is credited to a
        port on a shared line only when the line carries exactly as many of
        its handlers as the ports sharing it claim (claims()); with fewer,
        no claimant is credited, so a port that lost its own handler fails
        even when a neighbour has one; with more, every sharer is, so an
        unclaimed handler shows as one too many."""
        if p.msi:
            found = set()
            for irq in sorted(p.msi):
                for name in self.interrupts.get(irq, []):
                    if name in HANDLERS:
                        found.add(HANDLERS[name])
            return found
        if not p.irq:
            return set()
        count = Counter(HANDLERS[n] for n in self.interrupts.get(p.irq, []) if n in HANDLERS)
        sharers = self.intx_sharers(p)
        found = set()
        for svc in SERVICES:
            claimants = [q for q in sharers if self.claims(q, svc)]
            if count[svc] > len(claimants):
                found.add(svc)
            elif count[svc] and count[svc] == len(claimants) and p in claimants:
                found.add(svc)
        return found

    def osc_controls(self, p):
        """The service controls the platform grants the port's host bridge
        through _OSC (emulator.py), for this boot's command line."""
        return emulator.osc_granted(self.hostbridges.get(p.hostbridge, ""), self.cmdline)

    def osc_reported(self, fw):
        """The service controls the kernel says it got from host bridge
        `fw` ("OS now controls [...]"), None without such a line."""
        for dev, text in self.osc:
            if dev == fw and text.startswith("OS now controls"):
                m = re.search(r"\[(.*?)\]", text)
                return (set(m.group(1).split()) if m else set()) & emulator.SERVICE_CONTROLS
        return None

    def params(self):
        args = self.cmdline.split()
        pci = ",".join(a[4:] for a in args if a.startswith("pci="))
        pcie_ports = [a.split("=", 1)[1] for a in args if a.startswith("pcie_ports=")]
        return {
            "noaer": "noaer" in pci.split(","),
            "nomsi": "nomsi" in pci.split(","),
            "ports": pcie_ports[-1] if pcie_ports else "auto",
            "pme_nomsi": "pcie_pme=nomsi" in args,
            "port_pm": ([a.split("=", 1)[1] for a in args if a.startswith("pcie_port_pm=")]
                        or ["auto"])[-1],
        }

    def d3_possible(self, p, behaviour=None):
        """pci_bridge_d3_possible() of 6.12 (`behaviour` of targets.py for
        another kernel): may the port go to D3 at run time?  portdrv allows
        runtime PM (power/control = auto) exactly then.  Outside x86 the
        BIOS date does not count, and 7.3 keeps only x86's native hot-plug
        ports out of D3 ("d3_pciehp_x86_only")."""
        prm = self.params()
        x86 = self.arch in ("x86_64", "")
        if p.type not in ("rp", "usp", "dsp") or prm["ports"] == "compat":
            return False
        if prm["port_pm"] == "off":
            return False
        if p.hpc and "PCIeHotplug" not in self.osc_controls(p) and prm["ports"] != "native":
            return False
        if prm["port_pm"] == "force":
            return True
        if p.hpc and (x86 or not (behaviour or {}).get("d3_pciehp_x86_only")):
            return False
        return not x86 or self.bios_year >= 2015

    # -- the rules ---------------------------------------------------------
    def expected(self, p, features=frozenset(), behaviour=None):
        """Services 6.12's portdrv would enable on this port; `features` are
        the series' intended differences (expected.py) that change them, and
        `behaviour` what the target's unpatched kernel does differently
        (targets.py; None: 6.12)."""
        prm = self.params()
        if prm["ports"] == "compat" or p.type not in ("rp", "dsp", "usp", "rcec"):
            return set()
        native = prm["ports"] == "native"
        osc = self.osc_controls(p)
        aer_available = not prm["noaer"] and not prm["nomsi"]
        s = set()
        if p.hpc and p.type in ("rp", "dsp") and (native or "PCIeHotplug" in osc):
            s.add("hp")
        if p.type in ("rp", "rcec") and p.aer and aer_available and (native or "AER" in osc):
            s.add("aer")
        if p.type in ("rp", "rcec") and (native or "PME" in osc):
            s.add("pme")
        if behaviour is None or behaviour["dpc_needs_aer_service"]:
            dpc_allowed = "aer" in s
        else:   # the OS owns AER (_OSC), whatever the port's type
            dpc_allowed = native or "AER" in osc
        if p.dpc and aer_available and (prm["ports"] == "dpc-native" or dpc_allowed):
            s.add("dpc")
        # 6.12 detects bandwidth notification but has no driver for it; the
        # series' core handles it where the link has more than one speed.
        if "bwctrl" in features and p.lbnc and p.multi_speed and p.type in ("rp", "dsp"):
            s.add("bw")
        return s if self.usable_irq(p, s) else set()

    def expected_mode(self, p, services):
        prm = self.params()
        if not services:
            return "none"
        if prm["nomsi"] or ("pme" in services and prm["pme_nomsi"]):
            return "intx"
        # A message number beyond the MSI-X table: portdrv uses INTx.
        if p.msix_cap and max(p.msg_nums(services)) < p.msix_table:
            return "msix"
        if p.msix_cap:
            return "intx"
        if p.msi_cap:
            return "msi"
        return "intx"

    def usable_irq(self, p, services):
        """portdrv gives up on a port (no services) when it can use neither
        MSI/MSI-X nor INTx, e.g. QEMU's xio3130 ports under pci=nomsi: they
        have no Interrupt Pin."""
        return self.expected_mode(p, services) != "intx" or p.int_pin != 0

    def state(self, p):
        """{service: 'on' | 'off' | 'irq-only' | 'hw-only'} for the port."""
        h = self.handlers(p)
        out = {}
        for svc in SERVICES:
            hw, irq = p.hw_enabled(svc), svc in h
            if hw is None:
                hw = irq
            out[svc] = "on" if hw and irq else "off" if not hw and not irq else \
                ("irq-only" if irq else "hw-only")
        return out
