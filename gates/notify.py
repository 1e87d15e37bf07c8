"""Notifications: tell the people a plan names that a decision waits for them, and how a run ended."""

from __future__ import annotations

import logging
from html import escape

import azure.functions as func

from gates.pages import changes_block, plan_table, source_section, unknown_outcome_banner, unknown_outcome_notice
from gates.shell import Delivery, on_queue
from shared.core.messages import RequestOpened, RunEnded
from shared.core.model import RequestKind, RequestState, Run
from shared.core.previews import lines as preview_lines
from shared.services import Services, ServicesProvider
from shared.topology import Queue

logger = logging.getLogger("sre_gates")


def request_link(services: Services, run_id: str, request_id: str) -> str:
    return f"{services.policy.public_base_url}/api/runs/{run_id}/requests/{request_id}"


def run_link(services: Services, run_id: str) -> str:
    return f"{services.policy.public_base_url}/api/runs/{run_id}"


def handle_notification(message: RequestOpened | RunEnded, services: Services, delivery: Delivery) -> None:
    run = services.runs.get_run(message.run_id)
    if run is None:
        logger.warning("notification for unknown run %s", message.run_id)
        return
    if isinstance(message, RequestOpened):
        _request_opened(services, run, message.request_id)
    else:
        _run_ended(services, run)


def _request_opened(services: Services, run: Run, request_id: str) -> None:
    request = run.request(request_id)
    if request is None or request.state is not RequestState.PENDING:
        return  # decided or expired before the mail went out: nothing to ask any more
    link = request_link(services, run.run_id, request_id)
    if request.kind is RequestKind.CONSENT:
        subject = f"[SRE agent] Consent needed: {run.runbook} on {run.resource_id.rsplit('/', 1)[-1]}"
        ask = "The SRE agent asks for your consent to run this plan."
    else:
        step = (request.step_index or 0) + 1
        subject = f"[SRE agent] Credentials needed for step {step} on {run.resource_id.rsplit('/', 1)[-1]}"
        ask = (f"The agent's own identity may not perform step {step}. It asks for temporary use of your "
               "credentials (Microsoft Entra on-behalf-of) for that step only.")
    deadline = request.deadline.strftime("%H:%M UTC")
    changes = "".join(f"What will change, {line}\n" for line in preview_lines(request.previews))
    source = (f"Alert: {run.alert.summary}" if run.alert
              else f"From: {run.source_label}" + (f"\nWhy: {run.proposal.rationale}" if run.proposal else ""))
    text = (f"{ask}\n\n{source}\nResource: {run.resource_id}\n"
            f"Plan: {run.plan_name} v{run.plan_version}, runbook {run.runbook}, mode {run.mode.value}\n"
            f"Steps: {', '.join(s.action for s in run.steps)}\n{changes}\nReview and decide before {deadline}: {link}\n"
            "Opening the link changes nothing; you decide on the page after signing in.\n"
            "No answer by the deadline means no action.")
    table = plan_table(run, request.step_index, services.policy.plans.catalog)
    html = (f"<p>{escape(ask)}</p>{source_section(run)}"
            f"<p><b>Resource</b> <code>{escape(run.resource_id)}</code></p>{table}{changes_block(request)}"
            f"<p><a href='{escape(link)}'>Review and decide</a> before {deadline}. No answer means no action.</p>")
    services.notifier.send([a.upn for a in request.approvers], subject, text, html)


def _run_ended(services: Services, run: Run) -> None:
    recipients = sorted({*(a.upn for a in run.approvers), *run.notify})
    if not recipients:
        return
    link = run_link(services, run.run_id)
    subject = f"[SRE agent] Run {run.state.value}: {run.runbook or run.source_label} on " \
              f"{run.resource_id.rsplit('/', 1)[-1]}"
    text = f"Run {run.run_id} {run.state.value}: {run.outcome}\nResource: {run.resource_id}\nTimeline: {link}\n"
    table = plan_table(run, catalog=services.policy.plans.catalog)
    notice = unknown_outcome_notice(run)
    if notice is not None:  # first, before anything else: someone must check by hand
        subject = subject.replace(f"Run {run.state.value}:", f"Run {run.state.value}, outcome unknown:", 1)
        text = "\n".join(notice) + "\n\n" + text
    html = (f"{unknown_outcome_banner(run)}<p>Run <b>{escape(run.state.value)}</b>: {escape(run.outcome)}</p>"
            f"<p><code>{escape(run.resource_id)}</code></p>{table}"
            f"<p><a href='{escape(link)}'>Timeline</a></p>")
    services.notifier.send(recipients, subject, text, html)


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()
    on_queue(bp, services, "notify", Queue.NOTIFICATIONS, handle_notification, RequestOpened, RunEnded)
    return bp
