"""The function app without its timer triggers, for benchmarks that count what one run costs.

    python -m local_azure.host --app benchmarks.hostapp:app ...

The outbox relay and the stall sweeper read on a schedule, not for a run; left in, they would land in
a run's count whenever their schedule fell inside it. `list_runs_cost.py` measures their reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import function_app


class WithoutTimers:
    """What the host indexes (`get_functions()`): the app's functions, timer triggers left out; a
    benchmark in the host's process calls a timer function itself (`timer(name)`) when it wants one."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._functions: list[Any] | None = None

    def _all(self) -> list[Any]:
        # FunctionApp.get_functions() indexes once; a second call refuses its own names.
        if self._functions is None:
            self._functions = list(self._app.get_functions())
        return self._functions

    def get_functions(self) -> list[Any]:
        return [function for function in self._all() if not _is_timer(function)]

    def timer(self, name: str) -> Callable[..., Any]:
        """The user function of the timer trigger named `name` (its function name, as deployed)."""
        for function in self._all():
            if _is_timer(function) and function.get_function_name() == name:
                return function.get_user_function()  # type: ignore[no-any-return]
        raise KeyError(f"the app has no timer function {name!r}")

    def first_timer(self, *names: str) -> tuple[str, Callable[..., Any]]:
        """The first of `names` the app has as a timer function (a function renamed between versions)."""
        for name in names:
            try:
                return name, self.timer(name)
            except KeyError:
                continue
        raise KeyError(f"the app has none of the timer functions {names}")


def _is_timer(function: Any) -> bool:
    return any(binding["type"] == "timerTrigger" for binding in json.loads(function.get_function_json())["bindings"])


app = WithoutTimers(function_app.app)
