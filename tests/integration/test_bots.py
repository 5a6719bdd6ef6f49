"""The bots our tester is tested against, checked on their own against a real Synapse.

The other side of each conversation is a plain matrix-nio client (``Peer``),
not our tester, so a bug in the tester cannot hide a bug in a bot and the
other way round. Every wait has a deadline and ends as soon as its condition
holds; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from clirun import EXAMPLES, REPO, run_cli, write_script
from nio import (
    AsyncClient,
    AsyncClientConfig,
    DevicesResponse,
    Event,
    MemoryDownloadResponse,
    RoomCreateResponse,
    RoomMemberEvent,
    RoomMessage,
    RoomSendResponse,
    SyncError,
)

from matrix_bot_tester.botprocess import BotProcess, start_bot
from matrix_bot_tester.errors import InfrastructureError
from matrix_bot_tester.homeserver import Homeserver, RegisteredUser
from matrix_bot_tester.script import load_script

pytestmark = pytest.mark.integration

RegisterUser = Callable[..., RegisteredUser]  # the conftest fixture

COMMAND_BOT = EXAMPLES / "command_bot.py"
SIMPLE_ECHO_BOT = REPO / "tests" / "bots" / "simple_echo_bot.py"
JOIN_TIMEOUT = 20.0  # seconds for a bot to accept our invite
REPLY_TIMEOUT = 10.0  # seconds for a bot to answer
QUIET_WINDOW = 2.0  # seconds in which a bot that should stay silent must stay silent
BOT_START_TIMEOUT = 60.0

# Bounded like the bots: a broken server fails the test instead of hanging it.
_CLIENT_CONFIG = AsyncClientConfig(max_limit_exceeded=3, max_timeouts=3, request_timeout=20)
_SYNC_FILTER = {"room": {"timeline": {"limit": 50}}}


class Peer:
    """A person in a DM with a bot: sends text, reads what arrives after it started."""

    def __init__(self, client: AsyncClient, room_id: str, partner: str) -> None:
        self.client = client
        self.room_id = room_id
        self.partner = partner
        self._unread: deque[Event] = deque()

    @classmethod
    async def open_dm(
        cls, homeserver: Homeserver, user: RegisteredUser, partner: str, *, wait_for_join: bool
    ) -> Peer:
        client = AsyncClient(homeserver.url, user.user_id, config=_CLIENT_CONFIG)
        client.restore_login(user.user_id, user.device_id, user.access_token)
        try:
            # A watermark: everything after it is new to us.
            first = await client.sync(timeout=0, sync_filter=_SYNC_FILTER)
            assert not isinstance(first, SyncError), first
            created = await client.room_create(is_direct=True, invite=[partner])
            assert isinstance(created, RoomCreateResponse), created
            peer = cls(client, created.room_id, partner)
            if wait_for_join:
                await peer.wait_for_join()
        except BaseException:
            await client.close()
            raise
        return peer

    async def close(self) -> None:
        await self.client.close()

    async def send(self, text: str) -> str:
        """Send plain text; return its event ID."""
        return await self.send_content({"msgtype": "m.text", "body": text})

    async def send_content(
        self, content: dict[str, Any], event_type: str = "m.room.message"
    ) -> str:
        resp = await self.client.room_send(self.room_id, event_type, content)
        assert isinstance(resp, RoomSendResponse), resp
        return str(resp.event_id)

    async def wait_for_join(self, timeout: float = JOIN_TIMEOUT) -> None:
        def joined(event: Event) -> bool:
            return (
                isinstance(event, RoomMemberEvent)
                and event.state_key == self.partner
                and event.membership == "join"
            )

        assert await self._wait_for(joined, timeout), f"{self.partner} did not join in {timeout}s"

    async def next_reply(self, timeout: float = REPLY_TIMEOUT) -> dict[str, Any] | None:
        """The content of the partner's next message, or None if none came in time."""

        def from_partner(event: Event) -> bool:
            return isinstance(event, RoomMessage) and event.sender == self.partner

        event = await self._wait_for(from_partner, timeout)
        return None if event is None else dict(event.source["content"])

    async def next_event(self, timeout: float = REPLY_TIMEOUT) -> dict[str, Any] | None:
        """The partner's next room event of any type (not state), raw; None if none came."""

        def from_partner(event: Event) -> bool:
            return event.sender == self.partner and "state_key" not in event.source

        event = await self._wait_for(from_partner, timeout)
        return None if event is None else dict(event.source)

    async def _wait_for(self, wanted: Callable[[Event], bool], timeout: float) -> Event | None:
        """Consume room events until one is wanted; sync only while the deadline allows."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            while self._unread:
                event = self._unread.popleft()
                if wanted(event):
                    return event
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            resp = await self.client.sync(
                timeout=max(1, int(remaining * 1000)), sync_filter=_SYNC_FILTER
            )
            assert not isinstance(resp, SyncError), resp
            room = resp.rooms.join.get(self.room_id)
            if room is not None:
                self._unread.extend(room.timeline.events)


def _talk(
    homeserver: Homeserver,
    user: RegisteredUser,
    bot_id: str,
    conversation: Callable[[Peer], Any],
    *,
    wait_for_join: bool = True,
) -> None:
    """Open a DM with the bot and run ``conversation(peer)`` in it."""

    async def main() -> None:
        peer = await Peer.open_dm(homeserver, user, bot_id, wait_for_join=wait_for_join)
        try:
            await conversation(peer)
        finally:
            await peer.close()

    asyncio.run(main())


def _bot_env(
    homeserver: Homeserver,
    bot: RegisteredUser,
    *,
    token: bool = False,
    password: str | None = None,
    greeting: str | None = None,
) -> dict[str, str]:
    env = {"MBT_BOT_HOMESERVER": homeserver.url, "MBT_BOT_USER": bot.user_id}
    if greeting is not None:
        env["MBT_BOT_GREETING"] = greeting
    if token:
        env["MBT_BOT_ACCESS_TOKEN"] = bot.access_token
    else:
        env["MBT_BOT_PASSWORD"] = password if password is not None else bot.password
    return env


@pytest.fixture
def own_command_bot(
    homeserver: Homeserver, register_user: RegisterUser, tmp_path: Path
) -> Iterator[Callable[..., BotProcess]]:
    """Start the command bot when the test says so; stopped at the end whatever happens."""
    started: list[BotProcess] = []

    def start(bot: RegisteredUser, **env_options: Any) -> BotProcess:
        process = start_bot(
            [str(COMMAND_BOT)],
            _bot_env(homeserver, bot, **env_options),
            cwd=tmp_path,
            timeout=BOT_START_TIMEOUT,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def _device_ids(homeserver: Homeserver, user: RegisteredUser) -> set[str]:
    async def main() -> set[str]:
        client = AsyncClient(homeserver.url, user.user_id, config=_CLIENT_CONFIG)
        client.restore_login(user.user_id, user.device_id, user.access_token)
        try:
            resp = await client.devices()
            assert isinstance(resp, DevicesResponse), resp
            return {device.id for device in resp.devices}
        finally:
            await client.close()

    return asyncio.run(main())


# --- the command bot (examples/command_bot.py), started once for this module ---


def test_command_bot_answers_ping_with_a_notice(
    homeserver: Homeserver, register_user: RegisterUser, command_bot: RegisteredUser
) -> None:
    async def conversation(peer: Peer) -> None:
        await peer.send("!ping")
        assert await peer.next_reply() == {"msgtype": "m.notice", "body": "pong"}

    _talk(homeserver, register_user(), command_bot.user_id, conversation)


def test_command_bot_ignores_plain_text_and_unknown_commands(
    homeserver: Homeserver, register_user: RegisterUser, command_bot: RegisteredUser
) -> None:
    async def conversation(peer: Peer) -> None:
        for text in ("hello", "!nope", "!echo", "!PING", "ping"):
            await peer.send(text)
        assert await peer.next_reply(QUIET_WINDOW) is None
        # The bot handles a room's events in order, so if it had answered any
        # of the above, that answer would arrive before this one.
        await peer.send("!ping")
        assert await peer.next_reply() == {"msgtype": "m.notice", "body": "pong"}

    _talk(homeserver, register_user(), command_bot.user_id, conversation)


@pytest.mark.parametrize("name", ["ping", "echo", "help", "wrong-answer"])
def test_example_conversations_match_the_command_bot(
    name: str, homeserver: Homeserver, register_user: RegisterUser, command_bot: RegisteredUser
) -> None:
    """examples/conversations/ replayed by hand: all pass except the one meant to fail."""
    script = load_script(EXAMPLES / "conversations" / f"{name}.yaml")
    mismatches: list[tuple[str | None, str | None]] = []

    async def conversation(peer: Peer) -> None:
        for step in script.steps:
            if step.send is not None:
                await peer.send(step.send)
            if step.expect is not None:
                reply = await peer.next_reply()
                assert reply is not None, f"no answer to {step.send!r}"
                assert reply["msgtype"] == "m.notice"
                if reply["body"] != step.expect:
                    mismatches.append((step.expect, reply["body"]))

    _talk(homeserver, register_user(), command_bot.user_id, conversation)
    if name.startswith("wrong-"):
        assert mismatches == [("PONG", "pong")]
    else:
        assert mismatches == []


# --- the command bot's richer answers: the exact events, as a client receives them ---


def _bot_event(
    homeserver: Homeserver,
    user: RegisteredUser,
    bot_id: str,
    command: str,
    count: int = 1,
) -> tuple[str, list[dict[str, Any]]]:
    """Send ``command`` to the bot; return its event ID and the bot's next ``count`` events."""
    received: list[dict[str, Any]] = []
    sent: list[str] = []

    async def conversation(peer: Peer) -> None:
        sent.append(await peer.send(command))
        for _ in range(count):
            event = await peer.next_event()
            assert event is not None, f"the bot sent {len(received)} of {count} events"
            received.append(event)

    _talk(homeserver, user, bot_id, conversation)
    return sent[0], received


def test_command_bot_answers_in_a_thread_rooted_at_the_command(
    homeserver: Homeserver, register_user: RegisterUser, command_bot: RegisteredUser
) -> None:
    command, [event] = _bot_event(
        homeserver, register_user(), command_bot.user_id, "!thread in a thread"
    )
    assert event["type"] == "m.room.message"
    assert event["content"] == {
        "msgtype": "m.notice",
        "body": "in a thread",
        "m.relates_to": {
            "rel_type": "m.thread",
            "event_id": command,
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": command},
        },
    }


def test_command_bot_answers_a_command_sent_in_a_thread_in_that_thread(
    homeserver: Homeserver, register_user: RegisterUser, command_bot: RegisteredUser
) -> None:
    async def conversation(peer: Peer) -> None:
        root = await peer.send("a thread starts here")
        in_thread = {
            "msgtype": "m.text",
            "body": "!thread still here",
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": root,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": root},
            },
        }
        command = await peer.send_content(in_thread)
        event = await peer.next_event()
        assert event is not None
        assert event["content"]["body"] == "still here"
        assert event["content"]["m.relates_to"] == {
            "rel_type": "m.thread",
            "event_id": root,  # the thread's root; a thread cannot start inside a thread
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": command},
        }

    _talk(homeserver, register_user(), command_bot.user_id, conversation)


def test_command_bot_replies_to_the_command_without_fallback(
    homeserver: Homeserver, register_user: RegisterUser, command_bot: RegisteredUser
) -> None:
    user = register_user()
    command, [event] = _bot_event(homeserver, user, command_bot.user_id, "!reply a reply")
    assert event["type"] == "m.room.message"
    assert event["content"] == {
        "msgtype": "m.notice",
        "body": "a reply",
        "m.relates_to": {"m.in_reply_to": {"event_id": command}},
        "m.mentions": {"user_ids": [user.user_id]},
    }


def test_command_bot_reacts_to_the_command(
    homeserver: Homeserver, register_user: RegisterUser, command_bot: RegisteredUser
) -> None:
    command, [event] = _bot_event(homeserver, register_user(), command_bot.user_id, "!react 👍")
    assert event["type"] == "m.reaction"
    assert event["content"] == {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": command, "key": "👍"}
    }


def test_command_bot_sends_a_downloadable_one_pixel_png(
    homeserver: Homeserver, register_user: RegisterUser, command_bot: RegisteredUser
) -> None:
    async def conversation(peer: Peer) -> None:
        await peer.send("!image")
        event = await peer.next_event()
        assert event is not None
        content = event["content"]
        url = content.pop("url")
        assert content == {
            "msgtype": "m.image",
            "body": "pixel.png",
            "filename": "pixel.png",
            "info": {"mimetype": "image/png", "size": content["info"]["size"], "w": 1, "h": 1},
        }
        # Media needs authentication on this Synapse; nio 0.26 downloads that way.
        downloaded = await peer.client.download(url)
        assert isinstance(downloaded, MemoryDownloadResponse), downloaded
        png = downloaded.body
        assert len(png) == content["info"]["size"]
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert png[12:16] == b"IHDR"
        assert struct.unpack(">II", png[16:24]) == (1, 1)  # width, height

    _talk(homeserver, register_user(), command_bot.user_id, conversation)


@pytest.mark.parametrize(
    ("text", "versions"),
    [
        ("one two three", ["one", "one two", "one two three"]),
        ("hello", ["…", "hello"]),
    ],
)
def test_command_bot_streams_a_draft_then_edits_it_into_the_text(
    text: str,
    versions: list[str],
    homeserver: Homeserver,
    register_user: RegisterUser,
    command_bot: RegisteredUser,
) -> None:
    _, events = _bot_event(
        homeserver, register_user(), command_bot.user_id, f"!stream {text}", len(versions)
    )
    first, *edits = events
    assert first["content"] == {"msgtype": "m.notice", "body": versions[0]}
    for edit, version in zip(edits, versions[1:], strict=True):
        assert edit["type"] == "m.room.message"
        assert edit["content"] == {
            "msgtype": "m.notice",
            "body": f"* {version}",
            "m.new_content": {"msgtype": "m.notice", "body": version},
            "m.relates_to": {"rel_type": "m.replace", "event_id": first["event_id"]},
        }
    stamps = [e["origin_server_ts"] for e in events]
    # The bot pauses 0.2 s between versions (the server's clock, so a little slack).
    assert all(b - a >= 150 for a, b in pairwise(stamps)), stamps


def test_command_bot_answers_in_html(
    homeserver: Homeserver, register_user: RegisterUser, command_bot: RegisteredUser
) -> None:
    _, [event] = _bot_event(homeserver, register_user(), command_bot.user_id, "!html")
    assert event["content"] == {
        "msgtype": "m.notice",
        "body": "bold move",
        "format": "org.matrix.custom.html",
        "formatted_body": "<p><b>bold</b> move</p>\n",
    }


def test_command_bot_mentions_the_sender(
    homeserver: Homeserver, register_user: RegisterUser, command_bot: RegisteredUser
) -> None:
    user = register_user()
    me = user.user_id
    _, [event] = _bot_event(homeserver, user, command_bot.user_id, "!mention")
    assert event["content"] == {
        "msgtype": "m.notice",
        "body": f"{me}: you called?",
        "format": "org.matrix.custom.html",
        "formatted_body": f'<a href="https://matrix.to/#/{me}">{me}</a>: you called?',
        "m.mentions": {"user_ids": [me]},
    }


def test_command_bot_ignores_quiet_edits_and_reactions(
    homeserver: Homeserver, register_user: RegisterUser, command_bot: RegisteredUser
) -> None:
    async def conversation(peer: Peer) -> None:
        command = await peer.send("!ping")
        pong = await peer.next_event()
        assert pong is not None
        assert pong["content"] == {"msgtype": "m.notice", "body": "pong"}
        await peer.send("!quiet")
        # An edit whose fallback body is itself a command: still an edit, not a command.
        await peer.send_content(
            {
                "msgtype": "m.text",
                "body": "!echo edited",
                "m.new_content": {"msgtype": "m.text", "body": "!echo edited"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": command},
            }
        )
        for target in (command, pong["event_id"]):
            relation = {"rel_type": "m.annotation", "event_id": target, "key": "!ping"}
            await peer.send_content({"m.relates_to": relation}, "m.reaction")
        # The bot handles a room's events in order: had it answered any of the
        # above, that answer would arrive before this one.
        await peer.send("!echo done")
        event = await peer.next_event()
        assert event is not None
        assert event["content"] == {"msgtype": "m.notice", "body": "done"}

    _talk(homeserver, register_user(), command_bot.user_id, conversation)


# --- the command bot, started by the test itself ---


def test_command_bot_accepts_invites_from_before_it_started_and_ignores_history(
    homeserver: Homeserver,
    register_user: RegisterUser,
    own_command_bot: Callable[..., BotProcess],
) -> None:
    bot = register_user()

    async def conversation(peer: Peer) -> None:
        await peer.send("!echo sent before the bot started")
        own_command_bot(bot)
        await peer.wait_for_join()
        await peer.send("!echo sent after")
        assert await peer.next_reply() == {"msgtype": "m.notice", "body": "sent after"}

    _talk(homeserver, register_user(), bot.user_id, conversation, wait_for_join=False)


def test_command_bot_logs_in_with_a_token_and_leaves_the_session_alone(
    homeserver: Homeserver,
    register_user: RegisterUser,
    own_command_bot: Callable[..., BotProcess],
) -> None:
    bot = register_user()
    process = own_command_bot(bot, token=True)

    async def conversation(peer: Peer) -> None:
        await peer.send("!echo via token")
        assert await peer.next_reply() == {"msgtype": "m.notice", "body": "via token"}

    _talk(homeserver, register_user(), bot.user_id, conversation)
    assert process.stop() == 0
    # The token was ours, not the bot's: it must still work after the bot exits.
    assert _device_ids(homeserver, bot) == {bot.device_id}


def test_a_greeting_the_bot_sends_on_joining_the_dm_is_heard(
    homeserver: Homeserver,
    register_user: RegisterUser,
    own_command_bot: Callable[..., BotProcess],
    tmp_path: Path,
) -> None:
    """The DM counts from its creation: what the bot says before the first send is a reply.

    The tester's sync leaves out its own events, so no join event of its own
    marks where the DM's conversation starts; the room's creation does.
    """
    bot = register_user()
    own_command_bot(bot, greeting="Hello! Send !help")
    tester = register_user()
    account = write_script(
        tmp_path,
        "account.yaml",
        f'user: "{tester.user_id}"\npassword: "{tester.password}"\n'
        f'homeserver_url: "{homeserver.url}"\nuser_to_test: "{bot.user_id}"\n',
    )
    script = write_script(
        tmp_path,
        "greeted.convo.yaml",
        "messages:\n  - expect: Hello! Send !help\n  - send: '!ping'\n    expect: pong\n",
    )
    run = run_cli("run", script, "--account", account, "--no-state")
    assert run.code == 0, run.stdout + run.stderr


def test_command_bot_stops_cleanly_and_logs_out_its_password_session(
    homeserver: Homeserver,
    register_user: RegisterUser,
    own_command_bot: Callable[..., BotProcess],
) -> None:
    bot = register_user()
    process = own_command_bot(bot)
    assert len(_device_ids(homeserver, bot) - {bot.device_id}) == 1  # the bot's login
    assert process.stop() == 0  # SIGTERM: a clean exit, not death by signal
    assert not any("Traceback" in line for line in process.output()), process.output()
    assert _device_ids(homeserver, bot) == {bot.device_id}  # no device left behind


def test_command_bot_reports_a_refused_login_in_one_line(
    homeserver: Homeserver,
    register_user: RegisterUser,
    own_command_bot: Callable[..., BotProcess],
) -> None:
    bot = register_user()
    with pytest.raises(InfrastructureError) as caught:
        own_command_bot(bot, password="not-the-password")
    message = caught.value.message
    assert "exited with status 1 before printing 'ready'" in message
    output = message.split("its last output:\n", 1)[1].splitlines()
    assert output == [
        f"    command_bot: login failed for {bot.user_id}: Invalid username or password"
    ]


# --- simplematrixbotlib's README echo bot (tests/bots/simple_echo_bot.py) ---


def test_simple_echo_bot_echoes_with_plain_text(
    homeserver: Homeserver, register_user: RegisterUser, simple_echo_bot: RegisteredUser
) -> None:
    async def conversation(peer: Peer) -> None:
        await peer.send("!echo hi")
        assert await peer.next_reply() == {"msgtype": "m.text", "body": "hi"}

    _talk(homeserver, register_user(), simple_echo_bot.user_id, conversation)
