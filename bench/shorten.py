"""How long `trackly shorten` takes, and how much memory, for a 2-link template sent to large
lists; against a bare baseline measured in the same run.

    python bench/shorten.py                      # 100,000 and 1,000,000 contacts
    python bench/shorten.py --sizes 10000,50000

For each size it builds a database whose list has that many contacts (inserted directly: this
measures shorten, not the import), runs the real CLI in a subprocess and reports its wall time
and peak RSS. The baseline writes the same number of message and link rows with plain
`executemany` (random ids from the same generator; no templates, checks or outbox), so the ratio
is the price of everything shorten does beyond storing rows.
Target (#12): 1,000,000 contacts in ≤ 30 s, memory flat.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trackly_cli.core import store
from trackly_cli.core.links import random_ids

TEMPLATE = (
    "Hi {{first_name|there}}! Clothing sale: {{link1}} Electronics: {{link2}} Reply STOP to opt out"
)


def trackly(db: Path, *args: str, cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "trackly_cli", "--db", str(db), *args],
        check=True,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def build(folder: Path, size: int) -> Path:
    db_path = folder / "bench.db"
    trackly(db_path, "account", "create", "acme", cwd=folder)
    trackly(db_path, "domain", "add", "go.acme.test", cwd=folder)
    trackly(
        db_path,
        "offer",
        "create",
        "Summer Sale",
        "--url",
        "https://shop.example/summer?sub={link_id}",
        "--payout",
        "2.50",
        cwd=folder,
    )
    trackly(
        db_path, "offer", "create", "Electronics", "--url", "https://shop.example/tv", cwd=folder
    )
    trackly(db_path, "list", "create", "big", cwd=folder)
    db = store.open_db(db_path)
    now = "2026-11-29T00:00:00.000000Z"
    with store.write(db) as conn:
        conn.executemany(
            "INSERT INTO contacts (id, account_id, phone, fields, created_at, updated_at)"
            " VALUES (?, 1, ?, ?, ?, ?)",
            (
                (i, f"+1202{i:07d}", '{"first_name": "Ann"}' if i % 3 else "{}", now, now)
                for i in range(1, size + 1)
            ),
        )
        conn.executemany(
            "INSERT INTO list_members (list_id, contact_id, added_at) VALUES (1, ?, ?)",
            ((i, now) for i in range(1, size + 1)),
        )
    db.close()
    (folder / "msg.txt").write_text(TEMPLATE, encoding="utf-8")
    return db_path


def peak_rss_mb(command: list[str], cwd: Path) -> tuple[float, float]:
    """Run `command` in a child that reports its own peak RSS; (seconds, MB)."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "t = time.perf_counter() - t\n"
        "print(t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *command], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[0]), float(out[1])


def baseline(folder: Path, size: int) -> float:
    """The same rows written with bare executemany into a fresh database of the same schema."""
    db = store.open_db(folder / "baseline.db")
    now = "2026-11-29T00:00:00.000000Z"
    db.execute(
        "INSERT INTO accounts (id, name, name_key, created_at, updated_at)"
        " VALUES (1, 'a', 'a', ?, ?)",
        (now, now),
    )
    db.execute(
        "INSERT INTO domains (id, account_id, hostname, created_at) VALUES (1, 1, 'x', ?)", (now,)
    )
    start = time.perf_counter()
    with store.write(db) as conn:
        for first in range(1, size + 1, 2000):
            ids = range(first, min(first + 2000, size + 1))
            conn.executemany(
                "INSERT INTO messages (id, account_id, domain_id, body, segments, encoding,"
                " created_at) VALUES (?, 1, 1, ?, 1, 'GSM-7', ?)",
                [(i, TEMPLATE, now) for i in ids],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO short_links (id, account_id, message_id, domain_id, slot,"
                " url, created_at) VALUES (?, 1, ?, 1, ?, 'https://x.example', ?)",
                [
                    (link_id, i, slot, now)
                    for (i, slot), link_id in zip(
                        ((i, slot) for i in ids for slot in ("link1", "link2")),
                        random_ids(2 * len(ids)),
                        strict=True,
                    )
                ],
            )
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    args = parser.parse_args()
    print(
        f"{'contacts':>10} {'shorten s':>10} {'msgs/s':>9} {'peak MB':>8} {'baseline s':>11}"
        f" {'ratio':>6}"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            db_path = build(folder, size)
            seconds, peak = peak_rss_mb(
                [
                    sys.executable,
                    "-m",
                    "trackly_cli",
                    "--db",
                    str(db_path),
                    "shorten",
                    "msg.txt",
                    "--list",
                    "big",
                    "--link",
                    "link1=Summer Sale",
                    "--link",
                    "link2=Electronics",
                    "--campaign",
                    "bench",
                    "--output",
                    "outbox.csv",
                ],
                folder,
            )
            rows = sum(1 for _ in (folder / "outbox.csv").open(encoding="utf-8")) - 1
            assert rows == size, (rows, size)
            base = baseline(folder, size)
            print(
                f"{size:>10,} {seconds:>10.1f} {size / seconds:>9,.0f} {peak:>8.0f}"
                f" {base:>11.1f} {seconds / base:>6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
