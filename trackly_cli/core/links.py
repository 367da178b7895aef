"""Short link ids: 7 characters of base62 from `secrets`, unique across the database.

62**7 ≈ 3.5 trillion ids. Uniqueness is the primary key's job; `fresh_ids` checks a batch
against the table first, so that a collision is retried with a new id and never overwrites.

A big send draws the ids of each chunk under one random first character (`clustered`): its
links then land in one sixty-second of the primary key's B-tree instead of on a random page
each, which cuts what every chunk's commit writes by more than ten times. The six characters
after it are still uniformly random (62**6 ≈ 57 billion per first character), so someone who
holds one link learns nothing that makes another easier to guess than a factor of about two.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

from trackly_cli.core import store

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


def random_ids(count: int, prefix: str = "") -> list[str]:
    """`count` uniformly random ids (possibly repeating, like any random draw), each starting
    with `prefix` if given."""
    width = LENGTH - len(prefix)
    chars = b""
    while len(chars) < count * width:
        need = count * width - len(chars)
        chars += secrets.token_bytes(need + need // 16 + 16).translate(_TABLE, _REJECT)
    text = chars[: count * width].decode("ascii")
    return [prefix + text[i : i + width] for i in range(0, count * width, width)]


def clustered() -> IdSource:
    """An id source whose ids share one random first character (see the module's note)."""
    prefix = ALPHABET[secrets.randbelow(len(ALPHABET))]
    return lambda count: random_ids(count, prefix)


def draw(count: int, source: IdSource = random_ids) -> list[str]:
    """`count` distinct ids, not checked against the table: a caller that inserts them must
    notice a collision and try again with `fresh_ids` (shorten does, per batch)."""
    result: dict[str, None] = {}
    for _ in range(1000):
        result.update(dict.fromkeys(source(count - len(result))))
        if len(result) >= count:
            return list(result)[:count]
    raise RuntimeError("could not draw distinct link ids: is the id source random?")


def fresh_ids(conn: store.Store, count: int, source: IdSource = random_ids) -> list[str]:
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
