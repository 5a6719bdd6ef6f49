"""Pure matching: is this event a reply, and does it satisfy an expectation?

No I/O here: everything works on the raw event JSON (a dict), so it can be
tested in milliseconds with recorded events.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

# Bots conventionally answer with m.notice; the original tool heard only m.text.
REPLY_MSGTYPES = frozenset({"m.text", "m.notice", "m.emote"})

Event = dict[str, Any]


@dataclass(frozen=True)
class Message:
    """The facts of a message event that a person reads and a report shows."""

    event_id: str
    sender: str
    msgtype: str
    body: str
    timestamp_ms: int

    @classmethod
    def from_event(cls, event: Event) -> Message:
        content = event.get("content") or {}
        body = content.get("body")
        return cls(
            event_id=str(event.get("event_id", "")),
            sender=str(event.get("sender", "")),
            msgtype=str(content.get("msgtype", "")),
            body=body if isinstance(body, str) else "",
            timestamp_ms=int(event.get("origin_server_ts") or 0),
        )


def is_edit(event: Event) -> bool:
    relates = (event.get("content") or {}).get("m.relates_to") or {}
    return isinstance(relates, dict) and relates.get("rel_type") == "m.replace"


def is_reply(event: Event, me: str) -> bool:
    """A message from someone other than us that a person would read as a new message.

    Our own messages come back to us through sync: they are never replies.
    Edits (``m.replace``) change an earlier message rather than add one, so
    they do not consume an ``expect``.
    """
    if event.get("type") != "m.room.message" or event.get("sender") == me:
        return False
    content = event.get("content")
    if not isinstance(content, dict):
        return False
    msgtype = content.get("msgtype")
    # Over federation content is free-form JSON; an unhashable msgtype must not crash the sync.
    if not isinstance(msgtype, str) or msgtype not in REPLY_MSGTYPES:
        return False
    return not is_edit(event)


@dataclass(frozen=True)
class Mismatch:
    """Why a reply does not satisfy an expectation, in words and as a diff."""

    expected: str
    received: Message
    reason: str
    diff: str


def text_diff(expected: str, received: str) -> str:
    """A unified diff of two texts; for one-liners, a caret line under the first difference."""
    # Texts that differ only in line endings (YAML's 'expect: |' keeps a final newline)
    # have an empty line diff; the quoted form shows the difference.
    one_line = "\n" not in expected and "\n" not in received
    if one_line or expected.splitlines() == received.splitlines():
        at = next(
            (i for i, (a, b) in enumerate(zip(expected, received, strict=False)) if a != b),
            min(len(expected), len(received)),
        )
        return (
            f"- expected: {expected!r}\n+ received: {received!r}\n"
            f"  first difference at character {at + 1}"
        )
    lines = difflib.unified_diff(
        expected.splitlines(), received.splitlines(), "expected", "received", lineterm=""
    )
    return "\n".join(lines)


def match_body(expected: str, event: Event) -> Mismatch | None:
    """``expect: TEXT`` compares the reply's ``body`` exactly."""
    message = Message.from_event(event)
    if message.body == expected:
        return None
    return Mismatch(
        expected=expected,
        received=message,
        reason="the reply's body differs from the expected text",
        diff=text_diff(expected, message.body),
    )
