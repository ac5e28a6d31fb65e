"""CMA/SPDM on the project's QEMU (issue 15): the emulation, end to end.

The project's QEMU (qemu/patches) gives pcie-root-port, cxl-rp and
cxl-type3 a DOE mailbox that carries CMA/SPDM (spdm-port=PORT) and forwards
each request to an SPDM responder on the host (spdm_responder.py, one per
device, each with its own behaviour).  The kernels under test have no SPDM
requester yet, so the harness's requester (spdm_check.py) drives each
mailbox from the guest through config space (tests/guest/doe-xfer): what
it concludes must be what the self-test concludes over the socket, and the
kernel must list the CMA feature among the mailbox's DOE features.

The responders' self-test (spdm_check.check_all()) is a static check: it
needs no guest.
"""
import hashlib
import os
import re
import shutil
import tempfile

import cxl
import sleep
import spdm_check
import spdm_responder
from qemu import pci_ids

KEY = "ecdsa-p384"
# What the requester concludes of each responder (spdm_check.EXPECTED).
# "oversized": the project's QEMU passes the whole answer to the guest,
# which rejects it as larger than its DataTransferSize; "silent": QEMU
# disconnects the responder after 2 s and the mailbox never answers.
VERDICTS = {"good": "authenticated", **spdm_check.EXPECTED,
            **{b: "authenticated" for b in spdm_check.RETRIED}}
DOE_CMA = "0001:01"     # doe_features: PCI-SIG, CMA/SPDM


class Prefixed:
    """A tap.Reporter whose check names start with `prefix`."""

    def __init__(self, r, prefix):
        self.r, self.prefix = r, prefix

    def ok(self, cond, name, diag=None):
        return self.r.ok(cond, self.prefix + name, diag)

    def eq(self, got, want, name, diag=None):
        return self.r.eq(got, want, self.prefix + name, diag)


def check_responder(r):
    """The SPDM responder's self-test, over its socket (about 15 s)."""
    spdm_check.check_all(Prefixed(r, "static: spdm responder: "))


class GuestTransport:
    """A device's CMA mailbox, driven from the guest with doe-xfer: the DOE
    data object in, the response object out.  Exit 2 is doe-xfer's "no
    Data Object Ready within 2 s": the device discarded the request."""

    def __init__(self, g, bdf):
        self.g, self.bdf = g, bdf

    def xfer(self, req, obj):
        rc, out = self.g.run(f"doe-xfer {self.bdf} {obj.hex()}", timeout=30, check=False)
        spdm_check.need(rc != 2, "timeout", f"no answer to {spdm_responder.describe(req)}")
        spdm_check.need(rc == 0, "doe", f"doe-xfer {rc}: {out}")
        return bytes.fromhex(out.strip())

    def close(self):
        pass


class Responders:
    """One responder per behaviour, and the root ports that use them."""

    def __init__(self, behaviours=tuple(VERDICTS)):
        self.tmp = tempfile.mkdtemp(prefix="pcie-cma-")
        self.certs = spdm_responder.make_chain(os.path.join(self.tmp, KEY), KEY)
        self.running = {}
        try:
            for b in behaviours:
                self.running[b] = spdm_check.Responder(self.certs, KEY, b,
                                                       extra=("--keep-open",))
        except BaseException:
            self.close()
            raise

    def port_id(self, behave):
        return "cma-" + behave

    def qemu_args(self, delay_us=0):
        """A pcie-root-port per responder (2-entry MSI-X table, the DOE
        interrupt on entry 1), on slots 0x10 and up of pcie.0; each DOE
        response ready `delay_us` after the request (doe-delay-us)."""
        args = []
        for i, (b, resp) in enumerate(self.running.items()):
            slot, fn = 0x10 + i // 8, i % 8
            opts = ["pcie-root-port", f"id={self.port_id(b)}", "bus=pcie.0",
                    f"chassis={40 + i}", f"slot={40 + i}", f"addr={slot:#x}.{fn:#x}",
                    "msix-vectors=2", "doe-msg-num=1", f"spdm-port={resp.address[1]}"]
            if delay_us:
                opts.append(f"doe-delay-us={delay_us}")
            if fn == 0:
                opts.append("multifunction=on")
            args += ["-device", ",".join(opts)]
        return args

    def close(self):
        for resp in self.running.values():
            resp.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


# What the kernel's requester (the CMA series, lib/spdm.c) concludes of each
# responder once their root is in the .cma keyring, and the line of its log
# that says why.  "expired" authenticates: like the rest of the kernel's
# certificate handling, it does not check validity dates (nothing tells it
# the time it can trust while devices are enumerated).
KERNEL = {
    "good": ("1", "CMA: authenticated"),
    "bad-signature": ("0", "CHALLENGE_AUTH signature does not verify"),
    "untrusted-root": ("0", "is not signed by a trusted root"),
    "expired": ("1", "CMA: authenticated"),
    "malformed-cert": ("0", "cannot be parsed"),
    "wrong-nonce": ("0", "CHALLENGE_AUTH signature does not verify"),
    "truncated": ("0", "truncated CHALLENGE_AUTH response"),
    "oversized": ("0", "is larger than 4096 bytes"),
    "bad-version": ("0", "no common version"),
    "silent": ("0", "no response to request"),
    "busy": ("1", "CMA: authenticated"),
    "not-ready": ("1", "CMA: authenticated"),
}
# What the responder's log shows of a requester that retried
RETRY_SIGN = {"busy": "-> ERROR Busy", "not-ready": "RESPOND_IF_READY"}

CMA_FACT = "{} authenticated with the root trusted"

# The responders that present their whole certificate chain: the kernel
# shows it in certificates/slot0, trusted or not ("oversized" never gets a
# portion through, "bad-version" and "silent" never get that far).  Those
# that authenticate also give their signed measurements.
PRESENTS_CHAIN = ("good", "bad-signature", "untrusted-root", "expired", "malformed-cert",
                  "wrong-nonce", "truncated", "busy", "not-ready")
EMPTY = hashlib.md5(b"").hexdigest()


def authenticated(g, bdf):
    """A device's authenticated attribute, or "absent" (no CMA in the kernel)."""
    rc, out = g.run(f"cat /sys/bus/pci/devices/{bdf}/authenticated", check=False)
    return out.strip() if rc == 0 else "absent"


def sysfs_md5(g, bdf, attr):
    """md5 of a device's binary attribute, "absent" if it has none."""
    rc, out = g.run(f"md5sum < /sys/bus/pci/devices/{bdf}/{attr}", check=False)
    return out.split()[0] if rc == 0 and out.split() else "absent"


def want_sysfs(certs, behave):
    """(md5 of certificates/slot0, md5 of measurements) the kernel shows
    for a responder of `behave` once it has authenticated it again."""
    chain = meas = b""
    if behave in PRESENTS_CHAIN:
        chain = b"".join(spdm_responder.load_identity(certs, KEY, behave)[0])
    if KERNEL[behave][0] == "1":
        # The responder prefers SHA-384, which the kernel offers
        blocks = spdm_responder.measurement_blocks(spdm_responder.HASHES[0x02])
        meas = b"".join(blocks.values())
    return hashlib.md5(chain).hexdigest(), hashlib.md5(meas).hexdigest()


def new_log(g, seen, bdf):
    """The CMA and SPDM lines of bdf in dmesg after its first `seen` lines."""
    return g.sh(f"dmesg | tail -n +{seen + 1} | grep -E '{bdf}: (CMA|SPDM):' || true")


def wait_result(g, seen, bdf, timeout=30):
    """Wait for the kernel's verdict on bdf after dmesg's first `seen`
    lines (after a reset or a resume it authenticates in the background)."""
    return g.wait_for(f"dmesg | tail -n +{seen + 1} | "
                      f"grep -qE '{bdf}: CMA: (not )?authenticated'", timeout=timeout)


def check_result(suite, t, g, rs, b, bdf, seen, when):
    """The device of responder `b` was authenticated again since dmesg's
    first `seen` lines: its attribute, the log's reason, its certificate
    chain and measurements are the responder's."""
    wait_result(g, seen, bdf)
    got = authenticated(g, bdf)
    log = new_log(g, seen, bdf)
    want, why = KERNEL[b]
    done = "CMA: authenticated" in log or "CMA: not authenticated" in log
    suite.r.ok(got == want and why in log and done,
               t(f"{b}: {when}: authenticated {want}, the log says '{why}'"),
               f"authenticated {got}\n{log}\nresponder:\n{rs.running[b].tail()}")
    sysfs = (sysfs_md5(g, bdf, "certificates/slot0"), sysfs_md5(g, bdf, "measurements"))
    chain, meas = want_sysfs(rs.certs, b)
    suite.r.eq(sysfs, (chain, meas),
               t(f"{b}: {when}: certificates/slot0 is the chain it presented"
                 f"{'' if chain != EMPTY else ' (none)'}, measurements "
                 f"{'its signed ones' if meas != EMPTY else 'empty'}"))
    return got


def kernel_scenario(suite, k, name):
    """The kernel's SPDM requester authenticates each root port through its
    CMA mailbox.  At boot the .cma keyring is empty: no port authenticates.
    Once the harness's root is trusted (cma-trust), writing to each port's
    authenticated attribute authenticates it again: the result is each
    responder's (KERNEL), the log says why, and the exchange interrupts on
    the ports' DOE entry.  Base has no CMA: the ports work, without the
    attribute (fact "absent"; intended difference "cma")."""
    rs = Responders()
    run_kernel(suite, k, name, rs, "basic", rs.qemu_args(), kernel_checks)


def run_kernel(suite, k, name, rs, topology, extra, checks):
    """Boot with `rs`'s devices; on a kernel with CMA run `checks`, on one
    without record each device's attribute as "absent"."""
    try:
        with suite.guest(k, name, topology=topology, project_qemu=True, extra=extra) as g:
            ids, _ = pci_ids(g.qmp)
            devs = {b: ids[rs.port_id(b)] for b in rs.running}
            facts = k.facts.setdefault(name, {})
            boot = {b: authenticated(g, bdf) for b, bdf in devs.items()}
            if set(boot.values()) == {"absent"}:
                for b in devs:
                    facts[CMA_FACT.format(b)] = "absent"
            else:
                t = lambda what: suite.t(k, f"{name}: {what}")  # noqa: E731
                checks(suite, t, g, rs, devs, boot, facts)
            suite.dmesg_clean(k, g, name)
    finally:
        rs.close()


def authenticate_each(suite, t, g, rs, devs, boot, facts, kind, after):
    """None of `devs` authenticates at boot; once the harness's root is
    trusted, each does on demand as its responder behaves.  after(b, bdf,
    before) checks what else an exchange shows (`before`: the device's DOE
    interrupt counts before it)."""
    suite.r.eq(boot, {b: "0" for b in devs},
               t(f"no {kind} authenticates at boot, the .cma keyring being empty"))
    root = spdm_responder._read(os.path.join(rs.certs, "root.der"))
    rc, out = g.run(f"cma-trust {root.hex()}", check=False)
    suite.r.ok(rc == 0, t("the harness's root certificate goes into .cma"), out)
    for b, bdf in devs.items():
        before = cxl.doe_handlers(g, bdf)
        seen = int(g.sh("dmesg | wc -l"))
        g.run(f"echo 1 > /sys/bus/pci/devices/{bdf}/authenticated", timeout=60,
              check=False)
        facts[CMA_FACT.format(b)] = check_result(suite, t, g, rs, b, bdf, seen, "on demand")
        if b in RETRY_SIGN:
            log = rs.running[b].text()
            suite.r.ok(RETRY_SIGN[b] in log,
                       t(f"{b}: the kernel retried ('{RETRY_SIGN[b]}' in the responder's log)"),
                       log[-1500:])
        after(b, bdf, before)


def kernel_checks(suite, t, g, rs, ports, boot, facts):
    def interrupts(b, bdf, before):
        if b == "good":
            now = cxl.doe_handlers(g, bdf)
            suite.r.ok(sum(now.values()) > sum(before.values()),
                       t("the exchange interrupts on the port's DOE entry"),
                       f"before {before}, after {now}")
    authenticate_each(suite, t, g, rs, ports, boot, facts, "port", interrupts)
    s2idle_checks(suite, t, g, rs, ports)


def s2idle_checks(suite, t, g, rs, ports):
    """Suspend to idle and back (woken by a character on the agent's
    serial port): the kernel authenticates each port again once tasks are
    thawed, with the same result, whether or not the port stayed in D0 (it
    may have been replaced while the system slept)."""
    seen = int(g.sh("dmesg | wc -l"))
    g.run("echo enabled > /sys/class/tty/ttyS1/power/wakeup")
    cmd = "echo freeze > /sys/power/state"
    tag = g.send(cmd)
    entered = g.wait_console("PM: suspend entry (s2idle)", timeout=60)
    rc, out = sleep.wake(g, tag, cmd, interval=2)
    suite.r.ok(entered and rc == 0, t("s2idle: suspended and resumed"),
               f"entered={entered} rc={rc} {out}")
    for b, bdf in ports.items():
        check_result(suite, t, g, rs, b, bdf, seen, "after s2idle")


def scenario(suite, k, name):
    """Each root port's CMA mailbox answers the harness's requester in the
    guest as its responder behaves; the kernel lists CMA among the
    mailbox's DOE features.  The kernels have no SPDM requester, so the
    result is the same on base and series."""
    rs = Responders()
    try:
        with suite.guest(k, name, topology="basic", project_qemu=True,
                         extra=rs.qemu_args()) as g:
            ids, _ = pci_ids(g.qmp)
            root = spdm_responder._read(os.path.join(rs.certs, "root.der"))
            for b in rs.running:
                bdf = ids[rs.port_id(b)]
                what = suite.t(k, f"{name}: {b}: the kernel lists CMA ({DOE_CMA}) among "
                                  "the port's DOE features")
                if k.target.has("doe_features_sysfs"):
                    feats = g.sh(f"ls /sys/bus/pci/devices/{bdf}/doe_features 2>&1 || true")
                    suite.r.ok(DOE_CMA in feats.split(), what, feats)
                else:
                    suite.r.skip(what, f"{k.target.name} lists no DOE features in sysfs "
                                       "(doe_features/ came with 6.13)")
                req = spdm_check.Requester(GuestTransport(g, bdf), root)
                got = spdm_check.reason(lambda: spdm_check.authenticate(req))
                suite.r.eq(got or "authenticated", VERDICTS[b],
                           suite.t(k, f"{name}: {b}: the requester in the guest concludes "
                                      f"{VERDICTS[b]}"),
                           rs.running[b].tail())
            # QEMU gave up on the responder that never answers, and on no other
            with open(os.path.join(g.tmp, "qemu.stderr")) as f:
                warned = sorted(set(re.findall(
                    r"warning: (\S+): no answer from the SPDM responder", f.read())))
            suite.r.eq(warned, [rs.port_id("silent")],
                       suite.t(k, f"{name}: QEMU disconnects the silent responder, "
                                  "and only that one, with a warning"))
            suite.dmesg_clean(k, g, name)
    finally:
        rs.close()


# The endpoint scenario's responders, one CXL type 3 device each: all of them
ENDPOINTS = tuple(KERNEL)


def endpoint_args(rs):
    """A CXL root port on the cxl topology's host bridge per responder,
    with a type 3 memory device whose CMA mailbox (next to CDAT) the
    responder answers."""
    args = []
    for i, (b, resp) in enumerate(rs.running.items()):
        args += ["-object", f"memory-backend-ram,id=cma-mem{i},size=256M",
                 "-object", f"memory-backend-ram,id=cma-lsa{i},size=1M",
                 "-device", f"cxl-rp,port={4 + i},bus=cxl.1,id=cma-rp{i},chassis=0,"
                            f"slot={8 + i}",
                 "-device", f"cxl-type3,bus=cma-rp{i},memdev=cma-mem{i},lsa=cma-lsa{i},"
                            f"id={rs.port_id(b)},spdm-port={resp.address[1]}"]
    return args


def endpoint_scenario(suite, k, name):
    """The kernel authenticates endpoints too (CXL type 3 devices with a
    CMA mailbox next to CDAT, one per responder behaviour; their driver,
    cxl_pci, bound): on demand once the root is trusted, and again after
    a secondary bus reset of the port above.  An endpoint's interrupts are
    its driver's, so its mailbox is polled.  Base has no CMA (fact
    "absent", intended difference "cma")."""
    rs = Responders(ENDPOINTS)
    run_kernel(suite, k, name, rs, "cxl", endpoint_args(rs), endpoint_checks)


def endpoint_checks(suite, t, g, rs, eps, boot, facts):
    def polled(b, bdf, before):
        suite.r.eq(cxl.doe_handlers(g, bdf), {},
                   t(f"{b}: the endpoint's mailbox is polled (no DOE interrupt of its own)"))
    authenticate_each(suite, t, g, rs, eps, boot, facts, "endpoint", polled)
    for b, bdf in eps.items():
        where = f"/sys/bus/pci/devices/{bdf}"
        methods = g.sh(f"cat {where}/reset_method 2>/dev/null || true").split()
        # Below a CXL port whose SBR is masked, "bus" is not offered:
        # cxl_bus unmasks it for the reset
        method = next((m for m in ("cxl_bus", "bus") if m in methods), None)
        what = "after a secondary bus reset"
        if method is None:
            suite.r.ok(False, t(f"{b}: {what}: the endpoint offers a bus reset"),
                       f"reset_method: {methods}")
            continue
        seen = int(g.sh("dmesg | wc -l"))
        rc, out = g.run(f"echo {method} > {where}/reset_method && echo 1 > {where}/reset",
                        timeout=60, check=False)
        g.run(f"echo default > {where}/reset_method", check=False)
        suite.r.ok(rc == 0, t(f"{b}: {what}: the reset ({method}) succeeds"), out)
        check_result(suite, t, g, rs, b, bdf, seen, f"{what} ({method})")
