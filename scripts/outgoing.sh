#!/usr/bin/env bash
# outgoing.sh [--test-ident "Name <email>"] [OUTDIR]: the target's series
# ready to post, signed by the submitter (git format-patch --signoff) into
# OUTDIR (default build/outgoing/<target>/).
#
# The committed patches carry no Signed-off-by: the DCO needs a real person,
# so the submitter's identity comes from git config (user.name, user.email)
# when the series is posted, never from the repository.  Commits whose
# author is the project's placeholder identity are sent as the submitter's.
# --test-ident signs with a stated identity for the static checks, which
# run checkpatch on a signed export; its output is not for posting.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

test_ident=
if [ "${1:-}" = --test-ident ]; then
	test_ident=${2:?--test-ident needs \"Name <email>\"}
	shift 2
fi
out=${1:-$BUILD/outgoing/$TARGET}

git -C "$TREE" rev-parse -q --verify 'base^{commit}' >/dev/null 2>&1 ||
	die "no ${TREE#"$TOP"/} with a 'base' tag: run 'make tree' first"
[ -z "$(git -C "$TREE" status --porcelain --untracked-files=no)" ] ||
	die "${TREE#"$TOP"/} has uncommitted changes: commit and 'make export' them first"
n=$(git -C "$TREE" rev-list --count base..HEAD)
[ "$n" -gt 0 ] || die "the $TARGET series is empty: nothing to post"

# Placeholder identities: the project's own and the harness's defaults.
placeholder='(@example\.(org|com|net)|\.example>?$|@localhost>?$|noreply)'
if [ -n "$test_ident" ]; then
	name=${test_ident%% <*}
	email=${test_ident##*<}
	email=${email%>}
else
	name=$(git -C "$TREE" config user.name || true)
	email=$(git -C "$TREE" config user.email || true)
	if [ -z "$name" ] || [ -z "$email" ] || grep -qiE "$placeholder" <<<"$email"; then
		die "git config says '${name:-?} <${email:-?}>', which is not a person's: set yours before posting (git config --global user.name 'Your Name'; git config --global user.email 'your real address'); the Signed-off-by certifies the DCO"
	fi
fi

# sign_series DIR FROM TO OUT: one series, signed, into OUT
sign_series() {
	local dir=$1 from=$2 to=$3 o=$4
	mkdir -p "$o"
	rm -f "$o"/[0-9][0-9][0-9][0-9]-*.patch
	git -C "$TREE" -c user.name="$name" -c user.email="$email" format-patch -q -M \
		--cover-letter --signoff --no-signature --subject-prefix="$(subject_prefix "$TOP/$dir")" \
		--base=base -o "$o" "$from..$to"
	python3 - "$o" "$TOP/$dir/cover-letter.txt" "$name <$email>" "$placeholder" <<'PY'
import glob
import os
import re
import sys
out, cover_txt, ident, placeholder = sys.argv[1:]
for p in sorted(glob.glob(os.path.join(out, "[0-9][0-9][0-9][0-9]-*.patch"))):
    s = open(p).read()
    head, sep, body = s.partition("\n\n")
    # the placeholder author becomes the submitter, who signs it
    # (format-patch folds a long From: over two lines: unfold it first)
    head = re.sub(r"^From: (.*(?:\n[ \t].*)*)$",
                  lambda m: "From: " + (ident if re.search(placeholder, m.group(1), re.I)
                                        else m.group(1)), head, count=1, flags=re.M)
    if p.endswith("0000-cover-letter.patch") and os.path.exists(cover_txt):
        text = open(cover_txt).read().split("\n", 1)
        head = head.replace("*** SUBJECT HERE ***", text[0].strip())
        body = body.replace("*** BLURB HERE ***",
                            text[1].strip("\n") if len(text) > 1 else "")
    open(p, "w").write(head + sep + body)
PY
}

# One series: OUTDIR holds it; several: a directory each, named as in
# patches/, posted in that order (each after the ones it needs is applied)
ranges=$(series_ranges)
several=$([ "$(wc -l <<<"$ranges")" -gt 1 ] && echo y || true)
while read -r dir from to; do
	[ "$(git -C "$TREE" rev-list --count "$from..$to")" -gt 0 ] || continue
	sign_series "$dir" "$from" "$to" "$out${several:+/${dir##*/}}"
done <<<"$ranges"
msg "wrote $n patches with their cover letters, signed by $name <$email>, to $out${several:+/<series>}"
[ -n "$test_ident" ] || msg "recipients: (cd ${TREE#"$TOP"/} && ./scripts/get_maintainer.pl $out/${several:+<series>/}0*.patch); see README, 'Posting'"
