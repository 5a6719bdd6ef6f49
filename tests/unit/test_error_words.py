"""Validation errors in the words of the file's author: no pydantic terms, no class names.

pydantic's own messages ("Input tag 'list' found using _shape_of() ...",
"List should have at least 1 item after validation") speak of our models,
not of the file; yamlfile.validation_error translates each kind of error.
"""

from __future__ import annotations

import pytest
import yaml

from matrix_bot_tester.account import parse_account
from matrix_bot_tester.errors import InputError
from matrix_bot_tester.script import parse_script

# Phrases that give away pydantic or our models' insides.
PYDANTIC_ISMS = (
    "Input tag",
    "_shape_of",
    "after validation",
    "Input should be",
    "type=",
    "pydantic",
    "should have at least",
    "String should",
    "Value error",
    "constrained-",
    "tagged-union",
    "[str",
)


def assert_plain(error: InputError) -> None:
    text = error.one_line()
    for phrase in PYDANTIC_ISMS:
        assert phrase not in text, text


def script_error(text: str) -> InputError:
    with pytest.raises(InputError) as caught:
        parse_script(text, "s.yaml")
    assert_plain(caught.value)
    return caught.value


# Each entry: a bad script and the message it must give (after "s.yaml:L:C: ").
PLAIN = {
    "messages:\n  - send: [a, b]\n": (
        "2:11",
        "messages.0.send: expected text or a mapping (send: TEXT or send: {text: ...}), got a list",
    ),
    "messages:\n  - expect: [[x]]\n": (
        "2:14",
        "messages.0.expect.0: expected text or a mapping (expect: TEXT or expect: {body: ...}),"
        " got a list",
    ),
    "messages: []\n": ("1:11", "'messages' is empty: give at least one step"),
    "messages:\n  - expect_unordered: []\n": (
        "2:23",
        "'messages.0.expect_unordered' is empty: give at least one expectation",
    ),
    "messages:\n  - typing: abc\n": (
        "2:13",
        "messages.0.typing: expected true/false or a number, got text",
    ),
    "messages:\n  - expect: {reply_to: [1]}\n": (
        "2:24",
        "messages.0.expect.reply_to: expected text or true/false, got a list",
    ),
    "messages:\n  - expect_count: 1.5\n": (
        "2:19",
        "messages.0.expect_count: expected a whole number, got a number with a fraction",
    ),
    "messages:\n  - wait: 0\n": ("2:11", "messages.0.wait: must be more than 0"),
    "messages:\n  - wait: 100000\n": ("2:11", "messages.0.wait: must be at most 86400"),
    "messages:\n  - send_event: {type: ''}\n": (
        "2:24",
        "messages.0.send_event.type: must not be empty",
    ),
    "messages:\n  - send: x\n    name: 'a b'\n": (
        "3:11",
        "messages.0.name: must be a name of letters, digits and _ that does not start with a digit",
    ),
    "tags: ['a b']\nmessages:\n  - send: x\n": (
        "1:8",
        "tags.0: must be a tag of letters, digits, _, . and - that starts with a letter,"
        " digit or _",
    ),
    "cleanup: maybe\nmessages:\n  - send: x\n": ("1:10", "cleanup: expected true/false, got text"),
    "messages:\n  - react: x\n": (
        "2:12",
        "messages.0.react: expected 'key: value' entries, got text",
    ),
}


@pytest.mark.parametrize("text", PLAIN)
def test_each_kind_of_error_is_said_plainly(text: str) -> None:
    where, message = PLAIN[text]
    assert str(script_error(text)) == f"s.yaml:{where}: {message}"


BAD_SCRIPTS = [
    *PLAIN,
    "messages: x\n",
    "messages:\n  - x\n",
    "messages:\n  - {}\n",
    "messages:\n  - send: {text: x, mentions: x}\n",
    "messages:\n  - send: {text: x, msgtype: m.image}\n",
    "messages:\n  - send: {text: x, html: y}\n",
    "messages:\n  - include: ''\n",
    "messages:\n  - include: [a]\n",
    "messages:\n  - redact: [a]\n",
    "messages:\n  - redact: {message: 1a}\n",
    "messages:\n  - react: {to: m}\n",
    "messages:\n  - edit: {message: m}\n",
    "messages:\n  - expect: {msgtype: {a: 1}}\n",
    "messages:\n  - expect: {fields: {a: [1]}}\n",
    "messages:\n  - expect: {body: {one_of: []}}\n",
    "messages:\n  - expect: {body: {exact: a, ignore_case: 2}}\n",
    "messages:\n  - expect: {body: {regex: '('}}\n",
    "messages:\n  - expect: {body: {}}\n",
    "messages:\n  - expect: {media: {size: -1}}\n",
    "messages:\n  - expect: {media: {size: x}}\n",
    "messages:\n  - expect: {reaction: {}, media: {}}\n",
    "messages:\n  - expect: {save: {'1a': x}}\n",
    "messages:\n  - expect: {save: [x]}\n",
    "messages:\n  - expect: []\n",
    "messages:\n  - expect_count: 0\n",
    "messages:\n  - expect_count: true\n",
    "messages:\n  - expect_no_reply: x\n",
    "messages:\n  - send: x\n    react: {to: a, key: b}\n",
    "messages:\n  - send: x\n    within: -1\n",
    "messages:\n  - send_event: {type: x, content: [1]}\n",
    "messages:\n  - send_event: x\n",
    "messages:\n  - typing: -1\n",
    "messages:\n  - wait: .nan\n",
    "messages:\n  - read_receipt: 5\n",
    "timeout: abc\nmessages:\n  - send: x\n",
    "timeout: [1]\nmessages:\n  - send: x\n",
    "tags: x\nmessages:\n  - send: x\n",
    "room_to_connect: x\nmessages:\n  - send: x\n",
    "room_to_connect: [x]\nmessages:\n  - send: x\n",
    "wait_for_join: 3\nmessages:\n  - send: x\n",
    "alone: 2024-01-01\nmessages:\n  - send: x\n",
    "ignore: x\nmessages:\n  - send: x\n",
    "ignore: [[x]]\nmessages:\n  - send: x\n",
    "timeout: 3\n",
    "- send: x\n",
]


@pytest.mark.parametrize("text", BAD_SCRIPTS)
def test_no_script_error_speaks_pydantic(text: str) -> None:
    script_error(text)


BASE = "user: '@a:example.org'\nhomeserver_url: http://h.example.org\n"
BAD_ACCOUNTS = [
    "user: 5\nhomeserver_url: http://x\npassword: p\n",
    "user: [a]\nhomeserver_url: http://x\npassword: p\n",
    "homeserver_url: http://x\npassword: p\n",
    BASE,
    BASE + "password: ''\n",
    BASE + "password: {a: 1}\n",
    BASE + "password: x\naccess_token: y\n",
    BASE + "password: x\ndevice_id: [1]\n",
    BASE + "password: x\nuser_to_test: bob\n",
    "user: '@a:b'\nhomeserver_url: ftp://x\npassword: p\n",
    "messages:\n  - send: x\n",
]


@pytest.mark.parametrize("text", BAD_ACCOUNTS)
def test_no_account_error_speaks_pydantic(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_account(text, "a.yaml")
    assert_plain(caught.value)


def test_an_account_file_given_as_a_script_says_so() -> None:
    error = script_error(BASE + "password: x\n")
    assert str(error) == "s.yaml:1:1: unknown key 'user'"
    assert error.hint == (
        "this looks like an account file, not a script: a script has a 'messages' list"
        " of steps; give an account file with --account"
    )


def test_an_unknown_script_key_points_at_the_language_docs() -> None:
    error = script_error("messages:\n  - sned: x\n")
    assert str(error) == "s.yaml:2:5: unknown key 'sned'"
    assert error.hint == "check the spelling; see docs/script-language.md"


def test_an_unknown_key_inside_a_step_is_no_account_key() -> None:
    # 'user' is an account key only at the top of a file.
    error = script_error("messages:\n  - send: x\n    user: y\n")
    assert error.hint == "check the spelling; see docs/script-language.md"


def test_a_rule_about_the_whole_file_is_said_without_a_key() -> None:
    with pytest.raises(InputError) as caught:
        parse_account(BASE, "a.yaml")
    assert str(caught.value) == "a.yaml:1:1: the account needs 'password' or 'access_token'"


def test_a_number_that_is_not_finite_is_named() -> None:
    error = script_error("messages:\n  - wait: .nan\n")
    assert str(error) == "s.yaml:2:11: messages.0.wait: must be a finite number, not nan"


def test_a_number_yaml_reads_as_text_gets_the_plain_way_to_write_it() -> None:
    # YAML 1.1 (PyYAML) takes 1e3 for text: it wants 1.0e+3.
    error = script_error("timeout: 1e3\nmessages:\n  - send: x\n")
    assert str(error) == "s.yaml:1:10: timeout: expected a number, got text"
    assert error.hint == "write it as a plain number: 1000"


@pytest.mark.parametrize(
    ("written", "hint"), [("1e9", "1000000000"), ("1e+308", "1.0e+308"), ("25e-4", "0.0025")]
)
def test_the_number_hint_is_itself_a_number_to_yaml(written: str, hint: str) -> None:
    error = script_error(f"timeout: {written}\nmessages:\n  - send: x\n")
    assert error.hint == f"write it as a plain number: {hint}"
    assert isinstance(yaml.safe_load(f"n: {hint}")["n"], int | float)


def test_a_number_where_text_belongs_is_told_to_be_quoted() -> None:
    with pytest.raises(InputError) as caught:
        parse_account(BASE + "password: 12345\n", "a.yaml")
    assert str(caught.value) == "a.yaml:3:11: password: expected text, got a number"
    assert caught.value.hint == "put it in quotes to make it text: '...'"
    assert "12345" not in caught.value.one_line()  # a password, even a bad one
