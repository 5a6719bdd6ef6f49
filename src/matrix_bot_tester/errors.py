"""The errors that end a run, and the exit code each one maps to.

Every error a user can cause carries one line that names the place (file and
line where there is one) and the fix; the CLI prints that line and nothing
else, so a traceback never reaches the user.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """One meaning per code, documented in the README."""

    PASSED = 0
    FAILED = 1
    BAD_INPUT = 2
    INFRASTRUCTURE = 3
    INTERRUPTED = 130


class TesterError(Exception):
    """An error with a one-line, user-facing message and an exit code."""

    exit_code: ExitCode = ExitCode.INFRASTRUCTURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message


class InputError(TesterError):
    """The input is wrong (script, account file, arguments); nothing was sent."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if path is not None:
            where = path
            if line is not None:
                where += f":{line}"
                if column is not None:
                    where += f":{column}"
            where += ": "
        super().__init__(f"{where}{message}", hint=hint)
        self.path = path
        self.line = line
        self.column = column


class InfrastructureError(TesterError):
    """The homeserver or the network failed us; not the bot's fault."""

    exit_code = ExitCode.INFRASTRUCTURE
