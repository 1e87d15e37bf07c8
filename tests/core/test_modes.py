"""The seed's tables, row by row, as pure functions."""

from __future__ import annotations

import pytest

from shared.core.model import ActionKind, Mode
from shared.core.modes import Behaviour, agent_behaviour, consent_required, effective_mode

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


@pytest.mark.parametrize(("requested", "ceiling", "effective"), [
    (Mode.REVIEW, Mode.REVIEW, Mode.REVIEW),
    (Mode.REVIEW, Mode.AUTONOMOUS, Mode.REVIEW),
    (Mode.AUTONOMOUS, Mode.REVIEW, Mode.REVIEW),
    (Mode.AUTONOMOUS, Mode.AUTONOMOUS, Mode.AUTONOMOUS),
    (Mode.READ_ONLY, Mode.REVIEW, Mode.READ_ONLY),
    (Mode.READ_ONLY, Mode.AUTONOMOUS, Mode.READ_ONLY),
])
def test_the_ceiling_caps_autonomy(requested: Mode, ceiling: Mode, effective: Mode) -> None:
    assert effective_mode(requested, ceiling) is effective


def test_consent_is_asked_only_for_a_write_in_review_mode() -> None:
    assert consent_required(Mode.REVIEW, [ActionKind.READ, ActionKind.WRITE])
    assert not consent_required(Mode.REVIEW, [ActionKind.READ])
    assert not consent_required(Mode.AUTONOMOUS, [ActionKind.WRITE])
    assert not consent_required(Mode.READ_ONLY, [ActionKind.READ])
