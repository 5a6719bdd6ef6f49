"""Walk a script's steps over a Session: act, wait with deadlines, match, build the result.

This room owns the conversation's rules and never speaks Matrix itself: it
talks to the ``Session`` protocol, so the rules can be tested with a fake
session. The rules:

* A step does its action (send, react, edit, ...), then its expectation.
* Each expectation consumes the next event *of its type* from the other side
  (messages by default; reactions and redactions wait in their own line), in
  order; ``ignore`` rules drop noise first.
* Edits (``m.replace``) never consume an expectation: they change the message
  they edit. A reply that does not match yet is given a short grace for edits,
  renewed by each edit, so a bot that streams its answer is judged on its
  final text.
* Every wait has the step's deadline; ``within`` and ``settle`` are checked
  against arrival times.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from matrix_bot_tester import compose
from matrix_bot_tester.errors import InfrastructureError, InputError
from matrix_bot_tester.language import Expectation, Step
from matrix_bot_tester.matching import (
    Event,
    MatchContext,
    Message,
    Verdict,
    apply_edit,
    closest,
    edit_target,
    evaluate,
    readable_text,
)
from matrix_bot_tester.result import (
    ConversationResult,
    Failure,
    Outcome,
    StepResult,
    TranscriptEntry,
)
from matrix_bot_tester.script import PlacedStep, Role, Script
from matrix_bot_tester.variables import Undefined, fill_all

# How long a reply that does not match yet may take to be edited into one that does.
EDIT_GRACE = 2.0
# At the end of a window (settle, expect_no_reply, the edit grace) a pause of the
# homeserver, the network or the tester may still hold back what came inside it: the
# session is asked to catch up with the server first, for at least this long.
CATCH_UP = 2.0
# An edit grace whose end is noticed this much late was paused over: it starts again.
LATE_BY = 0.25


@dataclass(frozen=True)
class Reply:
    """An event from someone else, with the moment it reached us (monotonic clock)."""

    event: Event
    arrived: float


# Seconds the requests of the current task spent waiting out 429s (the real
# session adds to it); each running conversation sets its own.
RATE_LIMITED: ContextVar[list[float] | None] = ContextVar("rate_limited", default=None)


@dataclass
class OpenRoom:
    """A room a conversation is already in, with what its earlier scripts left there.

    Given to ``Conversation`` as ``room``, a script runs in this room without
    opening one, goes on with these values, names and known events, and leaves
    the replies nobody took yet for the next script: how the Python API runs a
    conversation one step at a time.
    """

    room_id: str
    values: dict[str, str] = field(default_factory=dict)
    named: dict[str, Event] = field(default_factory=dict)
    known: dict[str, Event] = field(default_factory=dict)  # every event seen, as last edited
    inbox: list[Reply] = field(default_factory=list)  # replies that arrived, not taken yet


class ConversationFailed(Exception):
    """The other side did not do what the script says (not the infrastructure's fault)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Session(Protocol):
    """What a conversation needs from Matrix; ``session.NioSession`` is the real one."""

    @property
    def user_id(self) -> str: ...

    async def open_dm(self, partner: str, *, wait_for_join: bool, timeout: float) -> str:
        """Create a DM with ``partner``; return its room ID. Raises ConversationFailed."""
        ...

    async def join_room(self, room: str, *, timeout: float) -> str:
        """Join a room by ID or alias (or use it if joined); return its room ID."""
        ...

    async def wait_for_room(self, *, need_message: bool, timeout: float) -> str | None:
        """Bot role: the room where someone else speaks first (or is first joined)."""
        ...

    async def send_event(
        self, room_id: str, event_type: str, content: dict[str, Any], *, timeout: float
    ) -> Event:
        """Send an event; return it as sent (with its event_id)."""
        ...

    async def redact(
        self, room_id: str, event_id: str, reason: str | None, *, timeout: float
    ) -> Event: ...

    async def set_typing(
        self, room_id: str, typing: bool, seconds: float, *, timeout: float
    ) -> None: ...

    async def send_read_receipt(self, room_id: str, event_id: str, *, timeout: float) -> None: ...

    async def upload(
        self, path: Path, *, mimetype: str, filename: str, timeout: float
    ) -> tuple[str, int]:
        """Upload a file; return its mxc:// URI and its size."""
        ...

    async def download_size(self, mxc: str, *, timeout: float) -> int:
        """The size of downloadable content, or -1 when it cannot be downloaded."""
        ...

    async def next_event(
        self, room_id: str, *, timeout: float, patience: float = 0.0
    ) -> Reply | None:
        """The next non-state event from someone else, in order, or None at the deadline.

        At the deadline the homeserver must show it is still there (else
        InfrastructureError), within a few seconds or ``patience``, if longer.
        """
        ...

    async def caught_up(self, *, timeout: float) -> bool:
        """Everything the server had by now is in (``pending_events``); False if that
        took longer than ``timeout``."""
        ...

    def pending_events(self, room_id: str) -> list[Reply]:
        """Events that arrived and were not taken, without waiting."""
        ...


StepListener = Callable[[StepResult], None]


def _sent_after(event: Event, at_ms: float) -> bool:
    """Whether the server received ``event`` after ``at_ms`` (its clock, in ms)."""
    stamp = event.get("origin_server_ts")
    return isinstance(stamp, int | float) and stamp > at_ms


def message_of(event: Event) -> Message:
    """The line of a transcript that an event makes, for any event type."""
    content = event.get("content") or {}
    kind = str(event.get("type", ""))
    if kind == "m.room.message":
        body = readable_text(event)
        kind = str(content.get("msgtype", ""))
    elif kind == "m.reaction":
        relates = content.get("m.relates_to") or {}
        body = f"reacted {relates.get('key', '')} to {relates.get('event_id', '?')}"
    elif kind == "m.room.redaction":
        body = f"redacted {event.get('redacts') or content.get('redacts') or '?'}"
    else:
        body = str(content.get("body") or "")
    return Message(
        event_id=str(event.get("event_id", "")),
        sender=str(event.get("sender", "")),
        msgtype=kind,
        body=body,
        timestamp_ms=int(event.get("origin_server_ts") or 0),
        type=str(event.get("type", "")),
        content=dict(content) if isinstance(content, dict) else {},
    )


def describe_action(step: Step) -> str | None:
    """A short text of what a step does, for reports (plain sends stay their text)."""
    if step.send is not None:
        if isinstance(step.send, str):
            return step.send
        spec = step.send
        return spec.text or spec.markdown or spec.html or f"file {spec.file}"
    action = step.action
    if action is None:
        return None
    value = getattr(step, action)
    if hasattr(value, "model_dump"):
        value = value.model_dump(exclude_defaults=True)
    # JSON, like the expectations in failure reports: one notation everywhere.
    return f"{action}: {json.dumps(value, ensure_ascii=False)}"


def describe_expectation(step: Step) -> str | None:
    if isinstance(step.expect, str):
        return step.expect
    for key in ("expect", "expect_unordered", "expect_count", "expect_no_reply"):
        value = getattr(step, key)
        if value is not None:
            return f"{key}: {json.dumps(_plain(value), ensure_ascii=False)}"
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(exclude_defaults=True)
    return value


class Conversation:
    """One run of one script. ``result`` is kept up to date, so an interrupted run still reports."""

    def __init__(
        self,
        script: Script,
        *,
        partner: str | None,
        timeout_override: float | None = None,
        on_step: StepListener | None = None,
        run_id: str | None = None,
        room: OpenRoom | None = None,
        go_on_after_wrong_reply: bool = False,
    ) -> None:
        self.script = script
        # run --update: a wrong reply fails its step but not the rest of the
        # conversation, so that every changed reply can be rewritten in one run.
        self.go_on_after_wrong_reply = go_on_after_wrong_reply
        self._failures: list[Failure] = []
        self.partner = partner
        self.timeout_override = timeout_override
        self.on_step = on_step
        self.run_id = run_id or uuid.uuid4().hex[:10]
        self.result = ConversationResult(
            script_path=script.path,
            name=script.name,
            role=script.role.value,
            partner=partner,
            steps=[
                StepResult(
                    index=step.index,
                    line=step.line,
                    send=describe_action(step.spec),
                    expect=describe_expectation(step.spec),
                    outcome=Outcome.NOT_RUN,
                    timeout=script.step_timeout(step, timeout_override),
                    path=step.path if step.path != script.path else None,
                )
                for step in script.steps
            ],
        )
        self._start = 0.0
        self.room = room
        state = room if room is not None else OpenRoom(room_id="")
        self.values = state.values
        self.named = state.named
        self._inbox = state.inbox
        self._known = state.known  # every event seen, by ID, as last edited
        self._edited: set[str] = set()  # IDs of events edited since the flag was last cleared
        self._edits_in_step = 0
        self._waited = [0.0]  # seconds this conversation's requests waited out 429s
        self._rate_mark = 0.0  # the part of it already charged to earlier steps

    # ------------------------------------------------------------ bookkeeping

    def _elapsed(self, moment: float | None = None) -> float:
        return round((moment if moment is not None else time.monotonic()) - self._start, 3)

    def _record(
        self, direction: str, event: Event, step: int | None, moment: float, note: str = ""
    ) -> Message:
        """Write an event into the transcript; the message it makes (without the note)."""
        message = shown = message_of(event)
        if note:
            shown = dataclasses.replace(message, body=f"{message.body} ({note})")
        self.result.transcript.append(
            TranscriptEntry(
                at=self._elapsed(moment), direction=direction, message=shown, step_index=step
            )
        )
        return message

    @property
    def _opening_timeout(self) -> float:
        """How long to wait for the room itself: the first step's deadline."""
        return self.script.step_timeout(self.script.steps[0], self.timeout_override)

    def _charge_rate_limits(self, record: StepResult) -> None:
        """Charge the 429 waiting since the last mark to ``record`` (not to its latency)."""
        total = self._waited[0]
        record.rate_limited = round(record.rate_limited + total - self._rate_mark, 3)
        self._rate_mark = total

    def _event_ids(self) -> dict[str, str]:
        return {name: str(event.get("event_id", "")) for name, event in self.named.items()}

    # ---------------------------------------------------------------- running

    async def _open(self, session: Session) -> str:
        if self.room is not None:
            return self.room.room_id
        script = self.script
        if script.role is Role.CLIENT:
            if not self.partner:
                raise InputError(
                    "this script opens a DM ('!dm'), but no bot to test is named",
                    hint="set 'user_to_test' in the account file or pass --bot @bot:server",
                )
            return await session.open_dm(
                self.partner, wait_for_join=script.wait_for_join, timeout=self._opening_timeout
            )
        if script.role is Role.ROOM:
            assert script.room is not None
            return await session.join_room(script.room, timeout=self._opening_timeout)
        first = script.steps[0].spec
        need_message = first.action is None
        room = await session.wait_for_room(need_message=need_message, timeout=self._opening_timeout)
        if room is None:
            what = "spoke to us" if need_message else "invited us"
            raise ConversationFailed(
                f"nobody {what} within {self._opening_timeout:g} s (waiting for an invite"
                " and a first message in the bot role)"
            )
        return room

    async def run(self, session: Session) -> ConversationResult:
        result = self.result
        result.user_id = session.user_id
        result.started_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        self._start = time.monotonic()
        # The session adds this task's 429 waiting here; conversations running at
        # once over one session each run in a task (a context) of their own.
        RATE_LIMITED.set(self._waited)
        try:
            result.room_id = await self._open(session)
            self.values.update(
                me=session.user_id,
                bot=self.partner or "",
                room_id=result.room_id,
                run_id=self.run_id,
            )
            for step in self.script.steps:
                try:
                    await self._run_step(session, result.room_id, step)
                except ConversationFailed:
                    failure = result.failure
                    if not (self.go_on_after_wrong_reply and failure and failure.event):
                        raise
                    self._failures.append(failure)
            if self._failures:
                raise ConversationFailed(self._failures[0].reason)
            result.outcome = Outcome.PASSED
            self._note_leftovers(session, result.room_id)
        except ConversationFailed as failed:
            result.outcome = Outcome.FAILED
            if result.failure is not None and all(f is not result.failure for f in self._failures):
                self._failures.append(result.failure)
            if self._failures:
                result.failure, *result.later_failures = self._failures
            elif result.failure is None:
                result.failure = Failure(step_index=None, line=None, reason=failed.reason)
        except InfrastructureError as exc:
            result.outcome = Outcome.ERROR
            current = self._current_step()
            result.failure = Failure(
                step_index=current.index if current else None,
                line=current.line if current else None,
                reason=exc.one_line(),
                path=current.path if current else None,
            )
            if current:
                current.outcome = Outcome.ERROR
                self._charge_rate_limits(current)
                if self.on_step:
                    self.on_step(current)
        except asyncio.CancelledError:
            result.outcome = Outcome.INTERRUPTED
            current = self._current_step()
            if current:
                current.outcome = Outcome.INTERRUPTED
                self._charge_rate_limits(current)
            result.failure = Failure(
                step_index=current.index if current else None,
                line=current.line if current else None,
                reason="interrupted before the conversation finished",
                path=current.path if current else None,
            )
            raise
        finally:
            result.duration = round(time.monotonic() - self._start, 3)
            # In time order: a reply is written down when a step takes it, which for a
            # streamed answer is after its edits (stable: equal times keep their order).
            result.transcript.sort(key=lambda entry: entry.at)
        return result

    def _current_step(self) -> StepResult | None:
        """The first step that has not finished: where an error or interrupt struck.

        None while the room is still being opened: that is nobody's step.
        """
        if self.result.room_id is None:
            return None
        return next((s for s in self.result.steps if s.outcome is Outcome.NOT_RUN), None)

    async def _run_step(self, session: Session, room_id: str, placed: PlacedStep) -> None:
        record = self.result.steps[placed.index]
        deadline = time.monotonic() + record.timeout
        self._edits_in_step = 0
        # The action is filled in first; the expectations after it, so that they
        # may refer to what this very step sent ({NAME.event_id} of its own name).
        # A step without placeholders is as the script wrote it, and so are the
        # descriptions its record was made with.
        action = self._filled(record, placed, placed.action_spec)
        if placed.templated:
            record.send = describe_action(action)
        sent = await self._act(session, room_id, placed, action, deadline, record)
        began = time.monotonic()
        if sent is not None:
            self._known[str(sent.get("event_id"))] = sent
            self._record("sent", sent, placed.index, began)
            if action.name:
                self.named[action.name] = sent
        step = self._filled(record, placed, placed.spec)
        if placed.templated:
            record.expect = describe_expectation(step)
        context = MatchContext(me=session.user_id, step_event=sent, named=self.named)
        steps = _Expecting(self, session, room_id, placed, step, record, context, deadline, began)
        await steps.run()
        record.outcome = Outcome.PASSED
        self._charge_rate_limits(record)
        if self.on_step:
            self.on_step(record)

    def _filled(self, record: StepResult, placed: PlacedStep, spec: Step) -> Step:
        if not placed.templated:
            return spec
        try:
            filled: Step = fill_all(spec, self.values, self._event_ids())
        except Undefined as missing:
            self._fail(record, placed, f"{missing.args[0]} has no value at this point")
        return filled

    async def _act(
        self,
        session: Session,
        room_id: str,
        placed: PlacedStep,
        step: Step,
        deadline: float,
        record: StepResult,
    ) -> Event | None:
        """Do the step's action; return the event it sent, if any."""

        def left() -> float:
            return max(0.001, deadline - time.monotonic())

        try:
            if step.send is not None:
                spec = step.send
                if not isinstance(spec, str) and spec.file is not None:
                    path = Path(placed.path).parent / spec.file
                    filename = spec.filename or path.name
                    mimetype = spec.mimetype or compose.guess_mimetype(filename)
                    url, size = await session.upload(
                        path, mimetype=mimetype, filename=filename, timeout=left()
                    )
                    content = compose.file_content(spec, url, size, mimetype, filename, self.named)
                else:
                    content = compose.message_content(spec, self.named)
                return await session.send_event(room_id, "m.room.message", content, timeout=left())
            if step.react is not None:
                content = compose.reaction_content(step.react, self.named)
                return await session.send_event(room_id, "m.reaction", content, timeout=left())
            if step.edit is not None:
                content = compose.edit_content(step.edit, self.named)
                edit = await session.send_event(room_id, "m.room.message", content, timeout=left())
                original = self.named[step.edit.message]
                self.named[step.edit.message] = (
                    apply_edit(original, edit)
                    if original.get("sender") == session.user_id
                    else original
                )
                return edit
            if step.redact is not None:
                target = step.redact if isinstance(step.redact, str) else step.redact.message
                reason = None if isinstance(step.redact, str) else step.redact.reason
                event_id = compose.event_id_of(target, self.named)
                return await session.redact(room_id, event_id, reason, timeout=left())
            if step.typing is not None:
                on = step.typing is not False
                seconds = 30.0 if isinstance(step.typing, bool) else float(step.typing)
                await session.set_typing(room_id, on, seconds, timeout=left())
            elif step.read_receipt is not None:
                event_id = compose.event_id_of(step.read_receipt, self.named)
                await session.send_read_receipt(room_id, event_id, timeout=left())
            elif step.send_event is not None:
                raw = step.send_event
                return await session.send_event(
                    room_id, raw.type, dict(raw.content), timeout=left()
                )
            elif step.wait is not None:
                await asyncio.sleep(step.wait)  # a pause the script asked for, as long as asked
        except compose.UnknownMessage as missing:
            self._fail(record, placed, f"no message named {missing.args[0]!r} was seen")
        return None

    # ---------------------------------------------------------------- events

    def _take_in(self, reply: Reply, step_index: int) -> Reply | None:
        """File an arriving event: edits change what they edit; others join the inbox."""
        event = reply.event
        target = edit_target(event)
        if target is not None and target in self._known:
            edited = apply_edit(self._known[target], event)
            self._known[target] = edited
            self._edited.add(target)
            for index, waiting in enumerate(self._inbox):
                if waiting.event.get("event_id") == target:
                    self._inbox[index] = Reply(edited, waiting.arrived)
            for name, named in self.named.items():
                if named.get("event_id") == target:
                    self.named[name] = edited
            self._record("received", edited, step_index, reply.arrived, "edited")
            self._edits_in_step += 1
            return None
        event_id = event.get("event_id")
        if isinstance(event_id, str):
            self._known[event_id] = event
        if not self.values.get("bot"):
            # In the mock-bot role the other side is whoever speaks to us first.
            self.values["bot"] = str(event.get("sender", ""))
        self._inbox.append(reply)
        return reply

    async def _pull(
        self, session: Session, room_id: str, until: float, deadline: float, step_index: int
    ) -> Reply | None:
        """Wait for one more event until ``until``; None when none came.

        ``until`` may end before the step's ``deadline`` (a settle or edit-grace
        window): a homeserver slow to say it is still there is then given the
        rest of the step's time, not counted as lost.
        """
        now = time.monotonic()
        remaining = until - now
        if remaining <= 0:
            return None
        patience = max(0.0, deadline - now - remaining)
        reply = await session.next_event(room_id, timeout=remaining, patience=patience)
        if reply is None:
            return None
        self._take_in(reply, step_index)
        return reply

    def _fail(self, record: StepResult, placed: PlacedStep, reason: str, **facts: Any) -> Any:
        record.outcome = Outcome.FAILED
        self._charge_rate_limits(record)
        self.result.failure = Failure(
            step_index=placed.index,
            line=placed.line,
            reason=reason,
            path=placed.path if placed.path != self.script.path else None,
            **facts,
        )
        if self.on_step:
            self.on_step(record)
        raise ConversationFailed(reason)

    def _note_leftovers(self, session: Session, room_id: str) -> None:
        """Events nobody expected are shown in the transcript (not a failure: they may race).

        In an ``OpenRoom`` they stay for the next script, as in a longer script.
        """
        if self.room is not None:
            return
        for reply in session.pending_events(room_id):
            self._take_in(reply, -1)
        for reply in self._inbox:
            self._record("received", reply.event, None, reply.arrived)
        self._inbox.clear()


class _Expecting:
    """The expectation half of one step."""

    def __init__(
        self,
        conversation: Conversation,
        session: Session,
        room_id: str,
        placed: PlacedStep,
        step: Step,
        record: StepResult,
        context: MatchContext,
        deadline: float,
        began: float,
    ) -> None:
        self.c = conversation
        self.session = session
        self.room_id = room_id
        self.placed = placed
        self.step = step
        self.record = record
        self.context = context
        self.deadline = deadline
        self.began = began
        # The script's rules are filled in like the step (the step's own already are).
        script_ignore = conversation.script.ignore
        if script_ignore:
            script_ignore = fill_all(
                list(script_ignore), conversation.values, conversation._event_ids()
            )
        self.ignore = [*script_ignore, *(_expectations(step.ignore))]

    async def run(self) -> None:
        step = self.step
        if step.expect is not None or step.expect_unordered is not None:
            placed = self.placed
            expectations = placed.expectations if step is placed.spec else step.expectations()
            if step.expect is not None:
                await self._expect_in_order(expectations)
            else:
                await self._expect_any_order(expectations)
        elif step.expect_count is not None:
            await self._expect_in_order([Expectation()] * step.expect_count)
        elif step.expect_no_reply is not None:
            await self._quiet(step.expect_no_reply, "expect_no_reply")
            return
        if step.settle is not None:
            await self._quiet(step.settle, "settle")

    # -- taking events

    def _ignored(self, event: Event) -> bool:
        return any(evaluate(rule, event, self.context).ok for rule in self.ignore)

    async def _next_of(self, types: set[str]) -> Reply | None:
        """The next inbox event of one of ``types``, waiting for it until the deadline."""
        c = self.c
        while True:
            for reply in list(c._inbox):
                if self._ignored(reply.event):
                    c._inbox.remove(reply)
                    c._record("received", reply.event, self.placed.index, reply.arrived, "ignored")
                    continue
                if reply.event.get("type") in types:
                    c._inbox.remove(reply)
                    return reply
            if not await c._pull(
                self.session, self.room_id, self.deadline, self.deadline, self.placed.index
            ):
                return None

    def _accept(self, expectation: Expectation, reply: Reply, verdict: Verdict, at: float) -> None:
        c = self.c
        message = c._record("received", reply.event, self.placed.index, reply.arrived)
        c.values.update(verdict.captures)
        if expectation.name:
            c.named[expectation.name] = reply.event
        self.record.received = message
        self.record.latency = round(max(0.0, at - self.began), 3)
        if self.step.within is not None and at - self.began > self.step.within:
            self.c._fail(
                self.record,
                self.placed,
                f"the reply came after {at - self.began:.2f} s; within: {self.step.within:g} s",
                expected=_text_of(expectation),
                received=message_of(reply.event),
                waited=round(at - self.began, 3),
            )

    async def _downloadable(self, expectation: Expectation, reply: Reply) -> None:
        media = expectation.media
        if media is None or not media.downloadable:
            return
        url = str((reply.event.get("content") or {}).get("url") or "")
        remaining = max(0.001, self.deadline - time.monotonic())
        size = await self.session.download_size(url, timeout=remaining) if url else -1
        if size < 0:
            self.c._fail(
                self.record,
                self.placed,
                f"the content URL {url or '(none)'} cannot be downloaded",
                expected=_text_of(expectation),
                received=message_of(reply.event),
            )

    async def _judge(self, expectation: Expectation, reply: Reply) -> tuple[Reply, Verdict, float]:
        """Match a reply, giving a non-matching one a grace for edits (streamed answers)."""
        c = self.c
        verdict = evaluate(expectation, reply.event, self.context)
        matched_at = reply.arrived
        event_id = str(reply.event.get("event_id", ""))
        grace_until = min(self.deadline, time.monotonic() + EDIT_GRACE)
        paused_over = False
        while not verdict.ok and time.monotonic() < grace_until:
            c._edited.discard(event_id)
            pulled = await c._pull(
                self.session, self.room_id, grace_until, self.deadline, self.placed.index
            )
            if pulled is None:
                if paused_over:
                    break
                # Once: edits the server had by now, and a grace that ran out during a
                # pause (of the server, say, so the bot could not edit) starts again.
                paused_over = True
                late = time.monotonic() - grace_until > LATE_BY
                await self._catch_up()
                if late:
                    grace_until = min(self.deadline, time.monotonic() + EDIT_GRACE)
                elif event_id not in c._edited:
                    break
                pulled = Reply(reply.event, time.monotonic())  # an edit, if any, came now
            if event_id in c._edited:
                reply = Reply(c._known[event_id], reply.arrived)
                verdict = evaluate(expectation, reply.event, self.context)
                matched_at = pulled.arrived  # the edit's arrival: 'within' judges arrival times
                grace_until = min(self.deadline, time.monotonic() + EDIT_GRACE)
        return reply, verdict, matched_at

    # -- the kinds of expectation

    async def _expect_in_order(self, expectations: list[Expectation]) -> None:
        for item, expectation in enumerate(expectations):
            reply = await self._next_of({expectation.event_type})
            if reply is None:
                self._timed_out(expectation)
            assert reply is not None
            reply, verdict, at = await self._judge(expectation, reply)
            if not verdict.ok:
                self._mismatch(expectation, reply, verdict, item=item)
            self._accept(expectation, reply, verdict, at)
            await self._downloadable(expectation, reply)

    async def _expect_any_order(self, expectations: list[Expectation]) -> None:
        remaining = list(expectations)
        while remaining:
            reply = await self._next_of({e.event_type for e in remaining})
            if reply is None:
                self._timed_out(remaining[0], unordered=len(remaining))
            assert reply is not None
            verdicts = [(e, evaluate(e, reply.event, self.context)) for e in remaining]
            fits = [(e, v) for e, v in verdicts if v.ok]
            if not fits:
                # Perhaps it is being edited into one of them.
                best = max(verdicts, key=lambda ev: ev[1].passed / max(1, ev[1].checks))
                reply, verdict, at = await self._judge(best[0], reply)
                if not verdict.ok:
                    self._mismatch(best[0], reply, verdict, unordered=len(remaining))
                fits = [(best[0], verdict)]
            else:
                at = reply.arrived
            expectation, verdict = fits[0]
            remaining.remove(expectation)
            self._accept(expectation, reply, verdict, at)
            await self._downloadable(expectation, reply)

    async def _quiet(self, seconds: float, key: str) -> None:
        """Nothing new from the other side for ``seconds`` (edits and ignored noise aside).

        Events that arrived before this step's action are not answers to it: they
        stay for later steps (or the transcript's unexpected ones).
        """
        c = self.c
        until = time.monotonic() + seconds
        # The window's end on the server's clock (taken to agree with ours), for
        # events that come only after a pause over the end: see below.
        until_ms = (time.time() + seconds) * 1000
        caught_up = False
        while True:
            for reply in [r for r in c._inbox if r.arrived >= self.began]:
                if caught_up and _sent_after(reply.event, until_ms):
                    continue  # after the window: left for later steps, or shown as unexpected
                c._inbox.remove(reply)
                if self._ignored(reply.event):
                    c._record("received", reply.event, self.placed.index, reply.arrived, "ignored")
                    continue
                c._record("received", reply.event, self.placed.index, reply.arrived)
                c._fail(
                    self.record,
                    self.placed,
                    f"{key}: expected nothing for {seconds:g} s, but a reply came",
                    expected="nothing",
                    received=message_of(reply.event),
                    waited=round(reply.arrived - self.began, 3),
                )
            if caught_up:
                return
            pulled = await c._pull(
                self.session, self.room_id, until, self.deadline, self.placed.index
            )
            if pulled is None:
                # A pause over the end may hold back a reply that the server had in time:
                # take in what it had by now, judged by its timestamps (above).
                caught_up = True
                await self._catch_up()

    async def _catch_up(self) -> None:
        """Take in all the server had by now (see Session.caught_up)."""
        c = self.c
        timeout = max(CATCH_UP, self.deadline - time.monotonic())
        await self.session.caught_up(timeout=timeout)
        for reply in self.session.pending_events(self.room_id):
            c._take_in(reply, self.placed.index)

    # -- failures

    def _timed_out(self, expectation: Expectation, unordered: int = 0) -> None:
        c = self.c
        waited = round(time.monotonic() - self.began, 3)
        reason = f"no reply within {self.record.timeout:g} s"
        if unordered > 1:
            reason = (
                f"{unordered} of the expected replies did not come within {self.record.timeout:g} s"
            )
        facts: dict[str, Any] = {}
        others = [r.event for r in c._inbox if r.arrived >= self.began]
        best = closest(expectation, others, self.context) if others else None
        if best is not None:
            # Something came, just not of the expected type: show the nearest thing.
            event, verdict = best
            reason += f" (what came instead: {event.get('type')})"
            facts = {"received": message_of(event), "problems": verdict.problems}
        elif c._edits_in_step:
            reason += (
                " (an earlier message was edited instead: expect the edited text in the"
                " step that receives the message)"
            )
        c._fail(
            self.record, self.placed, reason, expected=_text_of(expectation), waited=waited, **facts
        )

    def _mismatch(
        self,
        expectation: Expectation,
        reply: Reply,
        verdict: Verdict,
        unordered: int = 0,
        item: int | None = None,
    ) -> None:
        c = self.c
        c._record("received", reply.event, self.placed.index, reply.arrived)
        self.record.received = message_of(reply.event)
        self.record.latency = round(max(0.0, reply.arrived - self.began), 3)
        reason = "wrong reply"
        if unordered:
            reason = f"a reply that fits none of the {unordered} expected"
        elif reply.arrived < self.began and self.step.action is not None:
            reason += " (it arrived before this step's action: an extra reply?)"
        c._fail(
            self.record,
            self.placed,
            reason,
            expected=_text_of(expectation),
            received=message_of(reply.event),
            waited=round(max(0.0, reply.arrived - self.began), 3),
            diff=verdict.diff,
            problems=verdict.problems,
            item=item,
            event=reply.event,
        )


def _expectations(specs: Sequence[Any] | None) -> list[Expectation]:
    from matrix_bot_tester.language import as_expectation

    return [as_expectation(spec) for spec in specs or []]


def _text_of(expectation: Expectation) -> str:
    """The expectation as the report shows it: the text for a plain one, else its keys."""
    dumped = expectation.model_dump(exclude_defaults=True)
    if set(dumped) == {"body"} and isinstance(expectation.body, str):
        return expectation.body
    return json.dumps(dumped, ensure_ascii=False)


__all__ = ["Conversation", "ConversationFailed", "Reply", "Session"]
