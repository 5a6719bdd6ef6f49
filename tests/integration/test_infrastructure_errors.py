"""Wrong password, unreachable homeserver, broken script: one clear line, the documented code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from clirun import AccountFactory, run_cli, write_script

from matrix_bot_tester.homeserver import Homeserver, RegisteredUser, free_port

pytestmark = pytest.mark.integration

PING = "messages:\n  - send: '!ping'\n    expect: pong\n"


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_wrong_password_is_infrastructure_and_secret_free(
    make_account: AccountFactory, tmp_path: Path
) -> None:
    wrong = "not-the-password-6b1f0c"
    account = make_account(user_to_test="@nobody:synapse-test.localhost", password=wrong)
    run = run_cli("run", write_script(tmp_path, "s.yaml", PING), "--account", account)
    assert run.code == 3, run.stdout + run.stderr
    assert "login refused" in run.stdout + run.stderr
    assert "M_FORBIDDEN" in run.stdout + run.stderr
    assert wrong not in run.stdout + run.stderr


def test_unreachable_homeserver_is_infrastructure(
    make_account: AccountFactory, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    account = make_account(user_to_test="@bot:synapse-test.localhost", url=url)
    run = run_cli("run", write_script(tmp_path, "s.yaml", PING), "--account", account)
    assert run.code == 3, run.stdout + run.stderr
    assert f"cannot reach the homeserver at {url}" in run.stdout + run.stderr
    assert run.seconds < 15


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("messages:\n  - send: [unclosed\n", 2, "list is not closed"),
        ("messages:\n  - send: hi\n    expext: ho\n", 3, "unknown key 'expext'"),
        ("timeout: soon\nmessages:\n  - send: hi\n", 1, "timeout"),
    ],
)
def test_broken_script_names_file_and_line(
    make_account: AccountFactory, tmp_path: Path, text: str, line: int, words: str
) -> None:
    script = write_script(tmp_path, "broken.yaml", text)
    account = make_account(user_to_test="@bot:synapse-test.localhost")
    run = run_cli("run", script, "--account", account)
    assert run.code == 2, run.stdout + run.stderr
    error = _one_error_line(run.stderr)
    assert error.startswith(f"error: {script}:{line}:")
    assert words in error


def test_access_token_instead_of_password(
    command_bot: RegisteredUser,
    register_user: Callable[..., RegisteredUser],
    homeserver: Homeserver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tester = register_user()
    account = write_script(
        tmp_path,
        "token-account.yaml",
        f'user: "{tester.user_id}"\naccess_token: "${{MBT_TEST_TOKEN}}"\n'
        f'device_id: "{tester.device_id}"\nhomeserver_url: "{homeserver.url}"\n'
        f'user_to_test: "{command_bot.user_id}"\n',
    )
    monkeypatch.setenv("MBT_TEST_TOKEN", tester.access_token)
    run = run_cli("run", write_script(tmp_path, "s.yaml", PING), "--account", account)
    assert run.code == 0, run.stdout + run.stderr
    assert tester.access_token not in run.stdout + run.stderr


def test_invalid_access_token_is_infrastructure(homeserver: Homeserver, tmp_path: Path) -> None:
    bogus = "syt_bm9ib2R5_notarealtoken_0abc12"
    account = write_script(
        tmp_path,
        "bad-token.yaml",
        f'user: "@tester:{homeserver.server_name}"\naccess_token: "{bogus}"\n'
        f'homeserver_url: "{homeserver.url}"\nuser_to_test: "@bot:{homeserver.server_name}"\n',
    )
    run = run_cli("run", write_script(tmp_path, "s.yaml", PING), "--account", account)
    assert run.code == 3, run.stdout + run.stderr
    error = _one_error_line(run.stderr)
    assert "access token" in error
    assert bogus not in run.stdout + run.stderr
