"""How long `trackly contacts import` takes on a large CSV, against a baseline.

Generates a CSV of distinct, valid US numbers (phone, first_name, city; the numbers written in
three styles) in a temporary folder, creates an account and a list with the real CLI, then times

  * `trackly contacts import` in a subprocess (interpreter start-up included), and
  * a baseline in this process: a plain `csv` read of the same file plus `phonenumbers.parse` of
    every number — the least any importer has to do,

and prints rows, seconds, rows/s and the ratio import / baseline.

    python bench/contacts_import.py            # 100,000 rows
    python bench/contacts_import.py --rows 20000
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import phonenumbers

AREA_CODES = (202, 212, 213, 305, 312, 404, 415, 512, 617, 702, 713, 206)
FIRST_NAMES = ("Ann", "Bob", "Chloé", "Dan", "Eve", "Femi", "Gus", "Hana", "Ivan", "Jo")
CITIES = ("Boston", "Chicago", "Denver", "Austin", "Seattle", "Miami", "New York", "Reno")


def candidates() -> Iterator[str]:
    """Distinct ten-digit US numbers, spread over area codes and exchanges."""
    for exchange in range(201, 1000):
        for area in AREA_CODES:
            for line in range(0, 10000, 100):
                yield f"{area}{exchange}{line:04d}"


def valid_numbers(count: int) -> list[str]:
    found = []
    for digits in candidates():
        if phonenumbers.is_valid_number(phonenumbers.parse(digits, "US")):
            found.append(digits)
            if len(found) == count:
                return found
    raise SystemExit(f"only {len(found):,} valid numbers could be generated")


def styled(digits: str, i: int) -> str:
    """The number as people write it: +1…, (202) 555-0143 or plain digits."""
    if i % 3 == 0:
        return f"+1{digits}"
    if i % 3 == 1:
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    return digits


def write_csv(path: Path, rows: int) -> None:
    numbers = valid_numbers(rows)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "First Name", "City"])
        for i, digits in enumerate(numbers):
            writer.writerow(
                [styled(digits, i), FIRST_NAMES[i % len(FIRST_NAMES)], CITIES[i % len(CITIES)]]
            )


def trackly(db: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "trackly_cli", "--db", str(db), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"trackly {' '.join(args)} failed:\n{result.stderr}")
    return result


def baseline(path: Path) -> tuple[int, float]:
    start = time.perf_counter()
    count = 0
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            phonenumbers.parse(row["phone"], "US")
            count += 1
    return count, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="CSV rows (default 100,000)")
    options = parser.parse_args()
    if options.rows < 1:
        parser.error("--rows must be at least 1")

    with tempfile.TemporaryDirectory(prefix="trackly-bench-") as folder:
        folder = Path(folder)
        csv_path = folder / "contacts.csv"
        db = folder / "bench.db"

        start = time.perf_counter()
        write_csv(csv_path, options.rows)
        generated = time.perf_counter() - start

        trackly(db, "account", "create", "bench")
        trackly(db, "list", "create", "everyone")

        start = time.perf_counter()
        trackly(db, "db", "path")
        startup = time.perf_counter() - start

        start = time.perf_counter()
        result = trackly(db, "contacts", "import", "everyone", str(csv_path), "--format", "json")
        seconds = time.perf_counter() - start
        summary = json.loads(result.stdout)

        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT count(*) FROM contacts").fetchone()[0]
            on_list = conn.execute("SELECT count(*) FROM list_members").fetchone()[0]
        conn.close()
        if not (summary["imported"] == stored == on_list == options.rows):
            raise SystemExit(f"import incomplete: {summary}, {stored:,} contacts stored")

        base_rows, base_seconds = baseline(csv_path)

        size = csv_path.stat().st_size
        print(f"CSV: {options.rows:,} rows, {size / 1e6:.1f} MB (generated in {generated:.1f} s)")
        print(
            f"trackly contacts import: {options.rows:,} rows in {seconds:.2f} s"
            f" = {options.rows / seconds:,.0f} rows/s"
            f" (includes {startup:.2f} s of interpreter and CLI start-up);"
            f" {stored:,} contacts stored, {on_list:,} on the list"
        )
        print(
            f"baseline (csv read + phonenumbers.parse): {base_rows:,} rows in {base_seconds:.2f} s"
            f" = {base_rows / base_seconds:,.0f} rows/s"
        )
        print(f"ratio import / baseline: {seconds / base_seconds:.2f}x")


if __name__ == "__main__":
    main()
