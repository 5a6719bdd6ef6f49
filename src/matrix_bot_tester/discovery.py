"""Which script files a run takes, and which of them it selects: pure functions, no network.

Discovery (``run PATH...``): a file named on the command line is always
taken, whatever its name; a folder is searched recursively for files named
``*.convo.yaml`` or ``*.convo.yml`` (sorted by path); a glob is expanded and
each match treated as above. Fragments meant for ``include`` are simply not
named ``*.convo.yaml``, so discovery never takes them.

Selection: ``-k EXPR`` (substrings of a script's name or path), ``-m EXPR``
(tags), both with ``not``, ``and``, ``or`` and parentheses, as pytest's simple
form; and the last run's results for ``--rerun-failed``.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from matrix_bot_tester.errors import InputError

SCRIPT_SUFFIXES = (".convo.yaml", ".convo.yml")
LAST_RUN_FILE = Path(".matrix-bot-tester") / "last-run.json"
LAST_RUN_VERSION = 1
_GLOB_CHARS = re.compile(r"[*?\[]")


def is_script_name(name: str) -> bool:
    return name.endswith(SCRIPT_SUFFIXES)


def _scripts_in(folder: Path) -> list[Path]:
    return _walk(folder, is_script_name)


def _walk(folder: Path, wanted: Callable[[str], bool]) -> list[Path]:
    """The files under ``folder`` whose names are ``wanted``, in order; no hidden folders."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # no .git, .venv, ...
        found.extend(Path(root) / f for f in files if wanted(f))
    return sorted(found)


def discover(
    paths: Sequence[str], on_error: Callable[[InputError], None] | None = None
) -> list[str]:
    """The script files that ``paths`` name, in order, each once.

    Raises InputError for a folder without scripts or a glob that matches
    nothing (a missing file is left to the loader, which names it). With
    ``on_error``, such a path is handed to it instead and the others are
    still taken: ``validate`` reports every bad argument, not only the first.
    """
    taken: list[str] = []
    seen: set[Path] = set()

    def take(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            taken.append(str(path))

    for given in paths:
        try:
            found = _named_by(given)
        except InputError as exc:
            if on_error is None:
                raise
            on_error(exc)
            continue
        for path in found:
            take(path)
    return taken


def _plain_yaml_hint(folder: Path) -> str:
    """How to run a folder's YAML files that are not named as scripts, if it has any:
    the likely mistake is scripts named plainly, as the examples are."""
    hint = "scripts in folders are found by their name: *.convo.yaml"
    plain = _walk(folder, lambda name: name.endswith((".yaml", ".yml")))
    if not plain:
        return hint
    suffixes = {p.suffix for p in plain}
    name = "*" + suffixes.pop() if len(suffixes) == 1 else "*.y*ml"
    nested = any(p.parent != folder for p in plain)
    pattern = shlex.quote(str(folder / "**" / name if nested else folder / name))
    files, them = (
        (f"{len(plain)} other YAML files", "them")
        if len(plain) > 1
        else ("1 other YAML file", "it")
    )
    return f"{hint}; it holds {files}: rename {them} so, or give {them} as {pattern}"


def _named_by(given: str) -> list[Path]:
    """The files one command-line argument names (duplicates are dropped by the caller)."""
    path = Path(given)
    if path.is_dir():
        inside = _scripts_in(path)
        if not inside:
            raise InputError(
                "no script files in this folder", path=given, hint=_plain_yaml_hint(path)
            )
        return inside
    if path.exists() or not _GLOB_CHARS.search(given):
        return [path]  # a file named explicitly (a missing one is reported when loaded)
    matches = sorted(glob.glob(given, recursive=True))
    if not matches:
        hint = "check the pattern; '**' also looks in subfolders, e.g. 'tests/**/*.convo.yaml'"
        if not path.is_absolute():
            hint += f"; it is matched from {Path.cwd()}"
        raise InputError("the pattern matches no file", path=given, hint=hint)
    taken: list[Path] = []
    for match in matches:
        matched = Path(match)
        if matched.is_dir():
            taken.extend(_scripts_in(matched))
        elif matched.is_file():
            taken.append(matched)
    return taken


# ------------------------------------------------------------------ expressions

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")


def _tokens(expression: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    text = expression.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:  # only trailing white space is left
            break
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def compile_expression(
    expression: str, option: str, atom: Callable[[str], Callable[[Any], bool]]
) -> Callable[[Any], bool]:
    """Parse ``a and not (b or c)``; ``atom`` turns a word into a test. InputError if malformed."""
    tokens = _tokens(expression)
    position = 0

    def bad(why: str) -> InputError:
        return InputError(
            f"{option} {expression!r}: {why}",
            hint="words joined by 'and', 'or', 'not' and parentheses, e.g. 'ping and not slow'",
        )

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def advance() -> str:
        nonlocal position
        token = tokens[position]
        position += 1
        return token

    def either() -> Callable[[Any], bool]:
        parts = [both()]
        while peek() == "or":
            advance()
            parts.append(both())
        return parts[0] if len(parts) == 1 else (lambda x: any(p(x) for p in parts))

    def both() -> Callable[[Any], bool]:
        parts = [negated()]
        while peek() == "and":
            advance()
            parts.append(negated())
        return parts[0] if len(parts) == 1 else (lambda x: all(p(x) for p in parts))

    def negated() -> Callable[[Any], bool]:
        if peek() == "not":
            advance()
            inner = negated()
            return lambda x: not inner(x)
        return single()

    def single() -> Callable[[Any], bool]:
        token = peek()
        if token is None:
            raise bad("ends too early")
        if token == "(":
            advance()
            inner = either()
            if peek() != ")":
                raise bad("a '(' is not closed")
            advance()
            return inner
        if token in (")", "and", "or"):
            raise bad(f"unexpected {token!r}")
        return atom(advance())

    if not tokens:
        raise bad("empty")
    test = either()
    if position != len(tokens):
        raise bad(f"unexpected {tokens[position]!r}")
    return test


def keyword_matcher(expression: str) -> Callable[[tuple[str, str]], bool]:
    """``-k``: each word is a case-insensitive substring of the script's name or path."""

    def atom(word: str) -> Callable[[Any], bool]:
        lowered = word.lower()
        return lambda named: any(lowered in text.lower() for text in named)

    return compile_expression(expression, "-k", atom)


def tag_matcher(expression: str) -> Callable[[frozenset[str]], bool]:
    """``-m``: each word is a tag the script must have (exactly)."""

    def atom(word: str) -> Callable[[Any], bool]:
        return lambda tags: word in tags

    return compile_expression(expression, "-m", atom)


def select(
    scripts: Iterable[tuple[str, str, Iterable[str]]],
    *,
    keyword: str | None = None,
    tags: str | None = None,
    only_paths: set[str] | None = None,
) -> list[int]:
    """Indexes of the scripts ``(path, name, tags)`` that the filters keep, in order.

    ``only_paths`` (for --rerun-failed) holds resolved absolute paths.
    """
    by_keyword = keyword_matcher(keyword) if keyword is not None else None
    by_tags = tag_matcher(tags) if tags is not None else None
    kept = []
    for index, (path, name, script_tags) in enumerate(scripts):
        if by_keyword is not None and not by_keyword((name, path)):
            continue
        if by_tags is not None and not by_tags(frozenset(script_tags)):
            continue
        if only_paths is not None and resolved(path) not in only_paths:
            continue
        kept.append(index)
    return kept


def resolved(path: str) -> str:
    return str(Path(path).resolve())


# ------------------------------------------------------------------ last run


def last_run_text(results: Iterable[tuple[str, str, str]], earlier: str | None = None) -> str:
    """The last-run file for results ``(path, name, outcome)``.

    ``earlier`` is the file as it was: the outcomes of scripts this run left
    out (``-k``, ``-m``, another folder) are kept, so a failure stays known
    to ``--rerun-failed`` until its script runs again, not only until the
    next run of something else. Scripts that no longer exist are dropped.
    """
    entries = [
        {"path": resolved(path), "name": name, "outcome": outcome}
        for path, name, outcome in results
    ]
    covered = {entry["path"] for entry in entries}
    try:
        previous = json.loads(earlier)["results"] if earlier else []
        kept = [
            {"path": e["path"], "name": e["name"], "outcome": e["outcome"]}
            for e in previous
            if isinstance(e["path"], str) and e["path"] not in covered and Path(e["path"]).is_file()
        ]
    except (ValueError, KeyError, TypeError):
        kept = []  # an unreadable earlier file: this run's results alone
    data = {"version": LAST_RUN_VERSION, "results": kept + entries}
    return json.dumps(data, indent=2) + "\n"


def failed_last_time(text: str, where: str) -> set[str]:
    """The resolved paths that did not pass last time (failed, errored, interrupted, not run).

    A script that never ran (after -x, an interrupt or a bot that was not ready)
    has not passed either: re-running only the failures must not skip it.
    """
    try:
        data = json.loads(text)
        results = data["results"]
        return {
            str(entry["path"])
            for entry in results
            if entry.get("outcome") in ("failed", "error", "interrupted", "not run")
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InputError(
            "the last run's results cannot be read",
            path=where,
            hint="delete the file; the next run writes it anew",
        ) from None
