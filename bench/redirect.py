"""Tracked redirects against the bare stack, measured in the same run.

    python bench/redirect.py                   # 1,000,000 links, 3 rounds of 10 s each
    python bench/redirect.py --links 200000 --rounds 2 --seconds 5

Builds a database with --links short links (a 2-link template sent to half as many contacts),
starts `trackly serve` on it and a bare Bottle + waitress app that answers every request with a
fixed 302 (same threads), then loads both alternately with wrk (32 connections, random link
ids, a phone browser's headers) — or, without wrk, with a small bundled load generator — and
prints requests/s, p50, p99, the slowest request and the server's CPU per request (Linux) for
each, their ratios, the errors, and the clicks stored against the responses counted.

Scenario (a), steady load. Target: a tracked redirect (lookup, bot verdict, click kept in the
journal, stored with its MessageClick by the drain) at >= 65% of the bare stack's requests/s
with p99 <= 2x the bare p99, and zero errors.

    python bench/redirect.py --shorten-recipients 1000000

Scenario (b), after (a): the same load on trackly while `trackly shorten` sends a campaign to
a list of that many contacts in the same database. Target: p99 <= 2x the steady p99 of (a), no
request slower than 1 s, zero errors; the shorten's time is printed too.

    python bench/redirect.py --soak 60

Scenario (c), the WAL under sustained load: trackly alone at full load for that many seconds,
printing per 10 s the requests/s, the WAL's size and the clicks stored; then one more 10 s with
a reader holding a snapshot (so that nothing of the WAL can be reused), whose WAL growth per
stored click is the WAL bytes a click costs. Target: the WAL under 64 MB throughout, the last
10 s at >= 80% of the first.

    python bench/redirect.py --decompose       # also the two halves of the cost, same rounds

--decompose adds two servers to each round, to show where the gap to the bare stack comes from:
"bare+wait", the bare app whose requests each wait for another thread to let them go (what
waiting for a group commit would cost, with nothing written), and "trackly-nowrite", trackly
serve with the click's journal record removed (lookup, routing, bot verdict, the redirect).

    python bench/redirect.py --store postgres [--nodes 2] [--pg-url postgresql://…/postgres]

adds "trackly-pg" to each round: the same database copied (`trackly db copy`) into a new
PostgreSQL database on that server (default: $TRACKLY_TEST_POSTGRES, as `.ci/postgres start`
sets it), served by --nodes `trackly serve` processes, each on its own port with its own
journal, the load split evenly between them (one wrk each; req/s summed, p50/p99/max the worst
node's). Its clicks are counted in PostgreSQL against its responses.

    python bench/redirect.py --trackly-src ../old-checkout --soak 60 --rounds 0 --keep DIR

runs another version's trackly (its source tree on PYTHONPATH) for a before/after comparison;
the database is built through that version's CLI.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HOST = "go.bench.test"
USER_AGENT = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
CONNECTIONS = 32

BARE_APP = """
import logging
import sys
from bottle import Bottle, HTTPResponse
import waitress

# as in trackly serve: no "Task queue depth" warning per queued request
logging.getLogger("waitress.queue").setLevel(logging.ERROR)

app = Bottle()
# "wait": each request hands a lock to another thread and waits until it is released, as a
# request of trackly serve waits for the writer's commit (here nothing is written)
WAIT = len(sys.argv) > 3 and sys.argv[3] == "wait"

if WAIT:
    import _thread
    import queue
    import threading

    handed = queue.SimpleQueue()

    def release():
        while True:
            handed.get().release()

    threading.Thread(target=release, daemon=True).start()

@app.route("/<link_id>")
def fixed(link_id):
    if WAIT:
        done = _thread.allocate_lock()
        done.acquire()
        handed.put(done)
        done.acquire()
    return HTTPResponse("", 302, {"Location": "https://shop.example/", "Cache-Control": "no-store"})

waitress.serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=int(sys.argv[2]),
               _quiet=True)
"""

# trackly serve with one part taken out, to measure what that part costs: the click's record.
NO_WRITE_APP = """
import sys
from trackly_cli import server
from trackly_cli.commands.serve import banner
from trackly_cli.core import writer

writer.Writer.record_click = lambda self, click: None
server.serve(sys.argv[1], port=int(sys.argv[2]), threads=int(sys.argv[3]), announce=banner,
             journal=sys.argv[4])
"""

WRK_SCRIPT = """
local ids = {}
local headers = {}
init = function(args)
  for line in io.lines(args[1]) do ids[#ids + 1] = line end
  headers["Host"] = args[2]
  headers["User-Agent"] = args[3]
  headers["Accept-Language"] = "en-US,en;q=0.9"
  math.randomseed(tonumber(tostring({}):match("0x(%x+)"), 16) % 2147483647)
end
request = function()
  return wrk.format("GET", "/" .. ids[math.random(#ids)], headers)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Where trackly's code comes from (--trackly-src): its processes get this environment, and run
# in the bench's folder (`python -m` puts the working directory first on the path).
ENV = dict(os.environ)
CWD: dict = {}


def trackly(db: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "trackly_cli", "--db", str(db), *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
        **CWD,
    )


def add_contacts(db_path: Path, list_id: int, first: int, count: int) -> None:
    """`count` contacts from id `first` on, members of list `list_id` (plain SQL: building a
    million through `contacts import` would take longer than what is measured)."""
    now = "2026-01-01T00:00:00.000000Z"
    conn = sqlite3.connect(db_path)
    with conn:
        conn.executemany(
            "INSERT INTO contacts (id, account_id, phone, fields, created_at, updated_at)"
            " VALUES (?, 1, ?, '{}', ?, ?)",
            ((i, f"+1{2020000000 + i}", now, now) for i in range(first, first + count)),
        )
        conn.executemany(
            "INSERT INTO list_members (list_id, contact_id, added_at) VALUES (?, ?, ?)",
            ((list_id, i, now) for i in range(first, first + count)),
        )
    conn.close()


def build(folder: Path, links: int) -> Path:
    """A database whose campaign has `links` short links (2 per message), built through the
    CLI of the trackly that is measured."""
    db_path = folder / "redirect.db"
    contacts = links // 2
    trackly(db_path, "account", "create", "bench")
    trackly(db_path, "domain", "add", HOST)
    trackly(
        db_path,
        "offer",
        "create",
        "Shoes",
        "--url",
        "https://shop.example/shoes?sub={link_id}&c={contact_id}",
        "--payout",
        "2.50",
    )
    trackly(db_path, "offer", "create", "Bags", "--url", "https://shop.example/bags")
    trackly(db_path, "list", "create", "everyone")
    add_contacts(db_path, 1, 1, contacts)
    (folder / "bench.txt").write_text("Shoes {{link1}} Bags {{link2}}", encoding="utf-8")
    trackly(
        db_path,
        *("shorten", str(folder / "bench.txt"), "--list", "everyone", "--campaign", "bench"),
        *("--link", "link1=Shoes", "--link", "link2=Bags", "--output", str(folder / "bench.csv")),
    )
    # The campaign was "sent" long ago: no click is too fast to be human.
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("UPDATE messages SET created_at = '2026-01-01T00:00:00.000000Z'")
    conn.close()
    return db_path


def big_list(db_path: Path, recipients: int) -> None:
    """The list `big` of `recipients` contacts, for scenario (b) (made once)."""
    conn = sqlite3.connect(db_path)
    found = conn.execute("SELECT id FROM lists WHERE name = 'big'").fetchone()
    first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM contacts").fetchone()[0]
    members = conn.execute(
        "SELECT count(*) FROM list_members m JOIN lists l ON l.id = m.list_id WHERE l.name = 'big'"
    ).fetchone()[0]
    conn.close()
    if found and members == recipients:
        return
    if found:
        raise SystemExit(f"list 'big' has {members:,} contacts, not {recipients:,}: new --keep")
    trackly(db_path, "list", "create", "big")
    conn = sqlite3.connect(db_path)
    list_id = conn.execute("SELECT id FROM lists WHERE name = 'big'").fetchone()[0]
    conn.close()
    add_contacts(db_path, list_id, first, recipients)


def wait_for(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server on port {port} did not start")


def wait_for_index(log: Path, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    """Until trackly serve has its link index (it answers before, reading links from the
    database, which is not what is measured here)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = log.read_text(encoding="utf-8", errors="replace")
        if "newest links in memory" in text or re.search(r"link index: .* loaded in ", text):
            return
        if "serving without the link index" in text:
            raise SystemExit(f"trackly serve has no link index: {text[-500:]}")
        if proc.poll() is not None:
            raise SystemExit(f"trackly serve exited with {proc.returncode}: {text[-500:]}")
        time.sleep(0.2)
    raise SystemExit("trackly serve did not load its link index")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process so far (Linux), to show what each request costs."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_wrk(
    port: int, ids_file: Path, script: Path, seconds: int, connections: int = 0
) -> subprocess.Popen:
    return subprocess.Popen(
        [
            "wrk",
            "-t2",
            f"-c{connections or CONNECTIONS}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
            "--",
            str(ids_file),
            HOST,
            USER_AGENT,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wrk_result(proc: subprocess.Popen) -> dict:
    """wrk's figures once it has ended (by itself, or after SIGINT: it prints them either way)."""
    out, err = proc.communicate()
    if "requests in" not in out:
        raise SystemExit(f"wrk failed: {out} {err}")

    def duration(value: str, unit: str) -> float:
        return (
            float(value) / 1000
            if unit == "us"
            else float(value) * 1000
            if unit == "s"
            else (float(value) if unit == "ms" else float(value) * 60_000)
        )

    def latency(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        return duration(match.group(1), match.group(2))

    stats = re.search(
        r"Latency\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+)(us|ms|s|m)\s", out
    )  # avg, stdev, max
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non_3xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = (int(non_3xx.group(1)) if non_3xx else 0) + (
        sum(int(g) for g in socket_errors.groups()) if socket_errors else 0
    )
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency("50"),
        "p99": latency("99"),
        "max": duration(stats.group(1), stats.group(2)) if stats else None,
        "errors": errors,
        "requests": requests,
    }


def run_wrk(port: int, ids_file: Path, script: Path, seconds: int) -> dict:
    return wrk_result(start_wrk(port, ids_file, script, seconds))


def run_python(port: int, ids: list[str], seconds: int) -> dict:
    """A fallback load generator: CONNECTIONS keep-alive connections in threads."""
    stop = time.time() + seconds
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = []
        while time.time() < stop:
            started = time.perf_counter()
            try:
                conn.request(
                    "GET",
                    "/" + random.choice(ids),
                    headers={"Host": HOST, "User-Agent": USER_AGENT, "Accept-Language": "en-US"},
                )
                response = conn.getresponse()
                response.read()
                if response.status != 302:
                    errors[0] += 1
            except OSError:
                errors[0] += 1
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            mine.append((time.perf_counter() - started) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    return {
        "rps": len(latencies) / seconds,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[int(len(latencies) * 0.99)],
        "max": latencies[-1],
        "errors": errors[0],
        "requests": len(latencies),
    }


def stored_clicks(db_path: Path) -> int:
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        return conn.execute("SELECT count(*) FROM message_short_link_clicks").fetchone()[0]
    finally:
        conn.close()


def settled_clicks(db_path: Path, timeout: float = 60.0) -> int:
    """The clicks stored once the drain has caught up (the count stops moving)."""
    deadline = time.time() + timeout
    last = stored_clicks(db_path)
    while time.time() < deadline:
        time.sleep(1.0)
        now = stored_clicks(db_path)
        if now == last:
            return now
        last = now
    return last


def wal_bytes(db_path: Path) -> int:
    try:
        return os.stat(f"{db_path}-wal").st_size
    except OSError:
        return 0


def line(name: str, result: dict) -> str:
    cpu = f"  CPU {result['cpu_us']:4.0f} us/req" if result.get("cpu_us") else ""
    slowest = f"  max {result['max']:7.1f} ms" if result.get("max") is not None else ""
    return (
        f"{name:17} {result['rps']:8,.0f} req/s  p50 {result['p50']:6.2f} ms"
        f"  p99 {result['p99']:6.2f} ms{slowest}  errors {result['errors']}{cpu}"
    )


def load_nodes(nodes: list[tuple[int, subprocess.Popen]], files: tuple, seconds: int) -> dict:
    """The load split over several servers, at once: each its share of the connections."""
    ids_file, script = files
    share = max(CONNECTIONS // len(nodes), 2)
    cpu_before = [cpu_seconds(proc.pid) for _, proc in nodes]
    running = [start_wrk(port, ids_file, script, seconds, share) for port, _ in nodes]
    results = [wrk_result(proc) for proc in running]
    cpu_after = [cpu_seconds(proc.pid) for _, proc in nodes]
    requests = sum(r["requests"] for r in results)
    cpu = (
        sum(a - b for a, b in zip(cpu_after, cpu_before, strict=True)) / requests * 1e6
        if requests and None not in cpu_before + cpu_after
        else None
    )
    return {
        "rps": sum(r["rps"] for r in results),
        "p50": max(r["p50"] for r in results),
        "p99": max(r["p99"] for r in results),
        "max": max(r["max"] or 0 for r in results),
        "errors": sum(r["errors"] for r in results),
        "requests": requests,
        "cpu_us": cpu,
    }


def postgres_copy(db_path: Path, admin_url: str) -> str:
    """A new PostgreSQL database holding a copy of the benchmark's SQLite database."""
    import psycopg

    name = f"trackly_bench_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    trackly(db_path, "db", "copy", str(db_path), url)
    return url


def stored_pg_clicks(url: str, timeout: float = 60.0) -> int:
    """The clicks in PostgreSQL once the nodes' drains have caught up."""
    import psycopg

    def count() -> int:
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT count(*) FROM message_short_link_clicks").fetchone()[0]

    deadline = time.time() + timeout
    last = count()
    while time.time() < deadline:
        time.sleep(1.0)
        now = count()
        if now == last:
            return now
        last = now
    return last


def load(port: int, proc: subprocess.Popen, ids: list[str], files: tuple, seconds: int) -> dict:
    ids_file, script = files
    cpu_before = cpu_seconds(proc.pid)
    result = (
        run_wrk(port, ids_file, script, seconds)
        if shutil.which("wrk")
        else (run_python(port, ids, seconds))
    )
    cpu_after = cpu_seconds(proc.pid)
    result["cpu_us"] = (
        (cpu_after - cpu_before) / result["requests"] * 1e6
        if cpu_before is not None and cpu_after is not None and result["requests"]
        else None
    )
    return result


def during_shorten(folder: Path, db_path: Path, port: int, files: tuple, recipients: int) -> dict:
    """Scenario (b): wrk on trackly for as long as a `trackly shorten` to the list `big` runs."""
    ids_file, script = files
    campaign = f"bench-{int(time.time())}"
    outbox = folder / f"{campaign}.csv"
    (folder / "big.txt").write_text("Big sale {{link1}}", encoding="utf-8")
    wrk = start_wrk(port, ids_file, script, 3600)
    time.sleep(2.0)  # steady before the job starts
    started = time.perf_counter()
    job = subprocess.run(
        [
            *(sys.executable, "-m", "trackly_cli", "--db", str(db_path), "shorten"),
            *(str(folder / "big.txt"), "--list", "big", "--link", "link1=Shoes"),
            *("--campaign", campaign, "--output", str(outbox)),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        **CWD,
    )
    shorten_seconds = time.perf_counter() - started
    time.sleep(1.0)
    wrk.send_signal(signal.SIGINT)
    result = wrk_result(wrk)
    if job.returncode != 0:
        raise SystemExit(f"trackly shorten failed: {job.stderr[-500:]}")
    outbox.unlink(missing_ok=True)
    result["shorten_seconds"] = shorten_seconds
    return result


def soak(db_path: Path, port: int, files: tuple, seconds: int) -> dict:
    """Scenario (c): full load in 10 s slices; then one slice with a snapshot held open."""
    ids_file, script = files
    slices = []
    for n in range(max(1, seconds // 10)):
        before = stored_clicks(db_path)
        result = run_wrk(port, ids_file, script, 10)
        result |= {"wal_mb": wal_bytes(db_path) / 1e6, "stored": stored_clicks(db_path) - before}
        slices.append(result)
        print(
            f"soak {(n + 1) * 10:4} s  {result['rps']:8,.0f} req/s  p99 {result['p99']:6.1f} ms"
            f"  WAL {result['wal_mb']:6.1f} MB  stored {result['stored']:,}",
            flush=True,
        )
    # The WAL bytes a click costs: with a reader's snapshot open, no frame can be reused, so the
    # frames in the WAL (a passive checkpoint's second figure) grow by exactly what is written.
    # (The file's size would not do: a WAL restarted earlier is rewritten from its start.)
    # A reader whose snapshot ends in the WAL (one that starts on a fully checkpointed WAL reads
    # the database file alone, and does not keep the WAL from being restarted): write a frame of
    # our own, then begin the read at once.
    time.sleep(2.0)
    reader = sqlite3.connect(db_path, isolation_level=None, timeout=30)
    reader.execute("UPDATE config_version SET version = version")
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM settings").fetchone()
    frames = sqlite3.connect(db_path, isolation_level=None)
    page = frames.execute("PRAGMA page_size").fetchone()[0]
    before, clicks_before = (
        frames.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1],
        (stored_clicks(db_path)),
    )
    probe = run_wrk(port, ids_file, script, 10)
    time.sleep(1.5)  # the drain's last batch
    after = frames.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    grown = (after - before) * (page + 24)  # a frame: its page and a 24-byte header
    stored = stored_clicks(db_path) - clicks_before
    frames.close()
    reader.execute("COMMIT")
    reader.close()
    per_click = grown / stored if stored and grown > 0 else None
    print(
        f"soak probe: {stored:,} clicks stored with a snapshot held: WAL +{grown / 1e6:.1f} MB,"
        f" {per_click:,.0f} bytes a click"
        if per_click
        else "soak probe: nothing stored",
        flush=True,
    )
    time.sleep(3.0)
    return {
        "slices": [
            {k: round(r[k], 2) for k in ("rps", "p99", "wal_mb")} | {"stored": r["stored"]}
            for r in slices
        ],
        "wal_max_mb": round(max(r["wal_mb"] for r in slices), 1),
        "last_vs_first": round(slices[-1]["rps"] / slices[0]["rps"], 3),
        "wal_bytes_per_click": round(per_click) if per_click else None,
        "probe_rps": round(probe["rps"]),
        "wal_after_mb": round(wal_bytes(db_path) / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="Build the database here once and reuse it.")
    parser.add_argument(
        "--decompose",
        action="store_true",
        help="Also measure the bare app waiting on a thread, and trackly without the write.",
    )
    parser.add_argument(
        "--shorten-recipients",
        type=int,
        default=0,
        metavar="N",
        help="Scenario (b): load during a `trackly shorten` to N contacts (say 1000000).",
    )
    parser.add_argument(
        "--soak", type=int, default=0, metavar="SECONDS", help="Scenario (c): the WAL under load."
    )
    parser.add_argument(
        "--trackly-src", type=Path, help="Measure the trackly whose source tree this is."
    )
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--nodes", type=int, default=1, help="PostgreSQL: servers (default 1).")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("TRACKLY_TEST_POSTGRES"),
        help="PostgreSQL: a URL of the server to create the database on.",
    )
    args = parser.parse_args()
    if args.trackly_src:
        ENV["PYTHONPATH"] = str(args.trackly_src.resolve())

    folder = args.keep or Path(tempfile.mkdtemp(prefix="trackly-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    if args.trackly_src:
        CWD["cwd"] = folder
    db_path = folder / "redirect.db"
    if not db_path.exists():
        started = time.perf_counter()
        build(folder, args.links)
        print(f"built {args.links:,} links in {time.perf_counter() - started:.0f} s", flush=True)
    if args.shorten_recipients:
        started = time.perf_counter()
        big_list(db_path, args.shorten_recipients)
        print(
            f"list 'big' of {args.shorten_recipients:,} contacts ready in"
            f" {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    conn = sqlite3.connect(db_path)
    ids = [r[0] for r in conn.execute("SELECT id FROM short_links WHERE slot LIKE 'link%'")]
    conn.close()
    ids_file = folder / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n", encoding="ascii")
    script = folder / "random.lua"
    script.write_text(WRK_SCRIPT, encoding="utf-8")
    files = (ids_file, script)

    threads = str(args.threads)

    def command(name: str, port: int) -> list[str]:
        bare_app = [sys.executable, "-c", BARE_APP, str(port), threads]
        return {
            "bare": bare_app,
            "bare+wait": [*bare_app, "wait"],
            "trackly": [
                *(sys.executable, "-m", "trackly_cli", "--db", str(db_path), "serve"),
                *("--port", str(port), "--threads", threads),
            ],
            "trackly-nowrite": [
                *(sys.executable, "-c", NO_WRITE_APP, str(db_path), str(port), threads),
                str(folder / "nowrite.journal"),
            ],
        }[name]

    names = ["bare", "trackly"] + (["bare+wait", "trackly-nowrite"] if args.decompose else [])
    pg_url = None
    if args.store == "postgres":
        if not args.pg_url:
            raise SystemExit("--store postgres needs --pg-url (or TRACKLY_TEST_POSTGRES)")
        started = time.perf_counter()
        pg_url = postgres_copy(db_path, args.pg_url)
        print(f"copied to PostgreSQL in {time.perf_counter() - started:.0f} s", flush=True)
        names.append("trackly-pg")
    nodes: list[tuple[int, subprocess.Popen]] = []
    servers: dict[str, tuple[int, subprocess.Popen]] = {}
    results: dict[str, list[dict]] = {name: [] for name in names}
    summary: dict = {"load": "wrk" if shutil.which("wrk") else "python", "links": len(ids)}
    try:
        for n in range(1, args.nodes + 1 if pg_url else 1):
            port = free_port()
            with (folder / f"trackly-pg-{n}.log").open("w") as log:
                serve = [sys.executable, "-m", "trackly_cli", "--db", pg_url, "serve"]
                serve += ["--port", str(port), "--threads", threads]
                serve += ["--journal", str(folder / f"pg-journal-{n}")]
                nodes.append((port, subprocess.Popen(serve, stderr=log, env=ENV, **CWD)))
        for port, proc in nodes:
            wait_for(port, proc, timeout=120)
        for n, (_, proc) in enumerate(nodes, start=1):
            wait_for_index(folder / f"trackly-pg-{n}.log", proc)
        for name in [n for n in names if n != "trackly-pg"]:
            port = free_port()
            with (folder / f"{name}.log").open("w") as log:
                servers[name] = (
                    port,
                    subprocess.Popen(command(name, port), stderr=log, env=ENV, **CWD),
                )
        for port, proc in servers.values():
            wait_for(port, proc, timeout=120)
        for name in servers:
            if name.startswith("trackly"):
                wait_for_index(folder / f"{name}.log", servers[name][1])
        tracked_port = servers["trackly"][0]

        before = settled_clicks(db_path)
        pg_before = stored_pg_clicks(pg_url) if pg_url else 0
        for round_number in range(1, args.rounds + 1):
            for name, (port, proc) in servers.items():
                result = load(port, proc, ids, files, args.seconds)
                results[name].append(result)
                print(f"(a) round {round_number} " + line(name, result), flush=True)
            if nodes:
                result = load_nodes(nodes, files, args.seconds)
                results["trackly-pg"].append(result)
                label = f"trackly-pg x{len(nodes)}"
                print(f"(a) round {round_number} " + line(label, result), flush=True)
        if args.rounds:
            stored = settled_clicks(db_path) - before
            counted = sum(r["requests"] for r in results["trackly"])
            summary |= steady_summary(results, args.decompose)
            summary["a_clicks_stored"], summary["a_responses_counted"] = stored, counted
            print(f"(a) clicks stored {stored:,}, responses counted {counted:,}", flush=True)
            if nodes:
                pg_stored = stored_pg_clicks(pg_url) - pg_before
                pg_counted = sum(r["requests"] for r in results["trackly-pg"])
                summary["postgres"] = steady_figures(results, "trackly-pg") | {
                    "nodes": len(nodes),
                    "throughput_ratio": round(
                        statistics.median(r["rps"] for r in results["trackly-pg"])
                        / statistics.median(r["rps"] for r in results["bare"]),
                        3,
                    ),
                    "clicks_stored": pg_stored,
                    "responses_counted": pg_counted,
                }
                print(
                    f"(a) PostgreSQL, {len(nodes)} node(s): clicks stored {pg_stored:,},"
                    f" responses counted {pg_counted:,}",
                    flush=True,
                )

        if args.shorten_recipients:
            before = settled_clicks(db_path)
            result = during_shorten(folder, db_path, tracked_port, files, args.shorten_recipients)
            print("(b) " + line("trackly+shorten", result), flush=True)
            stored = settled_clicks(db_path, timeout=120) - before
            summary["b_during_shorten"] = {
                "rps": round(result["rps"]),
                "p50_ms": result["p50"],
                "p99_ms": result["p99"],
                "max_ms": result["max"],
                "errors": result["errors"],
                "shorten_seconds": round(result["shorten_seconds"], 1),
                "recipients": args.shorten_recipients,
                "clicks_stored": stored,
                "responses_counted": result["requests"],
            }
            if args.rounds:
                summary["b_p99_vs_a_p99"] = round(result["p99"] / summary["trackly"]["p99_ms"], 2)
            print(
                f"(b) shorten of {args.shorten_recipients:,} recipients:"
                f" {result['shorten_seconds']:.1f} s; clicks stored {stored:,},"
                f" responses counted {result['requests']:,}",
                flush=True,
            )

        if args.soak:
            for name, (_, proc) in servers.items():  # trackly alone on the cores
                if name != "trackly":
                    proc.terminate()
            summary["c_soak"] = soak(db_path, tracked_port, files, args.soak)
    finally:
        for _, proc in [*servers.values(), *nodes]:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=60)
    print(json.dumps(summary, indent=2))
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


def steady_figures(results: dict[str, list[dict]], name: str) -> dict:
    def median(key: str) -> float | None:
        values = [r[key] for r in results[name] if r.get(key) is not None]
        return statistics.median(values) if values else None

    cpu = median("cpu_us")
    return {
        "rps": round(median("rps")),
        "p50_ms": median("p50"),
        "p99_ms": median("p99"),
        "max_ms": max(r["max"] for r in results[name] if r.get("max") is not None),
        "cpu_us_per_request": None if cpu is None else round(cpu),
    }


def steady_summary(results: dict[str, list[dict]], decompose: bool) -> dict:
    def median(name: str, key: str) -> float | None:
        values = [r[key] for r in results[name] if r.get(key) is not None]
        return statistics.median(values) if values else None

    def figures(name: str) -> dict:
        return steady_figures(results, name)

    bare_rps, tracked_rps = median("bare", "rps"), median("trackly", "rps")
    summary = {
        "bare": figures("bare"),
        "trackly": figures("trackly"),
        "throughput_ratio": round(tracked_rps / bare_rps, 3),
        "p99_ratio": round(median("trackly", "p99") / median("bare", "p99"), 2),
        "errors": sum(r["errors"] for rs in results.values() for r in rs),
    }
    if decompose:
        summary["decomposition"] = {
            name: figures(name) | {"throughput_ratio": round(median(name, "rps") / bare_rps, 3)}
            for name in ("bare+wait", "trackly-nowrite")
        }
    return summary


if __name__ == "__main__":
    main()
