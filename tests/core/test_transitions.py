"""The state machines, stated here as the specification rather than read back from the code."""

from __future__ import annotations

import itertools

import pytest

from shared.core.errors import IllegalTransition
from shared.core.model import RequestState, RunState, StepState
from shared.core.transitions import RunEvent, check_request, check_step, next_run_state

R, E, S, Q = RunState, RunEvent, StepState, RequestState

EXPECTED_RUN = {
    (R.AWAITING_CONSENT, E.CONSENT_GRANTED): R.RUNNING,
    (R.AWAITING_CONSENT, E.CONSENT_DENIED): R.DENIED,
    (R.AWAITING_CONSENT, E.CONSENT_EXPIRED): R.EXPIRED,
    (R.AWAITING_CONSENT, E.ALERT_RESOLVED): R.CANCELLED,
    (R.RUNNING, E.STEP_SUCCEEDED): R.RUNNING,
    (R.RUNNING, E.LAST_STEP_SUCCEEDED): R.SUCCEEDED,
    (R.RUNNING, E.STEP_FAILED): R.FAILED,
    (R.RUNNING, E.STEP_CHALLENGED): R.AWAITING_CREDENTIALS,
    (R.AWAITING_CREDENTIALS, E.CREDENTIALS_GRANTED): R.RUNNING,
    (R.AWAITING_CREDENTIALS, E.CREDENTIALS_DENIED): R.DENIED,
    (R.AWAITING_CREDENTIALS, E.CREDENTIALS_EXPIRED): R.EXPIRED,
    (R.RUNNING, E.PRECONDITION_CHANGED): R.AWAITING_CONSENT,  # the resource changed: consent again
    (R.AWAITING_CONSENT, E.DRIFT_UNCONFIRMED): R.DRIFTED,
    # The agent that proposed a plan may withdraw it while a person is asked, never while a step acts.
    (R.AWAITING_CONSENT, E.AGENT_CANCELLED): R.CANCELLED,
    (R.AWAITING_CREDENTIALS, E.AGENT_CANCELLED): R.CANCELLED,
    # The kill switch stops a run before an ARM call and never ends it; lifted, the run goes on, or asks
    # again for the consent or the credentials that lapsed while it waited.
    (R.RUNNING, E.SWITCH_THROWN): R.PAUSED,
    (R.AWAITING_CONSENT, E.SWITCH_THROWN): R.PAUSED,
    (R.PAUSED, E.SWITCH_LIFTED): R.RUNNING,
    (R.PAUSED, E.SWITCH_LIFTED_BEFORE_CONSENT): R.AWAITING_CONSENT,
    (R.PAUSED, E.CONSENT_LAPSED): R.AWAITING_CONSENT,
    (R.PAUSED, E.GRANT_LAPSED): R.AWAITING_CREDENTIALS,
    (R.PAUSED, E.AGENT_CANCELLED): R.CANCELLED,
    (R.PAUSED, E.ALERT_RESOLVED): R.CANCELLED,
}

EXPECTED_STEP = {
    (S.PENDING, S.ATTEMPTING), (S.PENDING, S.FAILED), (S.PENDING, S.SKIPPED),
    (S.PENDING, S.AWAITING_CREDENTIALS),  # a grant for an earlier step covers it too
    (S.ATTEMPTING, S.SUCCEEDED), (S.ATTEMPTING, S.FAILED), (S.ATTEMPTING, S.AWAITING_CREDENTIALS),
    (S.AWAITING_CREDENTIALS, S.EXECUTING), (S.AWAITING_CREDENTIALS, S.FAILED), (S.AWAITING_CREDENTIALS, S.SKIPPED),
    (S.EXECUTING, S.SUCCEEDED), (S.EXECUTING, S.FAILED), (S.EXECUTING, S.AWAITING_CREDENTIALS),
    (S.ATTEMPTING, S.PENDING), (S.EXECUTING, S.PENDING),  # the resource changed before the write was sent
    (S.AWAITING_CREDENTIALS, S.PENDING),  # consent lapsed while the run was paused: the grant goes with it
}

EXPECTED_REQUEST = {(Q.PENDING, Q.GRANTED), (Q.PENDING, Q.DENIED), (Q.PENDING, Q.EXPIRED), (Q.PENDING, Q.CANCELLED)}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(RunState, RunEvent)))
def test_a_run_moves_only_as_the_specification_says(state: RunState, event: RunEvent) -> None:
    if (state, event) in EXPECTED_RUN:
        assert next_run_state(state, event) is EXPECTED_RUN[(state, event)]
    else:
        with pytest.raises(IllegalTransition):
            next_run_state(state, event)


@pytest.mark.parametrize("state", [s for s in RunState if s.is_terminal])
def test_a_terminal_run_takes_no_event(state: RunState) -> None:
    for event in RunEvent:
        with pytest.raises(IllegalTransition):
            next_run_state(state, event)


@pytest.mark.parametrize(("state", "target"), list(itertools.product(StepState, StepState)))
def test_a_step_moves_only_as_the_specification_says(state: StepState, target: StepState) -> None:
    if state is target or (state, target) in EXPECTED_STEP:
        assert check_step(state, target) is target
    else:
        with pytest.raises(IllegalTransition, match="step"):
            check_step(state, target)


def test_paused_is_not_an_end() -> None:
    assert not R.PAUSED.is_terminal


def test_a_finished_step_never_runs_again() -> None:
    for done in (S.SUCCEEDED, S.FAILED, S.SKIPPED):
        for target in (S.ATTEMPTING, S.EXECUTING, S.PENDING):
            with pytest.raises(IllegalTransition):
                check_step(done, target)


@pytest.mark.parametrize(("state", "target"), list(itertools.product(RequestState, RequestState)))
def test_a_request_is_decided_once(state: RequestState, target: RequestState) -> None:
    if state is target or (state, target) in EXPECTED_REQUEST:
        assert check_request(state, target) is target
    else:
        with pytest.raises(IllegalTransition, match="request"):
            check_request(state, target)


@pytest.mark.parametrize("target", [s for s in RequestState if s is not RequestState.PENDING])
def test_a_new_request_starts_pending(target: RequestState) -> None:
    assert check_request(None, RequestState.PENDING) is RequestState.PENDING
    with pytest.raises(IllegalTransition):
        check_request(None, target)
