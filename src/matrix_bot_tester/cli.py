"""The command line: parse arguments, wire the rooms together, map outcomes to exit codes.

Exit codes (also in the README): 0 passed, 1 a conversation failed, 2 bad
input (nothing was sent), 3 infrastructure, 130 interrupted (143 on SIGTERM).
A user never sees a traceback: every error becomes one line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from matrix_bot_tester import __version__
from matrix_bot_tester.account import Account, load_account
from matrix_bot_tester.discovery import LAST_RUN_FILE, discover, failed_last_time, select
from matrix_bot_tester.errors import ExitCode, InputError, TesterError
from matrix_bot_tester.runner import DEFAULT_JOBS, DEFAULT_READY_TIMEOUT, RunOptions, execute
from matrix_bot_tester.script import Script, load_script
from matrix_bot_tester.state import default_path as default_state_path


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 86400 seconds")
    return value


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError("must be from 1 to 256")
    return value


def _add_suite_options(parser: argparse.ArgumentParser) -> None:
    """Options of ``run`` for suites: concurrency, selection, flow, readiness."""
    parser.add_argument(
        "-j",
        "--jobs",
        type=_jobs,
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"conversations at once, over one login (default {DEFAULT_JOBS}); bot-role scripts"
        " and scripts with 'alone: true' run afterwards, one at a time",
    )
    parser.add_argument(
        "-k",
        metavar="EXPR",
        dest="keyword",
        help="run the scripts whose name or path contains EXPR (case-insensitive; words may be"
        " joined with 'and', 'or', 'not' and parentheses)",
    )
    parser.add_argument(
        "-m",
        metavar="EXPR",
        dest="tags",
        help="run the scripts tagged so ('tags: [smoke]' in the script; e.g. -m 'smoke and not"
        " slow')",
    )
    parser.add_argument(
        "-x",
        "--fail-fast",
        action="store_true",
        help="start no new conversation after the first failure or error (the rest: not run)",
    )
    parser.add_argument(
        "--rerun-failed",
        action="store_true",
        help="run only the scripts that did not pass in the last run (failed, errored,"
        f" interrupted or not run; recorded in {LAST_RUN_FILE} in the current folder)",
    )
    parser.add_argument(
        "--ready-check",
        metavar="SCRIPT",
        help="before the suite, run SCRIPT until it passes (e.g. !ping -> pong); if it never"
        " does within --ready-timeout, exit 3 'bot not ready' and run nothing",
    )
    parser.add_argument(
        "--ready-timeout",
        type=_positive_seconds,
        default=DEFAULT_READY_TIMEOUT,
        metavar="S",
        help=f"how long the readiness check may take (default {DEFAULT_READY_TIMEOUT:g})",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        metavar="S",
        help="seconds to wait for each reply (default 30; a step's own timeout wins)",
    )
    parser.add_argument("--junit-xml", metavar="PATH", help="write a JUnit XML report")
    parser.add_argument("--json", metavar="PATH", help="write a JSON report")
    parser.add_argument(
        "--html", metavar="PATH", help="write a self-contained HTML report (chat transcripts)"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show each step live, with its latency"
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        metavar="PATH",
        help="where logins are remembered between runs (default: $MATRIX_BOT_TESTER_STATE,"
        " else ~/.local/state/matrix-bot-tester/logins.json)",
    )
    parser.add_argument(
        "--no-state",
        action="store_true",
        help="remember nothing: log in at the start and out at the end of each run",
    )
    parser.add_argument(
        "--cleanup",
        choices=("always", "passed", "never"),
        default="passed",
        help="leave and forget the rooms this run created: after every conversation, after"
        " those that passed (default; failed ones stay for you to read), or never",
    )


def _add_update_options(parser: argparse.ArgumentParser) -> None:
    """``run --update``: the golden-file workflow (see update.py)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--update",
        action="store_true",
        help="rewrite the expectations of failing steps with what the bot said: print each"
        " file's diff, then write it (patterns and values saved during the run are left alone)",
    )
    group.add_argument(
        "--update-preview",
        action="store_true",
        help="print the diff --update would write, and write nothing",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matrix-bot-tester",
        description="Replay YAML conversations against a Matrix bot over a real homeserver.",
        epilog="Exit codes: 0 passed, 1 a conversation failed, 2 bad input, 3 infrastructure,"
        " 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # The original tool's invocation: matrix-bot-tester -b ACCOUNT -r SCRIPT
    parser.add_argument(
        "-b",
        "--bot-config",
        metavar="ACCOUNT",
        help="account file (the original tool's invocation)",
    )
    parser.add_argument(
        "-r",
        "--replay",
        metavar="SCRIPT",
        action="append",
        help="script file (the original tool's invocation; may be given more than once)",
    )
    _add_run_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run scripts against a bot")
    run.add_argument(
        "scripts",
        nargs="+",
        metavar="PATH",
        help="script files, folders (searched for *.convo.yaml) or globs",
    )
    run.add_argument("-a", "--account", required=True, metavar="ACCOUNT", help="account file")
    run.add_argument(
        "--bot",
        metavar="@BOT:SERVER",
        help="the bot to test (overrides user_to_test in the account file)",
    )
    _add_run_options(run)
    _add_suite_options(run)
    _add_update_options(run)

    validate = commands.add_parser("validate", help="check script files without connecting")
    validate.add_argument(
        "scripts",
        nargs="+",
        metavar="PATH",
        help="script files, folders (searched for *.convo.yaml) or globs, as for run",
    )
    validate.add_argument("-a", "--account", metavar="ACCOUNT", help="also check an account file")

    homeserver = commands.add_parser("homeserver", help="a throwaway local Synapse")
    hs = homeserver.add_subparsers(dest="hs_command", metavar="ACTION", required=True)
    start = hs.add_parser("start", help="start Synapse in DIR and wait until it is healthy")
    start.add_argument("--dir", required=True, type=Path)
    start.add_argument("--port", type=int, default=8008)
    start.add_argument("--server-name", default="localhost")
    start.add_argument(
        "--default-rate-limits",
        action="store_true",
        help="keep Synapse's default rate limits (normally raised for tests)",
    )
    stop = hs.add_parser("stop", help="stop the Synapse in DIR")
    stop.add_argument("--dir", required=True, type=Path)
    status = hs.add_parser("status", help="say whether a Synapse runs in DIR")
    status.add_argument("--dir", required=True, type=Path)
    register = hs.add_parser("register", help="create a user via the shared-secret admin API")
    register.add_argument("--dir", required=True, type=Path)
    register.add_argument("user", help="local part (alice) or full ID (@alice:server)")
    register.add_argument(
        "password",
        nargs="?",
        help="the password (visible to others in 'ps': prefer --password-env or --password-stdin)",
    )
    register.add_argument(
        "--password-env",
        metavar="NAME",
        help="read the password from the environment variable NAME",
    )
    register.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    register.add_argument("--admin", action="store_true")

    commands.add_parser("schema", help="print the JSON Schema of script files")
    _add_record_parser(commands)

    demo = commands.add_parser(
        "demo", help="start a throwaway Synapse and the example bot, run the example scripts"
    )
    demo.add_argument("-v", "--verbose", action="store_true")
    return parser


def _add_record_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from matrix_bot_tester.record_cmd import DEFAULT_MAX_DURATION, DEFAULT_SETUP_TIMEOUT

    record = commands.add_parser(
        "record",
        help="talk to a bot from your client while the tester listens; write what it saw as"
        " a script",
    )
    record.add_argument("-a", "--account", required=True, metavar="ACCOUNT", help="account file")
    where = record.add_mutually_exclusive_group()
    where.add_argument(
        "--dm",
        nargs="?",
        const="",
        metavar="@BOT:SERVER",
        help="open a new DM with the bot (default user_to_test) and record it (the default)",
    )
    where.add_argument("--room", metavar="ROOM", help="join this room (ID or alias) and record it")
    record.add_argument(
        "--bot", metavar="@BOT:SERVER", help="who the bot is (default user_to_test)"
    )
    record.add_argument(
        "-o", "--output", required=True, metavar="PATH", help="the script to write ('-': stdout)"
    )
    record.add_argument("--force", action="store_true", help="replace an existing output file")
    record.add_argument(
        "--idle",
        type=_positive_seconds,
        metavar="S",
        help="end after S seconds without an event, once something was said",
    )
    record.add_argument(
        "--max-duration",
        type=_positive_seconds,
        default=DEFAULT_MAX_DURATION,
        metavar="S",
        help=f"end after S seconds in all (default {DEFAULT_MAX_DURATION:g})",
    )
    record.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_SETUP_TIMEOUT,
        metavar="S",
        help="seconds for logging in, opening the DM (the bot must join) or joining the room"
        f" (default {DEFAULT_SETUP_TIMEOUT:g})",
    )
    record.add_argument(
        "--events-json", metavar="PATH", help="also write the raw events (for bug reports)"
    )
    record.add_argument("--state-file", type=Path, metavar="PATH", help="as for run")
    record.add_argument("--no-state", action="store_true", help="as for run")


def _record(args: argparse.Namespace, err: Console) -> int:
    from matrix_bot_tester.record_cmd import RecordOptions, record_command

    if args.dm and args.bot and args.dm != args.bot:
        raise InputError(
            f"--dm {args.dm} and --bot {args.bot} name two bots", hint="give one of them"
        )
    account = load_account(args.account)
    bot = args.dm or args.bot or account.user_to_test
    options = RecordOptions(
        account=account,
        output=args.output,
        room=args.room,
        bot=bot,
        idle=args.idle,
        max_duration=args.max_duration,
        timeout=args.timeout,
        force=args.force,
        state_file=None if args.no_state else (args.state_file or default_state_path()),
        events_json=args.events_json,
    )
    return record_command(options, err)


def _partner(account: Account, override: str | None) -> str | None:
    return override or account.user_to_test


def _validate(args: argparse.Namespace, console: Console, err: Console) -> int:
    """Check every file ``run`` would take, not just up to the first broken one; one line each.

    The last line counts what was checked, so that a folder or glob that took
    fewer files than expected shows.
    """
    broken = 0

    def bad_argument(exc: InputError) -> None:
        nonlocal broken
        broken += 1
        err.print(f"error: {exc.one_line()}", markup=False, highlight=False)

    paths = discover(args.scripts, on_error=bad_argument)
    for path in paths:
        try:
            script = load_script(path)
        except InputError as exc:
            broken += 1
            err.print(f"error: {exc.one_line()}", markup=False, highlight=False)
            continue
        steps = len(script.steps)
        console.print(
            f"ok {path} ({script.role.value} role, {steps} step{'' if steps == 1 else 's'})",
            highlight=False,
        )
    if args.account:
        try:
            account = load_account(args.account)
        except InputError as exc:
            broken += 1
            err.print(f"error: {exc.one_line()}", markup=False, highlight=False)
        else:
            console.print(
                f"ok {args.account} ({account.user} at {account.homeserver_url})", highlight=False
            )
    checked = f"{len(paths)} script file{'' if len(paths) == 1 else 's'}"
    if args.account:
        checked += " and 1 account file"
    verdict = f"{broken} error{'' if broken == 1 else 's'}" if broken else "all ok"
    console.print(f"checked {checked}: {verdict}", highlight=False)
    return int(ExitCode.BAD_INPUT if broken else ExitCode.PASSED)


def _homeserver(args: argparse.Namespace, console: Console) -> int:
    from matrix_bot_tester import homeserver

    if args.hs_command == "start":
        server = homeserver.start(
            args.dir,
            port=args.port,
            server_name=args.server_name,
            default_rate_limits=args.default_rate_limits,
        )
        if (server.port, server.server_name) != (args.port, args.server_name):
            # Starting is idempotent: the running server is kept, as it is. Said on
            # stderr: scripts take the URL from stdout.
            print(
                f"note: a homeserver already runs in {args.dir}, on port {server.port} with"
                f" server name {server.server_name}; to use --port {args.port} and"
                f" --server-name {args.server_name}, stop it first",
                file=sys.stderr,
            )
        console.print(server.url, highlight=False)
    elif args.hs_command == "stop":
        was_running = homeserver.stop(args.dir)
        console.print("stopped" if was_running else "not running", highlight=False)
    elif args.hs_command == "status":
        running = homeserver.status(args.dir)
        if running is None:
            console.print("not running", highlight=False)
            return int(ExitCode.INFRASTRUCTURE)
        console.print(
            f"running at {running.url} (server name {running.server_name})", highlight=False
        )
    elif args.hs_command == "register":
        password = _register_password(args)
        user = homeserver.register(args.dir, args.user, password, admin=args.admin)
        if user is not None:
            console.print(user.user_id, highlight=False)
            return int(ExitCode.PASSED)
        works = homeserver.password_works(args.dir, args.user, password)
        if works is False:
            raise InputError(
                f"{args.user} already exists, with another password",
                hint="choose another user name, or give the password it was registered with",
            )
        console.print(
            f"{args.user} already exists, with this password"
            if works
            else f"{args.user} already exists; its password was not changed (logging in with"
            " another password than its first will fail)",
            highlight=False,
        )
    return int(ExitCode.PASSED)


def _register_password(args: argparse.Namespace) -> str:
    """The password for ``homeserver register``, from exactly one of its three sources.

    The argument form shows the password to anyone who can list processes, so
    the environment and stdin forms exist for CI and shared machines.
    """
    given = [
        name
        for name, value in (
            ("PASSWORD", args.password),
            ("--password-env", args.password_env),
            ("--password-stdin", args.password_stdin),
        )
        if value
    ]
    if len(given) != 1:
        raise InputError(
            "homeserver register needs the password one way"
            + (f", not {' and '.join(given)}" if given else ""),
            hint="--password-env NAME (safest in CI), --password-stdin, or as the last argument",
        )
    if args.password_env:
        password = os.environ.get(args.password_env)
        if password is None:
            raise InputError(
                f"--password-env {args.password_env}: the variable is not set",
                hint=f"export {args.password_env}=... first",
            )
    elif args.password_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        password = args.password
    if not password:
        raise InputError(f"the password from {given[0]} is empty", hint="give a password")
    return str(password)


def _dispatch(
    args: argparse.Namespace, parser: argparse.ArgumentParser, console: Console, err: Console
) -> int:
    if args.command == "validate":
        return _validate(args, console, err)
    if args.command == "homeserver":
        return _homeserver(args, console)
    if args.command == "schema":
        from matrix_bot_tester.schema import script_schema_text

        sys.stdout.write(script_schema_text())
        return int(ExitCode.PASSED)
    if args.command == "record":
        return _record(args, err)
    if args.command == "demo":
        from matrix_bot_tester.demo import run_demo

        return run_demo(console, verbose=args.verbose)
    if args.command and (args.bot_config or args.replay):
        raise InputError(
            f"-b/-r and the '{args.command}' command do not go together",
            hint="use either 'matrix-bot-tester -b ACCOUNT -r SCRIPT' or a command",
        )
    if args.command == "run":
        account_path, script_paths, partner = args.account, discover(args.scripts), args.bot
    elif args.bot_config or args.replay:
        if not (args.bot_config and args.replay):
            raise InputError(
                "the original invocation needs both --bot-config and --replay",
                hint="matrix-bot-tester -b ACCOUNT -r SCRIPT",
            )
        account_path, script_paths, partner = args.bot_config, args.replay, None
    else:
        parser.print_help(sys.stderr)
        return int(ExitCode.BAD_INPUT)
    # Load everything before connecting: bad input means nothing is sent.
    scripts = [load_script(path) for path in script_paths]
    account = load_account(account_path)
    suite = args.command == "run"
    ready_check = load_script(args.ready_check) if suite and args.ready_check else None
    if suite:
        selected = _select(args, scripts, console)
        if selected is None:
            return int(ExitCode.PASSED)
        scripts = selected
    options = RunOptions(
        account=account,
        scripts=scripts,
        partner=_partner(account, partner),
        timeout=args.timeout,
        junit_xml=args.junit_xml,
        json=args.json,
        html=args.html,
        verbose=args.verbose,
        state_file=None if args.no_state else (args.state_file or default_state_path()),
        cleanup=args.cleanup,
        jobs=args.jobs if suite else 1,
        fail_fast=suite and args.fail_fast,
        ready_check=ready_check,
        ready_timeout=args.ready_timeout if suite else DEFAULT_READY_TIMEOUT,
        last_run_file=LAST_RUN_FILE if suite else None,
    )
    if not (suite and (args.update or args.update_preview)):
        return execute(options, console, err)
    from matrix_bot_tester import update

    texts = update.snapshot(scripts)  # what the run loaded, to rewrite from
    options.go_on_after_wrong_reply = True
    code = execute(options, console, err)
    return update.apply(scripts, options.results, texts, console, err, code, write=args.update)


def _select(
    args: argparse.Namespace, scripts: list[Script], console: Console
) -> list[Script] | None:
    """The scripts -k, -m and --rerun-failed keep; None when there is nothing to re-run."""
    only: set[str] | None = None
    if args.rerun_failed:
        try:
            text = LAST_RUN_FILE.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(
                "--rerun-failed: no last run is recorded in this folder",
                path=str(LAST_RUN_FILE),
                hint="run the suite once without --rerun-failed (from this folder)",
            ) from None
        except OSError as exc:
            raise InputError(
                f"--rerun-failed: cannot read the last run ({exc.strerror})",
                path=str(LAST_RUN_FILE),
            ) from None
        only = failed_last_time(text, str(LAST_RUN_FILE))
        if not only:
            console.print("nothing failed in the last run: nothing to re-run", highlight=False)
            return None
    if args.keyword is None and args.tags is None and only is None:
        return scripts
    kept = select(
        [(s.path, s.name, s.tags) for s in scripts],
        keyword=args.keyword,
        tags=args.tags,
        only_paths=only,
    )
    if not kept:
        if only is not None and args.keyword is None and args.tags is None:
            console.print(
                "none of the scripts that failed in the last run is among these: nothing to re-run",
                highlight=False,
            )
            return None
        what = " and ".join(
            f"{flag} {value!r}"
            for flag, value in (("-k", args.keyword), ("-m", args.tags))
            if value is not None
        )
        raise InputError(
            f"no script is selected by {what or '--rerun-failed'} (of {len(scripts)} found)",
            hint="check the expression; -k matches names and paths, -m the scripts' tags",
        )
    chosen = [scripts[i] for i in kept]
    console.print(
        f"selected {len(chosen)} of {len(scripts)} script{'' if len(scripts) == 1 else 's'}",
        highlight=False,
    )
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    # nio logs warnings (429s, retries) that would break our one-line promise.
    logging.getLogger("nio").setLevel(logging.CRITICAL)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    console = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args, parser, console, err)
    except TesterError as exc:
        err.print(f"error: {exc.one_line()}", markup=False, highlight=False)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        return int(ExitCode.INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
