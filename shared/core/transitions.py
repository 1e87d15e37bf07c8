"""The run's state machine, as data. A transition not in the table cannot be written."""

from __future__ import annotations

from enum import StrEnum

from shared.core.errors import IllegalTransition
from shared.core.model import RequestState, RunState


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


S = RunState
E = RunEvent

RUN_TRANSITIONS: dict[tuple[RunState, RunEvent], RunState] = {
    (S.AWAITING_CONSENT, E.CONSENT_GRANTED): S.RUNNING,
    (S.AWAITING_CONSENT, E.CONSENT_DENIED): S.DENIED,
    (S.AWAITING_CONSENT, E.CONSENT_EXPIRED): S.EXPIRED,
    (S.AWAITING_CONSENT, E.ALERT_RESOLVED): S.CANCELLED,
    (S.RUNNING, E.STEP_SUCCEEDED): S.RUNNING,
    (S.RUNNING, E.LAST_STEP_SUCCEEDED): S.SUCCEEDED,
    (S.RUNNING, E.STEP_FAILED): S.FAILED,
    (S.RUNNING, E.STEP_CHALLENGED): S.AWAITING_CREDENTIALS,
    (S.AWAITING_CREDENTIALS, E.CREDENTIALS_GRANTED): S.RUNNING,
    (S.AWAITING_CREDENTIALS, E.CREDENTIALS_DENIED): S.DENIED,
    (S.AWAITING_CREDENTIALS, E.CREDENTIALS_EXPIRED): S.EXPIRED,
}

REQUEST_TRANSITIONS: dict[tuple[RequestState, RequestState], bool] = {
    (RequestState.PENDING, RequestState.GRANTED): True,
    (RequestState.PENDING, RequestState.DENIED): True,
    (RequestState.PENDING, RequestState.EXPIRED): True,
    (RequestState.PENDING, RequestState.CANCELLED): True,
}


def next_run_state(state: RunState, event: RunEvent) -> RunState:
    try:
        return RUN_TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition("run", state, event) from None


def can_take(state: RunState, event: RunEvent) -> bool:
    return (state, event) in RUN_TRANSITIONS


def next_request_state(state: RequestState, target: RequestState) -> RequestState:
    if not REQUEST_TRANSITIONS.get((state, target), False):
        raise IllegalTransition("request", state, target)
    return target
