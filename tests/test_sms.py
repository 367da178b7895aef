"""SMS segment counting (trackly_cli.core.sms.segments): operators pay per segment.

GSM-7: 160 characters alone, 153 per segment when split; extension characters take two.
UCS-2: 70 UTF-16 units alone, 67 per segment; an emoji (outside the BMP) takes two.
"""

from __future__ import annotations

import pytest

from trackly_cli.core.sms import segments


def test_empty_text_is_no_segment():
    assert segments("") == (0, "GSM-7")


@pytest.mark.parametrize(
    ("length", "expected"),
    [(1, 1), (159, 1), (160, 1), (161, 2), (305, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_gsm7_lengths(length, expected):
    assert segments("a" * length) == (expected, "GSM-7")


@pytest.mark.parametrize("char", list("€[]{}~^|\\"))
def test_gsm7_extension_characters_count_twice(char):
    assert segments(char * 80) == (1, "GSM-7")
    assert segments(char * 81) == (2, "GSM-7")
    # 158 plain + one extension character = 160 septets: still one segment; one more splits
    assert segments("a" * 158 + char) == (1, "GSM-7")
    assert segments("a" * 159 + char) == (2, "GSM-7")


def test_euro_signs_in_a_long_message():
    # 76 euro signs (152 septets) fill a segment: the 77th (154 > 153) starts the next one
    assert segments("€" * 152) == (2, "GSM-7")  # 76 | 76
    assert segments("€" * 153) == (3, "GSM-7")  # 76 | 76 | 1, although 306 septets <= 2 x 153


def test_escape_pair_never_straddles_two_segments():
    # 152 plain characters fill segment 1 up to 152 septets; the euro sign (an escape pair of
    # 2 septets) does not fit in the one septet left, so it starts segment 2.
    text = "a" * 152 + "€" + "b" * 151  # segment 2: 2 + 151 = 153 septets
    assert segments(text) == (2, "GSM-7")
    # 306 septets in total (a naive count says 2 segments), but segment 2 would need 154
    text = "a" * 152 + "€" + "b" * 152
    assert segments(text) == (3, "GSM-7")


def test_escape_pair_that_fits_stays():
    # 151 plain + euro = 153 septets: exactly one full segment, then the rest
    text = "a" * 151 + "€" + "b" * 153
    assert segments(text) == (2, "GSM-7")


def test_one_emoji_makes_the_message_ucs2():
    assert segments("a" * 100) == (1, "GSM-7")
    assert segments("a" * 99 + "😀") == (2, "UCS-2")  # 101 UTF-16 units > 70
    assert segments("Hi 😀") == (1, "UCS-2")


@pytest.mark.parametrize(
    ("length", "expected"), [(70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)]
)
def test_ucs2_lengths(length, expected):
    assert segments("ж" * length) == (expected, "UCS-2")


def test_emoji_count_as_two_units():
    assert segments("😀" * 35) == (1, "UCS-2")  # 70 units
    assert segments("😀" * 36) == (2, "UCS-2")  # 72 units
    assert segments("a" * 68 + "😀") == (1, "UCS-2")  # 70 units
    assert segments("a" * 69 + "😀") == (2, "UCS-2")  # 71 units


def test_surrogate_pair_never_straddles_two_segments():
    # 66 units in segment 1; the emoji needs 2 and only 1 is left, so it moves to segment 2
    assert segments("a" * 66 + "😀" + "b" * 65) == (2, "UCS-2")  # segment 2: 67 units
    assert segments("a" * 66 + "😀" + "b" * 66) == (3, "UCS-2")  # 134 units, but 66|68


@pytest.mark.parametrize("char", ["é", "ü", "ñ", "à", "Ç", "Ä", "Ö", "Ñ", "Ü", "ß", "É", "è"])
def test_accented_letters_in_gsm7_stay_gsm7(char):
    assert segments(f"Caf{char} ouvert") == (1, "GSM-7")
    assert segments(char * 160) == (1, "GSM-7")
    assert segments(char * 161) == (2, "GSM-7")


@pytest.mark.parametrize("char", ["á", "ç", "í", "ó", "ú", "ê", "õ", "ł", "ж", "中"])
def test_letters_outside_gsm7_make_it_ucs2(char):
    assert segments(f"Caf{char}") == (1, "UCS-2")
    assert segments("a" * 69 + char) == (1, "UCS-2")
    assert segments("a" * 70 + char) == (2, "UCS-2")


def test_extension_characters_count_once_in_ucs2():
    # in UCS-2 every BMP character is one unit, extension characters included
    assert segments("€" * 69 + "ç") == (1, "UCS-2")
