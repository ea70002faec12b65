"""SSH keys of the account (`/v2/account/keys`, ssh_keys_*.yml).

Facts followed: a key is created from `name` and `public_key` (both required,
sshKeys_create); it is fetched, renamed and deleted by id or by fingerprint
(`ssh_key_identifier` is "either the ID or the fingerprint"); the fingerprint is the
MD5 colon-hex form SSH prints (the schema's example `3b:16:bf:...`); a public key
already on the account is refused with 422 "SSH Key is already in use on your account"
(seen from the real API in puphpet/puphpet#934 and digitalocean/ansible-collection#102).
What the real API answers for a public key it cannot parse is unknown: this fake
refuses it with a 422 naming the field. Keys carry no tags (the schema has none).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from fakes.digitalocean.errors import not_found, unprocessable
from fakes.digitalocean.models import validation as v

NAME_LIMIT = 255  # not documented; a display name longer than this is refused here


@dataclass
class SshKey:
    id: int
    name: str
    public_key: str
    fingerprint: str

    def to_dict(self) -> dict:
        return {"id": self.id, "fingerprint": self.fingerprint,
                "public_key": self.public_key, "name": self.name}


def fingerprint_of(public_key: str) -> str:
    """MD5 of the key blob, colon-separated hex; raises ApiError 422 if unparsable."""
    text = public_key.strip()
    parts = text.split()
    try:
        if len(parts) < 2:
            raise ValueError("not 'type base64 [comment]'")
        load_ssh_public_key(f"{parts[0]} {parts[1]}".encode())
        blob = base64.b64decode(parts[1], validate=True)
    except (ValueError, binascii.Error, TypeError, UnsupportedAlgorithm) as error:
        raise unprocessable(
            "public_key is invalid: expected an OpenSSH public key "
            f"('ssh-ed25519 AAAA... comment'): {type(error).__name__}") from None
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


class SshKeyStore:
    def __init__(self) -> None:
        self._ids = itertools.count(41_000_001)
        self.keys: dict[int, SshKey] = {}

    def all(self) -> list[SshKey]:
        return list(self.keys.values())

    def create(self, body: object) -> SshKey:
        body = v.as_object(body)
        v.require(body, "name", "public_key")
        name = v.string(body, "name")
        public_key = v.string(body, "public_key")
        if len(name) > NAME_LIMIT:
            raise unprocessable(f"name must be at most {NAME_LIMIT} characters")
        fingerprint = fingerprint_of(public_key)
        if any(k.fingerprint == fingerprint for k in self.keys.values()):
            raise unprocessable("SSH Key is already in use on your account")
        key = SshKey(next(self._ids), name, public_key.strip(), fingerprint)
        self.keys[key.id] = key
        return key

    def get(self, identifier: str | int) -> SshKey:
        text = str(identifier)
        number = v.numeric_id(text)
        if number is not None:
            key = self.keys.get(number)
            if key is not None:
                return key
        for key in self.keys.values():
            if key.fingerprint == text:
                return key
        raise not_found()

    def update(self, identifier: str, body: object) -> SshKey:
        key = self.get(identifier)
        body = v.as_object(body)
        name = v.string(body, "name")
        if name:
            if len(name) > NAME_LIMIT:
                raise unprocessable(f"name must be at most {NAME_LIMIT} characters")
            key.name = name
        return key

    def delete(self, identifier: str) -> None:
        del self.keys[self.get(identifier).id]

    def resolve(self, refs: object) -> list[SshKey]:
        """`ssh_keys` of a droplet create: ids (integers, or digits) or fingerprints,
        as godo's DropletCreateSSHKey sends either (digitalocean/godo droplets.go
        @3fce660). An unknown key is refused; the real wording is unknown."""
        if refs is None:
            return []
        if not isinstance(refs, list):
            raise unprocessable("ssh_keys must be a list of key ids or fingerprints")
        found = []
        for ref in refs:
            if isinstance(ref, bool) or not isinstance(ref, int | str):
                raise unprocessable("ssh_keys must be a list of key ids or fingerprints")
            try:
                found.append(self.get(ref))
            except Exception:
                raise unprocessable(f"ssh_keys: no SSH key {ref} on this account") from None
        return found
