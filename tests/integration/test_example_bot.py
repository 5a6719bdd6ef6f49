"""The tester against the example bot: passing scripts, a failing one, a silent bot, rooms."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
import xmlschema
from clirun import EXAMPLES, REPO, AccountFactory, run_cli, write_script

from matrix_bot_tester.homeserver import RegisteredUser

pytestmark = pytest.mark.integration

PASSING = ["ping.yaml", "echo.yaml", "help.yaml"]


def test_example_conversations_pass(
    command_bot: RegisteredUser, make_account: AccountFactory, tmp_path: Path
) -> None:
    account = make_account(user_to_test=command_bot.user_id)
    report = tmp_path / "report.json"
    scripts = [EXAMPLES / "conversations" / name for name in PASSING]
    run = run_cli("run", *scripts, "--account", account, "--json", report, "-v")
    assert run.code == 0, run.stdout + run.stderr
    assert "3 passed, 0 failed" in run.stdout
    document = json.loads(report.read_text())
    # A real run's report fits the published schema (docs/reports.md).
    schema = json.loads((REPO / "docs" / "report.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(document)
    assert [c["outcome"] for c in document["conversations"]] == ["passed"] * 3
    # Each script gets its own DM.
    assert len({c["room_id"] for c in document["conversations"]}) == 3
    first_reply = document["conversations"][0]["steps"][0]["received"]
    assert first_reply["msgtype"] == "m.notice"
    assert first_reply["sender"] == command_bot.user_id
    # Messages carry their whole content, in steps and in the transcript.
    assert first_reply["content"]["msgtype"] == "m.notice"
    transcript = document["conversations"][0]["transcript"]
    assert transcript and all(e["message"]["content"].get("body") for e in transcript)


def test_wrong_answer_fails_with_expected_received_and_transcript(
    command_bot: RegisteredUser, make_account: AccountFactory, tmp_path: Path
) -> None:
    account = make_account(user_to_test=command_bot.user_id)
    junit = tmp_path / "junit.xml"
    script = EXAMPLES / "conversations" / "wrong-answer.yaml"
    run = run_cli("run", script, "--account", account, "--junit-xml", junit)
    assert run.code == 1, run.stdout + run.stderr
    assert "FAIL wrong-answer" in run.stdout
    assert f"{script}:" in run.stdout
    assert "wrong reply" in run.stdout
    assert f"from {command_bot.user_id} (m.notice)" in run.stdout
    assert "transcript:" in run.stdout
    xml = junit.read_text()
    xmlschema.XMLSchema10(str(REPO / "docs" / "junit.xsd")).validate(str(junit))
    assert '<failure message="wrong reply"' in xml
    assert "transcript:" in xml


def test_silent_bot_fails_the_step_by_its_deadline(
    command_bot: RegisteredUser, make_account: AccountFactory, tmp_path: Path
) -> None:
    # The example bot answers nothing that is not a command: for this step it is silent.
    script = write_script(
        tmp_path,
        "silent.yaml",
        "messages:\n  - send: '!ping'\n    expect: pong\n"
        "  - send: just chatting\n    expect: anything\n    timeout: 2\n",
    )
    account = make_account(user_to_test=command_bot.user_id)
    run = run_cli("run", script, "--account", account)
    assert run.code == 1, run.stdout + run.stderr
    assert f"{script}:4 (step 2): no reply within 2 s" in run.stdout
    assert "received: nothing" in run.stdout
    assert run.seconds < 2 + 15


def test_a_bot_that_never_joins_fails_the_opening(
    register_user: Callable[..., RegisteredUser], make_account: AccountFactory, tmp_path: Path
) -> None:
    nobody = register_user()  # a real account with no bot behind it
    script = write_script(tmp_path, "ping.yaml", "timeout: 2\nmessages:\n  - send: '!ping'\n")
    run = run_cli("run", script, "--account", make_account(user_to_test=nobody.user_id))
    assert run.code == 1, run.stdout + run.stderr
    assert f"{nobody.user_id} did not join the DM within 2 s" in run.stdout


def test_history_never_satisfies_an_expect(
    command_bot: RegisteredUser,
    register_user: Callable[..., RegisteredUser],
    make_account: AccountFactory,
    tmp_path: Path,
) -> None:
    """A 'pong' said before the run is in the room's history, and must not count."""
    tester = register_user()
    account = make_account(user_to_test=command_bot.user_id, user=tester)
    # First run: the bot says 'pong' in a room the tester is in.
    room_id = _shared_room(tmp_path, account)
    # Second run in the same room: expecting 'pong' without asking must time out.
    script = write_script(
        tmp_path,
        "history.yaml",
        f'room_to_connect: "{room_id}"\nmessages:\n  - expect: pong\n    timeout: 2\n',
    )
    run = run_cli("run", script, "--account", account)
    assert run.code == 1, run.stdout + run.stderr
    assert "no reply within 2 s" in run.stdout


def _shared_room(tmp_path: Path, account: Path) -> str:
    """Open a DM with the bot through the tester, have it say 'pong'; return the room ID."""
    report = tmp_path / "first.json"
    ping = "messages:\n  - send: '!ping'\n    expect: pong\n"
    script = write_script(tmp_path, "first.yaml", ping)
    # The room is used again afterwards: keep it (a passing run leaves it by default).
    run = run_cli("run", script, "--account", account, "--json", report, "--cleanup", "never")
    assert run.code == 0, run.stdout + run.stderr
    room_id = json.loads(report.read_text())["conversations"][0]["room_id"]
    assert isinstance(room_id, str)
    return room_id


def test_room_role_talks_in_a_named_room(
    command_bot: RegisteredUser, make_account: AccountFactory, tmp_path: Path
) -> None:
    account = make_account(user_to_test=command_bot.user_id)
    room_id = _shared_room(tmp_path, account)
    script = write_script(
        tmp_path,
        "in-room.yaml",
        f'room_to_connect: "{room_id}"\nmessages:\n  - send: "!echo again"\n    expect: again\n',
    )
    run = run_cli("run", script, "--account", account)
    assert run.code == 0, run.stdout + run.stderr
