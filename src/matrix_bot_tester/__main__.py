"""``python -m matrix_bot_tester`` is the same as the ``matrix-bot-tester`` command."""

from matrix_bot_tester._entry import main

main()
