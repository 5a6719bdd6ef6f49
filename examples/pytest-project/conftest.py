"""How a bot author sets up matrix-bot-tester's pytest plugin: start the bot once.

The plugin starts a throwaway Synapse (``matrix_homeserver``) and registers a
tester on it; the scripts and ``matrix_conversation`` talk to whichever bot
``matrix_bot_under_test`` returns. Here that is the example bot from
``examples/command_bot.py``, started once per test session as a fresh user of
that homeserver with ``matrix_bot`` (which waits until it prints ``ready``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from matrix_bot_tester.pytest_plugin import BotStarter

BOT = Path(__file__).resolve().parent.parent / "command_bot.py"


@pytest.fixture(scope="session")
def matrix_bot_under_test(matrix_bot: BotStarter) -> str:
    # The bot reads its homeserver, user and password from MBT_BOT_* variables,
    # which matrix_bot sets; a bot with options would use "{user_id}" etc. in argv.
    return matrix_bot.start([str(BOT)]).user_id
