"""Record the event fixtures of the richer expectations from a real Synapse.

Not a test: run it by hand when these fixtures need refreshing, against a
development homeserver that has the users @alice and @bot (password "test"):

    .venv/bin/python tests/data/events/record_more_events.py http://127.0.0.1:18008

A companion of ``record_events.py`` (whose fixtures it leaves alone): Alice
opens a room with the bot and the bot answers with the shapes that the
matchers of ``expect:`` look at — a threaded reply (``m.thread`` with
``is_falling_back`` and ``m.in_reply_to``), a reply in a thread that is not a
fallback, a reply without a fallback, HTML with ``<p>…</p>\\n``, an edit of an
HTML message, an image with ``info``, a message with ``m.mentions`` and a
pill, a reaction, a redaction. The events are read back through ``/sync`` as
Alice and saved as they came, one JSON file each, prefixed by what they are.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

from record_events import call, login, send

HERE = Path(__file__).parent


def main(base: str) -> None:
    alice, alice_id = login(base, "alice")
    bot, bot_id = login(base, "bot")
    room = call(
        base,
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "private_chat", "invite": [bot_id], "name": "fixtures, richer"},
        alice,
    )["room_id"]
    call(base, "POST", f"/_matrix/client/v3/join/{room}", {}, bot)

    def link(event_id: str) -> str:
        return f"https://matrix.to/#/{room}/{event_id}"

    ids: dict[str, str] = {}
    ids["thread_root"] = send(
        base, alice, room, "m.room.message", {"msgtype": "m.text", "body": "!ask"}
    )
    # What Element sends for a message in a thread: the thread relation, and a
    # reply fallback to the thread's latest message for clients without threads.
    ids["thread_reply"] = send(
        base,
        bot,
        room,
        "m.room.message",
        {
            "msgtype": "m.notice",
            "body": "in the thread",
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": ids["thread_root"],
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": ids["thread_root"]},
            },
        },
    )
    ids["thread_alice"] = send(
        base,
        alice,
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "and then?",
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": ids["thread_root"],
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": ids["thread_reply"]},
            },
        },
    )
    # A real reply inside the thread: is_falling_back is false.
    ids["thread_quote"] = send(
        base,
        bot,
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "> <" + alice_id + "> and then?\n\nthen this",
            "format": "org.matrix.custom.html",
            "formatted_body": (
                f'<mx-reply><blockquote><a href="{link(ids["thread_alice"])}">In reply to</a> '
                f'<a href="https://matrix.to/#/{alice_id}">{alice_id}</a><br>and then?'
                "</blockquote></mx-reply>then this"
            ),
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": ids["thread_root"],
                "is_falling_back": False,
                "m.in_reply_to": {"event_id": ids["thread_alice"]},
            },
        },
    )
    # Since Matrix 1.13 a reply need not carry a fallback.
    ids["reply_no_fallback"] = send(
        base,
        bot,
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "plain answer",
            "m.relates_to": {"m.in_reply_to": {"event_id": ids["thread_root"]}},
        },
    )
    # A multi-line fallback quoting a two-line message, with HTML on both sides.
    ids["reply_multiline"] = send(
        base,
        bot,
        room,
        "m.room.message",
        {
            "msgtype": "m.notice",
            "body": f"> <{alice_id}> line one\n> line two\n\n**done**\n> not a fallback",
            "format": "org.matrix.custom.html",
            "formatted_body": (
                f'<mx-reply><blockquote><a href="{link(ids["thread_root"])}">In reply to</a> '
                f'<a href="https://matrix.to/#/{alice_id}">{alice_id}</a><br>line one<br>'
                "line two</blockquote></mx-reply><p><strong>done</strong></p>\n"
                "<blockquote>\n<p>not a fallback</p>\n</blockquote>\n"
            ),
            "m.relates_to": {"m.in_reply_to": {"event_id": ids["thread_root"]}},
        },
    )
    # What a Markdown renderer (commonmark, as matrix-nio bots use) produces.
    ids["html"] = send(
        base,
        bot,
        room,
        "m.room.message",
        {
            "msgtype": "m.notice",
            "body": "**Status**: all *good*\n\n- one\n- two & three",
            "format": "org.matrix.custom.html",
            "formatted_body": (
                "<p><strong>Status</strong>: all <em>good</em></p>\n"
                "<ul>\n<li>one</li>\n<li>two &amp; three</li>\n</ul>\n"
            ),
        },
    )
    ids["html_original"] = send(
        base,
        bot,
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "working...",
            "format": "org.matrix.custom.html",
            "formatted_body": "<p>working...</p>\n",
        },
    )
    ids["edit_html"] = send(
        base,
        bot,
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "* done: 3 results",
            "format": "org.matrix.custom.html",
            "formatted_body": "* <p>done: <b>3</b> results</p>\n",
            "m.new_content": {
                "msgtype": "m.text",
                "body": "done: 3 results",
                "format": "org.matrix.custom.html",
                "formatted_body": "<p>done: <b>3</b> results</p>\n",
            },
            "m.relates_to": {"rel_type": "m.replace", "event_id": ids["html_original"]},
        },
    )
    # Someone else cannot edit the bot's message: clients ignore such an edit.
    ids["edit_by_other"] = send(
        base,
        alice,
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "* hijacked",
            "m.new_content": {"msgtype": "m.text", "body": "hijacked"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": ids["html_original"]},
        },
    )
    ids["image_info"] = send(
        base,
        bot,
        room,
        "m.room.message",
        {
            "msgtype": "m.image",
            "body": "A chart of the week",
            "filename": "chart.png",
            "url": "mxc://synapse-test.localhost/chart",
            "info": {"mimetype": "image/png", "size": 48213, "w": 640, "h": 480},
        },
    )
    ids["file"] = send(
        base,
        bot,
        room,
        "m.room.message",
        {
            "msgtype": "m.file",
            "body": "report.pdf",
            "url": "mxc://synapse-test.localhost/report",
            "info": {"mimetype": "application/pdf", "size": 1024},
        },
    )
    ids["mentions"] = send(
        base,
        bot,
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "alice: your build is ready",
            "format": "org.matrix.custom.html",
            "formatted_body": (
                f'<a href="https://matrix.to/#/{alice_id}">alice</a>: your build is ready'
            ),
            "m.mentions": {"user_ids": [alice_id]},
        },
    )
    # An older bot: a pill, but no m.mentions.
    ids["pill_only"] = send(
        base,
        bot,
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "alice: hello",
            "format": "org.matrix.custom.html",
            "formatted_body": f"<a href='https://matrix.to/#/{alice_id}'>alice</a>: hello",
        },
    )
    ids["reaction_check"] = send(
        base,
        bot,
        room,
        "m.reaction",
        {
            "m.relates_to": {
                "rel_type": "m.annotation",
                "event_id": ids["thread_root"],
                "key": "✅",
            }
        },
    )
    ids["doomed"] = send(
        base, bot, room, "m.room.message", {"msgtype": "m.text", "body": "a mistake"}
    )
    txn = uuid.uuid4().hex
    ids["redaction"] = call(
        base,
        "PUT",
        f"/_matrix/client/v3/rooms/{room}/redact/{ids['doomed']}/{txn}",
        {"reason": "wrong room"},
        bot,
    )["event_id"]
    time.sleep(0.5)

    sync_filter = json.dumps({"room": {"rooms": [room], "timeline": {"limit": 100}}})
    synced = call(
        base,
        "GET",
        "/_matrix/client/v3/sync?filter=" + urllib.parse.quote(sync_filter),
        token=alice,
    )
    timeline = synced["rooms"]["join"][room]["timeline"]["events"]
    by_id = {event["event_id"]: event for event in timeline}
    for name, event_id in ids.items():
        if name == "doomed":  # redacted: its content is empty, like redacted.json
            continue
        save(name, by_id[event_id])


def save(name: str, event: dict[str, Any]) -> None:
    (HERE / f"{name}.json").write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n")
    print("saved", name, event["event_id"])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:18008")
