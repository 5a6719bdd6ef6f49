"""Read a YAML file into plain data while remembering where every value stood.

Pydantic tells us *which* value is wrong by its path (``messages.2.expect``);
the user needs *where* it is (``script.yaml:7:5``). This module keeps that
map, and turns YAML and validation errors into one-line ``InputError``s.
"""

from __future__ import annotations

import math
import os
import re
import reprlib
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from matrix_bot_tester.errors import InputError

PathKey = tuple[str | int, ...]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# UTF-16 surrogates: YAML's "\ud83d\ude00" escapes give them one by one, and an
# environment variable that is not UTF-8 holds them (os.environ's surrogateescape).
_SURROGATE = re.compile("[\ud800-\udfff]")
# The escape that wrote one, to point at it: \uD800 or \U0000D800.
_SURROGATE_ESCAPE = re.compile(r"\\(?:u|U0000)[dD][89a-fA-F][0-9a-fA-F]{2}")

# A script is a few kilobytes; refusing anything huge keeps a stray binary
# or log file from eating memory before validation can reject it.
MAX_FILE_BYTES = 1_000_000
# Aliases repeat what an anchor names: 500 bytes of them can stand for a
# billion values ("billion laughs"). No real script comes near this many.
MAX_VALUES = 100_000


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class LocatedDocument:
    """The parsed data of one YAML file plus the position of each value and key."""

    path: str
    data: Any
    text: str = ""  # the source, to place what PyYAML's marks do not
    values: dict[PathKey, Position] = field(default_factory=dict)
    keys: dict[PathKey, Position] = field(default_factory=dict)
    # The source text of each unquoted scalar, for fields that want words, not numbers.
    texts: dict[PathKey, str] = field(default_factory=dict)

    def position_of(self, loc: PathKey, *, prefer_key: bool = False) -> Position | None:
        """The position of ``loc``, or of its nearest ancestor that we know."""
        for end in range(len(loc), -1, -1):
            prefix = loc[:end]
            if prefer_key and prefix in self.keys:
                return self.keys[prefix]
            if prefix in self.values:
                return self.values[prefix]
        return None

    def error(self, message: str, loc: PathKey = (), *, hint: str | None = None) -> InputError:
        pos = self.position_of(loc)
        return InputError(
            message,
            path=self.path,
            line=pos.line if pos else None,
            column=pos.column if pos else None,
            hint=hint,
        )


def _position(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


class _LocatingLoader(yaml.SafeLoader):
    """SafeLoader that builds plain data and records positions on the way."""


# libyaml's parser, where PyYAML was built with it: the same nodes and positions
# about ten times faster (a suite loads hundreds of scripts). Its errors are
# worded differently, so a file it refuses is parsed again by the pure-Python
# parser, whose messages the hints below are written for.
_FastLoader: type[yaml.CSafeLoader] | None = getattr(yaml, "CSafeLoader", None)
_Loader = yaml.SafeLoader | yaml.CSafeLoader


def _compose(text: str) -> tuple[_Loader, yaml.Node | None]:
    """The document's node tree and the loader that builds values from it.

    A byte order mark shifts libyaml's character offsets by one, and the
    positions of escapes are looked up by offset: such a file takes the slow path.
    """
    if _FastLoader is not None and not text.startswith("\ufeff"):
        fast = _FastLoader(text)
        try:
            return fast, fast.get_single_node()
        except Exception:  # any refusal is explained by the slow parser below
            fast.dispose()
    loader = _LocatingLoader(text)
    return loader, loader.get_single_node()


def _whole_characters(doc: LocatedDocument, node: yaml.Node, loc: PathKey, text: str) -> str:
    """``text`` with each surrogate pair joined into its character; a lone one is an InputError.

    PyYAML keeps ``"\\ud83d\\ude00"`` as two halves where JSON readers see one emoji,
    so without the join the text would never equal what the bot sends back. A
    lone half cannot be UTF-8 at all: the homeserver would answer 500 mid-run.
    """
    try:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError as exc:
        lone = text.encode("utf-16-le", "surrogatepass")[exc.start : exc.start + 2]
        code = int.from_bytes(lone, "little")
        start, end = node.start_mark.index, node.end_mark.index
        escapes = [
            m
            for m in _SURROGATE_ESCAPE.finditer(doc.text, start, end)
            if int(m[0][-4:], 16) == code
        ]
        if escapes:
            # Point at the escape itself, not at the start of a long string.
            at = escapes[0].start()
            doc.values[loc] = Position(
                doc.text.count("\n", 0, at) + 1, at - doc.text.rfind("\n", 0, at)
            )
        else:
            doc.values.setdefault(loc, _position(node))
        raise doc.error(
            f"a lone surrogate \\u{code:04x} cannot be sent: Matrix text is UTF-8",
            loc,
            hint="write the character itself, or both halves of a pair (\\ud83d\\ude00)",
        ) from None


def _construct(loader: _Loader, node: yaml.Node, loc: PathKey, doc: LocatedDocument) -> Any:
    """PyYAML's value of one node; a value its explicit tag refuses is an InputError."""
    try:
        value = loader.construct_object(node, deep=True)
        if isinstance(value, str) and _SURROGATE.search(value):
            value = _whole_characters(doc, node, loc, value)
        return value
    except (yaml.YAMLError, InputError):
        raise
    except Exception:  # '!!int x', '!!bool x', '!!timestamp 1': ValueError, KeyError, ...
        # Not the value in the message: it may be a secret ('password: !!int ...').
        doc.values.setdefault(loc, _position(node))
        tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
        raise doc.error(
            f"invalid YAML: the value is not a valid {tag}", loc, hint="remove the tag"
        ) from None


def _build(loader: _Loader, node: yaml.Node, loc: PathKey, doc: LocatedDocument, depth: int) -> Any:
    if depth > 50:
        raise doc.error("the file is nested too deeply (more than 50 levels)", loc)
    doc.values[loc] = _position(node)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _construct(loader, key_node, (*loc, "?"), doc)
            if not isinstance(key, str):
                doc.values[(*loc, str(key))] = _position(key_node)
                raise doc.error(
                    f"keys must be text, got {reprlib.repr(key)}",
                    (*loc, str(key)),
                    hint="quote the key",
                )
            child = (*loc, key)
            if key in result:
                doc.values[child] = _position(key_node)
                raise doc.error(
                    f"duplicate key {key!r}", child, hint="each key may appear once per mapping"
                )
            doc.keys[child] = _position(key_node)
            result[key] = _build(loader, value_node, child, doc, depth + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(loader, item, (*loc, index), doc, depth + 1)
            for index, item in enumerate(node.value)
        ]
    if isinstance(node, yaml.ScalarNode) and not node.style:  # plain: None, or '' from libyaml
        doc.texts[loc] = node.value
    return _construct(loader, node, loc, doc)


def expand_env(doc: LocatedDocument, value: Any, loc: PathKey = ()) -> Any:
    """Replace ``${NAME}`` by the environment's value, recursively."""
    if isinstance(value, dict):
        return {k: expand_env(doc, v, (*loc, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(doc, v, (*loc, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise doc.error(
                f"environment variable {name} is not set",
                loc,
                hint=f"export {name}=... before running",
            )
        if _SURROGATE.search(os.environ[name]):
            # Bytes that are not UTF-8 (Python keeps them as surrogates); not the value:
            # it may be a secret.
            raise doc.error(
                f"environment variable {name} is not UTF-8 text",
                loc,
                hint=f"set {name} from a UTF-8 source",
            )
        return os.environ[name]

    return _ENV.sub(substitute, value)


def read_text(path: str | os.PathLike[str], what: str) -> str:
    """Read a small UTF-8 text file, or say in one line why we cannot."""
    shown = os.fspath(path)
    p = Path(path)
    try:
        if p.is_dir():
            raise InputError(f"{what} is a directory, not a file", path=shown)
        info = p.stat()
        if not stat.S_ISREG(info.st_mode):
            # A pipe would block the read forever, /dev/zero would fill the memory.
            raise InputError(f"{what} is not a regular file", path=shown, hint="check the path")
        size = info.st_size
        if size > MAX_FILE_BYTES:
            raise InputError(
                f"{what} is {size} bytes; the limit is {MAX_FILE_BYTES}",
                path=shown,
                hint="is this the right file?",
            )
        raw = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} not found", path=shown, hint="check the path") from None
    except PermissionError:
        raise InputError(
            f"{what} is not readable", path=shown, hint="check its permissions"
        ) from None
    except OSError as exc:
        raise InputError(f"cannot read {what}: {exc.strerror}", path=shown) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{what} is not UTF-8 text (bad byte at offset {exc.start})", path=shown
        ) from None


_QUOTING_PROBLEMS = (
    ("could not determine a constructor for the tag", "!", "tag"),
    ("found undefined alias", "*", "alias"),
)


# PyYAML's names for what it was reading when it failed, in the words of a script's author.
_CONTEXTS = {
    "a quoted scalar": "a quoted string",
    "a double-quoted scalar": "a quoted string",
    "a flow sequence": "a [...] list",
    "a flow mapping": "a {...} mapping",
    "a block mapping": "the mapping",
    "a block collection": "the list",
    "a block scalar": "a | or > text",
    "a simple key": "a key",
}


def _at(mark: yaml.Mark) -> str:
    return f"{mark.line + 1}:{mark.column + 1}"


def _yaml_problem(exc: yaml.MarkedYAMLError) -> tuple[yaml.Mark | None, str, str | None]:
    """Where to point, what to say and the hint for one PyYAML error.

    PyYAML places an unclosed quote or bracket at the end of the file, where
    nothing is wrong; its ``context_mark`` is where the quote opened, which is
    the line to fix. Both places are named, in one line.
    """
    problem = exc.problem or exc.context or "invalid YAML"
    # These two would quote the value itself: an unquoted password such as '!Secret1'
    # or '*Secret1', or a bot command such as '!help'. Say what to do, not the value.
    for start, sign, meaning in _QUOTING_PROBLEMS:
        if problem.startswith(start):
            problem = f"a value starting with {sign!r} is read as a YAML {meaning}"
            return exc.problem_mark or exc.context_mark, problem, "put the value in quotes"
    hint = None
    if problem.startswith("expected <block end>"):
        hint = "check this line's indentation, and that every quote above it is closed"
    opened, found = exc.context_mark, exc.problem_mark
    if opened is None or found is None or exc.problem is None or exc.context is None:
        return found or opened, problem, hint
    if (opened.line, opened.column) == (found.line, found.column):
        return found, problem, hint
    what = exc.context.removeprefix("while scanning ").removeprefix("while parsing ")
    what = _CONTEXTS.get(what, what)
    if "end of stream" in problem or "<stream end>" in problem:
        return opened, f"{what} is not closed (found the end of the file at {_at(found)})", hint
    if what == "a key":
        # 'foo' alone on a line, then 'bar: 1': the line without ':' is the one to fix.
        return opened, f"{problem} after this key (looked up to {_at(found)})", hint
    return found, f"{problem} (in {what} that starts at {_at(opened)})", hint


def _expanded_size(node: yaml.Node, sizes: dict[int, int], depth: int = 0) -> int:
    """How many values ``node`` stands for with its aliases expanded (each node counted once).

    Stops counting past MAX_VALUES; a node inside itself (a recursive alias)
    counts once here and is refused as too deep by ``_build``.
    """
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = 1
    if depth > 60:
        return 1  # _build refuses this depth anyway
    children: list[yaml.Node] = []
    if isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    total = 1
    for child in children:
        total += _expanded_size(child, sizes, depth + 1)
        if total > MAX_VALUES:
            break
    sizes[id(node)] = total
    return total


def parse(text: str, path: str) -> LocatedDocument:
    """Parse one YAML document, keeping positions; YAML errors become InputError."""
    doc = LocatedDocument(path=path, data=None, text=text)
    loader: _Loader | None = None
    try:
        loader, node = _compose(text)
        if node is not None and _expanded_size(node, {}) > MAX_VALUES:
            raise InputError(
                f"the file stands for more than {MAX_VALUES} values once its aliases"
                " (*name) are expanded",
                path=path,
                hint="repeat less through anchors and aliases",
            )
        if node is not None:
            doc.data = _build(loader, node, (), doc, 0)
    except yaml.reader.ReaderError as exc:
        # YAML forbids NUL and most other control characters anywhere in a file.
        at = exc.position
        raise InputError(
            f"invalid YAML: character U+{exc.character:04X} is not allowed in YAML",
            path=path,
            line=text.count("\n", 0, at) + 1,
            column=at - text.rfind("\n", 0, at),
            hint="is this a text file? write control characters as escapes in double quotes",
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark, problem, hint = _yaml_problem(exc)
        raise InputError(
            f"invalid YAML: {problem}",
            path=path,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
            hint=hint,
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", path=path) from None
    except RecursionError:
        raise InputError("the file is nested too deeply", path=path) from None
    finally:
        if loader is not None:
            loader.dispose()
    return doc


def load(path: str | os.PathLike[str], what: str) -> LocatedDocument:
    return parse(read_text(path, what), os.fspath(path))


@dataclass(frozen=True)
class FileKind:
    """How errors speak of one kind of file: where its keys are documented, what it is not."""

    reference: str  # where its keys are documented, for the unknown-key hint
    # Top-level keys of another kind of file, with the hint that says so.
    foreign_keys: Mapping[str, str] = field(default_factory=dict)
    # Each regex a field must match, in words ("a name of letters, ...").
    patterns: Mapping[str, str] = field(default_factory=dict)


_KIND = {
    str: "text",
    int: "a number",
    float: "a number",
    bool: "true/false",
    list: "a list",
    dict: "a mapping",
    date: "a date",
    datetime: "a date",
}

# What each pydantic type error asked for, in the file's words.
_EXPECTED = {
    "string_type": "text",
    "bool_type": "true/false",
    "bool_parsing": "true/false",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "list_type": "a list",
    "dict_type": "'key: value' entries",
    "model_type": "'key: value' entries",
    "model_attributes_type": "'key: value' entries",
}
_TAG_WORDS = {"text": "text", "mapping": "a mapping", "list": "a list"}
# The two spellings of a value that takes text or a mapping, by key.
_EXAMPLES = {
    "send": "send: TEXT or send: {text: ...}",
    "expect": "expect: TEXT or expect: {body: ...}",
    "redact": "redact: NAME or redact: {message: NAME}",
}
_BOUNDS = {
    "greater_than": ("gt", "more than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}
# What one empty list should hold, by key.
_ITEMS = {"messages": "step", "expect_unordered": "expectation", "one_of": "text"}


_WHOLE_FILE = "the file"


def _kind_of(value: Any) -> str:
    """The shape of a value, never the value itself: it may be a secret."""
    if isinstance(value, float) and not value.is_integer():
        return "a number with a fraction"
    return "nothing" if value is None else _KIND.get(type(value), type(value).__name__)


def _wanted(error: ErrorDetails) -> list[str]:
    """What ``error`` says the value should have been; empty if it is no type error."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "union_tag_invalid":
        tags = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        return [_TAG_WORDS.get(tag, tag) for tag in tags]
    if kind in _BOUNDS:
        bound, words = _BOUNDS[kind]
        return [f"a number {words} {ctx[bound]:g}"] if bound in ctx else []
    return [_EXPECTED[kind]] if kind in _EXPECTED else []


def _alternatives(options: list[str]) -> str:
    unique = list(dict.fromkeys(options))
    if "a number" in unique and "a whole number" in unique:
        unique.remove("a whole number")
    return ", ".join(unique[:-1]) + " or " + unique[-1] if len(unique) > 1 else unique[0]


def _in_words(error: ErrorDetails, wanted: list[str], dotted: str, key: str, kind: FileKind) -> str:
    """One pydantic error as the file's author would say it: no pydantic terms, no class names.

    ``wanted`` are the kinds of value the errors at the same place asked for: a
    value that may be text or a number fails as both, and the message names both.
    """
    ctx = error.get("ctx") or {}
    value = error.get("input")
    got = _kind_of(value)
    if isinstance(value, float) and not math.isfinite(value) and error["type"] in _BOUNDS:
        return f"{dotted}: must be a finite number, not {value}"  # .nan, .inf
    if error["type"] in _BOUNDS and len(wanted) == 1:
        bound, words = _BOUNDS[error["type"]]
        return f"{dotted}: must be {words} {ctx[bound]:g}"
    if wanted:
        example = (
            f" ({_EXAMPLES[key]})"
            if error["type"] == "union_tag_invalid" and key in _EXAMPLES
            else ""
        )
        return f"{dotted}: expected {_alternatives(wanted)}{example}, got {got}"
    if error["type"] == "too_short":
        least = ctx.get("min_length", 1)
        item = _ITEMS.get(key, "item")
        return f"'{dotted}' is empty: give at least {'one' if least == 1 else least} {item}"
    if error["type"] == "too_long":
        return f"{dotted}: at most {ctx.get('max_length')} items"
    if error["type"] == "string_too_short":
        return f"{dotted}: must not be empty"
    if error["type"] == "string_too_long":
        return f"{dotted}: at most {ctx.get('max_length')} characters"
    if error["type"] == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        words = kind.patterns.get(pattern, f"text that matches {pattern}")
        return f"{dotted}: must be {words}"
    if error["type"] == "literal_error":
        return f"{dotted}: must be {ctx.get('expected')}"
    # Our own PydanticCustomErrors already speak plainly; pydantic's others start
    # "Input should be ..." or "Value error, ...".
    text = error["msg"].removeprefix("Value error, ")
    if text.startswith("Input should be "):
        text = "should be " + text.removeprefix("Input should be ")
    # A rule about the whole file (e.g. "needs 'password' or 'access_token'") is its own line.
    return text if dotted == _WHOLE_FILE else f"{dotted}: {text}"


def _yaml_number(number: float) -> str:
    """``number`` as YAML 1.1 reads a number: digits, or a dot and a signed exponent."""
    if number.is_integer() and abs(number) < 1e16:
        return str(int(number))
    text = f"{number:.15g}"
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}{e}{exponent}"


def _type_hint(value: Any, wanted: list[str]) -> str | None:
    """How to write a value of the wanted type, when YAML read it as another."""
    if isinstance(value, str) and ("a number" in wanted or "a whole number" in wanted):
        try:
            number = float(value)
        except ValueError:
            return None
        if math.isfinite(number):  # YAML 1.1 reads 1e3 as text: it wants 1.0e+3
            return f"write it as a plain number: {_yaml_number(number)}"
        return None
    if "text" in wanted and isinstance(value, int | float) and not isinstance(value, bool):
        return "put it in quotes to make it text: '...'"
    return None


def _in_document(doc: LocatedDocument, loc: tuple[Any, ...], *, keep_last: bool) -> PathKey:
    """Drop the parts of a pydantic location that name union members, not keys of the file.

    ``messages.0.step.send.mapping.txt`` becomes ``messages.0.send.txt``: the
    path the user wrote, which is also how we find its line. A missing key is
    not in the file, so ``keep_last`` keeps it.
    """
    kept: PathKey = ()
    for part in loc:
        candidate = (*kept, part)
        if candidate in doc.values or candidate in doc.keys:
            kept = candidate
    if keep_last and loc and kept[-1:] != loc[-1:]:
        kept = (*kept, loc[-1])
    return kept


def validation_error(doc: LocatedDocument, exc: ValidationError, kind: FileKind) -> InputError:
    """The first pydantic error, placed at its line, in words a user can act on."""
    errors = exc.errors(include_url=False)
    # A misspelt key is reported twice: as unknown and as the missing key it was meant
    # to be. The unknown one points at the line to fix.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = _in_document(doc, tuple(first["loc"]), keep_last=first["type"] == "missing")
    dotted = ".".join(str(part) for part in loc) or _WHOLE_FILE
    key = next((str(part) for part in reversed(loc) if isinstance(part, str)), "")
    hint = None
    if first["type"] == "extra_forbidden":
        pos = doc.position_of(loc, prefer_key=True)
        message = f"unknown key {loc[-1]!r}"
        foreign = kind.foreign_keys.get(key) if len(loc) == 1 else None
        hint = foreign or f"check the spelling; see {kind.reference}"
    elif first["type"] == "missing":
        pos = doc.position_of(loc)
        message = f"missing required key {loc[-1]!r}"
    else:
        pos = doc.position_of(loc)
        alike = [
            e
            for e in errors
            if _in_document(doc, tuple(e["loc"]), keep_last=False) == loc
            and e["type"] not in ("extra_forbidden", "missing")
        ]
        wanted = [w for e in alike for w in _wanted(e)]
        message = _in_words(first, wanted, dotted, key, kind)
        ctx = first.get("ctx") or {}
        hint = str(ctx["hint"]) if "hint" in ctx else _type_hint(first.get("input"), wanted)
    return InputError(
        message,
        path=doc.path,
        line=pos.line if pos else None,
        column=pos.column if pos else None,
        hint=hint,
    )
