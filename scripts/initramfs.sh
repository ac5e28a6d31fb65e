#!/usr/bin/env bash
# Build the guest initramfs: busybox-static, lspci/setpci with their
# libraries, the AER injector and the guest scripts.  Prints its path.
# GUEST_ARCH=arm64: the arm64 guest's, from Debian's arm64 packages
# (apt-get download through the harness's own sources list, unpacked here,
# never installed) and the helpers cross-compiled.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

out=$INITRD
# Debian's rasdaemon (item 11 of the mainline issue: it records the AER events
# of the AER scenarios), from the machine's own Debian archive, unpacked here
# and never installed on the host.  Pinned; the newest with a warning when
# the pin is gone.
RASDAEMON_PIN=${RASDAEMON_PIN:-0.6.8-1.1}
rasdebs=$BUILD/guest-debs
# The 7.3 tree's base-version: upstream's pcie_bwctrl kselftest comes from it.
inputs=("$TOP/tests/guest" "$TOP/patches/mainline" /bin/busybox /usr/bin/lspci /usr/bin/setpci
	/bin/bash "$BUILD/mainline/base-version" "$0" "$rasdebs" "$TOP/scripts/lib.sh")
fetch_guest_debs() {
	mkdir -p "$rasdebs"
	[ -n "$(find "$rasdebs" -name 'rasdaemon_*.deb')" ] &&
		[ -n "$(find "$rasdebs" -name 'libsqlite3-0_*.deb')" ] && return 0
	msg "fetching Debian's rasdaemon $RASDAEMON_PIN and libsqlite3-0 for the guest (apt-get download)"
	if ! (cd "$rasdebs" && apt-get download -q "rasdaemon=$RASDAEMON_PIN" >&2); then
		warn "rasdaemon $RASDAEMON_PIN is not in the archive; taking the newest"
		(cd "$rasdebs" && apt-get download -q rasdaemon >&2) ||
			die "apt-get download rasdaemon failed: is a Debian archive in the apt sources?"
	fi
	(cd "$rasdebs" && apt-get download -q libsqlite3-0 >&2) || die "apt-get download libsqlite3-0 failed"
}
# The arm64 guest's user space: Debian's arm64 packages of the release the
# machine runs, through a sources list of the harness's own (build/apt-arm64,
# the same archive, architecture arm64 only), unpacked into a sysroot.
ARM64_GUEST_PKGS=(libc6 busybox-static bash libtinfo6 pciutils libpci3 libkmod2 libssl3
	liblzma5 libzstd1 libudev1 libcap2 zlib1g "rasdaemon=$RASDAEMON_PIN" libsqlite3-0)
arm64=$BUILD/guest-debs-arm64
fetch_arm64_userland() {
	local uri keyring codename apt opts p
	[ -f "$arm64/.complete" ] && [ "$(cat "$arm64/.complete")" = "${ARM64_GUEST_PKGS[*]}" ] && return 0
	read -r uri keyring < <(debian_archive) || die "cannot find the system's Debian archive in /etc/apt"
	codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
	apt=$BUILD/apt-arm64
	rm -rf "$arm64"
	mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$arm64/debs"
	echo "deb [arch=arm64 signed-by=$keyring] $uri $codename main" >"$apt/sources.list"
	opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
		-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
		-o "Dir::State::Status=/dev/null" -o "APT::Architecture=arm64"
		-o "APT::Architectures=arm64" -o "APT::Sandbox::User=root")
	msg "fetching the arm64 guest's packages from $uri $codename (apt-get download): ${ARM64_GUEST_PKGS[*]}"
	apt-get -q "${opts[@]}" update >&2 || die "apt-get update of $codename (arm64) from $uri failed (network?)"
	for p in "${ARM64_GUEST_PKGS[@]}"; do
		(cd "$arm64/debs" && apt-get -q "${opts[@]}" download "$p" >&2) && continue
		case "$p" in
		rasdaemon=*)
			warn "rasdaemon $RASDAEMON_PIN (arm64) is not in the archive; taking the newest"
			(cd "$arm64/debs" && apt-get -q "${opts[@]}" download rasdaemon >&2) && continue ;;
		esac
		die "apt-get download $p (arm64) failed"
	done
	for d in "$arm64"/debs/*.deb; do
		dpkg-deb -x "$d" "$arm64/root" || die "cannot unpack $d: remove $arm64 and run again"
	done
	echo "${ARM64_GUEST_PKGS[*]}" >"$arm64/.complete"
}

# copy_elf FILE: FILE (its path in the guest) from the arm64 sysroot into
# the initramfs, with its program interpreter and the shared libraries it
# needs (DT_NEEDED, followed); a library the sysroot lacks stops.
copy_elf() {
	local f=$1 sysroot=$arm64/root lib found d interp
	[ -e "$root$f" ] && return 0
	[ -e "$sysroot$f" ] || die "no $f in $sysroot: add its package to ARM64_GUEST_PKGS"
	mkdir -p "$root$(dirname "$f")"
	cp -L "$sysroot$f" "$root$f"
	interp=$(${CROSS}readelf -l "$sysroot$f" | sed -n 's/.*program interpreter: \(.*\)]$/\1/p')
	[ -z "$interp" ] || copy_elf "$interp"
	for lib in $(${CROSS}readelf -d "$sysroot$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
		found=
		for d in /lib/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu; do
			[ -e "$sysroot$d/$lib" ] && { found=$d/$lib; break; }
		done
		[ -n "$found" ] || die "$f needs $lib, which is not in $sysroot: add its package to ARM64_GUEST_PKGS"
		copy_elf "$found"
	done
}

if [ "$GUEST_ARCH" = arm64 ]; then
	fetch_arm64_userland
	inputs+=("$arm64/.complete")
else
	fetch_guest_debs
fi
if [ -f "$out" ] && [ -z "$(find "${inputs[@]}" -newer "$out" 2>/dev/null | head -n 1)" ]; then
	echo "$out"; exit 0
fi
root=${out%.cpio.gz}
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,usr/share/misc,lib,lib64,proc,sys,dev,tmp,run,etc}
if [ "$GUEST_ARCH" = arm64 ]; then
	command -v "${CROSS}gcc" >/dev/null || die "no ${CROSS}gcc: apt-get install ${ARM64_HOST_PKGS[*]}"
	install -m 0755 "$arm64/root/bin/busybox" "$root/bin/busybox"
	install -m 0755 "$TOP/tests/guest/init" "$root/init"
	for t in /usr/bin/lspci /usr/bin/setpci /bin/bash /usr/sbin/rasdaemon; do
		copy_elf "$t"
	done
	[ -f /usr/share/misc/pci.ids ] && cp /usr/share/misc/pci.ids "$root/usr/share/misc/"
	mkdir -p "$root/var/lib/rasdaemon"
else
	for t in /bin/busybox /usr/bin/lspci /usr/bin/setpci /bin/bash; do
		[ -x "$t" ] || die "$t missing: install busybox-static and pciutils (make deps)"
	done
	case "$(file -L /bin/busybox 2>/dev/null) $(ldd /bin/busybox 2>&1)" in
	*'statically linked'* | *'not a dynamic'*) ;;
	*)
		die "/bin/busybox is not static: install busybox-static" ;;
	esac

	cp /bin/busybox "$root/bin/busybox"
	install -m 0755 "$TOP/tests/guest/init" "$root/init"
	# bash for upstream's kselftests, which are bash scripts
	for t in /usr/bin/lspci /usr/bin/setpci /bin/bash; do
		cp "$t" "$root$t"
		for lib in $(ldd "$t" | grep -o '/[^ ]*'); do
			cp --parents -nL "$lib" "$root"
		done
	done
	[ -f /usr/share/misc/pci.ids ] && cp /usr/share/misc/pci.ids "$root/usr/share/misc/"
	# rasdaemon with Debian's libsqlite3 (its other libraries are the C library's)
	rx=$BUILD/.guest-debs.x
	rm -rf "$rx"; mkdir -p "$rx"
	for d in "$rasdebs"/rasdaemon_*.deb "$rasdebs"/libsqlite3-0_*.deb; do
		dpkg-deb -x "$d" "$rx" || die "cannot unpack $d: remove $rasdebs and run again"
	done
	[ -x "$rx/usr/sbin/rasdaemon" ] || die "no usr/sbin/rasdaemon in $(ls "$rasdebs"/rasdaemon_*.deb)"
	cp "$rx/usr/sbin/rasdaemon" "$root/usr/sbin/rasdaemon"
	mkdir -p "$root/usr/lib/x86_64-linux-gnu" "$root/var/lib/rasdaemon"
	cp -a "$rx"/usr/lib/x86_64-linux-gnu/libsqlite3.so.0* "$root/usr/lib/x86_64-linux-gnu/"
	for lib in $(LD_LIBRARY_PATH=$rx/usr/lib/x86_64-linux-gnu ldd "$rx/usr/sbin/rasdaemon" |
		grep -o '/[^ ]*' | grep -v "^$rx"); do
		cp --parents -nL "$lib" "$root"
	done
	rm -rf "$rx"
fi
for c in "$TOP"/tests/guest/*.c; do
	"${CROSS}gcc" -static -O2 -Wall -Wextra -Werror -o "$root/usr/local/bin/$(basename "$c" .c)" "$c"
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
# Upstream's bandwidth control kselftest (tools/testing/selftests/pcie_bwctrl),
# from the 7.3 tree as Debian ships it, when that tree is there (the mainline
# target): /usr/local/lib/kselftest/pcie_bwctrl.  tests/host/mainline.py
# fails if it is missing.
mtree=$BUILD/mainline/linux
if git -C "$mtree" rev-parse -q --verify 'base^{commit}' >/dev/null 2>&1; then
	mkdir -p "$root/usr/local/lib/kselftest/pcie_bwctrl"
	for f in set_pcie_cooling_state.sh set_pcie_speed.sh; do
		git -C "$mtree" show "base:tools/testing/selftests/pcie_bwctrl/$f" \
			>"$root/usr/local/lib/kselftest/pcie_bwctrl/$f" ||
			die "no tools/testing/selftests/pcie_bwctrl/$f in $mtree (tag base): is it 7.3?"
		chmod 0755 "$root/usr/local/lib/kselftest/pcie_bwctrl/$f"
	done
fi

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -1) >"$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
