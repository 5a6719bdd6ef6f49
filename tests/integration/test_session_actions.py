"""NioSession's actions beyond plain text, on a real Synapse.

The tester is a ``NioSession``; what it did is checked from the other side by
an ``Observer``, a plain matrix-nio client in the same room that records the
timeline and the ephemeral events (typing, receipts) that the tester's own
sync filters out. Every wait has a deadline and ends as soon as its condition
holds; nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    ReceiptEvent,
    RoomSendResponse,
    SyncError,
    TypingNoticeEvent,
)
from pydantic import SecretStr

from matrix_bot_tester.account import Account
from matrix_bot_tester.errors import InfrastructureError, InputError
from matrix_bot_tester.homeserver import Homeserver, RegisteredUser
from matrix_bot_tester.session import NioSession

pytestmark = pytest.mark.integration

RegisterUser = Callable[..., RegisteredUser]  # the conftest fixture
T = TypeVar("T")

TIMEOUT = 10.0  # seconds for any one call or observation
_CLIENT_CONFIG = AsyncClientConfig(max_limit_exceeded=3, max_timeouts=3, request_timeout=20)
# Timeline and ephemeral events (typing, receipts) of joined rooms; nothing else.
_OBSERVE_FILTER: dict[str, Any] = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {"timeline": {"limit": 50}, "account_data": {"not_types": ["*"]}},
}


class Observer:
    """The other person in the room: records what arrives after it joined."""

    def __init__(self, client: AsyncClient, room_id: str) -> None:
        self.client = client
        self.room_id = room_id
        self.timeline: list[dict[str, Any]] = []  # raw events, in order
        self.typing: list[list[str]] = []  # each m.typing's user IDs, in order
        self.receipts: list[Any] = []  # nio Receipt objects, in order

    @classmethod
    async def join(cls, homeserver: Homeserver, user: RegisteredUser, room_id: str) -> Observer:
        client = AsyncClient(homeserver.url, user.user_id, config=_CLIENT_CONFIG)
        client.restore_login(user.user_id, user.device_id, user.access_token)
        try:
            joined = await client.join(room_id)
            assert isinstance(joined, JoinResponse), joined
            # A watermark after the join: everything later is new to us.
            first = await client.sync(timeout=0, sync_filter={"room": {"timeline": {"limit": 0}}})
            assert not isinstance(first, SyncError), first
        except BaseException:
            await client.close()
            raise
        return cls(client, room_id)

    async def close(self) -> None:
        await self.client.close()

    async def send_text(self, body: str) -> str:
        content = {"msgtype": "m.text", "body": body}
        response = await self.client.room_send(self.room_id, "m.room.message", content)
        assert isinstance(response, RoomSendResponse), response
        return str(response.event_id)

    async def wait_for(self, probe: Callable[[], T | None], what: str) -> T:
        """Sync until ``probe`` gives a value; fail the test at the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while True:
            value = probe()
            if value is not None:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"the observer did not see {what} within {TIMEOUT} s")
            response = await self.client.sync(
                timeout=max(1, int(remaining * 1000)), sync_filter=_OBSERVE_FILTER
            )
            assert not isinstance(response, SyncError), response
            room = response.rooms.join.get(self.room_id)
            if room is None:
                continue
            self.timeline.extend(event.source for event in room.timeline.events)
            for event in room.ephemeral:
                if isinstance(event, TypingNoticeEvent):
                    self.typing.append(list(event.users))
                elif isinstance(event, ReceiptEvent):
                    self.receipts.extend(event.receipts)

    async def event(self, event_id: str) -> dict[str, Any]:
        """The event with this ID, once it has arrived."""
        return await self.wait_for(
            lambda: next((e for e in self.timeline if e.get("event_id") == event_id), None),
            f"event {event_id}",
        )


def _account(homeserver: Homeserver, user: RegisteredUser) -> Account:
    return Account(
        path="<test>",
        user=user.user_id,
        homeserver_url=homeserver.url,
        password=SecretStr(user.password),
        access_token=None,
        device_id=None,
        user_to_test=None,
    )


Scene = Callable[[NioSession, Observer, str], Awaitable[None]]


def _in_a_room(homeserver: Homeserver, register_user: RegisterUser, scene: Scene) -> None:
    """A tester session and an observer in a fresh DM; run ``scene(tester, observer, room)``."""
    observer_user = register_user()

    async def main() -> None:
        tester = NioSession(_account(homeserver, register_user()))
        await tester.connect(timeout=TIMEOUT)
        try:
            room = await tester.open_dm(observer_user.user_id, wait_for_join=False, timeout=TIMEOUT)
            observer = await Observer.join(homeserver, observer_user, room)
            try:
                await scene(tester, observer, room)
            finally:
                await observer.close()
        finally:
            await tester.close()

    asyncio.run(main())


SENT_KEYS = {"type", "event_id", "sender", "room_id", "origin_server_ts", "content"}


def test_send_text_still_sends_plain_text_and_returns_it_as_sent(
    homeserver: Homeserver, register_user: RegisterUser
) -> None:
    async def scene(tester: NioSession, observer: Observer, room: str) -> None:
        sent = await tester.send_text(room, "hello there", timeout=TIMEOUT)
        assert set(sent) == SENT_KEYS
        assert sent["type"] == "m.room.message"
        assert sent["sender"] == tester.user_id
        assert sent["room_id"] == room
        assert sent["content"] == {"msgtype": "m.text", "body": "hello there"}
        seen = await observer.event(sent["event_id"])
        assert seen["type"] == "m.room.message"
        assert seen["sender"] == tester.user_id
        assert seen["content"] == {"msgtype": "m.text", "body": "hello there"}
        assert abs(seen["origin_server_ts"] - sent["origin_server_ts"]) < 5_000

    _in_a_room(homeserver, register_user, scene)


def test_send_event_sends_any_type_with_its_content_unchanged(
    homeserver: Homeserver, register_user: RegisterUser
) -> None:
    async def scene(tester: NioSession, observer: Observer, room: str) -> None:
        content: dict[str, Any] = {"n": 1, "nested": {"list": [1, "two", None]}, "ünï": "cödé"}
        sent = await tester.send_event(room, "org.example.custom", content, timeout=TIMEOUT)
        content["n"] = 2  # the event as sent does not change with the caller's dict
        assert set(sent) == SENT_KEYS
        assert sent["type"] == "org.example.custom"
        assert sent["content"] == {"n": 1, "nested": {"list": [1, "two", None]}, "ünï": "cödé"}
        seen = await observer.event(sent["event_id"])
        assert seen["type"] == "org.example.custom"
        assert seen["content"] == sent["content"]

    _in_a_room(homeserver, register_user, scene)


def test_send_event_reacts_to_a_message(
    homeserver: Homeserver, register_user: RegisterUser
) -> None:
    async def scene(tester: NioSession, observer: Observer, room: str) -> None:
        target = await observer.send_text("react to me")
        relation = {"rel_type": "m.annotation", "event_id": target, "key": "👍"}
        sent = await tester.send_event(
            room, "m.reaction", {"m.relates_to": relation}, timeout=TIMEOUT
        )
        seen = await observer.event(sent["event_id"])
        assert seen["type"] == "m.reaction"
        assert seen["content"]["m.relates_to"] == relation

    _in_a_room(homeserver, register_user, scene)


def test_send_event_to_a_room_we_are_not_in_is_an_infrastructure_error(
    homeserver: Homeserver, register_user: RegisterUser
) -> None:
    async def scene(tester: NioSession, observer: Observer, room: str) -> None:
        elsewhere = f"!nowhere:{homeserver.server_name}"
        with pytest.raises(InfrastructureError) as caught:
            await tester.send_event(elsewhere, "org.example.custom", {}, timeout=TIMEOUT)
        assert (
            f"sending org.example.custom to {elsewhere} failed: M_FORBIDDEN" in caught.value.message
        )

    _in_a_room(homeserver, register_user, scene)


def test_redact_removes_a_message_and_returns_the_redaction(
    homeserver: Homeserver, register_user: RegisterUser
) -> None:
    async def scene(tester: NioSession, observer: Observer, room: str) -> None:
        message = await tester.send_text(room, "regrettable", timeout=TIMEOUT)
        target = message["event_id"]
        redaction = await tester.redact(room, target, "oops", timeout=TIMEOUT)
        assert set(redaction) == SENT_KEYS | {"redacts"}
        assert redaction["type"] == "m.room.redaction"
        assert redaction["redacts"] == target
        assert redaction["content"] == {"redacts": target, "reason": "oops"}
        seen = await observer.event(redaction["event_id"])
        assert seen["type"] == "m.room.redaction"
        assert seen["sender"] == tester.user_id
        # Room versions before 11 carry it at the top level, 11 and later in the content.
        assert target in (seen.get("redacts"), seen["content"].get("redacts"))
        assert seen["content"]["reason"] == "oops"

        without_reason = await tester.send_text(room, "also gone", timeout=TIMEOUT)
        plain = await tester.redact(room, without_reason["event_id"], None, timeout=TIMEOUT)
        assert plain["content"] == {"redacts": without_reason["event_id"]}
        assert "reason" not in (await observer.event(plain["event_id"]))["content"]

    _in_a_room(homeserver, register_user, scene)


def test_typing_starts_and_stops(homeserver: Homeserver, register_user: RegisterUser) -> None:
    async def scene(tester: NioSession, observer: Observer, room: str) -> None:
        await tester.set_typing(room, True, 30, timeout=TIMEOUT)
        await observer.wait_for(
            lambda: True if any(tester.user_id in users for users in observer.typing) else None,
            "the tester typing",
        )
        observer.typing.clear()
        await tester.set_typing(room, False, 30, timeout=TIMEOUT)
        await observer.wait_for(
            lambda: True if observer.typing and tester.user_id not in observer.typing[-1] else None,
            "the tester stop typing",
        )

    _in_a_room(homeserver, register_user, scene)


def test_typing_ends_by_itself_after_the_seconds_given(
    homeserver: Homeserver, register_user: RegisterUser
) -> None:
    async def scene(tester: NioSession, observer: Observer, room: str) -> None:
        await tester.set_typing(room, True, 0.5, timeout=TIMEOUT)
        # The server times it out: first the start, then a stop nobody sent.
        await observer.wait_for(
            lambda: True if any(tester.user_id in users for users in observer.typing) else None,
            "the tester typing",
        )
        await observer.wait_for(
            lambda: True if tester.user_id not in observer.typing[-1] else None,
            "the tester's typing time out",
        )

    _in_a_room(homeserver, register_user, scene)


def test_read_receipt_marks_a_message_read(
    homeserver: Homeserver, register_user: RegisterUser
) -> None:
    async def scene(tester: NioSession, observer: Observer, room: str) -> None:
        target = await observer.send_text("please read me")
        await tester.send_read_receipt(room, target, timeout=TIMEOUT)
        receipt = await observer.wait_for(
            lambda: next(
                (
                    r
                    for r in observer.receipts
                    if r.user_id == tester.user_id and r.event_id == target
                ),
                None,
            ),
            "the tester's read receipt",
        )
        assert receipt.receipt_type == "m.read"
        assert receipt.thread_id is None  # unthreaded: read up to here, threads included

    _in_a_room(homeserver, register_user, scene)


def test_upload_and_download_size_round_trip(
    homeserver: Homeserver, register_user: RegisterUser, tmp_path: Path
) -> None:
    data = os.urandom(3000) + b"\x00end"
    path = tmp_path / "payload.bin"
    path.write_bytes(data)

    async def scene(tester: NioSession, observer: Observer, room: str) -> None:
        mxc, size = await tester.upload(
            path, mimetype="application/octet-stream", filename="payload.bin", timeout=TIMEOUT
        )
        assert size == len(data)
        assert mxc.startswith(f"mxc://{homeserver.server_name}/")
        assert await tester.download_size(mxc, timeout=TIMEOUT) == len(data)
        # What a bot would send, and what the observer then fetches by itself.
        content = {"msgtype": "m.file", "body": "payload.bin", "url": mxc, "info": {"size": size}}
        sent = await tester.send_event(room, "m.room.message", content, timeout=TIMEOUT)
        seen = await observer.event(sent["event_id"])
        downloaded = await observer.client.download(seen["content"]["url"])
        assert downloaded.body == data

    _in_a_room(homeserver, register_user, scene)


def test_download_size_of_missing_or_malformed_media_is_minus_one(
    homeserver: Homeserver, register_user: RegisterUser
) -> None:
    async def scene(tester: NioSession, observer: Observer, room: str) -> None:
        server = homeserver.server_name
        for mxc in (
            f"mxc://{server}/NoSuchMediaHere",
            "https://example.org/image.png",
            "mxc://",
            f"mxc://{server}/../../etc/passwd",
        ):
            assert await tester.download_size(mxc, timeout=TIMEOUT) == -1, mxc

    _in_a_room(homeserver, register_user, scene)


def test_upload_of_an_unreadable_file_is_an_input_error_naming_it(
    homeserver: Homeserver, register_user: RegisterUser, tmp_path: Path
) -> None:
    async def scene(tester: NioSession, observer: Observer, room: str) -> None:
        for path in (tmp_path / "missing.png", tmp_path):
            with pytest.raises(InputError) as caught:
                await tester.upload(path, mimetype="image/png", filename="x.png", timeout=TIMEOUT)
            assert caught.value.message.startswith(f"{path}: cannot read the file to send")

    _in_a_room(homeserver, register_user, scene)
