"""The roles beyond the plain DM: a room named by alias, and the mock bot's invite handling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from clirun import (
    AccountFactory,
    finish,
    public_room_with_bot,
    run_cli,
    start_cli,
    write_script,
)

from matrix_bot_tester.account import load_account
from matrix_bot_tester.homeserver import Homeserver, RegisteredUser
from matrix_bot_tester.matching import Message
from matrix_bot_tester.session import NioSession

pytestmark = pytest.mark.integration


def test_room_alias_is_joined_and_used(
    homeserver: Homeserver,
    command_bot: RegisteredUser,
    register_user: Callable[..., RegisteredUser],
    make_account: AccountFactory,
    tmp_path: Path,
) -> None:
    owner = register_user()
    _, alias = public_room_with_bot(
        homeserver.url, owner.access_token, command_bot.user_id, homeserver.server_name
    )
    script = write_script(
        tmp_path,
        "alias.yaml",
        f'room_to_connect: "{alias}"\nmessages:\n  - send: "!ping"\n    expect: pong\n',
    )
    run = run_cli("run", script, "--account", make_account(), "-v")
    assert run.code == 0, run.stdout + run.stderr


def test_mock_bot_hears_a_client_that_spoke_before_it_started(
    register_user: Callable[..., RegisteredUser], make_account: AccountFactory, tmp_path: Path
) -> None:
    """The invite is pending and 'Foo' already sent when the mock bot starts: both still count."""
    mock_bot = register_user()
    client_account = load_account(make_account(user_to_test=mock_bot.user_id))
    bot_script = write_script(
        tmp_path,
        "mock.yaml",
        'room_to_connect: "!wait_for_message"\nmessages:\n  - expect: Foo\n  - send: Bar\n',
    )

    async def client_side() -> Message | None:
        session = NioSession(client_account)
        await session.connect()
        try:
            room = await session.open_dm(mock_bot.user_id, wait_for_join=False, timeout=10)
            await session.send_text(room, "Foo", timeout=10)
            bot = start_cli("run", bot_script, "--account", make_account(user=mock_bot))
            reply = await session.next_event(room, timeout=30)
            run = await asyncio.to_thread(finish, bot)
            assert run.code == 0, run.stdout + run.stderr
            return Message.from_event(reply.event) if reply else None
        finally:
            await session.close()

    reply = asyncio.run(client_side())
    assert reply is not None
    assert reply.body == "Bar"
    assert reply.sender == mock_bot.user_id


def test_mock_bot_ignores_invites_when_nobody_speaks(
    register_user: Callable[..., RegisteredUser], make_account: AccountFactory, tmp_path: Path
) -> None:
    lonely = register_user()
    script = write_script(
        tmp_path,
        "lonely.yaml",
        'room_to_connect: "!wait_for_message"\ntimeout: 2\nmessages:\n  - expect: anyone?\n',
    )
    run = run_cli("run", script, "--account", make_account(user=lonely))
    assert run.code == 1, run.stdout + run.stderr
    assert "nobody spoke to us within 2 s" in run.stdout


def test_homeserver_commands(tmp_path: Path) -> None:
    from matrix_bot_tester.homeserver import free_port

    directory = tmp_path / "hs"
    port = free_port()
    started = run_cli("homeserver", "start", "--dir", directory, "--port", str(port))
    try:
        assert started.code == 0, started.stdout + started.stderr
        assert started.stdout.strip() == f"http://localhost:{port}"
        status = run_cli("homeserver", "status", "--dir", directory)
        assert status.code == 0
        assert f"running at http://localhost:{port}" in status.stdout
        registered = run_cli("homeserver", "register", "--dir", directory, "carol", "pw-123")
        assert registered.code == 0, registered.stderr
        assert registered.stdout.strip() == "@carol:localhost"
    finally:
        stopped = run_cli("homeserver", "stop", "--dir", directory)
    assert stopped.code == 0
    assert stopped.stdout.strip() == "stopped"
    assert run_cli("homeserver", "status", "--dir", directory).code == 3
