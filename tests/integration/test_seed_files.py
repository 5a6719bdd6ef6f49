"""The original tool's own files, unchanged, against a Synapse named like theirs.

The seed account files say ``http://localhost:8008`` and users on
``synapse-test.localhost`` with the password ``test``: the session's Synapse
is exactly that, so the files run as they are.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from clirun import SEED, finish, start_cli

from matrix_bot_tester.homeserver import RegisteredUser

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("MBT_TEST_PORT", "8008") != "8008",
        reason="the seed account files name localhost:8008",
    ),
]

BOT_CONFIG = SEED / "bot-config.yaml"
CLIENT_CONFIG = SEED / "client-config.yaml"


@pytest.fixture(scope="module", autouse=True)
def seed_users(register_user: Callable[..., RegisteredUser]) -> None:
    register_user("bot", "test")
    register_user("mock_client", "test")


def test_original_pair_both_pass() -> None:
    bot = start_cli("--bot-config", BOT_CONFIG, "--replay", SEED / "bot-replay.yaml")
    client = start_cli("--bot-config", CLIENT_CONFIG, "--replay", SEED / "client-replay.yaml")
    client_run, bot_run = finish(client), finish(bot)
    assert client_run.code == 0, client_run.stdout + client_run.stderr
    assert bot_run.code == 0, bot_run.stdout + bot_run.stderr
    assert "PASS client-replay" in client_run.stdout
    assert "PASS bot-replay" in bot_run.stdout


def test_original_pair_fails_when_the_bot_says_the_wrong_thing() -> None:
    # The bot side waits for 'hmm', which never comes: it ends by its own deadline.
    bot = start_cli("-b", BOT_CONFIG, "-r", SEED / "bot-replay-fail.yaml", "--timeout", "5")
    client = start_cli("-b", CLIENT_CONFIG, "-r", SEED / "client-replay.yaml")
    client_run, bot_run = finish(client), finish(bot)
    assert client_run.code == 1, client_run.stdout + client_run.stderr
    assert "expected: 'Baz'" in client_run.stdout
    assert "received: 'The Spanish inquisition'" in client_run.stdout
    assert f"{SEED / 'client-replay.yaml'}:5 (step 3): wrong reply" in client_run.stdout
    assert bot_run.code == 1, bot_run.stdout + bot_run.stderr
    assert "bot-replay-fail.yaml:8 (step 6): no reply within 5 s" in bot_run.stdout
    assert bot_run.seconds < 5 + 20


def test_adapter_script_drives_a_mock_bot(tmp_path: Path) -> None:
    """client-replay-matrix-addapter-test.yaml, unchanged, against our own mock bot."""
    mock_script = tmp_path / "adapter-mock.yaml"
    mock_script.write_text(
        'room_to_connect: "!wait_for_message"\n'
        "messages:\n  - expect: hello\n  - send: message\n  - expect: bye\n",
        encoding="utf-8",
    )
    bot = start_cli("-b", BOT_CONFIG, "-r", mock_script)
    client = start_cli("-b", CLIENT_CONFIG, "-r", SEED / "client-replay-matrix-addapter-test.yaml")
    client_run, bot_run = finish(client), finish(bot)
    assert client_run.code == 0, client_run.stdout + client_run.stderr
    assert bot_run.code == 0, bot_run.stdout + bot_run.stderr
