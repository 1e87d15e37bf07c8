"""The agents policy as read at start-up, and what it decides for a plan, without I/O."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from shared.core.codec import run_from_dict, run_to_dict
from shared.core.errors import ConfigError
from shared.core.model import Mode
from shared.core.plans import parse_plan_book
from shared.core.proposals import Verdict, assess, parse_plan, run_id_for, start_proposed_run
from tests.agents import AGENT_ID, CAROL, agents_book, plan
from tests.pipeline import ALICE, BOB, CATALOG

NOW = dt.datetime(2026, 12, 1, 22, 0, tzinfo=dt.UTC)


def book_with(agent: dict) -> str:
    document = json.loads(agents_book())
    document["agents"] = [{**document["agents"][0], **agent}]
    return json.dumps(document)


@pytest.mark.parametrize(("change", "entry", "words"), [
    ({"clientId": "sre-agent"}, "agents[sre-agent].clientId", "GUID"),
    ({"actions": ["vmss.delete"]}, "agents[sre-agent].actions", "unknown actions"),
    ({"actions": []}, "agents[sre-agent].actions", "at least one"),
    ({"mode": "yolo"}, "agents[sre-agent].mode", "not review"),
    ({"mode": "read-only"}, "agents[sre-agent]", "read-only but allows write"),
    ({"approvers": []}, "agents[sre-agent].approvers", "who is asked"),
    ({"scope": None}, "agents[sre-agent].scope", "required"),
])
def test_a_mistake_in_the_agents_policy_stops_start_up_with_file_entry_and_problem(change, entry, words) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_plan_book(book_with(change), "plans.json", CATALOG)
    assert raised.value.entry == entry
    assert words in raised.value.problem
    assert "plans.json" in str(raised.value)


def test_a_plan_file_without_agents_admits_no_agent() -> None:
    document = json.loads(agents_book())
    del document["agents"]
    book = parse_plan_book(json.dumps(document), "plans.json", CATALOG)
    assert assess(parse_plan(plan(), CATALOG), AGENT_ID, book, Mode.AUTONOMOUS).verdict is Verdict.REFUSE


def test_the_autonomy_ceiling_caps_an_autonomous_agent_policy_to_review() -> None:
    book = parse_plan_book(agents_book("autonomous"), "plans.json", CATALOG)
    assert assess(parse_plan(plan(), CATALOG), AGENT_ID, book, Mode.AUTONOMOUS).verdict is Verdict.RUN
    capped = assess(parse_plan(plan(), CATALOG), AGENT_ID, book, Mode.REVIEW)
    assert (capped.verdict, capped.mode) == (Verdict.CONSENT, Mode.REVIEW)


def test_consent_goes_to_a_requester_only_where_the_policy_trusts_them() -> None:
    book = parse_plan_book(agents_book(), "plans.json", CATALOG)
    trusted = assess(parse_plan(plan(requester=BOB), CATALOG), AGENT_ID, book, Mode.AUTONOMOUS)
    untrusted = assess(parse_plan(plan(requester=CAROL), CATALOG), AGENT_ID, book, Mode.AUTONOMOUS)
    assert [a.upn for a in trusted.consent_from] == [BOB.upn]
    assert [a.upn for a in untrusted.consent_from] == [ALICE.upn, BOB.upn]
    assert [a.upn for a in untrusted.credentials_from] == [CAROL.upn]


def test_a_requester_claiming_an_approvers_name_with_another_object_id_is_not_trusted() -> None:
    book = parse_plan_book(agents_book(), "plans.json", CATALOG)
    impostor = plan(requester=None)
    impostor["requester"] = {"object_id": CAROL.object_id, "upn": ALICE.upn}
    verdict = assess(parse_plan(impostor, CATALOG), AGENT_ID, book, Mode.AUTONOMOUS)
    assert verdict.requester_trusted is False
    assert [a.upn for a in verdict.consent_from] == [ALICE.upn, BOB.upn]


def test_a_plans_run_id_follows_its_agent_key_and_plan() -> None:
    def run_id(**options: object) -> str:
        return run_id_for(AGENT_ID, parse_plan(plan(**options), CATALOG))  # type: ignore[arg-type]

    assert run_id() == run_id()
    assert run_id() != run_id(capacity=5)
    assert run_id() != run_id(key="other")


def test_a_proposed_run_survives_the_codec_with_its_source() -> None:
    book = parse_plan_book(agents_book(), "plans.json", CATALOG)
    proposed = parse_plan(plan(requester=CAROL), CATALOG)
    verdict = assess(proposed, AGENT_ID, book, Mode.AUTONOMOUS)
    run = start_proposed_run("r1", proposed, AGENT_ID, verdict, book, NOW).run
    again = run_from_dict(json.loads(json.dumps(run_to_dict(run))))
    assert again == run
    assert again.alert is None
    assert again.proposal is not None
    assert again.proposal.requester is not None
    assert again.proposal.requester.upn == CAROL.upn
