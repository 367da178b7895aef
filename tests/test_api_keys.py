"""`trackly apikey create|list|revoke` and core.apikeys: a key is shown once and stored only as
its hash; bad input is one line and changes nothing; `account delete --force` takes the keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import query, snapshot

from trackly_cli.core import apikeys, store
from trackly_cli.core.errors import Forbidden, Unauthorized


@pytest.fixture
def two(cli):
    cli("account", "create", "acme")
    cli("account", "create", "other")
    return cli


def test_create_list_revoke(two, db_path: Path):
    made = two.json("apikey", "create", "--account", "acme", "--scope", "write", "--name", "crm")
    assert set(made) == {"key", "id", "name", "scope", "account", "prefix"}
    assert made["key"].startswith("trk_") and len(made["key"]) == 47
    assert (made["name"], made["scope"], made["account"]) == ("crm", "write", "acme")
    assert made["prefix"] == made["key"][:12]
    # the table output: the key alone on stdout (KEY=$(…) keeps it), the note on stderr
    plain = two("apikey", "create", "--account", "other")
    key = plain.stdout.strip()
    assert key.startswith("trk_") and "\n" not in key
    assert "read key 2" in plain.stderr and "shown only now" in plain.stderr
    listed = two.json("apikey", "list")
    assert [(k["id"], k["account"], k["scope"]) for k in listed] == [
        (1, "acme", "write"),
        (2, "other", "read"),
    ]
    assert all("key" not in k and "key_hash" not in k for k in listed)
    assert [k["id"] for k in two.json("apikey", "list", "--account", "other")] == [2]
    table = two("apikey", "list").stdout
    assert made["prefix"] in table and made["key"] not in table
    revoked = two.json("apikey", "revoke", "1")
    assert revoked["revoked_at"] is not None
    assert "Revoked API key 2" in two("apikey", "revoke", "2").stderr
    assert all(k["revoked_at"] for k in two.json("apikey", "list"))


def test_a_key_is_never_stored_in_plaintext(two, db_path: Path):
    keys = [two.json("apikey", "create", "--account", "acme")["key"] for _ in range(3)]
    stored = b"".join(
        p.read_bytes() for p in db_path.parent.iterdir() if p.name.startswith(db_path.name)
    )
    for key in keys:
        assert key.encode() not in stored
        assert key[4:].encode() not in stored  # (not even without its prefix)
    assert len(query(db_path, "SELECT key_hash FROM api_keys")) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "--account", "nope"), "no account 'nope'"),
        (("create",), "several accounts exist"),
        (("create", "--account", "acme", "--name", "123"), "only digits"),
        (("create", "--account", "acme", "--name", "x" * 101), "longer than 100"),
        (("revoke", "99"), "no API key 99"),
        (("revoke", "crm"), "is not an API key id"),
        (("list", "--account", "nope"), "no account 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(two, db_path, args, message):
    before = snapshot(db_path)
    assert message in two.error("apikey", *args)
    assert snapshot(db_path) == before


def test_usage_errors(two, db_path):
    before = snapshot(db_path)
    assert "'admin' is not one of" in two.error("apikey", "create", "--scope", "admin", code=2)
    assert snapshot(db_path) == before


def test_revoking_twice_is_a_conflict(two):
    two("apikey", "create", "--account", "acme")
    two("apikey", "revoke", "1")
    assert "revoked already" in two.error("apikey", "revoke", "1")


def test_authenticate(two, db: store.Store):
    made = apikeys.create(db, "acme", scope="read", name="dash")
    found = apikeys.authenticate(db, made["key"])
    assert (found["account"], found["scope"], found["name"]) == ("acme", "read", "dash")
    assert "key_hash" not in found
    for wrong in ("", "trk_nope", made["key"] + "x", made["key"][4:], "trk_" + "é" * 8):
        with pytest.raises(Unauthorized):
            apikeys.authenticate(db, wrong)
    with pytest.raises(Forbidden):
        apikeys.require_write(found)
    apikeys.revoke(db, str(made["id"]))
    with pytest.raises(Unauthorized, match="revoked"):
        apikeys.authenticate(db, made["key"])


def test_account_delete_force_takes_its_keys_and_idempotency_keys(two, db_path):
    two("domain", "add", "go.acme.test", "--account", "acme")
    two("offer", "create", "Sale", "--url", "https://shop.example/", "--account", "acme")
    two("apikey", "create", "--account", "acme")
    two("apikey", "create", "--account", "other")
    conn = store.connect(db_path)
    try:
        conn.execute(
            "INSERT INTO api_idempotency (account_id, key, fingerprint, status, response,"
            " created_at) VALUES (1, 'k', 'f', 201, '{}', '2026-01-01T00:00:00.000000Z')"
        )
    finally:
        conn.close()
    two("account", "delete", "acme", "--force", "--yes")
    assert [k["account"] for k in two.json("apikey", "list")] == ["other"]
    assert query(db_path, "SELECT * FROM api_idempotency") == []
