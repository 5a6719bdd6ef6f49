"""A whole suite through the command line: ``-j 1`` beside the default concurrency.

Run it as ``.venv/bin/python bench/suite.py [--conversations 200] [--steps 5]
[--jobs 1 4] [--port P] [--baseline-tester PATH]``. It prints numbers, compares two of them with the
issue's targets and asserts nothing (exit 0 whatever the numbers, 1 if the
benchmark itself could not run).

What one run does:

* starts a throwaway Synapse (``matrix_bot_tester.homeserver``: the test
  configuration's raised rate limits, a temporary folder, ``--port`` or a free
  port), registers the bot and one tester account per measured run (so every
  run starts from an account without rooms), and starts the example bot
  ``examples/command_bot.py``; all of it is stopped at the end, whatever
  happens (an error, Ctrl-C, the ``--max-seconds`` deadline);
* writes ``--conversations`` scripts of ``--steps`` steps each into a
  temporary folder as ``*.convo.yaml``: a mix of ``!ping``, ``!echo <text no
  other step sends>`` and ``!help``, each expecting the bot's exact answer;
* runs the tester as a child process, exactly as a user would
  (``matrix-bot-tester run DIR --account FILE -j N --json FILE --no-state``),
  once per ``--jobs`` value, in the order given, each run with its own
  account. First comes a baseline run of one conversation of one step (not in
  the table's main columns): the fixed cost of a run (interpreter, imports,
  connecting, the first DM), so the per-step CPU can also be given without it;
* measures that child alone: ``os.wait4`` gives its user+system CPU seconds
  and its peak resident memory (``ru_maxrss``). Synapse and the bot are other
  processes and are not counted. Wall time is from spawning the child to
  reaping it, start-up included.

From the JSON report: per-step latency (``StepResult.latency``: from the
tester's send having returned to the reply's arrival), the time each
conversation took to open its DM (its start to its first send: room
creation, the invite, the bot's join) and each conversation's
duration. Leaving the room afterwards is outside ``duration``; in a ``-j 1``
run the gap between the report's total and the sum of the durations is
mostly that (plus connecting once).

The machine this runs on may be busy with other work; the numbers are only
as quiet as the machine was. Run it twice before believing a difference, or
give ``--baseline-tester`` another version's ``matrix-bot-tester`` (an older
checkout with its own venv): each run is then made with both, against the same
Synapse, side by side.

This checkout's package is byte-compiled first: a tester installed with pip
has its bytecode, while an editable checkout under ``PYTHONDONTWRITEBYTECODE``
(as on CI machines) would compile its sources again at every start.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import importlib.util
import json
import os
import platform
import re
import resource
import secrets
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from matrix_bot_tester import homeserver
from matrix_bot_tester.botprocess import BotProcess, start_bot
from matrix_bot_tester.errors import TesterError
from matrix_bot_tester.runner import DEFAULT_JOBS

REPO = Path(__file__).resolve().parents[1]
THIS_TESTER = Path(sys.executable).parent / "matrix-bot-tester"
BOT_SCRIPT = REPO / "examples" / "command_bot.py"
SERVER_NAME = "localhost"
SYNAPSE_START_TIMEOUT = 120.0
BOT_START_TIMEOUT = 60.0
KILL_GRACE = 10.0  # seconds between SIGTERM and SIGKILL for a tester that overran
# The targets, for the run at the default concurrency.
TARGET_CPU_MS_PER_STEP = 2.0
TARGET_PEAK_MB = 150.0


class BenchError(Exception):
    """The benchmark cannot go on (a run that did not pass, the deadline...): one line."""


# ------------------------------------------------------------------ scripts


def help_text(bot_script: Path) -> str:
    """The example bot's !help answer, read from the bot itself so the two cannot drift."""
    spec = importlib.util.spec_from_file_location("command_bot", bot_script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    text = module.HELP_TEXT
    assert isinstance(text, str)
    return text


def script_text(number: int, steps: int, run_tag: str, help_answer: str) -> str:
    """One conversation: echo most (unique text), ping and help now and then."""
    lines = [f"# bench/suite.py conversation {number}", "timeout: 30", "messages:"]
    for step in range(steps):
        kind = (number + step) % 5
        if kind == 0:
            send, expect = "!ping", "pong"
        elif kind == 3:
            send, expect = "!help", help_answer
        else:
            text = f"c{number}-s{step}-{run_tag}"
            send, expect = f"!echo {text}", text
        # JSON strings are YAML strings: no quoting surprises, newlines included.
        lines.append(f"  - send: {json.dumps(send)}")
        lines.append(f"    expect: {json.dumps(expect)}")
    return "\n".join(lines) + "\n"


def write_scripts(folder: Path, count: int, steps: int, help_answer: str) -> None:
    folder.mkdir(parents=True)
    run_tag = secrets.token_hex(3)
    for number in range(count):
        text = script_text(number, steps, run_tag, help_answer)
        (folder / f"c{number:04d}.convo.yaml").write_text(text, encoding="utf-8")


# ------------------------------------------------------------ the child run


@dataclass
class ChildUsage:
    """What ``wait4`` says about the tester process, and its exit status."""

    status: int
    cpu_user: float
    cpu_system: float
    peak_mb: float
    wall: float

    @property
    def cpu(self) -> float:
        return self.cpu_user + self.cpu_system


def run_measured(command: list[str], cwd: Path, log: Path, deadline: float) -> ChildUsage:
    """Run ``command`` to its end and measure it alone with ``os.wait4``.

    ``wait4`` is called in a thread, so the main thread can keep a deadline
    (and take Ctrl-C); the child is never waited for through ``Popen``, whose
    own ``waitpid`` would reap it without the resource usage. On the deadline
    or an interrupt it gets SIGTERM (the tester then writes its partial
    reports), then SIGKILL.
    """
    with log.open("w", encoding="utf-8") as out:
        started = time.monotonic()
        child = subprocess.Popen(
            command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    reaped: list[tuple[int, resource.struct_rusage, float]] = []

    def reap() -> None:
        _, status, usage = os.wait4(child.pid, 0)
        reaped.append((status, usage, time.monotonic()))

    waiter = threading.Thread(target=reap, name="wait4 tester", daemon=True)
    waiter.start()
    try:
        waiter.join(max(0.0, deadline - time.monotonic()))
    finally:
        if not reaped:
            # Unreaped, so the pid is still the child's: signalling it is safe.
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)
            waiter.join(KILL_GRACE)
            if not reaped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
                waiter.join(KILL_GRACE)
        if reaped:
            child.returncode = os.waitstatus_to_exitcode(reaped[0][0])  # Popen must not wait
    if time.monotonic() >= deadline and not reaped:
        raise BenchError(f"the tester (pid {child.pid}) could not be stopped")
    status, usage, ended = reaped[0]
    if ended >= deadline:
        raise BenchError("the deadline (--max-seconds) passed during a tester run")
    return ChildUsage(
        status=os.waitstatus_to_exitcode(status),
        cpu_user=usage.ru_utime,
        cpu_system=usage.ru_stime,
        peak_mb=usage.ru_maxrss / 1024,  # Linux: kibibytes
        wall=ended - started,
    )


@dataclass
class RunResult:
    label: str
    jobs: int
    conversations: int
    usage: ChildUsage
    report: dict[str, Any]
    latencies: list[float] = field(default_factory=list)  # per step, seconds
    opening: list[float] = field(default_factory=list)  # conversation start -> first send
    durations: list[float] = field(default_factory=list)  # per conversation
    passed: int = 0
    others: Others | None = None
    tester: str = ""  # "" for this checkout's tester, "base" for --baseline-tester
    fixed: RunResult | None = None  # the same tester's run of 1 conversation of 1 step

    @property
    def steps(self) -> int:
        return len(self.latencies)


def digest(label: str, jobs: int, usage: ChildUsage, report: dict[str, Any]) -> RunResult:
    conversations = report.get("conversations") or []
    result = RunResult(label, jobs, len(conversations), usage, report)
    for conversation in conversations:
        if conversation.get("outcome") == "passed":
            result.passed += 1
        result.durations.append(float(conversation.get("duration") or 0.0))
        for step in conversation.get("steps") or []:
            if step.get("latency") is not None:
                result.latencies.append(float(step["latency"]))
        sent = [e for e in conversation.get("transcript") or [] if e.get("direction") == "sent"]
        if sent:
            result.opening.append(float(sent[0]["at"]))
    return result


# ------------------------------------------------- the other processes


def process_cpu(pid: int | None, *, main_thread: bool = False) -> float | None:
    """User+system CPU seconds a process (or its main thread) has used so far, or None.

    Linux ``/proc``. Synapse's main thread is its reactor: everything but the
    database work (a thread pool) runs there, so that thread alone near 100 %
    of the wall time means Synapse cannot go faster, however many cores.
    """
    if pid is None:
        return None
    where = f"/proc/{pid}/task/{pid}/stat" if main_thread else f"/proc/{pid}/stat"
    try:
        stat = Path(where).read_text(encoding="ascii")
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after its ')' are plain.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Synapse's request log line (synapse/http/site.py), the parts we read.
_REQUEST = re.compile(
    r"\{(?P<who>[^}]*)\} Processed request: (?P<took>[\d.]+)sec/[-\d.]+sec"
    r" ru=\((?P<user>[\d.]+)sec, (?P<sys>[\d.]+)sec\)"
    r" db=\((?P<sched>[\d.]+)sec/(?P<db>[\d.]+)sec/\d+\)"
    r' \S+ (?P<code>\S+) "(?P<method>\S+) (?P<uri>\S+) '
)
_ID_SEGMENT = re.compile(r"/(?:%21|%40|%23|!|@|#)[^/]*")
_TXN = re.compile(r"/(send|redact|sendToDevice)/([^/]+)/[^/]+$")


def endpoint(method: str, uri: str) -> str:
    """``PUT /rooms/{id}/send/m.room.message/{txn}``: IDs and transactions folded away."""
    path = uri.split("?", 1)[0].removeprefix("/_matrix/client")
    path = _ID_SEGMENT.sub("/{id}", path)
    path = _TXN.sub(r"/\1/\2/{txn}", path)
    return f"{method} {path}"


@dataclass
class Endpoint:
    """The requests of one kind during one run, as Synapse's log counts them."""

    count: int = 0
    took: list[float] = field(default_factory=list)  # seconds, received to handled
    cpu: float = 0.0  # the request's own user+sys CPU (not background work it queued)
    db: float = 0.0  # database transaction time
    db_wait: float = 0.0  # waiting for a database connection (SQLite: there is one)


def synapse_requests(log: Path, start: int, stop: int, tester: str) -> dict[str, Endpoint]:
    """Per caller ("tester", "bot") and endpoint, the requests logged between two offsets."""
    with log.open("rb") as lines:
        lines.seek(start)
        text = lines.read(max(0, stop - start)).decode("utf-8", errors="replace")
    table: dict[str, Endpoint] = defaultdict(Endpoint)
    for match in _REQUEST.finditer(text):
        who = match["who"]
        caller = "tester" if tester in who else "bot" if "bench-bot" in who else "other"
        entry = table[f"{caller:<6} {endpoint(match['method'], match['uri'])}"]
        entry.count += 1
        entry.took.append(float(match["took"]))
        entry.cpu += float(match["user"]) + float(match["sys"])
        entry.db += float(match["db"])
        entry.db_wait += float(match["sched"])
    return dict(table)


@dataclass
class Others:
    """What Synapse and the bot did during one tester run."""

    synapse_cpu: float | None
    reactor_cpu: float | None  # Synapse's main thread
    bot_cpu: float | None
    requests: dict[str, Endpoint]


# ------------------------------------------------------------------- world


@dataclass
class World:
    temp: Path
    server: homeserver.Homeserver
    bot_id: str
    bot: BotProcess


@contextlib.contextmanager
def throwaway_world(temp: Path, port: int | None, bot_script: Path) -> Iterator[World]:
    """Synapse and the example bot; both stopped on the way out, whatever happens."""
    server_dir = temp / "synapse"
    try:
        server = homeserver.start(
            server_dir,
            port=port or homeserver.free_port(),
            server_name=SERVER_NAME,
            timeout=SYNAPSE_START_TIMEOUT,
        )
        bot_user = homeserver.register(server_dir, "bench-bot", secrets.token_urlsafe(16))
        assert bot_user is not None  # a new server: the name is free
        bot = start_bot(
            [str(bot_script)],
            {
                "MBT_BOT_HOMESERVER": server.url,
                "MBT_BOT_USER": bot_user.user_id,
                "MBT_BOT_ACCESS_TOKEN": bot_user.access_token,
            },
            cwd=temp,
            timeout=BOT_START_TIMEOUT,
        )
        try:
            print(f"Synapse at {server.url} (pid {server.pid}), bot pid {bot.pid}", flush=True)
            yield World(temp, server, bot_user.user_id, bot)
        finally:
            bot.stop()
    finally:
        homeserver.stop(server_dir)


def account_file(world: World, label: str) -> tuple[Path, str]:
    """A new tester account (no rooms yet): its account file (private: it holds a token), its ID."""
    user = homeserver.register(world.server.directory, f"bench-tester-{label}", "unused")
    assert user is not None
    path = world.temp / f"account-{label}.yaml"
    document = {
        "user": user.user_id,
        "homeserver_url": world.server.url,
        "access_token": user.access_token,
        "device_id": user.device_id,
        "user_to_test": world.bot_id,
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(document, indent=2) + "\n")  # JSON is YAML
    return path, user.user_id


def tester_run(
    world: World,
    label: str,
    scripts: Path,
    jobs: int,
    deadline: float,
    profile: Path | None = None,
    tester: Path = THIS_TESTER,
) -> RunResult:
    report_path = world.temp / f"report-{label}.json"
    log = world.temp / f"output-{label}.txt"
    account, user_id = account_file(world, label)
    # Under cProfile the CPU figures include the profiler's own cost: compare
    # profiled runs with profiled runs only.
    profiler = [] if profile is None else [sys.executable, "-m", "cProfile", "-o", str(profile)]
    command = [
        *profiler,
        str(tester),
        "run",
        str(scripts),
        "--account",
        str(account),
        "-j",
        str(jobs),
        "--json",
        str(report_path),
        "--no-state",
    ]
    synapse_log = world.server.directory / homeserver.LOG_FILE
    synapse_before, bot_before = process_cpu(world.server.pid), process_cpu(world.bot.pid)
    reactor_before = process_cpu(world.server.pid, main_thread=True)
    log_before = synapse_log.stat().st_size
    usage = run_measured(command, world.temp, log, deadline)
    synapse_after, bot_after = process_cpu(world.server.pid), process_cpu(world.bot.pid)
    reactor_after = process_cpu(world.server.pid, main_thread=True)
    others = Others(
        reactor_cpu=None
        if reactor_before is None or reactor_after is None
        else reactor_after - reactor_before,
        synapse_cpu=None
        if synapse_before is None or synapse_after is None
        else synapse_after - synapse_before,
        bot_cpu=None if bot_before is None or bot_after is None else bot_after - bot_before,
        requests=synapse_requests(synapse_log, log_before, synapse_log.stat().st_size, user_id),
    )
    # 1 is "some conversation failed": still a run to measure (the table counts the passes).
    if usage.status not in (0, 1) or not report_path.exists():
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        text = f"the {label} run exited with status {usage.status}; its last output:"
        text += "".join(f"\n    {line}" for line in tail)
        if world.bot.returncode is not None:
            text += f"\nthe bot had exited (status {world.bot.returncode})"
        raise BenchError(text)
    report = json.loads(report_path.read_text(encoding="utf-8"))
    result = digest(label, jobs, usage, report)
    result.others = others
    return result


# ------------------------------------------------------------------ report


def p95(values: list[float]) -> float:
    """The 95th percentile, interpolated between closest ranks (numpy's default)."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else "MISSED"


def print_table(runs: list[RunResult], baseline: RunResult) -> None:
    width = 16
    head = f"{'':<34}" + "".join(f"{f'-j {r.jobs} {r.tester}'.strip():>{width}}" for r in runs)
    print(head)
    print("─" * len(head))

    def row(name: str, cells: list[str]) -> None:
        print(f"{name:<34}" + "".join(f"{c:>{width}}" for c in cells))

    def ms(values: list[float], *, tail: bool = False) -> str:
        if not values:
            return "-"
        return f"{(p95(values) if tail else statistics.median(values)) * 1000:.1f}"

    row("conversations passed", [f"{r.passed}/{r.conversations}" for r in runs])
    row("steps", [str(r.steps) for r in runs])
    row("wall time, s (spawn to exit)", [f"{r.usage.wall:.1f}" for r in runs])
    row("report duration, s", [f"{float(r.report.get('duration', 0)):.1f}" for r in runs])
    row("conversations/s", [f"{r.conversations / r.usage.wall:.2f}" for r in runs])
    row("step latency median, ms", [ms(r.latencies) for r in runs])
    row("step latency p95, ms", [ms(r.latencies, tail=True) for r in runs])
    row("opening the DM median, ms", [ms(r.opening) for r in runs])
    row("opening the DM p95, ms", [ms(r.opening, tail=True) for r in runs])
    row("conversation median, ms", [ms(r.durations) for r in runs])
    row(
        "outside conversations, s",
        [f"{float(r.report.get('duration', 0)) - sum(r.durations) / r.jobs:.1f}" for r in runs],
    )
    row("tester CPU user+sys, s", [f"{r.usage.cpu:.2f}" for r in runs])
    row("tester CPU/step, ms", [f"{r.usage.cpu / r.steps * 1000:.2f}" for r in runs])
    row(
        "  without the fixed cost, ms",
        [f"{(r.usage.cpu - (r.fixed or baseline).usage.cpu) / r.steps * 1000:.2f}" for r in runs],
    )
    row("tester peak memory, MiB", [f"{r.usage.peak_mb:.1f}" for r in runs])

    def share(cpu: float | None, r: RunResult) -> str:
        return "-" if cpu is None else f"{cpu:.1f} ({cpu / r.usage.wall:.0%})"

    row(
        "Synapse CPU, s (of wall)",
        [share(r.others.synapse_cpu if r.others else None, r) for r in runs],
    )
    row(
        "  its main thread (the reactor)",
        [share(r.others.reactor_cpu if r.others else None, r) for r in runs],
    )
    row("bot CPU, s (of wall)", [share(r.others.bot_cpu if r.others else None, r) for r in runs])
    row("tester CPU, s (of wall)", [share(r.usage.cpu, r) for r in runs])
    print()
    print(
        f"fixed cost (a run of 1 conversation of 1 step): {baseline.usage.cpu:.2f} s CPU,"
        f" {baseline.usage.peak_mb:.1f} MiB peak, {baseline.usage.wall:.1f} s wall"
    )
    base = next((r.fixed for r in runs if r.tester and r.fixed), None)
    if base is not None:
        print(
            f"  the baseline tester's (--baseline-tester): {base.usage.cpu:.2f} s CPU,"
            f" {base.usage.peak_mb:.1f} MiB peak, {base.usage.wall:.1f} s wall"
        )
    print(
        "'outside conversations': the report's duration minus the conversations' durations"
        " divided by -j: connecting, leaving rooms, waiting for a free slot"
    )
    for r in runs:
        if r.jobs != DEFAULT_JOBS or r.tester:
            continue
        cpu = r.usage.cpu / r.steps * 1000
        print(
            f"targets (-j {r.jobs}, the default): CPU/step {cpu:.2f} ms ≤"
            f" {TARGET_CPU_MS_PER_STEP:g} ms: {verdict(cpu, TARGET_CPU_MS_PER_STEP)};"
            f" peak memory {r.usage.peak_mb:.1f} MiB ≤ {TARGET_PEAK_MB:g} MB:"
            f" {verdict(r.usage.peak_mb, TARGET_PEAK_MB)}"
        )
    print("(a shared machine: other work competes for the CPU; the numbers are noisy)")
    for r in runs:
        print_requests(r)


def print_requests(run: RunResult, most: int = 14) -> None:
    """Synapse's view of one run: the requests that took the most time, per conversation."""
    if run.others is None or not run.others.requests:
        return
    requests = run.others.requests
    per = max(1, run.conversations)
    shown = f"-j {run.jobs} {run.tester}".strip()
    print(
        f"\n{shown}: Synapse's requests (its log; per conversation; 'took' is received to"
        " handled, long-polls included; CPU is the request's own, not the event persister's)"
    )
    print(
        f"{'caller endpoint':<52}{'n/conv':>7}{'took med ms':>12}{'p95':>7}{'CPU ms/conv':>12}"
        f"{'DB':>6}{'DB wait':>8}"
    )
    ranked = sorted(requests.items(), key=lambda item: -sum(item[1].took))
    for name, entry in ranked[:most]:
        print(
            f"{name[:51]:<52}{entry.count / per:>7.2f}"
            f"{statistics.median(entry.took) * 1000:>12.1f}{p95(entry.took) * 1000:>7.1f}"
            f"{entry.cpu / per * 1000:>12.1f}{entry.db / per * 1000:>6.1f}"
            f"{entry.db_wait / per * 1000:>8.1f}"
        )
    cpu = sum(e.cpu for e in requests.values())
    print(
        f"all requests' own CPU: {cpu:.1f} s; {len(requests) - most} more kinds not shown"
        if len(requests) > most
        else f"all requests' own CPU: {cpu:.1f} s"
    )


# -------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--conversations", type=int, default=200, help="scripts in the suite")
    parser.add_argument("--steps", type=int, default=5, help="steps per script")
    parser.add_argument(
        "--jobs",
        type=int,
        nargs="+",
        default=[1, DEFAULT_JOBS],
        help="the -j of each measured run, in this order (default: 1 and the default,"
        f" {DEFAULT_JOBS})",
    )
    parser.add_argument("--port", type=int, help="Synapse's port (default: a free one)")
    parser.add_argument(
        "--bot",
        type=Path,
        default=BOT_SCRIPT,
        help="the bot to talk to (default: %(default)s; another version of it, to compare)",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=1800.0, help="deadline for the whole benchmark"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run the tester under cProfile and keep each run's profile in DIR"
        " (read them with pstats; the CPU figures then include the profiler)",
    )
    parser.add_argument(
        "--baseline-tester",
        type=Path,
        metavar="PATH",
        help="another matrix-bot-tester executable (an older checkout's, say): each run"
        " is made with it too, against the same Synapse, alternating, in columns 'base'",
    )
    args = parser.parse_args(argv)
    if args.conversations < 1 or args.steps < 1:
        parser.error("--conversations and --steps must be at least 1")
    if any(j < 1 for j in args.jobs):
        parser.error("every --jobs value must be at least 1")
    if args.max_seconds <= 0:
        parser.error("--max-seconds must be positive")
    if args.baseline_tester is not None and not os.access(args.baseline_tester, os.X_OK):
        parser.error(f"--baseline-tester: {args.baseline_tester} is not an executable")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = time.monotonic() + args.max_seconds
    compileall.compile_dir(REPO / "src", quiet=1)
    print("command:", shlex.join(sys.orig_argv))
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    print(
        f"{args.conversations} conversations x {args.steps} steps; runs: -j"
        f" {', -j '.join(map(str, args.jobs))}",
        flush=True,
    )

    def measure() -> Callable[[], None]:
        with (
            tempfile.TemporaryDirectory(prefix="mbt-suite-") as temp_name,
            throwaway_world(Path(temp_name), args.port, args.bot) as world,
        ):
            temp = Path(temp_name)
            answer = help_text(args.bot)
            write_scripts(temp / "baseline", 1, 1, answer)
            write_scripts(temp / "suite", args.conversations, args.steps, answer)
            testers = {"": THIS_TESTER}
            if args.baseline_tester is not None:
                testers["base"] = args.baseline_tester.resolve()
            fixed = {
                name: tester_run(
                    world, f"fixed{name}", temp / "baseline", 1, deadline, tester=tester
                )
                for name, tester in testers.items()
            }
            runs = []
            for number, jobs in enumerate(args.jobs):
                # Alternating which tester goes first, so neither always meets a
                # Synapse the other has just warmed (or filled).
                order = list(testers.items())
                for name, tester in order if number % 2 == 0 else order[::-1]:
                    label = f"j{jobs}-{number}{name}"
                    shown = f"-j {jobs} {name}".strip()
                    print(f"running {shown}...", flush=True)
                    profile = None
                    if args.profile is not None:
                        args.profile.mkdir(parents=True, exist_ok=True)
                        profile = args.profile.resolve() / f"{label}.prof"
                    run = tester_run(world, label, temp / "suite", jobs, deadline, profile, tester)
                    run.tester, run.fixed = name, fixed[name]
                    print(
                        f"  {shown}: {run.passed}/{run.conversations} passed in"
                        f" {run.usage.wall:.1f} s",
                        flush=True,
                    )
                    runs.append(run)
        return partial(print_table, runs, fixed[""])

    return run_guarded(measure)


def run_guarded(measure: Callable[[], Callable[[], None]]) -> int:
    """Run ``measure`` (it builds and stops its world), then print what it returns.

    The benchmarks' exit status: 0, or 1 with one line on stderr when the
    benchmark itself could not run (never a traceback), or 130 on Ctrl-C.
    The report is printed after the world is stopped, so no server runs on.
    SIGTERM is taken as Ctrl-C is: the world is stopped either way.
    """

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM too: unwind, so Synapse and the bot get stopped

    signal.signal(signal.SIGTERM, stop)
    try:
        report = measure()
    except (BenchError, TesterError) as exc:
        text = exc.one_line() if isinstance(exc, TesterError) else str(exc)
        print(f"error: {text}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print()
    report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
