"""``run --update``: rewrite the expectations of failing steps with what the bot now says.

The golden-file workflow of snapshot tools, for conversations: a bot's wording
changed on purpose, and the scripts should follow. Two halves:

* Pure (``plan``, ``rewrite``, ``unified_diff``): from a script, the result of
  its run and the text of its files, decide which expectation values to
  replace and with what, and produce the new file text. Only the replaced
  scalars change; comments, quoting, other steps and every other byte stay.
  Whatever cannot be rewritten safely is refused with one line saying why:
  patterns (regex, contains, one_of) are the author's intent, not a snapshot;
  a value saved during the run would be baked in; no reply means nothing to
  take the text from.
* The edge (``snapshot``, ``apply``): read the files when the run starts,
  and after it print each file's diff *before* writing it, and refuse a file
  that changed on disk meanwhile (a user's edit is never lost).

A run stops a conversation at its first failure, so a rewritten step's
successors have not been checked: the exit code stays the run's own.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.text import Text

from matrix_bot_tester import yamlfile
from matrix_bot_tester.errors import ExitCode, InputError
from matrix_bot_tester.language import Expectation, TextMatch
from matrix_bot_tester.matching import Event, _body_as_read, _formatted_body, readable_text
from matrix_bot_tester.report import write_atomically
from matrix_bot_tester.result import ConversationResult, Failure, Outcome
from matrix_bot_tester.runner import SIGTERM_EXIT
from matrix_bot_tester.script import PlacedStep, Script
from matrix_bot_tester.variables import fill, placeholders

Loc = tuple[str | int, ...]

# The placeholders whose run values we can turn back into the placeholder;
# {run_id} is not in the result, and saved variables are values of this run.
_BACK = ("me", "bot", "room_id")
# What each text key of an expectation compares, taken from the reply the same way.
_TEXT_KEYS = ("body", "text", "html")
_ENV = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_TOKEN = re.compile(r"\{\{|\}\}|\{[A-Za-z_][A-Za-z0-9_]*(\.event_id)?\}")


class Refused(Exception):
    """One expectation (or file) that is not rewritten; the message says why, in one line."""


@dataclass(frozen=True)
class Change:
    """Replace the scalar at ``loc`` of file ``path`` (now ``old``) with ``new``."""

    path: str
    loc: Loc
    old: str
    new: str
    line: int  # the step's line, for messages
    where: str  # "script, step N", for messages


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line per thing not rewritten


# ------------------------------------------------------------------ deciding


def _reply_text(key: str, event: Event) -> str | None:
    """The text the matcher compared for ``key`` (see matching.evaluate)."""
    if key == "body":
        return _body_as_read(event)
    if key == "text":
        return readable_text(event)
    return _formatted_body(event)


def _literal(text: str) -> str:
    """``text`` written so that filling placeholders gives it back: braces doubled if needed."""
    if _TOKEN.search(text) is None:
        return text
    return text.replace("{", "{{").replace("}", "}}")


def script_text(received: str, values: Mapping[str, str]) -> str:
    """The expectation text for a received text: run values turned back into placeholders.

    A room ID or user ID is this run's (a fresh DM each run, another account
    elsewhere); ``{room_id}``, ``{me}``, ``{bot}`` keep the script portable.
    """
    if _ENV.search(received):
        raise Refused("the reply contains ${NAME}, which a script reads as an environment variable")
    text = _literal(received)
    # Longest first, so that a value inside another (rare) does not split it.
    for name in sorted(_BACK, key=lambda n: -len(values.get(n, ""))):
        value = values.get(name, "")
        if len(value) >= 3:  # IDs are longer; a stray short value would be everywhere
            text = text.replace(value, "{" + name + "}")
    if fill(text, values, {}) != received:
        raise Refused("the reply's text cannot be written back exactly")
    return text


def _key_of(problem: str) -> str:
    return problem.split(":", 1)[0]


def _targets(spec: str | Expectation, base: Loc) -> dict[str, tuple[Loc, str | TextMatch]]:
    """Each text key of one expectation, with where its value stands in the file."""
    if isinstance(spec, str):
        return {"body": (base, spec)}
    found: dict[str, tuple[Loc, str | TextMatch]] = {}
    for key in _TEXT_KEYS:
        value = getattr(spec, key)
        if value is not None:
            found[key] = ((*base, key), value)
    return found


def _literal_loc(loc: Loc, value: str | TextMatch) -> tuple[Loc, str]:
    """Where the literal text stands; refused for patterns, which are not snapshots."""
    if isinstance(value, str):
        return loc, value
    if value.exact is not None:
        return (*loc, "exact"), value.exact
    kind = next(k for k in ("regex", "contains", "one_of") if getattr(value, k) is not None)
    raise Refused(f"{loc[-1]} is a {kind} match, not a text; edit it by hand")


def _check_placeholders(old: str) -> None:
    for name, wants_id in placeholders(old):
        if wants_id or name not in _BACK:
            what = f"{{{name}.event_id}}" if wants_id else f"{{{name}}}"
            raise Refused(f"the expectation uses {what}, a value of this run; edit it by hand")


def _step_changes(
    placed: PlacedStep, result: ConversationResult, failure: Failure, values: Mapping[str, str]
) -> list[Change]:
    assert failure.step_index is not None
    where = f"{result.name}, step {failure.step_index + 1}"
    event = failure.event
    if event is None:
        raise Refused(f"{failure.reason}: there is no reply to take a text from")
    spec = placed.spec
    if spec.expect is None:
        raise Refused(
            "the step's expectations are unordered: which one the reply was for is a guess"
        )
    base: Loc = ("messages", placed.position, "expect")
    if isinstance(spec.expect, list):
        if failure.item is None:
            raise Refused("which expectation of the list failed is not known")
        base = (*base, failure.item)
        expectation = spec.expect[failure.item]
    else:
        expectation = spec.expect
    targets = _targets(expectation, base)
    failing = {_key_of(problem) for problem in failure.problems}
    others = sorted(failing - set(targets))
    if others or not failing:
        raise Refused(
            f"the reply differs in {', '.join(others) or 'more than its text'}, not only its text;"
            " edit it by hand"
        )
    changes = []
    for key in sorted(failing):
        loc, value = _literal_loc(*targets[key])
        _check_placeholders(value)
        received = _reply_text(key, event)
        if received is None:
            raise Refused(f"the reply has no {key}")
        new = script_text(received, values)
        changes.append(Change(placed.path, loc, value, new, placed.line, where))
    return changes


def plan(script: Script, result: ConversationResult) -> Plan:
    """What the failures of one conversation ask to rewrite, and what they cannot."""
    found = Plan()
    if result.outcome is not Outcome.FAILED or result.failure is None:
        return found
    for failure in [result.failure, *result.later_failures]:
        if failure.step_index is None:
            found.notes.append(f"{result.name}: not rewritten: {failure.reason}")
            continue
        placed = script.steps[failure.step_index]
        values = {"me": result.user_id, "room_id": result.room_id or ""}
        # In the bot role the other side is whoever spoke; it is the reply's sender.
        values["bot"] = result.partner or str((failure.event or {}).get("sender", ""))
        try:
            found.changes.extend(_step_changes(placed, result, failure, values))
        except Refused as refused:
            where = f"{result.name}, step {failure.step_index + 1}"
            found.notes.append(f"{placed.path}:{placed.line} ({where}): not rewritten: {refused}")
    return found


def plan_all(scripts: Sequence[Script], results: Sequence[ConversationResult]) -> Plan:
    """The changes of a whole run, refusing a step that other conversations disagree on.

    An included step may run in several scripts: if one passed with the text
    as it is, or two want different texts, the bot answers differently by
    context and no single text is right.
    """
    whole = Plan()
    passed: set[tuple[str, int]] = set()
    for script, result in zip(scripts, results, strict=True):
        for placed, step in zip(script.steps, result.steps, strict=False):
            if step.outcome is Outcome.PASSED:
                passed.add((str(Path(placed.path).resolve()), placed.position))
        one = plan(script, result)
        whole.changes.extend(one.changes)
        whole.notes.extend(one.notes)
    wanted: dict[tuple[str, Loc], set[str]] = {}
    # One name per file, however its includes spelt it, so that it is rewritten once.
    names: dict[str, str] = {}
    for change in whole.changes:
        resolved = str(Path(change.path).resolve())
        names.setdefault(resolved, change.path)
        wanted.setdefault((resolved, change.loc), set()).add(change.new)
    kept: list[Change] = []
    seen: set[tuple[str, Loc]] = set()
    for change in whole.changes:
        key = (str(Path(change.path).resolve()), change.loc)
        change = replace(change, path=names[key[0]])
        position = change.loc[1]
        assert isinstance(position, int)
        reason = None
        if (key[0], position) in passed:
            reason = "the same step passed elsewhere in this run"
        elif len(wanted[key]) > 1:
            reason = "other conversations received other texts for it"
        if reason:
            whole.notes.append(
                f"{change.path}:{change.line} ({change.where}): not rewritten: {reason}"
            )
        elif key not in seen:
            seen.add(key)
            kept.append(change)
    whole.changes = kept
    return whole


# ----------------------------------------------------------------- rewriting


@dataclass(frozen=True)
class _Found:
    node: yaml.ScalarNode
    flow: bool  # inside a flow collection: no block scalars there
    indent: int  # the column block-scalar content would start at


def _find(root: yaml.Node, loc: Loc) -> _Found:
    node, flow, indent = root, False, 0
    for part in loc:
        flow = flow or bool(getattr(node, "flow_style", False))
        indent = node.start_mark.column + 2
        child = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            child = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            raise Refused("the file no longer has this step where it was")
        node = child
    if not isinstance(node, yaml.ScalarNode):
        raise Refused("the expectation is not a text in the file")
    return _Found(node, flow, indent)


# What YAML lets stand unescaped on one line (PyYAML's reader, less the line
# separators U+0085, U+2028, U+2029 and the byte-order mark).
_PRINTABLE = re.compile(
    "[\t\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]*"
)
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _double_quoted(text: str) -> str:
    """A YAML double-quoted scalar: always possible, escapes what is not printable."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif _PRINTABLE.fullmatch(char):
            out.append(char)
        elif ord(char) <= 0xFF:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _block(text: str, indent: int, comment: str, newline: str) -> str | None:
    """A literal block scalar (``|``) ending in a line break; None where one cannot say it.

    A first line that starts with a space would need an indentation
    indicator: those texts go double-quoted instead.
    """
    stripped = text.rstrip("\n")
    if not stripped or stripped[0] == " " or "\r" in text:
        return None
    if not all(_PRINTABLE.fullmatch(line) for line in stripped.split("\n")):
        return None
    trailing = len(text) - len(stripped)
    chomp = "-" if trailing == 0 else "" if trailing == 1 else "+"
    pad = " " * indent
    lines = [pad + line if line else "" for line in stripped.split("\n")]
    lines += [""] * max(0, trailing - 1)
    return f"|{chomp}{comment}{newline}" + newline.join(lines) + newline


@dataclass(frozen=True)
class _Span:
    """Where a scalar stands in the source, and how a block scalar there would be laid out."""

    start: int
    end: int
    comment: str  # a comment on the line that a block header keeps
    indent: int  # the column block content starts at
    line_end: int  # with a flow scalar: the end of its line (before the line break)


def _span(source: str, found: _Found) -> _Span:
    node = found.node
    start, end = node.start_mark.index, node.end_mark.index
    eol = source.find("\n", end)
    eol = len(source) if eol < 0 else eol
    if source[eol - 1 : eol] == "\r":
        eol -= 1
    if node.style not in ("|", ">"):
        rest = source[end:eol].rstrip()
        comment = rest if rest.lstrip().startswith("#") else ""
        return _Span(start, end, comment, found.indent, eol if comment else end)
    header_end = source.find("\n", start, end)
    header = source[start : header_end if header_end >= 0 else end].rstrip("\r")
    indicator = re.match(r"[|>][0-9+-]*", header)
    rest = header[indicator.end() if indicator else 1 :].rstrip()
    comment = rest if rest.lstrip().startswith("#") else ""
    body = source[start:end]
    first = next((line for line in body.split("\n")[1:] if line.strip()), "")
    indent = len(first) - len(first.lstrip(" ")) or found.indent
    if "+" not in header.split("#")[0]:
        # Blank lines after the text are layout, not value: they stay.
        kept = body.rstrip(" \r\n")
        newline = body.find("\n", len(kept))
        end = start + (newline + 1 if newline >= 0 else len(body))
    return _Span(start, end, comment, indent, end)


def _candidates(text: str, found: _Found, span: _Span, newline: str) -> list[tuple[int, str]]:
    """Ways to write ``text`` (where the replacement ends, what it is), most like the original
    first: a block stays a block, plain stays plain where it can, quotes stay quotes."""
    style = found.node.style
    was_block = style in ("|", ">")
    out: list[tuple[int, str]] = []
    if not found.flow and (was_block or "\n" in text):
        block = _block(text, span.indent, span.comment, newline)
        if block is not None and not was_block:
            # It takes the place of the rest of the line, comment and all.
            out.append((span.line_end, block.removesuffix(newline)))
        elif block is not None:
            out.append((span.end, block))
    if _PRINTABLE.fullmatch(text):
        if style is None:
            out.append((span.end, text))
        if style in (None, "'"):
            out.append((span.end, "'" + text.replace("'", "''") + "'"))
    quoted = _double_quoted(text)
    if was_block:
        # The block's last line break ends its line; the quoted text needs one too.
        quoted += span.comment + newline
    out.append((span.end, quoted))
    return out


def _set(data: Any, loc: Loc, value: str) -> None:
    for part in loc[:-1]:
        data = data[part]
    data[loc[-1]] = value


def rewrite(source: str, changes: Mapping[Loc, tuple[str, str]]) -> str:
    """``source`` with the scalar at each ``loc`` replaced: ``{loc: (old, new)}``.

    Every other byte is kept. The result is checked by parsing it: the data
    must be the old data with exactly these values changed, else Refused.
    """
    expected = yaml.safe_load(source)
    text = source
    # From the end of the file backwards, so earlier positions stay valid.
    placed = []
    root = yaml.compose(source, Loader=yaml.SafeLoader)
    if root is None:
        raise Refused("the file is empty now")
    for loc, (old, new) in changes.items():
        found = _find(root, loc)
        if _ENV.search(found.node.value):
            raise Refused("the expectation uses ${NAME}; edit it by hand")
        if found.node.value != old:
            raise Refused("the file changed since the run loaded it; run again")
        placed.append((found, loc, new))
        _set(expected, loc, new)
    placed.sort(key=lambda item: -item[0].node.start_mark.index)
    newline = "\r\n" if "\r\n" in source else "\n"
    for found, loc, new in placed:
        span = _span(text, found)
        for end, candidate in _candidates(new, found, span, newline):
            attempt = text[: span.start] + candidate + text[end:]
            try:
                value = _get(yaml.safe_load(attempt), loc)
            except (yaml.YAMLError, KeyError, IndexError, TypeError):
                continue
            if value == new:
                text = attempt
                break
        else:
            raise Refused(f"the new text cannot be written at {_dotted(loc)}")
    try:
        ok = yaml.safe_load(text) == expected
    except yaml.YAMLError:
        ok = False
    if not ok:
        raise Refused("rewriting the expectations would change more than them (an anchor?)")
    return text


def _get(data: Any, loc: Loc) -> Any:
    for part in loc:
        data = data[part]
    return data


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)


def unified_diff(old: str, new: str, path: str) -> str:
    """A unified diff, with git's a/ and b/ for a relative path (``git apply`` reads it)."""
    before, after = (path, path) if os.path.isabs(path) else (f"a/{path}", f"b/{path}")
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=before,
        tofile=after,
    )
    # As diff(1) marks it: a last line without a line break would run into the next.
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


# ---------------------------------------------------------------------- edge


def snapshot(scripts: Sequence[Script]) -> dict[str, str]:
    """The text of every script and included file, as the run starts (to rewrite from)."""
    texts: dict[str, str] = {}
    for script in scripts:
        for path in {script.path, *(step.path for step in script.steps)}:
            if path not in texts:
                texts[path] = yamlfile.read_text(path, "script")
    return texts


def _replace(path: str, text: str) -> None:
    """Write a script file whole or not at all, as its owner left it: the file a symlink
    points to, with its permissions; a read-only file is refused, not replaced."""
    target = os.path.realpath(path)
    if not os.access(target, os.W_OK):
        raise PermissionError(13, "the file is read-only")
    mode = os.stat(target).st_mode & 0o7777
    write_atomically(target, text)
    os.chmod(target, mode)


def _print_diff(console: Console, diff: str) -> None:
    styles = {"+": "green", "-": "red", "@": "cyan"}
    for line in diff.splitlines():
        style = "bold" if line.startswith(("+++", "---")) else styles.get(line[:1], "")
        console.print(Text(line, style=style), highlight=False, soft_wrap=True)


def apply(
    scripts: Sequence[Script],
    results: Sequence[ConversationResult],
    texts: Mapping[str, str],
    console: Console,
    err: Console,
    code: int,
    *,
    write: bool,
) -> int:
    """Print each file's diff, then (with ``write``) replace it; return the exit code.

    The code stays the run's: a failed conversation stopped at its failure and
    the steps after it have not run. A file that changed on disk since the run
    loaded it is not written (exit 2): the user's edit wins, run again.
    """
    if code in (int(ExitCode.INTERRUPTED), SIGTERM_EXIT):
        err.print("update: the run was interrupted; no expectation was rewritten", highlight=False)
        return code
    whole = plan_all(scripts, results)
    by_file: dict[str, dict[Loc, tuple[str, str]]] = {}
    for change in whole.changes:
        by_file.setdefault(change.path, {})[change.loc] = (change.old, change.new)
    refused = False
    written = 0
    for path, changes in by_file.items():
        try:
            new = rewrite(texts[path], changes)
        except Refused as exc:
            whole.notes.append(f"{path}: not rewritten: {exc}")
            continue
        try:
            now = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            now = f"<unreadable: {exc}>"
        if now != texts[path]:
            refused = write
            err.print(
                f"error: {path}: changed on disk during the run; not rewritten"
                " (hint: run again to update it)",
                markup=False,
                highlight=False,
            )
            continue
        _print_diff(console, unified_diff(texts[path], new, path))
        if write:
            try:
                _replace(path, new)
            except (InputError, OSError) as exc:
                refused = True
                reason = exc.one_line() if isinstance(exc, InputError) else exc.strerror
                err.print(f"error: {path}: not rewritten: {reason}", markup=False, highlight=False)
                continue
            written += 1
    if not by_file and not whole.notes:
        console.print("update: nothing to rewrite", highlight=False)
    for note in whole.notes:
        console.print(f"update: {note}", markup=False, highlight=False)
    if by_file or whole.notes:
        files = f"{written} file{'' if written == 1 else 's'}"
        if write:
            summary = f"updated {files}"
        else:
            count = len(by_file)
            summary = f"{count} file{'' if count == 1 else 's'} would change; nothing written"
        console.print(summary, markup=False, highlight=False)
    if refused and code in (int(ExitCode.PASSED), int(ExitCode.FAILED)):
        return int(ExitCode.BAD_INPUT)
    return code
