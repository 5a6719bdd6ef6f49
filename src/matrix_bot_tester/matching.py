"""Pure matching: is this event a reply, and does it satisfy an expectation?

No I/O here: everything works on the raw event JSON (a dict), so it can be
tested in milliseconds with recorded events. The conversation decides which
events to look at and when; this module only answers "does this event fit
this expectation, and if not, why not".

Scripts are written against what a person reads in a Matrix client, so text
is compared after the client-side clean-ups a person never sees: reply
fallbacks are stripped, HTML is normalised or rendered to plain text.
"""

from __future__ import annotations

import copy
import difflib
import enum
import html as htmllib
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Final, Literal

from matrix_bot_tester.language import (
    MEDIA_MSGTYPES,
    Expectation,
    TextMatch,
    as_text_match,
)

# Bots conventionally answer with m.notice; the original tool heard only m.text.
REPLY_MSGTYPES = frozenset({"m.text", "m.notice", "m.emote"})

HTML_FORMAT = "org.matrix.custom.html"

Event = dict[str, Any]

TextSpecValue = str | TextMatch
"""What ``language.TextSpec`` validates to, spelled so that a type checker understands it."""


class _Missing(enum.Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing.MISSING
"""What :func:`get_path` returns for a path that is not in the event (``None`` is JSON null)."""


@dataclass(frozen=True)
class Message:
    """The facts of a message event that a person reads and a report shows."""

    event_id: str
    sender: str
    msgtype: str
    body: str
    timestamp_ms: int
    type: str = "m.room.message"
    # The whole content, for the JSON report (what exactly was sent or received);
    # the fields above are what people read.
    content: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

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
            type=str(event.get("type", "")),
            content=dict(content) if isinstance(content, dict) else {},
        )


# ------------------------------------------------------------ reading events


def _content(event: Event) -> dict[str, Any]:
    """The event's content, or an empty one: over federation content is free-form JSON."""
    content = event.get("content")
    return content if isinstance(content, dict) else {}


def _relates_to(event: Event) -> dict[str, Any]:
    relates = _content(event).get("m.relates_to")
    return relates if isinstance(relates, dict) else {}


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


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


def is_counted(event: Event, me: str) -> bool:
    """Whether the conversation considers ``event`` at all.

    State events (membership, room name, ...) arrive in the timeline too, but
    they are the room's bookkeeping rather than anything a bot says; our own
    events come back through sync and are never answers to ourselves.
    """
    return "state_key" not in event and event.get("sender") != me


def in_reply_to(event: Event) -> str | None:
    """The event ID this event is a rich reply to, as a person sees it.

    A message in a thread carries ``m.in_reply_to`` with ``is_falling_back:
    true`` only so that clients without threads can show something; that is
    not a reply, and clients with threads do not show it as one.
    """
    relates = _relates_to(event)
    if relates.get("rel_type") == "m.thread" and relates.get("is_falling_back") is True:
        return None
    reply = relates.get("m.in_reply_to")
    return _str_or_none(reply.get("event_id")) if isinstance(reply, dict) else None


def _has_reply_relation(event: Event) -> bool:
    """Whether the event carries ``m.in_reply_to`` at all, thread fallback or not."""
    return isinstance(_relates_to(event).get("m.in_reply_to"), dict)


def thread_root(event: Event) -> str | None:
    """The root event ID of the thread this event is in (``m.thread``), else None."""
    relates = _relates_to(event)
    if relates.get("rel_type") != "m.thread":
        return None
    return _str_or_none(relates.get("event_id"))


def edit_target(event: Event) -> str | None:
    """The event ID an ``m.replace`` edit changes, else None.

    The conversation keeps the messages it has seen and, when an edit arrives,
    re-matches the edited message with :func:`apply_edit`.
    """
    relates = _relates_to(event)
    if relates.get("rel_type") != "m.replace":
        return None
    return _str_or_none(relates.get("event_id"))


def apply_edit(original: Event, edit: Event) -> Event:
    """``original`` as a client shows it after ``edit``: its content replaced by ``m.new_content``.

    The rules are the spec's: only the original sender can edit a message, the
    edit must target it and have its type, an edit is not itself edited, and
    the original's ``m.relates_to`` (a reply, a thread) survives the edit while
    one inside ``m.new_content`` is ignored. An edit that breaks a rule changes
    nothing, as in a client; the original is returned unchanged then.
    The event ID, sender and timestamp stay the original's, so a name given to
    the message still refers to it.
    """
    new_content = _content(edit).get("m.new_content")
    if (
        edit.get("sender") != original.get("sender")
        or edit_target(edit) is None
        or edit_target(edit) != original.get("event_id")
        or edit.get("type") != original.get("type")
        or "state_key" in original
        or is_edit(original)
        or not isinstance(new_content, dict)
    ):
        return original
    content = {k: copy.deepcopy(v) for k, v in new_content.items() if k != "m.relates_to"}
    original_relation = _content(original).get("m.relates_to")
    if original_relation is not None:
        content["m.relates_to"] = copy.deepcopy(original_relation)
    edited = dict(original)
    edited["content"] = content
    return edited


def get_path(event: Event, dotted: str) -> Any:
    """The value at a dotted path into the raw event, or :data:`MISSING`.

    Matrix keys contain dots themselves (``m.relates_to``, ``m.new_content``),
    so ``content.m.relates_to.rel_type`` cannot be split naively: at each level
    the longest key that matches the following segments wins
    (``m.relates_to`` before ``m``), and shorter ones are tried only if the
    rest of the path is not found below the longer one. In lists a segment of
    digits is an index.
    """
    return _walk(event, dotted.split("."))


def _walk(value: Any, segments: list[str]) -> Any:
    if not segments:
        return value
    if isinstance(value, dict):
        for length in range(len(segments), 0, -1):
            key = ".".join(segments[:length])
            if key in value:
                found = _walk(value[key], segments[length:])
                if found is not MISSING:
                    return found
        return MISSING
    if isinstance(value, list) and segments[0].isdigit():
        index = int(segments[0])
        return _walk(value[index], segments[1:]) if index < len(value) else MISSING
    return MISSING


def _stringify(value: Any) -> str:
    """A value as text: strings as they are, anything else as JSON (``true``, ``3``, ``{...}``)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# ------------------------------------------------------------ reply fallbacks


def strip_reply_fallback(body: str) -> str:
    """``body`` without the legacy reply fallback, the quote a person never sees.

    The spec's fallback is one or more leading lines that start with ``> ``
    (or are just ``>``), then one blank line, then the reply. Anything else is
    left alone: a quote with no blank line after it is the message itself.
    """
    lines = body.split("\n")
    quoted = 0
    while quoted < len(lines) and (lines[quoted].startswith("> ") or lines[quoted] == ">"):
        quoted += 1
    if quoted == 0 or quoted >= len(lines) or lines[quoted] != "":
        return body
    return "\n".join(lines[quoted + 1 :])


_MX_REPLY = re.compile(r"<mx-reply(?:\s[^>]*)?>.*?</mx-reply\s*>", re.DOTALL | re.IGNORECASE)


def strip_html_reply_fallback(html: str) -> str:
    """``html`` without ``<mx-reply>...</mx-reply>``, the quote of the replied-to message.

    ``mx-reply`` exists only to carry that fallback, so it is always removed.
    """
    return _MX_REPLY.sub("", html)


def _body_as_read(event: Event) -> str | None:
    """``content.body`` with the reply fallback stripped, or None if there is no text body.

    The plain-text fallback is stripped only from replies: without
    ``m.in_reply_to`` a leading ``> `` quote is what the sender wrote.
    """
    body = _content(event).get("body")
    if not isinstance(body, str):
        return None
    return strip_reply_fallback(body) if _has_reply_relation(event) else body


def _formatted_body(event: Event) -> str | None:
    """The HTML of the message without its reply fallback, or None if it has no HTML."""
    content = _content(event)
    formatted = content.get("formatted_body")
    if content.get("format") != HTML_FORMAT or not isinstance(formatted, str):
        return None
    return strip_html_reply_fallback(formatted)


def readable_text(event: Event) -> str:
    """The plain text a person reads: rendered HTML if the message has HTML, else its body.

    Reply fallbacks are stripped either way. A message without text reads as ''.
    """
    formatted = _formatted_body(event)
    if formatted is not None:
        return html_to_text(formatted)
    return _body_as_read(event) or ""


# ------------------------------------------------------------------------ HTML

_VOID_NAMES = "area base br col embed hr img input link meta source track wbr"
_BLOCK_NAMES = (
    "address article aside blockquote body caption dd details div dl dt figcaption figure "
    "footer form h1 h2 h3 h4 h5 h6 header hr html li main mx-reply nav ol p pre section "
    "summary table tbody td tfoot th thead tr ul"
)
_VOID = frozenset(_VOID_NAMES.split())
_BLOCK = frozenset(_BLOCK_NAMES.split())
_INVISIBLE = frozenset({"script", "style", "head", "title"})
_WHITESPACE = re.compile(r"\s+")
# HTML collapses ASCII white space only: &nbsp; (U+00A0) is visible and stays.
_HTML_WHITESPACE = re.compile(r"[ \t\n\r\f]+")

_Token = tuple[Literal["start", "end", "text"], str, tuple[tuple[str, str], ...]]


class _Tokens(HTMLParser):
    """HTML as a flat list of start tags, end tags and decoded text; comments dropped.

    ``<br/>`` and ``<br>`` give the same token; a void element never has an
    end token, and a self-closed non-void element (``<p/>``) is opened and
    closed, which is how a person's client reads it.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tokens: list[_Token] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pairs = tuple(sorted((name, value or "") for name, value in attrs))
        self.tokens.append(("start", tag, pairs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID:
            self.tokens.append(("end", tag, ()))

    def handle_data(self, data: str) -> None:
        if self.tokens and self.tokens[-1][0] == "text":
            self.tokens[-1] = ("text", self.tokens[-1][1] + data, ())
        else:
            self.tokens.append(("text", data, ()))


def _tokenize(html: str) -> list[_Token]:
    parser = _Tokens()
    parser.feed(html)
    parser.close()
    return parser.tokens


def _is_break(token: _Token | None) -> bool:
    """Whether white space next to ``token`` is invisible: document ends, blocks, ``<br>``."""
    return token is None or (token[0] != "text" and (token[1] in _BLOCK or token[1] == "br"))


def normalize_html(html: str) -> str:
    """A canonical form of HTML, so that markup that renders the same compares equal.

    Bots' Markdown renderers differ in details nobody sees: a trailing
    newline after ``</p>``, ``<br/>`` against ``<br>``, attribute order,
    ``&#39;`` against ``'``. The canonical form parses the HTML and writes it
    back with sorted attributes, void elements without a slash, text
    re-escaped one way, comments dropped, and white space as a browser shows
    it: runs collapse to one space, and white space at the ends of the
    document, next to block boundaries (``<p>``, ``<li>``, ``<br>``...) and
    white space alone between blocks disappears. Inside ``<pre>`` the text is
    kept verbatim, since there white space is visible. White space alone
    between two inline elements (``<b>a</b> <i>b</i>``) stays as one space,
    because a person reads it.
    """
    tokens = _tokenize(html)
    out: list[str] = []
    pre = 0
    for index, (kind, value, attrs) in enumerate(tokens):
        if kind == "start":
            rendered = "".join(f' {name}="{htmllib.escape(v)}"' for name, v in attrs)
            out.append(f"<{value}{rendered}>")
            if value == "pre":
                pre += 1
        elif kind == "end":
            out.append(f"</{value}>")
            if value == "pre" and pre:
                pre -= 1
        elif pre:
            out.append(htmllib.escape(value, quote=False))
        else:
            text = _HTML_WHITESPACE.sub(" ", value)
            if _is_break(tokens[index - 1] if index else None):
                text = text.lstrip(" ")
            if _is_break(tokens[index + 1] if index + 1 < len(tokens) else None):
                text = text.rstrip(" ")
            out.append(htmllib.escape(text, quote=False))
    return "".join(out)


def html_to_text(html: str) -> str:
    """The text a person reads in the HTML: tags removed, entities decoded.

    ``<br>`` is a line break; block elements (paragraphs, list items,
    headings, quotes, table rows...) start on their own line, one newline
    apart; white space collapses as a browser collapses it except in
    ``<pre>``; table cells of a row are one space apart; an image reads as
    its ``alt`` text (custom emoji). There is no trailing newline.
    """
    out: list[str] = []
    pre = 0
    invisible = 0

    def at_line_start() -> bool:
        return not out or out[-1].endswith("\n")

    def trim_line_end() -> None:
        if out and not pre:
            out[-1] = out[-1].rstrip(" ")

    for kind, value, attrs in _tokenize(html):
        if kind in ("start", "end") and value in _INVISIBLE:
            invisible += 1 if kind == "start" else -1 if invisible else 0
        elif invisible:
            continue
        elif kind == "text":
            if pre:
                out.append(value)
                continue
            text = _HTML_WHITESPACE.sub(" ", value)
            if at_line_start() or (out and out[-1].endswith(" ")):
                text = text.lstrip(" ")
            if text:
                out.append(text)
        elif value == "br" and kind == "start":
            trim_line_end()
            out.append("\n")
        elif value == "img" and kind == "start":
            alt = dict(attrs).get("alt", "")
            if alt:
                out.append(alt)
        elif value in ("td", "th"):
            # Cells of a row read along the line.
            if kind == "start":
                trim_line_end()
                if not at_line_start():
                    out.append(" ")
        elif value in _BLOCK:
            trim_line_end()
            if not at_line_start():
                out.append("\n")
            if value == "pre":
                pre += 1 if kind == "start" else -1 if pre else 0
    return "".join(out).rstrip()


def html_mentions(html: str) -> list[str]:
    """User IDs linked from HTML as pills: ``https://matrix.to/#/@u:s`` or ``matrix:u/u:s``."""
    users = []
    for kind, value, attrs in _tokenize(html):
        if kind != "start" or value != "a":
            continue
        href = dict(attrs).get("href", "")
        user = None
        if href.startswith("https://matrix.to/#/"):
            user = urllib.parse.unquote(href[len("https://matrix.to/#/") :].split("?")[0])
        elif href.startswith("matrix:u/"):
            user = "@" + urllib.parse.unquote(href[len("matrix:u/") :].split("?")[0])
        if user and user.startswith("@"):
            users.append(user)
    return users


# ------------------------------------------------------------------ text matching


@dataclass(frozen=True)
class TextVerdict:
    """Whether a text fits a text match; regex named groups; the reason it does not."""

    ok: bool
    captures: dict[str, str]
    explanation: str
    """Empty when ``ok``; else one line such as ``expected 'pong', got 'PONG'``."""


_SHOWN = 80


def _quote(text: str) -> str:
    """``text`` quoted with invisible characters visible, cut to a report line."""
    shown = repr(text)
    return shown if len(shown) <= _SHOWN else shown[: _SHOWN - 1] + "…"


def _normalize_whitespace(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


# How long one pattern of a script may take on one message. The standard re cannot be
# stopped (not even by a signal) once a pattern backtracks without end; the regex
# module, which reads the same patterns, takes a timeout.
REGEX_BUDGET = 1.0


def _full_match(pattern: str, subject: str, *, ignore_case: bool) -> dict[str, str] | None:
    """The named groups of ``pattern`` matched against all of ``subject`` (DOTALL), or
    None; TimeoutError after REGEX_BUDGET. The module is imported on first use: most
    suites have no regex."""
    import regex

    flags = regex.DOTALL | (regex.IGNORECASE if ignore_case else 0)
    try:
        found = regex.fullmatch(pattern, subject, flags, timeout=REGEX_BUDGET)
        groups = None if found is None else found.groupdict()
    except regex.error:  # a pattern only re reads (the loader checked it with re)
        plain = re.fullmatch(pattern, subject, re.DOTALL | (re.IGNORECASE if ignore_case else 0))
        groups = None if plain is None else plain.groupdict()
    return None if groups is None else {name: value or "" for name, value in groups.items()}


def describe_text_match(spec: TextSpecValue) -> str:
    """The expectation in words, for a report: ``'pong'``, ``containing 'x'``, ``matching /re/``."""
    match = as_text_match(spec)
    if match.contains is not None:
        words = f"containing {_quote(match.contains)}"
    elif match.regex is not None:
        words = f"matching /{match.regex}/"
    elif match.one_of is not None:
        words = "one of " + ", ".join(_quote(option) for option in match.one_of)
    else:
        words = _quote(match.exact or "")
    extras = [
        name for name in ("ignore_case", "normalize_whitespace") if getattr(match, name) is True
    ]
    return words + (f" ({', '.join(extras)})" if extras else "")


def text_matches(spec: TextSpecValue, actual: str) -> TextVerdict:
    """Whether ``actual`` fits ``spec``: exact (a plain string), contains, regex or one_of.

    A regex must match the whole text (a partial match is ``contains``'s
    job), and ``.`` matches newlines, because bots' answers span lines.
    ``ignore_case`` compares case-folded texts (``ß`` equals ``SS``).
    ``normalize_whitespace`` collapses runs of white space to one space and
    trims the ends on both sides; a regex pattern is code, so only the
    actual text is normalised for it.
    """
    match = as_text_match(spec)

    def prepare(text: str) -> str:
        if match.normalize_whitespace:
            text = _normalize_whitespace(text)
        return text.casefold() if match.ignore_case else text

    def verdict(ok: bool, captures: dict[str, str] | None = None) -> TextVerdict:
        if ok:
            return TextVerdict(True, captures or {}, "")
        return TextVerdict(
            False, {}, f"expected {describe_text_match(match)}, got {_quote(actual)}"
        )

    if match.regex is not None:
        subject = _normalize_whitespace(actual) if match.normalize_whitespace else actual
        try:
            groups = _full_match(match.regex, subject, ignore_case=match.ignore_case)
        except TimeoutError:
            return TextVerdict(
                False,
                {},
                f"the regex /{match.regex}/ was given up on after {REGEX_BUDGET:g} s on"
                f" {_quote(actual)} (repeats inside repeats, as in (a+)+, can take forever)",
            )
        return verdict(False) if groups is None else verdict(True, groups)
    if match.contains is not None:
        return verdict(prepare(match.contains) in prepare(actual))
    if match.one_of is not None:
        return verdict(prepare(actual) in {prepare(option) for option in match.one_of})
    return verdict(prepare(match.exact or "") == prepare(actual))


def _expected_text(spec: TextSpecValue, actual: str) -> str:
    """The text a diff should show against ``actual``: the closest option of a one_of."""
    match = as_text_match(spec)
    if match.one_of is not None:
        return max(
            match.one_of,
            key=lambda option: difflib.SequenceMatcher(None, option, actual).ratio(),
        )
    return match.exact or match.contains or match.regex or ""


# ------------------------------------------------------------------ match_body


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
    """``expect: TEXT`` compares the reply's ``body`` exactly, without its reply fallback.

    A person reads "hrm", not "> <@alice:example.org> Foo\\n\\nhrm", so the
    script says "hrm". ``received`` keeps the raw body; the diff shows the
    text that was compared.
    """
    message = Message.from_event(event)
    body = _body_as_read(event) or ""
    if body == expected:
        return None
    return Mismatch(
        expected=expected,
        received=message,
        reason="the reply's body differs from the expected text",
        diff=text_diff(expected, body),
    )


# ------------------------------------------------------------------ expectations


@dataclass(frozen=True)
class MatchContext:
    """What an expectation may refer to besides the event itself."""

    me: str
    step_event: Event | None
    """The event this step sent: the target of ``reply_to: true`` and the like."""
    named: Mapping[str, Event] = field(default_factory=dict)
    """Events named earlier, sent or received."""


@dataclass(frozen=True)
class Verdict:
    """Whether an event satisfies an expectation, and how nearly if not."""

    ok: bool
    problems: tuple[str, ...]
    """One short line per failed check, e.g. ``body: expected 'pong', got 'PONG'``."""
    captures: Mapping[str, str]
    """Regex named groups and ``save`` values; empty unless ``ok``."""
    checks: int
    passed: int
    diff: str | None
    """A :func:`text_diff` of the first failing text field, for the report."""
    similarity: float = 1.0
    """How alike the texts of that first failing field are (0..1): a tie-breaker for closest."""

    @property
    def closeness(self) -> float:
        """The share of checks that hold: how near this event came to the expectation."""
        return self.passed / self.checks if self.checks else 1.0


class _Checker:
    """Counts checks and collects problems, captures and the first text diff."""

    def __init__(self) -> None:
        self.checks = 0
        self.passed = 0
        self.problems: list[str] = []
        self.captures: dict[str, str] = {}
        self.diff: str | None = None
        self.similarity = 1.0

    def check(self, ok: bool, problem: str) -> bool:
        self.checks += 1
        if ok:
            self.passed += 1
        else:
            self.problems.append(problem)
        return ok

    def text(
        self,
        label: str,
        spec: TextSpecValue,
        actual: str | None,
        *,
        compare: Callable[[TextSpecValue, str], TextVerdict] = text_matches,
        canonical: Callable[[str], str] | None = None,
    ) -> None:
        """One check of a text field; ``None`` means the event lacks that field.

        ``canonical`` is the form in which ``compare`` sees the texts (normalised
        HTML); the diff shows that form, and the expected side only for exact and
        one_of, since a pattern is not a text to normalise.
        """
        if actual is None:
            self.check(False, f"{label}: expected {describe_text_match(spec)}, but it is absent")
            return
        verdict = compare(spec, actual)
        if self.check(verdict.ok, f"{label}: {verdict.explanation}"):
            self.captures.update(verdict.captures)
        elif self.diff is None:
            expected = _expected_text(spec, actual)
            received = actual
            if canonical is not None:
                received = canonical(actual)
                match = as_text_match(spec)
                if match.exact is not None or match.one_of is not None:
                    expected = canonical(_expected_text(match, received))
            self.diff = text_diff(expected, received)
            self.similarity = difflib.SequenceMatcher(None, expected, received).ratio()

    def verdict(self) -> Verdict:
        ok = not self.problems
        return Verdict(
            ok=ok,
            problems=tuple(self.problems),
            captures=dict(self.captures) if ok else {},
            checks=self.checks,
            passed=self.passed,
            diff=self.diff,
            similarity=self.similarity,
        )


def _html_matches(spec: TextSpecValue, actual: str) -> TextVerdict:
    """HTML matching: exact and one_of compare canonical forms; contains and regex see the
    canonical form of the event's HTML."""
    match = as_text_match(spec)
    if match.exact is not None:
        match = match.model_copy(update={"exact": normalize_html(match.exact)})
    elif match.one_of is not None:
        match = match.model_copy(update={"one_of": [normalize_html(o) for o in match.one_of]})
    return text_matches(match, normalize_html(actual))


def _target_id(
    target: str | bool, ctx: MatchContext, label: str, checker: _Checker
) -> tuple[str, str] | None:
    """``(event_id, how the report names it)`` of a target, or None after recording why not."""
    if target is True:
        event_id = _str_or_none((ctx.step_event or {}).get("event_id"))
        if event_id is None:
            checker.check(False, f"{label}: this step sent no message to refer to")
            return None
        return event_id, f"this step's message {event_id}"
    name = str(target)
    named = ctx.named.get(name)
    event_id = _str_or_none(named.get("event_id")) if named is not None else None
    if event_id is None:
        checker.check(False, f"{label}: no message named {name}")
        return None
    return event_id, f"{name} ({event_id})"


def _target_event(target: str | bool, ctx: MatchContext) -> Event | None:
    if target is True:
        return ctx.step_event
    return ctx.named.get(str(target))


def _relation_check(
    checker: _Checker,
    label: str,
    target: str | bool | None,
    actual: str | None,
    ctx: MatchContext,
    what: tuple[str, str],
) -> None:
    """One check that ``actual`` (the event ID the event refers to) is ``target``'s.

    ``what`` words the relation for the report: ``("a reply to", "not a reply")``.
    ``target: false`` asks for no such relation at all.
    """
    relation, nothing = what
    if target is None:
        return
    got = f"{relation} {actual}" if actual is not None else nothing
    if target is False:
        checker.check(actual is None, f"{label}: expected {nothing}, got {got}")
        return
    resolved = _target_id(target, ctx, label, checker)
    if resolved is None:
        return
    event_id, shown = resolved
    checker.check(actual == event_id, f"{label}: expected {relation} {shown}, got {got}")


def _thread_check(checker: _Checker, target: str | bool, event: Event, ctx: MatchContext) -> None:
    actual = thread_root(event)
    if target is False:
        checker.check(actual is None, f"thread: expected no thread, got the thread of {actual}")
        return
    target_event = _target_event(target, ctx)
    if _target_id(target, ctx, "thread", checker) is None or target_event is None:
        return
    # Answering a message that is itself in a thread stays in that thread.
    root = thread_root(target_event) or str(target_event["event_id"])
    got = f"the thread of {actual}" if actual is not None else "no thread"
    checker.check(actual == root, f"thread: expected the thread of {root}, got {got}")


def _mentions_check(checker: _Checker, users: str | list[str], event: Event) -> None:
    mentions = _content(event).get("m.mentions")
    listed = mentions.get("user_ids") if isinstance(mentions, dict) else None
    user_ids = (
        {user for user in listed if isinstance(user, str)} if isinstance(listed, list) else set()
    )
    # The pill in the reply fallback quotes the replied-to sender: that is no mention.
    pills = set(html_mentions(_formatted_body(event) or ""))
    for user in [users] if isinstance(users, str) else users:
        checker.check(
            user in user_ids or user in pills,
            f"mentions: {user} is not mentioned (m.mentions.user_ids: "
            f"{sorted(user_ids) or 'none'}, pills: {sorted(pills) or 'none'})",
        )


def _value_matches(expected: Any, actual: Any) -> bool:
    """JSON equality: ``true`` is not ``1`` (as in Python), but ``3`` is ``3.0``."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int | float):
        return isinstance(actual, int | float) and expected == actual
    return bool(expected == actual)


def evaluate(expectation: Expectation, event: Event, ctx: MatchContext) -> Verdict:
    """Whether ``event`` satisfies ``expectation``; every key given must hold.

    Every check counts, even after one has failed, so that a report can tell
    which candidate came closest and list everything that is wrong with it.
    """
    checker = _Checker()
    content = _content(event)
    expected_type = expectation.event_type
    checker.check(
        event.get("type") == expected_type,
        f"type: expected {expected_type}, got {event.get('type')}",
    )
    if expectation.sender is not None:
        checker.check(
            event.get("sender") == expectation.sender,
            f"sender: expected {expectation.sender}, got {event.get('sender')}",
        )
    if expectation.msgtype is not None:
        allowed = (
            [expectation.msgtype] if isinstance(expectation.msgtype, str) else expectation.msgtype
        )
        msgtype = content.get("msgtype")
        checker.check(
            msgtype in allowed,
            f"msgtype: expected {' or '.join(allowed)}, got {msgtype}",
        )
    if expectation.body is not None:
        checker.text("body", expectation.body, _body_as_read(event))
    if expectation.text is not None:
        checker.text("text", expectation.text, readable_text(event))
    if expectation.html is not None:
        checker.text(
            "html",
            expectation.html,
            _formatted_body(event),
            compare=_html_matches,
            canonical=normalize_html,
        )
    _relation_check(
        checker,
        "reply_to",
        expectation.reply_to,
        in_reply_to(event),
        ctx,
        ("a reply to", "not a reply"),
    )
    if expectation.thread is not None:
        _thread_check(checker, expectation.thread, event, ctx)
    if expectation.mentions is not None:
        _mentions_check(checker, expectation.mentions, event)
    if expectation.reaction is not None:
        relates = _relates_to(event)
        checker.check(
            relates.get("rel_type") == "m.annotation",
            f"reaction: expected an m.annotation, got {relates.get('rel_type')}",
        )
        if expectation.reaction.key is not None:
            checker.text("reaction.key", expectation.reaction.key, _str_or_none(relates.get("key")))
        if expectation.reaction.to is not False:
            _relation_check(
                checker,
                "reaction.to",
                expectation.reaction.to,
                _str_or_none(relates.get("event_id")),
                ctx,
                ("a reaction to", "no target"),
            )
    if expectation.redaction is not None and expectation.redaction.of is not False:
        redacts = _str_or_none(event.get("redacts")) or _str_or_none(content.get("redacts"))
        _relation_check(
            checker,
            "redaction.of",
            expectation.redaction.of,
            redacts,
            ctx,
            ("a redaction of", "no target"),
        )
    if expectation.media is not None:
        media = expectation.media
        msgtype = content.get("msgtype")
        checker.check(
            msgtype in MEDIA_MSGTYPES,
            f"media: expected one of {', '.join(MEDIA_MSGTYPES)}, got {msgtype}",
        )
        info = content.get("info")
        info = info if isinstance(info, dict) else {}
        if media.mimetype is not None:
            checker.text("media.mimetype", media.mimetype, _str_or_none(info.get("mimetype")))
        if media.filename is not None:
            filename = _str_or_none(content.get("filename")) or _str_or_none(content.get("body"))
            checker.text("media.filename", media.filename, filename)
        if media.size is not None:
            size = info.get("size")
            checker.check(
                _value_matches(media.size, size),
                f"media.size: expected {media.size}, got {'none' if size is None else size}",
            )
    for path, expected in (expectation.fields or {}).items():
        value = get_path(event, path)
        if value is MISSING:
            checker.check(False, f"{path}: not in the event")
        elif isinstance(expected, str | TextMatch):
            checker.text(path, expected, _stringify(value))
        else:
            checker.check(
                _value_matches(expected, value),
                f"{path}: expected {_stringify(expected)}, got {_stringify(value)}",
            )
    for variable, path in (expectation.save or {}).items():
        value = get_path(event, path)
        if checker.check(value is not MISSING, f"save {variable}: {path} is not in the event"):
            checker.captures[variable] = _stringify(value)
    return checker.verdict()


def closest(
    expectation: Expectation, events: Sequence[Event], ctx: MatchContext
) -> tuple[Event, Verdict] | None:
    """The event that came nearest to ``expectation``, for a failure report; None if no events.

    Nearest means the largest share of checks holding; between equals, the
    one whose first failing text is most alike the expected text; between
    those, the earliest.
    """
    best: tuple[Event, Verdict] | None = None
    for event in events:
        verdict = evaluate(expectation, event, ctx)
        if best is None or (verdict.ok, verdict.closeness, verdict.similarity) > (
            best[1].ok,
            best[1].closeness,
            best[1].similarity,
        ):
            best = (event, verdict)
    return best
