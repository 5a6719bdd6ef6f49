"""Leaving the DMs kept for reuse at the end of a run, when the homeserver is gone."""

from __future__ import annotations

import asyncio
import io

from rich.console import Console

from matrix_bot_tester.errors import InfrastructureError
from matrix_bot_tester.report import ConsoleReporter
from matrix_bot_tester.runner import _leave_spares


class GoneServer:
    """A session whose homeserver is lost: every leave fails (after its whole deadline)."""

    rate_limited_seconds = 0.0

    def __init__(self) -> None:
        self.tried: list[str] = []

    def take_spares(self) -> list[str]:
        return ["!a:x", "!b:x", "!c:x", "!d:x"]

    async def leave(self, room_id: str) -> bool:
        self.tried.append(room_id)
        raise InfrastructureError("leaving a room: lost the homeserver at http://x")


def test_the_first_failed_leave_ends_the_leaving_with_one_warning() -> None:
    """A frozen server made each of the -j kept rooms wait out 30 s, one after another."""
    session = GoneServer()
    err = Console(file=io.StringIO(), width=200)
    reporter = ConsoleReporter(Console(file=io.StringIO()), err)
    asyncio.run(_leave_spares(session, reporter))  # type: ignore[arg-type]
    assert session.tried == ["!a:x"]
    file = err.file
    assert isinstance(file, io.StringIO)
    assert file.getvalue().splitlines() == [
        "warning: could not leave !a:x (nor the 3 other kept rooms): leaving a room: lost the"
        " homeserver at http://x"
    ]
