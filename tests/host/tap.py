"""A TAP reporter: one line per check, the plan at the end and a closing
line 'N passed, N failed, N skipped' (', N known defects' when a check
named in `known` failed: TAP's # TODO)."""
import re
import sys


class Reporter:
    def __init__(self, out=sys.stdout, known=()):
        """`known`: (regular expression, defect) pairs; a check whose name
        matches one is a known defect of the kernel under test: it is
        reported with '# TODO <defect>', counted on its own when it fails,
        and named at the end when it passes (the defect may be fixed)."""
        self.out = out
        self.n = self.passed = self.failed = self.skipped = 0
        self.known = [(re.compile(rx), why) for rx, why in known]
        self.todo_failed = []
        self.todo_passed = []
        self.failures = []
        print("TAP version 13", file=out, flush=True)

    def _todo(self, name):
        for rx, why in self.known:
            if rx.search(name):
                return why
        return None

    def ok(self, cond, name, diag=None):
        self.n += 1
        todo = self._todo(name)
        if todo:
            print(f"{'ok' if cond else 'not ok'} {self.n} - {name} # TODO {todo}",
                  file=self.out, flush=True)
            (self.todo_passed if cond else self.todo_failed).append((name, todo))
            if cond:
                self.passed += 1
            elif diag:
                for line in str(diag).splitlines()[:20]:
                    print(f"#   {line}", file=self.out)
            return cond
        if cond:
            self.passed += 1
            print(f"ok {self.n} - {name}", file=self.out, flush=True)
        else:
            self.failed += 1
            self.failures.append((name, str(diag or "")))
            print(f"not ok {self.n} - {name}", file=self.out, flush=True)
            if diag:
                for line in str(diag).splitlines()[:60]:
                    print(f"#   {line}", file=self.out)
            self.out.flush()
        return cond

    def skip(self, name, reason):
        self.n += 1
        self.skipped += 1
        print(f"ok {self.n} - {name} # SKIP {reason}", file=self.out, flush=True)

    def eq(self, got, want, name, diag=None):
        if got == want:
            return self.ok(True, name)
        more = f"\n{str(diag)[-2000:]}" if diag else ""
        return self.ok(False, name, f"got:  {got!r}\nwant: {want!r}{more}")

    def note(self, text):
        for line in str(text).splitlines():
            print(f"# {line}", file=self.out)
        self.out.flush()

    def finish(self):
        print(f"1..{self.n}", file=self.out)
        if self.failures:
            # The closing lines are what a CI log's tail keeps: each
            # failure with the start and the end of its diagnostics.
            print("# failed:", file=self.out)
            for name, diag in self.failures:
                print(f"#   {name}", file=self.out)
                lines = [ln for ln in diag.splitlines() if ln.strip()]
                if len(lines) > 12:
                    lines = lines[:4] + ["..."] + lines[-7:]
                for line in lines:
                    print(f"#       {line[:300]}", file=self.out)
        if self.todo_passed:
            # a known defect whose check passes: fixed, or the check is wrong
            print("# known defects whose checks passed (remove them from KNOWN_DEFECTS "
                  "if they are fixed):", file=self.out)
            for name, why in self.todo_passed:
                print(f"#   {name} ({why})", file=self.out)
        known = f", {len(self.todo_failed)} known defects" if self.todo_failed else ""
        print(f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped{known}",
              file=self.out, flush=True)
        return 0 if self.failed == 0 else 1
