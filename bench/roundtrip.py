"""The tester's round trip beside a bare matrix-nio client, against the same bot.

Run it as ``.venv/bin/python bench/roundtrip.py [--rounds N] [--steps N]`` (or
``make bench``). It prints numbers and asserts nothing about them.

What one run does:

* starts a throwaway Synapse (``matrix_bot_tester.homeserver``, a free port,
  a temporary folder, server name ``localhost``), registers a bot and two
  tester users, and starts the example bot ``examples/command_bot.py``; all of
  it is stopped at the end, whatever happens;
* runs ``--rounds`` rounds; each round runs the tester and the bare client
  once, in ABBA order (tester first in even rounds, bare first in odd ones),
  so drift and machine noise weigh on both alike. Before round 0 each side
  runs a short warm-up conversation (``--warmup`` steps) that is not counted;
* **tester**: our own code path. A script of ``--steps`` steps
  ``send: "!echo N-<tag>"`` / ``expect: "N-<tag>"`` (parsed with
  ``script.parse_script``) runs through ``Conversation`` over a ``NioSession``,
  as ``runner.run_conversations`` does: a new session and a new DM per round.
  A thin pass-through wrapper around the session stamps the clock around its
  send call (``send_event`` or ``send_text``, whichever the ``Session``
  protocol uses) and its next-reply call (``next_event`` or ``next_reply``);
  it changes nothing the conversation does;
* **bare**: a plain ``nio.AsyncClient``, no matrix_bot_tester code: log in,
  create a DM with the bot (same preset as the tester), sync until the bot
  has joined, then per step ``room_send`` and ``sync(timeout=long-poll,
  since=next_batch)`` until the bot's reply is in a sync response.

The spans compared (``time.monotonic``):

``reply``
    from the send having returned to the reply having arrived. For the tester
    that is ``StepResult.latency``, what the tester itself reports: from
    the send call having returned to the moment its sync loop got the sync
    response holding the reply (``Reply.arrived``, stamped when ``nio``'s
    ``sync()`` returns). The tester rounds it to 1 ms, so the row
    ``reply (µs)`` gives the same span unrounded, from the wrapper
    (``Reply.arrived`` minus the moment the send call returned). For the bare
    client: from ``room_send`` having returned to ``sync()`` having returned
    with the reply.
``full``
    from just before the send to the reply's arrival (same arrival as above):
    for the tester, the send call to ``Reply.arrived``; for the
    bare client, the call of ``room_send`` to the return of that ``sync()``.
    This is the like-for-like round trip.
``cycle``
    from one step's send to the next step's send (the last step: to its reply
    being seen), i.e. everything the client does per step: for the tester
    this adds the wake-up of the waiting conversation (the next-reply call
    returning after the sync loop stamped ``arrived``), matching, the
    transcript and the callback; for the bare client scanning the response.
``send``
    from the send call to its return (``full`` = ``send`` + ``reply``).

``ratio`` is tester/bare for the median and the p95 of each span (the target
is at most 1.10). ``CPU/step`` is ``time.process_time`` of this process over
the measured steps (first send to last reply, homeserver and bot excluded:
they are other processes) divided by the number of steps.

Diagnostics below the table: the tester's wake-up (``Reply.arrived`` to the
conversation having the reply; in ``cycle``, not in ``reply``), sync calls per
step and when the sync call that brought the reply started relative to the
send's return (the tester's loop is already polling; the bare client first
syncs its own message back), the per-round medians, and the *paired* ratio:
the median over rounds of tester/bare round medians, which is less at the
mercy of load drifting between rounds than the pooled ratio in the table.
On a busy machine the rounds differ by tens of percent; use more rounds
(``--rounds 10 --steps 20`` interleaves more finely) before trusting a ratio.

Every wait has a deadline (``--timeout`` per step, ``--max-seconds`` for the
whole run): a bot that stops answering ends the benchmark with an error
naming the step, and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import platform
import secrets
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from nio import (
    AsyncClient,
    AsyncClientConfig,
    LoginResponse,
    RoomCreateResponse,
    RoomPreset,
    RoomSendResponse,
    SyncResponse,
)
from pydantic import SecretStr

from matrix_bot_tester import homeserver
from matrix_bot_tester.account import Account
from matrix_bot_tester.botprocess import BotProcess, start_bot
from matrix_bot_tester.conversation import Conversation, Reply, Session
from matrix_bot_tester.errors import TesterError
from matrix_bot_tester.matching import Event
from matrix_bot_tester.result import Outcome
from matrix_bot_tester.script import Script, parse_script
from matrix_bot_tester.session import SYNC_LONG_POLL_MS, NioSession

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
BOT_SCRIPT = REPO / "examples" / "command_bot.py"
SERVER_NAME = "localhost"
SYNAPSE_START_TIMEOUT = 120.0
BOT_START_TIMEOUT = 60.0
# Logging in, creating the DM and the bot's join: not measured, but bounded.
SETUP_TIMEOUT = 30.0


class BenchError(Exception):
    """The benchmark cannot go on (a silent bot, a refused login...): one line."""


# --------------------------------------------------------------- samples


@dataclass
class Sample:
    """One step of one side: monotonic stamps (seconds)."""

    send_start: float
    send_end: float
    arrived: float  # the sync response holding the reply was back from nio
    seen: float  # the client code had the reply in hand
    poll_start: float  # when the sync call that brought the reply was started
    reported: float | None = None  # the tester's StepResult.latency (rounded to 1 ms)


class SyncLog:
    """(start, end) of every sync call a client makes: where the time between steps goes."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def wrap(self, sync: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        async def timed(*args: Any, **kwargs: Any) -> T:
            start = time.monotonic()
            try:
                return await sync(*args, **kwargs)
            finally:
                self.calls.append((start, time.monotonic()))

        return timed

    def delivering(self, arrived: float) -> float:
        """The start of the last sync call that had returned by ``arrived``."""
        return max((c for c in self.calls if c[1] <= arrived), key=lambda c: c[1])[0]

    def started_between(self, begin: float, end: float) -> int:
        return sum(1 for start, _ in self.calls if begin <= start <= end)


@dataclass
class RoundResult:
    samples: list[Sample] = field(default_factory=list)
    cpu: float = 0.0  # process_time over the measured steps
    wall: float = 0.0
    syncs: int = 0  # sync calls started during the measured steps

    def cycles(self) -> list[float]:
        out = []
        for this, following in zip(self.samples, self.samples[1:], strict=False):
            out.append(following.send_start - this.send_start)
        if self.samples:
            out.append(self.samples[-1].seen - self.samples[-1].send_start)
        return out


@dataclass
class SideResult:
    name: str
    rounds: list[RoundResult] = field(default_factory=list)

    @property
    def samples(self) -> list[Sample]:
        return [s for r in self.rounds for s in r.samples]

    def span(self, kind: str) -> list[float]:
        samples = self.samples
        if kind == "reply":
            reported = [s.reported for s in samples]
            if all(r is not None for r in reported):
                return [r for r in reported if r is not None]
            return [s.arrived - s.send_end for s in samples]
        if kind == "reply_us":
            return [s.arrived - s.send_end for s in samples]
        if kind == "full":
            return [s.arrived - s.send_start for s in samples]
        if kind == "send":
            return [s.send_end - s.send_start for s in samples]
        if kind == "cycle":
            return [c for r in self.rounds for c in r.cycles()]
        if kind == "wakeup":
            return [s.seen - s.arrived for s in samples]
        if kind == "poll_lag":
            return [s.poll_start - s.send_end for s in samples]
        raise ValueError(kind)

    @property
    def steps(self) -> int:
        return sum(len(r.samples) for r in self.rounds)

    @property
    def cpu(self) -> float:
        return sum(r.cpu for r in self.rounds)

    @property
    def syncs(self) -> int:
        return sum(r.syncs for r in self.rounds)


# ---------------------------------------------------------------- deadlines


async def bounded(what: str, awaitable: Awaitable[T], deadline: float) -> T:
    """Await within an absolute monotonic deadline, or raise BenchError naming ``what``."""
    try:
        # A deadline already past still awaits (and so cancels) the call: no stray coroutine.
        return await asyncio.wait_for(awaitable, max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        raise BenchError(f"{what}: no answer within the deadline") from None


# ------------------------------------------------------------------ tester


# The session's calls that send a message and that hand over the next reply. The
# ``Session`` protocol has named them both ways; the wrapper times whichever exists.
SEND_CALLS = frozenset({"send_text", "send_event"})
REPLY_CALLS = frozenset({"next_reply", "next_event"})


class TimedSession:
    """A pass-through session that stamps the clock around sends and replies.

    Every attribute is the wrapped ``NioSession``'s own; the send and reply
    calls are the same calls, with ``time.monotonic()`` read before and after.
    """

    def __init__(self, inner: NioSession, result: RoundResult, syncs: SyncLog) -> None:
        self._inner = inner
        self._result = result
        self._syncs = syncs
        self._pending: tuple[float, float] | None = None
        self._cpu_start: float | None = None
        self._wall_start = 0.0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in SEND_CALLS:
            return self._timed_send(attr)
        if name in REPLY_CALLS:
            return self._timed_reply(attr)
        return attr

    def _timed_send(self, send: Callable[..., Awaitable[Event]]) -> Callable[..., Awaitable[Event]]:
        async def timed(*args: Any, **kwargs: Any) -> Event:
            if self._cpu_start is None:
                self._cpu_start = time.process_time()
                self._wall_start = time.monotonic()
            start = time.monotonic()
            event = await send(*args, **kwargs)
            self._pending = (start, time.monotonic())
            return event

        return timed

    def _timed_reply(
        self, next_reply: Callable[..., Awaitable[Reply | None]]
    ) -> Callable[..., Awaitable[Reply | None]]:
        async def timed(*args: Any, **kwargs: Any) -> Reply | None:
            reply = await next_reply(*args, **kwargs)
            seen = time.monotonic()
            if reply is not None and self._pending is not None:
                start, end = self._pending
                self._pending = None
                poll_start = self._syncs.delivering(reply.arrived)
                self._result.samples.append(Sample(start, end, reply.arrived, seen, poll_start))
                assert self._cpu_start is not None
                self._result.cpu = time.process_time() - self._cpu_start
                self._result.wall = seen - self._wall_start
                self._result.syncs = self._syncs.started_between(self._wall_start, seen)
            return reply

        return timed


def echo_script(steps: int, tag: str, timeout: float) -> Script:
    lines = ['room_to_connect: "!dm"', f"timeout: {timeout:g}", "messages:"]
    for n in range(1, steps + 1):
        text = f"{n}-{tag}"
        # JSON strings are YAML strings: no quoting surprises.
        lines.append(f"  - send: {json.dumps('!echo ' + text)}")
        lines.append(f"    expect: {json.dumps(text)}")
    return parse_script("\n".join(lines) + "\n", path=f"<bench {tag}>")


async def tester_round(
    url: str, user_id: str, password: str, bot_id: str, steps: int, tag: str, timeout: float
) -> RoundResult:
    account = Account(
        path="<bench>",
        user=user_id,
        homeserver_url=url,
        password=SecretStr(password),
        access_token=None,
        device_id=None,
        user_to_test=None,
    )
    script = echo_script(steps, tag, timeout)
    result = RoundResult()
    session = NioSession(account)
    syncs = SyncLog()
    # Diagnostics only: which sync call brought each reply. The loop is unchanged.
    session._client.sync = syncs.wrap(session._client.sync)
    timed = TimedSession(session, result, syncs)
    try:
        await session.connect(timeout=SETUP_TIMEOUT)
        conversation = Conversation(script, partner=bot_id, timeout_override=timeout)
        outcome = await conversation.run(cast(Session, timed))
    except TesterError as exc:
        raise BenchError(f"tester round {tag}: {exc.one_line()}") from None
    finally:
        await session.close()
    if outcome.outcome is not Outcome.PASSED:
        failure = outcome.failure
        where = (
            f" at step {failure.step_index + 1}"
            if failure and failure.step_index is not None
            else ""
        )
        reason = failure.reason if failure else outcome.outcome.value
        raise BenchError(f"tester round {tag}: {outcome.outcome.value}{where}: {reason}")
    for sample, step in zip(result.samples, outcome.steps, strict=True):
        sample.reported = step.latency
    return result


# -------------------------------------------------------------------- bare


def _bot_joined(response: SyncResponse, room_id: str, bot_id: str) -> bool:
    info = response.rooms.join.get(room_id)
    if info is None:
        return False
    for event in [*info.state, *info.timeline.events]:
        source: dict[str, Any] = event.source
        if (
            source.get("type") == "m.room.member"
            and source.get("state_key") == bot_id
            and (source.get("content") or {}).get("membership") == "join"
        ):
            return True
    return False


def _bot_reply(response: SyncResponse, room_id: str, bot_id: str) -> str | None:
    info = response.rooms.join.get(room_id)
    if info is None:
        return None
    for event in info.timeline.events:
        source: dict[str, Any] = event.source
        if source.get("sender") == bot_id and source.get("type") == "m.room.message":
            body = (source.get("content") or {}).get("body")
            return body if isinstance(body, str) else ""
    return None


async def _sync_until(
    client: AsyncClient,
    what: str,
    found: Callable[[SyncResponse], bool],
    deadline: float,
    long_poll_ms: int,
    syncs: SyncLog,
) -> tuple[float, float, SyncResponse]:
    """Long-poll sync until ``found``: when that sync call began and came back, its response."""
    began = time.monotonic()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchError(f"{what}: nothing within {deadline - began:.1f} s")
        poll = max(1, min(long_poll_ms, int(remaining * 1000)))
        started = time.monotonic()
        response = await bounded(
            what, client.sync(timeout=poll, since=client.next_batch), deadline + 2.0
        )
        arrived = time.monotonic()
        syncs.calls.append((started, arrived))
        if not isinstance(response, SyncResponse):
            raise BenchError(f"{what}: sync failed: {response}")
        if found(response):
            return started, arrived, response


async def bare_round(
    url: str,
    user_id: str,
    password: str,
    bot_id: str,
    steps: int,
    tag: str,
    timeout: float,
    long_poll_ms: int,
) -> RoundResult:
    client = AsyncClient(
        url,
        user_id,
        config=AsyncClientConfig(encryption_enabled=False, store_sync_tokens=False),
    )
    result = RoundResult()
    syncs = SyncLog()
    try:
        setup = time.monotonic() + SETUP_TIMEOUT
        login = await bounded("bare: login", client.login(password, "bench-bare"), setup)
        if not isinstance(login, LoginResponse):
            raise BenchError(f"bare: login refused: {login}")
        first = await bounded("bare: first sync", client.sync(timeout=0), setup)
        if not isinstance(first, SyncResponse):
            raise BenchError(f"bare: first sync failed: {first}")
        created = await bounded(
            "bare: creating the DM",
            client.room_create(
                is_direct=True, invite=[bot_id], preset=RoomPreset.trusted_private_chat
            ),
            setup,
        )
        if not isinstance(created, RoomCreateResponse):
            raise BenchError(f"bare: creating the DM failed: {created}")
        room_id = created.room_id
        await _sync_until(
            client,
            f"bare round {tag}: waiting for {bot_id} to join the DM",
            lambda r: _bot_joined(r, room_id, bot_id),
            min(setup, time.monotonic() + timeout),  # as the tester: the first step's timeout
            long_poll_ms,
            syncs,
        )

        cpu_start = time.process_time()
        wall_start = time.monotonic()
        for n in range(1, steps + 1):
            text = f"{n}-{tag}"
            deadline = time.monotonic() + timeout
            content = {"msgtype": "m.text", "body": f"!echo {text}"}
            send_start = time.monotonic()
            sent = await bounded(
                f"bare round {tag} step {n}: sending",
                client.room_send(room_id, "m.room.message", content),
                deadline,
            )
            send_end = time.monotonic()
            if not isinstance(sent, RoomSendResponse):
                raise BenchError(f"bare round {tag} step {n}: sending failed: {sent}")
            poll_start, arrived, response = await _sync_until(
                client,
                f"bare round {tag} step {n}: waiting for the reply to {content['body']!r}",
                lambda r: _bot_reply(r, room_id, bot_id) is not None,
                deadline,
                long_poll_ms,
                syncs,
            )
            seen = time.monotonic()
            body = _bot_reply(response, room_id, bot_id)
            if body != text:
                raise BenchError(f"bare round {tag} step {n}: expected {text!r}, got {body!r}")
            result.samples.append(Sample(send_start, send_end, arrived, seen, poll_start))
        result.cpu = time.process_time() - cpu_start
        result.wall = time.monotonic() - wall_start
        result.syncs = syncs.started_between(wall_start, wall_start + result.wall)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.logout(), 5)
        await client.close()
    return result


# ------------------------------------------------------------------ report


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


SPANS = (
    ("reply", "reply: send returned → reply arrived (tester: StepResult.latency, 1 ms res.)"),
    ("reply_us", "reply (µs): same span, unrounded"),
    ("full", "full: send called → reply arrived"),
    ("cycle", "cycle: send → next send"),
    ("send", "send: send called → send returned (full = send + reply)"),
)


def print_table(tester: SideResult, bare: SideResult) -> None:
    header = (
        f"{'span':<9} {'n':>5} │ {'tester med':>10} {'p95':>8} │ {'bare med':>9} {'p95':>8}"
        f" │ {'ratio med':>9} {'p95':>6}"
    )
    print(header)
    print("─" * len(header))
    for kind, _ in SPANS:
        t, b = tester.span(kind), bare.span(kind)
        tm, tp = statistics.median(t) * 1000, quantile(t, 0.95) * 1000
        bm, bp = statistics.median(b) * 1000, quantile(b, 0.95) * 1000
        print(
            f"{kind:<9} {len(t):>5} │ {tm:>10.2f} {tp:>8.2f} │ {bm:>9.2f} {bp:>8.2f}"
            f" │ {tm / bm:>9.3f} {tp / bp:>6.3f}"
        )
    print("(milliseconds; ratio = tester / bare; target ≤ 1.10)")
    for _kind, text in SPANS:
        print(f"  {text}")
    wake = tester.span("wakeup")
    print(
        f"tester wake-up (reply arrived → the conversation has it): median"
        f" {statistics.median(wake) * 1e6:.0f} µs, p95 {quantile(wake, 0.95) * 1e6:.0f} µs"
    )
    tc, bc = tester.cpu / tester.steps * 1000, bare.cpu / bare.steps * 1000
    print(
        f"CPU/step (this process, measured steps only): tester {tc:.2f} ms, bare {bc:.2f} ms,"
        f" ratio {tc / bc:.2f}"
    )
    for name, side in (("tester", tester), ("bare", bare)):
        lag = side.span("poll_lag")
        print(
            f"{name}: {side.syncs / side.steps:.2f} syncs/step; the sync that brought the reply"
            f" started {statistics.median(lag) * 1000:+.2f} ms (median) after the send returned"
        )
    print("per round (median full span, ms; the two runs of a round are back to back):")
    medians: dict[str, list[float]] = {}
    for name, side in (("tester", tester), ("bare", bare)):
        medians[name] = [
            statistics.median([s.arrived - s.send_start for s in r.samples]) for r in side.rounds
        ]
        print(f"  {name:<6} {'  '.join(f'{m * 1000:7.2f}' for m in medians[name])}")
    paired = [t / b for t, b in zip(medians["tester"], medians["bare"], strict=True)]
    print(
        f"  ratio  {'  '.join(f'{r:7.3f}' for r in paired)}\n"
        f"paired full-span ratio (median of the per-round ratios, robust to drift between"
        f" rounds): {statistics.median(paired):.3f}"
    )


# -------------------------------------------------------------------- main


@dataclass
class Setup:
    url: str
    bot_id: str
    tester_id: str
    tester_password: str
    bare_id: str
    bare_password: str


async def run_all(args: argparse.Namespace, setup: Setup) -> tuple[SideResult, SideResult]:
    tester = SideResult("tester")
    bare = SideResult("bare")
    run_id = secrets.token_hex(3)

    async def one(side: SideResult, round_no: int | str, steps: int) -> RoundResult:
        tag = f"{side.name[0]}{round_no}-{run_id}"
        if side is tester:
            return await tester_round(
                setup.url,
                setup.tester_id,
                setup.tester_password,
                setup.bot_id,
                steps,
                tag,
                args.timeout,
            )
        return await bare_round(
            setup.url,
            setup.bare_id,
            setup.bare_password,
            setup.bot_id,
            steps,
            tag,
            args.timeout,
            args.long_poll_ms,
        )

    if args.warmup > 0:
        print(f"warm-up: {args.warmup} steps each (not counted)", flush=True)
        await one(tester, "w", args.warmup)
        await one(bare, "w", args.warmup)
    for round_no in range(args.rounds):
        order = (tester, bare) if round_no % 2 == 0 else (bare, tester)
        for side in order:
            result = await one(side, round_no, args.steps)
            side.rounds.append(result)
            full = statistics.median([s.arrived - s.send_start for s in result.samples])
            print(
                f"round {round_no} {side.name:<6} {len(result.samples)} steps in"
                f" {result.wall:.2f} s, median full {full * 1000:.2f} ms",
                flush=True,
            )
    return tester, bare


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="rounds of tester+bare, ABBA order (>= 2; even is balanced)",
    )
    parser.add_argument("--steps", type=int, default=50, help="round trips per conversation")
    parser.add_argument("--warmup", type=int, default=5, help="uncounted steps per side first")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for each reply"
    )
    parser.add_argument(
        "--long-poll-ms",
        type=int,
        default=SYNC_LONG_POLL_MS,
        help="the bare client's sync long-poll (default: the tester's, %(default)s)",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=900.0, help="deadline for the whole benchmark"
    )
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error("--rounds must be at least 2")
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup at least 0")
    if args.timeout <= 0 or args.max_seconds <= 0 or args.long_poll_ms < 1:
        parser.error("--timeout, --max-seconds and --long-poll-ms must be positive")
    return args


def versions() -> str:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return (
        f"Synapse {version('matrix-synapse')}, matrix-nio {version('matrix-nio')},"
        f" aiohttp {version('aiohttp')}, Python {platform.python_version()}"
    )


@contextlib.contextmanager
def throwaway_world(temp: Path) -> Iterator[tuple[Setup, BotProcess]]:
    """Synapse, three users and the example bot; everything stopped on the way out."""
    server_dir = temp / "synapse"
    port = homeserver.free_port()
    try:
        server = homeserver.start(
            server_dir, port=port, server_name=SERVER_NAME, timeout=SYNAPSE_START_TIMEOUT
        )
        passwords = {name: secrets.token_urlsafe(16) for name in ("bot", "tester", "bare")}
        for name, password in passwords.items():
            homeserver.register(server_dir, f"bench-{name}", password)
        setup = Setup(
            url=server.url,
            bot_id=f"@bench-bot:{server.server_name}",
            tester_id=f"@bench-tester:{server.server_name}",
            tester_password=passwords["tester"],
            bare_id=f"@bench-bare:{server.server_name}",
            bare_password=passwords["bare"],
        )
        bot = start_bot(
            [str(BOT_SCRIPT)],
            {
                "MBT_BOT_HOMESERVER": server.url,
                "MBT_BOT_USER": setup.bot_id,
                "MBT_BOT_PASSWORD": passwords["bot"],
            },
            cwd=temp,
            timeout=BOT_START_TIMEOUT,
        )
        try:
            print(f"Synapse at {server.url} (pid {server.pid}), bot pid {bot.pid}", flush=True)
            yield setup, bot
        finally:
            bot.stop()
    finally:
        homeserver.stop(server_dir)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print("command:", shlex.join(sys.orig_argv))
    print("versions:", versions())
    print(
        f"rounds {args.rounds} x {args.steps} steps per side (ABBA order), warm-up {args.warmup},"
        f" step timeout {args.timeout:g} s, bare long-poll {args.long_poll_ms} ms"
        f" (tester: {SYNC_LONG_POLL_MS} ms)",
        flush=True,
    )
    try:
        with (
            tempfile.TemporaryDirectory(prefix="mbt-bench-") as temp,
            throwaway_world(Path(temp)) as (setup, bot),
        ):
            try:
                tester, bare = asyncio.run(asyncio.wait_for(run_all(args, setup), args.max_seconds))
            except TimeoutError:
                raise BenchError(
                    f"the benchmark did not finish within --max-seconds {args.max_seconds:g}"
                ) from None
            except (BenchError, TesterError) as exc:
                text = exc.one_line() if isinstance(exc, TesterError) else str(exc)
                if bot.returncode is not None:
                    # A silent bot is usually a dead one: say so, with its last words.
                    text += f"\nthe bot had exited (status {bot.returncode}); its last output:"
                    text += "".join(f"\n    {line}" for line in bot.output())
                raise BenchError(text) from None
    except (BenchError, TesterError) as exc:
        text = exc.one_line() if isinstance(exc, TesterError) else str(exc)
        print(f"error: {text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print()
    print_table(tester, bare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
