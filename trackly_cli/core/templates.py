"""Message templates: link slots ({{link1}}), merge fields ({{first_name|there}}) and URLs written
in the text, compiled once and rendered once per recipient."""

from __future__ import annotations

import re
from dataclasses import dataclass

from trackly_cli.core import validate
from trackly_cli.core.errors import InvalidInput

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|([^{}]*?))?\s*\}\}")
_SLOT = re.compile(r"^link[1-9][0-9]*$")
# A URL written in the text: up to whitespace, quotes or angle brackets; trailing punctuation
# that ends a sentence is not part of it.
_URL = re.compile(r"https?://[^\s<>\"'{}]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]'\""
MAX_TEMPLATE = 5000


@dataclass(frozen=True)
class Field:
    name: str
    fallback: str | None


@dataclass(frozen=True)
class Slot:
    name: str  # link1, link2, … or url1, url2, … for URLs written in the text


@dataclass
class Template:
    text: str
    parts: list  # str | Field | Slot
    slots: list[str]  # the {{linkN}} slots, in order of first appearance
    urls: dict[str, str]  # urlN -> the URL written in the text

    @property
    def fields(self) -> list[Field]:
        seen: dict[str, Field] = {}
        for part in self.parts:
            if isinstance(part, Field) and (part.name not in seen or part.fallback is None):
                seen[part.name] = part
        return list(seen.values())

    def render(self, values: dict, links: dict[str, str]) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, Slot):
                out.append(links[part.name])
            else:
                value = values.get(part.name)
                out.append(str(value) if value not in (None, "") else (part.fallback or ""))
        return "".join(out)

    def formatter(self) -> tuple[str, list[Field | Slot]]:
        """The template as a `str.format` pattern with one positional `{n}` per placeholder,
        and those placeholders in order: a million-message send renders with one C call each
        (`pattern.format(*values)`), the same text as `render`."""
        pattern, placeholders = [], []
        for part in self.parts:
            if isinstance(part, str):
                pattern.append(part.replace("{", "{{").replace("}", "}}"))
            else:
                pattern.append(f"{{{len(placeholders)}}}")
                placeholders.append(part)
        return "".join(pattern), placeholders


def compile_template(text: str, *, shorten_urls: bool = True) -> Template:
    if not text.strip():
        raise InvalidInput("the template is empty")
    if len(text) > MAX_TEMPLATE:
        raise InvalidInput(f"the template is longer than {MAX_TEMPLATE} characters")
    parts: list = []
    slots: list[str] = []
    urls: dict[str, str] = {}
    by_url: dict[str, str] = {}
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        _literal(text[position : match.start()], parts, urls, by_url, shorten_urls)
        name, fallback = match.group(1), match.group(2)
        if _SLOT.match(name.lower()):
            if fallback is not None:
                raise InvalidInput(f"link slot {{{{{name}}}}} cannot have a fallback")
            slot = name.lower()
            parts.append(Slot(slot))
            if slot not in slots:
                slots.append(slot)
        else:
            parts.append(Field(name.lower(), fallback.strip() if fallback is not None else None))
        position = match.end()
    _literal(text[position:], parts, urls, by_url, shorten_urls)
    # What is left once the good placeholders are blanked out must hold no {{ or }}.
    masked = _PLACEHOLDER.sub(lambda m: " " * len(m.group(0)), text)
    stray = min((i for i in (masked.find("{{"), masked.find("}}")) if i >= 0), default=-1)
    if stray >= 0:
        line = text[:stray].count("\n") + 1
        raise InvalidInput(
            f"line {line}: a {{{{ … }}}} placeholder is malformed: use {{{{link1}}}}"
            " or {{first_name|fallback}}"
        )
    return Template(text=text, parts=parts, slots=slots, urls=urls)


def _literal(chunk: str, parts: list, urls: dict, by_url: dict, shorten_urls: bool) -> None:
    if not chunk:
        return
    if not shorten_urls:
        parts.append(chunk)
        return
    position = 0
    for match in _URL.finditer(chunk):
        url = match.group(0).rstrip(_TRAILING)
        # keep a closing parenthesis that belongs to the URL, as in a Wikipedia link
        while (
            url.count("(") > url.count(")")
            and len(url) < len(match.group(0))
            and chunk[match.start() + len(url)] == ")"
        ):
            url += ")"
        end = match.start() + len(url)
        try:
            destination = validate.destination_url(url)
        except InvalidInput:
            continue
        if match.start() > position:
            parts.append(chunk[position : match.start()])
        if url not in by_url:
            by_url[url] = f"url{len(by_url) + 1}"
            urls[by_url[url]] = destination
        parts.append(Slot(by_url[url]))
        position = end
    if position < len(chunk):
        parts.append(chunk[position:])
