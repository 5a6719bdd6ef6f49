"""The script language: load a conversation file into typed, validated steps.

The format is the original tool's (``room_to_connect`` and ``messages`` of
``send``/``expect``), plus ``timeout`` at the top and on any step and
``wait_for_join``. Every mistake is reported with ``file:line:col`` before
anything is sent.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from matrix_bot_tester import yamlfile
from matrix_bot_tester.errors import InputError

DM = "!dm"
WAIT_FOR_MESSAGE = "!wait_for_message"
DEFAULT_STEP_TIMEOUT = 30.0

# Room IDs are '!opaque:server' up to room version 11 and '!<43-char hash>'
# from version 12 on; the length rule keeps a typo of '!dm' from passing.
_ROOM_ID = re.compile(r"^!([^:\s]+:\S+|[A-Za-z0-9_-]{40,})$")
_ALIAS = re.compile(r"^#[^:\s]+:\S+$")


class Role(enum.Enum):
    """Which side of the conversation we play, chosen by ``room_to_connect``."""

    CLIENT = "client"  # open a DM with the bot under test
    BOT = "bot"  # wait for an invite and answer whoever speaks first
    ROOM = "room"  # join a given room (ID or alias) and talk there


class _StepModel(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, strict=False)

    send: str | None = None
    expect: str | None = None
    # strict: YAML's 'true' would otherwise become a timeout of 1 s.
    timeout: float | None = Field(default=None, gt=0, le=86_400, strict=True)

    @model_validator(mode="after")
    def _has_something_to_do(self) -> _StepModel:
        if self.send is None and self.expect is None:
            raise PydanticCustomError(
                "empty_step",
                "a step needs 'send', 'expect', or both",
                {"hint": "write '- send: TEXT' or '- expect: TEXT'"},
            )
        return self


class _ScriptModel(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    room_to_connect: str = DM
    # strict: YAML's 'true' would otherwise become a timeout of 1 s.
    timeout: float | None = Field(default=None, gt=0, le=86_400, strict=True)
    wait_for_join: bool = True
    messages: list[_StepModel] = Field(min_length=1)

    @field_validator("room_to_connect")
    @classmethod
    def _known_room(cls, value: str) -> str:
        if value in (DM, WAIT_FOR_MESSAGE) or _ROOM_ID.match(value) or _ALIAS.match(value):
            return value
        raise PydanticCustomError(
            "bad_room",
            "room_to_connect must be '!dm', '!wait_for_message', a room ID or an alias",
            {"hint": "for example '!abcdef:example.org' or '#bots:example.org'"},
        )


@dataclass(frozen=True)
class Step:
    """One entry of ``messages``: send first (if any), then expect (if any)."""

    index: int  # 0-based position in ``messages``
    line: int  # 1-based line in the script file
    send: str | None
    expect: str | None
    timeout: float | None  # this step's own timeout, if it set one


@dataclass(frozen=True)
class Script:
    path: str
    name: str
    role: Role
    room: str | None  # the room ID or alias for Role.ROOM
    timeout: float | None
    wait_for_join: bool
    steps: tuple[Step, ...]

    def step_timeout(self, step: Step, override: float | None = None) -> float:
        """The deadline of one step: the step's own, else the command line's, else the script's."""
        if step.timeout is not None:
            return step.timeout
        if override is not None:
            return override
        if self.timeout is not None:
            return self.timeout
        return DEFAULT_STEP_TIMEOUT


def _script_name(path: str) -> str:
    name = Path(path).name
    for suffix in (".yaml", ".yml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _role_of(room_to_connect: str) -> tuple[Role, str | None]:
    if room_to_connect == DM:
        return Role.CLIENT, None
    if room_to_connect == WAIT_FOR_MESSAGE:
        return Role.BOT, None
    return Role.ROOM, room_to_connect


def _keep_words(doc: yamlfile.LocatedDocument, data: dict[str, Any]) -> None:
    """``expect: 12:30`` is the text "12:30", not YAML's base-60 number 750.

    Unquoted ``send``/``expect`` values that YAML reads as numbers or booleans
    (``1.50``, ``010``, ``yes``) go back to the words as written.
    """
    messages = data.get("messages")
    if not isinstance(messages, list):
        return
    for index, step in enumerate(messages):
        if not isinstance(step, dict):
            continue
        for key in ("send", "expect"):
            text = doc.texts.get(("messages", index, key))
            if text is not None and isinstance(step.get(key), int | float):
                step[key] = text


def from_document(doc: yamlfile.LocatedDocument) -> Script:
    data: Any = doc.data
    if data is None:
        raise doc.error("the script is empty", hint="add a 'messages:' list")
    if not isinstance(data, dict):
        raise doc.error(
            "a script must be a mapping with a 'messages' list",
            hint="start with 'messages:' on its own line",
        )
    _keep_words(doc, data)
    try:
        model = _ScriptModel.model_validate(data)
    except ValidationError as exc:
        raise yamlfile.validation_error(doc, exc) from None
    role, room = _role_of(model.room_to_connect)
    steps = []
    for index, step in enumerate(model.messages):
        pos = doc.position_of(("messages", index))
        steps.append(
            Step(
                index=index,
                line=pos.line if pos else 0,
                send=step.send,
                expect=step.expect,
                timeout=step.timeout,
            )
        )
    return Script(
        path=doc.path,
        name=_script_name(doc.path),
        role=role,
        room=room,
        timeout=model.timeout,
        wait_for_join=model.wait_for_join,
        steps=tuple(steps),
    )


def load_script(path: str | os.PathLike[str]) -> Script:
    """Load and validate a script file; raises InputError with file:line:col."""
    return from_document(yamlfile.load(path, "script"))


def parse_script(text: str, path: str = "<string>") -> Script:
    return from_document(yamlfile.parse(text, path))


__all__ = [
    "DEFAULT_STEP_TIMEOUT",
    "InputError",
    "Role",
    "Script",
    "Step",
    "load_script",
    "parse_script",
]
