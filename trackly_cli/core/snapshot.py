"""What a running server keeps in memory of the settings: tracking domains, offers, lists, the
accounts that store no full IP (or not for long), the bot IP ranges and the deleted campaigns —
read in one consistent transaction, and again only when the trigger-maintained config_version
says they changed."""

from __future__ import annotations

from dataclasses import dataclass, field

from trackly_cli.core import clicks, ipranges, store
from trackly_cli.core.clicks import ListInfo, OfferInfo
from trackly_cli.core.ipranges import RangeSet


@dataclass(frozen=True, slots=True)
class DomainInfo:
    id: int
    account_id: int
    hostname: str
    scheme: str


@dataclass(frozen=True)
class Snapshot:
    version: int = -1
    domains: dict[str, DomainInfo] = field(default_factory=dict)
    offers: dict[int, OfferInfo] = field(default_factory=dict)
    lists: dict[int, ListInfo] = field(default_factory=dict)
    anonymize_at_once: frozenset[int] = frozenset()  # accounts that store no full IP
    anonymizing: frozenset[int] = frozenset()  # accounts that keep no full IP for long
    ranges: dict[str, RangeSet] = field(default_factory=dict)
    # Deleted campaigns (`trackly campaign delete`): their links answer no click. A removed
    # one's links are gone from the database too; a server may still hold them in memory.
    removed_campaigns: frozenset[int] = frozenset()
    retired_campaigns: frozenset[int] = frozenset()


def version(conn: store.Store) -> int:
    return store.scalar(conn, "SELECT version FROM config_version")


def load(conn: store.Store) -> Snapshot:
    """Everything, as of one moment (call outside a transaction)."""
    conn.execute("BEGIN")
    try:
        anonymize_after = dict(
            conn.execute(
                "SELECT id, anonymize_ips_after_days FROM accounts"
                " WHERE anonymize_ips_after_days IS NOT NULL"
            )
        )
        deleted = list(conn.execute("SELECT id, deleted FROM campaigns WHERE deleted IS NOT NULL"))
        return Snapshot(
            version=version(conn),
            domains={
                hostname: DomainInfo(id_, account_id, hostname, scheme)
                for id_, account_id, hostname, scheme in conn.execute(
                    "SELECT id, account_id, hostname, scheme FROM domains"
                )
            },
            offers=clicks.load_offers(conn),
            lists=clicks.load_lists(conn),
            anonymize_at_once=frozenset(a for a, days in anonymize_after.items() if days == 0),
            anonymizing=frozenset(anonymize_after),
            ranges=ipranges.load(conn),
            removed_campaigns=frozenset(i for i, how in deleted if how == "removed"),
            retired_campaigns=frozenset(i for i, how in deleted if how == "retired"),
        )
    finally:
        conn.execute("COMMIT")
