#!/usr/bin/env bash
# Make build/linux = base + patches/ (git am).  Refuses to throw away work in
# build/linux that is not exported to patches/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bash "$TOP/scripts/base.sh"
cd "$TREE"

# series_files DIR: the patches of one series directory, in order
series_files() {
	[ -f "$TOP/$1/series" ] || return 0
	grep -v '^[[:space:]]*\(#\|$\)' "$TOP/$1/series" | while read -r p; do
		[ -f "$TOP/$1/$p" ] || die "$1/series names $p, which does not exist"
		echo "$TOP/$1/$p"
	done
}
ids() { git patch-id --stable 2>/dev/null | cut -d' ' -f1 | sort; }

read -r -a dirs <<<"$PATCH_DIRS"
files=()
for d in "${dirs[@]}"; do
	mapfile -t more < <(series_files "$d")
	files+=("${more[@]}")
done
want=$( [ ${#files[@]} -eq 0 ] || cat "${files[@]}" | ids)
have=$(git log --reverse --format=email -p base..HEAD | ids)
if [ "$want" = "$have" ]; then
	msg "${TREE#"$TOP"/} already holds the exported series (${#files[@]} patches)"
	exit 0
fi

if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
	die "${TREE#"$TOP"/} has uncommitted changes; commit them and run 'make export', or discard them (git -C ${TREE#"$TOP"/} reset --hard), then run 'make tree' again"
fi
# Commits after base that were never exported would be lost.
recorded=$(cat "$TBUILD/exported-ids" 2>/dev/null || true)
if [ -n "$have" ] && [ "$have" != "$recorded" ]; then
	die "${TREE#"$TOP"/} has $(git rev-list --count base..HEAD) commits after base that differ from ${PATCH_DIRS// /, } and were not exported; run 'make export' to keep them, or 'git -C ${TREE#"$TOP"/} reset --hard base' to drop them, then run 'make tree' again"
fi

git checkout -q --detach base 2>/dev/null || true
git checkout -q -B series base
# Each series in order; the tag series/<directory name> marks where each
# ends (scripts/export.sh splits the tree there)
for d in "${dirs[@]}"; do
	mapfile -t more < <(series_files "$d")
	if [ ${#more[@]} -gt 0 ]; then
		msg "applying ${#more[@]} patches from $d/"
		if ! git am -q --3way "${more[@]}" >&2; then
			failed=$(git am --show-current-patch 2>/dev/null | sed -n 's/^Subject: //p' | head -n 1 || true)
			git am --abort >/dev/null 2>&1 || true
			die "a patch of $d does not apply to $(cat "$TBUILD/base-version" 2>/dev/null || echo the base) ${failed:+($failed)}; rebase the series on this base in ${TREE#"$TOP"/}, 'make export', and run 'make tree' again"
		fi
	fi
	[ "$d" = "${dirs[-1]}" ] || git tag -f "series/${d##*/}" HEAD >/dev/null
done
git log --reverse --format=email -p base..HEAD | ids >"$TBUILD/exported-ids"
msg "${TREE#"$TOP"/}: base + ${#files[@]} patches"
