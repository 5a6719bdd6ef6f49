"""A throwaway local Synapse: write its config, start it, wait until healthy,
register users through the shared-secret admin API, stop it.

Everything lives in one directory, so ``register``, ``status`` and ``stop``
need nothing but that directory: the config, the SQLite database, the log,
the pid file and a small JSON state file (port, server name, URL and the
registration secret). The server runs detached, in its own session, so it
outlives the CLI command that started it.

Only the standard library is used: the CLI commands that manage the server
must work before any event loop exists, and the admin API is two requests.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import hmac
import importlib.util
import json
import os
import re
import secrets
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matrix_bot_tester.errors import InfrastructureError, InputError

__all__ = [
    "Homeserver",
    "RegisteredUser",
    "check_server_name",
    "free_port",
    "password_works",
    "register",
    "start",
    "status",
    "stop",
]

CONFIG_FILE = "homeserver.yaml"
LOG_CONFIG_FILE = "log.config"
LOG_FILE = "homeserver.log"
PID_FILE = "homeserver.pid"
STATE_FILE = "state.json"
DATABASE_FILE = "homeserver.db"
_LOCK_FILE = ".lock"

# The package is not on PyPI: the extra is installed from a checkout (or a Git URL).
_INSTALL_HINT = (
    "install the [synapse] extra: pip install '.[synapse]' in a matrix-bot-tester checkout"
)
# A healthy Synapse answers /health in milliseconds; a longer wait per probe
# only delays noticing that the process died.
_PROBE_TIMEOUT = 1.0
_POLL_INTERVAL = 0.05
# After SIGKILL the kernel reaps promptly; this only bounds a pathological case.
_KILL_GRACE = 5.0
# The research recipe: high enough that no test meets a limit unless it asks
# for Synapse's defaults (default_rate_limits=True) to test 429 handling.
_UNLIMITED = {"per_second": 1000, "burst_count": 10000}
_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _UNLIMITED,
    "rc_registration": _UNLIMITED,
    "rc_login": {"address": _UNLIMITED, "account": _UNLIMITED, "failed_attempts": _UNLIMITED},
    "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
    "rc_joins_per_room": _UNLIMITED,
    "rc_invites": {"per_room": _UNLIMITED, "per_user": _UNLIMITED, "per_issuer": _UNLIMITED},
    "rc_room_creation": _UNLIMITED,
    "rc_3pid_validation": _UNLIMITED,
    "rc_media_create": _UNLIMITED,
    "rc_profile": _UNLIMITED,
    "rc_presence": {"per_user": _UNLIMITED},
}

# The spec's server name grammar: a DNS name, an IPv4 address or a bracketed
# IPv6 address, then an optional port. Synapse refuses anything else, but only
# after starting, so a typo would look like a broken server (exit 3).
_SERVER_NAME = re.compile(
    r"(?:[A-Za-z0-9.-]{1,255}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?",
)

# Loopback never goes through a proxy, whatever HTTP_PROXY says: urllib would
# otherwise send our admin requests to a corporate proxy that cannot reach us.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Homeserver:
    """A running throwaway Synapse."""

    directory: Path
    url: str
    server_name: str
    port: int
    pid: int | None


@dataclass(frozen=True, repr=False)
class RegisteredUser:
    """A user created through the admin API, with a ready access token."""

    user_id: str
    password: str
    access_token: str
    device_id: str

    def __repr__(self) -> str:
        # Test output and tracebacks print reprs; secrets must not end up in CI logs.
        return (
            f"RegisteredUser(user_id={self.user_id!r}, device_id={self.device_id!r}, "
            "password=<hidden>, access_token=<hidden>)"
        )


@dataclass(frozen=True)
class _State:
    port: int
    server_name: str
    url: str
    registration_shared_secret: str

    def server(self, directory: Path, pid: int) -> Homeserver:
        return Homeserver(
            directory=directory,
            url=self.url,
            server_name=self.server_name,
            port=self.port,
            pid=pid,
        )


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 (and on ::1 where that is usable)."""
    ipv6 = _ipv6_loopback_usable()
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        # The kernel picked a port free on IPv4 only; Synapse will bind both.
        if not ipv6 or _port_free(port, ("::1",)):
            return port
    raise InfrastructureError("found no free TCP port on loopback after 50 tries")


def status(directory: Path) -> Homeserver | None:
    """The server running in ``directory``, or None (a stale pid file counts as none)."""
    directory = directory.absolute()
    state = _read_state(directory)
    pid = _read_pid(directory)
    if state is None or pid is None or not _is_our_synapse(pid, directory):
        return None
    return state.server(directory, pid)


def start(
    directory: Path,
    *,
    port: int = 8008,
    server_name: str = "localhost",
    default_rate_limits: bool = False,
    timeout: float = 60.0,
    config_overrides: dict[str, Any] | None = None,
) -> Homeserver:
    """Start Synapse in ``directory`` and wait until it is healthy.

    If a server already runs there it is returned as it is, whatever port or
    server name was asked for: starting is idempotent. ``config_overrides``
    are top-level keys of Synapse's configuration that replace ours (a test
    that needs one small rate limit, say ``rc_room_creation``).
    """
    if not 0 < port < 65536:
        # Port 0 would bind, to a port nobody knows.
        raise InputError(f"{port} is not a TCP port", hint="choose one between 1024 and 65535")
    check_server_name(server_name)
    deadline = time.monotonic() + timeout
    directory = directory.absolute()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(directory, deadline):
        running = status(directory)
        if running is not None:
            # Whoever started it may have died before it was healthy, and
            # callers expect a usable server.
            _wait_healthy(running, deadline)
            return running

        if importlib.util.find_spec("synapse") is None:
            raise InfrastructureError(
                f"Synapse is not installed for {sys.executable}", hint=_INSTALL_HINT
            )
        state = _prepare_state(directory, port=port, server_name=server_name)
        hosts = ("127.0.0.1", "::1") if _ipv6_loopback_usable() else ("127.0.0.1",)
        if not _port_free(port, hosts):
            raise InfrastructureError(
                f"port {port} is already in use on loopback",
                hint="stop what listens there, or start the homeserver on another port",
            )
        _write_config(
            directory,
            state,
            hosts,
            default_rate_limits=default_rate_limits,
            overrides=config_overrides or {},
        )
        _write_state(directory, state)

        server = _spawn(directory, state)
        try:
            _wait_healthy(server, deadline)
        except KeyboardInterrupt:
            # Interrupted before it was ready: leave nothing half-started behind.
            stop(directory)
            raise
        return server


def check_server_name(server_name: str) -> None:
    """Refuse a server name Synapse would refuse, before anything is written or started."""
    if not _SERVER_NAME.fullmatch(server_name):
        raise InputError(
            f"{server_name!r} is not a Matrix server name",
            hint="a host name such as 'localhost' or 'test.example.org', optionally with ':port'",
        )


def stop(directory: Path, *, timeout: float = 15.0) -> bool:
    """Stop the server in ``directory``: SIGTERM, then SIGKILL after ``timeout``.

    Returns True if a server was running. Safe to call when none is.
    """
    directory = directory.absolute()
    pid = _read_pid(directory)
    if pid is None:
        return False
    if not _is_our_synapse(pid, directory):
        # A stale pid file; the number may now belong to an unrelated process.
        _remove_pid(directory, pid)
        return False
    _signal(pid, signal.SIGTERM)
    if not _wait_dead(pid, time.monotonic() + timeout):
        _signal(pid, signal.SIGKILL)
        if not _wait_dead(pid, time.monotonic() + _KILL_GRACE):
            raise InfrastructureError(
                f"Synapse (pid {pid}) did not exit even after SIGKILL",
                hint=f"check the process by hand; its log is {directory / LOG_FILE}",
            )
    _remove_pid(directory, pid)
    return True


def register(
    directory: Path,
    username: str,
    password: str,
    *,
    admin: bool = False,
    exist_ok: bool = True,
    timeout: float = 10.0,
) -> RegisteredUser | None:
    """Create a user through the shared-secret admin API.

    ``username`` is a localpart or a full user ID on this server. Returns None
    when the user already exists and ``exist_ok`` is set (its password is then
    whatever it was registered with).
    """
    directory = directory.absolute()
    server = status(directory)
    state = _read_state(directory)
    if server is None or state is None:
        raise InfrastructureError(
            f"no homeserver is running in {directory}",
            hint="start one first (matrix-bot-tester homeserver start)",
        )
    localpart = _localpart(username, state.server_name)
    deadline = time.monotonic() + timeout
    endpoint = f"{_local_url(state.port)}/_synapse/admin/v1/register"

    # The nonce is single use and held in memory, so it is fetched per user.
    _, body = _request("GET", endpoint, None, deadline)
    nonce = body.get("nonce")
    if not isinstance(nonce, str):
        raise InfrastructureError(f"Synapse at {state.url} returned no registration nonce")
    role = b"admin" if admin else b"notadmin"
    mac = hmac.new(
        state.registration_shared_secret.encode(),
        b"\x00".join([nonce.encode(), localpart.encode(), password.encode(), role]),
        hashlib.sha1,
    ).hexdigest()
    payload = {
        "nonce": nonce,
        "username": localpart,
        "password": password,
        "admin": admin,
        "mac": mac,
    }
    code, body = _request("POST", endpoint, payload, deadline)
    user_id = f"@{localpart}:{state.server_name}"
    if code == 200:
        try:
            return RegisteredUser(
                user_id=str(body["user_id"]),
                password=password,
                access_token=str(body["access_token"]),
                device_id=str(body["device_id"]),
            )
        except KeyError as missing:
            raise InfrastructureError(
                f"Synapse registered {user_id} but its answer lacks {missing}"
            ) from None
    errcode = body.get("errcode")
    if errcode == "M_USER_IN_USE":
        if exist_ok:
            return None
        raise InfrastructureError(
            f"user {user_id} already exists", hint="choose another name or allow existing users"
        )
    if errcode == "M_INVALID_USERNAME":
        raise InputError(
            f"{localpart!r} is not a valid Matrix user name: {body.get('error', '')}",
            hint="use lower-case letters, digits and . _ = - /",
        )
    detail = f"{errcode or ''} {body.get('error', '')}".strip()
    raise InfrastructureError(
        f"registering {user_id} failed: HTTP {code} {detail}".strip(),
        hint=f"see the Synapse log {directory / LOG_FILE}",
    )


def password_works(
    directory: Path, username: str, password: str, *, timeout: float = 10.0
) -> bool | None:
    """Whether ``password`` logs ``username`` in; None when the server would not say.

    ``register`` of an existing user cannot tell which password it has (the
    admin API only answers "in use"), so a login is tried. A login that
    works is logged out again, so the check leaves no device behind.
    """
    directory = directory.absolute()
    state = _read_state(directory)
    if status(directory) is None or state is None:
        raise InfrastructureError(
            f"no homeserver is running in {directory}",
            hint="start one first (matrix-bot-tester homeserver start)",
        )
    deadline = time.monotonic() + timeout
    base = f"{_local_url(state.port)}/_matrix/client/v3"
    login = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": _localpart(username, state.server_name)},
        "password": password,
        "initial_device_display_name": "matrix-bot-tester password check",
    }
    code, body = _request("POST", f"{base}/login", login, deadline)
    if code == 200 and isinstance(body.get("access_token"), str):
        with contextlib.suppress(InfrastructureError):
            _request("POST", f"{base}/logout", {}, deadline, token=body["access_token"])
        return True
    if code == 403 and body.get("errcode") == "M_FORBIDDEN":
        return False
    return None  # rate limited, or another answer: cannot tell


# --- start-up --------------------------------------------------------------


def _prepare_state(directory: Path, *, port: int, server_name: str) -> _State:
    previous = _read_state(directory)
    if (
        previous is not None
        and previous.server_name != server_name
        and (directory / DATABASE_FILE).exists()
    ):
        # Synapse refuses a database made for another server name, and would
        # say so only in its log after a slow start.
        raise InfrastructureError(
            f"{directory} holds a homeserver for {previous.server_name!r}, not {server_name!r}",
            hint="use a fresh directory, or the same server name",
        )
    # Keep the secret across restarts so that nothing written down earlier goes stale.
    secret = previous.registration_shared_secret if previous else secrets.token_urlsafe(32)
    return _State(
        port=port,
        server_name=server_name,
        url=f"http://localhost:{port}",
        registration_shared_secret=secret,
    )


def _write_config(
    directory: Path,
    state: _State,
    hosts: tuple[str, ...],
    *,
    default_rate_limits: bool,
    overrides: dict[str, Any],
) -> None:
    config: dict[str, Any] = {
        "server_name": state.server_name,
        "public_baseurl": f"{state.url}/",
        "listeners": [
            {
                "port": state.port,
                # Both loopbacks: account files say "localhost", which may resolve to ::1 first.
                "bind_addresses": list(hosts),
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                # No federation resource: this server talks to nobody else.
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(directory / DATABASE_FILE)}},
        "log_config": str(directory / LOG_CONFIG_FILE),
        "media_store_path": str(directory / "media_store"),
        "signing_key_path": str(directory / "signing.key"),
        "registration_shared_secret": state.registration_shared_secret,
        "report_stats": False,
        "enable_registration": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        # Presence adds events to every sync that no test asked for.
        "presence": {"enabled": False},
        "enable_metrics": False,
        "url_preview_enabled": False,
        # Password hashing at the default cost is the slowest part of registering users.
        "bcrypt_rounds": 4,
        # A cached /sync answer could hide an event a test just caused.
        "caches": {"sync_response_cache_duration": 0},
    }
    if not default_rate_limits:
        config.update(_RATE_LIMITS)
    config.update(overrides)
    log_config = {
        "version": 1,
        "formatters": {
            "precise": {
                "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s"
                " - %(request)s - %(message)s"
            }
        },
        # Unbuffered, unlike Synapse's default: a start-up failure must be on
        # disk when we read the log to explain it.
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "precise",
                "filename": str(directory / LOG_FILE),
                "encoding": "utf8",
            }
        },
        # At DEBUG this logger writes access tokens; keep it quiet whatever root says.
        "loggers": {"synapse.storage.SQL": {"level": "WARNING"}},
        "root": {"level": "INFO", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }
    # JSON is valid YAML, and the stdlib writes it: no YAML dependency, no quoting bugs.
    _write_private(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    _write_private(directory / LOG_CONFIG_FILE, json.dumps(log_config, indent=2) + "\n")


def _spawn(directory: Path, state: _State) -> Homeserver:
    # Synapse generates missing key files (the signing key) and then runs by
    # default, so a separate `--generate-keys` run, which costs a second full
    # Python start-up (~1.5 s), is not needed. (Its `--generate-missing-and-run`
    # flag, which says so, is rejected by the second argument parser in 1.163.)
    command = [
        sys.executable,
        "-m",
        "synapse.app.homeserver",
        "--config-path",
        str(directory / CONFIG_FILE),
    ]
    try:
        pid = _posix_spawn(command, str(directory / LOG_FILE))
    except OSError as error:
        raise InfrastructureError(
            f"could not launch Synapse: {error}", hint=_INSTALL_HINT
        ) from None
    (directory / PID_FILE).write_text(f"{pid}\n")
    return state.server(directory, pid)


def _posix_spawn(command: list[str], log: str) -> int:
    """Start ``command`` detached, with its output appended to ``log``.

    posix_spawn rather than subprocess.Popen: a Popen object dropped while its
    process runs (as `homeserver start` does on purpose) warns, and `_alive`
    reaps our own child by pid anyway. Python opens every other descriptor
    close-on-exec, so only the three set here reach Synapse.
    """
    return os.posix_spawn(
        command[0],
        command,
        dict(os.environ),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            # Appending: Synapse's own file handler appends to the same file, so
            # start-up tracebacks (written before logging is set up) and log
            # lines share one file, and a restart keeps the earlier history.
            (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        # Its own session: Ctrl-C in the shell that ran `homeserver start` must
        # not reach it, and it must outlive that command.
        setsid=True,
        # Python ignores SIGPIPE and SIGXFSZ, and an ignored signal survives
        # exec; Popen restores them too.
        setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
        setsigmask=(),
    )


def _wait_healthy(server: Homeserver, deadline: float) -> None:
    log_path = server.directory / LOG_FILE
    health = f"{_local_url(server.port)}/health"
    while True:
        if server.pid is not None and not _alive(server.pid):
            _remove_pid(server.directory, server.pid)
            reason = _last_log_line(log_path)
            # Someone took the port between our check and Synapse's bind.
            if "Failed to listen on TCP port" in reason or "Address already in use" in reason:
                raise InfrastructureError(
                    f"port {server.port} is already in use on loopback",
                    hint="stop what listens there, or start the homeserver on another port",
                )
            raise InfrastructureError(
                f"Synapse exited during start-up: {reason}", hint=f"see its log {log_path}"
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            with _HTTP.open(health, timeout=min(_PROBE_TIMEOUT, remaining)) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass  # not listening yet
        time.sleep(min(_POLL_INTERVAL, max(0.0, deadline - time.monotonic())))
    stop(server.directory)
    raise InfrastructureError(
        f"Synapse was not healthy at {health} within the time allowed, so it was stopped",
        hint=f"see its log {log_path}, or allow a longer start-up timeout",
    )


def _last_log_line(log_path: Path) -> str:
    """The line that best explains a failed start: the last one that says something."""
    try:
        with open(log_path, "rb") as log:
            # A failed start writes its reason at the very end; the rest is history.
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 16384))
            tail = log.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return "(no log was written)"
    for line in reversed(tail):
        text = line.strip()
        # Synapse frames its start-up errors in a box of asterisks with a
        # trailer, and a traceback ends in frames and carets; none of that
        # says what went wrong.
        if (
            not any(character.isalnum() for character in text)
            or text.startswith(("File ", "Traceback"))
            or text == "There may be more information in the logs."
        ):
            continue
        return text
    return "(the log is empty)"


# --- processes ---------------------------------------------------------------


def _is_our_synapse(pid: int, directory: Path) -> bool:
    """Whether ``pid`` is alive and is the Synapse configured in ``directory``."""
    if not _alive(pid):
        return False
    if not Path("/proc/self").exists():
        return True  # no /proc (macOS): the pid file is all we have to go on
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False  # exited since the check above
    except OSError:
        return True  # exists but unreadable, e.g. another user's process
    # A recycled pid would belong to some unrelated program.
    return str(directory / CONFIG_FILE).encode() in cmdline


def _alive(pid: int) -> bool:
    # If this process started the server, reap it: a dead child stays a zombie
    # until its parent waits for it, and a zombie still answers signal 0.
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: an earlier command started it
    else:
        return reaped == 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # An orphan that died is a zombie until init reaps it, and not every
    # container's init does.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        # The server leads its own process group, so anything it spawned goes too.
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


def _wait_dead(pid: int, deadline: float) -> bool:
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL)
    return True


# --- files -------------------------------------------------------------------


@contextlib.contextmanager
def _locked(directory: Path, deadline: float) -> Iterator[None]:
    """Serialise starts in one directory: two Synapses on one SQLite file corrupt it."""
    with open(directory / _LOCK_FILE, "a") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise InfrastructureError(
                        f"another start in {directory} did not finish in time",
                        hint="wait for it, or stop the homeserver there",
                    ) from None
                time.sleep(_POLL_INTERVAL)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_state(directory: Path) -> _State | None:
    try:
        data = json.loads((directory / STATE_FILE).read_text())
        return _State(
            port=int(data["port"]),
            server_name=str(data["server_name"]),
            url=str(data["url"]),
            registration_shared_secret=str(data["registration_shared_secret"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InfrastructureError(
            f"{directory / STATE_FILE} is unreadable ({type(error).__name__})",
            hint="stop the homeserver and use a fresh directory",
        ) from None


def _write_state(directory: Path, state: _State) -> None:
    data = {
        "port": state.port,
        "server_name": state.server_name,
        "url": state.url,
        "registration_shared_secret": state.registration_shared_secret,
    }
    _write_private(directory / STATE_FILE, json.dumps(data, indent=2) + "\n")


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read: it may hold the registration secret."""
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    # os.open's mode does not apply to a file that already existed.
    os.chmod(temporary, 0o600)
    # Atomic, so a concurrent `status` never reads half a file.
    os.replace(temporary, path)


def _read_pid(directory: Path) -> int | None:
    try:
        return int((directory / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _remove_pid(directory: Path, pid: int | None) -> None:
    # Only our own pid: a newer start may already have written its own.
    if pid is not None and _read_pid(directory) == pid:
        (directory / PID_FILE).unlink(missing_ok=True)


# --- network -----------------------------------------------------------------


def _local_url(port: int) -> str:
    # 127.0.0.1 rather than localhost: always bound, and no resolver in the way.
    return f"http://127.0.0.1:{port}"


def _ipv6_loopback_usable() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def _port_free(port: int, hosts: tuple[str, ...]) -> bool:
    for host in hosts:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            # As Twisted does: a port in TIME_WAIT is free to Synapse, so it is to us.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    return False
                # Typically EACCES below 1024 without privileges; Synapse
                # could not listen there either.
                raise InfrastructureError(
                    f"cannot listen on port {port} of {host}: {error.strerror}",
                    hint="choose a port between 1024 and 65535",
                ) from None
    return True


def _request(
    method: str,
    url: str,
    payload: dict[str, Any] | None,
    deadline: float,
    *,
    token: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """One JSON request; an HTTP error status is returned, not raised."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise InfrastructureError(f"no time left for {method} {url}")
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with _HTTP.open(request, timeout=remaining) as response:
            return response.status, _json_object(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _json_object(error.read())
    except (OSError, urllib.error.URLError) as error:
        raise InfrastructureError(
            f"homeserver at {url} is unreachable: {getattr(error, 'reason', error)}",
            hint="check that it is running (matrix-bot-tester homeserver status)",
        ) from None


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _localpart(username: str, server_name: str) -> str:
    name = username.removeprefix("@")
    localpart, colon, server = name.partition(":")
    if colon and server != server_name:
        raise InputError(
            f"{username!r} belongs to {server!r}, not to this homeserver ({server_name!r})",
            hint=f"use a bare name or a user ID ending in ':{server_name}'",
        )
    if not localpart:
        raise InputError(f"{username!r} has no user name", hint="for example 'alice'")
    return localpart
