"""Report speed at scale: `trackly report --by offer` and `--by campaign` over 10,000,000 raw
clicks and 1,000,000 messages, against the naive report that scans the raw clicks, measured in
the same run.

    python bench/report.py                          # 1,000,000 messages, 10,000,000 clicks
    python bench/report.py --messages 100000 --clicks 1000000
    python bench/report.py --keep /tmp/report-bench  # build once, reuse

The data set: 20 campaigns of 2 variants to 2 lists, 2 links per message over 3 offers and 2
domains, clicks spread over 30 days (a third of them bots), a MessageClick for the first human
click of a fifth of the messages, and conversions for a tenth of those. Raw clicks and
MessageClicks go in through the same triggers as the server's, so the report counters are the
ones a real database would hold. Target: each report in <= 1 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trackly_cli.core import clock, filters, links, reports, store

CAMPAIGNS = 20
BATCH = 100_000
START = 1_764_547_200  # 2025-12-01T00:00:00Z


def stamp(seconds: float) -> str:
    return clock.timestamp_text(seconds)


def build(path: Path, messages: int, clicks: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    db = store.open_db(path)
    conn = db
    conn.execute("PRAGMA cache_size = -262144")
    now = "2025-12-01T00:00:00.000000Z"
    with store.write(conn):
        conn.execute(
            "INSERT INTO accounts (id, name, name_key, created_at, updated_at)"
            " VALUES (1, 'bench', 'bench', ?, ?)",
            (now, now),
        )
        for i, host in enumerate(("go.bench.test", "go.bench2.test"), start=1):
            conn.execute(
                "INSERT INTO domains (id, account_id, hostname, is_default, created_at)"
                " VALUES (?, 1, ?, ?, ?)",
                (i, host, int(i == 1), now),
            )
        for i in range(1, 4):
            conn.execute(
                "INSERT INTO offers (id, account_id, name, name_key, url, payout_micros,"
                " postback_secret, created_at, updated_at)"
                " VALUES (?, 1, ?, ?, 'https://shop.example/', 2500000, 's', ?, ?)",
                (i, f"Offer {i}", f"offer {i}", now, now),
            )
        for i in range(1, 3):
            conn.execute(
                "INSERT INTO lists (id, account_id, name, name_key, created_at,"
                " updated_at) VALUES (?, 1, ?, ?, ?, ?)",
                (i, f"list-{i}", f"list-{i}", now, now),
            )
        for i in range(1, 3):
            conn.execute(
                "INSERT INTO creatives (id, account_id, name, name_key, body,"
                " created_at) VALUES (?, 1, ?, ?, '{{link1}} {{link2}}', ?)",
                (i, f"creative-{i}", f"creative-{i}", now),
            )
        for i in range(1, CAMPAIGNS + 1):
            conn.execute(
                "INSERT INTO campaigns (id, account_id, name, name_key, list_id,"
                " domain_id, seed, created_at) VALUES (?, 1, ?, ?, ?, ?, 's', ?)",
                (i, f"campaign-{i:02d}", f"campaign-{i:02d}", 1 + i % 2, 1 + i % 2, now),
            )
            conn.executemany(
                "INSERT INTO campaign_variants VALUES (?, ?, ?, 1)", [(i, "A", 1), (i, "B", 2)]
            )
        conn.executemany(
            "INSERT INTO contacts (id, account_id, phone, created_at, updated_at)"
            " VALUES (?, 1, ?, ?, ?)",
            ((i, f"+1202{i:07d}", now, now) for i in range(1, messages + 1)),
        )

    # Messages and their links (what `trackly shorten` writes), then its sent counters.
    per_campaign = messages // CAMPAIGNS
    link_rows: list[tuple] = []
    with store.write(conn):
        for first in range(1, messages + 1, BATCH):
            batch = range(first, min(first + BATCH, messages + 1))
            message_rows = []
            for m in batch:
                campaign = min(CAMPAIGNS, 1 + (m - 1) // per_campaign)
                variant = "A" if m % 2 else "B"
                created = stamp(START + (campaign - 1) * 86400 + (m % 3600))
                message_rows.append(
                    (
                        m,
                        campaign,
                        1 + campaign % 2,
                        1 if variant == "A" else 2,
                        m,
                        variant,
                        1 + campaign % 2,
                        created,
                    )
                )
            conn.executemany(
                "INSERT INTO messages (id, account_id, campaign_id, list_id, creative_id,"
                " contact_id, variant, domain_id, body, segments, encoding, created_at)"
                " VALUES (?, 1, ?, ?, ?, ?, ?, ?, 'x', 1, 'GSM-7', ?)",
                message_rows,
            )
            ids = links.random_ids(2 * len(batch))
            rows = []
            for (m, _campaign, _, _, _, _, domain, created), a, b in zip(
                message_rows, ids[::2], ids[1::2], strict=True
            ):
                rows.append((a, m, m, domain, "link1", 1 + m % 3, created))
                rows.append((b, m, m, domain, "link2", 1 + (m + 1) % 3, created))
            rows.sort()
            conn.executemany(
                "INSERT OR IGNORE INTO short_links (id, account_id, message_id, contact_id,"
                " domain_id, slot, offer_id, created_at) VALUES (?, 1, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        conn.execute(
            "INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id,"
            " list_id, variant, domain_id, offer_id, sent)"
            " SELECT 1, " + _bucket("created_at") + ", campaign_id, creative_id, list_id,"
            " variant, domain_id, 0, count(*) FROM messages GROUP BY 2, 3, 4, 5, 6, 7"
        )
        conn.execute(
            "INSERT INTO report_rollups (account_id, bucket_at, campaign_id, creative_id,"
            " list_id, variant, domain_id, offer_id, offer_sent)"
            " SELECT 1, " + _bucket("m.created_at") + ", m.campaign_id, m.creative_id,"
            " m.list_id, m.variant, m.domain_id, l.offer_id, count(DISTINCT m.id)"
            " FROM short_links l JOIN messages m ON m.id = l.message_id GROUP BY 2, 3, 4, 5, 6,"
            " 7, 8 ON CONFLICT (account_id, bucket_at, campaign_id, creative_id, list_id,"
            " variant, domain_id, offer_id) DO UPDATE SET offer_sent = excluded.offer_sent"
        )
    link_rows = conn.execute(
        "SELECT l.id, l.message_id, l.offer_id, l.domain_id, m.campaign_id, m.creative_id,"
        " m.list_id, m.variant FROM short_links l JOIN messages m ON m.id = l.message_id"
        " ORDER BY l.id"
    ).fetchall()

    # Raw clicks, through the triggers that keep the counters; a fifth of the messages get
    # their first human click recorded as the MessageClick.
    clicked: set[int] = set()
    per_link = clicks / len(link_rows)
    written = 0
    click_id = 0
    position = 0  # the next link to click, across batches
    started = time.perf_counter()
    while written < clicks:
        with store.write(conn):
            raw, firsts = [], []
            while len(raw) < BATCH and written < clicks:
                link = link_rows[position % len(link_rows)]
                position += 1
                hits = int(per_link) + (rng.random() < per_link - int(per_link))
                for _ in range(hits):
                    if written >= clicks:
                        break
                    click_id += 1
                    written += 1
                    (
                        link_id,
                        message_id,
                        offer_id,
                        domain_id,
                        campaign_id,
                        creative_id,
                        list_id,
                        variant,
                    ) = link
                    moment = START + (campaign_id - 1) * 86400 + rng.random() * 30 * 86400
                    is_bot = int(rng.random() < 0.33)
                    raw.append(
                        (
                            click_id,
                            stamp(moment),
                            link_id,
                            message_id,
                            message_id,
                            offer_id,
                            campaign_id,
                            creative_id,
                            list_id,
                            variant,
                            domain_id,
                            f"c:{message_id}",
                            is_bot,
                        )
                    )
                    if not is_bot and message_id % 5 == 0 and message_id not in clicked:
                        clicked.add(message_id)
                        firsts.append(
                            (
                                message_id,
                                f"c:{message_id}",
                                message_id,
                                link_id,
                                offer_id,
                                campaign_id,
                                creative_id,
                                list_id,
                                variant,
                                domain_id,
                                click_id,
                                stamp(moment),
                                now,
                            )
                        )
            conn.executemany(
                "INSERT INTO message_short_link_clicks (id, clicked_at, link_id, message_id,"
                " contact_id, offer_id, account_id, campaign_id, creative_id, list_id, variant,"
                " domain_id, method, visitor, is_bot)"
                " VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, 'GET', ?, ?)",
                raw,
            )
            conn.executemany(
                "INSERT OR IGNORE INTO message_clicks (message_id, visitor, contact_id, link_id,"
                " offer_id, account_id, campaign_id, creative_id, list_id, variant, domain_id,"
                " click_id, clicked_at, source, created_at)"
                " VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, 'click', ?)",
                firsts,
            )
        if written % 1_000_000 < BATCH:
            print(f"  {written:,} clicks ({time.perf_counter() - started:.0f} s)", flush=True)
    with store.write(conn):
        conn.execute(
            "INSERT INTO conversions (account_id, offer_id, link_id, message_id, contact_id,"
            " campaign_id, creative_id, list_id, variant, domain_id, message_click_id, event,"
            " is_reversal, revenue_micros, payout_micros, txn_id, source, attribution,"
            " converted_at, created_at)"
            " SELECT 1, offer_id, link_id, message_id, contact_id, campaign_id, creative_id,"
            " list_id, variant, domain_id, id, 'sale', 0, 24990000, 2500000, 'T' || id, 'conv',"
            " 'attributed', clicked_at, clicked_at FROM message_clicks WHERE id % 10 = 0"
        )
    db.close()


def _bucket(column: str) -> str:
    return (
        f"substr({column}, 1, 14) || substr('00153045',"
        f" (CAST(substr({column}, 15, 2) AS INTEGER) / 15) * 2 + 1, 2) || ':00Z'"
    )


def timed(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--clicks", type=int, default=10_000_000)
    parser.add_argument("--keep", type=Path, help="Build the database here once and reuse it.")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="trackly-report-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "report.db"
    if not path.exists():
        started = time.perf_counter()
        build(path, args.messages, args.clicks)
        print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
    db = store.open_db(path)
    conn = db
    counts = {
        table: store.scalar(conn, f"SELECT count(*) FROM {table}")
        for table in (
            "messages",
            "short_links",
            "message_short_link_clicks",
            "message_clicks",
            "conversions",
            "report_rollups",
        )
    }
    print(", ".join(f"{k}: {v:,}" for k, v in counts.items()))
    chosen = filters.resolve(conn, account="bench")
    results = {}
    for by in ("offer", "campaign"):
        results[f"report --by {by} (query)"] = timed(lambda by=by: reports.report(conn, chosen, by))
        results[f"report --by {by} (CLI, incl. start-up)"] = timed(
            lambda by=by: subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "trackly_cli",
                    "--db",
                    str(path),
                    "report",
                    "--by",
                    by,
                    "--format",
                    "json",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            ),
            repeat=3,
        )
    # The baseline: what a report must do without counters (the raw-click part alone).
    results["naive: GROUP BY offer over raw clicks"] = timed(
        lambda: conn.execute(
            "SELECT offer_id, count(*), sum(is_bot) FROM"
            " message_short_link_clicks GROUP BY offer_id"
        ).fetchall(),
        repeat=1,
    )
    db.close()
    for name, seconds in results.items():
        print(f"{name:45} {seconds:8.3f} s")
    naive = results["naive: GROUP BY offer over raw clicks"]
    query = results["report --by offer (query)"]
    print(f"speed-up of --by offer over the naive scan: {naive / query:,.0f}x")


if __name__ == "__main__":
    main()
