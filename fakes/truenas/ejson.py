"""TrueNAS's extended JSON (truenas_api_client/ejson.py, reference/truenas-api.md §1):
datetimes as `{"$date": <epoch ms>}`, dates as `{"$type": "date", "$value": ...}`,
times as `{"$time": "HH:MM:SS"}`, sets as `{"$set": [...]}`."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from typing import Any


class Timestamp(float):
    """A virtual-clock Unix timestamp that must go on the wire as `{"$date": ms}`."""


def encode(value: Any) -> Any:
    if isinstance(value, Timestamp):
        return {"$date": int(value * 1000)}
    if isinstance(value, datetime):
        return {"$date": int(value.timestamp() * 1000)}
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
