"""Timers that keep runs moving. The resend relay sends the outbox of a run whose send failed where no
queue would redeliver (an HTTP decision); the stall sweeper ends or nudges a run whose next message was
lost or dead-lettered, finishes indexing a run that ended while its host died, and moves what an earlier
layout of the ended index left (a sweep's share at a time; one empty query once none is left).

Both read only what they need: the relay its few `resend` entries, the sweeper the open runs (the index
holds every open run, however long the history of ended ones)."""

from __future__ import annotations

import datetime as dt
import logging

import azure.functions as func

from gates.killswitch import current, resume_all
from gates.shell import send_outbox, transact
from shared.core.sweeper import StallLimits, sweep
from shared.ports import OpenRun
from shared.services import Services, ServicesProvider

logger = logging.getLogger("sre_gates")
# host.json's functionTimeout is 10 minutes: a step in flight for 15 has lost its host.
STALL_LIMITS = StallLimits(claim=dt.timedelta(minutes=15), idle=dt.timedelta(minutes=10))
# An open-index entry whose run was never written (its host died between the two writes) is dropped
# once the alert's redeliveries have certainly stopped.
ABANDONED_AFTER = dt.timedelta(hours=1)


def relay_resends(services: Services) -> int:
    """Send the outboxes noted for a resend; the note goes only once they are sent."""
    run_ids = services.runs.resend_requests()
    for run_id in run_ids:
        try:
            run = services.runs.get_run(run_id)
            if run is not None:
                send_outbox(services, run)
            services.runs.clear_resend(run_id)
        except Exception:
            logger.exception("outbox of run %s not sent; next round retries", run_id)
    if run_ids:
        logger.info("resend relay sent the outboxes of %d run(s)", len(run_ids))
    return len(run_ids)


def sweep_stalled(services: Services, limits: StallLimits = STALL_LIMITS) -> int:
    """Every open run nothing has moved for a while: each one ends, or gets the message it was waiting for."""
    now = services.clock.now()
    touched = 0
    switch = current(services)
    if not switch.engaged:
        # Runs the kill switch paused, once it is off: lifted by a restart with the setting turned off,
        # or by a POST whose host died before it resumed them all.
        touched += resume_all(services, switch, "sweeper")
    for entry in services.runs.open_runs():
        try:
            touched += _sweep_one(services, entry, now, limits)
        except Exception:
            # One run's failure must not stop the sweep of the others; the next round tries it again.
            logger.exception("stall sweeper could not move run %s; next round retries", entry.run_id)
    try:
        if moved := services.runs.move_undated_ended():
            logger.info("stall sweeper moved %d ended-index entries to their day", moved)
    except Exception:
        logger.exception("stall sweeper could not move ended-index entries; next round retries")
    if touched:
        logger.warning("stall sweeper moved %d run(s)", touched)
    return touched


def _sweep_one(services: Services, entry: OpenRun, now: dt.datetime, limits: StallLimits) -> int:
    run = services.runs.get_run(entry.run_id)
    if run is None:
        if now - entry.indexed_at > ABANDONED_AFTER:
            services.runs.drop_open(entry.run_id)
        return 0
    if run.state.is_terminal:  # ended, but its host died before it was indexed as ended
        send_outbox(services, run)
        services.runs.mark_ended(run)
        return 1
    if now - run.updated_at < min(limits.claim, limits.idle):
        return 0
    found = sweep(run, now, limits)
    if found.change is not None:
        transact(services, run.run_id, lambda latest: sweep(latest, now, limits).change, "sweeper", run=run)
        return 1
    if found.resend:
        services.bus.send(found.resend)
        return 1
    return 0


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.function_name("resend_relay")
    @bp.timer_trigger(arg_name="timer", schedule="*/30 * * * * *", run_on_startup=False)
    def resend(timer: func.TimerRequest) -> None:
        relay_resends(services())

    @bp.function_name("stall_sweeper")
    @bp.timer_trigger(arg_name="timer", schedule="0 */5 * * * *", run_on_startup=False)
    def stalled(timer: func.TimerRequest) -> None:
        sweep_stalled(services())

    return bp
