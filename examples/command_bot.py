"""A small Matrix command bot on matrix-nio: the bot our demo and examples talk to.

Commands, answered with an ``m.notice`` unless said otherwise:

    !ping          ->  pong
    !echo TEXT     ->  TEXT
    !thread TEXT   ->  TEXT in a thread rooted at the command
    !reply TEXT    ->  TEXT as a reply to the command (no fallback, as the spec now says)
    !react KEY     ->  a reaction (m.reaction) with KEY to the command, no message
    !image         ->  an m.image: a 1x1 PNG, uploaded first
    !stream TEXT   ->  a first draft, then edits (m.replace) that grow it into TEXT
    !html          ->  HTML: "<p><b>bold</b> move</p>", plain body "bold move"
    !mention       ->  a mention of the sender (a pill, and m.mentions)
    !quiet         ->  nothing, deliberately
    !help          ->  HELP_TEXT below

Anything else (plain text, unknown commands, a command that needs TEXT given
none) gets no answer. The bot joins every room it is invited to, answers only
messages sent after it started, and never answers itself, an ``m.notice``, an
edit or a reaction (none of them is a command), so two bots cannot talk each
other into a loop. No end-to-end encryption: it works in unencrypted rooms only.

Run it with options or the matching environment variables (prefer the
variable for the secret: a command line is visible to every user in ``ps``)::

    MBT_BOT_PASSWORD=secret python examples/command_bot.py \\
        --homeserver http://127.0.0.1:8008 --user @bot:localhost
    MBT_BOT_HOMESERVER=... MBT_BOT_USER=... MBT_BOT_ACCESS_TOKEN=... python examples/command_bot.py

Once it is listening it prints exactly one line, ``ready``, on stdout (the
line scripts wait for); its logs go to stderr. SIGTERM or Ctrl-C stops it
cleanly; a failed login exits with status 1 and one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import struct
import sys
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import escape
from io import BytesIO
from typing import Any

from aiohttp import ClientError
from nio import (
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    JoinResponse,
    LoginResponse,
    MatrixRoom,
    RoomMessageText,
    RoomSendResponse,
    SyncError,
    UploadResponse,
    WhoamiResponse,
)

# Scripts compare replies exactly, so this text is part of the bot's interface.
HELP_TEXT = "\n".join(
    (
        "!ping - answer pong",
        "!echo TEXT - answer TEXT",
        "!thread TEXT - answer TEXT in a thread",
        "!reply TEXT - answer TEXT as a reply",
        "!react KEY - react with KEY",
        "!image - send a tiny picture",
        "!stream TEXT - write TEXT bit by bit, editing one message",
        "!html - answer in HTML",
        "!mention - answer mentioning you",
        "!quiet - answer nothing",
        "!help - show this help",
    )
)

# nio retries rate limits and timeouts forever by default; a bot that hangs
# silently is worse than one that fails loudly, so every request is bounded.
CLIENT_CONFIG = AsyncClientConfig(max_limit_exceeded=5, max_timeouts=5, request_timeout=30)
SYNC_TIMEOUT_MS = 30_000
# The first sync only tells us where "now" is and which invites are pending;
# the old timelines it would carry are history we ignore anyway.
FIRST_SYNC_FILTER = {"room": {"timeline": {"limit": 0}}}
# A join can fail right after the invite (the server may not have settled yet).
JOIN_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # seconds; then give up on that room
MAX_SYNC_FAILURES = 5  # in a row; then exit instead of spinning
LOGOUT_TIMEOUT = 5.0  # seconds; a dead server must not hold up shutdown
DEVICE_NAME = "matrix-bot-tester command bot"
STREAM_PAUSE = 0.2  # seconds between the edits of !stream, as a typing bot would pause


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# One opaque red pixel: width 1, height 1, 8-bit RGBA; the scanline is filter 0 + 4 bytes.
PIXEL_PNG = b"".join(
    (
        b"\x89PNG\r\n\x1a\n",
        _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)),
        _png_chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00\xff")),
        _png_chunk(b"IEND", b""),
    )
)

log = logging.getLogger("command_bot")


class BotError(Exception):
    """A failure that ends the bot with one line on stderr."""


@dataclass(frozen=True)
class Settings:
    homeserver: str
    user_id: str
    password: str | None
    access_token: str | None
    greeting: str | None = None  # said in each room right after joining it


# --- message contents: no I/O, so easy to test ---


def notice(body: str) -> dict[str, Any]:
    return {"msgtype": "m.notice", "body": body}


def html_notice(body: str, html: str) -> dict[str, Any]:
    """A notice with HTML for clients that show it, and ``body`` as its plain text."""
    return {**notice(body), "format": "org.matrix.custom.html", "formatted_body": html}


def in_thread(body: str, command: RoomMessageText) -> dict[str, Any]:
    """A notice in the thread of the command: a new thread, or the one it was sent in."""
    relation = command.source["content"].get("m.relates_to") or {}
    in_one = relation.get("rel_type") == "m.thread"  # a thread cannot start inside a thread
    root = relation["event_id"] if in_one else command.event_id
    thread = {
        "rel_type": "m.thread",
        "event_id": root,
        # For clients without threads: shown as a reply to the command.
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": command.event_id},
    }
    return {**notice(body), "m.relates_to": thread}


def reply_to(body: str, command: RoomMessageText) -> dict[str, Any]:
    """A rich reply. Since Matrix 1.13 replies carry no quote of the original in body."""
    return {
        **notice(body),
        "m.relates_to": {"m.in_reply_to": {"event_id": command.event_id}},
        "m.mentions": {"user_ids": [command.sender]},  # a reply mentions whom it answers
    }


def reaction(key: str, command: RoomMessageText) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": "m.annotation", "event_id": command.event_id, "key": key}}


def edit(event_id: str, body: str) -> dict[str, Any]:
    """Replace the message ``event_id`` with ``body``; "* " marks the fallback for old clients."""
    return {
        **notice(f"* {body}"),
        "m.new_content": notice(body),
        "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
    }


def drafts(text: str) -> list[str]:
    """What !stream shows, in order: the first word, the first half, then all of TEXT.

    A TEXT of one word has "…" as its first draft. Repeats are dropped, so
    there are two or three versions: one message, then one or two edits.
    """
    words = text.split()
    if len(words) < 2:
        return ["…", text]
    steps = [words[0], " ".join(words[: (len(words) + 1) // 2]), text]
    return [step for i, step in enumerate(steps) if i == 0 or step != steps[i - 1]]


def mention(user_id: str) -> dict[str, Any]:
    """A notice that mentions ``user_id``: a matrix.to pill, and m.mentions so it notifies."""
    link = f'<a href="https://matrix.to/#/{escape(user_id)}">{escape(user_id)}</a>'
    return {
        **html_notice(f"{user_id}: you called?", f"{link}: you called?"),
        "m.mentions": {"user_ids": [user_id]},
    }


def is_edit(event: RoomMessageText) -> bool:
    relation = event.source["content"].get("m.relates_to") or {}
    return relation.get("rel_type") == "m.replace"


Handler = Callable[[str, RoomMessageText, str], Awaitable[None]]


class CommandBot:
    """The event handlers, and the join tasks they start."""

    def __init__(self, client: AsyncClient, greeting: str | None = None) -> None:
        self.client = client
        self.greeting = greeting
        # Matrix timestamps are the server's clock; on one machine (our tests)
        # they agree with ours. A bot on a skewed host would need a margin here.
        self.started_ms = int(time.time() * 1000)
        self._joining: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.commands: dict[str, Handler] = {
            "!ping": self.ping,
            "!echo": self.echo,
            "!thread": self.thread,
            "!reply": self.reply,
            "!react": self.react,
            "!image": self.image,
            "!stream": self.stream,
            "!html": self.html,
            "!mention": self.mention,
            "!quiet": self.quiet,
            "!help": self.help,
        }

    async def on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        # nio calls this once per member event in the invite's state (the
        # inviter's own join included), so act only on the one inviting us,
        # and only once per room.
        if event.state_key != self.client.user_id or event.membership != "invite":
            return
        if room.room_id in self._joining:
            return
        self._joining.add(room.room_id)
        # Join in a task of its own: retry delays must not stall the sync loop.
        task = asyncio.create_task(self._join(room.room_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _join(self, room_id: str) -> None:
        try:
            for delay in (*JOIN_RETRY_DELAYS, None):
                try:
                    resp = await self.client.join(room_id)
                    error = None if isinstance(resp, JoinResponse) else resp.message
                except (ClientError, TimeoutError) as exc:
                    error = str(exc) or type(exc).__name__
                if error is None:
                    log.info("joined %s", room_id)
                    if self.greeting:
                        await self.send(room_id, notice(self.greeting))
                    return
                if delay is None:
                    break
                log.warning("joining %s failed (%s); retrying in %gs", room_id, error, delay)
                await asyncio.sleep(delay)
            log.error("gave up joining %s: %s", room_id, error)
        finally:
            self._joining.discard(room_id)

    async def on_message(self, room: MatrixRoom, event: RoomMessageText) -> None:
        # RoomMessageText is m.text only: m.notice (what bots send) never gets
        # here, nor does a reaction (an m.reaction event).
        if event.sender == self.client.user_id:
            return  # our own replies come back to us through sync
        if event.server_timestamp < self.started_ms:
            return  # history, e.g. the backlog of a room we have just joined
        if is_edit(event):
            return  # an edited command is not a new command
        parts = event.body.split(maxsplit=1)
        handler = self.commands.get(parts[0]) if parts else None
        if handler is not None:
            await handler(room.room_id, event, parts[1] if len(parts) > 1 else "")

    async def send(
        self, room_id: str, content: dict[str, Any], event_type: str = "m.room.message"
    ) -> str | None:
        """Send an event; its ID, or None (and a warning) if the server refused."""
        resp = await self.client.room_send(room_id, event_type, content)
        if not isinstance(resp, RoomSendResponse):
            log.warning("could not answer in %s: %s", room_id, resp.message)
            return None
        return str(resp.event_id)

    # --- the commands: (room, the command's event, the text after the command) ---

    async def ping(self, room_id: str, event: RoomMessageText, text: str) -> None:
        await self.send(room_id, notice("pong"))

    async def echo(self, room_id: str, event: RoomMessageText, text: str) -> None:
        if text:  # an empty message is no answer at all
            await self.send(room_id, notice(text))

    async def thread(self, room_id: str, event: RoomMessageText, text: str) -> None:
        if text:
            await self.send(room_id, in_thread(text, event))

    async def reply(self, room_id: str, event: RoomMessageText, text: str) -> None:
        if text:
            await self.send(room_id, reply_to(text, event))

    async def react(self, room_id: str, event: RoomMessageText, text: str) -> None:
        if text:
            await self.send(room_id, reaction(text, event), "m.reaction")

    async def image(self, room_id: str, event: RoomMessageText, text: str) -> None:
        resp, _ = await self.client.upload(
            BytesIO(PIXEL_PNG),
            content_type="image/png",
            filename="pixel.png",
            filesize=len(PIXEL_PNG),
        )
        if not isinstance(resp, UploadResponse):
            log.warning("could not upload the image: %s", resp.message)
            return
        info = {"mimetype": "image/png", "size": len(PIXEL_PNG), "w": 1, "h": 1}
        content = {
            "msgtype": "m.image",
            "body": "pixel.png",  # body equal to filename: no caption
            "filename": "pixel.png",
            "url": resp.content_uri,
            "info": info,
        }
        await self.send(room_id, content)

    async def stream(self, room_id: str, event: RoomMessageText, text: str) -> None:
        if not text:
            return
        first, *later = drafts(text)
        event_id = await self.send(room_id, notice(first))
        for body in later:
            if event_id is None:
                return
            await asyncio.sleep(STREAM_PAUSE)  # a pause the user sees, not synchronisation
            await self.send(room_id, edit(event_id, body))

    async def html(self, room_id: str, event: RoomMessageText, text: str) -> None:
        await self.send(room_id, html_notice("bold move", "<p><b>bold</b> move</p>\n"))

    async def mention(self, room_id: str, event: RoomMessageText, text: str) -> None:
        await self.send(room_id, mention(event.sender))

    async def quiet(self, room_id: str, event: RoomMessageText, text: str) -> None:
        """A command that deliberately answers nothing (to test "no reply" checks)."""

    async def help(self, room_id: str, event: RoomMessageText, text: str) -> None:
        await self.send(room_id, notice(HELP_TEXT))

    def cancel_joins(self) -> None:
        for task in self._tasks:
            task.cancel()


async def log_in(client: AsyncClient, settings: Settings) -> bool:
    """Log in; True if we created a session (and so must log it out again)."""
    if settings.access_token:
        client.access_token = settings.access_token
        who = await client.whoami()
        if not isinstance(who, WhoamiResponse):
            raise BotError(f"login failed for {settings.user_id}: {who.message}")
        if who.user_id != settings.user_id:
            raise BotError(f"the access token belongs to {who.user_id}, not {settings.user_id}")
        return False
    resp = await client.login(password=settings.password, device_name=DEVICE_NAME)
    if not isinstance(resp, LoginResponse):
        raise BotError(f"login failed for {settings.user_id}: {resp.message}")
    return True


async def sync_loop(client: AsyncClient) -> None:
    """Sync until stopped; the event callbacks run inside each sync() call."""
    failures = 0
    while True:
        try:
            resp = await client.sync(timeout=SYNC_TIMEOUT_MS)
        except (ClientError, TimeoutError) as exc:
            # The homeserver is unreachable (restarting, say): retried like a failed sync.
            message = str(exc) or type(exc).__name__
        else:
            if not isinstance(resp, SyncError):
                failures = 0
                continue
            if resp.status_code == "M_UNKNOWN_TOKEN":
                raise BotError(f"sync failed: {resp.message}")
            message = resp.message
        failures += 1
        if failures >= MAX_SYNC_FAILURES:
            raise BotError(f"sync failed {failures} times in a row: {message}")
        log.warning("sync failed (%s); retrying", message)
        await asyncio.sleep(2**failures)


async def run(settings: Settings) -> None:
    client = AsyncClient(settings.homeserver, settings.user_id, config=CLIENT_CONFIG)
    bot = CommandBot(client, settings.greeting)
    owns_session = False
    try:
        owns_session = await log_in(client, settings)
        # Invites sent before we started still count; messages sent before we
        # started do not. So the invite handler sees the first sync, and the
        # message handler is added only after it.
        client.add_event_callback(bot.on_invite, InviteMemberEvent)
        first = await client.sync(timeout=0, sync_filter=FIRST_SYNC_FILTER)
        if isinstance(first, SyncError):
            raise BotError(f"first sync failed: {first.message}")
        client.add_event_callback(bot.on_message, RoomMessageText)
        print("ready", flush=True)
        await sync_loop(client)
    finally:
        bot.cancel_joins()
        if owns_session:  # one device per run, not one more device per run
            try:
                await asyncio.wait_for(client.logout(), LOGOUT_TIMEOUT)
            except (ClientError, TimeoutError) as exc:
                log.warning("logout failed: %s", exc)
        await client.close()


async def serve(settings: Settings) -> None:
    """Run the bot until it fails or a SIGTERM/SIGINT cancels it."""
    task = asyncio.create_task(run(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    await asyncio.wait([task])
    if task.cancelled():
        return  # asked to stop: run()'s cleanup has already happened
    try:
        task.result()
    except (ClientError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        raise BotError(f"cannot talk to {settings.homeserver}: {reason}") from None


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        description="A Matrix command bot: !ping, !echo TEXT, ... (send it !help for all).",
        epilog="Every option falls back to its environment variable. Prefer the "
        "variables for secrets: command lines are visible to other users.",
    )
    parser.add_argument("--homeserver", metavar="URL", help="env MBT_BOT_HOMESERVER")
    parser.add_argument("--user", metavar="MXID", help="@bot:example.org; env MBT_BOT_USER")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--password", help="env MBT_BOT_PASSWORD")
    secret.add_argument("--access-token", metavar="TOKEN", help="env MBT_BOT_ACCESS_TOKEN")
    parser.add_argument(
        "--greeting", metavar="TEXT", help="say this on joining a room; env MBT_BOT_GREETING"
    )
    args = parser.parse_args(argv)

    env = os.environ.get
    homeserver = args.homeserver or env("MBT_BOT_HOMESERVER")
    user_id = args.user or env("MBT_BOT_USER")
    password, token = args.password, args.access_token
    if password is None and token is None:
        password, token = env("MBT_BOT_PASSWORD"), env("MBT_BOT_ACCESS_TOKEN")
    if not homeserver:
        parser.error("give --homeserver or set MBT_BOT_HOMESERVER")
    if not user_id or not user_id.startswith("@") or ":" not in user_id:
        parser.error("give --user (or MBT_BOT_USER) as a full Matrix ID, like @bot:example.org")
    if bool(password) == bool(token):
        parser.error(
            "give exactly one of --password or --access-token "
            "(or MBT_BOT_PASSWORD / MBT_BOT_ACCESS_TOKEN)"
        )
    greeting = args.greeting or env("MBT_BOT_GREETING") or None
    return Settings(homeserver, user_id, password or None, token or None, greeting)


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, format="command_bot: %(levelname)s: %(message)s")
    log.setLevel(logging.INFO)
    # nio warns about every error response it parses; we report those ourselves.
    logging.getLogger("nio.responses").setLevel(logging.ERROR)
    try:
        asyncio.run(serve(settings))
    except BotError as exc:
        print(f"command_bot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
