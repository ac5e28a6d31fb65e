#!/bin/sh
# portdump: raw facts about every PCIe port (bridges and RCECs) for the host
# to decide which services are active.  Output is line-based, "@KEY VALUE".
echo "@cmdline $(cat /proc/cmdline)"
echo "@arch $(uname -m)"
echo "@bios_date $(cat /sys/class/dmi/id/bios_date 2>/dev/null)"
dmesg | grep -E '_OSC: (OS now controls|platform does not support|OS supports)|_OSC failed' |
	sed 's/^\[[^]]*\] */@osc /'
for hb in /sys/devices/pci*; do
	[ -e "$hb/firmware_node" ] || continue
	echo "@hostbridge ${hb##*/} $(basename "$(readlink "$hb/firmware_node")")"
done
echo "@interrupts-begin"
cat /proc/interrupts
echo "@interrupts-end"
for d in /sys/bus/pci/devices/*; do
	class=$(cat "$d/class")
	case "$class" in 0x0604*|0x080700) ;; *) continue ;; esac
	bdf=${d##*/}
	echo "@port $bdf $(readlink -f "$d")"
	if [ -e "$d/driver" ]; then
		echo "@driver $(basename "$(readlink "$d/driver")")"
	else
		echo "@driver none"
	fi
	echo "@power_state $(cat "$d/power_state" 2>/dev/null || echo unknown)"
	echo "@runtime_control $(cat "$d/power/control" 2>/dev/null || echo unknown)"
	echo "@runtime_status $(cat "$d/power/runtime_status" 2>/dev/null || echo unknown)"
	echo "@irq $(cat "$d/irq")"
	if [ -e "$d/iommu_group" ]; then
		echo "@iommu_group $(basename "$(readlink "$d/iommu_group")")"
	else
		echo "@iommu_group none"
	fi
	if [ -d "$d/msi_irqs" ]; then
		for v in "$d"/msi_irqs/*; do
			[ -e "$v" ] && echo "@msi_irq ${v##*/} $(cat "$v" 2>/dev/null || echo "$(cat "$v/mode" 2>/dev/null)")"
		done
	fi
	# struct devices hanging off the port, other than PCI functions below it
	n=0
	for c in "$d"/* "$d"/*/*; do
		[ -L "$c" ] && continue
		[ -e "$c/uevent" ] || continue
		case "${c#"$d"/}" in
		????:??:??.?|????:??:??.?/*) continue ;;
		esac
		n=$((n + 1))
	done
	echo "@child_devices $n"
	# of them, port service devices (/sys/bus/pci_express, base only)
	echo "@service_devices $(ls -d "$d/$bdf":pcie* 2>/dev/null | wc -l)"
	echo "@pci_children $(ls -d "$d"/????:??:??.? 2>/dev/null | wc -l)"
	lspci -xxxx -s "$bdf" | sed -n 's/^\([0-9a-f][0-9a-f]*\): /@cfg \1 /p'
done
echo "@end"
