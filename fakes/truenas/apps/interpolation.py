"""Compose variable interpolation, as compose-go's `template` package does it.

Facts followed (compose-go template/template.go, interpolation/interpolation.go):
- `$$` is a literal `$`; `$NAME` and `${NAME}` substitute (names match
  `[_a-z][_a-z0-9]*`, any case); an unset variable becomes "" (Compose warns
  "The \"NAME\" variable is not set. Defaulting to a blank string.");
- `${NAME:-default}` (unset or empty) and `${NAME-default}` (unset) give the
  default; `${NAME:+alt}` / `${NAME+alt}` give alt when set (and non-empty);
  `${NAME:?message}` / `${NAME?message}` are an error when unset (or empty):
  `required variable NAME is missing a value: message` (without ": message"
  when there is none); defaults, alternatives and messages are interpolated too,
  so `${A:-${B}}` nests; the operator is the first of `:? ? :- - :+ +` found;
- a `${` that does not form a valid substitution is an error:
  `invalid interpolation format for <path>.\\nYou may need to escape any $ with
  another $.\\n<template>`;
- every string value of the file is interpolated (mapping keys are not); an error
  names its path, `error while interpolating services.web.environment.[]: ...`,
  with `[]` for a list element.
Where the variables come from on TrueNAS: middleware runs `docker compose` with its
own process environment and no `.env` file, so a custom app's file sees no
variables of the user's; the fake passes an empty mapping unless a caller gives one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_BRACED = re.compile(r"^([_a-zA-Z][_a-zA-Z0-9]*)(?::?[-+?](.*))?$", re.DOTALL)
_OPERATORS = (":?", "?", ":-", "-", ":+", "+")


class InterpolationError(ValueError):
    """str() is Compose's message for the value at fault."""


class _Invalid(Exception):
    pass


class _Missing(Exception):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name)
        self.text = (f"required variable {name} is missing a value: {reason}" if reason
                     else f"required variable {name} is missing a value")


def _closing_brace(text: str, start: int) -> int:
    """Index of the brace closing the `{` at `start` (compose-go's counting)."""
    depth, i = 0, start
    while i < len(text):
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        if text[i] == "{":
            depth += 1
            i += 1
        i += 1
    return -1


def _operator(body: str) -> str | None:
    found = [(body.find(op), n, op) for n, op in enumerate(_OPERATORS) if op in body]
    return min(found)[2] if found else None


def _braced(body: str, env: Mapping[str, str]) -> str:
    if _BRACED.match(body) is None:
        raise _Invalid
    op = _operator(body)
    if op is None:
        return env.get(body, "")
    name, rest = body.split(op, 1)
    value = env.get(name)
    if op in (":?", "?"):
        if value is None or (op == ":?" and value == ""):
            raise _Missing(name, substitute(rest, env))
        return value
    if op in (":-", "-"):
        if value is None or (op == ":-" and value == ""):
            return substitute(rest, env)
        return value
    if value is not None and (op == "+" or value != ""):
        return substitute(rest, env)
    return value or ""


def substitute(template: str, env: Mapping[str, str]) -> str:
    """One string; raises _Invalid or _Missing (callers add the path)."""
    out, i = [], 0
    while i < len(template):
        char = template[i]
        if char != "$" or i + 1 >= len(template):
            out.append(char)
            i += 1
            continue
        nxt = template[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            end = _closing_brace(template, i + 1)
            if end < 0:
                raise _Invalid
            out.append(_braced(template[i + 2:end], env))
            i = end + 1
        else:
            match = _NAME.match(template, i + 1)
            if match is None:
                out.append(char)
                i += 1
            else:
                out.append(env.get(match.group(0), ""))
                i = match.end()
    return "".join(out)


def interpolate(value: Any, env: Mapping[str, str] | None = None, path: str = "") -> Any:
    """Every string in a loaded Compose document, with Compose's error paths."""
    env = env or {}
    if isinstance(value, str):
        try:
            return substitute(value, env)
        except _Invalid:
            raise InterpolationError(
                f"invalid interpolation format for {path}.\nYou may need to escape any $ "
                f"with another $.\n{value}") from None
        except _Missing as missing:
            raise InterpolationError(f"error while interpolating {path}: {missing.text}") \
                from None
    if isinstance(value, dict):
        return {key: interpolate(item, env, f"{path}.{key}" if path else str(key))
                for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env, f"{path}.[]") for item in value]
    return value
