"""The JSON report's format: pydantic models, the one source of its schema.

``report.json_report`` builds its document through these models, and
``docs/report.schema.json`` is generated from them (a test keeps the file
equal to what :func:`report_schema_text` returns), so the report, its schema
and the descriptions in it cannot drift apart. The models read the plain
result values (``result.py``) by attribute; a field of a result that no
model names does not reach the report, and a unit test says so.

Regenerate the file with ``python -m matrix_bot_tester.report_schema >
docs/report.schema.json``. A change that removes or renames a field, or
changes its type, needs a new ``SCHEMA_VERSION``; adding one does not.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from matrix_bot_tester.result import Outcome
from matrix_bot_tester.schema import published_schema, schema_text

SCHEMA_VERSION: Final = 1
SCHEMA_ID = "https://matrix-bot-tester.invalid/report.schema.json"

_OUTCOMES = ", ".join(f"'{outcome.value}'" for outcome in Outcome)


class _Model(BaseModel):
    # Every key is written, and nothing else: the schema says both (required, no extras).
    model_config = ConfigDict(
        extra="forbid",
        from_attributes=True,
        frozen=True,
        json_schema_serialization_defaults_required=True,
        # Built when first used: a run uses only the whole report's model, and a
        # run without --json none at all. Each tester start is the faster for it.
        defer_build=True,
    )


class MessageReport(_Model):
    """A message event as the tester saw it."""

    event_id: str = Field(description="The event's ID ('$...'); empty if the server gave none.")
    sender: str = Field(description="The sender's Matrix user ID.")
    msgtype: str = Field(
        description="content.msgtype ('m.text', 'm.notice', 'm.image', ...); empty if none."
    )
    body: str = Field(
        description="content.body as sent (not cleaned of reply fallbacks); empty if none."
    )
    timestamp_ms: int = Field(
        description="origin_server_ts: the homeserver's time of the event, in ms since the epoch."
    )
    type: str = Field(
        description="The event type: 'm.room.message', 'm.reaction', 'm.room.redaction', ..."
    )
    content: dict[str, Any] = Field(
        description="The event's whole content, as sent or received (edits, relations, HTML)."
    )


class StepReport(_Model):
    """One step of the script: what it sent, what it expected, what came back, how fast."""

    index: int = Field(description="The step's position in the script, from 0.")
    line: int = Field(description="The step's line in its file (the script or a fragment).")
    send: str | None = Field(
        description="What the step did: the text it sent, or its action as 'ACTION: JSON'"
        " (react, edit, ...); null if it did neither."
    )
    expect: str | None = Field(
        description="What the step expected: a plain string, or 'KEY: JSON' (expect,"
        " expect_unordered, expect_count, expect_no_reply); null if it expected nothing."
    )
    outcome: Outcome = Field(
        description=f"How the step ended: one of {_OUTCOMES}. 'not run' for steps after a failure."
    )
    timeout: float = Field(description="Seconds the step would wait for its reply.")
    latency: float | None = Field(
        description="Seconds from the step's send (or its start) to the reply that matched;"
        " null when nothing matched or nothing was expected."
    )
    rate_limited: float = Field(
        description="Seconds spent waiting out the homeserver's rate limits (HTTP 429) during"
        " this step; not part of latency."
    )
    received: MessageReport | None = Field(
        description="The reply the step took (the closest one, when it failed); null if none."
    )
    path: str | None = Field(
        description="The fragment file the step came from (include); null when it is the script."
    )


class TranscriptEntryReport(_Model):
    """One message of the conversation, in the order they happened."""

    at: float = Field(description="Seconds since the conversation started.")
    direction: Literal["sent", "received"] = Field(
        description="'sent' by the tester, or 'received' from anyone else in the room."
    )
    message: MessageReport = Field(description="The message.")
    step_index: int | None = Field(
        description="The step that sent or consumed the message; null if no step did"
        " (an unexpected message)."
    )


class FailureReport(_Model):
    """The first thing that went wrong, with what a person needs to act on it."""

    step_index: int | None = Field(
        description="The failing step's index; null when the failure struck before any step"
        " (logging in, opening the room)."
    )
    line: int | None = Field(description="The failing step's line; null as step_index.")
    reason: str = Field(description="One line: what went wrong.")
    expected: str | None = Field(
        description="What the failing step expected, written as in steps[].expect; null if nothing."
    )
    received: MessageReport | None = Field(
        description="The reply closest to the expectation; null if none came."
    )
    waited: float | None = Field(description="Seconds the step waited; null if it did not wait.")
    diff: str | None = Field(
        description="Expected versus received, as lines of a diff; null when there is none."
    )
    path: str | None = Field(
        description="The fragment file the failing step came from; null when it is the script."
    )
    problems: list[str] = Field(
        description="Every check the closest reply failed, one line each (may be empty)."
    )
    # Defaults only so that results from before these fields existed still validate;
    # the report always writes them (the schema lists them as required).
    item: int | None = Field(
        default=None,
        description="Which expectation of the step's list failed, from 0; null unless a reply"
        " came and did not match.",
    )
    event: dict[str, Any] | None = Field(
        default=None,
        description="The whole event of the reply that did not match (as edited), as the"
        " homeserver sent it; null unless a reply came and did not match.",
    )


class ConversationReport(_Model):
    """One script's conversation: who talked where, how it ended, every step and message."""

    script_path: str = Field(description="The script file, as given on the command line.")
    name: str = Field(description="The conversation's name (the script's file name, by default).")
    role: str = Field(
        description="The side the tester played: 'client' (a DM with the bot), 'bot' (a mock"
        " bot answering whoever invites it) or 'room' (a given room)."
    )
    user_id: str = Field(description="The tester's user ID; empty if it never logged in.")
    partner: str | None = Field(description="The bot or user talked to; null if none.")
    room_id: str | None = Field(description="The room of the conversation; null if none opened.")
    outcome: Outcome = Field(
        description=f"One of {_OUTCOMES}. 'failed' is the bot's fault (a wrong, late or"
        " missing reply); 'error' is the infrastructure's (homeserver, login, network);"
        " 'not run' is a conversation the run never reached (after -x, say)."
    )
    started_at: str = Field(description="ISO 8601 time (UTC) it started; empty if it did not.")
    duration: float = Field(description="Seconds it took.")
    steps: list[StepReport] = Field(description="Every step of the script, in order.")
    transcript: list[TranscriptEntryReport] = Field(
        description="Every message sent and received, in order."
    )
    failure: FailureReport | None = Field(
        description="What went wrong; null when the conversation passed or did not run."
    )
    later_failures: list[FailureReport] = Field(
        description="Failures of steps after the first failed one: only with run --update,"
        " where a conversation goes on after a wrong reply (so that every changed reply is"
        " rewritten in one run); empty otherwise."
    )
    warnings: list[str] = Field(description="Things that did not fail it but look wrong.")


class ToolReport(_Model):
    """The program that wrote the report."""

    name: Literal["matrix-bot-tester"] = Field(description="Always 'matrix-bot-tester'.")
    version: str = Field(description="Its version.")


class JsonReport(_Model):
    """A run of matrix-bot-tester: the JSON report of ``--json PATH``."""

    schema_version: Literal[1] = Field(
        description="The report format's version; it changes when a field is removed, renamed"
        " or changes type."
    )
    tool: ToolReport = Field(description="Which program wrote the report, and its version.")
    exit_code: int = Field(
        description="The run's exit code: 0 passed, 1 failed, 3 infrastructure, 130"
        " interrupted, 143 terminated (README: exit codes)."
    )
    duration: float = Field(description="Seconds the whole run took.")
    conversations: list[ConversationReport] = Field(
        description="One per script, in the order of the run."
    )


def report_schema() -> dict[str, Any]:
    return published_schema(
        JsonReport, schema_id=SCHEMA_ID, title="matrix-bot-tester JSON report", mode="serialization"
    )


def report_schema_text() -> str:
    return schema_text(report_schema())


if __name__ == "__main__":
    print(report_schema_text(), end="")
