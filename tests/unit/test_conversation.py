"""The conversation's rules, driven over a fake Session that answers instantly."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from matrix_bot_tester.conversation import Conversation, Reply, Session
from matrix_bot_tester.errors import InfrastructureError, InputError
from matrix_bot_tester.matching import Event
from matrix_bot_tester.result import ConversationResult, Outcome, StepResult, exit_code
from matrix_bot_tester.script import Script, load_script, parse_script

# The original tool's files, byte for byte (also in /work/shared/seed/original-test-data).
SEED = Path(__file__).parent.parent / "data" / "original"
EVENTS = Path(__file__).parent.parent / "data" / "events"
ME = "@tester:synapse-test.localhost"
BOT = "@bot:synapse-test.localhost"
ROOM = "!conversation:synapse-test.localhost"
# A recorded m.notice from the bot is the template of every scripted reply.
NOTICE: Event = json.loads((EVENTS / "notice.json").read_text(encoding="utf-8"))


def bot_says(body: str, *, arrived: float | None = None, msgtype: str = "m.notice") -> Reply:
    event = copy.deepcopy(NOTICE)
    event["content"] = {"msgtype": msgtype, "body": body}
    event["event_id"] = f"${body}-{id(event)}"
    return Reply(event=event, arrived=time.monotonic() if arrived is None else arrived)


class FakeSession:
    """A Session whose replies are scripted per room; an empty queue is a timeout, at once."""

    def __init__(
        self,
        replies: list[str | Reply] | None = None,
        *,
        room: str | None = ROOM,
        fail_on_send: dict[str, BaseException] | None = None,
        fail_on_open: Exception | None = None,
    ) -> None:
        self.room = room
        # A text becomes a reply arriving when it is asked for; a Reply keeps its own time.
        self.queues: dict[str, deque[str | Reply]] = {}
        if room is not None:
            self.queues[room] = deque(replies or [])
        self.fail_on_send = fail_on_send or {}
        self.fail_on_open = fail_on_open
        self.calls: list[tuple[Any, ...]] = []
        self.sent: list[str] = []

    @property
    def user_id(self) -> str:
        return ME

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
        # Deadlines reach the session as what is left of them: round off the microseconds.
        self.calls.append(("send_event", room_id, body, round(timeout, 1)))
        if body in self.fail_on_send:
            raise self.fail_on_send[body]
        self.sent.append(body)
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
            "event_id": "$redaction",
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
        return "mxc://synapse-test.localhost/uploaded", 68  # what a real upload would report

    async def download_size(self, mxc: str, *, timeout: float) -> int:
        self.calls.append(("download_size", mxc))
        return 68 if mxc.startswith("mxc://") else -1

    async def next_event(self, room_id: str, *, timeout: float) -> Reply | None:
        self.calls.append(("next_event", room_id, round(timeout, 1)))
        queue = self.queues.get(room_id)
        return self._arrive(queue.popleft()) if queue else None

    @staticmethod
    def _arrive(reply: str | Reply) -> Reply:
        return bot_says(reply) if isinstance(reply, str) else reply

    def pending_events(self, room_id: str) -> list[Reply]:
        queue = self.queues.get(room_id, deque())
        pending = [self._arrive(reply) for reply in queue]
        queue.clear()
        return pending


def run(
    script: Script,
    session: FakeSession,
    *,
    partner: str | None = BOT,
    timeout_override: float | None = None,
    seen: list[StepResult] | None = None,
) -> ConversationResult:
    on_step = seen.append if seen is not None else None
    conversation = Conversation(
        script, partner=partner, timeout_override=timeout_override, on_step=on_step
    )
    fake: Session = session  # the fake must satisfy the protocol (checked by mypy)
    return asyncio.run(conversation.run(fake))


def outcomes(result: ConversationResult) -> list[Outcome]:
    return [step.outcome for step in result.steps]


CLIENT_REPLAY = load_script(SEED / "client-replay.yaml")
CLIENT_REPLIES: list[str | Reply] = ["Bar", "Baz", "Baz", "hrm"]


# ------------------------------------------------------------------- passing


def test_client_replay_passes_when_the_bot_answers_right() -> None:
    result = run(CLIENT_REPLAY, FakeSession(CLIENT_REPLIES))
    assert result.outcome is Outcome.PASSED
    assert result.failure is None
    assert outcomes(result) == [Outcome.PASSED] * 4


def test_passing_result_names_room_user_and_partner() -> None:
    result = run(CLIENT_REPLAY, FakeSession(CLIENT_REPLIES))
    assert (result.room_id, result.user_id, result.partner) == (ROOM, ME, BOT)
    assert (result.name, result.role) == ("client-replay", "client")
    assert result.script_path == str(SEED / "client-replay.yaml")
    assert result.started_at.endswith("+00:00")
    assert result.duration >= 0


def test_client_role_opens_a_dm_with_the_partner() -> None:
    session = FakeSession(CLIENT_REPLIES)
    run(CLIENT_REPLAY, session)
    assert session.calls[0] == ("open_dm", BOT, True, 30.0)


def test_client_role_sends_the_scripts_messages_in_order() -> None:
    session = FakeSession(CLIENT_REPLIES)
    run(CLIENT_REPLAY, session)
    assert session.sent == ["Foo", "Lol", "hmm"]


def test_room_role_joins_the_named_room() -> None:
    script = parse_script("room_to_connect: '#bots:example.org'\nmessages:\n  - send: hi\n")
    session = FakeSession()
    result = run(script, session)
    assert result.outcome is Outcome.PASSED
    assert session.calls[0] == ("join_room", "#bots:example.org", 30.0)


def test_bot_role_passes_on_the_seed_bot_replay() -> None:
    session = FakeSession(["Foo", "Lol", "hmm"])
    result = run(load_script(SEED / "bot-replay.yaml"), session, partner=None)
    assert result.outcome is Outcome.PASSED
    assert session.calls[0] == ("wait_for_room", True, 30.0)
    assert session.sent == ["Bar", "Baz", "Baz", "hrm"]


def test_bot_role_that_speaks_first_waits_only_for_an_invite() -> None:
    session = FakeSession()
    run(parse_script("room_to_connect: '!wait_for_message'\nmessages:\n  - send: hi\n"), session)
    assert session.calls[0] == ("wait_for_room", False, 30.0)


def test_each_wait_uses_the_steps_deadline() -> None:
    script = parse_script(
        "timeout: 4\nmessages:\n  - send: a\n    expect: b\n    timeout: 1.5\n  - expect: c\n"
    )
    session = FakeSession(["b", "c"])
    result = run(script, session)
    waits = [call for call in session.calls if call[0] in ("send_event", "next_event")]
    assert waits == [
        ("send_event", ROOM, "a", 1.5),
        ("next_event", ROOM, 1.5),
        ("next_event", ROOM, 4.0),
    ]
    assert [step.timeout for step in result.steps] == [1.5, 4.0]


def test_command_line_timeout_reaches_the_session() -> None:
    session = FakeSession(["b"])
    run(parse_script("messages:\n  - expect: b\n"), session, timeout_override=2)
    assert session.calls[-1] == ("next_event", ROOM, 2.0)


def test_passing_step_records_what_was_received_and_how_fast() -> None:
    result = run(CLIENT_REPLAY, FakeSession(CLIENT_REPLIES))
    first = result.steps[0]
    assert first.received is not None
    assert (first.received.body, first.received.sender) == ("Bar", BOT)
    assert first.latency is not None
    assert 0 <= first.latency < 1


def test_send_only_step_has_no_reply_and_no_latency() -> None:
    result = run(parse_script("messages:\n  - send: hi\n"), FakeSession())
    assert (result.steps[0].received, result.steps[0].latency) == (None, None)


# ---------------------------------------------------------------- transcript


def test_transcript_is_in_conversation_order_with_step_indices() -> None:
    result = run(CLIENT_REPLAY, FakeSession(CLIENT_REPLIES))
    assert [(e.direction, e.message.body, e.step_index) for e in result.transcript] == [
        ("sent", "Foo", 0),
        ("received", "Bar", 0),
        ("received", "Baz", 1),
        ("sent", "Lol", 2),
        ("received", "Baz", 2),
        ("sent", "hmm", 3),
        ("received", "hrm", 3),
    ]


def test_transcript_names_who_said_what() -> None:
    result = run(CLIENT_REPLAY, FakeSession(CLIENT_REPLIES))
    assert [e.message.sender for e in result.transcript[:2]] == [ME, BOT]
    assert result.transcript[1].message.msgtype == "m.notice"


def test_transcript_times_do_not_go_backwards() -> None:
    result = run(CLIENT_REPLAY, FakeSession(CLIENT_REPLIES))
    times = [entry.at for entry in result.transcript]
    assert times == sorted(times)
    assert times[0] >= 0


def test_leftover_replies_are_shown_as_unexpected_but_do_not_fail() -> None:
    result = run(CLIENT_REPLAY, FakeSession([*CLIENT_REPLIES, "one more", "and another"]))
    assert result.outcome is Outcome.PASSED
    assert result.failure is None
    leftovers = [(e.direction, e.message.body, e.step_index) for e in result.transcript[-2:]]
    assert leftovers == [("received", "one more", None), ("received", "and another", None)]
    assert len(result.transcript) == 9


# ------------------------------------------------------------------ failures


def test_wrong_reply_fails_with_line_expected_received_and_diff() -> None:
    result = run(CLIENT_REPLAY, FakeSession(["Bar", "Qux"]))
    assert result.outcome is Outcome.FAILED
    failure = result.failure
    assert failure is not None
    assert (failure.step_index, failure.line, failure.reason) == (1, 4, "wrong reply")
    assert failure.expected == "Baz"
    assert failure.received is not None
    assert (failure.received.body, failure.received.sender) == ("Qux", BOT)
    assert failure.diff == (
        "- expected: 'Baz'\n+ received: 'Qux'\n  first difference at character 1"
    )
    assert failure.waited is not None


def test_steps_after_a_failure_are_not_run() -> None:
    session = FakeSession(["Bar", "Qux"])
    result = run(CLIENT_REPLAY, session)
    assert outcomes(result) == [Outcome.PASSED, Outcome.FAILED, Outcome.NOT_RUN, Outcome.NOT_RUN]
    assert session.sent == ["Foo"]


def test_wrong_reply_is_still_in_the_transcript() -> None:
    result = run(CLIENT_REPLAY, FakeSession(["Bar", "Qux"]))
    assert [(e.message.body, e.step_index) for e in result.transcript] == [
        ("Foo", 0),
        ("Bar", 0),
        ("Qux", 1),
    ]


def test_reply_that_came_before_our_message_is_called_an_extra_reply() -> None:
    early = bot_says("Bar again", arrived=time.monotonic() - 10)
    result = run(CLIENT_REPLAY, FakeSession(["Bar", "Baz", early]))
    assert result.failure is not None
    assert result.failure.step_index == 2
    assert "arrived before this step's action: an extra reply?" in result.failure.reason
    assert result.steps[2].latency == 0


def test_silent_bot_fails_with_no_reply_within_the_timeout() -> None:
    result = run(CLIENT_REPLAY, FakeSession([]), timeout_override=2)
    assert result.outcome is Outcome.FAILED
    failure = result.failure
    assert failure is not None
    assert failure.reason == "no reply within 2 s"
    assert (failure.step_index, failure.line, failure.expected) == (0, 2, "Bar")
    assert failure.received is None
    assert failure.waited is not None
    assert outcomes(result) == [Outcome.FAILED] + [Outcome.NOT_RUN] * 3


def test_silence_uses_the_default_thirty_seconds_in_the_reason() -> None:
    result = run(parse_script("messages:\n  - expect: hi\n"), FakeSession([]))
    assert result.failure is not None
    assert result.failure.reason == "no reply within 30 s"


def test_silence_after_the_last_expectation_is_fine() -> None:
    # A send-only last step does not wait for anything.
    result = run(
        load_script(SEED / "client-replay-matrix-addapter-test.yaml"), FakeSession(["message"])
    )
    assert result.outcome is Outcome.PASSED


def test_client_role_without_partner_is_an_input_error_and_sends_nothing() -> None:
    session = FakeSession(CLIENT_REPLIES)
    with pytest.raises(InputError) as caught:
        run(CLIENT_REPLAY, session, partner=None)
    assert "no bot to test is named" in str(caught.value)
    assert caught.value.exit_code == 2
    assert session.calls == []


def test_bot_role_with_nobody_speaking_fails() -> None:
    script = load_script(SEED / "bot-replay.yaml")
    result = run(script, FakeSession(room=None), partner=None)
    assert result.outcome is Outcome.FAILED
    assert result.failure is not None
    assert result.failure.reason.startswith("nobody spoke to us within 30 s")
    assert (result.failure.step_index, result.failure.line) == (None, None)
    assert outcomes(result) == [Outcome.NOT_RUN] * 7
    assert result.room_id is None


def test_bot_role_with_nobody_inviting_says_so() -> None:
    script = parse_script("room_to_connect: '!wait_for_message'\nmessages:\n  - send: hi\n")
    result = run(script, FakeSession(room=None), timeout_override=5)
    assert result.failure is not None
    assert result.failure.reason.startswith("nobody invited us within 5 s")


def test_infrastructure_error_makes_the_outcome_error() -> None:
    lost = InfrastructureError("sending a message: cannot reach the homeserver", hint="is it up?")
    session = FakeSession(CLIENT_REPLIES, fail_on_send={"Lol": lost})
    result = run(CLIENT_REPLAY, session)
    assert result.outcome is Outcome.ERROR
    assert result.failure is not None
    assert result.failure.reason == lost.one_line()
    assert (result.failure.step_index, result.failure.line) == (2, 5)
    assert outcomes(result) == [Outcome.PASSED, Outcome.PASSED, Outcome.ERROR, Outcome.NOT_RUN]


def test_infrastructure_error_while_opening_is_an_error() -> None:
    refused = InfrastructureError("creating the DM failed: M_FORBIDDEN")
    result = run(CLIENT_REPLAY, FakeSession(fail_on_open=refused))
    assert result.outcome is Outcome.ERROR
    assert result.failure is not None
    assert result.failure.reason == "creating the DM failed: M_FORBIDDEN"
    assert result.transcript == []
    # Opening the room is nobody's step: no step is blamed, none has run.
    assert (result.failure.step_index, result.failure.line) == (None, None)
    assert set(outcomes(result)) == {Outcome.NOT_RUN}


def test_cancelling_marks_the_run_interrupted_and_propagates() -> None:
    session = FakeSession(CLIENT_REPLIES, fail_on_send={"Lol": asyncio.CancelledError()})
    conversation = Conversation(CLIENT_REPLAY, partner=BOT)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(conversation.run(session))
    result = conversation.result
    assert result.outcome is Outcome.INTERRUPTED
    assert outcomes(result)[1:3] == [Outcome.PASSED, Outcome.INTERRUPTED]
    assert result.failure is not None
    assert result.failure.step_index == 2


# ------------------------------------------------------------------- on_step


def test_on_step_is_called_once_per_step_in_order() -> None:
    seen: list[StepResult] = []
    run(CLIENT_REPLAY, FakeSession(CLIENT_REPLIES), seen=seen)
    assert [(s.index, s.outcome) for s in seen] == [(i, Outcome.PASSED) for i in range(4)]


def test_on_step_reports_the_failing_step_and_nothing_after() -> None:
    seen: list[StepResult] = []
    run(CLIENT_REPLAY, FakeSession(["Bar", "Qux"]), seen=seen)
    assert [(s.index, s.outcome) for s in seen] == [(0, Outcome.PASSED), (1, Outcome.FAILED)]


def test_on_step_sees_the_same_records_as_the_result() -> None:
    seen: list[StepResult] = []
    result = run(CLIENT_REPLAY, FakeSession(CLIENT_REPLIES), seen=seen)
    assert seen == result.steps


# ----------------------------------------------------------------- exit codes


def result_with(outcome: Outcome) -> ConversationResult:
    return ConversationResult(script_path="s.yaml", name="s", role="client", outcome=outcome)


def test_exit_code_is_zero_when_everything_passed() -> None:
    assert exit_code([result_with(Outcome.PASSED)] * 3) == 0


def test_exit_code_is_one_when_a_conversation_failed() -> None:
    assert exit_code([result_with(Outcome.PASSED), result_with(Outcome.FAILED)]) == 1


def test_exit_code_infrastructure_beats_failed() -> None:
    mixture = [result_with(Outcome.ERROR), result_with(Outcome.FAILED)]
    assert exit_code(mixture) == 3
    assert exit_code(list(reversed(mixture))) == 3


def test_exit_code_interrupted_beats_everything() -> None:
    mixture = [Outcome.PASSED, Outcome.FAILED, Outcome.INTERRUPTED, Outcome.ERROR]
    assert exit_code([result_with(o) for o in mixture]) == 130


def test_exit_code_of_real_runs() -> None:
    passed = run(CLIENT_REPLAY, FakeSession(CLIENT_REPLIES))
    failed = run(CLIENT_REPLAY, FakeSession([]))
    assert exit_code([passed]) == 0
    assert exit_code([passed, failed]) == 1
