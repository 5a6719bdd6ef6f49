"""evaluate(): whole expectations against recorded events; closest() for failure reports."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import ALICE, BOT, event

from matrix_bot_tester.language import Expectation
from matrix_bot_tester.matching import MatchContext, Verdict, apply_edit, closest, evaluate


def eid(name: str) -> str:
    return str(event(name)["event_id"])


def ctx(step: str | None = "text", **named: str) -> MatchContext:
    """Alice's view: the step sent ``step``; ``named`` maps names to fixture names."""
    return MatchContext(
        me=ALICE,
        step_event=event(step) if step else None,
        named={name: event(fixture) for name, fixture in named.items()},
    )


def check(spec: dict[str, Any], name: str, context: MatchContext | None = None) -> Verdict:
    return evaluate(Expectation.model_validate(spec), event(name), context or ctx())


def edited() -> dict[str, Any]:
    """The bot's "working..." after its edit to "done: 3 results", as the conversation sees it."""
    return apply_edit(event("html_original"), event("edit_html"))


def only_problem(verdict: Verdict) -> str:
    assert verdict.ok is False
    assert len(verdict.problems) == 1, verdict.problems
    return verdict.problems[0]


# ------------------------------------------------------------ the verdict


def test_matching_body_passes_every_check() -> None:
    verdict = check({"body": "Bar"}, "notice")
    assert verdict == Verdict(
        ok=True, problems=(), captures={}, checks=2, passed=2, diff=None, similarity=1.0
    )


def test_type_is_checked_even_when_only_body_is_given() -> None:
    assert check({"body": "Bar"}, "notice").checks == 2


def test_wrong_body_is_one_problem_line() -> None:
    assert only_problem(check({"body": "pong"}, "notice")) == "body: expected 'pong', got 'Bar'"


def test_wrong_body_has_a_diff() -> None:
    assert check({"body": "Baz"}, "notice").diff == (
        "- expected: 'Baz'\n+ received: 'Bar'\n  first difference at character 3"
    )


def test_closeness_is_the_share_of_checks_that_hold() -> None:
    verdict = check({"body": "pong", "msgtype": "m.notice", "sender": BOT}, "notice")
    assert (verdict.checks, verdict.passed, verdict.closeness) == (4, 3, 0.75)


def test_every_failing_check_is_listed_in_order() -> None:
    verdict = check({"body": "pong", "msgtype": "m.text", "sender": ALICE}, "notice")
    assert verdict.problems == (
        f"sender: expected {ALICE}, got {BOT}",
        "msgtype: expected m.text, got m.notice",
        "body: expected 'pong', got 'Bar'",
    )


def test_diff_is_of_the_first_failing_text_field() -> None:
    verdict = check({"body": "Baz", "text": "Bax"}, "notice")
    assert verdict.diff is not None
    assert "'Baz'" in verdict.diff


# ------------------------------------------------------------------- type


def test_message_expectation_does_not_match_a_reaction() -> None:
    verdict = check({"body": "Bar"}, "reaction")
    assert verdict.problems[0] == "type: expected m.room.message, got m.reaction"


def test_explicit_type_is_checked() -> None:
    assert check({"type": "m.reaction"}, "reaction").ok is True


def test_explicit_type_mismatch() -> None:
    assert only_problem(check({"type": "m.sticker"}, "notice")) == (
        "type: expected m.sticker, got m.room.message"
    )


# ------------------------------------------------------------------- body


def test_body_of_a_reply_is_matched_without_fallback() -> None:
    assert check({"body": "hrm"}, "reply").ok is True


def test_body_contains() -> None:
    assert check({"body": {"contains": "build"}}, "mentions").ok is True


def test_body_regex_captures_named_groups() -> None:
    expectation = Expectation.model_validate({"body": {"regex": r"done: (?P<count>\d+) results"}})
    verdict = evaluate(expectation, edited(), ctx())
    assert verdict.captures == {"count": "3"}


def test_captures_are_not_reported_when_another_check_fails() -> None:
    spec = {"body": {"regex": r"(?P<word>\w+)"}, "msgtype": "m.text"}
    assert check(spec, "notice").captures == {}


def test_body_one_of() -> None:
    assert check({"body": {"one_of": ["Foo", "Bar"]}}, "notice").ok is True


def test_one_of_diff_shows_the_closest_option() -> None:
    verdict = check({"body": {"one_of": ["Foo", "Baz"]}}, "notice")
    assert verdict.diff is not None
    assert "expected: 'Baz'" in verdict.diff


def test_body_ignore_case() -> None:
    assert check({"body": {"exact": "bar", "ignore_case": True}}, "notice").ok is True


def test_message_without_body_fails_body() -> None:
    assert only_problem(check({"body": "oops"}, "redacted")) == (
        "body: expected 'oops', but it is absent"
    )


def test_plain_string_expectation_is_a_body_match() -> None:
    from matrix_bot_tester.language import as_expectation

    assert evaluate(as_expectation("hrm"), event("reply"), ctx()).ok is True


# ------------------------------------------------------------- text and html


def test_text_is_the_rendered_html() -> None:
    assert check({"text": "Status: all good\none\ntwo & three"}, "html").ok is True


def test_text_of_a_plain_message_is_the_body() -> None:
    assert check({"text": "Bar"}, "notice").ok is True


def test_text_with_normalised_white_space() -> None:
    spec = {"text": {"exact": "Status: all good one two & three", "normalize_whitespace": True}}
    assert check(spec, "html").ok is True


def test_html_exact_ignores_trailing_newlines() -> None:
    assert check({"html": "<p>working...</p>"}, "html_original").ok is True


def test_html_exact_ignores_newlines_between_blocks() -> None:
    html = (
        "<p><strong>Status</strong>: all <em>good</em></p>"
        "<ul><li>one</li><li>two &amp; three</li></ul>"
    )
    assert check({"html": html}, "html").ok is True


def test_html_exact_normalises_the_expected_markup() -> None:
    assert check({"html": "<P>working...</P>\n\n"}, "html_original").ok is True


def test_html_of_a_reply_is_matched_without_mx_reply() -> None:
    assert check({"html": "hrm"}, "reply").ok is True


def test_html_contains_sees_the_normalised_html() -> None:
    assert check({"html": {"contains": "</p><ul><li>one"}}, "html").ok is True


def test_html_regex_sees_the_normalised_html() -> None:
    expectation = Expectation.model_validate(
        {"html": {"regex": r"<p>done: <b>\d+</b> results</p>"}}
    )
    assert evaluate(expectation, edited(), ctx()).ok is True


def test_edit_itself_reads_with_its_star() -> None:
    # The edit event's own body is the fallback "* ..."; scripts match the edited message.
    assert check({"body": "done: 3 results"}, "edit_html").ok is False


def test_html_one_of_normalises_the_options() -> None:
    assert check({"html": {"one_of": ["<p>x</p>", "<p>working...</p>\n"]}}, "html_original").ok


def test_html_mismatch_diffs_the_normalised_forms() -> None:
    verdict = check({"html": "<p>working</p>\n"}, "html_original")
    assert verdict.diff == (
        "- expected: '<p>working</p>'\n+ received: '<p>working...</p>'\n"
        "  first difference at character 11"
    )


def test_message_without_html_fails_html() -> None:
    assert only_problem(check({"html": "<p>Bar</p>"}, "notice")) == (
        "html: expected '<p>Bar</p>', but it is absent"
    )


# ------------------------------------------------------------ msgtype, sender


def test_msgtype_matches() -> None:
    assert check({"msgtype": "m.notice"}, "notice").ok is True


def test_msgtype_list_allows_any_of_them() -> None:
    assert check({"msgtype": ["m.text", "m.notice"]}, "notice").ok is True


def test_msgtype_list_mismatch() -> None:
    assert only_problem(check({"msgtype": ["m.text", "m.emote"]}, "notice")) == (
        "msgtype: expected m.text or m.emote, got m.notice"
    )


def test_sender_matches() -> None:
    assert check({"sender": BOT}, "notice").ok is True


# ---------------------------------------------------------------- reply_to


def test_reply_to_true_is_the_step_message() -> None:
    assert check({"reply_to": True}, "reply", ctx(step="text")).ok is True


def test_reply_to_true_mismatch_names_both_events() -> None:
    assert only_problem(check({"reply_to": True}, "notice", ctx(step="text"))) == (
        f"reply_to: expected a reply to this step's message {eid('text')}, got not a reply"
    )


def test_reply_to_a_named_message() -> None:
    assert check({"reply_to": "question"}, "reply", ctx(step=None, question="text")).ok is True


def test_reply_to_an_other_message_fails() -> None:
    problem = only_problem(check({"reply_to": "q"}, "reply", ctx(q="notice")))
    assert problem == (
        f"reply_to: expected a reply to q ({eid('notice')}), got a reply to {eid('text')}"
    )


def test_reply_to_an_unknown_name_is_a_problem() -> None:
    assert only_problem(check({"reply_to": "nope"}, "reply")) == "reply_to: no message named nope"


def test_reply_to_true_without_a_step_message_is_a_problem() -> None:
    assert only_problem(check({"reply_to": True}, "reply", ctx(step=None))) == (
        "reply_to: this step sent no message to refer to"
    )


def test_reply_without_fallback_is_a_reply() -> None:
    assert check(
        {"reply_to": True, "body": "plain answer"}, "reply_no_fallback", ctx("thread_root")
    ).ok


def test_thread_fallback_is_not_a_reply_to_the_root() -> None:
    assert check({"reply_to": True}, "thread_reply", ctx(step="thread_root")).ok is False


def test_reply_to_false_accepts_a_plain_message() -> None:
    assert check({"reply_to": False}, "notice").ok is True


def test_reply_to_false_rejects_a_reply() -> None:
    assert only_problem(check({"reply_to": False}, "reply")) == (
        f"reply_to: expected not a reply, got a reply to {eid('text')}"
    )


# ------------------------------------------------------------------ thread


def test_thread_true_is_the_thread_of_the_step_message() -> None:
    assert check({"thread": True}, "thread_reply", ctx(step="thread_root")).ok is True


def test_thread_true_stays_in_the_thread_the_step_message_is_in() -> None:
    assert check({"thread": True}, "thread_quote", ctx(step="thread_alice")).ok is True


def test_thread_of_a_named_root() -> None:
    assert check({"thread": "root"}, "thread_reply", ctx(root="thread_root")).ok is True


def test_message_outside_the_thread_fails() -> None:
    assert only_problem(check({"thread": True}, "reply_no_fallback", ctx("thread_root"))) == (
        f"thread: expected the thread of {eid('thread_root')}, got no thread"
    )


def test_thread_false_rejects_a_thread_message() -> None:
    assert check({"thread": False}, "thread_reply").ok is False


def test_thread_with_an_unknown_name_is_a_problem() -> None:
    assert only_problem(check({"thread": "nope"}, "thread_reply")) == (
        "thread: no message named nope"
    )


def test_real_reply_in_a_thread_matches_thread_and_reply_to() -> None:
    spec = {"thread": "root", "reply_to": True, "text": "then this"}
    assert check(spec, "thread_quote", ctx("thread_alice", root="thread_root")).ok is True


# ---------------------------------------------------------------- mentions


def test_mention_in_m_mentions() -> None:
    assert check({"mentions": ALICE}, "mentions").ok is True


def test_mention_as_a_pill_only() -> None:
    assert check({"mentions": ALICE}, "pill_only").ok is True


def test_mention_in_m_mentions_without_a_pill() -> None:
    plain = event("notice")
    plain["content"]["m.mentions"] = {"user_ids": [ALICE]}
    assert evaluate(Expectation(mentions=ALICE), plain, ctx()).ok is True


def test_every_listed_user_must_be_mentioned() -> None:
    verdict = check({"mentions": [ALICE, BOT]}, "mentions")
    assert (verdict.checks, verdict.passed) == (3, 2)


def test_missing_mention_says_what_was_mentioned() -> None:
    assert only_problem(check({"mentions": BOT}, "mentions")) == (
        f"mentions: {BOT} is not mentioned (m.mentions.user_ids: ['{ALICE}'], pills: ['{ALICE}'])"
    )


def test_pill_in_the_reply_fallback_is_not_a_mention() -> None:
    assert check({"mentions": ALICE}, "reply").ok is False


# ---------------------------------------------------------------- reaction


def test_reaction_with_key_to_the_step_message() -> None:
    assert check({"reaction": {"key": "👍", "to": True}}, "reaction", ctx(step="text")).ok


def test_reaction_key_one_of() -> None:
    spec = {"reaction": {"key": {"one_of": ["✅", "👍"]}}}
    assert check(spec, "reaction_check").ok is True


def test_reaction_wrong_key() -> None:
    assert only_problem(check({"reaction": {"key": "👎"}}, "reaction")) == (
        "reaction.key: expected '👎', got '👍'"
    )


def test_reaction_to_another_message() -> None:
    problem = only_problem(check({"reaction": {"to": "other"}}, "reaction", ctx(other="notice")))
    assert problem == (
        f"reaction.to: expected a reaction to other ({eid('notice')}), "
        f"got a reaction to {eid('text')}"
    )


def test_reaction_expectation_does_not_match_a_message() -> None:
    assert check({"reaction": {"key": "👍"}}, "notice").problems[0] == (
        "type: expected m.reaction, got m.room.message"
    )


def test_annotation_relation_is_required() -> None:
    odd = event("reaction")
    odd["content"]["m.relates_to"]["rel_type"] = "m.reference"
    verdict = evaluate(Expectation.model_validate({"reaction": {}}), odd, ctx())
    assert verdict.problems == ("reaction: expected an m.annotation, got m.reference",)


# --------------------------------------------------------------- redaction


def redaction_ctx() -> MatchContext:
    doomed = {"event_id": event("redaction")["redacts"], "type": "m.room.message"}
    return MatchContext(me=ALICE, step_event=doomed, named={"doomed": doomed})


def test_redaction_of_a_named_message() -> None:
    assert check({"redaction": {"of": "doomed"}}, "redaction", redaction_ctx()).ok is True


def test_redaction_of_the_step_message() -> None:
    assert check({"redaction": {"of": True}}, "redaction", redaction_ctx()).ok is True


def test_redaction_target_in_content_only() -> None:
    # Room version 11 moved 'redacts' into content.
    v11 = event("redaction")
    del v11["redacts"]
    expectation = Expectation.model_validate({"redaction": {"of": "doomed"}})
    assert evaluate(expectation, v11, redaction_ctx()).ok is True


def test_redaction_of_another_message() -> None:
    verdict = check({"redaction": {"of": True}}, "redaction", ctx(step="text"))
    assert only_problem(verdict).startswith("redaction.of: expected a redaction of this step's")


def test_any_redaction() -> None:
    assert check({"redaction": {}}, "redaction").ok is True


# ------------------------------------------------------------------- media


def test_image_with_mimetype_filename_and_size() -> None:
    spec = {"media": {"mimetype": "image/png", "filename": "chart.png", "size": 48213}}
    assert check(spec, "image_info").ok is True


def test_media_filename_falls_back_to_body() -> None:
    assert check({"media": {"filename": "report.pdf"}}, "file").ok is True


def test_media_mimetype_regex() -> None:
    assert check({"media": {"mimetype": {"regex": "image/.*"}}}, "image_info").ok is True


def test_media_wrong_size() -> None:
    assert only_problem(check({"media": {"size": 1}}, "image_info")) == (
        "media.size: expected 1, got 48213"
    )


def test_media_without_info_lacks_a_mimetype() -> None:
    assert only_problem(check({"media": {"mimetype": "image/png"}}, "image")) == (
        "media.mimetype: expected 'image/png', but it is absent"
    )


def test_text_message_is_not_media() -> None:
    assert only_problem(check({"media": {}}, "notice")) == (
        "media: expected one of m.image, m.file, m.audio, m.video, got m.notice"
    )


def test_media_and_msgtype_together() -> None:
    assert check({"media": {}, "msgtype": "m.file"}, "file").ok is True


# ------------------------------------------------------------------ fields


def test_field_text_by_dotted_path() -> None:
    assert check({"fields": {"content.m.relates_to.rel_type": "m.thread"}}, "thread_reply").ok


def test_field_text_match_mapping() -> None:
    spec = {"fields": {"content.url": {"regex": "mxc://[^/]+/chart"}}}
    assert check(spec, "image_info").ok is True


def test_field_number_equals() -> None:
    assert check({"fields": {"content.info.w": 640}}, "image_info").ok is True


def test_field_number_differs() -> None:
    assert only_problem(check({"fields": {"content.info.w": 641}}, "image_info")) == (
        "content.info.w: expected 641, got 640"
    )


def test_field_boolean_equals() -> None:
    spec = {"fields": {"content.m.relates_to.is_falling_back": True}}
    assert check(spec, "thread_reply").ok is True


def test_field_true_is_not_one() -> None:
    odd = event("notice")
    odd["content"]["flag"] = 1
    assert evaluate(Expectation(fields={"content.flag": True}), odd, ctx()).ok is False


def test_field_null_equals_json_null() -> None:
    odd = event("notice")
    odd["content"]["x"] = None
    assert evaluate(Expectation(fields={"content.x": None}), odd, ctx()).ok is True


def test_field_null_is_not_an_absent_field() -> None:
    assert only_problem(check({"fields": {"content.x": None}}, "notice")) == (
        "content.x: not in the event"
    )


def test_field_text_against_a_number_compares_its_json() -> None:
    assert check({"fields": {"content.info.size": "48213"}}, "image_info").ok is True


def test_field_text_against_a_mapping_compares_its_json() -> None:
    spec = {"fields": {"content.m.mentions": {"contains": f'"{ALICE}"'}}}
    assert check(spec, "mentions").ok is True


def test_field_regex_captures() -> None:
    spec = {"fields": {"content.m.relates_to.event_id": {"regex": r"\$(?P<root>.+)"}}}
    assert check(spec, "thread_reply").captures == {"root": eid("thread_root")[1:]}


# -------------------------------------------------------------------- save


def test_save_captures_a_path() -> None:
    verdict = check({"save": {"url": "content.url"}}, "image_info")
    assert verdict.captures == {"url": "mxc://synapse-test.localhost/chart"}


def test_save_of_a_number_is_its_text() -> None:
    assert check({"save": {"size": "content.info.size"}}, "image_info").captures == {
        "size": "48213"
    }


def test_save_of_a_missing_path_is_a_problem() -> None:
    assert only_problem(check({"save": {"x": "content.nope"}}, "notice")) == (
        "save x: content.nope is not in the event"
    )


def test_save_and_regex_captures_together() -> None:
    spec = {"body": {"regex": r"(?P<first>\w+): .*"}, "save": {"who": "sender"}}
    assert check(spec, "mentions").captures == {"first": "alice", "who": BOT}


# ----------------------------------------------------------------- closest


def test_closest_of_no_events_is_none() -> None:
    assert closest(Expectation(body="x"), [], ctx()) is None


def test_closest_prefers_the_matching_event() -> None:
    found = closest(Expectation(body="Bar"), [event("reaction"), event("notice")], ctx())
    assert found is not None
    assert found[0]["event_id"] == eid("notice")
    assert found[1].ok is True


def test_closest_prefers_more_checks_holding() -> None:
    expectation = Expectation(body="pong", msgtype="m.notice")
    found = closest(expectation, [event("emote"), event("notice")], ctx())
    assert found is not None
    assert found[0]["event_id"] == eid("notice")


def test_closest_breaks_ties_by_text_similarity() -> None:
    found = closest(Expectation(body="wave"), [event("notice"), event("emote")], ctx())
    assert found is not None
    assert found[0]["event_id"] == eid("emote")


def test_closest_of_equals_is_the_earliest() -> None:
    found = closest(Expectation(body="zzz"), [event("notice"), event("notice")], ctx())
    assert found is not None
    assert found[0] is not None
    assert found[1].problems == ("body: expected 'zzz', got 'Bar'",)


@pytest.mark.parametrize("name", ["notice", "reply", "html", "image_info", "redacted", "member"])
def test_empty_expectation_of_a_message_checks_only_the_type(name: str) -> None:
    verdict = check({}, name)
    assert verdict.checks == 1
    assert verdict.ok is (event(name)["type"] == "m.room.message")
