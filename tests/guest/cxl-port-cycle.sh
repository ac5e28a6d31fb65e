#!/bin/sh
# cxl-port-cycle: unbind and bind cxl_pci_port on a CXL port, and after each
# bind count clock_ticks on the port's PMU for a millisecond (perf-count):
# N times, and on until /tmp/cxl-port-cycle.stop exists, so that a test can
# make events arrive while it runs.  Prints one line:
#   @BDF cycles=C unbound=U bound=B failed=F nopmu=P zero=Z
#   U, B   the port's MSI/MSI-X vectors while unbound / bound (distinct
#          values seen, comma-separated)
#   F      binds that failed; P: binds after which PMU did not appear
#          within 5 s; Z: counts that were not positive
#   usage: cxl-port-cycle N BDF PMU
n=$1 bdf=$2 pmu=$3
drv=/sys/bus/pci/drivers/cxl_pci_port
tmp=/tmp/cxl-port-cycle
rm -rf "$tmp" && mkdir -p "$tmp"
vecs() { ls "/sys/bus/pci/devices/$bdf/msi_irqs" 2>/dev/null | wc -l; }
seen() { sort -un "$tmp/$1" 2>/dev/null | tr '\n' , | sed 's/,$//'; }
i=0 failed=0 nopmu=0 zero=0
while [ "$i" -lt "$n" ] || [ ! -e /tmp/cxl-port-cycle.stop ]; do
	[ -e "$drv/$bdf" ] && echo "$bdf" >"$drv/unbind"
	vecs >>"$tmp/unbound"
	if ! echo "$bdf" >"$drv/bind" 2>/dev/null; then
		failed=$((failed + 1))
		i=$((i + 1))
		continue
	fi
	t=0
	while [ ! -e "/sys/bus/event_source/devices/$pmu" ] && [ "$t" -lt 50 ]; do
		sleep 0.1
		t=$((t + 1))
	done
	if [ ! -e "/sys/bus/event_source/devices/$pmu" ]; then
		nopmu=$((nopmu + 1))
	else
		vecs >>"$tmp/bound"
		c=$(perf-count "$pmu" clock_ticks 1 | sed -n 's/^count=\([0-9]*\) .*/\1/p')
		[ "${c:-0}" -gt 0 ] || zero=$((zero + 1))
	fi
	i=$((i + 1))
done
echo "@$bdf cycles=$i unbound=$(seen unbound) bound=$(seen bound) failed=$failed" \
	"nopmu=$nopmu zero=$zero"
