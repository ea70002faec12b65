"""Small helpers every namespace's handlers share."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fakes.truenas import events
from fakes.truenas.errors import InstanceNotFound
from fakes.truenas.methods.params import EMPTY, MISSING, parse
from fakes.truenas.methods.query import QUERY_ARGS, QUERY_OPTIONS, filter_list

if TYPE_CHECKING:
    from fakes.truenas.jobs import Job
    from fakes.truenas.node import CallContext, TrueNASNode


def submit(node: TrueNASNode, ctx: CallContext, method: str, params: list,
           start: Callable[[Job], None], **options: Any) -> Job:
    """Every job method goes through the node's JobManager, tagged with the request id."""
    return node.jobs.submit(method, params, start, message_id=ctx.message_id, **options)


def instance_not_found(what: str, instance_id: Any) -> InstanceNotFound:
    """`get_instance` misses raise InstanceNotFound: one ValidationError with no
    attribute and errno ENOENT (service_exception.py), so its reason is
    `str(ValidationError)`, "[ENOENT] None: <message>", with no trailing newline
    (that newline is ValidationErrors.__str__'s, one per error)."""
    return InstanceNotFound(f"{what} {instance_id} does not exist")


ACTION_EVENTS = {"create": "added", "update": "changed", "delete": "removed"}


def crud_event(node: TrueNASNode, namespace: str, action: str, result: Any,
               instance_id: Any = None) -> None:
    """What CRUDService's wrapper sends after do_create/do_update/do_delete when its
    Config keeps `event_send` (service/crud_service.py `_get_crud_wrapper_func`):
    `<namespace>.query` ADDED/CHANGED with `fields` = the returned entry, REMOVED
    with the id only; nothing when the result is not an entry with an `id`."""
    if action != "delete" and not (isinstance(result, dict) and "id" in result):
        return
    fields = result if isinstance(result, dict) else None
    events.publish(node, f"{namespace}.query", ACTION_EVENTS[action],
                   id=instance_id if instance_id is not None else result["id"], fields=fields)


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
