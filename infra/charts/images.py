"""Image references, and what makes one pinned.

The grammar is distribution/reference's (the one Docker parses with):
    reference := name [ ":" tag ] [ "@" digest ]
    name      := [domain "/"] path-component ["/" path-component]*
    domain    := host [":" port]
    path-component := [a-z0-9]+ ([_.]|__|-+ [a-z0-9]+)*
    tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest    := "sha256:" 64 lowercase hex digits (the only algorithm registries use)
Pinned, for this project: a tag that names an exact version (it holds a digit and
is not a moving name such as `latest`), optionally followed by a digest. A bare
name means `:latest` to Docker, so it is refused like `latest` itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
REFERENCE = re.compile(
    rf"^(?:(?P<domain>{_HOST})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
# Tags that registries move to new builds: a deploy with one is not reproducible.
MOVING_TAGS = frozenset({"latest", "stable", "edge", "nightly", "main", "master", "dev",
                         "mainline", "rolling", "current"})


@dataclass(frozen=True)
class ImageRef:
    domain: str | None
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path


def parse_image(reference: str) -> ImageRef:
    """Split a reference; ValueError saying why it is not one."""
    if not isinstance(reference, str) or not reference:
        raise ValueError("an image reference must be a non-empty string")
    if len(reference) > 255 + 1 + 128 + 72:
        raise ValueError("is too long to be an image reference")
    match = REFERENCE.match(reference)
    if match is None:
        raise ValueError(f"{reference!r} is not a valid image reference (lowercase "
                         "name[:tag][@sha256:digest])")
    domain = match["domain"]
    # `localhost/x` and `host:port/x` are registries; `library/x` is a path on Docker Hub.
    if domain and "." not in domain and ":" not in domain and domain != "localhost" \
            and not domain.startswith("["):
        if not re.fullmatch(_COMPONENT, domain):
            raise ValueError(f"{reference!r} is not a valid image reference (repository "
                             "names are lowercase)")
        return ImageRef(None, f"{domain}/{match['path']}", match["tag"], match["digest"])
    return ImageRef(domain, match["path"], match["tag"], match["digest"])


def check_pinned(reference: str) -> ImageRef:
    """The parsed reference, or ValueError saying why it is not pinned."""
    ref = parse_image(reference)
    if ref.tag is None:
        raise ValueError(f"{reference!r} names no tag, which Docker reads as :latest; pin an "
                         "exact version such as caddy:2.8.4")
    if ref.tag.lower() in MOVING_TAGS:
        raise ValueError(f"{reference!r} uses the moving tag {ref.tag!r}; pin an exact version")
    if not any(ch.isdigit() for ch in ref.tag):
        raise ValueError(f"{reference!r}: tag {ref.tag!r} names no version number; pin an "
                         "exact version such as 2.8.4")
    return ref
