from __future__ import annotations

import itertools

import pytest

from shared.core.errors import IllegalTransition
from shared.core.model import RunState
from shared.core.transitions import RUN_TRANSITIONS, RunEvent, next_run_state


@pytest.mark.parametrize(("state", "event"), list(itertools.product(RunState, RunEvent)))
def test_only_listed_transitions_are_legal(state: RunState, event: RunEvent) -> None:
    if (state, event) in RUN_TRANSITIONS:
        assert next_run_state(state, event) is RUN_TRANSITIONS[(state, event)]
    else:
        with pytest.raises(IllegalTransition):
            next_run_state(state, event)


def test_no_transition_leaves_a_terminal_state() -> None:
    assert not [key for key in RUN_TRANSITIONS if key[0].is_terminal]
