"""TrueNAS query filters and options, shared by every `*.query` method.

Facts followed (reference/truenas-api.md §4; QueryOptions in pool.dataset.query.json;
middleware's utils/filter_list.py and api/base/validators/filter_ops.py, read for
their semantics):
- filters are `[name, op, value]` triples ANDed together, or `["OR", [branch, ...]]`
  where a branch is a triple or a list of triples (ANDed); ops are
  `= != > >= < <= ~ in nin rin rnin ^ !^ $ !$`, each also with a `C` prefix for
  case-insensitive; `~` is re.match; `in`/`nin` test the field in the value,
  `rin`/`rnin` the value in the field; `^`/`$` and negations are false on null;
- names are dotted paths (`topology.data.0.type`, `\\.` escapes a dot); a list
  met on the way takes an index or `*` (any element); a missing key never matches;
- a name ending `.$date` compares the datetime before it with an ISO-8601 string (the
  other operand), and only with `= != > >= < <=`: anything else is refused at
  validation (utils/filter_list.py @ af2c5ab, `validate_filters`, TIMESTAMP_DESIGNATOR);
  what the wire shows as `{"$date": ms}` is never what a filter compares;
- options `{get, count, limit, offset, order_by, select, extra}`, applied in
  middleware's order: filter (and select), count, order_by ("-" reverses,
  "nulls_first:"/"nulls_last:" place nulls), get, offset, limit (at most 10000);
- `get` with no match raises MatchNotFound, an IndexError: -32001, errno EINVAL,
  reason "MatchNotFound()" (repr: its str() is empty), no "[EINVAL]" prefix.
"""

from __future__ import annotations

import datetime
import errno
import operator
import re
from typing import Any

from fakes.truenas.ejson import Timestamp
from fakes.truenas.errors import CallError, MatchNotFound, ValidationErrors
from fakes.truenas.methods.params import (
    EMPTY,
    AnyValue,
    Bool,
    Field,
    Int,
    List,
    Obj,
    Str,
    Union,
)

MAX_LIMIT = 10000
NULLS_FIRST, NULLS_LAST = "nulls_first:", "nulls_last:"
TIMESTAMP_DESIGNATOR = ".$date"
TIMESTAMP_OPS = ("=", "!=", ">", ">=", "<", "<=")
_UNDEFINED: Any = object()

QUERY_OPTIONS = Obj({
    "count": Field(Bool(), False),
    "extra": Field(Obj(extra=True), lambda: {}),
    "force_sql_filters": Field(Bool(), False),
    "get": Field(Bool(), False),
    "limit": Field(Int(minimum=0), 0),
    "offset": Field(Int(minimum=0), 0),
    "order_by": Field(List(Str()), lambda: []),
    "select": Field(List(Union([Str(), List(Str())])), lambda: []),
})
QUERY_ARGS = [("filters", List(AnyValue()), lambda: []), ("options", QUERY_OPTIONS, EMPTY)]


def _none_false(fn):
    return lambda x, y: False if x is None else fn(x, y)


OPS = {
    "=": operator.eq, "!=": operator.ne, ">": operator.gt, ">=": operator.ge,
    "<": operator.lt, "<=": operator.le,
    "~": lambda x, y: re.match(y, x or "") is not None,
    "in": lambda x, y: x in y,
    "nin": _none_false(lambda x, y: x not in y),
    "rin": _none_false(lambda x, y: y in x),
    "rnin": _none_false(lambda x, y: y not in x),
    "^": _none_false(lambda x, y: x.startswith(y)),
    "!^": _none_false(lambda x, y: not x.startswith(y)),
    "$": _none_false(lambda x, y: x.endswith(y)),
    "!$": _none_false(lambda x, y: not x.endswith(y)),
}


def split_path(path: str) -> list[str]:
    parts, current, i = [], "", 0
    while i < len(path):
        if path[i] == "\\" and i + 1 < len(path) and path[i + 1] == ".":
            current += "."
            i += 2
            continue
        if path[i] == ".":
            parts.append(current)
            current = ""
        else:
            current += path[i]
        i += 1
    parts.append(current)
    return parts


def lookup(entry: Any, parts: list[str]) -> tuple[Any, list[str] | None]:
    """(value, None), or (list, remaining parts) at a `*` wildcard."""
    current = entry
    for i, part in enumerate(parts):
        if isinstance(current, dict):
            current = current.get(part, _UNDEFINED)
            if current is _UNDEFINED:
                return _UNDEFINED, None
        elif isinstance(current, (list, tuple)):
            if part == "*":
                return current, parts[i + 1:]
            if not part.isdecimal():
                raise CallError(f"{part}: must be array index or wildcard character",
                                errno.EINVAL)
            index = int(part)
            current = current[index] if index < len(current) else None
        else:
            return _UNDEFINED, None
    return current, None


def get_path(entry: Any, path: str) -> Any:
    value, _ = lookup(entry, split_path(path))
    return None if value is _UNDEFINED else value


def _casefold(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, (list, tuple)):
        return [v.casefold() if isinstance(v, str) else v for v in value]
    return value


def _iso_datetime(text: str) -> datetime.datetime:
    parsed = datetime.datetime.fromisoformat(text)
    # Unknown: whether middleware's own datetimes are aware, so whether a naive string
    # compares at all there. The fake reads a naive string as UTC (its clock's zone).
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _match_one(entry: Any, parts: list[str], op: str, value: Any) -> bool:
    if parts[-1] == "$date":
        # `field.$date`: the datetime stored at `field` against an ISO-8601 operand.
        found, rest = lookup(entry, parts[:-1])
        if rest is not None:
            return any(_match_one(item, [*rest, "$date"], op, value) for item in found)
        if not isinstance(found, float):
            return False
        found = datetime.datetime.fromtimestamp(found, datetime.UTC)
        return bool(OPS[op](found, _iso_datetime(value)))
    found, rest = lookup(entry, parts)
    if found is _UNDEFINED:
        return False
    if rest is not None:
        return any(_match_one(item, rest, op, value) for item in found)
    fn = OPS[op[1:] if op.startswith("C") else op]
    if op.startswith("C"):
        found, value = _casefold(found), _casefold(value)
    try:
        return bool(fn(found, value))
    except (TypeError, AttributeError, re.error):
        return False


def _valid_op(op: Any) -> bool:
    return isinstance(op, str) and (op in OPS or (op.startswith("C") and op[1:] in OPS))


def _check_timestamp_filter(f: list) -> None:
    if not f[0].endswith(TIMESTAMP_DESIGNATOR):
        return
    if f[1] not in TIMESTAMP_OPS:
        raise ValidationErrors([("filters", f"{f[1]}: invalid timestamp operation.",
                                 errno.EINVAL)])
    try:
        _iso_datetime(f[2])
    except (TypeError, ValueError):
        raise ValidationErrors([("filters", f"{f[2]}: must be an ISO-8601 formatted "
                                 "timestamp string", errno.EINVAL)]) from None


def check_filters(filters: Any, depth: int = 0) -> None:
    if depth > 10:
        raise ValidationErrors([("filters", "Filters are nested too deeply", errno.EINVAL)])
    if not isinstance(filters, list):
        raise ValidationErrors([("filters", "Filters must be a list", errno.EINVAL)])
    for f in filters:
        if isinstance(f, list) and len(f) == 2 and f[0] == "OR":
            if not isinstance(f[1], list):
                raise ValidationErrors([("filters", "OR requires a list of filters",
                                         errno.EINVAL)])
            for branch in f[1]:
                is_group = isinstance(branch, list) and branch and isinstance(branch[0], list)
                check_filters(branch if is_group else [branch], depth + 1)
        elif isinstance(f, list) and len(f) == 3 and isinstance(f[0], str):
            if not _valid_op(f[1]):
                raise ValidationErrors([("filters", f"{f[1]!r}: invalid filter operation",
                                         errno.EINVAL)])
            _check_timestamp_filter(f)
        else:
            raise ValidationErrors([("filters", f"{f!r}: invalid filter", errno.EINVAL)])


def matches(entry: Any, the_filter: list) -> bool:
    if len(the_filter) == 2:
        for branch in the_filter[1]:
            if isinstance(branch, list) and branch and isinstance(branch[0], list):
                hit = all(matches(entry, f) for f in branch)
            else:
                hit = matches(entry, branch)
            if hit:
                return True
        return False
    name, op, value = the_filter
    return _match_one(entry, split_path(name), op, value)


def select(entries: list[dict], fields: list) -> list[dict]:
    result = []
    for entry in entries:
        picked: dict = {}
        for spec in fields:
            source, alias = (spec[0], spec[1]) if isinstance(spec, list) else (spec, None)
            parts = split_path(source)
            value: Any = entry
            for part in parts:
                value = value.get(part, _UNDEFINED) if isinstance(value, dict) else _UNDEFINED
                if value is _UNDEFINED:
                    break
            if value is _UNDEFINED:
                continue
            if alias is not None:
                picked[alias] = value
                continue
            target = picked
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            target[parts[-1]] = value
        result.append(picked)
    return result


def _sort_key(value: Any) -> Any:
    return float(value) if isinstance(value, Timestamp) else value


def order(entries: list[dict], order_by: list[str]) -> list[dict]:
    for spec in order_by:
        nulls = None
        if spec.startswith(NULLS_FIRST):
            nulls, spec = "first", spec[len(NULLS_FIRST):]
        elif spec.startswith(NULLS_LAST):
            nulls, spec = "last", spec[len(NULLS_LAST):]
        reverse = spec.startswith("-")
        name = spec[1:] if reverse else spec
        if nulls is None:
            try:
                entries = sorted(entries, key=lambda e: _sort_key(get_path(e, name)),
                                 reverse=reverse)
            except TypeError:
                raise CallError(f"Cannot sort by {spec!r} because the field contains null "
                                f"values. Please use \"nulls_first:{spec}\" or "
                                f"\"nulls_last:{spec}\" to specify null placement.",
                                errno.EINVAL) from None
            continue
        empty = [e for e in entries if get_path(e, name) is None]
        full = sorted((e for e in entries if get_path(e, name) is not None),
                      key=lambda e: _sort_key(get_path(e, name)), reverse=reverse)
        entries = empty + full if nulls == "first" else full + empty
    return entries


def match_not_found() -> MatchNotFound:
    return MatchNotFound()


def filter_list(entries: list[dict], filters: list | None = None,
                options: dict | None = None) -> list[dict] | dict | int:
    filters = filters or []
    options = options or {}
    check_filters(filters)
    if options.get("limit", 0) > MAX_LIMIT:
        raise CallError(f"Options limit must be between 1 and {MAX_LIMIT}", errno.EINVAL)
    result = [e for e in entries if all(matches(e, f) for f in filters)]
    if options.get("select"):
        result = select(result, options["select"])
    if options.get("count"):
        return len(result)
    result = order(result, options.get("order_by") or [])
    if options.get("get"):
        if not result:
            raise match_not_found()
        return result[0]
    if options.get("offset"):
        result = result[options["offset"]:]
    if options.get("limit"):
        result = result[:options["limit"]]
    return result
