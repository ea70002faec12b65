"""Cron schedules, naming schemas and retention for periodic snapshot tasks.

Facts followed (reference/truenas-api.md §4 Periodic snapshot tasks; pool.snapshottask.create.json):
- schedule `{minute, hour, dom, month, dow, begin, end}`, defaults minute "00" and
  the rest "*", begin "00:00", end "23:59"; a firing happens only when its time of
  day lies within begin..end (a window with begin > end wraps past midnight);
- cron fields: "*", numbers, comma lists, ranges "a-b" and steps "*/N", "a-b/N";
  dow 0-7 with 0 and 7 both Sunday, plus names (sun..sat, jan..dec); when both dom
  and dow are restricted a day matching either fires (cron's rule, as croniter);
- naming schemas are strftime patterns and must contain %Y %m %d %H %M
  (zettarepl's validate_snapshot_naming_schema); a task owns the snapshots whose
  names parse with its schema, and the parsed time is what retention judges
  (zettarepl); lifetime units HOUR, DAY, WEEK, MONTH, YEAR.
Chosen: the fake's wall time is UTC (system.info says timezone "Etc/UTC").
"""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
FIELDS = {"minute": (0, 59, {}), "hour": (0, 23, {}), "dom": (1, 31, {}),
          "month": (1, 12, MONTHS), "dow": (0, 7, DAYS)}
REQUIRED_SCHEMA_FIELDS = ("%Y", "%m", "%d", "%H", "%M")
SCHEMA_FIELDS = {"Y": r"\d{4}", "m": r"\d{2}", "d": r"\d{2}", "H": r"\d{2}",
                 "M": r"\d{2}", "S": r"\d{2}", "z": r"[+-]\d{4}", "s": r"\d+"}
MAX_DAYS_AHEAD = 366 * 8


def parse_field(name: str, text: str) -> set[int]:
    """The values a cron field allows; ValueError if malformed."""
    low, high, names = FIELDS[name]
    values: set[int] = set()
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{name}: empty")
    for part in text.lower().split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdecimal() or int(step_text) < 1:
                raise ValueError(f"{name}: bad step {step_text!r}")
            step = int(step_text)
        if part == "*":
            start, stop = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, stop = _value(name, a, names), _value(name, b, names)
        else:
            start = stop = _value(name, part, names)
            if step != 1:
                stop = high
        if not (low <= start <= high and low <= stop <= high) or start > stop:
            raise ValueError(f"{name}: {part!r} is out of range {low}-{high}")
        values.update(range(start, stop + 1, step))
    if name == "dow" and 7 in values:
        values.discard(7)
        values.add(0)
    return values


def _value(name: str, text: str, names: dict[str, int]) -> int:
    if text in names:
        return names[text]
    if not text.isdecimal():
        raise ValueError(f"{name}: {text!r} is not a number")
    return int(text)


def parse_hhmm(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text or "")
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"{text!r} is not a HH:MM time")
    return int(match[1]), int(match[2])


@dataclass
class Schedule:
    minutes: list[int]
    hours: list[int]
    doms: set[int]
    months: set[int]
    dows: set[int]
    dom_star: bool
    dow_star: bool
    begin: tuple[int, int]
    end: tuple[int, int]

    @classmethod
    def parse(cls, schedule: dict) -> Schedule:
        """ValueError names the field ("hour: ...") when the schedule is malformed."""
        parsed = {name: parse_field(name, schedule.get(name, "*")) for name in FIELDS}
        return cls(
            minutes=sorted(parsed["minute"]), hours=sorted(parsed["hour"]),
            doms=parsed["dom"], months=parsed["month"], dows=parsed["dow"],
            dom_star=schedule.get("dom", "*") == "*", dow_star=schedule.get("dow", "*") == "*",
            begin=parse_hhmm(schedule.get("begin", "00:00")),
            end=parse_hhmm(schedule.get("end", "23:59")),
        )

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        dom_ok = day.day in self.doms
        dow_ok = (day.isoweekday() % 7) in self.dows
        if self.dom_star or self.dow_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok

    def _in_window(self, hour: int, minute: int) -> bool:
        now = (hour, minute)
        if self.begin <= self.end:
            return self.begin <= now <= self.end
        return now >= self.begin or now <= self.end

    def next_after(self, timestamp: float) -> float | None:
        """The first firing strictly after `timestamp` (Unix seconds), or None."""
        after = datetime.fromtimestamp(timestamp, UTC)
        day = after.replace(hour=0, minute=0, second=0, microsecond=0)
        for _ in range(MAX_DAYS_AHEAD):
            if self._day_matches(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        candidate = day.replace(hour=hour, minute=minute)
                        if candidate > after and self._in_window(hour, minute):
                            return candidate.timestamp()
            day += timedelta(days=1)
        return None


def schema_problem(schema: str) -> str | None:
    missing = [f for f in REQUIRED_SCHEMA_FIELDS if f not in schema]
    if missing:
        return f"naming_schema must contain {', '.join(missing)}"
    if "/" in schema or "@" in schema:
        return "naming_schema must not contain '/' or '@'"
    return None


def format_name(schema: str, timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime(schema)


@functools.lru_cache(maxsize=256)
def _schema_regex(schema: str) -> re.Pattern[str]:
    pattern, i = "", 0
    while i < len(schema):
        if schema[i] == "%" and i + 1 < len(schema):
            code = schema[i + 1]
            if code == "%":
                pattern += "%"
            else:
                pattern += f"(?:{SCHEMA_FIELDS.get(code, '.+?')})"
            i += 2
        else:
            pattern += re.escape(schema[i])
            i += 1
    return re.compile(f"^{pattern}$")


# Retention parses every snapshot name of the dataset on every run: cached (pure).
@functools.lru_cache(maxsize=65536)
def parse_name(schema: str, name: str) -> float | None:
    """The time a snapshot name encodes under `schema`, or None if it does not match."""
    match = _schema_regex(schema).match(name)
    if not match:
        return None
    try:
        moment = datetime.strptime(name, schema)
    except (ValueError, re.error):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def lifetime_start(fired_at: float, value: int, unit: str) -> float:
    """The oldest creation time a snapshot may have and still be kept."""
    moment = datetime.fromtimestamp(fired_at, UTC)
    if unit in ("HOUR", "DAY", "WEEK"):
        seconds = {"HOUR": 3600, "DAY": 86400, "WEEK": 7 * 86400}[unit]
        return fired_at - value * seconds
    months = value * (12 if unit == "YEAR" else 1)
    year, month = divmod(moment.month - 1 - months, 12)
    year += moment.year
    month += 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day).timestamp()
