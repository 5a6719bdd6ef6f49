"""run --update, the pure half: which expectations a failed run rewrites, and the new file text."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from matrix_bot_tester import update
from matrix_bot_tester.matching import MatchContext, evaluate
from matrix_bot_tester.result import ConversationResult, Failure, Outcome, StepResult
from matrix_bot_tester.script import Script, load_script, parse_script
from matrix_bot_tester.variables import fill_all

ME = "@tester:localhost"
BOT = "@bot:localhost"
ROOM = "!abcdef:localhost"


def reply(body: str, **content: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "event_id": "$reply",
        "sender": BOT,
        "origin_server_ts": 1,
        "content": {"msgtype": "m.notice", "body": body, **content},
    }


def failed(
    script: Script,
    step: int,
    event: dict[str, Any] | None,
    problems: tuple[str, ...] = ("body: differs",),
    item: int | None = None,
    reason: str = "wrong reply",
) -> ConversationResult:
    """The result of a run of ``script`` that passed the steps before ``step`` and failed it."""
    steps = [
        StepResult(
            index=placed.index,
            line=placed.line,
            send=None,
            expect=None,
            outcome=Outcome.PASSED if placed.index < step else Outcome.NOT_RUN,
            timeout=5,
        )
        for placed in script.steps
    ]
    steps[step].outcome = Outcome.FAILED
    return ConversationResult(
        script_path=script.path,
        name=script.name,
        role="client",
        user_id=ME,
        partner=BOT,
        room_id=ROOM,
        outcome=Outcome.FAILED,
        steps=steps,
        failure=Failure(
            step_index=step,
            line=script.steps[step].line,
            reason=reason,
            problems=problems,
            item=item,
            event=event,
        ),
    )


def passed(script: Script) -> ConversationResult:
    result = failed(script, 0, None)
    result.outcome = Outcome.PASSED
    result.failure = None
    for step in result.steps:
        step.outcome = Outcome.PASSED
    return result


def updated(text: str, step: int, event: dict[str, Any] | None, **facts: Any) -> str:
    """The script text after an update from a failure of ``step`` with ``event``."""
    script = parse_script(text, "s.yaml")
    plan = update.plan(script, failed(script, step, event, **facts))
    assert not plan.notes, plan.notes
    changes = {c.loc: (c.old, c.new) for c in plan.changes}
    new = update.rewrite(text, changes)
    parse_script(new, "s.yaml")  # still a valid script
    return new


def refusal(text: str, step: int, event: dict[str, Any] | None, **facts: Any) -> str:
    script = parse_script(text, "s.yaml")
    plan = update.plan(script, failed(script, step, event, **facts))
    assert not plan.changes
    assert len(plan.notes) == 1
    return plan.notes[0]


def test_a_plain_expectation_gets_the_new_text_and_nothing_else_changes() -> None:
    text = (
        "# the smoke test\n"
        "messages:\n"
        '  - send: "!ping"   # ask\n'
        "    expect: PONG    # the answer\n"
        "  - send: '!echo hi'\n"
        "    expect: hi\n"
    )
    assert updated(text, 0, reply("pong")) == text.replace("PONG   ", "pong   ")


@pytest.mark.parametrize(
    ("written", "received", "expected"),
    [
        ("'PONG'", "pong", "'pong'"),
        ('"PONG"', "pong", '"pong"'),
        ("PONG", "it's: here", "'it''s: here'"),
        ("PONG", "yes", "'yes'"),  # YAML would read a plain yes as true
        ("PONG", "12:30", "'12:30'"),
        ("PONG", "", "''"),
        ("PONG", "  padded ", "'  padded '"),
        ("'PONG'", "tab\there", "'tab\there'"),
        ("PONG", "bell\x07", '"bell\\x07"'),
        ("PONG", "café ☕ 🎉", "café ☕ 🎉"),
        ("PONG", '"quoted"', "'\"quoted\"'"),
        ("PONG", "- a list?", "'- a list?'"),
    ],
)
def test_the_new_text_is_quoted_as_yaml_needs_keeping_the_style_where_it_can(
    written: str, received: str, expected: str
) -> None:
    text = f"messages:\n  - send: x\n    expect: {written}\n"
    new = updated(text, 0, reply(received))
    assert new == f"messages:\n  - send: x\n    expect: {expected}\n"
    assert parse_script(new).steps[0].spec.expect == received


def test_multi_line_text_becomes_a_literal_block_with_the_steps_indentation() -> None:
    text = "messages:\n  - send: '!help'\n    expect: old help  # keep me\n  - send: bye\n"
    new = updated(text, 0, reply("Commands:\n  !ping\n  !echo TEXT"))
    assert new == (
        "messages:\n"
        "  - send: '!help'\n"
        "    expect: |-  # keep me\n"
        "      Commands:\n"
        "        !ping\n"
        "        !echo TEXT\n"
        "  - send: bye\n"
    )


def test_a_block_scalar_stays_a_block_and_the_blank_line_after_it_stays() -> None:
    text = (
        "messages:\n"
        "  - send: '!help'\n"
        "    expect: |   # the help text\n"
        "      old\n"
        "      help\n"
        "\n"
        "  # next: ping\n"
        "  - send: '!ping'\n"
    )
    new = updated(text, 0, reply("new\nhelp text\n"))
    assert new == text.replace("      old\n      help\n", "      new\n      help text\n")
    new = updated(text, 0, reply("one line"))
    assert new == text.replace(
        "|   # the help text\n      old\n      help\n", "|-   # the help text\n      one line\n"
    )


def test_a_multi_line_text_whose_first_line_is_indented_is_double_quoted() -> None:
    text = "messages:\n  - send: x\n    expect: old\n"
    new = updated(text, 0, reply("  indented\nnext"))
    assert new == 'messages:\n  - send: x\n    expect: "  indented\\nnext"\n'


def test_in_a_flow_mapping_the_text_stays_inline() -> None:
    text = "messages:\n  - send: x\n    expect: {body: old, msgtype: m.notice}\n"
    assert updated(text, 0, reply("new, text")) == text.replace("old", "'new, text'")
    new = updated(text, 0, reply("two\nlines"))
    assert new == text.replace("old", '"two\\nlines"')


def test_body_text_and_html_keys_and_exact_matches_are_rewritten() -> None:
    text = (
        "messages:\n"
        "  - send: '!html'\n"
        "    expect:\n"
        "      text: bold moves\n"
        "      html: {exact: '<b>bold</b> moves'}\n"
        "      msgtype: m.notice\n"
    )
    html = reply(
        "**bold** move", format="org.matrix.custom.html", formatted_body="<b>bold</b> move"
    )
    new = updated(text, 0, html, problems=("text: differs", "html: differs"))
    assert "      text: bold move\n" in new
    assert "      html: {exact: '<b>bold</b> move'}\n" in new


def test_a_regex_or_contains_expectation_is_left_alone_with_a_reason() -> None:
    text = "messages:\n  - send: x\n    expect: {body: {regex: 'po+ng'}}\n"
    note = refusal(text, 0, reply("ping"))
    assert note == (
        "s.yaml:2 (s, step 1): not rewritten: body is a regex match, not a text; edit it by hand"
    )
    text = "messages:\n  - send: x\n    expect: {text: {contains: pong}}\n"
    assert "text is a contains match" in refusal(text, 0, reply("ping"), problems=("text: x",))


def test_a_reply_that_differs_in_more_than_its_text_is_not_rewritten() -> None:
    text = "messages:\n  - send: x\n    expect: {body: pong, msgtype: m.text}\n"
    note = refusal(text, 0, reply("ping"), problems=("body: differs", "msgtype: expected m.text"))
    assert "the reply differs in msgtype, not only its text" in note


def test_no_reply_at_all_is_not_rewritten() -> None:
    text = "messages:\n  - send: x\n    expect: pong\n"
    note = refusal(text, 0, None, reason="no reply within 2 s", problems=())
    assert note == (
        "s.yaml:2 (s, step 1): not rewritten: no reply within 2 s: there is no reply to take"
        " a text from"
    )


def test_run_values_in_the_reply_go_back_to_their_placeholders() -> None:
    text = "messages:\n  - send: '!whoami'\n    expect: 'you are {me} in {room_id}'\n"
    new = updated(text, 0, reply(f"You are {ME} in {ROOM}, I am {BOT}"))
    assert "expect: 'You are {me} in {room_id}, I am {bot}'\n" in new


def test_literal_braces_in_the_reply_are_doubled_so_they_stay_literal() -> None:
    text = "messages:\n  - send: '!json'\n    expect: old\n"
    new = updated(text, 0, reply('{"to": {"id": "@tester:localhost"}}'))
    assert new.endswith("""expect: '{{"to": {{"id": "{me}"}}}}'\n""")
    # Braces that read as no placeholder are left as they are.
    plain = updated(text, 0, reply('{"id": "@tester:localhost"} { b }'))
    assert plain.endswith("""expect: '{"id": "{me}"} { b }'\n""")


def test_an_expectation_with_a_saved_variable_is_not_rewritten() -> None:
    text = (
        "messages:\n"
        "  - send: '!ticket'\n"
        "    expect: {body: {regex: 'ticket (?P<ticket>\\d+)'}}\n"
        "  - send: '!status'\n"
        "    expect: 'ticket {ticket} is open'\n"
    )
    note = refusal(text, 1, reply("ticket 41 is closed"))
    assert "uses {ticket}, a value of this run" in note


def test_a_reply_with_an_environment_reference_is_not_written() -> None:
    text = "messages:\n  - send: x\n    expect: old\n"
    assert "environment variable" in refusal(text, 0, reply("costs ${PRICE}"))


def test_a_list_of_expectations_rewrites_the_one_that_failed() -> None:
    text = (
        "messages:\n"
        "  - send: '!two'\n"
        "    expect:\n"
        "      - first   # ok\n"
        "      - body: second\n"
        "        msgtype: m.notice\n"
    )
    new = updated(text, 0, reply("2nd"), item=1)
    assert new == text.replace("body: second", "body: 2nd")


def test_later_failures_of_a_conversation_that_went_on_are_rewritten_too() -> None:
    text = (
        "messages:\n"
        "  - send: a\n    expect: A  # first\n"
        "  - send: b\n    expect: B\n"
        "  - send: c\n    expect: C\n"
        "  - send: d\n    expect: D\n"
    )
    script = parse_script(text, "s.yaml")
    result = failed(script, 0, reply("new A"))
    third = failed(script, 2, reply("new C")).failure
    silent = failed(script, 3, None, reason="no reply within 5 s").failure
    assert third is not None and silent is not None
    result.later_failures = [third, silent]
    plan = update.plan(script, result)
    assert [(c.old, c.new) for c in plan.changes] == [("A", "new A"), ("C", "new C")]
    [note] = plan.notes
    assert "step 4" in note and "no reply" in note
    new = update.rewrite(text, {c.loc: (c.old, c.new) for c in plan.changes})
    assert new == text.replace("A  #", "new A  #").replace("expect: C", "expect: new C")


def test_unordered_expectations_are_not_rewritten() -> None:
    text = "messages:\n  - send: x\n    expect_unordered: [a, b]\n"
    assert "unordered" in refusal(text, 0, reply("c"))


@pytest.mark.parametrize(
    "body",
    [
        "pong",
        'new: {me}\'s "text"\nline two',
        "ends with a line break\n",
        "ends with two\n\n",
        "\n leading break",
        "x { y } {{z}} in {room_id}!",
        "Ünïcødé — 🎉\u2028separator",
        "cr\r\nlf",
        "#not a comment",
        "  ",
    ],
)
@pytest.mark.parametrize("written", ["old", "'old'", "|\n      old\n", "{body: old}"])
def test_updating_twice_changes_nothing_the_second_time(body: str, written: str) -> None:
    """After an update the same reply passes, so a second update has nothing to do."""
    text = f"messages:\n  - send: x\n    expect: {written}\n  - send: y\n"
    event = reply(body.replace("{me}", ME).replace("{room_id}", ROOM))
    new = updated(text, 0, event)
    assert new.endswith("\n  - send: y\n")
    step = parse_script(new, "s.yaml").steps[0].spec
    filled = fill_all(step, {"me": ME, "bot": BOT, "room_id": ROOM}, {})
    context = MatchContext(me=ME, step_event=None)
    assert all(evaluate(e, event, context).ok for e in filled.expectations())


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_step_from_an_included_file_rewrites_that_file(tmp_path: Path) -> None:
    write(tmp_path, "greet.yaml", "messages:\n  - send: '!ping'\n    expect: PONG\n")
    main = write(tmp_path, "main.convo.yaml", "messages:\n  - include: greet.yaml\n  - send: x\n")
    script = load_script(main)
    plan = update.plan_all([script], [failed(script, 0, reply("pong"))])
    assert [(Path(c.path).name, c.loc, c.new) for c in plan.changes] == [
        ("greet.yaml", ("messages", 0, "expect"), "pong")
    ]


def test_an_included_step_that_passed_elsewhere_is_not_rewritten(tmp_path: Path) -> None:
    write(tmp_path, "greet.yaml", "messages:\n  - send: '!ping'\n    expect: PONG\n")
    one = load_script(write(tmp_path, "one.convo.yaml", "messages:\n  - include: greet.yaml\n"))
    two = load_script(write(tmp_path, "two.convo.yaml", "messages:\n  - include: greet.yaml\n"))
    plan = update.plan_all([one, two], [failed(one, 0, reply("pong")), passed(two)])
    assert not plan.changes
    assert plan.notes == [
        f"{tmp_path / 'greet.yaml'}:2 (one, step 1): not rewritten: the same step passed"
        " elsewhere in this run"
    ]


def apply_after_run(
    path: Path,
    *,
    received: str | None = "pong",
    write: bool = True,
    meanwhile: Callable[[], object] = lambda: None,
) -> tuple[int, str]:
    """Load ``path``, "run" it (failing step 1 with ``received``, or passing), update it."""
    script = load_script(path)
    texts = update.snapshot([script])
    meanwhile()  # what happens during the run
    result = passed(script) if received is None else failed(script, 0, reply(received))
    out = io.StringIO()
    console = Console(file=out, width=200)
    run_code = 0 if received is None else 1
    code = update.apply([script], [result], texts, console, console, run_code, write=write)
    return code, out.getvalue()


def test_a_run_where_everything_passed_changes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "ok.convo.yaml", "messages:\n  - send: x\n    expect: y\n")
    before = os.stat(path).st_mtime_ns
    code, output = apply_after_run(path, received=None)
    assert code == 0
    assert os.stat(path).st_mtime_ns == before
    assert "nothing to rewrite" in output


def test_the_diff_is_shown_and_the_file_written_keeping_its_mode(tmp_path: Path) -> None:
    text = "messages:\n  - send: x\n    expect: PONG  # c\n"
    path = write(tmp_path, "p.convo.yaml", text)
    path.chmod(0o640)
    code, output = apply_after_run(path, write=False)
    assert code == 1
    assert "-    expect: PONG  # c\n+    expect: pong  # c\n" in output
    assert "1 file would change; nothing written" in output
    assert path.read_text() == text  # a preview writes nothing
    code, output = apply_after_run(path)
    assert code == 1  # the steps after the updated one have not run: still a failure
    assert "-    expect: PONG  # c\n+    expect: pong  # c\n" in output
    assert path.read_text() == "messages:\n  - send: x\n    expect: pong  # c\n"
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_file_edited_during_the_run_is_not_overwritten(tmp_path: Path) -> None:
    path = write(tmp_path, "p.convo.yaml", "messages:\n  - send: x\n    expect: PONG\n")
    edited = "messages:\n  - send: x\n    expect: PONG  # my edit\n"
    code, output = apply_after_run(path, meanwhile=lambda: path.write_text(edited))
    assert code == 2
    assert path.read_text() == edited
    assert "changed on disk during the run; not rewritten" in output
    assert "+    expect: pong" not in output


def test_the_rewrite_refuses_to_touch_anything_but_the_value() -> None:
    # An anchor used elsewhere: changing it would change the other use too.
    text = "messages:\n  - send: x\n    expect: &a old\n  - send: y\n    expect: *a\n"
    with pytest.raises(update.Refused):
        update.rewrite(text, {("messages", 0, "expect"): ("old", "new")})
    assert yaml.safe_load(text)["messages"][1]["expect"] == "old"


def test_the_diff_of_a_file_without_a_last_line_break_keeps_its_lines_apart() -> None:
    diff = update.unified_diff("a: 1\nb: old", "a: 1\nb: new", "s.yaml")
    assert diff.endswith(
        "-b: old\n\\ No newline at end of file\n+b: new\n\\ No newline at end of file\n"
    )
    assert diff.startswith("--- a/s.yaml\n+++ b/s.yaml\n")


def test_a_script_without_a_last_line_break_is_rewritten() -> None:
    assert updated("messages:\n  - send: x\n    expect: old", 0, reply("new")).endswith(
        "expect: new"
    )


def test_a_symlinked_script_is_rewritten_where_it_points(tmp_path: Path) -> None:
    real = write(tmp_path, "real.yaml", "messages:\n  - send: x\n    expect: PONG\n")
    link = tmp_path / "link.convo.yaml"
    link.symlink_to(real)
    assert apply_after_run(link)[0] == 1
    assert link.is_symlink()
    assert real.read_text() == "messages:\n  - send: x\n    expect: pong\n"


def test_a_read_only_script_is_not_replaced(tmp_path: Path) -> None:
    path = write(tmp_path, "ro.convo.yaml", "messages:\n  - send: x\n    expect: PONG\n")
    path.chmod(0o444)
    if os.access(path, os.W_OK):
        pytest.skip("running as a user who may write read-only files (root)")
    code, output = apply_after_run(path)
    assert code == 2
    assert "not rewritten: the file is read-only" in output
    assert path.read_text().endswith("PONG\n")


def test_update_and_its_preview_are_options_of_run_and_exclude_each_other(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from matrix_bot_tester.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["run", "s.yaml", "-a", "acc.yaml", "--update"])
    assert (args.update, args.update_preview) == (True, False)
    args = parser.parse_args(["run", "s.yaml", "-a", "acc.yaml", "--update-preview"])
    assert (args.update, args.update_preview) == (False, True)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["run", "s.yaml", "-a", "a.yaml", "--update", "--update-preview"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
