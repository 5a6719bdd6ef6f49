"""``record`` on a real Synapse with the example bot, and its recordings replayed with ``run``.

A person's client is played by plain client-server API calls: in a DM as the
recording account itself (a person talks from their own client as the
tester's account), in a room as a second user. The recorder runs as a real
process, ended by ``--idle`` or by Ctrl-C (SIGINT) as a person would end it.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from clirun import (
    AccountFactory,
    finish,
    matrix_request,
    public_room_with_bot,
    run_cli,
    start_cli,
    wait_until,
)

from matrix_bot_tester.homeserver import Homeserver, RegisteredUser

pytestmark = pytest.mark.integration

SETUP_TIMEOUT = 30.0  # the recorder's first line: logged in, the DM open and joined
REPLY_TIMEOUT = 15.0


class Person:
    """A person's client: sends to the room and waits until the bot has answered."""

    def __init__(self, url: str, user: RegisteredUser, room_id: str, bot: str) -> None:
        self.url, self.token, self.room, self.bot = url, user.access_token, room_id, bot

    def _path(self, tail: str) -> str:
        return f"/_matrix/client/v3/rooms/{quote(self.room, safe='')}/{tail}"

    def bot_events(self) -> int:
        page = matrix_request(self.url, self.token, "GET", self._path("messages?dir=b&limit=100"))
        chunk = page["chunk"]
        assert isinstance(chunk, list)
        return sum(1 for e in chunk if e["sender"] == self.bot and "state_key" not in e)

    def say(
        self, content: dict[str, Any], *, answers: int = 1, kind: str = "m.room.message"
    ) -> str:
        before = self.bot_events()
        path = self._path(f"send/{kind}/{uuid.uuid4().hex}")
        event_id = matrix_request(self.url, self.token, "PUT", path, content)["event_id"]
        if answers:
            wait_until(lambda: self.bot_events() >= before + answers, REPLY_TIMEOUT, str(content))
        assert isinstance(event_id, str)
        return event_id

    def text(self, body: str, *, answers: int = 1) -> str:
        return self.say({"msgtype": "m.text", "body": body}, answers=answers)


def _started(process: subprocess.Popen[str]) -> tuple[str, str]:
    """The recorder's first line (what the person is told), and the room it names."""
    assert process.stderr is not None
    line = process.stderr.readline()  # bounded: the recorder's own --timeout ends it
    found = re.search(r"\((![^)\s]+)\)", line)
    assert found, f"no room in the recorder's first line: {line!r}"
    return line, found.group(1)


def _record(account: Path, out: Path, *extra: str | Path) -> subprocess.Popen[str]:
    state = out.parent / "state.json"
    return start_cli(
        "record",
        "--account",
        account,
        "-o",
        out,
        "--timeout",
        str(SETUP_TIMEOUT),
        "--state-file",
        state,
        *extra,
    )


def test_a_dm_recorded_as_the_same_account_replays_green(
    homeserver: Homeserver,
    command_bot: RegisteredUser,
    register_user: Callable[..., RegisteredUser],
    make_account: AccountFactory,
    tmp_path: Path,
) -> None:
    password = f"Pw-{uuid.uuid4().hex[:12]}-recorder"
    tester = register_user(password=password)
    account = make_account(user_to_test=command_bot.user_id, user=tester)
    out = tmp_path / "recorded.convo.yaml"
    events = tmp_path / "events.json"
    process = _record(account, out, "--idle", "3", "--events-json", events)
    line, room = _started(process)
    assert "talk to the bot there from your client" in line
    person = Person(homeserver.url, tester, room, command_bot.user_id)
    ping = person.text("!ping")
    person.text("!reply hello")
    person.say({"msgtype": "m.text", "body": "!react 👍"})
    person.text("!stream the quick brown fox", answers=3)  # a message and two edits
    person.text("!mention")
    person.say(
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": ping, "key": "✅"}},
        kind="m.reaction",
        answers=0,
    )
    person.text("!quiet", answers=0)
    done = finish(process)
    assert done.code == 0, done.stderr
    assert "recorded 7 steps to" in done.stderr and "without an event (--idle)" in done.stderr

    script = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert script == {
        "room_to_connect": "!dm",
        "messages": [
            {"send": "!ping", "name": "ping", "expect": "pong"},
            {"send": "!reply hello", "expect": {"body": "hello", "reply_to": True}},
            {"send": "!react 👍", "expect": {"reaction": {"key": "👍", "to": True}}},
            {"send": "!stream the quick brown fox", "expect": "the quick brown fox"},
            {"send": "!mention", "expect": "{me}: you called?"},
            {"react": {"to": "ping", "key": "✅"}},
            {"send": "!quiet"},
        ],
    }
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Recorded by matrix-bot-tester record on ")
    steps = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    for brittle in (room, tester.user_id, command_bot.user_id, ping):
        assert brittle not in steps  # the header comment may name them
    # Secrets: not in the script, the raw events or anything the recorder said.
    for where, said in (
        ("the script", text),
        ("the events", events.read_text(encoding="utf-8")),
        ("stdout", done.stdout),
        ("stderr", done.stderr),
    ):
        for secret in (password, tester.access_token):
            assert secret not in said, f"{where} shows a secret"
    assert json.loads(events.read_text(encoding="utf-8"))["room_id"] == room

    # The recording replays green against the same bot, from the same account.
    replay = run_cli("run", out, "--account", account, "--no-state", "-v")
    assert replay.code == 0, replay.stdout + replay.stderr
    assert "7/7 steps" in replay.stdout


def test_a_room_conversation_of_another_person_is_recorded_from_the_join_on(
    homeserver: Homeserver,
    command_bot: RegisteredUser,
    register_user: Callable[..., RegisteredUser],
    make_account: AccountFactory,
    tmp_path: Path,
) -> None:
    alice, tester = register_user(), register_user()
    room, alias = public_room_with_bot(
        homeserver.url, alice.access_token, command_bot.user_id, homeserver.server_name
    )
    person = Person(homeserver.url, alice, room, command_bot.user_id)
    person.text("!echo said before the recording")  # history: never recorded

    account = make_account(user_to_test=command_bot.user_id, user=tester)
    out = tmp_path / "room.yaml"
    process = _record(account, out, "--room", alias, "--idle", "3")
    line, _ = _started(process)
    assert f"Recording in {alias} ({room})" in line
    person.text("!ping")
    person.say({"msgtype": "m.emote", "body": "waves"}, answers=0)
    person.text(f"!echo hello {alice.user_id}")
    done = finish(process)
    assert done.code == 0, done.stderr

    assert yaml.safe_load(out.read_text(encoding="utf-8")) == {
        "room_to_connect": alias,
        "messages": [
            {"send": "!ping", "expect": "pong"},
            {"send": {"text": "waves", "msgtype": "m.emote"}},
            {"send": "!echo hello {me}", "expect": "hello {me}"},
        ],
    }
    # The tester replays what the person said, in the same room.
    replay = run_cli("run", out, "--account", account, "--no-state", "-v")
    assert replay.code == 0, replay.stdout + replay.stderr


def test_ctrl_c_ends_the_recording_and_writes_it(
    homeserver: Homeserver,
    command_bot: RegisteredUser,
    register_user: Callable[..., RegisteredUser],
    make_account: AccountFactory,
    tmp_path: Path,
) -> None:
    tester = register_user()
    account = make_account(user_to_test=command_bot.user_id, user=tester)
    out = tmp_path / "ctrl-c.yaml"
    process = _record(account, out)  # no --idle: only Ctrl-C ends it
    _, room = _started(process)
    Person(homeserver.url, tester, room, command_bot.user_id).text("!ping")
    # The recorder has heard the reply once it says so; then stop it as a person would.
    assert process.stderr is not None
    heard = [process.stderr.readline(), process.stderr.readline()]
    assert "pong" in heard[1], heard
    process.send_signal(signal.SIGINT)
    done = finish(process)
    assert done.code == 0, done.stderr
    assert "(Ctrl-C)" in done.stderr
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["messages"] == [
        {"send": "!ping", "expect": "pong"}
    ]


def test_a_recording_where_nobody_spoke_writes_nothing_and_exits_1(
    command_bot: RegisteredUser, make_account: AccountFactory, tmp_path: Path
) -> None:
    account = make_account(user_to_test=command_bot.user_id)
    out = tmp_path / "silent.yaml"
    process = _record(account, out, "--max-duration", "1")
    _started(process)
    done = finish(process)
    assert done.code == 1, done.stderr
    assert "nothing was recorded (1 s (--max-duration) passed): no file written" in done.stderr
    assert not out.exists()
