"""run --update against the example bot: the golden-file workflow on a real Synapse."""

from __future__ import annotations

from pathlib import Path

import pytest
from clirun import AccountFactory, run_cli, write_script

from matrix_bot_tester.homeserver import RegisteredUser

pytestmark = pytest.mark.integration

WRONG_PING = """\
# The bot used to shout.
messages:
  - send: "!ping"
    expect: PONG   # what it says
  - send: "!echo still here"
    expect: STILL HERE
"""

WHOAMI = """\
messages:
  - send: "!echo you are {me}"
    expect: 'you are someone'
"""

PATTERN = """\
messages:
  - send: "!ping"
    expect: {body: {regex: "PO+NG"}}
"""

PASSING = """\
messages:
  - send: "!ping"
    expect: pong
"""


def test_update_rewrites_wrong_expectations_shows_the_diff_and_the_next_run_passes(
    command_bot: RegisteredUser, make_account: AccountFactory, tmp_path: Path
) -> None:
    account = make_account(user_to_test=command_bot.user_id)
    wrong = write_script(tmp_path, "wrong-ping.convo.yaml", WRONG_PING)
    whoami = write_script(tmp_path, "whoami.convo.yaml", WHOAMI)
    pattern = write_script(tmp_path, "pattern.convo.yaml", PATTERN)
    passing = write_script(tmp_path, "passing.convo.yaml", PASSING)
    untouched = passing.stat().st_mtime_ns
    state = ["--state-file", tmp_path / "logins.json"]

    run = run_cli("run", tmp_path, "--account", account, *state, "--update", cwd=tmp_path)
    output = run.stdout + run.stderr
    # The run failed: still exit 1, though every changed reply was rewritten.
    assert run.code == 1, output
    assert f"--- {wrong}\n+++ {wrong}\n" in run.stdout
    assert "-    expect: PONG   # what it says\n+    expect: pong   # what it says\n" in run.stdout
    # The conversation went on after the wrong first reply: its second is rewritten too.
    assert "-    expect: STILL HERE\n+    expect: still here\n" in run.stdout
    assert "-    expect: 'you are someone'\n+    expect: 'you are {me}'\n" in run.stdout
    assert "pattern, step 1): not rewritten: body is a regex match" in run.stdout
    assert "updated 2 files" in run.stdout
    assert wrong.read_text() == WRONG_PING.replace("PONG  ", "pong  ").replace(
        "STILL HERE", "still here"
    )
    assert whoami.read_text() == WHOAMI.replace("someone", "{me}")
    assert pattern.read_text() == PATTERN
    assert passing.read_text() == PASSING
    assert passing.stat().st_mtime_ns == untouched

    again = run_cli("run", wrong, whoami, passing, "--account", account, *state, cwd=tmp_path)
    assert again.code == 0, again.stdout + again.stderr
    assert "3 passed, 0 failed" in again.stdout


def test_update_preview_shows_the_diff_and_writes_nothing(
    command_bot: RegisteredUser, make_account: AccountFactory, tmp_path: Path
) -> None:
    account = make_account(user_to_test=command_bot.user_id)
    wrong = write_script(tmp_path, "wrong-ping.convo.yaml", WRONG_PING)
    run = run_cli(
        "run",
        wrong,
        "--account",
        account,
        "--state-file",
        tmp_path / "logins.json",
        "--update-preview",
        cwd=tmp_path,
    )
    assert run.code == 1, run.stdout + run.stderr
    assert "+    expect: pong   # what it says" in run.stdout
    assert "nothing written" in run.stdout
    assert wrong.read_text() == WRONG_PING
