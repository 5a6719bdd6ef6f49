"""Where a conversation's time goes: opening the DM, the steps, leaving, each apart.

Run it as ``.venv/bin/python bench/phases.py [--rooms 40] [--steps 5]
[--concurrency 1 4] [--port P]``. It prints numbers and asserts nothing.

``bench/suite.py`` measures whole conversations; this takes them apart with
the tester's own ``NioSession`` (as ``runner`` uses it: one session, several
conversations at once) against the example bot on a throwaway Synapse
(``matrix_bot_tester.homeserver``, raised rate limits; stopped at the end,
whatever happens). For each ``--concurrency`` value, three phases run one
after the other, each over ``--rooms`` rooms, that many at a time:

``open``
    ``open_dm`` with the bot, as a client-role conversation starts: the
    profile check (once per run), ``createRoom`` with the invite, and
    waiting until the bot has joined. ``createRoom`` is timed apart (the
    session's nio client is wrapped, nothing else changes). Rooms still
    joined at the end go into ``m.direct`` then, not here.
``steps``
    ``--steps`` round trips per room: ``send_text("!echo ...")``, then the
    bot's reply through ``next_event``.
``leave``
    ``leave``: leave and forget each room, as the runner does after a
    conversation that passed.

Per phase and concurrency it gives the wall time, the median and p95 time of
one item (a room opened, a step, a room left), items per second, and the
CPU each process spent per item: Synapse (and its main thread, the
reactor), the bot, and this process (the tester's code, ``process_time``).
Phases run apart, so each CPU figure belongs to its phase alone. A phase
whose throughput does not rise with concurrency, while Synapse's CPU stays
near one core, is bound by Synapse.

The machine may be shared with other work: numbers are as quiet as it was.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from pydantic import SecretStr
from suite import BenchError, World, p95, process_cpu, run_guarded, throwaway_world

from matrix_bot_tester import homeserver
from matrix_bot_tester.account import Account
from matrix_bot_tester.errors import TesterError
from matrix_bot_tester.session import NioSession

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
BOT_SCRIPT = REPO / "examples" / "command_bot.py"
TIMEOUT = 60.0  # each call's deadline


@dataclass
class Phase:
    """One phase at one concurrency: per-item times and the CPU of each process."""

    name: str
    items: list[float] = field(default_factory=list)  # seconds per item
    parts: dict[str, list[float]] = field(default_factory=dict)  # sub-spans, seconds
    wall: float = 0.0
    cpu: dict[str, float | None] = field(default_factory=dict)


class CpuMeter:
    """CPU seconds of Synapse, its reactor thread, the bot and this process, between two reads."""

    def __init__(self, world: World) -> None:
        self.world = world

    def read(self) -> dict[str, float | None]:
        return {
            "Synapse": process_cpu(self.world.server.pid),
            "  reactor": process_cpu(self.world.server.pid, main_thread=True),
            "bot": process_cpu(self.world.bot.pid),
            "tester": time.process_time(),
        }

    @contextlib.contextmanager
    def measure(self, phase: Phase) -> Iterator[None]:
        before = self.read()
        began = time.monotonic()
        yield
        phase.wall = time.monotonic() - began
        after = self.read()
        for name, start in before.items():
            end = after[name]
            phase.cpu[name] = None if start is None or end is None else end - start


def timed(spans: list[float], call: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """``call``, appending how long each call took to ``spans``."""

    async def wrapper(*args: Any, **kwargs: Any) -> T:
        began = time.monotonic()
        try:
            return await call(*args, **kwargs)
        finally:
            spans.append(time.monotonic() - began)

    return wrapper


async def at_most(concurrency: int, jobs: list[Callable[[], Awaitable[None]]]) -> None:
    """Run ``jobs``, ``concurrency`` at a time, as the runner's semaphore does."""
    limit = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with limit:
            await job()

    try:
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(one(job))
    except* (BenchError, TesterError) as errors:  # one line, not a group's traceback
        raise errors.exceptions[0] from None


async def measure(
    world: World, account: Account, rooms: int, steps: int, concurrency: int
) -> list[Phase]:
    meter = CpuMeter(world)
    session = NioSession(account)
    opened, stepped, left = Phase("open"), Phase("steps"), Phase("leave")
    await session.connect(timeout=TIMEOUT)
    try:
        # Wrap the instance's calls (not the class): the session's own code runs unchanged.
        created: list[float] = []
        client = session._client
        client.room_create = timed(created, client.room_create)
        opened.parts = {"createRoom": created}
        room_ids: list[str] = []

        async def open_one() -> None:
            began = time.monotonic()
            room = await session.open_dm(world.bot_id, wait_for_join=True, timeout=TIMEOUT)
            opened.items.append(time.monotonic() - began)
            room_ids.append(room)

        with meter.measure(opened):
            await at_most(concurrency, [open_one for _ in range(rooms)])

        tag = secrets.token_hex(3)

        def talk(room: str) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                for step in range(steps):
                    text = f"{step}-{room}-{tag}"
                    began = time.monotonic()
                    await session.send_text(room, f"!echo {text}", timeout=TIMEOUT)
                    reply = await session.next_event(room, timeout=TIMEOUT)
                    if reply is None or (reply.event.get("content") or {}).get("body") != text:
                        raise BenchError(f"room {room} step {step}: no echo of {text!r}")
                    stepped.items.append(time.monotonic() - began)

            return run

        with meter.measure(stepped):
            await at_most(concurrency, [talk(room) for room in room_ids])

        def leave(room: str) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                began = time.monotonic()
                await session.leave(room, timeout=TIMEOUT)
                left.items.append(time.monotonic() - began)

            return run

        with meter.measure(left):
            await at_most(concurrency, [leave(room) for room in room_ids])
    finally:
        await session.close()
    return [opened, stepped, left]


def print_tables(results: dict[int, list[Phase]]) -> None:
    levels = list(results)
    width = 14
    head = f"{'':<30}" + "".join(f"{f'at once {c}':>{width}}" for c in levels)
    for index, name in enumerate(("open", "steps", "leave")):
        phases = [results[c][index] for c in levels]
        print(f"\n{name}: {len(phases[0].items)} items")
        print(head)

        def row(label: str, cells: list[str]) -> None:
            print(f"{label:<30}" + "".join(f"{cell:>{width}}" for cell in cells))

        row("wall, s", [f"{p.wall:.2f}" for p in phases])
        row("items/s", [f"{len(p.items) / p.wall:.2f}" for p in phases])
        row("per item median, ms", [f"{statistics.median(p.items) * 1000:.1f}" for p in phases])
        row("per item p95, ms", [f"{p95(p.items) * 1000:.1f}" for p in phases])
        for part in phases[0].parts:
            row(
                f"  {part} median, ms",
                [f"{statistics.median(p.parts[part]) * 1000:.1f}" for p in phases],
            )
        for process in phases[0].cpu:
            cells = []
            for p in phases:
                cpu = p.cpu[process]
                cells.append(
                    "-" if cpu is None else f"{cpu / len(p.items) * 1000:.1f} ({cpu / p.wall:.0%})"
                )
            row(f"{process} CPU ms/item (of wall)", cells)
    print("\n(a shared machine: other work competes for the CPU; the numbers are noisy)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rooms", type=int, default=40, help="rooms per phase")
    parser.add_argument("--steps", type=int, default=5, help="round trips per room")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 4], help="rooms at once, in turn"
    )
    parser.add_argument("--port", type=int, help="Synapse's port (default: a free one)")
    parser.add_argument(
        "--max-seconds", type=float, default=900.0, help="deadline for the whole benchmark"
    )
    args = parser.parse_args(argv)
    if args.rooms < 1 or args.steps < 1 or any(c < 1 for c in args.concurrency):
        parser.error("--rooms, --steps and every --concurrency must be at least 1")
    return args


async def measure_all(args: argparse.Namespace, world: World) -> dict[int, list[Phase]]:
    results: dict[int, list[Phase]] = {}
    for number, concurrency in enumerate(args.concurrency):
        user = homeserver.register(
            world.server.directory, f"phases-{number}-{concurrency}", "unused"
        )
        assert user is not None
        account = Account(
            path="<bench>",
            user=user.user_id,
            homeserver_url=world.server.url,
            password=None,
            access_token=SecretStr(user.access_token),
            device_id=user.device_id,
            user_to_test=None,
        )
        print(f"{concurrency} at once...", flush=True)
        results[concurrency] = await measure(world, account, args.rooms, args.steps, concurrency)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"{args.rooms} rooms, {args.steps} steps each; at once: {args.concurrency}")

    def measure() -> Callable[[], None]:
        with (
            tempfile.TemporaryDirectory(prefix="mbt-phases-") as temp,
            throwaway_world(Path(temp), args.port, BOT_SCRIPT) as world,
        ):
            try:
                results = asyncio.run(asyncio.wait_for(measure_all(args, world), args.max_seconds))
            except TimeoutError:
                raise BenchError(f"not done within --max-seconds {args.max_seconds:g}") from None
        return partial(print_tables, results)

    return run_guarded(measure)


if __name__ == "__main__":
    sys.exit(main())
