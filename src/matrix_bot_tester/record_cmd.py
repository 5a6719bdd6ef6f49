"""``matrix-bot-tester record``: listen to a conversation with a bot and write it as a script.

The I/O half of the recorder (the pure half is ``recorder.py``): log in as
``run`` does, open a DM with the bot (or join a room), tell the person what
to do, collect the room's events from that moment on (never history), and
write the script when the recording ends: on Ctrl-C (the normal way; exit
0), after ``--idle`` seconds without an event once something was said, or
after ``--max-duration`` seconds, so it is always bounded. SIGTERM writes the
file too, but exits 143 as ``run`` does, so a supervisor sees it was stopped.

Nothing recorded means no file and exit 1; a bot that never joins the DM,
exit 1 too. A homeserver lost mid-recording: what was heard is written, then
exit 3. The output never holds a password or token: it is made only from
room events, user IDs and display names.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from matrix_bot_tester.account import Account
from matrix_bot_tester.conversation import ConversationFailed
from matrix_bot_tester.errors import ExitCode, InfrastructureError, InputError, TesterError
from matrix_bot_tester.interrupts import run_stoppable

# The room check of room_to_connect in scripts, so that --room takes what a script may name.
from matrix_bot_tester.language import _ALIAS, _ROOM_ID, DM
from matrix_bot_tester.matching import Event
from matrix_bot_tester.report import check_report_path, write_atomically
from matrix_bot_tester.runner import SIGTERM_EXIT
from matrix_bot_tester.script import parse_script
from matrix_bot_tester.state import LoginStore

if TYPE_CHECKING:
    from matrix_bot_tester.recorder import Recording
    from matrix_bot_tester.session import NioSession

DEFAULT_MAX_DURATION = 3600.0
DEFAULT_SETUP_TIMEOUT = 30.0
STDOUT = "-"


@dataclass
class RecordOptions:
    account: Account
    output: str  # a path, or "-" for stdout
    room: str | None = None  # room mode: a room ID or alias
    bot: str | None = None  # the bot under test (DM mode: the partner)
    idle: float | None = None  # end after this long without an event, once one arrived
    max_duration: float = DEFAULT_MAX_DURATION
    timeout: float = DEFAULT_SETUP_TIMEOUT  # logging in, opening the DM, joining
    force: bool = False
    state_file: Path | None = None
    events_json: str | None = None  # also write the raw events here
    # Filled in by the recording.
    events: list[Event] = field(default_factory=list)
    room_id: str | None = None
    display_names: dict[str, str] = field(default_factory=dict)
    ended_by: str = ""
    lost: InfrastructureError | None = None


def check(options: RecordOptions) -> None:
    """Everything that can be wrong before connecting: exit 2, nothing sent."""
    account = options.account
    if options.room is not None and not (
        _ROOM_ID.match(options.room) or _ALIAS.match(options.room)
    ):
        raise InputError(
            f"--room {options.room!r} is not a room ID or alias",
            hint="for example '!abcdef:example.org' or '#bots:example.org'",
        )
    if not options.bot:
        where = "in a room" if options.room else "for a DM"
        raise InputError(
            f"no bot to record is named ({where})",
            hint=f"pass --dm @bot:server (or --bot with --room), or set user_to_test in"
            f" {account.path}",
        )
    if not options.bot.startswith("@") or ":" not in options.bot:
        raise InputError(
            f"{options.bot!r} is not a Matrix user ID", hint="write it as '@bot:server.example'"
        )
    if options.bot == account.user:
        raise InputError(
            f"the bot to record is the recording account itself ({account.user})",
            path=account.path,
            hint="name the bot's account, not the tester's",
        )
    inputs = {Path(account.path).resolve(): "the account file"}
    if options.state_file:
        inputs[Path(options.state_file).resolve()] = "the login state file"
    for option, path in (("-o", options.output), ("--events-json", options.events_json)):
        if path is None or path == STDOUT:
            continue
        check_report_path(path, f"the {option} file")
        resolved = Path(path).resolve()
        if resolved in inputs:
            raise InputError(
                f"{option} would overwrite {inputs[resolved]}",
                path=path,
                hint="write the recording to a file of its own, e.g. recorded.convo.yaml",
            )
        if resolved.exists() and not options.force:
            raise InputError(
                f"{option}: the file exists", path=path, hint="pass --force to replace it"
            )
    if options.events_json and options.events_json == options.output:
        raise InputError("-o and --events-json name the same file", path=options.output)
    if options.state_file:
        LoginStore(options.state_file).check()


async def _record(options: RecordOptions, err: Console) -> None:
    """Log in, enter the room, collect events until the recording ends."""
    from matrix_bot_tester.session import NioSession

    account = options.account
    assert options.bot is not None
    logins = LoginStore(options.state_file) if options.state_file else None
    session = NioSession(account, logins=logins)
    try:
        await session.connect(timeout=options.timeout)
        if options.room:
            room_id = await session.join_room(options.room, timeout=options.timeout)
            where = f"in {options.room}" + (f" ({room_id})" if room_id != options.room else "")
            who = f"talk to {options.bot} there from your client"
        else:
            room_id = await session.open_dm(
                options.bot, wait_for_join=True, timeout=options.timeout, show_now=True
            )
            where = f"in a new DM with {options.bot} ({room_id})"
            who = f"talk to the bot there from your client, as {account.user}"
        options.room_id = room_id
        session.hear_own_events(room_id)  # in a DM the person speaks as this account
        ends = "Ctrl-C ends it"
        if options.idle:
            ends += f", or {options.idle:g} s of silence once something was said"
        err.print(
            f"Recording {where}: {who}. {ends} (at most {options.max_duration:g} s).",
            highlight=False,
        )
        for user in (account.user, options.bot):
            await _remember_name(session, options, user)
        try:
            await _listen(session, options, err, room_id)
        except InfrastructureError as exc:
            # The homeserver went away mid-recording: keep what was heard, then say so.
            options.lost = exc
            options.ended_by = "the homeserver was lost"
    finally:
        await session.close()


async def _remember_name(session: NioSession, options: RecordOptions, user: str) -> None:
    """A participant's display name, so that the bot's greeting of it can become a regex."""
    if user in options.display_names:
        return
    try:
        name = await session.display_name(user, timeout=options.timeout)
    except TesterError:
        return  # a display name is a nicety; the recording goes on without it
    if name:
        options.display_names[user] = name


async def _listen(session: NioSession, options: RecordOptions, err: Console, room_id: str) -> None:
    started = time.monotonic()
    last: float | None = None
    while True:
        now = time.monotonic()
        wait = started + options.max_duration - now
        if wait <= 0:
            options.ended_by = f"{options.max_duration:g} s (--max-duration) passed"
            return
        if options.idle and last is not None:
            quiet_left = last + options.idle - now
            if quiet_left <= 0:
                options.ended_by = f"{options.idle:g} s without an event (--idle)"
                return
            wait = min(wait, quiet_left)
        reply = await session.next_event(room_id, timeout=wait)
        if reply is None:
            continue
        event = reply.event
        options.events.append(event)
        last = time.monotonic()
        sender = event.get("sender")
        if isinstance(sender, str) and sender != options.bot:
            await _remember_name(session, options, sender)
        err.print(f"  {_describe(event)}", markup=False, highlight=False)


def _describe(event: Event) -> str:
    """One line per recorded event, as feedback while the person talks."""
    content = event.get("content") if isinstance(event.get("content"), dict) else {}
    assert isinstance(content, dict)
    kind = event.get("type")
    what = content.get("body") if kind == "m.room.message" else kind
    text = str(what).replace("\n", " ")
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{event.get('sender')}: {text}"


def _header(options: RecordOptions, recording: Recording) -> list[str]:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if options.room:
        place = f"in {options.room}"
    else:
        place = f"in a DM between {options.account.user} and {options.bot}"
    return [
        f"Recorded by matrix-bot-tester record on {when}, {place}: {recording.events} events.",
        "The users, the room and event IDs are placeholders ({me}, {bot}, {room_id}, names);",
        "times, dates, IDs and display names in the bot's text are regexes. Read it through,",
        "then replay it: matrix-bot-tester run THIS_FILE --account ACCOUNT",
    ]


def record_command(options: RecordOptions, err: Console) -> int:
    check(options)
    try:
        stopped_by = run_stoppable(lambda: _record(options, err))
    except ConversationFailed as exc:  # the bot never joined the DM
        err.print(f"error: {exc}", markup=False, highlight=False)
        return int(ExitCode.FAILED)
    terminated = signal.SIGTERM in stopped_by
    if stopped_by:
        if options.room_id is None:  # stopped before the recording began
            err.print("interrupted before the recording began: nothing written", highlight=False)
            return SIGTERM_EXIT if terminated else int(ExitCode.INTERRUPTED)
        options.ended_by = "SIGTERM" if terminated else "Ctrl-C"
    code = _write(options, err)
    if options.lost is not None:
        raise options.lost  # exit 3, after writing what was heard
    if code == ExitCode.PASSED and terminated:
        return SIGTERM_EXIT
    return int(code)


def _write(options: RecordOptions, err: Console) -> ExitCode:
    # Imported here: every command line builds the parser, which reads this
    # module's defaults; only a recording needs the recorder.
    from matrix_bot_tester.recorder import Participants, record, render

    assert options.room_id is not None and options.bot is not None
    if options.events_json:
        # With who was who, so that the recorder's pure half can be replayed on it.
        raw = {
            "me": options.account.user,
            "bot": options.bot,
            "room_id": options.room_id,
            "room_to_connect": options.room or DM,
            "display_names": options.display_names,
            "events": options.events,
        }
        write_atomically(options.events_json, json.dumps(raw, indent=2, ensure_ascii=False) + "\n")
    who = Participants(
        me=options.account.user,
        bot=options.bot,
        room_id=options.room_id,
        display_names=options.display_names,
    )
    recording = record(options.events, who, room_to_connect=options.room or DM)
    for note in recording.notes:
        err.print(f"note: {note}", markup=False, highlight=False)
    if not recording.as_data()["messages"]:
        err.print(
            f"nothing was recorded ({options.ended_by}): no file written"
            f" (hint: talk to {options.bot} in {options.room_id} while recording)",
            markup=False,
            highlight=False,
        )
        return ExitCode.FAILED
    text = render(recording, _header(options, recording))
    broken: InputError | None = None
    try:
        parse_script(text, options.output)
    except InputError as exc:  # a recorder bug; keep what was recorded anyway
        broken = exc
    if options.output == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_atomically(options.output, text)
    steps = len(recording.as_data()["messages"])
    where = "stdout" if options.output == STDOUT else options.output
    err.print(
        f"recorded {steps} step{'' if steps == 1 else 's'} to {where} ({options.ended_by})",
        markup=False,
        highlight=False,
    )
    if broken is not None:
        err.print(
            f"error: the recording does not load as a script: {broken.one_line()}"
            " (a bug in the recorder: please report it with --events-json)",
            markup=False,
            highlight=False,
        )
        return ExitCode.FAILED
    return ExitCode.PASSED
