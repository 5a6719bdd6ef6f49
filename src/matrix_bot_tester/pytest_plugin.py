"""The pytest plugin: script files as test items, and fixtures for Python tests.

Installed with the package (entry point ``pytest11``) and **off unless used**:
it collects nothing until it is enabled, by ``--matrix-bot-tester`` on the
command line or ``matrix_bot_tester = true`` in the ini file (``pytest.ini``,
``[tool.pytest.ini_options]``, ...). Then every file named ``*.convo.yaml``
(or ``*.convo.yml``) under the paths pytest searches is one test item, named
after the file. The fixtures (``matrix_homeserver``, ``matrix_user``,
``matrix_bot``, ``matrix_account``, ``matrix_bot_under_test``,
``matrix_conversation``) are always there, and do nothing unless a test asks
for them. ``-p no:matrix_bot_tester`` removes the plugin altogether.

Where the conversations happen: with ``--matrix-account FILE`` (or the ini
``matrix_account``, relative to the ini file), as that account, against the
bot named by ``--matrix-bot`` / ini ``matrix_bot`` / the account's
``user_to_test``. Without it, on a throwaway Synapse started once per test
session, as a freshly registered tester, against the bot that the fixture
``matrix_bot_under_test`` returns: override it in your ``conftest.py`` to
start your bot with ``matrix_bot``.

Under pytest-xdist (``-n N``) the workers share one throwaway Synapse rather
than start one each (N Synapses would cost N start-ups and N times the
memory, for no isolation a test needs: every worker registers its own
tester and starts its own bot). The controller names a folder for it, in
its own temporary folder, and hands it to the workers; the first worker
that needs the homeserver starts it there and the others find it running
(``homeserver.start`` is idempotent and locked per folder); the controller
stops it when the session ends, after every worker has finished, even if
one of them crashed. Without ``-n`` nothing of this happens.

A conversation that fails (wrong reply, no reply, ...) fails its item with
file:line, expected, received, diff and the transcript. A homeserver or
network problem during a conversation also fails it, with a report that
starts with ``infrastructure:``; one while setting up (the homeserver, the
bot) is a pytest error, as fixture errors are.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from matrix_bot_tester.account import Account
    from matrix_bot_tester.api import Conversation, MatrixUser
    from matrix_bot_tester.botprocess import BotProcess
    from matrix_bot_tester.homeserver import Homeserver
    from matrix_bot_tester.result import ConversationResult
    from matrix_bot_tester.script import Script

# The CLI's naming convention for scripts (discovery), so both find the same files.
SCRIPT_SUFFIXES = (".convo.yaml", ".convo.yml")
SERVER_NAME = "localhost"
MARKER = "matrix_script"


# ----------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("matrix-bot-tester", "Matrix bot conversations (matrix-bot-tester)")
    group.addoption(
        "--matrix-bot-tester",
        action="store_true",
        default=None,
        help="collect *.convo.yaml script files as tests (ini: matrix_bot_tester = true)",
    )
    group.addoption(
        "--matrix-account",
        metavar="FILE",
        default=None,
        help="talk as this account (an account file) instead of on a throwaway Synapse",
    )
    group.addoption(
        "--matrix-bot",
        metavar="MXID",
        default=None,
        help="the bot the scripts talk to (default: the account's user_to_test)",
    )
    group.addoption(
        "--matrix-timeout",
        metavar="SECONDS",
        type=float,
        default=None,
        help="seconds to wait for each reply, overriding the scripts' timeout",
    )
    parser.addini(
        "matrix_bot_tester",
        "collect *.convo.yaml script files as tests",
        type="bool",
        default=False,
    )
    parser.addini("matrix_account", "account file (relative to the ini file)", default="")
    parser.addini("matrix_bot", "the bot the scripts talk to", default="")
    parser.addini("matrix_timeout", "seconds to wait for each reply", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: a matrix-bot-tester conversation script")


def enabled(config: pytest.Config) -> bool:
    """Does this run collect script files? Only when asked (see the module's docstring)."""
    if config.getoption("matrix_bot_tester"):
        return True
    return bool(config.getini("matrix_bot_tester"))


def _account_path(config: pytest.Config) -> Path | None:
    given = config.getoption("matrix_account")
    if given:
        return config.invocation_params.dir / str(given)
    from_ini = str(config.getini("matrix_account") or "")
    if from_ini:
        base = config.inipath.parent if config.inipath else config.rootpath
        return base / from_ini
    return None


def _timeout(config: pytest.Config) -> float | None:
    given = config.getoption("matrix_timeout")
    if given:
        return float(given)
    from_ini = str(config.getini("matrix_timeout") or "")
    return float(from_ini) if from_ini else None


# -------------------------------------------------------------- collection


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name.endswith(SCRIPT_SUFFIXES) and enabled(parent.config):
        return ScriptFile.from_parent(parent, path=file_path)
    return None


def _item_name(path: Path) -> str:
    name = path.name
    for suffix in SCRIPT_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


class ScriptFile(pytest.File):
    """One script file: one item. A file that does not load is a collection error."""

    def collect(self) -> Iterator[pytest.Item]:
        from matrix_bot_tester.errors import InputError
        from matrix_bot_tester.report import shown_path
        from matrix_bot_tester.script import Role, load_script

        try:
            script = load_script(shown_path(self.path))
        except InputError as exc:
            raise self.CollectError(exc.one_line()) from None
        run = _run_dm_script if script.role is Role.CLIENT else _run_script
        item = ScriptItem.from_parent(self, name=_item_name(self.path), callobj=run)
        item.script = script
        item.add_marker(MARKER)
        for tag in getattr(script, "tags", ()) or ():
            # Tags become markers (-m TAG); registered here so --strict-markers accepts them.
            self.config.addinivalue_line("markers", f"{tag}: a tag of matrix-bot-tester scripts")
            item.add_marker(tag)
        yield item


class ConversationFailure(AssertionError):
    """The bot did not do what the script says."""

    def __init__(self, result: ConversationResult) -> None:
        super().__init__(result.failure.reason if result.failure else "failed")
        self.result = result


class InfrastructureFailure(Exception):
    """The homeserver or the network failed during a conversation (not the bot's fault)."""

    def __init__(self, result: ConversationResult) -> None:
        super().__init__(result.failure.reason if result.failure else "infrastructure error")
        self.result = result


class ScriptItem(pytest.Function):
    """A script run as a test; a Function so that fixtures, -k, -m and -x work as usual."""

    script: Script

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"conversation {self.name}"

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | Any:
        from matrix_bot_tester.report import failure_text

        error = excinfo.value
        if isinstance(error, ConversationFailure):
            return failure_text(error.result)
        if isinstance(error, InfrastructureFailure):
            return "infrastructure: " + failure_text(error.result)
        return super().repr_failure(excinfo)


def _run_dm_script(
    request: pytest.FixtureRequest, matrix_account: Account, matrix_bot_under_test: str | None
) -> None:
    """A script in the client role: a DM with the bot under test."""
    if not matrix_bot_under_test:
        pytest.fail(
            "the script opens a DM with the bot, but no bot is named: pass --matrix-bot,"
            " set user_to_test in the account, or override the fixture"
            " matrix_bot_under_test in conftest.py",
            pytrace=False,
        )
    _run(request, matrix_account, matrix_bot_under_test)


def _run_script(request: pytest.FixtureRequest, matrix_account: Account) -> None:
    """A script in the mock-bot or room role."""
    bot = request.config.getoption("matrix_bot") or matrix_account.user_to_test
    _run(request, matrix_account, bot)


def _run(request: pytest.FixtureRequest, matrix_account: Account, bot: str | None) -> None:
    from matrix_bot_tester.api import run_script
    from matrix_bot_tester.report import transcript_lines
    from matrix_bot_tester.result import Outcome

    item = request.node
    assert isinstance(item, ScriptItem)
    script = item.script
    result = asyncio.run(
        run_script(script, matrix_account, bot=bot, timeout=_timeout(request.config))
    )
    if result.outcome is Outcome.PASSED:  # a failure's report has the transcript already
        lines = transcript_lines(result)
        item.add_report_section("call", "transcript", "\n".join(lines) or "(no messages)")
    if result.outcome is Outcome.FAILED:
        raise ConversationFailure(result)
    if result.outcome is not Outcome.PASSED:
        raise InfrastructureFailure(result)


# ---------------------------------------------------------- Python tests


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests that use ``matrix_conversation`` (unless asyncio/anyio runs them)."""
    function = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function):
        return None
    if "matrix_conversation" not in pyfuncitem.fixturenames:
        return None
    if any(pyfuncitem.iter_markers("asyncio")) or any(pyfuncitem.iter_markers("anyio")):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(function(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True


# ----------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def matrix_homeserver(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Homeserver]:
    """A throwaway Synapse for the test session, on a free port (shared by xdist workers)."""
    from matrix_bot_tester import homeserver as hs

    shared = _shared_homeserver_dir(request.config)
    if shared is not None:
        # A worker: the first one starts it, the others find it; the controller stops it.
        yield hs.start(shared, port=hs.free_port(), server_name=SERVER_NAME)
        return
    directory = tmp_path_factory.mktemp("matrix-homeserver")
    server = hs.start(directory, port=hs.free_port(), server_name=SERVER_NAME)
    try:
        yield server
    finally:
        hs.stop(directory)


# ------------------------------------------------------------ pytest-xdist

# Where the controller keeps the shared homeserver's folder, and how workers learn it.
_SHARED_HOMESERVER = pytest.StashKey[Path]()
_WORKERINPUT_KEY = "matrix_bot_tester_homeserver_dir"


def _shared_homeserver_dir(config: pytest.Config) -> Path | None:
    """In an xdist worker, the shared homeserver's folder; None in a plain run."""
    workerinput: dict[str, Any] = getattr(config, "workerinput", None) or {}
    given = workerinput.get(_WORKERINPUT_KEY)
    return Path(given) if given else None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist's hook, in the controller, per worker: where the shared homeserver lives.

    Only a folder name: nothing starts until a worker's test needs the
    homeserver. The controller's temporary folder (the parent of the
    workers' own) is the one xdist itself uses, so the Synapse log is kept
    with pytest's other temporary files for a failure to be looked into.
    """
    config: pytest.Config = node.config
    directory = config.stash.get(_SHARED_HOMESERVER, None)
    if directory is None:
        # xdist reads the same (private) attribute to give workers their folders.
        basetemp = Path(config._tmp_path_factory.getbasetemp())  # type: ignore[attr-defined]
        directory = basetemp / "matrix-homeserver"
        config.stash[_SHARED_HOMESERVER] = directory
    node.workerinput[_WORKERINPUT_KEY] = str(directory)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """In the xdist controller, once every worker is done: stop the shared homeserver."""
    directory = session.config.stash.get(_SHARED_HOMESERVER, None)
    if directory is not None and directory.exists():
        from matrix_bot_tester import homeserver as hs

        hs.stop(directory)


class UserFactory:
    """``matrix_user()``: register a fresh user on the throwaway homeserver."""

    def __init__(self, server: Homeserver) -> None:
        self.server = server

    def __call__(self, name: str | None = None, password: str | None = None) -> MatrixUser:
        from matrix_bot_tester import homeserver as hs
        from matrix_bot_tester.api import MatrixUser

        localpart = name or f"user-{uuid.uuid4().hex[:10]}"
        secret = password or secrets.token_urlsafe(16)
        registered = hs.register(self.server.directory, localpart, secret, exist_ok=False)
        assert registered is not None
        return MatrixUser(
            user_id=registered.user_id,
            password=secret,
            access_token=registered.access_token,
            device_id=registered.device_id,
            homeserver_url=self.server.url,
        )


@pytest.fixture(scope="session")
def matrix_user(matrix_homeserver: Homeserver) -> UserFactory:
    """A factory: ``matrix_user(name=None, password=None) -> MatrixUser``."""
    return UserFactory(matrix_homeserver)


@dataclass
class RunningBot:
    """A bot process started by ``matrix_bot``, logged in as ``user``."""

    user: MatrixUser
    process: BotProcess

    @property
    def user_id(self) -> str:
        return self.user.user_id

    def stop(self) -> int:
        return self.process.stop()


@dataclass
class BotStarter:
    """``matrix_bot.start(argv, ...)``: start your bot as a user of the throwaway homeserver."""

    users: UserFactory
    running: list[RunningBot] = field(default_factory=list)

    def start(
        self,
        argv: list[str],
        *,
        user: MatrixUser | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        ready_line: str = "ready",
        timeout: float = 60.0,
    ) -> RunningBot:
        """Run ``python argv...`` and return once it prints ``ready_line`` on stdout.

        The bot's account (``user``, else a fresh ``bot-...`` user) reaches it as
        MBT_BOT_HOMESERVER, MBT_BOT_USER and MBT_BOT_PASSWORD (as the example bot reads);
        ``{homeserver_url}``, ``{user_id}``, ``{password}`` and ``{access_token}`` in
        ``argv`` and ``env`` values are replaced too. Stopped at the end of the session.
        """
        from matrix_bot_tester.botprocess import start_bot
        from matrix_bot_tester.errors import InfrastructureError

        user = user or self.users(f"bot-{uuid.uuid4().hex[:8]}")
        values = {
            "homeserver_url": user.homeserver_url,
            "user_id": user.user_id,
            "password": user.password,
            "access_token": user.access_token,
        }
        full_env = {
            "MBT_BOT_HOMESERVER": user.homeserver_url,
            "MBT_BOT_USER": user.user_id,
            "MBT_BOT_PASSWORD": user.password,
        }
        full_env.update({k: v.format_map(values) for k, v in (env or {}).items()})
        try:
            process = start_bot(
                [a.format_map(values) for a in argv],
                full_env,
                cwd=cwd,
                ready_line=ready_line,
                timeout=timeout,
            )
        except InfrastructureError as exc:
            # The bot's own words say what is wrong; a traceback through this file would not.
            pytest.fail(exc.one_line(), pytrace=False)
        bot = RunningBot(user, process)
        self.running.append(bot)
        return bot

    def stop_all(self) -> None:
        while self.running:
            self.running.pop().stop()


@pytest.fixture(scope="session")
def matrix_bot(matrix_user: UserFactory) -> Iterator[BotStarter]:
    """Start the bot under test: ``matrix_bot.start(["path/to/bot.py", ...])``."""
    starter = BotStarter(matrix_user)
    try:
        yield starter
    finally:
        starter.stop_all()


@pytest.fixture(scope="session")
def matrix_account(request: pytest.FixtureRequest) -> Account:
    """Who the tester is: ``--matrix-account`` / ini ``matrix_account``, else a fresh user."""
    path = _account_path(request.config)
    if path is not None:
        from matrix_bot_tester.account import load_account

        return load_account(path)
    users: UserFactory = request.getfixturevalue("matrix_user")
    return users(f"tester-{uuid.uuid4().hex[:8]}").account()


@pytest.fixture(scope="session")
def matrix_bot_under_test(request: pytest.FixtureRequest, matrix_account: Account) -> str | None:
    """The bot's user ID. Override it in conftest.py to start your bot (see ``matrix_bot``)."""
    given = request.config.getoption("matrix_bot") or str(request.config.getini("matrix_bot"))
    return given or matrix_account.user_to_test


@dataclass
class ConversationOpener:
    """``matrix_conversation``: open conversations (Python API) as the tester, with the bot."""

    account: Account
    bot: str | None
    timeout: float | None = None

    def __call__(
        self,
        *,
        bot: str | None = None,
        room: str | None = None,
        timeout: float | None = None,
    ) -> AbstractAsyncContextManager[Conversation]:
        from matrix_bot_tester.api import Conversation
        from matrix_bot_tester.script import DEFAULT_STEP_TIMEOUT

        chosen = bot or (None if room else self.bot)
        deadline = timeout or self.timeout or DEFAULT_STEP_TIMEOUT
        return Conversation.open(self.account, bot=chosen, room=room, timeout=deadline)

    async def run_script(
        self, path: str | os.PathLike[str], *, bot: str | None = None
    ) -> ConversationResult:
        from matrix_bot_tester.api import run_script

        return await run_script(path, self.account, bot=bot or self.bot, timeout=self.timeout)


@pytest.fixture
def matrix_conversation(
    request: pytest.FixtureRequest, matrix_account: Account, matrix_bot_under_test: str | None
) -> ConversationOpener:
    """``async with matrix_conversation() as conversation: await conversation.send(...)``."""
    return ConversationOpener(matrix_account, matrix_bot_under_test, _timeout(request.config))
