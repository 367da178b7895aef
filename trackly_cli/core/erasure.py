"""Erasing a person (`trackly contacts erase PHONE`): the contact's phone number, merge fields
and list memberships go; so do the IPs, user agents, referers and Accept-Language headers of
the clicks on the links they were sent, the IPs of their conversions, the texts they were
sent (which held their merge fields, and maybe their number), and the number, IP and user
agent in their webhook events (sent or still to send: the events stay, without them).

Reports count exactly as before. Nothing a rollup counts is deleted: the clicks, MessageClicks
and conversions stay, anonymised in place (no trigger watches the columns erased), and the
messages stay with their text replaced. What no longer exists is who they were: each row's
contact id is cleared (a contact id could be given to a new contact later), a MessageClick's
visitor key becomes `erased:<its id>`, a raw click's `erased` (and `bots rescan` leaves those
clicks' verdicts as they are: their headers are gone, there is nothing to judge again).

On SQLite the erase runs with `PRAGMA secure_delete`, so that the freed bytes are zeroed, and
the WAL is then checkpointed and truncated: neither the database file nor its WAL holds the
number any more. On PostgreSQL the old row versions stay in the table files until VACUUM
(autovacuum, soon) reclaims them; `VACUUM` the tables at once for the same guarantee.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from trackly_cli.core import accounts, clicks, clock, contacts, dialect, store, webhooks

# What an erased person's message text becomes.
ERASED_TEXT = "(erased)"


@dataclass
class Erased:
    contact_id: int
    phone: str
    lists: int = 0
    messages: int = 0
    clicks: int = 0
    message_clicks: int = 0
    conversions: int = 0
    webhook_events: int = 0
    # SQLite: whether the WAL could be checkpointed and cut to nothing (a long reader, such as
    # a running report, can hold it); None on PostgreSQL.
    wal_cleared: bool | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def find(db: store.Store, account_ref: str | None, ref: str, country: str = "US") -> dict:
    """The contact that `erase` would erase (to ask before erasing)."""
    account = accounts.resolve(db, account_ref)
    return contacts.find_contact(db, account["id"], ref, country)


def erase_contact(
    db: store.Store, account_ref: str | None, ref: str, country: str = "US"
) -> Erased:
    """Erase one contact's personal data, in one transaction; report counts stay the same."""
    sqlite = db.dialect == dialect.SQLITE
    if sqlite:
        db.execute("PRAGMA secure_delete = ON")
    try:
        with store.write(db) as conn:
            account = accounts.resolve(conn, account_ref)
            contact = contacts.find_contact(conn, account["id"], ref, country)
            result = _erase(conn, contact)
    finally:
        if sqlite:
            db.execute("PRAGMA secure_delete = OFF")
    if sqlite:
        # The old pages are in the WAL, and the WAL may hold earlier versions of them too.
        result.wal_cleared = store.checkpoint_wal(db, "TRUNCATE", 2000)
    return result


def _erase(conn: store.Store, contact: dict) -> Erased:
    contact_id = contact["id"]
    result = Erased(contact_id, contact["phone"])
    messages = [
        (row[0],)
        for row in conn.execute(
            "SELECT id FROM messages WHERE contact_id = ? ORDER BY id", (contact_id,)
        ).fetchall()
    ]
    now = clock.now_text()
    of_message = "link_id IN (SELECT id FROM short_links WHERE message_id = ?)"
    result.clicks = _count(
        conn.executemany(
            "UPDATE message_short_link_clicks SET ip = NULL, user_agent = NULL, referer = NULL,"
            " accept_language = NULL, contact_id = NULL, visitor = ?,"
            f" ip_anonymized_at = coalesce(ip_anonymized_at, ?) WHERE {of_message}",
            [(clicks.ERASED_VISITOR, now, *m) for m in messages],
        )
    )
    result.message_clicks = _count(
        conn.executemany(
            # A contact's visitor ('c:<id>', the id of no one once the contact goes) stays: a
            # server that still holds the person's link in memory makes its next click that
            # visitor's again, which is no second unique click. A hashed one (IP and user
            # agent) goes.
            "UPDATE message_clicks SET ip = NULL, user_agent = NULL, contact_id = NULL,"
            " visitor = CASE WHEN visitor LIKE 'c:%' THEN visitor ELSE ? || CAST(id AS TEXT) END,"
            " ip_anonymized_at = coalesce(ip_anonymized_at, ?) WHERE message_id = ?",
            [(clicks.ERASED_VISITOR + ":", now, *m) for m in messages],
        )
    )
    result.conversions = _count(
        conn.executemany(
            "UPDATE conversions SET ip = NULL, contact_id = NULL,"
            " ip_anonymized_at = coalesce(ip_anonymized_at, ?) WHERE message_id = ?",
            [(now, *m) for m in messages],
        )
    )
    # (a conversion can name the contact without naming a message of theirs)
    result.conversions += conn.execute(
        "UPDATE conversions SET ip = NULL, contact_id = NULL,"
        " ip_anonymized_at = coalesce(ip_anonymized_at, ?) WHERE contact_id = ?",
        (now, contact_id),
    ).rowcount
    conn.executemany(f"UPDATE pending_reversals SET ip = NULL WHERE {of_message}", messages)
    result.webhook_events = webhooks.erase_contact(conn, contact_id)
    conn.executemany("UPDATE short_links SET contact_id = NULL WHERE message_id = ?", messages)
    result.messages = conn.execute(
        "UPDATE messages SET body = ?, delivery_detail = NULL, contact_id = NULL"
        " WHERE contact_id = ?",
        (ERASED_TEXT, contact_id),
    ).rowcount
    result.lists = conn.execute(
        "DELETE FROM list_members WHERE contact_id = ?", (contact_id,)
    ).rowcount
    conn.execute("DELETE FROM contacts WHERE id = ?", (contact_id,))
    return result


def _count(cursor) -> int:
    """Rows an executemany changed (both drivers sum them; -1 when there was nothing to run)."""
    return max(cursor.rowcount, 0)
