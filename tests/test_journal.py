"""The click journal: records kept before the database has them, replayed exactly once after a
restart, torn and damaged records skipped with a log line, one server per journal, segments
removed once drained, and what a journal that cannot be written makes the server answer."""

from __future__ import annotations

import http.client
import logging
import resource
import threading
import time

import pytest
from conftest import HUMAN_HEADERS, Load, make_click, query, wait_for

from trackly_cli.core import clicks, journal, records, store
from trackly_cli.core.errors import InvalidInput
from trackly_cli.core.journal import Journal
from trackly_cli.core.writer import Writer


def hit(link: clicks.LinkInfo, ip: str = "198.51.100.7") -> clicks.Click:
    return make_click(link, ip=ip)


def stored_clicks(db_path) -> int:
    return query(db_path, "SELECT count(*) AS n FROM message_short_link_clicks")[0]["n"]


def registered(db_path, folder) -> None:
    """A journal the database knows (as after a server's first start), with nothing in it."""
    Writer(db_path, folder).start().close()


def kept_without_drain(folder, lines: list[bytes]) -> None:
    """Append raw lines to a journal as a server that died before its drain stored them."""
    kept = Journal(folder).open()
    kept.start()
    for line in lines:
        kept.append(line)
    kept.close()


def test_a_restart_stores_what_the_journal_kept_exactly_once(links, db_path, tmp_path, caplog):
    folder = tmp_path / "j"
    registered(db_path, folder)
    kept_without_drain(folder, [journal.encode(records.click(hit(link))) for link in links])
    caplog.set_level(logging.INFO)
    started = Writer(db_path, folder).start()
    started.sync()
    started.close()
    assert stored_clicks(db_path) == len(links)
    assert "storing" in caplog.text and "kept from the last run" in caplog.text
    # Another start finds nothing more to store, and the drained segments are gone.
    Writer(db_path, folder).start().close()
    assert stored_clicks(db_path) == len(links)
    assert journal.segments(folder) == []
    position = query(db_path, "SELECT segment, byte_offset FROM journal_state")
    assert len(position) == 1 and position[0]["segment"] >= 1


def test_a_torn_last_record_is_skipped_with_a_log_line(links, db_path, tmp_path, caplog):
    folder = tmp_path / "j"
    registered(db_path, folder)
    whole = [journal.encode(records.click(hit(link))) for link in links[:3]]
    torn = journal.encode(records.click(hit(links[3])))[:-25]  # killed mid-write
    kept_without_drain(folder, [*whole, torn])
    caplog.set_level(logging.WARNING)
    started = Writer(db_path, folder).start()
    started.sync()
    # What the server appends after its restart is stored too: it went to a new segment,
    # not after the torn bytes.
    started.record_click(hit(links[4]))
    started.sync()
    started.close()
    assert stored_clicks(db_path) == 4
    assert "skipped a torn record at the end of" in caplog.text
    assert started.skipped == 1


def test_a_damaged_record_is_skipped_and_the_rest_stored(links, db_path, tmp_path, caplog):
    folder = tmp_path / "j"
    registered(db_path, folder)
    lines = [journal.encode(records.click(hit(link))) for link in links[:3]]
    lines[1] = lines[1].replace(b"GET", b"GOT")  # the checksum no longer matches
    kept_without_drain(folder, lines)
    caplog.set_level(logging.WARNING)
    started = Writer(db_path, folder).start()
    started.sync()
    started.close()
    assert stored_clicks(db_path) == 2
    assert "skipped a damaged record" in caplog.text


def test_one_server_per_journal(db_path, campaign, tmp_path):
    first = Writer(db_path, tmp_path / "j").start()
    try:
        with pytest.raises(InvalidInput, match="in use by another `trackly serve`"):
            Writer(db_path, tmp_path / "j").start()
    finally:
        first.close()
    Writer(db_path, tmp_path / "j").start().close()  # free again once the first has stopped


def test_a_journal_folder_that_cannot_be_made_is_a_clear_error(db_path, campaign, tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(InvalidInput, match="cannot use the click journal folder"):
        Writer(db_path, tmp_path / "a-file" / "journal").start()


def test_full_segments_are_followed_by_new_ones_and_removed_once_drained(links, db_path, tmp_path):
    folder = tmp_path / "j"
    started = Writer(db_path, Journal(folder, segment_bytes=2_000)).start()  # a few records each
    try:
        for round_ in range(6):
            for link in links:
                started.record_click(hit(link, ip=f"203.0.113.{round_}"))
            started.sync()
            time.sleep(0.05)
        wait_for(lambda: len(journal.segments(folder)) == 1, what="old segments removed")
        assert journal.segments(folder)[0] > 1  # the segments moved on
    finally:
        started.close()
    assert stored_clicks(db_path) == 6 * len(links)


def test_a_segment_that_cannot_be_started_refuses_records_until_it_can(tmp_path, monkeypatch):
    """A full disk, as a file size limit: the next segment cannot be allocated, so records are
    refused (and the position stays where it was) until it can."""
    import signal

    monkeypatch.setattr(journal, "RETRY_SECONDS", 0.0)
    kept = Journal(tmp_path / "j", segment_bytes=4096).open()
    kept.start()
    record = journal.encode(["c", "x" * 1000])
    for _ in range(4):
        kept.append(record)
    position = kept.position
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, hard))
    try:
        with pytest.raises(journal.JournalError, match="cannot write the click journal"):
            kept.append(record)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert kept.position == position
    assert journal.segments(tmp_path / "j") == [1]  # no half-made segment left behind
    kept.append(record)
    assert kept.position == (2, len(record))
    kept.close()
    lines, _, rest, ended = journal.read(kept.path(1), 0)
    assert len(lines) == 4 and rest == b"" and ended
    assert [journal.decode(line) for line in lines] == [["c", "x" * 1000]] * 4


def test_db_check_reports_clicks_still_in_a_journal(acme, links, db_path, tmp_path):
    folder = tmp_path / "j"
    registered(db_path, folder)
    kept_without_drain(folder, [journal.encode(records.click(hit(link))) for link in links[:2]])
    checked = acme.json("db", "check")
    assert checked["undrained_journal_records"] == 2
    assert checked["undrained_journal_bytes"] > 0
    Writer(db_path, folder).start().close()
    assert acme.json("db", "check")["undrained_journal_records"] == 0


# -- live --------------------------------------------------------------------------------------


def get(port: int, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": "go.acme.test", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.slow
def test_a_postback_right_after_its_click_is_attributed_to_it(campaign, live_server, db_path):
    server = live_server()
    for n, link in enumerate(campaign["by_slot"]["link1"]):
        status, _ = get(server.port, f"/{link['id']}", HUMAN_HEADERS)
        assert status == 302
        status, body = get(server.port, f"/conv?link_id={link['id']}&txn_id=T{n}&revenue=5")
        assert status == 200, body
        assert b'"attribution": "attributed"' in body, body


@pytest.mark.slow
def test_a_journal_that_cannot_grow_answers_503_and_loses_nothing_it_answered(
    campaign, live_server, db_path
):
    """A full disk, as a file size limit on the running server: the requests the journal cannot
    keep answer 503 (and the log says why); every 302 is stored once the disk has room."""
    link_ids = [link["id"] for link in campaign["links"]]
    server = live_server("--journal-segment-kb", "8")  # room for a few clicks a segment
    unlimited = resource.RLIM_INFINITY
    resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (4096, unlimited))
    with Load(server.port, link_ids, threads=2, seconds=10) as load:
        wait_for(lambda: load.other_statuses.get(503, 0) >= 20, what="503s from a full journal")
    assert load.total > 0
    assert set(load.other_statuses) == {503}
    resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (unlimited, unlimited))
    # Once the disk has room, the next segment starts (tried again every half second).
    wait_for(lambda: get(server.port, f"/{link_ids[0]}", HUMAN_HEADERS)[0] == 302, timeout=5)
    assert server.stop() == 0
    log = server.log.read_text()
    assert "could not record a hit" in log and "cannot write the click journal" in log
    assert log.count("could not record a hit") < 5  # not a line per refused request
    assert "Traceback" not in log
    assert stored_clicks(db_path) == load.total + 1


def test_the_wal_stays_small_while_readers_come_and_go(links, db_path, tmp_path, monkeypatch):
    """Checkpoint starvation: readers that never pause kept SQLite from reusing the WAL, which
    grew by ~27 kB a click. The drain restarts the WAL between batches once it has grown."""
    from trackly_cli.core import writer as drain

    monkeypatch.setattr(drain, "CHECKPOINT_SECONDS", 0.0)
    stop = threading.Event()

    def reader() -> None:  # short reads, back to back, as the server's lookups are
        conn = store.connect(db_path)
        while not stop.is_set():
            conn.execute("SELECT count(*) FROM short_links").fetchone()
        conn.close()

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers:
        thread.start()
    started = Writer(db_path, tmp_path / "j").start()
    largest = 0
    try:
        for round_ in range(40):
            for n in range(250):
                started.record_click(hit(links[n % len(links)], ip=f"203.0.{round_}.{n % 250}"))
            started.sync()
            largest = max(largest, store.wal_bytes(db_path))
    finally:
        stop.set()
        for thread in readers:
            thread.join()
        started.close()
    assert stored_clicks(db_path) == 40 * 250
    assert largest < drain.JOURNAL_SIZE_LIMIT, largest


def test_a_stopping_server_refuses_records_it_could_no_longer_store(links, db_path, tmp_path):
    """Once the drain has been told to stop, the journal takes nothing more: a request racing
    the shutdown is answered 503, never acknowledged and then deleted with the drained
    segments."""
    started = Writer(db_path, tmp_path / "j").start()
    started.record_click(hit(links[0]))
    started.close()
    with pytest.raises(journal.JournalError, match="closed"):
        started.journal.append(journal.encode(records.click(hit(links[1]))))
    assert stored_clicks(db_path) == 1
