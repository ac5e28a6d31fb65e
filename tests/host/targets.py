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
#   ports out of runtime D3 on x86 only (6.12: on every architecture).
BEHAVIOUR = {
    "6.12": {"dpc_needs_aer_service": True, "aer_counts_inaccessible": False,
             "d3_pciehp_x86_only": False},
    "7.3": {"dpc_needs_aer_service": False, "aer_counts_inaccessible": True,
            "d3_pciehp_x86_only": True},
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
                                      "hotplug (10 and 3 cycles)"})

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
    # One device_add/device_del per slot: on QEMU 7.2's virt the unpatched
    # 7.3 misses every hot-plug event of a slot after its first removal, on
    # both boots (not analysed yet; q35 runs 10 and 3 cycles)
    "hotplug-once",
]

# Known defects of a kernel under test, which a check shows and which are
# not fixed yet (issue 14): (regular expression on the check's name, the
# defect).  Such a check is reported as TAP '# TODO <defect>' and counted
# in the closing line's "N known defects" when it fails; one that passes is
# named at the end.  Never a base kernel's behaviour that the series
# merely shares: the differential covers those.
# None today.  v2 had one on arm64 until it configured a port's DMA before
# its first MSI (SMMUv3: the ITS doorbell was never mapped for the port, so
# the SMMU dropped its MSI writes: aer-qemu and hotplug-once failed).
KNOWN_DEFECTS = []
