"""keychaincredential.* (reference/truenas-api.md "SSH connection setup";
keychaincredential.*.json; middleware plugins/keychain.py and
plugins/keychain_/ssh_connections.py @ af2c5ab).

create/update return the entry, delete returns null; generate_ssh_key_pair stores
nothing; remote_ssh_host_key_scan and remote_ssh_semiautomatic_setup reach the other
node over the network from this node's own address (through its firewall), with
the world's lock released meanwhile. `keychaincredential.ssh_pair` is private in
25.10 (no API model), served because the other node's semi-automatic setup calls it.

The semi-automatic setup, as middleware does it: log in to the remote with the token
(or the admin's password), ask its `ssh_pair` to authorize our public key for
`username`, and store SSH_CREDENTIALS pointing at the URL's host. Two differences:
middleware's client speaks the legacy `/websocket` protocol, which the fake does not
serve, so the fake speaks JSON-RPC 2.0 on `/api/current` (the same calls); and the
remote `user.query`/`user.update` that give the user a shell and, with `sudo`,
passwordless `zfs` run inside the fake's ssh_pair (`sudo` travels as an extra
argument the real private method does not take). The URL's host must be an address:
the fake nodes do not resolve names.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import socket
import ssl
import urllib.parse
from typing import Any

from fakes.truenas.errors import CallError
from fakes.truenas.methods.common import crud_event, instance_not_found, query_methods
from fakes.truenas.methods.params import (
    EMPTY,
    MISSING,
    NOT_GIVEN,
    AnyValue,
    Bool,
    Field,
    Int,
    Obj,
    Str,
    Union,
    parse,
)
from fakes.truenas.models import keychain

SSH_KEY_PAIR = Obj({"private_key": Field(Str(nullable=True), None),
                    "public_key": Field(Str(nullable=True), None)})
SSH_CREDENTIALS = Obj({
    "host": Field(Str()), "port": Field(Int(), 22), "username": Field(Str(), "root"),
    "private_key": Field(Int()), "remote_host_key": Field(Str()),
    "connect_timeout": Field(Int(), 10)})
SSH_CREDENTIALS_UPDATE = Obj({name: Field(f.spec, NOT_GIVEN)
                              for name, f in SSH_CREDENTIALS.fields.items()})
SSH_KEY_PAIR_UPDATE = Obj({name: Field(f.spec, NOT_GIVEN)
                           for name, f in SSH_KEY_PAIR.fields.items()})
CREATE = Obj({"name": Field(Str(min_length=1)),
              "type": Field(Str(list(keychain.TYPES))), "attributes": Field(AnyValue())})
UPDATE = Obj({"name": Field(Str(min_length=1), NOT_GIVEN),
              "attributes": Field(AnyValue(), NOT_GIVEN)})
DELETE_OPTIONS = Obj({"cascade": Field(Bool(), False)})
SCAN = Obj({"host": Field(Str(min_length=1)), "port": Field(Int(), 22),
            "connect_timeout": Field(Int(), 10)})
_SEMI_FIELDS = {
    "url": Field(Str()), "verify_ssl": Field(Bool(), True),
    "token": Field(Str(nullable=True), None), "admin_username": Field(Str(), "root"),
    "password": Field(Str(nullable=True), None), "otp_token": Field(Str(nullable=True), None),
    "username": Field(Str(), "root"), "connect_timeout": Field(Int(), 10),
    "sudo": Field(Bool(), False)}
SEMI = Obj({"name": Field(Str(min_length=1)), "private_key": Field(Int()), **_SEMI_FIELDS})
KEY_NEW = Obj({"generate_key": Field(Bool(), True), "name": Field(Str(min_length=1))})
KEY_EXISTING = Obj({"generate_key": Field(Bool(), False), "existing_key_id": Field(Int())})
MANUAL_SETUP = Obj({name: f for name, f in SSH_CREDENTIALS.fields.items()
                    if name != "private_key"})
SETUP_MANUAL = Obj({"private_key": Field(Union([KEY_NEW, KEY_EXISTING])),
                    "connection_name": Field(Str(min_length=1)),
                    "setup_type": Field(Str(["MANUAL"]), "MANUAL"),
                    "manual_setup": Field(MANUAL_SETUP)})
SETUP_SEMI = Obj({"private_key": Field(Union([KEY_NEW, KEY_EXISTING])),
                  "connection_name": Field(Str(min_length=1)),
                  "setup_type": Field(Str(["SEMI-AUTOMATIC"])),
                  "semi_automatic_setup": Field(Obj(_SEMI_FIELDS))})
SSH_PAIR = Obj({"remote_hostname": Field(Str(min_length=1)), "username": Field(Str(), "root"),
                "public_key": Field(Str(min_length=1)), "sudo": Field(Bool(), False)})


@contextlib.contextmanager
def unlocked(node):
    """Release the world's lock (held once by the RPC transport) while this node waits
    on another: that node's handlers need the same lock."""
    lock = node.lock
    if not hasattr(lock, "_release_save"):      # a plain Lock, held once
        lock.release()
        try:
            yield
        finally:
            lock.acquire()
        return
    saved = lock._release_save()                # an RLock, however deep it is held
    try:
        yield
    finally:
        lock._acquire_restore(saved)


def _entries(node, extra=None):
    return keychain.entries(node)


query, get_instance = query_methods(_entries, "id", Int(), "Keychain Credential")


def _checked(data: dict, kind: str, update: bool, where: str) -> dict:
    spec = {("SSH_KEY_PAIR", False): SSH_KEY_PAIR, ("SSH_CREDENTIALS", False): SSH_CREDENTIALS,
            ("SSH_KEY_PAIR", True): SSH_KEY_PAIR_UPDATE,
            ("SSH_CREDENTIALS", True): SSH_CREDENTIALS_UPDATE}[(kind, update)]
    (checked,) = parse([data], [(where, spec, MISSING)])
    return checked


def create(node, params, ctx):
    (data,) = parse(params, [("keychain_credential_create", CREATE, MISSING)])
    data["attributes"] = _checked(data["attributes"], data["type"], False,
                                  "keychain_credential_create.attributes")
    entry = keychain.create(node, data)
    crud_event(node, "keychaincredential", "create", entry)
    return entry


def update(node, params, ctx):
    ident, data = parse(params, [("id", Int(), MISSING),
                                 ("keychain_credential_update", UPDATE, MISSING)])
    old = keychain.get(node, ident)
    if old is None:
        raise instance_not_found("Keychain Credential", ident)
    if "attributes" in data:
        data["attributes"] = _checked(data["attributes"], old["type"], False,
                                      "keychain_credential_update.attributes")
    entry = keychain.update(node, ident, data)
    crud_event(node, "keychaincredential", "update", entry, ident)
    return entry


def delete(node, params, ctx):
    ident, options = parse(params, [("id", Int(), MISSING), ("options", DELETE_OPTIONS, EMPTY)])
    if keychain.get(node, ident) is None:
        raise instance_not_found("Keychain Credential", ident)
    keychain.delete(node, ident, options["cascade"])
    crud_event(node, "keychaincredential", "delete", None, ident)
    return None


def generate_ssh_key_pair(node, params, ctx):
    parse(params, [])
    with unlocked(node):                 # an RSA key takes a while: others may go on
        return keychain.generate_key_pair(f"root@{node.hostname}")


def remote_ssh_host_key_scan(node, params, ctx):
    from fakes.truenas import ssh

    (data,) = parse(params, [("keychain_remote_ssh_host_key_scan", SCAN, MISSING)])
    try:
        with unlocked(node):
            found = ssh.host_key_scan(node, data["host"], data["port"], data["connect_timeout"])
    except ssh.SshError as exc:
        message = str(exc)
        raise CallError(message if message == "SSH timeout"
                        else f"ssh-keyscan failed: {message}") from None
    if not found:
        raise CallError("SSH timeout")
    return found


def _remote_call(node, url: str, verify_ssl: bool, timeout: int, calls: list) -> list:
    """JSON-RPC calls on the remote node's /api/current, from this node's address; the
    first is the login, and nothing follows a login that answers false."""
    from websockets.sync.client import connect

    parsed = urllib.parse.urlparse(url)
    host = parsed.hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise CallError(f"Unable to connect to remote system: the fake TrueNAS resolves no "
                        f"names ({host!r}); give the other node's address") from None
    secure = parsed.scheme == "https"
    port = parsed.port or (443 if secure else 80)
    dial = getattr(node, "dial", None)
    target, target_port = dial(host, port) if dial else (host, port)
    context = None
    if secure:
        context = ssl.create_default_context()
        # TLS 1.2 at most: websockets' sync client reads and writes one TLS 1.3
        # connection from two threads while the server's session tickets arrive, which
        # OpenSSL does not support (openssl/openssl#20446); about one connection in 150
        # lost its upgrade request, and the failed handshake's cleanup then waited
        # forever for its reader thread (a 120 s hang of setup_ssh_connection seen in
        # 2 of 3 full runs). infra/ drains the tickets (infra/truenas/wss.py); the fake
        # may not import it, and what this client negotiates is no behaviour of
        # middleware's that anything checks.
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        bundle = getattr(getattr(node, "world_services", None), "ca_bundle", "")
        if bundle:
            context.load_verify_locations(cafile=bundle)
        if not verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.bind((node.address, 0))
        sock.connect((target, target_port))
        uri = f"{'wss' if secure else 'ws'}://{host}/api/current"
        answers = []
        with connect(uri, sock=sock, ssl=context, server_hostname=host if secure else None,
                     open_timeout=timeout, proxy=None) as ws:
            for ident, (method, params) in enumerate(calls, 1):
                ws.send(json.dumps({"jsonrpc": "2.0", "id": ident, "method": method,
                                    "params": params}))
                while True:
                    message = json.loads(ws.recv(timeout=timeout))
                    if message.get("id") == ident:
                        break
                if "error" in message:
                    error = message["error"]
                    reason = (error.get("data") or {}).get("reason") or error.get("message")
                    raise CallError(f"Semi-automatic SSH connection setup failed: {reason}\n\n"
                                    "Please make sure that home directory for the user on the "
                                    "remote system exists and is writeable.")
                answers.append(message["result"])
                if ident == 1 and message["result"] is not True:
                    return [message["result"], None]          # the login failed
        return answers
    except ssl.SSLCertVerificationError as exc:
        raise CallError(str(exc), errno.EINVAL) from None
    except CallError:
        raise
    except (OSError, Exception) as exc:  # noqa: BLE001 - middleware wraps them all so
        raise CallError(f"Unable to connect to remote system: {exc}") from None
    finally:
        sock.close()


def _semiautomatic(node, data: dict) -> dict:
    pair = keychain.key_pair_with_private_key(node, data["private_key"])
    if pair is None:
        raise CallError(f"SSH Key Pair {data['private_key']} with a private key does not exist",
                        errno.ENOENT)
    if data["token"]:
        login = ("auth.login_with_token", [data["token"]])
    elif data["password"]:
        login = ("auth.login", [data["admin_username"], data["password"]]
                 + ([data["otp_token"]] if data["otp_token"] else []))
    else:
        raise CallError("You should specify either remote system password or temporary "
                        "authentication token")
    pair_call = ("keychaincredential.ssh_pair", [{
        "remote_hostname": "any-host", "username": data["username"],
        "public_key": pair["attributes"]["public_key"].strip(), "sudo": data["sudo"]}])
    with unlocked(node):
        logged_in, response = _remote_call(node, data["url"], data["verify_ssl"],
                                           data["connect_timeout"], [login, pair_call])
    if not logged_in:
        raise CallError("Invalid token" if data["token"] else "Invalid username or password")
    host_keys = "\n".join(" ".join(line.split()[1:]) for line in
                          response["host_key"].split("\n") if line and not line.startswith("# "))
    return keychain.create(node, {"name": data["name"], "type": "SSH_CREDENTIALS", "attributes": {
        "host": urllib.parse.urlparse(data["url"]).hostname, "port": response["port"],
        "username": data["username"], "private_key": pair["id"],
        "remote_host_key": host_keys, "connect_timeout": data["connect_timeout"]}})


def remote_ssh_semiautomatic_setup(node, params, ctx):
    (data,) = parse(params, [("data", SEMI, MISSING)])
    entry = _semiautomatic(node, data)
    crud_event(node, "keychaincredential", "create", entry)
    return entry


def setup_ssh_connection(node, params, ctx):
    (options,) = parse(params, [("options", Union([SETUP_SEMI, SETUP_MANUAL]), MISSING)])
    key = options["private_key"]
    names = {c["name"] for c in keychain.entries(node)}
    errors = []
    if key.get("generate_key"):
        if key["name"] in names:
            errors.append(("setup_ssh_connection.private_key.name",
                           "Is already in use by another SSH Key pair", errno.EINVAL))
    elif keychain.get(node, key["existing_key_id"]) is None:
        errors.append(("setup_ssh_connection.private_key.existing_key_id",
                       "SSH Key Pair not found", errno.EINVAL))
    if options["connection_name"] in names:
        errors.append(("setup_ssh_connection.connection_name",
                       "Is already in use by another Keychain Credential", errno.EINVAL))
    if errors:
        from fakes.truenas.errors import ValidationErrors

        raise ValidationErrors(errors)
    if key.get("generate_key"):
        with unlocked(node):
            made = keychain.generate_key_pair(f"root@{node.hostname}")
        pair = keychain.create(node, {"name": key["name"], "type": "SSH_KEY_PAIR",
                                      "attributes": made})
    else:
        pair = keychain.get(node, key["existing_key_id"])
    try:
        if options["setup_type"] == "SEMI-AUTOMATIC":
            entry = _semiautomatic(node, {**options["semi_automatic_setup"],
                                          "private_key": pair["id"],
                                          "name": options["connection_name"]})
        else:
            entry = keychain.create(node, {
                "type": "SSH_CREDENTIALS", "name": options["connection_name"],
                "attributes": {**options["manual_setup"], "private_key": pair["id"]}})
    except Exception:
        if key.get("generate_key"):
            keychain.delete(node, pair["id"], cascade=True)
        raise
    crud_event(node, "keychaincredential", "create", entry)
    return entry


def ssh_pair(node, params, ctx):
    (data,) = parse(params, [("keychain_ssh_pair", SSH_PAIR, MISSING)])
    response = keychain.ssh_pair(node, data["remote_hostname"], data["username"],
                                 data["public_key"])
    keychain.update_user(node, data["username"], data["sudo"])
    return response


METHODS: dict[str, Any] = {
    "keychaincredential.query": query,
    "keychaincredential.get_instance": get_instance,
    "keychaincredential.create": create,
    "keychaincredential.update": update,
    "keychaincredential.delete": delete,
    "keychaincredential.generate_ssh_key_pair": generate_ssh_key_pair,
    "keychaincredential.remote_ssh_host_key_scan": remote_ssh_host_key_scan,
    "keychaincredential.remote_ssh_semiautomatic_setup": remote_ssh_semiautomatic_setup,
    "keychaincredential.setup_ssh_connection": setup_ssh_connection,
    "keychaincredential.ssh_pair": ssh_pair,
}
