"""Run scripts over one session and turn the results into reports and an exit code.

Shared by ``run``, the original ``-b/-r`` invocation and ``demo``. Ctrl-C and
SIGTERM cancel the run; the conversation in progress is marked interrupted and
the reports are still written.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from matrix_bot_tester.account import Account
from matrix_bot_tester.conversation import Conversation
from matrix_bot_tester.errors import ExitCode, InfrastructureError, InputError, TesterError
from matrix_bot_tester.report import (
    ConsoleReporter,
    check_report_path,
    json_report,
    junit_xml,
    write_atomically,
)
from matrix_bot_tester.result import ConversationResult, Failure, Outcome, exit_code
from matrix_bot_tester.script import Role, Script
from matrix_bot_tester.state import LoginStore

SIGTERM_EXIT = 143


@dataclass
class RunOptions:
    account: Account
    scripts: list[Script]
    partner: str | None
    timeout: float | None = None
    junit_xml: str | None = None
    json: str | None = None
    verbose: bool = False
    state_file: Path | None = None  # where logins are remembered; None: log in and out each run
    cleanup: str = "passed"  # leave the rooms this run created: always, passed or never
    results: list[ConversationResult] = field(default_factory=list)


def _check_partner(options: RunOptions) -> None:
    """Fail before connecting when a DM script has nobody to talk to (exit 2, nothing sent)."""
    needs_partner = [s for s in options.scripts if s.role is Role.CLIENT]
    if needs_partner and not options.partner:
        raise InputError(
            f"{needs_partner[0].path} opens a DM ('!dm'), but no bot to test is named",
            hint=f"set 'user_to_test' in {options.account.path} or pass --bot @bot:server",
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


async def run_conversations(options: RunOptions, reporter: ConsoleReporter) -> None:
    """One session, the scripts in a row; results appear in ``options.results`` as they go."""
    from matrix_bot_tester.session import NioSession

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
            for script in options.scripts:
                options.results.append(_errored(script, options, exc))
            return
        for script in options.scripts:
            conversation = Conversation(
                script,
                partner=options.partner,
                timeout_override=options.timeout,
                on_step=reporter.step_finished,
            )
            options.results.append(conversation.result)
            reporter.conversation_started(conversation.result)
            await conversation.run(session)
            conversation.result.warnings.extend(session.warnings)
            session.warnings.clear()
            reporter.conversation_finished(conversation.result)
            if _leaves(script, options, conversation.result) and conversation.result.room_id:
                await session.leave(conversation.result.room_id)
            if conversation.result.outcome is Outcome.ERROR:
                break  # the homeserver failed us; the scripts left would only wait it out
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
    return ConversationResult(
        script_path=script.path,
        name=script.name,
        role=script.role.value,
        user_id=options.account.user,
        partner=options.partner,
        outcome=Outcome.ERROR,
        failure=Failure(step_index=None, line=None, reason=exc.one_line()),
    )


def _check_reports(options: RunOptions) -> None:
    paths = [
        (p, what)
        for p, what in ((options.junit_xml, "the JUnit report"), (options.json, "the JSON report"))
        if p
    ]
    for path, what in paths:
        check_report_path(path, what)
    if len(paths) == 2 and Path(paths[0][0]).resolve() == Path(paths[1][0]).resolve():
        raise InputError(
            "--junit-xml and --json name the same file",
            path=str(paths[0][0]),
            hint="give each report its own file",
        )


def execute(options: RunOptions, console: Console, err: Console) -> int:
    _check_partner(options)
    _check_reports(options)
    if options.state_file:
        LoginStore(options.state_file).check()
    reporter = ConsoleReporter(console, err, verbose=options.verbose)
    started = time.monotonic()
    stopped_by: list[int] = []

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            stopped_by.append(signum)
            task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        await run_conversations(options, reporter)

    try:
        asyncio.run(main())
    except (asyncio.CancelledError, KeyboardInterrupt):
        for result in options.results:
            if result.outcome is Outcome.NOT_RUN:
                result.outcome = Outcome.INTERRUPTED
    duration = time.monotonic() - started
    results = options.results
    # Scripts that never started still appear in the reports, as not run.
    done = len(results)
    for script in options.scripts[done:]:
        results.append(
            ConversationResult(script_path=script.path, name=script.name, role=script.role.value)
        )
    code = int(exit_code(results))
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
    return code
