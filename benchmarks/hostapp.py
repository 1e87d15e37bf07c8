"""The function app without its timer triggers, for benchmarks that count what one run costs.

    python -m local_azure.host --app benchmarks.hostapp:app ...

The outbox relay and the stall sweeper read on a schedule, not for a run; left in, they would land in
a run's count whenever their schedule fell inside it. `list_runs_cost.py` measures their reads.
"""

from __future__ import annotations

import json
from typing import Any

import function_app


class WithoutTimers:
    """What the host indexes (`get_functions()`): the app's functions, timer triggers left out."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def get_functions(self) -> list[Any]:
        return [function for function in self._app.get_functions()
                if not any(binding["type"] == "timerTrigger"
                           for binding in json.loads(function.get_function_json())["bindings"])]


app = WithoutTimers(function_app.app)
