"""``python -m matrix_bot_tester`` is the same as the ``matrix-bot-tester`` command."""

from matrix_bot_tester.cli import entry_point

entry_point()
