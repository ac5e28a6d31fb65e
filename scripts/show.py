#!/usr/bin/env python3
"""make run: boot a kernel on a QEMU topology and show, for every PCIe port,
which services are active, their interrupt mode and vectors, and the driver."""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "host"))
from qemu import Guest, GuestError, pci_ids, TOPOLOGIES  # noqa: E402
from ports import Dump  # noqa: E402

NAMES = {"aer": "AER", "pme": "PME", "hp": "pciehp", "dpc": "DPC", "bw": "BWNOTIF"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--topology", default="basic", choices=sorted(TOPOLOGIES))
    ap.add_argument("--cmdline", default=os.environ.get("CMDLINE", ""))
    a = ap.parse_args()
    print(f"==> booting {a.kernel} on the '{a.topology}' topology (QEMU, TCG)", flush=True)
    try:
        with Guest(a.kernel, a.initrd, a.topology, a.cmdline) as g:
            ids, _ = pci_ids(g.qmp)
            byaddr = {v: k for k, v in ids.items()}
            print(g.sh("uname -r; cat /proc/cmdline"))
            print(g.sh("dmesg | grep '_OSC: OS now controls' || echo '(no _OSC control granted)'"))
            d = Dump(g.sh("portdump"), dmesg=g.sh("dmesg"),
                     lnkctl_writable=bool(os.environ.get("QEMU")))  # the project's QEMU
            hdr = f"{'port':<14}{'qemu id':<9}{'type':<6}{'driver':<10}{'irq':<7}{'vec':>4}  services"
            print(hdr)
            print("-" * (len(hdr) + 20))
            for p in d.ports:
                if p.type not in ("rp", "usp", "dsp", "rcec"):
                    continue
                st = d.state(p)
                on = [NAMES[s] for s, v in st.items() if v == "on"]
                odd = [f"{NAMES[s]}({v})" for s, v in st.items() if v not in ("on", "off")]
                print(f"{p.bdf:<14}{byaddr.get(p.bdf, '-'):<9}{p.type:<6}{p.driver or 'none':<10}"
                      f"{p.irq_mode(d.handlers(p)):<7}{len(p.msi):>4}  {' '.join(on + odd) or '-'}")
            print()
            print(g.sh("grep -E 'PCI-MSI|PCI-MSIX|aerdrv|pciehp|PME|dpc|bwctrl' /proc/interrupts"
                       " || true"))
            print(g.sh("if [ -d /sys/bus/pci_express ]; then "
                       "echo /sys/bus/pci_express: $(ls /sys/bus/pci_express/devices); "
                       "else echo '/sys/bus/pci_express: none (the PCI core runs the services)'; fi"))
    except GuestError as e:
        sys.exit(f"guest failed: {e}")


if __name__ == "__main__":
    main()
