"""The event content each action sends, built as Matrix clients build it (pure, no server)."""

from __future__ import annotations

import pytest

from matrix_bot_tester.compose import (
    HTML_FORMAT,
    UnknownMessage,
    edit_content,
    event_id_of,
    file_content,
    guess_mimetype,
    media_msgtype,
    message_content,
    reaction_content,
)
from matrix_bot_tester.language import Edit, React, SendMessage
from matrix_bot_tester.matching import Event

ME = "@tester:example.org"
BOT = "@bot:example.org"


def event(event_id: str, *, sender: str = BOT, msgtype: str = "m.notice") -> Event:
    return {
        "type": "m.room.message",
        "event_id": event_id,
        "sender": sender,
        "content": {"msgtype": msgtype, "body": "earlier"},
    }


NAMED: dict[str, Event] = {
    "question": event("$question", sender=ME, msgtype="m.text"),
    "answer": event("$answer"),
    "root": event("$root"),
}


# ------------------------------------------------------------------ text


def test_plain_string_is_sent_as_m_text() -> None:
    assert message_content("hello", {}) == {"msgtype": "m.text", "body": "hello"}


def test_text_mapping_is_sent_as_m_text_by_default() -> None:
    assert message_content(SendMessage(text="hello"), {}) == {"msgtype": "m.text", "body": "hello"}


@pytest.mark.parametrize("msgtype", ["m.notice", "m.emote"])
def test_text_keeps_the_msgtype_it_asks_for(msgtype: str) -> None:
    content = message_content(SendMessage(text="waves", msgtype=msgtype), {})
    assert content == {"msgtype": msgtype, "body": "waves"}


def test_markdown_is_rendered_to_html_with_the_source_as_body() -> None:
    content = message_content(SendMessage(markdown="hello **world**"), {})
    assert content == {
        "msgtype": "m.text",
        "body": "hello **world**",
        "format": HTML_FORMAT,
        "formatted_body": "<p>hello <strong>world</strong></p>",
    }


def test_markdown_list_is_rendered_as_a_list() -> None:
    content = message_content(SendMessage(markdown="- one\n- two"), {})
    assert content["formatted_body"] == "<ul>\n<li>one</li>\n<li>two</li>\n</ul>"


def test_markdown_that_is_one_plain_paragraph_is_sent_as_plain_text() -> None:
    content = message_content(SendMessage(markdown="just words"), {})
    assert content == {"msgtype": "m.text", "body": "just words"}


def test_html_gets_a_plain_text_body_derived_from_it() -> None:
    content = message_content(SendMessage(html="<p>Hi <b>there</b></p><p>again</p>"), {})
    assert content == {
        "msgtype": "m.text",
        "body": "Hi there\nagain",
        "format": HTML_FORMAT,
        "formatted_body": "<p>Hi <b>there</b></p><p>again</p>",
    }


def test_notice_in_html_keeps_its_msgtype() -> None:
    content = message_content(SendMessage(html="<i>quiet</i>", msgtype="m.notice"), {})
    assert (content["msgtype"], content["body"]) == ("m.notice", "quiet")


# ------------------------------------------------------------- relations


def test_reply_to_points_at_the_named_message() -> None:
    content = message_content(SendMessage(text="yes", reply_to="answer"), NAMED)
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": "$answer"}}


def test_reply_has_no_legacy_fallback_in_its_body() -> None:
    content = message_content(SendMessage(text="yes", reply_to="answer"), NAMED)
    assert content["body"] == "yes"
    assert "formatted_body" not in content


def test_thread_without_reply_to_falls_back_to_the_root() -> None:
    content = message_content(SendMessage(text="in thread", thread="root"), NAMED)
    assert content["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": "$root",
        "m.in_reply_to": {"event_id": "$root"},
        "is_falling_back": True,
    }


def test_thread_named_by_a_message_inside_it_uses_that_threads_root() -> None:
    in_thread = event("$answer-in-thread")
    in_thread["content"]["m.relates_to"] = {"rel_type": "m.thread", "event_id": "$root"}
    content = message_content(SendMessage(text="more", thread="a"), {"a": in_thread})
    assert content["m.relates_to"]["event_id"] == "$root"
    assert content["m.relates_to"]["m.in_reply_to"] == {"event_id": "$answer-in-thread"}


def test_thread_with_reply_to_is_a_real_reply_inside_the_thread() -> None:
    content = message_content(SendMessage(text="x", thread="root", reply_to="answer"), NAMED)
    assert content["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": "$root",
        "m.in_reply_to": {"event_id": "$answer"},
        "is_falling_back": False,
    }


def test_mentions_become_m_mentions_user_ids() -> None:
    content = message_content(SendMessage(text="hey", mentions=[BOT, ME]), {})
    assert content["m.mentions"] == {"user_ids": [BOT, ME]}


def test_no_mentions_means_no_m_mentions_key() -> None:
    assert "m.mentions" not in message_content(SendMessage(text="hey"), {})


def test_reply_to_an_unknown_name_raises_unknown_message() -> None:
    with pytest.raises(UnknownMessage) as caught:
        message_content(SendMessage(text="x", reply_to="ghost"), NAMED)
    assert caught.value.args == ("ghost",)


def test_thread_of_an_unknown_name_raises_unknown_message() -> None:
    with pytest.raises(UnknownMessage):
        message_content(SendMessage(text="x", thread="ghost"), NAMED)


def test_event_id_of_a_named_message() -> None:
    assert event_id_of("answer", NAMED) == "$answer"


def test_event_id_of_an_unknown_name_raises_unknown_message() -> None:
    with pytest.raises(UnknownMessage):
        event_id_of("ghost", NAMED)


# ----------------------------------------------------------------- files


@pytest.mark.parametrize(
    ("mimetype", "msgtype"),
    [
        ("image/png", "m.image"),
        ("audio/ogg", "m.audio"),
        ("video/mp4", "m.video"),
        ("application/pdf", "m.file"),
        ("text/plain", "m.file"),
    ],
)
def test_media_msgtype_follows_the_mimetype(mimetype: str, msgtype: str) -> None:
    assert media_msgtype(mimetype) == msgtype


def test_file_content_has_url_filename_and_info() -> None:
    spec = SendMessage(file="cat.png")
    content = file_content(spec, "mxc://example.org/cat", 123, "image/png", "cat.png", {})
    assert content == {
        "msgtype": "m.image",
        "body": "cat.png",
        "filename": "cat.png",
        "url": "mxc://example.org/cat",
        "info": {"mimetype": "image/png", "size": 123},
    }


def test_file_content_msgtype_can_be_forced() -> None:
    spec = SendMessage(file="cat.png", msgtype="m.file")
    content = file_content(spec, "mxc://example.org/cat", 1, "image/png", "cat.png", {})
    assert content["msgtype"] == "m.file"


def test_file_content_can_be_a_reply() -> None:
    spec = SendMessage(file="cat.png", reply_to="answer")
    content = file_content(spec, "mxc://example.org/cat", 1, "image/png", "cat.png", NAMED)
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": "$answer"}}


@pytest.mark.parametrize(
    ("filename", "mimetype"),
    [("cat.png", "image/png"), ("notes.txt", "text/plain"), ("blob", "application/octet-stream")],
)
def test_guess_mimetype_from_the_filename(filename: str, mimetype: str) -> None:
    assert guess_mimetype(filename) == mimetype


# ------------------------------------------------------------- reactions


def test_reaction_content_is_an_annotation_of_the_named_message() -> None:
    assert reaction_content(React(to="answer", key="👍"), NAMED) == {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": "$answer", "key": "👍"}
    }


def test_reaction_to_an_unknown_name_raises_unknown_message() -> None:
    with pytest.raises(UnknownMessage):
        reaction_content(React(to="ghost", key="👍"), NAMED)


# ----------------------------------------------------------------- edits


def test_edit_puts_the_new_text_in_m_new_content() -> None:
    content = edit_content(Edit(message="question", text="better"), NAMED)
    assert content["m.new_content"] == {"msgtype": "m.text", "body": "better"}


def test_edit_fallback_body_is_starred() -> None:
    content = edit_content(Edit(message="question", text="better"), NAMED)
    assert (content["msgtype"], content["body"]) == ("m.text", "* better")


def test_edit_relates_to_the_message_with_m_replace() -> None:
    content = edit_content(Edit(message="question", text="better"), NAMED)
    assert content["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$question"}


def test_edit_keeps_the_msgtype_of_the_edited_message() -> None:
    content = edit_content(Edit(message="answer", text="better"), NAMED)
    assert content["msgtype"] == "m.notice"
    assert content["m.new_content"]["msgtype"] == "m.notice"


def test_edit_in_markdown_renders_both_new_content_and_fallback() -> None:
    content = edit_content(Edit(message="question", markdown="**bold**"), NAMED)
    assert content["m.new_content"] == {
        "msgtype": "m.text",
        "body": "**bold**",
        "format": HTML_FORMAT,
        "formatted_body": "<p><strong>bold</strong></p>",
    }
    assert content["formatted_body"] == "* <p><strong>bold</strong></p>"
    assert content["body"] == "* **bold**"


def test_edit_in_html_derives_the_body() -> None:
    content = edit_content(Edit(message="question", html="<b>new</b>"), NAMED)
    assert content["m.new_content"]["body"] == "new"
    assert content["body"] == "* new"


def test_edit_of_an_unknown_name_raises_unknown_message() -> None:
    with pytest.raises(UnknownMessage):
        edit_content(Edit(message="ghost", text="x"), NAMED)
