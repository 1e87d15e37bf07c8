"""Timers that keep runs moving: the outbox relay sends what a crashed invocation wrote but never sent;
the stall sweeper ends or nudges a run whose next message was lost or dead-lettered."""

from __future__ import annotations

import datetime as dt
import logging

import azure.functions as func

from gates.shell import flush, transact
from shared.core.model import RunState
from shared.core.sweeper import StallLimits, sweep
from shared.services import Services, ServicesProvider

logger = logging.getLogger("sre_gates")
GRACE = dt.timedelta(seconds=30)  # leave the writer time to send its own messages first
# host.json's functionTimeout is 10 minutes: a step in flight for 15 has lost its host.
STALL_LIMITS = StallLimits(claim=dt.timedelta(minutes=15), idle=dt.timedelta(minutes=10))
OPEN_STATES = (RunState.RUNNING, RunState.AWAITING_CONSENT, RunState.AWAITING_CREDENTIALS)


def relay_outbox(services: Services) -> int:
    runs = services.runs.runs_with_pending_messages(services.clock.now() - GRACE)
    for run_id in runs:
        try:
            flush(services, run_id)
        except Exception:
            logger.exception("outbox of run %s not sent; next round retries", run_id)
    if runs:
        logger.info("outbox relay sent pending messages of %d run(s)", len(runs))
    return len(runs)


def sweep_stalled(services: Services, limits: StallLimits = STALL_LIMITS) -> int:
    """Runs nothing has moved for a while: each one ends, or gets the message it was waiting for."""
    now = services.clock.now()
    touched = 0
    for state in OPEN_STATES:
        for run in services.runs.list_runs(state, limit=500):
            if now - run.updated_at < min(limits.claim, limits.idle):
                continue
            found = sweep(run, now, limits)
            if found.change is not None:
                transact(services, run.run_id, lambda latest: sweep(latest, now, limits).change, "sweeper")
                touched += 1
            elif found.resend:
                services.bus.send(found.resend)
                touched += 1
    if touched:
        logger.warning("stall sweeper moved %d run(s)", touched)
    return touched


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.function_name("outbox_relay")
    @bp.timer_trigger(arg_name="timer", schedule="*/30 * * * * *", run_on_startup=False)
    def outbox(timer: func.TimerRequest) -> None:
        relay_outbox(services())

    @bp.function_name("stall_sweeper")
    @bp.timer_trigger(arg_name="timer", schedule="0 */5 * * * *", run_on_startup=False)
    def stalled(timer: func.TimerRequest) -> None:
        sweep_stalled(services())

    return bp
