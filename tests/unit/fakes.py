"""What the unit tests share: a fake Session, recorded events, and result builders.

The conversation, engine and API tests all run ``Conversation`` over ``FakeSession``:
a Session that answers at once. Each room has a queue of scripted events, handed out
in order, one per ``next_event``; an empty queue is silence (``None`` at once), so no
test sleeps. A text in the queue becomes a recorded ``m.notice`` from the bot, an event
dict arrives when it is asked for, and a ``Reply`` keeps the arrival time it was built
with (which is how latency limits are tested). Every call is recorded with what it was
given, timeouts as they came, for the tests to check.

The matcher tests read events recorded from a real Synapse with ``event``.

The report tests build ``ConversationResult`` values by hand from ``mine``, ``bots``
and ``step``, so that every report is checked against the same kind of messages.
"""

from __future__ import annotations

import copy
import json
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from matrix_bot_tester.conversation import Reply, Session
from matrix_bot_tester.matching import Event, Message
from matrix_bot_tester.result import Outcome, StepResult

EVENTS = Path(__file__).parent.parent / "data" / "events"
ALICE = "@alice:synapse-test.localhost"  # the tester's side in the recorded events
ME = "@tester:synapse-test.localhost"
BOT = "@bot:synapse-test.localhost"
ROOM = "!conversation:synapse-test.localhost"
UPLOADED = "mxc://synapse-test.localhost/uploaded"

Scripted = str | Event | Reply


def event(name: str) -> dict[str, Any]:
    """The recorded event ``tests/data/events/<name>.json``, a fresh copy each call."""
    data: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    return data


def with_content(name: str, content: Any) -> dict[str, Any]:
    """The recorded event ``name`` with other content."""
    changed = event(name)
    changed["content"] = content
    return changed


# A recorded m.notice from the bot is the template of every scripted text reply.
NOTICE: Event = event("notice")


def bot_says(body: str, *, arrived: float | None = None, msgtype: str = "m.notice") -> Reply:
    """The bot's ``body`` as a recorded notice, arriving now or at ``arrived``."""
    notice = copy.deepcopy(NOTICE)
    notice["content"] = {"msgtype": msgtype, "body": body}
    notice["event_id"] = f"${body}-{id(notice)}"
    return Reply(event=notice, arrived=time.monotonic() if arrived is None else arrived)


class FakeSession:
    """A Session whose replies are scripted per room; an empty queue is a timeout, at once."""

    def __init__(
        self,
        replies: Iterable[Scripted] = (),
        *,
        room: str | None = ROOM,
        fail_on_send: dict[str, BaseException] | None = None,
        fail_on_open: Exception | None = None,
        download_size: int | None = None,
    ) -> None:
        """``room`` None: no room is ever found; ``download_size`` None: any mxc:// is 68 bytes."""
        self.room = room
        self.queues: dict[str, deque[Scripted]] = {}
        if room is not None:
            self.queues[room] = deque(replies)
        self.fail_on_send = fail_on_send or {}
        self.fail_on_open = fail_on_open
        self.size = download_size
        self.calls: list[tuple[Any, ...]] = []
        self.patience: list[float] = []  # next_event's, call by call
        # Each event sent, as (type, content); ``bodies`` has just their texts.
        self.sent: list[tuple[str, dict[str, Any]]] = []

    @property
    def user_id(self) -> str:
        return ME

    @property
    def queue(self) -> deque[Scripted]:
        """The scripted events of the session's room not handed out yet."""
        assert self.room is not None
        return self.queues[self.room]

    @property
    def bodies(self) -> list[str]:
        """The text of every event sent, in order."""
        return [str(content.get("body", "")) for _, content in self.sent]

    def calls_to(self, name: str) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if call[0] == name]

    def _opened(self) -> str:
        if self.fail_on_open is not None:
            raise self.fail_on_open
        assert self.room is not None
        return self.room

    async def open_dm(self, partner: str, *, wait_for_join: bool, timeout: float) -> str:
        self.calls.append(("open_dm", partner, wait_for_join, timeout))
        return self._opened()

    async def join_room(self, room: str, *, timeout: float) -> str:
        self.calls.append(("join_room", room, timeout))
        return self._opened()

    async def wait_for_room(self, *, need_message: bool, timeout: float) -> str | None:
        self.calls.append(("wait_for_room", need_message, timeout))
        return self.room

    async def send_event(
        self, room_id: str, event_type: str, content: dict[str, Any], *, timeout: float
    ) -> Event:
        body = str(content.get("body", ""))
        self.calls.append(("send_event", room_id, body, timeout))
        if body in self.fail_on_send:
            raise self.fail_on_send[body]
        self.sent.append((event_type, content))
        return {
            "type": event_type,
            "event_id": f"$sent-{len(self.sent)}",
            "sender": ME,
            "room_id": room_id,
            "origin_server_ts": 1_700_000_000_000,
            "content": content,
        }

    async def redact(
        self, room_id: str, event_id: str, reason: str | None, *, timeout: float
    ) -> Event:
        self.calls.append(("redact", room_id, event_id, reason))
        return {
            "type": "m.room.redaction",
            "event_id": f"$redaction-of-{event_id}",
            "sender": ME,
            "redacts": event_id,
            "content": {"redacts": event_id},
        }

    async def set_typing(
        self, room_id: str, typing: bool, seconds: float, *, timeout: float
    ) -> None:
        self.calls.append(("set_typing", room_id, typing, seconds))

    async def send_read_receipt(self, room_id: str, event_id: str, *, timeout: float) -> None:
        self.calls.append(("send_read_receipt", room_id, event_id))

    async def upload(
        self, path: Path, *, mimetype: str, filename: str, timeout: float
    ) -> tuple[str, int]:
        self.calls.append(("upload", path.name, mimetype, filename))
        return UPLOADED, 68  # what a real upload would report

    async def download_size(self, mxc: str, *, timeout: float) -> int:
        self.calls.append(("download_size", mxc))
        if self.size is not None:
            return self.size
        return 68 if mxc.startswith("mxc://") else -1

    async def next_event(
        self, room_id: str, *, timeout: float, patience: float = 0.0
    ) -> Reply | None:
        self.calls.append(("next_event", room_id, timeout))
        self.patience.append(patience)
        queue = self.queues.get(room_id)
        return self._arrive(queue.popleft()) if queue else None

    async def caught_up(self, *, timeout: float) -> bool:
        self.calls.append(("caught_up", timeout))
        return True  # what was scripted to arrive is in the queue

    def pending_events(self, room_id: str) -> list[Reply]:
        queue = self.queues.get(room_id, deque())
        pending = [self._arrive(item) for item in queue]
        queue.clear()
        return pending

    @staticmethod
    def _arrive(item: Scripted) -> Reply:
        if isinstance(item, str):
            return bot_says(item)
        return item if isinstance(item, Reply) else Reply(item, time.monotonic())


def rounded(call: tuple[Any, ...]) -> tuple[Any, ...]:
    """A call whose last item, a timeout, is rounded off to tenths.

    Deadlines reach the session as what is left of them, a few microseconds short;
    tests that check which deadline a wait used compare the rounded value.
    """
    return (*call[:-1], round(call[-1], 1))


_protocol_check: type[Session] = FakeSession  # mypy: the fake keeps the Session protocol


# ------------------------------------------------------------------- results


def mine(body: str) -> Message:
    """A text message of ours, as a transcript shows it."""
    content = {"msgtype": "m.text", "body": body}
    return Message(f"$me-{body}", ME, "m.text", body, timestamp_ms=1, content=content)


def bots(body: str) -> Message:
    """A notice from the bot, as a transcript shows it."""
    content = {"msgtype": "m.notice", "body": body}
    return Message(f"$bot-{body}", BOT, "m.notice", body, timestamp_ms=2, content=content)


def step(
    index: int, line: int, send: str | None, expect: str | None, outcome: Outcome
) -> StepResult:
    """The result of one step with the default 30 s deadline."""
    return StepResult(index, line, send, expect, outcome, timeout=30.0)
