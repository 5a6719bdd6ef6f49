"""Load a script file into a ``Script``: validated steps, includes expanded, names checked.

The language itself (what a step may say) is in ``language.py``; this room
reads files: YAML with positions, ``${ENV}`` from the environment, ``include``
of fragments (cycles are errors), and a static check that every
``{placeholder}`` and every message name is defined by an earlier step. All
of it happens before anything is sent, and every mistake names
``file:line:col``.
"""

from __future__ import annotations

import enum
import json
import os
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from matrix_bot_tester import yamlfile
from matrix_bot_tester.account import ACCOUNT_KEYS
from matrix_bot_tester.compose import edit_content, message_content
from matrix_bot_tester.errors import InputError
from matrix_bot_tester.language import (
    DM,
    PATTERN_WORDS,
    WAIT_FOR_MESSAGE,
    Expectation,
    ExpectSpec,
    FragmentFile,
    Include,
    ScriptFile,
    SendMessage,
    Step,
    TextMatch,
    as_expectation,
)
from matrix_bot_tester.variables import (
    BUILTINS,
    children,
    has_braces,
    placeholders,
    strings_in,
)

DEFAULT_STEP_TIMEOUT = 30.0
# The step keys filled in after the step's action (see Conversation._run_step).
EXPECTATION_KEYS = frozenset({"expect", "expect_unordered", "ignore"})
MAX_INCLUDE_DEPTH = 20
# The spec: "The complete event MUST NOT be larger than 65536 bytes" (canonical JSON,
# UTF-8). The content a step writes must leave room for what the server adds
# around it (sender, room, IDs, hashes, signatures, a few kilobytes at most),
# so a step's content is limited to 60,000 bytes as JSON. Placeholders filled in
# at run time may still grow it; the server then refuses it mid-run.
MAX_CONTENT_BYTES = 60_000

_ACCOUNT_HINT = (
    "this looks like an account file, not a script: a script has a 'messages' list of steps;"
    " give an account file with --account"
)
_SCRIPT_FILE = yamlfile.FileKind(
    reference="docs/script-language.md",
    foreign_keys={key: _ACCOUNT_HINT for key in ACCOUNT_KEYS},
    patterns=PATTERN_WORDS,
)


class Role(enum.Enum):
    """Which side of the conversation we play, chosen by ``room_to_connect``."""

    CLIENT = "client"  # open a DM with the bot under test
    BOT = "bot"  # wait for an invite and answer whoever speaks first
    ROOM = "room"  # join a given room (ID or alias) and talk there


@dataclass(frozen=True)
class PlacedStep:
    """A step and where it was written (an included step keeps its fragment's file)."""

    index: int  # 0-based position in the expanded list of steps
    path: str
    position: int  # 0-based position in its own file's 'messages'
    line: int
    spec: Step

    @property
    def send(self) -> str | SendMessage | None:
        return self.spec.send

    @cached_property
    def templated(self) -> bool:
        """Whether the step has placeholders (or escaped braces) to fill in at run time.

        Most steps have none: they skip the walk through every field at each run.
        """
        return has_braces(self.spec)

    @cached_property
    def action_spec(self) -> Step:
        """The step without its expectations: the part filled in before the action.

        The expectations are filled in after it, so that they may refer to what
        this very step sent (``{NAME.event_id}`` of its own name).
        """
        return self.spec.model_copy(
            update={"expect": None, "expect_unordered": None, "ignore": None}
        )

    @cached_property
    def expectations(self) -> list[Expectation]:
        """``spec.expectations()``, made once: for a step without placeholders it is
        the same at every run of it."""
        return self.spec.expectations()

    @property
    def expect(self) -> ExpectSpec | list[ExpectSpec] | None:
        return self.spec.expect

    @property
    def timeout(self) -> float | None:
        return self.spec.timeout


@dataclass(frozen=True)
class Script:
    path: str
    name: str
    role: Role
    room: str | None  # the room ID or alias for Role.ROOM
    timeout: float | None
    wait_for_join: bool
    ignore: tuple[Expectation, ...]
    steps: tuple[PlacedStep, ...]
    cleanup: bool | None = None  # None: as the command line says
    tags: tuple[str, ...] = ()  # for run -m
    alone: bool = False  # run by itself, not beside other conversations

    @property
    def directory(self) -> Path:
        return Path(self.path).parent

    def step_timeout(self, step: PlacedStep, override: float | None = None) -> float:
        """The deadline of one step: the step's own, else the command line's, else the script's."""
        if step.timeout is not None:
            return step.timeout
        if override is not None:
            return override
        if self.timeout is not None:
            return self.timeout
        return DEFAULT_STEP_TIMEOUT


def _script_name(path: str) -> str:
    """``ping.convo.yaml`` and ``ping.yaml`` are both called ``ping``."""
    name = Path(path).name
    for suffix in (".yaml", ".yml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name.removesuffix(".convo") or name


def _role_of(room_to_connect: str) -> tuple[Role, str | None]:
    if room_to_connect == DM:
        return Role.CLIENT, None
    if room_to_connect == WAIT_FOR_MESSAGE:
        return Role.BOT, None
    return Role.ROOM, room_to_connect


def _keep_words(doc: yamlfile.LocatedDocument, data: dict[str, Any]) -> None:
    """``expect: 12:30`` is the text "12:30", not YAML's base-60 number 750.

    Unquoted ``send``/``expect`` values that YAML reads as numbers, booleans
    or dates (``1.50``, ``010``, ``yes``, ``2024-01-01``) go back to the words
    as written. A key with no value is an error rather than a silent absence.
    """
    messages = data.get("messages")
    if not isinstance(messages, list):
        return
    for index, step in enumerate(messages):
        if not isinstance(step, dict):
            continue
        for key, value in step.items():
            if value is None:
                # 'expect:' with nothing after it would silently mean "expect nothing".
                raise doc.error(
                    f"{key!r} has no value",
                    ("messages", index, key),
                    hint='write the value, or "" for an empty text',
                )
        _words_back(doc, step, ("messages", index))


# Keys whose values are always text, wherever they appear in a step.
_TEXT_KEYS = frozenset(
    {
        "send",
        "expect",
        "text",
        "markdown",
        "html",
        "body",
        "exact",
        "contains",
        "regex",
        "one_of",
        "key",
        "reason",
        "expect_unordered",
        "ignore",
    }
)


def _words_back(doc: yamlfile.LocatedDocument, value: Any, loc: yamlfile.PathKey) -> None:
    """Put back the written words of unquoted scalars under text keys, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            child = (*loc, key)
            if key in _TEXT_KEYS:
                _restore(doc, value, key, item, child)
            _words_back(doc, value[key], child)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            _words_back(doc, item, (*loc, position))


def _restore(doc: yamlfile.LocatedDocument, owner: Any, slot: Any, item: Any, loc: Any) -> None:
    if isinstance(item, int | float | bool | date):
        text = doc.texts.get(loc)
        if text is not None:
            owner[slot] = text
    elif isinstance(item, list):
        for position, element in enumerate(item):
            _restore(doc, item, position, element, (*loc, position))


def _validated(doc: yamlfile.LocatedDocument, model: type[BaseModel], what: str) -> Any:
    data: Any = doc.data
    if data is None:
        raise doc.error(f"the {what} is empty", hint="add a 'messages:' list")
    if not isinstance(data, dict):
        raise doc.error(
            f"a {what} must be a mapping with a 'messages' list",
            hint="start with 'messages:' on its own line",
        )
    data = yamlfile.expand_env(doc, data)
    _keep_words(doc, data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise yamlfile.validation_error(doc, exc, _SCRIPT_FILE) from None


@dataclass
class _Expander:
    """Flattens includes into one list of placed steps, refusing cycles."""

    steps: list[PlacedStep]

    def add(
        self, doc: yamlfile.LocatedDocument, entries: list[Include | Step], chain: tuple[Path, ...]
    ) -> None:
        for position, entry in enumerate(entries):
            loc = ("messages", position)
            pos = doc.position_of(loc)
            line = pos.line if pos else 0
            if isinstance(entry, Step):
                self.steps.append(PlacedStep(len(self.steps), doc.path, position, line, entry))
                continue
            try:
                target = (Path(doc.path).parent / entry.include).resolve()
            except (OSError, ValueError, RuntimeError):  # a NUL byte, a symlink loop
                raise doc.error(
                    f"included file {entry.include!r} cannot be opened", (*loc, "include")
                ) from None
            if target in chain:
                cycle = " -> ".join(p.name for p in (*chain, target))
                raise doc.error(
                    f"include cycle: {cycle}",
                    (*loc, "include"),
                    hint="a fragment must not include itself, directly or not",
                )
            if len(chain) > MAX_INCLUDE_DEPTH:
                raise doc.error("includes nested too deeply", (*loc, "include"))
            if target.is_dir():
                raise doc.error(
                    f"included file {entry.include!r} is a folder",
                    (*loc, "include"),
                    hint="include a script fragment file (a .yaml file with 'messages:')",
                )
            if not target.is_file():
                raise doc.error(
                    f"included file {entry.include!r} not found",
                    (*loc, "include"),
                    hint=f"the path is relative to {Path(doc.path).parent or '.'}",
                )
            fragment_doc = yamlfile.load(target, "included file")
            fragment: FragmentFile = _validated(fragment_doc, FragmentFile, "fragment")
            self.add(fragment_doc, fragment.messages, (*chain, target))


class _Checker:
    """The static check: names and placeholders must be defined before they are used."""

    def __init__(self, docs: dict[str, yamlfile.LocatedDocument]) -> None:
        self.docs = docs
        self.values: set[str] = set(BUILTINS)
        self.names: set[str] = set()

    def _fail(self, step: PlacedStep, key: str, message: str, hint: str) -> InputError:
        doc = self.docs.get(step.path)
        pos = doc.position_of(("messages", step.position, key), prefer_key=True) if doc else None
        return InputError(
            message,
            path=step.path,
            line=pos.line if pos else step.line,
            column=pos.column if pos else None,
            hint=hint,
        )

    def _name_used(
        self, step: PlacedStep, key: str, name: str | bool | None, own: set[str]
    ) -> None:
        if isinstance(name, str) and name not in self.names and name not in own:
            raise self._fail(
                step,
                key,
                f"{key}: no earlier step names a message {name!r}",
                "give the message a 'name' in the step that sends or expects it",
            )

    def check(self, step: PlacedStep) -> None:
        spec = step.spec
        for key, value in spec.__dict__.items():  # the step's fields
            if value is None or key == "name":
                continue
            # Expectations are filled in after the step's action: they may use its name.
            own_name = {spec.name} if spec.name and key in EXPECTATION_KEYS else set()
            for text in strings_in(value):
                for name, wants_id in placeholders(text):
                    known = (self.names | own_name) if wants_id else self.values
                    if name not in known:
                        what = f"{{{name}.event_id}}" if wants_id else f"{{{name}}}"
                        raise self._fail(
                            step,
                            key,
                            f"{key}: {what} is not defined by an earlier step",
                            "built-ins are {me}, {bot}, {room_id}, {run_id}; write {{ and }}"
                            " for literal braces",
                        )
        send = spec.send
        if isinstance(send, SendMessage):
            self._name_used(step, "send", send.reply_to, set())
            self._name_used(step, "send", send.thread, set())
        if spec.react is not None:
            self._name_used(step, "react", spec.react.to, set())
        if spec.edit is not None:
            self._name_used(step, "edit", spec.edit.message, set())
        if spec.redact is not None:
            target = spec.redact if isinstance(spec.redact, str) else spec.redact.message
            self._name_used(step, "redact", target, set())
        self._name_used(step, "read_receipt", spec.read_receipt, set())
        own = {spec.name} if spec.name else set()
        key = next(
            (k for k in ("expect", "expect_unordered") if getattr(spec, k) is not None), "expect"
        )
        sends = spec.action in ("send", "react", "edit", "redact", "send_event")
        for expectation in step.expectations:
            refers: list[str | bool | None] = [expectation.reply_to, expectation.thread]
            if expectation.reaction is not None:
                refers.append(expectation.reaction.to)
            if expectation.redaction is not None:
                refers.append(expectation.redaction.of)
            for refers_to in refers:
                self._name_used(step, key, refers_to, own)
                if refers_to is True and not sends:
                    raise self._fail(
                        step,
                        key,
                        f"{key}: 'true' means this step's message, but it sends none",
                        "name the message instead, or add the send to this step",
                    )
            # A later item of the same list may refer to an earlier one.
            if expectation.name:
                own.add(expectation.name)
        self._define(step)

    def _define(self, step: PlacedStep) -> None:
        if step.spec.name:
            self.names.add(step.spec.name)
        for expectation in step.expectations:
            if expectation.name:
                self.names.add(expectation.name)
            self.values.update(expectation.save or {})
            for matcher in _text_matches(expectation):
                self.values.update(matcher.group_names())


def _text_matches(value: Any) -> list[TextMatch]:
    """Every TextMatch inside an expectation (for the regex groups it will save)."""
    if isinstance(value, TextMatch):
        return [value]
    found: list[TextMatch] = []
    for item in children(value):
        if item is not None and type(item) is not str:
            found.extend(_text_matches(item))
    return found


def _check_files(step: PlacedStep, checker: _Checker) -> None:
    send = step.spec.send
    if isinstance(send, SendMessage) and send.file is not None:
        target = Path(step.path).parent / send.file
        if not target.is_file():
            raise checker._fail(
                step,
                "send",
                f"send: file {send.file!r} not found",
                f"the path is relative to {Path(step.path).parent}",
            )


def _content_of(spec: Step) -> dict[str, Any] | None:
    """The event content a step's action will send, as far as the script alone decides it.

    Built by ``compose`` as the run will build it (Markdown rendered, HTML given
    a plain body, an edit's text twice): the size check measures what is sent.
    Event IDs of replies and threads are unknown yet; they are small.
    """
    send = spec.send
    if isinstance(send, str):
        return message_content(send, {})
    if isinstance(send, SendMessage) and send.file is None:
        return message_content(send.model_copy(update={"reply_to": None, "thread": None}), {})
    if spec.edit is not None:
        return edit_content(spec.edit, {spec.edit.message: {}})
    if spec.send_event is not None:
        return spec.send_event.content
    return None


def _check_size(step: PlacedStep, checker: _Checker) -> None:
    content = _content_of(step.spec)
    if content is None:
        return
    size = len(json.dumps(content, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if size > MAX_CONTENT_BYTES:
        key = step.spec.action or "send"
        raise checker._fail(
            step,
            key,
            f"{key}: this message is {size:,} bytes as JSON; a step may send at most"
            f" {MAX_CONTENT_BYTES:,} (Matrix refuses events over 65,536 bytes)",
            "split the text over several steps",
        )


def _check_script_ignore(doc: yamlfile.LocatedDocument, model: ScriptFile) -> None:
    """The script's ``ignore`` holds from the first step on, where only built-ins have values."""
    for index, rule in enumerate(model.ignore or []):
        for text in strings_in(rule):
            for name, wants_id in placeholders(text):
                if wants_id or name not in BUILTINS:
                    what = f"{{{name}.event_id}}" if wants_id else f"{{{name}}}"
                    raise doc.error(
                        f"ignore: {what} has no value before the first step",
                        ("ignore", index),
                        hint="the script's 'ignore' may use {me}, {bot}, {room_id}, {run_id};"
                        " write {{ and }} for literal braces",
                    )


def from_document(doc: yamlfile.LocatedDocument) -> Script:
    model: ScriptFile = _validated(doc, ScriptFile, "script")
    expander = _Expander([])
    expander.add(doc, model.messages, (Path(doc.path).resolve(),))
    docs = {doc.path: doc}
    for placed in expander.steps:
        if placed.path not in docs:
            docs[placed.path] = yamlfile.load(placed.path, "included file")
    checker = _Checker(docs)
    _check_script_ignore(doc, model)
    for placed in expander.steps:
        checker.check(placed)
        _check_files(placed, checker)
        _check_size(placed, checker)
    role, room = _role_of(model.room_to_connect)
    return Script(
        path=doc.path,
        name=_script_name(doc.path),
        role=role,
        room=room,
        timeout=model.timeout,
        wait_for_join=model.wait_for_join,
        ignore=tuple(as_expectation(spec) for spec in model.ignore or []),
        steps=tuple(expander.steps),
        cleanup=model.cleanup,
        tags=tuple(model.tags),
        alone=model.alone,
    )


def load_script(path: str | os.PathLike[str]) -> Script:
    """Load and validate a script file; raises InputError with file:line:col."""
    return from_document(yamlfile.load(path, "script"))


def parse_script(text: str, path: str = "<string>") -> Script:
    return from_document(yamlfile.parse(text, path))


__all__ = [
    "DEFAULT_STEP_TIMEOUT",
    "InputError",
    "PlacedStep",
    "Role",
    "Script",
    "load_script",
    "parse_script",
]
