#!/usr/bin/env bash
# make qemu: build the project's QEMU (Debian's qemu 7.2 source + qemu/patches)
# as a minimal x86_64-softmmu with ccache.  Prints the binary's path.
#   scripts/qemu.sh          build (incremental)
#   scripts/qemu.sh export   write the commits after 'base' in build/qemu to qemu/patches
set -euo pipefail
. "$(dirname "$0")/lib.sh"

QEMU_PIN=${QEMU_PIN:-1:7.2+dfsg-7+deb12u18}
SRC=$BUILD/qemu
OBJ=$BUILD/qemu-build
PATCHES=$TOP/qemu/patches
QEMU_PKGS=(dpkg-dev ninja-build meson pkg-config libglib2.0-dev libpixman-1-dev libfdt-dev
	zlib1g-dev qemu-system-data seabios ccache)

if [ "${1:-}" = export ]; then
	git -C "$SRC" rev-parse -q --verify base >/dev/null || die "no $SRC with tag base"
	rm -f "$PATCHES"/*.patch
	git -C "$SRC" format-patch -q -M --no-signature --zero-commit -o "$PATCHES" base..HEAD
	(cd "$PATCHES" && ls ./*.patch 2>/dev/null | sed 's|^\./||') >"$PATCHES/series"
	msg "exported $(wc -l <"$PATCHES/series") QEMU patches"
	exit 0
fi

apt_install "${QEMU_PKGS[@]}"

# grep -c, not grep -q: under pipefail, grep -q exiting early gets apt-cache
# killed by SIGPIPE and the whole test reads as "no source package".
have_qemu_src() { [ "$(apt-cache showsrc qemu 2>/dev/null | grep -c '^Version:')" -gt 0 ]; }

ensure_deb_src() {
	have_qemu_src && return 0
	need_root_for_apt "a deb-src entry"
	local f=/etc/apt/sources.list.d/pcie-harness-src.sources
	msg "adding deb-src entries for the configured Debian mirrors ($f)"
	# Every 'deb' entry of the deb822 sources, as 'deb-src'.
	for s in /etc/apt/sources.list.d/*.sources; do
		[ "$s" = "$f" ] && continue
		awk 'BEGIN{RS=""; ORS="\n\n"} /Types:[^\n]*deb/ && /debian/ { sub(/Types:[^\n]*/, "Types: deb-src"); print }' "$s"
	done >"$f.tmp"
	if [ -f /etc/apt/sources.list ]; then
		sed -n 's/^deb \(.*debian.*\)/deb-src \1/p' /etc/apt/sources.list >/etc/apt/sources.list.d/pcie-harness-src.list
	fi
	mv "$f.tmp" "$f"
	apt-get update -q >&2 || die "apt-get update failed"
	have_qemu_src ||
		die "no source package for qemu after adding deb-src entries; add a deb-src line for your Debian mirror"
}

patch_ids() { git -C "$SRC" log --reverse --format=email -p base..HEAD | git patch-id --stable | cut -d' ' -f1 | sort; }

if [ ! -d "$SRC/.git" ]; then
	ensure_deb_src
	tmp=$BUILD/.qemu-src.$$
	rm -rf "$tmp"; mkdir -p "$tmp"
	msg "fetching Debian's qemu $QEMU_PIN source"
	if ! (cd "$tmp" && apt-get source -q "qemu=$QEMU_PIN" >&2); then
		warn "qemu $QEMU_PIN is not available as source; using the newest 7.2 source"
		(cd "$tmp" && apt-get source -q qemu >&2) || die "apt-get source qemu failed"
	fi
	d=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d -name 'qemu-*' | head -n 1)
	[ -n "$d" ] && grep -q '^7\.2' "$d/VERSION" || die "the qemu source is not 7.2 ($(cat "$d/VERSION" 2>/dev/null))"
	mv "$d" "$SRC"; rm -rf "$tmp"
	git -C "$SRC" init -q -b master
	git -C "$SRC" -c user.name=harness -c user.email=harness@localhost add -A -f . >/dev/null
	git -C "$SRC" -c user.name=harness -c user.email=harness@localhost commit -q -m "QEMU $(cat "$SRC/VERSION") (Debian qemu source)"
	git -C "$SRC" tag base
fi

# Apply qemu/patches unless build/qemu already holds them.
want=$( [ -s "$PATCHES/series" ] && (cd "$PATCHES" && cat $(cat series)) | git patch-id --stable | cut -d' ' -f1 | sort)
if [ "$want" != "$(patch_ids)" ]; then
	[ -z "$(git -C "$SRC" status --porcelain --untracked-files=no)" ] ||
		die "build/qemu has uncommitted changes; commit and 'make qemu-export', or discard them"
	# Commits made in build/qemu since qemu/patches was applied would be
	# lost by the re-apply below: they are work, not a stale state.
	if git -C "$SRC" rev-parse -q --verify applied >/dev/null &&
		[ "$(git -C "$SRC" rev-parse HEAD)" != "$(git -C "$SRC" rev-parse applied)" ] &&
		git -C "$SRC" merge-base --is-ancestor applied HEAD; then
		die "build/qemu has commits after the applied qemu/patches ($(git -C "$SRC" log --format=%s applied..HEAD | head -n 1)...); 'make qemu-export' them, or 'git -C build/qemu reset --hard applied' to drop them"
	fi
	git -C "$SRC" checkout -q -B patched base
	if [ -s "$PATCHES/series" ]; then
		(cd "$PATCHES" && git -C "$SRC" -c user.name=harness -c user.email=harness@localhost \
			am -q --3way $(sed "s|^|$PATCHES/|" series)) >&2 ||
			{ git -C "$SRC" am --abort 2>/dev/null; die "a patch of qemu/patches does not apply to the qemu source; refresh it in build/qemu and run 'make qemu-export'"; }
	fi
fi
# What qemu/patches gave: commits after it are the developer's, to export.
if [ "$want" = "$(patch_ids)" ]; then
	git -C "$SRC" tag -f applied >/dev/null
fi

if [ ! -f "$OBJ/build.ninja" ]; then
	mkdir -p "$OBJ"
	msg "configuring a minimal x86_64-softmmu (TCG, no docs)"
	(cd "$OBJ" && "$SRC/configure" --target-list=x86_64-softmmu --without-default-features \
		--disable-docs --disable-werror --enable-tcg --cc="ccache gcc" --cxx="ccache g++" \
		--prefix=/usr --datadir=share/qemu >&2) || die "qemu configure failed"
fi
msg "building QEMU in $OBJ (a first build takes several minutes)"
ninja -C "$OBJ" -j"$(jobs)" qemu-system-x86_64 >&2 || die "qemu build failed"
echo "$OBJ/qemu-system-x86_64"
