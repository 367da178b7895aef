"""Two drains storing clicks of one campaign at once on PostgreSQL: one counter row against
report counters in shards (migration 0008), measured in the same run.

    python bench/rollups.py [--pg-url postgresql://…/postgres] [--seconds 5] [--rounds 3]

Builds a PostgreSQL database (default server: $TRACKLY_TEST_POSTGRES, as `.ci/postgres start`
prints it) with one campaign of 50,000 recipients, then runs two writer processes side by side,
as two `trackly serve` nodes' drains do: each stores batches of 100 clicks of that campaign
(one transaction each, lock order as the server's) for --seconds. Mode "one row": both
connections add to shard 0, which is what every node did before the shards. Mode "shards":
each claims its own, as the server's writer does. Prints clicks stored per second and the
time of a batch's transaction (p50, p99) and the share of the time a writer waits for a
lock the other holds (sampled from pg_stat_activity) for each mode, and their ratio.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH = 100
RECIPIENTS = 50_000
UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like"
    " Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


def trackly(db: str, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "trackly_cli", "--db", db, *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )


def build(admin_url: str, folder: Path) -> str:
    import psycopg

    name = f"trackly_rollups_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    contacts = folder / "contacts.csv"
    phones = (f"+1{202 + n // 10000}555{n % 10000:04d}\n" for n in range(RECIPIENTS))
    contacts.write_text("phone\n" + "".join(phones), encoding="utf-8")
    (folder / "m.txt").write_text("Sale {{link1}}", encoding="utf-8")
    trackly(url, "account", "create", "acme")
    trackly(url, "domain", "add", "go.acme.test", "--account", "acme")
    trackly(url, "offer", "create", "Sale", "--url", "https://shop.example/")
    trackly(url, "list", "create", "vip")
    trackly(url, "contacts", "import", "vip", str(contacts))
    trackly(url, "shorten", str(folder / "m.txt"), "--list", "vip", "--link", "link1=Sale",
            "--campaign", "june", "-o", str(folder / "out.csv"))  # fmt: skip
    return url


def writer(url: str, shards: bool, seconds: float, start, out) -> None:
    from trackly_cli.core import clicks, clock, dialect, store

    conn = store.connect(url)
    dialect.lock_wait(conn, 10_000)
    if shards:
        dialect.claim_rollup_shard(conn)
    else:
        conn.execute("SET trackly.rollup_shard = 0")
    ids = [r[0] for r in conn.execute("SELECT id FROM short_links")]
    links = [clicks.load_link(conn, i) for i in ids]
    rng = random.Random(os.getpid())
    times, stored = [], 0
    start.wait()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        batch = []
        for _ in range(BATCH):
            link = rng.choice(links)
            ip = f"198.51.{rng.randrange(256)}.{rng.randrange(256)}"
            batch.append(
                clicks.Click(link, clock.now_text(), "GET", ip, UA, None, "en-US",
                             clicks.visitor(link, ip, UA, b"bench"), False, "", True)
            )  # fmt: skip
        began = time.monotonic()
        conn.execute("BEGIN")
        clicks.record_many(conn, batch)
        conn.execute("COMMIT")
        times.append(time.monotonic() - began)
        stored += len(batch)
    conn.close()
    out.put((stored, times))


def run(url: str, shards: bool, seconds: float) -> dict:
    start = multiprocessing.Barrier(3)  # the two writers, and the sampling here
    out = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=writer, args=(url, shards, seconds, start, out))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    start.wait()
    waiting = lock_waits(url, seconds)
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    times = sorted(t for _, ts in results for t in ts)
    return {
        "clicks_per_s": sum(s for s, _ in results) / seconds,
        "p50_ms": statistics.median(times) * 1000,
        "p99_ms": times[int(len(times) * 0.99)] * 1000,
        "waiting": waiting,
    }


def lock_waits(url: str, seconds: float) -> float:
    """The share of samples (every 5 ms) in which a writer waits for a lock the other holds."""
    import psycopg

    samples = waits = 0
    with psycopg.connect(url, autocommit=True) as conn:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            waits += conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            ).fetchone()[0]
            samples += 1
            time.sleep(0.005)
    return waits / samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-url", default=os.environ.get("TRACKLY_TEST_POSTGRES"))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not args.pg_url:
        raise SystemExit("needs --pg-url (or TRACKLY_TEST_POSTGRES)")
    with tempfile.TemporaryDirectory() as folder:
        url = build(args.pg_url, Path(folder))
        figures: dict[str, list[dict]] = {"one row": [], "shards": []}
        for n in range(args.rounds):
            for mode in ("one row", "shards"):
                result = run(url, mode == "shards", args.seconds)
                figures[mode].append(result)
                print(
                    f"round {n + 1} {mode:8} {result['clicks_per_s']:8,.0f} clicks/s"
                    f"  batch p50 {result['p50_ms']:6.1f} ms  p99 {result['p99_ms']:6.1f} ms"
                    f"  a writer waiting on a lock {result['waiting']:6.1%} of the time",
                    flush=True,
                )
    best = {m: max(r["clicks_per_s"] for r in rs) for m, rs in figures.items()}
    p99 = {m: statistics.median(r["p99_ms"] for r in rs) for m, rs in figures.items()}
    wait = {m: statistics.median(r["waiting"] for r in rs) for m, rs in figures.items()}
    print(
        f"shards / one row: {best['shards'] / best['one row']:.2f}x clicks/s (best round);"
        f" batch p99 {p99['one row']:.1f} -> {p99['shards']:.1f} ms, waiting on a lock"
        f" {wait['one row']:.1%} -> {wait['shards']:.1%} of the time (median round)"
    )


if __name__ == "__main__":
    main()
