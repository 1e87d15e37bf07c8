"""Timer triggers and the six-field NCRONTAB schedules they take."""

from __future__ import annotations

import datetime as dt

import pytest

from local_azure.host.ncrontab import CronSchedule, IntervalSchedule, ScheduleError, parse_schedule
from tests.local_azure.sample_app.harness import running_host

pytestmark = pytest.mark.timeout(60)
NOON = dt.datetime(2026, 11, 24, 12, 0, 0, tzinfo=dt.UTC)  # a Tuesday


def test_every_thirty_seconds() -> None:
    assert parse_schedule("*/30 * * * * *").next_after(NOON) == NOON + dt.timedelta(seconds=30)


def test_the_next_occurrence_is_strictly_after_the_moment() -> None:
    assert parse_schedule("0 0 12 * * *").next_after(NOON) == NOON + dt.timedelta(days=1)


def test_lists_and_ranges() -> None:
    schedule = parse_schedule("0 5,10-12 * * * *")

    assert schedule.next_after(NOON) == NOON.replace(minute=5)
    assert schedule.next_after(NOON.replace(minute=10)) == NOON.replace(minute=11)
    assert schedule.next_after(NOON.replace(minute=12)) == NOON.replace(hour=13, minute=5)


def test_a_stepped_range() -> None:
    assert parse_schedule("0 0 9-17/4 * * *").hours == frozenset({9, 13, 17})  # type: ignore[union-attr]


def test_weekday_names_and_numbers() -> None:
    monday_nine = parse_schedule("0 0 9 * * Mon").next_after(NOON)

    assert monday_nine == dt.datetime(2026, 11, 30, 9, 0, 0, tzinfo=dt.UTC)
    assert parse_schedule("0 0 9 * * 1").next_after(NOON) == monday_nine


def test_seven_is_sunday() -> None:
    assert parse_schedule("0 0 0 * * 7").next_after(NOON).isoweekday() == 7


def test_day_of_month_and_weekday_must_both_match_as_in_ncrontab() -> None:
    # The 13th that is a Friday, not every 13th and every Friday.
    assert parse_schedule("0 0 0 13 * Fri").next_after(NOON) == dt.datetime(2027, 8, 13, tzinfo=dt.UTC)


def test_month_names() -> None:
    assert parse_schedule("0 0 0 1 Jan *").next_after(NOON) == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def test_a_timespan_schedule_is_an_interval() -> None:
    assert parse_schedule("00:05:00") == IntervalSchedule(dt.timedelta(minutes=5))


@pytest.mark.parametrize("expression", ["* * * * *", "61 * * * * *", "*/0 * * * * *", "0 0 25 * * *", "a b c d e f"])
def test_a_schedule_the_runtime_refuses_is_refused(expression: str) -> None:
    with pytest.raises(ScheduleError):
        CronSchedule.parse(expression)


def test_a_timer_function_fires_on_its_schedule() -> None:
    with running_host({"SAMPLE_SERVICEBUS": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v"}):
        from sample_function_app import TICKED, TICKS  # imported by the host from the sample app's directory
        TICKED.clear()
        TICKS.clear()
        fired = TICKED.wait(10)

    assert fired
    assert TICKS[0].past_due is False
    assert "Next" in TICKS[0].schedule_status
