"""The command's entry point, kept tiny so that signals are handled from the first moment.

Importing the tool takes a moment (pydantic, rich, matrix-nio); a Ctrl-C or
SIGTERM in that moment must end it quietly with the documented code, not
with a traceback.
"""

import gc
import signal
import sys


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        from matrix_bot_tester.cli import main as run

        # What the imports made lives as long as the process: out of the collector's
        # sight, a suite's garbage collections no longer walk it again and again.
        gc.freeze()
        code = run()
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
