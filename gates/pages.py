"""Small HTML pages, readable on a phone at 3 a.m.: what will happen, to what, and who decides."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from html import escape
from typing import Any

from shared.core.catalog import ActionSpec
from shared.core.model import AuditEvent, Request, RequestKind, RequestState, Run
from shared.core.previews import lines as preview_lines
from shared.core.steps import unknown_outcome
from shared.ports import RunSummary

STYLE = """
body{font-family:system-ui,sans-serif;max-width:40rem;margin:1rem auto;padding:0 1rem;line-height:1.45;color:#1b1b1b}
h1{font-size:1.3rem} .state{display:inline-block;padding:.1rem .5rem;border-radius:.3rem;background:#eee}
.write{color:#a4262c;font-weight:600} .read{color:#107c10} table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.3rem;border-bottom:1px solid #ddd;vertical-align:top;font-size:.95rem}
button{font-size:1.1rem;padding:.7rem 1.2rem;margin:.3rem .5rem .3rem 0;border-radius:.4rem;border:1px solid #888}
.approve{background:#107c10;color:#fff} .deny{background:#a4262c;color:#fff} code{word-break:break-all}
.note{color:#555;font-size:.9rem} h1{word-break:break-all} ol.timeline{padding-left:1.2rem}
ol.timeline li{margin:.5rem 0} .when{color:#555;font-size:.85rem}
.unknown{border:2px solid #a4262c;background:#fde7e9;padding:.6rem .8rem;border-radius:.4rem}
"""


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>")


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def plan_table(run: Run, highlight_step: int | None = None, catalog: Mapping[str, ActionSpec] | None = None) -> str:
    rows = []
    for step in run.steps:
        spec = (catalog or {}).get(step.action)
        what = f"{spec.description} — {spec.impact}" if spec and step.is_write else spec.description if spec \
            else step.action
        mark = " ◀ this step" if step.index == highlight_step else ""
        params = f" {escape(str(step.parameters))}" if step.parameters else ""
        rows.append(
            f"<tr><td>{step.index + 1}</td><td><span class={step.kind.value}>{step.kind.value}</span></td>"
            f"<td>{escape(what)}{params}<br><code>{escape(step.permission)}</code>{mark}</td>"
            f"<td>{escape(step.state.value)}</td></tr>")
    return ("<table><tr><th>#</th><th>kind</th><th>action</th><th>state</th></tr>" + "".join(rows) + "</table>")


def request_page(run: Run, request: Request, *, form: dict[str, str] | None, action_url: str,
                 viewer: str, note: str = "", catalog: Mapping[str, ActionSpec] | None = None) -> str:
    asking = ("consent to run this plan" if request.kind is RequestKind.CONSENT
              else f"temporary use of your credentials for step {(request.step_index or 0) + 1}")
    head = (f"<h1>SRE agent asks for {escape(asking)}</h1>"
            f"<p><b>Resource</b><br><code>{escape(run.resource_id)}</code></p>"
            f"{source_section(run)}"
            f"<p><b>Plan</b> {escape(run.plan_name)} (v{run.plan_version}), runbook {escape(run.runbook)}, "
            f"mode {escape(run.mode.value)}</p>{plan_table(run, request.step_index, catalog)}"
            f"{changes_block(request)}"
            f"<p><b>Request</b> <span class=state>{escape(request.state.value)}</span> — deadline "
            f"{_when(request.deadline)}</p>")
    if request.kind is RequestKind.CREDENTIALS:
        head += ("<p class=note>Granting lets the agent exchange your sign-in for an Azure Resource Manager token "
                 "(scope user_impersonation) through the Microsoft Entra on-behalf-of flow, use it for this one "
                 "step, and discard it when the step completes. It is never stored in clear text.</p>")
    if request.state is not RequestState.PENDING:
        by = f" by {escape(request.decided_by.name)}" if request.decided_by else ""
        return page("Request", head + f"<p>This request is {escape(request.state.value)}{by}. Nothing to decide.</p>")
    if form is None:
        return page("Request", head + f"<p>Signed in as {escape(viewer)}. {escape(note)}</p>")
    hidden = "".join(f"<input type=hidden name={escape(k)} value='{escape(v)}'>" for k, v in form.items())
    yes = "Approve" if request.kind is RequestKind.CONSENT else "Grant credentials"
    buttons = (f"<form method=post action='{escape(action_url)}'>{hidden}"
               "<p><label>Reason (optional; the agent reads it)<br><input name=reason maxlength=500 "
               "style='width:100%'></label></p>"
               f"<button class=approve name=decision value=approve>{yes}</button>"
               f"<button class=deny name=decision value=deny>Deny</button></form>")
    warning = f"<p class=write>{escape(note)}</p>" if note else ""
    return page("Request", head + f"<p>Signed in as {escape(viewer)}.</p>{warning}{buttons}"
                "<p class=note>Opening this page changed nothing. Only a button press records a decision; "
                "the first decision wins.</p>")


def changes_block(request: Request) -> str:
    """What each write will change, as read from the resource when consent was asked (plain text)."""
    if not request.previews:
        return ""
    items = "".join(f"<li>{escape(line)}</li>" for line in preview_lines(request.previews))
    return (f"<p><b>What will change</b> (read from the resource just now; if it changes before the write, "
            f"the write does not run and you are asked again)</p><ul>{items}</ul>")


def source_section(run: Run) -> str:
    """Where the plan came from: the alert, or the agent, its reasons and the person it acts for."""
    if run.alert is not None:
        return (f"<p><b>Alert</b> {escape(run.alert.summary)}, fired "
                f"{_when(run.alert.fired_at)}<br>{escape(run.alert.description)}</p>")
    if run.proposal is None:
        return ""
    p = run.proposal
    requester = f"<br><b>For</b> {escape(p.requester.upn)}" if p.requester else ""
    reference = f"<br><b>Reference</b> {escape(p.reference)}" if p.reference else ""
    return (f"<p><b>Proposed by agent</b> {escape(p.agent_name)} (<code>{escape(p.agent_id)}</code>){requester}"
            f"{reference}<br><b>Why</b> {escape(p.rationale)}</p>")


def message_page(title: str, message: str) -> str:
    return page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")


# ---- banner: a write whose outcome is unknown (kept apart so the page can move to a template) ----
def unknown_outcome_notice(run: Run) -> tuple[str, str] | None:
    """What an operator must know first about a run whose write may or may not have happened: the
    headline and what to look up (the id ARM's activity log finds it by), as plain text."""
    step = unknown_outcome(run)
    if step is None:
        return None
    headline = (f"Outcome unknown: step {step.index + 1} ({step.action}) was sent to Azure Resource Manager and "
                "the host stopped before ARM answered. It was not repeated.")
    lookup = (f"Before acting again, look it up in the activity log of {run.resource_id}: correlation id "
              f"{step.client_request_id or '(none recorded)'}.")
    return headline, lookup


def unknown_outcome_banner(run: Run) -> str:
    notice = unknown_outcome_notice(run)
    if notice is None:
        return ""
    headline, lookup = notice
    return f"<div class=unknown role=alert><p><b>{escape(headline)}</b></p><p>{escape(lookup)}</p></div>"
# ---- end of banner ----


def run_page(run: Run, audit: list[AuditEvent], catalog: Mapping[str, ActionSpec] | None = None) -> str:
    timeline = "".join(
        f"<li><span class=when>{_when(e.at)}</span><br><b>{escape(e.event)}</b> — {escape(e.actor.name)}"
        f"<br>{escape(e.summary)}</li>" for e in audit)
    body = (unknown_outcome_banner(run)  # first on the page: someone must check by hand
            + f"<h1>Run {escape(run.run_id)}</h1><p><span class=state>{escape(run.state.value)}</span> "
            f"{escape(run.outcome)}</p>{source_section(run) if run.proposal else ''}"
            f"<p><b>Resource</b><br><code>{escape(run.resource_id)}</code></p>"
            f"<p><b>Plan</b> {escape(run.plan_name or '(none)')} v{run.plan_version}, mode {escape(run.mode.value)}"
            f"</p>{plan_table(run, catalog=catalog)}<h2>Timeline</h2><ol class=timeline>{timeline}</ol>")
    return page(f"Run {run.run_id}", body)


def run_json(run: Run, audit: list[AuditEvent] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "run_id": run.run_id, "state": run.state.value, "outcome": run.outcome, "mode": run.mode.value,
        "requested_mode": run.requested_mode.value, "plan": run.plan_name, "plan_version": run.plan_version,
        "runbook": run.runbook, "resource_id": run.resource_id,
        "alert_rule": run.alert.rule_name if run.alert else None,
        "severity": run.alert.severity if run.alert else None, "created_at": run.created_at.isoformat(),
        "updated_at": run.updated_at.isoformat(),
        "steps": [{"index": s.index, "action": s.action, "kind": s.kind.value, "permission": s.permission,
                   "state": s.state.value, "identity": s.credential_source.value if s.credential_source else None,
                   "outcome": s.outcome, "correlation_id": s.client_request_id,
                   "operation": (s.operation.async_operation or s.operation.location) if s.operation else None}
                  for s in run.steps],
        "outcome_unknown": unknown_outcome(run) is not None,
        "requests": [{"request_id": r.request_id, "kind": r.kind.value, "state": r.state.value,
                      "deadline": r.deadline.isoformat(), "step": r.step_index,
                      "decided_by": r.decided_by.name if r.decided_by else None,
                      "decided_at": r.decided_at.isoformat() if r.decided_at else None,
                      "changes": preview_lines(r.previews)} for r in run.requests],
    }
    if run.proposal is not None:
        p = run.proposal
        document["proposal"] = {"agent_id": p.agent_id, "agent": p.agent_name, "rationale": p.rationale,
                                "reference": p.reference, "idempotency_key": p.idempotency_key,
                                "requester": p.requester.upn if p.requester else None}
    if audit is not None:
        document["timeline"] = [{"seq": e.seq, "at": e.at.isoformat(), "event": e.event,
                                 "actor": {"kind": e.actor.kind, "id": e.actor.id, "name": e.actor.name},
                                 "summary": e.summary, "details": e.details} for e in audit]
    return document


def summary_json(summary: RunSummary) -> dict[str, Any]:
    return {"run_id": summary.run_id, "state": summary.state.value, "plan": summary.plan_name,
            "resource_id": summary.resource_id, "alert_rule": summary.alert_rule, "severity": summary.severity,
            "created_at": summary.created_at.isoformat(), "updated_at": summary.updated_at.isoformat(),
            "outcome": summary.outcome, "url": f"/api/runs/{summary.run_id}"}

def rejected_alerts_page(items: list[dict[str, Any]], next_url: str | None) -> str:
    """Refused alerts, newest first, with their reasons; each body shown as inert text, never as markup.

    Self-contained (its own markup and style), so it stands apart from the run and request pages."""
    rows = "".join(
        f"<tr><td class=when>{escape(str(item.get('received_at', '')))}</td>"
        f"<td><code>{escape(str(item.get('message_id', '')))}</code><br>{escape(str(item.get('reason', '')))}"
        f"<details><summary>body{' (cut)' if item.get('body_cut') else ''}</summary>"
        f"<pre>{escape(str(item.get('body', '')))}</pre></details></td></tr>"
        for item in items)
    more = f"<p><a href='{escape(next_url, quote=True)}'>Older</a></p>" if next_url else "<p class=note>No older.</p>"
    table = (f"<table><tr><th>received</th><th>why it was refused</th></tr>{rows}</table>" if items
             else "<p>No alert has been refused.</p>")
    style = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem;line-height:1.45}"
             "table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.3rem;vertical-align:top;"
             "border-bottom:1px solid #ddd}pre{white-space:pre-wrap;word-break:break-all;max-height:20rem;"
             "overflow:auto;background:#f6f6f6;padding:.5rem}.when{color:#555;font-size:.85rem;white-space:nowrap}"
             ".note{color:#555}code{word-break:break-all}")
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width,initial-scale=1'><title>Rejected alerts</title>"
            f"<style>{style}</style></head><body><h1>Rejected alerts</h1>"
            "<p class=note>Alerts the intake or the plan stage could not read, and why. Nothing ran for them.</p>"
            f"{table}{more}</body></html>")
