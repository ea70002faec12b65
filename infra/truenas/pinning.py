"""Trust on first use for a TrueNAS node's self-signed certificate.

A fresh TrueNAS node serves a self-signed certificate (named `truenas.local`, not
its address), so no CA can vouch for it. Instead of switching verification off, the
first connection records the certificate's SHA-256 fingerprint and PEM in the state
directory; every later connection trusts exactly that certificate and refuses any
other one (`CertificateChanged`) until the caller re-pins on purpose, for a node
that was legitimately rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from infra.truenas.errors import CertificateChanged, TrueNASError, TrueNASUnavailable

PINS_FILE = "truenas-pins.json"


def fingerprint(pem: str) -> str:
    """SHA-256 of the certificate's DER bytes, as colon-separated upper-case hex
    (the form `openssl x509 -fingerprint -sha256` prints)."""
    try:
        der = ssl.PEM_cert_to_DER_cert(pem)
    except ValueError as exc:
        raise TrueNASError(f"not a PEM certificate ({exc})") from None
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def fetch_certificate(host: str, port: int = 443, timeout: float = 10.0) -> str:
    """The PEM of the certificate `host:port` presents.

    This handshake deliberately does NOT verify the certificate: on first use there
    is nothing to verify it against yet, which is the premise of trust on first use.
    Nothing is sent over it; the PEM is only compared with (or recorded as) the pin,
    and the real connection then trusts exactly the pinned certificate.
    """
    try:
        return ssl.get_server_certificate((host, port), timeout=timeout)
    except (OSError, ssl.SSLError) as exc:
        raise TrueNASUnavailable(
            f"could not read the certificate of {host}:{port} ({type(exc).__name__}: {exc})"
        ) from None


def ssl_context_for(pem: str) -> ssl.SSLContext:
    """A client SSLContext that trusts exactly this certificate and nothing else."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # The node is reached by its IP address and its self-signed certificate names
    # `truenas.local`, so the name can never match. Hostname checking adds nothing
    # here: the pinned certificate is the only trust anchor, so only the holder of
    # the node's private key can complete the handshake, whatever name it carries.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=pem)
    # OpenSSL accepts a self-signed leaf found in the store as its own anchor, but a
    # leaf issued by some CA (a node given a CA-signed certificate, or the fake
    # world's) would need that CA too. PARTIAL_CHAIN lets the pinned certificate
    # itself be the anchor; it widens nothing, the store holds only the pin.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    # Python 3.13 turns on X509_STRICT by default; RFC 5280 strictness about a
    # certificate we trust byte for byte only rejects harmless self-signed quirks.
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


@dataclass(frozen=True)
class Pin:
    address: str
    port: int
    sha256: str
    pem: str

    @property
    def key(self) -> str:
        return _key(self.address, self.port)


def _key(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class CertificatePins:
    """Pinned certificates per node address, in one 0600 file of the state directory.

    `read_only` (a read-only check): the pins there are held to, but a first use or a
    followed renewal is trusted for this run only, and nothing is written."""

    def __init__(self, state_dir: Path | os.PathLike, read_only: bool = False) -> None:
        directory = Path(getattr(state_dir, "path", state_dir))  # a StateDir or a path
        self.read_only = read_only or bool(getattr(state_dir, "read_only", False))
        if not self.read_only:
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o700)
        self.path = directory / PINS_FILE

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise TrueNASError(f"{self.path} is not valid JSON ({exc}); "
                               "remove it to pin the nodes' certificates again") from None

    def _write(self, data: dict) -> None:
        # mkstemp creates the file 0600; os.replace makes the update atomic.
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".pins-")
        try:
            with os.fdopen(descriptor, "w") as handle:
                json.dump(data, handle, indent=2, sort_keys=True)
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, address: str, port: int = 443) -> Pin | None:
        entry = self._read().get(_key(address, port))
        if entry is None:
            return None
        return Pin(address, port, entry["sha256"], entry["pem"])

    def pin(self, address: str, port: int, pem: str) -> Pin:
        """Record `pem` as the certificate of address:port (replacing any pin)."""
        pin = Pin(address, port, fingerprint(pem), pem)
        if self.read_only:
            return pin
        data = self._read()
        data[pin.key] = {"sha256": pin.sha256, "pem": pem,
                         "pinned_at": datetime.now(UTC).isoformat(timespec="seconds")}
        self._write(data)
        return pin

    def check(self, address: str, port: int, pem: str, repin: bool = False,
              renewal: Callable[[str], bool] | None = None) -> Pin:
        """The pin for address:port given what it presents now: pinned on first use,
        the same certificate accepted, a different one refused unless `repin`, or
        unless `renewal` says it is a legitimate renewal (the caller's test: it
        chains to the site's ACME root and names the site), which is then followed."""
        presented = fingerprint(pem)
        pinned = self.get(address, port)
        if pinned is None or (repin and pinned.sha256 != presented):
            return self.pin(address, port, pem)
        if pinned.sha256 != presented:
            if renewal is not None and renewal(pem):
                return self.pin(address, port, pem)
            raise CertificateChanged(_key(address, port), pinned.sha256, presented)
        return pinned

    def forget(self, address: str, port: int = 443) -> None:
        data = self._read()
        if data.pop(_key(address, port), None) is not None:
            self._write(data)
