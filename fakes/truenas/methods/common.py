"""Small helpers every namespace's handlers share."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fakes.truenas.errors import ValidationErrors
from fakes.truenas.methods.params import EMPTY, MISSING, parse
from fakes.truenas.methods.query import QUERY_ARGS, QUERY_OPTIONS, filter_list

if TYPE_CHECKING:
    from fakes.truenas.jobs import Job
    from fakes.truenas.node import CallContext, TrueNASNode


def submit(node: TrueNASNode, ctx: CallContext, method: str, params: list,
           start: Callable[[Job], None], **options: Any) -> Job:
    """Every job method goes through the node's JobManager, tagged with the request id."""
    return node.jobs.submit(method, params, start, message_id=ctx.message_id, **options)


def instance_not_found(what: str, instance_id: Any) -> ValidationErrors:
    """`get_instance` misses raise InstanceNotFound: a ValidationError with no
    attribute and errno ENOENT (service_exception.py)."""
    return ValidationErrors([(None, f"{what} {instance_id} does not exist", errno.ENOENT)])


def get_instance_of(entries: list[dict], key: str, value: Any, what: str,
                 options: dict | None = None) -> dict:
    found = filter_list(entries, [[key, "=", value]], {**(options or {}), "get": False})
    if not found:
        raise instance_not_found(what, value)
    return found[0]


EntriesFn = Callable[["TrueNASNode", dict], list[dict]]


def query_methods(entries: EntriesFn, key: str, id_type: Any, what: str) -> tuple:
    """`<namespace>.query (filters, options)` and `<namespace>.get_instance (id, options)`
    over one list of entries; `entries(node, options["extra"])` builds it."""

    def query(node: TrueNASNode, params: list, ctx: CallContext) -> Any:
        filters, options = parse(params, QUERY_ARGS)
        return filter_list(entries(node, options["extra"]), filters, options)

    def get_instance(node: TrueNASNode, params: list, ctx: CallContext) -> dict:
        value, options = parse(params, [("id", id_type, MISSING),
                                        ("options", QUERY_OPTIONS, EMPTY)])
        return get_instance_of(entries(node, options["extra"]), key, value, what, options)

    return query, get_instance
