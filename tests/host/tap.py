"""A TAP reporter: one line per check, the plan at the end and a closing
line 'N passed, N failed, N skipped'."""
import sys


class Reporter:
    def __init__(self, out=sys.stdout):
        self.out = out
        self.n = self.passed = self.failed = self.skipped = 0
        self.failures = []
        print("TAP version 13", file=out, flush=True)

    def ok(self, cond, name, diag=None):
        self.n += 1
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
        print(f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped",
              file=self.out, flush=True)
        return 0 if self.failed == 0 else 1
