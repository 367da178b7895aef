"""A real browser through an interstitial: headless Chromium (Debian's `chromium` and its
`chromedriver`) against `trackly serve`, landing on a destination the test serves itself.

CI sets TRACKLY_REQUIRE_BROWSER=1: there a missing browser fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# A desktop Chrome's user agent: headless Chrome says "HeadlessChrome", which crawler lists flag.
DESKTOP_CHROME_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
LANDING_TITLE = "Landing page reached"


def _executable(preferred: str, name: str) -> str | None:
    if os.access(preferred, os.X_OK):
        return preferred
    return shutil.which(name)


def browser_or_skip() -> tuple[str, str]:
    """Chromium and chromedriver, or a skip — a failure when TRACKLY_REQUIRE_BROWSER is set."""
    chromium = _executable(CHROMIUM, "chromium")
    driver = _executable(CHROMEDRIVER, "chromedriver")
    missing = [
        name for name, path in (("chromium", chromium), ("chromedriver", driver)) if not path
    ]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        message = (
            f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)"
        )
        if os.environ.get("TRACKLY_REQUIRE_BROWSER"):
            pytest.fail(f"TRACKLY_REQUIRE_BROWSER is set but {message}", pytrace=False)
        pytest.skip(message)
    return chromium, driver


class Landing:
    """The offer's destination: a tiny HTTP server on its own loopback port."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        landing = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                landing.paths.append(self.path)
                if not self.path.startswith("/landing"):
                    self.send_error(404)
                    return
                body = (
                    "<!DOCTYPE html><html><head><meta charset='utf-8'>"
                    f"<title>{LANDING_TITLE}</title></head>"
                    "<body><h1>Welcome to the shop</h1></body></html>"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Landing:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def chrome(chromium: str, driver: str, profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--user-agent={DESKTOP_CHROME_UA}",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    browser.set_page_load_timeout(20)
    browser.set_script_timeout(20)
    return browser


@pytest.mark.slow
def test_chromium_through_an_interstitial_to_the_destination(acme, live_server, db_path, tmp_path):
    chromium, driver = browser_or_skip()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    with Landing() as landing:
        acme("domain", "add", "localhost", "--http", "--account", "acme")
        acme(
            "offer",
            "create",
            "Browser Deal",
            "--url",
            f"http://127.0.0.1:{landing.port}/landing?sub={{link_id}}",
            "--interstitial",
            "custom",
            "--title",
            "Your deal is waiting",
            "--description",
            "Tap below to open the shop.",
            "--cta",
            "Open the shop",
        )
        (tmp_path / "deal.txt").write_text("Your deal: {{link1}}", encoding="utf-8")
        shortened = acme.json(
            "shorten", "deal.txt", "--link", "link1=Browser Deal", "--domain", "localhost"
        )
        [link] = shortened["links"]
        link_id, message_id = link["id"], shortened["message_id"]
        assert link["short_url"] == f"http://localhost/{link_id}"
        server = live_server()

        browser = chrome(chromium, driver, tmp_path / "chrome-profile")
        try:
            browser.get(f"http://localhost:{server.port}/{link_id}")
            assert browser.title == "Your deal is waiting"
            cta = browser.find_element(By.CSS_SELECTOR, "a.cta")
            assert cta.text == "Open the shop"
            assert "Tap below to open the shop." in browser.page_source

            cta.click()
            WebDriverWait(browser, 20).until(expected_conditions.title_is(LANDING_TITLE))
            assert browser.current_url == (f"http://127.0.0.1:{landing.port}/landing?sub={link_id}")
        finally:
            browser.quit()
        assert f"/landing?sub={link_id}" in landing.paths
        assert server.stop() == 0  # stores what its click journal holds, then stops

    conn = sqlite3.connect(db_path, timeout=10)
    try:
        message_clicks = conn.execute(
            "SELECT link_id, source FROM message_clicks WHERE message_id = ?", (message_id,)
        ).fetchall()
        raw = conn.execute(
            "SELECT method, is_bot, bot_reasons FROM message_short_link_clicks WHERE link_id = ?",
            (link_id,),
        ).fetchall()
    finally:
        conn.close()
    assert message_clicks == [(link_id, "click")], raw
    assert [(method, is_bot) for method, is_bot, _ in raw] == [("GET", 0)], raw
