#!/usr/bin/env bash
# Build the guest initramfs: busybox-static, lspci/setpci with their
# libraries, the AER injector and the guest scripts.  Prints its path.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

out=$BUILD/initramfs.cpio.gz
inputs=("$TOP/tests/guest" "$TOP/patches/mainline" /bin/busybox /usr/bin/lspci /usr/bin/setpci "$0")
if [ -f "$out" ] && [ -z "$(find "${inputs[@]}" -newer "$out" 2>/dev/null | head -n 1)" ]; then
	echo "$out"; exit 0
fi
for t in /bin/busybox /usr/bin/lspci /usr/bin/setpci; do
	[ -x "$t" ] || die "$t missing: install busybox-static and pciutils (make deps)"
done
case "$(file -L /bin/busybox 2>/dev/null) $(ldd /bin/busybox 2>&1)" in
*'statically linked'* | *'not a dynamic'*) ;;
*)
	die "/bin/busybox is not static: install busybox-static" ;;
esac

root=$BUILD/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,usr/share/misc,lib,lib64,proc,sys,dev,tmp,run,etc}
cp /bin/busybox "$root/bin/busybox"
install -m 0755 "$TOP/tests/guest/init" "$root/init"
for t in lspci setpci; do
	cp "/usr/bin/$t" "$root/usr/bin/$t"
	for lib in $(ldd "/usr/bin/$t" | grep -o '/[^ ]*'); do
		cp --parents -nL "$lib" "$root"
	done
done
[ -f /usr/share/misc/pci.ids ] && cp /usr/share/misc/pci.ids "$root/usr/share/misc/"
for c in "$TOP"/tests/guest/*.c; do
	gcc -static -O2 -Wall -Wextra -Werror -o "$root/usr/local/bin/$(basename "$c" .c)" "$c"
done
for s in "$TOP"/tests/guest/*.sh; do
	[ -e "$s" ] && install -m 0755 "$s" "$root/usr/local/bin/$(basename "$s" .sh)"
done
# The kselftests the v2 series adds (tools/testing/selftests/pcie_port_services),
# taken from its patches, so that every kernel of every target runs the same
# test: /usr/local/bin/kselftest-port-services.
ksft=tools/testing/selftests/pcie_port_services/port_services.sh
patch=$(grep -l "^+++ b/$ksft$" "$TOP"/patches/mainline/[0-9]*.patch 2>/dev/null | tail -n 1 || true)
[ -n "$patch" ] || die "no patch in patches/mainline adds $ksft"
(cd "$root/tmp" && GIT_CEILING_DIRECTORIES=$root git apply --include="$ksft" "$patch") ||
	die "cannot take $ksft from $patch (git apply failed)"
install -m 0755 "$root/tmp/$ksft" "$root/usr/local/bin/kselftest-port-services"
rm -rf "$root/tmp/tools"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) >"$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
