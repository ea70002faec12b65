"""DigitalOcean's pagination: `per_page` (default 20, at most 200) and `page`;
`links.pages` holds only the keys that make sense (first, prev, next, last) as
absolute URLs; `meta.total` is always present (reference/digitalocean-api.md §3).

What the real API does with per_page over 200 or a non-number is not documented
in the reference; this fake clamps to 1..200 and treats junk as the default.
"""

from __future__ import annotations

import math
from urllib.parse import urlencode

DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 200


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def paginate(items: list, query: dict[str, str], base_url: str) -> tuple[list, dict, dict]:
    """Returns (the page's items, links, meta)."""
    per_page = min(MAX_PER_PAGE, max(1, _int(query.get("per_page"), DEFAULT_PER_PAGE)))
    page = max(1, _int(query.get("page"), 1))
    total = len(items)
    last = max(1, math.ceil(total / per_page))
    start = (page - 1) * per_page
    chunk = items[start:start + per_page]

    def url(number: int) -> str:
        params = {**query, "page": str(number), "per_page": str(per_page)}
        return f"{base_url}?{urlencode(params)}"

    pages: dict[str, str] = {}
    if page > 1:
        pages["first"] = url(1)
        pages["prev"] = url(min(page - 1, last))
    if page < last:
        pages["next"] = url(page + 1)
        pages["last"] = url(last)
    links = {"pages": pages} if pages else {}
    return chunk, links, {"total": total}
