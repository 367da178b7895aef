"""Short link ids (trackly_cli.core.links): 7 characters of base62, unique across the database;
a collision is retried, never overwritten."""

from __future__ import annotations

from collections import Counter

import pytest

from trackly_cli.core import links


def test_random_ids_are_seven_base62_characters():
    ids = links.random_ids(1000)
    assert len(ids) == 1000
    for link_id in ids:
        assert len(link_id) == 7
        assert links.VALID_ID.match(link_id)
        assert set(link_id) <= set(links.ALPHABET)
    assert len(set(ids)) == 1000  # 62**7 ids: a repeat in 1,000 draws would be a broken source


def test_random_ids_of_zero_and_one():
    assert links.random_ids(0) == []
    assert len(links.random_ids(1)) == 1


def test_alphabet_is_base62():
    assert len(links.ALPHABET) == 62
    assert len(set(links.ALPHABET)) == 62
    assert links.SPACE == 62**7


def test_random_id_characters_are_roughly_uniform():
    chars = Counter("".join(links.random_ids(20_000)))  # 140,000 characters
    expected = 140_000 / 62  # about 2,258 each; one standard deviation is about 47
    assert set(chars) == set(links.ALPHABET)
    for char, count in chars.items():
        assert 0.8 * expected < count < 1.2 * expected, (char, count)
    # every position is uniform too (no character favoured in the first place, say)
    firsts = Counter(link_id[0] for link_id in links.random_ids(31_000))
    assert set(firsts) == set(links.ALPHABET)
    assert max(firsts.values()) < 1.5 * 500


def test_encode_is_seven_base62_characters():
    assert links.encode(0) == "0000000"
    assert len(links.encode(links.SPACE - 1)) == 7
    assert links.encode(links.SPACE - 1) == "Z" * 7


@pytest.fixture
def existing_ids(acme, db) -> list[str]:
    """Short link ids already in the database: a real one-off message with two links."""
    acme("shorten", "-", "--link", "link1=Summer Sale", input="A {{link1}} B https://example.org")
    ids = [r[0] for r in db.execute("SELECT id FROM short_links ORDER BY id")]
    assert len(ids) == 2
    return ids


def test_fresh_ids_retries_an_id_that_exists(db, existing_ids):
    calls = []
    queue = [existing_ids[0], "newAAA1", existing_ids[1], "newAAA2", "newAAA3"]

    def source(count: int) -> list[str]:
        calls.append(count)
        drawn, queue[:] = queue[:count], queue[count:]
        return drawn

    result = links.fresh_ids(db, 3, source)
    assert sorted(result) == ["newAAA1", "newAAA2", "newAAA3"]
    assert not set(result) & set(existing_ids)
    assert calls[0] == 3 and len(calls) > 1  # the collisions were drawn again
    # nothing was written or overwritten
    assert sorted(r[0] for r in db.execute("SELECT id FROM short_links")) == existing_ids


def test_fresh_ids_never_repeats_an_id_within_one_call(db, existing_ids):
    draws = iter([["dupAAA1", "dupAAA1", "dupAAA1"], ["dupAAA1", "dupAAA2"], ["dupAAA3"]])

    def source(count: int) -> list[str]:
        return next(draws)[:count] if count else []

    result = links.fresh_ids(db, 3, source)
    assert len(result) == 3
    assert len(set(result)) == 3
    assert set(result) == {"dupAAA1", "dupAAA2", "dupAAA3"}


def test_fresh_ids_with_the_real_source(db, existing_ids):
    result = links.fresh_ids(db, 500)
    assert len(result) == len(set(result)) == 500
    assert not set(result) & set(existing_ids)
    assert all(links.VALID_ID.match(i) for i in result)


def test_fresh_ids_gives_up_on_a_source_that_only_repeats(db, existing_ids):
    with pytest.raises(RuntimeError):
        links.fresh_ids(db, 1, lambda count: [existing_ids[0]] * count)


def test_fresh_ids_of_zero(db):
    assert links.fresh_ids(db, 0) == []
