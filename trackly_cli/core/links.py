"""Short link ids: 7 characters of base62 from `secrets`, unique across the database.

62**7 ≈ 3.5 trillion ids. Uniqueness is the primary key's job; `fresh_ids` checks a batch
against the table first, so that a collision is retried with a new id and never overwrites.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
from collections.abc import Callable

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
LENGTH = 7
SPACE = len(ALPHABET) ** LENGTH
VALID_ID = re.compile(r"^[0-9A-Za-z]{7}$")

IdSource = Callable[[int], list[str]]


def encode(number: int) -> str:
    chars = []
    for _ in range(LENGTH):
        number, digit = divmod(number, 62)
        chars.append(ALPHABET[digit])
    return "".join(chars)


# Each random byte below 248 (= 4 × 62) maps to one character, uniformly; the 8 bytes above are
# dropped. Both steps run in C (bytes.translate), which matters for a million-message campaign.
_TABLE = bytes(ord(ALPHABET[b % 62]) if b < 248 else 0 for b in range(256))
_REJECT = bytes(range(248, 256))


def random_ids(count: int) -> list[str]:
    """`count` uniformly random ids (possibly repeating, like any random draw)."""
    chars = b""
    while len(chars) < count * LENGTH:
        need = count * LENGTH - len(chars)
        chars += secrets.token_bytes(need + need // 16 + 16).translate(_TABLE, _REJECT)
    text = chars[: count * LENGTH].decode("ascii")
    return [text[i : i + LENGTH] for i in range(0, count * LENGTH, LENGTH)]


def fresh_ids(conn: sqlite3.Connection, count: int, source: IdSource = random_ids) -> list[str]:
    """`count` distinct ids that no short link has yet (call inside the write transaction)."""
    result: list[str] = []
    taken: set[str] = set()
    rounds = 0
    while len(result) < count:
        rounds += 1
        if rounds > 1000:
            raise RuntimeError("could not draw fresh link ids: is the id source random?")
        candidates = [i for i in dict.fromkeys(source(count - len(result))) if i not in taken]
        existing = set()
        for start in range(0, len(candidates), 10_000):
            chunk = candidates[start : start + 10_000]
            marks = ",".join("?" * len(chunk))
            existing.update(
                r[0]
                for r in conn.execute(f"SELECT id FROM short_links WHERE id IN ({marks})", chunk)
            )
        for candidate in candidates:
            if candidate not in existing:
                result.append(candidate)
                taken.add(candidate)
    return result[:count]
