#!/usr/bin/env bash
# Install the host packages the harness needs (Debian bookworm, as root).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ -r /etc/debian_version ] || die "this harness expects Debian bookworm (apt-get); install by hand: ${HOST_PKGS[*]}"
apt_install "${HOST_PKGS[@]}"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing after install"
