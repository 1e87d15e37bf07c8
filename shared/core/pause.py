"""The kill switch: one switch that stops every new ARM call at once, and what it does to runs.

The switch is thrown by an app setting (`GATES_KILL_SWITCH`, read at start-up) or by a `Gates.Admin`
(`POST /api/kill-switch`); either way it is one point read away from every stage about to call ARM.

- A run about to call ARM (a step's call, or the reads a consent request's previews are made of) while
  the switch is thrown does not call it: it moves to `paused`, its step left as it was (pending, or
  awaiting credentials with its grant), and waits.
- Following an operation ARM already accepted is not stopped: it is a read of the operation's status and
  changes nothing in Azure, while stopping it would leave the run not knowing how its write ended. It
  finishes, and the run pauses before its next call. Nothing ARM accepted is ever sent again.
- A person's decision can still be recorded while the switch is thrown; what it lets happen next pauses.
- Lifted, each paused run goes back to what it was doing, re-checking what may have lapsed while it
  waited: a consent older than consent lasts is asked again (saying why), as is a grant older than a
  grant lasts; the resource's preview is read again on the ordinary path before a write.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from enum import StrEnum

from shared.core.change import Change, ChangeBuilder, step_of
from shared.core.errors import GatesError
from shared.core.messages import AttemptStep, ExecuteStep, OpenConsent, OpenCredentialRequest
from shared.core.model import (
    ActionKind,
    Actor,
    Mode,
    Pause,
    RequestKind,
    RequestState,
    Run,
    RunState,
    Step,
    StepState,
)
from shared.core.requests import Timeouts
from shared.core.steps import granted_credential, revoke
from shared.core.transitions import RunEvent

SETTING_NAME = "GATES_KILL_SWITCH"
MAX_REASON = 500
SWITCH_ACTOR = Actor.system("kill-switch")


class SwitchSource(StrEnum):
    ADMIN = "admin"  # thrown or lifted by a Gates.Admin over HTTP
    SETTING = "setting"  # the app setting, read at start-up


@dataclass(frozen=True)
class KillSwitch:
    """The switch as it stands. `setting_seen` is what the store last recorded of the app setting (so
    a host start audits a change of the setting once, not once per host)."""

    engaged: bool = False
    reason: str = ""
    by: Actor | None = None
    at: dt.datetime | None = None
    source: SwitchSource = SwitchSource.ADMIN
    setting_seen: str = ""
    etag: str | None = None

    @property
    def thrower(self) -> Actor:
        return self.by or SWITCH_ACTOR

    def describe(self) -> str:
        at = f" at {self.at.isoformat(timespec='seconds')}" if self.at else ""
        return f"{self.reason} (thrown by {self.thrower.name}{at})"


LIFTED = KillSwitch()


@dataclass(frozen=True)
class SwitchEntry:
    """One line of the switch's own audit: who threw or lifted it, when, why, and how."""

    event: str  # "switch_thrown" | "switch_lifted"
    at: dt.datetime
    actor: Actor
    reason: str
    source: SwitchSource


@dataclass(frozen=True)
class SwitchChange:
    switch: KillSwitch  # to write on the etag `switch.etag` was read with
    entry: SwitchEntry | None  # None: only the record of the setting changed, the switch did not


class SwitchRefusal(StrEnum):
    REASON_REQUIRED = "reason_required"
    REASON_TOO_LONG = "reason_too_long"
    HELD_BY_SETTING = "held_by_setting"


class SwitchRefused(GatesError):
    def __init__(self, refusal: SwitchRefusal, message: str) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.message = message


def setting_switch(engaged: bool, reason: str | None, since: dt.datetime) -> KillSwitch:
    """The switch as the app setting holds it; `since` is when this host read the setting."""
    if not engaged:
        return LIFTED
    return KillSwitch(True, (reason or "").strip()[:MAX_REASON] or f"app setting {SETTING_NAME} is on",
                      Actor.system(f"app setting {SETTING_NAME}"), since, SwitchSource.SETTING)


def effective(setting: KillSwitch, stored: KillSwitch) -> KillSwitch:
    """The switch every stage goes by: thrown if either the setting or an admin threw it; the setting
    first, since only a change of the setting (and a restart) can lift it."""
    return setting if setting.engaged else stored


def change_switch(setting: KillSwitch, stored: KillSwitch, engage: bool, actor: Actor, reason: str,
                  now: dt.datetime) -> SwitchChange | None:
    """An admin throws or lifts the switch; None when it already stands so (nothing to write)."""
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise SwitchRefused(SwitchRefusal.REASON_TOO_LONG, f"the reason is longer than {MAX_REASON} characters")
    if engage and not reason:
        raise SwitchRefused(SwitchRefusal.REASON_REQUIRED, "say why the kill switch is thrown: a reason is required")
    if not engage and setting.engaged:
        raise SwitchRefused(SwitchRefusal.HELD_BY_SETTING,
                            f"the kill switch is held on by the app setting {SETTING_NAME} "
                            f"({setting.reason}); it cannot be lifted here: turn the setting off (the app "
                            "restarts with it)")
    if stored.engaged == engage:
        return None
    if engage:
        switch = replace(stored, engaged=True, reason=reason, by=actor, at=now, source=SwitchSource.ADMIN)
    else:
        switch = replace(stored, engaged=False, reason=reason, by=actor, at=now, source=SwitchSource.ADMIN)
    return SwitchChange(switch, SwitchEntry("switch_thrown" if engage else "switch_lifted", now, actor,
                                            reason or "(no reason given)", SwitchSource.ADMIN))


def note_setting(stored: KillSwitch, setting: KillSwitch, now: dt.datetime) -> SwitchChange | None:
    """At start-up: audit the app setting once when it changed since the store last saw it."""
    seen = f"on|{setting.reason}" if setting.engaged else "off"
    if stored.setting_seen == seen or (not setting.engaged and not stored.setting_seen):
        return None
    actor = Actor.system(f"app setting {SETTING_NAME}")
    entry = SwitchEntry("switch_thrown" if setting.engaged else "switch_lifted", now, actor,
                        setting.reason if setting.engaged else f"app setting {SETTING_NAME} turned off",
                        SwitchSource.SETTING)
    return SwitchChange(replace(stored, setting_seen=seen), entry)


# ---------------------------------------------------------------------------------------------- runs


def pause(run: Run, step_index: int | None, switch: KillSwitch, now: dt.datetime) -> Change | None:
    """Stop a run before its next ARM call: `step_index` is the step about to call it (a claimed one
    is given back, unsent), None for the reads a consent request's previews are made of."""
    if not switch.engaged:
        return None
    step = step_of(run, step_index) if step_index is not None else None
    b = ChangeBuilder(run, now)
    if run.state is RunState.RUNNING:
        if step is None or step.operation is not None or run.current_step() is not step:
            return None
        if step.state is StepState.ATTEMPTING:
            b.set_step(_unclaimed(step, StepState.PENDING))
        elif step.state is StepState.EXECUTING:
            b.set_step(_unclaimed(step, StepState.AWAITING_CREDENTIALS))
        elif step.state not in (StepState.PENDING, StepState.AWAITING_CREDENTIALS):
            return None
        what = f"step {step.index + 1} ({step.action}) called ARM"
    elif run.state is RunState.AWAITING_CONSENT and step is None:
        if any(r.kind is RequestKind.CONSENT and r.state is RequestState.PENDING for r in run.requests):
            return None  # people are asked already; nothing calls ARM until they answer
        what = "the previews consent is asked with were read"
    else:
        return None
    resume_to = run.state
    b.move(RunEvent.SWITCH_THROWN)
    b.run = replace(b.run, pause=Pause(switch.reason, switch.thrower, switch.at or now, now, resume_to, step_index),
                    pauses=run.pauses + 1)
    b.log("run_paused", SWITCH_ACTOR, f"paused by the kill switch before {what}: {switch.describe()}; nothing "
          "is sent to ARM until it is lifted", step=step_index, **switch_details(switch))
    return b.build()


def give_back(run: Run, step_index: int, why: str, now: dt.datetime) -> Change | None:
    """A step claimed by this delivery handed back unsent (the switch could not be read, so the call must
    not go): as it was before the claim, so the redelivery claims it afresh instead of finding an unfinished
    claim and ending the run "outcome unknown" for a call that was never made."""
    step = step_of(run, step_index)
    if step is None or step.operation is not None:
        return None
    b = ChangeBuilder(run, now)
    if step.state is StepState.ATTEMPTING:
        b.set_step(_unclaimed(step, StepState.PENDING))
    elif step.state is StepState.EXECUTING:
        b.set_step(_unclaimed(step, StepState.AWAITING_CREDENTIALS))
    else:
        return None
    b.log("claim_given_back", Actor.system(), f"step {step.index + 1} ({step.action}) was not sent: {why}",
          step=step.index)
    return b.build()


def _unclaimed(step: Step, state: StepState) -> Step:
    """A claimed step given back before its call was sent: as it was before the claim."""
    return replace(step, state=state, claim_message_id=None, claim_delivery=0, client_request_id=None,
                   credential_source=None if state is StepState.PENDING else step.credential_source)


def switch_details(switch: KillSwitch) -> dict[str, str]:
    return {"switch_reason": switch.reason, "switch_by": switch.thrower.name,
            "switch_at": (switch.at.isoformat(timespec="seconds") if switch.at else ""),
            "switch_source": switch.source.value}


def consent_counts(run: Run) -> bool:
    """A consent that has not lapsed: given after the last lapse, if any."""
    return _standing_consent(run) is not None


def _standing_consent(run: Run) -> dt.datetime | None:
    """When the consent that still counts was given (the latest), or None."""
    lapsed = run.consent_lapsed_at
    given = [r.decided_at for r in run.requests if r.kind is RequestKind.CONSENT and r.state is RequestState.GRANTED
             and r.decided_at is not None and (lapsed is None or r.decided_at > lapsed)]
    return max(given, default=None)


def resume(run: Run, switch: KillSwitch, now: dt.datetime, timeouts: Timeouts, freeze: str = "") -> Change | None:
    """A paused run, once the switch is lifted (`switch` is the lifted switch: who lifted it and why).

    It goes back where it stopped with a message of its own (a new id per pause, the same for two
    resumes of one pause, so a duplicate is dropped), unless what it would act on lapsed while it
    waited: a consent given longer ago than consent lasts is asked again, as is a grant given longer ago
    than a grant lasts (the age of the yes, not the length of the pause: several short pauses add up);
    an autonomous run with writes left, inside a change freeze that began meanwhile (`freeze`: its name),
    asks consent too. The preview is read again before any write, on the ordinary path."""
    if switch.engaged or run.state is not RunState.PAUSED or run.pause is None:
        return None
    stopped = run.pause
    waited = now - stopped.paused_at
    b = ChangeBuilder(replace(run, pause=None), now)
    n = run.pauses
    lifted = f" (lifted by {switch.thrower.name}: {switch.reason})" if switch.by is not None and switch.reason else ""
    paused_for = _duration(waited)
    details = {"paused_reason": stopped.reason, "paused_by": stopped.thrown_by.name,
               "paused_for_seconds": int(waited.total_seconds()), **switch_details(switch)}
    if stopped.resume_to is RunState.AWAITING_CONSENT:
        b.log("run_resumed", SWITCH_ACTOR, f"the kill switch was lifted{lifted} after {paused_for}; consent is "
              "asked now", **details)
        b.move(RunEvent.SWITCH_LIFTED_BEFORE_CONSENT)
        b.send(OpenConsent(run.run_id), f"open-resume-{n}")
        return b.build()
    step = run.current_step()
    if step is None:
        return None
    i = step.index
    remaining_write = any(s.kind is ActionKind.WRITE and s.state in (StepState.PENDING, StepState.AWAITING_CREDENTIALS)
                          for s in run.steps)
    consented_at = _standing_consent(run)
    if run.mode is Mode.AUTONOMOUS and remaining_write and freeze:
        b.log("run_resumed", SWITCH_ACTOR, f"the kill switch was lifted{lifted} after {paused_for}, inside change "
              f"freeze {freeze}: nothing runs autonomously now, so consent is asked before anything is done",
              freeze=freeze, **details)
        b.run = replace(b.run, consent_lapsed_at=now, mode=Mode.REVIEW)
        b.move(RunEvent.CONSENT_LAPSED)
        b.send(OpenConsent(run.run_id), f"open-frozen-{n}")
        return b.build()
    if run.mode is Mode.REVIEW and remaining_write and consented_at is not None \
            and now - consented_at > timeouts.consent:
        for request in run.requests:
            if request.sealed_assertion is not None and request.step_index is not None:
                revoke(b, request.step_index)
        if step.state is StepState.AWAITING_CREDENTIALS:
            b.set_step(replace(step, state=StepState.PENDING, credential_source=None))
        b.run = replace(b.run, consent_lapsed_at=now)
        b.log("run_resumed", SWITCH_ACTOR, f"the kill switch was lifted{lifted} after {paused_for}; the consent "
              f"was given {_duration(now - consented_at)} ago, longer than consent lasts "
              f"({_duration(timeouts.consent)}): it no longer counts, and consent is asked again before anything "
              "is done", consent_lapsed=True, **details)
        b.move(RunEvent.CONSENT_LAPSED)
        b.send(OpenConsent(run.run_id), f"open-lapsed-{n}")
        return b.build()
    if step.state is StepState.AWAITING_CREDENTIALS:
        granted = granted_credential(run, i)
        granted_at = granted.decided_at if granted is not None else None
        if granted is None or granted_at is None or now - granted_at > timeouts.credentials:
            if granted is not None:
                revoke(b, i)
            why = (f"the credentials granted before it are older than a grant lasts "
                   f"({_duration(timeouts.credentials)})" if granted is not None else "no granted credentials are held")
            b.log("run_resumed", SWITCH_ACTOR, f"the kill switch was lifted{lifted} after {paused_for}; {why}: "
                  f"credentials for step {i + 1} are asked again", step=i, grant_lapsed=True, **details)
            b.move(RunEvent.GRANT_LAPSED)
            b.send(OpenCredentialRequest(run.run_id, i), f"step-{i}-lapsed-{n}")
            return b.build()
        b.log("run_resumed", SWITCH_ACTOR, f"the kill switch was lifted{lifted} after {paused_for}; step {i + 1} "
              f"({step.action}) goes on with the credentials {granted.decided_by.name if granted.decided_by else ''} "
              "granted", step=i, **details)
        b.move(RunEvent.SWITCH_LIFTED)
        b.send(ExecuteStep(run.run_id, i), f"step-{i}-{granted.request_id}-resume-{n}")
        return b.build()
    if step.state is not StepState.PENDING:
        return None
    b.log("run_resumed", SWITCH_ACTOR, f"the kill switch was lifted{lifted} after {paused_for}; step {i + 1} "
          f"({step.action}) goes on", step=i, **details)
    b.move(RunEvent.SWITCH_LIFTED)
    b.send(AttemptStep(run.run_id, i), f"step-{i}-resume-{n}")
    return b.build()


def _duration(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
