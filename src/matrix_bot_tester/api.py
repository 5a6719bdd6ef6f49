"""The Python API: run scripts, or single steps, from Python code (a pytest test, say).

A thin layer over the engine: every call builds one step of the script
language and runs it with ``conversation.Conversation`` over an open
``NioSession``, so a step in Python means exactly what it means in YAML
(edits of streamed replies, ``ignore``, ``within``, placeholders such as
``{me}`` and values captured by earlier steps)::

    async with Conversation.open(account, bot="@bot:example.org") as conversation:
        await conversation.send("!ping")
        reply = await conversation.expect("pong")  # or a mapping: {"body": ..., "msgtype": ...}
        await conversation.send("!quiet")
        await conversation.expect_no_reply(2)

    result = await run_script("ping.convo.yaml", account, bot="@bot:example.org")

A failed expectation raises ``AssertionError`` whose text is the failure
(file:line of the calling code, expected, received, diff) and the transcript
so far. A homeserver or network problem raises ``InfrastructureError``. Texts
are filled in as in scripts: write ``{{`` and ``}}`` for literal braces.

``account`` is an ``Account``, the path of an account file, or a
``MatrixUser`` (what the pytest fixture ``matrix_user`` makes).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr, ValidationError

from matrix_bot_tester import conversation as engine
from matrix_bot_tester.account import Account, load_account
from matrix_bot_tester.errors import InfrastructureError, InputError
from matrix_bot_tester.language import Step
from matrix_bot_tester.report import failure_text, shown_path
from matrix_bot_tester.result import (
    ConversationResult,
    Failure,
    Outcome,
)
from matrix_bot_tester.script import DEFAULT_STEP_TIMEOUT, PlacedStep, Role, Script, load_script

__all__ = [
    "Conversation",
    "Event",
    "MatrixUser",
    "as_account",
    "assert_passed",
    "run_script",
]

ExpectArg = str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]]
AccountLike = Account | str | os.PathLike[str]
_THIS_FILE = os.path.normcase(os.path.abspath(__file__))
# Frames between the caller and the API: the event loop, context managers.
_SKIPPED = (
    os.path.normcase(os.path.dirname(os.path.abspath(asyncio.__file__))) + os.sep,
    os.path.normcase(os.path.abspath(contextlib.__file__)),
)


@dataclass(frozen=True, repr=False)
class MatrixUser:
    """A user on a homeserver with a ready access token (``matrix_user`` makes these)."""

    user_id: str
    password: str
    access_token: str
    device_id: str
    homeserver_url: str

    def account(self, user_to_test: str | None = None) -> Account:
        """This user as an ``Account`` (logged in by token: no new device)."""
        return Account(
            path=f"<user {self.user_id}>",
            user=self.user_id,
            homeserver_url=self.homeserver_url,
            password=None,
            access_token=SecretStr(self.access_token),
            device_id=self.device_id,
            user_to_test=user_to_test,
        )

    def __repr__(self) -> str:
        return f"MatrixUser(user_id={self.user_id!r}, homeserver_url={self.homeserver_url!r})"


def as_account(account: AccountLike | MatrixUser) -> Account:
    if isinstance(account, Account):
        return account
    if isinstance(account, MatrixUser):
        return account.account()
    return load_account(account)


@dataclass(frozen=True)
class Event:
    """An event of the conversation: ``raw`` is the Matrix event (as last edited)."""

    raw: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.raw.get("event_id", ""))

    @property
    def sender(self) -> str:
        return str(self.raw.get("sender", ""))

    @property
    def type(self) -> str:
        return str(self.raw.get("type", ""))

    @property
    def content(self) -> dict[str, Any]:
        content = self.raw.get("content")
        return content if isinstance(content, dict) else {}

    @property
    def body(self) -> str:
        return str(self.content.get("body", ""))

    @property
    def msgtype(self) -> str:
        return str(self.content.get("msgtype", ""))

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]


def _session(account: Account) -> Any:
    from matrix_bot_tester.session import NioSession
    from matrix_bot_tester.state import LoginStore, default_path

    # Password logins are remembered (as the command does), so tests don't pile up devices.
    logins = LoginStore(default_path()) if account.password is not None else None
    return NioSession(account, logins=logins)


def _errored(
    script: Script, account: Account, partner: str | None, reason: str
) -> ConversationResult:
    return ConversationResult(
        script_path=script.path,
        name=script.name,
        role=script.role.value,
        user_id=account.user,
        partner=partner,
        outcome=Outcome.ERROR,
        failure=Failure(step_index=None, line=None, reason=reason),
    )


async def run_script(
    script: Script | str | os.PathLike[str],
    account: AccountLike | MatrixUser,
    *,
    bot: str | None = None,
    timeout: float | None = None,
    cleanup: bool | None = None,
) -> ConversationResult:
    """Run one script in its own conversation (a new DM in the client role); return its result.

    Never raises for a failed conversation: look at ``result.outcome`` (or call
    ``assert_passed``). ``bot`` defaults to the account's ``user_to_test``;
    ``timeout`` overrides the script's per-step timeout as ``--timeout`` does.
    The room is left after a pass (``cleanup``: always or never; the script's
    ``cleanup`` wins). An unreadable script raises ``InputError``.
    """
    loaded = script if isinstance(script, Script) else load_script(script)
    acc = as_account(account)
    partner = bot or acc.user_to_test
    if loaded.role is Role.CLIENT and not partner:
        raise InputError(
            f"{loaded.path} opens a DM ('!dm'), but no bot to test is named",
            hint="pass bot='@bot:server' or set user_to_test in the account",
        )
    session = _session(acc)
    try:
        try:
            await session.connect(**({"timeout": timeout} if timeout else {}))
        except InfrastructureError as exc:
            return _errored(loaded, acc, partner, exc.one_line())
        conversation = engine.Conversation(loaded, partner=partner, timeout_override=timeout)
        result = await conversation.run(session)
        result.warnings.extend(session.warnings)
        leave = loaded.cleanup if loaded.cleanup is not None else cleanup
        if leave is None:
            leave = result.outcome is Outcome.PASSED
        if leave and result.room_id:
            with contextlib.suppress(InfrastructureError):
                await session.leave(result.room_id)
        return result
    finally:
        await session.close()


def assert_passed(result: ConversationResult) -> None:
    """Raise AssertionError with the failure and the transcript unless ``result`` passed."""
    if result.outcome is not Outcome.PASSED:
        raise AssertionError(f"{result.name}: {result.outcome.value}\n{failure_text(result)}")


def _plain(expectation: ExpectArg) -> Any:
    if isinstance(expectation, str):
        return expectation
    if isinstance(expectation, Mapping):
        return dict(expectation)
    return [_plain(item) for item in expectation]


def _caller() -> tuple[str, int]:
    """The file and line of the code that called the API (for failure reports)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = os.path.normcase(os.path.abspath(frame.f_code.co_filename))
        if filename != _THIS_FILE and not filename.startswith(_SKIPPED):
            return shown_path(frame.f_code.co_filename), frame.f_lineno
        frame = frame.f_back  # type: ignore[assignment]
    return "<python>", 0


class Conversation:
    """A conversation driven from Python: ``Conversation.open(...)``, then steps."""

    def __init__(self, session: Any, room_id: str, bot: str | None, timeout: float) -> None:
        self.session = session
        self.room_id = room_id
        self.bot = bot
        self.timeout = timeout
        self.run_id = uuid.uuid4().hex[:10]
        # Each step runs in this room and carries to the next one: names, captured
        # values, edits of earlier messages, and replies not taken yet.
        self._room = engine.OpenRoom(room_id)
        self._started = time.monotonic()
        self.failed = False
        self.result = ConversationResult(
            script_path="<python>",
            name="conversation",
            role=Role.CLIENT.value if bot else Role.ROOM.value,
            user_id=session.user_id,
            partner=bot,
            room_id=room_id,
        )

    @property
    def user_id(self) -> str:
        return str(self.session.user_id)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        account: AccountLike | MatrixUser,
        *,
        bot: str | None = None,
        room: str | None = None,
        timeout: float = DEFAULT_STEP_TIMEOUT,
        cleanup: bool = True,
    ) -> AsyncIterator[Conversation]:
        """Log in and open a DM with ``bot`` (default: the account's ``user_to_test``).

        With ``room`` (an ID or alias), join that room instead. ``timeout`` is
        each step's default deadline (and that of logging in and opening the
        room). The room is left at the end unless a step failed or ``cleanup``
        is false.
        """
        acc = as_account(account)
        partner = bot or acc.user_to_test
        if room is None and not partner:
            raise InputError(
                "Conversation.open: no bot to talk to",
                hint="pass bot='@bot:server' (or room=...), or set user_to_test in the account",
            )
        session = _session(acc)
        try:
            await session.connect(timeout=timeout)
            if room is not None:
                room_id = await session.join_room(room, timeout=timeout)
            else:
                assert partner is not None
                try:
                    room_id = await session.open_dm(partner, wait_for_join=True, timeout=timeout)
                except engine.ConversationFailed as failed:
                    raise AssertionError(failed.reason) from None
            conversation = cls(session, room_id, partner, timeout)
            yield conversation
            if cleanup and not conversation.failed:
                with contextlib.suppress(InfrastructureError):
                    await session.leave(room_id)
        finally:
            await session.close()

    # ------------------------------------------------------------------ steps

    async def step(
        self, step: Mapping[str, Any], *, timeout: float | None = None
    ) -> tuple[Event | None, Event | None]:
        """Run any step of the script language, given as a mapping (``{"react": ...}``).

        Returns the event the step sent and the (last) reply it took, each or None.
        """
        __tracebackhide__ = True
        where = _caller()
        data = dict(step)
        if timeout is not None:
            data["timeout"] = timeout
        data.setdefault("timeout", self.timeout)
        return await self._run(data, where)

    async def send(
        self, message: str | Mapping[str, Any], *, timeout: float | None = None
    ) -> Event:
        """Send a message (text, or a ``send`` mapping: markdown, html, file, reply_to...)."""
        __tracebackhide__ = True
        data: dict[str, Any] = {
            "send": dict(message) if isinstance(message, Mapping) else message,
            "timeout": timeout if timeout is not None else self.timeout,
        }
        sent, _ = await self._run(data, _caller())
        assert sent is not None
        return sent

    async def expect(
        self,
        expectation: ExpectArg,
        *,
        timeout: float | None = None,
        within: float | None = None,
        ignore: Sequence[str | Mapping[str, Any]] | None = None,
    ) -> Event:
        """Wait for the next reply and check it; a list expects several replies in order.

        Returns the (last) reply, as last edited.
        """
        __tracebackhide__ = True
        data: dict[str, Any] = {
            "expect": _plain(expectation),
            "timeout": timeout if timeout is not None else self.timeout,
        }
        if within is not None:
            data["within"] = within
        if ignore is not None:
            data["ignore"] = list(ignore)
        _, received = await self._run(data, _caller())
        assert received is not None
        return received

    async def expect_no_reply(self, seconds: float) -> None:
        """Pass only if nothing (but edits and ignored noise) arrives for ``seconds``."""
        __tracebackhide__ = True
        data: dict[str, Any] = {
            "expect_no_reply": seconds,
            "timeout": max(self.timeout, seconds + 1),
        }
        await self._run(data, _caller())

    # --------------------------------------------------------------- machinery

    async def _run(
        self, data: dict[str, Any], where: tuple[str, int]
    ) -> tuple[Event | None, Event | None]:
        __tracebackhide__ = True
        path, line = where
        try:
            spec = Step.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'step'}: {err['msg']}"
                for err in exc.errors()
            )
            raise InputError(f"not a valid step ({problems})", path=path, line=line) from None
        index = len(self.result.steps)
        placed = PlacedStep(index=0, path=path, position=0, line=line, spec=spec)
        script = Script(
            path=path,
            name=self.result.name,
            role=Role.CLIENT if self.bot else Role.ROOM,
            room=None if self.bot else self.room_id,
            timeout=self.timeout,
            wait_for_join=True,
            ignore=(),
            steps=(placed,),
        )
        runner = engine.Conversation(
            script, partner=self.bot, timeout_override=None, run_id=self.run_id, room=self._room
        )
        began = time.monotonic()
        step_result = await runner.run(self.session)
        offset = began - self._started
        for entry in step_result.transcript:
            self.result.transcript.append(
                dataclasses.replace(
                    entry,
                    at=round(entry.at + offset, 3),
                    step_index=None if entry.step_index is None else index,
                )
            )
        for record in step_result.steps:
            self.result.steps.append(dataclasses.replace(record, index=index, path=None))
        warnings = getattr(self.session, "warnings", None)
        if warnings:
            self.result.warnings.extend(warnings)
            warnings.clear()
        if step_result.outcome is not Outcome.PASSED:
            self.failed = True
            failure = step_result.failure or Failure(step_index=0, line=line, reason="failed")
            self.result.failure = dataclasses.replace(
                failure, step_index=index, line=line, path=path
            )
            self.result.outcome = step_result.outcome
            text = failure_text(self.result)
            if step_result.outcome is Outcome.ERROR:
                raise InfrastructureError(failure.reason)
            raise AssertionError(text)
        self.result.outcome = Outcome.PASSED
        sent = next((e for e in step_result.transcript if e.direction == "sent"), None)
        received = step_result.steps[0].received
        return self._event(sent.message.event_id if sent else None), self._event(
            received.event_id if received else None
        )

    def _event(self, event_id: str | None) -> Event | None:
        """An event of this conversation by ID, as last edited."""
        known = self._room.known
        if not event_id or event_id not in known:
            return None
        return Event(dict(known[event_id]))
