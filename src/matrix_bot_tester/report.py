"""Render results: the console (rich), JUnit XML and JSON (HTML: ``html_report``).

Every renderer reads only ``ConversationResult`` values; none looks back at
the script or the network. Files are written atomically (temp file, then
rename) so an interrupted run never leaves half a report over a good one.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from pydantic_core import PydanticSerializationError
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from matrix_bot_tester import __version__
from matrix_bot_tester.errors import InputError
from matrix_bot_tester.matching import Message
from matrix_bot_tester.report_schema import (
    SCHEMA_VERSION,
    ConversationReport,
    JsonReport,
    ToolReport,
)
from matrix_bot_tester.result import ConversationResult, Failure, Outcome, StepResult

JSON_SCHEMA_VERSION = SCHEMA_VERSION

# The summary table lists every conversation of a run up to this many.
TABLE_ALL_UP_TO = 20

_LABEL = {
    Outcome.PASSED: ("PASS", "green"),
    Outcome.FAILED: ("FAIL", "red"),
    Outcome.ERROR: ("ERROR", "magenta"),
    Outcome.INTERRUPTED: ("INTERRUPTED", "yellow"),
    Outcome.NOT_RUN: ("NOT RUN", "dim"),
}


# A lone UTF-16 surrogate (a bot's broken "\\ud83d" escape, decoded as it is) cannot be
# encoded as UTF-8: printed or written as it is, it would crash the run's end.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def escape_surrogates(text: str) -> str:
    """``text`` with each lone surrogate written as its escape, ``\\ud83d``."""
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# Control characters a bot may send (ESC [31m, a bell): written out, not obeyed by the
# terminal or the CI log that shows the transcript.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _short(text: str | None, width: int = 80) -> str:
    if text is None:
        return ""
    one_line = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text.replace("\n", "⏎"))
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


def _describe(message: Message) -> str:
    return f"{message.body!r} from {message.sender} ({message.msgtype})"


def transcript_lines(result: ConversationResult) -> list[str]:
    """The conversation as a person would read it: time, direction, sender, text."""
    lines = []
    for entry in result.transcript:
        arrow = "→" if entry.direction == "sent" else "←"
        step = f"step {entry.step_index + 1}" if entry.step_index is not None else "unexpected"
        lines.append(
            escape_surrogates(
                f"{entry.at:7.3f}s {arrow} {entry.message.sender}: {_short(entry.message.body)}"
                f"  [{entry.message.msgtype}, {step}]"
            )
        )
    return lines


def failure_place(result: ConversationResult, failure: Failure | None = None) -> tuple[str, str]:
    """Where a failure (the conversation's, by default) struck: ``file:line`` and
    ``step N`` (or ``opening``)."""
    failure = failure or result.failure
    assert failure is not None
    where = failure.path or result.script_path
    if failure.line:
        where += f":{failure.line}"
    step = f"step {failure.step_index + 1}" if failure.step_index is not None else "opening"
    return where, step


def failure_lines(result: ConversationResult) -> list[str]:
    """What went wrong, where, expected vs received, how long we waited: for the failure,
    then for each later one (a conversation that went on, under run --update)."""
    lines: list[str] = []
    if result.failure is None:
        return lines
    for failure in [result.failure, *result.later_failures]:
        where, step = failure_place(result, failure)
        lines.append(f"{where} ({step}): {failure.reason}")
        if failure.expected is not None:
            lines.append(f"  expected: {failure.expected!r}")
        if failure.received is not None:
            lines.append(f"  received: {_describe(failure.received)}")
        elif failure.expected is not None:
            lines.append("  received: nothing")
        lines.extend(f"  why:      {problem}" for problem in failure.problems)
        if failure.waited is not None:
            lines.append(f"  waited:   {failure.waited:.3f} s")
        if failure.diff:
            lines.extend("  " + line for line in failure.diff.splitlines())
    return lines


def failure_text(result: ConversationResult) -> str:
    """The whole story of a failure: the failure, then the transcript so far."""
    lines = failure_lines(result)
    lines.append("transcript:" if result.transcript else "transcript: (no messages)")
    lines.extend("  " + line for line in transcript_lines(result))
    lines.extend(f"warning: {w}" for w in result.warnings)
    return escape_surrogates("\n".join(lines))


class ConsoleReporter:
    """Live lines while a run goes on, and the story of each failure at its end."""

    def __init__(self, console: Console, err: Console, *, verbose: bool = False) -> None:
        self.console = console
        self.err = err
        self.verbose = verbose

    def error(self, line: str) -> None:
        """A problem that stops the run before any conversation: one line on stderr."""
        self.err.print(f"error: {line}", markup=False, highlight=False)

    def warning(self, line: str) -> None:
        """Something the run did not need but the user should know: one line on stderr."""
        self.err.print(f"warning: {line}", markup=False, highlight=False)

    def conversation_started(self, result: ConversationResult) -> None:
        if self.verbose:
            self.console.print(
                f"[bold]{escape(result.name)}[/] ({escape(result.script_path)}, {result.role} role)"
            )

    def step_finished(self, step: StepResult) -> None:
        if not self.verbose:
            return
        label, colour = _LABEL[step.outcome]
        parts = [f"  [{colour}]{label:4}[/] step {step.index + 1} (line {step.line})"]
        if step.send is not None:
            parts.append(f"sent {escape(repr(_short(step.send, 40)))}")
        if step.received is not None:
            parts.append(f"got {escape(repr(_short(step.received.body, 40)))}")
        if step.latency is not None:
            parts.append(f"in {step.latency * 1000:.0f} ms")
        if step.rate_limited:
            parts.append(f"(rate-limited {step.rate_limited:.1f} s, not counted)")
        self.console.print(" ".join(parts), highlight=False)

    def conversation_finished(self, result: ConversationResult) -> None:
        label, colour = _LABEL[result.outcome]
        steps = sum(1 for s in result.steps if s.outcome is Outcome.PASSED)
        # A Text, not markup, and no wrapping: one line per conversation of a suite.
        line = Text.assemble(
            (label, colour),
            f" {result.name}  ({steps}/{len(result.steps)}"
            f" step{'' if len(result.steps) == 1 else 's'}, {result.duration:.2f} s)",
        )
        self.console.print(line, highlight=False, soft_wrap=True)
        if result.outcome is not Outcome.PASSED and result.failure is not None:
            self.console.print(escape(failure_text(result)), highlight=False)
        elif self.verbose:
            for warning in result.warnings:
                self.console.print(
                    f"  warning: {escape(escape_surrogates(warning))}", highlight=False
                )

    def summary(self, results: list[ConversationResult], duration: float) -> None:
        """A table of the conversations (2 or more) and the slowest steps, then the totals.

        The last line, the totals, is parsed by tests and CI: keep its format.
        """
        if len(results) >= 2:
            listed = table_rows(results)
            if listed:
                self.console.print(summary_table(listed))
            if len(listed) < len(results):
                self.console.print(
                    f"{len(results) - len(listed)} passed conversations not listed: each has"
                    " its line above, and every report has them all",
                    highlight=False,
                )
        slowest = slowest_steps(results)
        if slowest and len(results) >= 2:
            self.console.print(slowest_steps_table(slowest))
        pushed_back = rate_limit_line(results)
        if pushed_back:
            self.console.print(pushed_back, highlight=False)
        counts = {outcome: 0 for outcome in Outcome}
        for result in results:
            counts[result.outcome] += 1
        parts = [
            outcome.counted(number)
            for outcome, number in counts.items()
            if number or outcome in (Outcome.PASSED, Outcome.FAILED)
        ]
        self.console.print(f"{', '.join(parts)} in {duration:.2f} s", highlight=False)


def rate_limit_line(results: list[ConversationResult]) -> str | None:
    """What the homeserver's rate limits cost the run, in one line; None if nothing.

    Without -v nothing else says why conversations took so long.
    """
    waited = sum(step.rate_limited for result in results for step in result.steps)
    reused = sum(1 for result in results if any(" reused " in w for w in result.warnings))
    if waited <= 0 and not reused:
        return None
    line = f"rate limits: waited {waited:.1f} s in all for the homeserver (not counted as latency)"
    if reused:
        line += f"; {reused} conversation{'' if reused == 1 else 's'} took over a passed one's DM"
    return line


def slowest_step(result: ConversationResult) -> StepResult | None:
    """The conversation's step with the longest latency (the first of equals), if any."""
    timed = [step for step in result.steps if step.latency is not None]
    return max(timed, key=lambda step: step.latency or 0.0) if timed else None


def slowest_steps(
    results: list[ConversationResult], count: int = 3
) -> list[tuple[ConversationResult, StepResult]]:
    """The run's ``count`` slowest steps, slowest first; equals keep their run order."""
    timed = [
        (result, step) for result in results for step in result.steps if step.latency is not None
    ]
    timed.sort(key=lambda pair: -(pair[1].latency or 0.0))
    return timed[:count]


def table_rows(results: list[ConversationResult]) -> list[ConversationResult]:
    """The conversations the summary table lists: all of a small run; of a suite
    larger than ``TABLE_ALL_UP_TO``, those that did not pass (a table of two hundred
    passes buries the failures, and costs the CPU of a hundred steps to draw)."""
    if len(results) <= TABLE_ALL_UP_TO:
        return results
    return [result for result in results if result.outcome is not Outcome.PASSED]


def summary_table(results: list[ConversationResult]) -> Table:
    """One row per conversation: name, outcome, steps passed, duration, slowest step."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, highlight=False)
    table.add_column("conversation", overflow="fold")
    table.add_column("outcome", no_wrap=True)
    table.add_column("steps", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("slowest step", justify="right", no_wrap=True)
    for result in results:
        label, colour = _LABEL[result.outcome]
        passed = sum(1 for s in result.steps if s.outcome is Outcome.PASSED)
        slow = slowest_step(result)
        table.add_row(
            Text(result.name),
            Text(label, style=colour),
            f"{passed}/{len(result.steps)}",
            f"{result.duration:.2f} s",
            f"{_ms(slow.latency)} (step {slow.index + 1})"
            if slow is not None and slow.latency is not None
            else "—",
        )
    return table


def slowest_steps_table(slowest: list[tuple[ConversationResult, StepResult]]) -> Table:
    """The slowest steps of the run, with where they are and what they sent."""
    table = Table(
        title="slowest steps",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        highlight=False,
    )
    table.add_column("latency", justify="right", no_wrap=True, min_width=7)
    # The place is what one copies to open the script, so it gets the width: what
    # the step sent goes on a line of its own below it, not in a column beside it.
    table.add_column("step", overflow="fold")
    for result, step in slowest:
        where = f"{shown_path(step.path or result.script_path)}:{step.line}"
        sent = f"sent {_short(step.send, 40)}" if step.send is not None else "sent nothing"
        table.add_row(_ms(step.latency or 0.0), Text(f"{where}\nstep {step.index + 1}: {sent}"))
    return table


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path as short as it is clear: relative to here when it is below here.

    Failures, tables and the Python API all name scripts this way, so one
    script reads the same in each.
    """
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive, on Windows
        return os.fspath(path)
    return os.fspath(path) if relative.startswith("..") else relative


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.0f} ms"


def check_report_path(path: str | os.PathLike[str], what: str) -> None:
    """Refuse, before anything is sent, a report path that could not be written.

    ``what`` names the file ("the --html report"); its option picks the example
    in the hint. Permission bits do not tell (root passes ``os.access`` for a
    folder like /proc that takes no new file), so the check does what
    write_atomically will do: create a temp file in the folder, then remove it.
    Missing folders are not created here (that is left to the write, after
    the run); the nearest existing one is tried instead, where they would be.
    """
    target = Path(path)
    if _is_special(target):
        if os.access(target, os.W_OK):
            return
        raise InputError(f"{what} cannot be written there", path=str(target))
    target = _followed(target)
    if target.is_dir():
        names = {  # what a file for each option is usually called
            "--junit-xml": "result.xml",
            "--json": "result.json",
            "--html": "result.html",
            "-o": "recorded.convo.yaml",
            "--events-json": "events.json",
        }
        option = next((word for word in what.split() if word in names), None)
        example = f", e.g. {target / names[option]}" if option else ""
        raise InputError(
            f"{what} path is a directory",
            path=str(target),
            hint=f"give a file name inside it{example}",
        )
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    reason = f"{parent} is not a writable folder"
    if parent.is_dir():
        try:
            fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as exc:
            reason = f"{parent} is not a writable folder ({exc.strerror or exc})"
        else:
            os.close(fd)
            Path(probe).unlink(missing_ok=True)
            return
    raise InputError(f"{what} cannot be written there", path=str(target), hint=reason)


def _followed(path: Path) -> Path:
    """Where a report file at ``path`` goes: a symlink's target (the link stays a link)."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _is_special(path: Path) -> bool:
    """Whether ``path`` (followed through symlinks) is a device, FIFO or socket:
    ``/dev/stdout``, ``/dev/null``, a named pipe. Those are written to, never replaced."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _write_special(path: Path, text: str) -> None:
    """Write into a device or FIFO as it is; a FIFO nobody reads is an error, not a hang."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        reason = "nothing reads from it" if exc.errno == errno.ENXIO else exc.strerror
        raise InputError(f"cannot write the report: {reason}", path=str(path)) from None
    try:
        os.set_blocking(fd, True)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise InputError(
            f"cannot write the report: {exc.strerror or exc}", path=str(path)
        ) from None


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Write a whole file or nothing: a temp file beside it, then a rename.

    The file gets the usual permissions (0666 less the umask), not the temp
    file's 0600, so CI artefact collectors can read it. A symlink is followed
    (its target is written; the link stays a link), and a device or FIFO
    (``--json /dev/stdout``) is written into: a rename would replace it.
    """
    target = Path(path)
    if _is_special(target):
        _write_special(target, text)
        return
    target = _followed(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"cannot write the report: {exc.strerror}", path=str(target)) from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, target)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        reason = exc.strerror or str(exc)
        raise InputError(f"cannot write the report: {reason}", path=str(target)) from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# XML 1.0 cannot hold most control characters, yet a Matrix body may (a bot's ANSI
# colours); ElementTree would write them as they are, and no parser could read the file.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def junit_xml(results: list[ConversationResult], duration: float) -> str:
    """One test case per conversation; infrastructure problems are errors, not failures."""
    suite = ET.Element(
        "testsuite",
        name="matrix-bot-tester",
        tests=str(len(results)),
        failures=str(sum(r.outcome is Outcome.FAILED for r in results)),
        errors=str(sum(r.outcome in (Outcome.ERROR, Outcome.INTERRUPTED) for r in results)),
        skipped=str(sum(r.outcome is Outcome.NOT_RUN for r in results)),
        time=f"{duration:.3f}",
    )
    started = sorted(result.started_at for result in results if result.started_at)
    if started:
        suite.set("timestamp", started[0])
    # CI systems merge test cases of the same name: scripts named alike in different
    # folders (two smoke/ping.convo.yaml) say where they are.
    named = Counter(result.name for result in results)
    for result in results:
        name = result.name
        if named[name] > 1:
            name = f"{name} ({shown_path(result.script_path)})"
        case = ET.SubElement(
            suite,
            "testcase",
            classname="matrix-bot-tester",
            name=name,
            file=result.script_path,
            time=f"{result.duration:.3f}",
        )
        if result.failure is not None and result.failure.line:
            case.set("line", str(result.failure.line))
        headline = _xml_text(result.failure.reason) if result.failure else ""
        if result.outcome is Outcome.FAILED:
            failure = ET.SubElement(case, "failure", message=headline, type="conversation")
            failure.text = _xml_text(failure_text(result))
        elif result.outcome in (Outcome.ERROR, Outcome.INTERRUPTED):
            error = ET.SubElement(case, "error", message=headline, type=result.outcome.value)
            error.text = _xml_text(failure_text(result))
        elif result.outcome is Outcome.NOT_RUN:
            ET.SubElement(case, "skipped", message="not run")
        out = _xml_text("\n".join(transcript_lines(result)))
        if out:
            ET.SubElement(case, "system-out").text = out
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )


def json_report(results: list[ConversationResult], duration: float, exit_code: int) -> str:
    """The ``--json`` report, built through the models of ``report_schema`` (its schema)."""
    document = JsonReport(
        schema_version=SCHEMA_VERSION,
        tool=ToolReport(name="matrix-bot-tester", version=__version__),
        exit_code=exit_code,
        duration=round(duration, 3),
        conversations=[ConversationReport.model_validate(result) for result in results],
    )
    try:
        # pydantic's own writer: json.dumps with an indent falls back to pure Python,
        # which cost a suite more CPU than its conversations' own matching.
        return document.model_dump_json(indent=2) + "\n"
    except PydanticSerializationError:  # a lone surrogate, which UTF-8 cannot hold
        text = json.dumps(document.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
        # In JSON text a lone surrogate only occurs in strings, where the escape is exact.
        return escape_surrogates(text)
