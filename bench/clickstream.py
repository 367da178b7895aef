"""Click truth on a labelled click stream (#18): which messages get a MessageClick when
scanners, previews and people hit a campaign's links the way they really do.

    python bench/clickstream.py                  # 300 messages
    python bench/clickstream.py --messages 1000

Builds a campaign with the real CLI (a datacenter range imported, as an operator would), starts
`trackly serve` behind a declared trusted proxy (this script, setting X-Forwarded-For), and
replays a stream of kinds, each message getting one:

  person            one tap from a phone, from a home address
  person twice      two taps a second apart, same phone
  scanner burst     3 unknown addresses, desktop Chrome with Accept-Language, within 0.3 s
  cloud scanner     one hit from a known datacenter range, desktop Chrome
  preview           iMessage's link preview fetcher
  HEAD              a HEAD request (a link checker)
  burst, person     a scanner burst, then the person, after the burst window (10 s)
  at delivery       one hit from an unknown address, desktop Chrome with Accept-Language,
                    0.3 s after the message was delivered (a carrier's scanner)

Then it imports the gateway's delivery report (`trackly receipts import`: every message
delivered, the last kind's 0.3 s before its hit, the others a minute before the stream), which
judges those messages' clicks again with the timing signal measured from delivery.

Prints, per kind, how many messages got a MessageClick and how many should have, then the
precision (MessageClicks made by a person, of all) and recall (messages whose person made
their MessageClick, of those with a person) per message, before and after the delivery report.
Target: no scanner-made MessageClick, no missed person (precision = recall = 1) after it.
"""

from __future__ import annotations

import argparse
import http.client
import random
import re
import sqlite3
import tempfile
import time
from collections import Counter
from pathlib import Path

from _serve import serving, trackly

PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like"
    " Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.6099.144 Mobile Safari/537.36"
)
DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Safari/537.36"
)
PREVIEW = "facebookexternalhit/1.1 Facebot Twitterbot/1.0"
KINDS = {  # kind: (share of messages, should get a MessageClick)
    "person": (0.30, True),
    "person twice": (0.10, True),
    "scanner burst": (0.20, False),
    "cloud scanner": (0.10, False),
    "preview": (0.10, False),
    "HEAD": (0.05, False),
    "burst, person": (0.10, True),
    "at delivery": (0.05, False),
}


def build(folder: Path, count: int) -> tuple[Path, list[str]]:
    db = folder / "stream.db"
    trackly(db, "account", "create", "acme")
    trackly(db, "domain", "add", "go.acme.test")
    trackly(db, "offer", "create", "Sale", "--url", "https://shop.example/?s={link_id}")
    trackly(db, "list", "create", "all")
    phones = "".join(f"+1{201 + i // 10_000}555{i % 10_000:04d}\n" for i in range(count))
    (folder / "c.csv").write_text("phone\n" + phones, encoding="utf-8")
    trackly(db, "contacts", "import", "all", "c.csv")
    (folder / "cloud.txt").write_text("34.0.0.0/8\n35.0.0.0/8\n", encoding="utf-8")
    trackly(db, "bots", "ranges", "import", "cloud.txt", "--kind", "datacenter", "--source", "gcp")
    (folder / "m.txt").write_text("Sale today: {{link1}}", encoding="utf-8")
    trackly(db, "shorten", "m.txt", "--list", "all", "--link", "link1=Sale", "-o", "out.csv")
    # sent long ago: the "sooner than min-human-seconds after sending" signal stays out of it
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE messages SET created_at = '2026-01-01T00:00:00.000000Z'")
    conn.close()
    text = (folder / "out.csv").read_text(encoding="utf-8")
    # (each outbox line: phone, message id, the text with its link)
    return db, dict(re.findall(r"^\+\d+,(\d+),.*go\.acme\.test/([0-9A-Za-z]{7})", text, re.M))


class Client:
    def __init__(self, port: int) -> None:
        self.port = port

    def hit(self, link_id: str, ip: str, ua: str, method: str = "GET", lang: str = "en-US"):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Host": "go.acme.test", "User-Agent": ua, "X-Forwarded-For": ip}
        if lang:
            headers["Accept-Language"] = lang
        conn.request(method, f"/{link_id}", headers=headers)
        response = conn.getresponse()
        response.read()
        conn.close()
        assert response.status in (200, 302), response.status


def replay(client: Client, plan: list[tuple[str, str]], pick: random.Random) -> dict[str, float]:
    """Plays the plan; returns when each "at delivery" message was delivered (epoch)."""
    home = iter(f"198.51.{n // 250}.{n % 250 + 1}" for n in range(100_000))
    odd = iter(f"100.{64 + n // 65_000}.{n // 250 % 250}.{n % 250 + 1}" for n in range(100_000))
    later: list[tuple[str, str]] = []
    delivered: dict[str, float] = {}
    for kind, link in plan:
        if kind == "person":
            client.hit(link, next(home), pick.choice((PHONE, ANDROID)))
        elif kind == "person twice":
            ip = next(home)
            client.hit(link, ip, PHONE)
            time.sleep(0.05)
            client.hit(link, ip, PHONE)
        elif kind in ("scanner burst", "burst, person"):
            for _ in range(3):
                client.hit(link, next(odd), DESKTOP)
            if kind == "burst, person":
                later.append((link, next(home)))
        elif kind == "cloud scanner":
            client.hit(link, f"34.{pick.randrange(256)}.{pick.randrange(256)}.7", DESKTOP)
        elif kind == "preview":
            client.hit(link, f"17.{pick.randrange(256)}.1.1", PREVIEW, lang="")
        elif kind == "HEAD":
            client.hit(link, next(odd), DESKTOP, method="HEAD")
        elif kind == "at delivery":
            delivered[link] = time.time() - 0.3
            client.hit(link, next(odd), DESKTOP)
    time.sleep(11)  # past the burst window: then the people who got those messages
    for link, ip in later:
        client.hit(link, ip, PHONE)
    return delivered


def message_clicks(db: Path) -> dict[str, int]:
    """Each message's MessageClick (by its link), and whether a person made it (people click
    from the home addresses 198.51.x.x; everything else is a scanner's)."""
    conn = sqlite3.connect(db)
    try:
        return dict(
            conn.execute(
                "SELECT l.id, m.ip LIKE '198.51.%' FROM message_clicks m"
                " JOIN short_links l ON l.message_id = m.message_id"
            ).fetchall()
        )
    finally:
        conn.close()


def score(plan: list[tuple[str, str]], made: dict[str, int]) -> tuple[Counter, Counter, str]:
    """Per kind: messages, messages with a MessageClick; and the precision/recall line."""
    per_kind: Counter = Counter()
    with_click: Counter = Counter()
    true_positive = false_positive = false_negative = 0
    for kind, link in plan:
        per_kind[kind] += 1
        should = KINDS[kind][1]
        by_person = made.get(link) == 1
        with_click[kind] += link in made
        true_positive += by_person and should
        false_positive += link in made and not by_person
        false_negative += should and not by_person
    precision = true_positive / max(true_positive + false_positive, 1)
    recall = true_positive / max(true_positive + false_negative, 1)
    line = (
        f"precision {precision:.3f} ({false_positive} scanner-made MessageClicks),"
        f" recall {recall:.3f} ({false_negative} people missed)"
    )
    return per_kind, with_click, line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()
    pick = random.Random(18)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db, messages = build(folder, args.messages)
        kinds = list(KINDS)
        weights = [KINDS[k][0] for k in kinds]
        plan = [(pick.choices(kinds, weights)[0], link) for link in messages.values()]
        started = time.time()
        with serving(db, "--trusted-proxy", "127.0.0.1") as port:
            delivered = replay(Client(port), plan, pick)
        before = score(plan, message_clicks(db))
        report = "".join(
            f"{message_id},{delivered.get(link, started - 60):.3f},delivered\n"
            for message_id, link in messages.items()
        )
        (folder / "dlr.csv").write_text("message_id,delivered_at,status\n" + report)
        trackly(db, "receipts", "import", "dlr.csv")
        per_kind, with_click, after = score(plan, message_clicks(db))
    print(f"{'kind':16} {'messages':>9} {'MessageClick':>13} {'should':>7}")
    for kind in KINDS:
        should = per_kind[kind] if KINDS[kind][1] else 0
        print(f"{kind:16} {per_kind[kind]:>9} {with_click[kind]:>13} {should:>7}")
    print(f"before the delivery report: {before[2]}")
    print(f"after it:                   {after}")


if __name__ == "__main__":
    main()
