#!/usr/bin/env bash
# Make build/linux a git repository whose tag `base` is Debian's
# linux-source-6.12, unpatched.  Idempotent: an existing tree is checked,
# not rebuilt.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if git -C "$TREE" rev-parse -q --verify 'base^{commit}' >/dev/null 2>&1; then
	v=$(git -C "$TREE" show -s --format=%s base)
	msg "base present: $v"
	exit 0
fi
[ -e "$TREE" ] && die "$TREE exists but has no tag 'base'; move it away (or rm -rf it) and run 'make tree' again"

apt_install "${HOST_PKGS[@]}"

have=$(dpkg-query -W -f='${Version}' "$BASE_PKG" 2>/dev/null || true)
if [ "$have" != "$BASE_PIN" ]; then
	if [ "$(id -u)" = 0 ] && apt-get install -y -q --no-install-recommends \
		"$BASE_PKG=$BASE_PIN" >&2 2>/dev/null; then
		:
	else
		apt_install "$BASE_PKG"
	fi
	have=$(dpkg-query -W -f='${Version}' "$BASE_PKG" 2>/dev/null || true)
fi
[ -n "$have" ] || die "$BASE_PKG is not installed and could not be installed; on Debian bookworm it comes from bookworm-security (apt-get install $BASE_PKG)"
case "$have" in
6.12.*) ;;
*) die "$BASE_PKG has version $have, expected 6.12.x" ;;
esac
[ "$have" = "$BASE_PIN" ] ||
	warn "pinned base $BASE_PKG $BASE_PIN is not available; using $have instead (patches may need a refresh)"

tarball=/usr/src/$BASE_PKG.tar.xz
[ -f "$tarball" ] || die "$tarball missing although $BASE_PKG $have is installed; reinstall it"

mkdir -p "$BUILD"
tmp=$BUILD/.unpack.$$
rm -rf "$tmp"; mkdir -p "$tmp"
msg "unpacking $tarball (about a minute)"
tar -C "$tmp" -xf "$tarball"
src=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d | head -n 1)
[ -f "$src/Makefile" ] || die "unexpected layout in $tarball"
kv=$(make -s -C "$src" kernelversion 2>/dev/null)
case "$kv" in 6.12.*) ;; *) die "$tarball holds Linux $kv, not 6.12" ;; esac
mv "$src" "$TREE"
rm -rf "$tmp"

msg "creating git repository in $TREE"
cd "$TREE"
# Debian's source adds a packaging rule to .gitignore that ignores everything
# at the top level ("/*"), so every file a patch adds would be ignored and
# silently left out of commits.  Drop that block; no patch touches .gitignore.
if grep -q '^# Debian packaging: ignore everything' .gitignore 2>/dev/null; then
	awk '/^# Debian packaging: ignore everything/ { skip = 1 }
	     skip && /^!\/debian\/$/ { skip = 0; next }
	     !skip' .gitignore >.gitignore.new
	# the comment block starts with a bare "#" line just before
	sed -i '${/^#$/d}' .gitignore.new
	mv .gitignore.new .gitignore
fi
git init -q -b master
git config user.name  >/dev/null || git config user.name  "PCIe port services harness"
git config user.email >/dev/null || git config user.email "harness@localhost"
git config core.abbrev 12
git add -A -f . >/dev/null
git commit -q -m "Linux $kv (Debian $BASE_PKG $have)" --no-verify
git tag base
echo "$have" >"$BUILD/base-version"
msg "base ready: Linux $kv from $BASE_PKG $have, tagged 'base'"
