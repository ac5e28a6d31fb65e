"""Static checks of the series: checkpatch --strict on every patch, W=1 and
sparse on the C files the series touches (no new warnings against base),
coccicheck on the touched directories, and (each_patch) every patch building
on its own."""
import os
import re
import subprocess

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
TREE = os.path.join(BUILD, "linux")
BASE_TREE = os.path.join(BUILD, "linux-base")
JOBS = str(os.cpu_count() or 2)


# checkpatch runs scripts/spdxcheck.py with "env python3", which needs
# python3-ply and python3-git: put the system Python (where HOST_PKGS installs it) first.
ENV = dict(os.environ, PATH="/usr/bin:" + os.environ.get("PATH", ""))


def sh(cmd, cwd=None, timeout=3600):
    p = subprocess.run(cmd, cwd=cwd, shell=isinstance(cmd, str), capture_output=True,
                       text=True, timeout=timeout, env=ENV)
    return p.returncode, p.stdout + p.stderr


def git(*args, cwd=TREE):
    rc, out = sh(["git", *args], cwd=cwd)
    if rc:
        raise RuntimeError(f"git {' '.join(args)}: {out}")
    return out.strip()


def series_patches():
    path = os.path.join(TOP, "patches", "series")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        names = [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    return [os.path.join(TOP, "patches", n) for n in names]


def kmake(src, *targets, extra=()):
    env_cc = ["CC=ccache gcc", "HOSTCC=ccache gcc"]
    return sh(["make", "-C", src, "O=.obj-guest", f"-j{JOBS}", *env_cc, *extra, *targets],
              timeout=5400)


def norm_warnings(text):
    """Warning lines, without line/column numbers (they shift with edits)."""
    out = set()
    for line in text.splitlines():
        if re.search(r"(warning|error):", line):
            out.add(re.sub(r":\d+(:\d+)?:", ":", line.replace("../", "")))
    return out


def includer(f, tree=TREE):
    """The .c file of f's directory that #includes f, or None: a KUnit test
    built as part of the file it tests is compiled, and checked, through
    that file, not as an object of its own."""
    d, name = os.path.split(f)
    pat = re.compile(r'^#include\s+"' + re.escape(name) + '"', re.M)
    for other in sorted(os.listdir(os.path.join(tree, d))):
        if other.endswith(".c") and other != name:
            with open(os.path.join(tree, d, other), errors="replace") as fh:
                if pat.search(fh.read()):
                    return os.path.join(d, other)
    return None


def touched_c_files():
    files = git("diff", "--name-only", "--diff-filter=AM", "base..HEAD", "--", "*.c").split()
    return [f for f in files if os.path.exists(os.path.join(TREE, f))
            and includer(f) is None]


def added_files():
    return git("diff", "--name-only", "--diff-filter=A", "base..HEAD").split()


def warnings_for(src, files, checker):
    """Compile `files` in `src` with W=1 (and sparse with checker=True)."""
    objs = [f[:-2] + ".o" for f in files if os.path.exists(os.path.join(src, f))]
    if not objs:
        return set()
    extra = ["W=1"] + (["C=2"] if checker else [])
    # Make sure the tree is configured and its headers generated.
    rc, out = kmake(src, *objs, extra=extra)
    return norm_warnings(out)


QEMU_TREE = os.path.join(BUILD, "qemu")
QEMU_PATCHES = os.path.join(TOP, "qemu", "patches")


def qemu_added_files(patch):
    text = open(patch, encoding="utf-8", errors="replace").read()
    return re.findall(r"^diff --git a/\S+ b/(\S+)\nnew file mode", text, re.M)


# Upstream commits the series' Fixes: tags may name, with their subjects,
# as found in upstream history (torvalds/linux).  A tag naming anything else
# fails until it is looked up and added here.
UPSTREAM_COMMITS = {
    "5d7107c72796": "perf: CXL Performance Monitoring Unit driver",
}


def check_fixes_tags(r, patches):
    """Every Fixes: tag has the form checkpatch wants and names a known
    upstream commit with its subject."""
    for p in patches:
        for ln in open(p, errors="replace").read().split("\n---\n", 1)[0].splitlines():
            if not ln.startswith("Fixes:"):
                continue
            m = re.fullmatch(r'Fixes: ([0-9a-f]{12}) \("(.+)"\)', ln)
            r.ok(m is not None and UPSTREAM_COMMITS.get(m.group(1)) == m.group(2),
                 f"static: {os.path.basename(p)}: {ln}",
                 "not of the form 'Fixes: <12 hex> (\"subject\")' or not in UPSTREAM_COMMITS "
                 "(tests/static.py)")


def check_qemu_patches(r):
    """QEMU's own checkpatch on the project's QEMU patches.  Its only
    accepted warning is "does MAINTAINERS need updating?" on an added file,
    and only where QEMU's get_maintainer.pl finds a maintainer for it."""
    series = os.path.join(QEMU_PATCHES, "series")
    checkpatch = os.path.join(QEMU_TREE, "scripts", "checkpatch.pl")
    if not os.path.exists(series):
        return
    if not os.path.exists(checkpatch):
        r.skip("static: QEMU checkpatch", "no QEMU tree in build/qemu: run 'make qemu'")
        return
    for name in open(series).read().split():
        p = os.path.join(QEMU_PATCHES, name)
        rc, out = sh([checkpatch, p], cwd=QEMU_TREE)
        m = re.search(r"total: (\d+) errors, (\d+) warnings", out)
        maint = out.count("does MAINTAINERS need updating?")
        r.ok(m is not None and m.group(1) == "0" and int(m.group(2)) == maint,
             f"static: QEMU checkpatch {name}", out)
        for f in qemu_added_files(p):
            rc, out = sh([os.path.join(QEMU_TREE, "scripts", "get_maintainer.pl"), "-f", f],
                         cwd=QEMU_TREE)
            r.ok(rc == 0 and re.search(r"\((maintainer|supporter|odd fixer)", out) is not None,
                 f"static: QEMU MAINTAINERS covers the added file {f}", out)


DISTRO_CONFIG = "/usr/src/linux-config-6.12/config.amd64_none_amd64.xz"
# What a distro kernel with CONFIG_PCIEPORTBUS=y has of the port services
DISTRO_SERVICES = ("PCIEPORTBUS", "PCIEAER", "PCIE_DPC", "PCIE_PME", "HOTPLUG_PCI_PCIE")
DISTRO_RELATED = ("PCIEAER_INJECT", "PCIEASPM", "PCIE_PTM", "PCIE_EDR",
                  "PCIE_PORTDRV_KUNIT_TEST", "PCIE_PORT_POOL_TEST")


def distro_olddefconfig(src, out):
    """`make olddefconfig` on Debian's own 6.12 config in `src`; return
    {symbol: value} of the port-service symbols."""
    os.makedirs(out, exist_ok=True)
    rc, text = sh(f"xzcat {DISTRO_CONFIG} > {out}/.config")
    if rc:
        raise RuntimeError(f"cannot unpack {DISTRO_CONFIG}: {text}")
    rc, text = sh(["make", "-C", src, f"O={out}", "olddefconfig"], timeout=600)
    if rc:
        raise RuntimeError(f"olddefconfig in {src} failed: {text[-2000:]}")
    vals = {}
    with open(os.path.join(out, ".config")) as f:
        for line in f:
            m = re.match(r"(?:# )?CONFIG_(\w+)(?:=(.*)| is not set)", line)
            if m and m.group(1) in DISTRO_SERVICES + DISTRO_RELATED:
                vals[m.group(1)] = m.group(2) or "n"
    return vals


def check_distro_config(r):
    """Debian's config for 6.12 (linux-config-6.12), taken through `make
    olddefconfig` on the series, keeps every port service built in, and
    the series' own options stay off."""
    what = "Debian's 6.12 config through olddefconfig keeps AER, DPC, PME and pciehp"
    if not os.path.exists(DISTRO_CONFIG):
        r.skip(f"static: {what}", f"{DISTRO_CONFIG} missing: apt-get install linux-config-6.12")
        return
    tmp = os.path.join(BUILD, "distro-config")
    base = distro_olddefconfig(BASE_TREE, os.path.join(tmp, "base"))
    series = distro_olddefconfig(TREE, os.path.join(tmp, "series"))
    want = dict(base)
    want.update({s: "y" for s in DISTRO_SERVICES})
    for opt in ("PCIE_PORTDRV_KUNIT_TEST", "PCIE_PORT_POOL_TEST"):
        if opt in series:
            want[opt] = "n"
    r.ok(series == want and all(base.get(s) == "y" for s in DISTRO_SERVICES),
         f"static: {what}", f"base:   {base}\nseries: {series}\nwant:   {want}")


def run(r, each_patch=False):
    patches = series_patches()
    r.note("--- static checks")
    check_qemu_patches(r)
    try:
        check_distro_config(r)
    except Exception as e:  # a broken tree must show as a failure
        r.ok(False, "static: Debian's 6.12 config through olddefconfig", e)
    if not patches:
        for what in ("checkpatch --strict", "W=1 and sparse on touched files",
                     "coccicheck on touched directories", "every patch builds"):
            r.skip(f"static: {what}", "the series (patches/series) is empty")
        return
    checkpatch = os.path.join(TREE, "scripts", "checkpatch.pl")
    # Every patch that adds a file also adds it to MAINTAINERS (PCI EXPRESS
    # PORT SERVICES), so no such message is ignored.  The one message
    # ignored is UNKNOWN_COMMIT_ID: the tree is Debian's source tarball,
    # without upstream history, so checkpatch cannot look up the commit a
    # Fixes: tag names; check_fixes_tags() checks those instead.
    for p in patches:
        rc, out = sh([checkpatch, "--strict", "--terse", "--no-summary",
                      "--ignore", "UNKNOWN_COMMIT_ID", p], cwd=TREE)
        r.ok(rc == 0 and not out.strip(), f"static: checkpatch --strict {os.path.basename(p)}",
             out)
    check_fixes_tags(r, patches)
    for f in added_files():
        rc, out = sh([os.path.join(TREE, "scripts", "get_maintainer.pl"), "--no-git",
                      "--no-git-fallback", "-f", f], cwd=TREE)
        r.ok(rc == 0 and re.search(r"\((maintainer|supporter|odd fixer):", out) is not None,
             f"static: MAINTAINERS covers the added file {f}", out)
    files = touched_c_files()
    for checker, what in ((False, "W=1"), (True, "sparse (C=2) and W=1")):
        new = warnings_for(TREE, files, checker) - warnings_for(BASE_TREE, files, checker)
        r.ok(not new, f"static: {what}: no new warnings in {len(files)} touched C files",
             "\n".join(sorted(new)))
    dirs = sorted({os.path.dirname(f) for f in files})
    for d in dirs:
        outs = []
        for src in (BASE_TREE, TREE):
            rc, out = sh(["make", "-C", src, "O=.obj-guest", "coccicheck", "MODE=report",
                          f"M={d}", f"J={JOBS}"], timeout=3600)
            outs.append({ln.replace("../", "") for ln in out.splitlines()
                         if re.match(r"\S+\.[ch]:\d+", ln.replace("../", ""))})
        new = {re.sub(r":\d+(:\d+)?", "", x) for x in outs[1]} - \
              {re.sub(r":\d+(:\d+)?", "", x) for x in outs[0]}
        r.ok(not new, f"static: coccicheck {d}: no new reports", "\n".join(sorted(new)))
    if each_patch:
        check_each_patch(r)


def check_each_patch(r):
    """Build every commit of the series in a worktree, W=1 on what it touches."""
    wt = os.path.join(BUILD, "linux-check")
    if not os.path.exists(wt):
        git("worktree", "add", "-q", "--detach", wt, "base")
    cfg = os.path.join(TREE, ".obj-guest", ".config")
    os.makedirs(os.path.join(wt, ".obj-guest"), exist_ok=True)
    commits = git("rev-list", "--reverse", "base..HEAD").split()
    for c in commits:
        subj = git("log", "-1", "--format=%s", c)
        git("checkout", "-q", "--detach", c, cwd=wt)
        sh(["cp", cfg, os.path.join(wt, ".obj-guest", ".config")])
        rc, out = kmake(wt, "olddefconfig", "bzImage")
        files = git("diff", "--name-only", "--diff-filter=AM", f"{c}^..{c}", "--", "*.c").split()
        # An included test file is checked through the file including it
        files = sorted({inc for f in files for inc in [includer(f, wt) or f]})
        objs = [f[:-2] + ".o" for f in files]
        w = set()
        if rc == 0 and objs:
            rc2, out2 = kmake(wt, *objs, extra=["W=1", "C=2"])
            w = norm_warnings(out2) - warnings_for(BASE_TREE, files, True)
        r.ok(rc == 0, f"static: builds at '{subj}'", "\n".join(out.splitlines()[-30:]))
        r.ok(not w, f"static: W=1/sparse clean at '{subj}' ({len(objs)} objects)",
             "\n".join(sorted(w)))
