"""Hardening on a real Synapse: rate limits, logins, restarts, a lost server, cleanup, signals.

Most tests run against a second Synapse of this module that keeps **Synapse's
own default rate limits** (``default_rate_limits=True``): ``rc_message`` 0.2/s
after a burst of 10, logins 5 per address and per account then one per
333 s, room creation 0.016/s after 10, invites to one user 0.003/s after 5.
The example bot there is exempted from every limit through the admin API
(``override_ratelimit`` with 0/0), so only the tester meets them.

Login limits are keyed by address and account, never by a requester: an
exemption cannot lift them. The login tests exempt their tester (messages,
rooms, invites) so that logins are the only limit they meet.

Two runs meet the limits the hard way, with testers that are not exempt; they
take minutes of waiting, so they start in the background when the module
starts and are checked by the last tests, while the other tests run with
testers of their own (the limits are per user):

* 30 steps in one DM: 20 messages beyond the burst, 5 s each (about 105 s).
* 30 conversations of one step: room creation allows 10 rooms, then one a
  minute (and each creation also spends a message). Waiting would take 20
  minutes; the tester reuses the DMs of passed conversations instead. (The
  invites in ``createRoom`` do not spend ``rc_invites``: Synapse sends them
  with ``ratelimit=False``.) The room-creation test, on a server with a small
  ``rc_room_creation``, shows the plain waiting in seconds.

Restarting and losing the homeserver use servers of their own (stopping the
module's server would break the background run). Signals use the session's
server. Every wait on the scene is a condition with a deadline.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from clirun import (
    EXAMPLES,
    AccountFactory,
    CliRun,
    cli_in_background,
    finish,
    matrix_request,
    run_cli,
    start_cli,
    wait_until,
    write_script,
)

from matrix_bot_tester import homeserver as hs
from matrix_bot_tester.botprocess import BotProcess, start_bot
from matrix_bot_tester.homeserver import Homeserver, RegisteredUser
from matrix_bot_tester.session import DEVICE_NAME

pytestmark = pytest.mark.integration

SERVER_NAME = "localhost"
THIRTY = "test_thirty_steps_pass_against_default_message_limits"
SUITE = "test_thirty_conversations_pass_against_default_room_creation_limits"
PING = "messages:\n  - send: '!ping'\n    expect: pong\n"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --------------------------------------------------------------------- helpers


def api(server: Homeserver, token: str, method: str, path: str, body: Any = None) -> Any:
    return matrix_request(server.url, token, method, path, body)


def register(server: Homeserver, prefix: str, *, admin: bool = False) -> RegisteredUser:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    user = hs.register(server.directory, name, f"pw-{uuid.uuid4().hex}", admin=admin)
    assert user is not None
    return user


def exempt(server: Homeserver, admin: RegisteredUser, user_id: str) -> None:
    """Lift every limit Synapse keys by the requester (not logins) for ``user_id``."""
    path = f"/_synapse/admin/v1/users/{quote(user_id, safe='')}/override_ratelimit"
    api(server, admin.access_token, "POST", path, {"messages_per_second": 0, "burst_count": 0})


def account_file(
    directory: Path,
    server: Homeserver,
    user: RegisteredUser,
    *,
    bot: str | None = None,
    token: bool = False,
) -> Path:
    secret = f"access_token: '{user.access_token}'" if token else f"password: '{user.password}'"
    lines = [f"user: '{user.user_id}'", secret, f"homeserver_url: '{server.url}'"]
    if bot:
        lines.append(f"user_to_test: '{bot}'")
    path = directory / f"account-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def devices(server: Homeserver, user: RegisteredUser) -> list[dict[str, Any]]:
    found = api(server, user.access_token, "GET", "/_matrix/client/v3/devices")["devices"]
    assert isinstance(found, list)
    return found


def whoami_status(server: Homeserver, token: str) -> int:
    request = urllib.request.Request(
        server.url + "/_matrix/client/v3/account/whoami",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with _NO_PROXY.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def stored_logins(state: Path) -> list[dict[str, str]]:
    return list(json.loads(state.read_text(encoding="utf-8"))["logins"].values())


def public_room(server: Homeserver, owner: RegisteredUser) -> str:
    answer = api(
        server,
        owner.access_token,
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "public_chat"},
    )
    return str(answer["room_id"])


def bodies(server: Homeserver, reader: RegisteredUser, room_id: str) -> list[tuple[str, str]]:
    """(sender, body) of the room's recent messages, oldest first."""
    path = f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/messages?dir=b&limit=50"
    chunk = api(server, reader.access_token, "GET", path)["chunk"]
    return [
        (event["sender"], event["content"].get("body", ""))
        for event in reversed(chunk)
        if event.get("type") == "m.room.message"
    ]


def say(server: Homeserver, user: RegisteredUser, room_id: str, body: str) -> None:
    path = (
        f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/send/m.room.message/{uuid.uuid4().hex}"
    )
    api(server, user.access_token, "PUT", path, {"msgtype": "m.text", "body": body})


def command_bot(server: Homeserver, user: RegisteredUser, cwd: Path) -> BotProcess:
    """The example bot, logged in with its registration token (a login would spend a limit)."""
    env = {
        "MBT_BOT_HOMESERVER": server.url,
        "MBT_BOT_USER": user.user_id,
        "MBT_BOT_ACCESS_TOKEN": user.access_token,
    }
    return start_bot([str(EXAMPLES / "command_bot.py")], env, cwd=cwd, timeout=60)


def report_of(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def no_traceback(run: Any) -> None:
    assert "Traceback" not in run.stdout + run.stderr, run.stdout + run.stderr


# -------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Limited:
    """The module's Synapse with default rate limits, an admin, and the example bot on it."""

    server: Homeserver
    admin: RegisteredUser
    bot: RegisteredUser

    def tester(self, *, exempt_from_limits: bool) -> RegisteredUser:
        user = register(self.server, "tester")
        if exempt_from_limits:
            exempt(self.server, self.admin, user.user_id)
        return user


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    directory = tmp_path_factory.mktemp("synapse-default-limits")
    server = hs.start(
        directory, port=hs.free_port(), server_name=SERVER_NAME, default_rate_limits=True
    )
    try:
        admin = register(server, "admin", admin=True)
        bot_user = register(server, "bot")
        exempt(server, admin, bot_user.user_id)
        with command_bot(server, bot_user, tmp_path_factory.mktemp("limited-bot")):
            yield Limited(server, admin, bot_user)
    finally:
        hs.stop(directory)


@dataclass(frozen=True)
class Background:
    process: subprocess.Popen[str]
    report: Path
    began: float


@dataclass(frozen=True)
class LongRun:
    """A run against default limits that takes minutes of waiting: started in the
    background as the module starts, checked by its test at the end."""

    tester: RegisteredUser
    background: Background

    def passed(self, timeout: float) -> tuple[Any, float, list[dict[str, Any]]]:
        """Wait for the run to pass: its CLI result, seconds since it began, its conversations."""
        run = finish(self.background.process, timeout=timeout)
        took = time.monotonic() - self.background.began
        assert run.code == 0, run.stdout + run.stderr
        no_traceback(run)
        return run, took, report_of(self.background.report)["conversations"]


def _long_run(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    test_name: str,
    scripts: dict[str, str],
) -> Iterator[LongRun | None]:
    if not any(item.name == test_name for item in request.session.items):
        yield None  # its test is not selected: spend no time on it
        return
    scene: Limited = request.getfixturevalue("limited")
    directory = tmp_path_factory.mktemp("long-run")
    tester = scene.tester(exempt_from_limits=False)
    for name, text in scripts.items():
        write_script(directory, name, text)
    account = account_file(directory, scene.server, tester, bot=scene.bot.user_id, token=True)
    report = directory / "report.json"
    process = start_cli("run", directory, "--account", account, "-v", "--json", report)
    try:
        yield LongRun(tester, Background(process, report, time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.fixture(scope="module", autouse=True)
def thirty_step_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LongRun | None]:
    """One script of 30 steps: 30 messages against ``rc_message``."""
    steps = "".join(f"  - send: '!echo step {i}'\n    expect: step {i}\n" for i in range(1, 31))
    script = "timeout: 20\nmessages:\n" + steps
    yield from _long_run(request, tmp_path_factory, THIRTY, {"thirty.convo.yaml": script})


@pytest.fixture(scope="module", autouse=True)
def thirty_conversation_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LongRun | None]:
    """30 conversations of one step, each needing a DM: against ``rc_room_creation``."""
    scripts = {
        f"c{i:02}.convo.yaml": f"messages:\n  - send: '!echo convo {i}'\n    expect: convo {i}\n"
        for i in range(30)
    }
    yield from _long_run(request, tmp_path_factory, SUITE, scripts)


@pytest.fixture
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homeserver]:
    """A Synapse this test may stop and restart (the usual raised limits)."""
    directory = tmp_path_factory.mktemp("synapse-own")
    server = hs.start(directory, port=hs.free_port(), server_name=SERVER_NAME)
    try:
        yield server
    finally:
        hs.stop(directory)


# ------------------------------------------------------------------ logins


def test_ten_runs_in_a_minute_reuse_one_login(limited: Limited, tmp_path: Path) -> None:
    """Synapse allows 5 logins per address, then one per 333 s: 10 runs must reuse one login."""
    tester = limited.tester(exempt_from_limits=True)  # logins are its only limit
    account = account_file(tmp_path, limited.server, tester, bot=limited.bot.user_id)
    script = write_script(tmp_path, "ping.yaml", PING)
    state = tmp_path / "state" / "logins.json"
    began = time.monotonic()
    for attempt in range(10):
        run = run_cli("run", script, "--account", account, "--state-file", state)
        assert run.code == 0, f"run {attempt + 1}:\n{run.stdout}{run.stderr}"
    elapsed = time.monotonic() - began
    assert elapsed < 60, f"10 runs took {elapsed:.1f} s"
    found = devices(limited.server, tester)
    made_by_tool = [d for d in found if d.get("display_name") == DEVICE_NAME]
    print(
        f"\n10 runs in {elapsed:.1f} s; devices afterwards: {len(found)} ({len(made_by_tool)} ours)"
    )
    assert len(made_by_tool) == 1, found
    assert {d["device_id"] for d in found} == {tester.device_id, made_by_tool[0]["device_id"]}
    assert stored_logins(state)[0]["device_id"] == made_by_tool[0]["device_id"]


def test_a_logged_out_token_is_replaced_and_no_state_logs_out(
    limited: Limited, tmp_path: Path
) -> None:
    tester = limited.tester(exempt_from_limits=True)
    account = account_file(tmp_path, limited.server, tester, bot=limited.bot.user_id)
    script = write_script(tmp_path, "ping.yaml", PING)
    state = tmp_path / "logins.json"

    first = run_cli("run", script, "--account", account, "--state-file", state)
    assert first.code == 0, first.stdout + first.stderr
    [saved] = stored_logins(state)
    api(limited.server, saved["access_token"], "POST", "/_matrix/client/v3/logout", {})
    assert whoami_status(limited.server, saved["access_token"]) == 401

    second = run_cli("run", script, "--account", account, "--state-file", state)
    assert second.code == 0, second.stdout + second.stderr
    no_traceback(second)
    [renewed] = stored_logins(state)
    assert renewed["access_token"] != saved["access_token"]
    assert whoami_status(limited.server, renewed["access_token"]) == 200

    before = {d["device_id"] for d in devices(limited.server, tester)}
    third = run_cli("run", script, "--account", account, "--no-state")
    assert third.code == 0, third.stdout + third.stderr
    assert {d["device_id"] for d in devices(limited.server, tester)} == before
    assert stored_logins(state) == [renewed]  # --no-state touched no state file


# ------------------------------------------------------------------ rate limits


def test_a_limit_beyond_the_deadline_is_exit_3_naming_it(limited: Limited, tmp_path: Path) -> None:
    """15 messages in a row, 1 s allowed each: the burst (10) goes, then a 429 asks for ~5 s."""
    tester = limited.tester(exempt_from_limits=False)
    room = api(limited.server, tester.access_token, "POST", "/_matrix/client/v3/createRoom", {})
    steps = "".join(f"  - send: message {number}\n" for number in range(1, 16))
    script = write_script(
        tmp_path,
        "limited.yaml",
        f"room_to_connect: '{room['room_id']}'\ntimeout: 1\nmessages:\n{steps}",
    )
    account = account_file(tmp_path, limited.server, tester, token=True)
    report = tmp_path / "report.json"
    run = run_cli("run", script, "--account", account, "--json", report, "-v")
    assert run.code == 3, run.stdout + run.stderr
    no_traceback(run)
    assert "M_LIMIT_EXCEEDED" in run.stdout + run.stderr
    conversation = report_of(report)["conversations"][0]
    assert conversation["outcome"] == "error"  # the infrastructure's doing, not the bot's
    failed_at = conversation["failure"]["step_index"]
    assert failed_at >= 8, failed_at  # the burst went through (the room took one of it)
    outcomes = [step["outcome"] for step in conversation["steps"]]
    assert outcomes[:failed_at] == ["passed"] * failed_at
    assert outcomes[failed_at] == "error"
    assert "M_LIMIT_EXCEEDED" in conversation["failure"]["reason"]
    assert "deadline" in conversation["failure"]["reason"]
    assert run.seconds < 30


def test_room_creation_limits_are_waited_out(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Four DMs at once where the server allows 1 room, then one per 4 s: all pass, by waiting.

    With ``--cleanup never`` no room is left, so none is reused either: the
    conversations wait out the 429s (the 30-conversation test reuses DMs).
    """
    directory = tmp_path_factory.mktemp("synapse-room-limits")
    server = hs.start(
        directory,
        port=hs.free_port(),
        server_name=SERVER_NAME,
        config_overrides={"rc_room_creation": {"per_second": 0.25, "burst_count": 1}},
    )
    try:
        bot_user = register(server, "bot")
        work = tmp_path_factory.mktemp("room-limits")
        with command_bot(server, bot_user, work):
            tester = register(server, "tester")
            scripts = [write_script(work, f"ping{i}.yaml", PING) for i in range(4)]
            account = account_file(work, server, tester, bot=bot_user.user_id, token=True)
            report = work / "report.json"
            run = run_cli(
                "run", *scripts, "--account", account, "--json", report, "-v", "--cleanup", "never"
            )
    finally:
        hs.stop(directory)
    assert run.code == 0, run.stdout + run.stderr
    conversations = report_of(report)["conversations"]
    assert [c["outcome"] for c in conversations] == ["passed"] * 4
    assert len({c["room_id"] for c in conversations}) == 4
    waited = sorted(c["steps"][0]["rate_limited"] for c in conversations)
    # Three rooms beyond the burst, 4 s apart: about 4, 8 and 12 s of waiting,
    # less the time each took to ask.
    assert waited[0] == 0, waited  # each is charged its own waiting only
    assert waited[-1] > 6, waited
    assert "rate-limited" in run.stdout


# ------------------------------------------------------------ a lost homeserver


@dataclass(frozen=True)
class Scene:
    server: Homeserver
    tester: RegisteredUser
    partner: RegisteredUser  # the other side, played by the test through the API
    room: str
    account: Path


def _room_scene(server: Homeserver, directory: Path) -> Scene:
    tester, partner = register(server, "tester"), register(server, "partner")
    room = public_room(server, partner)
    account = account_file(directory, server, tester, token=True)
    return Scene(server, tester, partner, room, account)


def _wait_until_sent(scene: Scene, body: str, timeout: float = 30) -> None:
    """The tester's message is in the room: its step now waits for the answer."""
    wait_until(
        lambda: (scene.tester.user_id, body) in bodies(scene.server, scene.partner, scene.room),
        timeout,
        f"the tester to send {body!r}",
    )


def test_a_restart_mid_conversation_resumes_without_double_counting(
    own_server: Homeserver, tmp_path: Path
) -> None:
    scene = _room_scene(own_server, tmp_path)
    script = write_script(
        tmp_path,
        "restart.yaml",
        f"room_to_connect: '{scene.room}'\nmessages:\n"
        "  - send: before the restart\n    expect: after the restart\n    timeout: 60\n"
        "  - send: anyone there?\n    expect: nobody answers this\n    timeout: 3\n",
    )
    report = tmp_path / "report.json"
    with cli_in_background(
        "run", script, "--account", scene.account, "--json", report, "-v"
    ) as process:
        _wait_until_sent(scene, "before the restart")
        hs.stop(own_server.directory)
        restarted = hs.start(
            own_server.directory, port=own_server.port, server_name=own_server.server_name
        )
        assert restarted.url == own_server.url
        say(own_server, scene.partner, scene.room, "after the restart")
        run = finish(process, timeout=60)
    # The first step passed once the server was back; the second failed by its own deadline.
    assert run.code == 1, run.stdout + run.stderr
    no_traceback(run)
    assert "no reply within 3 s" in run.stdout
    conversation = report_of(report)["conversations"][0]
    assert [s["outcome"] for s in conversation["steps"]] == ["passed", "failed"]
    assert conversation["steps"][0]["received"]["body"] == "after the restart"
    received = [e for e in conversation["transcript"] if e["direction"] == "received"]
    ids = [e["message"]["event_id"] for e in conversation["transcript"]]
    assert len(ids) == len(set(ids)), conversation["transcript"]
    assert [e["message"]["body"] for e in received] == ["after the restart"]


def _run_across_a_restart(scene: Scene, directory: Path, steps: str, down_for: float) -> CliRun:
    """A room script whose first step sends ``first``: once it is in the room, Synapse is
    stopped (it refuses connections), and started again ``down_for`` s later."""
    server = scene.server
    script = write_script(
        directory,
        "restart.yaml",
        f"room_to_connect: '{scene.room}'\nmessages:\n  - send: first\n{steps}",
    )
    with cli_in_background("run", script, "--account", scene.account) as process:
        _wait_until_sent(scene, "first")
        hs.stop(server.directory)
        # The fault itself, not a wait for something: how long the server is down.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=down_for)
        hs.start(server.directory, port=server.port, server_name=server.server_name)
        return finish(process, timeout=60)


def test_a_message_sent_while_the_homeserver_restarts_goes_once_it_is_back(
    own_server: Homeserver, tmp_path: Path
) -> None:
    """The send comes while Synapse is down (a refused connection: nothing was sent); it is
    asked again until the server is back, within the step's deadline, and arrives once."""
    scene = _room_scene(own_server, tmp_path)
    steps = "  - wait: 2\n  - send: second\n    timeout: 60\n"
    run = _run_across_a_restart(scene, tmp_path, steps, down_for=4)  # the wait ends meanwhile
    assert run.code == 0, run.stdout + run.stderr
    no_traceback(run)
    sent = [
        b
        for who, b in bodies(own_server, scene.partner, scene.room)
        if who != scene.partner.user_id
    ]
    assert sent == ["first", "second"]


def test_a_restart_over_the_end_of_a_quiet_window_is_waited_for(
    own_server: Homeserver, tmp_path: Path
) -> None:
    """Synapse is down (refusing connections) when a 2 s ``expect_no_reply`` ends, and back
    a few seconds later: the step has 30 s, so the run waits for it and passes."""
    scene = _room_scene(own_server, tmp_path)
    steps = "    expect_no_reply: 2\n    timeout: 30\n"
    run = _run_across_a_restart(scene, tmp_path, steps, down_for=3)  # the window ends meanwhile
    assert run.code == 0, run.stdout + run.stderr
    no_traceback(run)


def test_a_reply_held_back_by_a_pause_over_a_quiet_window_still_fails_it(
    homeserver: Homeserver, tmp_path: Path
) -> None:
    """The tester is stopped (SIGSTOP) for 4 s during a 2 s ``expect_no_reply`` window, and
    the other side speaks meanwhile, inside the window: that reply reaches the tester only
    after the window's end, and must still fail it."""
    scene = _room_scene(homeserver, tmp_path)
    script = write_script(
        tmp_path,
        "paused-window.yaml",
        f"room_to_connect: '{scene.room}'\nmessages:\n"
        "  - send: hello?\n    expect: first\n"
        "  - send: now be quiet\n    expect_no_reply: 2\n    timeout: 30\n",
    )
    with cli_in_background("run", script, "--account", scene.account) as process:
        _wait_until_sent(scene, "hello?")
        say(homeserver, scene.partner, scene.room, "first")
        _wait_until_sent(scene, "now be quiet")  # the window has begun
        os.kill(process.pid, signal.SIGSTOP)
        try:
            say(homeserver, scene.partner, scene.room, "not quiet")
            # The fault itself, not a wait for something: stopped past the window's end.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=4)
        finally:
            os.kill(process.pid, signal.SIGCONT)
        run = finish(process, timeout=60)
    assert run.code == 1, run.stdout + run.stderr
    assert "expect_no_reply: expected nothing for 2 s, but a reply came" in run.stdout


def test_the_example_bot_rides_out_a_homeserver_restart(
    own_server: Homeserver, tmp_path: Path
) -> None:
    """Its sync fails while the server is down (a closed connection, then refused ones):
    it retries, rather than exiting and failing every later conversation."""
    bot_user = register(own_server, "bot")
    bot = command_bot(own_server, bot_user, tmp_path)
    try:
        hs.stop(own_server.directory)
        # The fault: down for 6 s (the old bot exited within them, on a refused connection).
        with contextlib.suppress(AssertionError):
            wait_until(lambda: bot.returncode is not None, 6, "the bot to exit")
        hs.start(own_server.directory, port=own_server.port, server_name=own_server.server_name)
        tester = register(own_server, "tester")
        account = account_file(tmp_path, own_server, tester, bot=bot_user.user_id, token=True)
        run = run_cli("run", write_script(tmp_path, "ping.yaml", PING), "--account", account)
        assert run.code == 0, run.stdout + run.stderr
        assert bot.returncode is None
    finally:
        bot.stop()


def test_a_homeserver_gone_for_good_is_exit_3_naming_the_url(
    own_server: Homeserver, tmp_path: Path
) -> None:
    scene = _room_scene(own_server, tmp_path)
    deadline = 5
    script = write_script(
        tmp_path,
        "gone.yaml",
        f"room_to_connect: '{scene.room}'\nmessages:\n"
        f"  - send: hello?\n    expect: an answer\n    timeout: {deadline}\n",
    )
    with cli_in_background("run", script, "--account", scene.account) as process:
        _wait_until_sent(scene, "hello?")
        hs.stop(own_server.directory)
        stopped = time.monotonic()
        run = finish(process, timeout=60)
        after_stop = time.monotonic() - stopped
    assert run.code == 3, run.stdout + run.stderr
    no_traceback(run)
    assert own_server.url in run.stdout + run.stderr
    assert "no reply within" not in run.stdout  # not the bot's fault
    assert after_stop < deadline + 5


def _run_across_a_freeze(
    server: Homeserver, directory: Path, step: str, thaw_after: float | None
) -> tuple[CliRun, float]:
    """A one-step room script whose ``send`` is ``hello?``: Synapse is frozen (SIGSTOP:
    connections accepted, never answered) once the message is in the room, and thawed
    ``thaw_after`` s later (None: when the run ends). The run, and its time since the freeze."""
    scene = _room_scene(server, directory)
    script = write_script(
        directory,
        "frozen.yaml",
        f"room_to_connect: '{scene.room}'\nmessages:\n  - send: hello?\n{step}",
    )
    with cli_in_background("run", script, "--account", scene.account) as process:
        assert server.pid is not None
        _wait_until_sent(scene, "hello?")
        os.kill(server.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            if thaw_after is not None:
                # The fault itself, not a wait for something: how long the server is gone.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=thaw_after)
                os.kill(server.pid, signal.SIGCONT)
            run = finish(process, timeout=120)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        return run, time.monotonic() - frozen


def test_a_frozen_homeserver_is_given_up_on_long_before_a_long_deadline(
    own_server: Homeserver, tmp_path: Path
) -> None:
    """The sync notices a frozen server after about 25 s (its long poll and a margin), and
    the run ends 15 s later, not at the 300 s deadline."""
    step = "    expect: an answer\n    timeout: 300\n"
    run, after_freeze = _run_across_a_freeze(own_server, tmp_path, step, thaw_after=None)
    assert run.code == 3, run.stdout + run.stderr
    no_traceback(run)
    assert "lost the homeserver" in run.stdout + run.stderr
    print(f"\nfrozen homeserver given up on after {after_freeze:.1f} s")
    assert after_freeze < 60, after_freeze  # 25 s + 15 s, and some slack for a busy machine


def test_a_homeserver_pause_at_the_end_of_a_quiet_window_is_not_a_lost_server(
    own_server: Homeserver, tmp_path: Path
) -> None:
    """Synapse frozen for 6 s across the end of a 2 s ``expect_no_reply`` window, well inside
    the step's 30 s: the run waits for it rather than calling it lost (exit 3)."""
    step = "    expect_no_reply: 2\n    timeout: 30\n"
    run, _ = _run_across_a_freeze(own_server, tmp_path, step, thaw_after=6)
    assert run.code == 0, run.stdout + run.stderr
    no_traceback(run)


def test_a_gap_in_the_sync_during_a_step_is_fetched_back(
    homeserver: Homeserver, tmp_path: Path
) -> None:
    """61 events at once while the tester is frozen: its next sync is ``limited`` (50 of them).

    The expected reply is the first of them, so only fetching the gap back finds it.
    """
    scene = _room_scene(homeserver, tmp_path)
    script = write_script(
        tmp_path,
        "gap.yaml",
        f"room_to_connect: '{scene.room}'\nmessages:\n"
        "  - send: tell me many things\n    expect: the first thing\n    timeout: 30\n",
    )
    report = tmp_path / "report.json"
    with cli_in_background("run", script, "--account", scene.account, "--json", report) as process:
        _wait_until_sent(scene, "tell me many things")
        os.kill(process.pid, signal.SIGSTOP)
        try:
            # A state event first: it answers a long poll that may be under way.
            topic = f"/_matrix/client/v3/rooms/{quote(scene.room, safe='')}/state/m.room.topic"
            api(homeserver, scene.partner.access_token, "PUT", topic, {"topic": "wake up"})
            say(homeserver, scene.partner, scene.room, "the first thing")
            for number in range(60):
                say(homeserver, scene.partner, scene.room, f"filler {number}")
        finally:
            os.kill(process.pid, signal.SIGCONT)
        run = finish(process, timeout=60)
    assert run.code == 0, run.stdout + run.stderr
    conversation = report_of(report)["conversations"][0]
    assert conversation["steps"][0]["received"]["body"] == "the first thing"
    assert conversation["warnings"] == []  # nothing "may have been missed"
    ids = [e["message"]["event_id"] for e in conversation["transcript"]]
    assert len(ids) == len(set(ids))


# ------------------------------------------------------------------ cleanup


def test_cleanup_leaves_the_dm_and_only_kept_dms_go_into_m_direct(
    homeserver: Homeserver,
    command_bot: RegisteredUser,
    register_user: Callable[..., RegisteredUser],
    make_account: AccountFactory,
    tmp_path: Path,
) -> None:
    tester = register_user()
    account = make_account(user_to_test=command_bot.user_id, user=tester)

    def dm_of(run_report: Path) -> str:
        return str(report_of(run_report)["conversations"][0]["room_id"])

    def joined() -> list[str]:
        rooms = api(homeserver, tester.access_token, "GET", "/_matrix/client/v3/joined_rooms")
        return list(rooms["joined_rooms"])

    script = write_script(tmp_path, "ping.yaml", PING)
    left = tmp_path / "left.json"
    run = run_cli("run", script, "--account", account, "--cleanup", "always", "--json", left)
    assert run.code == 0, run.stdout + run.stderr
    kept = tmp_path / "kept.json"
    again = run_cli("run", script, "--account", account, "--cleanup", "never", "--json", kept)
    assert again.code == 0, again.stdout + again.stderr
    rooms = joined()
    assert dm_of(left) not in rooms
    assert dm_of(kept) in rooms
    # A left room would only clutter the account's DM list (a suite leaves hundreds).
    direct_path = f"/_matrix/client/v3/user/{quote(tester.user_id, safe='')}/account_data/m.direct"
    direct = api(homeserver, tester.access_token, "GET", direct_path)
    assert direct == {command_bot.user_id: [dm_of(kept)]}


# ------------------------------------------------------------------ signals


def test_v_lines_of_an_interrupted_conversation_are_shown_at_the_default_concurrency(
    homeserver: Homeserver, tmp_path: Path
) -> None:
    """With -j 4 (the default) and one script, -v is live, and Ctrl-C loses no step line."""
    scene = _room_scene(homeserver, tmp_path)
    script = write_script(
        tmp_path,
        "two.yaml",
        f"room_to_connect: '{scene.room}'\nmessages:\n"
        "  - send: first\n    expect: ok\n"
        "  - send: second\n    expect: never comes\n    timeout: 60\n",
    )
    with cli_in_background("run", script, "--account", scene.account, "-v") as process:
        _wait_until_sent(scene, "first")
        say(scene.server, scene.partner, scene.room, "ok")
        _wait_until_sent(scene, "second")
        os.kill(process.pid, signal.SIGINT)
        run = finish(process, timeout=30)
    assert run.code == 130, run.stdout + run.stderr
    no_traceback(run)
    assert "PASS step 1 (line 3) sent 'first' got 'ok'" in run.stdout, run.stdout


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_within_2_s_with_a_partial_report(
    homeserver: Homeserver, tmp_path: Path, signum: int, code: int
) -> None:
    scene = _room_scene(homeserver, tmp_path)
    script = write_script(
        tmp_path,
        "silent.yaml",
        f"room_to_connect: '{scene.room}'\nmessages:\n"
        "  - send: are you there?\n    expect: never comes\n    timeout: 60\n",
    )
    report = tmp_path / "report.json"
    junit = tmp_path / "junit.xml"
    process = start_cli(
        "run", script, "--account", scene.account, "--json", report, "--junit-xml", junit
    )
    try:
        _wait_until_sent(scene, "are you there?")
        began = time.monotonic()
        os.kill(process.pid, signum)
        run = finish(process, timeout=30)
        took = time.monotonic() - began
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert run.code == code, run.stdout + run.stderr
    assert took <= 2.0, f"stopped {took:.2f} s after the signal"
    no_traceback(run)
    document = report_of(report)
    assert document["exit_code"] == code
    [conversation] = document["conversations"]
    assert conversation["outcome"] == "interrupted"
    assert conversation["steps"][0]["outcome"] == "interrupted"
    assert 'type="interrupted"' in junit.read_text(encoding="utf-8")


# ------------------------------------------------------ the long one, last


def test_thirty_steps_pass_against_default_message_limits(
    thirty_step_run: LongRun | None,
) -> None:
    """30 messages at 0.2/s after a burst of 10: the tester waits out each 429 it gets."""
    assert thirty_step_run is not None
    run, took, [conversation] = thirty_step_run.passed(timeout=300)
    steps = conversation["steps"]
    assert [s["outcome"] for s in steps] == ["passed"] * 30
    waited = sum(s["rate_limited"] for s in steps)
    limited_steps = [s for s in steps if s["rate_limited"] > 0]
    print(f"\n30 steps against default limits: {took:.1f} s, {waited:.1f} s of it waiting out 429s")
    # Creating the DM and 30 messages: 21 actions beyond the burst of 10, 5 s apart.
    assert len(limited_steps) >= 15
    assert waited > 60
    for step in limited_steps:
        # Each waited about 5 s before its send; the bot's latency is measured after it.
        assert step["latency"] < step["rate_limited"], step
    assert run.stdout.count("rate-limited") == len(limited_steps)


def test_thirty_conversations_pass_against_default_room_creation_limits(
    thirty_conversation_run: LongRun | None, limited: Limited
) -> None:
    """30 DMs where Synapse creates 10 rooms at once, then one a minute: rather than wait
    20 minutes, conversations reuse the DMs of passed ones, never two at the same time."""
    assert thirty_conversation_run is not None
    run, took, conversations = thirty_conversation_run.passed(timeout=600)
    assert [c["outcome"] for c in conversations] == ["passed"] * 30
    rooms = {c["room_id"] for c in conversations}
    reused = [c for c in conversations if any("reused" in w for w in c["warnings"])]
    waited = sum(s["rate_limited"] for c in conversations for s in c["steps"])
    print(
        f"\n30 conversations against default limits: {took:.1f} s, {len(rooms)} rooms,"
        f" {len(reused)} conversations in a reused room, {waited:.1f} s waiting out 429s"
    )
    assert len(rooms) <= 10 + 1, rooms  # the burst (and perhaps one more a minute later)
    assert len(reused) >= 30 - len(rooms)
    # A room serves one conversation at a time: their spans never overlap.
    by_room: dict[str, list[tuple[float, float]]] = {}
    for conversation in conversations:
        began = datetime.fromisoformat(conversation["started_at"]).timestamp()
        span = (began, began + conversation["duration"])
        by_room.setdefault(conversation["room_id"], []).append(span)
    for spans in by_room.values():
        spans.sort()
        for (_, first_end), (second_start, _) in itertools.pairwise(spans):
            assert first_end <= second_start, spans
    # All passed, so the run left every room it used (the spares at its end).
    tester = thirty_conversation_run.tester
    joined = api(limited.server, tester.access_token, "GET", "/_matrix/client/v3/joined_rooms")
    warnings = [w for c in conversations for w in c["warnings"] if "reused" not in w]
    assert joined["joined_rooms"] == [], (warnings, run.stderr)
