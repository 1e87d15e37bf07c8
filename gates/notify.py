"""Notifications: ask the people who can decide, inform those the plan only notifies, and tell both
how a run ended. Each e-mail is an HTML body with a plain-text alternative, from the templates the
pages use, and its subject carries the whole question."""

from __future__ import annotations

import logging

import azure.functions as func

from gates import views
from gates.rendering import render
from gates.shell import Delivery, on_queue
from shared.core.messages import RequestClosed, RequestOpened, RequestReminded, RunEnded
from shared.core.model import Request, RequestState, Run
from shared.services import Services, ServicesProvider
from shared.topology import Queue

logger = logging.getLogger("sre_gates")


def request_link(services: Services, run_id: str, request_id: str) -> str:
    return f"{services.policy.public_base_url}/api/runs/{run_id}/requests/{request_id}"


def run_link(services: Services, run_id: str) -> str:
    return f"{services.policy.public_base_url}/api/runs/{run_id}"


def handle_notification(message: RequestOpened | RequestClosed | RequestReminded | RunEnded, services: Services,
                        delivery: Delivery) -> None:
    run = services.runs.get_run(message.run_id)
    if run is None:
        logger.warning("notification for unknown run %s", message.run_id)
        return
    if isinstance(message, RequestOpened):
        _request_opened(services, run, message.request_id)
    elif isinstance(message, RequestClosed):
        _request_closed(services, run, message.request_id)
    elif isinstance(message, RequestReminded):
        _request_reminded(services, run, message.request_id)
    else:
        _run_ended(services, run)


def deciders(request: Request) -> list[str]:
    return sorted({a.upn for a in request.approvers}, key=str.lower)


def informed(run: Run, request: Request) -> list[str]:
    """Those the plan only notifies: they hear of the request but cannot act on it."""
    asked = {upn.lower() for upn in deciders(request)}
    return sorted({n for n in run.notify if n.lower() not in asked}, key=str.lower)


def _request_opened(services: Services, run: Run, request_id: str) -> None:
    request = run.request(request_id)
    if request is None or request.state is not RequestState.PENDING:
        return  # decided or expired before the mail went out: nothing to ask any more
    now = services.clock.now()
    page = views.request_page(run, request, now, services.policy.plans.catalog)
    link = request_link(services, run.run_id, request_id)
    subject = views.request_subject(run, request, now)
    _ask(services, deciders(request), subject, page, link, note="")
    if watchers := informed(run, request):
        subject = views.information_subject(run, request, now)
        context = {"page": page, "link": run_link(services, run.run_id), "subject": subject}
        services.notifier.send(watchers, subject, render("email_info.txt", **context),
                               render("email_info.html", **context))


def _ask(services: Services, to: list[str], subject: str, page: views.RequestPage, link: str, note: str) -> None:
    context = {"page": page, "link": link, "subject": subject, "note": note}
    services.notifier.send(to, subject, render("email_request.txt", **context), render("email_request.html", **context))


def _request_reminded(services: Services, run: Run, request_id: str) -> None:
    """A reminder to those asked first who have not answered, and the question itself to the plan's
    escalation group (asked now because nobody has decided)."""
    request = run.request(request_id)
    if request is None or request.state is not RequestState.PENDING:
        return  # decided meanwhile: no reminder after a decision
    now = services.clock.now()
    page = views.request_page(run, request, now, services.policy.plans.catalog)
    link = request_link(services, run.run_id, request_id)
    escalated = {a.upn.lower() for a in request.rule.escalate_to}
    answered = {v.actor.name.lower() for v in request.votes}
    first = [u for u in deciders(request) if u.lower() not in escalated and u.lower() not in answered]
    if first:
        _ask(services, first, views.reminder_subject(run, request, now), page, link,
             note=f"Reminder: nobody has decided yet, {views.time_left(request.deadline, now)}.")
    if second := [u for u in deciders(request) if u.lower() in escalated]:
        _ask(services, second, views.escalation_subject(run, request, now), page, link,
             note="Escalated to you: the first approvers have not decided yet.")


def _request_closed(services: Services, run: Run, request_id: str) -> None:
    """Everyone the request asked hears, once, that it needs nothing more from them, and why."""
    request = run.request(request_id)
    if request is None or request.state is RequestState.PENDING:
        return
    page = views.request_page(run, request, services.clock.now(), services.policy.plans.catalog)
    subject = views.decided_subject(run, request)
    context = {"page": page, "link": run_link(services, run.run_id), "subject": subject}
    services.notifier.send(deciders(request), subject, render("email_closed.txt", **context),
                           render("email_closed.html", **context))


def _told_when_closed(run: Run) -> bool:
    """The run ended because a request was refused, expired or cancelled: its closing e-mail told the
    approvers already, so the run's end is news only to those the plan notifies."""
    return any(r.state in (RequestState.DENIED, RequestState.EXPIRED, RequestState.CANCELLED) for r in run.requests)


def _run_ended(services: Services, run: Run) -> None:
    asked = () if _told_when_closed(run) else tuple(a.upn for a in run.approvers)
    recipients = sorted({*asked, *run.notify}, key=str.lower)
    if not recipients:
        return
    page = views.run_page(run, [], services.clock.now(), services.policy.plans.catalog)
    subject = views.ended_subject(run)
    context = {"page": page, "link": run_link(services, run.run_id), "subject": subject}
    services.notifier.send(recipients, subject, render("email_ended.txt", **context),
                           render("email_ended.html", **context))


def blueprint(services: ServicesProvider) -> func.Blueprint:
    bp = func.Blueprint()
    on_queue(bp, services, "notify", Queue.NOTIFICATIONS, handle_notification, RequestOpened, RequestClosed,
             RequestReminded, RunEnded)
    return bp
