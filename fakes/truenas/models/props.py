"""ZFS dataset properties as TrueNAS reports them.

Facts followed (pool.dataset.query.json PoolDatasetEntryProperty; reference/truenas-api.md §4):
every property is `{parsed, rawvalue, value, source}`; `source` is LOCAL,
INHERITED or DEFAULT (NONE for read-only statistics); TrueNAS shows enumerated
values upper-cased in `value` ("LZ4", "STANDARD", "OFF") with the ZFS spelling in
`rawvalue`; sizes have the byte count in `rawvalue`/`parsed` and ZFS's short form
("1.50M") in `value`. Inherited values name the ancestor in `source_info`.
Chosen, not checked against a real node: the exact property set (the common ones
below), `parsed` of on/off properties as booleans, and the root dataset's local
settings at pool creation (compression lz4, atime off, acltype posix,
aclmode discard, xattr sa), which is what TrueNAS's pool.create is known to set.
"""

from __future__ import annotations

import time

# name -> (default rawvalue, kind). kinds: enum (value upper-cased), onoff,
# size (bytes; 0 means none for quotas), int, text (TrueNAS user properties).
SETTABLE: dict[str, tuple[str, str]] = {
    "aclmode": ("discard", "enum"),
    "acltype": ("posix", "enum"),
    "atime": ("on", "onoff"),
    "casesensitivity": ("sensitive", "enum"),
    "checksum": ("on", "enum"),
    "compression": ("off", "enum"),
    "copies": ("1", "int"),
    "deduplication": ("off", "enum"),
    "exec": ("on", "onoff"),
    "readonly": ("off", "onoff"),
    "recordsize": ("131072", "size"),
    "snapdev": ("hidden", "enum"),
    "snapdir": ("hidden", "enum"),
    "sync": ("standard", "enum"),
    "xattr": ("sa", "enum"),
    "special_small_block_size": ("0", "size"),
    "quota": ("0", "quota"),
    "refquota": ("0", "quota"),
    "reservation": ("0", "quota"),
    "refreservation": ("0", "quota"),
    "comments": ("", "text"),
    "managedby": ("", "text"),
    "quota_warning": ("80", "int"),
    "quota_critical": ("95", "int"),
    "refquota_warning": ("80", "int"),
    "refquota_critical": ("95", "int"),
    "volsize": ("0", "size"),
    "volblocksize": ("16384", "size"),
}
# Properties a child never inherits (set at creation, or per dataset).
NOT_INHERITED = {"casesensitivity", "quota", "refquota", "reservation", "refreservation",
                 "volsize", "volblocksize", "comments"}
ROOT_LOCAL = {"compression": "lz4", "atime": "off", "acltype": "posix",
              "aclmode": "discard", "xattr": "sa"}
SIZE_SUFFIXES = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def nicebytes(n: int) -> str:
    """ZFS's short size form: 512B, 96K, 1.50M, 17.5G."""
    if n < 1024:
        return f"{n}B"
    value = float(n)
    suffixes = iter("KMGTPE")
    suffix = next(suffixes)
    value /= 1024
    while value >= 1024:
        value /= 1024
        suffix = next(suffixes)
    if value == int(value):
        return f"{int(value)}{suffix}"
    if value < 10:
        return f"{value:.2f}{suffix}"
    if value < 100:
        return f"{value:.1f}{suffix}"
    return f"{value:.0f}{suffix}"


def parse_size(text: str | int) -> int | None:
    """"128K", "1M", "131072" -> bytes; None if not a size."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    text = str(text).strip().upper().removesuffix("B")
    if text.isdecimal():
        return int(text)
    if text and text[-1] in SIZE_SUFFIXES and text[:-1].replace(".", "", 1).isdecimal():
        return int(float(text[:-1]) * SIZE_SUFFIXES[text[-1]])
    return None


def raw_from_api(name: str, value: object) -> str:
    """The rawvalue for an API value ("LZ4" -> "lz4", 2 -> "2", "64K" -> "65536")."""
    kind = SETTABLE[name][1]
    if kind in ("size", "quota"):
        size = parse_size(value)  # type: ignore[arg-type]
        return str(size if size is not None else 0)
    if kind == "text":
        return str(value)
    return str(value).lower()


def shape(name: str, raw: str, source: str, source_info: str | None = None) -> dict:
    kind = SETTABLE[name][1] if name in SETTABLE else "text"
    parsed: object = raw
    value: str | None = raw
    if kind == "enum":
        value = raw.upper()
    elif kind == "onoff":
        parsed = raw == "on"
        value = raw.upper()
    elif kind == "int":
        parsed = int(raw)
    elif kind == "size":
        parsed = int(raw)
        value = nicebytes(int(raw))
    elif kind == "quota":
        parsed = int(raw) or None
        value = nicebytes(int(raw)) if int(raw) else None
    return {"parsed": parsed, "rawvalue": raw, "value": value, "source": source,
            "source_info": source_info}


def statistic(parsed: int) -> dict:
    return {"parsed": parsed, "rawvalue": str(parsed), "value": nicebytes(parsed),
            "source": "NONE", "source_info": None}


def fixed(parsed: object, raw: str, value: str | None = None) -> dict:
    return {"parsed": parsed, "rawvalue": raw, "value": raw if value is None else value,
            "source": "NONE", "source_info": None}


def creation(timestamp: float, parsed: object) -> dict:
    """`creation` as `zfs get` prints it ("Tue Jan  2 10:00 2024"), in UTC."""
    text = time.strftime("%a %b %e %H:%M %Y", time.gmtime(timestamp))
    return {"parsed": parsed, "rawvalue": str(int(timestamp)), "value": text,
            "source": "NONE", "source_info": None}
