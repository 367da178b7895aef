"""What makes a million-message shorten fast must not change what it writes: the one-call
renderer, the hand-written outbox CSV, the per-chunk clustered link ids drawn without asking the
table (and redrawn when one is taken), and the foreign key checks left out of the chunks."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from test_shorten_chunks import add_members

from trackly_cli.core import links, shorten, store, templates
from trackly_cli.core.errors import Conflict

TRICKY = [
    "",
    "plain text",
    "a, comma",
    'a "quote"',
    '"',
    ",",
    "line\nbreak",
    "carriage\rreturn",
    "crlf\r\n",
    "  spaces  ",
    "Ünïcödé ✓ 🎉",
    '=HYPERLINK("x","y")',
    "tab\there",
    "'single'",
]


@pytest.mark.parametrize("text", TRICKY)
def test_an_outbox_cell_is_written_as_the_csv_module_writes_it(text):
    row = ["+12025550100", 7, text, 1, "GSM-7"]
    expected = io.StringIO()
    csv.writer(expected).writerow(row)
    line = f"{row[0]},{row[1]},{shorten.outbox_cell(text)},{row[3]},{row[4]}\r\n"
    assert line == expected.getvalue()
    assert next(csv.reader(io.StringIO(line))) == [str(cell) for cell in row]


@pytest.mark.parametrize(
    "text",
    [
        "Hi {{first_name|there}}! {{link1}} or {{ link2 }} Reply STOP",
        "Single { and } braces, {x} and }{ around {{first_name}} {{link1}}",
        "{{link1}}{{first_name}}{{first_name|you}}{{city|}}{{phone}}",
        "Shop https://shop.example/a,b now {{link1}} (https://example.org/wiki_(x))",
        "No placeholders at all",
    ],
)
def test_the_formatter_renders_what_render_renders(text):
    template = templates.compile_template(text)
    pattern, placeholders = template.formatter()
    short = {slot: f"https://go.test/{slot}XYZ" for slot in [*template.slots, *template.urls]}
    for values in ({}, {"first_name": "Ann", "city": "Oslo", "phone": "+1202"}, {"city": ""}):
        args = [
            short[p.name]
            if isinstance(p, templates.Slot)
            else (values.get(p.name) or p.fallback or "")
            for p in placeholders
        ]
        assert pattern.format(*args) == template.render(values, short)


def test_clustered_ids_share_a_random_first_character_and_stay_random_after_it():
    firsts = Counter()
    for _ in range(200):
        ids = links.clustered()(50)
        assert len({i[0] for i in ids}) == 1
        assert all(links.VALID_ID.match(i) for i in ids)
        firsts[ids[0][0]] += 1
    assert len(firsts) > 40  # the first character is drawn anew per source, from all 62
    tails = Counter("".join(i[1:] for i in links.clustered()(10_000)))
    assert set(tails) == set(links.ALPHABET)
    assert max(tails.values()) < 1.3 * 60_000 / 62


def test_draw_gives_distinct_ids_even_from_a_source_that_repeats():
    draws = iter([["aaaaaa1", "aaaaaa1", "aaaaaa2"], ["aaaaaa2", "aaaaaa3"]])
    assert links.draw(3, lambda n: next(draws)) == ["aaaaaa1", "aaaaaa2", "aaaaaa3"]
    with pytest.raises(RuntimeError):
        links.draw(2, lambda n: ["same000"])


@pytest.fixture
def listed(acme, db_path, tmp_path) -> Path:
    """acme with the list `big` of 2,500 contacts (more than one chunk) and the offer
    `Electronics`."""
    acme("offer", "create", "Electronics", "--url", "https://shop.example/tv")
    acme("list", "create", "big")
    add_members(db_path, "big", 2_500)
    return db_path


def plan_for(db, template: str, campaign: str = "june"):
    return shorten.prepare(
        db,
        account_ref="acme",
        sources=[shorten.TemplateSource("t", template)],
        bindings=["link1=Summer Sale", "link2=Electronics"],
        list_ref="big",
        campaign=campaign,
    )


def test_a_taken_id_makes_the_batch_again_with_fresh_ids(acme, listed, db, tmp_path):
    acme("shorten", "-", "--link", "link1=Summer Sale", input="one-off {{link1}}")
    taken = [r[0] for r in db.execute("SELECT id FROM short_links")]
    assert len(taken) == 1
    before = taken[0]
    # The first draw hands out the taken id; every later draw is random.
    calls = []

    def source(count: int) -> list[str]:
        calls.append(count)
        drawn = links.random_ids(count)
        return [before, *drawn[1:]] if len(calls) == 1 else drawn

    outbox = tmp_path / "june.csv"
    summary = shorten.run(
        db, plan_for(db, "Hi {{first_name}} {{link1}} {{link2}}"), outbox=outbox, id_source=source
    )
    assert summary.recipients == 2_500 and summary.links == 5_000
    rows = db.execute(
        "SELECT l.id, l.message_id, m.body FROM short_links l JOIN messages m"
        " ON m.id = l.message_id WHERE m.campaign_id IS NOT NULL"
    ).fetchall()
    assert len(rows) == 5_000 and len({r[0] for r in rows}) == 5_000
    assert before not in {r[0] for r in rows}
    # the one-off still owns its link, and every body carries its own links
    assert db.execute("SELECT message_id FROM short_links WHERE id = ?", (before,)).fetchone()
    assert all(f"/{link_id}" in body for link_id, _, body in rows)
    assert f"/{before}" not in outbox.read_text(encoding="utf-8")
    assert len(calls) > 2  # the batch was drawn again (and checked) after the collision


def test_the_outbox_holds_exactly_the_stored_messages(listed, db, tmp_path):
    execute_fields(listed)
    outbox = tmp_path / "june.csv"
    shorten.run(db, plan_for(db, 'Hi {{first_name|there}}, "{{city|home}}" {{link1}} {{link2}}'))
    shorten.run(
        db,
        plan_for(db, 'Hi {{first_name|there}}, "{{city|home}}" {{link1}} {{link2}}', "july"),
        outbox=outbox,
    )
    with outbox.open(newline="", encoding="utf-8") as handle:
        read = list(csv.DictReader(handle))
    stored = {
        r[0]: r
        for r in db.execute(
            "SELECT m.id, c.phone, m.body, m.segments, m.encoding FROM messages m"
            " JOIN contacts c ON c.id = m.contact_id JOIN campaigns k ON k.id = m.campaign_id"
            " WHERE k.name = 'july'"
        )
    }
    assert len(read) == len(stored) == 2_500
    for row in read:
        _, phone, body, segments, encoding = stored[int(row["message_id"])]
        assert (row["phone"], row["text"], int(row["segments"]), row["encoding"]) == (
            phone,
            body,
            segments,
            encoding,
        )
    bodies = {r["text"].split(" https://")[0] for r in read}
    assert bodies == {'Hi Al, "Oslo, NO"', 'Hi there, "home"', 'Hi Zoë\n"the 2nd", "home"'}
    # ë is outside GSM-7: exactly the messages to Zoë are UCS-2
    zoe = sum(r["text"].startswith("Hi Zoë") for r in read)
    assert 800 < zoe < 870
    assert Counter(r["encoding"] for r in read) == {"GSM-7": 2_500 - zoe, "UCS-2": zoe}


def execute_fields(db_path: Path) -> None:
    """Give a third of the contacts a city with a comma, a third no fields, a third a name with
    a quote, a line break and a character outside GSM-7."""
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            "UPDATE contacts SET fields = CASE id % 3"
            """ WHEN 0 THEN '{"first_name": "Al", "city": "Oslo, NO"}'"""
            " WHEN 1 THEN '{}'"
            """ ELSE '{"first_name": "Zoë\\n\\"the 2nd\\""}' END"""
        )
    conn.close()


def test_foreign_key_checks_are_back_on_after_a_send_and_after_a_failed_one(listed, db):
    shorten.run(db, plan_for(db, "A {{link1}} {{link2}}"))
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1

    def fail(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        shorten.run(db, plan_for(db, "B {{link1}} {{link2}}", "july"), progress=fail)
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert [r[0] for r in db.execute("SELECT name FROM campaigns")] == ["june"]
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []


def test_an_offer_deleted_while_the_send_runs_stops_it_and_leaves_nothing(listed, db, acme):
    before = store.scalar(db, "SELECT count(*) FROM messages")
    electronics = store.scalar(db, "SELECT id FROM offers WHERE name = 'Electronics'")

    def delete_offer(done: int) -> None:
        # (inside the first chunk's transaction, with the checks off: what another process
        # could do between two chunks if nothing stopped it)
        if done == 1_000:
            db.execute("DELETE FROM offers WHERE id = ?", (electronics,))

    with pytest.raises(Conflict, match="offer"):
        shorten.run(db, plan_for(db, "A {{link1}} {{link2}}"), progress=delete_offer)
    assert store.scalar(db, "SELECT count(*) FROM messages") == before
    assert store.scalar(db, "SELECT count(*) FROM campaigns") == 0
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_the_statements_refuse_a_timestamp_they_did_not_expect(listed, db):
    plan = plan_for(db, "A {{link1}} {{link2}}")
    send = shorten._Send(plan, shorten.Summary(None, None, None, "x", "s"), None, None, None)
    send.now = "2026-01-01'); DROP TABLE messages; --"
    with pytest.raises(ValueError):
        send._statements()
