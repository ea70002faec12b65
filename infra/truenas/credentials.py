"""The site's TrueNAS API key on a node that starts with only its admin password.

A node installed from a fresh image knows truenas_admin's password and has no API
key (the installer's `authentication`; issue 12). The first `up` logs in once with
that password, over the pinned WSS only (the client refuses ws://, and the
firewall is already in place), accepts the EULA (`truenas.accept_eula`,
plugins/truenas.py), deletes any key the site made before (`api_key.query` by
name, `api_key.delete`: a key file that was lost), creates the site's key
(`api_key.create`, plugins/api_key.py: the key is in the answer this once) and
stores it in the 0600 state directory. Every later run uses the stored key and
sends no password.

The password comes from `TRUENAS_ADMIN_PASSWORD` or from the file the site names
(`truenas.admin_password_file`, 0600). It travels only inside an AdminPassword
(a Secret: never in a repr, a log line or an exception; the client scrubs it from
anything the node sends back).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from infra.secrets import Secret, read_site_secret, write_private_file
from infra.truenas.client import AdminPassword, TrueNASClient

PASSWORD_ENV = "TRUENAS_ADMIN_PASSWORD"
KEY_FILE = "truenas-api-key"


def key_name(site_name: str) -> str:
    """The name of the site's key on the node (what a lost key is found by)."""
    return f"truenas-site-{site_name}"


def stored_api_key(state_dir: Path) -> Secret | None:
    """The key an earlier run created, if the state directory still has it."""
    try:
        text = (Path(state_dir) / KEY_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return Secret(text) if text else None


def store_api_key(state_dir: Path, key: Secret) -> Path:
    """Write the key 0600, atomically (a crash leaves the old file or the new one)."""
    return write_private_file(Path(state_dir) / KEY_FILE, key.reveal() + "\n")


def forget_api_key(state_dir: Path) -> None:
    (Path(state_dir) / KEY_FILE).unlink(missing_ok=True)


def admin_password(password_file: str | None = None,
                   site_file_dir: Path | None = None) -> AdminPassword | None:
    """The admin password from the site's password file, else TRUENAS_ADMIN_PASSWORD."""
    if password_file:
        return AdminPassword(read_site_secret("truenas.admin_password_file", password_file,
                                              site_file_dir))
    if os.environ.get(PASSWORD_ENV):
        return AdminPassword(os.environ[PASSWORD_ENV])
    return None


def create_site_key(client: TrueNASClient, site_name: str, username: str) -> Secret:
    """On a client logged in with the password: accept the EULA, replace the site's
    key (an older one by the same name is deleted first) and return the new key."""
    if not client.call("truenas.is_eula_accepted"):
        client.call("truenas.accept_eula")
    name = key_name(site_name)
    for old in client.call("api_key.query", [["name", "=", name]]):
        client.call("api_key.delete", old["id"])
    created = client.call("api_key.create", {"name": name, "username": username})
    return Secret(created["key"])


def provision_api_key(connect: Callable[[Secret], TrueNASClient], state_dir: Path,
                      site_name: str, username: str, password: AdminPassword) -> Secret:
    """Log in with the password (through `connect`, which pins and waits as the
    caller does), make the site's key, store it 0600, and return it."""
    client = connect(password)
    try:
        key = create_site_key(client, site_name, username)
    finally:
        client.close()
    store_api_key(state_dir, key)
    return key
