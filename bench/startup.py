"""Start-up on a fresh account beside start-up on an account with 1,000 rooms.

Run it as ``.venv/bin/python bench/startup.py [--rooms 1000] [--repeats 5]``.
It prints numbers (medians and their ratio; the target is at most 1.5) and
asserts nothing about them.

What one run does:

* starts a throwaway Synapse (``matrix_bot_tester.homeserver``: a free port,
  a temporary folder, the test configuration's raised rate limits, so the
  scene can be built fast) and the example bot ``examples/command_bot.py``;
  all of it is stopped at the end, whatever happens;
* gives one account the history of many earlier runs: ``--rooms`` DMs with
  an old bot account (created ``--concurrency`` at a time through the
  client-server API, each with ``is_direct``, an invite and one message), all
  of them recorded in its ``m.direct``. The old bot is not running: its
  invites stay pending, as an abandoned bot's would;
* measures, ``--repeats`` times each and in alternating order (after one
  unmeasured warm-up of each), the tester's own path from nothing to its
  first message, as ``runner.run_conversations`` takes it: a new
  ``NioSession`` with an access token (checked with ``whoami``), ``connect``
  (joined rooms, the first filtered sync, the sync loop), ``open_dm`` with the
  running bot (create the room, record it in ``m.direct``, wait until the bot
  has joined), and ``send_text``. The fresh account is a newly registered
  user each time; after each measurement the new DM is left and forgotten
  (not timed), so the counts stay as they were.

Times are ``time.monotonic`` in this process. ``first send`` is from before
the session is made to the send having returned; ``connect``, ``open DM``
and ``send`` split it. The bot's join is inside ``open DM`` for both kinds of
account alike: it does not depend on the tester's rooms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from matrix_bot_tester import homeserver
from matrix_bot_tester.account import Account
from matrix_bot_tester.botprocess import start_bot
from matrix_bot_tester.errors import TesterError
from matrix_bot_tester.homeserver import Homeserver, RegisteredUser
from matrix_bot_tester.session import NioSession

REPO = Path(__file__).resolve().parents[1]
BOT_SCRIPT = REPO / "examples" / "command_bot.py"
SERVER_NAME = "localhost"
TARGET_RATIO = 1.5
STEP_TIMEOUT = 30.0  # each phase of one measurement
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def api(server: Homeserver, token: str, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        server.url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method=method,
    )
    with _HTTP.open(request, timeout=60) as response:
        return json.load(response)


def register(server: Homeserver, prefix: str) -> RegisteredUser:
    user = homeserver.register(server.directory, f"{prefix}-{uuid.uuid4().hex[:8]}", "bench")
    assert user is not None
    return user


def account_of(server: Homeserver, user: RegisteredUser) -> Account:
    return Account(
        path="<bench>",
        user=user.user_id,
        homeserver_url=server.url,
        password=None,
        access_token=SecretStr(user.access_token),
        device_id=user.device_id,
        user_to_test=None,
    )


def old_rooms(
    server: Homeserver, owner: RegisteredUser, partner: str, count: int, workers: int
) -> float:
    """``count`` DMs with ``partner``, each with one message, all in m.direct; seconds taken."""
    began = time.monotonic()

    def one(number: int) -> str:
        created = api(
            server,
            owner.access_token,
            "POST",
            "/_matrix/client/v3/createRoom",
            {"is_direct": True, "invite": [partner], "preset": "trusted_private_chat"},
        )
        room = str(created["room_id"])
        path = f"/_matrix/client/v3/rooms/{quote(room, safe='')}/send/m.room.message/t{number}"
        api(server, owner.access_token, "PUT", path, {"msgtype": "m.text", "body": f"old {number}"})
        return room

    with ThreadPoolExecutor(workers) as pool:
        rooms = list(pool.map(one, range(count)))
    path = f"/_matrix/client/v3/user/{quote(owner.user_id, safe='')}/account_data/m.direct"
    api(server, owner.access_token, "PUT", path, {partner: rooms})
    joined = api(server, owner.access_token, "GET", "/_matrix/client/v3/joined_rooms")
    assert len(joined["joined_rooms"]) == count, len(joined["joined_rooms"])
    return time.monotonic() - began


@dataclass
class Sample:
    connect: float
    open_dm: float
    send: float

    @property
    def first_send(self) -> float:
        return self.connect + self.open_dm + self.send


@dataclass
class Kind:
    name: str
    samples: list[Sample] = field(default_factory=list)

    def median(self, part: str) -> float:
        return float(statistics.median(getattr(s, part) for s in self.samples))


async def measure(account: Account, bot: str) -> Sample:
    began = time.monotonic()
    session = NioSession(account)
    try:
        await session.connect(timeout=STEP_TIMEOUT)
        connected = time.monotonic()
        room = await session.open_dm(bot, wait_for_join=True, timeout=STEP_TIMEOUT)
        opened = time.monotonic()
        await session.send_text(room, "!ping", timeout=STEP_TIMEOUT)
        sent = time.monotonic()
        await session.leave(room)  # not timed: keeps the account's rooms as they were
    finally:
        await session.close()
    return Sample(connected - began, opened - connected, sent - opened)


def report(kinds: list[Kind], rooms: int, built: float) -> None:
    fresh, full = kinds
    print(f"\nstart-up to the first send (median of {len(fresh.samples)}; seconds)")
    print(f"{'account':<22}{'connect':>10}{'open DM':>10}{'send':>10}{'first send':>12}")
    for kind in kinds:
        print(
            f"{kind.name:<22}{kind.median('connect'):>10.3f}{kind.median('open_dm'):>10.3f}"
            f"{kind.median('send'):>10.3f}{kind.median('first_send'):>12.3f}"
        )
    ratio = full.median("first_send") / fresh.median("first_send")
    connect_ratio = full.median("connect") / fresh.median("connect")
    verdict = "met" if ratio <= TARGET_RATIO else "missed"
    print(f"\nratio {full.name} / {fresh.name}: {ratio:.2f} (target <= {TARGET_RATIO}: {verdict})")
    print(f"ratio of connect alone: {connect_ratio:.2f}")
    print(
        f"every sample (first send): {fresh.name} {[round(s.first_send, 3) for s in fresh.samples]}"
    )
    print(
        f"                           {full.name} {[round(s.first_send, 3) for s in full.samples]}"
    )
    print(f"building the {rooms} rooms took {built:.1f} s")


async def measure_all(
    args: argparse.Namespace, server: Homeserver, bot: str, full: Account
) -> list[Kind]:
    fresh_kind, full_kind = Kind("fresh"), Kind(f"{args.rooms} rooms")
    await measure(account_of(server, register(server, "warm")), bot)  # warm-up, not counted
    await measure(full, bot)
    for repeat in range(args.repeats):
        order = [(fresh_kind, None), (full_kind, full)]
        if repeat % 2:
            order.reverse()  # alternate, so drift weighs on both alike
        for kind, account in order:
            chosen = account or account_of(server, register(server, "fresh"))
            kind.samples.append(await measure(chosen, bot))
    return [fresh_kind, full_kind]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rooms", type=int, default=1000, help="rooms of the old account")
    parser.add_argument("--repeats", type=int, default=5, help="measurements of each account")
    parser.add_argument("--concurrency", type=int, default=16, help="requests at once to build")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mbt-startup-") as temp:
        directory = Path(temp) / "synapse"
        try:
            server = homeserver.start(
                directory, port=homeserver.free_port(), server_name=SERVER_NAME, timeout=120
            )
            bot_user = register(server, "bot")
            env = {
                "MBT_BOT_HOMESERVER": server.url,
                "MBT_BOT_USER": bot_user.user_id,
                "MBT_BOT_ACCESS_TOKEN": bot_user.access_token,
            }
            with start_bot([str(BOT_SCRIPT)], env, cwd=Path(temp), timeout=60):
                old_bot = register(server, "old-bot")
                veteran = register(server, "veteran")
                print(f"building {args.rooms} rooms for {veteran.user_id}...", flush=True)
                built = old_rooms(server, veteran, old_bot.user_id, args.rooms, args.concurrency)
                kinds = asyncio.run(
                    measure_all(args, server, bot_user.user_id, account_of(server, veteran))
                )
            report(kinds, args.rooms, built)
        except (TesterError, urllib.error.URLError, OSError) as exc:
            text = exc.one_line() if isinstance(exc, TesterError) else str(exc)
            print(f"startup bench: {text}", file=sys.stderr)
            return 1
        finally:
            homeserver.stop(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
