"""The demo: an account on localhost with an offer, three contacts and a shortened campaign."""

from __future__ import annotations

import contextlib
import io

from trackly_cli.core import accounts, clock, contacts, domains, lists, offers, shorten, store
from trackly_cli.core.errors import Conflict

ACCOUNT = "demo"
HOST = "localhost"
OFFER = "Demo Sale"
LIST = "demo-list"
CONTACTS = b"phone,first_name\n+12025550101,Ada\n+12025550143,Grace\n+12025550144,Linus\n"
TEMPLATE = "Hi {{first_name|there}}! The demo sale is on: {{link1}} Reply STOP to opt out."


def build(db: store.Store, port: int) -> dict:
    """Create (or reuse) the demo account, domain, offer and list, and shorten a new campaign.
    Returns the campaign name and, per contact, the phone, the text and its link."""
    found = store.row(db, "SELECT id FROM accounts WHERE name_key = ?", (ACCOUNT,))
    if found is None:
        accounts.create(db, ACCOUNT)
    owner = store.row(
        db,
        "SELECT a.name FROM domains d JOIN accounts a ON a.id = d.account_id WHERE d.hostname = ?",
        (HOST,),
    )
    if owner is None:
        domains.add(db, HOST, ACCOUNT, http=True)
    elif owner["name"] != ACCOUNT:
        raise Conflict(
            f"{HOST} belongs to account {owner['name']!r}: the demo needs it;"
            " use another database (--db demo.db)"
        )
    url = f"http://{HOST}:{port}/demo/shop?link={{link_id}}"
    try:
        offers.create(db, ACCOUNT, OFFER, url, payout="2.50")
    except Conflict:
        offers.update(db, ACCOUNT, OFFER, url=url)
    # The demo counts every click, curl's included (real lists flag bots by default).
    with contextlib.suppress(Conflict):
        lists.create(db, ACCOUNT, LIST, bot_filter="off")
    contacts.import_csv(db, ACCOUNT, LIST, io.BytesIO(CONTACTS))
    plan = shorten.prepare(
        db,
        account_ref=ACCOUNT,
        sources=[shorten.TemplateSource("demo", TEMPLATE)],
        bindings=[f"link1={OFFER}"],
        list_ref=LIST,
        campaign=f"demo-{clock.utcnow():%Y%m%d-%H%M%S}",
        domain=HOST,
    )
    summary = shorten.run(db, plan)
    rows = store.rows(
        db,
        "SELECT c.phone, m.body AS text, l.id AS link_id FROM messages m"
        " JOIN contacts c ON c.id = m.contact_id JOIN short_links l ON l.message_id = m.id"
        " WHERE m.campaign_id = ? ORDER BY m.id",
        (summary.campaign_id,),
    )
    for item in rows:
        item["link"] = f"http://{HOST}:{port}/{item['link_id']}"
    return {"campaign": summary.campaign, "messages": rows}
