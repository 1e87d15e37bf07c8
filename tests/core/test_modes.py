"""The seed's tables, row by row, as pure functions."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.core.guardrails import Effect, Facts, Guardrails, ScopeRules, StepToDecide, decide
from shared.core.model import ActionKind, Mode
from shared.core.modes import Behaviour, agent_behaviour
from tests.pipeline import VM

NOW = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)

B = Behaviour
SEED = [
    (ActionKind.READ, True, Mode.REVIEW, B.USE_OWN_PERMISSIONS),
    (ActionKind.READ, False, Mode.REVIEW, B.PROMPT_FOR_CREDENTIALS),
    (ActionKind.READ, True, Mode.AUTONOMOUS, B.USE_OWN_PERMISSIONS),
    (ActionKind.READ, False, Mode.AUTONOMOUS, B.PROMPT_FOR_CREDENTIALS),
    (ActionKind.WRITE, True, Mode.REVIEW, B.CONSENT_THEN_OWN_PERMISSIONS),
    (ActionKind.WRITE, False, Mode.REVIEW, B.CONSENT_THEN_CREDENTIALS),
    (ActionKind.WRITE, True, Mode.AUTONOMOUS, B.USE_OWN_PERMISSIONS),
    (ActionKind.WRITE, False, Mode.AUTONOMOUS, B.PROMPT_FOR_CREDENTIALS),
]


@pytest.mark.parametrize(("kind", "permitted", "mode", "behaviour"), SEED)
def test_agent_behaviour_follows_the_seed_table(kind: ActionKind, permitted: bool, mode: Mode,
                                                behaviour: Behaviour) -> None:
    assert agent_behaviour(kind, permitted, mode) is behaviour


@pytest.mark.parametrize(("requested", "ceiling", "effect"), [
    (Mode.REVIEW, Mode.REVIEW, Effect.ASK),
    (Mode.REVIEW, Mode.AUTONOMOUS, Effect.ASK),
    (Mode.AUTONOMOUS, Mode.REVIEW, Effect.ASK),
    (Mode.AUTONOMOUS, Mode.AUTONOMOUS, Effect.ALLOW),
    (Mode.READ_ONLY, Mode.REVIEW, Effect.DENY),
    (Mode.READ_ONLY, Mode.AUTONOMOUS, Effect.DENY),
])
def test_the_ceiling_caps_autonomy_of_a_write(requested: Mode, ceiling: Mode, effect: Effect) -> None:
    write = StepToDecide("vm.restart", ActionKind.WRITE)
    assert decide(Guardrails(), ScopeRules(), "plan p", requested, [write], Facts(VM), ceiling, NOW).effect is effect


@pytest.mark.parametrize(("mode", "kinds", "asks"), [
    (Mode.REVIEW, [ActionKind.READ, ActionKind.WRITE], True),
    (Mode.REVIEW, [ActionKind.READ], False),
    (Mode.AUTONOMOUS, [ActionKind.WRITE], False),
    (Mode.READ_ONLY, [ActionKind.READ], False),
])
def test_consent_is_asked_only_for_a_write_in_review_mode(mode: Mode, kinds: list[ActionKind], asks: bool) -> None:
    steps = [StepToDecide(f"action{i}", kind) for i, kind in enumerate(kinds)]
    decided = decide(Guardrails(), ScopeRules(), "plan p", mode, steps, Facts(VM), Mode.AUTONOMOUS, NOW)
    assert (decided.effect is Effect.ASK) is asks
