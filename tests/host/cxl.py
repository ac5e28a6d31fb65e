"""Guest-side helpers for the CXL topologies: DOE interrupt counts, the CDAT
the CXL core read for a switch, and re-creating a switch's cxl port by
binding the memory device below it again.  Used by tests/run.py and
scripts/bench.py."""


def doe_handlers(g, bdf):
    """{MSI-X entry or MSI vector: interrupt count} of the "PCIe DOE"
    handlers on bdf."""
    out = g.sh(f"grep -E 'PCI-MSIX?-{bdf} .*PCIe DOE' /proc/interrupts || true")
    got = {}
    for ln in out.splitlines():
        f = ln.split()
        n = 1
        while n < len(f) and f[n].isdigit():
            n += 1
        entry = f[n + 1].split("-")[0] if n + 1 < len(f) else "?"
        got[int(entry) if entry.isdigit() else entry] = sum(int(x) for x in f[1:n])
    return got


def cdat_of(g, bdf):
    """md5 of the CDAT the CXL core read for the cxl port whose upstream
    device is bdf, "none" if there is no such port or no CDAT."""
    out = g.sh(f"for p in /sys/bus/cxl/devices/port*; do "
               f"case $(readlink -f $p/uport) in */{bdf}) "
               f"test -e $p/CDAT && md5sum < $p/CDAT | cut -d' ' -f1;; esac; done")
    return out.strip() or "none"


def memdev_below(g, bdf):
    """The cxl memdev (memN) of the PCI device bdf."""
    out = g.sh(f"for m in /sys/bus/cxl/devices/mem*; do "
               f"case $(readlink -f $m) in */{bdf}/*) basename $m;; esac; done")
    return out.strip()


def rebind_memdev(g, mem, usp):
    """Unbind and bind cxl_mem on mem, the only memory device below the
    switch whose upstream port is usp: the switch's cxl port goes with its
    last endpoint and comes back (probed asynchronously) with the next, and
    the CXL core reads the switch's CDAT again.  Returns whether the port
    went and came back with its CDAT."""
    has_cdat = (f"for p in /sys/bus/cxl/devices/port*; do "
                f"case $(readlink -f $p/uport) in */{usp}) test -e $p/CDAT && exit 0;; "
                f"esac; done; exit 1")
    g.sh(f"echo {mem} > /sys/bus/cxl/drivers/cxl_mem/unbind")
    gone = g.wait_for(f"! ( {has_cdat} )", timeout=20)
    g.sh(f"echo {mem} > /sys/bus/cxl/drivers/cxl_mem/bind")
    return gone and g.wait_for(has_cdat, timeout=20)
