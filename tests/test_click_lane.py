"""The click lane (server.ClickLane): the plain GETs of short links that waitress hands straight
to the click handler get the very answer that the Bottle route gives, and everything else goes
through Bottle as before."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import HUMAN_HEADERS, execute

from trackly_cli.server import ClickLane, Tracker, create_app


@pytest.fixture
def apps(campaign, db_path: Path, tmp_path: Path):
    """(the Bottle app, the lane in front of it, the tracker) over the campaign's database."""
    tracker = Tracker(db_path, journal=tmp_path / "journal")
    app = create_app(db_path, tracker=tracker)
    yield app, ClickLane(app), tracker
    tracker.close()


def call(wsgi, path: str, method: str = "GET", **environ) -> tuple[str, dict, bytes]:
    """(status, headers, body) of one request from a phone for go.acme.test."""
    seen: dict = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers

    base = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "go.acme.test",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "198.51.100.7",
        "HTTP_HOST": "go.acme.test",
        "HTTP_USER_AGENT": HUMAN_HEADERS["User-Agent"],
        "HTTP_ACCEPT_LANGUAGE": HUMAN_HEADERS["Accept-Language"],
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
    }
    body = b"".join(wsgi({**base, **environ}, start_response))
    headers = {k: v for k, v in seen["headers"] if k != "Date"}
    assert len(headers) == len(seen["headers"]), "a header given twice"
    return seen["status"], headers, body


def both(apps, path: str, method: str = "GET", **environ):
    app, lane, tracker = apps
    through_bottle = call(app, path, method, **environ)
    through_lane = call(lane, path, method, **environ)
    tracker.sync()
    return through_bottle, through_lane


def clicks_of(tracker: Tracker, link_id: str) -> int:
    with tracker.reading() as conn:
        return conn.execute(
            "SELECT count(*) FROM message_short_link_clicks WHERE link_id = ?", (link_id,)
        ).fetchone()[0]


def test_a_redirect_is_the_same_and_each_hit_is_kept_once(apps, campaign):
    link_id = campaign["by_slot"]["link1"][0]["id"]
    bottle, lane = both(apps, f"/{link_id}")
    assert bottle == lane
    assert lane[0] == "302 Found"
    assert lane[1]["Location"] == f"https://shop.example/summer?sub={link_id}"
    assert clicks_of(apps[2], link_id) == 2


@pytest.mark.parametrize(
    ("path", "environ"),
    [
        ("/zzzzzzz", {}),  # no such link
        ("/abcdefg", {"HTTP_HOST": "other.example"}),  # not a tracking domain
        ("/abc-efg", {}),  # not a link id
    ],
)
def test_not_found_is_the_same(apps, path, environ):
    bottle, lane = both(apps, path, **environ)
    assert bottle == lane
    assert lane[0].startswith("404")


def test_an_interstitial_page_is_the_same(apps, campaign, acme):
    acme("offer", "update", "Summer Sale", "--interstitial", "custom", "--title", "Héllo <b>")
    apps[2].refresh(force=True)
    link_id = campaign["by_slot"]["link1"][0]["id"]
    bottle, lane = both(apps, f"/{link_id}")
    assert bottle == lane
    assert lane[0] == "200 OK"
    assert "Héllo &lt;b&gt;".encode() in lane[2]
    assert lane[1]["Content-Length"] == str(len(lane[2]))


def test_a_destination_beyond_ascii_is_sent_as_bottle_sends_it(campaign, db_path, tmp_path):
    link_id = campaign["by_slot"]["link2"][0]["id"]
    execute(
        db_path, "UPDATE short_links SET url = 'https://plain.example/café' WHERE id = ?", link_id
    )
    tracker = Tracker(db_path, journal=tmp_path / "journal")
    try:
        app = create_app(db_path, tracker=tracker)
        bottle, lane = both((app, ClickLane(app), tracker), f"/{link_id}")
    finally:
        tracker.close()
    assert bottle == lane
    assert lane[1]["Location"] == "https://plain.example/café".encode().decode("latin-1")


def test_a_journal_that_cannot_be_written_is_503_either_way(apps, campaign):
    app, lane, tracker = apps
    link_id = campaign["by_slot"]["link1"][0]["id"]
    tracker.writer.journal.seal()  # (as at shutdown: the journal takes no more records)
    bottle_answer = call(app, f"/{link_id}")
    lane_answer = call(lane, f"/{link_id}")
    assert bottle_answer == lane_answer
    assert lane_answer[0].startswith("503")
    assert lane_answer[1]["Retry-After"] == "5"


@pytest.mark.parametrize(
    ("method", "environ", "status"),
    [
        ("HEAD", {}, "302"),  # a scanner's HEAD: through Bottle, no body
        ("OPTIONS", {}, "204"),
        ("GET", {"REQUEST_URI": "http://other.example/LINK"}, "400"),  # Bottle's Host check
        ("GET", {"HTTP_HOST": ""}, "400"),
    ],
)
def test_what_the_lane_leaves_to_bottle_is_answered_by_bottle(
    apps, campaign, method, environ, status
):
    link_id = campaign["by_slot"]["link1"][0]["id"]
    environ = {k: v.replace("LINK", link_id) for k, v in environ.items()}
    bottle, through_lane = both(apps, f"/{link_id}", method, **environ)
    assert bottle == through_lane
    assert through_lane[0].startswith(status)
    if method == "HEAD":
        assert through_lane[2] == b""


def test_an_unexpected_failure_is_a_500_page_and_a_log_line(apps, campaign, caplog):
    tracker = apps[2]
    link_id = campaign["by_slot"]["link1"][0]["id"]
    tracker.detector = None  # (a defect: the handler fails half way)
    bottle, through_lane = both(apps, f"/{link_id}")
    assert bottle == through_lane
    assert through_lane[0].startswith("500")
    assert b"Something went wrong" in through_lane[2]
    assert "request failed" in caplog.text


def test_the_apps_own_paths_that_look_like_a_link_are_bottles(apps):
    bottle, lane = both(apps, "/healthz")
    assert bottle[0] == lane[0] == "200 OK"
    assert b'"status": "ok"' in lane[2]
