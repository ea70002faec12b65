"""Keychain credentials, the local users' SSH keys, and the node's SSH service.

Facts followed (reference/truenas-api.md "SSH connection setup"; middleware
plugins/keychain.py and plugins/keychain_/ssh_connections.py @ af2c5ab):
- two credential types: SSH_KEY_PAIR `{private_key, public_key}` (the public key is
  derived from the private one when omitted, "Private key and public key do not
  match" otherwise, "Encrypted private keys are not allowed", "You must specify a
  key", "Invalid public key") and SSH_CREDENTIALS `{host, port 22, username "root",
  private_key <key pair id>, remote_host_key, connect_timeout 10}`; names unique
  ("keychain_credential_create.name: Credential with this name already exists" is
  the CRUD `_ensure_unique` wording); `update` merges the top level (not `type`);
- `generate_ssh_key_pair` is `ssh-keygen -t rsa -N ""`: an RSA key of ssh-keygen's
  default 3072 bits in OpenSSH format, public key "ssh-rsa AAAA... comment";
- `delete` refuses while another credential or a replication task uses the key
  ("This credential is used and no cascade option is specified"); with `cascade`
  SSH_CREDENTIALS using the key are deleted and replication tasks using the
  credentials are disabled with `ssh_credentials` null;
- `ssh_pair` (the remote half of the semi-automatic setup) appends the public key to
  the named local user's authorized keys (`sshpubkey`) unless it is there, enables
  and starts the SSH service, and answers `{port, host_key}` with the host's RSA,
  ECDSA and ed25519 public keys as "<remote_hostname> <type> <base64>" lines.
The local users are the two a fresh 25.10 install has that can log in over SSH:
`root` (home /root) and `truenas_admin` (home /home/truenas_admin); both log in
with keys only here. Which shell each gets and sudo are kept as given (sudo for
`/usr/sbin/zfs` is what `sudo: true` adds). Everything lives on the boot disk
(`node.boot_state`), as middleware keeps it in its config database.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from fakes.truenas import keys
from fakes.truenas.errors import CallError, ValidationErrors

if TYPE_CHECKING:
    from fakes.truenas.node import TrueNASNode

TYPES = ("SSH_KEY_PAIR", "SSH_CREDENTIALS")
NO_LOGIN_SHELL = "/usr/sbin/nologin"      # plugins/account_/constants.py
ZFS_BINARY = "/usr/sbin/zfs"
SSH_PORT = 22
RSA_BITS = 3072                            # ssh-keygen's default for -t rsa


def _users() -> dict[str, dict]:
    return {
        "root": {"home": "/root", "shell": "/usr/bin/zsh", "sshpubkey": "",
                 "sudo_commands_nopasswd": []},
        "truenas_admin": {"home": "/home/truenas_admin", "shell": "/usr/bin/zsh",
                          "sshpubkey": "", "sudo_commands_nopasswd": []},
    }


def state(node: TrueNASNode) -> dict:
    """The node's keychain, users and SSH service, on its boot disk."""
    found = node.boot_state.get("keychain")
    if found is None:
        found = node.boot_state["keychain"] = {
            "next_id": 1, "credentials": {}, "users": _users(),
            "ssh": {"enable": False, "host_keys": None}}
    return found


# --- keys ------------------------------------------------------------------
def generate_key_pair(comment: str = "root@truenas") -> dict:
    key = keys.rsa_key(RSA_BITS)         # a key no other node or credential has (keys.py)
    private = keys.private_text(key, serialization.PrivateFormat.OpenSSH)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return {"private_key": private, "public_key": f"{public} {comment}\n"}


def _load_private(text: str) -> Any:
    data = text.encode()

    def load(skip_check: bool) -> Any:
        for loader in (serialization.load_ssh_private_key, serialization.load_pem_private_key):
            try:
                return loader(data, password=None, unsafe_skip_rsa_key_validation=skip_check)
            except TypeError:
                raise ValueError("Encrypted private keys are not allowed") from None
            except (ValueError, UnsupportedAlgorithm):
                continue
        raise ValueError("Load key: invalid format")

    return keys.load_checked_once(data, load)


def public_of(private_key: str) -> str:
    """`ssh-keygen -y`: the OpenSSH public key line of a private key."""
    key = _load_private(private_key)
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode() + "\n"


def normalize_public(public_key: str) -> str:
    return " ".join(public_key.split()[:2]).strip()


def _valid_public(public_key: str) -> bool:
    try:
        serialization.load_ssh_public_key(normalize_public(public_key).encode())
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


# --- credentials -----------------------------------------------------------
def entries(node: TrueNASNode) -> list[dict]:
    items = state(node)["credentials"]
    return [_entry(items[key]) for key in sorted(items, key=int)]


def _entry(item: dict) -> dict:
    return {"id": item["id"], "name": item["name"], "type": item["type"],
            "attributes": dict(item["attributes"])}


def get(node: TrueNASNode, credential_id: int) -> dict | None:
    item = state(node)["credentials"].get(str(credential_id))
    return _entry(item) if item is not None else None


def _validate(node: TrueNASNode, schema: str, data: dict, credential_id: int | None) -> None:
    verrors = ValidationErrors()
    for item in state(node)["credentials"].values():
        if item["name"] == data["name"] and item["id"] != credential_id:
            verrors.add(f"{schema}.name", "Credential with this name already exists",
                        errno.EEXIST)
    verrors.check()
    attributes = data["attributes"]
    where = f"{schema}.attributes"
    if data["type"] == "SSH_KEY_PAIR":
        if attributes.get("private_key"):
            attributes["private_key"] = attributes["private_key"].strip() + "\n"
            try:
                public = public_of(attributes["private_key"])
            except ValueError as exc:
                verrors.add(f"{where}.private_key", str(exc))
                verrors.check()
            if attributes.get("public_key"):
                if normalize_public(attributes["public_key"]) != normalize_public(public):
                    verrors.add(f"{where}.public_key", "Private key and public key do not match")
            else:
                attributes["public_key"] = public
        elif not attributes.get("public_key"):
            verrors.add(f"{where}.public_key", "You must specify a key")
        verrors.check()
        if not _valid_public(attributes["public_key"]):
            verrors.add(f"{where}.public_key", "Invalid public key")
    verrors.check()


def create(node: TrueNASNode, data: dict) -> dict:
    data = {**data, "attributes": dict(data["attributes"])}
    _validate(node, "keychain_credential_create", data, None)
    store = state(node)
    item = {"id": store["next_id"], **data}
    store["next_id"] += 1
    store["credentials"][str(item["id"])] = item
    return _entry(item)


def update(node: TrueNASNode, credential_id: int, data: dict) -> dict:
    old = get(node, credential_id)
    if old is None:
        raise CallError(f"Keychain Credential {credential_id} does not exist", errno.ENOENT)
    new = {**old, **data, "attributes": dict(data.get("attributes", old["attributes"]))}
    _validate(node, "keychain_credentials_update", new, credential_id)
    state(node)["credentials"][str(credential_id)] = new
    return _entry(new)


def users_of(node: TrueNASNode, credential_id: int) -> list[tuple[str, Any]]:
    """What uses a credential: ("credential", id) and ("replication", task id)."""
    from fakes.truenas.models import replication

    item = get(node, credential_id)
    found: list[tuple[str, Any]] = []
    if item is None:
        return found
    if item["type"] == "SSH_KEY_PAIR":
        found += [("credential", c["id"]) for c in entries(node)
                  if c["type"] == "SSH_CREDENTIALS"
                  and c["attributes"].get("private_key") == credential_id]
    else:
        found += [("replication", t["id"]) for t in replication.configs(node)
                  if t.get("ssh_credentials") == credential_id]
    return found


def delete(node: TrueNASNode, credential_id: int, cascade: bool) -> None:
    from fakes.truenas.models import replication

    if get(node, credential_id) is None:
        raise CallError(f"Keychain Credential {credential_id} does not exist", errno.ENOENT)
    for kind, ident in users_of(node, credential_id):
        if not cascade:
            raise ValidationErrors([("options.cascade", "This credential is used and no "
                                     "cascade option is specified", errno.EINVAL)])
        if kind == "credential":
            delete(node, ident, cascade=True)
        else:
            replication.unbind_credentials(node, ident)
    state(node)["credentials"].pop(str(credential_id), None)


def key_pair_with_private_key(node: TrueNASNode, credential_id: int) -> dict | None:
    item = get(node, credential_id)
    if item is None or item["type"] != "SSH_KEY_PAIR" or not item["attributes"].get(
            "private_key"):
        return None
    return item


# --- the SSH service and users (the receiving side) ---------------------------
def host_keys(node: TrueNASNode) -> dict[str, str]:
    """The node's SSH host keys (PEM/OpenSSH private), made once like sshd's."""
    ssh = state(node)["ssh"]
    if not ssh["host_keys"]:
        made = {
            "ssh-ed25519": ed25519.Ed25519PrivateKey.generate(),
            "ecdsa-sha2-nistp256": ec.generate_private_key(ec.SECP256R1()),
            "ssh-rsa": keys.rsa_key(2048),     # no other node's (keys.py)
        }
        ssh["host_keys"] = {
            kind: keys.private_text(key, serialization.PrivateFormat.OpenSSH)
            for kind, key in made.items()}
    return ssh["host_keys"]


def host_public_keys(node: TrueNASNode) -> list[str]:
    """"<type> <base64>" of each host key: what ssh-keyscan shows after the host."""
    return [public_of(private).strip() for private in host_keys(node).values()]


def authorized_keys(node: TrueNASNode, username: str) -> list[str]:
    user = state(node)["users"].get(username)
    if user is None or user["shell"] == NO_LOGIN_SHELL:
        return []
    return [line.strip() for line in user["sshpubkey"].splitlines() if line.strip()]


def ssh_pair(node: TrueNASNode, remote_hostname: str, username: str, public_key: str) -> dict:
    """The receiving half of remote_ssh_semiautomatic_setup (plugins/keychain.py)."""
    store = state(node)
    user = store["users"].get(username)
    if user is None:
        raise CallError(f"User {username} does not exist")
    if user["home"].startswith("/var/empty"):
        raise CallError(f"Home directory {user['home']} does not exist", errno.ENOENT)
    host_keys(node)                   # made once, before sshd starts with them
    enable_ssh(node)
    if public_key not in user["sshpubkey"].strip():
        user["sshpubkey"] = user["sshpubkey"].strip() + "\n" + public_key + "\n"
    lines = "".join(f"{remote_hostname} {key}\n" for key in sorted(
        host_public_keys(node), key=lambda k: ("ssh-rsa", "ecdsa", "ssh-ed25519").index(
            next(p for p in ("ssh-rsa", "ecdsa", "ssh-ed25519") if k.startswith(p)))))
    return {"port": SSH_PORT, "host_key": lines}


def update_user(node: TrueNASNode, username: str, sudo: bool) -> None:
    """What the semi-automatic setup asks of the remote user after ssh_pair."""
    user = state(node)["users"][username]
    if user["shell"] == NO_LOGIN_SHELL:
        user["shell"] = "/usr/bin/bash"
    if sudo and "ALL" not in user["sudo_commands_nopasswd"] \
            and ZFS_BINARY not in user["sudo_commands_nopasswd"]:
        user["sudo_commands_nopasswd"] = [*user["sudo_commands_nopasswd"], ZFS_BINARY]


def enable_ssh(node: TrueNASNode) -> None:
    """service.update ssh {enable: true} and START: port 22 listens from now on, and
    after every boot."""
    state(node)["ssh"]["enable"] = True
    network = getattr(node, "network", None)
    start = getattr(network, "start_ssh", None)
    if start is not None:
        start()


def ssh_enabled(node: TrueNASNode) -> bool:
    return bool(state(node)["ssh"]["enable"])


def may_sudo_zfs(node: TrueNASNode, username: str) -> bool:
    user = state(node)["users"].get(username, {})
    commands = user.get("sudo_commands_nopasswd", [])
    return "ALL" in commands or ZFS_BINARY in commands

