"""The click drain's cost with the webhook triggers (migration 0016), measured in one run.

    python bench/webhooks.py [--recipients 20000] [--clicks 20000] [--rounds 3]

Builds one SQLite database with a campaign of --recipients messages, then copies it three
times: "no triggers" (the three webhook triggers dropped: the schema before 0016), "no hooks"
(the triggers, and an account without hooks: what every install without webhooks pays) and "one
hook" (a hook subscribed to click.first and click.bot: each first click and each bot click also
writes its event). Into each copy it stores --clicks clicks as the server's drain does
(clicks.record_many, batches of 200 in one transaction each; a click in ten is a bot's), and
prints clicks per second (the best of --rounds, each on a fresh copy) and each mode's time
against "no triggers".
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH = 200
UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like"
    " Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
MODES = ("no triggers", "no hooks", "one hook")


def trackly(db: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "trackly_cli", "--db", str(db), *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )


def build(folder: Path, recipients: int) -> Path:
    db = folder / "base.db"
    contacts = folder / "contacts.csv"
    phones = (f"+1{202 + n // 10000}555{n % 10000:04d}\n" for n in range(recipients))
    contacts.write_text("phone\n" + "".join(phones), encoding="utf-8")
    (folder / "m.txt").write_text("Sale {{link1}}", encoding="utf-8")
    trackly(db, "account", "create", "acme")
    trackly(db, "domain", "add", "go.acme.test", "--account", "acme")
    trackly(db, "offer", "create", "Sale", "--url", "https://shop.example/")
    trackly(db, "list", "create", "vip")
    trackly(db, "contacts", "import", "vip", str(contacts))
    trackly(db, "shorten", str(folder / "m.txt"), "--list", "vip", "--link", "link1=Sale",
            "--campaign", "june", "-o", str(folder / "out.csv"))  # fmt: skip
    conn = sqlite3.connect(db)
    conn.execute("UPDATE messages SET created_at = '2026-01-01T00:00:00.000000Z'")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return db


def copy(base: Path, mode: str, folder: Path, n: int) -> Path:
    db = folder / f"{mode.replace(' ', '-')}-{n}.db"
    shutil.copy(base, db)
    conn = sqlite3.connect(db)
    if mode == "no triggers":
        for name in ("message_clicks_webhook", "msl_clicks_webhook", "conversions_webhook"):
            conn.execute(f"DROP TRIGGER {name}")
    elif mode == "one hook":
        conn.execute(
            "INSERT INTO webhooks (account_id, url, events, secret, enabled, created_at)"
            " VALUES (1, 'https://crm.example/h', 'click.first,click.bot', 'whsec_bench_secret',"
            " 1, '2026-01-01T00:00:00.000000Z')"
        )
    conn.commit()
    conn.close()
    return db


def drain(db: Path, clicks_n: int, seed: int) -> tuple[float, int]:
    """Seconds to store `clicks_n` clicks, as the drain does."""
    from trackly_cli.core import clicks, clock, store

    conn = store.connect(db)
    clicks.prepare_click_input(conn)
    ids = [r[0] for r in conn.execute("SELECT id FROM short_links ORDER BY id")]
    rng = random.Random(seed)
    made = []
    for n in range(clicks_n):
        link = clicks.load_link(conn, rng.choice(ids))
        bot = n % 10 == 0
        ip = f"198.51.{n // 250 % 250}.{n % 250}"
        visitor = clicks.visitor(link, ip, UA, b"s")
        reasons = "bench" if bot else ""
        made.append(
            clicks.Click(
                link, clock.now_text(), "GET", ip, UA, None, "en", visitor, bot, reasons, True
            )
        )
    started = time.perf_counter()
    next_id = None
    for start in range(0, len(made), BATCH):
        with store.write(conn):
            next_id = clicks.record_many(conn, made[start : start + BATCH], next_id)
    elapsed = time.perf_counter() - started
    events = conn.execute("SELECT count(*) FROM webhook_events").fetchone()[0]
    conn.close()
    return elapsed, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--clicks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        base = build(folder, args.recipients)
        best: dict[str, float] = {}
        events: dict[str, int] = {}
        for n in range(args.rounds):
            for mode in MODES:  # (interleaved: a slower moment of the machine hits every mode)
                seconds, written = drain(copy(base, mode, folder, n), args.clicks, seed=n)
                best[mode] = min(best.get(mode, seconds), seconds)
                events[mode] = written
        print(f"{args.clicks:,} clicks ({args.recipients:,} recipients), best of {args.rounds}:")
        for mode in MODES:
            ratio = best[mode] / best["no triggers"]
            print(
                f"  {mode:12} {args.clicks / best[mode]:>9,.0f} clicks/s"
                f"  {best[mode] * 1000:7.0f} ms  x{ratio:.3f}  ({events[mode]:,} events written)"
            )


if __name__ == "__main__":
    main()
