"""Retention and IP privacy: delete raw clicks older than the account keeps them, and truncate
stored IP addresses (IPv4 to /24, IPv6 to /48) once they are older than the account says.

Reports do not change when raw clicks go: they read counters (report_rollups, message_rollups)
that were kept as the clicks were written, and deleting a raw click changes no counter. The
MessageClicks and conversions stay (their link to the raw click they came from is cleared).
Work is done in chunks, each its own short transaction, so that a running server's writes
wait for a moment at most.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from trackly_cli.core import clock, store

CHUNK = 5000
# (table, time column) whose rows hold an IP address
IP_TABLES = (
    ("message_short_link_clicks", "clicked_at"),
    ("message_clicks", "clicked_at"),
    ("conversions", "converted_at"),
)


def anonymize_ip(ip: str | None) -> str | None:
    """'203.0.113.77' -> '203.0.113.0'; '2001:db8:1:2::5' -> '2001:db8:1::'; else unchanged."""
    if not ip:
        return ip
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None  # not an address: keep nothing
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


@dataclass
class AccountPrune:
    account: str
    retention_days: int
    cutoff: str
    clicks: int = 0
    anonymize_after_days: int | None = None
    ips: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "account": self.account,
            "retention_days": self.retention_days,
            "cutoff": self.cutoff,
            "clicks": self.clicks,
            "anonymize_ips_after_days": self.anonymize_after_days,
            "ips_anonymized": sum(self.ips.values()),
        }


def prune(
    conn: store.Store,
    *,
    account_id: int | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    on_chunk: Callable[[], None] | None = None,
) -> list[AccountPrune]:
    """Delete (or with `dry_run`, count) raw clicks older than each account's retention, and
    anonymise IPs older than its setting. Commits chunk by chunk; call outside a transaction."""
    now = now or clock.utcnow()
    accounts = store.rows(
        conn,
        "SELECT id, name, retention_days, anonymize_ips_after_days FROM accounts"
        + (" WHERE id = ?" if account_id is not None else "")
        + " ORDER BY id",
        (account_id,) if account_id is not None else (),
    )
    results = []
    for account in accounts:
        cutoff = clock.days_ago_text(account["retention_days"], now)
        result = AccountPrune(
            account["name"],
            account["retention_days"],
            cutoff,
            anonymize_after_days=account["anonymize_ips_after_days"],
        )
        if dry_run:
            result.clicks = store.scalar(
                conn,
                "SELECT count(*) FROM message_short_link_clicks"
                " WHERE account_id = ? AND clicked_at < ?",
                (account["id"], cutoff),
            )
        else:
            result.clicks = _delete_clicks(conn, account["id"], cutoff, on_chunk)
        if account["anonymize_ips_after_days"] is not None:
            limit = clock.days_ago_text(account["anonymize_ips_after_days"], now)
            for table, column in IP_TABLES:
                result.ips[table] = _anonymize(
                    conn, table, column, account["id"], limit, dry_run, on_chunk
                )
        results.append(result)
    return results


def _delete_clicks(
    conn: store.Store, account_id: int, cutoff: str, on_chunk: Callable[[], None] | None
) -> int:
    total = 0
    while True:
        with store.chunk(conn):
            deleted = conn.execute(
                "DELETE FROM message_short_link_clicks WHERE id IN ("
                " SELECT id FROM message_short_link_clicks"
                " WHERE account_id = ? AND clicked_at < ? LIMIT ?)",
                (account_id, cutoff, CHUNK),
            ).rowcount
        total += deleted
        if on_chunk:
            on_chunk()
        if deleted < CHUNK:
            return total


def _anonymize(
    conn: store.Store,
    table: str,
    column: str,
    account_id: int,
    limit: str,
    dry_run: bool,
    on_chunk: Callable[[], None] | None,
) -> int:
    where = f"account_id = ? AND {column} < ? AND ip IS NOT NULL AND ip_anonymized_at IS NULL"
    if dry_run:
        return store.scalar(
            conn, f"SELECT count(*) FROM {table} WHERE {where}", (account_id, limit)
        )
    # Walk forward through time (rows already anonymised are passed over once per run, not once
    # per chunk); read outside the write lock, update in a short transaction.
    total, after = 0, ("", 0)
    while True:
        found = conn.execute(
            f"SELECT id, ip, {column} FROM {table} WHERE {where} AND ({column}, id) > (?, ?)"
            f" ORDER BY {column}, id LIMIT ?",
            (account_id, limit, *after, CHUNK),
        ).fetchall()
        if found:
            stamp = clock.now_text()
            with store.chunk(conn):
                conn.executemany(
                    f"UPDATE {table} SET ip = ?, ip_anonymized_at = ? WHERE id = ?"
                    " AND ip_anonymized_at IS NULL",
                    [(anonymize_ip(ip), stamp, row_id) for row_id, ip, _ in found],
                )
            after = (found[-1][2], found[-1][0])
        total += len(found)
        if on_chunk:
            on_chunk()
        if len(found) < CHUNK:
            return total
