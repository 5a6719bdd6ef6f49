"""Reports: JUnit XML, JSON, atomic files and the console, all from ConversationResult values."""

from __future__ import annotations

import io
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from fakes import BOT, ME, bots, mine, step
from rich.console import Console

from matrix_bot_tester.errors import InputError
from matrix_bot_tester.matching import text_diff
from matrix_bot_tester.report import (
    JSON_SCHEMA_VERSION,
    ConsoleReporter,
    failure_text,
    json_report,
    junit_xml,
    transcript_lines,
    write_atomically,
)
from matrix_bot_tester.result import (
    ConversationResult,
    Failure,
    Outcome,
    TranscriptEntry,
)


def passed_result() -> ConversationResult:
    steps = [step(0, 2, "Foo", "Bar", Outcome.PASSED), step(1, 4, None, "Grüße 👋", Outcome.PASSED)]
    steps[0].received, steps[0].latency = bots("Bar"), 0.042
    steps[1].received, steps[1].latency = bots("Grüße 👋"), 0.001
    return ConversationResult(
        script_path="scripts/greet.yaml",
        name="greet",
        role="client",
        user_id=ME,
        partner=BOT,
        room_id="!room:example.org",
        outcome=Outcome.PASSED,
        started_at="2026-01-01T00:00:00+00:00",
        duration=0.25,
        steps=steps,
        transcript=[
            TranscriptEntry(0.010, "sent", mine("Foo"), 0),
            TranscriptEntry(0.052, "received", bots("Bar"), 0),
            TranscriptEntry(0.060, "received", bots("Grüße 👋"), 1),
        ],
    )


def failed_result(received: str = "Qux") -> ConversationResult:
    steps = [
        step(0, 2, "Foo", "Bar", Outcome.PASSED),
        step(1, 4, None, "Baz", Outcome.FAILED),
        step(2, 5, "Lol", "Baz", Outcome.NOT_RUN),
    ]
    steps[1].received = bots(received)
    return ConversationResult(
        script_path="scripts/client-replay.yaml",
        name="client-replay",
        role="client",
        user_id=ME,
        partner=BOT,
        outcome=Outcome.FAILED,
        duration=1.5,
        steps=steps,
        transcript=[
            TranscriptEntry(0.010, "sent", mine("Foo"), 0),
            TranscriptEntry(0.052, "received", bots("Bar"), 0),
            TranscriptEntry(0.070, "received", bots(received), 1),
        ],
        failure=Failure(
            step_index=1,
            line=4,
            reason="wrong reply",
            expected="Baz",
            received=bots(received),
            waited=0.018,
            diff=text_diff("Baz", received),
        ),
    )


def silent_result() -> ConversationResult:
    return ConversationResult(
        script_path="scripts/silent.yaml",
        name="silent",
        role="client",
        outcome=Outcome.FAILED,
        steps=[step(0, 3, "!ping", "pong", Outcome.FAILED)],
        transcript=[TranscriptEntry(0.01, "sent", mine("!ping"), 0)],
        failure=Failure(0, 3, "no reply within 2 s", expected="pong", waited=2.0),
    )


def error_result() -> ConversationResult:
    return ConversationResult(
        script_path="scripts/unreachable.yaml",
        name="unreachable",
        role="client",
        outcome=Outcome.ERROR,
        failure=Failure(
            None, None, "logging in: cannot reach the homeserver at http://127.0.0.1:1"
        ),
    )


def interrupted_result() -> ConversationResult:
    return ConversationResult(
        script_path="scripts/long.yaml",
        name="long",
        role="bot",
        outcome=Outcome.INTERRUPTED,
        steps=[step(0, 2, None, "hi", Outcome.INTERRUPTED)],
        failure=Failure(0, 2, "interrupted before the conversation finished"),
    )


def not_run_result() -> ConversationResult:
    return ConversationResult(script_path="scripts/later.yaml", name="later", role="client")


def all_results() -> list[ConversationResult]:
    return [
        passed_result(),
        failed_result(),
        error_result(),
        interrupted_result(),
        not_run_result(),
    ]


def cases(xml_text: str) -> dict[str, ET.Element]:
    return {case.get("name", ""): case for case in ET.fromstring(xml_text).iter("testcase")}


# -------------------------------------------------------------------- JUnit XML


def test_junit_xml_parses_and_counts_outcomes() -> None:
    suite = ET.fromstring(junit_xml(all_results(), 3.0))
    assert suite.tag == "testsuite"
    assert suite.attrib["tests"] == "5"
    assert suite.attrib["failures"] == "1"
    assert suite.attrib["errors"] == "2"  # infrastructure and interrupted
    assert suite.attrib["skipped"] == "1"
    assert suite.attrib["time"] == "3.000"


def test_junit_xml_has_one_testcase_per_result_in_order() -> None:
    suite = ET.fromstring(junit_xml(all_results(), 3.0))
    assert [case.get("name") for case in suite.iter("testcase")] == [
        "greet",
        "client-replay",
        "unreachable",
        "long",
        "later",
    ]


def test_junit_names_scripts_named_alike_by_their_paths_too() -> None:
    """CI systems merge test cases of one name: smoke/ping and nightly/ping must stay two."""
    first = replace(passed_result(), name="ping", script_path="smoke/ping.convo.yaml")
    second = replace(passed_result(), name="ping", script_path="nightly/ping.convo.yaml")
    other = replace(passed_result(), name="help", script_path="smoke/help.convo.yaml")
    suite = ET.fromstring(junit_xml([first, second, other], 1.0))
    assert [case.get("name") for case in suite.iter("testcase")] == [
        "ping (smoke/ping.convo.yaml)",
        "ping (nightly/ping.convo.yaml)",
        "help",
    ]


def test_junit_xml_declares_utf8() -> None:
    assert junit_xml([passed_result()], 1.0).startswith('<?xml version="1.0" encoding="UTF-8"?>')


def test_control_characters_from_the_bot_are_written_out_in_the_transcript() -> None:
    result = failed_result(received="\x1b[31mred\x1b[0m\x07")
    line = transcript_lines(result)[-1]
    assert "\x1b" not in line and "\x07" not in line
    assert r"\x1b[31mred\x1b[0m\x07" in line


def test_junit_passed_case_has_no_failure_but_keeps_the_transcript() -> None:
    case = cases(junit_xml([passed_result()], 1.0))["greet"]
    assert [child.tag for child in case] == ["system-out"]
    assert "Grüße 👋" in (case.findtext("system-out") or "")
    assert case.get("file") == "scripts/greet.yaml"
    assert case.get("time") == "0.250"


def test_junit_failure_body_has_the_failure_the_diff_and_the_transcript() -> None:
    case = cases(junit_xml([failed_result()], 1.0))["client-replay"]
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == "wrong reply"
    assert failure.get("type") == "conversation"
    body = failure.text or ""
    assert "scripts/client-replay.yaml:4 (step 2): wrong reply" in body
    assert "expected: 'Baz'" in body
    assert f"received: 'Qux' from {BOT} (m.notice)" in body
    assert "- expected: 'Baz'" in body
    assert "+ received: 'Qux'" in body
    assert "transcript:" in body
    assert f"← {BOT}: Qux  [m.notice, step 2]" in body
    assert f"→ {ME}: Foo  [m.text, step 1]" in body
    assert case.get("line") == "4"
    assert case.find("error") is None


def test_junit_infrastructure_problem_is_an_error_not_a_failure() -> None:
    case = cases(junit_xml([error_result()], 1.0))["unreachable"]
    assert case.find("failure") is None
    error = case.find("error")
    assert error is not None
    assert error.get("type") == "error"
    assert "http://127.0.0.1:1" in (error.get("message") or "")
    assert "transcript: (no messages)" in (error.text or "")
    assert case.get("line") is None


def test_junit_interrupted_is_an_error_of_its_own_type() -> None:
    error = cases(junit_xml([interrupted_result()], 1.0))["long"].find("error")
    assert error is not None
    assert error.get("type") == "interrupted"


def test_junit_not_run_is_skipped() -> None:
    case = cases(junit_xml([not_run_result()], 1.0))["later"]
    assert [child.tag for child in case] == ["skipped"]


def test_junit_xml_with_control_characters_in_a_body_still_parses() -> None:
    # Regression: a bot's ANSI colours (recorded: tests/data/events/ansi.json) made
    # the XML unreadable to every parser.
    result = failed_result(received="\x1b[31mred\x1b[0m\x07")
    case = cases(junit_xml([result], 1.0))["client-replay"]
    assert "\\x1b[31mred\\x1b[0m\\x07" in (case.findtext("failure") or "")
    assert "\\x1b[31mred" in (case.findtext("system-out") or "")


def test_junit_xml_of_no_results_is_an_empty_suite() -> None:
    suite = ET.fromstring(junit_xml([], 0.0))
    assert suite.attrib["tests"] == "0"
    assert list(suite) == []


# ------------------------------------------------------------------------- JSON


def test_json_report_round_trips_with_schema_version_and_tool() -> None:
    document = json.loads(json_report(all_results(), 3.0, 130))
    assert document["schema_version"] == JSON_SCHEMA_VERSION == 1
    assert document["tool"]["name"] == "matrix-bot-tester"
    assert document["exit_code"] == 130
    assert document["duration"] == 3.0
    assert len(document["conversations"]) == 5


def test_json_report_outcomes_are_strings() -> None:
    conversations = json.loads(json_report(all_results(), 3.0, 3))["conversations"]
    assert [c["outcome"] for c in conversations] == [
        "passed",
        "failed",
        "error",
        "interrupted",
        "not run",
    ]
    assert [s["outcome"] for s in conversations[1]["steps"]] == ["passed", "failed", "not run"]


def test_json_report_has_steps_with_what_was_received() -> None:
    steps = json.loads(json_report([passed_result()], 1.0, 0))["conversations"][0]["steps"]
    assert steps[0] == {
        "index": 0,
        "line": 2,
        "send": "Foo",
        "expect": "Bar",
        "outcome": "passed",
        "timeout": 30.0,
        "latency": 0.042,
        "rate_limited": 0.0,
        "received": {
            "event_id": "$bot-Bar",
            "sender": BOT,
            "msgtype": "m.notice",
            "body": "Bar",
            "timestamp_ms": 2,
            "type": "m.room.message",
            "content": {"msgtype": "m.notice", "body": "Bar"},
        },
        "path": None,
    }


def test_json_report_keeps_failure_and_transcript() -> None:
    failed = json.loads(json_report([failed_result()], 1.0, 1))["conversations"][0]
    assert failed["failure"]["line"] == 4
    assert failed["failure"]["expected"] == "Baz"
    assert failed["failure"]["received"]["body"] == "Qux"
    assert [(e["direction"], e["message"]["body"]) for e in failed["transcript"]] == [
        ("sent", "Foo"),
        ("received", "Bar"),
        ("received", "Qux"),
    ]


def test_json_report_keeps_unicode_readable() -> None:
    text = json_report([passed_result()], 1.0, 0)
    assert "Grüße 👋" in text
    assert json.loads(text)["conversations"][0]["steps"][1]["received"]["body"] == "Grüße 👋"


# ------------------------------------------------------------- atomic writing


def test_write_atomically_creates_the_file_and_its_folder(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "junit.xml"
    write_atomically(target, "<a/>\n")
    assert target.read_text(encoding="utf-8") == "<a/>\n"
    assert os.listdir(target.parent) == ["junit.xml"]


def test_write_atomically_replaces_an_existing_file_leaving_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old", encoding="utf-8")
    write_atomically(target, "new ✓")
    assert target.read_text(encoding="utf-8") == "new ✓"
    assert os.listdir(tmp_path) == ["report.json"]


def test_failed_write_keeps_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.json"
    target.write_text("old", encoding="utf-8")

    def refuse(source: str, destination: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(InputError, match="cannot write the report: disk full"):
        write_atomically(target, "new")
    assert target.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["report.json"]


# ---------------------------------------------------------------------- console


def reporter(*, verbose: bool = False) -> tuple[ConsoleReporter, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    console = Console(file=out, width=200)
    err_console = Console(file=err, width=200)
    return ConsoleReporter(console, err_console, verbose=verbose), out, err


def test_console_shows_the_failure_with_file_line_expected_and_received() -> None:
    report, out, _ = reporter()
    report.conversation_finished(failed_result())
    text = out.getvalue()
    assert "FAIL client-replay  (1/3 steps, 1.50 s)" in text
    assert "scripts/client-replay.yaml:4 (step 2): wrong reply" in text
    assert "  expected: 'Baz'" in text
    assert f"  received: 'Qux' from {BOT} (m.notice)" in text
    assert "  waited:   0.018 s" in text
    assert "first difference at character 1" in text
    assert f"← {BOT}: Qux" in text


def test_console_says_nothing_was_received_for_a_silent_bot() -> None:
    report, out, _ = reporter()
    report.conversation_finished(silent_result())
    text = out.getvalue()
    assert "scripts/silent.yaml:3 (step 1): no reply within 2 s" in text
    assert "  received: nothing" in text


def test_console_shows_an_infrastructure_error_as_the_opening() -> None:
    report, out, _ = reporter()
    report.conversation_finished(error_result())
    assert "scripts/unreachable.yaml (opening): logging in:" in out.getvalue()
    assert "ERROR unreachable" in out.getvalue()


def test_console_prints_markup_in_messages_literally() -> None:
    report, out, _ = reporter()
    report.conversation_finished(failed_result(received="[bold red]boom[/] [link=x]"))
    assert "received: '[bold red]boom[/] [link=x]' from" in out.getvalue()


def test_console_passed_conversation_is_one_line() -> None:
    report, out, _ = reporter()
    report.conversation_finished(passed_result())
    assert out.getvalue() == "PASS greet  (2/2 steps, 0.25 s)\n"


def test_console_is_quiet_about_steps_unless_verbose() -> None:
    report, out, _ = reporter()
    report.conversation_started(passed_result())
    report.step_finished(passed_result().steps[0])
    assert out.getvalue() == ""


def test_console_verbose_shows_each_step_with_its_latency() -> None:
    report, out, _ = reporter(verbose=True)
    report.conversation_started(passed_result())
    report.step_finished(passed_result().steps[0])
    lines = out.getvalue().splitlines()
    assert lines[0] == "greet (scripts/greet.yaml, client role)"
    assert lines[1] == "  PASS step 1 (line 2) sent 'Foo' got 'Bar' in 42 ms"


def test_console_summary_says_errors_in_the_plural() -> None:
    report, out, _ = reporter()
    report.summary([error_result(), error_result()], 3.0)
    assert out.getvalue().splitlines()[-1] == "0 passed, 0 failed, 2 errors in 3.00 s"


def test_console_summary_counts_each_outcome() -> None:
    report, out, _ = reporter()
    report.summary(all_results(), 3.0)
    # The totals line comes last, after the table (tests/unit/test_console_summary.py).
    last = out.getvalue().splitlines()[-1]
    assert last == "1 passed, 1 failed, 1 error, 1 interrupted, 1 not run in 3.00 s"


def test_console_error_is_one_line_on_stderr() -> None:
    report, out, err = reporter()
    report.error("cannot reach the homeserver at http://127.0.0.1:1 [x]")
    assert out.getvalue() == ""
    assert err.getvalue() == "error: cannot reach the homeserver at http://127.0.0.1:1 [x]\n"


def test_failure_text_tells_each_later_failure_of_a_conversation_that_went_on() -> None:
    result = failed_result()
    assert result.failure is not None
    later = replace(result.failure, step_index=2, line=6, expected="Qux", received=bots("Quux"))
    result.later_failures = [later]
    text = failure_text(result)
    assert "(step 2): " in text and f"{result.script_path}:6 (step 3): " in text
    assert "  expected: 'Qux'" in text and "'Quux'" in text
