#!/usr/bin/env python3
"""make bench-callers: where a port's config space accesses come from.

For each kernel given, on the 'many' topology: remove PORTS root ports and
rescan, with a kprobe and a stacktrace trigger on every
pci_bus_{read,write}_config_{byte,word,dword}; each access is attributed
to the first caller on its stack that is not a config accessor or a
capability lookup (pci_read_config_word(), pcie_capability_read_word(),
pci_find_ext_capability(), ...).  The same with pcie_ports=compat (no port
service on either kernel) gives enumeration alone; the table is what the
port services add per port, by caller, base and series side by side.
Nothing here is asserted: it says where make bench's
services_config_accesses_per_port go.
"""
import argparse
import collections
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "host"))
from qemu import Guest  # noqa: E402
from ports import Dump  # noqa: E402

T = "/sys/kernel/tracing"
PORTS = 4
ACCESSORS = [f"pci_bus_{rw}_config_{w}" for rw in ("read", "write")
             for w in ("byte", "word", "dword")]
# Frames that only pass an access on: skipped when attributing it.
WRAPPER = re.compile(r"^(pci_(bus_)?(read|write)_config_\w+|pci_user_\w+|"
                     r"pcie_capability_\w+|__?pcie?_find_\w*cap\w*|pci_find_\w*cap\w*|"
                     r"pci_bus_find_capability|pci_find_next_\w+|__pci_bus_find_cap\w*|"
                     r"pci_find_ext_capability|pci_find_capability|pci_find_dvsec\w*)$")


def callers(image, initrd, logdir, label, cmdline=""):
    with Guest(image, initrd, "many", cmdline, boot_timeout=600,
               log=os.path.join(logdir, f"callers-{label}.log")) as g:
        d = Dump(g.sh("portdump", timeout=300))
        ports = [p.bdf for p in d.ports if p.type == "rp"][:PORTS]
        g.sh(f"echo 16384 > {T}/buffer_size_kb; : > {T}/kprobe_events")
        for i, f in enumerate(ACCESSORS):
            g.sh(f"echo 'p:cfg{i} {f}' >> {T}/kprobe_events")
        g.sh("; ".join(f"echo 1 > /sys/bus/pci/devices/{p}/remove" for p in ports))
        g.sh(f"echo > {T}/trace")
        for i in range(len(ACCESSORS)):
            g.sh(f"echo stacktrace > {T}/events/kprobes/cfg{i}/trigger; "
                 f"echo 1 > {T}/events/kprobes/cfg{i}/enable")
        g.sh("echo 1 > /sys/bus/pci/rescan", timeout=600)
        g.sh(f"echo 0 > {T}/events/kprobes/enable")
        trace = g.sh(f"cat {T}/trace", timeout=600)
    with open(os.path.join(logdir, f"callers-{label}.trace"), "w") as f:
        f.write(trace)
    count = collections.Counter()
    frames = None
    for line in trace.splitlines() + [""]:
        m = re.match(r"\s*=> (\S+)", line)
        if m and frames is not None:
            frames.append(re.sub(r"\+0x.*$", "", m.group(1)))
            continue
        if frames:
            # The stack starts in the tracer: the access is below the
            # accessor's frame.
            i = next((n for n, f in enumerate(frames) if f in ACCESSORS), -1)
            who = next((f for f in frames[i + 1:] if not WRAPPER.match(f)), "?")
            count[who] += 1
        frames = [] if "<stack trace>" in line else None
    return {k: v / PORTS for k, v in count.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--series", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    res = {}
    for label, img in (("base", a.base), ("series", a.series)):
        full = callers(img, a.initrd, a.out, label)
        compat = callers(img, a.initrd, a.out, label + "-compat", "pcie_ports=compat")
        res[label] = {k: full.get(k, 0) - compat.get(k, 0) for k in set(full) | set(compat)}
    keys = sorted(set(res["base"]) | set(res["series"]),
                  key=lambda k: -max(abs(res["base"].get(k, 0)), abs(res["series"].get(k, 0))))
    print(f"\n{a.title} config accesses per port the port services add, by caller")
    print(f"{'caller':<44}{'base':>10}{'series':>10}")
    for k in keys:
        b, s = res["base"].get(k, 0), res["series"].get(k, 0)
        if b or s:
            print(f"{k:<44}{b:>10.1f}{s:>10.1f}")
    print(f"{'total':<44}{sum(res['base'].values()):>10.1f}{sum(res['series'].values()):>10.1f}")


if __name__ == "__main__":
    main()
