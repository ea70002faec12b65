"""TrueNAS's extended JSON (reference/truenas-api.md §1): datetimes travel as {"$date": epoch ms},
dates as {"$type": "date", "$value": "YYYY-MM-DD"}, times as {"$time": "HH:MM:SS"},
sets as {"$set": [...]}. Decoding turns them into Python values; encoding does the
reverse for parameters we send."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Any

from infra.secrets import Secret


def _decode_object(obj: dict) -> Any:
    if len(obj) == 1:
        if "$date" in obj and isinstance(obj["$date"], int | float):
            return datetime.fromtimestamp(obj["$date"] / 1000, tz=UTC)
        if "$time" in obj and isinstance(obj["$time"], str):
            return time.fromisoformat(obj["$time"])
        if "$set" in obj and isinstance(obj["$set"], list):
            try:
                return set(obj["$set"])
            except TypeError:  # members that cannot be hashed stay a list
                return obj["$set"]
    if len(obj) == 2 and obj.get("$type") == "date" and isinstance(obj.get("$value"), str):
        return date.fromisoformat(obj["$value"])
    return obj


def _encode_value(value: Any) -> Any:
    if isinstance(value, Secret):
        # revealed only here, in the message itself: a traceback that shows a call's
        # arguments (pytest's long style does) shows Secret('********')
        return value.reveal()
    if isinstance(value, datetime):  # before date: a datetime is a date too
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return {"$date": int(value.timestamp() * 1000)}
    if isinstance(value, date):
        return {"$type": "date", "$value": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat()}
    if isinstance(value, set | frozenset):
        return {"$set": list(value)}
    raise TypeError(f"{type(value).__name__} cannot be sent to TrueNAS")


def loads(text: str | bytes) -> Any:
    return json.loads(text, object_hook=_decode_object)


def dumps(value: Any) -> str:
    return json.dumps(value, default=_encode_value)
