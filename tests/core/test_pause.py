"""The kill switch's pure decisions: the switch itself (thrown, lifted, held by the setting), a run
stopped before its next ARM call, and a paused run resumed once the switch is lifted."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from shared.core.codec import run_from_dict, run_to_dict
from shared.core.messages import AttemptStep, ExecuteStep, OpenConsent, OpenCredentialRequest, decode
from shared.core.model import (
    ActionKind,
    Actor,
    Alert,
    ArmOperation,
    CredentialSource,
    Mode,
    Pause,
    Request,
    RequestKind,
    RequestState,
    Run,
    RunState,
    Step,
    StepState,
)
from shared.core.pause import (
    LIFTED,
    KillSwitch,
    SwitchRefusal,
    SwitchRefused,
    SwitchSource,
    change_switch,
    consent_counts,
    effective,
    note_setting,
    pause,
    resume,
    setting_switch,
)
from shared.core.previews import is_reconsent
from shared.core.requests import Timeouts
from shared.topology import Queue

NOW = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)
VM = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm"
TIMEOUTS = Timeouts(consent=dt.timedelta(minutes=30), credentials=dt.timedelta(minutes=15))
ADMIN = Actor.person("ad000000-0000-4000-8000-000000000009", "olga@contoso.test")
THROWN = KillSwitch(True, "bad deploy in westeurope", ADMIN, NOW - dt.timedelta(minutes=1))
LIFT = KillSwitch(False, "deploy rolled back", ADMIN, NOW)
OPERATION = ArmOperation("POST", f"https://arm{VM}/restart", 202, "https://arm/operations/op1", None, "r1", "c1", "c1")


def step(index: int = 0, kind: ActionKind = ActionKind.WRITE, state: StepState = StepState.PENDING,
         **changes: object) -> Step:
    action = "vm.restart" if kind is ActionKind.WRITE else "vm.read_instance_view"
    return replace(Step(index, action, kind, "Microsoft.Compute/virtualMachines/restart/action", state=state),
                   **changes)


def consent(decided_at: dt.datetime = NOW - dt.timedelta(minutes=2)) -> Request:
    return Request("consent1", RequestKind.CONSENT, decided_at + dt.timedelta(minutes=30), (), "h",
                   state=RequestState.GRANTED, decided_by=Actor.person("a", "alice"), decided_at=decided_at)


def grant(sealed: str | None = "sealed", index: int = 0, decided_at: dt.datetime = NOW) -> Request:
    return Request("grant1", RequestKind.CREDENTIALS, NOW + dt.timedelta(minutes=5), (), "h", step_index=index,
                   state=RequestState.GRANTED, decided_by=Actor.person("a", "alice"), decided_at=decided_at,
                   sealed_assertion=sealed)


def run_of(*steps: Step, state: RunState = RunState.RUNNING, mode: Mode = Mode.REVIEW,
           requests: tuple[Request, ...] | None = None) -> Run:
    alert = Alert("a1", "r1", "rule", "Sev1", "Fired", NOW, (VM,))
    return Run("run1", state, mode, "plan", 1, "book", VM, alert, steps or (step(),), (), (), NOW, NOW,
               requests=(consent(),) if requests is None else requests)


def paused(run: Run, *, minutes: float = 5, switch: KillSwitch = THROWN, index: int | None = 0) -> Run:
    """`run` paused `minutes` ago."""
    change = pause(run, index, switch, NOW - dt.timedelta(minutes=minutes))
    assert change is not None
    return change.run


def sent(change: object) -> list[object]:
    messages = getattr(change, "messages", ())
    return [decode(Queue(m.queue), m.body) for m in messages]


# ------------------------------------------------------------------------------------------ the switch


def test_the_switch_is_thrown_with_who_when_and_why() -> None:
    change = change_switch(LIFTED, LIFTED, True, ADMIN, " bad deploy ", NOW)
    assert change is not None
    assert (change.switch.engaged, change.switch.reason, change.switch.by, change.switch.at) == (
        True, "bad deploy", ADMIN, NOW)
    assert change.entry is not None
    assert (change.entry.event, change.entry.actor, change.entry.reason) == ("switch_thrown", ADMIN, "bad deploy")


def test_throwing_the_switch_needs_a_reason() -> None:
    with pytest.raises(SwitchRefused) as refused:
        change_switch(LIFTED, LIFTED, True, ADMIN, "   ", NOW)
    assert refused.value.refusal is SwitchRefusal.REASON_REQUIRED


def test_a_reason_has_a_length_limit() -> None:
    with pytest.raises(SwitchRefused) as refused:
        change_switch(LIFTED, LIFTED, True, ADMIN, "x" * 501, NOW)
    assert refused.value.refusal is SwitchRefusal.REASON_TOO_LONG


def test_lifting_needs_no_reason_and_is_audited() -> None:
    change = change_switch(LIFTED, THROWN, False, ADMIN, "", NOW)
    assert change is not None
    assert not change.switch.engaged
    assert change.entry is not None
    assert change.entry.event == "switch_lifted"


def test_a_switch_already_so_changes_nothing() -> None:
    assert change_switch(LIFTED, THROWN, True, ADMIN, "again", NOW) is None
    assert change_switch(LIFTED, LIFTED, False, ADMIN, "", NOW) is None


def test_a_switch_the_setting_holds_cannot_be_lifted_by_an_admin() -> None:
    held = setting_switch(True, "freeze for the migration", NOW)
    with pytest.raises(SwitchRefused) as refused:
        change_switch(held, LIFTED, False, ADMIN, "", NOW)
    assert refused.value.refusal is SwitchRefusal.HELD_BY_SETTING
    assert "GATES_KILL_SWITCH" in refused.value.message


@pytest.mark.parametrize(("setting", "stored", "engaged"), [
    (False, False, False), (True, False, True), (False, True, True), (True, True, True)])
def test_either_the_setting_or_an_admin_throws_the_switch(setting: bool, stored: bool, engaged: bool) -> None:
    switch = effective(setting_switch(setting, None, NOW), THROWN if stored else LIFTED)
    assert switch.engaged is engaged
    if setting:
        assert switch.source is SwitchSource.SETTING  # the setting is named, since only it can lift it


def test_the_setting_gives_a_reason_when_none_is_set() -> None:
    assert "GATES_KILL_SWITCH" in setting_switch(True, "", NOW).reason
    assert setting_switch(True, " db failover ", NOW).reason == "db failover"


def test_the_setting_turned_on_is_audited_once() -> None:
    setting = setting_switch(True, "freeze", NOW)
    first = note_setting(LIFTED, setting, NOW)
    assert first is not None
    assert first.entry is not None
    assert first.entry.event == "switch_thrown"
    assert note_setting(first.switch, setting, NOW) is None  # the next host finds it recorded


def test_the_setting_turned_off_again_is_audited_as_a_lift() -> None:
    on = note_setting(LIFTED, setting_switch(True, "freeze", NOW), NOW)
    assert on is not None
    off = note_setting(on.switch, LIFTED, NOW)
    assert off is not None
    assert off.entry is not None
    assert off.entry.event == "switch_lifted"
    assert note_setting(off.switch, LIFTED, NOW) is None


def test_a_setting_never_turned_on_is_not_audited() -> None:
    assert note_setting(LIFTED, LIFTED, NOW) is None


def test_a_new_reason_in_the_setting_is_audited() -> None:
    on = note_setting(LIFTED, setting_switch(True, "freeze", NOW), NOW)
    assert on is not None
    assert note_setting(on.switch, setting_switch(True, "longer freeze", NOW), NOW) is not None


# ------------------------------------------------------------------------------------------ pausing


def test_a_pending_step_pauses_the_run_and_stays_pending() -> None:
    change = pause(run_of(), 0, THROWN, NOW)
    assert change is not None
    run = change.run
    assert run.state is RunState.PAUSED
    assert run.steps[0].state is StepState.PENDING
    assert run.pause == Pause(THROWN.reason, ADMIN, THROWN.at, NOW, RunState.RUNNING, 0)  # type: ignore[arg-type]
    assert change.messages == ()  # nothing moves until the switch is lifted


def test_the_pause_is_audited_with_the_switchs_reason_who_and_when() -> None:
    change = pause(run_of(), 0, THROWN, NOW)
    assert change is not None
    [line] = change.audit
    assert line.event == "run_paused"
    assert THROWN.reason in line.summary
    assert ADMIN.name in line.summary
    assert line.details["switch_reason"] == THROWN.reason
    assert line.details["switch_by"] == ADMIN.name


def test_a_step_awaiting_credentials_keeps_its_grant_when_paused() -> None:
    run = run_of(step(state=StepState.AWAITING_CREDENTIALS), requests=(consent(), grant()))
    change = pause(run, 0, THROWN, NOW)
    assert change is not None
    assert change.run.steps[0].state is StepState.AWAITING_CREDENTIALS
    assert change.run.request("grant1").sealed_assertion == "sealed"  # type: ignore[union-attr]


@pytest.mark.parametrize(("claimed", "back_to"), [(StepState.ATTEMPTING, StepState.PENDING),
                                                  (StepState.EXECUTING, StepState.AWAITING_CREDENTIALS)])
def test_a_claimed_step_not_yet_sent_is_given_back(claimed: StepState, back_to: StepState) -> None:
    source = CredentialSource.AGENT if claimed is StepState.ATTEMPTING else CredentialSource.DELEGATED
    run = run_of(step(state=claimed, credential_source=source, claim_message_id="m1", claim_delivery=1,
                      client_request_id="c1"), requests=(consent(), grant()))
    change = pause(run, 0, THROWN, NOW)
    assert change is not None
    given_back = change.run.steps[0]
    assert (given_back.state, given_back.claim_message_id, given_back.client_request_id) == (back_to, None, None)


def test_a_step_arm_accepted_is_never_paused() -> None:
    run = run_of(step(state=StepState.ATTEMPTING, operation=OPERATION, claim_message_id="m1"))
    assert pause(run, 0, THROWN, NOW) is None


def test_a_lifted_switch_pauses_nothing() -> None:
    assert pause(run_of(), 0, LIFTED, NOW) is None


@pytest.mark.parametrize("state", [s for s in RunState if s not in (RunState.RUNNING, RunState.AWAITING_CONSENT)])
def test_only_a_running_run_or_one_about_to_ask_consent_pauses(state: RunState) -> None:
    assert pause(run_of(state=state), 0, THROWN, NOW) is None
    assert pause(run_of(state=state), None, THROWN, NOW) is None


def test_a_run_about_to_read_its_consent_previews_pauses_before_them() -> None:
    change = pause(run_of(state=RunState.AWAITING_CONSENT, requests=()), None, THROWN, NOW)
    assert change is not None
    assert change.run.state is RunState.PAUSED
    assert change.run.pause is not None
    assert change.run.pause.resume_to is RunState.AWAITING_CONSENT


def test_a_run_waiting_on_people_is_not_paused_they_may_still_decide() -> None:
    asking = replace(consent(), state=RequestState.PENDING, decided_at=None, decided_by=None)
    assert pause(run_of(state=RunState.AWAITING_CONSENT, requests=(asking,)), None, THROWN, NOW) is None


def test_a_step_that_is_not_the_current_one_is_not_paused() -> None:
    run = run_of(step(0, ActionKind.READ), step(1))
    assert pause(run, 1, THROWN, NOW) is None


def test_each_pause_is_counted_so_each_resume_has_its_own_message() -> None:
    once = paused(run_of())
    again = resume(once, LIFT, NOW, TIMEOUTS)
    assert again is not None
    twice = pause(again.run, 0, THROWN, NOW)
    assert twice is not None
    assert (once.pauses, twice.run.pauses) == (1, 2)


def test_a_paused_run_survives_its_codec() -> None:
    run = paused(run_of())
    assert run_from_dict(run_to_dict(run)) == run


# ----------------------------------------------------------------------- the claim, with the switch


# ------------------------------------------------------------------------------------------ resuming


def test_lifting_resumes_a_pending_step_with_a_new_attempt() -> None:
    change = resume(paused(run_of()), LIFT, NOW, TIMEOUTS)
    assert change is not None
    assert change.run.state is RunState.RUNNING
    assert change.run.pause is None
    assert sent(change) == [AttemptStep("run1", 0)]
    assert change.messages[0].message_id.endswith("step-0-resume-1")


def test_the_resume_is_audited_with_how_long_and_why() -> None:
    change = resume(paused(run_of(), minutes=7), LIFT, NOW, TIMEOUTS)
    assert change is not None
    [line] = change.audit
    assert line.event == "run_resumed"
    assert line.details["paused_reason"] == THROWN.reason
    assert line.details["paused_for_seconds"] == 7 * 60
    assert LIFT.reason in line.summary


def test_two_resumes_of_one_pause_send_the_same_message_id() -> None:
    run = paused(run_of())
    first, second = resume(run, LIFT, NOW, TIMEOUTS), resume(run, LIFT, NOW + dt.timedelta(seconds=1), TIMEOUTS)
    assert first is not None
    assert second is not None
    assert first.messages[0].message_id == second.messages[0].message_id  # the queue drops the repeat


def test_a_resumed_run_is_not_resumed_again() -> None:
    change = resume(paused(run_of()), LIFT, NOW, TIMEOUTS)
    assert change is not None
    assert resume(change.run, LIFT, NOW, TIMEOUTS) is None


def test_nothing_resumes_while_the_switch_is_thrown() -> None:
    assert resume(paused(run_of()), THROWN, NOW, TIMEOUTS) is None


@pytest.mark.parametrize("state", [s for s in RunState if s is not RunState.PAUSED])
def test_only_a_paused_run_resumes(state: RunState) -> None:
    assert resume(run_of(state=state), LIFT, NOW, TIMEOUTS) is None


def test_a_step_with_granted_credentials_resumes_with_them() -> None:
    run = paused(run_of(step(state=StepState.AWAITING_CREDENTIALS), requests=(consent(), grant())))
    change = resume(run, LIFT, NOW, TIMEOUTS)
    assert change is not None
    assert change.run.state is RunState.RUNNING
    assert sent(change) == [ExecuteStep("run1", 0)]


def test_a_grant_older_than_a_grant_lasts_is_discarded_and_asked_again() -> None:
    run = paused(run_of(step(state=StepState.AWAITING_CREDENTIALS),
                        requests=(consent(), grant(decided_at=NOW - dt.timedelta(minutes=17)))), minutes=16)
    change = resume(run, LIFT, NOW, TIMEOUTS)
    assert change is not None
    assert change.run.state is RunState.AWAITING_CREDENTIALS
    assert change.run.request("grant1").sealed_assertion is None  # type: ignore[union-attr]
    assert sent(change) == [OpenCredentialRequest("run1", 0)]
    assert "credential_revoked" in [e.event for e in change.audit]


def test_a_consent_older_than_consent_lasts_is_asked_again_saying_why() -> None:
    run = paused(run_of(requests=(consent(NOW - dt.timedelta(minutes=32)),)), minutes=31)
    change = resume(run, LIFT, NOW, TIMEOUTS)
    assert change is not None
    assert change.run.state is RunState.AWAITING_CONSENT
    assert change.run.consent_lapsed_at == NOW
    assert sent(change) == [OpenConsent("run1")]
    [line] = change.audit
    assert "longer than consent lasts" in line.summary
    assert line.details["consent_lapsed"] is True
    assert not consent_counts(change.run)


def test_a_lapsed_consent_takes_the_grant_with_it() -> None:
    run = paused(run_of(step(state=StepState.AWAITING_CREDENTIALS),
                        requests=(consent(NOW - dt.timedelta(minutes=32)), grant())), minutes=31)
    change = resume(run, LIFT, NOW, TIMEOUTS)
    assert change is not None
    assert change.run.steps[0].state is StepState.PENDING
    assert change.run.request("grant1").sealed_assertion is None  # type: ignore[union-attr]


def test_a_consent_asked_again_after_a_lapse_is_not_a_drift() -> None:
    change = resume(paused(run_of(requests=(consent(NOW - dt.timedelta(minutes=32)),)), minutes=31), LIFT, NOW,
                    TIMEOUTS)
    assert change is not None
    asked = Request("consent2", RequestKind.CONSENT, NOW + dt.timedelta(minutes=30), (), "h")
    # A "no" to it is a plain denial, not "the resource changed after consent".
    assert not is_reconsent(replace(change.run, requests=(*change.run.requests, asked)), asked)


def test_a_consent_is_judged_by_its_age_not_by_how_long_one_pause_lasted() -> None:
    # given 29 minutes ago, then paused for 5: older than consent lasts (30 min) when the run would act
    run = paused(run_of(requests=(consent(NOW - dt.timedelta(minutes=34)),)), minutes=5)
    change = resume(run, LIFT, NOW, TIMEOUTS)
    assert change is not None
    assert change.run.state is RunState.AWAITING_CONSENT


def test_an_autonomous_run_resumed_inside_a_freeze_asks_consent_naming_it() -> None:
    run = paused(run_of(mode=Mode.AUTONOMOUS, requests=()))
    change = resume(run, LIFT, NOW, TIMEOUTS, freeze="year-end")
    assert change is not None
    assert change.run.state is RunState.AWAITING_CONSENT
    assert change.run.mode is Mode.REVIEW
    assert sent(change) == [OpenConsent("run1")]
    assert "change freeze year-end" in change.audit[-1].summary


def test_an_autonomous_run_has_no_consent_to_lapse() -> None:
    change = resume(paused(run_of(mode=Mode.AUTONOMOUS, requests=()), minutes=120), LIFT, NOW, TIMEOUTS)
    assert change is not None
    assert sent(change) == [AttemptStep("run1", 0)]


def test_a_long_pause_before_a_read_needs_no_new_consent() -> None:
    run = paused(run_of(step(0, ActionKind.READ)), minutes=120)
    change = resume(run, LIFT, NOW, TIMEOUTS)
    assert change is not None
    assert sent(change) == [AttemptStep("run1", 0)]


def test_a_run_paused_before_its_consent_previews_asks_consent_when_lifted() -> None:
    run = paused(run_of(state=RunState.AWAITING_CONSENT, requests=()), index=None, minutes=90)
    change = resume(run, LIFT, NOW, TIMEOUTS)
    assert change is not None
    assert change.run.state is RunState.AWAITING_CONSENT
    assert sent(change) == [OpenConsent("run1")]
