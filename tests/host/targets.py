"""The targets of the series: a target is data, not a copy of the suite.

Each target names its kernel, the features its series has (the rules of
expected.py that turn a base fact into the series' fact), the scenarios of
tests/run.py it runs, and what its unpatched kernel does differently from
the other target's, where a scenario must know.  tests/run.py runs the
scenarios of each target on its base and series kernels and compares each
pair on its own.
"""

import expected


class Target:
    def __init__(self, name, prefix, features, scenarios, behaviour, base_features=(),
                 names=None, skipped=None):
        self.name = name            # kernel version
        self.prefix = prefix        # of the kernels' labels in TAP and logs
        self.features = frozenset(features)
        # expected.py's features (written against 6.12) that the unpatched
        # kernel of this target already has
        self.base_features = frozenset(base_features)
        self.scenarios = scenarios  # names in Suite.plan(); None: all
        self.behaviour = behaviour
        # what the target's series calls the things a scenario uses
        self.names = dict(names or {})
        # scenarios of its list it reports as skipped, with the reason
        self.skipped = dict(skipped or {})

    def has(self, what):
        return self.behaviour[what]


# What the unpatched kernels do differently (the scenarios ask by name):
# - dpc_needs_aer_service: DPC only where the AER service runs, or with
#   pcie_ports=dpc-native, so on a Switch Downstream Port only with
#   dpc-native (6.12: the AER service is for Root Ports and RCECs; 7.3
#   needs only the OS to own AER through _OSC);
# - aer_counts_inaccessible: an error of a device whose AER registers could
#   not be read after ERR_FATAL ("(Inaccessible)") is counted in its
#   aer_dev_* statistics (7.3 counts before it looks at the status);
# - d3_pciehp_x86_only: pci_bridge_d3_possible() keeps native hot-plug
#   ports out of runtime D3 on x86 only (6.12: on every architecture);
# - doe_features_sysfs: a device's DOE features are listed in sysfs
#   (doe_features/, 6.13 and later).
BEHAVIOUR = {
    "6.12": {"dpc_needs_aer_service": True, "aer_counts_inaccessible": False,
             "d3_pciehp_x86_only": False, "doe_features_sysfs": False},
    "7.3": {"dpc_needs_aer_service": False, "aer_counts_inaccessible": True,
            "d3_pciehp_x86_only": True, "doe_features_sysfs": True},
}

# The series' names a scenario needs:
# - msix_fault_fn: the fail_function injection point that fails the
#   allocation of one MSI-X entry of a port's services (msix-alloc-fail);
# - upstream_kunit: upstream's KUnit suites both kernels of the target
#   build (configs/), which must pass on base and series alike (kunit):
#   genirq's irq_test.c, as the series changes kernel/irq/msi.c.
LTS = Target("6.12", "", expected.SERIES_FEATURES, None, BEHAVIOUR["6.12"],
             names={"msix_fault_fn": "pcie_port_msix_alloc_entry"},
             skipped={"hotplug-once": "the arm64 guests' hot-plug scenario; x86 runs "
                                      "hotplug (10 and 3 cycles)",
                      "cma-kernel": "the CMA series (device authentication) is on the "
                                    "mainline target only",
                      "cma-endpoint": "the CMA series (device authentication) is on the "
                                      "mainline target only"})

# Series v2 (patches/mainline): its features are expected.V2_FEATURES (a
# patch that changes what users see adds its feature there in the commit
# that updates patches/mainline).  It runs every scenario of Suite.plan()
# (v1's CXL and DOE features are in the CXL and DOE series of v2).  7.3 has
# upstream's bandwidth controller (v1's "bwctrl" feature) in its base.
MAINLINE = Target("7.3", "mainline-", expected.V2_FEATURES, [
    "aer",
    "dpc",
    "dpc-pcie_ports=dpc-native",
    "hotplug",
    "hotplug-msix",
    "rescan",
    "runtime-pm",
    "runtime-pm-pcie_port_pm=off",
    "runtime-pm-pcie_port_pm=force",
    "runtime-pm-project",
    "s2idle",
    "s2idle-surprise",
    "services-basic",
    "services-cxl",
    "cmdline-pcie_ports=compat",
    "cmdline-pcie_ports=native",
    "cmdline-pci=noaer",
    "cmdline-pcie_pme=nomsi",
    "cmdline-pci=nomsi",
    "cmdline-pci=nomsi+pcie_ports=native",
    "cmdline-config_acs",
    "services-iommu",
    "hotplug-iommu",
    "aer-qemu",
    "aer-qemu-project",
    "services-msix",
    "services-dpc",
    "services-dpc-pcie_ports=dpc-native",
    "rebind",
    "link-bw",
    "runtime-pm-project-pcie_port_pm=off",
    "runtime-pm-project-pcie_port_pm=force",
    "msix-alloc-fail",
    "kunit",
    "port-pool",
    "port-pool-msi",
    "port-pool-intx",
    "services-cxl-project",
    "cxl-project",
    "cxl-switch-pmu",
    "doe-irq",
    "cma-emulation",
    "cma-kernel",
    "cma-endpoint",
], BEHAVIOUR["7.3"], base_features={"bwctrl"},
    names={"msix_fault_fn": "pci_port_msix_alloc_at", "upstream_kunit": ["irq_test_cases"]})


# The scenarios the arm64 guests run (QEMU virt, Debian's
# qemu-system-aarch64; issue 14), on the device tree and the ACPI boot:
# the services, their interrupts with MSI-X (ITS), MSI and INTx
# (pci=nomsi: the INTx line is assigned only when a driver binds, on these
# platforms), ACS and the ports' IOMMU groups behind the SMMUv3, AER through
# aer_inject and through the emulator, and hot-plug, whose interrupts are
# MSI writes through the SMMU to the ITS.
ARM64_SCENARIOS = [
    "services-basic",
    "cmdline-pci=nomsi",
    "cmdline-pci=nomsi+pcie_ports=native",
    "cmdline-config_acs",
    "aer",
    "aer-qemu",
    # One device_add/device_del per slot with the default policy, then 2
    # and 1 with the port kept active (power/control "on").  Off x86, 7.3's
    # pci_bridge_d3_possible() lets a native hot-plug port runtime-suspend
    # once its slot is empty; pciehp then disables its interrupt and waits for a PME, which QEMU
    # 7.2's ports (no Power Management capability) cannot send, so the
    # next hot-add goes unseen, on base and series alike (the scenario
    # records the port's runtime status after the cycles).  Real ports
    # have the capability; x86 runs hotplug (10 and 3 cycles), and a hot-add
    # through a PME into a port in D3hot runs in runtime-pm-project.
    "hotplug-once",
]

# Known defects of a kernel under test, which a check shows and which are
# not fixed yet (issue 14): (regular expression on the check's name, the
# defect).  Such a check is reported as TAP '# TODO <defect>' and counted
# in the closing line's "N known defects" when it fails; one that passes is
# named at the end.  Never a base kernel's behaviour that the series
# merely shares: the differential covers those.
# v2 has none: it had the SMMU one below on arm64 until it configured a
# port's DMA before its first MSI (patches 4 and 16).  v1 (the 6.12 target,
# labels "arm64-...") has both below, seen on arm64 on 2026-12-04; the fix
# is v2's, not backported yet.
V1_INTX = ("v1 sets up a port's INTx services before the line is assigned: on device-tree "
           "and arm64 ACPI hosts only driver probe does (pci_assign_irq(), "
           "pcibios_alloc_irq()), and no driver binds to ports")
V1_SMMU = ("v1 allocates a port's MSIs before pci_dma_configure() attaches it to its SMMU, "
           "so the ITS doorbell is never mapped for it and its MSI writes abort; a port no "
           "driver binds to gets no IOMMU group at all")
_NOMSI_RP = (r"0000:00:0{}\.[01]( \(rp\) (services are those the capabilities, _OSC and "
             r"command line permit|interrupt mode))?")
_AER_QEMU = (r"QEMU pcie_aer_inject_error (nonfatal at (rp1|up1|dp1)|fatal at (rp1|dp1)) "
             r"\([0-9a-f:.]+\): aer_dev_\* counters of [0-9a-f:.]+ moved by one \w+|"
             r"QEMU pcie_aer_inject_error \w+ at (rp1|up1|dp1) \([0-9a-f:.]+\): "
             r"(the error is reported in dmesg|error recovery reported success)|"
             r"rasdaemon has a record of each of the \d+ injected errors")
KNOWN_DEFECTS = [
    # pci=nomsi: the Root Ports' services (on ACPI without pcie_ports=native
    # not 00:03.0, whose services _OSC leaves to firmware on both kernels)
    (r"^arm64-dt-(series|differential): cmdline-pci=nomsi(\+pcie_ports=native)?: (" +
     _NOMSI_RP.format("[2-5]") + r"|kselftest( pcie_port_services passes)?)$", V1_INTX),
    (r"^arm64-acpi-(series|differential): cmdline-pci=nomsi: " + _NOMSI_RP.format("[245]") +
     r"$", V1_INTX),
    (r"^arm64-acpi-(series|differential): cmdline-pci=nomsi\+pcie_ports=native: (" +
     _NOMSI_RP.format("[2-5]") + r"|kselftest( pcie_port_services passes)?)$", V1_INTX),
    # Without cxl_pci_port (blacklisted there), no driver configures DMA
    (r"^arm64-(dt|acpi)-series: cmdline-config_acs: 0000:[0-9a-f:.]+ \((rp|usp|dsp)\) is in "
     r"an IOMMU group \(SMMUv3\)$", V1_SMMU),
    (r"^arm64-(dt|acpi)-differential: cmdline-config_acs: 0000:[0-9a-f:.]+$", V1_SMMU),
    # AER and hot-plug interrupts are MSI writes through the SMMU
    (r"^arm64-(dt|acpi)-series: aer-qemu: (" + _AER_QEMU + r")$", V1_SMMU),
    (r"^arm64-(dt|acpi)-series: hotplug-once: \d (device_add/device_del|more) cycles on "
     r"(rp2|dp2) ", V1_SMMU),
    (r"^arm64-(dt|acpi)-differential: hotplug-once: (rp2|dp2)( kept active)?$", V1_SMMU),
    (r"^arm64-(dt|acpi)-differential: aer-qemu: (counters|rasdaemon records)$", V1_SMMU),
]
