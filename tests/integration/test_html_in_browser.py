"""The HTML report opened in a real headless browser (Debian's chromium): no Synapse needed.

The results are built by hand from the result dataclasses; the test checks
what the browser made of the page (its DOM after parsing), not our string.
"""

from __future__ import annotations

import html
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from matrix_bot_tester.html_report import render
from matrix_bot_tester.matching import Message, text_diff
from matrix_bot_tester.report import write_atomically
from matrix_bot_tester.result import (
    ConversationResult,
    Failure,
    Outcome,
    StepResult,
    TranscriptEntry,
)

CHROMIUM = next(
    (p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and Path(p).exists()), None
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (as root: apt-get install -y chromium)",
)

ME = "@tester:example.org"
BOT = "@bot:example.org"
SCRIPT_BODY = "<script>document.title='pwned'</script>"


def message(sender: str, body: str, msgtype: str = "m.text") -> Message:
    return Message(f"${abs(hash((sender, body)))}", sender, msgtype, body, 0)


def results() -> list[ConversationResult]:
    ok = [
        StepResult(0, 2, "!ping", "pong", Outcome.PASSED, 30.0, latency=0.045),
        StepResult(1, 4, "!echo hello", "hello", Outcome.PASSED, 30.0, latency=0.061),
    ]
    passed = ConversationResult(
        script_path="convos/ping.yaml",
        name="ping",
        role="client",
        user_id=ME,
        partner=BOT,
        room_id="!ping:example.org",
        outcome=Outcome.PASSED,
        duration=0.31,
        steps=ok,
        transcript=[
            TranscriptEntry(0.012, "sent", message(ME, "!ping"), 0),
            TranscriptEntry(0.057, "received", message(BOT, "pong", "m.notice"), 0),
            TranscriptEntry(0.070, "sent", message(ME, "!echo hello"), 1),
            TranscriptEntry(0.131, "received", message(BOT, "hello", "m.notice"), 1),
        ],
    )
    bad = [
        StepResult(0, 2, "!echo x", SCRIPT_BODY, Outcome.PASSED, 30.0, latency=0.050),
        StepResult(1, 4, "!ping", "PONG", Outcome.FAILED, 30.0, latency=0.055),
        StepResult(2, 6, "bye", None, Outcome.NOT_RUN, 30.0),
    ]
    failed = ConversationResult(
        script_path="convos/shout.yaml",
        name="shout",
        role="client",
        user_id=ME,
        partner=BOT,
        room_id="!shout:example.org",
        outcome=Outcome.FAILED,
        duration=2.11,
        steps=bad,
        transcript=[
            TranscriptEntry(0.010, "sent", message(ME, "!echo x"), 0),
            TranscriptEntry(0.060, "received", message(BOT, SCRIPT_BODY, "m.notice"), 0),
            TranscriptEntry(0.070, "sent", message(ME, "!ping"), 1),
            TranscriptEntry(0.125, "received", message(BOT, "pong", "m.notice"), 1),
        ],
        failure=Failure(
            step_index=1,
            line=4,
            reason="wrong reply",
            expected="PONG",
            received=message(BOT, "pong", "m.notice"),
            waited=0.055,
            diff=text_diff("PONG", "pong"),
            problems=("body: expected 'PONG', got 'pong'",),
        ),
    )
    return [passed, failed]


def dump_dom(page: Path, profile: Path) -> str:
    assert CHROMIUM is not None
    run = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip(), run.stderr[-2000:]
    return run.stdout


def test_a_browser_shows_the_transcript_and_the_failing_step(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    write_atomically(page, render(results(), 2.42, 1))
    started = time.monotonic()
    dom = dump_dom(page, tmp_path / "profile")
    took = time.monotonic() - started
    assert took < 60, f"chromium took {took:.1f} s"

    # The page parsed as intended: our title, not the one a body's script would set.
    assert "<title>matrix-bot-tester: 1 passed, 1 failed</title>" in dom
    assert "pwned" not in dom.split("</title>")[0]
    # The body with <script> is text in a bubble, not an element.
    assert f'<div class="body">{html.escape(SCRIPT_BODY, quote=False)}</div>' in dom
    assert dom.count("<script") == 0

    # The transcript: both sides, in order, with time and step.
    for body in ("!ping", "pong", "!echo hello", "hello"):
        assert f'<div class="body">{body}</div>' in dom
    assert dom.index("!echo hello") < dom.index('<div class="body">hello</div>')
    assert '<li class="sent" data-step="1">' in dom
    assert '<li class="received" data-step="1">' in dom
    assert "0.057 s · step 1 · m.notice" in dom

    # The failing step: highlighted bubbles, the marker, the failure box with its diff.
    assert '<li class="sent failing" data-step="2">' in dom
    assert '<li class="received failing" data-step="2">' in dom
    assert "✗ step 2 failed: wrong reply" in dom
    assert '<p class="reason">step 2: wrong reply</p>' in dom
    assert "<span class=\"del\">- expected: 'PONG'</span>" in dom
    assert "<span class=\"add\">+ received: 'pong'</span>" in dom
    assert '<tr class="failing" data-step="2">' in dom

    # The chart: one bar per step with a latency (2 + 2).
    assert dom.count('<rect class="bar') == 4
