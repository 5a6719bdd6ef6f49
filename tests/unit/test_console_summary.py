"""The console summary: a table of conversations, the slowest steps, then the totals line."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from matrix_bot_tester.matching import Message
from matrix_bot_tester.report import ConsoleReporter, slowest_step, slowest_steps
from matrix_bot_tester.result import ConversationResult, Failure, Outcome, StepResult

BOT = "@bot:example.org"
# SGR colour codes: 30-37, 39, 90-97 (foreground), 38;… (extended); not bold or dim.
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-9]|9[0-7])(?:;[0-9;]*)?m")


def timed(index: int, latency: float | None, outcome: Outcome = Outcome.PASSED) -> StepResult:
    result = StepResult(index, 3 + index, f"!step{index}", "ok", outcome, timeout=30.0)
    result.latency = latency
    if latency is not None:
        result.received = Message(f"${index}", BOT, "m.notice", "ok", 1)
    return result


def conversation(
    name: str, outcome: Outcome, latencies: list[float | None], duration: float = 1.0
) -> ConversationResult:
    steps = [timed(i, latency) for i, latency in enumerate(latencies)]
    failure = None
    if outcome is Outcome.FAILED:
        steps[-1].outcome = Outcome.FAILED
        failure = Failure(len(steps) - 1, 3 + len(steps) - 1, "wrong reply")
    return ConversationResult(
        script_path=f"suite/{name}.yaml",
        name=name,
        role="client",
        outcome=outcome,
        duration=duration,
        steps=steps,
        failure=failure,
    )


def run() -> list[ConversationResult]:
    return [
        conversation("fast", Outcome.PASSED, [0.010, 0.020], 0.5),
        conversation("slow", Outcome.FAILED, [0.900, 0.150, 0.700], 2.25),
        conversation("middling", Outcome.PASSED, [0.300, None]),
        ConversationResult(
            script_path="suite/down.yaml",
            name="down",
            role="client",
            outcome=Outcome.ERROR,
            failure=Failure(None, None, "cannot reach the homeserver"),
        ),
    ]


def summary(results: list[ConversationResult], console: Console | None = None) -> str:
    console = console or Console(file=io.StringIO(), width=120)
    ConsoleReporter(console, console).summary(results, 3.5)
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def _whole_line(place: str, text: str) -> bool:
    """Whether ``place`` ends a line of ``text`` unbroken (table cells pad with spaces)."""
    return re.search(rf"{re.escape(place)} *$", text, re.MULTILINE) is not None


def test_the_totals_line_is_last_and_unchanged() -> None:
    lines = summary(run()).splitlines()
    assert lines[-1] == "2 passed, 1 failed, 1 error in 3.50 s"


def test_one_conversation_prints_only_the_totals_line() -> None:
    only = [conversation("fast", Outcome.PASSED, [0.010, 0.020], 0.5)]
    assert summary(only) == "1 passed, 0 failed in 3.50 s\n"
    assert summary([]) == "0 passed, 0 failed in 3.50 s\n"


def row(text: str, name: str) -> list[str]:
    """A table row's cells, split on the column gaps."""
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return re.split(r"\s{2,}", line.strip())


def test_the_table_has_name_outcome_steps_duration_and_slowest_step() -> None:
    text = summary(run())
    assert re.search(r"conversation\s+outcome\s+steps\s+duration\s+slowest step", text)
    assert row(text, "fast") == ["fast", "PASS", "2/2", "0.50 s", "20 ms (step 2)"]
    assert row(text, "slow") == ["slow", "FAIL", "2/3", "2.25 s", "900 ms (step 1)"]
    assert row(text, "middling") == ["middling", "PASS", "2/2", "1.00 s", "300 ms (step 1)"]
    assert row(text, "down") == ["down", "ERROR", "0/0", "0.00 s", "—"]


def test_the_three_slowest_steps_of_the_run_slowest_first() -> None:
    text = summary(run())
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("slowest steps")))
    body = [line.strip() for line in lines[start + 3 : start + 9]]
    assert [re.split(r"\s{2,}", line) for line in body] == [
        ["900 ms", "suite/slow.yaml:3"],
        ["step 1: sent !step0"],
        ["700 ms", "suite/slow.yaml:5"],
        ["step 3: sent !step2"],
        ["300 ms", "suite/middling.yaml:3"],
        ["step 1: sent !step0"],
    ]
    assert "150 ms" not in "\n".join(lines[start:])


def test_slowest_helpers() -> None:
    results = run()
    assert [(r.name, s.index) for r, s in slowest_steps(results)] == [
        ("slow", 0),
        ("slow", 2),
        ("middling", 0),
    ]
    assert len(slowest_steps(results, count=10)) == 6  # the steps with a latency
    assert slowest_steps([]) == []
    assert slowest_step(results[3]) is None
    ties = conversation("ties", Outcome.PASSED, [0.1, 0.1])
    first = slowest_step(ties)
    assert first is not None and first.index == 0


def test_names_with_markup_are_printed_literally() -> None:
    results = run()
    results[0].name = "[bold red]boom[/]"
    text = summary(results)
    assert "[bold red]boom[/]" in text


def test_piped_output_is_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    text = summary(run(), Console(file=io.StringIO(), width=120))
    assert "\x1b" not in text


def test_a_terminal_gets_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    text = summary(run(), Console(file=io.StringIO(), width=120, force_terminal=True))
    assert COLOUR.search(text)


def test_no_color_turns_colour_off_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    text = summary(run(), Console(file=io.StringIO(), width=120, force_terminal=True))
    assert not COLOUR.search(text)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert plain.splitlines()[-1] == "2 passed, 1 failed, 1 error in 3.50 s"


def test_rate_limit_waits_and_takeovers_get_a_line_before_the_totals() -> None:
    results = run()
    results[0].steps[0].rate_limited = 4.5
    results[2].steps[0].rate_limited = 5.25
    results[2].warnings.append("room !r:x reused from an earlier conversation: limits")
    lines = summary(results).splitlines()
    assert lines[-2] == (
        "rate limits: waited 9.8 s in all for the homeserver (not counted as latency);"
        " 1 conversation took over a passed one's DM"
    )
    assert lines[-1] == "2 passed, 1 failed, 1 error in 3.50 s"


def test_a_long_script_path_in_the_slowest_steps_is_never_broken_mid_word() -> None:
    results = run()
    long_path = "examples/conversations/streaming-and-media-and-more.convo.yaml"
    results[1].script_path = long_path
    text = summary(results, Console(file=io.StringIO(), width=80, no_color=True))
    assert _whole_line(f"{long_path}:3", text)


def test_no_rate_limit_line_when_nothing_was_held_back() -> None:
    assert "rate limits" not in summary(run())


def test_the_slowest_steps_show_scripts_below_here_by_their_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    results = run()
    results[1].script_path = str(tmp_path / "examples" / "conversations" / "slow.yaml")
    results[2].script_path = "/elsewhere/middling.yaml"
    text = summary(results)
    assert _whole_line("examples/conversations/slow.yaml:3", text)
    assert _whole_line("/elsewhere/middling.yaml:3", text)


def test_a_large_run_lists_only_what_did_not_pass() -> None:
    passes = [conversation(f"ok{n:02d}", Outcome.PASSED, [0.010]) for n in range(24)]
    text = summary([*passes, conversation("broken", Outcome.FAILED, [0.020, 0.030])])
    assert row(text, "broken") == ["broken", "FAIL", "1/2", "1.00 s", "30 ms (step 2)"]
    assert not any(line.startswith("ok") for line in text.splitlines())
    assert "24 passed conversations not listed" in text
    assert text.splitlines()[-1] == "24 passed, 1 failed in 3.50 s"


def test_a_large_run_that_passed_has_no_table_of_conversations() -> None:
    passes = [conversation(f"ok{n:02d}", Outcome.PASSED, [0.010]) for n in range(21)]
    text = summary(passes)
    assert not re.search(r"conversation\s+outcome", text)
    assert "21 passed conversations not listed" in text


def test_a_run_of_twenty_lists_them_all() -> None:
    passes = [conversation(f"ok{n:02d}", Outcome.PASSED, [0.010]) for n in range(20)]
    text = summary(passes)
    assert all(row(text, f"ok{n:02d}")[1] == "PASS" for n in range(20))
    assert "not listed" not in text
