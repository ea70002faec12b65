"""The site's DNS: its domain and one A record per hostname, pointing at the droplet.

Neither a domain nor a record can carry a tag, so the state directory remembers
which the site created (`domains`, `records`: hostname -> record id). A record is
the site's when the state says so or when it points at one of the site's droplets;
a hostname dropped from the site file loses the record the site made for it. A
domain is deleted only if the site created it and nothing but NS and SOA is left.
"""

from __future__ import annotations

from infra import desired as desired_tags
from infra import ownership
from infra.change import Change
from infra.digitalocean import DigitalOcean
from infra.errors import ConflictError, NotFound
from infra.events import Reporter
from infra.site import Site
from infra.state import StateDir

CREATE_DOMAIN = "POST /v2/domains"
CREATE_RECORD = "POST /v2/domains/*/records"
UPDATE_RECORD = "PUT /v2/domains/*/records/*"
DELETE_RECORD = "DELETE /v2/domains/*/records/*"


def domain_exists(do: DigitalOcean, site: Site) -> bool:
    try:
        do.call("get domain", do.client.domains.get, site.dns.domain)
        return True
    except NotFound:
        return False


def find_domains(do: DigitalOcean) -> list[dict]:
    return do.list_all("list domains", do.client.domains.list, "domains")


def find_records(do: DigitalOcean, site: Site, hostname: str) -> list[dict]:
    """The A records of `hostname` in the site's domain."""
    return do.list_all("list DNS records", do.client.domains.list_records, "domain_records",
                       domain_name=site.dns.domain, name=hostname, type="A")


def find_all_records(do: DigitalOcean, domain: str) -> list[dict]:
    return do.list_all("list DNS records", do.client.domains.list_records, "domain_records",
                       domain_name=domain)


def records_if_domain(do: DigitalOcean, domain: str) -> list[dict] | None:
    """The domain's records, or None when the account has no such domain (the listing
    answers 404 then: reference/digitalocean-api.md §2): whether it exists and what it
    holds, in one request."""
    try:
        return find_all_records(do, domain)
    except NotFound:
        return None


def fqdn(domain: str, record: dict) -> str:
    """A record's fully qualified name: DigitalOcean answers with the name relative to
    the domain, `@` for the apex (reference/digitalocean-api.md, Domains)."""
    name = str(record.get("name", "")).lower().rstrip(".")
    return domain.lower() if name in ("@", "") else f"{name}.{domain.lower()}"


def a_records(domain: str, listed: list[dict], hostnames: list[str]) -> dict[str, list[dict]]:
    """Each of `hostnames` -> its A records among `listed` (the domain's records): what
    `find_records` answers for each, from one listing of the domain instead of one
    request per hostname."""
    by_name: dict[str, list[dict]] = {}
    for record in listed:
        if record.get("type") == "A":
            by_name.setdefault(fqdn(domain, record), []).append(record)
    return {h: by_name.get(h.lower().rstrip("."), []) for h in hostnames}


def marked(listed: list[dict]) -> bool:
    """Whether the domain whose records are `listed` holds the `_truenas-site` marker."""
    return any(ownership.is_marker(r) for r in listed)


def desired(site: Site, hostname: str, ip: str) -> dict:
    domain = site.dns.domain
    relative = "@" if hostname == domain else hostname[: -len(domain) - 1]
    return {"type": "A", "name": relative, "data": ip, "ttl": site.dns.ttl}


def diff(site: Site, has_domain: bool, records: dict[str, list[dict]], ip: str | None,
         owned: dict[str, int], owned_domain: bool = False,
         marked: bool = True) -> list[Change]:
    """`records`: hostname -> its A records, for the site's hostnames and for those the
    state says the site made records for. A domain the site creates gets its marker
    record too; one it created earlier but that lacks it (a run killed in between)
    gets it now."""
    changes: list[Change] = []
    if not has_domain:
        changes.append(Change("create_domain", site.dns.domain, "with its _truenas-site marker",
                              (CREATE_DOMAIN, CREATE_RECORD)))
    elif owned_domain and not marked:
        changes.append(Change("mark_domain", site.dns.domain, "_truenas-site TXT record",
                              (CREATE_RECORD,)))
    for hostname in site.dns.hostnames:
        found = records.get(hostname, [])
        if not found:
            changes.append(Change("create_record", hostname, f"A -> {ip or 'the droplet'}",
                                  (CREATE_RECORD,)))
            continue
        if ip is not None and [r["data"] for r in found] == [ip]:
            continue
        ours = [r for r in found if owned.get(hostname) == r["id"]]
        if not ours:
            shown = ", ".join(r["data"] for r in found)
            raise ConflictError(f"{hostname} already has A records ({shown}) this site did not "
                                "create; remove them or pick another hostname")
        changes.append(Change("update_record", hostname, f"A -> {ip or 'the droplet'}",
                              (UPDATE_RECORD,)))
    for hostname, record in stale(site, records, owned):
        changes.append(Change("delete_record", hostname,
                              f"A -> {record['data']}: no longer in the site file",
                              (DELETE_RECORD,)))
    return changes


def stale(site: Site, records: dict[str, list[dict]],
          owned: dict[str, int]) -> list[tuple[str, dict]]:
    """Records the site made for hostnames its file no longer names."""
    return [(hostname, record) for hostname, record_id in owned.items()
            if hostname not in site.dns.hostnames
            for record in records.get(hostname, []) if record["id"] == record_id]


def create_domain(do: DigitalOcean, site: Site, state: StateDir, reporter: Reporter) -> None:
    domain = site.dns.domain
    reporter.step(f"create domain {domain}")
    # Recorded before the request: a domain carries no tag, so a run killed once it
    # was made but before it was recorded would leave it to no one
    # (tests/integration/test_interrupted_up.py). `down` deletes it only if it exists.
    state.record_created("domains", domain)
    do.create_once(f"create domain {domain}", lambda: do.client.domains.create({"name": domain}),
                   lambda: domain_exists(do, site) or None)


def mark_domain(do: DigitalOcean, site: Site, state: StateDir) -> None:
    """A domain the site created gets its `_truenas-site` marker, once (how a sweeper,
    which has no state directory, knows it: infra/ownership.py)."""
    if site.dns.domain not in state.created("domains"):
        return
    domain = site.dns.domain

    def find() -> dict | None:
        found = [r for r in do.list_all("list DNS records", do.client.domains.list_records,
                                        "domain_records", domain_name=domain, type="TXT")
                 if ownership.is_marker(r)]
        return {"domain_record": found[0]} if found else None

    if find() is not None:              # a converged site sends nothing
        return
    body = {"type": "TXT", "name": ownership.MARKER_NAME, "ttl": ownership.MARKER_TTL,
            "data": ownership.marker_data(desired_tags.tags_for(site, state.run_id()),
                                          do.target.now())}
    do.create_once(f"mark domain {domain} as the site's",
                   lambda: do.client.domains.create_record(domain, body), find)


def create_record(do: DigitalOcean, site: Site, state: StateDir, hostname: str, ip: str,
                  reporter: Reporter) -> dict:
    reporter.step(f"create A record {hostname} -> {ip}")
    body = desired(site, hostname, ip)

    def find() -> dict | None:
        matching = [r for r in find_records(do, site, hostname) if r["data"] == ip]
        return {"domain_record": matching[0]} if matching else None

    record = do.create_once(f"create record {hostname}",
                            lambda: do.client.domains.create_record(site.dns.domain, body),
                            find)["domain_record"]
    state.record_created("records", hostname, record["id"])
    return record


def update_record(do: DigitalOcean, site: Site, record: dict, hostname: str, ip: str,
                  reporter: Reporter) -> None:
    reporter.step(f"point {hostname} at {ip}")
    do.call(f"update record {hostname}", do.client.domains.update_record,
            site.dns.domain, record["id"], desired(site, hostname, ip))


def destroy_record(do: DigitalOcean, domain: str, record: dict, hostname: str) -> bool:
    return do.ignore_missing(f"delete record {hostname}", do.client.domains.delete_record,
                             domain, record["id"])


def destroy_domain(do: DigitalOcean, domain: str) -> bool:
    return do.ignore_missing("delete domain", do.client.domains.delete, domain)
