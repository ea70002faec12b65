"""Secrets never leak from a spec run (issue 6 §3): the spec runs in a child process
against a fake world started with distinctive credentials, and neither its output,
its DEBUG log, its cucumber JSON and JUnit reports, nor any file it or the world left
behind holds them, except the 0600 files whose job is to hold them.

The run is a subset of the spec, not all of it (the whole spec takes ~90 s): the
scenarios that each take a secret down a path of its own. Of features/node.feature:
- up from an empty account: the token on every kind of DigitalOcean request, the
  image import, the TrueNAS API key and admin password on the new node, the state
  directory's secret files;
- up again on a converged site: the same secrets read back from the state directory;
- a fork beside a site, then down: a second site's state, and teardown's requests;
- down after an up that failed half-way (500 on every droplet creation): the error a
  refused request raises, and the message the run fails with;
- a failed answer during droplet creation, twice: 500 answered after the work (the
  retry report, then the lookup that finds the droplet) and 429 answered before it (the
  same, with the server's retry-after and rate-limit headers). The outline's other two
  rows (503 before, 504 after) take the same code path as these with another status
  (infra/digitalocean.py: `_error_from`, `_retrying` and `create_once` do not look at
  which 5xx it is), so they are left out;
- every invalid site file through the CLI, `up` and `plan` (refused before any change,
  with the token in the environment).
Of features/tls.feature, those with "valid" in their name: a site certificate by
http-01 and by dns-01 (whose DigitalOcean DNS authenticator holds the token on the
node), and the invalid ingress settings (a chart refused, its secrets scrubbed).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from fakes.truenas.fleet import new_api_key

ROOT = Path(__file__).resolve().parents[2]
SELECTION = ["features/test_node.py", "features/test_tls.py",
             "-k", "(test_node and (up or invalid) and not delta-2 and not delta-4)"
                   " or (test_tls and valid)"]
# A secret leaks if any stretch of it this long shows, not only the whole of it
# (a log line that cut a token at 40 characters has still leaked it).
WINDOW = 16
PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\n(.*?)\n-----END",
                         re.DOTALL)


@dataclass
class Run:
    # Never in the repr: a failing assertion prints it, and that output is searched too.
    secrets: dict[str, str] = field(repr=False)     # what it is -> the value
    world_dir: Path
    basetemp: Path
    reports: Path
    outputs: dict[str, bytes] = field(repr=False)   # stdout/stderr of the spec and the world
    returncode: int


def _distinctive() -> dict[str, str]:
    return {
        "DigitalOcean token": "dop_v1_" + secrets.token_hex(32),
        "admin secret": "adm1n-" + secrets.token_urlsafe(24),
        "TrueNAS API key": new_api_key(1),
    }


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, "the fake world exited before it was ready"
        assert time.monotonic() < deadline, "the fake world did not write world.json"
        time.sleep(0.05)
    time.sleep(0.2)          # world.json is written last, after every listener is up


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    base = tmp_path_factory.mktemp("leak")
    values = _distinctive()
    world_dir, basetemp, reports = base / "world", base / "pytest", base / "reports"
    reports.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DIGITALOCEAN_TOKEN", "TRUENAS_API_KEY", "FAKE_WORLD", "SPEC_TARGET")}
    world_out, world_err = base / "world.out", base / "world.err"
    with open(world_out, "wb") as out, open(world_err, "wb") as err:
        world = subprocess.Popen(
            [sys.executable, "-m", "fakes", "--state-dir", str(world_dir),
             "--token", values["DigitalOcean token"],
             "--admin-secret", values["admin secret"],
             "--truenas-api-key", values["TrueNAS API key"], "--log-level", "DEBUG"],
            cwd=ROOT, env=env, stdout=out, stderr=err)
    try:
        _wait_for(world_dir / "world.json", world)
        # The TrueNAS admin password is the world's own (every image of it has it):
        # it must not show either.
        described = json.loads((world_dir / "world.json").read_text())
        values["TrueNAS admin password"] = described["truenas"]["admin_password"]
        spec = subprocess.run(
            [sys.executable, "-m", "pytest", *SELECTION, "-p", "no:cacheprovider", "-rs",
             f"--basetemp={basetemp}",
             f"--cucumberjson={reports / 'cucumber.json'}",
             f"--junitxml={reports / 'junit.xml'}", "-o", "junit_logging=all",
             "--log-level=DEBUG", "--log-file-level=DEBUG", "-o", "log_cli=false",
             f"--log-file={reports / 'run.log'}"],
            # steps/redaction.py off: what the code itself lets out is judged here
            cwd=ROOT, env={**env, "SPEC_FAKE_WORLD": str(world_dir / "world.json"),
                           "SPEC_REDACT_KEYS": "0"},
            capture_output=True, timeout=900)
    finally:
        world.send_signal(signal.SIGTERM)
        try:
            world.wait(timeout=60)
        except subprocess.TimeoutExpired:
            world.kill()
            world.wait()
    return Run(values, world_dir, basetemp, reports,
               {"spec stdout": spec.stdout, "spec stderr": spec.stderr,
                "world stdout": world_out.read_bytes(), "world stderr": world_err.read_bytes()},
               spec.returncode)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _meant_for_secrets(path: Path, world_dir: Path) -> bool:
    """The files whose job is to hold a secret (the rest of the state must not): the
    world's description, private keys, a state directory's secrets/ and API key files,
    and a fake node's certificate store, which keeps each ACME DNS authenticator's
    credentials as a real node's configuration database does (reference/truenas-api.md)."""
    if path == world_dir / "world.json" or path.name == "certificates.json":
        return True
    return "secrets" in path.parts or "api_key" in path.name or path.suffix == ".key"


def _files(run: Run) -> list[Path]:
    roots = [run.world_dir, run.basetemp]
    return sorted(p for root in roots for p in root.rglob("*")
                  if p.is_file() and not p.is_symlink())


def _needles(values: dict[str, str]) -> dict[str, re.Pattern[bytes]]:
    """Each secret as a pattern matching any WINDOW-long stretch of it."""
    found = {}
    for what, value in values.items():
        raw = value.encode()
        stretches = {raw[i:i + WINDOW] for i in range(max(1, len(raw) - WINDOW + 1))}
        found[what] = re.compile(b"|".join(re.escape(s) for s in sorted(stretches)))
    return found


def _hits(needles: dict[str, re.Pattern[bytes]], where: str, data: bytes) -> list[str]:
    # Say where and what, never the value: this message ends up in a report too.
    return [f"{what} in {where} at byte {m.start()}"
            for what, pattern in needles.items() if (m := pattern.search(data))]


def _failed_steps(cucumber: Path) -> list[str]:
    """Each failed step of the child's run (cucumber.json): scenario, step, error."""
    try:
        features = json.loads(cucumber.read_text())
    except (OSError, ValueError) as unreadable:
        return [f"no readable cucumber report ({unreadable})"]
    failed = []
    for feature in features:
        for scenario in feature.get("elements", []):
            for step in scenario.get("steps", []):
                result = step.get("result", {})
                if result.get("status") == "failed":
                    failed.append(f"{feature.get('uri')}: {scenario.get('name')}\n"
                                  f"  {step.get('keyword', '')} {step.get('name')}\n"
                                  f"  {result.get('error_message', '')[-3000:]}")
    return failed


def _failures(run: Run) -> str:
    """Why the child run failed: its failed steps, then the end of its output (a
    fixture error has no failed step), then the end of the world's log."""
    out = run.outputs["spec stdout"].decode(errors="replace")
    summary = [line for line in out.splitlines() if line.startswith(("FAILED", "ERROR"))]
    world = run.outputs["world stderr"].decode(errors="replace")
    told = "\n\n".join(["failed steps:", *_failed_steps(run.reports / "cucumber.json"),
                         "summary:", *summary, "end of the output:", out[-4000:],
                         "end of the world's log:", world[-3000:]]).encode()
    for pattern in _needles(run.secrets).values():    # a leak is the other test's to show
        told = pattern.sub(b"[a secret]", told)
    return told.decode(errors="replace")


def test_the_run_really_exercised_the_site(run: Run) -> None:
    out = run.outputs["spec stdout"].decode(errors="replace")
    assert run.returncode == 0, _failures(run)
    assert "requirements on target fake" in out
    assert (run.reports / "cucumber.json").stat().st_size > 0
    assert (run.reports / "run.log").stat().st_size > 0
    # The token reached the node's DNS authenticator, so dns-01 really used it.
    assert "dns-01" in (run.reports / "cucumber.json").read_text()


def test_no_secret_in_output_logs_reports_or_state(run: Run) -> None:
    needles = _needles(run.secrets)
    hits = []
    for where, data in run.outputs.items():
        hits += _hits(needles, where, data)
    for report in sorted(run.reports.iterdir()):
        hits += _hits(needles, report.name, report.read_bytes())
    searched = 0
    for path in _files(run):
        if _meant_for_secrets(path, run.world_dir):
            continue
        hits += _hits(needles, str(path), path.read_bytes())
        searched += 1
    assert searched > 0
    assert hits == []


def test_the_files_meant_for_secrets_are_0600_in_0700_directories(run: Run) -> None:
    kept = [p for p in _files(run) if _meant_for_secrets(p, run.world_dir)]
    assert run.world_dir / "world.json" in kept
    loose = [f"{p}: {oct(_mode(p))}" for p in kept if _mode(p) != 0o600]
    assert loose == []
    assert _mode(run.world_dir) == 0o700


def _public_base64(pem_body: bytes) -> list[bytes]:
    """The key's public key (SubjectPublicKeyInfo) in base64, at each of the three byte
    alignments it can take inside a longer base64 text. An EC private key holds its
    public point, an RSA one its modulus: a certificate of that key (public, and logged
    at DEBUG when the ACME client downloads it) can carry a stretch of a key line."""
    try:
        key = serialization.load_der_private_key(base64.b64decode(b"".join(pem_body.split())),
                                                 None)
    except (ValueError, TypeError):
        return []
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return [base64.b64encode(bytes(pad) + der) for pad in range(3)]


def _key_lines(pem_body: bytes) -> list[bytes]:
    """The lines of a PEM private key that are its own: the first line is mostly the
    algorithm's ASN.1 header, the same in every key of its kind, and a line that is all
    public key is in every certificate of that key."""
    public = _public_base64(pem_body)
    return [line for line in pem_body.split()[1:]
            if len(line) >= WINDOW and not any(line in p for p in public)]


def test_no_private_key_in_output_logs_or_reports(run: Run) -> None:
    """The site certificates' keys (the fake TrueNAS keeps them 0600) and every other
    private key the run made stay in their files."""
    lines: dict[bytes, str] = {}
    for path in _files(run):
        if path.stat().st_size > 1 << 20:
            continue                      # volume storage, not a key file
        for match in PRIVATE_KEY.finditer(path.read_bytes()):
            assert _mode(path) == 0o600, f"{path} holds a private key but is {oct(_mode(path))}"
            lines.update((line, str(path)) for line in _key_lines(match.group(1)))
    assert any("etc_certificates" in where for where in lines.values()), \
        "the run made no site certificate: the TLS scenarios did not run"
    searched = dict(run.outputs)
    searched.update((report.name, report.read_bytes()) for report in run.reports.iterdir())
    hits = [f"a private key's PEM in {where}" for where, data in searched.items()
            if b"PRIVATE KEY-----" in data]
    hits += [f"a line of the key in {key} in {where}" for where, data in searched.items()
             for line, key in lines.items() if line in data]
    assert hits == []
