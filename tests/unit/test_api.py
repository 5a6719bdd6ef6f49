"""The Python API's steps, over the unit tests' fake session."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from fakes import BOT, ME, ROOM, FakeSession

from matrix_bot_tester.api import Conversation
from matrix_bot_tester.errors import InfrastructureError, InputError
from matrix_bot_tester.result import Outcome


def conversation(replies: list[Any], **kwargs: Any) -> tuple[Conversation, FakeSession]:
    session = FakeSession(replies, **kwargs)
    return Conversation(session, ROOM, BOT, timeout=5), session


def here() -> int:
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


def test_send_and_expect_return_the_events() -> None:
    talk, session = conversation(["pong"])

    async def steps() -> None:
        sent = await talk.send("!ping")
        assert sent.body == "!ping" and sent.sender == ME
        reply = await talk.expect("pong")
        assert (reply.body, reply.msgtype, reply.sender) == ("pong", "m.notice", BOT)

    asyncio.run(steps())
    assert session.bodies == ["!ping"]
    assert talk.result.outcome is Outcome.PASSED
    assert [entry.direction for entry in talk.result.transcript] == ["sent", "received"]
    assert [entry.step_index for entry in talk.result.transcript] == [0, 1]


def test_replies_not_taken_yet_wait_for_the_next_expect() -> None:
    talk, _ = conversation(["one", "two"])

    async def steps() -> None:
        await talk.send("!both")
        await talk.expect({"body": "one"})
        assert (await talk.expect("two")).body == "two"

    asyncio.run(steps())


def test_a_wrong_reply_fails_with_the_callers_line_and_the_transcript() -> None:
    talk, _ = conversation(["pong"])

    async def steps() -> int:
        await talk.send("!ping")
        line = here() + 2
        with pytest.raises(AssertionError) as caught:
            await talk.expect("PONG")
        text = str(caught.value)
        assert f"test_api.py:{line} (step 2): wrong reply" in text
        assert "expected: 'PONG'" in text
        assert "transcript:" in text and "!ping" in text
        return line

    asyncio.run(steps())
    assert talk.failed


def test_silence_is_checked() -> None:
    talk, _ = conversation([])
    asyncio.run(talk.expect_no_reply(0.05))
    with pytest.raises(AssertionError, match="no reply within"):
        asyncio.run(talk.expect("anything"))


def test_a_bad_step_is_an_input_error_naming_the_caller() -> None:
    talk, _ = conversation([])
    with pytest.raises(InputError, match=r"test_api\.py:\d+: not a valid step"):
        asyncio.run(talk.expect({"bodyy": "typo"}))


def test_infrastructure_problems_are_not_assertion_errors() -> None:
    talk, _ = conversation([], fail_on_send={"!ping": InfrastructureError("server gone")})
    with pytest.raises(InfrastructureError, match="server gone"):
        asyncio.run(talk.send("!ping"))
