"""Run pebble next to the fake world.

Recipe from reference/this-machine.md §1: pebble's own listener gets a certificate from the
world's CA (the Debian package ships no test certs), it resolves names through the
world's DNS server (`-dnsserver`), validates http-01 on the droplets' (mapped) port 80
and tls-alpn-01 on 443, and its issuing root is served on the management port at
`/roots/0`. Pebble keeps everything in memory: a restart forgets accounts and roots.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from fakes import children
from fakes.tls import WorldCA

INSTALL_HINT = (
    "pebble is not installed: apt-get install pebble (Debian/Ubuntu), or "
    "`go install github.com/letsencrypt/pebble/v2/cmd/pebble@latest` and put it on PATH; "
    "TLS scenarios are skipped without it"
)
# Let's Encrypt's certificate lifetime; pebble's own default is 5 years
# (reference/this-machine.md §1).
VALIDITY_SECONDS = 90 * 24 * 3600
FOLLOW_THRESHOLD_SECONDS = 24 * 3600
STARTUP_SECONDS = 15.0
STOP_SECONDS = 5.0
ENVIRONMENT = {
    # No random 0-15 s sleep before each validation.
    "PEBBLE_VA_NOSLEEP": "1",
    # Pebble rejects 5% of nonces by default, to test client retries; our tests want
    # determinism, and acme's client retries badNonce anyway.
    "PEBBLE_WFE_NONCEREJECT": "0",
    # Pebble reuses a valid authorization 50% of the time by default: a scenario meant to
    # fail (DNS pointing elsewhere) could be "rescued" by an earlier success.
    "PEBBLE_AUTHZREUSE": "0",
}


class PebbleStartError(RuntimeError):
    """pebble is installed but did not come up; the message carries its log's tail."""


def pebble_unavailable(executable: str = "pebble") -> str | None:
    """Why the world cannot run pebble (with how to install it), or None if it can."""
    return None if shutil.which(executable) else INSTALL_HINT


class PebbleServer:
    def __init__(self, state_dir: Path, ca: WorldCA, dns: tuple[str, int], http_port: int,
                 tls_port: int, host: str = "127.0.0.1", executable: str = "pebble") -> None:
        self.directory_path = Path(state_dir) / "acme"
        self.ca = ca
        self.dns = dns
        self.http_port = http_port
        self.tls_port = tls_port
        self.host = host
        self.executable = executable
        self.port = 0
        self.management_port = 0
        self.root_ca = self.directory_path / "root.pem"
        self.config_path = self.directory_path / "pebble-config.json"
        self.log_path = self.directory_path / "pebble.log"
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen | None = None
        self.validity_seconds = VALIDITY_SECONDS
        self._cert = None

    @property
    def directory(self) -> str:
        return f"https://{self.host}:{self.port}/dir"

    @property
    def management(self) -> str:
        return f"https://{self.host}:{self.management_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def describe(self) -> dict:
        return {"directory": self.directory, "root_ca": str(self.root_ca)}

    def start(self) -> PebbleServer:
        self.directory_path.mkdir(parents=True, exist_ok=True)
        cert = self._cert = self.ca.issue("pebble", self.host, "localhost")
        began = time.monotonic()
        # Free ports are picked then released before pebble binds them: another process
        # may take one in between, so a bind failure gets a second and third chance.
        for attempt in range(3):
            self.port, self.management_port = _free_ports(self.host, 2)
            self._write_config(cert.cert_path, cert.key_path)
            self._launch()
            try:
                deadline = began + STARTUP_SECONDS
                self._wait_for(self.directory, deadline)
                # The management listener starts on its own: it may lag /dir a little.
                root = self._wait_for(f"{self.management}/roots/0", deadline)
                break
            except PebbleStartError:
                bind_race = "address already in use" in self._log_tail()
                self.stop()
                if not bind_race or attempt == 2:
                    raise
        self.root_ca.write_bytes(root)
        self.startup_seconds = time.monotonic() - began
        return self

    def follow_clock(self, ahead_seconds: float) -> bool:
        """Pebble dates certificates by this machine's clock; the world's clock can be
        moved weeks ahead (admin API). Once it is more than a day ahead, pebble is
        restarted on the same ports issuing certificates that many seconds longer, so
        that a certificate it issues now is valid for 90 days of the world's time.
        A restart makes a new issuing root: root.pem keeps every root pebble had (the
        certificates issued before still verify), and pebble forgets its accounts
        (an ACME client registers again). True when it restarted."""
        ahead = int(max(0.0, ahead_seconds))
        if ahead < FOLLOW_THRESHOLD_SECONDS or not self.running:
            return False
        self.stop()
        self.validity_seconds = VALIDITY_SECONDS + ahead
        self._write_config(self._cert.cert_path, self._cert.key_path)
        self._launch()
        deadline = time.monotonic() + STARTUP_SECONDS
        self._wait_for(self.directory, deadline)
        root = self._wait_for(f"{self.management}/roots/0", deadline)
        with self.root_ca.open("ab") as bundle:
            bundle.write(root)
        return True

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        children.stop(process, STOP_SECONDS)

    def _write_config(self, cert_path: Path, key_path: Path) -> None:
        config = {"pebble": {
            "listenAddress": f"{self.host}:{self.port}",
            "managementListenAddress": f"{self.host}:{self.management_port}",
            "certificate": str(cert_path),
            "privateKey": str(key_path),
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            "certificateValidityPeriod": self.validity_seconds,
        }}
        self.config_path.write_text(json.dumps(config, indent=2))

    def _launch(self) -> None:
        command = [self.executable, "-config", str(self.config_path),
                   "-dnsserver", f"{self.dns[0]}:{self.dns[1]}", "-strict=false"]
        # Pebble dies with the world, even a world killed with SIGKILL (fakes/children.py).
        # Output to a file, never a pipe: nobody reads a pipe, and a full one blocks pebble.
        with self.log_path.open("ab") as log:
            self._process = children.spawn(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, **ENVIRONMENT}, cwd=self.directory_path,
            )

    def _wait_for(self, url: str, deadline: float) -> bytes:
        while True:
            if not self.running:
                raise PebbleStartError(f"pebble exited while starting (see {self.log_path}):\n"
                                       f"{self._log_tail()}")
            try:
                return self._get(url, timeout=1.0)
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise PebbleStartError(
                    f"pebble did not answer {url} within {STARTUP_SECONDS:.0f} s "
                    f"(see {self.log_path}):\n{self._log_tail()}")
            time.sleep(0.02)

    def _get(self, url: str, timeout: float = 5.0) -> bytes:
        context = ssl.create_default_context(cafile=str(self.ca.ca_path))
        # No proxies from the environment: pebble is on loopback.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=context))
        with opener.open(url, timeout=timeout) as response:
            return response.read()

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _free_ports(host: str, count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
