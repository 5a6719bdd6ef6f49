"""Placeholders in scripts: ``{name}`` in sends and expectations, filled in at run time.

Values come from built-ins (``{me}``, ``{bot}``, ``{room_id}``, ``{run_id}``),
from ``save`` and regex named groups of earlier replies, and ``{NAME.event_id}``
gives the event ID of a named message. ``{{`` and ``}}`` are literal braces.
Only identifiers are placeholders, so regex quantifiers like ``\\d{3}`` are
left alone; a value put into a regex is escaped so it matches literally.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel

from matrix_bot_tester.language import TextMatch

BUILTINS = ("me", "bot", "room_id", "run_id")

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)(\.event_id)?\}")


def placeholders(text: str) -> Iterator[tuple[str, bool]]:
    """Each ``(name, wants_event_id)`` that ``text`` refers to."""
    for match in _TOKEN.finditer(text):
        if match.group(1):
            yield match.group(1), bool(match.group(2))


class Undefined(KeyError):
    """A placeholder with no value: the loader's static check should have caught it."""


def fill(
    text: str, values: Mapping[str, str], event_ids: Mapping[str, str], *, escape: bool = False
) -> str:
    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name, wants_id = match.group(1), bool(match.group(2))
        source = event_ids if wants_id else values
        if name not in source:
            raise Undefined(token)
        value = source[name]
        return re.escape(value) if escape else value

    return _TOKEN.sub(replace, text)


def fill_all(
    value: Any, values: Mapping[str, str], event_ids: Mapping[str, str], *, escape: bool = False
) -> Any:
    """``value`` with every string filled in: models, lists and mappings are walked."""
    if isinstance(value, str):
        return fill(value, values, event_ids, escape=escape)
    if isinstance(value, list):
        return [fill_all(item, values, event_ids, escape=escape) for item in value]
    if isinstance(value, dict):
        return {k: fill_all(v, values, event_ids, escape=escape) for k, v in value.items()}
    if isinstance(value, BaseModel):
        update = {}
        for field in type(value).model_fields:
            current = getattr(value, field)
            # A value placed into a regex must match itself, not act as a pattern.
            as_regex = isinstance(value, TextMatch) and field == "regex"
            filled = fill_all(current, values, event_ids, escape=escape or as_regex)
            if filled is not current:
                update[field] = filled
        return value.model_copy(update=update) if update else value
    return value


def has_braces(value: Any) -> bool:
    """Whether any string in ``value`` has a brace: without one, filling in changes nothing.

    Walks like ``strings_in`` without its generators: asked once per step loaded.
    """
    if isinstance(value, str):
        return "{" in value or "}" in value
    if isinstance(value, BaseModel):
        value = list(value.__dict__.values())  # a model's fields, by value
    elif isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            if has_braces(item):
                return True
    return False


def strings_in(value: Any) -> Iterator[str]:
    """Every string inside a value, for the loader's check of placeholders."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, BaseModel):
        for field in type(value).model_fields:
            yield from strings_in(getattr(value, field))
