"""The state machines of a run, its steps and its requests, as data. A change that is not in a table
cannot be made: the builder checks every state it writes against these tables and raises
`IllegalTransition` for anything else."""

from __future__ import annotations

from enum import StrEnum

from shared.core.errors import IllegalTransition
from shared.core.model import RequestState, RunState, StepState


class RunEvent(StrEnum):
    CONSENT_GRANTED = "consent_granted"
    CONSENT_DENIED = "consent_denied"
    CONSENT_EXPIRED = "consent_expired"
    ALERT_RESOLVED = "alert_resolved"
    STEP_SUCCEEDED = "step_succeeded"
    LAST_STEP_SUCCEEDED = "last_step_succeeded"
    STEP_FAILED = "step_failed"
    STEP_CHALLENGED = "step_challenged"
    CREDENTIALS_GRANTED = "credentials_granted"
    CREDENTIALS_DENIED = "credentials_denied"
    CREDENTIALS_EXPIRED = "credentials_expired"
    PRECONDITION_CHANGED = "precondition_changed"  # the resource no longer matches what the approver saw
    DRIFT_UNCONFIRMED = "drift_unconfirmed"  # consent to the changed state was denied or not given in time
    AGENT_CANCELLED = "agent_cancelled"  # the agent that proposed the plan withdrew it while a person was asked
    SWITCH_THROWN = "switch_thrown"  # the kill switch stopped the run before its next ARM call
    SWITCH_LIFTED = "switch_lifted"  # lifted: the run goes on from where it stopped
    SWITCH_LIFTED_BEFORE_CONSENT = "switch_lifted_before_consent"  # lifted: consent is asked, as it was to be
    CONSENT_LAPSED = "consent_lapsed"  # lifted, but the run was paused longer than consent lasts: asked again
    GRANT_LAPSED = "grant_lapsed"  # lifted, but the granted credentials are older than a grant lasts: asked again


S = RunState
E = RunEvent

RUN_TRANSITIONS: dict[tuple[RunState, RunEvent], RunState] = {
    (S.AWAITING_CONSENT, E.CONSENT_GRANTED): S.RUNNING,
    (S.AWAITING_CONSENT, E.CONSENT_DENIED): S.DENIED,
    (S.AWAITING_CONSENT, E.CONSENT_EXPIRED): S.EXPIRED,
    (S.AWAITING_CONSENT, E.ALERT_RESOLVED): S.CANCELLED,
    (S.AWAITING_CONSENT, E.AGENT_CANCELLED): S.CANCELLED,
    (S.AWAITING_CREDENTIALS, E.AGENT_CANCELLED): S.CANCELLED,
    (S.RUNNING, E.STEP_SUCCEEDED): S.RUNNING,
    (S.RUNNING, E.LAST_STEP_SUCCEEDED): S.SUCCEEDED,
    (S.RUNNING, E.STEP_FAILED): S.FAILED,
    (S.RUNNING, E.STEP_CHALLENGED): S.AWAITING_CREDENTIALS,
    (S.AWAITING_CREDENTIALS, E.CREDENTIALS_GRANTED): S.RUNNING,
    (S.AWAITING_CREDENTIALS, E.CREDENTIALS_DENIED): S.DENIED,
    (S.AWAITING_CREDENTIALS, E.CREDENTIALS_EXPIRED): S.EXPIRED,
    (S.RUNNING, E.PRECONDITION_CHANGED): S.AWAITING_CONSENT,
    (S.AWAITING_CONSENT, E.DRIFT_UNCONFIRMED): S.DRIFTED,
    # The kill switch: a run stops before an ARM call (a step's, or the previews consent is asked with),
    # and is never ended by it; lifted, it goes back to what it was doing, or asks again what lapsed.
    (S.RUNNING, E.SWITCH_THROWN): S.PAUSED,
    (S.AWAITING_CONSENT, E.SWITCH_THROWN): S.PAUSED,
    (S.PAUSED, E.SWITCH_LIFTED): S.RUNNING,
    (S.PAUSED, E.SWITCH_LIFTED_BEFORE_CONSENT): S.AWAITING_CONSENT,
    (S.PAUSED, E.CONSENT_LAPSED): S.AWAITING_CONSENT,
    (S.PAUSED, E.GRANT_LAPSED): S.AWAITING_CREDENTIALS,
    # Nothing is in flight while paused: the proposing agent may withdraw, and a resolved alert cancels a
    # run that was paused before consent was asked.
    (S.PAUSED, E.AGENT_CANCELLED): S.CANCELLED,
    (S.PAUSED, E.ALERT_RESOLVED): S.CANCELLED,
}

T = StepState

STEP_TRANSITIONS: frozenset[tuple[StepState, StepState]] = frozenset({
    (T.PENDING, T.ATTEMPTING),  # claimed by a delivery, about to run with the agent's identity
    (T.PENDING, T.FAILED),  # refused before it ran (a write in a read-only plan)
    (T.PENDING, T.SKIPPED),  # the run ended first
    (T.PENDING, T.AWAITING_CREDENTIALS),  # a grant given for an earlier step covers it too
    (T.ATTEMPTING, T.SUCCEEDED),
    (T.ATTEMPTING, T.FAILED),
    (T.ATTEMPTING, T.AWAITING_CREDENTIALS),  # a security challenge
    (T.AWAITING_CREDENTIALS, T.EXECUTING),  # claimed with a person's granted credentials
    (T.AWAITING_CREDENTIALS, T.FAILED),  # the granted credentials went unused or could not be used
    (T.AWAITING_CREDENTIALS, T.SKIPPED),
    (T.EXECUTING, T.SUCCEEDED),
    (T.EXECUTING, T.FAILED),
    (T.EXECUTING, T.AWAITING_CREDENTIALS),  # the granted sign-in expired before use: asked again
    (T.ATTEMPTING, T.PENDING),  # the resource changed before the write was sent: consent is asked again
    (T.EXECUTING, T.PENDING),
    (T.AWAITING_CREDENTIALS, T.PENDING),  # consent lapsed while paused: the grant goes, consent is asked again
})

R = RequestState

REQUEST_TRANSITIONS: frozenset[tuple[RequestState, RequestState]] = frozenset({
    (R.PENDING, R.GRANTED),
    (R.PENDING, R.DENIED),
    (R.PENDING, R.EXPIRED),
    (R.PENDING, R.CANCELLED),
})


def next_run_state(state: RunState, event: RunEvent) -> RunState:
    try:
        return RUN_TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition("run", state, event) from None


def can_take(state: RunState, event: RunEvent) -> bool:
    return (state, event) in RUN_TRANSITIONS


def check_step(state: StepState, target: StepState) -> StepState:
    """`target`, if a step may move there from `state` (staying put is no move)."""
    if state is not target and (state, target) not in STEP_TRANSITIONS:
        raise IllegalTransition("step", state, target)
    return target


def check_request(state: RequestState | None, target: RequestState) -> RequestState:
    """`target`, if a request may move there from `state`; a new request (`None`) starts pending."""
    if state is None:
        if target is not RequestState.PENDING:
            raise IllegalTransition("request", "new", target)
        return target
    if state is not target and (state, target) not in REQUEST_TRANSITIONS:
        raise IllegalTransition("request", state, target)
    return target
