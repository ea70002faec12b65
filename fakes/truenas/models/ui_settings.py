"""The node's web UI settings (`system.general`) and moving the UI when they change.

Facts followed (middleware 25.10 plugins/system_general/update.py, ui.py, utils.py,
attachments.py; plugins/ports/ports.py; plugins/apps/port_attachments.py;
etc_files/local/nginx/nginx.conf.mako; reference/truenas-api.md §4 Web UI settings;
system.general.config.json, system.general.update.json):
- defaults: ui_port 80, ui_httpsport 443, ui_httpsredirect false, ui_address
  ["0.0.0.0"], ui_v6address ["::"], ui_allowlist [], ui_consolemsg true,
  ui_x_frame_options "SAMEORIGIN", kbdmap "us", wizardshown false, ds_auth false,
  usage_collection unset (shown as true, usage_collection_is_set false), and
  ui_certificate = the `truenas_default` certificate, shown as its full entry;
- an update validates only the fields it changes, under "general_settings.<field>":
  ui_port equal to ui_httpsport ('Must be different from "ui_httpsport"'), a port
  another service holds ('The port is being used by following services:\\n1)
  "0.0.0.0:443" used by Applications (\\'ingress\\' application)'), the certificate
  ("Please specify a valid certificate which exists in the system", "Selected
  certificate must be a valid certificate and not a CSR or CA", no private key,
  expired, key too small), an unknown timezone, ds_auth without an Enterprise
  licence;
- the change is saved at once but applied only by `system.general.ui_restart
  <delay>` or `ui_restart_delay`: after the delay the web server restarts with
  the saved ports and certificate (open connections drop);
- `rollback_timeout`: unless `system.general.checkin` comes first, the previous
  UI settings come back (and the UI restarts) after that many seconds;
  `checkin_waiting` says how many seconds remain, or null.
Chosen [I]: ui_httpsprotocols defaults to ["TLSv1.2", "TLSv1.3"] (the 12.0
migration's value; the column default lists all four); timezone defaults to
"Etc/UTC" like the fake's system.info (middleware's column default is
America/Los_Angeles); ui_address accepts "0.0.0.0" and the droplet's own address
(a droplet's address comes from DHCP, and middleware offers only static ones); the
ports other services hold are what the node's listeners publish (apps, once
running) plus middleware's fixed system ports; delays and the rollback run on the
node's virtual clock; the reply to the call that asked for a restart is delivered
before it (the restart is a clock event, which needs the world's lock the call holds
until its reply is queued on the node's loop, and closing the old listeners lets
what is queued go out first: server.py `_close`), so no wall-time grace is added. Not
modelled: ui_httpsprotocols as the UI's minimum TLS version and ui_httpsredirect
(the node's `serve_ui` takes neither), ui_allowlist, kbdmap validation.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import zoneinfo
from pathlib import Path
from typing import Any

from fakes.truenas.errors import ValidationErrors
from fakes.truenas.models import certificates

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "ui_certificate": 1, "ui_httpsport": 443, "ui_httpsredirect": False,
    "ui_httpsprotocols": ["TLSv1.2", "TLSv1.3"], "ui_port": 80, "ui_address": ["0.0.0.0"],
    "ui_v6address": ["::"], "ui_allowlist": [], "ui_consolemsg": True,
    "ui_x_frame_options": "SAMEORIGIN", "kbdmap": "us", "timezone": "Etc/UTC",
    "usage_collection": None, "wizardshown": False, "ds_auth": False,
}
UI_FIELDS = [k for k in DEFAULTS if k.startswith("ui_")]
HTTPS_PROTOCOLS = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]
SYSTEM_PORTS = [67, 123, 3702, 5353, 6000]      # ports.py SYSTEM_PORTS, on the wildcards
SCHEMA = "general_settings"
UI_OWNER = "ui"
_GUARD = threading.Lock()


class UiSettings:
    def __init__(self, node: Any, path: Path) -> None:
        self.node = node
        self.path = path
        self.saved: dict[str, Any] = json.loads(path.read_text()) if path.exists() \
            else json.loads(json.dumps(DEFAULTS))
        self.applied: dict[str, Any] = {k: self.saved[k] for k in UI_FIELDS}
        self._rollback: tuple[dict, Any, float] | None = None   # (original, event, due)
        self.errors: list[str] = []

    # --- reading -----------------------------------------------------------------
    def config(self) -> dict:
        entry: dict[str, Any] = {"id": 1, **json.loads(json.dumps(self.saved))}
        store = certificates.store_of(self.node)
        record = store.get(self.saved["ui_certificate"]) if self.saved["ui_certificate"] else None
        entry["ui_certificate"] = store.entry(record, self.node.clock.now()) if record else None
        entry["usage_collection_is_set"] = self.saved["usage_collection"] is not None
        if self.saved["usage_collection"] is None:
            entry["usage_collection"] = True       # not in GPOS STIG mode
        return entry

    # --- changing ------------------------------------------------------------------
    def update(self, data: dict) -> dict:
        rollback_timeout = data.pop("rollback_timeout", None)
        restart_delay = data.pop("ui_restart_delay", None)
        old = dict(self.saved)
        new = {**old, **data}
        self._validate(old, new)
        self.saved = new
        self._save()
        if rollback_timeout is not None:
            self._arm_rollback({k: old[k] for k in UI_FIELDS}, rollback_timeout)
        if restart_delay is not None:
            self.restart(restart_delay)
        return self.config()

    def restart(self, delay: float) -> None:
        """ui.py ui_restart: the web server restarts `delay` seconds from now.

        The delay exists so that the caller receives the reply before its connection
        drops. Here that holds whatever the delay (see the module doc): a fast virtual
        clock makes it milliseconds of wall time, not a wait of its own."""
        self.node.clock.call_later(max(0.0, delay), self._apply)

    def checkin(self) -> None:
        if self._rollback is not None:
            self._rollback[1].cancelled = True
        self._rollback = None

    def checkin_waiting(self) -> int | None:
        if self._rollback is None:
            return None
        remaining = self._rollback[2] - self.node.clock.now()
        return int(remaining) if remaining > 0 else None

    def _arm_rollback(self, original: dict, timeout: float) -> None:
        self.checkin()
        due = self.node.clock.now() + timeout

        def rollback() -> None:
            if self._rollback is None or self._rollback[1] is not event:
                return
            self._rollback = None
            self.saved.update(original)
            self._save()
            self._apply()

        event = self.node.clock.call_later(timeout, rollback)
        self._rollback = (original, event, due)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(self.saved, handle)
        partial.replace(self.path)

    # --- applying ----------------------------------------------------------------------
    def _apply(self) -> None:
        """The http service restarts: the UI listeners move to the saved settings.

        Runs from the clock (under the world's lock). If the listeners cannot move
        (a port taken since the update), the UI stays where it was and the error is
        kept; a real nginx would fail to start instead [I]."""
        if self.node.state == "SHUTTING_DOWN":
            return
        wanted = {k: self.saved[k] for k in UI_FIELDS}
        network = getattr(self.node, "network", None)
        if network is not None:
            try:
                self._serve(network, wanted)
            except OSError as exc:
                self.errors.append(f"UI restart failed: {exc}")
                log.warning("fake TrueNAS %s: UI restart failed: %s", self.node.address, exc)
                try:
                    self._serve(network, self.applied)
                except OSError as again:
                    log.warning("fake TrueNAS %s: could not put the UI back: %s",
                                self.node.address, again)
                return
        self.applied = wanted

    def _serve(self, network: Any, settings: dict) -> None:
        certfile, keyfile = self._certificate_files(settings["ui_certificate"])
        network.serve_ui(settings["ui_port"], settings["ui_httpsport"], certfile, keyfile)

    def _certificate_files(self, cert_id: int | None) -> tuple[Path | None, Path | None]:
        """nginx reads /etc/certificates/<name>.crt (the full chain) and .key; the
        node's own self-signed certificate is the listeners' default."""
        store = certificates.store_of(self.node)
        record = store.get(cert_id) if cert_id else None
        if record is None or record.name == certificates.DEFAULT_CERT_NAME \
                or not record.certificate or not record.privatekey:
            return None, None
        directory = Path(self.node.state_dir) / "etc_certificates"
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        certfile = directory / f"{record.name}.crt"
        keyfile = directory / f"{record.name}.key"
        # Replaced whole, never rewritten in place: a listener started by the restart
        # before may still be loading these files on the node's loop.
        _write_atomically(keyfile, record.privatekey, 0o600)
        _write_atomically(certfile, record.certificate, 0o644)
        return certfile, keyfile

    # --- validation --------------------------------------------------------------------
    def _validate(self, old: dict, new: dict) -> None:
        errors = ValidationErrors()

        def changed(*names: str) -> bool:
            return any(old[n] != new[n] for n in names)

        def add(name: str, message: str) -> None:
            errors.add(f"{SCHEMA}.{name}", message)

        for name in ("ui_port", "ui_httpsport"):
            if changed(name, "ui_address") and (problem := self._port_problem(new[name])):
                add(name, problem)
        if changed("ui_port", "ui_httpsport") and new["ui_port"] == new["ui_httpsport"]:
            add("ui_port", 'Must be different from "ui_httpsport"')
        if changed("ds_auth") and new["ds_auth"]:
            add("ds_auth", "Directory services authentication for UI and API access requires "
                           "an Enterprise license.")
        if changed("timezone") and new["timezone"] not in zoneinfo.available_timezones():
            add("timezone", "Timezone not known. Please select a valid timezone.")
        if changed("ui_address", "ui_v6address"):
            for name, wildcard, own in (("ui_address", "0.0.0.0", self.node.address),
                                        ("ui_v6address", "::", None)):
                for address in new[name]:
                    if address not in (wildcard, own):
                        version = "ipv4" if name == "ui_address" else "ipv6"
                        add(name, f"{address} {version} address is not associated with "
                                  "this machine")
                if wildcard in new[name] and len(new[name]) > 1:
                    add(name, f'When "{wildcard}" has been selected, selection of other '
                              "addresses is not allowed")
        if changed("ui_certificate"):
            for message in self._certificate_problems(new["ui_certificate"]):
                add("ui_certificate", message)
        errors.check()

    def _port_problem(self, port: int) -> str | None:
        """ports.py validate_port: who else holds `port` on the UI's addresses."""
        holders = []
        if port in SYSTEM_PORTS:
            holders.append(f'"0.0.0.0:{port}" used by System')
        network = getattr(self.node, "network", None)
        published = network.published() if network is not None else {}
        owner = published.get(port)
        if owner is not None and owner != UI_OWNER:
            if owner.startswith("app:"):
                holders.append(f'"0.0.0.0:{port}" used by Applications '
                               f"({owner[4:]!r} application)")
            else:
                holders.append(f'"0.0.0.0:{port}" used by {owner}')
        if not holders:
            return None
        listing = "\n".join(f"{i + 1}) {h}" for i, h in enumerate(holders))
        return f"The port is being used by following services:\n{listing}"

    def _certificate_problems(self, cert_id: int | None) -> list[str]:
        """certificates.py cert_services_validation and cert_checks."""
        store = certificates.store_of(self.node)
        record = store.get(cert_id) if cert_id is not None else None
        if record is None:
            return ["Please specify a valid certificate which exists in the system"]
        entry = store.entry(record, self.node.clock.now())
        if entry["cert_type_CSR"] or entry["cert_type_CA"]:
            return ["Selected certificate must be a valid certificate and not a CSR or CA"]
        problems = []
        if not entry.get("fingerprint"):
            problems.append(f"{entry['name']} certificate is malformed")
        minimum = {"EC": 28, "RSA": 2048}.get(entry["key_type"] or "", 0)
        if not entry["privatekey"]:
            problems.append("Selected certificate does not have a private key")
        elif not entry["key_length"]:
            problems.append("Failed to parse certificate's private key")
        elif entry["key_length"] < minimum:
            problems.append(f"{entry['name']}'s private key size is less than {minimum} bits")
        if entry["expired"]:
            problems.append(f"{entry['name']!r} has expired (it was valid until "
                            f"{entry['until']!r})")
        if entry["digest_algorithm"] in ("MD5", "SHA1"):
            problems.append("Please use a certificate whose digest algorithm has at least "
                            "112 security bits")
        return problems

    def uses_certificate(self, cert_id: int) -> bool:
        """The UI Service attachment (system/cert_attachments.py): the saved setting."""
        return self.saved["ui_certificate"] == cert_id


def apply_at_boot(node: Any) -> None:
    """nginx starts with the saved settings: a node booting again (power cycle, a
    host back from failure) serves its UI where `system.general.update` last put it,
    with that certificate, not on the first-boot 80/443."""
    if (Path(node.state_dir) / "system_general.json").exists():
        settings_of(node)._apply()


def settings_of(node: Any) -> UiSettings:
    settings = getattr(node, "ui_settings", None)
    if settings is not None:
        return settings
    with _GUARD:
        settings = getattr(node, "ui_settings", None)
        if settings is None:
            settings = UiSettings(node, Path(node.state_dir) / "system_general.json")
            node.ui_settings = settings
    return settings


def _write_atomically(path: Path, text: str, mode: int) -> None:
    if path.exists() and path.read_text() == text:
        return
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)
