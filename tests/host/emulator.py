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
MSI vector, whatever its Multiple Message Capable says."""

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
    (e.g. PNP0A08:00) when booted with `cmdline`."""
    a = args(cmdline)
    if a["ports"] == "compat" or a["nomsi"]:
        return set()
    grant = OSC_GRANT.get(fw_node.split(":")[0], set()) & SERVICE_CONTROLS
    return grant - ({"AER"} if a["noaer"] else set())
