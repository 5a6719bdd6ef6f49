"""Reading recorded events: dotted paths, relations, edits, readable text, what counts."""

from __future__ import annotations

import copy

from fakes import ALICE, BOT, event, with_content

from matrix_bot_tester.matching import (
    MISSING,
    apply_edit,
    edit_target,
    get_path,
    in_reply_to,
    is_counted,
    readable_text,
    thread_root,
)

# ------------------------------------------------------------------ get_path


def test_path_to_a_top_level_key() -> None:
    assert get_path(event("notice"), "sender") == BOT


def test_path_into_content() -> None:
    assert get_path(event("notice"), "content.body") == "Bar"


def test_path_through_a_key_with_dots() -> None:
    assert get_path(event("thread_reply"), "content.m.relates_to.rel_type") == "m.thread"


def test_path_through_two_keys_with_dots() -> None:
    path = "content.m.relates_to.m.in_reply_to.event_id"
    assert get_path(event("thread_reply"), path) == event("thread_root")["event_id"]


def test_path_into_new_content_of_an_edit() -> None:
    assert get_path(event("edit_html"), "content.m.new_content.body") == "done: 3 results"


def test_path_with_a_list_index() -> None:
    assert get_path(event("mentions"), "content.m.mentions.user_ids.0") == ALICE


def test_path_to_a_mapping_returns_the_mapping() -> None:
    assert get_path(event("image_info"), "content.info")["size"] == 48213


def test_path_to_a_number_returns_the_number() -> None:
    assert get_path(event("image_info"), "content.info.w") == 640


def test_path_to_a_boolean_returns_the_boolean() -> None:
    assert get_path(event("thread_reply"), "content.m.relates_to.is_falling_back") is True


def test_absent_path_is_missing() -> None:
    assert get_path(event("notice"), "content.formatted_body") is MISSING


def test_absent_top_level_key_is_missing() -> None:
    assert get_path(event("notice"), "state_key") is MISSING


def test_list_index_out_of_range_is_missing() -> None:
    assert get_path(event("mentions"), "content.m.mentions.user_ids.1") is MISSING


def test_non_numeric_segment_into_a_list_is_missing() -> None:
    assert get_path(event("mentions"), "content.m.mentions.user_ids.first") is MISSING


def test_path_below_a_string_is_missing() -> None:
    assert get_path(event("notice"), "content.body.length") is MISSING


def test_json_null_is_none_not_missing() -> None:
    assert get_path({"content": {"x": None}}, "content.x") is None


def test_longest_key_wins() -> None:
    assert get_path({"a.b": 1, "a": {"b": 2}}, "a.b") == 1


def test_shorter_key_is_tried_when_the_longest_leads_nowhere() -> None:
    assert get_path({"a.b": 1, "a": {"b": {"c": 3}}}, "a.b.c") == 3


def test_missing_repr_is_readable() -> None:
    assert repr(MISSING) == "MISSING"


# ---------------------------------------------------------- reply and thread


def test_reply_is_in_reply_to_the_quoted_message() -> None:
    assert in_reply_to(event("reply")) == event("text")["event_id"]


def test_plain_message_is_not_in_reply_to_anything() -> None:
    assert in_reply_to(event("notice")) is None


def test_thread_fallback_is_not_a_reply() -> None:
    assert in_reply_to(event("thread_reply")) is None


def test_real_reply_inside_a_thread_is_a_reply() -> None:
    assert in_reply_to(event("thread_quote")) == event("thread_alice")["event_id"]


def test_reply_without_fallback_is_a_reply() -> None:
    assert in_reply_to(event("reply_no_fallback")) == event("thread_root")["event_id"]


def test_thread_message_has_its_root() -> None:
    assert thread_root(event("thread_reply")) == event("thread_root")["event_id"]


def test_thread_root_itself_is_in_no_thread() -> None:
    assert thread_root(event("thread_root")) is None


def test_reply_outside_a_thread_is_in_no_thread() -> None:
    assert thread_root(event("reply")) is None


# ------------------------------------------------------------ readable_text


def test_readable_text_of_a_plain_message_is_its_body() -> None:
    assert readable_text(event("notice")) == "Bar"


def test_readable_text_of_a_reply_has_no_fallback() -> None:
    assert readable_text(event("reply")) == "hrm"


def test_readable_text_of_a_reply_in_a_thread_has_no_fallback() -> None:
    assert readable_text(event("thread_quote")) == "then this"


def test_readable_text_renders_html() -> None:
    assert readable_text(event("html")) == "Status: all good\none\ntwo & three"


def test_readable_text_of_an_html_reply_renders_what_follows_the_fallback() -> None:
    assert readable_text(event("reply_multiline")) == "done\nnot a fallback"


def test_readable_text_of_a_plain_text_reply_strips_the_body_fallback() -> None:
    content = dict(event("reply")["content"])
    del content["format"], content["formatted_body"]
    assert readable_text(with_content("reply", content)) == "hrm"


def test_readable_text_keeps_a_leading_quote_of_a_message_that_is_no_reply() -> None:
    quoting = with_content("notice", {"msgtype": "m.text", "body": "> Foo\n\nhrm"})
    assert readable_text(quoting) == "> Foo\n\nhrm"


def test_readable_text_without_html_format_ignores_formatted_body() -> None:
    odd = with_content("notice", {"msgtype": "m.text", "body": "a", "formatted_body": "<b>b</b>"})
    assert readable_text(odd) == "a"


def test_readable_text_of_a_redacted_message_is_empty() -> None:
    assert readable_text(event("redacted")) == ""


def test_readable_text_of_a_reaction_is_empty() -> None:
    assert readable_text(event("reaction")) == ""


# ------------------------------------------------------------------ edits


def test_edit_targets_the_edited_message() -> None:
    assert edit_target(event("edit")) == event("notice")["event_id"]


def test_plain_message_is_no_edit() -> None:
    assert edit_target(event("notice")) is None


def test_reply_is_no_edit() -> None:
    assert edit_target(event("reply")) is None


def test_edit_replaces_the_content_with_the_new_content() -> None:
    edited = apply_edit(event("html_original"), event("edit_html"))
    assert edited["content"] == event("edit_html")["content"]["m.new_content"]


def test_edited_message_reads_as_the_final_text() -> None:
    assert readable_text(apply_edit(event("html_original"), event("edit_html"))) == (
        "done: 3 results"
    )


def test_edited_plain_message_has_the_new_body() -> None:
    assert apply_edit(event("notice"), event("edit"))["content"]["body"] == "Baz"


def test_edit_keeps_the_original_event_id_sender_and_time() -> None:
    original = event("html_original")
    edited = apply_edit(original, event("edit_html"))
    kept = ("event_id", "sender", "origin_server_ts", "type")
    assert [edited[key] for key in kept] == [original[key] for key in kept]


def test_edit_does_not_change_the_original() -> None:
    original = event("html_original")
    before = copy.deepcopy(original)
    apply_edit(original, event("edit_html"))
    assert original == before


def test_edit_by_someone_else_changes_nothing() -> None:
    original = event("html_original")
    assert apply_edit(original, event("edit_by_other")) is original


def test_edit_of_another_message_changes_nothing() -> None:
    original = event("notice")
    assert apply_edit(original, event("edit_html")) is original


def test_edit_without_new_content_changes_nothing() -> None:
    broken = event("edit")
    del broken["content"]["m.new_content"]
    original = event("notice")
    assert apply_edit(original, broken) is original


def test_edit_keeps_the_original_reply_relation() -> None:
    edit = event("edit")
    edit["content"]["m.relates_to"]["event_id"] = event("reply")["event_id"]
    edited = apply_edit(event("reply"), edit)
    assert edited["content"]["m.relates_to"] == event("reply")["content"]["m.relates_to"]
    assert edited["content"]["body"] == "Baz"


def test_relation_inside_new_content_is_ignored() -> None:
    edit = event("edit")
    edit["content"]["m.new_content"]["m.relates_to"] = {"m.in_reply_to": {"event_id": "$x"}}
    assert "m.relates_to" not in apply_edit(event("notice"), edit)["content"]


# ---------------------------------------------------------------- is_counted


def test_bot_message_counts_for_the_tester() -> None:
    assert is_counted(event("notice"), ALICE) is True


def test_own_message_does_not_count() -> None:
    assert is_counted(event("text"), ALICE) is False


def test_state_event_does_not_count() -> None:
    assert is_counted(event("member"), ALICE) is False


def test_reaction_counts() -> None:
    assert is_counted(event("reaction"), ALICE) is True


def test_redaction_counts() -> None:
    assert is_counted(event("redaction"), ALICE) is True


def test_edit_counts() -> None:
    # The conversation applies it to the message it edits; it is not ignored.
    assert is_counted(event("edit"), ALICE) is True
