"""Python tests beside the YAML scripts: the same steps, with Python around them."""

from __future__ import annotations

from pathlib import Path

from matrix_bot_tester.api import assert_passed
from matrix_bot_tester.pytest_plugin import ConversationOpener

HERE = Path(__file__).parent


async def test_ping(matrix_conversation: ConversationOpener) -> None:
    async with matrix_conversation() as conversation:
        await conversation.send("!ping")
        reply = await conversation.expect("pong")
        assert reply.sender == conversation.bot
        assert reply.msgtype == "m.notice"


async def test_echo_what_python_computes(matrix_conversation: ConversationOpener) -> None:
    words = [f"word{n}" for n in range(3)]
    async with matrix_conversation(timeout=10) as conversation:
        for word in words:
            await conversation.send(f"!echo {word}")
            await conversation.expect({"body": word, "msgtype": "m.notice"})
        await conversation.send("!quiet")
        await conversation.expect_no_reply(1)


async def test_a_script_from_python(matrix_conversation: ConversationOpener) -> None:
    result = await matrix_conversation.run_script(HERE / "conversations" / "ping.convo.yaml")
    assert_passed(result)
    assert result.steps[0].latency is not None


async def test_any_step_of_the_language(matrix_conversation: ConversationOpener) -> None:
    async with matrix_conversation(timeout=10) as conversation:
        sent, reply = await conversation.step(
            {"send": "!reply hi", "name": "command", "expect": {"body": "hi", "reply_to": True}}
        )
        assert sent is not None and reply is not None
        assert reply.content["m.relates_to"]["m.in_reply_to"]["event_id"] == sent.event_id
        # Names given in one step are known to later ones, as in a script.
        await conversation.step({"react": {"to": "command", "key": "👍"}})
        await conversation.expect_no_reply(0.5)
