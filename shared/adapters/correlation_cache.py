"""A short-lived, per-process memory of correlations, in front of the correlation table.

In an alert storm the same (rule, resource) arrives thousands of times and its correlation changes only
when a new run opens. Remembering it saves a read per merged alert. A stale memory is safe: the plan stage
reads the run the correlation names anyway, and replacing a correlation is conditional on its ETag, so a
stale one fails the replace and is read afresh.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict

from shared.ports import Clock, Correlation, CorrelationStore


class RememberedCorrelations:
    def __init__(self, store: CorrelationStore, clock: Clock, *, ttl: dt.timedelta = dt.timedelta(seconds=60),
                 capacity: int = 10_000) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl
        self._capacity = capacity
        self._seen: OrderedDict[str, tuple[dt.datetime, Correlation]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Correlation | None:
        now = self._clock.now()
        with self._lock:
            remembered = self._seen.get(key)
            if remembered is not None and now - remembered[0] < self._ttl:
                return remembered[1]
        found = self._store.get(key)
        with self._lock:
            if found is None:
                self._seen.pop(key, None)
            else:
                self._seen[key] = (now, found)
                self._seen.move_to_end(key)
                while len(self._seen) > self._capacity:
                    self._seen.popitem(last=False)
        return found

    def get_known(self, key: str) -> Correlation | None:
        now = self._clock.now()
        with self._lock:
            remembered = self._seen.get(key)
            return remembered[1] if remembered is not None and now - remembered[0] < self._ttl else None

    def get_fresh(self, key: str) -> Correlation | None:
        return self._store.get_fresh(key)

    def create(self, key: str, run_id: str, opened_at: dt.datetime) -> Correlation | None:
        self._forget(key)
        created = self._store.create(key, run_id, opened_at)
        if created is not None:
            self._remember_written(created)
        return created

    def replace(self, current: Correlation, run_id: str, opened_at: dt.datetime) -> Correlation | None:
        self._forget(current.key)
        replaced = self._store.replace(current, run_id, opened_at)
        if replaced is not None:
            self._remember_written(replaced)
        return replaced

    def _remember_written(self, written: Correlation) -> None:
        # With the ETag the write got back, as good as a read just after it: the next run on this key
        # (a firing after this run ended) replaces it without reading it first, and a write by another
        # instance since still fails that replace on the ETag.
        with self._lock:
            self._seen[written.key] = (self._clock.now(), written)
            self._seen.move_to_end(written.key)

    def _forget(self, key: str) -> None:
        with self._lock:
            self._seen.pop(key, None)
