"""The console lines of conversations running at once (-j): live for one, never interleaved."""

from __future__ import annotations

import asyncio
import io
from collections import deque

from fakes import BOT, FakeSession, bot_says
from rich.console import Console

from matrix_bot_tester.account import Account
from matrix_bot_tester.conversation import Reply
from matrix_bot_tester.report import ConsoleReporter
from matrix_bot_tester.runner import RunOptions, _not_run, _Suite
from matrix_bot_tester.script import Script, parse_script

ACCOUNT = Account("a.yaml", "@me:x", "http://localhost", None, None, None, BOT)


class TwoRooms(FakeSession):
    """A DM per conversation, each with its own replies; every wait lets the others run."""

    def __init__(self, replies: dict[str, list[str]]) -> None:
        super().__init__()
        self.rooms = list(replies)
        for room, bodies in replies.items():
            self.queues[room] = deque(bot_says(b) for b in bodies)

    async def open_dm(self, partner: str, *, wait_for_join: bool, timeout: float) -> str:
        return self.rooms.pop(0)

    async def next_event(
        self, room_id: str, *, timeout: float, patience: float = 0.0
    ) -> Reply | None:
        await asyncio.sleep(0)  # as a real wait does: the other conversation moves on
        queue = self.queues[room_id]
        return self._arrive(queue.popleft()) if queue else None


def script(name: str, steps: int) -> Script:
    text = "messages:\n" + "".join(f"  - send: {name}{i}\n    expect: ok\n" for i in range(steps))
    return parse_script(text, f"{name}.convo.yaml")


def test_a_conversation_that_ends_while_another_is_live_waits_for_it() -> None:
    long, short = script("long", 3), script("short", 1)
    options = RunOptions(account=ACCOUNT, scripts=[long, short], partner=BOT, jobs=2)
    options.results[:] = [_not_run(s, options) for s in options.scripts]
    console = Console(file=io.StringIO(), width=200)
    reporter = ConsoleReporter(console, console, verbose=True)
    session = TwoRooms({"!long:x": ["ok"] * 3, "!short:x": ["ok"]})
    asyncio.run(_Suite(options, reporter, session).run())
    file = console.file
    assert isinstance(file, io.StringIO)
    lines = [line.strip() for line in file.getvalue().splitlines() if line.strip()]
    owners = ["long" if "long" in line else "short" for line in lines]
    # All of the live one's lines (header, 3 steps, outcome), then the other's block.
    assert owners == ["long"] * 5 + ["short"] * 3, lines
    assert lines[4].startswith("PASS long") and lines[-1].startswith("PASS short"), lines
