"""Debian's rasdaemon recording the AER events of the AER scenarios.

The initramfs has Debian 12's rasdaemon (scripts/initramfs.sh).  It runs
in the guest's background as its service would, recording (-r) to its
SQLite database; the harness copies the database out and reads its
aer_event table with the host's sqlite3.  What it must hold: one record
for every aer_event the kernel traced (the same trace point, enabled in
the top-level trace instance as the reference), and a record for every
error a scenario injected, with its device and severity.  The records
are a fact of the scenario, so base and series of each target must show
the same ones.
"""

import base64
import gzip
import os
import re
import sqlite3
import tempfile
import time

DB = "/var/lib/rasdaemon/ras-mc_event.db"
TRACING = "/sys/kernel/tracing"
# rasdaemon's instance, under debugfs where rasdaemon 0.6.8 looks for it
INSTANCE = "/sys/kernel/debug/tracing/instances/rasdaemon"

# The trace point's severity (include/ras/ras_event.h) and what rasdaemon
# stores for it (ras-aer-handler.c); the scenarios' names for them.
TRACE_TYPE = {"Corrected": "Corrected", "Uncorrected, non-fatal": "Uncorrected (Non-Fatal)",
              "Fatal": "Uncorrected (Fatal)"}
SEV_TYPE = {"cor": "Corrected", "nonfatal": "Uncorrected (Non-Fatal)",
            "fatal": "Uncorrected (Fatal)"}


def start(g):
    """Start rasdaemon with the kernel's own aer_event trace as reference;
    whether rasdaemon came up (its instance has the event enabled)."""
    # rasdaemon 0.6.8 polls trace_pipe_raw, which since Linux 6.1 wakes
    # only once the instance's buffer_percent (default 50) of its ring
    # buffer is filled: a few AER events never get there.  Later rasdaemon
    # sets 0 itself ("Fix poll() on per_cpu trace_pipe_raw blocks
    # indefinitely", mchehab/rasdaemon pull request 86, 2023); Debian 12's
    # does not, so the instance is made first with 0 and rasdaemon reuses it.
    g.sh(f"rm -f {DB}; echo > {TRACING}/trace; "
         f"echo 1 > {TRACING}/events/ras/aer_event/enable; "
         f"mkdir -p {INSTANCE}; echo 0 > {INSTANCE}/buffer_percent; "
         "(rasdaemon -f -r >/tmp/rasdaemon.log 2>&1 &)")
    # It enables the event before it opens its database: up means alive
    # and polling ("Listening to events") too.
    return g.wait_for(f"grep -qx 1 {INSTANCE}/events/ras/aer_event/enable && "
                      "grep -q 'Listening to events' /tmp/rasdaemon.log && "
                      "pidof rasdaemon >/dev/null", timeout=30)


def kernel_events(g):
    """(device, rasdaemon's err_type) of every aer_event the kernel traced."""
    out = []
    for line in g.sh(f"grep aer_event: {TRACING}/trace || true").splitlines():
        m = re.search(r"aer_event: (\S+) \S+ Bus Error: severity=(Corrected|"
                      r"Uncorrected, non-fatal|Fatal),", line)
        if m:
            out.append((m.group(1), TRACE_TYPE[m.group(2)]))
    return out


def records(g):
    """rasdaemon's aer_event rows (dev_name, err_type, err_msg), or None
    when it has no database."""
    text = g.sh(f"test -f {DB} && gzip -c {DB} | base64 || true").strip()
    if not text:
        return None
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ras.db")
        try:
            with open(path, "wb") as f:
                f.write(gzip.decompress(base64.b64decode(text)))
            con = sqlite3.connect(path)
            try:
                return [tuple(r) for r in con.execute(
                    "SELECT dev_name, err_type, err_msg FROM aer_event ORDER BY id")]
            finally:
                con.close()
        except (sqlite3.DatabaseError, OSError, EOFError, ValueError):
            # copied while rasdaemon wrote it: the caller reads it again
            return None


def check(r, t, g, facts, up, injected):
    """After a scenario's injections: rasdaemon recorded what the kernel
    traced and every injected (device, severity); stop it."""
    r.ok(up, t("rasdaemon (Debian's) runs and has the aer_event trace point enabled"),
         g.sh("cat /tmp/rasdaemon.log 2>/dev/null | tail -n 20 || true"))
    want = sorted(kernel_events(g))
    rows = None
    deadline = time.monotonic() + 30
    while up and time.monotonic() < deadline:
        rows = records(g)
        if rows is not None and len(rows) >= len(want):
            break
        time.sleep(1)
    g.sh("killall rasdaemon 2>/dev/null; "
         f"echo 0 > {TRACING}/events/ras/aer_event/enable; true")
    got = sorted((dev, typ) for dev, typ, _ in rows or [])
    r.eq(got, want, t(f"rasdaemon recorded each of the {len(want)} AER events the kernel "
                      "traced (device, severity)"))
    missing = [(dev, sev) for dev, sev in injected if (dev, SEV_TYPE[sev]) not in got]
    r.eq(missing, [], t(f"rasdaemon has a record of each of the {len(injected)} "
                        "injected errors"))
    facts["rasdaemon records"] = sorted(rows or [])
