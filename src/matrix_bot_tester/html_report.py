"""A self-contained HTML report of a run, for people who would rather look than read logs.

``render`` turns ``ConversationResult`` values into one page: totals, a latency
chart (inline SVG), and each conversation as a chat transcript with its
failing step highlighted. The page loads nothing: no scripts, no fonts, no
images from elsewhere, so it opens from a CI artefact as it is. Every text
that came from a script, a bot or the homeserver is escaped; the output is
also well-formed XML, so tests can parse it. The same input gives the same
bytes (nothing here reads the clock).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

from matrix_bot_tester import __version__
from matrix_bot_tester.report import failure_place
from matrix_bot_tester.result import ConversationResult, Outcome, StepResult, TranscriptEntry

__all__ = ["render"]

_LABEL = {
    Outcome.PASSED: "PASS",
    Outcome.FAILED: "FAIL",
    Outcome.ERROR: "ERROR",
    Outcome.INTERRUPTED: "INTERRUPTED",
    Outcome.NOT_RUN: "NOT RUN",
}

# The page title names these counts even when they are zero, as the console does.
_ALWAYS_COUNTED = (Outcome.PASSED, Outcome.FAILED)

# The conversation engine appends these to a transcript entry's body.
_NOTES = ("ignored", "edited")

# Characters neither XML 1.0 nor HTML allow in a document (a bot's ANSI colours,
# say): shown as \xNN so the page stays well-formed and the reader sees them.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_CSS = """
:root { --ok: #1a7f37; --bad: #cf222e; --err: #8250df; --warn: #9a6700; --dim: #6e7781;
  --line: #d0d7de; --ours: #ddf4ff; --theirs: #f6f8fa; --hl: #ffebe9; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
  max-width: 1100px; padding: 1rem 1.5rem 3rem; color: #1f2328; background: #fff; }
h1 { font-size: 1.5rem; margin: .5rem 0; }
h2 { font-size: 1.2rem; margin: 0 0 .5rem; }
h3 { font-size: 1rem; margin: 1rem 0 .4rem; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12.5px; }
.totals { display: flex; flex-wrap: wrap; gap: .5rem; margin: .5rem 0; padding: 0;
  list-style: none; }
.totals li { border: 1px solid var(--line); border-radius: 6px; padding: .2rem .6rem; }
.totals .n { font-weight: 700; font-size: 1.1rem; margin-right: .25rem; }
.passed { color: var(--ok); } .failed { color: var(--bad); } .error { color: var(--err); }
.interrupted { color: var(--warn); } .not-run { color: var(--dim); }
.badge { display: inline-block; border-radius: 4px; padding: 0 .4rem; color: #fff;
  font-size: .8rem; font-weight: 700; vertical-align: middle; margin-right: .4rem; }
.badge.passed { background: var(--ok); } .badge.failed { background: var(--bad); }
.badge.error { background: var(--err); } .badge.interrupted { background: var(--warn); }
.badge.not-run { background: var(--dim); }
nav ol { margin: .3rem 0; padding-left: 1.5rem; }
section.conversation { border: 1px solid var(--line); border-radius: 8px; padding: 1rem;
  margin: 1.2rem 0; }
section.conversation.outcome-failed { border-left: 6px solid var(--bad); }
section.conversation.outcome-error { border-left: 6px solid var(--err); }
section.conversation.outcome-interrupted { border-left: 6px solid var(--warn); }
section.conversation.outcome-passed { border-left: 6px solid var(--ok); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem;
  margin: 0; }
dl.facts dt { color: var(--dim); } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.failure { background: var(--hl); border: 1px solid var(--bad); border-radius: 6px;
  padding: .6rem .8rem; margin: .8rem 0; }
.failure .reason { font-weight: 700; color: var(--bad); margin: 0 0 .3rem; }
.failure dl { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem;
  margin: 0; }
.failure dt { color: var(--dim); } .failure dd { margin: 0; white-space: pre-wrap;
  overflow-wrap: anywhere; }
.failure ul { margin: 0; padding-left: 1.2rem; }
pre.diff { background: #fff; border: 1px solid var(--line); border-radius: 4px;
  padding: .4rem .6rem; overflow-x: auto; margin: .4rem 0 0; }
pre.diff .del { color: var(--bad); } pre.diff .add { color: var(--ok); }
ol.transcript { list-style: none; margin: 0; padding: 0; display: flex;
  flex-direction: column; gap: .35rem; }
ol.transcript li { display: flex; }
ol.transcript li.sent { justify-content: flex-end; }
ol.transcript li.received { justify-content: flex-start; }
.bubble { max-width: 75%; border: 1px solid var(--line); border-radius: 12px;
  padding: .35rem .7rem; }
li.sent .bubble { background: var(--ours); border-bottom-right-radius: 3px; }
li.received .bubble { background: var(--theirs); border-bottom-left-radius: 3px; }
li.failing .bubble { border: 2px solid var(--bad); background: var(--hl); }
.bubble .meta { font-size: .78rem; color: var(--dim); }
.bubble .meta .sender { font-weight: 600; color: #1f2328; }
.bubble .body { white-space: pre-wrap; overflow-wrap: anywhere; }
.note { display: inline-block; font-size: .72rem; border-radius: 4px; padding: 0 .3rem;
  margin-left: .3rem; border: 1px solid var(--warn); color: var(--warn); }
li.marker { justify-content: center; }
li.marker span { color: var(--bad); font-weight: 700; font-size: .85rem;
  border-top: 2px dashed var(--bad); padding: .1rem 1rem; }
p.empty { color: var(--dim); font-style: italic; }
table.steps { border-collapse: collapse; width: 100%; }
table.steps th, table.steps td { border-bottom: 1px solid var(--line); padding: .2rem .4rem;
  text-align: left; vertical-align: top; }
table.steps td.num, table.steps th.num { text-align: right; white-space: nowrap; }
table.steps td.text { overflow-wrap: anywhere; white-space: pre-wrap; max-width: 22rem; }
table.steps tr.failing td { background: var(--hl); font-weight: 600; }
ul.warnings { color: var(--warn); }
svg.chart { display: block; max-width: 100%; height: auto; }
svg.chart text { font: 11px system-ui, sans-serif; fill: #1f2328; }
svg.chart .bar { fill: #54aeff; } svg.chart .bar.failed { fill: var(--bad); }
svg.chart .axis { stroke: var(--line); }
footer { color: var(--dim); font-size: .8rem; margin-top: 2rem; }
""".strip()


def _text(value: object) -> str:
    """Escape anything for element content or an attribute value."""
    return html.escape(_NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value)))


def _css_class(outcome: Outcome) -> str:
    return outcome.value.replace(" ", "-")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _split_note(entry: TranscriptEntry) -> tuple[str, list[str]]:
    """The body as the bot wrote it, and the notes the engine appended (ignored, edited)."""
    body = entry.message.body
    notes = []
    for note in _NOTES:
        suffix = f" ({note})"
        if body.endswith(suffix):
            body = body[: -len(suffix)]
            notes.append(note)
            break
    if entry.step_index is None:
        notes.append("unexpected")
    return body, notes


def _counts(results: list[ConversationResult]) -> dict[Outcome, int]:
    counts = dict.fromkeys(Outcome, 0)
    for result in results:
        counts[result.outcome] += 1
    return counts


# ------------------------------------------------------------------ the page


def render(results: list[ConversationResult], duration: float, exit_code: int) -> str:
    """The whole run as one self-contained HTML page (a string; the caller writes it)."""
    counts = _counts(results)
    title = ", ".join(o.counted(counts[o]) for o in Outcome if counts[o] or o in _ALWAYS_COUNTED)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8"/>',
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>',
        f"<title>matrix-bot-tester: {_text(title)}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        *_header(results, counts, duration, exit_code),
        *_chart(results),
    ]
    for number, result in enumerate(results, 1):
        parts.extend(_conversation(number, result))
    parts.append(
        f"<footer>matrix-bot-tester {_text(__version__)} · exit code {_text(exit_code)}</footer>"
    )
    parts.extend(["</body>", "</html>", ""])
    return "\n".join(parts)


def _header(
    results: list[ConversationResult], counts: dict[Outcome, int], duration: float, code: int
) -> list[str]:
    parts = ["<header>", "<h1>matrix-bot-tester report</h1>", '<ul class="totals">']
    for outcome in Outcome:
        parts.append(
            f'<li class="{_css_class(outcome)}" id="total-{_css_class(outcome)}">'
            f'<span class="n">{counts[outcome]}</span>{_text(outcome.value)}</li>'
        )
    parts.append(f'<li id="total-duration"><span class="n">{duration:.2f} s</span>in all</li>')
    parts.append(f'<li id="exit-code"><span class="n">{_text(code)}</span>exit code</li>')
    parts.append("</ul>")
    if results:
        parts.append("<nav><ol>")
        for number, result in enumerate(results, 1):
            css = _css_class(result.outcome)
            parts.append(
                f'<li><a href="#conversation-{number}">{_text(result.name)}</a> '
                f'<span class="{css}">{_text(result.outcome.value)}</span></li>'
            )
        parts.append("</ol></nav>")
    else:
        parts.append('<p class="empty">No conversations.</p>')
    parts.append("</header>")
    return parts


# ------------------------------------------------------------------ the chart

_BAR_HEIGHT = 16
_BAR_GAP = 4
_LABEL_WIDTH = 260
_BAR_WIDTH = 560
_VALUE_WIDTH = 80
_TOP = 8


def _chart(results: list[ConversationResult]) -> list[str]:
    """One horizontal bar per step that has a latency, in run order, labelled."""
    bars = [
        (number, result, step)
        for number, result in enumerate(results, 1)
        for step in result.steps
        if step.latency is not None
    ]
    parts = ['<section class="latency" id="latency">', "<h2>Latency per step</h2>"]
    if not bars:
        parts.extend(['<p class="empty">No step has a latency.</p>', "</section>"])
        return parts
    longest = max(step.latency or 0.0 for _, _, step in bars) or 1.0
    width = _LABEL_WIDTH + _BAR_WIDTH + _VALUE_WIDTH
    height = _TOP * 2 + len(bars) * (_BAR_HEIGHT + _BAR_GAP)
    parts.append(
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img"'
        f' width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f' aria-label="latency of {_plural(len(bars), "step")}">'
    )
    parts.append(
        f'<line class="axis" x1="{_LABEL_WIDTH}" y1="0" x2="{_LABEL_WIDTH}" y2="{height}"/>'
    )
    for row, (number, result, step) in enumerate(bars):
        latency = step.latency or 0.0
        y = _TOP + row * (_BAR_HEIGHT + _BAR_GAP)
        text_y = y + _BAR_HEIGHT - 4
        bar = max(1.0, latency / longest * _BAR_WIDTH)
        label = f"{result.name} · step {step.index + 1}"
        if len(label) > 42:
            label = "…" + label[-41:]
        failed = " failed" if step.outcome is Outcome.FAILED else ""
        parts.append(
            f'<g class="step" data-conversation="{number}" data-step="{step.index + 1}">'
            f"<title>{_text(result.name)}, step {step.index + 1} (line {step.line}):"
            f" {_ms(latency)}</title>"
            f'<text x="{_LABEL_WIDTH - 6}" y="{text_y}" text-anchor="end">{_text(label)}</text>'
            f'<rect class="bar{failed}" x="{_LABEL_WIDTH}" y="{y}" width="{bar:.1f}"'
            f' height="{_BAR_HEIGHT}"/>'
            f'<text class="value" x="{_LABEL_WIDTH + bar + 4:.1f}" y="{text_y}">'
            f"{_ms(latency)}</text></g>"
        )
    parts.extend(["</svg>", "</section>"])
    return parts


# ------------------------------------------------------------ a conversation


def _conversation(number: int, result: ConversationResult) -> list[str]:
    css = _css_class(result.outcome)
    passed = sum(1 for s in result.steps if s.outcome is Outcome.PASSED)
    parts = [
        f'<section class="conversation outcome-{css}" id="conversation-{number}"'
        f' data-outcome="{_text(result.outcome.value)}">',
        f'<h2><span class="badge {css}">{_LABEL[result.outcome]}</span>{_text(result.name)}</h2>',
        '<dl class="facts">',
    ]
    facts: list[tuple[str, str]] = [
        ("outcome", result.outcome.value),
        ("script", result.script_path),
        ("role", result.role),
        ("room", result.room_id or "—"),
        ("tester", result.user_id or "—"),
        ("partner", result.partner or "—"),
        ("started", result.started_at or "—"),
        ("duration", f"{result.duration:.2f} s"),
        ("steps", f"{passed}/{len(result.steps)} passed"),
    ]
    for name, value in facts:
        parts.append(f"<dt>{name}</dt><dd>{_text(value)}</dd>")
    parts.append("</dl>")
    parts.extend(_failure(result))
    parts.append("<h3>Transcript</h3>")
    parts.extend(_transcript(result))
    parts.append("<h3>Steps</h3>")
    parts.extend(_steps(result))
    if result.warnings:
        parts.append("<h3>Warnings</h3>")
        parts.append('<ul class="warnings">')
        parts.extend(f"<li>{_text(w)}</li>" for w in result.warnings)
        parts.append("</ul>")
    parts.append("</section>")
    return parts


def _failure(result: ConversationResult) -> list[str]:
    failure = result.failure
    if failure is None:
        return []
    where, step = failure_place(result)
    parts = [
        '<div class="failure" role="alert">',
        f'<p class="reason">{_text(step)}: {_text(failure.reason)}</p>',
        "<dl>",
        f"<dt>where</dt><dd><code>{_text(where)}</code></dd>",
    ]
    if failure.expected is not None:
        parts.append(f'<dt>expected</dt><dd class="expected">{_text(failure.expected)}</dd>')
    if failure.received is not None:
        got = failure.received
        parts.append(
            f'<dt>received</dt><dd class="received">{_text(got.body)}'
            f' <span class="from">from {_text(got.sender)} ({_text(got.msgtype)})</span></dd>'
        )
    elif failure.expected is not None:
        parts.append('<dt>received</dt><dd class="received">nothing</dd>')
    if failure.problems:
        parts.append('<dt>why</dt><dd><ul class="why">')
        parts.extend(f"<li>{_text(p)}</li>" for p in failure.problems)
        parts.append("</ul></dd>")
    if failure.waited is not None:
        parts.append(f"<dt>waited</dt><dd>{failure.waited:.3f} s</dd>")
    parts.append("</dl>")
    if failure.diff:
        parts.append(f'<pre class="diff">{"".join(_diff_lines(failure.diff))}</pre>')
    parts.append("</div>")
    return parts


def _diff_lines(diff: str) -> Iterable[str]:
    lines = diff.splitlines()
    for i, line in enumerate(lines):
        end = "\n" if i < len(lines) - 1 else ""
        if line.startswith(("+++", "---")):
            css = "head"
        elif line.startswith("-"):
            css = "del"
        elif line.startswith("+"):
            css = "add"
        else:
            css = ""
        if css:
            yield f'<span class="{css}">{_text(line)}</span>{end}'
        else:
            yield f"{_text(line)}{end}"


def _marker_position(result: ConversationResult) -> int | None:
    """Where in the transcript the failing step's marker goes (after its last message)."""
    failure = result.failure
    if failure is None or failure.step_index is None:
        return None
    at = None
    for i, entry in enumerate(result.transcript):
        if entry.step_index is not None and entry.step_index <= failure.step_index:
            at = i + 1
    return at if at is not None else 0


def _transcript(result: ConversationResult) -> list[str]:
    if not result.transcript:
        return ['<p class="empty">No messages.</p>']
    failing = result.failure.step_index if result.failure is not None else None
    marker = _marker_position(result)
    parts = ['<ol class="transcript">']
    for i, entry in enumerate(result.transcript):
        if i == marker:
            parts.append(_marker(result))
        parts.append(_bubble(entry, failing))
    if marker == len(result.transcript):
        parts.append(_marker(result))
    parts.append("</ol>")
    return parts


def _marker(result: ConversationResult) -> str:
    assert result.failure is not None and result.failure.step_index is not None
    return (
        f'<li class="marker" id="failing-step-{result.failure.step_index + 1}"><span>'
        f"✗ step {result.failure.step_index + 1} failed: {_text(result.failure.reason)}"
        "</span></li>"
    )


def _bubble(entry: TranscriptEntry, failing: int | None) -> str:
    body, notes = _split_note(entry)
    classes = ["sent" if entry.direction == "sent" else "received"]
    if failing is not None and entry.step_index == failing:
        classes.append("failing")
    classes.extend(f"note-{n}" for n in notes)
    step = f"step {entry.step_index + 1}" if entry.step_index is not None else "no step"
    note_html = "".join(f'<span class="note">{n}</span>' for n in notes)
    data_step = f' data-step="{entry.step_index + 1}"' if entry.step_index is not None else ""
    return (
        f'<li class="{" ".join(classes)}"{data_step}><div class="bubble">'
        f'<div class="meta"><span class="sender">{_text(entry.message.sender)}</span>'
        f" · {entry.at:.3f} s · {step} · {_text(entry.message.msgtype)}{note_html}</div>"
        f'<div class="body">{_text(body)}</div></div></li>'
    )


def _steps(result: ConversationResult) -> list[str]:
    if not result.steps:
        return ['<p class="empty">No steps ran.</p>']
    failing = result.failure.step_index if result.failure is not None else None
    parts = [
        '<table class="steps">',
        '<thead><tr><th class="num">#</th><th class="num">line</th><th>send</th>'
        '<th>expect</th><th>received</th><th>outcome</th><th class="num">latency</th>'
        "</tr></thead>",
        "<tbody>",
    ]
    for step in result.steps:
        parts.append(_step_row(step, failing, result.script_path))
    parts.extend(["</tbody>", "</table>"])
    return parts


def _step_row(step: StepResult, failing: int | None, script_path: str) -> str:
    css = ' class="failing"' if step.index == failing else ""
    line = f"{step.path}:{step.line}" if step.path and step.path != script_path else step.line
    latency = _ms(step.latency) if step.latency is not None else "—"
    if step.rate_limited:
        latency += f" (+{step.rate_limited:.1f} s rate-limited)"
    received = step.received.body if step.received is not None else ""
    return (
        f'<tr{css} data-step="{step.index + 1}"><td class="num">{step.index + 1}</td>'
        f'<td class="num">{_text(line)}</td>'
        f'<td class="text">{_text(step.send if step.send is not None else "")}</td>'
        f'<td class="text">{_text(step.expect if step.expect is not None else "")}</td>'
        f'<td class="text">{_text(received)}</td>'
        f'<td class="{_css_class(step.outcome)}">{_text(step.outcome.value)}</td>'
        f'<td class="num latency">{_text(latency)}</td></tr>'
    )
