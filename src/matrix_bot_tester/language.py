"""The script language as typed, validated values: steps, actions, expectations, matchers.

These pydantic models are the single source of truth for the format: the
loader validates files with them, the conversation runs them, and the JSON
Schema that editors use (``matrix-bot-tester schema``) is generated from them.
Every model forbids unknown keys, so a typo is an error with a line number.

A plain string stays valid wherever the original tool allowed one:
``send: TEXT`` sends text, ``expect: TEXT`` compares the reply's body exactly.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

Seconds = Annotated[float, Field(gt=0, le=86_400, strict=True)]
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]
TagName = Annotated[str, Field(pattern=TAG_PATTERN, max_length=64)]
# What each pattern asks for, for error messages (a regex is no answer to a typo).
PATTERN_WORDS = {
    NAME_PATTERN: "a name of letters, digits and _ that does not start with a digit",
    TAG_PATTERN: "a tag of letters, digits, _, . and - that starts with a letter, digit or _",
}

DM = "!dm"
WAIT_FOR_MESSAGE = "!wait_for_message"
# Room IDs are '!opaque:server' up to room version 11 and '!<43-char hash>'
# from version 12 on; the length rule keeps a typo of '!dm' from passing.
_ROOM_ID = re.compile(r"^!([^:\s]+:\S+|[A-Za-z0-9_-]{40,})$")
_ALIAS = re.compile(r"^#[^:\s]+:\S+$")

MEDIA_MSGTYPES = ("m.image", "m.file", "m.audio", "m.video")
TEXT_MSGTYPES = ("m.text", "m.notice", "m.emote")


class _Model(BaseModel):
    # Built when first used: loading a script validates the whole file with one
    # model, and the nested ones need no validator of their own to be part of it.
    # Each tester start is the faster for it.
    model_config = ConfigDict(
        extra="forbid", frozen=True, coerce_numbers_to_str=True, defer_build=True
    )


def _shape_of(value: Any) -> str:
    """Route a value to the union member of its YAML shape, so errors speak of that member.

    A model instance is a mapping too: serialising (``model_dump``) routes values, not YAML.
    """
    if isinstance(value, dict | BaseModel):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return "text"


def _exactly_one(model: BaseModel, keys: tuple[str, ...], what: str) -> None:
    given = [key for key in keys if getattr(model, key) is not None]
    if len(given) != 1:
        options = ", ".join(f"'{k}'" for k in keys)
        raise PydanticCustomError(
            "exactly_one",
            "{what} needs exactly one of {options}{got}",
            {
                "what": what,
                "options": options,
                "got": f" (got {', '.join(given)})" if given else "",
                "hint": f"write one of {options}",
            },
        )


# ---------------------------------------------------------------- matching text


class TextMatch(_Model):
    """How a text must look: one of exact, contains, regex (full match), one_of."""

    exact: str | None = None
    contains: str | None = None
    regex: str | None = Field(
        default=None, description="a full match; named groups are saved as variables"
    )
    one_of: list[str] | None = Field(default=None, min_length=1)
    ignore_case: bool = False
    normalize_whitespace: bool = Field(
        default=False, description="runs of white space count as one space; ends are trimmed"
    )

    @model_validator(mode="after")
    def _one_mode(self) -> TextMatch:
        _exactly_one(self, ("exact", "contains", "regex", "one_of"), "a text match")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except (re.error, OverflowError, RecursionError) as exc:  # a{9999999999}, ((((...
                raise PydanticCustomError(
                    "bad_regex",
                    "the regex does not compile: {error}",
                    {"error": str(exc), "hint": "check brackets and escapes (YAML needs \\\\)"},
                ) from None
        return self

    def group_names(self) -> list[str]:
        return list(re.compile(self.regex).groupindex) if self.regex else []


TextSpec = Annotated[
    Union[Annotated[str, Tag("text")], Annotated[TextMatch, Tag("mapping")]],  # noqa: UP007
    Discriminator(_shape_of),
]
"""A plain string is an exact match."""


def as_text_match(spec: TextSpec) -> TextMatch:
    return spec if isinstance(spec, TextMatch) else TextMatch(exact=spec)


# ---------------------------------------------------------------- expectations

Target = str | bool
"""A named message, or ``true`` for the message this step sent."""


class ReactionExpectation(_Model):
    key: TextSpec | None = None
    to: Target | None = None


class RedactionExpectation(_Model):
    of: Target | None = None


class MediaExpectation(_Model):
    mimetype: TextSpec | None = None
    filename: TextSpec | None = None
    size: int | None = Field(default=None, ge=0)
    downloadable: bool = Field(default=False, description="the content URL can be downloaded")


FieldValue = TextSpec | int | float | bool | None


class Expectation(_Model):
    """What one incoming event must be. Every key given must hold."""

    body: TextSpec | None = Field(default=None, description="content.body, reply fallback removed")
    text: TextSpec | None = Field(
        default=None, description="the plain text a person reads (HTML rendered, else body)"
    )
    html: TextSpec | None = Field(
        default=None, description="content.formatted_body, markup normalised"
    )
    msgtype: str | list[str] | None = None
    type: str | None = Field(default=None, description="event type; default m.room.message")
    sender: str | None = None
    reply_to: Target | None = Field(default=None, description="m.in_reply_to this message")
    thread: Target | None = Field(default=None, description="in the thread of this message")
    mentions: str | list[str] | None = Field(default=None, description="user IDs mentioned")
    reaction: ReactionExpectation | None = None
    redaction: RedactionExpectation | None = None
    media: MediaExpectation | None = None
    fields: dict[str, FieldValue] | None = Field(
        default=None, description="dotted paths into the raw event, e.g. content.m.relates_to"
    )
    name: Name | None = Field(default=None, description="name the matching event for later steps")
    save: dict[Name, str] | None = Field(
        default=None, description="variable: dotted path into the event, e.g. content.body"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Expectation:
        kinds = [k for k in ("reaction", "redaction", "media") if getattr(self, k) is not None]
        if len(kinds) > 1:
            raise PydanticCustomError(
                "conflicting_kinds",
                "an expectation can be a reaction, a redaction or a media message, not {kinds}",
                {"kinds": " and ".join(kinds)},
            )
        return self

    @property
    def event_type(self) -> str:
        if self.type is not None:
            return self.type
        if self.reaction is not None:
            return "m.reaction"
        if self.redaction is not None:
            return "m.room.redaction"
        return "m.room.message"


ExpectSpec = Annotated[
    Union[Annotated[str, Tag("text")], Annotated[Expectation, Tag("mapping")]],  # noqa: UP007
    Discriminator(_shape_of),
]
"""A plain string expects a message whose body is exactly that."""

ExpectOneOrMany = Annotated[
    Union[  # noqa: UP007
        Annotated[str, Tag("text")],
        Annotated[Expectation, Tag("mapping")],
        Annotated[list[ExpectSpec], Tag("list")],
    ],
    Discriminator(_shape_of),
]


def as_expectation(spec: ExpectSpec) -> Expectation:
    return spec if isinstance(spec, Expectation) else Expectation(body=spec)


# --------------------------------------------------------------------- actions


class SendMessage(_Model):
    """A message to send: text, Markdown, HTML or a file, as a reply, in a thread."""

    text: str | None = None
    markdown: str | None = Field(default=None, description="rendered to HTML; body is the source")
    html: str | None = Field(default=None, description="formatted_body; body is its plain text")
    file: str | None = Field(default=None, description="a path relative to the script")
    msgtype: str | None = Field(
        default=None, description="m.text (default), m.notice, m.emote; for files, from the type"
    )
    filename: str | None = None
    mimetype: str | None = None
    reply_to: Name | None = None
    thread: Name | None = Field(default=None, description="the thread's root message")
    mentions: list[str] | None = None

    @model_validator(mode="after")
    def _one_content(self) -> SendMessage:
        _exactly_one(self, ("text", "markdown", "html", "file"), "send")
        allowed = MEDIA_MSGTYPES if self.file is not None else TEXT_MSGTYPES
        if self.msgtype is not None and self.msgtype not in allowed:
            raise PydanticCustomError(
                "bad_msgtype",
                "msgtype {msgtype} does not fit this message; use one of {allowed}",
                {"msgtype": self.msgtype, "allowed": ", ".join(allowed)},
            )
        return self


class React(_Model):
    to: Name
    key: str = Field(min_length=1)


class Edit(_Model):
    message: Name
    text: str | None = None
    markdown: str | None = None
    html: str | None = None

    @model_validator(mode="after")
    def _one_content(self) -> Edit:
        _exactly_one(self, ("text", "markdown", "html"), "edit")
        return self


class Redact(_Model):
    message: Name
    reason: str | None = None


class RawEvent(_Model):
    type: str = Field(min_length=1)
    content: dict[str, Any] = Field(default_factory=dict)


SendSpec = Annotated[
    Union[Annotated[str, Tag("text")], Annotated[SendMessage, Tag("mapping")]],  # noqa: UP007
    Discriminator(_shape_of),
]
RedactSpec = Annotated[
    Union[Annotated[Name, Tag("text")], Annotated[Redact, Tag("mapping")]],  # noqa: UP007
    Discriminator(_shape_of),
]

ACTIONS = ("send", "react", "edit", "redact", "typing", "read_receipt", "send_event", "wait")
EXPECTATIONS = ("expect", "expect_unordered", "expect_count", "expect_no_reply")


class Step(_Model):
    """One entry of ``messages``: at most one action, then at most one kind of expectation."""

    # actions
    send: SendSpec | None = None
    react: React | None = None
    edit: Edit | None = None
    redact: RedactSpec | None = None
    typing: bool | Seconds | None = Field(
        default=None, description="true/false, or seconds to show typing"
    )
    read_receipt: Name | None = Field(default=None, description="mark this message as read")
    send_event: RawEvent | None = None
    wait: Seconds | None = Field(default=None, description="pause for this long")
    name: Name | None = Field(default=None, description="name the event this step sends")
    # expectations
    expect: ExpectOneOrMany | None = None
    expect_unordered: list[ExpectSpec] | None = Field(default=None, min_length=1)
    expect_count: int | None = Field(default=None, ge=1, le=1000, strict=True)
    expect_no_reply: Seconds | None = Field(
        default=None, description="pass only if nothing arrives for this long"
    )
    ignore: list[ExpectSpec] | None = Field(default=None, description="noise to skip in this step")
    within: Seconds | None = Field(default=None, description="the reply must come this fast")
    settle: Seconds | None = Field(default=None, description="then nothing more for this long")
    timeout: Seconds | None = None

    @field_validator("expect", mode="before")
    @classmethod
    def _not_empty_list(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise PydanticCustomError("empty_expect", "an empty list expects nothing")
        return value

    @model_validator(mode="after")
    def _shape(self) -> Step:
        actions = [key for key in ACTIONS if getattr(self, key) is not None]
        expectations = [key for key in EXPECTATIONS if getattr(self, key) is not None]
        if not actions and not expectations:
            raise PydanticCustomError(
                "empty_step",
                "a step needs an action ('send', 'react', ...) or an expectation ('expect', ...)",
                {"hint": "write '- send: TEXT' or '- expect: TEXT'"},
            )
        if len(actions) > 1:
            raise PydanticCustomError(
                "two_actions",
                "a step does one thing; split {actions} into separate steps",
                {"actions": " and ".join(actions)},
            )
        if len(expectations) > 1:
            raise PydanticCustomError(
                "two_expectations",
                "a step has one kind of expectation; split {kinds} into separate steps",
                {"kinds": " and ".join(expectations)},
            )
        if self.name is not None and not set(actions) & {"send", "react", "edit", "send_event"}:
            raise PydanticCustomError(
                "name_without_event",
                "'name' names the event a step sends; this step sends none",
                {"hint": "to name a received message, put 'name' inside 'expect'"},
            )
        if (self.within or self.settle or self.ignore) and not expectations:
            raise PydanticCustomError(
                "modifier_without_expectation",
                "'within', 'settle' and 'ignore' apply to an expectation in the same step",
            )
        return self

    @property
    def action(self) -> str | None:
        return next((key for key in ACTIONS if getattr(self, key) is not None), None)

    def expectations(self) -> list[Expectation]:
        """The expectations of ``expect`` or ``expect_unordered``, as mappings."""
        if self.expect is not None:
            specs = self.expect if isinstance(self.expect, list) else [self.expect]
        else:
            specs = self.expect_unordered or []
        return [as_expectation(spec) for spec in specs]


class Include(_Model):
    """``- include: fragment.yaml``: the fragment's steps, in place."""

    include: str = Field(min_length=1)


def _step_or_include(value: Any) -> str:
    if isinstance(value, BaseModel):
        return "include" if isinstance(value, Include) else "step"
    return "include" if isinstance(value, dict) and "include" in value else "step"


StepOrInclude = Annotated[
    Union[Annotated[Include, Tag("include")], Annotated[Step, Tag("step")]],  # noqa: UP007
    Discriminator(_step_or_include),
]


class ScriptFile(_Model):
    """A whole script file."""

    room_to_connect: str = Field(
        default="!dm",
        description="'!dm' (client role), '!wait_for_message' (mock bot), a room ID or alias",
    )
    timeout: Seconds | None = Field(default=None, description="seconds per step (default 30)")
    wait_for_join: bool = True
    cleanup: bool | None = Field(
        default=None,
        description="leave and forget the room this script created or joined when it ends"
        " (true), or keep it (false); default: --cleanup (leave after a pass)",
    )
    ignore: list[ExpectSpec] | None = Field(default=None, description="noise to skip in every step")
    tags: list[TagName] = Field(
        default_factory=list, description="names to select scripts by (run -m TAG)"
    )
    alone: bool = Field(
        default=False,
        description="run this script by itself, after the conversations run concurrently",
    )
    messages: list[StepOrInclude] = Field(min_length=1)

    @field_validator("room_to_connect")
    @classmethod
    def _known_room(cls, value: str) -> str:
        if value in (DM, WAIT_FOR_MESSAGE) or _ROOM_ID.match(value) or _ALIAS.match(value):
            return value
        raise PydanticCustomError(
            "bad_room",
            "must be '!dm', '!wait_for_message', a room ID or an alias",
            {"hint": "for example '!abcdef:example.org' or '#bots:example.org'"},
        )


class FragmentFile(_Model):
    """A file meant for ``include``: just steps."""

    messages: list[StepOrInclude] = Field(min_length=1)


Role = Literal["client", "bot", "room"]
