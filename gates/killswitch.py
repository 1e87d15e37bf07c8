"""The kill switch: read before every ARM call, thrown and lifted over HTTP by a `Gates.Admin`, and the
resumption of the runs it paused.

- `current` is the switch every stage goes by: the app setting (read at start-up) or the stored switch,
  read by one point read each time it is asked, never from a cache, so that no ARM call starts in a
  stage that could have seen the switch thrown.
- `GET /api/kill-switch` shows it (who, when, why, and the last throws and lifts) and changes nothing;
  `POST /api/kill-switch` with `{"engaged": true|false, "reason": "..."}` throws or lifts it. The route
  is not `/api/admin/...`: the Functions host refuses function routes that start with `admin` (its own
  admin API lives there, whatever the route prefix).
- Lifting resends each paused run's next message through its outbox (`transact`, idempotent); the stall
  sweeper does the same whenever the switch is off, which covers a lift by restart (the setting turned
  off) and a host that died in the middle of a lift.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import urllib.parse
from concurrent.futures import Future
from typing import Any

import azure.functions as func

from gates.http_auth import is_api_call, principal_from
from gates.rendering import json_response
from gates.shell import ahead, transact
from shared.core.arm_outcomes import ArmOutcome, OutcomeKind
from shared.core.authority import ADMIN_ROLE
from shared.core.errors import ConcurrencyConflict
from shared.core.links import timed_form_token, timed_form_token_is_valid
from shared.core.model import Run, RunState
from shared.core.pause import (
    KillSwitch,
    SwitchEntry,
    SwitchRefusal,
    SwitchRefused,
    change_switch,
    effective,
    give_back,
    note_setting,
    pause,
    resume,
)
from shared.services import Services, ServicesProvider

logger = logging.getLogger("sre_gates")
STAGE = "kill_switch"
ROUTE = "kill-switch"
FORM_PURPOSE = "kill-switch"  # the form token of a browser's POST is bound to the person and to this form
REFUSAL_STATUS = {SwitchRefusal.REASON_REQUIRED: 400, SwitchRefusal.REASON_TOO_LONG: 400,
                  SwitchRefusal.HELD_BY_SETTING: 409}


def current(services: Services) -> KillSwitch:
    """The switch as it stands now: one point read of the store (never cached), and the setting."""
    stored = services.switches.get()
    if not services.switch_setting_noted:
        services.switch_setting_noted = True
        note_setting_change(services, stored)
    return effective(services.policy.kill_switch, stored)


def read_ahead(services: Services) -> Future[KillSwitch]:
    """`current`, read on a thread of its own while the stage reads its run: the read the next ARM call
    goes by (`hold_before_arm(..., ahead=...)`), done before that call starts and fresh for it alone."""
    return ahead(current, services)


def note_setting_change(services: Services, stored: KillSwitch) -> None:
    """Audit the app setting GATES_KILL_SWITCH once when it changed since the store last saw it (each host
    compares it with its first read of the switch; the first to write records it, the others find it
    recorded). Best effort: the setting holds whether or not its audit line could be written."""
    for _ in range(3):
        try:
            change = note_setting(stored, services.policy.kill_switch, services.clock.now())
            if change is None:
                return
            services.switches.put(change)
        except ConcurrencyConflict:
            stored = services.switches.get()  # another host wrote first: compare with what it wrote
            continue
        except Exception:
            logger.exception("the kill switch setting's change could not be audited")
            return
        if change.entry is not None and services.audit_sink is not None:
            services.audit_sink.switch_changed(change.entry)
        return


def pause_run(services: Services, run: Run, step: int | None, switch: KillSwitch, stage: str,
              trigger: str | None) -> Run | None:
    """Stop `run` before its next ARM call (`step`'s, or the consent previews' when None). Indexed as
    paused first, so that lifting the switch finds it whatever happens after."""
    services.runs.mark_paused(run.run_id)
    now = services.clock.now()
    written = transact(services, run.run_id, lambda latest: pause(latest, step, switch, now), stage,
                       trigger=trigger, run=run)
    return settle_pause(services, written, stage)


def settle_pause(services: Services, run: Run | None, stage: str) -> Run | None:
    """A run just paused, if the switch was lifted meanwhile (the lift's scan may have run before the
    pause was written): resume it now rather than leave it for the sweeper."""
    if run is not None and run.state is RunState.PAUSED:
        switch = current(services)
        if not switch.engaged:
            resume_paused(services, run.run_id, switch, stage)
    return run


def hold_before_arm(services: Services, run: Run, step: int, stage: str, trigger: str,
                    ahead: Future[KillSwitch] | None = None) -> bool:
    """Just before a step's own ARM call: True when the switch is thrown (a claimed step is given back
    unsent and the run paused), False when the call may go. A switch that cannot be read stops the call
    too: the step is given back and the delivery fails, to be tried again. With `ahead`, the switch as
    `read_ahead` read it for this call (one read per call: a second call reads again)."""
    try:
        switch = ahead.result() if ahead is not None else current(services)
    except Exception:
        now = services.clock.now()
        transact(services, run.run_id, lambda latest: give_back(latest, step, "the kill switch could not be read; "
                                                                "the delivery is tried again", now),
                 stage, trigger=trigger, run=run)
        raise
    if not switch.engaged:
        return False
    logger.warning("run %s step %s: kill switch thrown; not calling ARM", run.run_id, step)
    pause_run(services, run, step, switch, stage, trigger)
    return True


def held_at_retry(services: Services, run: Run, step: int, outcome: ArmOutcome, stage: str, trigger: str) -> bool:
    """True when ARM throttled the step's write and the switch, thrown since, kept it from being sent again:
    ARM did nothing, so the step is given back and the run paused, as before any call."""
    if outcome.kind is not OutcomeKind.NOT_SENT:
        return False
    logger.warning("run %s step %s: throttled write not sent again, the kill switch is thrown", run.run_id, step)
    pause_run(services, run, step, current(services), stage, trigger)
    return True


def resume_paused(services: Services, run_id: str, switch: KillSwitch, stage: str) -> bool:
    """Resume one paused run (once: a second resume of the same pause finds it resumed and does nothing);
    True when it is no longer paused, and its paused-index entry is dropped."""
    if switch.engaged:
        return False
    now = services.clock.now()
    run = transact(services, run_id, lambda latest: resume(latest, switch, now, services.policy.timeouts,
                                                           _freeze_at(services, latest.resource_id, now)), stage,
                   sends_may_wait=True)
    if run is not None and run.state is RunState.PAUSED:
        return False
    services.runs.drop_paused(run_id)
    return True


def _freeze_at(services: Services, resource_id: str, now: dt.datetime) -> str:
    """The change freeze covering the resource now, if any (a run paused before it began must not act
    autonomously inside it)."""
    covering = next((f for f in services.policy.plans.guardrails.freezes if f.covers(resource_id, now)), None)
    return covering.name if covering is not None else ""


def resume_all(services: Services, switch: KillSwitch, stage: str) -> int:
    """Every run the paused index lists, resumed; one's failure does not stop the others (the sweeper
    tries again)."""
    resumed = 0
    for run_id in services.runs.paused_runs():
        try:
            resumed += resume_paused(services, run_id, switch, stage)
        except Exception:
            logger.exception("paused run %s not resumed; the stall sweeper tries again", run_id)
    return resumed


# ---------------------------------------------------------------------------------------------- HTTP


def _switch_json(switch: KillSwitch, setting: KillSwitch) -> dict[str, Any]:
    return {"engaged": switch.engaged, "reason": switch.reason, "source": switch.source.value,
            "by": switch.by.name if switch.by else None, "by_id": switch.by.id if switch.by else None,
            "at": switch.at.isoformat() if switch.at else None,
            "held_by_setting": setting.engaged,
            "liftable": switch.engaged and not setting.engaged}


def _entry_json(entry: SwitchEntry) -> dict[str, Any]:
    return {"event": entry.event, "at": entry.at.isoformat(), "by": entry.actor.name, "by_id": entry.actor.id,
            "reason": entry.reason, "source": entry.source.value}


def _refusal(req: func.HttpRequest) -> func.HttpResponse | None:
    principal = principal_from(req)
    if principal is None:
        return json_response({"status": 401, "message": "sign in to use the kill switch"}, 401)
    if ADMIN_ROLE not in principal.roles:
        return json_response({"status": 403, "message": f"{principal.name} does not hold the {ADMIN_ROLE} role, "
                              "which the kill switch needs"}, 403)
    return None


def show_switch(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    """The switch as it stands, and its last throws and lifts. Reads only."""
    if (refused := _refusal(req)) is not None:
        return refused
    principal = principal_from(req)
    assert principal is not None
    stored = services.switches.get()
    switch = effective(services.policy.kill_switch, stored)
    return json_response({**_switch_json(switch, services.policy.kill_switch),
                          "paused_runs": f"/api/runs?{urllib.parse.urlencode({'state': RunState.PAUSED.value})}",
                          "history": [_entry_json(e) for e in services.switches.history()],
                          # A browser's POST must carry it (its session rides on a cookie); a bearer call need not.
                          "form_token": timed_form_token(services.policy.form_key, principal.object_id, FORM_PURPOSE,
                                                        services.clock.now())})


def _body(req: func.HttpRequest) -> dict[str, Any]:
    raw = req.get_body() or b""
    if "application/json" in req.headers.get("Content-Type", ""):
        document = json.loads(raw or b"{}")
        if not isinstance(document, dict):
            raise ValueError("the body must be a JSON object")
        return document
    return {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}


def _engaged(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "on", "1", "false", "off", "0"):
        return value.lower() in ("true", "on", "1")
    raise ValueError("engaged must be true or false")


def set_switch(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    """Throw or lift the switch (a reason is required to throw it); lifting resumes the paused runs."""
    if (refused := _refusal(req)) is not None:
        return refused
    principal = principal_from(req)
    assert principal is not None
    try:
        body = _body(req)
        engage = _engaged(body.get("engaged"))
        reason = body.get("reason", "")
        if not isinstance(reason, str):
            raise ValueError("reason must be text")
    except (ValueError, UnicodeDecodeError) as error:
        return json_response({"status": 400, "message": f"the body must be {{\"engaged\": true|false, \"reason\": "
                              f"\"...\"}}: {error}"}, 400)
    # A browser session rides on a cookie, so its POST must carry the token issued to this person for
    # this form (as decisions do); an API call carries its own bearer token and cannot be forged cross-site.
    if not is_api_call(req) and not timed_form_token_is_valid(services.policy.form_key, principal.object_id,
                                                              FORM_PURPOSE, str(body.get("form_token", "")),
                                                              services.clock.now()):
        return json_response({"status": 403, "message": "this form was not issued to you; read the switch "
                              "(GET) again and send its form_token"}, 403)
    setting = services.policy.kill_switch
    written: KillSwitch | None = None
    entry: SwitchEntry | None = None
    try:
        for _ in range(5):
            stored = services.switches.get()
            change = change_switch(setting, stored, engage, principal.actor, reason, services.clock.now())
            if change is None:
                written = stored
                break
            try:
                written = services.switches.put(change)
            except ConcurrencyConflict:
                continue
            entry = change.entry
            break
    except SwitchRefused as refusal:
        return json_response({"status": REFUSAL_STATUS[refusal.refusal], "message": refusal.message,
                              "refusal": refusal.refusal.value,
                              **_switch_json(effective(setting, services.switches.get()), setting)},
                             REFUSAL_STATUS[refusal.refusal])
    if written is None:
        return json_response({"status": 409, "message": "the kill switch kept changing; try again"}, 409)
    if entry is not None:
        logger.warning("kill switch %s by %s: %s", "thrown" if engage else "lifted", principal.object_id, reason)
        if services.audit_sink is not None:
            services.audit_sink.switch_changed(entry)
    switch = effective(setting, written)
    # Lifting, even when it stood lifted already (a host died mid-lift): resume what is still paused.
    resumed = resume_all(services, switch, STAGE) if not switch.engaged else 0
    return json_response({**_switch_json(switch, setting), "changed": entry is not None, "resumed": resumed})


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.function_name("kill_switch_show")
    @bp.route(route=ROUTE, methods=["GET", "HEAD"], auth_level=func.AuthLevel.ANONYMOUS)
    def show(req: func.HttpRequest) -> func.HttpResponse:
        return show_switch(services(), req)

    @bp.function_name("kill_switch_set")
    @bp.route(route=ROUTE, methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    def post(req: func.HttpRequest) -> func.HttpResponse:
        return set_switch(services(), req)

    return bp
