"""Argument models of certificate.* and acme.dns.authenticator.* (api/v25_10_2/
certificate.py, acme_dns_authenticator.py; certificate.create.json,
acme.dns.authenticator.create.json), in params.py's strict pydantic style."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fakes.truenas.methods.params import (
    EMPTY,
    MISSING,
    NOT_GIVEN,
    Bool,
    Field,
    Int,
    List,
    Obj,
    Spec,
    Str,
    _literal_message,
)

CREATE_TYPES = ["CERTIFICATE_CREATE_IMPORTED", "CERTIFICATE_CREATE_CSR",
                "CERTIFICATE_CREATE_IMPORTED_CSR", "CERTIFICATE_CREATE_ACME"]
EC_CURVES = ["SECP256R1", "SECP384R1", "SECP521R1", "ed25519"]
DIGESTS = ["SHA224", "SHA256", "SHA384", "SHA512"]
EKU_USAGES = ["ANY_EXTENDED_KEY_USAGE", "BUNDLE_SECURITY", "CERTIFICATE_TRANSPARENCY",
              "CLIENT_AUTH", "CODE_SIGNING", "EMAIL_PROTECTION", "IPSEC_IKE",
              "KERBEROS_PKINIT_KDC", "OCSP_SIGNING", "SERVER_AUTH", "SMARTCARD_LOGON",
              "TIME_STAMPING"]
AUTHENTICATORS = ["cloudflare", "digitalocean", "OVH", "route53", "shell"]


@dataclass
class Ranged(Spec):
    """An integer with pydantic's ge/le bounds, or one of a few literals."""

    minimum: int | None = None
    maximum: int | None = None
    choices: list[int] | None = None
    nullable: bool = False

    def _check(self, value, path, errors):
        if not isinstance(value, int) or isinstance(value, bool):
            errors.add(path, "Input should be a valid integer")
        elif self.choices is not None and value not in self.choices:
            errors.add(path, _literal_message(self.choices))
        elif self.minimum is not None and value < self.minimum:
            errors.add(path, f"Input should be greater than or equal to {self.minimum}")
        elif self.maximum is not None and value > self.maximum:
            errors.add(path, f"Input should be less than or equal to {self.maximum}")
        return value


@dataclass
class Mapping(Spec):
    """dict[str, <value>]."""

    value: Spec = field(default_factory=Int)
    nullable: bool = False

    def _check(self, value, path, errors):
        if not isinstance(value, dict):
            errors.add(path, "Input should be a valid dictionary")
            return value
        return {k: self.value.check(v, f"{path}.{k}", errors) for k, v in value.items()}


@dataclass
class Email(Spec):
    nullable: bool = False

    def _check(self, value, path, errors):
        if not isinstance(value, str):
            errors.add(path, "Input should be a valid string")
        elif "@" not in value:
            errors.add(path, "value is not a valid email address: An email address must "
                             "have an @-sign.")
        return value


@dataclass
class Tagged(Spec):
    """A pydantic discriminated union: `tag` picks the model; errors inside it are
    reported under `<path>.<tag value>.<field>`, as pydantic does."""

    tag: str = "authenticator"
    models: dict[str, Obj] = field(default_factory=dict)
    nullable: bool = False

    def _check(self, value, path, errors):
        if not isinstance(value, dict) or self.tag not in value:
            errors.add(path, f"Unable to extract tag using discriminator '{self.tag}'")
            return value
        model = self.models.get(value[self.tag])
        if model is None:
            expected = ", ".join(f"'{t}'" for t in self.models)
            errors.add(path, f"Input tag '{value[self.tag]}' found using '{self.tag}' does not "
                             f"match any of the expected tags: {expected}")
            return value
        return model.check(value, f"{path}.{value[self.tag]}", errors)


def _text(nullable: bool = True) -> Field:
    return Field(Str(nullable=nullable, min_length=1), None if nullable else MISSING)


def _flags(*names: str) -> Obj:
    return Obj({name: Field(Bool(), False) for name in names})


EXTENSIONS = Obj({
    "BasicConstraints": Field(Obj({
        "ca": Field(Bool(), False), "enabled": Field(Bool(), False),
        "extension_critical": Field(Bool(), False),
        "path_length": Field(Int(nullable=True), None)}), EMPTY),
    "ExtendedKeyUsage": Field(Obj({
        "usages": Field(List(Str(EKU_USAGES)), lambda: []), "enabled": Field(Bool(), False),
        "extension_critical": Field(Bool(), False)}), EMPTY),
    "KeyUsage": Field(_flags("enabled", "digital_signature", "content_commitment",
                             "key_encipherment", "data_encipherment", "key_agreement",
                             "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
                             "extension_critical"), EMPTY),
})

CERTIFICATE_CREATE = Obj({
    "name": Field(Str(min_length=1)),
    "create_type": Field(Str(CREATE_TYPES)),
    "add_to_trusted_store": Field(Bool(), False),
    "certificate": _text(), "privatekey": _text(), "CSR": _text(),
    "key_length": Field(Ranged(choices=[2048, 4096], nullable=True), None),
    "key_type": Field(Str(["RSA", "EC"]), "RSA"),
    "ec_curve": Field(Str(EC_CURVES), "SECP384R1"),
    "passphrase": _text(),
    "city": _text(), "common": _text(), "country": _text(),
    "email": Field(Email(nullable=True), None),
    "organization": _text(), "organizational_unit": _text(), "state": _text(),
    "digest_algorithm": Field(Str(DIGESTS), "SHA256"),
    "san": Field(List(Str(min_length=1)), lambda: []),
    "cert_extensions": Field(EXTENSIONS, EMPTY),
    "acme_directory_uri": _text(),
    "csr_id": Field(Int(nullable=True), None),
    "tos": Field(Bool(nullable=True), None),
    "dns_mapping": Field(Mapping(), lambda: {}),
    "renew_days": Field(Ranged(minimum=1, maximum=30), 10),
})
CERTIFICATE_UPDATE = Obj({
    "renew_days": Field(Ranged(minimum=1, maximum=30), NOT_GIVEN),
    "add_to_trusted_store": Field(Bool(), NOT_GIVEN),
    "name": Field(Str(min_length=1), NOT_GIVEN),
})

AUTHENTICATOR_ATTRIBUTES = Tagged(models={
    "cloudflare": Obj({"authenticator": Field(Str(["cloudflare"])),
                       "cloudflare_email": _text(), "api_key": _text(), "api_token": _text()}),
    "digitalocean": Obj({"authenticator": Field(Str(["digitalocean"])),
                         "digitalocean_token": Field(Str(min_length=1))}),
    "OVH": Obj({"authenticator": Field(Str(["OVH"])),
                "application_key": Field(Str(min_length=1)),
                "application_secret": Field(Str(min_length=1)),
                "consumer_key": Field(Str(min_length=1)), "endpoint": Field(Str())}),
    "route53": Obj({"authenticator": Field(Str(["route53"])),
                    "access_key_id": Field(Str(min_length=1)),
                    "secret_access_key": Field(Str(min_length=1))}),
    "shell": Obj({"authenticator": Field(Str(["shell"])), "script": Field(Str()),
                  "user": Field(Str(min_length=1), "nobody"),
                  "timeout": Field(Ranged(minimum=5), 60),
                  "delay": Field(Ranged(minimum=10), 60)}),
})
AUTHENTICATOR_CREATE = Obj({"attributes": Field(AUTHENTICATOR_ATTRIBUTES),
                            "name": Field(Str())})


def without_secrets(params: Any) -> Any:
    """A job's `arguments` as core.get_jobs shows them: Secret fields (privatekey)
    and the passphrase replaced by middleware's "********" (job.py dump_args)."""
    if not isinstance(params, list) or not params or not isinstance(params[0], dict):
        return params
    first = {k: ("********" if k in ("privatekey", "passphrase") and v else v)
             for k, v in params[0].items()}
    return [first, *params[1:]]
