"""What the emulated platform gives, independent of the kernel under test:
the expectations of the checks come from here, from config space and from
the command line, never from what the kernel under test prints about
itself.

_OSC: QEMU's q35 firmware grants the five controls of its mask 0x1F
(hw/i386/acpi-build.c, build_q35_osc_method(): PCIeHotplug with
acpi-pci-hotplug-with-bridge-support=off, as every guest here boots), and
so does its CXL host bridge (hw/acpi/cxl.c, build_cxl_osc_method()).  The
kernel asks only for what it supports; of the controls the port services
depend on, it asks for PCIeHotplug and PME always and AER unless
pci=noaer, and for nothing at all with pcie_ports=compat ("PCIe port
services disabled") or without MSI ("OS requires ... MSI").

MSI: x86 without interrupt remapping (no IOMMU here) gives a function one
MSI vector, whatever its Multiple Message Capable says.

arm64 (QEMU virt, issue 14): booted through UEFI with ACPI, the generic
host bridge (PNP0A08) has an _OSC that grants the same five controls
(hw/pci-host/gpex-acpi.c, acpi_dsdt_add_pci_osc()).  Booted with a device
tree there is no _OSC at all: the host bridge has no firmware node and the
kernel keeps native control of every service (pci_init_host_bridge()), also
with pci=nomsi; pcie_ports=compat still turns the services off."""

import re

# Host bridge firmware node (as /sys/devices/pciXXXX/firmware_node names it)
# -> the controls its _OSC grants
OSC_GRANT = {
    "PNP0A08": {"PCIeHotplug", "SHPCHotplug", "PME", "AER", "PCIeCapability"},
    "ACPI0016": {"PCIeHotplug", "SHPCHotplug", "PME", "AER", "PCIeCapability"},
}
# The controls the port service rules depend on
SERVICE_CONTROLS = {"PCIeHotplug", "PME", "AER"}

MSI_VECTORS_PER_FUNCTION = 1


def args(cmdline):
    a = cmdline.split()
    pci = ",".join(x[4:] for x in a if x.startswith("pci=")).split(",")
    ports = [x.split("=", 1)[1] for x in a if x.startswith("pcie_ports=")]
    return {"noaer": "noaer" in pci, "nomsi": "nomsi" in pci,
            "ports": ports[-1] if ports else "auto"}


def osc_granted(fw_node, cmdline):
    """The service controls the kernel gets from host bridge `fw_node`
    (e.g. PNP0A08:00; "" for a device tree host bridge, which has no _OSC)
    when booted with `cmdline`."""
    a = args(cmdline)
    if not fw_node:
        return set(SERVICE_CONTROLS)    # a device tree host bridge: no _OSC
    if a["ports"] == "compat" or a["nomsi"]:
        return set()
    grant = OSC_GRANT.get(fw_node.split(":")[0], set()) & SERVICE_CONTROLS
    return grant - ({"AER"} if a["noaer"] else set())


def acs_ctrl(cmdline, bdf, cap, initial=0):
    """The ACS Control a port with ACS Capability `cap` has after the kernel
    applied pci=config_acs= (PCI_ACS_* bit flags, the leftmost character
    the highest bit: '1' sets, '0' clears, 'x' keeps) for `bdf`, from
    `initial` (QEMU resets ACS Control to 0; no IOMMU asks for more here).
    None where config_acs= names no device this rule can match: only the
    forms "@pci:0:0" (every device) and "@<bdf>" are modelled."""
    spec = ",".join(x[4:] for x in cmdline.split() if x.startswith("pci="))
    m = re.search(r"(?:^|,)config_acs=([^,]*)", spec)
    if not m:
        return None
    ctrl = initial
    for part in m.group(1).split(";"):
        flags, _, dev = part.partition("@")
        if dev not in ("pci:0:0", bdf, bdf[5:]):
            continue
        for bit, c in enumerate(reversed(flags)):
            if (cap >> bit) & 1 and c == "1":
                ctrl |= 1 << bit
            elif c == "0":
                ctrl &= ~(1 << bit)
    return ctrl
