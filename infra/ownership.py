"""Which domain a site created, told by the domain itself.

DigitalOcean domains carry no tags (reference/digitalocean-api.md §2 Domains), so the
state directory remembers the domains a site created; a sweeper has no state. A domain
`up` creates therefore also gets a TXT record `_truenas-site` naming the site's tags
(site, run and the site file's own) and when it was made, on the target's clock:

    _truenas-site  TXT  "truenas-site:demo truenas-run:1a2b3c4d spec-suite created=1767225600"

`down` and the sweeper take a domain away only when nothing but its NS and SOA
records and this marker is left in it. This module is the marker's format; the record
is created where every record is, in infra/resources/dns.py.
"""

from __future__ import annotations

MARKER_NAME = "_truenas-site"
MARKER_TTL = 3600


def marker_data(tags: list[str], created: float) -> str:
    return " ".join([*tags, f"created={int(created)}"])


def is_marker(record: dict) -> bool:
    return record.get("type") == "TXT" and record.get("name") == MARKER_NAME


def marker_tags(record: dict) -> set[str]:
    return {word for word in str(record.get("data", "")).strip('"').split()
            if not word.startswith("created=")}


def marker_created(record: dict) -> float | None:
    for word in str(record.get("data", "")).strip('"').split():
        if word.startswith("created=") and word[8:].isdigit():
            return float(word[8:])
    return None


def only_ours_left(records: list[dict]) -> bool:
    """Nothing in the domain but its NS and SOA records and the site's marker."""
    return all(r["type"] in ("NS", "SOA") or is_marker(r) for r in records)
