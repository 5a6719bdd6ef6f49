"""The script language: loading, defaults, and errors that point at file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from matrix_bot_tester.errors import InputError
from matrix_bot_tester.script import DEFAULT_STEP_TIMEOUT, Role, Script, load_script, parse_script

# The original tool's files, byte for byte (also in /work/shared/seed/original-test-data).
SEED = Path(__file__).parent.parent / "data" / "original"


def write(tmp_path: Path, text: str, name: str = "script.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> tuple[InputError, Path]:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_script(path)
    return caught.value, path


def assert_points_at(error: InputError, path: Path, line: int, column: int | None = None) -> None:
    where = f"{path}:{line}:" if column is None else f"{path}:{line}:{column}:"
    assert str(error).startswith(where), str(error)
    assert error.one_line().startswith(where)
    assert error.line == line
    assert error.exit_code == 2


def steps_of(script: Script) -> list[tuple[int, str | None, str | None]]:
    return [(step.line, step.send, step.expect) for step in script.steps]


# --------------------------------------------------------------- the original files


def test_seed_files_are_present() -> None:
    assert len(sorted(SEED.glob("*replay*.yaml"))) == 4


def test_bot_replay_is_bot_role_with_its_seven_steps() -> None:
    script = load_script(SEED / "bot-replay.yaml")
    assert script.role is Role.BOT
    assert script.room is None
    assert script.name == "bot-replay"
    assert steps_of(script) == [
        (3, None, "Foo"),
        (4, "Bar", None),
        (5, "Baz", None),
        (6, None, "Lol"),
        (7, "Baz", None),
        (8, None, "hmm"),
        (9, "hrm", None),
    ]


def test_bot_replay_fail_differs_only_in_its_fifth_step() -> None:
    script = load_script(SEED / "bot-replay-fail.yaml")
    assert script.role is Role.BOT
    assert steps_of(script)[4] == (7, "The Spanish inquisition", None)
    assert len(script.steps) == 7


def test_client_replay_defaults_to_client_role() -> None:
    script = load_script(SEED / "client-replay.yaml")
    assert script.role is Role.CLIENT
    assert steps_of(script) == [
        (2, "Foo", "Bar"),
        (4, None, "Baz"),
        (5, "Lol", "Baz"),
        (7, "hmm", "hrm"),
    ]


def test_adapter_replay_loads_send_and_expect_pairs() -> None:
    script = load_script(SEED / "client-replay-matrix-addapter-test.yaml")
    assert script.role is Role.CLIENT
    assert steps_of(script) == [(2, "hello", "message"), (4, "bye", None)]


def test_steps_are_indexed_from_zero_in_file_order() -> None:
    script = load_script(SEED / "bot-replay.yaml")
    assert [step.index for step in script.steps] == list(range(7))


# --------------------------------------------------------------------- defaults


def test_absent_room_to_connect_means_client_role() -> None:
    script = parse_script("messages:\n  - send: hi\n")
    assert script.role is Role.CLIENT
    assert script.room is None


def test_dm_means_client_role() -> None:
    assert parse_script("room_to_connect: '!dm'\nmessages:\n  - send: hi\n").role is Role.CLIENT


def test_room_id_means_room_role_with_that_room() -> None:
    script = parse_script("room_to_connect: '!abc:example.org'\nmessages:\n  - send: hi\n")
    assert script.role is Role.ROOM
    assert script.room == "!abc:example.org"


def test_alias_means_room_role_with_that_alias() -> None:
    script = parse_script("room_to_connect: '#bots:example.org'\nmessages:\n  - send: hi\n")
    assert script.role is Role.ROOM
    assert script.room == "#bots:example.org"


def test_wait_for_join_defaults_to_true_and_can_be_turned_off() -> None:
    assert parse_script("messages:\n  - send: hi\n").wait_for_join is True
    off = parse_script("wait_for_join: false\nmessages:\n  - send: hi\n")
    assert off.wait_for_join is False


def test_name_is_the_file_name_without_yaml_suffix(tmp_path: Path) -> None:
    assert load_script(write(tmp_path, "messages:\n  - send: hi\n", "greet.yml")).name == "greet"


TIMEOUTS = "timeout: 5\nmessages:\n  - send: a\n    timeout: 2\n  - send: b\n"


def test_step_timeout_defaults_to_thirty_seconds() -> None:
    script = parse_script("messages:\n  - send: hi\n")
    assert DEFAULT_STEP_TIMEOUT == 30
    assert script.timeout is None
    assert script.step_timeout(script.steps[0]) == 30


def test_script_timeout_beats_the_default() -> None:
    script = parse_script(TIMEOUTS)
    assert script.step_timeout(script.steps[1]) == 5


def test_command_line_timeout_beats_the_script_timeout() -> None:
    script = parse_script(TIMEOUTS)
    assert script.step_timeout(script.steps[1], override=9) == 9


def test_step_timeout_beats_the_command_line_timeout() -> None:
    script = parse_script(TIMEOUTS)
    assert script.steps[0].timeout == 2
    assert script.step_timeout(script.steps[0], override=9) == 2


def test_command_line_timeout_applies_without_a_script_timeout() -> None:
    script = parse_script("messages:\n  - send: hi\n")
    assert script.step_timeout(script.steps[0], override=0.5) == 0.5


def test_unquoted_number_is_sent_as_written() -> None:
    assert parse_script("messages:\n  - send: 5\n").steps[0].send == "5"


@pytest.mark.parametrize("written", ["12:30", "1.50", "010", "0x1F", "1_000", "yes", "off"])
def test_unquoted_words_yaml_would_read_as_numbers_are_kept_as_written(written: str) -> None:
    # Regression: 'expect: 12:30' used to expect "750" (YAML 1.1 base 60), '1.50' "1.5".
    script = parse_script(f"messages:\n  - send: {written}\n    expect: {written}\n")
    assert (script.steps[0].send, script.steps[0].expect) == (written, written)


def test_quoted_text_is_taken_as_is() -> None:
    assert parse_script('messages:\n  - expect: "!ping  "\n').steps[0].expect == "!ping  "


# ----------------------------------------------------------------------- errors


def test_bad_yaml_syntax_points_at_the_line(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - send: a: b\n")
    assert_points_at(error, path, 2, 12)
    assert "invalid YAML" in str(error)


def test_tab_indentation_is_a_yaml_error_on_its_line(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n\t- send: hi\n")
    assert_points_at(error, path, 2, 1)


def test_unquoted_bang_command_asks_for_quotes(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - send: !help\n")
    assert_points_at(error, path, 2, 11)
    assert error.hint == "put the value in quotes"


def test_unknown_top_level_key_points_at_the_key(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - send: hi\ntimeout_s: 3\n")
    assert_points_at(error, path, 3, 1)
    assert "unknown key 'timeout_s'" in str(error)


def test_misspelt_messages_is_reported_as_unknown_not_missing(tmp_path: Path) -> None:
    # Regression: this said "missing required key 'messages'" at 1:1.
    error, path = load_error(tmp_path, "room_to_connect: '!dm'\nmesages:\n  - send: hi\n")
    assert_points_at(error, path, 2, 1)
    assert "unknown key 'mesages'" in str(error)


def test_unknown_step_key_points_at_the_keys_line(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - send: hi\n    expct: ho\n")
    assert_points_at(error, path, 3, 5)
    assert "unknown key 'expct'" in str(error)
    assert error.hint is not None


def test_messages_must_be_a_list(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages: 5\n")
    assert_points_at(error, path, 1, 11)
    assert "messages" in str(error)
    assert "list" in str(error)


def test_missing_messages_is_reported(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "room_to_connect: '!dm'\n")
    assert_points_at(error, path, 1)
    assert "missing required key 'messages'" in str(error)


def test_empty_messages_list_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages: []\n")
    assert_points_at(error, path, 1, 11)
    assert str(error).endswith("'messages' is empty: give at least one step")


def test_negative_timeout_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "timeout: -1\nmessages:\n  - send: hi\n")
    assert_points_at(error, path, 1, 10)
    assert "timeout" in str(error)
    assert str(error).endswith("timeout: must be more than 0")


def test_text_timeout_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "timeout: abc\nmessages:\n  - send: hi\n")
    assert_points_at(error, path, 1, 10)
    assert str(error).endswith("timeout: expected a number, got text")


def test_boolean_timeout_is_an_error(tmp_path: Path) -> None:
    # Regression: 'timeout: true' was taken as a deadline of one second.
    error, path = load_error(tmp_path, "timeout: true\nmessages:\n  - send: hi\n")
    assert_points_at(error, path, 1, 10)


def test_step_timeout_of_zero_points_at_the_step(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - send: hi\n    timeout: 0\n")
    assert_points_at(error, path, 3, 14)
    assert "messages.0.timeout" in str(error)


def test_huge_timeout_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "timeout: .inf\nmessages:\n  - send: hi\n")
    assert_points_at(error, path, 1, 10)


def test_empty_step_mapping_is_an_error_with_a_hint(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - send: hi\n  - {}\n")
    assert_points_at(error, path, 3, 5)
    assert "a step needs an action ('send', 'react', ...) or an expectation" in str(error)
    assert error.hint is not None
    assert "send" in error.hint


def test_bare_dash_step_is_an_error_without_internal_names(tmp_path: Path) -> None:
    # Regression: the message named pydantic's private class '_StepModel'.
    error, path = load_error(tmp_path, "messages:\n  - send: hi\n  -\n")
    assert_points_at(error, path, 3)
    assert "messages.1" in str(error)
    assert "got nothing" in str(error)
    assert "_StepModel" not in str(error)


def test_step_that_is_plain_text_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - hi\n")
    assert_points_at(error, path, 2, 5)
    assert "got text" in str(error)


def test_send_list_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - send: [1, 2]\n")
    assert_points_at(error, path, 2, 11)
    assert "messages.0.send" in str(error)


def test_empty_file_says_the_script_is_empty(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "")
    assert str(error).startswith(f"{path}: ")
    assert "the script is empty" in str(error)
    assert error.exit_code == 2


def test_file_with_only_comments_is_empty(tmp_path: Path) -> None:
    error, _ = load_error(tmp_path, "# nothing yet\n")
    assert "the script is empty" in str(error)


def test_list_at_top_level_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "- send: hi\n")
    assert_points_at(error, path, 1, 1)
    assert "mapping with a 'messages' list" in str(error)


def test_duplicate_top_level_key_points_at_the_second(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - send: hi\nmessages:\n  - send: ho\n")
    assert_points_at(error, path, 3, 1)
    assert "duplicate key 'messages'" in str(error)


def test_duplicate_step_key_points_at_the_second(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - send: hi\n    send: ho\n")
    assert_points_at(error, path, 3, 5)
    assert "duplicate key 'send'" in str(error)


def test_non_text_key_is_an_error(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - send: hi\n1: x\n")
    assert_points_at(error, path, 3, 1)
    assert "keys must be text" in str(error)


@pytest.mark.parametrize("room", ["lobby", "!dn", "#nocolon", "@bot:example.org"])
def test_bad_room_to_connect_is_an_error_with_examples(tmp_path: Path, room: str) -> None:
    error, path = load_error(tmp_path, f"room_to_connect: '{room}'\nmessages:\n  - send: hi\n")
    assert_points_at(error, path, 1, 18)
    assert "room_to_connect: must be '!dm'" in str(error)
    assert str(error).split(":1:18: ")[1].count("room_to_connect") == 1
    assert error.hint is not None


def test_two_documents_in_one_file_are_an_error(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - send: a\n---\nmessages:\n  - send: b\n")
    assert_points_at(error, path, 3, 1)


def test_missing_file_says_not_found(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(InputError) as caught:
        load_script(path)
    assert str(caught.value).startswith(f"{path}: script not found")
    assert caught.value.hint == "check the path"
    assert caught.value.exit_code == 2


def test_directory_is_not_a_script(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load_script(tmp_path)
    assert str(caught.value) == f"{tmp_path}: script is a directory, not a file"
    assert caught.value.exit_code == 2


def test_non_utf8_bytes_are_an_error_with_the_offset(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"messages:\n  - send: caf\xe9\n")
    with pytest.raises(InputError) as caught:
        load_script(path)
    assert str(caught.value) == f"{path}: script is not UTF-8 text (bad byte at offset 23)"
    assert caught.value.exit_code == 2


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * 1_000_001)
    with pytest.raises(InputError) as caught:
        load_script(path)
    assert "the limit is 1000000" in str(caught.value)


def test_deeply_nested_flow_input_is_refused(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - send: " + "[" * 200 + "]" * 200 + "\n")
    assert_points_at(error, path, 2)
    assert "nested too deeply" in str(error)


def test_deeply_nested_block_input_is_refused(tmp_path: Path) -> None:
    text = "messages:\n" + "".join("  " * depth + "-\n" for depth in range(1, 80))
    error, path = load_error(tmp_path, text)
    assert "nested too deeply" in str(error)
    assert error.line is not None
    assert str(error).startswith(f"{path}:{error.line}:")


# ------------------------------------------------ text that Matrix would refuse mid-run


def test_a_lone_surrogate_is_refused_at_its_escape(tmp_path: Path) -> None:
    # Regression: PyYAML decodes "\ud800" to a lone surrogate; it passed validate,
    # then the homeserver answered 500 and the run ended as an infrastructure error.
    error, path = load_error(tmp_path, 'messages:\n  - send: "!echo \\ud800"\n')
    assert_points_at(error, path, 2, 18)
    assert "a lone surrogate \\ud800 cannot be sent: Matrix text is UTF-8" in str(error)
    assert error.hint is not None and "character itself" in error.hint
    assert error.one_line().isascii()


def test_a_lone_surrogate_in_an_expectation_is_refused_too(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, 'messages:\n  - expect: {body: {contains: "\\uDC00"}}\n')
    assert_points_at(error, path, 2, 32)


def test_a_surrogate_pair_is_the_character_it_stands_for() -> None:
    # JSON readers join "\ud83d\ude00" into one emoji; so must we, or the
    # expectation could never equal the reply.
    script = parse_script('messages:\n  - send: "\\ud83d\\ude00"\n    expect: "\\U0001F600"\n')
    assert script.steps[0].send == "\U0001f600" == script.steps[0].expect


def test_an_environment_variable_that_is_not_utf8_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MBT_NOT_UTF8", "caf\udce9")  # the byte 0xE9, as os.environ keeps it
    error, path = load_error(tmp_path, "messages:\n  - send: ${MBT_NOT_UTF8}\n")
    assert_points_at(error, path, 2, 11)
    assert "environment variable MBT_NOT_UTF8 is not UTF-8 text" in str(error)


@pytest.mark.parametrize(
    ("step", "key"),
    [
        pytest.param("send: " + "a" * 70_000, "send", id="send"),
        pytest.param(
            "send: {text: '" + "é" * 31_000 + "'}",
            "send",
            id="utf8-bytes",
        ),
        pytest.param("send: {markdown: '" + "**b** " * 11_000 + "'}", "send", id="markdown-twice"),
        pytest.param("send: {html: '" + "<b>x</b>" * 8_000 + "'}", "send", id="html"),
        pytest.param(
            "send_event: {type: x, content: {a: '" + "a" * 61_000 + "'}}", "send_event", id="raw"
        ),
    ],
)
def test_a_message_too_big_for_matrix_is_refused_with_its_size(
    tmp_path: Path, step: str, key: str
) -> None:
    # Regression: 70,000 characters passed validate, then the server answered
    # M_TOO_LARGE and the run ended as an infrastructure error.
    error, path = load_error(tmp_path, f"messages:\n  - {step}\n")
    assert_points_at(error, path, 2, 5)
    assert f"{key}: this message is " in str(error)
    assert "bytes as JSON; a step may send at most 60,000" in str(error)


def test_an_edit_too_big_for_matrix_is_refused(tmp_path: Path) -> None:
    # An edit carries its text twice: the fallback body and m.new_content.
    big = "a" * 35_000
    error, path = load_error(
        tmp_path, f"messages:\n  - send: x\n    name: m\n  - edit: {{message: m, text: {big}}}\n"
    )
    assert_points_at(error, path, 4, 5)
    assert "edit: this message is 70," in str(error)


def test_a_big_message_that_fits_loads() -> None:
    script = parse_script("messages:\n  - send: " + "a" * 59_000 + "\n")
    assert script.steps[0].send == "a" * 59_000


# ---------------------------------------------------------- YAML errors, both places


def test_an_unclosed_quote_points_where_it_opens(tmp_path: Path) -> None:
    # Regression: PyYAML points at the end of the file (4:1), where nothing is wrong.
    error, path = load_error(tmp_path, 'messages:\n  - send: "!ping\n    expect: pong\n')
    assert str(error) == (
        f"{path}:2:11: invalid YAML: a quoted string is not closed"
        " (found the end of the file at 4:1)"
    )


def test_an_unclosed_bracket_points_where_it_opens(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - expect: [a, b\n")
    assert str(error) == (
        f"{path}:2:13: invalid YAML: a [...] list is not closed (found the end of the file at 3:1)"
    )


def test_a_bad_escape_points_at_the_escape_and_names_the_string(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, 'messages:\n  - send: "a \\q"\n')
    assert str(error) == (
        f"{path}:2:15: invalid YAML: found unknown escape character 'q'"
        " (in a quoted string that starts at 2:11)"
    )


def test_a_line_indented_wrong_says_so(tmp_path: Path) -> None:
    error, path = load_error(tmp_path, "messages:\n  - send: x\n   expect: y\n")
    assert_points_at(error, path, 3, 4)
    assert "(in the list that starts at 2:3)" in str(error)
    assert error.hint is not None and "indentation" in error.hint
