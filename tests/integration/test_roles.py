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


@pytest.fixture
def public_room(
    homeserver: Homeserver,
    command_bot: RegisteredUser,
    register_user: Callable[..., RegisteredUser],
) -> tuple[str, str]:
    """A new public room with the command bot in it: its ID and its alias."""
    owner = register_user()
    return public_room_with_bot(
        homeserver.url, owner.access_token, command_bot.user_id, homeserver.server_name
    )


@pytest.fixture
def alias(public_room: tuple[str, str]) -> str:
    """A new public room with the command bot in it, by its alias."""
    return public_room[1]


def test_room_alias_is_joined_and_used(
    alias: str,
    make_account: AccountFactory,
    tmp_path: Path,
) -> None:
    script = write_script(
        tmp_path,
        "alias.yaml",
        f'room_to_connect: "{alias}"\nmessages:\n  - send: "!ping"\n    expect: pong\n',
    )
    run = run_cli("run", script, "--account", make_account(), "-v")
    assert run.code == 0, run.stdout + run.stderr


def test_a_room_left_by_an_earlier_run_does_not_give_its_old_replies_to_the_next(
    alias: str,
    make_account: AccountFactory,
    tmp_path: Path,
) -> None:
    """The first run passes and leaves; its own join and the bot's pong stay in the
    room's recent history, which the second run's join brings back: not a reply."""
    account = make_account()
    first = write_script(
        tmp_path,
        "first.yaml",
        f'room_to_connect: "{alias}"\nmessages:\n  - send: "!ping"\n    expect: pong\n',
    )
    run = run_cli("run", first, "--account", account)
    assert run.code == 0, run.stdout + run.stderr
    again = write_script(
        tmp_path,
        "again.yaml",
        f'room_to_connect: "{alias}"\ntimeout: 3\nmessages:\n  - expect: pong\n',
    )
    second = run_cli("run", again, "--account", account)
    assert second.code == 1, second.stdout + second.stderr
    assert "no reply within 3 s" in second.stdout


def test_scripts_naming_one_room_take_turns_under_j(
    alias: str,
    make_account: AccountFactory,
    tmp_path: Path,
) -> None:
    """At -j 4 they would take each other's echoes, and the first to pass would leave
    the room under the others."""
    suite = tmp_path / "suite"
    suite.mkdir()
    for name in "abc":
        steps = "".join(f'  - send: "!echo {name}-{n}"\n    expect: "{name}-{n}"\n' for n in (1, 2))
        write_script(suite, f"{name}.convo.yaml", f'room_to_connect: "{alias}"\nmessages:\n{steps}')
    run = run_cli("run", suite, "--account", make_account(), "-j", "4")
    assert run.code == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout


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
        # Starting again is idempotent; another port is not silently dropped.
        again = run_cli("homeserver", "start", "--dir", directory, "--port", str(port + 1))
        assert again.code == 0, again.stderr
        assert again.stdout.strip() == f"http://localhost:{port}"
        assert f"already runs in {directory}, on port {port}" in again.stderr
        assert "stop it first" in again.stderr
        registered = run_cli("homeserver", "register", "--dir", directory, "carol", "pw-123")
        assert registered.code == 0, registered.stderr
        assert registered.stdout.strip() == "@carol:localhost"
    finally:
        stopped = run_cli("homeserver", "stop", "--dir", directory)
    assert stopped.code == 0
    assert stopped.stdout.strip() == "stopped"
    assert run_cli("homeserver", "status", "--dir", directory).code == 3


def test_scripts_naming_one_room_by_id_and_by_alias_take_turns_under_j(
    public_room: tuple[str, str], make_account: AccountFactory, tmp_path: Path
) -> None:
    """Found by a fresh user: the script naming the room by ID passed and left it
    while the one naming it by alias was still waiting there for its reply."""
    room_id, room_alias = public_room
    suite = tmp_path / "suite"
    suite.mkdir()
    # The short one would finish (and leave) while the long one still talks.
    for name, room, count in (("by-id", room_id, 1), ("by-alias", room_alias, 4)):
        steps = "".join(
            f'  - send: "!echo {name}-{n}"\n    expect: "{name}-{n}"\n' for n in range(count)
        )
        write_script(suite, f"{name}.convo.yaml", f'room_to_connect: "{room}"\nmessages:\n{steps}')
    run = run_cli("run", suite, "--account", make_account(), "-j", "2")
    assert run.code == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
