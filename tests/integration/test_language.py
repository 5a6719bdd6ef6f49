"""The script language end to end: scripts through the real command against real bots.

The example bot answers with threads, replies, reactions, images, edits and
HTML; a second tester in the mock-bot role checks what the tester's own
actions put on the wire (Markdown, files, edits, redactions, ...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from clirun import EXAMPLES, AccountFactory, finish, run_cli, start_cli, write_script

from matrix_bot_tester.homeserver import RegisteredUser

pytestmark = pytest.mark.integration

# Every new example; the four original ones are run by test_example_bot.py.
NEW_EXAMPLES = ["threads-and-reactions.yaml", "streaming-and-media.yaml", "variables.yaml"]

BOT_ANSWERS = """\
timeout: 10
messages:
  - send: "!thread hello"
    expect: {body: hello, thread: true, reply_to: false, msgtype: m.notice}
  - send: "!reply hi"
    expect: {body: hi, reply_to: true, mentions: "{me}", sender: "{bot}"}
  - send: "!react 👍"
    expect:
      reaction: {key: "👍", to: true}
  - send: "!image"
    expect:
      msgtype: m.image
      media: {mimetype: image/png, filename: pixel.png, downloadable: true}
  - send: "!stream the quick brown fox jumps"
    expect: the quick brown fox jumps
    settle: 0.5
  - send: "!quiet"
    expect_no_reply: 2
  - send: "!html"
    expect:
      html: "<p><b>bold</b> move</p>"
      text: bold move
      body: {contains: bold}
  - send: "!mention"
    expect:
      mentions: ["{me}"]
      text: "{me}: you called?"
      html: {regex: '<a href="https://matrix.to/#/@[^"]+">@.+</a>: you called\\?'}
"""

VARIABLES_AND_SENDS = """\
timeout: 10
messages:
  - include: ping-fragment.yaml
  - send: "!echo order {run_id}-17 is ready"
    expect:
      body: {regex: 'order (?P<order>[0-9a-f]{10}-\\d+) is ready'}
      name: ready
      save: {ready_sender: sender, ready_id: event_id}
  - send: {text: "!reply about {order} and {ready.event_id}", reply_to: ready}
    expect:
      body: "about {order} and {ready_id}"
      reply_to: true
      sender: "{ready_sender}"
  - send: {markdown: "!echo **bold** and `code`"}
    expect: "**bold** and `code`"
  - send: {html: "<b>!echo</b> <i>from html</i>"}
    expect: from html
  - send: "!echo ${LANGUAGE_TEST_WORD}"
    expect: {body: {exact: "  WORD-from-ENV ", ignore_case: true, normalize_whitespace: true}}
  - send: "!echo b"
  - send: "!echo a"
  - expect_unordered: [a, b]
  - send: "!echo noise"
  - send: "!ping"
    ignore: [{body: {one_of: [noise, other noise]}}]
    expect: pong
    within: 5
  - send: "!echo one"
  - send: "!echo two"
  - expect_count: 2
  - send: "!echo {{braces}}"
    expect: "{{braces}}"
"""

PING_FRAGMENT = """\
messages:
  - send: "!ping"
    expect: pong
"""

# The mock bot's side: what the client's actions must look like when they arrive.
MOCK_EXPECTS = """\
room_to_connect: "!wait_for_message"
timeout: 20
messages:
  - expect:
      text: "first, edited"   # the edit arrives while the first draft is judged
      msgtype: m.text
      name: first
  - expect:
      reaction: {key: "👍", to: first}
      name: thumbs
  - send: seen
  - expect:
      redaction: {of: thumbs}
  - expect:
      redaction: {of: first}
  - expect:
      - {body: "**bold** move", html: "<p><strong>bold</strong> move</p>", msgtype: m.text}
      - {html: "<i>it</i> works", body: it works}
      - {body: a notice, msgtype: m.notice}
      - {body: waves, msgtype: m.emote}
      - msgtype: m.file
        media: {mimetype: text/plain, filename: note.txt, size: 11, downloadable: true}
      - {body: root, name: root}
  - expect:
      - {body: in thread, thread: root, reply_to: false}
      - {body: a reply, reply_to: root, mentions: "{me}"}
      - type: org.example.ping
        fields: {content.n: 1, content.about: "{root.event_id}"}
  - send: done
"""

CLIENT_ACTS = """\
timeout: 20
messages:
  - send: first
    name: first
  - react: {to: first, key: "👍"}
    name: thumbs
  - edit: {message: first, text: "first, edited"}
  - expect: seen    # redact only once the mock bot has seen the originals
  - redact: thumbs
  - redact: {message: first, reason: testing}
  - send: {markdown: "**bold** move"}
  - send: {html: "<i>it</i> works"}
  - send: {text: a notice, msgtype: m.notice}
  - send: {text: waves, msgtype: m.emote}
  - send: {file: note.txt}
  - send: root
    name: root
  - typing: 2
  - send: {text: in thread, thread: root}
  - typing: false
  - read_receipt: root
  - send: {text: a reply, reply_to: root, mentions: ["{bot}"]}
  - send_event: {type: org.example.ping, content: {n: 1, about: "{root.event_id}"}}
  - wait: 0.2
  - expect: done
"""


def _conversations(report: Path) -> dict[str, dict[str, Any]]:
    document = json.loads(report.read_text(encoding="utf-8"))
    return {c["name"]: c for c in document["conversations"]}


def test_bot_answers_client_sends_and_new_examples_pass(
    command_bot: RegisteredUser,
    make_account: AccountFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LANGUAGE_TEST_WORD", "word-from-env")
    answers = write_script(tmp_path, "answers.yaml", BOT_ANSWERS)
    sends = write_script(tmp_path, "sends.yaml", VARIABLES_AND_SENDS)
    write_script(tmp_path, "ping-fragment.yaml", PING_FRAGMENT)
    examples = [EXAMPLES / "conversations" / name for name in NEW_EXAMPLES]
    report = tmp_path / "report.json"
    account = make_account(user_to_test=command_bot.user_id)
    # One process for all: a login and a start-up less per script.
    run = run_cli("run", answers, sends, *examples, "--account", account, "--json", report, "-v")
    assert run.code == 0, run.stdout + run.stderr
    assert f"{2 + len(examples)} passed, 0 failed" in run.stdout
    conversations = _conversations(report)
    assert {"threads-and-reactions", "streaming-and-media", "variables"} <= set(conversations)
    steps = conversations["answers"]["steps"]
    assert [s["outcome"] for s in steps] == ["passed"] * 8
    # The streamed answer is reported as it ended, and its edits were no new messages.
    assert steps[4]["received"]["body"] == "the quick brown fox jumps"
    assert steps[2]["received"]["msgtype"] == "m.reaction"
    transcript = conversations["answers"]["transcript"]
    assert any("(edited)" in entry["message"]["body"] for entry in transcript)
    transcript = conversations["sends"]["transcript"]
    sent = [e["message"]["body"] for e in transcript if e["direction"] == "sent"]
    run_id_order = next(body for body in sent if body.startswith("!echo order "))
    assert run_id_order.endswith("-17 is ready")
    assert "!echo word-from-env" in sent
    assert "!echo {braces}" in sent
    assert any(e["message"]["body"] == "noise (ignored)" for e in transcript)


def test_client_actions_arrive_as_the_mock_bot_expects(
    register_user: Any, make_account: AccountFactory, tmp_path: Path
) -> None:
    """Two testers at once: one acts in the client role, the other checks in the bot role."""
    mock_bot = register_user()
    (tmp_path / "note.txt").write_text("hello file\n", encoding="utf-8")
    mock_script = write_script(tmp_path, "mock.yaml", MOCK_EXPECTS)
    client_script = write_script(tmp_path, "client.yaml", CLIENT_ACTS)
    mock_report = tmp_path / "mock.json"
    mock = start_cli(
        "run", mock_script, "--account", make_account(user=mock_bot), "--json", mock_report
    )
    try:
        client = run_cli(
            "run", client_script, "--account", make_account(user_to_test=mock_bot.user_id), "-v"
        )
    finally:
        mock_run = finish(mock, timeout=60)
    assert mock_run.code == 0, mock_run.stdout + mock_run.stderr
    assert client.code == 0, client.stdout + client.stderr
    mock_steps = _conversations(mock_report)["mock"]["steps"]
    assert mock_steps[0]["received"]["body"] == "first, edited"
    assert [s["outcome"] for s in mock_steps] == ["passed"] * len(mock_steps)


def test_failing_expectation_shows_why_and_a_diff(
    command_bot: RegisteredUser, make_account: AccountFactory, tmp_path: Path
) -> None:
    script = write_script(
        tmp_path,
        "reply.yaml",
        "timeout: 10\nmessages:\n"
        '  - send: "!reply hello"\n'
        "    expect:\n"
        "      body: hello there\n"
        "      reply_to: false\n",
    )
    run = run_cli("run", script, "--account", make_account(user_to_test=command_bot.user_id))
    assert run.code == 1, run.stdout + run.stderr
    out = run.stdout
    assert f"{script}:3 (step 1): wrong reply" in out
    assert "  why:      body: expected 'hello there', got 'hello'" in out
    assert "  why:      reply_to: expected not a reply, got a reply to $" in out
    assert "- expected: 'hello there'" in out
    assert "+ received: 'hello'" in out
    assert "first difference at character 6" in out


def test_a_broken_script_is_refused_with_its_place(tmp_path: Path) -> None:
    script = write_script(tmp_path, "typo.yaml", 'messages:\n  - send: "!ping"\n    expct: pong\n')
    run = run_cli("validate", script)
    assert run.code == 2
    assert f"{script}:3:5: unknown key 'expct'" in run.stderr
