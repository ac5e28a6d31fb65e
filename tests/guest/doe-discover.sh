#!/bin/sh
# doe-discover: one DOE Discovery exchange (index 0) on a device's first DOE
# mailbox, through config space as a driver would, optionally with the DOE
# interrupt enabled.  Prints "@KEY VALUE" lines: the mailbox offset, its
# capabilities, the status after the request, the three response dwords and
# the status after reading them.
#   usage: doe-discover BDF [irq]
set -e
dev=$1
off=$(lspci -s "$dev" -vvv 2>/dev/null |
	sed -n 's/.*Capabilities: \[\([0-9a-f]*\) v[0-9]*\] Data Object Exchange.*/\1/p' | head -n 1)
[ -n "$off" ] || { echo "doe-discover: $dev has no DOE mailbox" >&2; exit 1; }
reg() { printf '%x' $((0x$off + $1)); }
ctl=80000000
[ "$2" = irq ] && ctl=80000002
echo "@offset $off"
echo "@cap $(setpci -s "$dev" "$(reg 4).l")"
# Request: PCI-SIG vendor ID, type 0 (Discovery), length 3 dwords, index 0
for dw in 00000001 00000003 00000000; do
	setpci -s "$dev" "$(reg 0x10).l=$dw"
done
setpci -s "$dev" "$(reg 8).l=$ctl"
i=0
while [ $(( 0x$(setpci -s "$dev" "$(reg 0xc).l") >> 31 )) -eq 0 ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || { echo "doe-discover: no Data Object Ready" >&2; exit 1; }
	sleep 0.01
done
echo "@status $(setpci -s "$dev" "$(reg 0xc).l")"
for n in 0 1 2; do
	echo "@rsp$n $(setpci -s "$dev" "$(reg 0x14).l")"
	setpci -s "$dev" "$(reg 0x14).l=0"
done
# Interrupt Status is RW1C
setpci -s "$dev" "$(reg 0xc).l=00000002"
echo "@status-after $(setpci -s "$dev" "$(reg 0xc).l")"
