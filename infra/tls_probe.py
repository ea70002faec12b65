"""Probing a site's front door from outside: TLS on 443, old protocols, http -> https.

Every probe connects to an *address* (the droplet's IP, with the port the caller
mapped through `target.node_port`) and names the site's hostname only in the TLS
SNI / HTTP Host header, the way a browser reaches a host whose DNS points there.
Probes never raise for what the network or the peer does: the result says what
failed (refused, reset, timeout, unknown CA, hostname mismatch, expired...), so
`check` can report it next to everything else.

Time: validity is judged against `now`, the target's clock (a fake world's
virtual time), and OpenSSL judges it against the machine's clock during the
handshake. On a real target the two are the same; on a fake one, a certificate
"expired" only in virtual time still verifies, and the probe reports it expired.

Source address: a probe binds its socket to a source address (an "internet" or an
"admin" address of the fake world) before connecting, through infra/net.py's
`connect_tcp`; None lets the kernel choose.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import ssl
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from infra.net import connect_tcp

DAY = 86400.0
# OpenSSL verify codes (x509_vfy.h) and what a user would call them.
UNKNOWN_CA_CODES = frozenset({2, 18, 19, 20, 21})
EXPIRED_CODE = 10
NOT_YET_VALID_CODE = 9
HOSTNAME_MISMATCH_CODE = 62
UNREACHABLE = frozenset({"refused", "reset", "timeout", "unreachable"})


# --- certificates ----------------------------------------------------------------
@dataclass(frozen=True)
class CertificateFacts:
    """What a certificate says about itself (the leaf; nothing secret)."""

    subject: str
    issuer: str
    sans: tuple[str, ...]
    not_before: float
    not_after: float
    serial: str        # hex, as `openssl x509 -serial` prints it
    fingerprint: str   # SHA-256 of the DER, colon-separated upper-case hex

    def days_left(self, now: float) -> float:
        return (self.not_after - now) / DAY


def facts_from_certificate(cert: x509.Certificate) -> CertificateFacts:
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = extension.value
        sans = tuple(names.get_values_for_type(x509.DNSName)) + tuple(
            str(ip) for ip in names.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        sans = ()
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return CertificateFacts(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        sans=sans,
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        serial=format(cert.serial_number, "X"),
        fingerprint=":".join(digest[i:i + 2] for i in range(0, len(digest), 2)),
    )


def facts_from_der(der: bytes) -> CertificateFacts:
    return facts_from_certificate(x509.load_der_x509_certificate(der))


def facts_from_pem(pem: str | bytes) -> CertificateFacts:
    """Facts of the first certificate in a PEM bundle (the leaf of a fullchain)."""
    data = pem.encode() if isinstance(pem, str) else pem
    return facts_from_certificate(x509.load_pem_x509_certificates(data)[0])


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


# --- connecting ------------------------------------------------------------------
def _connect(address: str, port: int, source_address: str | None,
             timeout: float) -> socket.socket:
    return connect_tcp(address, port, source_address=source_address, timeout=timeout)


def _network_failure(exc: BaseException, address: str, port: int) -> tuple[str, str]:
    """(kind, sentence) for a failure below TLS. A DigitalOcean firewall drops
    packets (timeout) where the fake world resets: both mean unreachable."""
    where = f"{address}:{port}"
    if isinstance(exc, ConnectionRefusedError):
        return "refused", f"connection to {where} refused (nothing listens there)"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ssl.SSLEOFError
                  | ssl.SSLZeroReturnError):
        return "reset", f"{where} closed or reset the connection (a firewall, or no TLS there)"
    if isinstance(exc, TimeoutError):
        return "timeout", f"no answer from {where} in time (a firewall dropping packets?)"
    text = getattr(exc, "strerror", None) or type(exc).__name__
    return "unreachable", f"cannot reach {where} ({text})"


def _verification_failure(exc: ssl.SSLCertVerificationError, hostname: str,
                          ca_bundle: str | None) -> tuple[str, str]:
    code = exc.verify_code
    message = exc.verify_message or str(exc)
    anchor = ca_bundle or "the system's trusted CAs"
    if code in UNKNOWN_CA_CODES:
        return "unknown-ca", f"the certificate does not verify to {anchor} ({message})"
    if code == HOSTNAME_MISMATCH_CODE:
        return "hostname-mismatch", f"the certificate is not valid for {hostname}"
    if code == EXPIRED_CODE:
        return "expired", "the certificate has expired (by this machine's clock)"
    if code == NOT_YET_VALID_CODE:
        return "not-yet-valid", "the certificate is not valid yet (by this machine's clock)"
    return "untrusted", f"the certificate was refused ({message})"


def _tls_failure(exc: ssl.SSLError, address: str, port: int) -> tuple[str, str]:
    reason = exc.reason or exc.__class__.__name__
    return "tls", f"the TLS handshake with {address}:{port} failed ({reason})"


# --- probe_tls --------------------------------------------------------------------
@dataclass(frozen=True)
class TlsProbe:
    address: str
    port: int
    hostname: str
    ok: bool
    problem: str | None = None
    # refused | reset | timeout | unreachable | unknown-ca | hostname-mismatch |
    # expired | not-yet-valid | untrusted | tls
    failure: str | None = None
    protocol: str | None = None
    certificate: CertificateFacts | None = None
    days_left: float | None = None

    @property
    def reachable(self) -> bool:
        """A TLS peer answered (whatever it presented)."""
        return self.failure not in UNREACHABLE

    @property
    def issuer(self) -> str | None:
        return self.certificate.issuer if self.certificate else None

    @property
    def sans(self) -> tuple[str, ...]:
        return self.certificate.sans if self.certificate else ()

    @property
    def not_after(self) -> float | None:
        return self.certificate.not_after if self.certificate else None

    @property
    def serial(self) -> str | None:
        return self.certificate.serial if self.certificate else None

    @property
    def fingerprint(self) -> str | None:
        return self.certificate.fingerprint if self.certificate else None

    def describe(self) -> str:
        """One line for a report."""
        if self.certificate is None:
            return self.problem or "no certificate"
        facts = self.certificate
        days = f"{self.days_left:.1f} days left" if self.days_left is not None else ""
        parts = [self.protocol or "", f"issued by {facts.issuer}",
                 f"for {', '.join(facts.sans) or 'no SAN'}", days]
        line = "; ".join(p for p in parts if p)
        return f"{self.problem}: {line}" if self.problem else line


def _verifying_context(ca_bundle: str | None) -> ssl.SSLContext:
    # What a browser does: the chain to a trusted root, and the hostname.
    return ssl.create_default_context(cafile=ca_bundle) if ca_bundle \
        else ssl.create_default_context()


def _peek(address: str, port: int, hostname: str, source_address: str | None,
          timeout: float) -> CertificateFacts | None:
    """The leaf the peer presents, read WITHOUT verifying it, only to describe a
    certificate that failed verification (it is never trusted for anything)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with _connect(address, port, source_address, timeout) as raw, \
                context.wrap_socket(raw, server_hostname=hostname) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ValueError):
        return None
    return facts_from_der(der) if der else None


def probe_tls(address: str, port: int, hostname: str, ca_bundle: str | None, *,
              source_address: str | None = None, timeout: float, now: float) -> TlsProbe:
    """Connect to address:port with SNI `hostname`, verify the chain against
    `ca_bundle` (None: the system's roots) and the hostname, and judge validity at
    `now` (the target's clock)."""
    base = {"address": address, "port": port, "hostname": hostname}
    try:
        raw = _connect(address, port, source_address, timeout)
    except OSError as exc:
        kind, text = _network_failure(exc, address, port)
        return TlsProbe(**base, ok=False, failure=kind, problem=text)
    try:
        with raw, _verifying_context(ca_bundle).wrap_socket(raw, server_hostname=hostname) as tls:
            protocol = tls.version()
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as exc:
        kind, text = _verification_failure(exc, hostname, ca_bundle)
        facts = _peek(address, port, hostname, source_address, timeout)
        days = facts.days_left(now) if facts else None
        return TlsProbe(**base, ok=False, failure=kind, problem=text, certificate=facts,
                        days_left=days)
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:
        kind, text = _network_failure(exc, address, port)
        return TlsProbe(**base, ok=False, failure=kind, problem=text)
    except ssl.SSLError as exc:
        kind, text = _tls_failure(exc, address, port)
        return TlsProbe(**base, ok=False, failure=kind, problem=text)
    except OSError as exc:
        kind, text = _network_failure(exc, address, port)
        return TlsProbe(**base, ok=False, failure=kind, problem=text)
    if not der:  # cannot happen after a verified handshake; say so rather than crash
        return TlsProbe(**base, ok=False, failure="tls", problem="no certificate presented",
                        protocol=protocol)
    facts = facts_from_der(der)
    days = facts.days_left(now)
    found = {"protocol": protocol, "certificate": facts, "days_left": days}
    if facts.not_after <= now:
        return TlsProbe(**base, ok=False, failure="expired", **found,
                        problem=f"the certificate expired at {_iso(facts.not_after)} "
                                "(target clock)")
    if facts.not_before > now:
        return TlsProbe(**base, ok=False, failure="not-yet-valid", **found,
                        problem=f"the certificate is valid only from "
                                f"{_iso(facts.not_before)} (target clock)")
    return TlsProbe(**base, ok=True, **found)


# --- old protocol versions --------------------------------------------------------
@dataclass(frozen=True)
class OldTlsAttempt:
    """One handshake offering only `version`. `refused`: True when the server
    refused it, False when it completed, None when the question could not be put
    (the port does not answer TLS at all, or this machine cannot offer it)."""

    version: str
    refused: bool | None
    detail: str


def _old_versions() -> dict[str, ssl.TLSVersion]:
    return {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1}


# ClientHello.legacy_version per version (RFC 2246, RFC 4346).
_HELLO_VERSION = {"TLSv1": b"\x03\x01", "TLSv1.1": b"\x03\x02"}


def _old_context(version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that offers exactly `version`.

    OpenSSL 3 (Debian's openssl.cnf: MinProtocol TLSv1.2, SECLEVEL 2) will not even
    offer TLS 1.0/1.1: their handshake signatures need SHA-1/MD5, which security
    level 1 and up forbid, so the handshake dies locally with NO_CIPHERS_AVAILABLE
    before a byte is sent, which would look like a refusing server.
    `DEFAULT:@SECLEVEL=0` lets the client offer them; `_can_offer` proves it does.
    Nothing is sent or trusted over these connections (CERT_NONE): only whether the
    handshake completes matters.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1/1.1 are deprecated
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = version
        context.maximum_version = version
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def _can_offer(name: str, context: ssl.SSLContext) -> str | None:
    """None when this client really sends a ClientHello for `name` (checked on an
    in-memory handshake, no network); otherwise why not."""
    outgoing = ssl.MemoryBIO()
    tls = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname="probe.invalid")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        hello = outgoing.read()
        # record header (5 bytes), handshake header (4 bytes), then legacy_version
        if len(hello) > 10 and hello[0] == 0x16 and hello[9:11] == _HELLO_VERSION[name]:
            return None
        return f"this machine's OpenSSL offered something other than {name}"
    except ssl.SSLError as exc:
        return (f"this machine's OpenSSL ({ssl.OPENSSL_VERSION}) will not offer {name} "
                f"even at SECLEVEL=0 ({exc.reason or exc})")
    return f"an in-memory {name} handshake completed without a server"


def _modern_handshake(address: str, port: int, hostname: str, source_address: str | None,
                      timeout: float) -> str | None:
    """None when a TLS 1.2+ handshake completes; otherwise what went wrong. The
    control that makes a failed old-version handshake mean "refused"."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with _connect(address, port, source_address, timeout) as raw, \
                context.wrap_socket(raw, server_hostname=hostname):
            return None
    except ssl.SSLError as exc:
        return _tls_failure(exc, address, port)[1]
    except OSError as exc:
        return _network_failure(exc, address, port)[1]


def old_tls_attempts(address: str, port: int, hostname: str,
                     source_address: str | None = None,
                     timeout: float = 10.0) -> dict[str, OldTlsAttempt]:
    """Offer TLS 1.0, then TLS 1.1, alone, and record how each handshake ended."""
    attempts: dict[str, OldTlsAttempt] = {}
    control = _modern_handshake(address, port, hostname, source_address, timeout)
    for name, version in _old_versions().items():
        if control is not None:
            attempts[name] = OldTlsAttempt(name, None, f"no TLS at all: {control}")
            continue
        context = _old_context(version)
        unable = _can_offer(name, context)
        if unable:
            attempts[name] = OldTlsAttempt(name, None, unable)
            continue
        try:
            with _connect(address, port, source_address, timeout) as raw, \
                    context.wrap_socket(raw, server_hostname=hostname) as tls:
                attempts[name] = OldTlsAttempt(name, False,
                                               f"the server completed a {tls.version()} "
                                               "handshake")
        except ssl.SSLError as exc:
            # The server answered our (proven) ClientHello with an alert, a newer
            # version, or a hang-up: all of them are the server's refusal.
            attempts[name] = OldTlsAttempt(name, True, f"refused: {exc.reason or exc!r}")
        except (ConnectionResetError, BrokenPipeError) as exc:
            attempts[name] = OldTlsAttempt(name, True, f"refused: {type(exc).__name__}")
        except OSError as exc:
            attempts[name] = OldTlsAttempt(name, None,
                                           _network_failure(exc, address, port)[1])
    return attempts


def refuses_old_tls(address: str, port: int, hostname: str, source_address: str | None = None,
                    timeout: float = 10.0) -> dict[str, bool]:
    """{"TLSv1": refused?, "TLSv1.1": refused?}; True only when the server itself
    refused (see `old_tls_attempts` for the why, and for the undecided cases)."""
    return {name: attempt.refused is True for name, attempt in
            old_tls_attempts(address, port, hostname, source_address, timeout).items()}


# --- http -> https ----------------------------------------------------------------
REDIRECT_STATUSES = frozenset({301, 302, 307, 308})
PROBE_PATH = "/some/path?q=1"


@dataclass(frozen=True)
class RedirectProbe:
    address: str
    port: int
    hostname: str
    ok: bool
    expected: str
    problem: str | None = None
    status: int | None = None
    location: str | None = None
    failure: str | None = None

    def describe(self) -> str:
        if self.ok:
            return f"{self.status} -> {self.location}"
        return self.problem or "no redirect"


class _BoundHTTPConnection(http.client.HTTPConnection):
    """Plain HTTP to an address, from a chosen source address."""

    def __init__(self, address: str, port: int, source: str | None, timeout: float) -> None:
        super().__init__(address, port, timeout=timeout)
        self._source = source

    def connect(self) -> None:
        self.sock = _connect(self.host, self.port, self._source, self.timeout)


def probe_redirect(address: str, port80: int, hostname: str, source_address: str | None = None,
                   timeout: float = 10.0, *, path: str = PROBE_PATH) -> RedirectProbe:
    """GET http://hostname{path} sent to address:port80; expects a redirect
    (301/302/307/308) to exactly https://hostname{path}."""
    expected = f"https://{hostname}{path}"
    base = {"address": address, "port": port80, "hostname": hostname, "expected": expected}
    connection = _BoundHTTPConnection(address, port80, source_address, timeout)
    try:
        connection.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", hostname)
        connection.putheader("Connection", "close")
        connection.endheaders()
        response = connection.getresponse()
        status, location = response.status, response.getheader("Location")
    except (http.client.HTTPException, ValueError) as exc:
        return RedirectProbe(**base, ok=False, failure="http",
                             problem=f"{address}:{port80} did not answer HTTP "
                                     f"({type(exc).__name__})")
    except OSError as exc:
        kind, text = _network_failure(exc, address, port80)
        return RedirectProbe(**base, ok=False, failure=kind, problem=text)
    finally:
        connection.close()
    found = {"status": status, "location": location}
    if status not in REDIRECT_STATUSES:
        return RedirectProbe(**base, ok=False, failure="not-redirected", **found,
                             problem=f"http://{hostname}{path} answered {status}, "
                                     "not a redirect")
    if location not in (expected, f"https://{hostname}:443{path}"):
        return RedirectProbe(**base, ok=False, failure="wrong-location", **found,
                             problem=f"http://{hostname}{path} redirects to {location!r}, "
                                     f"not {expected}")
    return RedirectProbe(**base, ok=True, **found)
