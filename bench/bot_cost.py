"""What judging a request costs, and whether made-up user agents can slow normal clicks (#15).

    python bench/bot_cost.py                 # 10 s per live phase
    python bench/bot_cost.py --seconds 5

1. CPU per bot verdict (Detector.classify) for user agents of several kinds and lengths, each
   string new (nothing cached), against crawlerdetect's own matching of the same strings
   measured in the same run (what Trackly did before #15). Target: at most about 1 ms each.
2. A live `trackly serve`: one normal client (a phone browser's headers, one connection) alone,
   then while 2 connections send made-up 1 kB user agents as fast as they can. Prints the
   normal client's requests/s and p50 in both phases and the attack's rate. Target: p50 under
   50 ms during the attack.
"""

from __future__ import annotations

import argparse
import http.client
import random
import statistics
import string
import tempfile
import threading
import time
from pathlib import Path

from _serve import serving, trackly
from crawlerdetect import CrawlerDetect

from trackly_cli.core.bots import Detector, RequestFacts

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
ALPHABET = string.ascii_letters + string.digits + " /;()._-"


def made_up(length: int, pick: random.Random) -> str:
    return "".join(pick.choice(ALPHABET) for _ in range(length))


def verdict_costs(samples: int) -> None:
    pick = random.Random(1)
    kinds = {
        "iPhone Safari (varied build)": lambda n: IPHONE.replace("15E148", f"15E{n:06d}"),
        "Googlebot (varied)": lambda n: f"Mozilla/5.0 (compatible; Googlebot/2.{n}; +http://g.co)",
        "made-up, 100 chars": lambda n: made_up(100, pick),
        "made-up, 300 chars": lambda n: made_up(300, pick),
        "made-up, 1,000 chars": lambda n: made_up(1000, pick),
        "made-up, 1,024 chars": lambda n: made_up(1024, pick),
    }
    print(f"{'user agent':30} {'trackly µs':>11} {'crawlerdetect µs':>17} {'ratio':>6}")
    for name, make in kinds.items():
        strings = [make(n) for n in range(samples)]
        detector = Detector()
        started = time.process_time()
        for ua in strings:
            detector.classify(RequestFacts("GET", ua, "198.51.100.7", "en"))
        ours = (time.process_time() - started) / samples * 1e6
        baseline_strings = strings[: max(5, samples // 10)]  # it is slow
        oracle = CrawlerDetect()
        started = time.process_time()
        for ua in baseline_strings:
            oracle.isCrawler(ua)
        theirs = (time.process_time() - started) / len(baseline_strings) * 1e6
        print(f"{name:30} {ours:>11,.0f} {theirs:>17,.0f} {ours / theirs:>6.3f}", flush=True)


def live(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        trackly(db, "account", "create", "acme")
        trackly(db, "domain", "add", "go.acme.test")
        trackly(db, "offer", "create", "Sale", "--url", "https://shop.example/")
        trackly(db, "list", "create", "vip")
        (Path(tmp) / "c.csv").write_text("phone\n+12025550143\n+12025550144\n", encoding="utf-8")
        trackly(db, "contacts", "import", "vip", "c.csv")
        (Path(tmp) / "m.txt").write_text("Hi {{link1}}", encoding="utf-8")
        trackly(db, "shorten", "m.txt", "--list", "vip", "--link", "link1=Sale", "-o", "o.csv")
        rows = (Path(tmp) / "o.csv").read_text(encoding="utf-8").splitlines()[1:]
        normal_id, attacked_id = (row.split("/")[-1].split(",")[0].split()[0] for row in rows)
        with serving(db) as port:
            run_phases(port, normal_id, attacked_id, seconds)


def run_phases(port: int, normal_id: str, attacked_id: str, seconds: float) -> None:
    def normal(duration: float) -> list[float]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        timings = []
        deadline = time.monotonic() + duration
        headers = {"Host": "go.acme.test", "User-Agent": IPHONE, "Accept-Language": "en-US"}
        while time.monotonic() < deadline:
            started = time.perf_counter()
            conn.request("GET", f"/{normal_id}", headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 302, response.status
            timings.append(time.perf_counter() - started)
        conn.close()
        return timings

    stop = threading.Event()
    sent = [0, 0]

    def attack(which: int) -> None:
        pick = random.Random(which)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop.is_set():
            headers = {"Host": "go.acme.test", "User-Agent": made_up(1000, pick)}
            conn.request("GET", f"/{attacked_id}", headers=headers)
            conn.getresponse().read()
            sent[which] += 1
        conn.close()

    normal(1.0)  # warm up
    alone = normal(seconds)
    threads = [threading.Thread(target=attack, args=(i,), daemon=True) for i in (0, 1)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    time.sleep(1.0)
    attacked = normal(seconds)
    stop.set()
    for thread in threads:
        thread.join(30)
    rate = sum(sent) / (time.monotonic() - started)
    for name, timings in (("normal client alone", alone), ("during the attack", attacked)):
        print(
            f"{name:22} {len(timings) / seconds:>7,.0f} req/s  p50"
            f" {statistics.median(timings) * 1000:>6.2f} ms  p99"
            f" {statistics.quantiles(timings, n=100)[98] * 1000:>7.2f} ms"
        )
    print(f"attack: 2 connections, made-up 1 kB user agents, {rate:,.0f} req/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    verdict_costs(args.samples)
    live(args.seconds)


if __name__ == "__main__":
    main()
