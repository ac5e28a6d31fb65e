# Shared helpers for the harness scripts.  Source, don't execute.
# shellcheck shell=bash

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
TREE=$BUILD/linux
BASE_TREE=$BUILD/linux-base

# The base this series is written against.  Debian keeps several 6.12
# point releases in bookworm-security; the newest one is used (with a
# warning) only when the pinned one is gone.
BASE_PKG=linux-source-6.12
BASE_PIN=${BASE_PIN:-6.12.117-1~deb12u1}

msg()  { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

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
	sparse coccinelle ocaml-nox file python3-ply python3-git linux-config-6.12)

jobs() { nproc 2>/dev/null || echo 2; }
