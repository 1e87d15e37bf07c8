"""The pages and e-mails people act on: what they say, what a browser is answered, what every page
carries, and that nothing in them can be shown unescaped."""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import hashlib
import json
import re
import urllib.parse

import azure.functions as func
import pytest

from gates import rendering, views
from shared.core.model import RequestKind, RunState
from tests.pipeline import ALICE, BOB, MALLORY, ROOT, Pipeline, User, alert, plan_book, principal_headers

RESTART = "Microsoft.Compute/virtualMachines/restart/action"
READ = "Microsoft.Compute/virtualMachines/read"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
READER = User("4ead0000-0000-4000-8000-000000000004", "rita@contoso.test", ("Gates.Reader",))
HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>'


def waiting_for_consent(book: str | None = None, description: str = "VM heartbeat missing") -> Pipeline:
    p = Pipeline(book or plan_book("review", ["vm.read_instance_view", "vm.restart"]), agent_can={READ},
                 user_can={RESTART, READ})
    document = alert()
    document["data"]["essentials"]["description"] = description
    p.send_alert(document)
    p.drain()
    return p


def page(p: Pipeline, kind: RequestKind = RequestKind.CONSENT, user: User = ALICE) -> func.HttpResponse:
    run = p.run()
    request = next(r for r in run.requests if r.kind is kind)
    return p.http("GET", "runs/{run_id}/requests/{request_id}",
                  f"https://gates.example/api/runs/{run.run_id}/requests/{request.request_id}",
                  headers={**principal_headers(user), **BROWSER},
                  route_params={"run_id": run.run_id, "request_id": request.request_id})


def run_page(p: Pipeline, params: dict[str, str] | None = None, user: User = ALICE) -> func.HttpResponse:
    run_id = p.run().run_id
    return p.http("GET", "runs/{run_id}", f"https://gates.example/api/runs/{run_id}",
                  headers={**principal_headers(user), **BROWSER}, params=params or {},
                  route_params={"run_id": run_id})


def h1(response: func.HttpResponse) -> str:
    match = re.search(r"<h1>(.*?)</h1>", response.get_body().decode(), re.S)
    assert match, "no headline"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


# ------------------------------------------------------------------------------------------- headers


def test_every_page_carries_the_security_headers() -> None:
    p = waiting_for_consent()
    for response in (page(p), run_page(p), page(p, user=MALLORY)):
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"


def test_the_policy_allows_no_script_and_only_the_shipped_stylesheet() -> None:
    p = waiting_for_consent()
    response = page(p)
    policy = response.headers["Content-Security-Policy"]
    style = re.search(r"<style>(.*?)</style>", response.get_body().decode(), re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert "default-src 'none'" in policy
    assert "script-src" not in policy
    assert "unsafe-inline" not in policy
    assert f"style-src 'sha256-{digest}'" in policy
    assert "<script" not in response.get_body().decode()
    assert " style=" not in response.get_body().decode()


# ----------------------------------------------------------------------------------- the request page


def test_the_headline_says_what_where_which_alert_and_the_time_left() -> None:
    p = waiting_for_consent()
    html = page(p).get_body().decode()
    assert h1(page(p)) == "Restart vm-web-01 (rg-prod-web)?"
    assert "Sev1 vm-not-responding" in html
    assert "30 min left" in html
    assert "<title>Restart vm-web-01 (rg-prod-web)? · Sev1 vm-not-responding · 30 min left</title>" in html


def test_the_alerts_description_is_the_why() -> None:
    p = waiting_for_consent(description="Heartbeat missing for 5 minutes on vm-web-01")
    assert "Heartbeat missing for 5 minutes on vm-web-01" in page(p).get_body().decode()


def test_the_page_names_the_other_approvers_and_their_answers() -> None:
    p = waiting_for_consent()
    html = page(p).get_body().decode()
    assert "alice@contoso.test <b>(you)</b> — asked, no answer yet" in html
    assert "bob@contoso.test — asked, no answer yet" in html


def test_the_arm_id_is_collapsed_but_selectable_whole() -> None:
    p = waiting_for_consent()
    html = page(p).get_body().decode()
    assert '<details class="armid">' in html
    assert f'readonly value="{p.run().resource_id}"' in html


def test_a_decided_request_says_who_decided_and_when_in_its_headline() -> None:
    p = waiting_for_consent()
    p.decide(RequestKind.CONSENT, "deny", BOB)
    headline = h1(page(p))
    assert headline.startswith("Restart vm-web-01 (rg-prod-web): consent refused by bob@contoso.test at ")
    assert "method=\"post\"" not in page(p).get_body().decode()


def test_an_expired_request_says_so_in_its_headline() -> None:
    p = waiting_for_consent()
    p.pass_deadline()
    assert "expired unanswered" in h1(page(p))


def started_line(p: Pipeline) -> str:
    html = run_page(p).get_body().decode()
    return html[html.index("Started "):].split("</p>", 1)[0]


def test_the_run_page_says_when_the_run_ended() -> None:
    p = waiting_for_consent()
    p.pass_deadline()
    assert " · ended 04:00 UTC" in started_line(p)
    assert "last change" not in started_line(p)  # the same moment, said once


def test_the_run_page_of_a_run_changed_after_it_ended_says_when_it_ended_and_last_changed() -> None:
    p = waiting_for_consent()
    p.pass_deadline()
    p.clock.advance(dt.timedelta(minutes=5))
    p.send_alert(alert(condition="Resolved"), message_id="resolved-1")
    p.drain()
    assert " · ended 04:00 UTC" in started_line(p)
    assert " · last change 04:05 UTC" in started_line(p)


def test_the_credential_page_asks_for_your_access_for_the_step_it_names() -> None:
    p = waiting_for_consent()
    p.decide(RequestKind.CONSENT, "approve")
    response = page(p, RequestKind.CREDENTIALS)
    html = response.get_body().decode()
    assert h1(response) == "Restart vm-web-01 (rg-prod-web) with your access?"
    assert "Grant my access" in html
    assert "used only for step 2" in html


def test_a_reader_sees_the_request_but_no_form_and_is_offered_another_account() -> None:
    p = waiting_for_consent()
    html = page(p, user=READER).get_body().decode()
    assert "<form" not in html
    assert "not an approver of this plan" in html
    assert "prompt%3Dselect_account" in html


def test_a_refused_page_offers_to_sign_in_as_someone_else() -> None:
    p = waiting_for_consent()
    response = page(p, user=MALLORY)
    assert response.status_code == 403
    link = re.search(r'href="(/\.auth/logout\?[^"]+)"', response.get_body().decode())
    assert link is not None
    after_logout = urllib.parse.parse_qs(urllib.parse.urlsplit(link.group(1).replace("&amp;", "&")).query)
    login = urllib.parse.urlsplit(after_logout["post_logout_redirect_uri"][0])
    assert login.path == "/.auth/login/aad"
    assert urllib.parse.parse_qs(login.query) == {
        "prompt": ["select_account"],
        "post_login_redirect_uri": [f"/api/runs/{p.run().run_id}/requests/{p.run().requests[0].request_id}"]}


# ---------------------------------------------------------------------------------------- decisions


def test_a_browsers_decision_is_answered_with_a_redirect_to_the_run_page() -> None:
    p = waiting_for_consent()
    request = p.pending_request(RequestKind.CONSENT)
    response = p.post_decision(request, "approve", headers=BROWSER)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/api/runs/{p.run().run_id}?decided={request.request_id}"


def test_the_run_page_highlights_the_decision_in_its_own_words_and_says_what_happens_next() -> None:
    p = waiting_for_consent()
    request = p.pending_request(RequestKind.CONSENT)
    p.post_decision(request, "approve", headers=BROWSER)
    html = run_page(p, {"decided": request.request_id}).get_body().decode()
    banner = html[html.index('id="decision"'):]
    assert "<strong>Consent given</strong>" in banner
    assert "by alice@contoso.test at" in banner
    assert "<b>Next:</b> The agent now runs the plan" in banner


def test_the_credential_decision_reads_credentials_granted() -> None:
    p = waiting_for_consent()
    p.decide(RequestKind.CONSENT, "approve")
    request = p.pending_request(RequestKind.CREDENTIALS)
    assert p.post_decision(request, "approve", headers=BROWSER).status_code == 303
    html = run_page(p, {"decided": request.request_id}).get_body().decode()
    assert "<strong>Credentials granted</strong>" in html


def test_reading_the_run_page_after_a_decision_records_nothing() -> None:
    p = waiting_for_consent()
    request = p.pending_request(RequestKind.CONSENT)
    p.post_decision(request, "approve", headers=BROWSER)
    before = p.store.raw_rows()
    for _ in range(3):
        assert run_page(p, {"decided": request.request_id}).status_code == 200
    assert p.store.raw_rows() == before


def test_an_api_caller_keeps_its_json_answer() -> None:
    p = waiting_for_consent()
    request = p.pending_request(RequestKind.CONSENT)
    response = p.post_decision(request, "deny", headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert json.loads(response.get_body()) == {"status": 200, "message": "Your decision is recorded: denied.",
                                               "decision": "denied", "run_id": p.run().run_id,
                                               "request_id": request.request_id}


def test_a_refused_browser_decision_is_a_page_with_a_way_on() -> None:
    p = waiting_for_consent()
    request = p.pending_request(RequestKind.CONSENT)
    p.post_decision(request, "deny", BOB, headers=BROWSER)
    response = p.post_decision(request, "approve", headers=BROWSER)
    assert response.status_code == 409
    assert response.mimetype == "text/html"
    assert f'href="/api/runs/{p.run().run_id}">Open the run' in response.get_body().decode()


DEALLOCATE = plan_book("review", ["vm.deallocate"])  # a high-risk write in the shipped catalog


def test_a_high_risk_action_shows_its_risk_and_impact_and_asks_once_more_without_javascript() -> None:
    p = waiting_for_consent(DEALLOCATE)
    html = page(p).get_body().decode()
    assert "risk: high" in html
    assert "the VM stops serving and releases its host" in html
    assert '<details class="confirm">' in html
    assert 'formaction="/api/runs/' in html
    assert '?confirm=yes">Yes, approve: deallocate vm-web-01</button>' in html


def test_a_medium_risk_action_is_approved_in_one_press() -> None:
    html = page(waiting_for_consent()).get_body().decode()
    assert "risk: medium" in html
    assert '<details class="confirm">' not in html


def test_a_high_risk_approval_without_confirmation_records_nothing_and_asks_again() -> None:
    p = waiting_for_consent(DEALLOCATE)
    before = p.store.raw_rows()
    response = p.post_decision(p.pending_request(RequestKind.CONSENT), "approve", headers=BROWSER)
    assert response.status_code == 200
    assert "Confirm: Deallocate vm-web-01 (rg-prod-web)?" in response.get_body().decode()
    assert p.store.raw_rows() == before


def test_a_confirmed_high_risk_approval_is_recorded() -> None:
    p = waiting_for_consent(DEALLOCATE)
    request = p.pending_request(RequestKind.CONSENT)
    run_id = p.run().run_id
    from shared.core.links import form_token
    from tests.pipeline import LINK_KEY

    body = urllib.parse.urlencode({"decision": "approve", "plan_hash": request.plan_hash, "confirm": "yes",
                                   "form_token": form_token(LINK_KEY, ALICE.object_id, request.request_id)})
    response = p.http("POST", "runs/{run_id}/requests/{request_id}", "https://gates.example/x",
                      headers={**principal_headers(ALICE), **BROWSER,
                               "Content-Type": "application/x-www-form-urlencoded"},
                      route_params={"run_id": run_id, "request_id": request.request_id}, body=body.encode())
    assert response.status_code == 303
    p.drain()
    assert p.run().state is RunState.AWAITING_CREDENTIALS


# ------------------------------------------------------------------------------------------ e-mails


def test_the_request_email_subject_says_it_all() -> None:
    p = waiting_for_consent()
    deadline = p.pending_request(RequestKind.CONSENT).deadline.strftime("%H:%M")
    assert p.notifier.sent[0]["subject"] == f"[Sev1] Restart vm-web-01? Consent needed by {deadline} UTC"


def test_the_request_email_answers_why_what_where_and_by_when_in_both_parts() -> None:
    p = waiting_for_consent(description="Heartbeat missing for 5 minutes")
    mail = p.notifier.sent[0]
    for body in (mail["text"], mail["html"]):
        assert "Heartbeat missing for 5 minutes" in body
        assert "vm-web-01" in body
        assert "no answer means no action" in body
    assert 'class="button approve"' in mail["html"]


def test_the_request_email_goes_to_those_who_can_decide_and_watchers_are_only_informed() -> None:
    book = json.loads(plan_book("review", ["vm.restart"]))
    book["plans"][0]["notify"] = ["oncall@contoso.test", "alice@contoso.test"]
    p = waiting_for_consent(json.dumps(book))
    ask, inform = p.notifier.sent[0], p.notifier.sent[1]
    assert ask["to"] == ["alice@contoso.test", "bob@contoso.test"]
    assert inform["to"] == ["oncall@contoso.test"]
    assert inform["subject"].startswith("[Sev1] For your information: Restart vm-web-01 waits for consent")
    assert "/requests/" not in inform["text"]
    assert len(p.notifier.sent) == 2


def test_the_credential_email_subject_names_the_action_and_the_deadline() -> None:
    p = waiting_for_consent()
    p.decide(RequestKind.CONSENT, "approve")
    subject = p.notifier.sent[-1]["subject"]
    assert re.fullmatch(r"\[Sev1\] Restart vm-web-01 with your access\? Credentials needed by \d\d:\d\d UTC",
                        subject)


def test_hostile_alert_text_is_escaped_in_the_html_and_literal_in_the_plain_text() -> None:
    p = waiting_for_consent(description=HOSTILE)
    mail = p.notifier.sent[0]
    assert HOSTILE not in mail["html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail["html"]
    assert HOSTILE in mail["text"]
    for response in (page(p), run_page(p)):
        assert HOSTILE not in response.get_body().decode()
        assert "<img src=x" not in response.get_body().decode()


# ------------------------------------------------------------------------------------ the rota's list


def runs_page(p: Pipeline, user: User = ALICE, params: dict[str, str] | None = None) -> str:
    response = p.http("GET", "runs", "https://gates.example/api/runs", headers={**principal_headers(user), **BROWSER},
                      params=params or {})
    assert response.status_code == 200
    return response.get_body().decode()


def test_the_runs_page_lists_what_waits_for_the_signed_in_person() -> None:
    p = waiting_for_consent()
    request = p.pending_request(RequestKind.CONSENT)
    assert f'href="/api/runs/{p.run().run_id}/requests/{request.request_id}">Restart vm-web-01 (rg-prod-web)?' \
        in runs_page(p)
    assert "Waiting for you (0)" in runs_page(p, READER)


def test_the_runs_page_filters_by_state() -> None:
    p = waiting_for_consent()
    assert "awaiting_consent</span>" in runs_page(p, params={"state": "awaiting_consent"})
    assert "No runs in state succeeded." in runs_page(p, params={"state": "succeeded"})


def test_the_runs_list_stays_json_for_api_callers() -> None:
    p = waiting_for_consent()
    response = p.http("GET", "runs", "https://gates.example/api/runs",
                      headers={**principal_headers(ALICE), "Accept": "application/json"})
    assert [r["run_id"] for r in json.loads(response.get_body())["runs"]] == [p.run().run_id]


# ------------------------------------------------------------------------------------- the audit trail


def test_the_run_page_shows_each_actors_kind_and_object_id_in_order() -> None:
    p = waiting_for_consent()
    p.decide(RequestKind.CONSENT, "approve")
    html = run_page(p).get_body().decode()
    audit = html[html.index('<ol class="audit">'):]
    assert f"person · alice@contoso.test · id {ALICE.object_id}" in audit
    assert "plan · response plan plan (v7) · id plan@v7" in audit
    positions = [audit.index(f"#{n} ·") for n in range(1, len(p.events()) + 1)]
    assert positions == sorted(positions)


# ------------------------------------------------------------------------------------------ templates


def test_every_html_template_is_autoescaped_and_plain_text_ones_are_not() -> None:
    env = rendering.environment()
    names = env.list_templates()
    assert any(n.endswith(".txt") for n in names)
    for name in names:
        assert env.autoescape(name) is (not name.endswith(".txt")), name  # type: ignore[operator]


def test_the_templates_ship_in_the_deployed_package() -> None:
    ignored = [line.strip().rstrip("/") for line in (ROOT / ".funcignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for path in ("gates/templates/layout.html", "gates/templates/gates.css", "gates/rendering.py"):
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        assert not any(fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(parts[i - 1], pattern)
                       for pattern in ignored for i, prefix in enumerate(prefixes, 1)), path
    assert "jinja2" in (ROOT / "requirements.txt").read_text().lower()


# -------------------------------------------------------------------------------------- pure pieces


@pytest.mark.parametrize(("seconds", "words"), [
    (27 * 60, "in 27 min"), (-12 * 60, "12 min ago"), (10, "in under a minute"), (-10, "just now"),
    (2 * 3600 + 5 * 60, "in 2 h 5 min"), (-3 * 86400, "3 days ago"),
])
def test_relative_times_read_as_people_say_them(seconds: int, words: str) -> None:
    assert views.relative(dt.timedelta(seconds=seconds)) == words


def test_time_left_counts_down_to_the_deadline() -> None:
    now = dt.datetime(2026, 12, 1, 20, 33, tzinfo=dt.UTC)
    assert views.time_left(now + dt.timedelta(minutes=27), now) == "27 min left"
    assert views.time_left(now - dt.timedelta(minutes=1), now) == "deadline passed"


def test_a_moment_on_another_day_names_the_day() -> None:
    now = dt.datetime(2026, 12, 1, 0, 10, tzinfo=dt.UTC)
    assert views.moment(dt.datetime(2026, 11, 30, 23, 50, tzinfo=dt.UTC), now).utc == "30 Nov 23:50 UTC"
    assert views.moment(dt.datetime(2026, 12, 1, 0, 5, tzinfo=dt.UTC), now).text == "00:05 UTC (5 min ago)"


def test_a_verb_is_made_from_the_action_name_unless_the_catalog_titles_it() -> None:
    assert views.verb_of("vm.restart") == "Restart"
    assert views.verb_of("vmss.set_capacity") == "Set capacity"
