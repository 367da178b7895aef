"""SMS segment counting, because operators pay per segment.

A message in the GSM-7 alphabet fits 160 characters in one segment and 153 per segment when
split (characters of the extension table, such as € and {, take two). One character outside it
makes the whole message UCS-2: 70 UTF-16 units alone, 67 per segment (an emoji takes two).
"""

from __future__ import annotations

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("^{}\\[~]|€\f")

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67


def encoding(text: str) -> str:
    return "GSM-7" if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text) else "UCS-2"


def segments(text: str) -> tuple[int, str]:
    """(number of segments, 'GSM-7' or 'UCS-2') for `text`."""
    if encoding(text) == "GSM-7":
        units = [2 if c in GSM7_EXTENSION else 1 for c in text]
        single, multi = GSM7_SINGLE, GSM7_MULTI
        kind = "GSM-7"
    else:
        units = [2 if ord(c) > 0xFFFF else 1 for c in text]
        single, multi = UCS2_SINGLE, UCS2_MULTI
        kind = "UCS-2"
    total = sum(units)
    if total <= single:
        return (1 if total else 0), kind
    # Split as a phone does: an escape pair or a surrogate pair never straddles two segments.
    count, used = 1, 0
    for size in units:
        if used + size > multi:
            count += 1
            used = 0
        used += size
    return count, kind
