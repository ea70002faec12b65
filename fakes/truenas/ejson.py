"""TrueNAS's extended JSON (truenas_api_client/ejson.py `JSONEncoder`, which middleware
25.10 encodes with; reference/truenas-api.md §1): datetimes as `{"$date": <epoch ms>}`,
dates as `{"$type": "date", "$value": ...}`, times as `{"$time": "HH:MM:SS"}`, sets
as `{"$set": [...]}`.

The encoder computes `calendar.timegm(dt.timetuple()) * 1000`: whole seconds,
the fraction dropped (floored), so every `$date` a real node sends is a multiple
of 1000. The official client's decoder adds `$date % 1000` milliseconds a second
time, so a fractional `$date` would decode wrong there; whole seconds decode
exactly."""

from __future__ import annotations

import json
import math
from datetime import date, datetime, time
from typing import Any


class Timestamp(float):
    """A virtual-clock Unix timestamp that must go on the wire as `{"$date": ms}`."""


def date_millis(timestamp: float) -> int:
    """What `{"$date": ...}` carries for a Unix timestamp: whole seconds, in ms."""
    return math.floor(timestamp) * 1000


def encode(value: Any) -> Any:
    if isinstance(value, Timestamp):
        return {"$date": date_millis(value)}
    if isinstance(value, datetime):
        return {"$date": date_millis(value.timestamp())}
    if isinstance(value, date):
        return {"$type": "date", "$value": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.strftime("%H:%M:%S")}
    if isinstance(value, (set, frozenset)):
        return {"$set": [encode(v) for v in value]}
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(encode(value))
