"""Read a YAML file into plain data while remembering where every value stood.

Pydantic tells us *which* value is wrong by its path (``messages.2.expect``);
the user needs *where* it is (``script.yaml:7:5``). This module keeps that
map, and turns YAML and validation errors into one-line ``InputError``s.
"""

from __future__ import annotations

import os
import re
import reprlib
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from matrix_bot_tester.errors import InputError

PathKey = tuple[str | int, ...]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

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


def _construct(loader: _LocatingLoader, node: yaml.Node, loc: PathKey, doc: LocatedDocument) -> Any:
    """PyYAML's value of one node; a value its explicit tag refuses is an InputError."""
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError:
        raise
    except Exception:  # '!!int x', '!!bool x', '!!timestamp 1': ValueError, KeyError, ...
        # Not the value in the message: it may be a secret ('password: !!int ...').
        doc.values.setdefault(loc, _position(node))
        tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
        raise doc.error(
            f"invalid YAML: the value is not a valid {tag}", loc, hint="remove the tag"
        ) from None


def _build(
    loader: _LocatingLoader, node: yaml.Node, loc: PathKey, doc: LocatedDocument, depth: int
) -> Any:
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
    if isinstance(node, yaml.ScalarNode) and node.style is None:
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
    doc = LocatedDocument(path=path, data=None)
    try:
        loader = _LocatingLoader(text)
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
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, {}) > MAX_VALUES:
            raise InputError(
                f"the file stands for more than {MAX_VALUES} values once its aliases"
                " (*name) are expanded",
                path=path,
                hint="repeat less through anchors and aliases",
            )
        if node is not None:
            doc.data = _build(loader, node, (), doc, 0)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        hint = None
        # These two would quote the value itself: an unquoted password such as '!Secret1'
        # or '*Secret1', or a bot command such as '!help'. Say what to do, not the value.
        for start, sign, meaning in _QUOTING_PROBLEMS:
            if problem.startswith(start):
                problem = f"a value starting with {sign!r} is read as a YAML {meaning}"
                hint = "put the value in quotes"
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
        loader.dispose()
    return doc


def load(path: str | os.PathLike[str], what: str) -> LocatedDocument:
    return parse(read_text(path, what), os.fspath(path))


_KIND = {str: "text", int: "a number", float: "a number", bool: "true/false", list: "a list"}


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


def validation_error(doc: LocatedDocument, exc: ValidationError) -> InputError:
    """The first pydantic error, placed at its line, in words a user can act on."""
    errors = exc.errors(include_url=False)
    # A misspelt key is reported twice: as unknown and as the missing key it was meant
    # to be. The unknown one points at the line to fix.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = _in_document(doc, tuple(first["loc"]), keep_last=first["type"] == "missing")
    kind = first["type"]
    dotted = ".".join(str(part) for part in loc) or "the file"
    if kind == "extra_forbidden":
        pos = doc.position_of(loc, prefer_key=True)
        message, hint = f"unknown key {loc[-1]!r}", "check the spelling; see the README"
    elif kind == "missing":
        pos = doc.position_of(loc)
        message, hint = f"missing required key {loc[-1]!r}", None
    elif kind == "model_type":
        # pydantic's text names our private model class; say what the file needs instead.
        pos = doc.position_of(loc)
        value = first.get("input")
        got = "nothing" if value is None else _KIND.get(type(value), type(value).__name__)
        message, hint = f"{dotted}: expected 'key: value' entries, got {got}", None
    else:
        pos = doc.position_of(loc)
        message, hint = f"{dotted}: {first['msg']}" if loc else first["msg"], None
        ctx = first.get("ctx") or {}
        if "hint" in ctx:
            hint = str(ctx["hint"])
    return InputError(
        message,
        path=doc.path,
        line=pos.line if pos else None,
        column=pos.column if pos else None,
        hint=hint,
    )
