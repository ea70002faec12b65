"""How a run logs in to the site's node: which API key it uses (the site's key file,
TRUENAS_API_KEY, the target's, or the one an earlier `up` stored), and whether it
can log in at all (a key, or a fresh node's admin password: infra/truenas/credentials.py).

Reads files and the environment only; no requests. Its own module so that
infra/certificates.py and infra/preflight.py need not import infra/node.py (which
imports infra/resources/, which imports infra/certificates.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from infra.errors import SiteFileError
from infra.secrets import Secret, read_site_secret
from infra.site import Site
from infra.state import DEFAULT_ROOT, StateDir
from infra.target import Target
from infra.truenas import credentials


def api_key_for(site: Site, target: Target, site_file_dir: Path | None = None,
                state: StateDir | None = None) -> Secret:
    """The node's API key: the site's key file, else TRUENAS_API_KEY, else the target's,
    else the one an earlier `up` created on a fresh node (infra/truenas/credentials.py)."""
    if site.truenas.api_key_file:
        return Secret(read_site_secret("truenas.api_key_file", site.truenas.api_key_file,
                                       site_file_dir))
    if os.environ.get("TRUENAS_API_KEY"):
        return Secret(os.environ["TRUENAS_API_KEY"])
    if target.truenas_api_key is not None:
        return target.truenas_api_key
    if state is not None and (stored := credentials.stored_api_key(state.path)) is not None:
        return stored
    raise SiteFileError(["truenas.api_key_file: no TrueNAS API key: name a key file in the "
                         "site file or export TRUENAS_API_KEY (on a fresh node, export "
                         f"{credentials.PASSWORD_ENV} or name truenas.admin_password_file "
                         "and `up` creates the key)"])


def check_node_credentials(site: Site, target: Target, state_path: Path | None = None) -> None:
    """SiteFileError unless a run can log in to the node: an API key (the site's file,
    TRUENAS_API_KEY, the target's, or the one stored in the state directory at
    `state_path`, by default the site's), or a fresh node's admin password."""
    try:
        api_key_for(site, target)
    except SiteFileError:
        path = state_path if state_path is not None else DEFAULT_ROOT / site.name
        if credentials.stored_api_key(path) is not None:
            return
        if credentials.admin_password(site.truenas.admin_password_file) is not None:
            return
        raise
