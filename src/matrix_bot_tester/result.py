"""What a conversation produced: plain data for the reports and the exit code.

The reports render these values and never look back at the script or the
network, so everything a report shows must be recorded here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from matrix_bot_tester.errors import ExitCode
from matrix_bot_tester.matching import Event, Message


class Outcome(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"  # the bot's fault: wrong, missing or unexpected reply
    ERROR = "error"  # the infrastructure's fault: homeserver, login, network
    INTERRUPTED = "interrupted"
    NOT_RUN = "not run"

    def counted(self, number: int) -> str:
        """``number`` conversations with this outcome, in words: "1 error", "2 errors"."""
        plural = "s" if self is Outcome.ERROR and number != 1 else ""
        return f"{number} {self.value}{plural}"


@dataclass(frozen=True)
class TranscriptEntry:
    """One message of the conversation, as a person would have seen it."""

    at: float  # seconds since the conversation started
    direction: str  # "sent" or "received"
    message: Message
    step_index: int | None  # the step that sent or consumed it; None if nobody did


@dataclass
class StepResult:
    index: int
    line: int
    send: str | None
    expect: str | None
    outcome: Outcome
    timeout: float
    latency: float | None = None  # seconds from our send (or the step's start) to the reply
    # Seconds this step (the first one: with opening the room) waited out the
    # homeserver's 429s. Not part of ``latency``: that is the bot's time.
    rate_limited: float = 0.0
    received: Message | None = None
    path: str | None = None  # the fragment the step came from, when it is not the script


@dataclass(frozen=True)
class Failure:
    """The first thing that went wrong, with everything a person needs to act on it."""

    step_index: int | None
    line: int | None
    reason: str  # one line
    expected: str | None = None
    received: Message | None = None
    waited: float | None = None
    diff: str | None = None
    path: str | None = None  # the fragment the step came from, when it is not the script
    problems: tuple[str, ...] = ()  # every check the closest reply failed
    # Which expectation of the step's list failed (0-based), and the reply it was
    # compared with, as edited: what `run --update` rewrites an expectation from.
    # Set only for a reply that came and did not match.
    item: int | None = None
    event: Event | None = None


@dataclass
class ConversationResult:
    script_path: str
    name: str
    role: str
    user_id: str = ""
    partner: str | None = None
    room_id: str | None = None
    outcome: Outcome = Outcome.NOT_RUN
    started_at: str = ""  # ISO 8601, UTC
    duration: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    transcript: list[TranscriptEntry] = field(default_factory=list)
    failure: Failure | None = None
    # With run --update a conversation goes on after a wrong reply: the failures after
    # the first one, so that all of them can be rewritten at once.
    later_failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


_SEVERITY = {
    Outcome.PASSED: ExitCode.PASSED,
    Outcome.NOT_RUN: ExitCode.PASSED,
    Outcome.FAILED: ExitCode.FAILED,
    Outcome.ERROR: ExitCode.INFRASTRUCTURE,
    Outcome.INTERRUPTED: ExitCode.INTERRUPTED,
}


def exit_code(results: list[ConversationResult]) -> ExitCode:
    """Interrupted beats infrastructure beats failed beats passed."""
    order = [ExitCode.PASSED, ExitCode.FAILED, ExitCode.INFRASTRUCTURE, ExitCode.INTERRUPTED]
    worst = ExitCode.PASSED
    for result in results:
        code = _SEVERITY[result.outcome]
        if order.index(code) > order.index(worst):
            worst = code
    return worst
