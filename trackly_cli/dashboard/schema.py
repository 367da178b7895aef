"""The JSON bodies and query parameters of the API checked against the JSON Schemas that its
OpenAPI document publishes (the subset of JSON Schema those use), so that the document and the
checks cannot differ. A value that does not fit is InvalidInput naming its field (`links.link1`,
`variants[0].text`)."""

from __future__ import annotations

import re
from decimal import Decimal

from trackly_cli.core.errors import InvalidInput

_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, Decimal)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}
_ARTICLE = {"integer": "an integer", "object": "an object", "array": "an array"}


def _kind(name: str) -> str:
    return _ARTICLE.get(name, f"a {name}")


def check(value: object, schema: dict, field: str) -> None:
    """`value` fits `schema`, or InvalidInput(field=…) says where and why not."""
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_TYPES[k](value) for k in kinds):
            wanted = " or ".join(_kind(k) for k in kinds)
            raise InvalidInput(f"{field or 'the body'} must be {wanted}", field=field or None)
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(str(c) for c in schema["enum"] if c is not None)
        raise InvalidInput(f"{field} must be one of {choices}", field=field)
    if isinstance(value, str):
        _string(value, schema, field)
    elif isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            raise InvalidInput(f"{field} must be between {low} and {high}", field=field)
    elif isinstance(value, dict):
        _object(value, schema, field)
    elif isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            raise InvalidInput(f"{field} needs at least {schema['minItems']} items", field=field)
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise InvalidInput(f"{field} has more than {schema['maxItems']} items", field=field)
        for index, item in enumerate(value):
            check(item, schema.get("items", {}), f"{field}[{index}]")


def _string(value: str, schema: dict, field: str) -> None:
    if len(value) < schema.get("minLength", 0):
        raise InvalidInput(f"{field} is empty", field=field)
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise InvalidInput(
            f"{field} is longer than {schema['maxLength']:,} characters", field=field
        )
    if "pattern" in schema and not re.search(schema["pattern"], value):
        raise InvalidInput(f"{field} {value[:40]!r} is not {schema['title']}", field=field)
    if "\x00" in value:
        raise InvalidInput(f"{field} has a NUL character", field=field)


def _object(value: dict, schema: dict, field: str) -> None:
    prefix = f"{field}." if field else ""
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    names = schema.get("propertyNames")
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        raise InvalidInput(
            f"{field or 'the body'} has more than {schema['maxProperties']} keys", field=field
        )
    for name, item in value.items():
        where = f"{prefix}{name}"
        if names is not None:
            _string(name, names, where)
        if name in properties:
            check(item, properties[name], where)
        elif extra is False:
            raise InvalidInput(f"unknown field {where[:100]!r}", field=where[:100])
        elif isinstance(extra, dict):
            check(item, extra, where)
    for name in schema.get("required", ()):
        if name not in value:
            raise InvalidInput(f"{prefix}{name} is required", field=f"{prefix}{name}")
    # (`oneOf` here is alternatives of required keys: exactly one must be given)
    alternatives = [option["required"] for option in schema.get("oneOf", ())]
    given = [keys for keys in alternatives if all(n in value for n in keys)]
    if alternatives and len(given) != 1:
        names = " or ".join(prefix + ", ".join(keys) for keys in alternatives)
        if not given:
            raise InvalidInput(f"give {names} (one of them)", field=prefix + alternatives[0][0])
        both = " and ".join(prefix + ", ".join(keys) for keys in given)
        raise InvalidInput(f"give {names}, not {both}", field=prefix + given[-1][0])
