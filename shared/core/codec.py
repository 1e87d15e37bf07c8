"""Runs, audit lines and outbound messages to and from plain JSON-able dictionaries."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from shared.core.model import (
    ActionKind,
    Actor,
    Alert,
    ApprovalRule,
    Approver,
    ArmOperation,
    AuditEvent,
    CommentRule,
    CredentialSource,
    Decision,
    FieldPreview,
    Mode,
    OutboundMessage,
    Pause,
    Proposal,
    Request,
    RequestKind,
    RequestState,
    Run,
    RunState,
    Step,
    StepPreview,
    StepState,
    Vote,
)


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def actor_to_dict(actor: Actor) -> dict[str, str]:
    return {"kind": actor.kind, "id": actor.id, "name": actor.name}


def actor_from_dict(data: dict[str, str]) -> Actor:
    return Actor(data["kind"], data["id"], data["name"])


def approvers_to_list(approvers: tuple[Approver, ...]) -> list[dict[str, str | None]]:
    return [{"upn": a.upn, "object_id": a.object_id} for a in approvers]


def approvers_from_list(data: list[Any]) -> tuple[Approver, ...]:
    return tuple(Approver(a) if isinstance(a, str) else Approver(a["upn"], a.get("object_id")) for a in data)


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id, "rule_id": alert.rule_id, "rule_name": alert.rule_name,
        "severity": alert.severity, "condition": alert.condition, "fired_at": alert.fired_at.isoformat(),
        "targets": list(alert.target_resource_ids), "description": alert.description,
        "custom_properties": alert.custom_properties, "monitoring_service": alert.monitoring_service,
    }


def alert_from_dict(data: dict[str, Any]) -> Alert:
    return Alert(
        alert_id=data["alert_id"], rule_id=data["rule_id"], rule_name=data["rule_name"],
        severity=data["severity"], condition=data["condition"], fired_at=dt.datetime.fromisoformat(data["fired_at"]),
        target_resource_ids=tuple(data["targets"]), description=data.get("description", ""),
        custom_properties=dict(data.get("custom_properties", {})),
        monitoring_service=data.get("monitoring_service", ""),
    )


def proposal_to_dict(proposal: Proposal) -> dict[str, Any]:
    return {
        "agent_id": proposal.agent_id, "agent_name": proposal.agent_name,
        "idempotency_key": proposal.idempotency_key, "fingerprint": proposal.fingerprint,
        "rationale": proposal.rationale, "reference": proposal.reference,
        "requester": approvers_to_list((proposal.requester,))[0] if proposal.requester else None,
    }


def proposal_from_dict(data: dict[str, Any]) -> Proposal:
    requester = data.get("requester")
    return Proposal(
        agent_id=data["agent_id"], agent_name=data["agent_name"], idempotency_key=data["idempotency_key"],
        fingerprint=data["fingerprint"], rationale=data.get("rationale", ""), reference=data.get("reference", ""),
        requester=approvers_from_list([requester])[0] if requester else None,
    )


def step_to_dict(step: Step) -> dict[str, Any]:
    return {
        "index": step.index, "action": step.action, "kind": step.kind.value, "permission": step.permission,
        "parameters": step.parameters, "state": step.state.value,
        "credential_source": step.credential_source.value if step.credential_source else None,
        "claim_message_id": step.claim_message_id, "claim_delivery": step.claim_delivery,
        "outcome": step.outcome, "result": step.result, "claims": step.claims,
        "permissions": list(step.permissions),
        "client_request_id": step.client_request_id,
        "operation": operation_to_dict(step.operation) if step.operation else None,
    }


def step_from_dict(data: dict[str, Any]) -> Step:
    return Step(
        index=data["index"], action=data["action"], kind=ActionKind(data["kind"]), permission=data["permission"],
        parameters=dict(data.get("parameters", {})), state=StepState(data["state"]),
        credential_source=CredentialSource(data["credential_source"]) if data.get("credential_source") else None,
        claim_message_id=data.get("claim_message_id"), claim_delivery=int(data.get("claim_delivery", 0)),
        outcome=data.get("outcome", ""), result=dict(data.get("result", {})), claims=data.get("claims"),
        permissions=tuple(data.get("permissions", ())),
        client_request_id=data.get("client_request_id"),
        operation=operation_from_dict(data["operation"]) if data.get("operation") else None,
    )


def operation_to_dict(operation: ArmOperation) -> dict[str, Any]:
    return {"method": operation.method, "url": operation.url, "status": operation.status,
            "async_operation": operation.async_operation, "location": operation.location,
            "request_id": operation.request_id, "client_request_id": operation.client_request_id,
            "correlation_id": operation.correlation_id}


def operation_from_dict(data: dict[str, Any]) -> ArmOperation:
    return ArmOperation(method=data["method"], url=data["url"], status=int(data["status"]),
                        async_operation=data.get("async_operation"), location=data.get("location"),
                        request_id=data.get("request_id", ""), client_request_id=data.get("client_request_id", ""),
                        correlation_id=data.get("correlation_id", ""))


def request_to_dict(request: Request) -> dict[str, Any]:
    return {
        "request_id": request.request_id, "kind": request.kind.value, "deadline": request.deadline.isoformat(),
        "approvers": approvers_to_list(request.approvers), "plan_hash": request.plan_hash,
        "step_index": request.step_index, "state": request.state.value,
        "decided_by": actor_to_dict(request.decided_by) if request.decided_by else None,
        "decided_at": _iso(request.decided_at), "reason": request.reason, "claims": request.claims,
        "sealed_assertion": request.sealed_assertion,
        "previews": [preview_to_dict(p) for p in request.previews],
        "rule": rule_to_dict(request.rule),
        "reminded": request.reminded, "covers": list(request.covers),
        "votes": [{"actor": actor_to_dict(v.actor), "decision": v.decision.value, "at": v.at.isoformat(),
                   "comment": v.comment, "channel": v.channel} for v in request.votes],
    }


def rule_to_dict(rule: ApprovalRule) -> dict[str, Any]:
    return {"quorum": rule.quorum, "comment": rule.comment.value, "remind_at": rule.remind_at,
            "escalate_to": approvers_to_list(rule.escalate_to)}


def rule_from_dict(data: dict[str, Any] | None) -> ApprovalRule:
    if not data:
        return ApprovalRule()
    remind_at = data.get("remind_at")
    return ApprovalRule(quorum=int(data.get("quorum", 1)), comment=CommentRule(data.get("comment", "optional")),
                        remind_at=float(remind_at) if remind_at is not None else None,
                        escalate_to=approvers_from_list(data.get("escalate_to", [])))


def request_from_dict(data: dict[str, Any]) -> Request:
    return Request(
        request_id=data["request_id"], kind=RequestKind(data["kind"]),
        deadline=dt.datetime.fromisoformat(data["deadline"]), approvers=approvers_from_list(data["approvers"]),
        plan_hash=data["plan_hash"], step_index=data.get("step_index"), state=RequestState(data["state"]),
        decided_by=actor_from_dict(data["decided_by"]) if data.get("decided_by") else None,
        decided_at=_time(data.get("decided_at")), reason=data.get("reason", ""), claims=data.get("claims"),
        sealed_assertion=data.get("sealed_assertion"),
        previews=tuple(preview_from_dict(p) for p in data.get("previews", [])),
        rule=rule_from_dict(data.get("rule")),
        reminded=bool(data.get("reminded", False)), covers=tuple(int(i) for i in data.get("covers", [])),
        votes=tuple(Vote(actor=actor_from_dict(v["actor"]), decision=Decision(v["decision"]),
                         at=dt.datetime.fromisoformat(v["at"]), comment=v.get("comment", ""),
                         channel=v.get("channel", "")) for v in data.get("votes", [])),
    )


def preview_to_dict(preview: StepPreview) -> dict[str, Any]:
    return {"step": preview.step, "action": preview.action, "unavailable": preview.unavailable,
            "fields": [{"field": f.field, "label": f.label, "before": f.before, "after": f.after}
                       for f in preview.fields]}


def preview_from_dict(data: dict[str, Any]) -> StepPreview:
    return StepPreview(int(data["step"]), str(data["action"]),
                       tuple(FieldPreview(f["field"], f["label"], f.get("before"), f.get("after"))
                             for f in data.get("fields", [])), str(data.get("unavailable", "")))


def run_to_dict(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.run_id, "state": run.state.value, "mode": run.mode.value,
        "requested_mode": run.requested_mode.value, "plan_name": run.plan_name, "plan_version": run.plan_version,
        "runbook": run.runbook, "resource_id": run.resource_id,
        "alert": alert_to_dict(run.alert) if run.alert else None,
        "steps": [step_to_dict(s) for s in run.steps], "approvers": approvers_to_list(run.approvers),
        "notify": list(run.notify), "approval": rule_to_dict(run.approval), "created_at": run.created_at.isoformat(),
        "updated_at": run.updated_at.isoformat(), "correlation_key": run.correlation_key,
        "requests": [request_to_dict(r) for r in run.requests], "alert_ids": list(run.alert_ids),
        "outcome": run.outcome, "audit_seq": run.audit_seq,
        "outbox": [message_to_dict(m) for m in run.outbox], "last_trigger": run.last_trigger,
        **({"proposal": proposal_to_dict(run.proposal)} if run.proposal else {}),
        **({"credential_approvers": approvers_to_list(run.credential_approvers)} if run.credential_approvers else {}),
        **({"guardrails": run.guardrails} if run.guardrails else {}),
        **({"pause": pause_to_dict(run.pause)} if run.pause else {}),
        **({"pauses": run.pauses} if run.pauses else {}),
        **({"consent_lapsed_at": _iso(run.consent_lapsed_at)} if run.consent_lapsed_at else {}),
        **({"ended_at": _iso(run.ended_at)} if run.ended_at else {}),
    }


def pause_to_dict(pause: Pause) -> dict[str, Any]:
    return {"reason": pause.reason, "thrown_by": actor_to_dict(pause.thrown_by), "thrown_at": _iso(pause.thrown_at),
            "paused_at": _iso(pause.paused_at), "resume_to": pause.resume_to.value, "step": pause.step}


def pause_from_dict(data: dict[str, Any]) -> Pause:
    return Pause(reason=data["reason"], thrown_by=actor_from_dict(data["thrown_by"]),
                 thrown_at=dt.datetime.fromisoformat(data["thrown_at"]),
                 paused_at=dt.datetime.fromisoformat(data["paused_at"]), resume_to=RunState(data["resume_to"]),
                 step=data.get("step"))


def run_from_dict(data: dict[str, Any], etag: str | None = None) -> Run:
    return Run(
        run_id=data["run_id"], state=RunState(data["state"]), mode=Mode(data["mode"]),
        requested_mode=Mode(data.get("requested_mode", data["mode"])), plan_name=data["plan_name"],
        plan_version=int(data["plan_version"]), runbook=data["runbook"], resource_id=data["resource_id"],
        alert=alert_from_dict(data["alert"]) if data.get("alert") else None,
        steps=tuple(step_from_dict(s) for s in data["steps"]),
        approvers=approvers_from_list(data["approvers"]), notify=tuple(data["notify"]),
        approval=rule_from_dict(data.get("approval")),
        created_at=dt.datetime.fromisoformat(data["created_at"]),
        updated_at=dt.datetime.fromisoformat(data["updated_at"]), correlation_key=data.get("correlation_key", ""),
        requests=tuple(request_from_dict(r) for r in data.get("requests", [])),
        alert_ids=tuple(data.get("alert_ids", [])), outcome=data.get("outcome", ""),
        audit_seq=int(data.get("audit_seq", 0)),
        outbox=tuple(message_from_dict(m) for m in data.get("outbox", [])), last_trigger=data.get("last_trigger"),
        etag=etag, proposal=proposal_from_dict(data["proposal"]) if data.get("proposal") else None,
        credential_approvers=approvers_from_list(data.get("credential_approvers", [])),
        guardrails=data.get("guardrails"),
        pause=pause_from_dict(data["pause"]) if data.get("pause") else None, pauses=int(data.get("pauses", 0)),
        consent_lapsed_at=_time(data.get("consent_lapsed_at")),
        ended_at=_time(data.get("ended_at")),  # absent from a run stored before runs had it: see `Run.ended_time`
    )


def audit_to_dict(event: AuditEvent) -> dict[str, Any]:
    return {"seq": event.seq, "event": event.event, "at": event.at.isoformat(), "actor": actor_to_dict(event.actor),
            "summary": event.summary, "details": event.details}


def audit_from_dict(data: dict[str, Any]) -> AuditEvent:
    return AuditEvent(seq=int(data["seq"]), event=data["event"], at=dt.datetime.fromisoformat(data["at"]),
                      actor=actor_from_dict(data["actor"]), summary=data["summary"], details=dict(data["details"]))


def message_body_text(body: dict[str, Any]) -> str:
    """The text a queued message carries: what the bus sends, and what its size is measured on."""
    return json.dumps(body)


def message_to_dict(message: OutboundMessage) -> dict[str, Any]:
    return {"queue": message.queue, "message_id": message.message_id, "body": message.body,
            "correlation_id": message.correlation_id, "scheduled_for": _iso(message.scheduled_for),
            **({"properties": dict(message.properties)} if message.properties else {})}


def message_from_dict(data: dict[str, Any]) -> OutboundMessage:
    return OutboundMessage(queue=data["queue"], message_id=data["message_id"], body=dict(data["body"]),
                           correlation_id=data["correlation_id"], scheduled_for=_time(data.get("scheduled_for")),
                           properties={str(k): str(v) for k, v in (data.get("properties") or {}).items()})
