"""Helpers for the integration tests: run the real command, write account files, start bots."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clirun import EXAMPLES, REPO

from matrix_bot_tester.botprocess import start_bot
from matrix_bot_tester.homeserver import Homeserver, RegisteredUser

AccountFactory = Callable[..., Path]


@pytest.fixture
def make_account(
    homeserver: Homeserver, register_user: Callable[..., RegisteredUser], tmp_path: Path
) -> AccountFactory:
    """Write an account file for a fresh tester (or the given user) on the test server."""

    def make(
        user_to_test: str | None = None,
        user: RegisteredUser | None = None,
        password: str | None = None,
        url: str | None = None,
    ) -> Path:
        user = user or register_user()
        lines = [
            f'user: "{user.user_id}"',
            f'password: "{password if password is not None else user.password}"',
            f'homeserver_url: "{url or homeserver.url}"',
        ]
        if user_to_test:
            lines.append(f'user_to_test: "{user_to_test}"')
        path = tmp_path / f"account-{user.user_id[1:].split(':')[0]}.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return make


def _bot(
    argv: list[str], homeserver: Homeserver, user: RegisteredUser, cwd: Path
) -> Iterator[RegisteredUser]:
    env = {
        "MBT_BOT_HOMESERVER": homeserver.url,
        "MBT_BOT_USER": user.user_id,
        "MBT_BOT_PASSWORD": user.password,
    }
    bot = start_bot(argv, env, cwd=cwd, timeout=60)
    try:
        yield user
    finally:
        bot.stop()


@pytest.fixture(scope="module")
def command_bot(
    homeserver: Homeserver,
    register_user: Callable[..., RegisteredUser],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RegisteredUser]:
    """The example bot from examples/, running against the test server."""
    yield from _bot(
        [str(EXAMPLES / "command_bot.py")],
        homeserver,
        register_user(),
        tmp_path_factory.mktemp("command-bot"),
    )


@pytest.fixture(scope="module")
def simple_echo_bot(
    homeserver: Homeserver,
    register_user: Callable[..., RegisteredUser],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RegisteredUser]:
    """simplematrixbotlib's README echo bot: a bot someone else wrote."""
    yield from _bot(
        [str(REPO / "tests" / "bots" / "simple_echo_bot.py")],
        homeserver,
        register_user(),
        tmp_path_factory.mktemp("simple-echo-bot"),
    )
