"""The dashboard in a real browser: headless Chromium against a real `trackly dashboard` and a
real `trackly serve` on free loopback ports. It logs in, opens every page (saving a screenshot of
each: to $TRACKLY_SCREENSHOTS when set, as `TRACKLY_SCREENSHOTS=docs/screenshots` does for the
README's pictures, else to the test's temporary folder), finds the overview's numbers equal
to `trackly report --format json`, sees a click made during the test on the Live page within
3 s, and a click whose user agent is HTML shown as text, with no script run.

CI sets TRACKLY_REQUIRE_BROWSER=1: there a missing browser fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HUMAN_HEADERS, execute, free_port, query
from test_browser import browser_or_skip, chrome

ROOT = Path(__file__).resolve().parents[1]


def screenshots(tmp_path: Path) -> Path:
    """Where the pictures go: $TRACKLY_SCREENSHOTS (the README's are docs/screenshots), else
    the test's own folder, so that a test run leaves the checkout as it was."""
    folder = Path(os.environ.get("TRACKLY_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


XSS_UA = "<img src=x onerror=alert(1)>"
PASSWORD = "correct horse battery"


class Dashboard:
    """`trackly dashboard` in a subprocess on a free loopback port."""

    def __init__(self, db_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = db_path.parent / f"dashboard-{self.port}.log"
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trackly_cli", "--db", str(db_path), "dashboard",
             "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        import socket

        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"trackly dashboard exited: {self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("trackly dashboard did not start") from None
                time.sleep(0.05)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def shop(acme, tmp_path: Path, live_server):
    """acme on the tracking domain localhost: a two-variant campaign 'spring' to list vip,
    clicks (a person's, a link preview's) and a sale; a user admin; the tracking server."""
    acme("domain", "add", "localhost", "--http", "--account", "acme")
    (tmp_path / "c.csv").write_text(
        "phone,first_name\n+12025550143,Ann\n+12025550144,Bob\n+12025550145,Cy\n+12025550146,Dee\n",
        encoding="utf-8",
    )
    acme("list", "create", "vip")
    acme("contacts", "import", "vip", tmp_path / "c.csv")
    (tmp_path / "a.txt").write_text("Hi {{first_name}}, 20% off: {{link1}}", encoding="utf-8")
    (tmp_path / "b.txt").write_text("{{first_name}}, summer deals {{link1}}", encoding="utf-8")
    # (seed s1 gives contacts 1-4 both variants, so that there is an A/B verdict)
    acme("shorten", "a.txt", "b.txt", "--list", "vip", "--link", "link1=Summer Sale",
         "--campaign", "spring", "--domain", "localhost", "--seed", "s1")  # fmt: skip
    acme("user", "add", "admin", "--admin", "--password-stdin", input=PASSWORD + "\n")
    db_path = tmp_path / "trackly.db"
    # sent long ago: no click is too fast to be a person's
    execute(db_path, "UPDATE messages SET created_at = '2026-01-01T00:00:00.000000Z'")
    links = [r["id"] for r in query(db_path, "SELECT id FROM short_links ORDER BY message_id")]
    server = live_server()
    for link, headers in (
        (links[0], HUMAN_HEADERS),
        (links[1], HUMAN_HEADERS),
        (links[2], {"User-Agent": "facebookexternalhit/1.1 Facebot Twitterbot/1.0"}),
    ):
        status, _, _ = server.request(f"/{link}", host="localhost", headers=headers)
        assert status == 302
    status, _, _ = server.request(
        f"/conv?link_id={links[0]}&revenue=49.90&txn_id=T-1", host="localhost"
    )
    assert status == 200
    return {"server": server, "links": links}


def _cards(browser) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {
        card.get_attribute("data-key"): card.find_element(By.CSS_SELECTOR, ".value").text
        for card in browser.find_elements(By.CSS_SELECTOR, ".card")
    }


def _rows(browser, table: str) -> list[list[str]]:
    """A table's cells as text, read in one go (the live page replaces its rows as it polls)."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#' + arguments[0] + ' tbody tr'))"
        ".map(row => Array.from(row.cells).map(cell => cell.textContent))",
        table,
    )


def _wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_chromium_logs_in_and_sees_every_page_and_live_clicks(shop, acme, db_path, tmp_path):
    chromium, driver = browser_or_skip()
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    dashboard = Dashboard(db_path)
    browser = chrome(chromium, driver, tmp_path / "chrome-profile")
    SCREENSHOTS = screenshots(tmp_path)
    try:
        browser.set_window_size(1280, 900)
        browser.get(dashboard.url + "/")
        assert browser.current_url == dashboard.url + "/login"
        browser.find_element(By.NAME, "username").send_keys("admin")
        browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "form.login button").click()
        _wait_for(lambda: browser.current_url == dashboard.url + "/", 10, "the overview")

        # the overview's numbers are the report's
        rows = acme.json("report")
        cards = _cards(browser)
        for key in ("sent", "clicks", "bot_clicks", "unique_clicks", "conversions"):
            assert cards[key] == f"{sum(r[key] for r in rows):,}", key
        assert cards["revenue"] == "49.90" and cards["bot_pct"] == "33.33%"
        assert browser.find_elements(By.CSS_SELECTOR, "svg rect.bot")
        browser.save_screenshot(str(SCREENSHOTS / "overview.png"))

        [spring] = query(db_path, "SELECT id FROM campaigns WHERE name = 'spring'")
        for name, path, heading in (
            ("campaigns", "/campaigns", "Campaigns"),
            ("campaign", f"/campaigns/{spring['id']}", "Campaign spring"),
            ("offers", "/offers", "Offers"),
            ("creatives", "/creatives", "Creatives"),
            ("lists", "/lists", "Lists"),
            ("domains", "/domains", "Domains"),
            ("contact", "/contacts/1", "Contact +12025550143"),
        ):
            browser.get(dashboard.url + path)
            assert browser.find_element(By.TAG_NAME, "h1").text == heading, path
            browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
        browser.get(dashboard.url + "/campaigns")
        assert [r[0] for r in _rows(browser, "campaign")] == ["spring"]
        browser.find_element(By.LINK_TEXT, "spring").click()
        _wait_for(
            lambda: browser.find_element(By.TAG_NAME, "h1").text == "Campaign spring",
            10,
            "the campaign's page",
        )

        # Live: a click made now shows within 3 s, and a user agent of HTML stays text
        browser.get(dashboard.url + "/live")
        _wait_for(lambda: "Updated" in browser.find_element(By.ID, "live-status").text, 5, "poll")
        server = shop["server"]
        status, _, _ = server.request(
            f"/{shop['links'][3]}", host="localhost", headers={"User-Agent": XSS_UA}
        )
        assert status == 302
        made = time.monotonic()
        row = _wait_for(
            lambda: [r for r in _rows(browser, "clicks") if r and r[1] == shop["links"][3]],
            3.0,
            "the new click on the Live page",
        )
        assert time.monotonic() - made < 3.0
        assert row[0][-1] == XSS_UA  # the user agent, as text
        assert browser.find_elements(By.CSS_SELECTOR, "#clicks img") == []
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018
        browser.save_screenshot(str(SCREENSHOTS / "live.png"))
        # a reload renders it on the server: escaped there too
        browser.refresh()
        assert browser.find_elements(By.CSS_SELECTOR, "#clicks img") == []
        assert any(r[-1] == XSS_UA for r in _rows(browser, "clicks"))
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018

        # light and dark, and a phone's width without sideways scrolling of the page
        browser.get(dashboard.url + "/")
        light = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
        browser.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
        )
        dark = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert light != dark
        browser.save_screenshot(str(SCREENSHOTS / "overview-dark.png"))
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
        )
        for path in ("/", "/campaigns", "/live"):
            browser.get(dashboard.url + path)
            wide = browser.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert wide <= 1, f"{path} is {wide} px too wide for a phone"
        browser.get(dashboard.url + "/")
        browser.save_screenshot(str(SCREENSHOTS / "overview-phone.png"))
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

        # logging out ends the session
        browser.find_element(By.CSS_SELECTOR, "form.logout button").click()
        _wait_for(lambda: browser.current_url == dashboard.url + "/login", 10, "the login")
        browser.get(dashboard.url + "/campaigns")
        assert browser.current_url == dashboard.url + "/login"
    finally:
        browser.quit()
        assert dashboard.stop() in (0, -15), dashboard.log.read_text()
    assert not re.search(r"Traceback", dashboard.log.read_text())


@pytest.mark.slow
def test_the_quick_start_in_chromium(tmp_path):
    """The README's quick start as a person runs it: `trackly demo` in one terminal, `trackly
    dashboard --demo` in another, the printed address in a browser: the demo's campaign, its
    click, without a login (no user yet, this machine)."""
    import signal

    chromium, driver = browser_or_skip()
    SCREENSHOTS = screenshots(tmp_path)
    from selenium.webdriver.common.by import By

    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"))
    env.pop("TRACKLY_DB", None)
    demo_port, port = free_port(), free_port()
    procs = []
    browser = None
    try:
        for args, listening in (
            (["demo", "--port", str(demo_port)], demo_port),
            (["dashboard", "--demo", "--port", str(port)], port),
        ):
            log = tmp_path / f"{args[0]}.log"
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "trackly_cli", *args],
                    env=env,
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                )
            )
            _wait_for(lambda p=listening: _listening(p), 20, f"{args[0]} to listen")
        printed = (tmp_path / "demo.log").read_text()
        link = re.search(r"http://localhost:\d+/\w{7}", printed).group(0)
        browser = chrome(chromium, driver, tmp_path / "chrome-profile")
        browser.set_window_size(1280, 900)
        browser.get(link)  # (a person's click on the demo's link)
        browser.get(f"http://127.0.0.1:{port}/campaigns")
        assert "No dashboard user exists yet" in browser.find_element(By.CLASS_NAME, "banner").text
        [row] = _rows(browser, "campaign")
        assert re.fullmatch(r"demo-\d{8}-\d{6}", row[0])
        browser.get(f"http://127.0.0.1:{port}/live")
        _wait_for(lambda: _rows(browser, "clicks"), 5, "the demo's click on the Live page")
        browser.save_screenshot(str(SCREENSHOTS / "demo-live.png"))
    finally:
        if browser is not None:
            browser.quit()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
