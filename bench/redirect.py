"""Tracked redirects against the bare stack, measured in the same run.

    python bench/redirect.py                   # 1,000,000 links, 3 rounds of 10 s each
    python bench/redirect.py --links 200000 --rounds 2 --seconds 5

Builds a database with --links short links (a 2-link template sent to half as many contacts),
starts `trackly serve` on it and a bare Bottle + waitress app that answers every request with a
fixed 302 (same threads), then loads both alternately with wrk (32 connections, random link
ids, a phone browser's headers) — or, without wrk, with a small bundled load generator — and
prints requests/s, p50, p99 and the server's CPU per request (Linux) for each, their ratios,
and the errors.

Target: a tracked redirect (lookup, bot verdict, durable click row, MessageClick) at >= 65% of
the bare stack's requests/s with p99 <= 2x the bare p99, and zero errors.

    python bench/redirect.py --decompose       # also the two halves of the cost, same rounds

--decompose adds two servers to each round, to show where the gap to the bare stack comes from:
"bare+wait", the bare app whose requests each wait for another thread to let them go (what
waiting for a group commit costs, with nothing written), and "trackly-nowrite", trackly serve
with the click write removed (lookup, routing, bot verdict, the click's record, the redirect).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
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

# trackly serve with one part taken out, to measure what that part costs: the click write.
NO_WRITE_APP = """
import sys
from trackly_cli import server
from trackly_cli.commands.serve import banner
from trackly_cli.core import writer

writer.Writer.record_click = lambda self, click: None
server.serve(sys.argv[1], port=int(sys.argv[2]), threads=int(sys.argv[3]), announce=banner)
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


def trackly(db: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "trackly_cli", "--db", str(db), *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def build(folder: Path, links: int) -> Path:
    """A database whose campaign has `links` short links (2 per message)."""
    from trackly_cli.core import shorten, store

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
    db = store.open_db(db_path)
    now = "2026-01-01T00:00:00.000000Z"
    with store.write(db) as conn:
        conn.executemany(
            "INSERT INTO contacts (id, account_id, phone, fields, created_at, updated_at)"
            " VALUES (?, 1, ?, '{}', ?, ?)",
            ((i, f"+1202{i:07d}", now, now) for i in range(1, contacts + 1)),
        )
        conn.executemany(
            "INSERT INTO list_members (list_id, contact_id, added_at) VALUES (1, ?, ?)",
            ((i, now) for i in range(1, contacts + 1)),
        )
    plan = shorten.prepare(
        db,
        account_ref="bench",
        sources=[shorten.TemplateSource("bench", "Shoes {{link1}} Bags {{link2}}")],
        bindings=["link1=Shoes", "link2=Bags"],
        list_ref="everyone",
        campaign="bench",
    )
    shorten.run(db, plan)
    # The campaign was "sent" long ago: no click is too fast to be human.
    db.conn.execute("UPDATE messages SET created_at = ?", (now,))
    db.close()
    return db_path


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


def run_wrk(port: int, ids_file: Path, script: Path, seconds: int) -> dict:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{CONNECTIONS}",
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
        check=True,
        capture_output=True,
        text=True,
    ).stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

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
        "errors": errors,
        "requests": requests,
    }


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
        "errors": errors[0],
        "requests": len(latencies),
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
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="trackly-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    db_path = folder / "redirect.db"
    if not db_path.exists():
        started = time.perf_counter()
        build(folder, args.links)
        print(f"built {args.links:,} links in {time.perf_counter() - started:.0f} s", flush=True)
    conn = sqlite3.connect(db_path)
    ids = [r[0] for r in conn.execute("SELECT id FROM short_links")]
    clicks_before = conn.execute("SELECT count(*) FROM message_short_link_clicks").fetchone()[0]
    conn.close()
    ids_file = folder / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n", encoding="ascii")
    script = folder / "random.lua"
    script.write_text(WRK_SCRIPT, encoding="utf-8")
    use_wrk = shutil.which("wrk") is not None

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
                sys.executable,
                "-c",
                NO_WRITE_APP,
                str(db_path),
                str(port),
                threads,
            ],
        }[name]

    names = ["bare", "trackly"] + (["bare+wait", "trackly-nowrite"] if args.decompose else [])
    servers: dict[str, tuple[int, subprocess.Popen]] = {}
    results: dict[str, list[dict]] = {name: [] for name in names}
    try:
        for name in names:
            port = free_port()
            with (folder / f"{name}.log").open("w") as log:
                servers[name] = (port, subprocess.Popen(command(name, port), stderr=log))
        for port, proc in servers.values():
            wait_for(port, proc, timeout=120)
        for name in names:
            if name.startswith("trackly"):
                wait_for_index(folder / f"{name}.log", servers[name][1])
        for round_number in range(1, args.rounds + 1):
            for name, (port, proc) in servers.items():
                cpu_before = cpu_seconds(proc.pid)
                result = (
                    run_wrk(port, ids_file, script, args.seconds)
                    if use_wrk
                    else run_python(port, ids, args.seconds)
                )
                cpu_after = cpu_seconds(proc.pid)
                result["cpu_us"] = (
                    (cpu_after - cpu_before) / result["requests"] * 1e6
                    if cpu_before is not None and cpu_after is not None and result["requests"]
                    else None
                )
                results[name].append(result)
                cpu = f"  CPU {result['cpu_us']:4.0f} us/req" if result["cpu_us"] else ""
                print(
                    f"round {round_number} {name:15} {result['rps']:8,.0f} req/s"
                    f"  p50 {result['p50']:6.2f} ms  p99 {result['p99']:6.2f} ms"
                    f"  errors {result['errors']}{cpu}",
                    flush=True,
                )
    finally:
        for _, proc in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
    conn = sqlite3.connect(db_path)
    recorded = conn.execute("SELECT count(*) FROM message_short_link_clicks").fetchone()[0]
    conn.close()

    def rounded(value: float | None) -> int | None:
        return None if value is None else round(value)

    def median(name: str, key: str) -> float | None:
        values = [r[key] for r in results[name] if r[key] is not None]
        return statistics.median(values) if values else None

    def figures(name: str) -> dict:
        return {
            "rps": round(median(name, "rps")),
            "p50_ms": median(name, "p50"),
            "p99_ms": median(name, "p99"),
            "cpu_us_per_request": rounded(median(name, "cpu_us")),
        }

    bare_rps, tracked_rps = median("bare", "rps"), median("trackly", "rps")
    summary = {
        "load": "wrk" if use_wrk else "python",
        "links": len(ids),
        "bare": figures("bare"),
        "trackly": figures("trackly"),
        "throughput_ratio": round(tracked_rps / bare_rps, 3),
        "p99_ratio": round(median("trackly", "p99") / median("bare", "p99"), 2),
        "errors": sum(r["errors"] for rs in results.values() for r in rs),
        "clicks_recorded": recorded - clicks_before,
        "tracked_requests": sum(r["requests"] for r in results["trackly"]),
    }
    if args.decompose:
        summary["decomposition"] = {
            name: figures(name) | {"throughput_ratio": round(median(name, "rps") / bare_rps, 3)}
            for name in ("bare+wait", "trackly-nowrite")
        }
    print(json.dumps(summary, indent=2))
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
