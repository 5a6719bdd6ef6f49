"""The main job on the embedded default: everything a newcomer needs, in one command.

Starts a throwaway Synapse in a temporary folder, registers a tester and a
bot, starts the example bot from ``examples/``, runs the example
conversations against it (one of them is meant to fail, to show what a
failure looks like), and stops everything, whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from matrix_bot_tester import homeserver
from matrix_bot_tester.account import Account
from matrix_bot_tester.botprocess import start_bot
from matrix_bot_tester.errors import ExitCode, InfrastructureError
from matrix_bot_tester.result import Outcome
from matrix_bot_tester.runner import RunOptions, execute
from matrix_bot_tester.script import load_script

# Scripts whose name starts with this are meant to fail: the demo shows them failing.
MEANT_TO_FAIL_PREFIX = "wrong-"


def examples_dir() -> Path:
    """``examples/`` inside an installed wheel, else beside the source tree."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "examples", here.parents[1] / "examples"):
        if (candidate / "command_bot.py").is_file():
            return candidate
    raise InfrastructureError(
        "the example bot is missing (examples/command_bot.py)",
        hint="run the demo from a checkout of matrix-bot-tester, or reinstall the package",
    )


@contextlib.contextmanager
def _step(console: Console, text: str) -> Iterator[None]:
    began = time.monotonic()
    console.print(f"• {text}…", highlight=False)
    yield
    console.print(f"  done in {time.monotonic() - began:.1f} s", style="dim", highlight=False)


def run_demo(console: Console, *, verbose: bool = False) -> int:
    examples = examples_dir()
    script_paths = sorted((examples / "conversations").glob("*.yaml"))
    scripts = [load_script(path) for path in script_paths]
    with tempfile.TemporaryDirectory(prefix="matrix-bot-tester-demo-") as temp:
        server_dir = Path(temp) / "synapse"
        port = homeserver.free_port()
        try:
            with _step(console, f"Starting a throwaway Synapse on port {port} in {server_dir}"):
                server = homeserver.start(server_dir, port=port, server_name="localhost")
            bot_password = secrets.token_urlsafe(16)
            tester_password = secrets.token_urlsafe(16)
            with _step(console, "Registering @demo-bot and @demo-tester"):
                homeserver.register(server_dir, "demo-bot", bot_password)
                homeserver.register(server_dir, "demo-tester", tester_password)
            bot_id = f"@demo-bot:{server.server_name}"
            with _step(console, f"Starting the example bot ({examples / 'command_bot.py'})"):
                bot = start_bot(
                    [str(examples / "command_bot.py")],
                    {
                        "MBT_BOT_HOMESERVER": server.url,
                        "MBT_BOT_USER": bot_id,
                        "MBT_BOT_PASSWORD": bot_password,
                    },
                    cwd=Path(temp),
                )
            try:
                console.print(
                    f"• Running {len(scripts)} example conversations against {bot_id}"
                    f" (those named {MEANT_TO_FAIL_PREFIX}* are meant to fail)\n",
                    highlight=False,
                )
                options = RunOptions(
                    account=_tester_account(server.url, server.server_name, tester_password),
                    scripts=scripts,
                    partner=bot_id,
                    verbose=verbose,
                )
                code = execute(options, console, Console(stderr=True, highlight=False))
            finally:
                bot.stop()
        finally:
            homeserver.stop(server_dir)
    return _verdict(console, options, code)


def _tester_account(url: str, server_name: str, password: str) -> Account:
    from pydantic import SecretStr

    return Account(
        path="<demo>",
        user=f"@demo-tester:{server_name}",
        homeserver_url=url,
        password=SecretStr(password),
        access_token=None,
        device_id=None,
        user_to_test=None,
    )


def _verdict(console: Console, options: RunOptions, code: int) -> int:
    """The demo succeeds when every script did what it was meant to do."""
    if code in (ExitCode.INTERRUPTED, 143, ExitCode.INFRASTRUCTURE):
        return code
    surprises = [
        result.name
        for result in options.results
        if (result.outcome is Outcome.FAILED) != result.name.startswith(MEANT_TO_FAIL_PREFIX)
    ]
    console.print()
    if surprises:
        console.print(f"Demo: unexpected outcome for {', '.join(surprises)}", style="red")
        return int(ExitCode.FAILED)
    console.print(
        "Demo finished as expected: the passing scripts passed and the failing one failed"
        " with a transcript and a diff.\nTest your own bot with:\n"
        f"  {_command()} run my-conversation.yaml --account my-account.yaml\n"
        "(README.md, 'Test your own bot', shows both files.)",
        highlight=False,
    )
    return int(ExitCode.PASSED)


def _command() -> str:
    """How to call this tool again: its name if it is on PATH, else the path to it."""
    here = Path(sys.executable).parent / "matrix-bot-tester"
    found = shutil.which("matrix-bot-tester")
    if found and Path(found).resolve() == here.resolve():
        return "matrix-bot-tester"
    return os.path.relpath(here) if here.exists() else "matrix-bot-tester"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_demo(Console()))
