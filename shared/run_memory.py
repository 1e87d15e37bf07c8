"""A per-process memory of the runs the plan stage has just created or read, so that a repeat firing of an
alert whose run takes repeats is recorded in one request (`RunStore.record_join_if_open`) without reading
the run again.

What is remembered is the run as written or read: its id, the alert keys it started with (`alert_ids`: a
redelivery of a firing the run holds is a duplicate of it, never a join line), its state and plan version
(with the correlation's `opened_at`, enough for `joins_open_run`). A stale memory is safe: the one-request
join needs the run's marker, which the change that ends the run deletes in its own transaction, so a
repeat after the run ended is told NOT_OPEN and decided on the run as read, as without the memory.

One narrow window is left, and it is benign: two different firings racing to start one run, the loser's
firing is added to the run's `alert_ids` by a later commit (gates/plan.py `_start`); a host that
remembered the run before that commit, given a redelivery of the loser's firing, records it as a join
line ("joined") where a read would have said "duplicate". Nothing is lost or started twice: the firing
is one more audit line on the run it belongs to.

Bounded (least recently used goes first) and without a time limit: the cooldown bounds how long a
remembered run can take repeats, and the marker, whether it still does.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from shared.core.model import Run


@dataclass(frozen=True)
class Remembered:
    run: Run
    # False once the marker was found missing on a run that still takes repeats as read: a run written
    # before runs had a marker. Its repeats go straight to the read path instead of trying the marker first.
    marked: bool = True


class RememberedRuns:
    def __init__(self, capacity: int = 2_000) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[str, Remembered] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, run_id: str) -> Remembered | None:
        with self._lock:
            remembered = self._seen.get(run_id)
            if remembered is not None:
                self._seen.move_to_end(run_id)
            return remembered

    def ended(self, run: Run) -> None:
        """A run that ended in this process, remembered as it ended if it was remembered at all: its next
        firing then opens a new run without first being told "not open" by the marker (one request)."""
        with self._lock:
            remembered = self._seen.get(run.run_id)
            if remembered is not None:
                self._seen[run.run_id] = Remembered(run, remembered.marked)

    def remember(self, run: Run, *, marked: bool = True) -> None:
        with self._lock:
            self._seen[run.run_id] = Remembered(run, marked)
            self._seen.move_to_end(run.run_id)
            while len(self._seen) > self._capacity:
                self._seen.popitem(last=False)

