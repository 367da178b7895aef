"""Message templates (trackly_cli.core.templates.compile_template): link slots, merge fields
with fallbacks, URLs written in the text, and the templates refused."""

from __future__ import annotations

import pytest

from trackly_cli.core.errors import InvalidInput
from trackly_cli.core.templates import Field, Slot, compile_template

LINKS = {"link1": "L1", "link2": "L2", "link3": "L3", "url1": "U1", "url2": "U2", "url3": "U3"}


def test_slots_in_order_of_first_appearance():
    template = compile_template("A {{link2}} B {{link1}} C {{link3}}")
    assert template.slots == ["link2", "link1", "link3"]
    assert template.render({}, LINKS) == "A L2 B L1 C L3"


def test_repeated_slot_is_one_slot_rendered_twice():
    template = compile_template("Go {{link1}} or again {{ link1 }} and {{LINK1}}")
    assert template.slots == ["link1"]
    assert template.render({}, {"link1": "https://go.acme.test/abc1234"}) == (
        "Go https://go.acme.test/abc1234 or again https://go.acme.test/abc1234"
        " and https://go.acme.test/abc1234"
    )


def test_text_without_placeholders():
    template = compile_template("Plain text, no links")
    assert template.slots == []
    assert template.urls == {}
    assert template.fields == []
    assert template.render({}, {}) == "Plain text, no links"


def test_merge_field_with_fallback():
    template = compile_template("Hi {{first_name|there}}!")
    assert template.fields == [Field("first_name", "there")]
    assert template.slots == []
    assert template.render({"first_name": "Ann"}, {}) == "Hi Ann!"
    assert template.render({}, {}) == "Hi there!"
    assert template.render({"first_name": ""}, {}) == "Hi there!"
    assert template.render({"first_name": None}, {}) == "Hi there!"


def test_fallback_with_spaces_around():
    template = compile_template("Hi {{ first_name | dear customer }}!")
    assert template.fields == [Field("first_name", "dear customer")]
    assert template.render({}, {}) == "Hi dear customer!"


def test_merge_field_without_fallback():
    template = compile_template("Hi {{first_name}}, {{city}} awaits")
    assert template.fields == [Field("first_name", None), Field("city", None)]
    assert template.render({"first_name": "Bo", "city": "Oslo"}, {}) == "Hi Bo, Oslo awaits"
    # with no value and no fallback the field renders empty (the shorten step refuses it first)
    assert template.render({}, {}) == "Hi ,  awaits"


def test_same_field_with_and_without_fallback_needs_a_value():
    template = compile_template("{{first_name|there}} and {{first_name}}")
    assert template.fields == [Field("first_name", None)]


def test_field_names_are_case_insensitive():
    template = compile_template("Hi {{First_Name|there}}")
    assert template.fields == [Field("first_name", "there")]
    assert template.render({"first_name": "Cy"}, {}) == "Hi Cy"


def test_links_and_fields_together():
    template = compile_template("Hi {{first_name|there}}! Sale: {{link1}}")
    assert template.slots == ["link1"]
    assert template.parts == ["Hi ", Field("first_name", "there"), "! Sale: ", Slot("link1")]
    assert template.render({"first_name": "Di"}, LINKS) == "Hi Di! Sale: L1"


def test_raw_url_becomes_a_slot():
    template = compile_template("More: https://example.org/info")
    assert template.slots == []
    assert template.urls == {"url1": "https://example.org/info"}
    assert template.render({}, LINKS) == "More: U1"


def test_http_url_is_detected_too():
    template = compile_template("See http://example.org/a?b=1&c=2 now")
    assert template.urls == {"url1": "http://example.org/a?b=1&c=2"}
    assert template.render({}, LINKS) == "See U1 now"


@pytest.mark.parametrize("punctuation", [".", ",", ")", "!", "?", ";", ":"])
def test_trailing_punctuation_is_not_part_of_the_url(punctuation):
    template = compile_template(f"Visit https://example.org/x{punctuation} Thanks")
    assert template.urls == {"url1": "https://example.org/x"}
    assert template.render({}, LINKS) == f"Visit U1{punctuation} Thanks"


def test_url_in_parentheses():
    template = compile_template("Sale (https://example.org/sale), today.")
    assert template.urls == {"url1": "https://example.org/sale"}
    assert template.render({}, LINKS) == "Sale (U1), today."


def test_wikipedia_style_parentheses_are_kept():
    template = compile_template("Read https://en.wikipedia.org/wiki/Foo_(bar) now")
    assert template.urls == {"url1": "https://en.wikipedia.org/wiki/Foo_(bar)"}
    assert template.render({}, LINKS) == "Read U1 now"
    template = compile_template("Read https://en.wikipedia.org/wiki/Foo_(bar).")
    assert template.urls == {"url1": "https://en.wikipedia.org/wiki/Foo_(bar)"}
    assert template.render({}, LINKS) == "Read U1."
    template = compile_template("(see https://en.wikipedia.org/wiki/Foo_(bar))")
    assert template.urls == {"url1": "https://en.wikipedia.org/wiki/Foo_(bar)"}
    assert template.render({}, LINKS) == "(see U1)"


def test_the_same_url_twice_is_one_slot():
    template = compile_template("A https://example.org/a B https://example.org/a.")
    assert template.urls == {"url1": "https://example.org/a"}
    assert template.render({}, LINKS) == "A U1 B U1."


def test_several_urls_numbered_in_order():
    template = compile_template(
        "https://example.org/1 {{link1}} https://example.org/2 https://example.org/1"
    )
    assert template.slots == ["link1"]
    assert template.urls == {"url1": "https://example.org/1", "url2": "https://example.org/2"}
    assert template.render({}, LINKS) == "U1 L1 U2 U1"


def test_urls_inside_slots_and_fields_are_not_counted_as_link_slots():
    template = compile_template("Hi {{first_name|there}} https://example.org/x {{link1}}")
    assert template.slots == ["link1"]
    assert list(template.urls) == ["url1"]


def test_keep_urls_leaves_urls_as_written():
    text = "Clothing: {{link1}} More: https://example.org/info."
    template = compile_template(text, shorten_urls=False)
    assert template.urls == {}
    assert template.slots == ["link1"]
    assert template.render({}, LINKS) == "Clothing: L1 More: https://example.org/info."


def test_not_an_http_url_is_left_alone():
    template = compile_template("ftp://example.org/file and mailto:x@example.org")
    assert template.urls == {}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("Hi {{link1", 1),
        ("Hi {{ }}", 1),
        ("Hi {{}}", 1),
        ("first line\nHi {{link1", 2),
        ("first line\nsecond line\nthird }} line", 3),
        ("one\ntwo {{first-name}}", 2),
    ],
)
def test_malformed_placeholder_is_refused_with_its_line(text, line):
    with pytest.raises(InvalidInput) as caught:
        compile_template(text)
    assert f"line {line}" in caught.value.message
    assert "malformed" in caught.value.message


def test_malformed_placeholder_after_a_good_one_reports_its_own_line():
    # the good placeholder is on line 1, the broken one on line 2
    with pytest.raises(InvalidInput) as caught:
        compile_template("Hi {{first_name|there}}\nSale: {{link1")
    assert "line 2" in caught.value.message, caught.value.message


def test_fallback_on_a_link_slot_is_refused():
    with pytest.raises(InvalidInput) as caught:
        compile_template("Sale: {{link1|https://example.org}}")
    assert "link1" in caught.value.message
    assert "fallback" in caught.value.message


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "\t"])
def test_empty_template_is_refused(text):
    with pytest.raises(InvalidInput) as caught:
        compile_template(text)
    assert "empty" in caught.value.message


def test_template_too_long_is_refused():
    with pytest.raises(InvalidInput):
        compile_template("a" * 5001)
    assert compile_template("a" * 5000).render({}, {}) == "a" * 5000
