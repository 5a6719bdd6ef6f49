"""Fuzzing the script and account loaders: whatever the file holds, a value or one clear line.

Every input ends in a ``Script``/``Account`` (exit 0 of ``validate``) or an
``InputError`` (exit 2) whose message is one line naming the file; never
another exception, never a hang, never a memory blow-up. Inputs: random
YAML text, random structures dumped to YAML, structures shaped like scripts
and accounts but with wrong types, huge strings, deep nesting, unicode,
binary bytes, and YAML alias bombs. The number of examples is bounded so the
whole file runs in seconds.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from test_error_words import PYDANTIC_ISMS

from matrix_bot_tester import language
from matrix_bot_tester.account import Account, load_account, parse_account
from matrix_bot_tester.cli import main
from matrix_bot_tester.errors import InputError
from matrix_bot_tester.script import Script, load_script, parse_script

FUZZ = settings(
    max_examples=200,
    deadline=2000,  # ms per example: far above a normal load, far below a hang
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples on every run: a CI failure can be re-run
    database=None,
)

# Scripts may 'include' fragments and 'send' files relative to their own folder:
# keep that folder empty, so random names find nothing of ours.
_FOLDER = Path(tempfile.mkdtemp(prefix="mbt-fuzz-"))
SCRIPT_PATH = str(_FOLDER / "fuzz.yaml")
ACCOUNT_PATH = str(_FOLDER / "account.yaml")

# Every key the script language knows, so that structures reach deep into the models.
SCRIPT_KEYS = sorted(
    {
        field
        for model in vars(language).values()
        if isinstance(model, type) and issubclass(model, BaseModel)
        for field in model.model_fields
    }
)
ACCOUNT_KEYS = ["user", "password", "access_token", "device_id", "homeserver_url", "user_to_test"]


# "Never a hang": a bound far above the normal (well under a second), so that a
# busy CI machine does not fail it, and far below what an alias bomb would take.
HANG = 15.0


def check_outcome(load: Any, source: Any, kind: type, seconds: float = HANG) -> None:
    """``load(source)`` gives a ``kind`` or an InputError with a one-line message, in time."""
    began = time.monotonic()
    try:
        value = load(source)
    except InputError as error:
        text = error.one_line()
        assert "\n" not in text and "\r" not in text, repr(text)
        assert text.strip(), "an empty error message"
        assert len(text) < 20_000, f"an error message of {len(text)} characters"
        for phrase in PYDANTIC_ISMS:
            assert phrase not in text, text
        assert error.exit_code == 2
    else:
        assert isinstance(value, kind)
    assert time.monotonic() - began < seconds


def check_script_text(text: str, seconds: float = HANG) -> None:
    check_outcome(lambda t: parse_script(t, SCRIPT_PATH), text, Script, seconds)


def check_account_text(text: str, seconds: float = HANG) -> None:
    check_outcome(lambda t: parse_account(t, ACCOUNT_PATH), text, Account, seconds)


def dump(value: Any) -> str:
    return yaml.safe_dump(value, allow_unicode=True, sort_keys=False)


# ------------------------------------------------------------------ strategies

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", "!dm", "!wait_for_message", "${HOME}", "${NOT_SET_ANYWHERE_42}", "~"]),
    st.dates(),
    st.binary(max_size=20),
)
structures = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(st.text(max_size=10), st.sampled_from(SCRIPT_KEYS)), inner),
    ),
    max_leaves=30,
)
script_steps = st.dictionaries(st.sampled_from(SCRIPT_KEYS), structures, max_size=4)
script_shaped = st.fixed_dictionaries(
    {"messages": st.one_of(st.lists(script_steps, max_size=4), structures)},
    optional={key: structures for key in ("room_to_connect", "timeout", "ignore", "cleanup")},
)
account_shaped = st.fixed_dictionaries(
    {},
    optional={key: st.one_of(structures, st.text(max_size=40)) for key in ACCOUNT_KEYS},
)
yaml_ish = st.lists(
    st.sampled_from(
        [
            "messages:",
            "  - send: hi",
            "    expect: ho",
            "  - ",
            "- ",
            ": ",
            "&a ",
            "*a",
            "!!python/object:os.system",
            "!tag ",
            "!!int ",
            "!!float ",
            "!!bool ",
            "!!timestamp ",
            "!!binary ",
            "!!set ",
            "!!omap ",
            "!!pairs ",
            "!!str ",
            "!!null ",
            "!!map ",
            "!!seq ",
            "x",
            "12",
            "[1, 2]",
            "{a: 1}",
            "<<: *a",
            "? ",
            "{",
            "}",
            "[",
            "]",
            "'",
            '"',
            "|",
            ">",
            "---",
            "...",
            "%YAML 1.1",
            "#",
            "\t",
            "user: '@a:b'",
            "password: x",
            "homeserver_url: http://h",
            "timeout: -1",
            "regex: '('",
            "include: x.yaml",
            "\ufeff",
            "\x00",
            "\x85",
        ]
    ),
    max_size=12,
).map("\n".join)
# Explicit tags whose constructors fail on a wrong value with plain Python errors.
tagged = st.lists(
    st.sampled_from(
        [
            "messages:",
            "  - send: ",
            "  - expect: ",
            "!!int x",
            "!!bool x",
            "!!binary ?",
            "!!timestamp 1",
            "!!float x",
            "!!set [1]",
            "!!omap [1]",
            "!!pairs {a: 1}",
            "!!map [1]",
            "!!seq {a: 1}",
        ]
    ),
    max_size=6,
).map(" ".join)
huge = st.integers(min_value=1, max_value=300_000).map(lambda n: "x" * n)
deep = st.integers(min_value=1, max_value=600)


# ------------------------------------------------------------------ scripts


@FUZZ
@given(st.text(max_size=400))
@example("")
@example("\x00")
@example("messages:\n  - send: hi\n")
def test_random_text_as_a_script(text: str) -> None:
    check_script_text(text)


@FUZZ
@given(st.one_of(yaml_ish, tagged))
def test_yaml_fragments_as_a_script(text: str) -> None:
    check_script_text(text)
    check_account_text(text)


@FUZZ
@given(structures)
def test_random_structures_as_a_script(value: Any) -> None:
    check_script_text(dump(value))


@FUZZ
@given(script_shaped)
@example({"messages": [{"send": {"file": "\x00"}}]})
@example({"messages": [{"include": "\x00"}]})
@example({"messages": [{"include": "../" * 50 + "etc/passwd"}]})
@example({"messages": [{"expect": {"body": {"regex": "(" * 1000}}}]})
@example({"messages": [{"expect": {"body": {"regex": "(?P<a>x)(?P<a>y)"}}}]})
@example({"messages": [{"send": "x" * 200_000}]})
@example({"messages": [{"expect_count": 10**30}]})
@example({"messages": [{"timeout": float("nan"), "send": "x"}]})
def test_script_shaped_structures_with_wrong_types(value: dict[str, Any]) -> None:
    check_script_text(dump(value))


@settings(FUZZ, max_examples=12)
@given(huge)
def test_huge_strings(text: str) -> None:
    check_script_text(f"messages:\n  - send: {text}\n    expect: '{text}'\n")
    check_script_text(text)
    check_account_text(f"user: '@{text}:x'\npassword: {text}\nhomeserver_url: http://{text}\n")


@settings(FUZZ, max_examples=12, deadline=None)
@given(deep, st.sampled_from(["[", "{a: ", "- ", "{"]))
@example(5_000, "[")
def test_deep_nesting(depth: int, opener: str) -> None:
    """Bounded, not fast: PyYAML's scanner is quadratic in the depth of flow
    collections ([[[...) until Python's recursion limit stops it (about 3 s at
    worst, whatever the file's size)."""
    closer = {"[": "]", "{a: ": "}", "{": "}", "- ": ""}[opener]
    if opener == "- ":
        text = "".join("  " * i + "- \n" for i in range(min(depth, 400)))
    else:
        text = opener * depth + "x" + closer * depth
    check_script_text("messages: " + text, seconds=3 * HANG)
    check_account_text("user: " + text, seconds=3 * HANG)


def _alias_bomb(levels: int, width: int, merge: bool) -> str:
    lines = ["a0: &a0 {x: 1}" if merge else "a0: &a0 [lol, lol]"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(
            f"a{level}: &a{level} {{<<: [{refs}]}}" if merge else f"a{level}: &a{level} [{refs}]"
        )
    lines.append(f"messages: *a{levels}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("merge", [False, True])
def test_yaml_alias_bombs_end_quickly(merge: bool) -> None:
    """A 500-byte 'billion laughs' must not expand into a billion values."""
    check_script_text(_alias_bomb(levels=9, width=9, merge=merge))
    check_account_text(_alias_bomb(levels=9, width=9, merge=merge).replace("messages", "user"))


def test_a_huge_key_is_named_briefly() -> None:
    items = ", ".join(["1"] * 30_000)
    check_script_text(f"a: &a [{items}]\n? *a\n: x\nmessages: [x]\n")


def test_a_recursive_alias_ends_in_an_input_error() -> None:
    check_script_text("messages: &m\n  - send: hi\n  - include: *m\n")
    check_script_text("messages: &m [*m]\n")


# ------------------------------------------------------------------ accounts


@FUZZ
@given(st.text(max_size=400))
@example("user: '@a:b'\npassword: x\nhomeserver_url: http://h\n")
def test_random_text_as_an_account(text: str) -> None:
    check_account_text(text)


@FUZZ
@given(account_shaped)
@example({"user": "@a:b", "password": "x", "homeserver_url": "http://h"})
@example({"user": "@a:b", "password": ["x"], "homeserver_url": "http://h"})
@example({"user": "@a:b", "access_token": {"x": 1}, "homeserver_url": "http://[::1"})
def test_account_shaped_structures_with_wrong_types(value: dict[str, Any]) -> None:
    check_account_text(dump(value))


@FUZZ
@given(structures)
def test_random_structures_as_an_account(value: Any) -> None:
    check_account_text(dump(value))


# ------------------------------------------------------------------ files


@FUZZ
@given(st.binary(max_size=2_000))
@example(b"\xff\xfe\x00\x00")
@example(b"\xef\xbb\xbfmessages:\n  - send: hi\n")
@example(b"messages:\n  - send: \xc3\x28\n")
def test_binary_files(data: bytes) -> None:
    path = _FOLDER / "binary.yaml"
    path.write_bytes(data)
    check_outcome(load_script, path, Script)
    check_outcome(load_account, path, Account)


@settings(FUZZ, max_examples=40, suppress_health_check=list(HealthCheck))
@given(
    data=st.one_of(
        st.binary(max_size=300), yaml_ish.map(str.encode), structures.map(dump).map(str.encode)
    )
)
def test_validate_exits_0_or_2_with_one_line(
    data: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command itself: exit 0 or 2, and on 2 exactly one line on stderr."""
    path = _FOLDER / "validate.yaml"
    path.write_bytes(data)
    capsys.readouterr()
    code = main(["validate", str(path), "--account", str(path)])
    out, err = capsys.readouterr()
    assert code in (0, 2)
    assert "Traceback" not in out + err
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert 1 <= len(lines) <= 2, err  # one per file: the script and the account
        assert all(line.startswith("error: ") for line in lines), err


def test_a_file_that_is_too_big_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with open(path, "wb") as handle:
        handle.truncate(50_000_000)  # sparse: no disk, no memory
    check_outcome(load_script, path, Script)
    check_outcome(load_account, path, Account)


@pytest.mark.parametrize("kind", ["missing", "directory", "fifo"])
def test_a_path_that_is_no_readable_file_is_an_input_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "thing.yaml"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # reading it would block forever
    for load in (load_script, load_account):
        with pytest.raises(InputError) as caught:
            load(path)
        assert str(path) in caught.value.one_line()
