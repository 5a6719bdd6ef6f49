"""Run the async main of a command so that Ctrl-C and SIGTERM stop it cleanly.

Both signals cancel the main task (so ``finally`` blocks run: the session
logs out, rooms are left) instead of killing the process; the caller then
decides what an interruption means (``run`` marks conversations interrupted
and exits 130/143, ``record`` writes what it heard).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any


def _run(main: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run``, on uvloop where it is installed: its C event loop and
    transports take about a tenth off the tester's own CPU time in a suite."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def run_stoppable(main: Callable[[], Coroutine[Any, Any, None]]) -> list[int]:
    """Run ``main()`` to the end or until a signal; the signals that stopped it (or none)."""
    stopped_by: list[int] = []

    async def guarded() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            stopped_by.append(signum)
            task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        await main()

    try:
        _run(guarded())
    except (asyncio.CancelledError, KeyboardInterrupt):
        if not stopped_by:  # a Ctrl-C before the handlers were in place
            stopped_by.append(signal.SIGINT)
    return stopped_by
