"""What TrueNAS knows of a custom app besides its containers: the checked compose
file, the stub catalog metadata, portals and notes.

Facts followed (middleware stable/goldeye; truenas/apps_validation):
- `validate_payload(data, schema)` (plugins/apps/custom_app_utils.py): neither
  `custom_compose_config` nor `custom_compose_config_string` ->
  `<schema>.custom_compose_config: This field is required`; both ->
  `<schema>.custom_compose_config_string: Only one of these fields should be
  provided`; YAML that does not load -> `...string: Invalid YAML provided`; then
  `docker compose config` on it -> `<schema>.<field>: Invalid compose configuration:
  <compose's message>`; `values` is not used for a custom app;
- custom apps carry `catalog_reader.custom_app.get_version_details()`: version
  "1.0.0", human_version "1.0.0_custom", app_metadata name "custom-app", train
  "stable", app_version "custom", title "Custom App";
- portals and notes come from the file's `x-portals` (`[{name, scheme http|https,
  host, port, path?}]`) and `x-notes` (ix_apps/portals.py, apps_validation
  portals.py); a portal's URL omits :80 for http and :443 for https, brackets an
  IPv6 host, and `0.0.0.0` becomes the address the client reached the node on;
  an invalid section gives no portals and no notes. They are computed when the app
  is created: app.update of a custom app does not refresh them (crud.py
  update_internal calls update_app_metadata_for_portals only for catalog apps).
"""

from __future__ import annotations

import errno
from typing import Any

import yaml

from fakes.truenas.apps.compose import ComposeError, Project, load
from fakes.truenas.errors import ValidationErrors

VERSION = "1.0.0"
APP_VERSION = "custom"
METADATA = {
    "name": "custom-app", "train": "stable", "version": VERSION, "app_version": APP_VERSION,
    "title": "Custom App",
    "description": "This is a custom app where user can use his/her own docker compose "
                   "file for deploying services",
    "home": "", "sources": [], "maintainers": [], "run_as_context": [], "capabilities": [],
    "host_mounts": [],
}
VERSION_DETAILS = {"app_metadata": METADATA, "version": VERSION,
                   "human_version": f"{VERSION}_{APP_VERSION}", "supported": True,
                   "healthy": True, "healthy_error": None}


def validate_payload(data: dict, schema: str) -> tuple[dict, Project]:
    """The compose file of an app.create / app.update call, checked as TrueNAS does."""
    errors = ValidationErrors()
    config = data.get("custom_compose_config")
    text = data.get("custom_compose_config_string")
    if not config and not text:
        errors.add(f"{schema}.custom_compose_config", "This field is required")
    elif config and text:
        errors.add(f"{schema}.custom_compose_config_string",
                   "Only one of these fields should be provided")
    field = "custom_compose_config_string" if text else "custom_compose_config"
    if text and not errors.errors:
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError:
            errors.add(f"{schema}.custom_compose_config_string", "Invalid YAML provided")
    errors.check()
    try:
        project = load(config)
    except ComposeError as exc:
        raise ValidationErrors([(f"{schema}.{field}", f"Invalid compose configuration: {exc}",
                                 errno.EINVAL)]) from None
    return config, project


def _portal_valid(portal: Any) -> bool:
    if not isinstance(portal, dict) or set(portal) - {"name", "scheme", "host", "port", "path"}:
        return False
    return (isinstance(portal.get("name"), str) and bool(portal["name"])
            and portal.get("scheme") in ("http", "https")
            and isinstance(portal.get("host"), str)
            and isinstance(portal.get("port"), int) and not isinstance(portal["port"], bool)
            and (("path" not in portal)
                 or (isinstance(portal["path"], str) and portal["path"].startswith("/"))))


def portals_and_notes(config: dict) -> dict:
    """{portals: {name: url}, notes} from the file's x-portals / x-notes."""
    empty = {"portals": {}, "notes": None}
    portals = config.get("x-portals", [])
    notes = config.get("x-notes")
    if not isinstance(portals, list) or not all(_portal_valid(p) for p in portals):
        return empty
    if notes is not None and not isinstance(notes, str):
        return empty
    shaped = {}
    for portal in portals:
        default = (portal["scheme"], portal["port"]) in (("http", 80), ("https", 443))
        port = "" if default else f":{portal['port']}"
        host = f"[{portal['host']}]" if ":" in portal["host"] else portal["host"]
        shaped[portal["name"]] = f"{portal['scheme']}://{host}{port}{portal.get('path', '')}"
    return {"portals": shaped, "notes": notes}


def with_host(portals: dict[str, str], host_ip: str | None) -> dict[str, str]:
    if not host_ip:
        return dict(portals)
    return {name: url.replace("0.0.0.0", host_ip) for name, url in portals.items()}
