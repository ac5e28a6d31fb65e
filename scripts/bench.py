#!/usr/bin/env python3
"""make bench: port setup cost on the base and the series kernel of each
target (6.12 with v1, 7.3 with v2), in one run.

For each kernel, on the 'many' topology (64 empty MSI-X root ports):
  - vectors allocated per port and struct devices per port (after boot),
  - time from the first to the last port set up at boot (dmesg timestamps of
    the services' "enabled"/"Signaling"/"Slot" lines) and the time a rescan of
    all 64 removed ports takes,
  - per port during that rescan: PCI config space accesses
    (pci_bus_{read,write}_config_*), MSI/MSI-X enable and disable cycles
    (writes to the Message Control register that flip the enable bit, from a
    kprobe on pci_bus_write_config_word) and calls into the PCI IRQ API,
  - on 'many', the same rescan with pcie_ports=compat (no port services on
    either kernel: enumeration alone), and what the services add to the
    config accesses and the rescan time (services_*: default - compat),
  - vmlinux text size,
and, with the project's QEMU, how long after leaving s2idle the kernel notices
an endpoint pulled out of a hot-plug slot while it slept, and how long the
resume takes (median of SURPRISE_RUNS runs; tests/host/sleep.py), and how
long the CXL core takes to read a switch's CDAT through its DOE mailbox
(read_cdat_data() called from cxl_switch_port_probe(), kprobe and
kretprobe; topology cxl-doe, the mailbox on MSI vector 0: polled on base,
interrupting with the series; median of CDAT_RUNS reads).
The s2idle and CDAT tables are measured on both targets (v2's DOE
interrupts are its DOE series, patches/mainline-doe).  Each table has the
series' value relative to its base (base = 1.0).
On the 7.3 series kernel only (the CMA series; base has no SPDM
requester), with the project's QEMU: how long the kernel takes to
authenticate a root port whose CMA mailbox a good responder answers
(from a mark written to /dev/kmsg right before each write of the port's
authenticated attribute to the kernel's "CMA: authenticated" line, dmesg
timestamps; median of CMA_RUNS), with the mailbox interrupting on
the port's MSI-X entry and polled (pci=nomsi: the port has INTx, which a
DOE mailbox cannot name), each DOE response ready CMA_DELAY_US after its
request (the project's QEMU, doe-delay-us), as a device's firmware takes
its time; without a delay QEMU answers within the write that starts the
exchange and the kernel finds the response at its first look either way.
Prints the tables and writes bench.json.  Nothing here is asserted.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "host"))
from qemu import Guest  # noqa: E402
from ports import Dump  # noqa: E402
from qemu import pci_ids  # noqa: E402
import sleep  # noqa: E402
import cxl  # noqa: E402
import cma  # noqa: E402
import spdm_responder  # noqa: E402

NPORTS = 64
SURPRISE_RUNS = 5
CDAT_RUNS = 5
CMA_RUNS = 5
CMA_DELAY_US = 2000
PROFILED = ["pci_bus_read_config_byte", "pci_bus_read_config_word", "pci_bus_read_config_dword",
            "pci_bus_write_config_byte", "pci_bus_write_config_word",
            "pci_bus_write_config_dword", "pci_alloc_irq_vectors_affinity",
            "pci_alloc_irq_vectors", "pci_free_irq_vectors", "pci_msix_alloc_irq_at",
            "pci_msix_free_irq", "pci_disable_msi", "pci_disable_msix", "pci_irq_vector"]
T = "/sys/kernel/tracing"


def ktime(line):
    m = re.match(r"\[\s*(\d+\.\d+)\]", line)
    return float(m.group(1)) if m else None


def rescan(g, ports):
    g.sh("; ".join(f"echo 1 > /sys/bus/pci/devices/{p}/remove" for p in ports), timeout=300)
    g.sh("echo bench-rescan-start > /dev/kmsg; echo 1 > /sys/bus/pci/rescan; "
         "echo bench-rescan-end > /dev/kmsg", timeout=600)
    log = g.sh("dmesg | grep -E 'bench-rescan-(start|end)' | tail -2").splitlines()
    return ktime(log[1]) - ktime(log[0])


def measure(label, image, initrd, logdir, topology="many", qemu=None, cmdline=""):
    res = {"kernel": label, "topology": topology}
    with Guest(image, initrd, topology, cmdline,
               log=os.path.join(logdir, f"bench-{label}-{topology}.log"),
               boot_timeout=600, qemu=qemu) as g:
        time.sleep(2)
        d = Dump(g.sh("portdump", timeout=300))
        ports = [p for p in d.ports if p.type == "rp"]
        assert len(ports) == NPORTS, f"expected {NPORTS} root ports, found {len(ports)}"
        res["ports"] = len(ports)
        res["vectors_per_port"] = sum(len(p.msi) for p in ports) / max(len(ports), 1)
        res["devices_per_port"] = sum(p.child_devices for p in ports) / max(len(ports), 1)
        # boot: first to last port service set-up line
        stamps = [ktime(line) for line in g.sh(
            "dmesg | grep -E '0000:00:[0-9a-f]{2}\\.[0-7].*(PME: Signaling|AER: enabled|"
            "pciehp: Slot)' || true").splitlines()]
        stamps = [s for s in stamps if s is not None]
        res["boot_setup_span_ms"] = round((max(stamps) - min(stamps)) * 1000, 1) if stamps else None
        bdfs = [p.bdf for p in ports]
        # untraced rescan: time
        res["rescan_ms"] = round(rescan(g, bdfs) * 1000, 1)
        # traced rescan: counts
        msix_ctrl = {}      # devfn -> (kind, offset of Message Control)
        for p in ports:
            slot, fn = p.bdf.split(":")[2].split(".")
            devfn = int(slot, 16) << 3 | int(fn, 16)
            for kind, cap in (("msix", 0x11), ("msi", 0x05)):
                pos = p.cfg.cap(cap)
                if pos and devfn not in msix_ctrl:
                    msix_ctrl[devfn] = (kind, pos + 2)
        g.sh(f"echo 'p:cfgw pci_bus_write_config_word devfn=%si:u32 where=%dx:u32 val=%cx:u16'"
             f" > {T}/kprobe_events; echo > {T}/trace; echo 65536 > {T}/buffer_size_kb")
        g.run(f"for f in {' '.join(PROFILED)}; do echo $f >> {T}/set_ftrace_filter; done",
              check=False)
        g.sh(f"echo 1 > {T}/events/kprobes/cfgw/enable; echo 1 > {T}/function_profile_enabled")
        g.sh("; ".join(f"echo 1 > /sys/bus/pci/devices/{p}/remove" for p in bdfs), timeout=300)
        g.sh(f"echo 0 > {T}/function_profile_enabled; echo > {T}/trace; "
             f"echo 1 > {T}/function_profile_enabled")
        g.sh("echo 1 > /sys/bus/pci/rescan", timeout=600)
        g.sh(f"echo 0 > {T}/function_profile_enabled; echo 0 > {T}/events/kprobes/cfgw/enable")
        stats = g.sh(f"cat {T}/trace_stat/function*", timeout=120)
        calls = {}
        for line in stats.splitlines():
            f = line.split()
            if len(f) >= 2 and f[0] in PROFILED and f[1].isdigit():
                calls[f[0]] = calls.get(f[0], 0) + int(f[1])
        trace = g.sh(f"cat {T}/trace", timeout=300)
        cycles = {"msi": 0, "msix": 0}
        last = {}
        for m in re.finditer(r"cfgw: .*devfn=(0x[0-9a-f]+|\d+) where=(0x[0-9a-f]+|\d+) "
                             r"val=(0x[0-9a-f]+|\d+)", trace):
            devfn, where, val = (int(x, 0) for x in m.groups())
            kind, pos = msix_ctrl.get(devfn, (None, None))
            if kind and where == pos:
                bit = 0x8000 if kind == "msix" else 0x0001
                en = bool(val & bit)
                if en != last.get(devfn, False):
                    if en:
                        cycles[kind] += 1
                    last[devfn] = en
        n = max(len(bdfs), 1)
        cfg = sum(v for k, v in calls.items() if k.startswith("pci_bus_"))
        res["config_accesses_per_port"] = round(cfg / n, 1)
        res["msix_enable_cycles_per_port"] = round(cycles["msix"] / n, 2)
        res["msi_enable_cycles_per_port"] = round(cycles["msi"] / n, 2)
        res["irq_api_calls_per_port"] = {k: round(v / n, 2) for k, v in sorted(calls.items())
                                         if not k.startswith("pci_bus_")}
        res["profiled_functions_found"] = sorted(calls)
    return res


def surprise(label, image, initrd, logdir, qemu):
    """Times of an endpoint pulled out of rp2 while the guest sleeps."""
    extra = sleep.SURPRISE_ARGS + ["-device", "e1000e,id=sr0,bus=rp2,romfile="]
    noticed, resume, ok = [], [], 0
    with Guest(image, initrd, "basic", extra_args=extra, qemu=qemu, boot_timeout=600,
               log=os.path.join(logdir, f"bench-{label}-s2idle-surprise.log")) as g:
        ids, sec = pci_ids(g.qmp)
        path = f"/sys/bus/pci/devices/0000:{sec['rp2']:02x}:00.0"
        for i in range(SURPRISE_RUNS):
            dev = "sr0" if i == 0 else f"sr{i}"
            if i:
                g.qmp.cmd("device_add", driver="e1000e", id=dev, bus="rp2", romfile="")
            if not g.wait_for(f"test -e {path}/driver", timeout=30):
                break
            time.sleep(1)
            r = sleep.suspend_and_pull(g, dev, path)
            if not (r["pulled_while_asleep"] and r["gone"] and r["noticed_ms"] is not None):
                break
            ok += 1
            noticed.append(r["noticed_ms"])
            resume.append(r["resume_ms"])
            if not sleep.wait_slot_off(g, ids["rp2"]):
                break

    def median(v):
        return sorted(v)[len(v) // 2] if v else None
    return {"kernel": label, "runs": ok, "noticed_after_wake_ms": median(noticed),
            "noticed_after_wake_ms_max": max(noticed) if noticed else None,
            "resume_ms": median(resume)}


def cdat(label, image, initrd, logdir, qemu):
    """Durations of the CXL core's reads of the switch's CDAT (cus0's
    mailbox), each time the memory device below the switch is bound again,
    and the DOE interrupts each read took."""
    ms, irqs, ok = [], [], 0
    with Guest(image, initrd, "cxl-doe", qemu=qemu, boot_timeout=600,
               log=os.path.join(logdir, f"bench-{label}-cdat.log")) as g:
        ids, _ = pci_ids(g.qmp)
        usp = ids["cus0"]
        mem = cxl.memdev_below(g, ids["cxl-mem1dev"])
        g.sh(f"echo 'p:cdat read_cdat_data' > {T}/kprobe_events; "
             f"echo 'r:cdatr read_cdat_data' >> {T}/kprobe_events; echo > {T}/trace; "
             f"echo 1 > {T}/events/kprobes/enable")
        for _ in range(CDAT_RUNS):
            n = cxl.doe_handlers(g, usp).get(0, 0)
            g.sh(f"echo bench-rebind > {T}/trace_marker")
            if not cxl.rebind_memdev(g, mem, usp):
                break
            ok += 1
            irqs.append(cxl.doe_handlers(g, usp).get(0, 0) - n)
        g.sh(f"echo 0 > {T}/events/kprobes/enable")
        trace = g.sh(f"cat {T}/trace", timeout=120)
    # After each marker the switch's cxl port is probed (and its CDAT read)
    # before the endpoint's, which needs it as its parent: the first read
    # that completes after a marker is the switch's.  Entry and return are
    # paired by task.
    start, first = {}, False
    for ln in trace.splitlines():
        if "bench-rebind" in ln:
            start, first = {}, True
            continue
        m = re.search(r"-(\d+)\s+\[\d+\].*?\s(\d+\.\d+): (cdatr?):", ln)
        if not m:
            continue
        pid, t, ev = m.group(1), float(m.group(2)), m.group(3)
        if ev == "cdat":
            start[pid] = t
        elif pid in start:
            t0 = start.pop(pid)
            if first:
                ms.append(round((t - t0) * 1000, 1))
                first = False

    def median(v):
        return sorted(v)[len(v) // 2] if v else None
    return {"kernel": label, "runs": ok, "switch_reads_traced": len(ms),
            "read_cdat_ms": median(ms), "read_cdat_ms_max": max(ms) if ms else None,
            "doe_irqs_per_read": median(irqs)}


def cma_auth(label, image, initrd, logdir, qemu, cmdline=""):
    """Durations of spdm_authenticate() on a root port whose CMA mailbox a
    good responder answers, and the DOE interrupts each took."""
    ms, irqs = [], []
    rs = cma.Responders(("good",))
    try:
        with Guest(image, initrd, "basic", cmdline, qemu=qemu,
                   extra_args=rs.qemu_args(CMA_DELAY_US),
                   log=os.path.join(logdir, f"bench-{label}-cma.log")) as g:
            ids, _ = pci_ids(g.qmp)
            bdf = ids[rs.port_id("good")]
            if cma.authenticated(g, bdf) == "absent":
                return {"kernel": label, "runs": 0}
            root = spdm_responder._read(os.path.join(rs.certs, "root.der"))
            g.sh(f"cma-trust {root.hex()}")
            for i in range(CMA_RUNS):
                n = sum(cxl.doe_handlers(g, bdf).values())
                g.sh(f"echo cma-bench-{i} > /dev/kmsg; "
                     f"echo 1 > /sys/bus/pci/devices/{bdf}/authenticated", timeout=60)
                irqs.append(sum(cxl.doe_handlers(g, bdf).values()) - n)
            log = g.sh("dmesg", timeout=60).splitlines()
    finally:
        rs.close()
    start = None
    for ln in log:
        t = sleep.ktime(ln)
        if t is None:
            continue
        if re.search(r"cma-bench-\d+$", ln):
            start = t
        elif start is not None and f"{bdf}: CMA: authenticated" in ln:
            ms.append(round((t - start) * 1000, 1))
            start = None

    def median(v):
        return sorted(v)[len(v) // 2] if v else None
    return {"kernel": label, "runs": len(ms), "authenticate_ms": median(ms),
            "authenticate_ms_max": max(ms) if ms else None, "doe_irqs_per_auth": median(irqs)}


def text_size(image):
    vmlinux = os.path.join(os.path.dirname(image), "..", "..", "..", "vmlinux")
    out = subprocess.run(["size", vmlinux], capture_output=True, text=True).stdout.splitlines()
    return int(out[1].split()[0]) if len(out) > 1 else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--series", required=True)
    ap.add_argument("--mainline-base", help="the 7.3 base kernel")
    ap.add_argument("--mainline-series", help="the 7.3 kernel with series v2")
    ap.add_argument("--targets", default="lts,mainline",
                    help="which targets to measure (lts, mainline; comma-separated)")
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--qemu", help="the project's QEMU: also measure 8-entry MSI-X tables")
    ap.add_argument("--tables", default="ports,s2idle-surprise,cdat,cma",
                    help="which tables to measure (comma-separated; default all)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    want = set(a.targets.split(","))
    pairs = []
    if "lts" in want:
        pairs.append(("6.12", "", a.base, a.series))
    if "mainline" in want and a.mainline_base and a.mainline_series:
        pairs.append(("7.3", "mainline-", a.mainline_base, a.mainline_series))
    tables = set(a.tables.split(","))
    runs = [("many", None)] + ([("many-msix", a.qemu)] if a.qemu else [])
    all_results = {}
    for kver, prefix, base, series in pairs if "ports" in tables else ():
        for topology, qemu in runs:
            results = []
            for label, img in (("base", base), ("series", series)):
                print(f"==> measuring {kver} {label} on '{topology}' ({img})", flush=True)
                r = measure(prefix + label, img, a.initrd, a.out, topology, qemu)
                r["vmlinux_text_bytes"] = text_size(img)
                if topology == "many":
                    # The same rescan without any port service (pcie_ports=
                    # compat: no port driver on base, no services in the
                    # core with the series) is enumeration alone; what the
                    # services add is the difference.
                    print(f"==> measuring {kver} {label} on '{topology}' with pcie_ports=compat",
                          flush=True)
                    c = measure(prefix + label + "-compat", img, a.initrd, a.out, topology, qemu,
                                cmdline="pcie_ports=compat")
                    r["compat"] = c
                    for key in ("config_accesses_per_port", "rescan_ms"):
                        r[f"services_{key}"] = round(r[key] - c[key], 1)
                results.append(r)
            all_results[f"{kver} {topology}"] = results
            report(f"{kver}: topology {topology}", results)
    if a.qemu:
        timed = [("s2idle-surprise", "endpoint pulled out during s2idle", surprise,
                   "s2idle, endpoint pulled out while asleep",
                   ("runs", "noticed_after_wake_ms", "noticed_after_wake_ms_max", "resume_ms")),
                  ("cdat", "CDAT reads of a CXL switch", cdat,
                   "CXL switch CDAT read (DOE on MSI vector 0)",
                   ("runs", "switch_reads_traced", "read_cdat_ms", "read_cdat_ms_max",
                    "doe_irqs_per_read"))]
        for kver, prefix, base, series in pairs:
            for key, what, fn, title, keys in [t for t in timed if t[0] in tables]:
                results = []
                for label, img in (("base", base), ("series", series)):
                    print(f"==> measuring {kver} {label}: {what}", flush=True)
                    results.append(fn(prefix + label, img, a.initrd, a.out, a.qemu))
                all_results[f"{kver} {key}"] = results
                table(f"{kver}: {title}", keys, results)
    if a.qemu and "cma" in tables and a.mainline_series and "mainline" in want:
        results = []
        for label, cmdline in (("polled", "pci=nomsi"), ("interrupt", "")):
            print(f"==> measuring 7.3 series: CMA authentication, {label}", flush=True)
            results.append(cma_auth(f"mainline-series-cma-{label}", a.mainline_series,
                                    a.initrd, a.out, a.qemu, cmdline))
        all_results["7.3 cma"] = results
        table(f"7.3 series: CMA auth, DOE answers in {CMA_DELAY_US} us",
              ("runs", "authenticate_ms",
              "authenticate_ms_max", "doe_irqs_per_auth"), results,
              header=("polled", "interrupt", "intr/polled"))
    with open(os.path.join(a.out, "bench.json"), "w") as f:
        json.dump(all_results, f, indent=2)
    print(f"(wall-clock times are from TCG and only comparable within one run)\n"
          f"machine-readable: {os.path.join(a.out, 'bench.json')}")


def ratio(b, s):
    if isinstance(b, (int, float)) and isinstance(s, (int, float)) and b:
        return f"{s / b:.2f}"
    return "-"


def table(title, keys, results, rows=None, header=("base", "series", "series/base")):
    print(f"\n{title:<44}{header[0]:>14}{header[1]:>14}{header[2]:>13}")
    for k in keys:
        b, s = results[0].get(k), results[1].get(k)
        print(f"{k:<44}{str(b):>14}{str(s):>14}{ratio(b, s):>13}")
    for k, b, s in rows or ():
        print(f"{k:<44}{str(b):>14}{str(s):>14}{ratio(b, s):>13}")
    print()


def report(title, results):
    keys = ["ports", "vectors_per_port", "devices_per_port", "config_accesses_per_port",
            "services_config_accesses_per_port", "msix_enable_cycles_per_port",
            "msi_enable_cycles_per_port", "boot_setup_span_ms", "rescan_ms",
            "services_rescan_ms", "vmlinux_text_bytes"]
    keys = [k for k in keys if k in results[0] or k in results[1]]
    apis = sorted(set(results[0]["irq_api_calls_per_port"]) |
                  set(results[1]["irq_api_calls_per_port"]))
    rows = [(f"calls/port {k}", results[0]["irq_api_calls_per_port"].get(k, 0),
             results[1]["irq_api_calls_per_port"].get(k, 0)) for k in apis]
    table(title, keys, results, rows)


if __name__ == "__main__":
    main()
