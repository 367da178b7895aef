"""The redirect server's in-memory link index (LinkIndex, HotLinks) against the database: every
indexed link equals what clicks.load_link reads from SQLite, field for field, after real
`trackly shorten` runs (a campaign, an A/B campaign, a one-off), with size caps, `after=`,
gaps in message ids and the segments that HotLinks adds and reloads."""

from __future__ import annotations

import logging
import sqlite3
import sys
from pathlib import Path

import pytest
from conftest import add_url_links, execute, query, wait_for

from trackly_cli.core import clicks, linkindex, store
from trackly_cli.core.linkindex import HotLinks, LinkIndex

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # ASCII order


# --- helpers ----------------------------------------------------------------------------------


def links_by_message(db_path: Path) -> dict[int, list[str]]:
    """Link ids grouped by message id, oldest message first."""
    grouped: dict[int, list[str]] = {}
    for row in query(db_path, "SELECT id, message_id FROM short_links ORDER BY message_id, id"):
        grouped.setdefault(row["message_id"], []).append(row["id"])
    return grouped


def all_ids(db_path: Path) -> list[str]:
    return [r["id"] for r in query(db_path, "SELECT id FROM short_links ORDER BY id")]


def assert_indexed(index: LinkIndex | HotLinks, conn: sqlite3.Connection, ids) -> None:
    """Every id is found, and equal to what the database says."""
    for link_id in ids:
        found = index.get(link_id)
        assert found is not None, f"{link_id} missing from the index"
        assert found == clicks.load_link(conn, link_id), link_id
        assert type(found.sent_at) is float


def assert_absent(index: LinkIndex | HotLinks, ids) -> None:
    assert ids, "nothing to check"
    for link_id in ids:
        assert index.get(link_id) is None, link_id


def send_ab(cli, tmp_path: Path, name: str) -> None:
    """An A/B campaign `name` to the 3 members of `vip` (seed 3: variant A twice, B once),
    each message with an offer link and a plain-URL link."""
    (tmp_path / "a.txt").write_text("A {{first_name}} {{link1}} {{link2}}", encoding="utf-8")
    (tmp_path / "b.txt").write_text("B {{link1}} {{link2}}", encoding="utf-8")
    cli(
        "shorten", "a.txt", "b.txt", "--list", "vip", "--campaign", name, "--seed", "3",
        "-l", "link1=Summer Sale", "-l", "link2=https://plain.example/ab",
    )  # fmt: skip


@pytest.fixture
def conn(db_path: Path):
    connection = store.connect(db_path)
    yield connection
    connection.close()


@pytest.fixture
def sent(campaign, acme, tmp_path: Path, db_path: Path) -> dict[int, list[str]]:
    """Messages 1-3: campaign 'spring'; 4-6: the A/B campaign 'ab'; 7: a one-off (no contact,
    no campaign, no list). Two links each. Returns the link ids by message id."""
    send_ab(acme, tmp_path, "ab")
    (tmp_path / "one.txt").write_text("Hi {{first_name|you}} {{link1}} {{link2}}", "utf-8")
    acme("shorten", "one.txt", "-l", "link1=Summer Sale", "-l", "link2=https://plain.example/1")
    grouped = links_by_message(db_path)
    assert list(grouped) == [1, 2, 3, 4, 5, 6, 7]
    assert all(len(ids) == 2 for ids in grouped.values())
    return grouped


@pytest.fixture
def hot_links(db_path: Path):
    """make(size, **class attributes to override) -> a HotLinks (not started); all stopped at
    the end."""
    made: list[HotLinks] = []

    def make(size: int = linkindex.DEFAULT_SIZE, **overrides) -> HotLinks:
        hot = HotLinks(db_path, size)
        for name, value in overrides.items():
            assert hasattr(HotLinks, name), name
            setattr(hot, name, value)
        made.append(hot)
        return hot

    yield make
    for hot in made:
        hot.stop()


def started(hot: HotLinks) -> HotLinks:
    hot.start()
    assert hot.wait_loaded(30)
    return hot


# --- LinkIndex: equivalence with the database ---------------------------------------------------


@pytest.mark.parametrize("fetch", [linkindex.FETCH, 3, 1])
def test_every_link_equals_load_link(sent, conn, db_path, monkeypatch, fetch):
    # small fetches cross chunk boundaries (the URL positions of later chunks)
    monkeypatch.setattr(linkindex, "FETCH", fetch)
    index = LinkIndex.load(conn)
    assert not conn.in_transaction
    ids = all_ids(db_path)
    assert len(index) == len(ids) == 14
    assert (index.first_message_id, index.last_message_id) == (1, 7)
    assert_indexed(index, conn, ids)

    # the data covers every kind of field the index rebuilds
    infos = [index.get(i) for i in ids]
    assert {i.campaign for i in infos} == {"spring", "ab", ""}
    assert {i.variant for i in infos} == {None, "A", "B"}
    assert {i.url for i in infos if i.offer_id is None} == {
        "https://plain.example/page",
        "https://plain.example/ab",
        "https://plain.example/1",
    }
    assert all(i.url is None for i in infos if i.offer_id is not None)
    one_off = [index.get(i) for i in sent[7]]
    assert {(i.contact_id, i.campaign_id, i.list_id, i.variant) for i in one_off} == {
        (None, None, None, None)
    }
    assert all(i.creative_id is not None for i in one_off)
    spring_sent = {i.sent_at for i in infos if i.campaign == "spring"}
    assert len(spring_sent) == 1
    assert spring_sent.pop() == pytest.approx(1767225600.0, abs=1e-3)  # as the fixture sets it


def test_empty_database_gives_an_empty_index(db, conn):
    index = LinkIndex.load(conn)
    assert len(index) == 0
    assert index.bytes == 0
    assert (index.first_message_id, index.last_message_id) == (1, 0)
    assert index.get("0000000") is None
    assert index.get("abcdefg") is None


def test_unknown_ids_give_none(sent, conn, db_path):
    index = LinkIndex.load(conn)
    ids = all_ids(db_path)
    assert ids[0] > "0000000" and ids[-1] < "zzzzzzz"
    missing = {"0000000", "zzzzzzz"}
    for link_id in ids:  # the neighbours of every key, one letter off at the end
        position = ALPHABET.index(link_id[-1])
        for neighbour in ALPHABET[max(position - 1, 0)], ALPHABET[min(position + 1, 61)]:
            missing.add(link_id[:-1] + neighbour)
    missing -= set(ids)
    assert len(missing) > 14
    assert_absent(index, sorted(missing))
    assert_indexed(index, conn, ids)


# --- LinkIndex: size and after= ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "first"),
    [(2, 3), (3, 3), (4, 2), (5, 2), (6, 1), (7, 1), (linkindex.DEFAULT_SIZE, 1)],
)
def test_size_holds_whole_newest_messages(campaign, conn, db_path, size, first):
    # 3 messages of 2 links: at most `size` links, in whole messages, the newest ones
    grouped = links_by_message(db_path)
    index = LinkIndex.load(conn, size=size)
    assert (index.first_message_id, index.last_message_id) == (first, 3)
    held = [i for m, ids in grouped.items() if m >= first for i in ids]
    assert len(index) == len(held) == 2 * (4 - first)
    assert len(index) <= size
    assert_indexed(index, conn, held)
    older = [i for m, ids in grouped.items() if m < first for i in ids]
    if older:
        assert_absent(index, older)


@pytest.mark.parametrize("size", [0, 1])
def test_size_below_one_message_still_holds_the_newest_message(campaign, conn, db_path, size):
    index = LinkIndex.load(conn, size=size)
    assert (index.first_message_id, index.last_message_id) == (3, 3)
    grouped = links_by_message(db_path)
    assert_indexed(index, conn, grouped[3])
    assert_absent(index, grouped[1] + grouped[2])


@pytest.mark.parametrize("after", [0, 1, 3, 6, 7, 9])
def test_after_holds_the_links_of_later_messages(sent, conn, after):
    index = LinkIndex.load(conn, after=after)
    assert (index.first_message_id, index.last_message_id) == (after + 1, max(7, after))
    later = [i for m, ids in sent.items() if m > after for i in ids]
    earlier = [i for m, ids in sent.items() if m <= after for i in ids]
    assert len(index) == len(later)
    assert_indexed(index, conn, later)
    if earlier:
        assert_absent(index, earlier)


def test_after_and_size_together(sent, conn):
    # messages after 2 hold 10 links; size 4 keeps the newest whole messages: 6 and 7
    index = LinkIndex.load(conn, size=4, after=2)
    assert (index.first_message_id, index.last_message_id) == (6, 7)
    assert len(index) == 4
    assert_indexed(index, conn, sent[6] + sent[7])
    assert_absent(index, [i for m in (1, 2, 3, 4, 5) for i in sent[m]])


# --- LinkIndex: gaps in message ids -----------------------------------------------------------


@pytest.mark.parametrize("fetch", [linkindex.FETCH, 2, 1])
@pytest.mark.parametrize("after", [0, 1, 3])
def test_gaps_in_message_ids(sent, conn, db_path, monkeypatch, fetch, after):
    # message 2 (inside the spring campaign) and messages 4-5 (the first sends of 'ab') vanish:
    # gaps of 1 and 2 ids, at the start of the range when after=1 or after=3
    execute(db_path, "DELETE FROM short_links WHERE message_id IN (2, 4, 5)")
    execute(db_path, "DELETE FROM messages WHERE id IN (2, 4, 5)")
    monkeypatch.setattr(linkindex, "FETCH", fetch)
    index = LinkIndex.load(conn, after=after)
    assert (index.first_message_id, index.last_message_id) == (after + 1, 7)
    kept = [i for m, ids in sent.items() if m > after and m not in (2, 4, 5) for i in ids]
    assert len(index) == len(kept)
    assert_indexed(index, conn, kept)
    assert_absent(index, sent[2] + sent[4] + sent[5])
    # the messages after each gap keep their own campaign, variant and time
    assert {index.get(i).campaign for i in sent[6]} == {"ab"}
    assert {index.get(i).contact_id for i in sent[7]} == {None}


# --- memory -----------------------------------------------------------------------------------


def test_bytes_per_link(sent, conn, db_path, hot_links):
    index = LinkIndex.load(conn)
    # 40 bytes per link (3 x 8 + 4 x 4), 22 per message (8 + 3 x 4 + 2), 2 links a message, and
    # each distinct destination once, however many links go there
    urls = {r["url"] for r in query(db_path, "SELECT url FROM short_links")} - {None}
    assert len(urls) < len(query(db_path, "SELECT id FROM short_links WHERE url > ''"))
    assert index.bytes == 14 * 40 + 7 * 22 + sum(sys.getsizeof(url) for url in urls)
    hot = started(hot_links(100))
    assert hot.bytes == index.bytes


# --- HotLinks -------------------------------------------------------------------------------


def test_hot_links_start_loads_the_newest_links(campaign, conn, db_path, hot_links):
    hot = started(hot_links(100))
    assert len(hot.segments) == 1
    assert len(hot) == 6
    assert_indexed(hot, conn, all_ids(db_path))
    assert hot.get("0000000") is None
    capped = started(hot_links(4))
    assert len(capped) == 4
    assert capped.segments[0].first_message_id == 2
    assert_absent(capped, links_by_message(db_path)[1])


def test_hot_links_zero_holds_nothing(campaign, db_path, hot_links):
    hot = started(hot_links(0))
    assert hot.segments == ()
    assert len(hot) == 0
    assert hot.bytes == 0
    assert_absent(hot, all_ids(db_path))
    hot.stop()  # nothing started: returns at once


def test_start_returns_at_once_and_loads_in_the_background(
    campaign, conn, db_path, hot_links, caplog
):
    caplog.set_level(logging.INFO, logger="trackly.links")
    add_url_links(db_path, 300_000)
    hot = hot_links(1_000_000).start()
    assert hot.loading  # start() did not wait for the load
    assert hot.get("z000001") is None  # meanwhile the caller reads the database
    assert hot.tell_when_loaded()
    assert hot.wait_loaded(60)
    assert not hot.loading
    assert len(hot) == 300_006
    assert_indexed(hot, conn, ["z000001", "z300000", *all_ids(db_path)[:3]])
    assert "link index: 300,006 links (" in caplog.text


def test_a_load_already_done_is_not_told_again(campaign, db_path, hot_links, caplog):
    caplog.set_level(logging.INFO, logger="trackly.links")
    hot = started(hot_links(100))
    assert not hot.tell_when_loaded()  # the banner counts the links itself
    assert "link index" not in caplog.text
    assert not started(hot_links(0)).tell_when_loaded()


def test_stop_does_not_wait_for_a_first_load(campaign, db_path, hot_links, caplog):
    caplog.set_level(logging.INFO, logger="trackly.links")
    add_url_links(db_path, 300_000)
    hot = hot_links(1_000_000).start()
    assert hot.tell_when_loaded()
    hot.stop()
    assert hot._thread.is_alive()  # still loading: a stopping server does not wait for it
    hot._thread.join(60)
    assert not hot._thread.is_alive()
    assert "link index" not in caplog.text  # nobody is told of a load nobody will use


def test_a_database_it_cannot_read_leaves_the_server_without_the_index(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="trackly.links")
    folder = tmp_path / "a-folder.db"
    folder.mkdir()
    hot = HotLinks(folder, 100).start()
    assert hot.wait_loaded(30)
    assert len(hot) == 0
    assert "serving without the link index" in caplog.text
    hot.stop()


def test_update_waits_for_min_segment_links(campaign, acme, tmp_path, conn, db_path, hot_links):
    hot = started(hot_links(100))
    before = hot.segments
    send_ab(acme, tmp_path, "ab")
    hot.update(conn)  # 6 new links, fewer than MIN_SEGMENT
    assert hot.segments is before
    assert_absent(hot, [i for m, ids in links_by_message(db_path).items() if m > 3 for i in ids])


def test_update_adds_a_segment_for_new_messages(campaign, acme, tmp_path, conn, db_path, hot_links):
    hot = started(hot_links(100, MIN_SEGMENT=1))
    first = hot.segments[0]
    send_ab(acme, tmp_path, "ab")
    hot.update(conn)
    assert len(hot.segments) == 2
    assert hot.segments[1] is first  # kept as it was; the new segment comes first
    new = hot.segments[0]
    assert (new.first_message_id, new.last_message_id) == (4, 6)
    assert len(new) == 6
    assert len(hot) == 12
    assert_indexed(hot, conn, all_ids(db_path))
    grouped = links_by_message(db_path)
    assert {hot.get(i).campaign for m in (4, 5, 6) for i in grouped[m]} == {"ab"}

    segments = hot.segments
    hot.update(conn)  # nothing new
    assert hot.segments is segments

    send_ab(acme, tmp_path, "ab2")
    hot.update(conn)
    assert [(s.first_message_id, s.last_message_id) for s in hot.segments] == [
        (7, 9),
        (4, 6),
        (1, 3),
    ]
    assert len(hot) == 18
    assert_indexed(hot, conn, all_ids(db_path))


def test_update_reloads_whole_at_max_segments(campaign, acme, tmp_path, conn, db_path, hot_links):
    hot = started(hot_links(100, MIN_SEGMENT=1, MAX_SEGMENTS=1))
    first = hot.segments[0]
    send_ab(acme, tmp_path, "ab")
    hot.update(conn)
    assert len(hot.segments) == 1
    assert hot.segments[0] is not first
    assert (hot.segments[0].first_message_id, hot.segments[0].last_message_id) == (1, 6)
    assert len(hot) == 12
    assert_indexed(hot, conn, all_ids(db_path))


def test_update_reloads_whole_over_size(campaign, acme, tmp_path, conn, db_path, hot_links):
    hot = started(hot_links(8, MIN_SEGMENT=1))
    assert len(hot) == 6
    send_ab(acme, tmp_path, "ab")
    hot.update(conn)  # 6 + 6 > 8: the newest 8 links, in whole messages 3-6
    assert len(hot.segments) == 1
    assert (hot.segments[0].first_message_id, hot.segments[0].last_message_id) == (3, 6)
    assert len(hot) == 8
    grouped = links_by_message(db_path)
    assert_indexed(hot, conn, [i for m in (3, 4, 5, 6) for i in grouped[m]])
    assert_absent(hot, grouped[1] + grouped[2])


def test_the_thread_indexes_new_messages(campaign, acme, tmp_path, conn, db_path, hot_links):
    hot = started(hot_links(100, MIN_SEGMENT=1, CHECK_SECONDS=0.02))
    send_ab(acme, tmp_path, "ab")
    newest = links_by_message(db_path)[6]
    wait_for(lambda: hot.get(newest[0]), timeout=5, what="the new links in the index")
    assert len(hot.segments) == 2
    assert_indexed(hot, conn, all_ids(db_path))
    hot.stop()
    assert not hot._thread.is_alive()


def test_links_of_a_campaign_still_being_written_wait_until_it_is_complete(campaign, db_path):
    """A campaign that `trackly shorten` is writing is nobody's yet: the index leaves its links
    out (reading them as they are written would hold long reads open), and takes them once it
    is complete."""
    from trackly_cli.core import campaigns

    execute(
        db_path,
        "UPDATE campaigns SET building_pid = ?, building_host = ?",
        *campaigns.builder(),
    )
    conn = store.connect(db_path)
    try:
        assert linkindex.ready_until(conn) == 0
        assert len(linkindex.LinkIndex.load(conn)) == 0
        execute(db_path, "UPDATE campaigns SET building_pid = NULL, building_host = NULL")
        assert linkindex.ready_until(conn) == 3
        assert len(linkindex.LinkIndex.load(conn)) == len(campaign["links"])
    finally:
        conn.close()
