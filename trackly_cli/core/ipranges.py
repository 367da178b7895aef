"""IP ranges for bot detection: operator deny and allow lists, and cloud/datacenter ranges
imported from the providers' published files, looked up by bisection over sorted integer
intervals (not a scan)."""

from __future__ import annotations

import bisect
import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path

from trackly_cli.core import clock, paging, store, validate
from trackly_cli.core.errors import InvalidInput, NotFound

KINDS = ("deny", "allow", "datacenter")


@dataclass
class RangeSet:
    """Disjoint, sorted [start, end] integer intervals per IP version, each with a label."""

    _starts: dict[int, list[int]] = field(default_factory=lambda: {4: [], 6: []})
    _ends: dict[int, list[int]] = field(default_factory=lambda: {4: [], 6: []})
    _labels: dict[int, list[str]] = field(default_factory=lambda: {4: [], 6: []})

    @classmethod
    def build(cls, ranges: list[tuple[str, str]]) -> RangeSet:
        """From (cidr, label) pairs; overlapping ranges are merged (the first label stays)."""
        by_version: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
        for cidr, label in ranges:
            network = ipaddress.ip_network(cidr, strict=False)
            by_version[network.version].append(
                (int(network.network_address), int(network.broadcast_address), label)
            )
        result = cls()
        for version, intervals in by_version.items():
            intervals.sort()
            for start, end, label in intervals:
                ends = result._ends[version]
                if ends and start <= ends[-1] + 1:
                    ends[-1] = max(ends[-1], end)
                    continue
                result._starts[version].append(start)
                ends.append(end)
                result._labels[version].append(label)
        return result

    def __len__(self) -> int:
        return len(self._starts[4]) + len(self._starts[6])

    def find(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> str | None:
        """The label of the range holding `address`, or None."""
        if address is None:
            return None
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        value = int(address)
        starts = self._starts[address.version]
        index = bisect.bisect_right(starts, value) - 1
        if index >= 0 and value <= self._ends[address.version][index]:
            return self._labels[address.version][index]
        return None


def parse_address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def parse_file(path: Path) -> tuple[str, list[str]]:
    """(format, CIDRs) of an AWS ip-ranges.json, a Google cloud.json/goog.json, or a plain list
    with one CIDR or address per line ('#' starts a comment)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InvalidInput(f"cannot read {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{path} is not UTF-8 text") from e
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidInput(f"{path} is not valid JSON (line {e.lineno}): {e.msg}") from e
        if isinstance(data, dict) and ("prefixes" in data or "ipv6_prefixes" in data):
            cidrs = []
            keys_seen: set[str] = set()
            for entry in data.get("prefixes", []) + data.get("ipv6_prefixes", []):
                for key in ("ip_prefix", "ipv6_prefix", "ipv4Prefix", "ipv6Prefix"):
                    if isinstance(entry, dict) and key in entry:
                        cidrs.append(entry[key])
                        keys_seen.add(key)
            # AWS names its entries ip_prefix / ipv6_prefix, Google ipv4Prefix / ipv6Prefix
            # (both files carry a syncToken).
            fmt = "aws" if keys_seen & {"ip_prefix", "ipv6_prefix"} else "google"
            return fmt, [str(validate.cidr(c)) for c in cidrs]
        raise InvalidInput(
            f"{path}: JSON without 'prefixes': expected AWS ip-ranges.json or Google cloud.json"
        )
    cidrs = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            cidrs.append(str(validate.cidr(entry)))
        except InvalidInput as e:
            raise InvalidInput(f"{path}, line {number}: {e.message}") from e
    return "list", cidrs


def import_file(
    db: store.Store, path: Path, *, kind: str = "datacenter", source: str | None = None
) -> dict:
    """Replace the ranges of (kind, source) with those of the file, in one transaction."""
    if kind not in KINDS:
        raise InvalidInput(f"--kind must be one of {', '.join(KINDS)}")
    fmt, cidrs = parse_file(path)
    if not cidrs:
        raise InvalidInput(f"{path} holds no IP ranges")
    source = source or (fmt if fmt in ("aws", "google") else path.stem)
    now = clock.now_text()
    with store.write(db) as conn:
        removed = conn.execute(
            "DELETE FROM ip_ranges WHERE kind = ? AND source = ?", (kind, source)
        ).rowcount
        cursor = conn.executemany(
            "INSERT INTO ip_ranges (kind, cidr, source, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (kind, cidr) DO NOTHING",
            [(kind, cidr, source, now) for cidr in dict.fromkeys(cidrs)],
        )
        added = cursor.rowcount
    return {
        "kind": kind,
        "source": source,
        "format": fmt,
        "ranges": added,
        "replaced": removed,
        "duplicates": len(cidrs) - added,
    }


def add(db: store.Store, kind: str, cidrs: list[str], source: str = "manual") -> list[str]:
    networks = [str(validate.cidr(c)) for c in cidrs]
    now = clock.now_text()
    with store.write(db) as conn:
        conn.executemany(
            "INSERT INTO ip_ranges (kind, cidr, source, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (kind, cidr) DO NOTHING",
            [(kind, n, source, now) for n in networks],
        )
    return networks


def remove(
    db: store.Store, *, kind: str | None = None, cidr: str | None = None, source: str | None = None
) -> int:
    if not (cidr or source):
        raise InvalidInput("say what to remove: a CIDR, or --source NAME")
    clauses, params = [], []
    if kind:
        clauses.append("kind = ?")
        params.append(kind)
    if cidr:
        clauses.append("cidr = ?")
        params.append(str(validate.cidr(cidr)))
    if source:
        clauses.append("source = ?")
        params.append(source)
    with store.write(db) as conn:
        count = conn.execute(
            f"DELETE FROM ip_ranges WHERE {' AND '.join(clauses)}", params
        ).rowcount
    if not count:
        raise NotFound("no IP range matches")
    return count


def summary(db: store.Store, limit: int | None = None) -> paging.Page:
    """The ranges by kind and source: how many each, since when."""
    return paging.fetch(
        db,
        "SELECT kind, source, count(*) AS ranges, min(created_at) AS imported_at"
        " FROM ip_ranges GROUP BY kind, source",
        "ORDER BY kind, source",
        limit=limit,
    )


def ranges(db: store.Store, limit: int | None = None) -> paging.Page:
    """The ranges themselves (what `--cidrs` lists), by kind, source and range."""
    return paging.fetch(
        db,
        "SELECT kind, source, cidr, created_at AS imported_at FROM ip_ranges",
        "ORDER BY kind, source, cidr",
        limit=limit,
    )


def load(conn: store.Store) -> dict[str, RangeSet]:
    """One RangeSet per kind, from the database."""
    grouped: dict[str, list[tuple[str, str]]] = {kind: [] for kind in KINDS}
    for kind, cidr, source in conn.execute("SELECT kind, cidr, source FROM ip_ranges"):
        grouped[kind].append((cidr, source))
    return {kind: RangeSet.build(ranges) for kind, ranges in grouped.items()}
