#!/usr/bin/env python3
"""make check-mutants: the suite catches what it claims to catch.

Each mutant is the series with one deliberate bug, or the static checks
with one of their tools gone.  A mutant must make the suite fail, and the
check meant to catch it must be among the failures; the report names every
check that failed.  Before the mutants, the unmutated series runs the same
scenarios and static parts (the control): a mutant only counts as caught
by a check that passes without it.

Kernel mutants are built in the worktree build/linux-mutant (the series'
HEAD with one line changed) by scripts/kbuild.sh with ccache, so each costs
one object and a link; only the scenarios named for it run, on the mutant
kernel alone.  Tool mutants run the static checks in a private mount
namespace (unshare -m) in which the tool is replaced by /dev/null (absent:
not executable) or by a script that fails the way a broken install does.

Not part of make check or CI: it builds seven kernels.  Prints TAP and
ends with 'N passed, N failed'.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
from collections import namedtuple

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "host"))

from tap import Reporter  # noqa: E402

BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
TREE = os.path.join(BUILD, "linux")
WT = os.path.join(BUILD, "linux-mutant")
SERIES_IMG = os.path.join(TREE, ".obj-guest", "arch", "x86", "boot", "bzImage")
MUTANT_IMG = os.path.join(WT, ".obj-guest", "arch", "x86", "boot", "bzImage")

# name, what the bug is, file, the line as the series has it, the line as
# the mutant has it, the scenarios to run, and a regex one of the failed
# checks must match: the check meant to catch it.
Mutant = namedtuple("Mutant", "name what file old new scenarios expect")

KERNEL_MUTANTS = [
    Mutant("intx-no-service", "AER is started only when the port has MSI or MSI-X",
           "drivers/pci/pcie/portdrv.c",
           "\t\t\tpcie_aer_start(dev, pirqs);",
           "\t\t\tif (dev->msi_enabled || dev->msix_enabled) pcie_aer_start(dev, pirqs);",
           # 6.12 has no AER at all without MSI (pci_aer_available()), so
           # AER on INTx is where MSI is there but not used: pcie_pme=nomsi
           # puts every service of a PME-capable port on INTx, and a failed
           # MSI-X allocation falls back to it.
           ["cmdline-pcie_pme=nomsi", "msix-alloc-fail"],
           r"services are those the capabilities, _OSC and command line permit"),
    Mutant("msgnum-wrong-field",
           "the PME/hotplug Interrupt Message Number is read from the Device/Port Type field",
           "drivers/pci/pcie/portdrv.c",
           "\t\t*pme = FIELD_GET(PCI_EXP_FLAGS_IRQ, reg16);",
           "\t\t*pme = FIELD_GET(PCI_EXP_FLAGS_TYPE, reg16);",
           ["kunit", "services-msix"],
           r"kunit: pcie-portdrv\."),
    Mutant("bwctrl-off", "link bandwidth notification is never started",
           "drivers/pci/pcie/portdrv.c",
           "\tpirqs->bwctrl = pcie_bwctrl_start(dev, pirqs);",
           "\tpirqs->bwctrl = false;",
           ["link-bw"],
           r"link-bw: "),
    Mutant("dpc-off", "DPC is never started",
           "drivers/pci/pcie/portdrv.c",
           "\t\t\tpcie_dpc_start(dev, pirqs);",
           "\t\t\tcontinue;",
           ["services-dpc", "dpc"],
           r"(services-dpc|dpc): .*(services are those|DPC)"),
    Mutant("msix-leak-unbind",
           "an MSI-X entry a driver took from the pool is never freed when it is put",
           "drivers/pci/msi/api.c",
           "\t\tif (map.virq > 0)",
           "\t\tif (map.virq < 0)",
           ["port-pool"],
           r"port-pool: .*(pool|unbind|entr)"),
    Mutant("aer-stats-off", "AER errors are reported but not counted in aer_dev_*",
           "drivers/pci/pcie/aer.c",
           "\tpci_dev_aer_stats_incr(dev, info);",
           "\tif (0) pci_dev_aer_stats_incr(dev, info);",
           ["aer"],
           r"aer: .*aer_dev_\* counters"),
    Mutant("rpm-d0", "runtime PM is never allowed on ports, which stay in D0",
           "drivers/pci/pcie/portdrv.c",
           "\t\tpm_runtime_allow(&dev->dev);",
           "\t\tpm_runtime_forbid(&dev->dev);",
           ["runtime-pm-project"],
           r"runtime-pm-project: .*(D3hot|power/control|runtime)"),
]

# name, what, the tool (a command on PATH or a path), how it is broken
# ("absent": /dev/null in its place, not executable; "fails": a script
# that exits 127 as a missing interpreter or library would), the static
# parts to run, the check meant to catch it.
ToolMutant = namedtuple("ToolMutant", "name what tool how parts expect")

TOOL_MUTANTS = [
    ToolMutant("sparse-absent", "sparse is not installed", "sparse", "absent", ["build"],
               r"static: sparse is there to run"),
    ToolMutant("sparse-fails", "sparse is there but fails to run (exit 127)", "sparse", "fails",
               ["build"], r"static: sparse \(C=2\) and W=1"),
    ToolMutant("spatch-absent", "Coccinelle's spatch is not installed", "spatch", "absent",
               ["cocci"], r"static: spatch \(coccinelle\) is there to run"),
    ToolMutant("checkpatch-absent", "the tree's checkpatch.pl is gone",
               os.path.join(TREE, "scripts", "checkpatch.pl"), "absent", ["checkpatch"],
               r"static: checkpatch is there to run"),
]


def sh(cmd, log=None, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    out = p.stdout + p.stderr
    if log:
        with open(log, "w") as f:
            f.write(out)
    return p.returncode, out


def failures(out):
    """The names of the checks that failed, from run.py's TAP output."""
    return [m.group(1) for m in re.finditer(r"^not ok \d+ - (.*)$", out, re.M)]


def closing(out):
    m = re.search(r"^\d+ passed, \d+ failed(, \d+ skipped)?(, \d+ known defects)?$", out, re.M)
    return m.group(0) if m else "no closing line"


def run_suite(args, image, scenarios, log):
    cmd = [sys.executable, os.path.join(HERE, "run.py"), "--series", image,
           "--initrd", args.initrd, "--qemu", args.qemu, "--logdir", os.path.dirname(log),
           "--only", ",".join("=" + s for s in scenarios)]
    return sh(cmd, log=log, timeout=7200)


def run_static(parts, log, bind=None):
    """The static checks' `parts`; with bind=(src, dst), in a private mount
    namespace where src is mounted over dst."""
    cmd = [sys.executable, os.path.join(HERE, "run.py"), "--static-only",
           "--static-parts", ",".join(parts)]
    if bind:
        script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
        cmd = ["unshare", "-m", "sh", "-c", script, "sh", bind[0], bind[1], *cmd]
    return sh(cmd, log=log, timeout=7200)


def verdict(r, name, rc, out, expect, log):
    """A mutant is caught when the suite fails, and one of its failed checks
    is the one meant to catch it (and passed in the control)."""
    failed = failures(out)
    meant = [f for f in failed if re.search(expect, f)]
    diag = (f"suite: exit {rc}, {closing(out)}; log {log}\n"
            + ("failed checks:\n" + "\n".join(f"  {f}" for f in failed) if failed
               else "no check failed"))
    if rc != 0 and meant:
        r.ok(True, f"mutant {name} is caught by '{meant[0]}'")
        r.note(diag)
    elif rc != 0 and failed:
        r.ok(False, f"mutant {name} is caught by the check meant to catch it (/{expect}/)",
             "the suite failed, but not in that check:\n" + diag)
    else:
        r.ok(False, f"mutant {name} is caught", "the suite passed with the mutant:\n" + diag)


def git(*a, cwd=TREE):
    rc, out = sh(["git", *a], cwd=cwd)
    if rc:
        raise RuntimeError(f"git {' '.join(a)} in {cwd}: {out}")
    return out.strip()


def worktree():
    """build/linux-mutant at the series' HEAD, clean."""
    head = git("rev-parse", "HEAD")
    if not os.path.exists(os.path.join(WT, ".git")):
        git("worktree", "prune")
        git("worktree", "add", "-q", "--detach", WT, head)
    git("checkout", "-q", "-f", "--detach", head, cwd=WT)
    git("reset", "-q", "--hard", cwd=WT)


def apply(m):
    """Change the one line; the line must be there exactly once."""
    path = os.path.join(WT, m.file)
    with open(path) as f:
        text = f.read()
    n = text.count(m.old + "\n")
    if n != 1:
        return f"{m.file}: the line {m.old.strip()!r} is there {n} times, not once"
    with open(path, "w") as f:
        f.write(text.replace(m.old + "\n", m.new + "\n"))
    return None


def kernel_mutant(r, args, m):
    log = os.path.join(args.logdir, m.name, "suite.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    r.note(f"--- mutant {m.name}: {m.what} ({m.file})")
    worktree()
    why = apply(m)
    if why:
        r.ok(False, f"mutant {m.name}: the mutation applies to the series", why)
        return
    rc, out = sh(["bash", os.path.join(TOP, "scripts", "kbuild.sh"), "mutant"],
                 log=os.path.join(args.logdir, m.name, "build.log"), timeout=5400)
    if rc:
        r.ok(False, f"mutant {m.name}: builds", "\n".join(out.splitlines()[-30:]))
        return
    rc, out = run_suite(args, MUTANT_IMG, m.scenarios, log)
    verdict(r, m.name, rc, out, m.expect, log)


FAIL_127 = """#!/bin/sh
echo "$0: error while loading shared libraries: (mutant: broken on purpose)" >&2
exit 127
"""


def tool_mutant(r, args, m):
    d = os.path.join(args.logdir, m.name)
    os.makedirs(d, exist_ok=True)
    log = os.path.join(d, "static.log")
    r.note(f"--- mutant {m.name}: {m.what}")
    target = m.tool if os.path.isabs(m.tool) else shutil.which(m.tool)
    if not target or not os.path.exists(target):
        r.ok(False, f"mutant {m.name}: {m.tool} is there to be taken away",
             "install it first (make deps)")
        return
    target = os.path.realpath(target)
    if m.how == "absent":
        src = "/dev/null"
    else:
        src = os.path.join(d, "fail-127")
        with open(src, "w") as f:
            f.write(FAIL_127)
        os.chmod(src, 0o755)
    rc, out = run_static(m.parts, log, bind=(src, target))
    verdict(r, m.name, rc, out, m.expect, log)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--qemu", required=True, help="the project's QEMU (make qemu)")
    ap.add_argument("--logdir", default=os.path.join(BUILD, "logs", "mutants"))
    ap.add_argument("--only", default="", help="mutants to run (comma-separated names)")
    args = ap.parse_args()
    only = [o for o in args.only.split(",") if o]
    names = [m.name for m in KERNEL_MUTANTS + TOOL_MUTANTS]
    unknown = [o for o in only if o not in names]
    if unknown:
        sys.exit(f"unknown mutant(s) {', '.join(unknown)}; known: {', '.join(names)}")
    kms = [m for m in KERNEL_MUTANTS if not only or m.name in only]
    tms = [m for m in TOOL_MUTANTS if not only or m.name in only]
    for f, what in ((SERIES_IMG, "make kernels"), (args.initrd, "make initramfs"),
                    (args.qemu, "make qemu")):
        if not os.path.exists(f):
            sys.exit(f"{f} does not exist: run '{what}' first")
    if tms and not shutil.which("unshare"):
        sys.exit("unshare (util-linux) is needed for the tool mutants")
    os.makedirs(args.logdir, exist_ok=True)
    r = Reporter()

    # The control: the unmutated series passes what the mutants will run.
    if kms:
        scen = sorted({s for m in kms for s in m.scenarios})
        log = os.path.join(args.logdir, "control", "suite.log")
        os.makedirs(os.path.dirname(log), exist_ok=True)
        rc, out = run_suite(args, SERIES_IMG, scen, log)
        r.ok(rc == 0, f"control: the series passes {', '.join(scen)}",
             f"{closing(out)}; log {log}\n" + "\n".join(failures(out)))
        if rc:
            r.note("a mutant's failures mean nothing while the control fails: fix that first")
            return r.finish()
    if tms:
        parts = sorted({p for m in tms for p in m.parts})
        log = os.path.join(args.logdir, "control", "static.log")
        os.makedirs(os.path.dirname(log), exist_ok=True)
        rc, out = run_static(parts, log)
        r.ok(rc == 0, f"control: the static checks {', '.join(parts)} pass",
             f"{closing(out)}; log {log}\n" + "\n".join(failures(out)))
        if rc:
            r.note("a mutant's failures mean nothing while the control fails: fix that first")
            return r.finish()

    for m in kms:
        kernel_mutant(r, args, m)
    if kms:
        worktree()  # leave it as the series
    for m in tms:
        tool_mutant(r, args, m)
    return r.finish()


if __name__ == "__main__":
    sys.exit(main())
