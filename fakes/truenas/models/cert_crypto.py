"""X.509 work for the fake's certificates: make CSRs, check imports, read PEMs the
way middleware shows them.

Facts followed (truenas_crypto_utils as used by middleware 25.10, read at
truenas/truenas_crypto_utils: csr.py, key.py, read.py, validation.py, utils.py;
middleware plugins/crypto_/query_utils.py):
- a CSR gets a new key (RSA `key_length` default 2048, or EC on `ec_curve`, default
  SECP384R1, ed25519 signs without a digest), the subject from the given fields,
  a SubjectAlternativeName of the `san` entries ("IP" when the entry parses as an
  address, else "DNS"; a "TYPE:value" entry keeps its type), signed with
  `digest_algorithm`; private keys are stored as unencrypted PKCS#8 PEM;
- reading a certificate gives subject fields, `san` as OpenSSL prints the
  extension ("DNS:a", "IP Address:1.2.3.4"), `DN` "/C=../CN=.." plus
  "/subjectAltName=..", `extensions` {CapitalisedShortName: text}, `digest_algorithm`
  ("SHA256"), `lifetime` in days, `from`/`until` as ctime strings, `serial`,
  `chain` (more than one PEM block), `fingerprint` (SHA-1, "AB:CD:..", although
  the API schema's description says SHA-256: the code uses sha1) and `expired`;
- an imported certificate must parse ("Not a valid certificate"), its key must
  load ("A valid private key is required, with a passphrase if one has been
  set.") and match ("Certificate and private key do not match").
Chosen: `from`/`until` are printed in UTC (the fake's system timezone) and
`expired` is judged on the node's virtual clock. The text of extensions besides
SAN, BasicConstraints, KeyUsage, ExtendedKeyUsage and the key identifiers is not
OpenSSL's exactly (a short description instead).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fakes.truenas import keys

RE_CERTIFICATE = re.compile(r"(-{5}BEGIN[\s\w]+-{5}[^-]+-{5}END[\s\w]+-{5})+", re.M | re.S)
EC_CURVES = {"SECP256R1": ec.SECP256R1, "SECP384R1": ec.SECP384R1, "SECP521R1": ec.SECP521R1}
DIGESTS = {"SHA224": hashes.SHA224, "SHA256": hashes.SHA256, "SHA384": hashes.SHA384,
           "SHA512": hashes.SHA512}
SUBJECT_FIELDS = [  # (API field, OID, OpenSSL short name)
    ("country", NameOID.COUNTRY_NAME, "C"),
    ("state", NameOID.STATE_OR_PROVINCE_NAME, "ST"),
    ("city", NameOID.LOCALITY_NAME, "L"),
    ("organization", NameOID.ORGANIZATION_NAME, "O"),
    ("organizational_unit", NameOID.ORGANIZATIONAL_UNIT_NAME, "OU"),
    ("common", NameOID.COMMON_NAME, "CN"),
    ("email", NameOID.EMAIL_ADDRESS, "emailAddress"),
]
KEY_USAGE_TEXT = [
    ("digital_signature", "Digital Signature"), ("content_commitment", "Non Repudiation"),
    ("key_encipherment", "Key Encipherment"), ("data_encipherment", "Data Encipherment"),
    ("key_agreement", "Key Agreement"), ("key_cert_sign", "Certificate Sign"),
    ("crl_sign", "CRL Sign"),
]
EKU_TEXT = {
    ExtendedKeyUsageOID.SERVER_AUTH: "TLS Web Server Authentication",
    ExtendedKeyUsageOID.CLIENT_AUTH: "TLS Web Client Authentication",
    ExtendedKeyUsageOID.CODE_SIGNING: "Code Signing",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "E-mail Protection",
    ExtendedKeyUsageOID.TIME_STAMPING: "Time Stamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSP Signing",
}


# --- making -----------------------------------------------------------------------
def normalize_san(entries: list[str]) -> list[tuple[str, str]]:
    normalized = []
    for entry in entries:
        if ":" in entry:
            kind, value = entry.split(":", 1)
        else:
            try:
                ipaddress.ip_address(entry)
            except ValueError:
                kind, value = "DNS", entry
            else:
                kind, value = "IP", entry
        normalized.append((kind, value))
    return normalized


def generate_key(key_type: str, key_length: int | None, ec_curve: str) -> Any:
    if key_type == "EC":
        if ec_curve == "ed25519":
            return ed25519.Ed25519PrivateKey.generate()
        return ec.generate_private_key(EC_CURVES[ec_curve]())
    return keys.rsa_key(key_length or 2048)     # a key nothing else got (keys.py)


def key_pem(key: Any) -> str:
    return keys.private_text(key, serialization.PrivateFormat.PKCS8)


def generate_csr(data: dict) -> tuple[str, str]:
    """(CSR PEM, private key PEM) for certificate.create CERTIFICATE_CREATE_CSR."""
    key = generate_key(data.get("key_type") or "RSA", data.get("key_length"),
                       data.get("ec_curve") or "SECP384R1")
    subject = x509.Name([x509.NameAttribute(oid, data[name])
                         for name, oid, _ in SUBJECT_FIELDS if data.get(name)])
    builder = x509.CertificateSigningRequestBuilder(subject_name=subject)
    names = [x509.IPAddress(ipaddress.ip_address(value)) if kind == "IP" else x509.DNSName(value)
             for kind, value in normalize_san(data.get("san") or [])]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    builder = _add_extensions(builder, data.get("cert_extensions") or {})
    digest = None if isinstance(key, ed25519.Ed25519PrivateKey) else \
        DIGESTS[data.get("digest_algorithm") or "SHA256"]()
    csr = builder.sign(key, digest)
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key_pem(key)


def _add_extensions(builder: Any, extensions: dict) -> Any:
    """The three extensions the API takes (CertificateExtensions), when enabled."""
    basic = extensions.get("BasicConstraints") or {}
    if basic.get("enabled"):
        builder = builder.add_extension(
            x509.BasicConstraints(ca=basic.get("ca", False),
                                  path_length=basic.get("path_length")),
            critical=basic.get("extension_critical", False))
    usage = extensions.get("KeyUsage") or {}
    if usage.get("enabled"):
        flags = {name: usage.get(name, False) for name, _ in KEY_USAGE_TEXT}
        builder = builder.add_extension(x509.KeyUsage(
            **flags, encipher_only=usage.get("encipher_only", False),
            decipher_only=usage.get("decipher_only", False)),
            critical=usage.get("extension_critical", False))
    extended = extensions.get("ExtendedKeyUsage") or {}
    if extended.get("enabled") and extended.get("usages"):
        builder = builder.add_extension(x509.ExtendedKeyUsage(
            [getattr(ExtendedKeyUsageOID, u) for u in extended["usages"]]),
            critical=extended.get("extension_critical", False))
    return builder


# --- checking ---------------------------------------------------------------------
def load_private_key(pem: str | None, passphrase: str | None = None) -> Any:
    if not pem:
        return None
    data = pem.encode()
    try:
        return keys.load_checked_once(data, lambda skip: serialization.load_pem_private_key(
            data, password=passphrase.encode() if passphrase else None,
            unsafe_skip_rsa_key_validation=skip))
    except (ValueError, TypeError):
        return None


def private_key_problem(pem: str, passphrase: str | None = None) -> str | None:
    key = load_private_key(pem, passphrase)
    if key is None:
        return "A valid private key is required, with a passphrase if one has been set."
    if isinstance(key, (rsa.RSAPrivateKey, dsa.DSAPrivateKey)) and key.key_size < 1024:
        return "Key size must be greater than or equal to 1024 bits."
    return None


def load_certificate(pem: str) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return None


def is_certificate(pem: str) -> bool:
    return bool(RE_CERTIFICATE.findall(pem)) and load_certificate(pem) is not None


def is_csr(pem: str) -> bool:
    try:
        x509.load_pem_x509_csr(pem.encode())
    except ValueError:
        return False
    return True


def key_mismatch(certificate: str, private_key: str, passphrase: str | None = None) -> str | None:
    cert = load_certificate(certificate)
    key = load_private_key(private_key, passphrase)
    if cert is None or key is None:
        return "Unable to load the certificate or its private key"
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if (cert.public_key().public_bytes(serialization.Encoding.PEM, spki)
            != key.public_key().public_bytes(serialization.Encoding.PEM, spki)):
        return "Certificate and private key do not match"
    return None


def export_key(pem: str, passphrase: str | None = None) -> str | None:
    """The stored form of an imported key: unencrypted PKCS#8 (truenas_crypto_utils
    export_private_key)."""
    key = load_private_key(pem, passphrase)
    return key_pem(key) if key is not None else None


# --- reading ----------------------------------------------------------------------
def split_chain(pem: str | None) -> list[str]:
    return RE_CERTIFICATE.findall(pem or "")


# Every certificate.query and system.general.config reports each key's length and type:
# parsing the PEM (RSA keys are validated on load) each time cost a sixth of the spec
# suite's CPU. A PEM's answer never changes; the cache lives in the fake's memory only.
@functools.lru_cache(maxsize=256)
def key_info(pem: str | None) -> tuple[int | None, str | None]:
    """(key_length, key_type) as query_utils.normalize_cert_attrs reports them."""
    key = load_private_key(pem)
    if key is None:
        return None, None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return 32, "EC"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.key_size, "EC"
    if isinstance(key, rsa.RSAPrivateKey):
        return key.key_size, "RSA"
    if isinstance(key, dsa.DSAPrivateKey):
        return key.key_size, "DSA"
    return None, "OTHER"


def certificate_info(pem: str, now: float) -> dict:
    """read.load_certificate's fields, or {} when the PEM does not parse."""
    cert = load_certificate(pem)
    if cert is None:
        return {}
    info = subject_info(cert.subject, cert.extensions, certificate=cert)
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    hash_name = cert.signature_hash_algorithm.name.upper() if cert.signature_hash_algorithm \
        else "ED25519"
    info.update({
        "digest_algorithm": hash_name,
        "lifetime": (not_after - not_before).days,
        "from": not_before.ctime(),
        "until": not_after.ctime(),
        "serial": cert.serial_number,
        "chain": len(split_chain(pem)) > 1,
        "fingerprint": ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA1())),
        "expired": now > not_after.timestamp(),
    })
    return info


def csr_info(pem: str) -> dict:
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError:
        return {}
    return subject_info(csr.subject, csr.extensions)


def san_names(pem: str) -> list[str]:
    """The SAN entries of a CSR as middleware lists them ("DNS:name")."""
    return csr_info(pem).get("san", [])


def subject_info(subject: x509.Name, extensions: x509.Extensions,
                 certificate: x509.Certificate | None = None) -> dict:
    info: dict[str, Any] = {}
    for name, oid, _ in SUBJECT_FIELDS:
        values = subject.get_attributes_for_oid(oid)
        info[name] = str(values[0].value) if values else None
    texts = {}
    for extension in extensions:
        short = extension.oid._name
        key = short[:1].upper() + short[1:] if short and short != "Unknown OID" \
            else extension.oid.dotted_string
        texts[key] = _extension_text(extension.value)
    info["san"] = [s.strip() for s in texts.get("SubjectAltName", "").split(",") if s.strip()]
    info["extensions"] = texts
    dn = "/" + "/".join(f"{short}={a.value}" for a in subject
                        for name, oid, short in SUBJECT_FIELDS if a.oid == oid)
    info["DN"] = dn + (f"/subjectAltName={', '.join(info['san'])}" if info["san"] else "")
    info["subject_name_hash"] = _subject_name_hash(certificate) if certificate else None
    return info


def _extension_text(value: Any) -> str:
    """OpenSSL's one-line printing of the common extensions."""
    if isinstance(value, x509.SubjectAlternativeName):
        parts = []
        for name in value:
            if isinstance(name, x509.DNSName):
                parts.append(f"DNS:{name.value}")
            elif isinstance(name, x509.IPAddress):
                parts.append(f"IP Address:{name.value}")
            elif isinstance(name, x509.RFC822Name):
                parts.append(f"email:{name.value}")
            else:
                parts.append(f"othername:{name.value}")
        return ", ".join(parts)
    if isinstance(value, x509.BasicConstraints):
        text = "CA:TRUE" if value.ca else "CA:FALSE"
        return text + (f", pathlen:{value.path_length}" if value.path_length is not None else "")
    if isinstance(value, x509.KeyUsage):
        words = [text for name, text in KEY_USAGE_TEXT if getattr(value, name)]
        if value.key_agreement:
            words += ["Encipher Only"] if value.encipher_only else []
            words += ["Decipher Only"] if value.decipher_only else []
        return ", ".join(words)
    if isinstance(value, x509.ExtendedKeyUsage):
        return ", ".join(EKU_TEXT.get(oid, oid.dotted_string) for oid in value)
    if isinstance(value, x509.SubjectKeyIdentifier):
        return ":".join(f"{b:02X}" for b in value.digest)
    if isinstance(value, x509.AuthorityKeyIdentifier) and value.key_identifier:
        return ":".join(f"{b:02X}" for b in value.key_identifier)
    return type(value).__name__


def _subject_name_hash(certificate: x509.Certificate) -> int | None:
    """OpenSSL's X509_subject_name_hash (pyOpenSSL, which acme depends on, has it)."""
    try:
        from OpenSSL import crypto
    except ImportError:     # pragma: no cover - acme requires pyOpenSSL
        return None
    return crypto.X509.from_cryptography(certificate).subject_name_hash()

