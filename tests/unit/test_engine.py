"""The engine of the richer language, driven over a fake Session that answers instantly.

The fake delivers its scripted events in order, one per ``next_event``; an
empty queue is silence (``None`` at once), so nothing here sleeps. An event
given as a dict arrives when it is asked for; a ``Reply`` keeps the arrival
time it was built with, which is how latency limits are tested.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import warnings
from collections import deque
from pathlib import Path
from typing import Any

import pytest
from fakes import BOT, ME, ROOM, UPLOADED, FakeSession

from matrix_bot_tester import conversation as engine
from matrix_bot_tester.conversation import Conversation, Reply, Session
from matrix_bot_tester.matching import Event
from matrix_bot_tester.result import ConversationResult, Failure, Outcome
from matrix_bot_tester.script import Script, load_script, parse_script

RUN_ID = "run42"

_ids = itertools.count(1)


# ------------------------------------------------------------------- events


def message(
    body: str,
    *,
    msgtype: str = "m.notice",
    sender: str = BOT,
    event_id: str | None = None,
    html: str | None = None,
    relates: dict[str, Any] | None = None,
    **extra: Any,
) -> Event:
    content: dict[str, Any] = {"msgtype": msgtype, "body": body, **extra}
    if html is not None:
        content.update(format="org.matrix.custom.html", formatted_body=html)
    if relates is not None:
        content["m.relates_to"] = relates
    return {
        "type": "m.room.message",
        "event_id": event_id or f"$bot-{next(_ids)}",
        "sender": sender,
        "origin_server_ts": 1_700_000_000_000,
        "content": content,
    }


def reaction(key: str, to: str) -> Event:
    return {
        "type": "m.reaction",
        "event_id": f"$reaction-{next(_ids)}",
        "sender": BOT,
        "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": to, "key": key}},
    }


def redaction(of: str) -> Event:
    return {
        "type": "m.room.redaction",
        "event_id": f"$redaction-{next(_ids)}",
        "sender": BOT,
        "redacts": of,
        "content": {"redacts": of},
    }


def edit(target: Event, body: str) -> Event:
    """The bot's edit of its own message ``target`` to ``body``."""
    msgtype = target["content"]["msgtype"]
    replacement = message(
        f"* {body}",
        msgtype=msgtype,
        relates={"rel_type": "m.replace", "event_id": target["event_id"]},
    )
    replacement["content"]["m.new_content"] = {"msgtype": msgtype, "body": body}
    return replacement


def image(url: str = "mxc://example.org/cat") -> Event:
    return message(
        "cat.png",
        msgtype="m.image",
        url=url,
        filename="cat.png",
        info={"mimetype": "image/png", "size": 68},
    )


def later(event: Event, seconds: float) -> Reply:
    """``event`` arriving ``seconds`` from now (the fake hands it over at once regardless)."""
    return Reply(event, time.monotonic() + seconds)


def script(steps: str, *, head: str = "") -> Script:
    """A script from the text of its steps (indented as items of 'messages')."""
    return parse_script(f"{head}messages:\n{steps}")


def run(script: Script, session: FakeSession) -> ConversationResult:
    conversation = Conversation(script, partner=BOT, run_id=RUN_ID)
    fake: Session = session  # the fake must satisfy the protocol (checked by mypy)
    return asyncio.run(conversation.run(fake))


def run_conversation(script: Script, session: FakeSession) -> Conversation:
    conversation = Conversation(script, partner=BOT, run_id=RUN_ID)
    asyncio.run(conversation.run(session))
    return conversation


def passes(result: ConversationResult) -> bool:
    assert result.failure is None, result.failure
    return result.outcome is Outcome.PASSED


def failure_of(result: ConversationResult) -> Failure:
    assert result.outcome is Outcome.FAILED
    assert result.failure is not None
    return result.failure


def late_by(failure: Failure) -> float:
    """The seconds a 'within' failure says the reply took."""
    found = re.fullmatch(r"the reply came after (\d+\.\d\d) s; within: 2 s", failure.reason)
    assert found is not None, failure.reason
    return float(found.group(1))


def sent_bodies(session: FakeSession) -> list[str]:
    return [content.get("body", "") for kind, content in session.sent if kind == "m.room.message"]


@pytest.fixture(autouse=True)
def short_edit_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong reply waits this long for an edit; the fake never makes it wait anyway."""
    monkeypatch.setattr(engine, "EDIT_GRACE", 0.5)


# --------------------------------------------------------------------- sends


def test_plain_send_is_an_m_text_message() -> None:
    session = FakeSession()
    assert passes(run(script("  - send: hi\n"), session))
    assert session.sent == [("m.room.message", {"msgtype": "m.text", "body": "hi"})]


def test_notice_send_has_msgtype_notice() -> None:
    session = FakeSession()
    run(script("  - send: {text: psst, msgtype: m.notice}\n"), session)
    assert session.sent == [("m.room.message", {"msgtype": "m.notice", "body": "psst"})]


def test_markdown_send_carries_the_rendered_html() -> None:
    session = FakeSession()
    run(script("  - send: {markdown: '*hi*'}\n"), session)
    assert session.sent[0][1]["formatted_body"] == "<p><em>hi</em></p>"
    assert session.sent[0][1]["body"] == "*hi*"


def test_send_can_reply_to_a_received_named_message() -> None:
    question = message("what now", event_id="$question")
    session = FakeSession([question])
    run(
        script("  - expect: {body: what now, name: q}\n  - send: {text: this, reply_to: q}\n"),
        session,
    )
    assert session.sent[0][1]["m.relates_to"] == {"m.in_reply_to": {"event_id": "$question"}}


def test_send_in_a_thread_of_our_own_message_with_mentions() -> None:
    session = FakeSession()
    run(
        script(
            "  - send: root\n    name: root\n"
            f"  - send: {{text: hi, thread: root, mentions: ['{BOT}']}}\n"
        ),
        session,
    )
    content = session.sent[1][1]
    assert content["m.relates_to"]["rel_type"] == "m.thread"
    assert content["m.relates_to"]["event_id"] == "$sent-1"
    assert content["m.mentions"] == {"user_ids": [BOT]}


def test_file_send_uploads_then_sends_the_media_message(tmp_path: Path) -> None:
    (tmp_path / "cat.png").write_bytes(b"\x89PNG....")
    path = tmp_path / "s.yaml"
    path.write_text("messages:\n  - send: {file: cat.png}\n", encoding="utf-8")
    session = FakeSession()
    assert passes(run(load_script(path), session))
    assert session.calls_to("upload") == [("upload", "cat.png", "image/png", "cat.png")]
    assert session.sent == [
        (
            "m.room.message",
            {
                "msgtype": "m.image",
                "body": "cat.png",
                "filename": "cat.png",
                "url": UPLOADED,
                "info": {"mimetype": "image/png", "size": 68},
            },
        )
    ]


def test_file_send_uses_the_given_filename_and_mimetype(tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(b"x")
    path = tmp_path / "s.yaml"
    path.write_text(
        "messages:\n  - send: {file: data.bin, filename: report.pdf, mimetype: application/pdf}\n",
        encoding="utf-8",
    )
    session = FakeSession()
    run(load_script(path), session)
    assert session.calls_to("upload") == [("upload", "data.bin", "application/pdf", "report.pdf")]
    assert session.sent[0][1]["msgtype"] == "m.file"


def test_builtins_are_filled_in() -> None:
    session = FakeSession()
    run(script("  - send: '{me} {bot} {room_id} {run_id}'\n"), session)
    assert sent_bodies(session) == [f"{ME} {BOT} {ROOM} {RUN_ID}"]


def test_doubled_braces_are_sent_as_single_braces() -> None:
    session = FakeSession([message("{ok}")])
    result = run(script("  - send: 'a {{b}} c'\n    expect: '{{ok}}'\n"), session)
    assert passes(result)
    assert sent_bodies(session) == ["a {b} c"]


def test_event_id_placeholder_gives_the_named_messages_id() -> None:
    session = FakeSession()
    run(script("  - send: hi\n    name: m\n  - send: 'that was {m.event_id}'\n"), session)
    assert sent_bodies(session) == ["hi", "that was $sent-1"]


# ------------------------------------------------------------------ actions


def test_react_to_our_named_message() -> None:
    session = FakeSession()
    run(script("  - send: hi\n    name: m\n  - react: {to: m, key: '👍'}\n"), session)
    assert session.sent[1] == (
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$sent-1", "key": "👍"}},
    )


def test_react_to_a_message_named_in_expect() -> None:
    session = FakeSession([message("hello", event_id="$hello")])
    result = run(
        script("  - expect: {body: hello, name: greeting}\n  - react: {to: greeting, key: '👋'}\n"),
        session,
    )
    assert passes(result)
    assert session.sent == [
        (
            "m.reaction",
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$hello", "key": "👋"}},
        )
    ]


def test_edit_of_our_named_message_sends_a_replacement() -> None:
    session = FakeSession()
    run(script("  - send: helo\n    name: m\n  - edit: {message: m, text: hello}\n"), session)
    assert session.sent[1] == (
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "* hello",
            "m.new_content": {"msgtype": "m.text", "body": "hello"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$sent-1"},
        },
    )


def test_edited_named_message_keeps_its_id_and_shows_the_new_text() -> None:
    session = FakeSession()
    conversation = run_conversation(
        script("  - send: helo\n    name: m\n  - edit: {message: m, text: hello}\n"), session
    )
    named = conversation.named["m"]
    assert (named["event_id"], named["content"]["body"]) == ("$sent-1", "hello")


def test_redact_a_named_message() -> None:
    session = FakeSession()
    run(script("  - send: oops\n    name: m\n  - redact: m\n"), session)
    assert session.calls_to("redact") == [("redact", ROOM, "$sent-1", None)]


def test_redact_with_a_reason() -> None:
    session = FakeSession()
    run(script("  - send: oops\n    name: m\n  - redact: {message: m, reason: typo}\n"), session)
    assert session.calls_to("redact") == [("redact", ROOM, "$sent-1", "typo")]


@pytest.mark.parametrize(
    ("value", "call"),
    [
        ("true", ("set_typing", ROOM, True, 30.0)),
        ("false", ("set_typing", ROOM, False, 30.0)),
        ("2.5", ("set_typing", ROOM, True, 2.5)),
    ],
)
def test_typing_calls_the_session(value: str, call: tuple[Any, ...]) -> None:
    session = FakeSession()
    assert passes(run(script(f"  - typing: {value}\n"), session))
    assert session.calls_to("set_typing") == [call]


def test_read_receipt_marks_the_named_received_message() -> None:
    session = FakeSession([message("news", event_id="$news")])
    run(script("  - expect: {body: news, name: n}\n  - read_receipt: n\n"), session)
    assert session.calls_to("send_read_receipt") == [("send_read_receipt", ROOM, "$news")]


def test_send_event_sends_the_raw_type_and_filled_content() -> None:
    session = FakeSession()
    run(
        script("  - send_event: {type: org.example.ping, content: {id: '{run_id}', n: 3}}\n"),
        session,
    )
    assert session.sent == [("org.example.ping", {"id": RUN_ID, "n": 3})]


def test_named_send_event_can_be_redacted_later() -> None:
    session = FakeSession()
    run(script("  - send_event: {type: org.example.x}\n    name: raw\n  - redact: raw\n"), session)
    assert session.calls_to("redact") == [("redact", ROOM, "$sent-1", None)]


def test_wait_pauses_for_its_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr("matrix_bot_tester.conversation.asyncio.sleep", sleep)
    assert passes(run(script("  - wait: 1.5\n"), FakeSession()))
    assert pauses == [1.5]


def test_wait_pauses_as_long_as_asked_even_past_the_steps_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr("matrix_bot_tester.conversation.asyncio.sleep", sleep)
    run(script("  - wait: 60\n    timeout: 2\n"), FakeSession())
    assert pauses == [60]


def test_describing_mapping_steps_raises_no_serializer_warnings() -> None:
    # Regression: model_dump routed models to the text member and pydantic warned on stderr.
    steps = "  - send: {text: hi}\n    expect: [{body: {contains: h}}, {reaction: {key: x}}]\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conversation = Conversation(script(steps), partner=BOT)
    assert conversation.result.steps[0].expect == (
        'expect: [{"body": {"contains": "h"}}, {"reaction": {"key": "x"}}]'
    )


def test_describe_action_names_the_action_in_the_step_result() -> None:
    result = run(script("  - send: hi\n    name: m\n  - react: {to: m, key: x}\n"), FakeSession())
    assert [step.send for step in result.steps] == ["hi", 'react: {"to": "m", "key": "x"}']


# ------------------------------------------------------------- expectations


def test_exact_body_passes() -> None:
    assert passes(run(script("  - send: ping\n    expect: pong\n"), FakeSession([message("pong")])))


def test_exact_body_fails_with_problems_and_diff() -> None:
    result = run(script("  - send: ping\n    expect: pong\n"), FakeSession([message("PONG")]))
    failure = failure_of(result)
    assert failure.reason == "wrong reply"
    assert failure.problems == ("body: expected 'pong', got 'PONG'",)
    assert failure.diff == (
        "- expected: 'pong'\n+ received: 'PONG'\n  first difference at character 1"
    )
    assert failure.expected == "pong"
    assert failure.received is not None
    assert failure.received.body == "PONG"


@pytest.mark.parametrize(
    ("matcher", "body", "ok"),
    [
        ("{regex: 'order \\d+'}", "order 42", True),
        ("{regex: 'order'}", "order 42", False),  # a regex is a full match
        ("{contains: 'der 4'}", "order 42", True),
        ("{contains: 'x'}", "order 42", False),
        ("{one_of: ['yes', order 42]}", "order 42", True),
        ("{one_of: ['yes', 'no']}", "order 42", False),
        ("{exact: ORDER 42, ignore_case: true}", "order 42", True),
    ],
)
def test_body_matchers(matcher: str, body: str, ok: bool) -> None:
    result = run(script(f"  - expect: {{body: {matcher}}}\n"), FakeSession([message(body)]))
    assert (result.outcome is Outcome.PASSED) is ok


def test_msgtype_mismatch_is_a_problem() -> None:
    result = run(
        script("  - expect: {body: pong, msgtype: m.text}\n"), FakeSession([message("pong")])
    )
    assert failure_of(result).problems == ("msgtype: expected m.text, got m.notice",)


def test_html_is_compared_normalised() -> None:
    reply = message("pong", html="<p><b>pong</b></p>\n")
    result = run(script("  - expect: {html: '<p><b>pong</b></p>'}\n"), FakeSession([reply]))
    assert passes(result)


def test_text_is_what_a_person_reads_in_the_html() -> None:
    reply = message("**pong**", html="<p><b>pong</b> now</p>")
    assert passes(run(script("  - expect: {text: pong now}\n"), FakeSession([reply])))


def test_expect_reply_to_true_means_this_steps_message() -> None:
    reply = message("sure", relates={"m.in_reply_to": {"event_id": "$sent-1"}})
    result = run(
        script("  - send: q\n    expect: {body: sure, reply_to: true}\n"), FakeSession([reply])
    )
    assert passes(result)


def test_regex_captures_feed_a_later_send() -> None:
    session = FakeSession([message("order 42 placed")])
    result = run(
        script(
            "  - send: buy\n    expect: {body: {regex: 'order (?P<order>\\d+) placed'}}\n"
            "  - send: 'cancel {order}'\n"
        ),
        session,
    )
    assert passes(result)
    assert sent_bodies(session) == ["buy", "cancel 42"]


def test_save_feeds_a_later_send() -> None:
    session = FakeSession([message("hello", event_id="$hello")])
    run(
        script(
            "  - expect: {body: hello, save: {id: event_id, who: sender}}\n"
            "  - send: '{who} said {id}'\n"
        ),
        session,
    )
    assert sent_bodies(session) == [f"{BOT} said $hello"]


def test_captured_value_in_a_later_regex_matches_literally() -> None:
    # '1.5' captured, then used in a regex: the dot must not match any character.
    session = FakeSession([message("price 1.5"), message("total 105")])
    result = run(
        script(
            "  - expect: {body: {regex: 'price (?P<p>\\S+)'}}\n"
            "  - expect: {body: {regex: 'total {p}'}}\n"
        ),
        session,
    )
    assert failure_of(result).step_index == 1


def test_message_named_in_expect_is_the_target_of_a_later_reply() -> None:
    session = FakeSession([message("pick one", event_id="$menu")])
    run(
        script("  - expect: {body: pick one, name: menu}\n  - send: {text: '2', reply_to: menu}\n"),
        session,
    )
    assert session.sent[0][1]["m.relates_to"] == {"m.in_reply_to": {"event_id": "$menu"}}


# ------------------------------------------------- reactions in their own line


def test_reaction_before_the_text_reply_does_not_spoil_expect_text() -> None:
    session = FakeSession([reaction("👀", "$sent-1"), message("pong")])
    result = run(script("  - send: ping\n    expect: pong\n"), session)
    assert passes(result)
    assert result.steps[0].received is not None
    assert result.steps[0].received.body == "pong"


def test_later_reaction_expectation_consumes_the_early_reaction() -> None:
    session = FakeSession([reaction("👀", "$sent-1"), message("pong")])
    result = run(
        script(
            "  - send: ping\n    name: ping\n    expect: pong\n"
            "  - expect: {reaction: {key: '👀', to: ping}}\n"
        ),
        session,
    )
    assert passes(result)
    assert result.steps[1].received is not None
    assert result.steps[1].received.body == "reacted 👀 to $sent-1"
    assert session.queue == deque()


def test_reaction_expectation_leaves_text_for_a_later_expect() -> None:
    session = FakeSession([message("pong"), reaction("👍", "$sent-1")])
    result = run(
        script("  - send: ping\n    expect: {reaction: {key: '👍', to: true}}\n  - expect: pong\n"),
        session,
    )
    assert passes(result)


def test_redaction_waits_in_its_own_line() -> None:
    session = FakeSession([redaction("$sent-1"), message("deleted")])
    result = run(
        script(
            "  - send: spam\n    name: spam\n    expect: deleted\n"
            "  - expect: {redaction: {of: spam}}\n"
        ),
        session,
    )
    assert passes(result)


def test_wrong_reaction_key_fails() -> None:
    session = FakeSession([reaction("👎", "$sent-1")])
    result = run(script("  - send: ping\n    expect: {reaction: {key: '👍'}}\n"), session)
    assert failure_of(result).problems == ("reaction.key: expected '👍', got '👎'",)


# -------------------------------------------------------------------- edits


def test_streamed_answer_passes_on_the_edit_that_matches() -> None:
    draft = message("Thinking…")
    session = FakeSession([draft, edit(draft, "The answer is 42")])
    result = run(script("  - send: question\n    expect: The answer is 42\n"), session)
    assert passes(result)
    assert result.steps[0].received is not None
    assert result.steps[0].received.body == "The answer is 42"


def test_streamed_answer_is_judged_on_its_final_text() -> None:
    draft = message("The")
    session = FakeSession(
        [
            draft,
            edit(draft, "The answer"),
            edit(draft, "The answer is"),
            edit(draft, "The answer is 42"),
        ]
    )
    result = run(script("  - send: q\n    expect: The answer is 42\n"), session)
    assert passes(result)


def test_within_judges_a_streamed_answer_by_its_matching_edit() -> None:
    # Regression: the edit was timed when the engine read it, not when it arrived.
    draft = message("Thinking…")
    session = FakeSession([draft, later(edit(draft, "42"), 10)])
    result = run(script("  - send: q\n    expect: '42'\n    within: 2\n"), session)
    assert late_by(failure_of(result)) > 9


def test_within_passes_a_streamed_answer_finished_in_time() -> None:
    draft = message("Thinking…")
    session = FakeSession([draft, later(edit(draft, "42"), 0.5)])
    result = run(script("  - send: q\n    expect: '42'\n    within: 2\n"), session)
    assert passes(result)
    assert result.steps[0].latency is not None
    assert 0.25 < result.steps[0].latency <= 0.5


def test_transcript_shows_the_edit() -> None:
    draft = message("Thinking…")
    session = FakeSession([draft, edit(draft, "42")])
    result = run(script("  - send: q\n    expect: '42'\n"), session)
    received = [(e.direction, e.message.body, e.step_index) for e in result.transcript]
    assert ("received", "42 (edited)", 0) in received
    assert received[-1] == ("received", "42", 0)


def test_transcript_of_a_streamed_answer_is_in_time_order() -> None:
    # The step takes the draft after its edit arrived; the transcript still puts
    # the draft at its own time, before the edit.
    draft = message("Thinking…")
    session = FakeSession([draft, later(edit(draft, "42"), 0.5)])
    result = run(script("  - send: q\n    expect: '42'\n"), session)
    times = [entry.at for entry in result.transcript]
    assert times == sorted(times)
    assert result.transcript[-1].message.body == "42 (edited)"


def test_edit_does_not_consume_an_expectation() -> None:
    first = message("one")
    session = FakeSession([first, edit(first, "one!"), message("two")])
    result = run(script("  - expect: one\n  - expect: two\n"), session)
    assert passes(result)


def test_wrong_reply_without_edits_fails_after_the_grace() -> None:
    session = FakeSession([message("nope")])
    result = run(script("  - send: q\n    expect: yes\n"), session)
    assert failure_of(result).reason == "wrong reply"
    # After the wrong reply, the engine waited at most the grace for an edit.
    grace_wait = session.calls_to("next_event")[-1]
    assert 0 < grace_wait[2] <= 0.5


def test_edit_of_another_message_does_not_rescue_a_wrong_reply() -> None:
    other = message("other")
    session = FakeSession([other, message("nope"), edit(other, "yes")])
    result = run(script("  - expect: other\n  - expect: yes\n"), session)
    failure = failure_of(result)
    assert failure.step_index == 1
    assert failure.received is not None
    assert failure.received.body == "nope"


# ------------------------------------------------------ ordered and unordered


def test_ordered_list_passes_in_order() -> None:
    session = FakeSession([message("one"), message("two")])
    assert passes(run(script("  - send: count\n    expect: [one, two]\n"), session))


def test_ordered_list_fails_out_of_order() -> None:
    session = FakeSession([message("two"), message("one")])
    failure = failure_of(run(script("  - send: count\n    expect: [one, two]\n"), session))
    assert (failure.reason, failure.expected) == ("wrong reply", "one")


@pytest.mark.parametrize("order", [["a", "b", "c"], ["c", "a", "b"], ["b", "c", "a"]])
def test_unordered_set_passes_in_any_order(order: list[str]) -> None:
    session = FakeSession([message(body) for body in order])
    result = run(script("  - send: go\n    expect_unordered: [a, b, c]\n"), session)
    assert passes(result)


def test_unordered_set_may_mix_a_reaction_and_a_message() -> None:
    session = FakeSession([message("done"), reaction("✅", "$sent-1")])
    result = run(
        script("  - send: go\n    expect_unordered: [{reaction: {key: '✅', to: true}}, done]\n"),
        session,
    )
    assert passes(result)


def test_unordered_reply_that_fits_none_fails() -> None:
    session = FakeSession([message("a"), message("z")])
    failure = failure_of(run(script("  - send: go\n    expect_unordered: [a, b, c]\n"), session))
    assert failure.reason == "a reply that fits none of the 2 expected"
    assert failure.received is not None
    assert failure.received.body == "z"


def test_expect_count_takes_that_many_messages() -> None:
    session = FakeSession([message("x"), message("y"), message("z")])
    result = run(script("  - send: go\n    expect_count: 3\n"), session)
    assert passes(result)
    assert [e.message.body for e in result.transcript[1:]] == ["x", "y", "z"]


def test_expect_count_fails_when_too_few_come() -> None:
    session = FakeSession([message("x"), message("y")])
    result = run(script("  - send: go\n    expect_count: 3\n    timeout: 4\n"), session)
    assert failure_of(result).reason == "no reply within 4 s"


def test_expect_count_does_not_count_reactions() -> None:
    session = FakeSession([message("x"), reaction("👍", "$sent-1")])
    result = run(script("  - send: go\n    expect_count: 2\n"), session)
    assert failure_of(result).reason.startswith("no reply within")


# -------------------------------------------------------------------- ignore


def test_step_ignore_skips_noise() -> None:
    session = FakeSession([message("typing..."), message("pong")])
    result = run(script("  - send: ping\n    expect: pong\n    ignore: [typing...]\n"), session)
    assert passes(result)
    bodies = [e.message.body for e in result.transcript]
    assert bodies == ["ping", "typing... (ignored)", "pong"]


def test_script_ignore_skips_noise_in_every_step() -> None:
    noise = "ignore:\n  - {body: {contains: 'server notice'}}\n"
    session = FakeSession(
        [message("server notice 1"), message("a"), message("server notice 2"), message("b")]
    )
    result = run(script("  - expect: a\n  - expect: b\n", head=noise), session)
    assert passes(result)


def test_script_ignore_fills_in_builtins_and_doubled_braces() -> None:
    # Regression: the script's rules were used as written, '{{' and '{me}' and all.
    noise = "ignore:\n  - {body: '{{draft}} for {me}'}\n"
    session = FakeSession([message(f"{{draft}} for {ME}"), message("a")])
    assert passes(run(script("  - expect: a\n", head=noise), session))


def test_without_ignore_the_noise_is_a_wrong_reply() -> None:
    session = FakeSession([message("typing..."), message("pong")])
    failure = failure_of(run(script("  - send: ping\n    expect: pong\n"), session))
    assert failure.received is not None
    assert failure.received.body == "typing..."


# ------------------------------------------------------- silence and settle


def test_expect_no_reply_passes_when_nothing_comes() -> None:
    assert passes(run(script("  - send: shh\n    expect_no_reply: 1\n"), FakeSession()))


def test_expect_no_reply_fails_when_something_comes() -> None:
    session = FakeSession([message("hi!")])
    failure = failure_of(run(script("  - send: shh\n    expect_no_reply: 1\n"), session))
    assert failure.reason == "expect_no_reply: expected nothing for 1 s, but a reply came"
    assert failure.received is not None
    assert failure.received.body == "hi!"


def test_expect_no_reply_ignores_ignored_noise() -> None:
    session = FakeSession([message("typing...")])
    result = run(
        script("  - send: shh\n    expect_no_reply: 1\n    ignore: [typing...]\n"), session
    )
    assert passes(result)


def test_settle_passes_when_nothing_follows() -> None:
    session = FakeSession([message("pong")])
    assert passes(run(script("  - send: ping\n    expect: pong\n    settle: 1\n"), session))


def test_settle_fails_on_an_extra_reply() -> None:
    session = FakeSession([message("pong"), message("pong again")])
    result = run(script("  - send: ping\n    expect: pong\n    settle: 1\n"), session)
    failure = failure_of(result)
    assert failure.reason == "settle: expected nothing for 1 s, but a reply came"
    assert failure.received is not None
    assert failure.received.body == "pong again"


# -------------------------------------------------------------------- within


def test_within_fails_a_late_reply() -> None:
    session = FakeSession([later(message("pong"), 10)])
    result = run(script("  - send: ping\n    expect: pong\n    within: 2\n"), session)
    failure = failure_of(result)
    assert late_by(failure) > 9
    assert failure.waited is not None
    assert 9 < failure.waited <= 10


def test_within_passes_a_fast_reply() -> None:
    session = FakeSession([later(message("pong"), 0.5)])
    result = run(script("  - send: ping\n    expect: pong\n    within: 2\n"), session)
    assert passes(result)
    assert result.steps[0].latency is not None
    assert 0.25 < result.steps[0].latency <= 0.5


# --------------------------------------------------------------------- media


def test_downloadable_media_passes_when_it_downloads() -> None:
    session = FakeSession([image("mxc://example.org/cat")], download_size=68)
    result = run(
        script("  - send: cat\n    expect: {media: {mimetype: image/png, downloadable: true}}\n"),
        session,
    )
    assert passes(result)
    assert session.calls_to("download_size") == [("download_size", "mxc://example.org/cat")]


def test_downloadable_media_fails_when_it_does_not_download() -> None:
    session = FakeSession([image("mxc://example.org/gone")], download_size=-1)
    result = run(script("  - send: cat\n    expect: {media: {downloadable: true}}\n"), session)
    assert failure_of(result).reason == (
        "the content URL mxc://example.org/gone cannot be downloaded"
    )


def test_media_without_downloadable_is_not_downloaded() -> None:
    session = FakeSession([image()], download_size=-1)
    result = run(script("  - send: cat\n    expect: {media: {size: 68}}\n"), session)
    assert passes(result)
    assert session.calls_to("download_size") == []


# ---------------------------------------------------------- failures, reports


def test_silence_fails_with_no_reply_within_the_timeout() -> None:
    result = run(script("  - send: ping\n    expect: pong\n    timeout: 3\n"), FakeSession())
    failure = failure_of(result)
    assert failure.reason == "no reply within 3 s"
    assert (failure.step_index, failure.line, failure.expected) == (0, 2, "pong")


def test_failure_in_an_included_step_names_the_fragment(tmp_path: Path) -> None:
    fragment = tmp_path / "greet.yaml"
    fragment.write_text("messages:\n  - send: hi\n  - expect: hello\n", encoding="utf-8")
    main = tmp_path / "main.yaml"
    main.write_text("messages:\n  - send: start\n  - include: greet.yaml\n", encoding="utf-8")
    result = run(load_script(main), FakeSession([message("bye")]))
    failure = failure_of(result)
    assert (failure.step_index, failure.line) == (2, 3)
    assert failure.path == str(fragment.resolve())
    in_fragment = str(fragment.resolve())
    assert [step.path for step in result.steps] == [None, in_fragment, in_fragment]


def test_steps_of_the_script_itself_have_no_path(tmp_path: Path) -> None:
    main = tmp_path / "main.yaml"
    main.write_text("messages:\n  - send: hi\n    expect: ho\n", encoding="utf-8")
    result = run(load_script(main), FakeSession([message("nope")]))
    assert result.steps[0].path is None
    assert failure_of(result).path is None


def test_leftover_events_appear_as_unexpected_in_the_transcript() -> None:
    session = FakeSession([message("pong"), reaction("🎉", "$sent-1"), message("one more")])
    result = run(script("  - send: ping\n    expect: pong\n"), session)
    assert passes(result)
    tail = [(e.direction, e.message.body, e.step_index) for e in result.transcript[2:]]
    assert tail == [
        ("received", "reacted 🎉 to $sent-1", None),
        ("received", "one more", None),
    ]


# ------------------------------------------------- windows paused over


PAUSE = "(a pause over the window's end)"


class PausingSession(FakeSession):
    """A fake whose PAUSE item is a wait that ends ``late``: the homeserver, the network
    or the tester paused over the window's end, and nothing had come by then. What
    follows it is what the server had meanwhile (taken in by catching up)."""

    late = 0.3

    async def next_event(
        self, room_id: str, *, timeout: float, patience: float = 0.0
    ) -> Reply | None:
        queue = self.queues.get(room_id)
        if queue and queue[0] == PAUSE:
            queue.popleft()
            await asyncio.sleep(timeout + self.late)  # the pause (not a wait for anything)
            return None
        return await super().next_event(room_id, timeout=timeout, patience=patience)


@pytest.fixture
def short_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "LATE_BY", 0.1)
    monkeypatch.setattr(engine, "CATCH_UP", 0.2)


def now_ms(offset: float = 0.0) -> int:
    return int((time.time() + offset) * 1000)


@pytest.mark.usefixtures("short_pauses")
def test_an_edit_held_back_by_a_pause_over_the_grace_still_counts() -> None:
    draft = message("Thinking…")
    session = PausingSession([draft, PAUSE, edit(draft, "42")])
    result = run(script("  - send: q\n    expect: '42'\n"), session)
    assert passes(result)


@pytest.mark.usefixtures("short_pauses")
def test_a_reply_held_back_by_a_pause_over_a_settle_window_fails_it() -> None:
    late = message("me again")
    late["origin_server_ts"] = now_ms()  # the server had it well inside the window
    session = PausingSession(["pong", PAUSE, late])
    result = run(script("  - send: ping\n    expect: pong\n    settle: 0.5\n"), session)
    failure = failure_of(result)
    assert failure.reason == "settle: expected nothing for 0.5 s, but a reply came"
    assert failure.received is not None and failure.received.body == "me again"


@pytest.mark.usefixtures("short_pauses")
def test_a_reply_held_back_by_a_pause_ending_just_after_the_window_fails_it() -> None:
    """Found by a fresh user: a pause ending well under a second after the window's end
    still hid the reply, which came right after the end was noticed."""
    late = message("me again")
    late["origin_server_ts"] = now_ms()
    session = PausingSession(["pong", PAUSE, late])
    session.late = 0.0
    result = run(script("  - send: ping\n    expect: pong\n    settle: 0.5\n"), session)
    assert failure_of(result).reason == "settle: expected nothing for 0.5 s, but a reply came"
    assert ("caught_up", pytest.approx(30.0, abs=1)) in session.calls


@pytest.mark.usefixtures("short_pauses")
def test_a_reply_the_server_had_only_after_a_paused_window_is_left_for_later() -> None:
    after = message("much later")
    after["origin_server_ts"] = now_ms(60)
    session = PausingSession(["pong", PAUSE, after])
    result = run(
        script("  - send: ping\n    expect: pong\n    settle: 0.5\n  - expect: much later\n"),
        session,
    )
    assert passes(result)
