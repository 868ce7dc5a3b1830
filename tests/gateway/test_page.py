"""The chat page at / in a real headless Chromium (selenium), against real agents."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import pytest

from tests.gateway.support import endpoint, running_gateway
from tests.support.agents import AgentProcess, wait_until

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        not (shutil.which("chromium") and shutil.which("chromedriver")),
        reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
    ),
]

CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def _drive(url: str, message: str) -> dict[str, Any]:
    """Open the page, send ``message``, wait for the whole reply; return what it shows."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory(prefix="gw-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
        driver = webdriver.Chrome(service=service, options=options)
        try:
            driver.set_page_load_timeout(20)
            driver.get(url)
            wait = WebDriverWait(driver, 20, poll_frequency=0.05)
            # The live endpoint table fills from /debug/endpoints.
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#endpoints tbody tr")) == 2)
            rows = [
                [td.text for td in row.find_elements(By.TAG_NAME, "td")]
                for row in driver.find_elements(By.CSS_SELECTOR, "#endpoints tbody tr")
            ]
            wait.until(lambda d: d.find_element(By.ID, "readiness").text.startswith("ready"))
            driver.find_element(By.ID, "message").send_keys(message)
            driver.find_element(By.ID, "send").click()
            # Streaming: part of the reply shows before the end.
            wait.until(lambda d: d.find_element(By.ID, "status").text == "streaming")
            partial = driver.find_element(By.ID, "reply").text
            wait.until(lambda d: d.find_element(By.ID, "status").text in ("done", "failed"))
            return {
                "rows": rows,
                "partial": partial,
                "status": driver.find_element(By.ID, "status").text,
                "reply": driver.find_element(By.ID, "reply").text,
                "served_by": driver.find_element(By.ID, "served-by").text,
                "events": driver.find_element(By.ID, "event-count").text,
                "error": driver.find_element(By.ID, "error").text,
            }
        finally:
            driver.quit()


async def test_the_page_streams_a_reply_and_shows_the_agent_and_endpoints(
    agents: Callable[..., AgentProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SE_OFFLINE", "true")  # never let selenium-manager go online
    procs = [agents(f"127.0.0.{i}", args=("--event-delay", "0.15")) for i in (2, 3)]
    message = "streamed into a real browser word by word"
    async with running_gateway([endpoint(p) for p in procs], host="127.0.0.12") as gw:
        assert await wait_until(lambda: gw.channel.ready_count == 2, 10)
        # Selenium blocks: drive the browser from a thread while the gateway runs here.
        shown = await asyncio.to_thread(_drive, gw.url + "/", message)
    assert shown["status"] == "done", shown
    assert shown["error"] == ""
    assert shown["reply"] == message
    assert shown["partial"] != message  # it was seen while still streaming
    assert shown["served_by"] in {p.instance_id for p in procs}
    assert shown["events"] == str(len(message.split()) + 2)
    addresses = sorted(row[0] for row in shown["rows"])
    assert addresses == sorted(p.address for p in procs)
    assert all(row[3] == "ready" and row[9] == "true" for row in shown["rows"]), shown["rows"]


def _drive_keyboard(url: str, message: str) -> dict[str, Any]:
    """At 1280 px: an empty message is explained, Enter sends, the table fits, a favicon."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory(prefix="gw-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,800"):
            options.add_argument(flag)
        service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
        driver = webdriver.Chrome(service=service, options=options)
        try:
            driver.set_page_load_timeout(20)
            driver.get(url)
            wait = WebDriverWait(driver, 20, poll_frequency=0.05)
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#endpoints tbody tr")) == 2)
            box = driver.find_element(By.ID, "message")
            box.send_keys(Keys.ENTER)  # empty: refused, with the reason
            empty_error = driver.find_element(By.ID, "error").text
            empty_status = driver.find_element(By.ID, "status").text
            box.send_keys(message, Keys.ENTER)
            wait.until(lambda d: d.find_element(By.ID, "status").text in ("done", "failed"))
            fits = driver.execute_script(
                "const s = document.getElementById('endpoints-section');"
                "const t = document.getElementById('endpoints');"
                "return [t.scrollWidth, s.clientWidth, document.documentElement.scrollWidth,"
                " window.innerWidth];"
            )
            icon = driver.execute_script(
                "const l = document.querySelector('link[rel=icon]');"
                "return fetch(l.href).then(r => [r.status, r.headers.get('content-type')]);"
            )
            return {
                "empty_error": empty_error,
                "empty_status": empty_status,
                "status": driver.find_element(By.ID, "status").text,
                "reply": driver.find_element(By.ID, "reply").text,
                "events": driver.find_element(By.ID, "event-count").text,
                "fits": fits,
                "icon": icon,
            }
        finally:
            driver.quit()


async def test_the_page_at_1280px_sends_on_enter_and_explains_an_empty_message(
    agents: Callable[..., AgentProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SE_OFFLINE", "true")
    procs = [agents(f"127.0.0.{i}", args=("--event-delay", "0.1")) for i in (2, 3)]
    message = "sent with the enter key"
    # Heartbeats more often than events: the page must not count them as events.
    async with running_gateway(
        [endpoint(p) for p in procs], host="127.0.0.12", sse_heartbeat_seconds=0.03
    ) as gw:
        assert await wait_until(lambda: gw.channel.ready_count == 2, 10)
        shown = await asyncio.to_thread(_drive_keyboard, gw.url + "/", message)
    assert "empty message" in shown["empty_error"]
    assert shown["empty_status"] == "idle"
    assert shown["status"] == "done", shown
    assert shown["reply"] == message
    assert shown["events"] == str(len(message.split()) + 2)
    table, section, page, window = shown["fits"]
    assert table <= section, shown["fits"]
    assert page <= window, shown["fits"]
    assert shown["icon"] == [200, "image/svg+xml"]
