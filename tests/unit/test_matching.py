"""Matching on events recorded from a real Synapse (see tests/data/events/record_events.py)."""

from __future__ import annotations

import pytest
from fakes import ALICE, BOT, event, with_content

from matrix_bot_tester.matching import (
    Message,
    is_edit,
    is_reply,
    match_body,
    text_diff,
)

# ------------------------------------------------------------------ is_reply


@pytest.mark.parametrize("name", ["notice", "emote", "reply", "unicode"])
def test_messages_from_the_bot_are_replies(name: str) -> None:
    assert event(name)["sender"] == BOT
    assert is_reply(event(name), ALICE) is True


def test_text_from_someone_else_is_a_reply() -> None:
    assert is_reply(event("text"), BOT) is True


def test_own_messages_are_never_replies() -> None:
    assert event("text")["sender"] == ALICE
    assert is_reply(event("text"), ALICE) is False


@pytest.mark.parametrize("name", ["notice", "emote", "reply"])
def test_own_messages_of_any_kind_are_never_replies(name: str) -> None:
    assert is_reply(event(name), BOT) is False


def test_edit_is_not_a_reply() -> None:
    assert is_edit(event("edit")) is True
    assert is_reply(event("edit"), ALICE) is False


def test_plain_message_is_not_an_edit() -> None:
    assert is_edit(event("notice")) is False
    assert is_edit(event("reply")) is False  # m.in_reply_to is a relation, but not m.replace


def test_reaction_is_not_a_reply() -> None:
    assert is_reply(event("reaction"), ALICE) is False


def test_membership_event_is_not_a_reply() -> None:
    assert is_reply(event("member"), ALICE) is False


def test_image_is_not_a_reply() -> None:
    assert is_reply(event("image"), ALICE) is False


def test_redacted_message_is_not_a_reply() -> None:
    assert event("redacted")["content"] == {}
    assert is_reply(event("redacted"), ALICE) is False


def test_unknown_msgtype_is_not_a_reply() -> None:
    assert is_reply(with_content("notice", {"msgtype": "m.location", "body": "x"}), ALICE) is False


def test_non_text_msgtype_does_not_crash() -> None:
    # Regression: an unhashable msgtype raised TypeError (and would kill the sync loop).
    # Synapse refuses this from its own clients, but federation carries content as is.
    odd = with_content("notice", {"msgtype": ["m.text"], "body": "hi"})
    assert is_reply(odd, ALICE) is False


def test_content_that_is_not_a_mapping_is_not_a_reply() -> None:
    assert is_reply(with_content("notice", "Bar"), ALICE) is False


def test_edit_relation_that_is_not_a_mapping_is_not_an_edit() -> None:
    odd = with_content("notice", {"msgtype": "m.text", "body": "x", "m.relates_to": "oops"})
    assert is_edit(odd) is False
    assert is_reply(odd, ALICE) is True


# ---------------------------------------------------------------- match_body


def test_exact_body_matches() -> None:
    assert match_body("Bar", event("notice")) is None


def test_emote_matches_its_body() -> None:
    assert match_body("waves", event("emote")) is None


def test_unicode_body_matches_exactly() -> None:
    assert match_body("Grüße 👋 — ça va?", event("unicode")) is None


def test_unicode_normalisation_differs() -> None:
    # "ü" as u + combining diaeresis is another text to an exact comparison.
    assert match_body("Gru\u0308ße 👋 — ça va?", event("unicode")) is not None


def test_trailing_whitespace_differs() -> None:
    mismatch = match_body("Bar ", event("notice"))
    assert mismatch is not None
    assert mismatch.expected == "Bar "
    assert mismatch.received.body == "Bar"
    assert "first difference at character 4" in mismatch.diff


def test_case_differs() -> None:
    assert match_body("bar", event("notice")) is not None


def test_mismatch_carries_the_received_message() -> None:
    mismatch = match_body("Baz", event("notice"))
    assert mismatch is not None
    assert mismatch.received.sender == BOT
    assert mismatch.received.msgtype == "m.notice"
    assert mismatch.received.event_id == event("notice")["event_id"]
    assert mismatch.reason == "the reply's body differs from the expected text"


def test_reply_fallback_is_stripped_before_matching() -> None:
    # A person reads 'hrm'; the body says '> <@alice:...> Foo\n\nhrm'.
    assert match_body("hrm", event("reply")) is None


def test_reply_fallback_is_not_part_of_the_expected_text() -> None:
    assert match_body(event("reply")["content"]["body"], event("reply")) is not None


def test_multi_line_reply_fallback_is_stripped_before_matching() -> None:
    assert match_body("**done**\n> not a fallback", event("reply_multiline")) is None


def test_reply_fallback_in_a_thread_is_stripped_before_matching() -> None:
    assert match_body("then this", event("thread_quote")) is None


def test_quote_in_a_message_that_is_not_a_reply_is_kept() -> None:
    quoting = with_content("notice", {"msgtype": "m.text", "body": "> Foo\n\nhrm"})
    assert match_body("> Foo\n\nhrm", quoting) is None
    assert match_body("hrm", quoting) is not None


def test_mismatch_of_a_reply_diffs_the_text_without_fallback() -> None:
    mismatch = match_body("hmm", event("reply"))
    assert mismatch is not None
    assert mismatch.diff == (
        "- expected: 'hmm'\n+ received: 'hrm'\n  first difference at character 2"
    )


def test_mismatch_of_a_reply_keeps_the_raw_body_in_the_message() -> None:
    mismatch = match_body("hmm", event("reply"))
    assert mismatch is not None
    assert mismatch.received.body == event("reply")["content"]["body"]


def test_redacted_message_never_matches() -> None:
    mismatch = match_body("oops", event("redacted"))
    assert mismatch is not None
    assert mismatch.received.body == ""


# ------------------------------------------------------------ Message.from_event


def test_message_from_a_recorded_event() -> None:
    message = Message.from_event(event("notice"))
    assert message == Message(
        event_id=event("notice")["event_id"],
        sender=BOT,
        msgtype="m.notice",
        body="Bar",
        timestamp_ms=event("notice")["origin_server_ts"],
    )


def test_message_without_a_body_has_an_empty_body() -> None:
    message = Message.from_event(event("redacted"))
    assert message.body == ""
    assert message.msgtype == ""
    assert message.sender == BOT


def test_message_with_a_number_body_has_an_empty_body() -> None:
    assert Message.from_event(with_content("notice", {"msgtype": "m.text", "body": 42})).body == ""


def test_message_with_a_null_content_is_empty() -> None:
    message = Message.from_event(with_content("notice", None))
    assert (message.body, message.msgtype) == ("", "")


def test_message_from_an_empty_event_has_defaults() -> None:
    assert Message.from_event({}) == Message("", "", "", "", 0, type="")


def test_message_keeps_the_type_and_whole_content_for_the_json_report() -> None:
    content = {"msgtype": "m.notice", "body": "* pong", "m.new_content": {"body": "pong"}}
    event = {"type": "m.room.message", "sender": "@b:x", "event_id": "$e", "content": content}
    message = Message.from_event(event)
    assert (message.type, message.content) == ("m.room.message", content)
    assert message.content is not content  # a copy: the report never shares the event


def test_reaction_reads_as_a_message_without_body() -> None:
    message = Message.from_event(event("reaction"))
    assert message.body == ""
    assert message.sender == BOT


# ------------------------------------------------------------------- text_diff


def test_one_line_diff_shows_both_quoted_and_the_first_difference() -> None:
    assert text_diff("pong", "PONG") == (
        "- expected: 'pong'\n+ received: 'PONG'\n  first difference at character 1"
    )


def test_one_line_diff_when_one_text_is_a_prefix() -> None:
    assert text_diff("hello", "hello world").endswith("first difference at character 6")


def test_one_line_diff_shows_invisible_characters() -> None:
    assert "'\\x1b[31mred\\x1b[0m'" in text_diff("red", event("ansi")["content"]["body"])


def test_multi_line_diff_is_unified() -> None:
    diff = text_diff("a\nb\nc", "a\nB\nc")
    assert diff.splitlines() == [
        "--- expected",
        "+++ received",
        "@@ -1,3 +1,3 @@",
        " a",
        "-b",
        "+B",
        " c",
    ]


def test_diff_of_texts_differing_only_in_a_final_newline_is_not_empty() -> None:
    # Regression: 'expect: |' keeps a final newline; the line diff of the two was empty.
    diff = text_diff("Bar\nBaz\n", "Bar\nBaz")
    assert diff != ""
    assert "'Bar\\nBaz\\n'" in diff
    assert "first difference at character 8" in diff


def test_mismatch_of_a_block_scalar_expectation_has_a_diff() -> None:
    mismatch = match_body("Bar\n", event("notice"))
    assert mismatch is not None
    assert mismatch.diff == (
        "- expected: 'Bar\\n'\n+ received: 'Bar'\n  first difference at character 4"
    )
