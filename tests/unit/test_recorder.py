"""The recorder's pure half: recorded events in, a script in our language out.

Two conversations recorded from the example bot on a real Synapse (with
``record --events-json``) and small made-up ones for the rules: who is which
side, what becomes a placeholder or a regex, what is left out with a note.
Every script made here must load with our own loader.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from matrix_bot_tester.language import TextMatch
from matrix_bot_tester.matching import text_matches
from matrix_bot_tester.recorder import Participants, Recording, record, render
from matrix_bot_tester.script import Script, parse_script
from matrix_bot_tester.variables import fill_all

RECORDINGS = Path(__file__).parent.parent / "data" / "recordings"
ME = "@tester:localhost"
BOT = "@bot:localhost"
ROOM = "!AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg"
WHO = Participants(me=ME, bot=BOT, room_id=ROOM)

_ids = itertools.count(1)


def ev(
    sender: str,
    body: str | None = None,
    kind: str = "m.room.message",
    extra: dict[str, Any] | None = None,
    **content: Any,
) -> dict[str, Any]:
    """A made-up event as Synapse sends it; the event ID is unique and ID-shaped.

    ``extra``: content keys that are not Python names (``m.relates_to``).
    """
    number = next(_ids)
    content.update(extra or {})
    if body is not None:
        content = {"msgtype": "m.notice" if sender == BOT else "m.text", "body": body, **content}
    return {
        "type": kind,
        "sender": sender,
        "event_id": f"${number:04d}AbCdEfGhIjKlMnOpQrStUvWxYz01234567",
        "origin_server_ts": 1_796_000_000_000 + number,
        "content": content,
    }


def loaded(recording: Recording) -> Script:
    """The rendered script, loaded by the loader `run` and `validate` use."""
    return parse_script(render(recording, ["a test"]), "recorded.yaml")


def steps(events: list[dict[str, Any]], who: Participants = WHO) -> list[dict[str, Any]]:
    recording = record(events, who)
    loaded(recording)
    messages: list[dict[str, Any]] = recording.as_data()["messages"]
    return messages


def fixture(name: str) -> tuple[list[dict[str, Any]], Participants, str]:
    data = json.loads((RECORDINGS / name).read_text(encoding="utf-8"))
    who = Participants(data["me"], data["bot"], data["room_id"], data["display_names"])
    return data["events"], who, data["room_to_connect"]


# ---------------------------------------------------- real recorded conversations


def test_a_recorded_dm_with_the_example_bot_becomes_this_script() -> None:
    events, who, room = fixture("dm_command_bot.json")
    recording = record(events, who, room_to_connect=room)
    assert recording.as_data()["messages"] == [
        {"send": "!ping", "name": "ping", "expect": "pong"},
        {"send": "!echo it is 12:30 on 2026-12-03", "expect": "it is 12:30 on 2026-12-03"},
        {"send": "!reply hello", "expect": {"body": "hello", "reply_to": True}},
        {
            "send": "!thread in a thread",
            "name": "thread_in_a",
            "expect": {"body": "in a thread", "thread": True},
        },
        {"send": "!echo {{braces}} and ${{HOME}}", "expect": "{{braces}} and ${{HOME}}"},
        {"send": "!react 👍", "expect": {"reaction": {"key": "👍", "to": True}}},
        {"send": "!mention", "expect": "{me}: you called?"},
        {"send": "!stream the quick brown fox jumps", "expect": "the quick brown fox jumps"},
        {"send": "!image", "expect": {"msgtype": "m.image", "media": {"mimetype": "image/png"}}},
        {"react": {"to": "ping", "key": "✅"}},
        {"send": {"text": "!echo replying", "reply_to": "ping"}, "expect": "replying"},
        {"send": "oops", "name": "oops"},
        {"redact": "oops"},
        {"send": {"text": "!echo in thread", "thread": "thread_in_a"}, "expect": "in thread"},
    ]
    assert recording.notes == []
    script = loaded(recording)
    assert script.role.value == "client"
    assert len(script.steps) == 14


def test_a_recording_names_no_room_event_or_user_id() -> None:
    events, who, room = fixture("dm_command_bot.json")
    text = render(record(events, who, room_to_connect=room))
    assert who.room_id not in text
    assert ME not in text and BOT not in text
    assert not re.search(r"\$[A-Za-z0-9_-]{20,}", text)


def test_a_recorded_room_conversation_with_another_person() -> None:
    """In a room the person is someone else: they become {me}, who replays their part."""
    events, who, room = fixture("room_command_bot.json")
    recording = record(events, who, room_to_connect=room)
    assert recording.as_data() == {
        "room_to_connect": room,
        "messages": [
            {"send": "!ping", "expect": "pong"},
            {"send": "!mention", "expect": "{me}: you called?"},
            {"send": {"text": "waves", "msgtype": "m.emote"}},
        ],
    }
    assert loaded(recording).role.value == "room"


def test_the_rendered_script_is_block_yaml_with_the_header_as_comments() -> None:
    events, who, room = fixture("dm_command_bot.json")
    text = render(record(events, who, room_to_connect=room), ["Recorded on a day", "line two"])
    assert text.startswith("# Recorded on a day\n# line two\nroom_to_connect: '!dm'\nmessages:\n")
    assert "  - send: '!ping'\n    name: ping\n    expect: pong\n" in text
    assert "{" not in text.split("messages:")[1].split("\n")[1]  # no flow style


# ------------------------------------------------------------------ the sides


def test_the_bot_speaking_first_is_a_step_that_only_expects() -> None:
    assert steps([ev(BOT, "welcome!"), ev(ME, "hi"), ev(BOT, "hello")]) == [
        {"expect": "welcome!"},
        {"send": "hi", "expect": "hello"},
    ]


def test_several_replies_become_a_list_in_order() -> None:
    assert steps([ev(ME, "!two"), ev(BOT, "one"), ev(BOT, "two")]) == [
        {"send": "!two", "expect": ["one", "two"]},
    ]


def test_a_message_without_an_answer_is_a_send_alone() -> None:
    assert steps([ev(ME, "!quiet"), ev(ME, "!ping"), ev(BOT, "pong")]) == [
        {"send": "!quiet"},
        {"send": "!ping", "expect": "pong"},
    ]


def test_state_events_are_not_part_of_the_script() -> None:
    member = {**ev(BOT, kind="m.room.member", membership="join"), "state_key": BOT}
    assert steps([member, ev(ME, "!ping"), ev(BOT, "pong")]) == [
        {"send": "!ping", "expect": "pong"}
    ]


def test_a_streamed_answer_is_expected_as_its_final_text() -> None:
    first = ev(BOT, "the")
    edits = [
        ev(
            BOT,
            f"* {text}",
            extra={
                "m.new_content": {"msgtype": "m.notice", "body": text},
                "m.relates_to": {"rel_type": "m.replace", "event_id": first["event_id"]},
            },
        )
        for text in ("the quick", "the quick fox")
    ]
    assert steps([ev(ME, "!stream the quick fox"), first, *edits]) == [
        {"send": "!stream the quick fox", "expect": "the quick fox"}
    ]


def test_the_persons_edit_becomes_an_edit_step_of_the_named_message() -> None:
    draft = ev(ME, "the first draft")
    edit = ev(
        ME,
        "* the final text",
        extra={
            "m.new_content": {"msgtype": "m.text", "body": "the final text"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": draft["event_id"]},
        },
    )
    assert steps([draft, edit, ev(BOT, "noted")]) == [
        {"send": "the first draft", "name": "the_first_draft"},
        {"edit": {"message": "the_first_draft", "text": "the final text"}, "expect": "noted"},
    ]


def test_reactions_and_redactions_by_the_bot() -> None:
    command = ev(ME, "!react")
    answer = ev(BOT, "thinking")
    events = [
        command,
        {
            **ev(BOT, kind="m.reaction"),
            "content": {
                "m.relates_to": {
                    "rel_type": "m.annotation",
                    "event_id": command["event_id"],
                    "key": "👀",
                }
            },
        },
        answer,
        {
            **ev(BOT, kind="m.room.redaction", redacts=answer["event_id"]),
            "redacts": answer["event_id"],
        },
        ev(ME, "!ping"),
        {**ev(BOT, kind="m.room.redaction"), "redacts": answer["event_id"]},
    ]
    assert steps(events) == [
        {
            "send": "!react",
            "expect": [
                {"reaction": {"key": "👀", "to": True}},
                {"body": "thinking", "name": "thinking"},
                {"redaction": {"of": "thinking"}},
            ],
        },
        {"send": "!ping", "expect": {"redaction": {"of": "thinking"}}},
    ]


def test_the_persons_reply_to_a_bot_message_names_it() -> None:
    answer = ev(BOT, "a question?")
    reply = ev(
        ME, "yes", extra={"m.relates_to": {"m.in_reply_to": {"event_id": answer["event_id"]}}}
    )
    assert steps([ev(ME, "!ask"), answer, reply]) == [
        {"send": "!ask", "expect": {"body": "a question?", "name": "a_question"}},
        {"send": {"text": "yes", "reply_to": "a_question"}},
    ]


def test_a_reply_fallback_is_not_sent_again() -> None:
    ask = ev(ME, "Foo")
    body = f"> <{ME}> Foo\n\nhrm"
    reply = ev(BOT, body, extra={"m.relates_to": {"m.in_reply_to": {"event_id": ask["event_id"]}}})
    assert steps([ask, reply]) == [{"send": "Foo", "expect": {"body": "hrm", "reply_to": True}}]


def test_names_are_unique_and_never_a_built_in() -> None:
    first, second, third = ev(ME, "me"), ev(ME, "me"), ev(ME, "42 apples")
    events = [first, second, third]
    for target in (first, second, third):
        relates = {"rel_type": "m.annotation", "event_id": target["event_id"], "key": "+"}
        events.append({**ev(ME, kind="m.reaction"), "content": {"m.relates_to": relates}})
    names = [step.get("name") for step in steps(events)[:3]]
    assert names == ["me_2", "me_3", "m_42_apples"]


def test_another_event_type_is_sent_and_expected_by_type() -> None:
    poll = ev(ME, kind="org.example.poll", question=f"Lunch, {BOT}?")
    assert steps([poll, ev(BOT, kind="org.example.vote", answer="yes")]) == [
        {
            "send_event": {"type": "org.example.poll", "content": {"question": "Lunch, {bot}?"}},
            "expect": {"type": "org.example.vote"},
        }
    ]


# ------------------------------------------------------- what is left out, with a note


def test_a_file_the_person_sent_is_left_out_with_a_note() -> None:
    picture = ev(ME, "cat.png", msgtype="m.image", url="mxc://localhost/abc")
    recording = record([picture, ev(BOT, "nice cat")], WHO)
    assert recording.as_data()["messages"] == [{"expect": "nice cat"}]
    assert len(recording.notes) == 1 and "m.image 'cat.png'" in recording.notes[0]
    text = render(recording)
    assert "  # note: a file was sent here" in text
    loaded(recording)


def test_a_reply_to_a_message_from_before_the_recording_drops_the_relation() -> None:
    old = "$0000OldOldOldOldOldOldOldOldOldOldOld"
    reply = ev(ME, "!echo hi", extra={"m.relates_to": {"m.in_reply_to": {"event_id": old}}})
    recording = record([reply, ev(BOT, "hi")], WHO)
    assert recording.as_data()["messages"] == [{"send": "!echo hi", "expect": "hi"}]
    assert "before the recording" in recording.notes[0]


def test_nothing_said_is_an_empty_recording() -> None:
    recording = record([], WHO)
    assert recording.as_data()["messages"] == []
    assert recording.events == 0


# --------------------------------------------------------- what would be brittle


def _regex_of(step: dict[str, Any]) -> str:
    body = step["expect"]["body"]
    assert set(body) == {"regex"}, body
    return str(body["regex"])


def _passes(regex: str, text: str, **values: str) -> bool:
    """Whether the recorded regex, its placeholders filled as at run time, matches ``text``."""
    spec = fill_all(TextMatch(regex=regex), {"me": ME, "bot": BOT, "room_id": ROOM, **values}, {})
    return text_matches(spec, text).ok


@pytest.mark.parametrize(
    ("said", "other_run"),
    [
        ("Done at 19:40:05.", "Done at 7:02:59."),
        ("Today is 2026-12-03.", "Today is 2027-01-31."),
        ("Sent 2026-12-03T19:40:05.123Z", "Sent 2027-01-01 08:00"),
        ("On 3.12.2026 at 12:30", "On 14.1.2027 at 9:05"),
        (
            "Ticket 4f0c2a9e-1b3d-4c5e-9f70-123456789abc opened",
            "Ticket 00000000-aaaa-bbbb-cccc-ffffffffffff opened",
        ),
        ("order 1796325308289 is ready", "order 42424242 is ready"),
        ("commit 3fa9c0de12ab45cd99 pushed", "commit 0123456789abcdef01 pushed"),
    ],
)
def test_times_dates_and_ids_in_the_bots_text_become_a_regex(said: str, other_run: str) -> None:
    [step] = steps([ev(ME, "!status"), ev(BOT, said)])
    regex = _regex_of(step)
    assert _passes(regex, said)
    assert _passes(regex, other_run)
    assert not _passes(regex, said + " and more")


def test_the_fixed_parts_of_a_regex_are_escaped_and_stay_readable() -> None:
    [step] = steps([ev(ME, "!status"), ev(BOT, "Cost (1.50$)? at 12:30 [ok] {x} a+b")])
    assert (
        _regex_of(step)
        == r"Cost \(1\.50\$\)\? at \d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)? \[ok\] \{x\} a\+b"
    )
    assert _passes(_regex_of(step), "Cost (1.50$)? at 9:15 [ok] {x} a+b")


def test_what_the_person_said_stays_exact_when_the_bot_echoes_it() -> None:
    assert steps(
        [ev(ME, "!echo meet at 12:30 on 2026-12-03"), ev(BOT, "meet at 12:30 on 2026-12-03")]
    ) == [{"send": "!echo meet at 12:30 on 2026-12-03", "expect": "meet at 12:30 on 2026-12-03"}]


def test_small_numbers_and_words_stay_exact() -> None:
    assert steps([ev(ME, "!count"), ev(BOT, "42 items in 2026, version 1.2.3")]) == [
        {"send": "!count", "expect": "42 items in 2026, version 1.2.3"}
    ]


def test_user_and_room_ids_become_placeholders_in_sends_and_expectations() -> None:
    said = f"!invite {BOT} to {ROOM} with {ME}"
    answer = f"{ME} invited {BOT} to {ROOM}"
    assert steps([ev(ME, said), ev(BOT, answer)]) == [
        {
            "send": "!invite {bot} to {room_id} with {me}",
            "expect": "{me} invited {bot} to {room_id}",
        }
    ]


def test_a_mention_of_the_bot_is_sent_as_a_mention_of_bot() -> None:
    hello = ev(ME, f"{BOT}: hi", extra={"m.mentions": {"user_ids": [BOT]}})
    assert steps([hello]) == [{"send": {"text": "{bot}: hi", "mentions": ["{bot}"]}}]


def test_a_persons_display_name_in_the_bots_text_becomes_a_regex() -> None:
    who = Participants(ME, BOT, ROOM, {ME: "Alice Liddell", BOT: "Helper Bot"})
    [step] = steps([ev(ME, "!hello"), ev(BOT, "Hello Alice Liddell, I am Helper Bot.")], who)
    regex = _regex_of(step)
    assert regex == r"Hello .+?, I am Helper Bot\."
    assert _passes(regex, "Hello tester, I am Helper Bot.")


def test_an_event_id_in_the_bots_text_becomes_the_messages_name() -> None:
    command = ev(ME, "!id")
    answer = ev(BOT, f"your message was {command['event_id']}")
    follow = ev(ME, f"!echo {answer['event_id']}")
    assert steps([command, answer, follow, ev(BOT, answer["event_id"])]) == [
        {
            "send": "!id",
            "name": "id",
            "expect": {"body": "your message was {id.event_id}", "name": "your_message_was"},
        },
        {"send": "!echo {your_message_was.event_id}", "expect": "{your_message_was.event_id}"},
    ]


def test_multi_line_text_is_written_as_a_block_and_reads_back_the_same() -> None:
    help_text = "!ping - answer pong\n!echo TEXT - answer TEXT\n"
    recording = record([ev(ME, "!help"), ev(BOT, help_text)], WHO)
    text = render(recording)
    assert "    expect: |\n      !ping - answer pong\n" in text
    script = loaded(recording)
    assert script.steps[0].expect == help_text


@pytest.mark.parametrize(
    "said",
    [
        "yes",
        "12:30",
        "1.50",
        "null",
        "!ping",
        "- x",
        "# y",
        "a: b",
        "'q'",
        '"dq"',
        "@at",
        "  padded  ",
        "${NOT_SET}",
        "{me}",
    ],
)
def test_text_yaml_would_misread_comes_back_as_written(said: str) -> None:
    recording = record([ev(ME, said), ev(BOT, said)], WHO)
    script = loaded(recording)
    step = script.steps[0]
    assert fill_all(step.send, {"me": ME}, {}) == said
    assert fill_all(step.expect, {"me": ME}, {}) == said


# ------------------------------------------------- the command's input, before connecting


def _account(tmp_path: Path, user_to_test: str | None = BOT) -> Path:
    path = tmp_path / "account.yaml"
    lines = [f"user: '{ME}'", "password: secret-pw", "homeserver_url: 'http://127.0.0.1:9'"]
    if user_to_test:
        lines.append(f"user_to_test: '{user_to_test}'")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["-o", "{account}"], "-o would overwrite the account file"),
        (["-o", "{account}", "--force"], "-o would overwrite the account file"),
        (["-o", "{existing}"], "-o: the file exists (hint: pass --force to replace it)"),
        (["-o", "{out}", "--dm", ME], "the bot to record is the recording account itself"),
        (["-o", "{out}", "--dm", "bot"], "'bot' is not a Matrix user ID"),
        (["-o", "{out}", "--events-json", "{existing}"], "--events-json: the file exists"),
        (["-o", "{out}", "--dm", "@a:b", "--bot", "@c:d"], "--dm @a:b and --bot @c:d name two"),
        (["-o", "{out}", "--room", "garbage"], "--room 'garbage' is not a room ID or alias"),
        (["-o", "{out}", "--room", "#bots"], "--room '#bots' is not a room ID or alias"),
        (["-o", "{out}", "--room", "!dm"], "--room '!dm' is not a room ID or alias"),
    ],
)
def test_record_refuses_bad_input_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    from matrix_bot_tester.cli import main

    account = _account(tmp_path)
    existing = tmp_path / "existing.yaml"
    existing.write_text("keep me\n", encoding="utf-8")
    paths = {"account": account, "existing": existing, "out": tmp_path / "out.yaml"}
    argv = ["record", "--account", str(account), *(a.format(**paths) for a in args)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err
    assert existing.read_text(encoding="utf-8") == "keep me\n"
    assert "secret-pw" not in err


def test_record_needs_to_know_who_the_bot_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from matrix_bot_tester.cli import main

    account = _account(tmp_path, user_to_test=None)
    assert main(["record", "--account", str(account), "--room", "#r:localhost", "-o", "-"]) == 2
    assert "no bot to record is named (in a room)" in capsys.readouterr().err


def test_encrypted_events_are_left_out_with_a_note() -> None:
    secret = ev(ME, kind="m.room.encrypted", algorithm="m.megolm.v1.aes-sha2", ciphertext="x")
    recording = record([ev(ME, "!ping"), ev(BOT, "pong"), secret], WHO)
    assert recording.as_data()["messages"] == [{"send": "!ping", "expect": "pong"}]
    assert "encrypted event" in recording.notes[0]


def test_a_person_named_by_the_bot_before_they_speak_is_still_me() -> None:
    alice = "@alice:localhost"
    assert steps([ev(BOT, f"welcome {alice}!"), ev(alice, "hi")]) == [
        {"expect": "welcome {me}!"},
        {"send": "hi"},
    ]
