#!/usr/bin/env python3
"""churn.py TREE [BASE [HEAD]]: the size and churn of a series.

For the commits BASE..HEAD of the git tree TREE (default base..HEAD), in
drivers/, include/ and kernel/ with tests left out (files whose name says
test, and tools/testing, which is outside those directories anyway):

- the lines the series adds and removes in all (git diff BASE HEAD);
- churn: the lines one patch adds and a later patch of the same series
  removes, found with git blame on each patch's parent, per pair of
  patches.

make check-series prints this for every series (tests/static.py).
"""
import re
import subprocess
import sys

DIRS = ("drivers/", "include/", "kernel/")


def git(tree, *args):
    return subprocess.run(("git", "-C", tree) + args, check=True, capture_output=True,
                          text=True).stdout


def counted(path):
    name = path.rsplit("/", 1)[-1]
    return path.startswith(DIRS) and "test" not in name


def numstat(tree, a, b):
    added = removed = 0
    for line in git(tree, "diff", "--numstat", "--no-renames", a, b).splitlines():
        plus, minus, path = line.split("\t", 2)
        if counted(path) and plus != "-":
            added += int(plus)
            removed += int(minus)
    return added, removed


def churn(tree, commits):
    """{(adding commit, removing commit): {path: lines}}"""
    index = {c: i for i, c in enumerate(commits)}
    pairs = {}
    for c in commits:
        diff = git(tree, "diff", "-U0", "--no-renames", f"{c}^", c)
        path = None
        for line in diff.splitlines():
            if line.startswith("--- "):
                path = line[6:] if line.startswith("--- a/") else None
                continue
            m = re.match(r"@@ -(\d+)(?:,(\d+))? \+", line)
            if not (m and path and counted(path)):
                continue
            start, n = int(m.group(1)), int(m.group(2) if m.group(2) is not None else 1)
            if n == 0:
                continue
            blame = git(tree, "blame", "--porcelain", "-L", f"{start},+{n}", f"{c}^", "--", path)
            for bl in blame.splitlines():
                bm = re.match(r"([0-9a-f]{40}) \d+ \d+", bl)
                if bm and bm.group(1) in index and index[bm.group(1)] < index[c]:
                    per = pairs.setdefault((bm.group(1), c), {})
                    per[path] = per.get(path, 0) + 1
    return pairs


def report(tree, base="base", head="HEAD"):
    """Lines describing the series, for TAP notes."""
    commits = git(tree, "rev-list", "--reverse", f"{base}..{head}").split()
    if not commits:
        return ["no patches"], 0
    added, removed = numstat(tree, base, head)
    pairs = churn(tree, commits)
    total = sum(sum(per.values()) for per in pairs.values())
    num = {c: i + 1 for i, c in enumerate(commits)}
    out = [f"{len(commits)} patches; drivers/, include/, kernel/ (tests left out): "
           f"+{added} -{removed} (net {added - removed:+d}); lines added by one patch and "
           f"removed by a later one: {total}"]
    for (a, b), per in sorted(pairs.items(), key=lambda kv: (num[kv[0][0]], num[kv[0][1]])):
        files = ", ".join(f"{p} {n}" for p, n in sorted(per.items()))
        out.append(f"  patch {num[a]} -> patch {num[b]}: {sum(per.values())} ({files})")
    return out, total


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    lines, _ = report(*sys.argv[1:4])
    print("\n".join(lines))
