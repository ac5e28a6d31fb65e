"""Suspend-to-idle with an endpoint pulled out while the guest sleeps.

Used by the s2idle-surprise scenario (tests/run.py) and by make bench
(scripts/bench.py).  Needs the project's QEMU: its ports' x-surprise-removal
property makes device_del pull the card out at once (presence and link gone,
Presence Detect Changed latched) instead of pressing the Attention Button and
waiting for the guest to power the slot off, which a sleeping guest never does.
"""
import re
import time

from qemu import GuestError

SURPRISE_ARGS = ["-global", "pcie-root-port.x-surprise-removal=on"]
NOTICE = re.compile(r"Slot\(\S+\): (Card not present|Link Down)")


def ktime(line):
    m = re.match(r"\[\s*(\d+\.\d+)\]", line)
    return float(m.group(1)) if m else None


def first(lines, pred):
    for line in lines:
        if pred(line):
            return ktime(line)
    return None


_runs = 0


def wake(g, tag, cmd, interval=1.0, tries=30):
    """Wake a guest sleeping in `cmd` (started with tag `tag`) by poking its
    wake-up serial port until the command returns; returns (rc, output).
    Poke repeatedly: a character that arrives before ttyS1's wake-up IRQ
    is armed does not wake the guest."""
    for attempt in range(tries):
        time.sleep(interval)
        g.poke()
        try:
            return g.finish(tag, cmd, timeout=2, check=False)
        except GuestError:
            if attempt == tries - 1:
                raise
    return None, ""


def suspend_and_pull(g, dev_id, path, settle=3.0):
    """Suspend to idle, device_del `dev_id` (an endpoint in a slot with
    x-surprise-removal, `path` in the guest's sysfs) while the guest sleeps,
    wake the guest with a character on its wake-up serial port.  Returns a
    dict of what happened, with times in ms from the moment the kernel
    leaves s2idle.  Only this run's part of the log is looked at."""
    global _runs
    _runs += 1
    mark = f"s2idle-surprise-start-{_runs}"
    res = {"bound_before": g.run(f"test -e {path}/driver", check=False)[0] == 0}
    g.run("echo 1 > /sys/power/pm_debug_messages")
    g.run("echo enabled > /sys/class/tty/ttyS1/power/wakeup")
    g.run(f"echo {mark} > /dev/kmsg")
    cmd = "echo freeze > /sys/power/state"
    tag = g.send(cmd)
    res["entered"] = g.wait_console("PM: suspend entry (s2idle)", timeout=60)
    # Give the guest time to suspend its devices and reach s2idle; whether
    # the card went away while it slept is checked below from the log.
    time.sleep(settle)
    g.qmp.cmd("device_del", id=dev_id)
    res["deleted_event"] = g.qmp.wait_event("DEVICE_DELETED", timeout=10,
                                            match={"device": dev_id}) is not None
    rc, _ = wake(g, tag, cmd)
    res["resumed"] = rc == 0
    res["gone"] = g.wait_for(f"! test -e {path}", timeout=30)
    g.run("echo 0 > /sys/power/pm_debug_messages")
    lines = g.sh(f"dmesg | sed -n '/{mark}$/,$p'").splitlines()
    res["log"] = lines
    asleep = first(lines, lambda s: "PM: suspend-to-idle" in s)
    woke = first(lines, lambda s: "PM: resume from suspend-to-idle" in s)
    done = first(lines, lambda s: "PM: suspend exit" in s)
    notice = first(lines, lambda s: NOTICE.search(s) is not None)
    res["slept"] = asleep is not None and woke is not None
    # Noticed only after the wake-up: the card was pulled while the guest
    # slept (a card pulled while it was still awake is noticed at once).
    res["pulled_while_asleep"] = (res["slept"] and notice is not None and notice >= woke)
    res["noticed_ms"] = round((notice - woke) * 1000, 1) if notice and woke else None
    res["resume_ms"] = round((done - woke) * 1000, 1) if done and woke else None
    return res


def wait_slot_off(g, bdf, timeout=10):
    """Wait until pciehp has powered the slot of port `bdf` off (Power
    Controller off, Power Indicator off), the end of its removal: QEMU
    takes a card added before that as one the guest is powering off."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = g.sh(f"setpci -s {bdf} CAP_EXP+0x18.w").strip()
        try:
            ctl = int(out, 16)
        except ValueError:
            return False
        if ctl & 0x400 and ctl & 0x300 == 0x300:
            return True
        time.sleep(0.2)
    return False
