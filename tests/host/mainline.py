"""Series v2 on mainline 7.3: the same scenarios on the 7.3 base kernel and
on the v2 series kernel (TARGET=mainline), checked on each kernel and then
against each other.

The 6.12 scenarios (run.py) encode 6.12's and v1's rules; these check what
v2 has so far on 7.3 and what any kernel must show:

- upstream's view of each port: the kselftest of v2's first patch
  (tools/testing/selftests/pcie_port_services) passes on both kernels;
- per port: which services have a handler, on which kind of interrupt
  (MSI-X, MSI, INTx), the same on both kernels;
- bandwidth control registers a link speed cooling device for each port
  it runs on, the same on both kernels; upstream's kselftest
  (tools/testing/selftests/pcie_bwctrl) changes a link's speed through it
  on the project's QEMU, which retrains the link to the Target Link Speed;
- the port's services survive unbinding and rebinding its driver and a
  remove/rescan of the port, on both kernels;
- on the basic topology: errors injected with aer_inject below an MSI-X
  and an MSI Root Port are reported, counted and recovered from, before
  and after a suspend to idle, on both kernels;
- no kernel warning.

The intended differences, listed once (INTENDED) and asserted:
- vectors: the series allocates exactly the MSI-X entries the services'
  Interrupt Message Numbers name, so every vector of a port has a handler;
  base allocates up to the largest number and may leave some idle;
- unbound: with the port driver unbound, base has freed the port's MSI
  vectors, the series keeps them (the PCI core owns them);
- driver: base binds pcieport to every port; on the series no driver binds
  (the PCI core manages ports), so the rebind check binds the pool test
  driver through driver_override;
- hostile: a port whose Message Number is beyond its MSI-X table
  (the project's QEMU, msix topology, 00:02.2) falls back to INTx on both;
  the series says why in the log.
"""
import os
import re

import sleep
from qemu import Guest, GuestError, pci_ids

# (topology, kernel command line, needs the project's QEMU)
SCENARIOS = [
    ("basic", "", False),
    ("basic", "pci=nomsi", False),
    ("basic", "pcie_pme=nomsi", False),
    ("basic", "pcie_ports=compat", False),
    ("msix", "", True),
    ("dpc", "", True),
]

INTENDED = {
    "vectors": "series: every MSI-X vector of a port has a handler (exact entries); "
               "base may allocate idle ones",
    "unbound": "with pcieport unbound, base has freed the port's MSI vectors, the series keeps them",
    "hostile": "a Message Number beyond the MSI-X table: INTx on both, the series logs why",
    "driver": "base binds pcieport to every port, the series no driver (the PCI core manages "
              "ports; the rebind check binds the pool test driver there)",
}

# Every PCI bridge and RCEC: its MSI/MSI-X vectors and INTx line, each with
# its /proc/interrupts line.
PORTS_SH = ("for d in /sys/bus/pci/devices/*; do "
            "case $(cat $d/class) in 0x0604*|0x080700) ;; *) continue;; esac; "
            "b=${d##*/}; "
            "echo \"port $b $(cat $d/irq) $(ls $d/msi_irqs 2>/dev/null | wc -l)\"; "
            "for i in $(ls $d/msi_irqs 2>/dev/null) $(cat $d/irq); do "
            "l=$(grep \"^ *$i:\" /proc/interrupts) && echo \"irq $b $i $l\"; "
            "done; done")

# The driver the rebind check binds to a port where no driver binds to
# ports (expected.py, "no-port-driver"): the pool test driver, through
# driver_override.  Its own handlers are not a service's.
POOL_DRIVER = "pcie_port_pool_test"
# The core's handler on a service's vector a driver shares through the pool
POOL_DEMUX = "pcie-pool"

WARN_RE = re.compile(r"WARNING:|BUG:|Oops|general protection|Call Trace:|INFO: task .* blocked")


def parse_ports(out):
    """{bdf: {"vectors": n, "irqs": {irq: (chip, actions)}}} from PORTS_SH."""
    ports = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4 and f[0] == "port":
            ports[f[1]] = {"vectors": int(f[3]), "irqs": {}}
        elif len(f) >= 7 and f[0] == "irq" and f[1] in ports and f[2] != "0":
            # irq BDF N  N: count... chip hwirq-type actions...
            rest = f[4:]
            while rest and rest[0].isdigit():
                rest = rest[1:]
            chip = rest[0] if rest else ""
            actions = " ".join(rest[2:])
            ports[f[1]]["irqs"][f[2]] = (chip, actions)
    return ports


def port_view(p):
    """What a user sees of a port: each service with a handler, and the
    kind of interrupt it is on."""
    view = set()
    for chip, actions in p["irqs"].values():
        kind = "MSI-X" if chip.startswith("PCI-MSIX") else "MSI" if chip.startswith("PCI-MSI") \
            else "INTx"
        for a in filter(None, (x.strip() for x in actions.split(","))):
            if a not in (POOL_DRIVER, POOL_DEMUX):
                view.add(f"{a}@{kind}")
    return sorted(view)


class Mainline:
    def __init__(self, r, images, initrd, qemu, logdir):
        self.r, self.images, self.initrd = r, images, initrd
        self.qemu, self.logdir = qemu, logdir
        self.facts = {}     # scenario -> label -> {fact: value}
        self.marks = 0

    def boot(self, label, topo, cmdline):
        name = f"mainline-{topo}{'-' + cmdline.replace('=', '_') if cmdline else ''}"
        log = os.path.join(self.logdir, f"{label}-{name}.console.log")
        qemu = self.qemu if topo in ("msix", "dpc") else None
        return name, Guest(self.images[label], self.initrd, topo, cmdline, log=log, qemu=qemu)

    def run(self):
        r = self.r
        r.note("--- mainline (7.3): base and series v2")
        for topo, cmdline, project in SCENARIOS:
            for label in ("base", "series"):
                scen = f"{topo}{' ' + cmdline if cmdline else ''}"
                if project and not self.qemu:
                    r.skip(f"mainline {label}: {scen}", "needs the project's QEMU (make qemu)")
                    continue
                try:
                    self.scenario(label, topo, cmdline, scen)
                except GuestError as e:
                    r.ok(False, f"mainline {label}: {scen}: the guest ran", e)
        self.differential()

    def scenario(self, label, topo, cmdline, scen):
        r = self.r
        name, guest = self.boot(label, topo, cmdline)
        facts = self.facts.setdefault(scen, {}).setdefault(label, {})
        with guest as g:
            rc, out = g.run("kselftest-port-services", check=False, timeout=120)
            oks = [ln for ln in out.splitlines() if ln.startswith("ok ")]
            r.ok(rc == 0 and oks and "not ok" not in out,
                 f"mainline {label}: {scen}: kselftest pcie_port_services passes on every port", out)
            facts["kselftest"] = sorted(re.sub(r"^ok \d+ ", "", ln) for ln in oks)

            _, out = g.run(PORTS_SH)
            ports = parse_ports(out)
            r.ok(bool(ports), f"mainline {label}: {scen}: the ports are there", out)
            facts["ports"] = {b: port_view(p) for b, p in ports.items()}
            facts["vectors"] = {b: p["vectors"] for b, p in ports.items()}
            # An MSI-X vector without a handler has no /proc/interrupts line
            # (or one without actions).  MSI is left out: it allocates a
            # power of two, whatever the Message Numbers.
            facts["idle-msix"] = sorted(
                b for b, p in ports.items()
                if any(c.startswith("PCI-MSIX") for c, _ in p["irqs"].values())
                and p["vectors"] > sum(1 for c, a in p["irqs"].values()
                                       if c.startswith("PCI-MSIX") and a))

            # Bandwidth control's cooling device: one per port whose
            # bandwidth notifications have a handler
            _, out = g.run("cat /sys/class/thermal/cooling_device*/type 2>/dev/null || true")
            cooling = sorted(t[len("PCIe_Port_Link_Speed_"):] for t in out.split()
                             if t.startswith("PCIe_Port_Link_Speed_"))
            bw = sorted(b for b, p in ports.items()
                        if any("PCIe bwctrl" in a for _, a in p["irqs"].values()))
            r.eq(cooling, bw, f"mainline {label}: {scen}: a link speed cooling device for each "
                              f"port with bandwidth control")
            facts["cooling"] = cooling

            # Upstream's kselftest of bandwidth control, on the project's
            # QEMU, which retrains a link to the Target Link Speed set
            if topo == "msix" and not cmdline:
                self.bwctrl_kselftest(g, label, scen, facts)

            # Unbind and rebind the port driver of the first port with MSI
            # vectors, then remove and rescan it: its services come back.
            # Where no driver binds to ports, bind the pool test driver first.
            port = next((b for b, p in sorted(ports.items()) if p["vectors"]), None)
            if port:
                drv = "pcieport"
                facts["port driver"] = g.sh(f"readlink /sys/bus/pci/devices/{port}/driver | "
                                            "sed 's|.*/||'") or "none"
                if facts["port driver"] == "none":
                    drv = POOL_DRIVER
                    g.run(f"echo {drv} > /sys/bus/pci/devices/{port}/driver_override; "
                          f"echo {port} > /sys/bus/pci/drivers_probe")
                _, out = g.run(f"echo {port} > /sys/bus/pci/drivers/{drv}/unbind; "
                               f"ls /sys/bus/pci/devices/{port}/msi_irqs 2>/dev/null | wc -l")
                facts["unbound"] = "kept" if int(out.split()[-1]) == ports[port]["vectors"] \
                    else "freed" if int(out.split()[-1]) == 0 else f"partly ({out.strip()})"
                g.run(f"echo {port} > /sys/bus/pci/drivers/{drv}/bind")
                r.eq(g.sh(f"readlink /sys/bus/pci/devices/{port}/driver | sed 's|.*/||'"), drv,
                     f"mainline {label}: {scen}: {port}: {drv} bound again")
                if drv == POOL_DRIVER:
                    g.run(f"echo {port} > /sys/bus/pci/drivers/{drv}/unbind; "
                          f"echo > /sys/bus/pci/devices/{port}/driver_override")
                _, out = g.run(PORTS_SH)
                r.eq(port_view(parse_ports(out).get(port, {"irqs": {}})), facts["ports"][port],
                     f"mainline {label}: {scen}: {port}: services back after unbind and bind")
                g.run(f"echo 1 > /sys/bus/pci/devices/{port}/remove; echo 1 > /sys/bus/pci/rescan")
                _, out = g.run(PORTS_SH)
                r.eq(port_view(parse_ports(out).get(port, {"irqs": {}})), facts["ports"][port],
                     f"mainline {label}: {scen}: {port}: services back after remove and rescan")

            if topo == "basic" and not cmdline:
                self.aer_round(g, label, scen, "at boot")
                self.s2idle(g, label, scen)
                self.aer_round(g, label, scen, "after resume")

            _, dmesg = g.run("dmesg")
            facts["hostile-logged"] = bool(re.search(
                r"0000:00:02\.2: PCIe port: Interrupt Message Number \d+ beyond", dmesg))
            bad = [ln for ln in dmesg.splitlines() if WARN_RE.search(ln)]
            r.ok(not bad, f"mainline {label}: {scen}: no kernel warning", "\n".join(bad[:20]))

    @staticmethod
    def aer_totals(g, bdf):
        out = {}
        for sev, f in (("cor", "correctable"), ("nonfatal", "nonfatal")):
            m = re.search(r"TOTAL_ERR_\w+ (\d+)",
                          g.sh(f"cat /sys/bus/pci/devices/{bdf}/aer_dev_{f}"))
            out[sev] = int(m.group(1)) if m else -1
        return out

    def aer_round(self, g, label, scen, when):
        """aer_inject a correctable and a non-fatal error at the endpoints
        below the MSI-X (rp1) and the MSI (rp3) Root Port: reported,
        counted once, recovered from."""
        r = self.r
        ids, _ = pci_ids(g.qmp)
        facts = self.facts[scen][label]
        for dev in ("ep1", "ep3"):
            bdf = ids[dev]
            for sev in ("cor", "nonfatal"):
                tag = f"mainline {label}: {scen}: {when}: aer_inject {sev} at {dev} ({bdf})"
                before = self.aer_totals(g, bdf)
                self.marks += 1
                mark = f"mainline-mark-{self.marks}"
                g.run(f"echo {mark} > /dev/kmsg")
                g.sh(f"aer-inject {bdf} {sev}")
                kind = "Correctable" if sev == "cor" else "Uncorrectable"
                since = f"dmesg | sed -n '/{mark}$/,$p'"
                logged = g.wait_for(f"{since} | grep -qi 'AER: {kind}.*error message "
                                    f"received from {bdf}'", timeout=30)
                recovered = sev == "cor" or g.wait_for(
                    f"{since} | grep -q 'AER: device recovery successful'", timeout=30)
                want = dict(before)
                want[sev] += 1
                got = self.aer_totals(g, bdf)
                r.ok(logged and recovered and got == want,
                     f"{tag}: reported, recovered, counted once",
                     f"logged={logged} recovered={recovered} counters {before} -> {got}\n"
                     + g.sh(since)[-1500:])
                facts[f"aer {when} {dev} {sev}"] = (logged, recovered, got == want)

    def s2idle(self, g, label, scen):
        """Suspend to idle and back (woken by a character on the agent's
        serial port); the ports' services are as before."""
        _, before = g.run(PORTS_SH)
        g.run("echo enabled > /sys/class/tty/ttyS1/power/wakeup")
        cmd = "echo freeze > /sys/power/state"
        tag = g.send(cmd)
        entered = g.wait_console("PM: suspend entry (s2idle)", timeout=60)
        rc, out = sleep.wake(g, tag, cmd, interval=2)
        _, after = g.run(PORTS_SH)
        views = [{b: port_view(p) for b, p in parse_ports(x).items()} for x in (before, after)]
        self.r.ok(entered and rc == 0 and views[0] == views[1],
                  f"mainline {label}: {scen}: s2idle suspend and resume, services as before",
                  f"entered={entered} rc={rc} {out}\nbefore {views[0]}\nafter  {views[1]}")

    def bwctrl_kselftest(self, g, label, scen, facts):
        """tools/testing/selftests/pcie_bwctrl of the 7.3 tree: it steps a
        port's link speed cooling device through its states and checks the
        port's current_link_speed after each.  Each retraining sets Link
        Bandwidth Management Status, so bandwidth control's interrupt
        count moves too."""
        r = self.r
        where = "/usr/local/lib/kselftest/pcie_bwctrl"
        t = f"mainline {label}: {scen}: upstream's kselftest pcie_bwctrl"
        if g.run(f"test -x {where}/set_pcie_cooling_state.sh", check=False)[0]:
            r.ok(False, f"{t} is in the initramfs",
                 "scripts/initramfs.sh takes it from build/mainline/linux: make mainline-tree, "
                 "then make initramfs")
            return

        def bw_irqs():
            _, out = g.run("grep 'PCIe bwctrl' /proc/interrupts || true")
            n = 0
            for line in out.splitlines():
                for f in line.split()[1:]:
                    if not f.isdigit():
                        break
                    n += int(f)
            return n

        before = bw_irqs()
        rc, out = g.run(f"cd {where} && ./set_pcie_cooling_state.sh", check=False, timeout=180)
        after = bw_irqs()
        r.ok(rc == 0 and "set_pcie_speed [PASS]" in out,
             f"{t} passes: the link retrains to each speed the cooling device sets", out)
        r.ok(after > before, f"{t}: bandwidth control's interrupt fired on the retrainings",
             f"PCIe bwctrl interrupts {before} -> {after}")
        facts["bwctrl kselftest"] = [re.sub(r" with /sys/class/thermal/\S+", "", ln)
                                     for ln in out.splitlines() if ln.startswith("set_pcie_")]

    def differential(self):
        r = self.r
        r.note("--- mainline differential: 7.3 base vs series v2; intended differences:")
        for k, v in INTENDED.items():
            r.note(f"  {k}: {v}")
        for scen, per in self.facts.items():
            b, s = per.get("base"), per.get("series")
            if not (b and s):
                continue
            r.eq(s["kselftest"], b["kselftest"], f"mainline differential: {scen}: kselftest results")
            r.eq(s["cooling"], b["cooling"],
                 f"mainline differential: {scen}: link speed cooling devices")
            if "bwctrl kselftest" in b or "bwctrl kselftest" in s:
                r.eq(s.get("bwctrl kselftest"), b.get("bwctrl kselftest"),
                     f"mainline differential: {scen}: kselftest pcie_bwctrl results")
            r.eq(s["ports"], b["ports"],
                 f"mainline differential: {scen}: each port's services and interrupt kinds")
            aer = sorted(k for k in set(b) | set(s) if k.startswith("aer "))
            if aer:
                r.eq({k: s.get(k) for k in aer}, {k: b.get(k) for k in aer},
                     f"mainline differential: {scen}: aer_inject results")
            # vectors (intended): never more than base, and none idle on MSI-X
            more = {p: (b["vectors"].get(p), n) for p, n in s["vectors"].items()
                    if n > b["vectors"].get(p, 0)}
            r.eq(more, {}, f"mainline differential: {scen}: vectors: no port has more than on base")
            r.eq(s["idle-msix"], [],
                 f"mainline differential: {scen}: vectors: no idle MSI-X vector on the series")
            if "port driver" in b or "port driver" in s:
                r.eq((b.get("port driver"), s.get("port driver")), ("pcieport", "none"),
                     f"mainline differential: {scen}: driver: pcieport on base, none on the "
                     f"series")
            if "unbound" in b:
                r.eq((b["unbound"], s["unbound"]), ("freed", "kept"),
                     f"mainline differential: {scen}: unbound: base frees the port's vectors, "
                     f"the series keeps them")
            if scen == "msix":
                r.eq((b["hostile-logged"], s["hostile-logged"]), (False, True),
                     f"mainline differential: {scen}: hostile: only the series logs the "
                     f"Message Number beyond the table")
                intx = [v.get("0000:00:02.2") and all(x.endswith("@INTx") for x in v["0000:00:02.2"])
                        for v in (b["ports"], s["ports"])]
                r.eq(intx, [True, True],
                     f"mainline differential: {scen}: hostile: 00:02.2 falls back to INTx on both")
