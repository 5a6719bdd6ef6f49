"""Turn a recorded conversation (Matrix events, in order) into a script in our language.

The pure half of ``matrix-bot-tester record``: no I/O, so it is tested on
recorded event JSON. Whatever someone other than the bot did becomes an
action (``send``, ``react``, ``edit``, ``redact``, ``send_event``); what the
bot did becomes the expectations of the step before it.

A recording is only worth keeping if it replays tomorrow, from another
account, in another room. So the parts that change between runs are not
written down as they were seen:

* user IDs of the people and of the bot become ``{me}`` and ``{bot}``, the
  room ID ``{room_id}``; event IDs become message names (``reply_to: NAME``,
  ``{NAME.event_id}``) or ``true`` for the step's own message;
* in the bot's text, timestamps, dates, times, UUIDs, long numbers and long
  hex strings, and the people's display names, become a ``regex`` with the
  fixed parts escaped, unless the person's own message of that step says the
  same (then the bot is echoing, and the text is stable).

Anything else stays exact: a recording should say what was seen, not guess.
What the language cannot replay (a file a person sent, a reply to a message
from before the recording) is left out with a note, shown as a comment in
the script and told to the user.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from matrix_bot_tester.language import DM, MEDIA_MSGTYPES, TEXT_MSGTYPES
from matrix_bot_tester.matching import (
    Event,
    apply_edit,
    edit_target,
    in_reply_to,
    strip_reply_fallback,
    thread_root,
)
from matrix_bot_tester.variables import BUILTINS

# Parts of a bot's text that differ from one run to the next, most specific first.
# Each pattern is also what the script's regex says in its place.
_VOLATILE: tuple[tuple[str, str], ...] = (
    # 2026-12-03T19:40:05.123Z, 2026-12-03 19:40, with or without zone
    (
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?",
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?",
    ),
    (
        r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
        r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}",
    ),
    (r"\d{4}-\d{2}-\d{2}", r"\d{4}-\d{2}-\d{2}"),  # a date
    (r"\d{1,2}[./]\d{1,2}[./]\d{2,4}", r"\d{1,2}[./]\d{1,2}[./]\d{2,4}"),  # 3.12.2026, 12/3/26
    (r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?", r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?"),  # a time
    # A long hex string (a hash, a random ID): letters and digits both, 16 at least.
    (r"(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{16,}", r"[0-9a-fA-F]+"),
    (r"\d{6,}", r"\d+"),  # a long number: a timestamp, a counter, an order number
)
_VOLATILE_RE = re.compile(
    "|".join(f"(?P<v{i}>(?<![\\w.]){pattern}(?![\\w]))" for i, (pattern, _) in enumerate(_VOLATILE))
)
# An event ID as it appears in text (room versions 3 and later: $ and 43 URL-safe base64).
_EVENT_ID_RE = re.compile(r"\$[A-Za-z0-9_+/=-]{20,}")
_REGEX_SPECIAL = re.compile(r"([.^$*+?()\[\]{}|\\])")
_NAME_WORD = re.compile(r"[a-z0-9]+")
_DISPLAY_NAME_MIN = 3  # shorter display names would turn ordinary words into regexes
_DISPLAY_NAME_PATTERN = ".+?"
# The actions whose step may carry a 'name' (the event the step sends).
_NAMEABLE = ("send", "react", "send_event")


def _escape_regex(text: str) -> str:
    """Escape what a regex would read as syntax; spaces and punctuation stay readable."""
    return _REGEX_SPECIAL.sub(r"\\\1", text)


def _escape_braces(text: str) -> str:
    """Literal text in a script: braces are placeholders there, ``{{``/``}}`` are braces."""
    return text.replace("{", "{{").replace("}", "}}")


class Regex(str):
    """A regex in the output: written in single quotes, as the docs advise."""


@dataclass
class RecordedStep:
    """One step of the script being written: plain data in the script language."""

    action: dict[str, Any] = field(default_factory=dict)  # e.g. {"send": "!ping"}
    name: str | None = None
    expect: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_data(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.action)
        if self.name is not None:
            data["name"] = self.name
        if self.expect:
            data["expect"] = self.expect[0] if len(self.expect) == 1 else list(self.expect)
        return data


@dataclass
class Recording:
    """A script made from a recording, and what could not be put into it."""

    room_to_connect: str
    steps: list[RecordedStep]
    notes: list[str]  # every note, in order (each also sits on its step)
    events: int  # how many events were considered

    def as_data(self) -> dict[str, Any]:
        return {
            "room_to_connect": self.room_to_connect,
            "messages": [step.as_data() for step in self.steps if step.action or step.expect],
        }


@dataclass(frozen=True)
class Participants:
    """Who was who in the recording."""

    me: str  # the recording account
    bot: str  # the bot under test: its events are the expectations
    room_id: str
    display_names: Mapping[str, str] = field(default_factory=dict)  # user ID -> display name


def _content(event: Event) -> dict[str, Any]:
    content = event.get("content")
    return content if isinstance(content, dict) else {}


def _redacts(event: Event) -> str | None:
    target = event.get("redacts") or _content(event).get("redacts")
    return target if isinstance(target, str) else None


class _Builder:
    """Walks the events once; run twice, because names are needed before they are known.

    The first walk learns which events later steps refer to; the second gives
    exactly those a name where they are sent or expected.
    """

    def __init__(self, events: Sequence[Event], who: Participants, wanted: set[str] | None) -> None:
        self.events = events
        self.who = who
        self.collecting = wanted is None
        self.wanted: set[str] = set() if wanted is None else wanted
        self.names: dict[str, str] = {}  # event ID -> name, once its step is written
        self.used_names: set[str] = set(BUILTINS)
        self.known: dict[str, Event] = {}  # every event seen so far, by ID
        self.final: dict[str, Event] = _final_versions(events, who.bot)
        # Everyone but the bot is the person the script's {me} replays, from the start.
        senders = {e.get("sender") for e in events}
        self.humans: set[str] = {who.me} | {
            s for s in senders if isinstance(s, str) and s != who.bot
        }
        self.steps: list[RecordedStep] = []
        self.notes: list[str] = []
        self.step: RecordedStep | None = None
        self.step_event: str | None = None  # the event the current step sent
        self.step_text = ""  # the text a person sent in this step: the bot may echo it
        self.pending_names: dict[str, str] = {}  # names given in the current step

    # ------------------------------------------------------------ the walk

    def build(self) -> list[RecordedStep]:
        for event in self.events:
            event_id = event.get("event_id")
            if "state_key" in event or not isinstance(event_id, str):
                continue
            if event.get("type") == "m.room.encrypted":
                # The tester has no keys, and a script cannot send encrypted events.
                self._note(
                    f"an encrypted event from {event.get('sender')} was left out (the tester"
                    " does not do end-to-end encryption: record in an unencrypted room)"
                )
                continue
            if event.get("sender") == self.who.bot:
                self._bot(event)
            else:
                self._human(event)
            self.known[event_id] = event
        self._close_step()
        return self.steps

    def _close_step(self) -> None:
        if self.step is not None:
            self.names.update(self.pending_names)
            self.steps.append(self.step)
        self.step, self.step_event, self.step_text, self.pending_names = None, None, "", {}

    def _new_step(self, action: dict[str, Any], event: Event, text: str = "") -> RecordedStep:
        self._close_step()
        self.step = RecordedStep(action=action)
        event_id: str = event["event_id"]
        self.step_event = event_id
        self.step_text = text
        if event_id in self.wanted and next(iter(action), None) in _NAMEABLE:
            self.step.name = self._name_for(event)
            self.pending_names[event_id] = self.step.name
        return self.step

    def _note(self, text: str) -> None:
        if self.step is None:
            self._close_step()
            self.step = RecordedStep()
        self.step.notes.append(text)
        self.notes.append(text)

    # ---------------------------------------------------------- references

    def _want(self, event_id: str | None) -> None:
        if self.collecting and event_id is not None:
            self.wanted.add(event_id)

    def _ref(self, event_id: str | None, *, own_ok: bool) -> str | bool | None:
        """How a step refers to ``event_id``: True (this step's message), a name, or None.

        ``own_ok``: the reference sits in this step's expectations, where
        ``true`` means the step's own message. Otherwise it is for the action
        of a step about to begin, for which the current step's names are
        earlier names.
        """
        if event_id is None:
            return None
        if (
            own_ok
            and event_id == self.step_event
            and self.step is not None
            and next(iter(self.step.action), None) in ("send", "send_event")
        ):
            return True
        name = self.names.get(event_id) or self.pending_names.get(event_id)
        if name is not None:
            return name
        if event_id in self.known:
            self._want(event_id)
        return None

    # ----------------------------------------------------------- the people

    def _human(self, event: Event) -> None:
        kind = event.get("type")
        content = _content(event)
        if kind == "m.room.message":
            target = edit_target(event)
            if target is not None:
                self._human_edit(event, target)
                return
            msgtype = content.get("msgtype")
            if msgtype in MEDIA_MSGTYPES:
                self._new_step({}, event)
                self._note(
                    f"a file was sent here ({msgtype} {content.get('body')!r}); to replay it,"
                    " add a step '- send: {file: PATH}' with the file beside the script"
                )
                return
            body = content.get("body")
            if not isinstance(body, str) or msgtype not in TEXT_MSGTYPES:
                self._new_step({}, event)
                self._note(f"a message with no text ({msgtype!r}) was left out")
                return
            if in_reply_to(event) is not None or "m.in_reply_to" in (
                content.get("m.relates_to") or {}
            ):
                body = strip_reply_fallback(body)
            self._human_send(event, body, content)
        elif kind == "m.reaction":
            relates = content.get("m.relates_to") or {}
            target, key = relates.get("event_id"), relates.get("key")
            name = self._ref(target, own_ok=False)
            if not isinstance(name, str) or not isinstance(key, str) or not key:
                self._want(target)
                self._new_step({}, event)
                self._note(f"a reaction ({key!r}) to a message from before the recording")
                return
            self._new_step({"react": {"to": name, "key": key}}, event)
        elif kind == "m.room.redaction":
            target = _redacts(event)
            name = self._ref(target, own_ok=False)
            if not isinstance(name, str):
                self._want(target)
                self._new_step({}, event)
                self._note("a redaction of a message from before the recording was left out")
                return
            reason = content.get("reason")
            action: dict[str, Any] = {"redact": name}
            if isinstance(reason, str) and reason:
                action = {"redact": {"message": name, "reason": self._send_text(reason)}}
            self._new_step(action, event)
        elif isinstance(kind, str):
            self._new_step(
                {"send_event": {"type": kind, "content": self._send_value(content)}}, event
            )

    def _human_send(self, event: Event, body: str, content: dict[str, Any]) -> None:
        message: dict[str, Any] = {}
        html = content.get("format") == "org.matrix.custom.html" and isinstance(
            content.get("formatted_body"), str
        )
        # A client sends Markdown as body (the source) plus its HTML: 'markdown' does the same.
        message["markdown" if html else "text"] = self._send_text(body)
        msgtype = content.get("msgtype")
        if msgtype != "m.text":
            message["msgtype"] = msgtype
        notes = []
        for key, target in (("reply_to", in_reply_to(event)), ("thread", thread_root(event))):
            if target is None:
                continue
            name = self._ref(target, own_ok=False)
            if isinstance(name, str):
                message[key] = name
            else:
                notes.append(f"'{key}' a message from before the recording was left out")
        mentions = (content.get("m.mentions") or {}).get("user_ids")
        if isinstance(mentions, list) and mentions:
            message["mentions"] = [self._send_text(m) for m in mentions if isinstance(m, str)]
        plain = set(message) == {"text"}
        self._new_step({"send": message["text"] if plain else message}, event, body)
        for note in notes:
            self._note(note)

    def _human_edit(self, event: Event, target: str) -> None:
        name = self._ref(target, own_ok=False)
        new = _content(event).get("m.new_content")
        body = new.get("body") if isinstance(new, dict) else None
        if not isinstance(name, str) or not isinstance(body, str):
            self._want(target)
            self._new_step({}, event)
            self._note("an edit of a message from before the recording was left out")
            return
        html = isinstance(new, dict) and isinstance(new.get("formatted_body"), str)
        edit = {"message": name, "markdown" if html else "text": self._send_text(body)}
        self._new_step({"edit": edit}, event, body)
        # After the edit the message's name still refers to it (same event ID).

    # -------------------------------------------------------------- the bot

    def _bot(self, event: Event) -> None:
        kind = event.get("type")
        content = _content(event)
        if self.step is None:
            self.step = RecordedStep()  # the bot spoke first: a step that only expects
        expectation: dict[str, Any]
        if kind == "m.room.message":
            if edit_target(event) is not None:
                if edit_target(event) not in self.known:
                    self._note("the bot edited a message from before the recording (left out)")
                return  # edits are folded into the message they change (_final_versions)
            expectation = self._bot_message(self.final.get(event["event_id"], event))
        elif kind == "m.reaction":
            relates = content.get("m.relates_to") or {}
            reaction: dict[str, Any] = {}
            if isinstance(relates.get("key"), str):
                reaction["key"] = relates["key"]
            to = self._ref(relates.get("event_id"), own_ok=True)
            if to is not None:
                reaction["to"] = to
            expectation = {"reaction": reaction}
        elif kind == "m.room.redaction":
            of = self._ref(_redacts(event), own_ok=True)
            expectation = {"redaction": {} if of is None else {"of": of}}
        elif isinstance(kind, str):
            expectation = {"type": kind}
        else:
            return
        event_id = event["event_id"]
        if event_id in self.wanted:
            name = self._name_for(event)
            expectation["name"] = name
            self.pending_names[event_id] = name
        if set(expectation) == {"body"} and isinstance(expectation["body"], str):
            self.step.expect.append(expectation["body"])  # a plain string: the body, exactly
        else:
            self.step.expect.append(expectation)

    def _bot_message(self, event: Event) -> dict[str, Any]:
        content = _content(event)
        expectation: dict[str, Any] = {}
        msgtype = content.get("msgtype")
        body = content.get("body")
        if msgtype in MEDIA_MSGTYPES:
            expectation["msgtype"] = msgtype
            info = content.get("info")
            mimetype = info.get("mimetype") if isinstance(info, dict) else None
            expectation["media"] = {"mimetype": mimetype} if isinstance(mimetype, str) else {}
        elif isinstance(body, str):
            if in_reply_to(event) is not None:
                body = strip_reply_fallback(body)
            expectation["body"] = self._expected_text(body)
            if msgtype == "m.emote":
                expectation["msgtype"] = msgtype
        else:
            expectation["type"] = "m.room.message"
            if msgtype is not None:
                expectation["msgtype"] = msgtype
        for key, target in (("reply_to", in_reply_to(event)), ("thread", thread_root(event))):
            ref = self._ref(target, own_ok=True)
            if ref is not None:
                expectation[key] = ref
        return expectation

    # ---------------------------------------------------------------- texts

    def _id_replacements(self) -> list[tuple[str, str]]:
        """Literal IDs and what the script says instead, longest first."""
        pairs = [(self.who.room_id, "{room_id}"), (self.who.bot, "{bot}")]
        pairs += [(human, "{me}") for human in self.humans]
        return sorted(pairs, key=lambda pair: -len(pair[0]))

    def _event_id_placeholder(self, event_id: str, *, bot: bool) -> str | None:
        """``{NAME.event_id}`` for a named event, where this text may use that name.

        The bot's text (an expectation) may use names of earlier steps and its
        own step's action; a person's text (the action of a step about to
        begin) also the names of the step before.
        """
        if bot:
            own = {self.step_event: self.step.name} if self.step and self.step.name else {}
            name = self.names.get(event_id) or own.get(event_id)
        else:
            name = self.names.get(event_id) or self.pending_names.get(event_id)
        if name is None:
            if event_id in self.known:
                self._want(event_id)
            return None
        return f"{{{name}.event_id}}"

    def _segments(self, text: str, *, volatile: bool) -> list[tuple[str, str]]:
        """``text`` cut into ("literal", s), ("placeholder", s) and ("regex", s) parts."""
        spans: list[tuple[int, int, str, str]] = []
        for literal, placeholder in self._id_replacements():
            for match in re.finditer(re.escape(literal), text):
                spans.append((match.start(), match.end(), "placeholder", placeholder))
        for match in _EVENT_ID_RE.finditer(text):
            named = self._event_id_placeholder(match.group(0), bot=volatile)
            if named is not None:
                spans.append((match.start(), match.end(), "placeholder", named))
        if volatile:
            for match in _VOLATILE_RE.finditer(text):
                if match.group(0) in self.step_text:
                    continue  # the person said it: the bot echoes, it is stable
                index = int((match.lastgroup or "v0")[1:])
                spans.append((match.start(), match.end(), "regex", _VOLATILE[index][1]))
            for user, display_name in self.who.display_names.items():
                if user == self.who.bot or len(display_name) < _DISPLAY_NAME_MIN:
                    continue
                if display_name in self.step_text:
                    continue
                for match in re.finditer(re.escape(display_name), text):
                    spans.append((match.start(), match.end(), "regex", _DISPLAY_NAME_PATTERN))
        spans.sort(key=lambda span: (span[0], -(span[1] - span[0])))
        parts: list[tuple[str, str]] = []
        position = 0
        for start, end, kind, value in spans:
            if start < position:
                continue  # overlaps an earlier, longer part
            if start > position:
                parts.append(("literal", text[position:start]))
            parts.append((kind, value))
            position = end
        if position < len(text):
            parts.append(("literal", text[position:]))
        return parts

    def _send_text(self, text: str) -> str:
        return "".join(
            _escape_braces(value) if kind == "literal" else value
            for kind, value in self._segments(text, volatile=False)
        )

    def _send_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._send_text(value)
        if isinstance(value, list):
            return [self._send_value(item) for item in value]
        if isinstance(value, dict):
            return {key: self._send_value(item) for key, item in value.items()}
        return value

    def _expected_text(self, text: str) -> Any:
        parts = self._segments(text, volatile=True)
        if all(kind != "regex" for kind, _ in parts):
            return "".join(
                _escape_braces(value) if kind == "literal" else value for kind, value in parts
            )
        # Placeholders stay as they are: a value filled into a regex is escaped at run time.
        return {
            "regex": Regex(
                "".join(
                    _escape_regex(value) if kind == "literal" else value for kind, value in parts
                )
            )
        }

    def _name_for(self, event: Event) -> str:
        """A readable, unique message name: the first words of its text (``!echo hi`` → echo_hi)."""
        body = _content(event).get("body")
        words = _NAME_WORD.findall(body.lower()) if isinstance(body, str) else []
        base = "_".join(words[:3])[:40] or "message"
        if base[0].isdigit():
            base = f"m_{base}"
        if event.get("type") == "m.reaction":
            base = "reaction"
        name, number = base, 2
        while name in self.used_names:
            name, number = f"{base}_{number}", number + 1
        self.used_names.add(name)
        return name


def _final_versions(events: Iterable[Event], bot: str) -> dict[str, Event]:
    """The bot's messages as a client shows them at the end: every edit applied, in order."""
    final: dict[str, Event] = {}
    for event in events:
        event_id = event.get("event_id")
        if event.get("sender") != bot or not isinstance(event_id, str):
            continue
        target = edit_target(event)
        if target is None:
            if event.get("type") == "m.room.message":
                final[event_id] = event
        elif target in final:
            final[target] = apply_edit(final[target], event)
    return final


def record(events: Sequence[Event], who: Participants, *, room_to_connect: str = DM) -> Recording:
    """The script for ``events`` (as the homeserver sent them, oldest first)."""
    first = _Builder(events, who, None)
    first.build()
    builder = _Builder(events, who, first.wanted)
    steps = builder.build()
    considered = sum(1 for e in events if "state_key" not in e)
    return Recording(room_to_connect, steps, builder.notes, considered)


# ------------------------------------------------------------------- writing


class _Dumper(yaml.SafeDumper):
    """Block YAML as a person writes it: lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_regex(dumper: yaml.SafeDumper, value: Regex) -> yaml.ScalarNode:
    style = "|" if "\n" in value else "'"
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style=style)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(Regex, _represent_regex)


def _dump(data: Any) -> str:
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )


def render(recording: Recording, header: Sequence[str] = ()) -> str:
    """The recording as a script file: header comments, then block YAML, notes as comments."""
    lines = [f"# {line}".rstrip() for line in header]
    lines.append(_dump({"room_to_connect": recording.room_to_connect}).rstrip("\n"))
    steps = [step for step in recording.steps if step.action or step.expect or step.notes]
    if not any(step.action or step.expect for step in steps):
        return "\n".join(lines) + "\n"
    lines.append("messages:")
    for step in steps:
        for note in step.notes:
            lines.append(f"  # note: {note}")
        if step.action or step.expect:
            dumped = _dump([step.as_data()]).rstrip("\n")
            lines.extend(f"  {line}" if line else line for line in dumped.split("\n"))
    return "\n".join(lines) + "\n"
