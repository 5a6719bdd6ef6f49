"""Placeholders in scripts: ``{name}`` in sends and expectations, filled in at run time.

Values come from built-ins (``{me}``, ``{bot}``, ``{room_id}``, ``{run_id}``),
from ``save`` and regex named groups of earlier replies, and ``{NAME.event_id}``
gives the event ID of a named message. ``{{`` and ``}}`` are literal braces.
Only identifiers are placeholders, so regex quantifiers like ``\\d{3}`` are
left alone; a value put into a regex is escaped so it matches literally.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
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


def children(value: Any) -> Iterable[Any]:
    """What a model (its fields' values), mapping (its values) or list holds;
    nothing for anything else. The walkers below look at the children that
    are None or plain strings in their own loop, not with a call each: most
    of a step's fields are unset, and walks happen once per step loaded."""
    if isinstance(value, BaseModel):
        return value.__dict__.values()
    if isinstance(value, dict):
        return value.values()
    if isinstance(value, list):
        return value
    return ()


def has_braces(value: Any) -> bool:
    """Whether any string in ``value`` has a brace: without one, filling in changes nothing."""
    if isinstance(value, str):
        return "{" in value or "}" in value
    for item in children(value):
        if item is None:
            continue
        if type(item) is str:
            if "{" in item or "}" in item:
                return True
        elif has_braces(item):
            return True
    return False


def strings_in(value: Any) -> Iterator[str]:
    """Every string inside a value, for the loader's check of placeholders."""
    if isinstance(value, str):
        yield value
        return
    for item in children(value):
        if type(item) is str:
            yield item
        elif item is not None:
            yield from strings_in(item)
