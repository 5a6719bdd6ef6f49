"""Re-record the event fixtures in this folder from a real Synapse.

Not a test: run it by hand when the fixtures need refreshing, against a
development homeserver that has the users @alice and @bot (password "test"):

    .venv/bin/python tests/data/events/record_events.py http://127.0.0.1:18008

Alice opens a room with the bot, and the two exchange one message of each
kind the matching rules care about; the events are then read back through
``/sync`` (the endpoint the real session uses) as Alice, the tester's side,
and saved as they came, one JSON file each. Alice's own "Foo" (text.json)
carries the ``transaction_id`` a sender sees on its own echo.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def call(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def login(base: str, user: str) -> tuple[str, str]:
    answer = call(
        base,
        "POST",
        "/_matrix/client/v3/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": "test",
        },
    )
    return answer["access_token"], answer["user_id"]


def send(base: str, token: str, room: str, kind: str, content: dict[str, Any]) -> str:
    txn = uuid.uuid4().hex
    answer = call(base, "PUT", f"/_matrix/client/v3/rooms/{room}/send/{kind}/{txn}", content, token)
    return str(answer["event_id"])


def main(base: str) -> None:
    alice, alice_id = login(base, "alice")
    bot, bot_id = login(base, "bot")
    room = call(
        base,
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "private_chat", "invite": [bot_id], "name": "fixtures"},
        alice,
    )["room_id"]
    call(base, "POST", f"/_matrix/client/v3/join/{room}", {}, bot)

    ids: dict[str, str] = {}
    ids["text"] = send(base, alice, room, "m.room.message", {"msgtype": "m.text", "body": "Foo"})
    ids["notice"] = send(base, bot, room, "m.room.message", {"msgtype": "m.notice", "body": "Bar"})
    ids["emote"] = send(base, bot, room, "m.room.message", {"msgtype": "m.emote", "body": "waves"})
    ids["edit"] = send(
        base,
        bot,
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "* Baz",
            "m.new_content": {"msgtype": "m.text", "body": "Baz"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": ids["notice"]},
        },
    )
    ids["image"] = send(
        base,
        bot,
        room,
        "m.room.message",
        {
            "msgtype": "m.image",
            "body": "x.png",
            "url": "mxc://synapse-test.localhost/abc",
        },
    )
    ids["reaction"] = send(
        base,
        bot,
        room,
        "m.reaction",
        {
            "m.relates_to": {"rel_type": "m.annotation", "event_id": ids["text"], "key": "👍"},
        },
    )
    ids["reply"] = send(
        base,
        bot,
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": f"> <{alice_id}> Foo\n\nhrm",
            "format": "org.matrix.custom.html",
            "formatted_body": (
                f'<mx-reply><blockquote><a href="https://matrix.to/#/{room}/{ids["text"]}">In reply'
                f'</a> <a href="https://matrix.to/#/{alice_id}">{alice_id}</a><br>Foo</blockquote>'
                "</mx-reply>hrm"
            ),
            "m.relates_to": {"m.in_reply_to": {"event_id": ids["text"]}},
        },
    )
    ids["unicode"] = send(
        base, bot, room, "m.room.message", {"msgtype": "m.text", "body": "Grüße 👋 — ça va?"}
    )
    # Control characters are valid in JSON and Synapse keeps them (a bot that colours
    # its output); they are not valid in XML.
    ids["ansi"] = send(
        base, bot, room, "m.room.message", {"msgtype": "m.text", "body": "\x1b[31mred\x1b[0m"}
    )
    # Synapse refuses a local m.room.message without a string body or msgtype, so the
    # real "message without a body" is a redacted one: its content is emptied.
    ids["redacted"] = send(base, bot, room, "m.room.message", {"msgtype": "m.text", "body": "oops"})
    txn = uuid.uuid4().hex
    call(base, "PUT", f"/_matrix/client/v3/rooms/{room}/redact/{ids['redacted']}/{txn}", {}, bot)
    time.sleep(0.5)

    sync_filter = json.dumps({"room": {"rooms": [room], "timeline": {"limit": 50}}})
    synced = call(
        base,
        "GET",
        "/_matrix/client/v3/sync?filter=" + urllib.parse.quote(sync_filter),
        token=alice,
    )
    timeline = synced["rooms"]["join"][room]["timeline"]["events"]
    by_id = {event["event_id"]: event for event in timeline}
    for name, event_id in ids.items():
        save(name, by_id[event_id])
    member = next(
        e
        for e in timeline
        if e["type"] == "m.room.member"
        and e["state_key"] == bot_id
        and e["content"]["membership"] == "join"
    )
    save("member", member)


def save(name: str, event: dict[str, Any]) -> None:
    (HERE / f"{name}.json").write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n")
    print("saved", name, event["event_id"])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:18008")
