"""Readable validation messages: the field's name and what was expected, in words.

msgspec and Litestar describe a failure for programmers ("Expected `str` matching regex '^…$'",
"'data'" for a missing body). Clients show these messages to people, so each is rewritten
here, in one place, before the error body is built (``app.core.http_errors``).
"""

from __future__ import annotations

import re

_TYPES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
    "uuid": "a UUID",
    "datetime": "an RFC 3339 date-time",
}

_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Expected `(\w+)` matching regex .*$", re.S), "has an invalid format"),
    (re.compile(r"^Expected `(?:str|array|object)` of length >= 1$"), "must not be empty"),
    (re.compile(r"^Expected `str` of length >= (\d+)$"), "must be at least {0} characters long"),
    (re.compile(r"^Expected `str` of length <= (\d+)$"), "must be at most {0} characters long"),
    (re.compile(r"^Expected `(?:array|object)` of length >= (\d+)$"), "must hold at least {0} items"),
    (re.compile(r"^Expected `(?:array|object)` of length <= (\d+)$"), "must hold at most {0} items"),
    (re.compile(r"^Expected `(?:int|float)` >= (\S+)$"), "must be at least {0}"),
    (re.compile(r"^Expected `(?:int|float)` <= (\S+)$"), "must be at most {0}"),
    (re.compile(r"^Expected `(?:int|float)` > (\S+)$"), "must be greater than {0}"),
    (re.compile(r"^Expected `(?:int|float)` < (\S+)$"), "must be less than {0}"),
    (re.compile(r"^Invalid enum value (.+)$"), "has an unknown value {0}"),
    (re.compile(r"^Invalid UUID$|^Invalid UUID .*$"), "must be a UUID"),
    (re.compile(r"^Invalid RFC3339 encoded datetime$"), "must be an RFC 3339 date-time"),
]
_MISSING = re.compile(r"^Object missing required field `([^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]+)`$")
_EXPECTED_GOT = re.compile(r"^Expected `([^`]+)`, got `([^`]+)`$")
_AT = re.compile(r"^(.*?) - at `\$((?:\.\w+|\[\d+\])*)`$", re.S)


def _type_words(spec: str) -> str:
    return " or ".join(_TYPES.get(part.strip(), part.strip()) for part in spec.split("|"))


def _join(parent: str | None, child: str) -> str:
    return f"{parent}.{child}" if parent and parent != "data" else child


def humanize(message: str, key: str | None = None) -> tuple[str, str]:
    """(field, message in words) for one validation failure; field "body" for the body itself."""
    text = str(message).strip()
    at = _AT.match(text)
    if at:
        text, path = at.group(1), at.group(2).lstrip(".")
        key = _join(key, path) if path else key
    if text == "'data'" or (key == "data" and text in ("", "'data'")):
        return "body", "is required (a JSON object)"
    if key == "data":
        key = None
    missing = _MISSING.match(text)
    if missing:
        return _join(key, missing.group(1)), "is required"
    unknown = _UNKNOWN.match(text)
    if unknown:
        return _join(key, unknown.group(1)), "is not a known field"
    field = key or "body"
    got = _EXPECTED_GOT.match(text)
    if got:
        return field, f"must be {_type_words(got.group(1))}, not {_type_words(got.group(2))}"
    for pattern, words in _RULES:
        match = pattern.match(text)
        if match:
            return field, words.format(*match.groups())
    if "regex" in text:  # a pattern never reaches a client
        return field, "has an invalid format"
    return field, text


def summary(items: list[tuple[str, str]]) -> str:
    return "Validation failed: " + "; ".join(f"{field} {words}" for field, words in items) + "."
