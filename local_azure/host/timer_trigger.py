"""Timer triggers: a thread per function that sleeps until the next occurrence and invokes it.

Like the runtime's singleton timer, invocations of one function never overlap: a late run makes the
next occurrence past due (`TimerRequest.past_due`), and missed occurrences collapse into one run.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from azure.functions.timer import TimerRequest

from local_azure.host.invocation import Invoker
from local_azure.host.ncrontab import Schedule, parse_schedule

LOG = logging.getLogger("local_azure.host")


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat()


class TimerListener:
    def __init__(self, invoker: Invoker, stopping: threading.Event) -> None:
        self._invoker = invoker
        self._stopping = stopping
        self.schedule: Schedule = parse_schedule(invoker.spec.schedule)
        self._thread = threading.Thread(target=self._run, name=f"timer-{invoker.spec.name}", daemon=True)
        self._last: dt.datetime | None = None

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        now = dt.datetime.now(dt.UTC)
        if self._invoker.spec.run_on_startup:
            self._fire(scheduled=now, past_due=False)
        due = self.schedule.next_after(now)
        while not self._stopping.wait(max(0.0, (due - dt.datetime.now(dt.UTC)).total_seconds())):
            now = dt.datetime.now(dt.UTC)
            following = self.schedule.next_after(due)
            # Past due: the next occurrence has come already, so at least one was missed.
            self._fire(scheduled=due, past_due=following <= now)
            due = self.schedule.next_after(max(now, due))

    def _fire(self, scheduled: dt.datetime, past_due: bool) -> None:
        next_due = self.schedule.next_after(scheduled)
        request = TimerRequest(
            past_due=past_due,
            schedule_status={
                "Last": _iso(self._last) if self._last else "0001-01-01T00:00:00",
                "Next": _iso(next_due),
                "LastUpdated": _iso(dt.datetime.now(dt.UTC)),
            },
            schedule={"AdjustForDST": True},
        )
        self._last = scheduled
        try:
            self._invoker.invoke(request)
        except Exception:
            LOG.exception("timer function %s failed", self._invoker.spec.name)
