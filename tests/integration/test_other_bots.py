"""The tester against a bot someone else wrote: simplematrixbotlib's README echo bot."""

from __future__ import annotations

from pathlib import Path

import pytest
from clirun import AccountFactory, run_cli, write_script

from matrix_bot_tester.homeserver import RegisteredUser

pytestmark = pytest.mark.integration


def test_simplematrixbotlib_echo_bot_passes(
    simple_echo_bot: RegisteredUser, make_account: AccountFactory, tmp_path: Path
) -> None:
    script = write_script(
        tmp_path,
        "echo.yaml",
        "messages:\n"
        "  - send: '!echo hello world'\n    expect: hello world\n"
        "  - send: '!echo ünïcödé ✓'\n    expect: ünïcödé ✓\n",
    )
    run = run_cli("run", script, "--account", make_account(user_to_test=simple_echo_bot.user_id))
    assert run.code == 0, run.stdout + run.stderr


def test_simplematrixbotlib_echo_bot_wrong_expectation_fails(
    simple_echo_bot: RegisteredUser, make_account: AccountFactory, tmp_path: Path
) -> None:
    script = write_script(
        tmp_path, "echo-wrong.yaml", "messages:\n  - send: '!echo hello'\n    expect: goodbye\n"
    )
    run = run_cli("run", script, "--account", make_account(user_to_test=simple_echo_bot.user_id))
    assert run.code == 1, run.stdout + run.stderr
    assert "expected: 'goodbye'" in run.stdout
    assert f"received: 'hello' from {simple_echo_bot.user_id}" in run.stdout
