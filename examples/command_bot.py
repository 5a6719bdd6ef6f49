"""A small Matrix command bot on matrix-nio: the bot our demo and examples talk to.

Commands, each answered with an ``m.notice``:

    !ping        ->  pong
    !echo TEXT   ->  TEXT
    !help        ->  HELP_TEXT below

Anything else (plain text, unknown commands, ``!echo`` with nothing to echo)
gets no answer. The bot joins every room it is invited to, answers only
messages sent after it started, and never answers itself or an ``m.notice``,
so two bots cannot talk each other into a loop. No end-to-end encryption: it
works in unencrypted rooms only.

Run it with options or the matching environment variables::

    python examples/command_bot.py --homeserver http://127.0.0.1:8008 \\
        --user @bot:localhost --password secret
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
import sys
import time
from dataclasses import dataclass

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
    WhoamiResponse,
)

# Scripts compare replies exactly, so this text is part of the bot's interface.
HELP_TEXT = "\n".join(
    (
        "!ping - answer pong",
        "!echo TEXT - answer TEXT",
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

log = logging.getLogger("command_bot")


class BotError(Exception):
    """A failure that ends the bot with one line on stderr."""


@dataclass(frozen=True)
class Settings:
    homeserver: str
    user_id: str
    password: str | None
    access_token: str | None


def answer(body: str) -> str | None:
    """The reply to a message body, or None for no reply. No I/O, so easy to test."""
    parts = body.split(maxsplit=1)
    if not parts:
        return None
    command, text = parts[0], parts[1] if len(parts) > 1 else ""
    if command == "!ping":
        return "pong"
    if command == "!echo":
        return text or None  # an empty message is no answer at all
    if command == "!help":
        return HELP_TEXT
    return None


class CommandBot:
    """The event handlers, and the join tasks they start."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        # Matrix timestamps are the server's clock; on one machine (our tests)
        # they agree with ours. A bot on a skewed host would need a margin here.
        self.started_ms = int(time.time() * 1000)
        self._joining: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

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
                    return
                if delay is None:
                    break
                log.warning("joining %s failed (%s); retrying in %gs", room_id, error, delay)
                await asyncio.sleep(delay)
            log.error("gave up joining %s: %s", room_id, error)
        finally:
            self._joining.discard(room_id)

    async def on_message(self, room: MatrixRoom, event: RoomMessageText) -> None:
        # RoomMessageText is m.text only: m.notice (what bots send) never gets here.
        if event.sender == self.client.user_id:
            return  # our own replies come back to us through sync
        if event.server_timestamp < self.started_ms:
            return  # history, e.g. the backlog of a room we have just joined
        reply = answer(event.body)
        if reply is None:
            return
        content = {"msgtype": "m.notice", "body": reply}
        resp = await self.client.room_send(room.room_id, "m.room.message", content)
        if not isinstance(resp, RoomSendResponse):
            log.warning("could not answer in %s: %s", room.room_id, resp.message)

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
        resp = await client.sync(timeout=SYNC_TIMEOUT_MS)
        if not isinstance(resp, SyncError):
            failures = 0
            continue
        failures += 1
        if resp.status_code == "M_UNKNOWN_TOKEN" or failures >= MAX_SYNC_FAILURES:
            raise BotError(f"sync failed: {resp.message}")
        log.warning("sync failed (%s); retrying", resp.message)
        await asyncio.sleep(2**failures)


async def run(settings: Settings) -> None:
    client = AsyncClient(settings.homeserver, settings.user_id, config=CLIENT_CONFIG)
    bot = CommandBot(client)
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
        description="A Matrix command bot: !ping, !echo TEXT, !help.",
        epilog="Every option falls back to its environment variable. Prefer the "
        "variables for secrets: command lines are visible to other users.",
    )
    parser.add_argument("--homeserver", metavar="URL", help="env MBT_BOT_HOMESERVER")
    parser.add_argument("--user", metavar="MXID", help="@bot:example.org; env MBT_BOT_USER")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--password", help="env MBT_BOT_PASSWORD")
    secret.add_argument("--access-token", metavar="TOKEN", help="env MBT_BOT_ACCESS_TOKEN")
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
    return Settings(homeserver, user_id, password or None, token or None)


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
