"""An on-call engineer in a real browser (headless Chromium), at a phone's 390x844 and a desktop's
1280x800: open the e-mail's link, sign in through the Entra stand-in, read the request, decide, and
see the result. The decision buttons are on the first screen, the pages work with JavaScript off, and
hostile alert text stays text. Screenshots land in `.local/screenshots/`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from selenium.webdriver.common.by import By

from local_azure import scenario
from local_azure.stack import LocalStack
from tests.e2e import browser
from tests.e2e.browser import DESKTOP, PHONE, button, inside_first_screen, open_as, screenshot
from tests.e2e.conftest import PASSWORD, App, start_app
from tests.e2e.journeys import ALICE, Journey

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

HOSTILE = ('<script>document.title="pwned"</script><img src=x onerror="document.title=\'pwned\'">'
           "VM heartbeat missing for 5 minutes")


def events_now(journey: Journey) -> list[str]:
    run = scenario.get_run(journey.reader, journey.app.base_url, journey.run_id)
    return [e["event"] for e in run["timeline"]]


@pytest.fixture(scope="module")
def app(stand_ins: LocalStack) -> Iterator[App]:
    if reason := browser.missing():
        pytest.fail(reason)
    yield from start_app(stand_ins)


@pytest.fixture(scope="module")
def reader(app: App) -> requests.Session:
    return app.session(ALICE)


@pytest.fixture
def journey(app: App, reader: requests.Session) -> Journey:
    assert app.stack.arm is not None
    app.stack.arm.reset()
    return Journey(app, reader)


def test_on_a_phone_without_javascript_consent_then_credentials_then_the_run(journey: Journey) -> None:
    journey.raise_alert("e2e-mixed-review", description="VM heartbeat missing for 5 minutes")
    with browser.browser(PHONE, javascript=False) as driver:
        open_as(driver, scenario.link_in(journey.mail("Consent needed")), ALICE, PASSWORD)
        headline = driver.find_element(By.TAG_NAME, "h1").text
        assert headline == "Restart vm-web-01 (rg-prod-web)?"
        chips = driver.find_element(By.CSS_SELECTOR, ".chips").text
        assert "Sev1 e2e-mixed-review" in chips
        assert "min left" in chips
        assert "VM heartbeat missing for 5 minutes" in driver.find_element(By.CSS_SELECTOR, ".why").text
        approve, deny = button(driver, "Approve"), button(driver, "Deny")
        assert inside_first_screen(driver, approve, PHONE)
        assert inside_first_screen(driver, deny, PHONE)
        assert approve.rect["width"] > 0.8 * PHONE[0]
        screenshot(driver, "phone-consent")
        assert browser.page_width(driver) <= PHONE[0], browser.wider_than(driver, PHONE[0])

        browser.press(driver, approve)
        assert driver.current_url.split("?")[0].endswith(f"/api/runs/{journey.run_id}")
        banner = driver.find_element(By.ID, "decision").text
        assert banner.startswith("Consent given")
        assert "alice@contoso.test" in banner
        assert "Next:" in banner
        screenshot(driver, "phone-consent-given")
        browser.reload(driver)  # a refresh reads the run again; it never posts the decision twice
        assert driver.find_element(By.ID, "decision").text.startswith("Consent given")
        assert events_now(journey).count("consent_granted") == 1

        open_as(driver, scenario.link_in(journey.mail("Credentials needed")), ALICE, PASSWORD)
        assert driver.find_element(By.TAG_NAME, "h1").text == "Restart vm-web-01 (rg-prod-web) with your access?"
        grant = button(driver, "Grant my access")
        assert inside_first_screen(driver, grant, PHONE)
        assert inside_first_screen(driver, button(driver, "Deny"), PHONE)
        screenshot(driver, "phone-credentials")

        browser.press(driver, grant)
        assert driver.find_element(By.ID, "decision").text.startswith("Credentials granted")
        journey.run({"succeeded"})
        browser.reload(driver)
        assert "succeeded" in driver.find_element(By.TAG_NAME, "h1").text
        assert journey.events().count("credential_granted") == 1
        screenshot(driver, "phone-run")
        screenshot(driver, "phone-run-audit", scroll_to="ol.audit")
    assert journey.restarts() == 1


def test_on_a_desktop_hostile_alert_text_stays_inert_and_a_denial_ends_the_run(journey: Journey) -> None:
    journey.raise_alert("e2e-write-review", description=HOSTILE)
    with browser.browser(DESKTOP, javascript=True) as driver:
        open_as(driver, scenario.link_in(journey.mail("Consent needed")), ALICE, PASSWORD)
        why = driver.find_element(By.CSS_SELECTOR, ".why")
        assert '<script>document.title="pwned"</script>' in why.text
        assert why.find_elements(By.TAG_NAME, "img") == []
        assert why.find_elements(By.TAG_NAME, "script") == []
        assert "pwned" not in driver.title
        assert inside_first_screen(driver, button(driver, "Deny"), DESKTOP)
        screenshot(driver, "desktop-consent")

        driver.find_element(By.ID, "comment").send_keys("<b>not</b> during the sale")
        browser.press(driver, button(driver, "Deny"))
        banner = driver.find_element(By.ID, "decision")
        assert banner.text.startswith("Consent refused")
        assert "“<b>not</b> during the sale”" in banner.text  # the reason, shown as typed, inert
        assert "pwned" not in driver.title
        screenshot(driver, "desktop-denied")
    assert journey.run()["state"] == "denied"
    assert journey.restarts() == 0


def test_a_person_who_cannot_decide_is_offered_to_sign_in_as_someone_else(journey: Journey) -> None:
    journey.raise_alert("e2e-write-review")
    link = scenario.link_in(journey.mail("Consent needed"))
    with browser.browser(PHONE, javascript=False) as driver:
        open_as(driver, link, "mallory@contoso.test", PASSWORD)
        assert driver.find_elements(By.CSS_SELECTOR, "form.decide") == []
        switch = button(driver, "Sign in as someone else")
        assert inside_first_screen(driver, switch, PHONE)
        screenshot(driver, "phone-refused")

        browser.press(driver, switch)
        browser.sign_in_if_asked(driver, "bob@contoso.test", PASSWORD)
        assert driver.current_url == link
        assert "signed in as bob@contoso.test" in driver.find_element(By.CSS_SELECTOR, "header").text
        assert inside_first_screen(driver, button(driver, "Approve"), PHONE)
        browser.press(driver, button(driver, "Deny"))
        assert "bob@contoso.test" in driver.find_element(By.ID, "decision").text


def test_the_rota_sees_what_waits_for_them_and_the_runs(journey: Journey) -> None:
    journey.raise_alert("e2e-write-review")
    journey.mail("Consent needed")
    with browser.browser(PHONE, javascript=False) as driver:
        open_as(driver, f"{journey.app.base_url}/api/runs", ALICE, PASSWORD)
        waiting = driver.find_element(By.CSS_SELECTOR, "table.list").text
        assert "Restart vm-web-01 (rg-prod-web)?" in waiting
        screenshot(driver, "phone-runs")
        browser.press(driver, driver.find_element(By.LINK_TEXT, "awaiting_consent"))
        assert "state=awaiting_consent" in driver.current_url
        rows = driver.find_elements(By.CSS_SELECTOR, "table.list")[-1].text
        assert "awaiting_consent" in rows
        assert "succeeded" not in rows.split("\n", 1)[-1]
    # Leave nothing open: a later alert of this rule on this VM would join this run instead of starting one.
    journey.answer("Consent needed", "deny", journey.reader)
    assert journey.run()["state"] == "denied"
