from trackly_cli.core import store


def test_offer_list_shows_payout_and_domain(acme):
    offers = acme.json("offer", "list")
    assert offers[0]["payout"] == "2.50"
    assert offers[0]["domain"] == "go.acme.test"
    assert "postback_secret" not in offers[0]


def test_javascript_url_is_refused(acme, db):
    message = acme.error("offer", "create", "bad", "--url", "javascript:alert(1)")
    assert "http" in message
    assert store.scalar(db, "SELECT count(*) FROM offers") == 1
