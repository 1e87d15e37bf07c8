"""Deciding a request, as pure rules: a reason with each answer where the plan asks for one, a quorum
of distinct approvers where the plan asks for it (any deny ends the run; nobody counts twice), first
answer wins otherwise, and every closing of a request tells the people it asked."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

import pytest

from shared.core import codec
from shared.core.authority import Principal
from shared.core.change import Change
from shared.core.errors import ConfigError
from shared.core.messages import AttemptStep, RequestClosed, decode
from shared.core.model import ApprovalRule, Approver, CommentRule, Decision, RequestState, Run, RunState
from shared.core.plans import parse_plan_book
from shared.core.requests import (
    Answer,
    DecisionRefused,
    Refusal,
    Timeouts,
    decide,
    expire,
    open_consent_request,
    remind,
)
from shared.core.runs import alert_verdict, start_run
from shared.topology import Queue
from tests.pipeline import ALICE, BOB, CATALOG, alert, plan_book

NOW = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
TIMEOUTS = Timeouts(consent=dt.timedelta(minutes=30), credentials=dt.timedelta(minutes=15))
CAROL_OID = "ca201000-0000-4000-8000-000000000005"


def person(oid: str, upn: str) -> Principal:
    return Principal(object_id=oid, name=upn, roles=frozenset({"Gates.Approver"}))


ALICE_P, BOB_P = person(ALICE.object_id, ALICE.upn), person(BOB.object_id, BOB.upn)


FIRST_ANSWER_WINS = ApprovalRule()


def asking(rule: ApprovalRule = FIRST_ANSWER_WINS) -> Run:
    from shared.core.alerts import parse_alert

    book = parse_plan_book(plan_book("review", ["vm.restart"]), "plans.json", CATALOG)
    plan = replace(book.plans[0], approval=rule)
    parsed = parse_alert(json.dumps(alert()))
    started = start_run("run1", parsed, parsed.target_resource_id, plan, 7, plan.mode, NOW,
                        verdict=alert_verdict(book, plan, parsed, parsed.target_resource_id, plan.mode, NOW)).run
    change = open_consent_request(started, "req1", NOW, TIMEOUTS)
    assert change is not None
    return change.run


def answer(run: Run, who: Principal, decision: Decision, comment: str = "", channel: str = "browser") -> Change:
    request = run.requests[0]
    return decide(run, "req1", decision, who, request.plan_hash, NOW + dt.timedelta(minutes=1),
                  answer=Answer(comment=comment, channel=channel))


def closed(change: Change) -> list[str]:
    return [m.body["request_id"] for m in change.messages
            if m.queue == Queue.NOTIFICATIONS.value and m.body.get("kind") == "request_closed"]


# ------------------------------------------------------------------------------------- first answer


def test_by_default_the_first_approval_decides() -> None:
    change = answer(asking(), ALICE_P, Decision.APPROVE)
    assert change.run.requests[0].state is RequestState.GRANTED
    assert change.run.state is RunState.RUNNING


def test_a_comment_is_optional_by_default_and_kept_when_given() -> None:
    change = answer(asking(), BOB_P, Decision.DENY, comment="VM is being migrated, leave it")
    request = change.run.requests[0]
    assert request.comment == "VM is being migrated, leave it"
    assert change.audit[0].details["comment"] == "VM is being migrated, leave it"
    assert "VM is being migrated, leave it" in change.run.outcome


def test_a_decision_records_the_channel_and_the_plan_version_and_hash_it_saw() -> None:
    run = asking()
    details = answer(run, ALICE_P, Decision.APPROVE, channel="api").audit[0].details
    assert details["channel"] == "api"
    assert details["plan_version"] == 7
    assert details["plan_hash"] == run.requests[0].plan_hash


# ------------------------------------------------------------------------------------------ reasons


def test_a_plan_that_asks_a_reason_to_deny_refuses_a_bare_deny() -> None:
    with pytest.raises(DecisionRefused) as refused:
        answer(asking(ApprovalRule(comment=CommentRule.TO_DENY)), BOB_P, Decision.DENY, comment="  ")
    assert refused.value.refusal is Refusal.COMMENT_REQUIRED


def test_a_plan_that_asks_a_reason_to_deny_takes_a_bare_approval() -> None:
    change = answer(asking(ApprovalRule(comment=CommentRule.TO_DENY)), ALICE_P, Decision.APPROVE)
    assert change.run.requests[0].state is RequestState.GRANTED


def test_a_plan_that_always_asks_a_reason_refuses_a_bare_approval() -> None:
    with pytest.raises(DecisionRefused) as refused:
        answer(asking(ApprovalRule(comment=CommentRule.ALWAYS)), ALICE_P, Decision.APPROVE)
    assert refused.value.refusal is Refusal.COMMENT_REQUIRED


def test_a_reason_longer_than_a_thousand_characters_is_refused() -> None:
    with pytest.raises(DecisionRefused) as refused:
        answer(asking(), BOB_P, Decision.DENY, comment="x" * 1001)
    assert refused.value.refusal is Refusal.COMMENT_TOO_LONG


# ------------------------------------------------------------------------------------------- quorum


def test_with_a_quorum_of_two_one_approval_leaves_the_request_open() -> None:
    change = answer(asking(ApprovalRule(quorum=2)), ALICE_P, Decision.APPROVE)
    request = change.run.requests[0]
    assert request.state is RequestState.PENDING
    assert change.run.state is RunState.AWAITING_CONSENT
    assert [e.event for e in change.audit] == ["consent_approval"]
    assert not any(decode(Queue(m.queue), m.body) == AttemptStep("run1", 0) for m in change.messages)


def test_with_a_quorum_of_two_the_second_distinct_approver_grants_consent() -> None:
    first = answer(asking(ApprovalRule(quorum=2)), ALICE_P, Decision.APPROVE).run
    change = answer(first, BOB_P, Decision.APPROVE)
    assert change.run.requests[0].state is RequestState.GRANTED
    assert change.run.state is RunState.RUNNING
    assert "alice@contoso.test, bob@contoso.test consented" in change.audit[0].summary


def test_the_same_person_never_counts_twice() -> None:
    first = answer(asking(ApprovalRule(quorum=2)), ALICE_P, Decision.APPROVE).run
    with pytest.raises(DecisionRefused) as refused:
        answer(first, ALICE_P, Decision.APPROVE)
    assert refused.value.refusal is Refusal.ALREADY_ANSWERED


def test_the_same_object_under_another_sign_in_name_never_counts_twice() -> None:
    first = answer(asking(ApprovalRule(quorum=2)), ALICE_P, Decision.APPROVE).run
    with pytest.raises(DecisionRefused):
        answer(first, person(ALICE.object_id.upper(), ALICE.upn.upper()), Decision.APPROVE)


def test_with_a_quorum_any_deny_ends_the_run() -> None:
    first = answer(asking(ApprovalRule(quorum=2)), ALICE_P, Decision.APPROVE).run
    change = answer(first, BOB_P, Decision.DENY, comment="not during the sale")
    assert change.run.state is RunState.DENIED
    assert [v.decision for v in change.run.requests[0].votes] == [Decision.APPROVE, Decision.DENY]


# -------------------------------------------------------------------------------- everyone is told


def test_a_decided_request_tells_the_people_it_asked() -> None:
    assert closed(answer(asking(), ALICE_P, Decision.APPROVE)) == ["req1"]


def test_an_approval_short_of_the_quorum_closes_nothing() -> None:
    assert closed(answer(asking(ApprovalRule(quorum=2)), ALICE_P, Decision.APPROVE)) == []


def test_an_expired_request_tells_the_people_it_asked() -> None:
    change = expire(asking(), "req1", NOW + dt.timedelta(hours=1))
    assert change is not None
    assert closed(change) == ["req1"]


def test_a_request_cancelled_by_the_runs_end_tells_the_people_it_asked() -> None:
    from shared.core.runs import join_run

    resolved = alert(condition="Resolved")
    from shared.core.alerts import parse_alert

    change = join_run(asking(), parse_alert(json.dumps(resolved)), NOW + dt.timedelta(minutes=2))
    assert change is not None
    assert change.run.state is RunState.CANCELLED
    assert closed(change) == ["req1"]
    assert RequestClosed("run1", "req1") in [decode(Queue(m.queue), m.body) for m in change.messages]


# ------------------------------------------------------------------------------------- the plan file


def test_a_plan_asks_for_a_quorum_and_reasons_in_its_approval_settings() -> None:
    book = json.loads(plan_book("review", ["vm.restart"]))
    book["plans"][0]["approval"] = {"quorum": 2, "comment": "to-deny"}
    plan = parse_plan_book(json.dumps(book), "plans.json", CATALOG).plans[0]
    assert plan.approval == ApprovalRule(quorum=2, comment=CommentRule.TO_DENY)


@pytest.mark.parametrize(("approval", "problem"), [
    ({"quorum": 3}, "from 1 to the 2 approver(s)"),
    ({"quorum": 0}, "from 1 to the 2 approver(s)"),
    ({"quorum": True}, "whole number"),
    ({"comment": "sometimes"}, "must be one of"),
    ({"quorom": 2}, "unknown settings ['quorom']"),
])
def test_a_wrong_approval_setting_stops_the_app_naming_it(approval: dict[str, object], problem: str) -> None:
    book = json.loads(plan_book("review", ["vm.restart"]))
    book["plans"][0]["approval"] = approval
    with pytest.raises(ConfigError) as error:
        parse_plan_book(json.dumps(book), "plans.json", CATALOG)
    assert problem in str(error.value)
    assert "plans[plan].approval" in str(error.value)


def test_votes_and_the_rule_survive_the_store() -> None:
    run = answer(asking(ApprovalRule(quorum=2, comment=CommentRule.TO_DENY)), ALICE_P, Decision.APPROVE,
                 comment="checked the dashboards").run
    again = codec.run_from_dict(json.loads(json.dumps(codec.run_to_dict(run))))
    assert again.requests[0].votes == run.requests[0].votes
    assert again.requests[0].rule == run.requests[0].rule
    assert again.approval == run.approval


def test_a_stored_request_from_before_votes_reads_as_first_answer_wins() -> None:
    run = asking()
    data = codec.run_to_dict(run)
    for request in data["requests"]:
        request.pop("votes")
        request.pop("rule")
    data.pop("approval")
    again = codec.run_from_dict(data)
    assert again.requests[0].rule == ApprovalRule()
    assert again.requests[0].votes == ()


# ------------------------------------------------------------------------------ reminders, escalation

CAROL = Approver("carol@contoso.test", CAROL_OID)
REMIND_AND_ESCALATE = ApprovalRule(remind_at=0.5, escalate_to=(CAROL,))


def test_a_plan_that_reminds_schedules_the_reminder_at_its_fraction_of_the_deadline() -> None:
    run = asking(REMIND_AND_ESCALATE)
    request = run.requests[0]
    reminders = [m for m in run.outbox if m.body.get("kind") == "remind_request"]
    assert [m.scheduled_for for m in reminders] == [NOW + (request.deadline - NOW) / 2]


def test_a_plan_without_reminders_schedules_none() -> None:
    assert not [m for m in asking().outbox if m.body.get("kind") == "remind_request"]


def test_a_reminder_reminds_those_who_have_not_answered_and_asks_the_escalation_group() -> None:
    first = answer(asking(replace(REMIND_AND_ESCALATE, quorum=2)), ALICE_P, Decision.APPROVE).run
    change = remind(first, "req1", NOW + dt.timedelta(minutes=15))
    assert change is not None
    assert [e.event for e in change.audit] == ["request_reminded", "request_escalated"]
    assert change.audit[0].details["reminded"] == ["bob@contoso.test"]
    assert CAROL in change.run.requests[0].approvers
    assert [m.body["kind"] for m in change.messages] == ["request_reminded"]


def test_the_escalation_group_may_decide() -> None:
    reminded = remind(asking(REMIND_AND_ESCALATE), "req1", NOW + dt.timedelta(minutes=15))
    assert reminded is not None
    change = answer(reminded.run, person(CAROL_OID, "carol@contoso.test"), Decision.APPROVE)
    assert change.run.state is RunState.RUNNING


def test_a_reminder_comes_once() -> None:
    reminded = remind(asking(REMIND_AND_ESCALATE), "req1", NOW + dt.timedelta(minutes=15))
    assert reminded is not None
    assert remind(reminded.run, "req1", NOW + dt.timedelta(minutes=16)) is None


def test_no_reminder_after_a_decision() -> None:
    decided = answer(asking(REMIND_AND_ESCALATE), ALICE_P, Decision.APPROVE).run
    assert remind(decided, "req1", NOW + dt.timedelta(minutes=15)) is None


def test_escalation_needs_a_reminder_time_in_the_plan() -> None:
    book = json.loads(plan_book("review", ["vm.restart"]))
    book["plans"][0]["approval"] = {"escalateTo": ["carol@contoso.test"]}
    with pytest.raises(ConfigError) as error:
        parse_plan_book(json.dumps(book), "plans.json", CATALOG)
    assert "set remindAt too" in str(error.value)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.2, "half", True])
def test_a_reminder_fraction_must_lie_between_zero_and_one(fraction: object) -> None:
    book = json.loads(plan_book("review", ["vm.restart"]))
    book["plans"][0]["approval"] = {"remindAt": fraction}
    with pytest.raises(ConfigError) as error:
        parse_plan_book(json.dumps(book), "plans.json", CATALOG)
    assert "plans[plan].approval.remindAt" in str(error.value)
