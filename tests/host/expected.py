"""Behaviour that must differ between the base kernel and the series: the one
place where intended differences are listed.  The differential check
(tests/run.py) requires every fact recorded on the series kernel to equal the
base kernel's, transformed by the rules of the features listed in
SERIES_FEATURES, so a difference that is not listed here fails, and so does a
listed one that does not happen.

A patch that changes what users see adds its feature to SERIES_FEATURES (and,
if new, its rule to RULES) in the same commit that updates patches/.
"""

# Features the exported series (patches/) has.
SERIES_FEATURES = {
    "msix-exact",   # PCI/portdrv: Allocate only the MSI-X vectors the services use
    "kunit-portdrv",  # PCI/portdrv: Add KUnit tests for the services' Interrupt Message Numbers
    "core-owned-vectors",  # PCI/portdrv: Let the PCI core own the services' interrupts
    "bwctrl",       # PCI/bwctrl: Handle link bandwidth notification in the PCI core
    "bwctrl-log",   # (the same patch: link changes are logged)
    "core-services",  # PCI/portdrv: Keep the services running without the port's driver
    "irq-pool",     # PCI/MSI: Let drivers on a port take interrupts from the pool (+ test driver)
    "no-port-driver",  # PCI/portdrv: Manage ports in the PCI core, without a driver
    "pme-in-core",  # PCI/PME: Run PME in the PCI core, without a service device
    "dpc-in-core",  # PCI/DPC: Run DPC in the PCI core, without a service device
    "aer-in-core",  # PCI/AER: Run AER in the PCI core, without a service device
    "msix-alloc-fault-injection",  # PCI/portdrv: Let fault injection fail the services' MSI-X
    "hp-in-core",   # PCI: pciehp: Run native hot-plug in the PCI core, without a service device
    "no-service-bus",  # PCI/portdrv: Remove the port service bus and its driver registration
    "cxl-port-pmu",  # cxl/pci_port: Register the CPMUs of CXL Root and Switch Ports
    "cxl-port-rpm",  # (the same: it drops the probe runtime PM reference)
                     # + perf/cxl: Keep the device of a CPMU in D0 while it has events
    "doe-irq",      # PCI/DOE: Let the DOE mailboxes of ports interrupt
    "doe-irq-msi",  # PCI/DOE: Interrupt on MSI, and on ports that have no services
    "cxl-pmu-msg-num-0",  # perf/cxl: Accept a CPMU that interrupts on Interrupt Message Number 0
}

# Features series v2 (patches/mainline, on 7.3) has so far.
V2_FEATURES = {
    "msix-exact",   # PCI/portdrv: Let the PCI core set up the interrupts of port services
    "core-owned-vectors",  # (same patch)
    "msix-alloc-fault-injection",  # (same patch: pci_port_msix_alloc_at())
    "kunit-port-irq",  # PCI/portdrv: Add KUnit tests for the interrupts of port services
    "aer-in-core",  # PCI/AER: Run AER as a PCI core feature, without a port service driver
    "pme-in-core",  # PCI/PME: Run PME as a PCI core feature, without a port service driver
    "dpc-in-core",  # PCI/DPC: Run DPC as a PCI core feature, without a port service driver
    "hp-in-core",   # PCI: pciehp: Run native hot-plug as a PCI core feature
    "bw-in-core",   # PCI/bwctrl: Run bandwidth control as a PCI core feature
    "core-services",  # (the same: every service runs without the port's driver)
    "no-service-devices",  # (the same: portdrv creates no service device)
    "irq-pool",     # PCI/portdrv: Let drivers bound to a port take interrupts from its pool
                    # (+ PCI/portdrv: Add a test driver for the interrupt pool of ports)
    "no-service-bus",  # PCI/portdrv: Remove the port service bus and its driver interface
    "no-port-driver",  # PCI/portdrv: Manage ports in the PCI core and remove the pcieport driver
    "pool-demux",   # (PCI/portdrv: ... pool: a driver sharing a services' vector gets an
                    # interrupt of its own, raised by the core's "pcie-pool" handler)
    # The CXL series (patches/mainline-cxl)
    "cxl-pmu-msg-num-0",  # perf/cxl: Accept a CPMU that interrupts on Interrupt Message Number 0
    "cxl-port-pmu",  # cxl/pci_port: Register the CPMUs of CXL Root and Switch Ports
    "cxl-port-rpm",  # (the same: it drops the probe runtime PM reference)
    # The DOE series (patches/mainline-doe)
    "doe-irq",      # PCI/DOE: Let the DOE mailboxes of ports interrupt
    "doe-irq-msi",  # PCI/portdrv: Set up the interrupts of ports without services for DOE
    # The CMA series (patches/mainline-cma)
    "kunit-spdm",   # lib/spdm: Add KUnit tests
    "cma",          # PCI/CMA: Authenticate devices through their CMA mailbox
}


def _core_owned_vectors(scen, key, v):
    """The core allocates a port's service interrupts when it adds the port
    and frees them when it removes it: with the port's driver unbound they
    stay (base: portdrv frees them on unbind, and the MSI sysfs goes with
    them)."""
    if key.endswith("vectors kept while unbound"):
        return True
    return v


def _core_services(scen, key, v):
    """The core starts a port's services when it adds the port and stops
    them when it removes it; unbinding the port's driver leaves them
    running (base: the service devices go with portdrv)."""
    if key.endswith("services kept while unbound"):
        return True
    return v


def _no_port_driver(scen, key, v):
    """No driver binds to ports: the core does what portdrv's probe, PM
    and error handlers did, and the port's pci_dev is free for drivers such
    as CXL PMU or DOE users (base: "pcieport" on every port it manages).
    The rebind scenario then binds and unbinds the pool test driver."""
    if isinstance(v, dict) and v.get("driver") == "pcieport":
        return dict(v, driver="none")
    if key == "port driver" and v == "pcieport":
        return "pcie_port_pool_test"
    return v


def _service_in_core(service):
    def rule(scen, key, v):
        if isinstance(v, dict) and service in v.get("services", "").split(","):
            return dict(v, child_devices=v["child_devices"] - 1,
                        service_devices=v["service_devices"] - 1)
        return v
    return rule


_pme_in_core = _service_in_core("pme")
_pme_in_core.__doc__ = """The core runs PME itself: a Root Port or RCEC with
    PME active has one device less below it (its pcie001 service device on
    /sys/bus/pci_express is gone).  The handler ("PCIe PME"), the enable
    bit and the messages stay."""

_dpc_in_core = _service_in_core("dpc")
_dpc_in_core.__doc__ = """The core runs DPC itself: a port with DPC active
    has one device less below it (pcie008).  The handler ("pcie-dpc"), the
    enable bits, the messages and recovery stay."""

_aer_in_core = _service_in_core("aer")
_aer_in_core.__doc__ = """The core runs AER itself: a Root Port or RCEC with
    AER active has one device less below it (pcie002).  The handler
    ("aerdrv"), the enable bits, the messages, statistics, recovery and
    aer_inject stay."""

_hp_in_core = _service_in_core("hp")
_hp_in_core.__doc__ = """The core runs pciehp itself: a port with native
    hot-plug active has one device less below it (pcie004, pcie204 below a
    Downstream Port).  The handler ("pciehp"), slots, messages, hot-plug
    and surprise removal, PM and error recovery of the slot stay."""

_bw_in_core = _service_in_core("bw")
_bw_in_core.__doc__ = """The core runs bandwidth control itself (7.3 base:
    a port service driver): a port with it active has one device less
    below it (pcie010).  The handler ("PCIe bwctrl"), the enable bits,
    link speed tracking and the cooling device stay."""


def _no_service_devices(scen, key, v):
    """portdrv creates no service device: those base leaves without a
    driver go too (pciehp's on a port without an interrupt, which it
    cannot run there unless told to poll).  /sys/bus/pci_express stays,
    empty, until the bus goes ("no-service-bus")."""
    if isinstance(v, dict) and "service_devices" in v:
        return dict(v, child_devices=v["child_devices"] - v["service_devices"],
                    service_devices=0)
    return v


def _no_service_bus(scen, key, v):
    """/sys/bus/pci_express is gone with struct pcie_device: no port has
    service devices left (base also has a driverless pcie010 for link
    bandwidth notification on ports whose link supports it)."""
    if key == "pci_express_bus" and v is True:
        return False
    if isinstance(v, dict) and "service_devices" in v:
        return dict(v, child_devices=v["child_devices"] - v["service_devices"],
                    service_devices=0)
    return v


def _cxl_port_pmu(scen, key, v):
    """cxl_pci_port binds to CXL ports with CPMUs and registers them with
    cxl_pmu (base: no driver for port CPMUs).  In the cxl-project topology
    crp0's CPMU (MSI-X entry 2 from the core's pool) becomes
    cxl_pmu_port0.0 and its overflow interrupt is handled; the switch
    ports' CPMUs interrupt on MSI vector 1, which x86 without interrupt
    remapping cannot give, and stay unregistered."""
    if key == "port pmus" and v == []:
        return ["crp0"]
    if key == "crp0 CPMU overflow" and v == "pending":
        return "handled"
    # crp0 of the cxl-project topology: bound to cxl_pci_port, one more
    # vector (the CPMU's MSI-X entry) and two more devices (the cxl bus's
    # pmu_port and the perf PMU below it)
    if scen == "services-cxl-project" and key == "0000:0c:00.0" and isinstance(v, dict):
        return dict(v, driver="cxl_pci_port", vectors=v["vectors"] + 1,
                    child_devices=v["child_devices"] + 2)
    return v


def _msix_exact(scen, key, v):
    """An MSI-X port holds one vector per distinct Interrupt Message Number
    its services use (base: every entry up to the highest number), and a
    message number beyond the MSI-X table is reported in dmesg (base: INTx
    without a word)."""
    if not isinstance(v, dict) or "msg_nums" not in v:
        return v
    v = dict(v)
    # base holds every entry up to the highest number; only that is turned
    # into the exact count, so a base that did otherwise still shows
    if v["mode"] == "msix" and v["msg_nums"] and v["vectors"] == max(v["msg_nums"]) + 1:
        v["vectors"] = len(v["msg_nums"])
    if v["msix_table"] and v["msg_nums"] and max(v["msg_nums"]) >= v["msix_table"]:
        v["msix_warning"] = True
    return v


def _bwctrl_log(scen, key, v):
    """v1's bandwidth notification also logs each link change ("bwctrl:
    managed link change: ..."); 7.3's does not.  Logs are no facts, so
    nothing changes here: the link-bw scenario looks for the lines."""
    return v


def _bwctrl(scen, key, v):
    """The core handles link bandwidth notification (base 6.12 has no
    driver for it): ports whose link has LBNC and more than one speed get
    "PCIe bwctrl" on the PCI Express Capability's vector.  Which services
    are active is checked against ports.py's rules (Dump.expected), so the
    per-port facts only gain "bw" in their service list."""
    if not isinstance(v, dict) or "services" not in v or not v.get("bw_capable"):
        return v
    v = dict(v)
    svcs = set(v["services"].split(",")) - {"-"}
    v["services"] = ",".join(sorted(svcs | {"bw"}))
    # bw shares the PCI Express Capability's vector with PME and hot-plug;
    # alone on a port it gives the port its interrupt mode
    v["msg_nums"] = sorted(set(v["msg_nums"]) | {v["bw_msg_num"]})
    if not svcs:
        v["mode"] = v["bw_mode"]
    return v


def _doe_irq(scen, key, v):
    """The DOE mailboxes of ports whose interrupts the core owns interrupt
    on the entry their Interrupt Message Number names when the MSI-X table
    has it (doe-irq scenario, topology cxl-doe); base polls them all.  In
    the cxl-project topology crp0 holds one more vector, its DOE's entry 3."""
    if scen == "services-cxl-project" and key == "0000:0c:00.0" and isinstance(v, dict):
        return dict(v, vectors=v["vectors"] + 1)
    if scen != "doe-irq":
        return v
    if key == "DOE interrupt entries" and isinstance(v, dict):
        return dict(v, **{p: e for p, e in (("crp0", [3]), ("crp2", [2])) if v.get(p) == []})
    if key == "crp2 DOE interrupt after rescans" and isinstance(v, list):
        return [([2], ok) if entries == [] else (entries, ok) for entries, ok in v]
    return v


def _cxl_pmu_msg_num_0(scen, key, v):
    """cxl_pmu accepts a CPMU that interrupts on Interrupt Message Number 0:
    in topology cxl-switch-pmu the switch ports' CPMUs, on MSI vector 0,
    are registered next to crp0's, and their overflows are handled (base:
    no driver for port CPMUs, the overflow status stays)."""
    if scen != "cxl-switch-pmu":
        return v
    if key == "port pmus" and isinstance(v, list) and not {"cus0", "cds0"} & set(v):
        return sorted(set(v) | {"cus0", "cds0"})
    if key in ("cus0 CPMU overflow", "cds0 CPMU overflow") and v == "pending":
        return "handled"
    return v


def _doe_irq_msi(scen, key, v):
    """The core also sets up the interrupts of a port that has no services
    but a DOE mailbox that can interrupt, and sizes MSI for the mailboxes'
    message numbers: the switch upstream port cus0 (MSI only) interrupts
    on vector 0 in topology cxl-doe.  In cxl-project its mailbox names
    vector 1, which x86 without interrupt remapping does not give: the
    core enables MSI with one vector (services-cxl and
    services-cxl-project: one more vector on cus0; stock QEMU's mailbox is
    on vector 1 too) and the mailbox is polled, so the switch ports' CPMUs
    both report the missing vector from the pool."""
    if scen == "doe-irq" and key == "DOE interrupt entries" and isinstance(v, dict) \
            and v.get("cus0") == []:
        return dict(v, cus0=[0])
    if scen in ("services-cxl", "services-cxl-project") and key == "0000:0e:00.0" \
            and isinstance(v, dict):
        return dict(v, vectors=v["vectors"] + 1)
    if scen == "cxl-project" and key == "cus0 MSI" and v == "1/2 Enable-":
        return "1/2 Enable+"
    return v


def _kunit_suite(feature):
    """The series adds a KUnit suite, run at boot (base has none of the
    series' suites)."""
    suite = KUNIT_SUITES[feature]

    def rule(scen, key, v):
        if scen == "kunit" and key == "suites" and isinstance(v, list) and suite not in v:
            return sorted(v + [suite])
        return v
    return rule


def _irq_pool(scen, key, v):
    """Drivers bound to a port take interrupts from the core's pool; the
    test driver pcie_port_pool_test exercises it (base: no pool, no test
    driver, and the port-pool scenarios stop there)."""
    if key == "pool test driver" and v is False:
        return True
    return v


def _msix_alloc_fault_injection(scen, key, v):
    """The series' MSI-X entry allocation is a fail_function injection
    point (v1 pcie_port_msix_alloc_entry(), v2 pci_port_msix_alloc_at();
    base allocates a port's vectors in one go and has none): the
    msix-alloc-fail scenario runs only on the series."""
    if scen == "msix-alloc-fail" and key == "injection point" and v is False:
        return True
    return v


def _cma(scen, key, v):
    """Devices with a CMA mailbox are authenticated by the kernel's SPDM
    requester; base has no authenticated attribute (cma-kernel: each
    root port's result once the harness's root is trusted, cma-endpoint:
    each CXL memory device's; tests/host/cma.py)."""
    if scen in ("cma-kernel", "cma-endpoint") and v == "absent":
        import cma
        behave = key.split(" ", 1)[0]
        return cma.KERNEL[behave][0] if behave in cma.KERNEL else v
    return v


# KUnit suites the series adds (configs/series.config builds them in); the
# base kernel has none of its own.
KUNIT_SUITES = {
    "kunit-portdrv": "pcie-portdrv",    # v1
    "kunit-port-irq": "pci-port-irq",   # v2
    "kunit-spdm": "spdm",               # v2's CMA series
}

# feature -> function(scenario, key, base_value) -> series value
RULES = {
    "msix-exact": _msix_exact,
    "kunit-portdrv": _kunit_suite("kunit-portdrv"),
    "kunit-port-irq": _kunit_suite("kunit-port-irq"),
    "kunit-spdm": _kunit_suite("kunit-spdm"),
    "core-owned-vectors": _core_owned_vectors,
    "bwctrl": _bwctrl,
    "bwctrl-log": _bwctrl_log,
    "core-services": _core_services,
    "irq-pool": _irq_pool,
    "no-port-driver": _no_port_driver,
    "pme-in-core": _pme_in_core,
    "dpc-in-core": _dpc_in_core,
    "aer-in-core": _aer_in_core,
    "msix-alloc-fault-injection": _msix_alloc_fault_injection,
    "hp-in-core": _hp_in_core,
    "bw-in-core": _bw_in_core,
    "no-service-devices": _no_service_devices,
    "no-service-bus": _no_service_bus,
    "cxl-port-pmu": _cxl_port_pmu,
    "doe-irq": _doe_irq,
    "doe-irq-msi": _doe_irq_msi,
    "cxl-pmu-msg-num-0": _cxl_pmu_msg_num_0,
    "cma": _cma,
}


def series_value(scen, key, base_value, series_has=SERIES_FEATURES):
    # In the order of RULES, which is the order of the patches
    value = base_value
    for feature, rule in RULES.items():
        if feature in series_has:
            value = rule(scen, key, value)
    return value


def features():
    return set(SERIES_FEATURES)


# Keys of the per-port facts that are read from config space (the
# emulator's, identical on both kernels by construction) and given to the
# rules as context: the differential does not count them as evidence.
CONTEXT_KEYS = {"type", "msix_table", "bw_capable", "bw_msg_num", "bw_mode"}


def evidence(v):
    """A fact without its context keys, for the comparison."""
    if isinstance(v, dict) and CONTEXT_KEYS & set(v):
        return {k: x for k, x in v.items() if k not in CONTEXT_KEYS}
    return v
