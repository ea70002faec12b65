"""The world's certificate authority: every fake HTTPS listener serves a leaf from it.

Clients trust the fakes by pointing at `ca.pem` (never by turning verification off).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass
class ServerCert:
    cert_path: Path
    key_path: Path


class WorldCA:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._ca = trustme.CA(organization_name="truenas-site-spec fake world")
        self.ca_path = directory / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_path))

    def issue(self, name: str, *identities: str) -> ServerCert:
        for identity in identities:
            _check_loopback_or_name(identity)
        leaf = self._ca.issue_cert(*identities)
        cert_path = self.directory / f"{name}.crt"
        key_path = self.directory / f"{name}.key"
        leaf.private_key_pem.write_to_path(str(key_path))
        key_path.chmod(0o600)
        with cert_path.open("wb") as handle:
            for blob in leaf.cert_chain_pems:
                handle.write(blob.bytes())
        return ServerCert(cert_path, key_path)


def _check_loopback_or_name(identity: str) -> None:
    try:
        address = ipaddress.ip_address(identity)
    except ValueError:
        return
    if not address.is_loopback:
        raise ValueError(f"the fake world only serves loopback addresses, not {identity}")
