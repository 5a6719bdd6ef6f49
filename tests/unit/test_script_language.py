"""The richer script language at load time: every key, includes, env, names and placeholders.

Every mistake must be an InputError naming file:line:col with a message that
says what to do, raised while loading, that is before anything is sent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from matrix_bot_tester.errors import InputError
from matrix_bot_tester.language import Expectation, SendMessage, Step, TextMatch
from matrix_bot_tester.script import Script, load_script
from matrix_bot_tester.variables import BUILTINS, fill, fill_all, placeholders


def write(directory: Path, text: str, name: str = "script.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Script:
    return load_script(write(tmp_path, text))


def load_error(tmp_path: Path, text: str, name: str = "script.yaml") -> tuple[InputError, Path]:
    path = write(tmp_path, text, name)
    with pytest.raises(InputError) as caught:
        load_script(path)
    return caught.value, path


def assert_at(error: InputError, path: Path | str, line: int, column: int) -> None:
    assert str(error).startswith(f"{path}:{line}:{column}: "), str(error)
    assert (error.path, error.line, error.column) == (str(path), line, column)
    assert error.exit_code == 2


def only_step(script: Script) -> Step:
    assert len(script.steps) == 1
    return script.steps[0].spec


NAMED = "messages:\n  - send: hi\n    name: m\n"
"""A first step that names the message 'm', for scripts that refer to it."""


# ----------------------------------------------------------- every step key


@pytest.mark.parametrize(
    ("step", "action"),
    [
        ("send: hi", "send"),
        ("send: {text: hi, msgtype: m.notice}", "send"),
        ("send: {text: hi, msgtype: m.emote}", "send"),
        ("send: {markdown: '**hi**'}", "send"),
        ("send: {html: '<b>hi</b>'}", "send"),
        ("send: {text: hi, reply_to: m, thread: m, mentions: ['@a:b.c']}", "send"),
        ("react: {to: m, key: '👍'}", "react"),
        ("edit: {message: m, text: better}", "edit"),
        ("edit: {message: m, markdown: '*better*'}", "edit"),
        ("edit: {message: m, html: '<i>better</i>'}", "edit"),
        ("redact: m", "redact"),
        ("redact: {message: m, reason: oops}", "redact"),
        ("typing: true", "typing"),
        ("typing: false", "typing"),
        ("typing: 2.5", "typing"),
        ("read_receipt: m", "read_receipt"),
        ("send_event: {type: org.example.ping, content: {n: 1}}", "send_event"),
        ("wait: 0.5", "wait"),
    ],
)
def test_every_action_loads(tmp_path: Path, step: str, action: str) -> None:
    script = load(tmp_path, f"{NAMED}  - {step}\n")
    assert script.steps[1].spec.action == action


@pytest.mark.parametrize(
    "expectation",
    [
        "expect: pong",
        "expect: [one, two]",
        "expect: {body: pong, msgtype: m.notice, sender: '@bot:b.c', type: m.room.message}",
        "expect: {body: {contains: po}}",
        "expect: {body: {regex: 'p.ng'}}",
        "expect: {body: {one_of: [pong, PONG], ignore_case: true, normalize_whitespace: true}}",
        "expect: {text: pong, html: '<b>pong</b>', msgtype: [m.text, m.notice]}",
        "expect: {reply_to: m, thread: m, mentions: '@a:b.c'}",
        "expect: {reply_to: false, mentions: ['@a:b.c']}",
        "expect: {reaction: {key: '👍', to: m}}",
        "expect: {redaction: {of: m}}",
        "expect: {media: {mimetype: image/png, filename: x.png, size: 3, downloadable: true}}",
        "expect: {fields: {content.m.relates_to.rel_type: m.thread, content.n: 3}}",
        "expect: {body: pong, name: answer, save: {answer_id: event_id}}",
        "expect_unordered: [one, {body: two}]",
        "expect_count: 3",
        "expect_no_reply: 1.5",
        "expect: pong\n    within: 2\n    settle: 1\n    ignore: [typing..., {sender: '@x:b.c'}]",
        "expect: pong\n    timeout: 4",
    ],
)
def test_every_expectation_loads(tmp_path: Path, expectation: str) -> None:
    script = load(tmp_path, f"{NAMED}  - {expectation}\n")
    step = script.steps[1].spec
    assert step.action is None
    assert any(
        getattr(step, key) is not None
        for key in ("expect", "expect_unordered", "expect_count", "expect_no_reply")
    )


def test_script_level_keys_load(tmp_path: Path) -> None:
    script = load(
        tmp_path,
        "room_to_connect: '#bots:example.org'\ntimeout: 3\nwait_for_join: false\n"
        "ignore:\n  - {msgtype: m.notice, body: {contains: typing}}\nmessages:\n  - send: hi\n",
    )
    assert (script.room, script.timeout, script.wait_for_join) == ("#bots:example.org", 3, False)
    assert script.ignore == (Expectation(msgtype="m.notice", body=TextMatch(contains="typing")),)


def test_script_ignore_may_use_builtins(tmp_path: Path) -> None:
    script = load(tmp_path, "ignore:\n  - {body: '{{x}} {me}'}\nmessages:\n  - send: hi\n")
    assert script.ignore == (Expectation(body="{{x}} {me}"),)


def test_script_ignore_with_an_undefined_placeholder_is_an_error(tmp_path: Path) -> None:
    # Regression: it loaded, and then matched the braces literally.
    error, path = load_error(
        tmp_path, "ignore:\n  - noise\n  - {body: '{order}'}\nmessages:\n  - send: hi\n"
    )
    assert_at(error, path, 3, 5)
    assert "ignore: {order} has no value before the first step" in str(error)


def test_plain_expect_text_is_an_exact_body_expectation(tmp_path: Path) -> None:
    step = only_step(load(tmp_path, "messages:\n  - expect: pong\n"))
    assert step.expectations() == [Expectation(body="pong")]


def test_send_mapping_loads_as_send_message(tmp_path: Path) -> None:
    step = only_step(load(tmp_path, "messages:\n  - send: {markdown: '*hi*', mentions: [a]}\n"))
    assert step.send == SendMessage(markdown="*hi*", mentions=["a"])


# -------------------------------------------------------------- unknown keys


def test_unknown_key_in_send_points_at_that_key(tmp_path: Path) -> None:
    error, path = load_error(
        tmp_path, "messages:\n  - send:\n      text: hi\n      mentoins: [a]\n"
    )
    assert_at(error, path, 4, 7)
    assert "unknown key 'mentoins'" in str(error)
    assert error.hint == "check the spelling; see docs/script-language.md"


def test_unknown_key_in_expect_points_at_that_key(tmp_path: Path) -> None:
    error, path = load_error(
        tmp_path, "messages:\n  - send: hi\n    expect:\n      body: x\n      bdy: y\n"
    )
    assert_at(error, path, 5, 7)
    assert "unknown key 'bdy'" in str(error)


def test_unknown_key_in_an_expect_list_item_points_at_that_key(tmp_path: Path) -> None:
    error, path = load_error(
        tmp_path, "messages:\n  - send: hi\n    expect:\n      - body: x\n      - bdy: y\n"
    )
    assert_at(error, path, 5, 9)
    assert "unknown key 'bdy'" in str(error)


def test_unknown_key_in_a_text_match_points_at_that_key(tmp_path: Path) -> None:
    error, path = load_error(
        tmp_path, "messages:\n  - send: hi\n    expect:\n      body:\n        regx: y\n"
    )
    assert_at(error, path, 5, 9)
    assert "unknown key 'regx'" in str(error)


def test_unknown_key_in_react_points_at_that_key(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, f"{NAMED}  - react:\n      to: m\n      kee: x\n")
    assert_at(error, path, 6, 7)
    assert "unknown key 'kee'" in str(error)


def test_unknown_key_in_script_level_ignore_points_at_that_key(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "ignore:\n  - bdy: x\nmessages:\n  - send: hi\n")
    assert_at(error, path, 2, 5)
    assert "unknown key 'bdy'" in str(error)


# ------------------------------------------------------------- step shapes


def test_two_actions_in_one_step_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, f"{NAMED}  - send: hi\n    react: {{to: m, key: x}}\n")
    assert_at(error, path, 4, 5)
    assert "a step does one thing; split send and react into separate steps" in str(error)


def test_two_kinds_of_expectation_in_one_step_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(
        tmp_path, "messages:\n  - send: hi\n    expect: a\n    expect_count: 2\n"
    )
    assert_at(error, path, 2, 5)
    assert "split expect and expect_count into separate steps" in str(error)


@pytest.mark.parametrize("step", ["expect: a\n    name: m", "typing: true\n    name: m"])
def test_name_on_a_step_that_sends_nothing_is_an_error(tmp_path: Path, step: str) -> None:
    error, path = load_error(tmp_path, f"messages:\n  - {step}\n")
    assert_at(error, path, 2, 5)
    assert "'name' names the event a step sends; this step sends none" in str(error)
    assert error.hint == "to name a received message, put 'name' inside 'expect'"


@pytest.mark.parametrize("modifier", ["within: 2", "settle: 2", "ignore: [x]"])
def test_modifier_without_an_expectation_is_an_error(tmp_path: Path, modifier: str) -> None:
    error, path = load_error(tmp_path, f"messages:\n  - send: hi\n    {modifier}\n")
    assert_at(error, path, 2, 5)
    assert "apply to an expectation in the same step" in str(error)


def test_regex_that_does_not_compile_points_at_it(tmp_path: Path) -> None:
    error, path = load_error(
        tmp_path, "messages:\n  - send: hi\n    expect:\n      body: {regex: 'a(b'}\n"
    )
    assert_at(error, path, 4, 13)
    assert "messages.0.expect.body: the regex does not compile: missing )" in str(error)
    assert error.hint is not None
    assert "escapes" in error.hint


def test_two_text_modes_are_an_error(tmp_path: Path) -> None:
    error, path = load_error(
        tmp_path, "messages:\n  - expect:\n      body:\n        exact: a\n        contains: b\n"
    )
    assert_at(error, path, 4, 9)
    assert "needs exactly one of 'exact', 'contains', 'regex', 'one_of' (got exact, contains)" in (
        str(error)
    )


def test_text_msgtype_on_a_file_send_is_refused(tmp_path: Path) -> None:
    error, path = load_error(
        tmp_path, "messages:\n  - send:\n      text: hi\n      msgtype: m.image\n"
    )
    assert_at(error, path, 3, 7)
    assert "msgtype m.image does not fit this message" in str(error)


# ------------------------------------------------------------- placeholders


def test_undefined_variable_in_send_points_at_send(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - send: hi\n  - send: 'hi {who}'\n")
    assert_at(error, path, 3, 5)
    assert "send: {who} is not defined by an earlier step" in str(error)
    assert error.hint is not None
    assert "{{ and }}" in error.hint


def test_undefined_variable_in_expect_points_at_expect(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - send: hi\n    expect: 'hi {who}'\n")
    assert_at(error, path, 3, 5)
    assert "expect: {who} is not defined by an earlier step" in str(error)


def test_undefined_variable_in_send_event_content_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(
        tmp_path, "messages:\n  - send_event: {type: x.y, content: {a: '{v}'}}\n"
    )
    assert_at(error, path, 2, 5)
    assert "send_event: {v} is not defined" in str(error)


def test_event_id_of_an_unnamed_message_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - send: hi\n  - send: 'id {x.event_id}'\n")
    assert_at(error, path, 3, 5)
    assert "send: {x.event_id} is not defined by an earlier step" in str(error)


def test_event_id_of_a_named_message_is_defined(tmp_path: Path) -> None:
    script = load(tmp_path, f"{NAMED}  - send: 'id {{m.event_id}}'\n")
    assert script.steps[1].send == "id {m.event_id}"


def test_a_variable_is_not_an_event_id(tmp_path: Path) -> None:
    # 'save' defines a value, not a message: {id.event_id} needs a named message.
    error, path = load_error(
        tmp_path,
        "messages:\n  - expect: {body: x, save: {v: event_id}}\n  - send: '{v.event_id}'\n",
    )
    assert_at(error, path, 3, 5)


@pytest.mark.parametrize("builtin", BUILTINS)
def test_builtins_are_always_defined(tmp_path: Path, builtin: str) -> None:
    script = load(
        tmp_path, f"messages:\n  - send: 'x {{{builtin}}}'\n    expect: '{{{builtin}}}'\n"
    )
    assert script.steps[0].send == f"x {{{builtin}}}"


def test_builtins_are_me_bot_room_id_and_run_id() -> None:
    assert BUILTINS == ("me", "bot", "room_id", "run_id")


def test_doubled_braces_are_not_placeholders(tmp_path: Path) -> None:
    script = load(tmp_path, "messages:\n  - send: 'a {{b}} c'\n    expect: '{{x}}'\n")
    assert (script.steps[0].send, script.steps[0].expect) == ("a {{b}} c", "{{x}}")


def test_regex_quantifiers_are_not_placeholders(tmp_path: Path) -> None:
    script = load(tmp_path, "messages:\n  - expect: {body: {regex: '\\d{3}-\\w{2,4}'}}\n")
    assert len(script.steps) == 1


def test_regex_named_groups_define_variables_for_later_steps(tmp_path: Path) -> None:
    script = load(
        tmp_path,
        "messages:\n  - send: order\n    expect: {body: {regex: 'order (?P<order>\\d+)'}}\n"
        "  - send: 'cancel {order}'\n",
    )
    assert script.steps[1].send == "cancel {order}"


def test_regex_groups_are_not_defined_for_the_same_steps_send(tmp_path: Path) -> None:
    error, path = load_error(
        tmp_path, "messages:\n  - send: 'x {n}'\n    expect: {body: {regex: 'n=(?P<n>\\d+)'}}\n"
    )
    assert_at(error, path, 2, 5)
    assert "{n} is not defined by an earlier step" in str(error)


def test_save_defines_variables_for_later_steps(tmp_path: Path) -> None:
    script = load(
        tmp_path,
        "messages:\n  - expect: {body: x, save: {eid: event_id}}\n  - send: 'got {eid}'\n",
    )
    assert script.steps[1].send == "got {eid}"


def test_regex_group_in_an_unordered_expectation_defines_a_variable(tmp_path: Path) -> None:
    script = load(
        tmp_path,
        "messages:\n  - expect_unordered: [a, {body: {regex: '(?P<n>\\d)'}}]\n  - send: '{n}'\n",
    )
    assert script.steps[1].send == "{n}"


# ---------------------------------------------------- names used before defined


@pytest.mark.parametrize(
    ("step", "key", "line", "column"),
    [
        ("send: {text: hi, reply_to: m}", "send", 2, 5),
        ("send: {text: hi, thread: m}", "send", 2, 5),
        ("react: {to: m, key: x}", "react", 2, 5),
        ("edit: {message: m, text: x}", "edit", 2, 5),
        ("redact: m", "redact", 2, 5),
        ("redact: {message: m, reason: r}", "redact", 2, 5),
        ("read_receipt: m", "read_receipt", 2, 5),
        ("send: hi\n    expect: {body: x, reply_to: m}", "expect", 3, 5),
        ("send: hi\n    expect: {body: x, thread: m}", "expect", 3, 5),
        ("send: hi\n    expect: {reaction: {to: m}}", "expect", 3, 5),
        ("send: hi\n    expect: {redaction: {of: m}}", "expect", 3, 5),
        ("send: hi\n    expect_unordered: [a, {reply_to: m}]", "expect_unordered", 3, 5),
    ],
)
def test_message_name_used_before_it_is_defined_is_an_error(
    tmp_path: Path, step: str, key: str, line: int, column: int
) -> None:
    # 'm' is named, but only by the step after the one that uses it.
    error, path = load_error(tmp_path, f"messages:\n  - {step}\n  - send: later\n    name: m\n")
    assert_at(error, path, line, column)
    assert f"{key}: no earlier step names a message 'm'" in str(error)
    assert error.hint == "give the message a 'name' in the step that sends or expects it"


def test_expectation_may_refer_to_the_message_its_own_step_names(tmp_path: Path) -> None:
    script = load(tmp_path, "messages:\n  - send: hi\n    name: m\n    expect: {reply_to: m}\n")
    assert only_step(script).expectations()[0].reply_to == "m"


def test_a_message_named_in_expect_can_be_used_later(tmp_path: Path) -> None:
    script = load(
        tmp_path,
        "messages:\n  - expect: {body: hi, name: greeting}\n  - react: {to: greeting, key: x}\n",
    )
    assert script.steps[1].spec.action == "react"


# --------------------------------------------------------------------- files


def test_send_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - send: hi\n  - send: {file: nope.png}\n")
    assert_at(error, path, 3, 5)
    assert "send: file 'nope.png' not found" in str(error)
    assert error.hint == f"the path is relative to {tmp_path}"


def test_send_file_is_found_next_to_the_script(tmp_path: Path) -> None:
    (tmp_path / "cat.png").write_bytes(b"\x89PNG")
    step = only_step(load(tmp_path, "messages:\n  - send: {file: cat.png}\n"))
    assert isinstance(step.send, SendMessage)
    assert step.send.file == "cat.png"


# ------------------------------------------------------------------ includes


FRAGMENT = "# greeting\nmessages:\n  - send: hello\n    name: greeting\n  - expect: hi\n"


def test_include_expands_in_place(tmp_path: Path) -> None:
    write(tmp_path, FRAGMENT, "greet.yaml")
    script = load(tmp_path, "messages:\n  - send: first\n  - include: greet.yaml\n  - send: last\n")
    assert [(s.index, s.send, s.expect) for s in script.steps] == [
        (0, "first", None),
        (1, "hello", None),
        (2, None, "hi"),
        (3, "last", None),
    ]


def test_included_steps_keep_their_own_file_and_line(tmp_path: Path) -> None:
    fragment = write(tmp_path, FRAGMENT, "greet.yaml")
    path = write(tmp_path, "messages:\n  - send: first\n  - include: greet.yaml\n  - send: last\n")
    script = load_script(path)
    assert [(s.path, s.line) for s in script.steps] == [
        (str(path), 2),
        (str(fragment.resolve()), 3),
        (str(fragment.resolve()), 5),
        (str(path), 4),
    ]


def test_names_from_an_included_fragment_are_usable_after_it(tmp_path: Path) -> None:
    write(tmp_path, FRAGMENT, "greet.yaml")
    script = load(
        tmp_path, "messages:\n  - include: greet.yaml\n  - react: {to: greeting, key: x}\n"
    )
    assert script.steps[-1].spec.action == "react"


def test_fragment_can_include_a_fragment_in_a_subdirectory(tmp_path: Path) -> None:
    (tmp_path / "parts").mkdir()
    write(tmp_path / "parts", "messages:\n  - include: inner.yaml\n", "outer.yaml")
    write(tmp_path / "parts", "messages:\n  - send: deep\n", "inner.yaml")
    script = load(tmp_path, "messages:\n  - include: parts/outer.yaml\n")
    assert [s.send for s in script.steps] == ["deep"]


def test_include_of_a_missing_file_points_at_the_include(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - send: x\n  - include: nope.yaml\n")
    assert_at(error, path, 3, 14)
    assert "included file 'nope.yaml' not found" in str(error)
    assert error.hint == f"the path is relative to {tmp_path}"


def test_include_of_a_folder_says_it_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "parts").mkdir()
    error, path = load_error(tmp_path, "messages:\n  - include: parts\n")
    assert_at(error, path, 2, 14)
    assert "included file 'parts' is a folder" in str(error)


def test_include_cycle_is_an_error_naming_the_cycle(tmp_path: Path) -> None:
    write(tmp_path, "messages:\n  - send: b\n  - include: a.yaml\n", "b.yaml")
    error, _ = load_error(tmp_path, "messages:\n  - include: b.yaml\n", "a.yaml")
    assert_at(error, tmp_path / "b.yaml", 3, 14)
    assert "include cycle: a.yaml -> b.yaml -> a.yaml" in str(error)
    assert error.hint == "a fragment must not include itself, directly or not"


def test_self_include_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(
        tmp_path, "messages:\n  - send: x\n  - include: self.yaml\n", "self.yaml"
    )
    assert_at(error, path, 3, 14)
    assert "include cycle: self.yaml -> self.yaml" in str(error)


def test_including_the_same_fragment_twice_is_no_cycle(tmp_path: Path) -> None:
    write(tmp_path, "messages:\n  - send: again\n", "again.yaml")
    script = load(tmp_path, "messages:\n  - include: again.yaml\n  - include: again.yaml\n")
    assert [s.send for s in script.steps] == ["again", "again"]


def test_error_inside_a_fragment_points_into_the_fragment(tmp_path: Path) -> None:
    fragment = write(tmp_path, "messages:\n  - send: y\n    bogus: 1\n", "bad.yaml")
    error, _ = load_error(tmp_path, "messages:\n  - include: bad.yaml\n")
    assert_at(error, fragment.resolve(), 3, 5)
    assert "unknown key 'bogus'" in str(error)


def test_undefined_variable_in_a_fragment_points_into_the_fragment(tmp_path: Path) -> None:
    fragment = write(tmp_path, "messages:\n  - send: hi\n  - send: 'x {nope}'\n", "undef.yaml")
    error, _ = load_error(tmp_path, "messages:\n  - include: undef.yaml\n")
    assert_at(error, fragment.resolve(), 3, 5)
    assert "send: {nope} is not defined by an earlier step" in str(error)


# ----------------------------------------------------------------------- env


def test_unset_environment_variable_is_an_error_at_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MBT_TEST_UNSET", raising=False)
    error, path = load_error(tmp_path, "messages:\n  - send: hi\n  - send: 'x ${MBT_TEST_UNSET}'\n")
    assert_at(error, path, 3, 11)
    assert "environment variable MBT_TEST_UNSET is not set" in str(error)
    assert error.hint == "export MBT_TEST_UNSET=... before running"


def test_environment_variable_is_substituted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MBT_TEST_WORD", "sesame")
    step = only_step(load(tmp_path, "messages:\n  - send: 'open ${MBT_TEST_WORD}'\n"))
    assert step.send == "open sesame"


def test_unset_environment_variable_in_a_fragment_points_into_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MBT_TEST_UNSET", raising=False)
    fragment = write(tmp_path, "messages:\n  - send: '${MBT_TEST_UNSET}'\n", "env.yaml")
    error, _ = load_error(tmp_path, "messages:\n  - include: env.yaml\n")
    assert_at(error, fragment.resolve(), 2, 11)


# ------------------------------------------------------------- variables.py


def test_placeholders_lists_names_and_event_id_references() -> None:
    assert list(placeholders("{a} {{b}} {c.event_id} \\d{3}")) == [("a", False), ("c", True)]


def test_fill_replaces_values_and_unescapes_doubled_braces() -> None:
    assert fill("{a} {{b}} {m.event_id}", {"a": "1"}, {"m": "$e"}) == "1 {b} $e"


def test_fill_all_escapes_values_put_into_a_regex() -> None:
    match = TextMatch(regex="total: {price}")
    filled = fill_all(match, {"price": "1.50 (EUR)"}, {})
    assert filled.regex == "total: 1\\.50\\ \\(EUR\\)"


def test_fill_all_does_not_escape_values_in_exact_text() -> None:
    filled = fill_all(Expectation(body="total: {price}"), {"price": "1.50 (EUR)"}, {})
    assert filled.body == "total: 1.50 (EUR)"


def test_true_target_on_a_step_that_sends_nothing_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - expect: {body: hi, reply_to: true}\n")
    assert_at(error, path, 2, 5)
    assert "'true' means this step's message, but it sends none" in str(error)


def test_later_item_of_an_expect_list_may_use_an_earlier_items_name(tmp_path: Path) -> None:
    script = load(tmp_path, "messages:\n  - expect: [{body: root, name: root}, {thread: root}]\n")
    assert len(script.steps) == 1


def test_expectations_may_use_the_event_id_of_their_own_steps_message(tmp_path: Path) -> None:
    script = load(
        tmp_path,
        "messages:\n  - send: hi\n    name: q\n    expect: {fields: {content.x: '{q.event_id}'}}\n",
    )
    assert script.steps[0].spec.name == "q"
