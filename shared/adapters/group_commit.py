"""Group commit: what concurrent callers hand in while one write is on the wire goes out together in the next.

A caller that finds nothing on the wire writes what waits, its own item among them, and every caller returns
with its own item's outcome. No caller waits for a timer: alone, a caller writes at once; under load, the
writes take turns and each carries what arrived meanwhile (one request instead of one per caller).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")



class GroupCommit(Generic[Item, Outcome]):
    """`flush` writes the items as one and answers each item's outcome in order (an exception for an item
    that failed on its own); raising fails every item of that write."""

    def __init__(self, flush: Callable[[list[Item]], Sequence[Outcome | BaseException]]) -> None:
        self._flush = flush
        self._turn = threading.Condition()
        self._waiting: list[tuple[Item, Future[Outcome]]] = []
        self._writing = False  # a write is on the wire; what arrives meanwhile waits for the next

    def submit(self, item: Item) -> Outcome:
        """The item's outcome once it is written (raises what its write raised)."""
        done: Future[Outcome] = Future()
        with self._turn:
            self._waiting.append((item, done))
            while self._writing and not done.done():
                self._turn.wait()
            if done.done():
                return done.result()
            self._writing = True
            taken, self._waiting = self._waiting, []
        try:
            self._write(taken)
        finally:
            with self._turn:
                self._writing = False
                self._turn.notify_all()
        return done.result()

    def _write(self, taken: list[tuple[Item, Future[Outcome]]]) -> None:
        try:
            outcomes = list(self._flush([item for item, _ in taken]))
            if len(outcomes) != len(taken):
                raise RuntimeError(f"a group write answered {len(outcomes)} outcomes for {len(taken)} items")
        except BaseException as error:  # handed to every caller whose item was in the write
            for _, done in taken:
                done.set_exception(error)
            return
        for (_, done), outcome in zip(taken, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                done.set_exception(outcome)
            else:
                done.set_result(outcome)
