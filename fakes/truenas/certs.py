"""The self-signed certificate a fresh TrueNAS node presents on its HTTPS port.

A fresh TrueNAS generates its own UI certificate, `truenas_default`, at first boot
(middleware `plugins/crypto_/default_cert.py` calling truenas_crypto_utils'
`generate_self_signed_certificate`): RSA 2048, SHA-256, extended key usage
serverAuth, subject CN=localhost / O="iXsystems Inc. dba TrueNAS", and a SAN of
DNS:localhost only. The fake does the same and signs nothing with the world CA:
a client can trust a node only by pinning this exact certificate, and a hostname
check against the node's IP fails, as it does against a real fresh node
(reference/truenas-api.md §1: the official client connects with `verify_ssl=False`).

The certificate belongs to the droplet's boot disk, so it is kept per droplet and
reused when the same droplet boots again (power off and on). Its key comes from the
fake's key supply (keys.py): no other node of the world has it, so a replaced
droplet presents a different certificate.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fakes.tls import ServerCert
from fakes.truenas import keys

# truenas_crypto_utils DEFAULT_LIFETIME_DAYS; the exact value was not read [I].
LIFETIME_DAYS = 397


def node_certificate(directory: Path) -> ServerCert:
    """The node's certificate and key in `directory`, made on first use."""
    cert_path = directory / "truenas_default.crt"
    key_path = directory / "truenas_default.key"
    if cert_path.exists() and key_path.exists():
        return ServerCert(cert_path, key_path)
    directory.mkdir(parents=True, exist_ok=True)
    key = keys.rsa_key(2048)           # made at first boot; from the supply (keys.py)
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "Tennessee"),
        x509.NameAttribute(NameOID.LOCALITY_NAME, "Maryville"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "iXsystems Inc. dba TrueNAS"),
        x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        x509.NameAttribute(NameOID.EMAIL_ADDRESS, "info@truenas.com"),
    ])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=LIFETIME_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_text(keys.private_text(key, serialization.PrivateFormat.PKCS8))
    key_path.chmod(0o600)
    # Written last and renamed into place: whoever sees the certificate finds its key.
    partial = cert_path.with_suffix(".partial")
    partial.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    partial.replace(cert_path)
    return ServerCert(cert_path, key_path)
