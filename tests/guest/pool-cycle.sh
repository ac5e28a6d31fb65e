#!/bin/sh
# pool-cycle: bind the pool test driver (CONFIG_PCIE_PORT_POOL_TEST) to
# ports whose port driver is unbound, fire every interrupt it got from the
# core's pool through /sys/kernel/debug/irq, and unbind it: N times, and
# on until /tmp/pool-cycle.stop exists, so that a test can make events
# arrive while it runs.
# Prints one "@BDF KEY=VALUE..." line per port:
#   cycles   cycles completed
#   unbound  the port's MSI/MSI-X vectors while the driver is unbound
#            (the distinct values seen, comma-separated)
#   bound    the same while it is bound
#   got      interrupts the driver got (distinct values)
#   unfired  interrupts whose handler had not run after its trigger
#   failed   binds that failed
#   usage: pool-cycle N BDF...
n=$1
shift
drv=/sys/bus/pci/drivers/pcie_port_pool_test
tmp=/tmp/pool-cycle
rm -rf "$tmp" && mkdir -p "$tmp"
vecs() { ls "/sys/bus/pci/devices/$1/msi_irqs" 2>/dev/null | wc -l; }
seen() { sort -un "$tmp/$1.$2" 2>/dev/null | tr '\n' , | sed 's/,$//'; }
for d in "$@"; do
	[ -e "/sys/bus/pci/devices/$d/driver" ] &&
		echo "$d" >"/sys/bus/pci/devices/$d/driver/unbind"
	echo pcie_port_pool_test >"/sys/bus/pci/devices/$d/driver_override"
done
i=0
while [ "$i" -lt "$n" ] || [ ! -e /tmp/pool-cycle.stop ]; do
	for d in "$@"; do
		[ -e "$drv/$d" ] && echo "$d" >"$drv/unbind"
		vecs "$d" >>"$tmp/$d.unbound"
		echo "$d" >/sys/bus/pci/drivers_probe 2>/dev/null
		if [ ! -e "$drv/$d" ]; then
			echo x >>"$tmp/$d.failed"
			continue
		fi
		vecs "$d" >>"$tmp/$d.bound"
		t=/sys/bus/pci/devices/$d/pool_test
		wc -l <"$t" >>"$tmp/$d.got"
		for irq in $(awk '{ print $2 }' "$t"); do
			echo trigger >"/sys/kernel/debug/irq/irqs/$irq"
		done
		# A triggered interrupt is delivered to the CPU it is affine
		# to, which may be another: give its handler up to 1 s
		w=0
		while [ "$w" -lt 20 ] && [ -n "$(awk '$4 < 1' "$t")" ]; do
			sleep 0.05
			w=$((w + 1))
		done
		awk '$4 < 1' "$t" >>"$tmp/$d.unfired"
	done
	i=$((i + 1))
done
for d in "$@"; do
	[ -e "$drv/$d" ] && echo "$d" >"$drv/unbind"
	echo >"/sys/bus/pci/devices/$d/driver_override"
	echo "$d" >/sys/bus/pci/drivers_probe
	echo "@$d cycles=$i unbound=$(seen "$d" unbound) bound=$(seen "$d" bound)" \
		"got=$(seen "$d" got) unfired=$(cat "$tmp/$d.unfired" 2>/dev/null | wc -l)" \
		"failed=$(cat "$tmp/$d.failed" 2>/dev/null | wc -l)"
done
