#!/usr/bin/env bash
# kbuild.sh base|series|mutant [guest|debug|arm64]: configure and build a
# guest kernel out of tree with ccache (arm64: the arm64 guest, cross-compiled).  base = tag `base` (a worktree in
# build/linux-base), series = build/linux HEAD, mutant = the worktree
# build/linux-mutant that tests/mutants.py sets up (the series with one
# deliberate bug).  Prints the path of the kernel image on stdout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

which=${1:?usage: kbuild.sh base|series|mutant [guest|debug|arm64]}
flavour=${2:-guest}
# The arm64 flavour is the guest config for the arm64 guest (QEMU virt)
if [ "$flavour" = arm64 ]; then
	GUEST_ARCH=arm64 KARCH=arm64 KIMAGE=Image CROSS=aarch64-linux-gnu-
	apt_install "${ARM64_HOST_PKGS[@]}"
else
	GUEST_ARCH=x86_64 KARCH=x86 KIMAGE=bzImage CROSS=
fi

git -C "$TREE" rev-parse -q --verify 'base^{commit}' >/dev/null 2>&1 ||
	die "no base tree in $TREE: run 'make tree' first"

case "$which" in
base)
	src=$BASE_TREE
	if [ ! -d "$src/.git" ] && [ ! -f "$src/.git" ]; then
		msg "creating base worktree $src"
		git -C "$TREE" worktree prune
		git -C "$TREE" worktree add -q --detach "$src" base
	fi
	[ "$(git -C "$src" rev-parse HEAD)" = "$(git -C "$TREE" rev-parse 'base^{commit}')" ] ||
		git -C "$src" checkout -q --detach base
	;;
series) src=$TREE ;;
mutant)
	src=$BUILD/linux-mutant
	[ -e "$src/.git" ] || die "no mutant worktree in $src: 'make check-mutants' sets it up"
	;;
*) die "unknown tree '$which' (base, series or mutant)" ;;
esac

# The object directory is a direct subdirectory of the source, so Kbuild uses
# the relative srctree "..": base and series then compile with identical
# command lines and ccache serves whatever the series does not change.
obj=$src/.obj-$flavour
mkdir -p "$obj"
grep -qx '/.obj-\*' "$(git -C "$TREE" rev-parse --path-format=absolute --git-common-dir)/info/exclude" 2>/dev/null ||
	echo '/.obj-*' >>"$(git -C "$TREE" rev-parse --path-format=absolute --git-common-dir)/info/exclude"
# The fragment: guest.config and the architecture's (x86_64.config or
# arm64.config), the target's TARGET_CONFIG (options both its kernels
# have) and TARGET_CONFIG_<ARCH> (those on one architecture), its SERIES_CONFIG (options only the series has) for the series and
# mutant trees, debug.config for the debug flavour.
case "$flavour" in
guest | debug | arm64) ;;
*) die "unknown flavour '$flavour' (guest, debug or arm64)" ;;
esac
frag=$obj/fragment.config
{
	cat "$TOP/configs/guest.config" "$TOP/configs/$GUEST_ARCH.config"
	[ -n "${TARGET_CONFIG:-}" ] && cat "$TOP/$TARGET_CONFIG"
	arch_config=TARGET_CONFIG_${GUEST_ARCH^^}
	[ -n "${!arch_config:-}" ] && cat "$TOP/${!arch_config}"
	[ "$which" != base ] && [ -n "$SERIES_CONFIG" ] && cat "$TOP/$SERIES_CONFIG"
	[ "$flavour" = debug ] && cat "$TOP/configs/debug.config"
	true
} >"$frag.new"
cmp -s "$frag.new" "$frag" 2>/dev/null && rm "$frag.new" || mv "$frag.new" "$frag"

# ccache keeps its default directory (~/.cache/ccache), shared by every clone
# on the machine, so CI on a fresh clone reuses what earlier builds compiled.
export CCACHE_NOHASHDIR=1
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
mk=(make -C "$src" O="$obj" ARCH="$KARCH" ${CROSS:+CROSS_COMPILE=$CROSS}
	CC="ccache ${CROSS}gcc" HOSTCC="ccache gcc" -j"$(jobs)" -s)

stamp=$obj/.config-input
want=$(cat "$frag" | sha1sum)
# The options of the fragment the .config does not have as asked
unsatisfied() {
	grep -E '^CONFIG_[A-Z0-9_]+=' "$frag" | while IFS= read -r l; do
		k=${l%%=*} v=${l#*=}
		case "$v" in
		n) grep -qx "$k=y" "$obj/.config" && echo "$l" ;;
		*) grep -qxF "$l" "$obj/.config" || echo "$l" ;;
		esac
	done || true
}
# Configure when the fragment changed, and when a make run by hand at
# another commit of the tree rewrote the .config (Kconfig drops options
# that commit does not have).
if [ ! -f "$obj/.config" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] ||
	[ -n "$(unsatisfied)" ]; then
	msg "configuring $which ($flavour)"
	KCONFIG_ALLCONFIG=$frag "${mk[@]}" allnoconfig >&2
	# Every option the fragment sets must have survived.
	bad=$(unsatisfied)
	[ -z "$bad" ] || die "config options not satisfied for $which: $(echo $bad)"
	echo "$want" >"$stamp"
fi
msg "building $which ($flavour) kernel in $obj"
"${mk[@]}" "$KIMAGE" >&2
echo "$obj/arch/$KARCH/boot/$KIMAGE"
