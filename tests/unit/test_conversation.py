"""The conversation's rules, driven over a fake Session that answers instantly."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fakes import BOT, ME, ROOM, FakeSession, bot_says, rounded

from matrix_bot_tester.conversation import Conversation, OpenRoom, Reply, Session
from matrix_bot_tester.errors import InfrastructureError, InputError
from matrix_bot_tester.result import ConversationResult, Outcome, StepResult, exit_code
from matrix_bot_tester.script import Script, load_script, parse_script

# The original tool's files, byte for byte (also in /work/shared/seed/original-test-data).
SEED = Path(__file__).parent.parent / "data" / "original"


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


def test_the_transcript_keeps_each_events_type_and_whole_content() -> None:
    html = {"msgtype": "m.notice", "body": "Baz", "format": "org.matrix.custom.html"}
    replies: list[str | Reply] = ["Bar", bot_says("Baz"), "Baz", "hrm"]
    baz = bot_says("Baz")
    replies[1] = Reply(event={**baz.event, "content": html}, arrived=baz.arrived)
    result = run(CLIENT_REPLAY, FakeSession(replies))
    sent, received = result.transcript[0].message, result.transcript[1].message
    assert (sent.type, sent.content) == ("m.room.message", {"msgtype": "m.text", "body": "Foo"})
    assert (received.type, received.content["body"]) == ("m.room.message", "Bar")
    baz = next(e.message for e in result.transcript if e.message.body == "Baz")
    assert baz.content == html


def test_client_role_opens_a_dm_with_the_partner() -> None:
    session = FakeSession(CLIENT_REPLIES)
    run(CLIENT_REPLAY, session)
    assert session.calls[0] == ("open_dm", BOT, True, 30.0)


def test_client_role_sends_the_scripts_messages_in_order() -> None:
    session = FakeSession(CLIENT_REPLIES)
    run(CLIENT_REPLAY, session)
    assert session.bodies == ["Foo", "Lol", "hmm"]


def test_room_role_joins_the_named_room() -> None:
    script = parse_script("room_to_connect: '#bots:example.org'\nmessages:\n  - send: hi\n")
    session = FakeSession()
    result = run(script, session)
    assert result.outcome is Outcome.PASSED
    assert session.calls[0] == ("join_room", "#bots:example.org", 30.0)


def test_a_script_in_an_open_room_opens_none_and_leaves_what_nobody_took() -> None:
    room = OpenRoom(ROOM)
    session = FakeSession(["Bar", "unasked"])
    one_step = parse_script("messages:\n  - send: Foo\n    expect: Bar\n")
    result = asyncio.run(Conversation(one_step, partner=BOT, room=room).run(session))
    assert result.outcome is Outcome.PASSED
    assert [call[0] for call in session.calls] == ["send_event", "next_event"]
    assert list(session.queue) == ["unasked"]  # for the next script in the room
    assert [entry.message.body for entry in result.transcript] == ["Foo", "Bar"]
    assert room.values["me"] == ME
    assert [event["content"]["body"] for event in room.known.values()] == ["Foo", "Bar"]


def test_bot_role_passes_on_the_seed_bot_replay() -> None:
    session = FakeSession(["Foo", "Lol", "hmm"])
    result = run(load_script(SEED / "bot-replay.yaml"), session, partner=None)
    assert result.outcome is Outcome.PASSED
    assert session.calls[0] == ("wait_for_room", True, 30.0)
    assert session.bodies == ["Bar", "Baz", "Baz", "hrm"]


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
    waits = [rounded(call) for call in session.calls if call[0] in ("send_event", "next_event")]
    assert waits == [
        ("send_event", ROOM, "a", 1.5),
        ("next_event", ROOM, 1.5),
        ("next_event", ROOM, 4.0),
    ]
    assert [step.timeout for step in result.steps] == [1.5, 4.0]


def test_a_window_shorter_than_the_step_gives_the_server_the_rest_of_the_step() -> None:
    """A settle window ends well before the step's deadline: a homeserver that is slow to
    answer "are you there?" then has the rest of the step, not just a few seconds."""
    script = parse_script("messages:\n  - send: a\n    expect: b\n    settle: 2\n    timeout: 20\n")
    session = FakeSession(["b"])
    result = run(script, session)
    assert result.outcome is Outcome.PASSED
    waits = [rounded(call) for call in session.calls if call[0] == "next_event"]
    assert waits == [("next_event", ROOM, 20.0), ("next_event", ROOM, 2.0)]
    reply_wait, settle_wait = session.patience
    assert reply_wait == 0.0  # the step's own deadline: the probe's usual few seconds
    assert settle_wait == pytest.approx(18.0, abs=0.1)


def test_command_line_timeout_reaches_the_session() -> None:
    session = FakeSession(["b"])
    run(parse_script("messages:\n  - expect: b\n"), session, timeout_override=2)
    assert rounded(session.calls[-1]) == ("next_event", ROOM, 2.0)


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
    assert session.bodies == ["Foo"]


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


# ---------------------------------------------------------- run --update's way

THREE_STEPS = parse_script(
    "messages:\n"
    "  - send: a\n    expect: A\n"
    "  - send: b\n    expect: B\n"
    "  - send: c\n    expect: C\n"
)


def run_going_on(script: Script, session: FakeSession) -> ConversationResult:
    conversation = Conversation(script, partner=BOT, go_on_after_wrong_reply=True)
    return asyncio.run(conversation.run(session))


def test_by_default_a_wrong_reply_ends_the_conversation() -> None:
    result = run(THREE_STEPS, FakeSession(["X", "B", "Y"]))
    assert outcomes(result) == [Outcome.FAILED, Outcome.NOT_RUN, Outcome.NOT_RUN]
    assert result.later_failures == []


def test_going_on_after_wrong_replies_fails_each_wrong_step_and_runs_the_rest() -> None:
    result = run_going_on(THREE_STEPS, FakeSession(["X", "B", "Y"]))
    assert result.outcome is Outcome.FAILED
    assert outcomes(result) == [Outcome.FAILED, Outcome.PASSED, Outcome.FAILED]
    assert result.failure is not None and result.failure.step_index == 0
    assert result.failure.received is not None and result.failure.received.body == "X"
    assert [f.step_index for f in result.later_failures] == [2]
    assert result.later_failures[0].received is not None
    assert result.later_failures[0].received.body == "Y"


def test_going_on_still_stops_where_no_reply_came() -> None:
    script = parse_script(
        "timeout: 0.2\nmessages:\n"
        "  - send: a\n    expect: A\n"
        "  - send: b\n    expect: B\n"
        "  - send: c\n    expect: C\n"
    )
    result = run_going_on(script, FakeSession(["X"]))
    assert outcomes(result) == [Outcome.FAILED, Outcome.FAILED, Outcome.NOT_RUN]
    assert result.failure is not None and result.failure.step_index == 0
    [silent] = result.later_failures
    assert (silent.step_index, silent.event) == (1, None)


def test_going_on_with_all_replies_right_passes() -> None:
    result = run_going_on(THREE_STEPS, FakeSession(["A", "B", "C"]))
    assert result.outcome is Outcome.PASSED
    assert (result.failure, result.later_failures) == (None, [])
