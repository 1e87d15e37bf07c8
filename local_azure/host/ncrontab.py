"""Six-field NCRONTAB schedules (`{second} {minute} {hour} {day} {month} {day-of-week}`) as timer triggers use.

Fields take `*`, values, lists, ranges and steps, and month / weekday names. As in NCrontab (the
library the runtime uses), day-of-month and day-of-week must both match, unlike Vixie cron's "either".
A TimeSpan (`hh:mm:ss`) schedule, which the runtime accepts on App Service plans, means "every interval".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from local_azure.host.settings import parse_timespan

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (lowest, highest, names) per field, in schedule order.
_FIELDS: tuple[tuple[int, int, tuple[str, ...]], ...] = (
    (0, 59, ()), (0, 59, ()), (0, 23, ()), (1, 31, ()), (1, 12, _MONTHS), (0, 7, _WEEKDAYS),
)
_SEARCH_DAYS = 366 * 5  # Feb 29 on a given weekday can be years away; anything further is "never"


class ScheduleError(ValueError):
    """A schedule the runtime would refuse at startup."""


def _value(text: str, lowest: int, names: tuple[str, ...]) -> int:
    lowered = text.lower()
    if names and lowered[:3] in names and not lowered.isdigit():
        return names.index(lowered[:3]) + (lowest if names is _MONTHS else 0)
    return int(text)


def _parse_field(text: str, lowest: int, highest: int, names: tuple[str, ...]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ScheduleError(f"step must be positive in {part!r}")
        if span == "*":
            start, end = lowest, highest
        elif "-" in span:
            first, _, last = span.partition("-")
            start, end = _value(first, lowest, names), _value(last, lowest, names)
        else:
            start = _value(span, lowest, names)
            end = highest if step_text else start
        if not (lowest <= start <= highest and lowest <= end <= highest) or start > end:
            raise ScheduleError(f"{part!r} is outside {lowest}-{highest}")
        values.update(range(start, end + 1, step))
    if names is _WEEKDAYS:
        values = {value % 7 for value in values}  # 7 is Sunday too
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        fields = expression.split()
        if len(fields) != 6:
            raise ScheduleError(
                f"{expression!r}: a timer schedule has six fields (second minute hour day month weekday)")
        try:
            parsed = [_parse_field(text, *bounds) for text, bounds in zip(fields, _FIELDS, strict=True)]
        except ValueError as error:
            raise ScheduleError(f"{expression!r}: {error}") from error
        return cls(*parsed)

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first occurrence strictly after `moment` (seconds resolution, same time zone)."""
        start = moment.replace(microsecond=0) + dt.timedelta(seconds=1)
        day = start.date()
        for _ in range(_SEARCH_DAYS):
            if day.month in self.months and day.day in self.days and (day.isoweekday() % 7) in self.weekdays:
                today = day == start.date()
                for hour in sorted(h for h in self.hours if not today or h >= start.hour):
                    for minute in sorted(self.minutes):
                        for second in sorted(self.seconds):
                            candidate = dt.datetime.combine(day, dt.time(hour, minute, second), moment.tzinfo)
                            if candidate >= start:
                                return candidate
            day += dt.timedelta(days=1)
        raise ScheduleError("the schedule never occurs")


@dataclass(frozen=True)
class IntervalSchedule:
    interval: dt.timedelta

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        return moment + self.interval


Schedule = CronSchedule | IntervalSchedule


def parse_schedule(expression: str) -> Schedule:
    if ":" in expression and len(expression.split()) == 1:
        seconds = parse_timespan(expression)
        if seconds <= 0:
            raise ScheduleError(f"{expression!r}: interval must be positive")
        return IntervalSchedule(dt.timedelta(seconds=seconds))
    return CronSchedule.parse(expression)
