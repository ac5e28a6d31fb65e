# Shared helpers for the harness scripts.  Source, don't execute.
# shellcheck shell=bash

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$TOP/build}

msg()  { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
# subject_prefix DIR: the series' subject prefix ("RFC PATCH" in a file
# DIR/subject-prefix for a series posted as an RFC), else "PATCH"
subject_prefix() { if [ -s "$1/subject-prefix" ]; then head -n 1 "$1/subject-prefix"; else echo PATCH; fi; }

# The target: which kernel and series (targets/*.conf, data).  lts = 6.12
# with v1 (the default), mainline = 7.3.  BASE_PIN in the environment
# overrides the target's pin.
TARGET=${TARGET:-lts}
target_conf() {
	local f=$TOP/targets/$1.conf
	[ -f "$f" ] || die "unknown target '$1': targets/ has $(cd "$TOP/targets" && ls -- *.conf | sed 's/\.conf$//' | tr '\n' ' ')"
	sed -n 's/^\([A-Z_][A-Z0-9_]*\)=\(.*\)$/\1=\2/p' "$f"
}
pin_env=${BASE_PIN:-}
while IFS='=' read -r key val; do
	printf -v "$key" '%s' "$val"
done < <(target_conf "$TARGET")
BASE_PIN=${pin_env:-$BASE_PIN}
unset pin_env
# A target with one series has only PATCH_DIR
PATCH_DIRS=${PATCH_DIRS:-$PATCH_DIR}
TBUILD=$BUILD${BUILD_SUBDIR:+/$BUILD_SUBDIR}
TREE=$TBUILD/linux
BASE_TREE=$TBUILD/linux-base

need_root_for_apt() {
	[ "$(id -u)" = 0 ] || die "installing packages needs root (run as root, or install: $*)"
}

# apt_install PKG...: install Debian packages that are missing.
apt_install() {
	local missing=() p
	for p in "$@"; do
		[ "$(dpkg-query -W -f='${Status}' "${p%%=*}" 2>/dev/null)" = 'install ok installed' ] ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	need_root_for_apt "${missing[@]}"
	msg "installing ${missing[*]}"
	if [ ! -f "$BUILD/.apt-updated" ] || [ -n "$(find "$BUILD/.apt-updated" -mmin +720)" ]; then
		mkdir -p "$BUILD"
		DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || die "apt-get update failed"
		touch "$BUILD/.apt-updated"
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
		die "apt-get install ${missing[*]} failed"
}

# Host tools the harness needs (CI installs them through this too).
HOST_PKGS=(build-essential flex bison bc libelf-dev libssl-dev cpio xz-utils
	kmod rsync ccache git python3 qemu-system-x86 busybox-static pciutils
	sparse coccinelle ocaml-nox file python3-ply python3-git python3-cryptography
	linux-config-6.12)

jobs() { nproc 2>/dev/null || echo 2; }

# The guest architecture: x86_64 (QEMU q35, the default) or arm64 (QEMU
# virt with GICv3/ITS and SMMUv3; issue 14).  GUEST_ARCH=arm64 selects the
# arm64 kernels (object directory .obj-arm64, cross-compiled with Debian's
# gcc-aarch64-linux-gnu) and the arm64 initramfs.
GUEST_ARCH=${GUEST_ARCH:-x86_64}
case "$GUEST_ARCH" in
x86_64) KARCH=x86 KIMAGE=bzImage CROSS= INITRD=$BUILD/initramfs.cpio.gz ;;
arm64) KARCH=arm64 KIMAGE=Image CROSS=aarch64-linux-gnu- INITRD=$BUILD/initramfs-arm64.cpio.gz ;;
*) die "unknown GUEST_ARCH '$GUEST_ARCH' (x86_64 or arm64)" ;;
esac
# What the arm64 guests need on the host: the cross compiler (with its C
# library for the static test helpers) and Debian's QEMU for arm64 with the
# UEFI firmware for the ACPI boots.
ARM64_HOST_PKGS=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu
	qemu-system-arm qemu-efi-aarch64)

# The system's Debian archive: the URI of its entry for the release it runs
# (deb822 .sources or one-line sources.list), and the keyring that entry
# trusts.  The harness's own sources list points the same archive at the
# target's suites.
debian_archive() {
	local codename
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[ -n "$codename" ] || die "cannot tell the Debian release from /etc/os-release"
	python3 - "$codename" /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
		/etc/apt/sources.list.d/*.list <<'PY'
import os
import re
import sys
codename, files = sys.argv[1], [f for f in sys.argv[2:] if os.path.isfile(f)]
key = "/usr/share/keyrings/debian-archive-keyring.gpg"
for f in files:
    text = open(f, errors="replace").read()
    if f.endswith(".sources"):
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
            if "deb" in fields.get("Types", "").split() and \
                    codename in fields.get("Suites", "").split() and \
                    "main" in fields.get("Components", "").split():
                print(fields["URIs"].split()[0], fields.get("Signed-By", key).strip())
                sys.exit(0)
    else:
        for line in text.splitlines():
            m = re.match(r"deb\s+(?:\[(.*?)\]\s+)?(\S+)\s+(\S+)\s+(.*)", line.strip())
            if m and m.group(3) == codename and "main" in m.group(4).split():
                opts = dict(o.split("=", 1) for o in (m.group(1) or "").split() if "=" in o)
                print(m.group(2), opts.get("signed-by", key))
                sys.exit(0)
sys.exit(f"no 'deb ... {codename} main' entry in {' '.join(files)}")
PY
}


# series_ranges: one line "DIR FROM TO" per series of the target, in order
# (commits of $TREE): the first starts at base, the last ends at HEAD, and
# each other ends at the tag series/<its directory's name>.  A tag that a
# rebase left behind is moved to the commit with the same subject.
series_ranges() {
	local dirs d from=base to tag c subj i n
	read -r -a dirs <<<"$PATCH_DIRS"
	n=${#dirs[@]}
	for ((i = 0; i < n; i++)); do
		d=${dirs[$i]}
		if [ $((i + 1)) -eq "$n" ]; then
			to=$(git -C "$TREE" rev-parse HEAD)
		else
			tag=series/${d##*/}
			c=$(git -C "$TREE" rev-parse -q --verify "refs/tags/$tag^{commit}") ||
				die "no tag $tag in ${TREE#"$TOP"/} marks the last commit of the $d series: git -C ${TREE#"$TOP"/} tag $tag <that commit>"
			if ! git -C "$TREE" merge-base --is-ancestor "$c" HEAD ||
				! git -C "$TREE" merge-base --is-ancestor "$from" "$c"; then
				subj=$(git -C "$TREE" log -1 --format=%s "$c")
				c=$(git -C "$TREE" log --format='%H%x09%s' "$from..HEAD" |
					awk -F'\t' -v s="$subj" '$2 == s { print $1; exit }')
				[ -n "$c" ] ||
					die "tag $tag ($subj) is not in ${TREE#"$TOP"/}'s history after $from, and no commit there has its subject: git -C ${TREE#"$TOP"/} tag -f $tag <the last commit of the $d series>"
				git -C "$TREE" tag -f "$tag" "$c" >/dev/null
				msg "tag $tag moved to ${c:0:12} ($subj)"
			fi
			to=$c
		fi
		echo "$d $from $to"
		from=$to
	done
}
