"""A real browser for the end-to-end tests: Debian's Chromium driven by Selenium through chromedriver,
headless, at a phone's or a desktop's size, with JavaScript on or off. Screenshots go to
`.local/screenshots/`, where a person can look at them."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from local_azure.stack import PROJECT_DIR

PHONE = (390, 844)
DESKTOP = (1280, 800)
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = PROJECT_DIR / ".local" / "screenshots"
WAIT_SECONDS = 30
# Chromium as root in a container: no sandbox, no GPU, nothing phoning home, a fresh profile.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--disable-features=HttpsUpgrades,InsecureFormSubmissionInterstitial",
         # The Entra stand-in serves https with the local CA's certificate, which this profile does not hold.
         "--ignore-certificate-errors")


def missing() -> str:
    absent = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    return f"{', '.join(absent)} missing: run scripts/bootstrap.sh (apt-get install chromium chromium-driver)" \
        if absent else ""


@contextmanager
def browser(size: tuple[int, int], *, javascript: bool = True) -> Iterator[WebDriver]:
    width, height = size
    profile = tempfile.mkdtemp(prefix="gates-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # The driver waits for pages itself (`wait_loaded`): its own waiting runs scripts in the page.
    options.page_load_strategy = "none"
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    if width < 600:
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": {
            "width": width, "height": height, "pixelRatio": 2, "touch": True}})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        # The viewport, exactly: the first screen a person sees.
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 2 if width < 600 else 1,
            "mobile": width < 600})
        if not javascript:
            # The page's scripts do not run; the driver's own commands still do.
            driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def sign_in_if_asked(driver: WebDriver, username: str, password: str) -> None:
    """On the Entra stand-in's sign-in page, sign in; anywhere else, do nothing."""
    if not driver.find_elements(By.ID, "password"):
        return
    field = driver.find_element(By.ID, "username")
    field.clear()
    field.send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    press(driver, driver.find_element(By.CSS_SELECTOR, "button[type=submit]"))


def open_as(driver: WebDriver, url: str, username: str, password: str) -> None:
    driver.get(url)
    wait_loaded(driver)
    sign_in_if_asked(driver, username, password)


def inside_first_screen(driver: WebDriver, element: WebElement, size: tuple[int, int]) -> bool:
    """The whole element is visible without scrolling, from the top of the page."""
    rect = element.rect
    return rect["y"] >= 0 and rect["y"] + rect["height"] <= size[1] and rect["x"] + rect["width"] <= size[0]


def screenshot(driver: WebDriver, name: str, scroll_to: str = "") -> Path:
    """What the screen shows (from the top, or scrolled to the element `scroll_to` selects)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if scroll_to:
        _evaluate(driver, f"document.querySelector({json.dumps(scroll_to)}).scrollIntoView()")
    driver.save_screenshot(str(path))
    if scroll_to:
        _evaluate(driver, "window.scrollTo(0, 0)")
    print(f"screenshot: {path}")
    return path


def button(driver: WebDriver, label_start: str) -> WebElement:
    """The visible button (or button-like summary) whose label starts with `label_start`."""
    candidates = driver.find_elements(By.CSS_SELECTOR, "button, summary.button, a.button")
    for candidate in candidates:
        if candidate.is_displayed() and candidate.text.strip().startswith(label_start):
            return candidate
    raise AssertionError(f"no button {label_start!r}; buttons: {[c.text for c in candidates]}")


def press(driver: WebDriver, element: WebElement, *, navigates: bool = True) -> None:
    """Press an element as a finger or a mouse does, through the DevTools protocol, and wait for the
    page it leads to.

    chromedriver's own click waits on scripts it runs in the page, which hang when the page's
    JavaScript is off; a raw input event needs none, and is what a person's tap is anyway."""
    rect = element.rect
    offset_x, offset_y = _evaluate(driver, "[window.scrollX, window.scrollY]")
    x, y = rect["x"] + rect["width"] / 2 - offset_x, rect["y"] + rect["height"] / 2 - offset_y
    before = driver.current_url
    for kind in ("mousePressed", "mouseReleased"):
        driver.execute_cdp_cmd("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left",
                                                            "clickCount": 1})
    if navigates:
        WebDriverWait(driver, WAIT_SECONDS).until(lambda d: d.current_url != before)
        wait_loaded(driver)


def reload(driver: WebDriver) -> None:
    driver.execute_cdp_cmd("Page.reload", {"ignoreCache": True})
    wait_loaded(driver)


def wait_loaded(driver: WebDriver) -> None:
    WebDriverWait(driver, WAIT_SECONDS).until(lambda d: _evaluate(d, "document.readyState") == "complete")


def _evaluate(driver: WebDriver, expression: str) -> Any:
    """Read the page through DevTools, which works with the page's JavaScript off."""
    answer = driver.execute_cdp_cmd("Runtime.evaluate", {"expression": expression, "returnByValue": True})
    return answer.get("result", {}).get("value")


def first_screen_height(driver: WebDriver) -> int:
    return int(_evaluate(driver, "window.innerHeight"))


def page_width(driver: WebDriver) -> int:
    return int(_evaluate(driver, "document.documentElement.scrollWidth"))


def wider_than(driver: WebDriver, width: int) -> list[str]:
    """The elements that stick out past `width`: what makes a phone scroll sideways."""
    found = _evaluate(driver, f"""[...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > {width})
        .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))""")
    return list(found or [])
