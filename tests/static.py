"""Static checks of the series: checkpatch --strict on every patch, W=1 and
sparse on the C files the series touches (no new warnings against base),
coccicheck on the touched directories, and (each_patch) every patch building
on its own."""
import os
import re
import shutil
import subprocess
import sys
from collections import Counter

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
    """Warning lines as a multiset, without line/column numbers (they shift
    with edits): a new warning identical in text to an existing one in the
    same file still counts once more."""
    out = Counter()
    for line in text.splitlines():
        # 7.3's kernel-doc says "Warning: file.c:47 struct member ..."
        if re.search(r"(warning|error):", line, re.I):
            line = re.sub(r":\d+(:\d+)?:", ":", line.replace("../", ""))
            out[re.sub(r"(\.[ch]):\d+ ", r"\1: ", line)] += 1
    return out


# Debian 12's sparse 0.6.4 cannot evaluate 7.3's module info macros: it
# reports "error: bad constant expression" on every MODULE_*() and
# module_param*() line (base 7.3 has them in aer_inject.c, pciehp_core.c,
# irq_test.c, spurious.c, ...).  A file the series adds has no base to
# cancel them, so they are dropped where the line is such a macro.
MODULE_MACRO = re.compile(r"^\s*(MODULE_[A-Z_]+|module_param\w*|module_\w+_driver)\(")


def drop_sparse_module_macros(src, text):
    out = []
    for line in text.splitlines():
        m = re.match(r"^(?:\.\./)?(\S+\.c):(\d+):\d+: error: bad constant expression$", line)
        if m:
            try:
                with open(os.path.join(src, m.group(1)), errors="replace") as f:
                    src_line = f.read().splitlines()[int(m.group(2)) - 1]
            except (OSError, IndexError):
                src_line = ""
            if MODULE_MACRO.match(src_line):
                continue
        out.append(line)
    return "\n".join(out)


def tool_missing(*tools):
    """The tools of `tools` that are not there to run (not on PATH, or not
    executable): a check that needs one of them must fail, not pass."""
    out = []
    for t in tools:
        if os.path.isabs(t):
            if not (os.path.isfile(t) and os.access(t, os.X_OK)):
                out.append(t)
        elif shutil.which(t, path=ENV["PATH"]) is None:
            out.append(t)
    return out


def configured(src, flavour="guest"):
    return os.path.exists(os.path.join(src, f".obj-{flavour}", ".config"))


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


def touched_c_files(tree=TREE):
    files = git("diff", "--name-only", "--diff-filter=AM", "base..HEAD", "--", "*.c",
                cwd=tree).split()
    return [f for f in files if os.path.exists(os.path.join(tree, f))
            and includer(f, tree) is None]


def added_files(tree=TREE):
    return git("diff", "--name-only", "--diff-filter=A", "base..HEAD", cwd=tree).split()


class BuildFailed(Exception):
    pass


def warnings_for(src, files, checker, check=None):
    """Compile `files` in `src` with W=1 (and sparse with checker=True) and
    return their warnings.  The objects are removed first, so that every one
    of them is really compiled (a second run would otherwise have nothing to
    do and print nothing); make must succeed and must have compiled (and,
    with sparse, checked) each of them, or BuildFailed says why."""
    objs = [f[:-2] + ".o" for f in files if os.path.exists(os.path.join(src, f))]
    if not objs:
        return Counter()
    if not configured(src):
        raise BuildFailed(f"{src}/.obj-guest is not configured: run 'make kernels' first")
    for o in objs:
        try:
            os.remove(os.path.join(src, ".obj-guest", o))
        except FileNotFoundError:
            pass
    extra = ["W=1"] + (["C=2"] if checker else []) + ([f"CHECK={check}"] if check else [])
    rc, out = kmake(src, *objs, extra=extra)
    if rc:
        raise BuildFailed(f"make {' '.join(extra)} in {src} failed (exit {rc}):\n"
                          + "\n".join(out.splitlines()[-30:]))
    for o in objs:
        for step in ("CC", "CHECK") if checker else ("CC",):
            if not re.search(rf"^\s*{step}\s+(\.\./)?{re.escape(o[:-2])}\.[oc]$", out, re.M):
                raise BuildFailed(f"make in {src} did not {step} {o}:\n"
                                  + "\n".join(out.splitlines()[-30:]))
    return norm_warnings(drop_sparse_module_macros(src, out) if checker else out)


def new_warnings(files, checker):
    """(ok, text): the warnings the series' tree has beyond base's."""
    try:
        new = warnings_for(TREE, files, checker) - warnings_for(BASE_TREE, files, checker)
    except BuildFailed as e:
        return False, str(e)
    return not new, "\n".join(f"{n}x {w}" for w, n in sorted(new.items()))


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
    and only where QEMU's get_maintainer.pl finds a maintainer for it.
    The patches carry no Signed-off-by, as nobody real certifies them (the
    DCO needs a real person; they are this project's test devices, not a
    qemu-devel series: QEMU's code-provenance.rst declines generated
    content), so checkpatch's one error about it is accepted and any
    committed sign-off fails."""
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
        unsigned = out.count("ERROR: Missing Signed-off-by: line(s)")
        r.ok(m is not None and int(m.group(1)) == unsigned and int(m.group(2)) == maint,
             f"static: QEMU checkpatch {name}", out)
        head = open(p, errors="replace").read().split("\n---\n", 1)[0]
        r.ok(not re.search(r"^Signed-off-by:", head, re.M) and
             re.search(r"^Assisted-by: ", head, re.M) is not None,
             f"static: QEMU patch {name} carries an Assisted-by trailer and no Signed-off-by",
             head[-400:])
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


# The parts of the static checks, for running some of them alone (the
# mutant run, tests/mutants.py): the tools' presence is checked whatever
# the selection.
PARTS = ("qemu", "spdm", "distro", "checkpatch", "build", "cocci", "mainline")


def run(r, each_patch=False, parts=PARTS):
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown static parts {sorted(unknown)} (known: {', '.join(PARTS)})")
    patches = series_patches()
    r.note("--- static checks" + ("" if set(parts) == set(PARTS) else f" ({', '.join(parts)})"))
    if "qemu" in parts:
        check_qemu_patches(r)
    if "spdm" in parts:
        import cma     # tests/host, on the path run.py sets up
        cma.check_responder(r)
    if "mainline" in parts:
        check_mainline(r)
    if "distro" in parts:
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
    # The tools every check below needs: one that is missing fails here, and
    # the checks that need it fail too rather than pass on empty output.
    tools = {"checkpatch": checkpatch, "sparse": "sparse", "spatch (coccinelle)": "spatch",
             "gcc": "gcc", "make": "make"}
    missing = {name for name, t in tools.items() if tool_missing(t)}
    for name, t in tools.items():
        r.ok(name not in missing, f"static: {name} is there to run",
             f"{t} not found or not executable: run 'make deps' (apt-get install sparse "
             "coccinelle), or 'make tree' for checkpatch")
    for tree in (BASE_TREE, TREE):
        r.ok(configured(tree), f"static: {os.path.basename(tree)}/.obj-guest is configured",
             "run 'make kernels' first")
    if "checkpatch" in parts:
        check_checkpatch(r, patches, checkpatch, missing)
        check_signed_export(r, checkpatch, missing)
        check_patch_trailers(r, patches)
    if "build" in parts:
        check_build(r, missing)
    if "cocci" in parts:
        check_cocci(r, missing)
    if each_patch:
        series_size(r, TREE, "patches/ (6.12, v1)")
        check_each_patch(r)
        if "mainline" in parts and os.path.exists(os.path.join(MAINLINE_TREE, ".git")):
            for d, base, head in mainline_series_ranges():
                series_size(r, MAINLINE_TREE, f"{d}/ (7.3)", base, head)
            check_each_patch(r, MAINLINE_TREE, MAINLINE_BASE_TREE, MAINLINE_SPARSE,
                             "mainline: ")


MAINLINE_TREE = os.path.join(BUILD, "mainline", "linux")
MAINLINE_BASE_TREE = os.path.join(BUILD, "mainline", "linux-base")
# 7.3 requires a sparse that knows __typeof_unqual__ (scripts/checker-valid.sh)
# and Debian 12's sparse 0.6.4 does not, so make would skip sparse with only
# a warning.  compiler.h falls back to __typeof__ where the compiler lacks it;
# sparse is given the same fallback.
MAINLINE_SPARSE = "sparse -D__typeof_unqual__=__typeof__"


def mainline_series_dirs():
    """The series directories of the mainline target (targets/mainline.conf,
    PATCH_DIRS), in the order they apply."""
    conf = dict(ln.split("=", 1) for ln in open(os.path.join(TOP, "targets", "mainline.conf"))
                .read().splitlines() if re.match(r"[A-Z_][A-Z0-9_]*=", ln))
    return (conf.get("PATCH_DIRS") or conf["PATCH_DIR"]).split()


def mainline_series_ranges():
    """(series directory, from, to) in the mainline tree, as
    scripts/lib.sh's series_ranges() gives them."""
    rc, out = sh("TARGET=mainline bash -c '. scripts/lib.sh && series_ranges'", cwd=TOP)
    if rc:
        raise RuntimeError(out)
    return [tuple(ln.split()) for ln in out.splitlines() if len(ln.split()) == 3]


def check_mainline(r):
    """The series of the mainline target (patches/mainline, the core, and
    the series on top of it, on 7.3): 7.3's checkpatch --strict on every
    patch, Fixes: tags that name known upstream commits, no committed
    Signed-off-by, and the Assisted-by trailer in the form 7.3's
    Documentation/process/coding-assistants.rst gives.  The tree is
    Debian's source tarball without upstream history, so checkpatch cannot
    look up the commit a Fixes: tag names (UNKNOWN_COMMIT_ID);
    check_fixes_tags() checks those instead."""
    dirs = [d for d in mainline_series_dirs() if os.path.exists(os.path.join(TOP, d, "series"))]
    if not dirs:
        return
    checkpatch = os.path.join(MAINLINE_TREE, "scripts", "checkpatch.pl")
    if not r.ok(os.path.exists(checkpatch), "static: mainline: the 7.3 tree is there",
                "run 'TARGET=mainline make tree'"):
        return
    for d in dirs:
        patches = [os.path.join(TOP, d, n) for n in open(os.path.join(TOP, d, "series"))
                   .read().split()]
        check_fixes_tags(r, patches)
        for p in patches:
            n = os.path.relpath(p, os.path.join(TOP, "patches"))
            rc, out = sh([checkpatch, "--strict", "--terse", "--no-summary", "--ignore",
                          "MISSING_SIGN_OFF,FILE_PATH_CHANGES,UNKNOWN_COMMIT_ID", p],
                         cwd=MAINLINE_TREE)
            r.ok(rc == 0 and not out.strip(), f"static: mainline: checkpatch --strict (7.3) {n}",
                 out)
            head = open(p, errors="replace").read().split("\n---\n", 1)[0]
            r.ok(not re.search(r"^Signed-off-by:", head, re.M) and
                 re.search(r"^Assisted-by: LLM( [\w-]+)*$", head, re.M) is not None,
                 f"static: mainline: {n} carries an Assisted-by trailer and no Signed-off-by",
                 "coding-assistants.rst (7.3): 'Assisted-by: LLM [TOOL1] [TOOL2]'; the "
                 "submitter signs when posting (make outgoing)")
    check_mainline_signed_export(r, dirs, checkpatch)
    check_mainline_tree(r)


def check_mainline_signed_export(r, dirs, checkpatch):
    """The mainline series as they are posted, signed (TARGET=mainline
    scripts/outgoing.sh, a directory per series), pass 7.3's checkpatch
    --strict with only UNKNOWN_COMMIT_ID (the tarball has no history;
    check_fixes_tags() checks Fixes:) and FILE_PATH_CHANGES (the files the
    series add fall under existing MAINTAINERS entries, which
    check_mainline_tree() checks with get_maintainer.pl) ignored: the
    sign-off is there and matches From:, and the Assisted-by trailer has the
    form 7.3's coding-assistants.rst gives.  This is 7.3's checkpatch on
    purpose: Debian's 6.12 checkpatch carries an older Assisted-by rule
    (AGENT_NAME:MODEL_VERSION) that mainline has since replaced."""
    out = os.path.join(BUILD, "outgoing-check-mainline")
    rc, text = sh("TARGET=mainline bash scripts/outgoing.sh --test-ident "
                  f"'{TEST_IDENT}' '{out}'", cwd=TOP)
    if not r.ok(rc == 0, "static: mainline: scripts/outgoing.sh writes a signed export", text):
        return
    for d in dirs:
        sub = os.path.join(out, os.path.basename(d)) if len(dirs) > 1 else out
        want = open(os.path.join(TOP, d, "series")).read().split()
        signed = sorted(f for f in os.listdir(sub) if re.match(r"\d{4}-", f)
                        and not f.startswith("0000-")) if os.path.isdir(sub) else []
        r.eq(len(signed), len(want),
             f"static: mainline: the signed export of {d} has every patch of the series")
        for f in signed:
            p = os.path.join(sub, f)
            rc, res = sh([checkpatch, "--strict", "--terse", "--no-summary", "--ignore",
                          "UNKNOWN_COMMIT_ID,FILE_PATH_CHANGES", p], cwd=MAINLINE_TREE)
            r.ok(rc == 0 and not res.strip(),
                 f"static: mainline: checkpatch --strict (7.3) on the signed export: "
                 f"{os.path.basename(d)}/{f}", res)


def check_mainline_tree(r):
    """The v2 tree (build/mainline/linux, base + patches/mainline): every
    file it adds has a MAINTAINERS entry with a maintainer (which is why
    checkpatch's FILE_PATH_CHANGES, "does MAINTAINERS need updating?", is
    ignored above), and W=1 and sparse on the C files it touches report
    nothing that 7.3 base does not."""
    for f in added_files(MAINLINE_TREE):
        rc, out = sh([os.path.join(MAINLINE_TREE, "scripts", "get_maintainer.pl"), "--no-git",
                      "--no-git-fallback", "-f", f], cwd=MAINLINE_TREE)
        r.ok(rc == 0 and re.search(r"\((maintainer|supporter|odd fixer):", out) is not None,
             f"static: mainline: MAINTAINERS covers the added file {f}", out)
    files = touched_c_files(MAINLINE_TREE)
    for checker, what in ((False, "W=1"), (True, "sparse (C=2) and W=1")):
        name = f"static: mainline: {what}: no new warnings in {len(files)} touched C files"
        if checker and tool_missing("sparse"):
            r.ok(False, name, "sparse is missing: run 'make deps'")
            continue
        check = MAINLINE_SPARSE if checker else None
        try:
            new = (warnings_for(MAINLINE_TREE, files, checker, check)
                   - warnings_for(MAINLINE_BASE_TREE, files, checker, check))
        except BuildFailed as e:
            r.ok(False, name, f"{e}\n(TARGET=mainline make kernels builds both trees)")
            continue
        r.ok(len(files) > 0 and not new, name,
             "\n".join(f"{n}x {w}" for w, n in sorted(new.items())) or "no touched C files")


def check_checkpatch(r, patches, checkpatch, missing):
    """checkpatch --strict on every patch of the series.

    Every patch that adds a file also adds it to MAINTAINERS (PCI EXPRESS
    PORT SERVICES), so no such message is ignored.  UNKNOWN_COMMIT_ID is:
    the tree is Debian's source tarball, without upstream history, so
    checkpatch cannot look up the commit a Fixes: tag names;
    check_fixes_tags() checks those instead.  The committed patches carry
    no Signed-off-by (the DCO needs the real submitter's, added when the
    series is exported for posting), so MISSING_SIGN_OFF is ignored too;
    check_patch_trailers() fails any sign-off that is committed."""
    checkpatch_each(r, patches, checkpatch, missing, "UNKNOWN_COMMIT_ID,MISSING_SIGN_OFF",
                    "static: checkpatch --strict {}")


def checkpatch_each(r, patches, checkpatch, missing, ignore, what):
    """checkpatch --strict --ignore `ignore` on each of `patches`, one check
    each, named `what` with the patch's file name; a missing checkpatch
    fails every one of them."""
    for p in patches:
        name = what.format(os.path.basename(p))
        if "checkpatch" in missing:
            r.ok(False, name, f"{checkpatch} is missing")
            continue
        rc, out = sh([checkpatch, "--strict", "--terse", "--no-summary",
                      "--ignore", ignore, p], cwd=TREE)
        r.ok(rc == 0 and not out.strip(), name, out)



# Signs the test export (scripts/outgoing.sh --test-ident); nobody's
# sign-off, and never committed or posted.
TEST_IDENT = "Harness Checkpatch <checkpatch@localhost>"


def check_signed_export(r, checkpatch, missing):
    """The series as it is posted, signed (scripts/outgoing.sh), passes
    checkpatch --strict with only UNKNOWN_COMMIT_ID ignored: the sign-off is
    there, matches From:, and nothing else in the trailers is off."""
    out = os.path.join(BUILD, "outgoing-check")
    rc, text = sh(["bash", os.path.join(TOP, "scripts", "outgoing.sh"),
                   "--test-ident", TEST_IDENT, out])
    if not r.ok(rc == 0, "static: scripts/outgoing.sh writes a signed export", text):
        return
    signed = sorted(f for f in os.listdir(out) if re.match(r"\d{4}-", f)
                    and not f.startswith("0000-"))
    r.eq(len(signed), len(series_patches()),
         "static: the signed export has every patch of the series")
    checkpatch_each(r, [os.path.join(out, f) for f in signed], checkpatch, missing,
                    "UNKNOWN_COMMIT_ID", "static: checkpatch --strict on the signed export: {}")


def check_patch_trailers(r, patches):
    """Fixes: tags, no committed sign-off, MAINTAINERS for added files."""
    check_fixes_tags(r, patches)
    signed = [os.path.basename(p) for p in patches
              if re.search(r"^Signed-off-by:", open(p, errors="replace").read().split(
                  "\n---\n", 1)[0], re.M)]
    r.ok(not signed, "static: the committed patches carry no Signed-off-by (the submitter "
                     "adds theirs when posting)", "\n".join(signed))
    # 6.12's checkpatch wants 'AGENT_NAME:MODEL_VERSION [TOOL1] [TOOL2]' (the
    # rule mainline later relaxed to 'LLM [TOOL1] [TOOL2]', naming no vendor
    # or model): the backport says "LLM" as mainline does, in 6.12's syntax.
    unassisted = [os.path.basename(p) for p in patches
                  if not re.search(r"^Assisted-by: LLM:unspecified( [\w-]+)*$", open(
                      p, errors="replace").read().split("\n---\n", 1)[0], re.M)]
    r.ok(not unassisted, "static: every patch carries an Assisted-by trailer in the form "
                         "6.12's checkpatch accepts",
         "\n".join(unassisted) + "\nwant 'Assisted-by: LLM:unspecified [TOOL1] [TOOL2]'")
    for f in added_files():
        rc, out = sh([os.path.join(TREE, "scripts", "get_maintainer.pl"), "--no-git",
                      "--no-git-fallback", "-f", f], cwd=TREE)
        r.ok(rc == 0 and re.search(r"\((maintainer|supporter|odd fixer):", out) is not None,
             f"static: MAINTAINERS covers the added file {f}", out)


def check_build(r, missing):
    """W=1, and sparse with W=1, on the C files the series touches: no
    warning that base does not have."""
    files = touched_c_files()
    for checker, what in ((False, "W=1"), (True, "sparse (C=2) and W=1")):
        name = f"static: {what}: no new warnings in {len(files)} touched C files"
        if checker and "sparse" in missing:
            r.ok(False, name, "sparse is missing")
            continue
        ok, text = new_warnings(files, checker)
        r.ok(ok and len(files) > 0, name, text or "no touched C files")


def check_cocci(r, missing):
    """coccicheck on the directories the series touches: no new reports."""
    files = touched_c_files()
    # coccicheck's M= covers a directory with everything below it
    dirs = sorted({os.path.dirname(f) for f in files})
    dirs = [d for d in dirs if not any(d.startswith(o + "/") for o in dirs)]
    for d in dirs:
        name = f"static: coccicheck {d}: no new reports"
        if "spatch (coccinelle)" in missing:
            r.ok(False, name, "spatch is missing")
            continue
        outs, failed = [], None
        for src in (BASE_TREE, TREE):
            rc, out = sh(["make", "-C", src, "O=.obj-guest", "coccicheck", "MODE=report",
                          f"M={d}", f"J={JOBS}"], timeout=3600)
            if rc:
                failed = f"coccicheck in {src} failed (exit {rc}):\n" + \
                    "\n".join(out.splitlines()[-20:])
            outs.append(Counter(re.sub(r":\d+(:\d+)?", "", ln.replace("../", ""))
                                for ln in out.splitlines()
                                if re.match(r"\S+\.[ch]:\d+", ln.replace("../", ""))))
        new = outs[1] - outs[0]
        r.ok(failed is None and not new, name,
             failed or "\n".join(f"{n}x {x}" for x, n in sorted(new.items())))


def series_size(r, tree, what, base="base", head="HEAD"):
    """The series' size and churn (scripts/churn.py), as notes: v2's aims
    (net-negative in drivers/, include/ and kernel/ once portdrv is gone,
    no lines added by one patch and removed by a later one) are reported,
    not asserted, while the series is being written."""
    sys.path.insert(0, os.path.join(TOP, "scripts"))
    import churn
    lines, _ = churn.report(tree, base, head)
    r.note(f"series {what}: " + lines[0])
    for line in lines[1:]:
        r.note(line)


def check_each_patch(r, tree=TREE, base_tree=BASE_TREE, check=None, label=""):
    """Build every commit of the series in a worktree, W=1 on what it touches."""
    wt = tree + "-check"
    if not os.path.exists(wt):
        git("worktree", "add", "-q", "--detach", wt, "base", cwd=tree)
    cfg = os.path.join(tree, ".obj-guest", ".config")
    os.makedirs(os.path.join(wt, ".obj-guest"), exist_ok=True)
    commits = git("rev-list", "--reverse", "base..HEAD", cwd=tree).split()
    for c in commits:
        subj = git("log", "-1", "--format=%s", c, cwd=tree)
        git("checkout", "-q", "--detach", c, cwd=wt)
        sh(["cp", cfg, os.path.join(wt, ".obj-guest", ".config")])
        rc, out = kmake(wt, "olddefconfig", "bzImage")
        files = git("diff", "--name-only", "--diff-filter=AM", f"{c}^..{c}", "--", "*.c",
                    cwd=tree).split()
        # An included test file is checked through the file including it
        files = sorted({inc for f in files for inc in [includer(f, wt) or f]})
        objs = [f[:-2] + ".o" for f in files]
        w, why = Counter(), ""
        if rc == 0 and objs:
            try:
                w = (warnings_for(wt, files, True, check)
                     - warnings_for(base_tree, files, True, check))
            except BuildFailed as e:
                why = str(e)
        r.ok(rc == 0, f"static: {label}builds at '{subj}'", "\n".join(out.splitlines()[-30:]))
        r.ok(rc == 0 and not why and not w,
             f"static: {label}W=1/sparse clean at '{subj}' ({len(objs)} objects)",
             why or "\n".join(f"{n}x {x}" for x, n in sorted(w.items())))