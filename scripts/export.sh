#!/usr/bin/env bash
# Export the commits after `base` in the target's tree to its series
# directories (PATCH_DIRS; format-patch -M, a cover letter whose text comes
# from the directory's cover-letter.txt, a series file).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

git -C "$TREE" rev-parse -q --verify 'base^{commit}' >/dev/null 2>&1 ||
	die "no ${TREE#"$TOP"/} with a 'base' tag: run 'make tree' first"
[ -z "$(git -C "$TREE" status --porcelain --untracked-files=no)" ] ||
	die "${TREE#"$TOP"/} has uncommitted changes: commit them first"

# export_series DIR FROM TO: the commits FROM..TO as DIR's series.  A
# series after the first names the earlier ones as prerequisites
# (format-patch --base: base-commit and prerequisite-patch-id).
export_series() {
	local out=$TOP/$1 from=$2 to=$3 n cover
	mkdir -p "$out"
	rm -f "$out"/[0-9][0-9][0-9][0-9]-*.patch
	n=$(git -C "$TREE" rev-list --count "$from..$to")
	if [ "$n" -eq 0 ]; then
		: >"$out/series"
		msg "$1: the series is empty"
		return 0
	fi
	git -C "$TREE" format-patch -q -M --cover-letter --no-signature --zero-commit \
		--subject-prefix="$(subject_prefix "$out")" --base=base -o "$out" "$from..$to"
	cover=$out/0000-cover-letter.patch
	if [ -f "$out/cover-letter.txt" ]; then
		# The cover letter's date is the last patch's, so that exporting the
		# same series twice writes the same files
		python3 - "$cover" "$out/cover-letter.txt" "$(git -C "$TREE" log -1 --format=%aD "$to")" <<'PY'
import re
import sys
cover, text = sys.argv[1], open(sys.argv[2]).read().split("\n", 1)
subject, body = text[0].strip(), text[1].strip("\n") if len(text) > 1 else ""
s = open(cover).read()
s = s.replace("*** SUBJECT HERE ***", subject).replace("*** BLURB HERE ***", body)
s = re.sub(r"^Date: .*$", "Date: " + sys.argv[3], s, count=1, flags=re.M)
open(cover, "w").write(s)
PY
	fi
	(cd "$out" && ls [0-9][0-9][0-9][0-9]-*.patch | grep -v '^0000-cover-letter') >"$out/series"
	msg "exported $n patches to $1/"
}

ranges=$(series_ranges)
while read -r dir from to; do
	export_series "$dir" "$from" "$to"
done <<<"$ranges"
git -C "$TREE" log --reverse --format=email -p base..HEAD | git patch-id --stable | cut -d' ' -f1 | sort >"$TBUILD/exported-ids"
