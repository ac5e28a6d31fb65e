#!/usr/bin/env bash
# Make build/<target>/linux a git repository whose tag `base` is the target's
# Debian kernel source (targets/$TARGET.conf: linux-source-6.12 from the
# system's sources for lts, linux-source-7.3 from experimental for
# mainline), unpatched.  Idempotent: an existing tree is checked, not
# rebuilt.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if git -C "$TREE" rev-parse -q --verify 'base^{commit}' >/dev/null 2>&1; then
	v=$(git -C "$TREE" show -s --format=%s base)
	case "$v" in
	"Linux $KVER."*) msg "base present: $v" ;;
	*) die "$TREE holds '$v', not Linux $KVER (target $TARGET); move it away and run 'make tree' again" ;;
	esac
	exit 0
fi
[ -e "$TREE" ] && die "$TREE exists but has no tag 'base'; move it away (or rm -rf it) and run 'make tree' again"

apt_install "${HOST_PKGS[@]}"

# fetch_deb: download $BASE_PKG (the pin, or the newest $KVER) from the
# target's suites into $TBUILD/debs; print its version and path.
fetch_deb() {
	local arch uri keyring apt opts have vers ver
	read -r uri keyring < <(debian_archive) || die "cannot find the system's Debian archive in /etc/apt"
	[ -f "$keyring" ] || die "keyring $keyring (from the system's sources) is missing: apt-get install debian-archive-keyring"
	apt=$BUILD/apt
	mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$TBUILD/debs"
	: >"$apt/sources.list.new"
	for s in $BASE_SUITE; do
		echo "deb [signed-by=$keyring] $uri $s main" >>"$apt/sources.list.new"
	done
	mv "$apt/sources.list.new" "$apt/sources.list"
	arch=$(dpkg --print-architecture)
	opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
		-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
		-o "Dir::State::Status=/dev/null" -o "APT::Architecture=$arch"
		-o "APT::Sandbox::User=root")
	msg "looking up $BASE_PKG in $uri ($BASE_SUITE), through $apt/sources.list"
	apt-get -q "${opts[@]}" update >&2 ||
		die "apt-get update of $BASE_SUITE from $uri failed (network? see above)"
	vers=$(apt-cache "${opts[@]}" madison "$BASE_PKG" | awk -F'|' '{gsub(/ /, "", $2); print $2}' | sort -u)
	if grep -qxF "$BASE_PIN" <<<"$vers"; then
		ver=$BASE_PIN
	else
		ver=$(grep "^$KVER[.~]" <<<"$vers" | sort -V | tail -n 1 || true)
		[ -n "$ver" ] || die "$BASE_PKG is not in $BASE_SUITE at $uri (found: ${vers:-nothing}); Linux $KVER may have left the archive: pick a new base in targets/$TARGET.conf"
		warn "pinned base $BASE_PKG $BASE_PIN is gone from $BASE_SUITE; using the newest $KVER, $ver (update BASE_PIN in targets/$TARGET.conf; patches may need a refresh)"
	fi
	have=$(cd "$TBUILD/debs" && ls -- "${BASE_PKG}_${ver/:/%3a}_"*.deb 2>/dev/null | head -n 1 || true)
	if [ -z "$have" ]; then
		(cd "$TBUILD/debs" && apt-get -q "${opts[@]}" download "$BASE_PKG=$ver" >&2) ||
			die "apt-get download $BASE_PKG=$ver failed"
		have=$(cd "$TBUILD/debs" && ls -- "${BASE_PKG}_"*"_all.deb" | grep -F "_${ver/:/%3a}_" | head -n 1)
	fi
	[ -n "$have" ] || die "apt-get download left no $BASE_PKG $ver package in $TBUILD/debs"
	echo "$ver $TBUILD/debs/$have"
}

mkdir -p "$TBUILD"
tmp=$TBUILD/.unpack.$$
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

if [ -n "$BASE_SUITE" ]; then
	read -r have deb < <(fetch_deb) || exit 1
	case "$have" in
	"$KVER"[.~]*) ;;
	*) die "$BASE_PKG has version $have, expected $KVER" ;;
	esac
	msg "unpacking $deb"
	dpkg-deb -x "$deb" "$tmp/deb" || die "$deb is not a Debian package; delete it and run 'make tree' again"
	tarball=$tmp/deb/usr/src/$BASE_PKG.tar.xz
	[ -f "$tarball" ] || die "$deb holds no usr/src/$BASE_PKG.tar.xz"
else
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
	"$KVER".*) ;;
	*) die "$BASE_PKG has version $have, expected $KVER.x" ;;
	esac
	[ "$have" = "$BASE_PIN" ] ||
		warn "pinned base $BASE_PKG $BASE_PIN is not available; using $have instead (patches may need a refresh)"
	tarball=/usr/src/$BASE_PKG.tar.xz
	[ -f "$tarball" ] || die "$tarball missing although $BASE_PKG $have is installed; reinstall it"
fi

msg "unpacking $tarball (about a minute)"
mkdir -p "$tmp/src"
tar -C "$tmp/src" -xf "$tarball"
src=$(find "$tmp/src" -mindepth 1 -maxdepth 1 -type d | head -n 1)
[ -f "$src/Makefile" ] || die "unexpected layout in $tarball"
kv=$(make -s -C "$src" kernelversion 2>/dev/null)
case "$kv" in "$KVER".*) ;; *) die "$tarball holds Linux $kv, not $KVER" ;; esac
mv "$src" "$TREE"

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
echo "$have" >"$TBUILD/base-version"
msg "base ready: Linux $kv from $BASE_PKG $have, tagged 'base'"
