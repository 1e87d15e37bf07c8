"""The outbox relay: sends what a crashed or timed-out invocation wrote but never sent."""

from __future__ import annotations

import datetime as dt
import logging

import azure.functions as func

from gates.shell import flush
from shared.services import Services, ServicesProvider

logger = logging.getLogger("sre_gates")
GRACE = dt.timedelta(seconds=30)  # leave the writer time to send its own messages first


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


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.function_name("outbox_relay")
    @bp.timer_trigger(arg_name="timer", schedule="*/30 * * * * *", run_on_startup=False)
    def outbox(timer: func.TimerRequest) -> None:
        relay_outbox(services())

    return bp
