"""Request-body checks shared by the stores; each failure is one 422 naming the field."""

from __future__ import annotations

import re
from typing import Any

from fakes.digitalocean.errors import ApiError, unprocessable

TAG_NAME = re.compile(r"^[a-zA-Z0-9_\-:]+$")


def numeric_id(text: str) -> int | None:
    """`text` as a resource id when it is one: ASCII digits only, as the API's Go backend
    parses ids (strconv); str.isdigit() also accepts '³', which int() refuses."""
    return int(text) if text.isascii() and text.isdigit() else None


def require(body: dict, *fields: str) -> None:
    missing = [name for name in fields if body.get(name) in (None, "")]
    if missing:
        raise unprocessable(f"{', '.join(missing)} is required")


def as_object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "error parsing request body")
    return body


def string(body: dict, name: str, default: str | None = None) -> str | None:
    value = body.get(name, default)
    if value is not None and not isinstance(value, str):
        raise unprocessable(f"{name} must be a string")
    return value


def integer(body: dict, name: str, default: int | None = None) -> int | None:
    value = body.get(name, default)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise unprocessable(f"{name} must be an integer")
    return value


def string_list(body: dict, name: str) -> list[str]:
    value = body.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise unprocessable(f"{name} must be a list of strings")
    return value


def tag_names(body: dict, name: str = "tags") -> list[str]:
    tags = string_list(body, name)
    for tag in tags:
        check_tag_name(tag)
    return tags


def check_tag_name(tag: str) -> None:
    # tags_create.yml: pattern ^[a-zA-Z0-9_\-\:]+$, maxLength 255
    if not TAG_NAME.match(tag) or len(tag) > 255:
        raise unprocessable(
            f"tag name {tag!r} is invalid: use letters, numbers, colons, dashes and "
            "underscores, at most 255 characters"
        )
