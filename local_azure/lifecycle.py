"""What every part of the local runtime shares: `start()` returns the part once it serves, `stop()` ends
it, and `with part:` does both; and the command lines' foreground mode that reports what arrives."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self, TypeVar

T = TypeVar("T")


class Startable:
    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


def report_until_interrupted(fetch: Callable[[], Sequence[T]], describe: Callable[[T], str],
                             interval: float = 0.5) -> None:
    """Print a line for each new item `fetch` returns, until Ctrl-C (or SIGTERM, with exit_on_sigterm)."""
    shown = 0
    try:
        while True:
            time.sleep(interval)
            items = fetch()
            for item in items[shown:]:
                print(describe(item), flush=True)
            shown = len(items)
    except KeyboardInterrupt:
        pass
