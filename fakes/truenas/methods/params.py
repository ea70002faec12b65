"""Checking positional JSON-RPC params the way middleware's pydantic models do.

Facts followed (reference/truenas-api.md §3; INDEX.md of truenas-schemas): argument models
are strict (no coercion: 1 is not a string, "1" is not an integer, 0 is not a
boolean) and forbid extra keys; a failed check is a ValidationErrors (-32602) whose
attribute is the argument's path ("data.topology.data.0.type", "options.disk");
messages are pydantic's ("Field required", "Input should be a valid string",
"Extra inputs are not permitted", "Input should be 'A', 'B' or 'C'").
Semantic checks made by the models afterwards use the plugins' own names
("pool_create.name").
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fakes.truenas.errors import ValidationErrors

MISSING: Any = object()     # a required argument or key
NOT_GIVEN: Any = object()   # optional, and left out of the result when absent
EMPTY: Any = object()       # optional object: absent means {} with its defaults


class Spec:
    nullable = False

    def check(self, value: Any, path: str, errors: ValidationErrors) -> Any:
        if value is None and self.nullable:
            return None
        return self._check(value, path, errors)

    def _check(self, value: Any, path: str, errors: ValidationErrors) -> Any:
        raise NotImplementedError


def _literal_message(options: Sequence[Any]) -> str:
    shown = [repr(o) if isinstance(o, str) else str(o) for o in options]
    if len(shown) == 1:
        return f"Input should be {shown[0]}"
    return f"Input should be {', '.join(shown[:-1])} or {shown[-1]}"


@dataclass
class Str(Spec):
    options: Sequence[str] | None = None
    nullable: bool = False
    min_length: int = 0

    def _check(self, value, path, errors):
        if not isinstance(value, str):
            errors.add(path, "Input should be a valid string")
        elif self.options is not None and value not in self.options:
            errors.add(path, _literal_message(self.options))
        elif len(value) < self.min_length:
            errors.add(path, f"String should have at least {self.min_length} character"
                       + ("s" if self.min_length != 1 else ""))
        return value


@dataclass
class Int(Spec):
    nullable: bool = False
    minimum: int | None = None

    def _check(self, value, path, errors):
        if not isinstance(value, int) or isinstance(value, bool):
            errors.add(path, "Input should be a valid integer")
        elif self.minimum is not None and value < self.minimum:
            errors.add(path, f"Input should be greater than or equal to {self.minimum}")
        return value


@dataclass
class Bool(Spec):
    nullable: bool = False

    def _check(self, value, path, errors):
        if not isinstance(value, bool):
            errors.add(path, "Input should be a valid boolean")
        return value


@dataclass
class Union(Spec):
    """A value that may be any of a few plain specs (first that fits wins)."""

    choices: Sequence[Spec] = ()
    nullable: bool = False

    def _check(self, value, path, errors):
        for choice in self.choices:
            trial = ValidationErrors()
            result = choice.check(value, path, trial)
            if not trial.errors:
                return result
        errors.add(path, "Input does not match any of the accepted types")
        return value


@dataclass
class AnyValue(Spec):
    nullable: bool = True

    def _check(self, value, path, errors):
        return value


@dataclass
class List(Spec):
    item: Spec = field(default_factory=AnyValue)
    nullable: bool = False

    def _check(self, value, path, errors):
        if not isinstance(value, list):
            errors.add(path, "Input should be a valid list")
            return value
        return [self.item.check(v, f"{path}.{i}", errors) for i, v in enumerate(value)]


@dataclass
class Field:
    spec: Spec
    default: Any = MISSING


def _default(spec: Spec, default: Any, where: str, errors: ValidationErrors) -> Any:
    if default is EMPTY:
        return spec.check({}, where, errors)
    return default() if callable(default) else default


@dataclass
class Obj(Spec):
    fields: dict[str, Field] = field(default_factory=dict)
    extra: bool = False          # True: keys beyond `fields` are allowed and kept
    nullable: bool = False

    def _check(self, value, path, errors):
        if not isinstance(value, dict):
            errors.add(path, "Input should be a valid dictionary")
            return value
        result = {}
        for name, spec_field in self.fields.items():
            where = f"{path}.{name}" if path else name
            if name in value:
                result[name] = spec_field.spec.check(value[name], where, errors)
            elif spec_field.default is MISSING:
                errors.add(where, "Field required")
            elif spec_field.default is not NOT_GIVEN:
                result[name] = _default(spec_field.spec, spec_field.default, where, errors)
        for name in value:
            if name not in self.fields:
                if self.extra:
                    result[name] = value[name]
                else:
                    errors.add(f"{path}.{name}" if path else name,
                               "Extra inputs are not permitted")
        return result


def parse(params: Any, args: list[tuple[str, Spec, Any]]) -> list[Any]:
    """Positional params -> checked values; `args` is [(name, spec, default)].

    A default of MISSING makes the argument required."""
    if params is None:
        params = []
    if not isinstance(params, list):
        raise ValidationErrors([("params", "Input should be a valid list", errno.EINVAL)])
    if len(params) > len(args):
        raise ValidationErrors([("params", f"Too many arguments (expected {len(args)}, "
                                 f"found {len(params)})", errno.EINVAL)])
    errors = ValidationErrors()
    values = []
    for i, (name, spec, default) in enumerate(args):
        if i < len(params):
            values.append(spec.check(params[i], name, errors))
        elif default is MISSING:
            errors.add(name, "Field required")
            values.append(None)
        else:
            values.append(_default(spec, default, name, errors))
    errors.check()
    return values
