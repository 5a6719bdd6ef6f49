"""Run scripts over one session and turn the results into reports and an exit code.

Shared by ``run``, the original ``-b/-r`` invocation and ``demo``. Ctrl-C and
SIGTERM cancel the run; the conversations in progress are marked interrupted
and the reports are still written.

With ``jobs`` > 1, up to that many conversations run at once over the one
session (its sync loop feeds a queue per room, and each client-role
conversation has its own fresh DM). Scripts in the bot role ("the first room
where someone speaks" would be ambiguous) and scripts marked ``alone: true``
run afterwards, one at a time. Results keep the scripts' order whatever the
order of finishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from rich.console import Console

from matrix_bot_tester.account import Account
from matrix_bot_tester.conversation import Conversation, Session
from matrix_bot_tester.discovery import last_run_text
from matrix_bot_tester.errors import ExitCode, InfrastructureError, InputError, TesterError
from matrix_bot_tester.interrupts import run_stoppable
from matrix_bot_tester.report import (
    ConsoleReporter,
    check_report_path,
    json_report,
    junit_xml,
    write_atomically,
)
from matrix_bot_tester.result import ConversationResult, Failure, Outcome, StepResult, exit_code
from matrix_bot_tester.script import Role, Script
from matrix_bot_tester.state import LoginStore

SIGTERM_EXIT = 143
# Looking up the room an alias names, to let scripts naming one room take turns.
ALIAS_LOOKUP_TIMEOUT = 15.0
DEFAULT_JOBS = 4  # the command line's default for -j
DEFAULT_READY_TIMEOUT = 60.0
# One readiness attempt waits at most this long for each step (unless --timeout says).
READY_ATTEMPT_TIMEOUT = 10.0
READY_PAUSE = 0.5  # between readiness attempts


@dataclass
class RunOptions:
    account: Account
    scripts: list[Script]
    partner: str | None
    timeout: float | None = None
    junit_xml: str | None = None
    html: str | None = None
    json: str | None = None
    verbose: bool = False
    state_file: Path | None = None  # where logins are remembered; None: log in and out each run
    cleanup: str = "passed"  # leave the rooms this run created: always, passed or never
    jobs: int = 1  # conversations at once (the command line's default is DEFAULT_JOBS)
    fail_fast: bool = False  # start no new conversation after a failure or error
    ready_check: Script | None = None  # run until it passes before the suite
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    last_run_file: Path | None = None  # where to record outcomes for --rerun-failed
    go_on_after_wrong_reply: bool = False  # run --update: rewrite every changed reply at once
    # Filled in by the run: a result per script, in the scripts' order.
    results: list[ConversationResult] = field(default_factory=list)
    not_ready: str | None = None  # why the readiness check never passed
    _started: set[int] = field(default_factory=set)


def _check_partner(options: RunOptions) -> None:
    """Fail before connecting when a DM script has nobody to talk to (exit 2, nothing sent)."""
    scripts = [*options.scripts, *([options.ready_check] if options.ready_check else [])]
    needs_partner = [s for s in scripts if s.role is Role.CLIENT]
    if needs_partner and not options.partner:
        raise InputError(
            f"{needs_partner[0].path} opens a DM ('!dm'), but no bot to test is named",
            hint=f"set 'user_to_test' in {options.account.path} or pass --bot @bot:server",
        )
    if options.ready_check is not None and options.ready_check.role is Role.BOT:
        raise InputError(
            "the readiness check cannot play the bot ('!wait_for_message')",
            path=options.ready_check.path,
            hint="use a script that sends to the bot, e.g. '!ping' expecting 'pong'",
        )
    if options.partner == options.account.user:
        raise InputError(
            f"the bot to test is the tester itself ({options.partner})",
            path=options.account.path,
            hint="user_to_test (or --bot) must be another account than 'user'",
        )
    if options.partner and not options.partner.startswith("@"):
        raise InputError(
            f"--bot {options.partner!r} is not a Matrix user ID",
            hint="write it as '@bot:server.example'",
        )


def _not_run(script: Script, options: RunOptions) -> ConversationResult:
    """A script's result before it runs (and if it never does): its steps all "not run"."""
    return Conversation(script, partner=options.partner, timeout_override=options.timeout).result


class _Suite:
    """The conversations of one run over one session: who runs when, and the console lines."""

    def __init__(self, options: RunOptions, reporter: ConsoleReporter, session: Session) -> None:
        self.options = options
        self.reporter = reporter
        self.session = session
        self.stop = False  # start nothing new (an error, or a failure with fail_fast)
        self.running: dict[int, Conversation] = {}
        # One conversation at a time is "live": its -v lines appear as they come. The
        # others running beside it hold theirs until they go live or end, so that the
        # lines of two conversations never interleave.
        self.live: int | None = None
        self.held: dict[int, list[StepResult]] = {}
        self.deferred: list[Callable[[], None]] = []  # finished blocks waiting for the live one

    async def run(self) -> None:
        options = self.options
        indexes = range(len(options.scripts))
        if options.jobs <= 1:
            for index in indexes:
                if self.stop:
                    break
                await self.converse(index)
            return
        together = [i for i in indexes if not self._alone(options.scripts[i])]
        alone = [i for i in indexes if self._alone(options.scripts[i])]
        limit = asyncio.Semaphore(options.jobs)
        # Scripts that name the same room take turns: in one room they would take
        # each other's replies, and the first to pass would leave it under the others.
        # One room may be named by its ID in one script and an alias in another.
        rooms: dict[str, asyncio.Lock] = {}
        room_ids = await self._room_ids([options.scripts[i] for i in together])

        def turn(script: Script) -> contextlib.AbstractAsyncContextManager[object]:
            if script.role is Role.ROOM and script.room:
                return rooms.setdefault(room_ids.get(script.room, script.room), asyncio.Lock())
            return contextlib.nullcontext()

        async def one(index: int) -> None:
            async with turn(options.scripts[index]), limit:
                if not self.stop:
                    await self.converse(index)

        try:
            async with asyncio.TaskGroup() as group:
                for index in together:
                    group.create_task(one(index), name=f"conversation {index}")
        except* TesterError as errors:  # bad input found mid-run: one line, as before
            raise errors.exceptions[0] from None
        for index in alone:
            if self.stop:
                break
            await self.converse(index)

    async def _room_ids(self, scripts: list[Script]) -> dict[str, str]:
        """The room ID of each alias the room scripts name, where the server says it.

        An alias the server does not know is left as it is: joining it will say why.
        """
        resolve = getattr(self.session, "room_id_of", None)
        if resolve is None:
            return {}
        aliases = {
            s.room for s in scripts if s.role is Role.ROOM and s.room and s.room.startswith("#")
        }
        found: dict[str, str] = {}
        for alias in sorted(aliases):
            with contextlib.suppress(TesterError):
                found[alias] = await resolve(alias, timeout=ALIAS_LOOKUP_TIMEOUT)
        return found

    @staticmethod
    def _alone(script: Script) -> bool:
        return script.alone or script.role is Role.BOT

    async def converse(self, index: int) -> None:
        """Run one script, its console lines live or held (see ``live``)."""
        options, reporter, session = self.options, self.reporter, self.session
        script = options.scripts[index]
        conversation = Conversation(
            script,
            partner=options.partner,
            timeout_override=options.timeout,
            on_step=partial(self._step_finished, index),
            go_on_after_wrong_reply=options.go_on_after_wrong_reply,
        )
        result = conversation.result
        options.results[index] = result
        options._started.add(index)
        self.running[index] = conversation
        self.held[index] = []
        if self.live is None:
            self._go_live(index)
        try:
            await conversation.run(session)
        except BaseException:  # interrupted, or bad input found mid-run: show what we have
            del self.running[index]
            self._show_finished(index, None)
            self._show_deferred()
            raise
        del self.running[index]
        result.warnings.extend(self._warnings_for(result.room_id))
        if self.live is not None and self.live != index and reporter.verbose:
            # Another conversation is showing its steps live: this one's block waits
            # for it to end, so that its late lines never read as this one's.
            self.deferred.append(partial(self._show_finished, index, result))
        else:
            self._show_finished(index, result)
        if self.live is None:
            self._show_deferred()
            if self.running:
                self._go_live(min(self.running))  # the oldest of those still running
        room_id = result.room_id
        if (
            _leaves(script, options, result)
            and room_id
            and not await _kept_spare(session, room_id, options.jobs)
        ):
            await _leave(session, result)
        if result.outcome is Outcome.ERROR:
            self.stop = True  # the homeserver failed us; the scripts left would only wait it out
        elif result.outcome is Outcome.FAILED and options.fail_fast:
            self.stop = True

    def _step_finished(self, index: int, step: StepResult) -> None:
        if self.live == index:
            self.reporter.step_finished(step)
        else:
            self.held[index].append(step)

    def _show_finished(self, index: int, result: ConversationResult | None) -> None:
        """The rest of a conversation's lines; with ``result``, its outcome line too."""
        if self.live == index:
            self.live = None
        else:
            self._show_held(index)
        self.held.pop(index, None)
        if result is not None:
            self.reporter.conversation_finished(result)

    def _show_deferred(self) -> None:
        shows, self.deferred[:] = list(self.deferred), []
        for show in shows:
            show()

    def _go_live(self, index: int) -> None:
        self.live = index
        self._show_held(index)

    def _show_held(self, index: int) -> None:
        self.reporter.conversation_started(self.options.results[index])
        for step in self.held[index]:
            self.reporter.step_finished(step)
        self.held[index] = []

    def _warnings_for(self, room_id: str | None) -> list[str]:
        """The session's warnings that belong to this conversation (best effort when several run):
        those naming its room, and those naming no room of another running conversation."""
        warnings: list[str] = getattr(self.session, "warnings", [])
        others = [c.result.room_id for c in self.running.values() if c.result.room_id]
        mine = [
            w
            for w in warnings
            if (room_id and room_id in w) or not any(other in w for other in others)
        ]
        warnings[:] = [w for w in warnings if w not in mine]
        return mine


async def _leave(session: Session, result: ConversationResult) -> None:
    leave = getattr(session, "leave", None)
    if leave is None or result.room_id is None:
        return
    try:
        await leave(result.room_id)
    except InfrastructureError as exc:
        result.warnings.append(f"could not leave {result.room_id}: {exc.one_line()}")


async def _kept_spare(session: Session, room_id: str, jobs: int) -> bool:
    """Keep a passed conversation's DM for reuse, should the server limit room creation."""
    keep = getattr(session, "keep_spare", None)
    return bool(keep is not None and await keep(room_id, limit=max(1, jobs)))


async def _leave_spares(session: Session, reporter: ConsoleReporter) -> None:
    """Leave the DMs kept for reuse: the run is over (a failure to leave is only a warning)."""
    take = getattr(session, "take_spares", None)
    leave = getattr(session, "leave", None)
    if take is None or leave is None:
        return
    rooms = take()
    if rooms and (reporter.verbose or getattr(session, "rate_limited_seconds", 0)):
        # Under rate limits this takes a while (5 s a room at Synapse's defaults): say so.
        count = f"{len(rooms)} room{'' if len(rooms) == 1 else 's'}"
        reporter.console.print(f"leaving the {count} kept for reuse", highlight=False)
    for done, room_id in enumerate(rooms):
        try:
            await leave(room_id)
        except InfrastructureError as exc:
            left_over = len(rooms) - done
            rest = f" (nor the {left_over - 1} other kept rooms)" if left_over > 1 else ""
            reporter.warning(f"could not leave {room_id}{rest}: {exc.one_line()}")
            return  # the next ones would meet the same server, each waiting out its deadline


async def wait_until_ready(
    session: Session, options: RunOptions, reporter: ConsoleReporter
) -> str | None:
    """Run the readiness script until it passes; None, or the last failure's reason."""
    script = options.ready_check
    assert script is not None
    started = time.monotonic()
    deadline = started + options.ready_timeout
    reason = f"the readiness check did not pass within {options.ready_timeout:g} s"
    attempts = 0
    while (remaining := deadline - time.monotonic()) > 0:
        attempts += 1
        # Whole tenths: the step's timeout appears in its failure ("no reply within 4.9 s").
        per_step = max(0.1, round(min(remaining, options.timeout or READY_ATTEMPT_TIMEOUT), 1))
        conversation = Conversation(script, partner=options.partner, timeout_override=per_step)
        try:
            async with asyncio.timeout(remaining + 1.0):  # a step's own timeout may be longer
                result = await conversation.run(session)
        except TimeoutError:
            result = conversation.result
            result.outcome = Outcome.FAILED
            result.failure = Failure(
                step_index=None,
                line=None,
                reason=f"no answer within the ready timeout ({options.ready_timeout:g} s)",
            )
        if result.room_id:  # readiness rooms are noise, whatever the outcome
            await _leave(session, result)
        getattr(session, "warnings", []).clear()
        if result.outcome is Outcome.PASSED:
            reporter.console.print(
                f"ready: {script.name} passed after {attempts}"
                f" attempt{'' if attempts == 1 else 's'} ({time.monotonic() - started:.2f} s)",
                highlight=False,
            )
            return None
        if result.failure is not None:
            reason = result.failure.reason
        if result.outcome is Outcome.ERROR:
            # The homeserver's answer (no such bot account, server gone) won't change
            # by asking again; a bot that is still starting merely fails, and is retried.
            return reason
        await asyncio.sleep(min(READY_PAUSE, max(0.0, deadline - time.monotonic())))
    return reason


async def run_conversations(options: RunOptions, reporter: ConsoleReporter) -> None:
    """One session for all scripts; ``options.results`` holds a result per script as they go."""
    from matrix_bot_tester.session import NioSession

    if len(options.results) != len(options.scripts):
        options.results[:] = [_not_run(script, options) for script in options.scripts]
    logins = LoginStore(options.state_file) if options.state_file else None
    session = NioSession(options.account, logins=logins)
    try:
        try:
            if options.timeout:  # the user's deadline covers logging in too
                await session.connect(timeout=options.timeout)
            else:
                await session.connect()
        except InfrastructureError as exc:
            reporter.error(exc.one_line())
            for index, script in enumerate(options.scripts):
                options.results[index] = _errored(script, options, exc)
            return
        if options.ready_check is not None:
            options.not_ready = await wait_until_ready(session, options, reporter)
            if options.not_ready is not None:
                return
        await _Suite(options, reporter, session).run()
        await _leave_spares(session, reporter)
    finally:
        await session.close()


def _leaves(script: Script, options: RunOptions, result: ConversationResult) -> bool:
    """Leave a room after its conversation? A failed one is kept for a person to read."""
    if script.cleanup is not None:
        return script.cleanup
    if options.cleanup == "always":
        return True
    return options.cleanup == "passed" and result.outcome is Outcome.PASSED


def _errored(script: Script, options: RunOptions, exc: TesterError) -> ConversationResult:
    result = _not_run(script, options)
    result.user_id = options.account.user
    result.outcome = Outcome.ERROR
    result.failure = Failure(step_index=None, line=None, reason=exc.one_line())
    return result


def _input_files(options: RunOptions) -> dict[Path, str]:
    """The files a report must never replace: scripts, fragments, account, login state."""
    files: dict[Path, str] = {}
    # Each path resolved once: a suite's steps nearly all name their own script.
    scripts = {str(script.path) for script in options.scripts}
    fragments = {str(step.path) for script in options.scripts for step in script.steps}
    for path in scripts:
        files[Path(path).resolve()] = "a script"
    for path in fragments - scripts:
        files.setdefault(Path(path).resolve(), "an included fragment")
    files[Path(options.account.path).resolve()] = "the account file"
    if options.state_file:
        files[Path(options.state_file).resolve()] = "the login state file"
    return files


def _check_reports(options: RunOptions) -> None:
    """Every report path must be writable, and no two reports may share a file."""
    reports = {
        "--junit-xml": options.junit_xml,
        "--json": options.json,
        "--html": options.html,
    }
    seen: dict[Path, str] = {}
    inputs = _input_files(options) if any(reports.values()) else {}
    for option, path in reports.items():
        if not path:
            continue
        check_report_path(path, f"the {option} report")
        resolved = Path(path).resolve()
        if resolved in inputs:
            raise InputError(
                f"{option} would overwrite {inputs[resolved]}",
                path=str(path),
                hint="write reports to their own files, e.g. reports/result.json",
            )
        if resolved in seen:
            raise InputError(
                f"{seen[resolved]} and {option} name the same file",
                path=str(path),
                hint="give each report its own file",
            )
        seen[resolved] = option


def execute(options: RunOptions, console: Console, err: Console) -> int:
    _check_partner(options)
    _check_reports(options)
    if options.state_file:
        LoginStore(options.state_file).check()
    reporter = ConsoleReporter(console, err, verbose=options.verbose)
    started = time.monotonic()
    options.results[:] = [_not_run(script, options) for script in options.scripts]
    options._started.clear()
    stopped_by = run_stoppable(lambda: run_conversations(options, reporter))
    if stopped_by:
        for index in options._started:
            if options.results[index].outcome is Outcome.NOT_RUN:
                options.results[index].outcome = Outcome.INTERRUPTED
    duration = time.monotonic() - started
    results = options.results  # scripts that never started appear as not run
    code = int(exit_code(results))
    if options.not_ready is not None:
        code = int(ExitCode.INFRASTRUCTURE)
        err.print(f"bot not ready: {options.not_ready}", markup=False, highlight=False)
    if stopped_by:
        code = SIGTERM_EXIT if stopped_by[0] == signal.SIGTERM else int(ExitCode.INTERRUPTED)
        err.print("interrupted: partial results follow", highlight=False)
        for result in results:
            if result.outcome is Outcome.INTERRUPTED:
                reporter.conversation_finished(result)
    reporter.summary(results, duration)
    if options.junit_xml:
        write_atomically(options.junit_xml, junit_xml(results, duration))
    if options.json:
        write_atomically(options.json, json_report(results, duration, code))
    if options.html:
        from matrix_bot_tester import html_report  # only asked for now and then

        write_atomically(options.html, html_report.render(results, duration, code))
    if options.last_run_file is not None:
        record = [(r.script_path, r.name, r.outcome.value) for r in results]
        try:
            earlier = Path(options.last_run_file).read_text(encoding="utf-8")
        except (OSError, ValueError):
            earlier = None
        try:
            write_atomically(options.last_run_file, last_run_text(record, earlier))
        except InputError as exc:
            err.print(f"warning: {exc.one_line()}", markup=False, highlight=False)
    return code
