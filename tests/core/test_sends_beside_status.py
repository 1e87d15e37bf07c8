"""When the intake may send an alert while its status row is written: only while the queue's duplicate
detection would drop the send of an alert posted before."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from shared.core.alert_status import CLOCK_SKEW, sends_beside_status

WINDOW = dt.timedelta(minutes=10)
NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


def test_an_alert_that_just_fired_is_sent_beside_its_status() -> None:
    assert sends_beside_status(NOW - dt.timedelta(seconds=3), NOW, WINDOW)


def test_an_alert_that_fired_half_a_window_ago_is_sent_beside_its_status() -> None:
    assert sends_beside_status(NOW - WINDOW / 2, NOW, WINDOW)


def test_an_alert_older_than_half_a_window_is_written_first() -> None:
    assert not sends_beside_status(NOW - WINDOW / 2 - dt.timedelta(seconds=1), NOW, WINDOW)


def test_a_resolution_of_a_firing_hours_ago_is_written_first() -> None:
    assert not sends_beside_status(NOW - dt.timedelta(hours=3), NOW, WINDOW)


def test_an_alert_fired_ahead_of_our_clock_within_the_skew_is_sent_beside_its_status() -> None:
    assert sends_beside_status(NOW + CLOCK_SKEW, NOW, WINDOW)


def test_an_alert_fired_further_ahead_than_the_skew_is_written_first() -> None:
    assert not sends_beside_status(NOW + CLOCK_SKEW + dt.timedelta(seconds=1), NOW, WINDOW)


def test_without_duplicate_detection_nothing_is_sent_beside_its_status() -> None:
    assert not sends_beside_status(NOW, NOW, dt.timedelta(0))


def test_a_window_no_longer_than_twice_the_skew_sends_nothing_beside_its_status() -> None:
    assert not sends_beside_status(NOW, NOW, 2 * CLOCK_SKEW)


@given(fired_offset=st.integers(-3_600, 3_600), first=st.integers(0, 7_200), gap=st.integers(0, 7_200))
def test_two_posts_of_one_alert_sent_beside_their_status_are_within_the_window(
        fired_offset: int, first: int, gap: int) -> None:
    """The queue drops the second as a duplicate: what the status row would have stopped."""
    fired = NOW + dt.timedelta(seconds=fired_offset)
    one, two = NOW + dt.timedelta(seconds=first), NOW + dt.timedelta(seconds=first + gap)
    if sends_beside_status(fired, one, WINDOW) and sends_beside_status(fired, two, WINDOW):
        assert two - one < WINDOW


@given(fired_offset=st.integers(-3_600, 3_600), first=st.integers(0, 7_200), gap=st.integers(0, 7_200))
def test_a_post_written_first_never_comes_before_one_sent_beside_unless_made_before_the_alert_fired(
        fired_offset: int, first: int, gap: int) -> None:
    """A post written first stops a repeat itself; one made before the skew allows is the case not covered."""
    fired = NOW + dt.timedelta(seconds=fired_offset)
    one, two = NOW + dt.timedelta(seconds=first), NOW + dt.timedelta(seconds=first + gap)
    if not sends_beside_status(fired, one, WINDOW) and sends_beside_status(fired, two, WINDOW):
        assert one < fired - CLOCK_SKEW
