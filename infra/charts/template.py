"""`${name}` placeholders, filled by a substitution this project controls.

Why not Jinja (what truenas/apps uses, reference/truenas-api.md §5): a text template renders
before YAML is parsed, so a setting holding a newline or `: ` could add keys to the
project (injection), an undefined name renders as an empty string unless one
remembers StrictUndefined, and loops and conditionals in a template cannot be
checked before they run. Here the Compose template is parsed as YAML first and the
placeholders are filled inside its string scalars: a value can never change the
document's structure, every name must be declared (an unknown one is an error
naming the file and the YAML location), and a scalar that is exactly `${name}`
takes the value's own type (an integer stays an integer). The syntax is Compose's
own interpolation syntax, so templates read like Compose files.

Names are dotted: `settings.<name>`, `secrets.<name>`, `image.<name>`, `site.pool`,
`site.name`, `site.domain`, `app.name`, `app.dataset`, `app.path`.

`$$` is a literal dollar. In a Compose project it stays `$$` (Compose's own escape,
so the engine does not interpolate it) and every `$` in a substituted value is
doubled for the same reason; in a file (`[[files]]`) `$$` becomes `$` and values go
in as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<name>[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*)\}"
                         r"|(?P<invalid>\{[^}]*\}?|[A-Za-z_]|))")
WHOLE = re.compile(r"^\$\{(?P<name>[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*)\}$")


class TemplateError(ValueError):
    """A placeholder that is malformed or not declared; `where` names its place."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        super().__init__(f"{where}: {message}")


def names_in(text: str, where: str) -> set[str]:
    """The placeholder names `text` uses; TemplateError for a malformed one."""
    found = set()
    for match in PLACEHOLDER.finditer(text):
        if match["invalid"] is not None:
            raise TemplateError(where, f"malformed placeholder near {match.group(0)!r}: write "
                                       "${name} (lowercase, dotted) or $$ for a dollar")
        if match["name"]:
            found.add(match["name"])
    return found


def substitute(text: str, values: Mapping[str, Any], where: str, *, compose: bool) -> str:
    def replace(match: re.Match) -> str:
        if match["escaped"]:
            return "$$" if compose else "$"
        name = match["name"]
        if name is None:
            raise TemplateError(where, f"malformed placeholder near {match.group(0)!r}")
        if name not in values:
            raise TemplateError(where, f"unknown placeholder ${{{name}}}")
        text = _text(values[name])
        return text.replace("$", "$$") if compose else text

    return PLACEHOLDER.sub(replace, text)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def walk_strings(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every string scalar of a parsed YAML tree (keys too), with its location."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            if isinstance(key, str):
                yield here + " (key)", key
            yield from walk_strings(value, here)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk_strings(value, f"{where}[{index}]")
    elif isinstance(node, str):
        yield where, node


def fill_tree(node: Any, values: Mapping[str, Any], where: str = "") -> Any:
    """A copy of a parsed Compose template with its placeholders filled."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            new_key = _fill_scalar(key, values, here) if isinstance(key, str) else key
            out[new_key] = fill_tree(value, values, here)
        return out
    if isinstance(node, list):
        return [fill_tree(value, values, f"{where}[{i}]") for i, value in enumerate(node)]
    if isinstance(node, str):
        return _fill_scalar(node, values, where)
    return node


def _fill_scalar(text: str, values: Mapping[str, Any], where: str) -> Any:
    whole = WHOLE.match(text)
    if whole is not None:
        name = whole["name"]
        if name not in values:
            raise TemplateError(where, f"unknown placeholder ${{{name}}}")
        value = values[name]
        return value.replace("$", "$$") if isinstance(value, str) else value
    return substitute(text, values, where, compose=True)


def check_names(used: set[str], known: Callable[[str], bool], where: str) -> None:
    for name in sorted(used):
        if not known(name):
            raise TemplateError(where, f"unknown placeholder ${{{name}}}")
