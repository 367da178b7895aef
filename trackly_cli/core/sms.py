"""SMS segment counting, because operators pay per segment.

A message in the GSM-7 alphabet fits 160 characters in one segment and 153 per segment when
split (characters of the extension table, such as € and {, take two). One character outside it
makes the whole message UCS-2: 70 UTF-16 units alone, 67 per segment (an emoji takes two).
"""

from __future__ import annotations

import re

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("^{}\\[~]|€\f")

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67


_NOT_GSM7 = re.compile("[^" + re.escape("".join(sorted(GSM7_BASIC | GSM7_EXTENSION))) + "]")
_GSM7_EXTENSION = re.compile("[" + re.escape("".join(sorted(GSM7_EXTENSION))) + "]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def encoding(text: str) -> str:
    return "UCS-2" if _NOT_GSM7.search(text) else "GSM-7"


def segments(text: str) -> tuple[int, str]:
    """(number of segments, 'GSM-7' or 'UCS-2') for `text`."""
    if encoding(text) == "GSM-7":
        wide = _GSM7_EXTENSION.findall(text)  # each takes two septets (an escape pair)
        single, multi, kind = GSM7_SINGLE, GSM7_MULTI, "GSM-7"
    else:
        wide = _ASTRAL.findall(text)  # each takes two UTF-16 units (a surrogate pair)
        single, multi, kind = UCS2_SINGLE, UCS2_MULTI, "UCS-2"
    total = len(text) + len(wide)
    if total <= single:
        return (1 if total else 0), kind
    if not wide:
        return -(-total // multi), kind
    # Split as a phone does: an escape or surrogate pair never straddles two segments.
    wide_set = set(wide)
    count, used = 1, 0
    for char in text:
        size = 2 if char in wide_set else 1
        if used + size > multi:
            count += 1
            used = 0
        used += size
    return count, kind
