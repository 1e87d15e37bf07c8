"""Listing runs over HTTP: by state, newest first, paged with continuation tokens; open runs by their
current state; a token this service did not issue is refused; an ended run once, by when it ended,
whatever indexes it and however it changed after."""

from __future__ import annotations

import datetime as dt
import json

from gates.relay import sweep_stalled
from shared.adapters.table_store import encode_continuation
from shared.core.model import Run, RunState
from shared.topology import Queue
from tests.fakes import Delivery
from tests.pipeline import BOB, SUB, Pipeline, alert, plan_book, principal_headers

READ = "Microsoft.Compute/virtualMachines/read"
VMS = f"/subscriptions/{SUB}/resourceGroups/rg-prod-web/providers/Microsoft.Compute/virtualMachines"


def finished_runs(count: int) -> Pipeline:
    p = Pipeline(plan_book("autonomous", ["vm.read_instance_view"]), agent_can={READ})
    for i in range(count):
        p.send_alert(alert(alert_id=f"a{i}", resource=f"{VMS}/vm-{i:02d}"), message_id=f"alert-{i}")
        p.drain()
        p.clock.advance(dt.timedelta(seconds=1))
    return p


def list_runs(p: Pipeline, **params: str) -> dict[str, object]:
    response = p.http("GET", "runs", "https://gates.example/api/runs", headers=principal_headers(BOB),
                      params=params)
    assert response.status_code == 200, response.get_body()
    return json.loads(response.get_body())


def test_ended_runs_are_listed_newest_first_in_pages() -> None:
    p = finished_runs(5)
    first = list_runs(p, state="succeeded", limit="2")
    ids = [r["run_id"] for r in first["runs"]]
    second = list_runs(p, state="succeeded", limit="2", continuation=first["continuation"])
    third = list_runs(p, state="succeeded", limit="2", continuation=second["continuation"])
    everything = [r.run_id for r in p.store.all_runs()]
    assert ids + [r["run_id"] for r in second["runs"]] + [r["run_id"] for r in third["runs"]] == everything
    assert "continuation" not in third


def test_a_page_names_the_url_of_the_next_one() -> None:
    p = finished_runs(3)
    first = list_runs(p, state="succeeded", limit="2")
    assert first["next"] == f"/api/runs?continuation={first['continuation']}&limit=2&state=succeeded"


def test_an_open_run_is_listed_under_its_current_state() -> None:
    p = Pipeline()
    p.send_alert(alert())
    p.drain()
    assert [r["state"] for r in list_runs(p, state="awaiting_consent")["runs"]] == ["awaiting_consent"]
    assert list_runs(p, state="running")["runs"] == []
    assert [r["state"] for r in list_runs(p)["runs"]] == ["awaiting_consent"]


def test_a_continuation_this_service_did_not_issue_is_refused() -> None:
    p = finished_runs(1)
    for forged in ("' or 1 eq 1", encode_continuation("ended|failed|0|x"), "%%%"):
        response = p.http("GET", "runs", "https://gates.example/api/runs", headers=principal_headers(BOB),
                          params={"state": "succeeded", "continuation": forged})
        assert response.status_code == 400
        assert "continuation" in json.loads(response.get_body())["message"]


def test_a_run_changed_after_it_ended_is_listed_once() -> None:
    from gates.shell import transact
    from shared.core.alerts import parse_alert
    from shared.core.runs import join_run

    p = Pipeline(plan_book("review", ["vm.restart"]))
    p.send_alert(alert(rule="disk-full"))  # no plan: the run ends as it starts (unmatched)
    p.drain()
    ended = p.run()
    assert ended.state is RunState.UNMATCHED
    p.clock.advance(dt.timedelta(minutes=5))
    # A firing recorded in the run after it ended: the run is written again, still ended.
    again = parse_alert(json.dumps(alert(rule="disk-full", alert_id="again")))
    transact(p.services, ended.run_id, lambda run: join_run(run, again, p.clock.now()), "plan")
    assert p.run().updated_at > ended.updated_at
    listed = [r.run_id for r in p.store.list_runs(RunState.UNMATCHED).runs]
    assert listed == [ended.run_id]
    assert [r.run_id for r in p.store.list_runs(None).runs] == [ended.run_id]


def expired_then_resolved(p: Pipeline) -> tuple[Run, Delivery]:
    """A run nobody answered, ended by its deadline message (returned, to deliver again), whose alert then
    resolved: the resolution is written to the ended run, which moves its last change and nothing else."""
    p.send_alert(alert())
    p.drain()
    p.clock.advance(dt.timedelta(minutes=31))
    deadline = p.bus.take(Queue.DEADLINES.value)
    assert deadline is not None
    assert p.deliver(deadline)
    p.drain()
    ended = p.run()
    assert ended.state is RunState.EXPIRED
    p.clock.advance(dt.timedelta(minutes=5))
    p.send_alert(alert(condition="Resolved"), message_id="resolved-1")
    p.drain()
    assert p.run().updated_at > ended.updated_at
    assert p.events()[-1] == "alert_resolved"
    return ended, deadline


def listed(p: Pipeline, state: RunState | None) -> list[str]:
    return [r.run_id for r in p.store.list_runs(state).runs]


def test_a_redelivered_ending_message_lists_a_run_changed_after_it_ended_once() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    ended, deadline = expired_then_resolved(p)
    # Delivered again (its host died after the commit, say): nothing to decide, so the outbox is sent
    # again and the run indexed again.
    assert p.deliver(Delivery(deadline.message, delivery_count=2))
    assert listed(p, RunState.EXPIRED) == [ended.run_id]
    assert listed(p, None) == [ended.run_id]


def test_the_sweeper_lists_a_run_changed_after_it_ended_once() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    ended, _ = expired_then_resolved(p)
    # The ending's host died between writing the day's rows and deleting the open entry: the sweeper
    # finds the run ended and indexes it again.
    p.store._open[ended.run_id] = ended.created_at
    assert sweep_stalled(p.services) == 1
    assert p.store.open_runs() == []
    assert listed(p, RunState.EXPIRED) == [ended.run_id]
    assert listed(p, None) == [ended.run_id]


def test_a_listed_run_says_when_it_ended_though_indexed_after_a_later_change() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    ended, _ = expired_then_resolved(p)
    p.store._open[ended.run_id] = ended.created_at
    sweep_stalled(p.services)  # indexed again, from the run as the resolution left it
    [row] = list_runs(p, state="expired")["runs"]
    assert row["ended_at"] == ended.updated_at.isoformat()


def test_a_runs_document_says_when_it_ended_and_when_it_last_changed() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    ended, _ = expired_then_resolved(p)
    response = p.http("GET", "runs/{run_id}", "https://gates.example/x", headers=principal_headers(BOB),
                      route_params={"run_id": ended.run_id})
    document = json.loads(response.get_body())
    assert document["ended_at"] == ended.updated_at.isoformat()
    assert document["updated_at"] == p.run().updated_at.isoformat()


def test_an_open_runs_document_has_not_ended() -> None:
    p = Pipeline(plan_book("review", ["vm.restart"]))
    p.send_alert(alert())
    p.drain()
    response = p.http("GET", "runs/{run_id}", "https://gates.example/x", headers=principal_headers(BOB),
                      route_params={"run_id": p.run().run_id})
    assert json.loads(response.get_body())["ended_at"] is None
