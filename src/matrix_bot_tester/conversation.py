"""Walk a script's steps over a Session: send, wait with deadlines, build the result.

This room owns the conversation's rules (what a step means, what counts as a
failure, how long to wait) and never speaks Matrix itself: it talks to the
``Session`` protocol, so the rules can be tested with a fake session and the
real one can be swapped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from matrix_bot_tester.errors import InfrastructureError, InputError
from matrix_bot_tester.matching import Event, Message, match_body
from matrix_bot_tester.result import (
    ConversationResult,
    Failure,
    Outcome,
    StepResult,
    TranscriptEntry,
)
from matrix_bot_tester.script import Role, Script, Step


@dataclass(frozen=True)
class Reply:
    """A message from someone else, with the moment it reached us (monotonic clock)."""

    event: Event
    arrived: float


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

    async def send_text(self, room_id: str, body: str, *, timeout: float) -> Event:
        """Send a plain text message; return the event as sent (with its event_id)."""
        ...

    async def next_reply(self, room_id: str, *, timeout: float) -> Reply | None:
        """The next reply in the room, in order, or None when the deadline passes."""
        ...

    def pending_replies(self, room_id: str) -> list[Reply]:
        """Replies that arrived and were not consumed, without waiting."""
        ...


StepListener = Callable[[StepResult], None]


class Conversation:
    """One run of one script. ``result`` is kept up to date, so an interrupted run still reports."""

    def __init__(
        self,
        script: Script,
        *,
        partner: str | None,
        timeout_override: float | None = None,
        on_step: StepListener | None = None,
    ) -> None:
        self.script = script
        self.partner = partner
        self.timeout_override = timeout_override
        self.on_step = on_step
        self.result = ConversationResult(
            script_path=script.path,
            name=script.name,
            role=script.role.value,
            partner=partner,
            steps=[
                StepResult(
                    index=step.index,
                    line=step.line,
                    send=step.send,
                    expect=step.expect,
                    outcome=Outcome.NOT_RUN,
                    timeout=script.step_timeout(step, timeout_override),
                )
                for step in script.steps
            ],
        )
        self._start = 0.0

    def _elapsed(self, moment: float | None = None) -> float:
        return round((moment if moment is not None else time.monotonic()) - self._start, 3)

    def _record(self, direction: str, message: Message, step: int | None, moment: float) -> None:
        self.result.transcript.append(
            TranscriptEntry(
                at=self._elapsed(moment), direction=direction, message=message, step_index=step
            )
        )

    @property
    def _opening_timeout(self) -> float:
        """How long to wait for the room itself: the first step's deadline."""
        return self.script.step_timeout(self.script.steps[0], self.timeout_override)

    async def _open(self, session: Session) -> str:
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
        need_message = script.steps[0].send is None
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
        result.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._start = time.monotonic()
        try:
            result.room_id = await self._open(session)
            for step in self.script.steps:
                await self._run_step(session, result.room_id, step)
            result.outcome = Outcome.PASSED
            self._note_leftovers(session, result.room_id)
        except ConversationFailed as failed:
            result.outcome = Outcome.FAILED
            if result.failure is None:
                result.failure = Failure(step_index=None, line=None, reason=failed.reason)
        except InfrastructureError as exc:
            result.outcome = Outcome.ERROR
            current = self._current_step()
            result.failure = Failure(
                step_index=current.index if current else None,
                line=current.line if current else None,
                reason=exc.one_line(),
            )
            if current:
                current.outcome = Outcome.ERROR
                if self.on_step:
                    self.on_step(current)
        except asyncio.CancelledError:
            result.outcome = Outcome.INTERRUPTED
            current = self._current_step()
            if current:
                current.outcome = Outcome.INTERRUPTED
            result.failure = Failure(
                step_index=current.index if current else None,
                line=current.line if current else None,
                reason="interrupted before the conversation finished",
            )
            raise
        finally:
            result.duration = round(time.monotonic() - self._start, 3)
        return result

    def _current_step(self) -> StepResult | None:
        """The first step that has not finished: where an error or interrupt struck.

        None while the room is still being opened: that is nobody's step.
        """
        if self.result.room_id is None:
            return None
        return next((s for s in self.result.steps if s.outcome is Outcome.NOT_RUN), None)

    async def _run_step(self, session: Session, room_id: str, step: Step) -> None:
        record = self.result.steps[step.index]
        timeout = record.timeout
        began = time.monotonic()
        if step.send is not None:
            sent = await session.send_text(room_id, step.send, timeout=timeout)
            began = time.monotonic()
            self._record("sent", Message.from_event(sent), step.index, began)
        if step.expect is not None:
            reply = await session.next_reply(room_id, timeout=timeout)
            if reply is None:
                waited = round(time.monotonic() - began, 3)
                self._fail(
                    record,
                    Failure(
                        step_index=step.index,
                        line=step.line,
                        reason=f"no reply within {timeout:g} s",
                        expected=step.expect,
                        waited=waited,
                    ),
                )
            assert reply is not None
            message = Message.from_event(reply.event)
            self._record("received", message, step.index, reply.arrived)
            record.received = message
            record.latency = round(max(0.0, reply.arrived - began), 3)
            mismatch = match_body(step.expect, reply.event)
            if mismatch is not None:
                reason = "wrong reply"
                if reply.arrived < began and step.send is not None:
                    reason += " (it arrived before this step's message was sent: an extra reply?)"
                self._fail(
                    record,
                    Failure(
                        step_index=step.index,
                        line=step.line,
                        reason=reason,
                        expected=step.expect,
                        received=message,
                        waited=record.latency,
                        diff=mismatch.diff,
                    ),
                )
        record.outcome = Outcome.PASSED
        if self.on_step:
            self.on_step(record)

    def _fail(self, record: StepResult, failure: Failure) -> None:
        record.outcome = Outcome.FAILED
        self.result.failure = failure
        if self.on_step:
            self.on_step(record)
        raise ConversationFailed(failure.reason)

    def _note_leftovers(self, session: Session, room_id: str) -> None:
        """Replies nobody expected are shown in the transcript (not a failure: they may race)."""
        for reply in session.pending_replies(room_id):
            self._record("received", Message.from_event(reply.event), None, reply.arrived)
