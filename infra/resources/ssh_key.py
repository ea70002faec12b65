"""The site's SSH key: DigitalOcean refuses a droplet from a custom image without one.

DigitalOcean's custom image limits: "You must add an SSH key when creating Droplets from
a custom image" (reference/digitalocean-api.md §5). Either the site file names keys
already on the account (`access.ssh_key_fingerprints`: sent as they are, never
registered or deleted here), or the site has a key of its own:

- an ed25519 key generated once with `cryptography` into the state directory (0700;
  the private half in a 0600 file, never read back into a message or a log);
- registered before the droplet is created, as `<site>-ssh-<run id>`. SSH keys carry no
  tags, so the state directory remembers the key's id, and the name carries the run;
- `down` deletes the key the state recorded (or, after an interrupted `up`, the one with
  our public key's fingerprint), and nothing else; `sweep` deletes a `<site>-ssh-<run>`
  key only once nothing of that run is left (keys have no `created_at` to age them by).

The account keys API: `/v2/account/keys`, a key addressed by id or fingerprint (MD5,
colon-hex), 422 "SSH Key is already in use on your account" for a duplicate
(fakes/digitalocean/models/ssh_keys.py cites the evidence).
"""

from __future__ import annotations

import base64
import hashlib
import re

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_ssh_private_key,
)

from infra import desired
from infra.digitalocean import DigitalOcean
from infra.errors import CloudError, NotFound
from infra.events import Reporter
from infra.secrets import write_private_file
from infra.site import Site
from infra.state import StateDir

PRIVATE_FILE = "ssh_key"          # OpenSSH private key format, 0600
PUBLIC_FILE = "ssh_key.pub"
LEDGER = "ssh_keys"               # StateDir kind: name -> {"id", "fingerprint"}
NAME = re.compile(r"^(?P<site>[a-z0-9][a-z0-9-]*)-ssh-(?P<run>[0-9a-f]{8})$")


def key_name(site: Site, run_id: str) -> str:
    return f"{site.name}-ssh-{run_id}"


def fingerprint(public_key: str) -> str:
    """DigitalOcean's fingerprint of an OpenSSH public key line: MD5 of the key blob."""
    digest = hashlib.md5(base64.b64decode(public_key.split()[1]),
                         usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def public_key(site: Site, state: StateDir) -> str:
    """The site key's public half, generating the pair on first use."""
    private_path, public_path = state.path / PRIVATE_FILE, state.path / PUBLIC_FILE
    if not private_path.exists():
        key = Ed25519PrivateKey.generate()
        write_private_file(private_path, key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH,
                                                    NoEncryption()))
        line = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
        write_private_file(public_path, line + f" truenas-site:{site.name}\n".encode())
    if not public_path.exists():  # the private half is the truth: derive it again
        loaded = load_ssh_private_key(private_path.read_bytes(), password=None)
        line = loaded.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
        write_private_file(public_path, line + f" truenas-site:{site.name}\n".encode())
    return public_path.read_text().strip()


def _get(do: DigitalOcean, identifier: str | int) -> dict | None:
    try:
        return do.call("get SSH key", do.client.ssh_keys.get, identifier)["ssh_key"]
    except NotFound:
        return None


# --- what up and plan use -------------------------------------------------------------
def planned(site: Site, state: StateDir | None) -> str | None:
    """The key `up` would register (for `plan`; `state` None when there is no state
    directory yet), or None when it needs none."""
    if site.access.ssh_key_fingerprints or (state is not None and state.created(LEDGER)):
        return None
    return f"{site.name}-ssh-<run id> (ed25519, generated in the state directory)"


def ensure(do: DigitalOcean, site: Site, state: StateDir,
           reporter: Reporter | None = None) -> list[int | str]:
    """The `ssh_keys` to send with the droplet: the site file's fingerprints, or the
    site key's id, registering it first if the account does not hold it."""
    if site.access.ssh_key_fingerprints:
        return list(site.access.ssh_key_fingerprints)
    public = public_key(site, state)
    ours = fingerprint(public)
    found = _get(do, ours)
    if found is None:
        name = key_name(site, state.run_id())
        (reporter or Reporter()).step(f"register SSH key {name} ({ours})")
        body = {"name": name, "public_key": public}
        try:
            found = do.create_once(f"register SSH key {name}",
                                   lambda: do.client.ssh_keys.create(body),
                                   lambda: (k := _get(do, ours)) and {"ssh_key": k})["ssh_key"]
        except CloudError as error:
            # 422 "already in use": registered by an earlier attempt whose answer was lost.
            found = _get(do, ours) if error.status == 422 else None
            if found is None:
                raise
    state.record_created(LEDGER, found["name"], {"id": found["id"], "fingerprint": ours})
    return [found["id"]]


# --- what down and sweep use -----------------------------------------------------------
def destroy(do: DigitalOcean, site: Site, state: StateDir) -> list[str]:
    """Delete the key this site registered; returns what was deleted (for the report)."""
    if site.access.ssh_key_fingerprints:
        return []  # the user's own keys: never ours to delete
    recorded = state.created(LEDGER)
    public_path = state.path / PUBLIC_FILE
    ours = fingerprint(public_path.read_text()) if public_path.exists() else None
    fingerprints = {entry["fingerprint"] for entry in recorded.values()} | (
        {ours} if ours else set())
    deleted = []
    for known in sorted(fingerprints):
        key = _get(do, known)
        if key is not None and key["fingerprint"] == known:
            destroy_key(do, key)
            deleted.append(f"SSH key {key['name']} ({known})")
    for name in recorded:
        state.forget(LEDGER, name)
    return deleted


def destroy_key(do: DigitalOcean, key: dict) -> None:
    """Delete one registered key (gone already is fine)."""
    do.ignore_missing(f"delete SSH key {key['name']}", do.client.ssh_keys.delete, key["id"])


def orphaned(do: DigitalOcean, staying: list[dict], site_tags: set[str] | None,
             run_id: str | None = None) -> list[dict]:
    """Site keys (`<site>-ssh-<run>`) whose run has nothing left once the sweep is done:
    `staying` are the resources the sweep leaves (their run tags keep a run alive);
    `site_tags` the site tags in the sweep's scope (None: every site); `run_id` limits
    it to one run."""
    prefix = desired.run_tag("")
    runs_left = {tag[len(prefix):] for resource in staying
                 for tag in resource.get("tags") or [] if tag.startswith(prefix)}
    sites = None if site_tags is None else {
        tag.split(":", 1)[1] for tag in site_tags if ":" in tag}
    keys = do.list_all("list SSH keys", do.client.ssh_keys.list, "ssh_keys")
    found = []
    for key in keys:
        match = NAME.match(key.get("name") or "")
        if match is None or match["run"] in runs_left:
            continue
        if run_id is not None and match["run"] != run_id:
            continue
        if sites is not None and match["site"] not in sites:
            continue
        found.append(key)
    return found
