"""Benchmark: how many DigitalOcean requests a test run sends, and for what.

Runs pytest (default `features/ -n 0`) in a child process with this module loaded as
a plugin (`-p bench.bench_requests`): every request infra's client records
(infra/digitalocean.py `RequestLog.record`, retries included) is tallied by method and
path pattern (ids, tag names and domains replaced by `{id}`, `{tag}`, `{domain}`), by
the code that asked for it (the first frame of this repository outside the client and
the waiter) and with the two callers above it, whether it was a poll (sent from inside
`infra/wait.py wait_for` after its first check), and by test. Prints the totals and the
top of each. Counts, not time: they do not move with the load.

Run inside a private network namespace (the fake worlds bind loopback addresses):
  /work/tools/isolated .venv/bin/python -m bench.bench_requests [--top N] [-- ARGS]
ARGS replace the default pytest arguments (`features/ -n 0`); keep `-n 0`: the plugin
counts in the process that runs the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = os.environ.get("BENCH_REQUESTS_OUT")

# Path segments that name one thing rather than a collection, most specific first.
_PATTERNS = [
    (re.compile(r"/v2/tags/[^/]+"), "/v2/tags/{tag}"),
    (re.compile(r"/v2/domains/[^/]+"), "/v2/domains/{domain}"),
    (re.compile(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "/{id}"),
    (re.compile(r"/\d+(?=/|$)"), "/{id}"),
]
_SKIP = {str(ROOT / "infra" / "digitalocean.py"), str(ROOT / "infra" / "wait.py"),
         str(Path(__file__).resolve())}


def pattern(path: str) -> str:
    for regex, replacement in _PATTERNS:
        path = regex.sub(replacement, path)
    return path


# --- the plugin (in the pytest child) -------------------------------------------
_lock = threading.Lock()
_records: list[dict] = []
_polling = threading.local()


def _callers(depth: int = 3) -> list[str]:
    """The innermost `depth` frames of this repository that led to the request,
    outside the client and the waiter, innermost first (module.function)."""
    found: list[str] = []
    frame = sys._getframe(2)
    while frame is not None and len(found) < depth:
        name = frame.f_code.co_filename
        if name.startswith(str(ROOT)) and name not in _SKIP and "/.venv/" not in name:
            module = os.path.relpath(name, ROOT).removesuffix(".py").replace("/", ".")
            where = f"{module}.{frame.f_code.co_name}"
            if not found or found[-1] != where:
                found.append(where)
        frame = frame.f_back
    return found or ["?"]


def _install() -> None:
    from infra import wait
    from infra.digitalocean import RequestLog

    record = RequestLog.record

    def counted(self: RequestLog, method: str, path: str) -> None:
        record(self, method, path)
        callers = _callers()
        with _lock:
            _records.append({
                "request": f"{method.upper()} {pattern(path)}", "caller": callers[0],
                "chain": " < ".join(callers),
                "poll": getattr(_polling, "depth", 0) > 0,
                "test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]})

    RequestLog.record = counted

    # A poll: a check wait_for runs after its first (immediate) one. Seen by wrapping
    # the check, so that whatever wait_for does between checks, only checks count.
    wait_for = wait.wait_for

    def watched(what, check, *args, **kwargs):  # noqa: ANN001, ANN202
        calls = [0]

        def counted_check():  # noqa: ANN202
            calls[0] += 1
            depth = getattr(_polling, "depth", 0)
            _polling.depth = depth + (1 if calls[0] > 1 else 0)
            try:
                return check()
            finally:
                _polling.depth = depth

        return wait_for(what, counted_check, *args, **kwargs)

    wait.wait_for = watched
    # Modules that imported the name before the plugin ran hold the original.
    for module in list(sys.modules.values()):
        if getattr(module, "wait_for", None) is wait_for and module is not wait:
            module.wait_for = watched


def pytest_configure(config) -> None:  # noqa: ANN001
    if OUT:
        _install()


def pytest_unconfigure(config) -> None:  # noqa: ANN001
    if OUT:
        Path(OUT).write_text(json.dumps(_records))


# --- the runner ------------------------------------------------------------------
def report(records: list[dict], top: int) -> None:
    total = len(records)
    mutating = sum(1 for r in records if not r["request"].startswith("GET "))
    polls = sum(1 for r in records if r["poll"])
    print(f"DigitalOcean requests: {total}  (mutating {mutating}, GET {total - mutating}, "
          f"of them polls after a wait's first check {polls})")
    for title, key in (("by method and path", "request"), ("by caller", "caller"),
                       ("by caller and what called it", "chain"), ("by test", "test")):
        counts = Counter(r[key] for r in records)
        print(f"top {top} {title} ({len(counts)} distinct):")
        for name, count in counts.most_common(top):
            poll = sum(1 for r in records if r[key] == name and r["poll"])
            print(f"  {count:6d}  {poll:6d} polls  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--save", type=Path, help="also write every request (JSON) here, "
                        "to compare two runs")
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args()
    pytest_args = args.pytest_args or ["features/", "-n", "0"]
    with tempfile.TemporaryDirectory(prefix="bench-requests-") as scratch:
        out = Path(scratch) / "requests.json"
        child = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "bench.bench_requests",
             *pytest_args], cwd=ROOT, env={**os.environ, "BENCH_REQUESTS_OUT": str(out)},
            capture_output=True, text=True)
        lines = [line for line in child.stdout.splitlines() if line.strip()]
        print(f"pytest {' '.join(pytest_args)}: exit {child.returncode}  "
              f"{lines[-1] if lines else ''}")
        for line in lines:
            if line.startswith(("FAILED", "ERROR")):
                print(f"  {line}")
        if not out.exists():
            print(child.stdout[-4000:] + child.stderr[-4000:])
            sys.exit(1)
        records = json.loads(out.read_text())
        if args.save:
            args.save.write_text(json.dumps(records))
        report(records, args.top)


if __name__ == "__main__":
    main()
