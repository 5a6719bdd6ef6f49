"""The only code that speaks Matrix: a ``Session`` over plain requests and matrix-nio.

It logs in, runs a sync loop *beside* the conversation (a background task
that feeds per-room queues), and answers the conversation's questions
("the next reply in this room, or None by the deadline").

The rules that make replies trustworthy live here:

* A watermark: rooms joined before the run only count events from syncs after
  the first one, so history never satisfies an ``expect``.
* A room this run created counts everything in it. A room entered otherwise
  (invited to, joined) counts everything after this run's own invite or join
  in it (the first after our last leave: an earlier run's join is history),
  so a client that speaks before the mock bot has joined is still heard; a
  gappy (``limited``) first timeline is fetched back until that event.
* Our own events are never replies; event IDs are de-duplicated. The sync
  filter leaves them out (each send would otherwise wake the sync loop for
  its own echo) until something needs them: joining a room by its address,
  where our join event marks where history ends, or the recorder.
* Every call has a deadline; 429s are waited out only within it, and a sync
  loop that lost the homeserver turns a timeout into an infrastructure error.

The requests a conversation makes over and over (sync, send, createRoom,
leave) are plain requests through ``transport``: a suite makes thousands, and
through nio and aiohttp each cost three times the CPU. nio (imported only
when first needed) does the rest: password login, joins, redactions, typing,
history pages, media.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import re
import secrets
import ssl
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from json.scanner import make_scanner
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from matrix_bot_tester.account import Account
from matrix_bot_tester.conversation import RATE_LIMITED, ConversationFailed, Reply
from matrix_bot_tester.errors import InfrastructureError, InputError
from matrix_bot_tester.matching import Event
from matrix_bot_tester.state import LoginStore, StoredLogin
from matrix_bot_tester.transport import ServerDisconnected, Transport, TransportError

if TYPE_CHECKING:
    from nio import AsyncClient

log = logging.getLogger(__name__)

T = TypeVar("T")

# The server holds a sync this long when nothing happens; short enough that
# a lost connection is noticed quickly, long enough not to spin.
SYNC_LONG_POLL_MS = 10_000
# A single HTTP request may take this long before we call the server unresponsive.
REQUEST_TIMEOUT = 30.0
# How far back we page to find our own membership event in a gappy first timeline.
BACKFILL_PAGES = 5
BACKFILL_PAGE_SIZE = 100
# An invite already pending at start is part of this run when it is recent (a
# client that invited and spoke before we started must be heard). An older one
# is a stale room of an earlier run: there only messages sent after this run
# began count (allowing for clock skew).
STALE_INVITE_MS = 60_000
CLOCK_SKEW_MS = 2_000
DEVICE_NAME = "matrix-bot-tester"
# Leaving is a message to the server's rate limiter, queued behind the sends of
# the conversations still running (at default limits, 5 s each).
LEAVE_TIMEOUT = 30.0
EARLY_EVENTS_KEPT = 50
# Recording kept DMs in m.direct as the session closes: two small requests; a
# homeserver that does not answer them at once must not hold up the exit.
MARK_DIRECT_AT_CLOSE_TIMEOUT = 1.0
# A homeserver unreachable this long ends any wait (exit 3), deadline or not.
SERVER_GONE_AFTER = 15.0
# Pauses between attempts to reach a homeserver that refuses connections mid-run
# (restarting, say): growing from the first to the second.
RECONNECT_PAUSE = 0.25
RECONNECT_PAUSE_MAX = 2.0
# How long a homeserver has to answer "are you there?" when a step times out.
PROBE_TIMEOUT = 3.0
# A content URI as the spec allows it: mxc://server-name/media-id.
_MXC = re.compile(r"mxc://[A-Za-z0-9.:\-\[\]]+/[A-Za-z0-9_\-]+")

_NOTHING: dict[str, Any] = {"not_types": ["*"]}

# A DM as Element creates one (and as nio's room_create did for this tester).
DM_SETTINGS: dict[str, Any] = {
    "visibility": "private",
    "creation_content": {"m.federate": True},
    "is_direct": True,
    "preset": "trusted_private_chat",
}

# The first sync only sets the watermark. No rooms at all: Synapse works
# through every joined room for a sync without ``since``, even one that asks
# for no timeline and no state (about 5 ms a room: 5 s for an account with a
# thousand old rooms); with ``rooms: []`` it answers at once.
INITIAL_FILTER: dict[str, Any] = {
    "presence": _NOTHING,
    "account_data": _NOTHING,
    "room": {"rooms": [], "account_data": _NOTHING},
}
# Invites pending from before the run: only the bot role needs them, so they
# are listed when it first asks (this one does cost a moment per room).
INVITES_FILTER: dict[str, Any] = {
    "presence": _NOTHING,
    "account_data": _NOTHING,
    "room": {
        "timeline": {"limit": 0},
        "state": {"not_types": ["*"]},
        "ephemeral": _NOTHING,
        "account_data": _NOTHING,
    },
}

STREAM_FILTER: dict[str, Any] = {
    "presence": _NOTHING,
    "account_data": _NOTHING,
    "room": {
        "timeline": {"limit": 50},
        "state": {"lazy_load_members": True},
        "ephemeral": _NOTHING,
        "account_data": _NOTHING,
    },
}


def _without_sender(sync_filter: dict[str, Any], user_id: str) -> dict[str, Any]:
    """``sync_filter`` with ``user_id``'s timeline events left out."""
    room = sync_filter["room"]
    timeline = {**room["timeline"], "not_senders": [user_id]}
    return {**sync_filter, "room": {**room, "timeline": timeline}}


def _as_query_value(sync_filter: dict[str, Any]) -> str:
    return quote(json.dumps(sync_filter, separators=(",", ":")), safe="")


# Encoded once: the sync loop sends its filter with every request.
INITIAL_FILTER_QUERY = _as_query_value(INITIAL_FILTER)
STREAM_FILTER_QUERY = _as_query_value(STREAM_FILTER)  # with our own events


class TokenRejected(InfrastructureError):
    """The homeserver no longer accepts our access token (logged out, expired)."""


class RateLimited(InfrastructureError):
    """The homeserver said 429 and the wait it asked for does not fit (or is not wanted)."""

    def __init__(self, what: str, retry_after: float) -> None:
        super().__init__(
            f"{what}: rate-limited by the homeserver (M_LIMIT_EXCEEDED, retry"
            f" after {retry_after:.1f} s) beyond the step's deadline",
            hint="raise the server's rate limits for the test account",
        )
        self.retry_after = retry_after


@dataclass
class _RoomFeed:
    """What we know about one room during the run."""

    counting: bool  # do new timeline events count as conversation?
    pending_at_start: bool = False
    stale: bool = False  # a pending invite from long before the run: old messages are history
    replies: deque[Reply] = field(default_factory=deque)
    seen: set[str] = field(default_factory=set)
    members: dict[str, str] = field(default_factory=dict)  # user -> membership, seen in the run
    keep_own: bool = False  # our own events count too (the recorder: a person using our account)
    # Others' messages that came before we knew the room is ours (a DM we created,
    # whose first sync raced createRoom's answer): kept until then, in case it is.
    early: deque[Reply] = field(default_factory=lambda: deque(maxlen=EARLY_EVENTS_KEPT))


def _matrix_error(status: int, data: Any) -> str:
    """'M_CODE message' of an error answer, or its HTTP status."""
    if isinstance(data, dict) and data.get("errcode"):
        return f"{data['errcode']} {data.get('error') or ''}".strip()
    return f"HTTP {status}"


def _retry_after(response: object) -> float | None:
    """Seconds a 429 asks us to wait, or None for any other response.

    ``response`` is nio's, or a plain request's ``(status, data)``.
    """
    if _nio_error_code(response) == "M_LIMIT_EXCEEDED":
        return (getattr(response, "retry_after_ms", None) or 1000) / 1000
    if isinstance(response, tuple) and len(response) == 2 and response[0] == 429:
        data = response[1] if isinstance(response[1], dict) else {}
        wait_ms = data.get("retry_after_ms")
        return (wait_ms if isinstance(wait_ms, int | float) and wait_ms > 0 else 1000) / 1000
    return None


def _nio_error_code(response: object) -> str | None:
    """The errcode of one of nio's ErrorResponses (None for anything else), without
    importing nio: a run that never needed it has not loaded it."""
    nio = sys.modules.get("nio")
    if nio is None or not isinstance(response, nio.ErrorResponse):
        return None
    code = response.status_code
    return code if isinstance(code, str) else None


def _unreachable_errors() -> tuple[type[BaseException], ...]:
    """What a request raises when the server cannot be reached: OSError from the
    transport (TransportError is one), and aiohttp's errors once nio is in use."""
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is None:
        return (OSError,)
    return (OSError, aiohttp.ClientError)


def _speaks_plain_http(exc: BaseException) -> bool:
    """Errors an https:// URL gives for a server that speaks plain http://."""
    names = {"ClientSSLError", "ServerDisconnectedError"}  # aiohttp's, through nio
    return isinstance(exc, ssl.SSLError | ServerDisconnected) or any(
        cls.__name__ in names for cls in type(exc).__mro__
    )


# The C scanner behind json.loads (typeshed asks for a scanner where a decoder's
# settings are what it reads).
_scan_json = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def _parse_json(body: bytes) -> Any:
    """An answer's JSON, as ``json.loads`` reads it (ValueError if it is not JSON).

    Decoded first: JSON in Matrix is UTF-8, and json.loads would guess at bytes.
    A server's answer is one JSON value with nothing around it, which the
    scanner reads without json.loads's layers of Python, once per answer of
    the thousands a suite gets; anything else takes json.loads's full rules.
    """
    text = body.decode("utf-8")
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        return json.loads(text)  # leading space, or not JSON: json.loads says which
    return value if end == len(text) else json.loads(text)


def _json_or_none(body: bytes) -> Any:
    try:
        return _parse_json(body) if body else None
    except ValueError:  # UnicodeDecodeError is one
        return None


@functools.lru_cache(maxsize=1024)
def _segment(value: str) -> str:
    """``value`` escaped as one segment of a path. Cached: a suite sends to the same
    few rooms again and again, and room IDs always need escaping (``!``, ``:``)."""
    return quote(value, safe="")


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _knows_one_of(seen: set[str], chunk: list[Event]) -> bool:
    return any(event.get("event_id") in seen for event in chunk)


def _membership(event: Event) -> str | None:
    if event.get("type") != "m.room.member":
        return None
    content = event.get("content") or {}
    value = content.get("membership")
    return value if isinstance(value, str) else None


class NioSession:
    """A logged-in account with a sync loop running beside the conversation."""

    def __init__(self, account: Account, *, logins: LoginStore | None = None) -> None:
        self.account = account
        self._logins = logins
        self._http = Transport(account.homeserver_url)
        self._access_token = ""
        self._device_id = account.device_id or ""
        self._nio_client: AsyncClient | None = None
        self._logged_in_with_password = False
        self._rooms: dict[str, _RoomFeed] = {}
        self._invites: list[str] = []  # pending invites for us, oldest first
        self._joining: set[str] = set()
        self._joined_via_invite: list[str] = []
        self._first_spoken: list[str] = []  # rooms in the order someone else first spoke
        self._used_rooms: set[str] = set()
        self._entered: set[str] = set()  # rooms this run created or joined
        self._dm_partners: dict[str, str] = {}  # DMs this run created -> the partner
        self._spare_dms: dict[str, list[str]] = {}  # partner -> finished DMs, oldest first
        self._joined_at_start: set[str] = set()
        self._known_users: set[str] = set()  # partners whose profile was found
        self._alias_rooms: dict[str, str] = {}  # aliases looked up in this run -> room IDs
        self._shown_as_dm: set[str] = set()  # rooms already recorded in m.direct
        self._accept_invites = False
        self._invites_listed = False
        self._invites_listing = asyncio.Lock()
        # m.direct is read, changed and written back: conversations opening DMs at
        # once would otherwise lose each other's rooms.
        self._direct_lock = asyncio.Lock()
        self._limit_queue = asyncio.Lock()  # requests held back by a 429, in arrival order
        # Who waits for what: a room's news, or (None) anything at all.
        self._waiters: list[tuple[str | None, asyncio.Future[None]]] = []
        # Transaction IDs: unique for this device (a random start, then counted), so
        # that a retried send is one event; cheaper than a UUID for each message.
        self._txn_prefix = secrets.token_hex(8)
        self._txn_numbers = itertools.count()
        self._sync_task: asyncio.Task[None] | None = None
        self._join_tasks: set[asyncio.Task[None]] = set()
        self._fatal: InfrastructureError | None = None
        self._sync_failing_since: float | None = None
        self._sync_failure: str = ""
        self._run_started_ms = 0
        self._since = ""  # the sync loop's position (not nio's: its sync is not used)
        # The sync loop's filter: without our own events until something needs them.
        self._stream_filter_query = _as_query_value(_without_sender(STREAM_FILTER, account.user))
        self._sync_polling = False  # the sync loop is waiting for an answer
        self._sync_asking_again = False  # ... and is being stopped to ask again (_ask_again)
        self._sync_quick = False  # the next sync is not a long poll (see caught_up)
        # When the sync request last answered was sent (monotonic): what the server had
        # by then has been taken in.
        self._synced_as_of = 0.0
        self.warnings: list[str] = []
        self.rate_limited_seconds = 0.0

    @property
    def user_id(self) -> str:
        return self.account.user

    @property
    def url(self) -> str:
        return self.account.homeserver_url

    @property
    def _client(self) -> AsyncClient:
        """nio's client, made (and nio imported) the first time a call needs it."""
        if self._nio_client is None:
            from nio import AsyncClient, AsyncClientConfig

            self._nio_client = AsyncClient(
                self.url,
                self.user_id,
                device_id=self._device_id,
                config=AsyncClientConfig(
                    # We wait out 429s and connection errors ourselves, within deadlines:
                    # nio's defaults retry forever.
                    max_limit_exceeded=0,
                    max_timeouts=0,
                    request_timeout=REQUEST_TIMEOUT,
                    encryption_enabled=False,
                    store_sync_tokens=False,
                ),
            )
            if self._access_token:
                self._nio_client.restore_login(self.user_id, self._device_id, self._access_token)
        return self._nio_client

    def _use_login(self, access_token: str, device_id: str) -> None:
        self._access_token, self._device_id = access_token, device_id
        if self._nio_client is not None:
            self._nio_client.restore_login(self.user_id, device_id, access_token)

    # ----------------------------------------------------------------- calls

    async def _call(
        self,
        what: str,
        request: Callable[[], Awaitable[T]],
        deadline: float,
        *,
        wait_out_limits: bool = True,
    ) -> T:
        """One request within a deadline; 429s waited out, errors made one line.

        With ``wait_out_limits=False`` a 429 raises RateLimited at once, for a
        caller that has something better to do than wait.
        """
        response = await self._request_once(what, request, deadline)
        return await self._waited_out(what, request, deadline, response, wait_out_limits)

    async def _waited_out(
        self,
        what: str,
        request: Callable[[], Awaitable[T]],
        deadline: float,
        response: T,
        wait_out_limits: bool,
    ) -> T:
        """``response``, or if it is a 429 the answer to ``request`` asked again when
        the server says, within the deadline."""
        wait = _retry_after(response)
        if wait is None:
            return response
        if not wait_out_limits:
            raise RateLimited(what, wait)
        # The server gives its next slot to whoever asks first once it is due, so
        # requests that were held back queue here and retry one at a time, first
        # come first served: otherwise one conversation of several could lose
        # every race until its deadline.
        began = time.monotonic()
        try:
            async with asyncio.timeout(max(0.0, deadline - began)):
                await self._limit_queue.acquire()
        except TimeoutError:
            self._charge_rate_limit(time.monotonic() - began)
            raise RateLimited(what, wait) from None
        try:
            queued = time.monotonic() - began
            self._charge_rate_limit(queued)
            wait = max(0.0, wait - queued)  # part of it may have passed in the queue
            while wait is not None:
                if time.monotonic() + wait > deadline:
                    raise RateLimited(what, wait)
                self._charge_rate_limit(wait)
                await asyncio.sleep(wait)  # the server told us how long; not a sync guess
                response = await self._request_once(what, request, deadline)
                wait = _retry_after(response)
            return response
        finally:
            self._limit_queue.release()

    async def _request_once(
        self, what: str, request: Callable[[], Awaitable[T]], deadline: float
    ) -> T:
        """Send ``request`` once within the deadline; trouble reaching the server made one line."""
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            async with asyncio.timeout(remaining):
                response = await request()
        except TimeoutError:
            raise self._no_answer(what) from None
        except _unreachable_errors() as exc:
            raise self._unreachable(what, exc) from None
        if _nio_error_code(response) == "M_UNKNOWN_TOKEN":
            raise self._token_rejected(what)
        return response

    def _no_answer(self, what: str) -> InfrastructureError:
        return InfrastructureError(f"{what}: the homeserver at {self.url} did not answer in time")

    def _unreachable(self, what: str, exc: BaseException) -> InfrastructureError:
        hint = "is the homeserver running and homeserver_url right?"
        if self.url.startswith("https://") and _speaks_plain_http(exc):
            hint = "does the server speak plain http:// rather than https://?"
        detail = str(exc) if isinstance(exc, TransportError) else type(exc).__name__
        return InfrastructureError(
            f"{what}: cannot reach the homeserver at {self.url} ({detail})", hint=hint
        )

    def _token_rejected(self, what: str) -> TokenRejected:
        return TokenRejected(
            f"{what}: the homeserver rejected the access token of {self.user_id}",
            hint="log in again or fix 'access_token' in the account file",
        )

    def _raise_if_token_rejected(self, what: str, status: int, data: Any) -> None:
        """A plain request refused for our token fails the run, as nio's calls do."""
        if "M_UNKNOWN_TOKEN" in _matrix_error(status, data):
            raise self._token_rejected(what)

    def _refusal(self, what: str, status: int, data: Any) -> InfrastructureError:
        """What a plain request's error answer means: a rejected token, or ``what`` failed."""
        error = _matrix_error(status, data)
        if "M_UNKNOWN_TOKEN" in error:
            return self._token_rejected(what)
        return InfrastructureError(f"{what} failed: {error}")

    def _charge_rate_limit(self, seconds: float) -> None:
        """Count waiting imposed by the server's limits, for the run and its conversation."""
        self.rate_limited_seconds += seconds
        meter = RATE_LIMITED.get()  # the conversation this request is for
        if meter is not None:
            meter[0] += seconds

    @staticmethod
    def _error_text(response: Any) -> str:
        code = getattr(response, "status_code", None) or "error"
        message = getattr(response, "message", None) or ""
        return f"{code} {message}".strip()

    async def _raw(
        self,
        method: str,
        path: str,
        body: Any,
        deadline: float,
        *,
        what: str | None = None,
        wait_out_limits: bool = True,
    ) -> tuple[int, Any]:
        """A plain request, its answer as ``(status, JSON or None)``; 429s waited out
        within the deadline. ``body`` is JSON to send, or already encoded. ``what``
        names the request in errors."""
        if body is None or isinstance(body, bytes):
            payload = body
        else:
            payload = json.dumps(body).encode("utf-8")
        what = what or f"{method} {path.split('?')[0]}"
        response = await self._plain(method, path, payload, deadline, what)
        if response[0] != 429:
            return response  # the usual case, in as few steps as it can take
        return await self._waited_out(
            what,
            partial(self._plain, method, path, payload, deadline, what),
            deadline,
            response,
            wait_out_limits,
        )

    async def _plain(
        self, method: str, path: str, payload: bytes | None, deadline: float, what: str
    ) -> tuple[int, Any]:
        """One plain request within the deadline: ``(status, JSON or None)``; trouble
        reaching the server made one line. The transport keeps the deadline: no
        ``asyncio.timeout`` and no extra coroutine per request, of which a suite
        makes thousands."""
        pause = RECONNECT_PAUSE
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                status, answer = await self._http.request(
                    method, path, payload, token=self._access_token or None, timeout=remaining
                )
            except TimeoutError:
                raise self._no_answer(what) from None
            except ConnectionRefusedError as exc:
                if self._sync_task is None or time.monotonic() + pause >= deadline:
                    raise self._unreachable(what, exc) from None
                # Nothing was sent. A homeserver that answered before is perhaps
                # restarting: ask again, as the sync loop does, until the deadline or
                # until the loop has missed the server too long.
                self._give_up_if_server_gone()
                await asyncio.sleep(pause)
                pause = min(pause * 2, RECONNECT_PAUSE_MAX)
                continue
            except _unreachable_errors() as exc:
                raise self._unreachable(what, exc) from None
            return status, _json_or_none(answer)

    # ------------------------------------------------------------ life cycle

    async def connect(self, *, timeout: float = REQUEST_TIMEOUT) -> None:
        """Log in (or check the token), set the watermark, start the sync loop."""
        deadline = time.monotonic() + timeout
        self._run_started_ms = int(time.time() * 1000)
        account = self.account
        await self._check_is_homeserver(deadline)
        if account.access_token is not None:
            self._use_login(account.access_token.get_secret_value(), account.device_id or "")
            who, error = await self._whoami("checking the access token", deadline)
            if who is None:
                raise InfrastructureError(
                    f"the homeserver at {self.url} refused the access token of {account.user}:"
                    f" {error}",
                    hint=f"fix 'access_token' in {account.path}",
                )
            if who != account.user:
                raise InfrastructureError(
                    f"the access token in {account.path} belongs to {who}, not {account.user}",
                    hint="use the token of the account named in 'user'",
                )
        else:
            assert account.password is not None
            await self._log_in(account.password.get_secret_value(), deadline)

        status, joined = await self._raw(
            "GET", "/_matrix/client/v3/joined_rooms", None, deadline, what="listing joined rooms"
        )
        rooms = joined.get("joined_rooms") if status == 200 and isinstance(joined, dict) else None
        for room_id in rooms if isinstance(rooms, list) else []:
            if isinstance(room_id, str):
                self._rooms[room_id] = _RoomFeed(counting=True)
                self._joined_at_start.add(room_id)
        status, first = await self._raw(
            "GET", self._sync_path(0, INITIAL_FILTER_QUERY), None, deadline
        )
        if status != 200 or not isinstance(first, dict) or "next_batch" not in first:
            raise self._refusal(f"first sync at {self.url}", status, first)
        self._since = str(first["next_batch"])
        self._sync_task = asyncio.create_task(self._sync_forever(), name="matrix sync")

    async def _whoami(self, what: str, deadline: float) -> tuple[str | None, str]:
        """Whose the access token in use is: (user ID, "") or (None, the server's error).

        A token the server does not know raises TokenRejected.
        """
        status, data = await self._raw(
            "GET", "/_matrix/client/v3/account/whoami", None, deadline, what=what
        )
        user_id = data.get("user_id") if status == 200 and isinstance(data, dict) else None
        if isinstance(user_id, str):
            return user_id, ""
        self._raise_if_token_rejected(what, status, data)
        return None, _matrix_error(status, data)

    async def _check_is_homeserver(self, deadline: float) -> None:
        """Say "not a Matrix homeserver" rather than "login refused" for a wrong URL."""
        try:
            status, body = await self._raw(
                "GET", "/_matrix/client/versions", None, deadline, what="contacting the homeserver"
            )
        except InfrastructureError as exc:
            if self.url.startswith("https://") and exc.hint is None:
                # A plain-http server never answers a TLS hello: it just waits.
                exc.hint = "does the server speak plain http:// rather than https://?"
            raise
        if status != 200 or not isinstance(body, dict) or "versions" not in body:
            raise InfrastructureError(
                f"{self.url} does not answer like a Matrix homeserver"
                f" (GET /_matrix/client/versions: HTTP {status})",
                hint="it redirects elsewhere: put the address it redirects to (https://?)"
                " in homeserver_url"
                if 300 <= status < 400
                else "homeserver_url must be the base URL of the client-server API",
            )

    async def _log_in(self, password: str, deadline: float) -> None:
        """Reuse the remembered login of this account if it still works, else log in."""
        account = self.account
        store = self._logins
        stored = store.get(self.url, account.user, password) if store else None
        if store is not None and stored is not None:
            self._use_login(stored.access_token, stored.device_id)
            try:
                who, _ = await self._whoami("checking the saved login", deadline)
            except TokenRejected:
                who = None
            if who == account.user:
                return
            # Logged out or expired: forget it and log in afresh below.
            store.forget(self.url, account.user, password)
            self._use_login("", account.device_id or "")
        from nio import LoginResponse

        response = await self._call(
            "logging in",
            lambda: self._client.login(password=password, device_name=DEVICE_NAME),
            deadline,
        )
        if not isinstance(response, LoginResponse):
            raise InfrastructureError(
                f"login refused for {account.user} at {self.url}: {self._error_text(response)}",
                hint=f"check 'user' and 'password' in {account.path}",
            )
        self._use_login(response.access_token, response.device_id)
        if store is not None:
            store.put(
                self.url,
                account.user,
                password,
                StoredLogin(response.access_token, response.device_id),
            )
        else:
            # Nobody will reuse this device: log it out at the end.
            self._logged_in_with_password = True

    async def close(self) -> None:
        """Stop syncing and, after a password login, log out so devices don't pile up."""
        await self._mark_kept_dms()
        tasks = [t for t in (self._sync_task, *self._join_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 5)
        if self._logged_in_with_password:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.logout(), 5)
        self._http.close()
        if self._nio_client is not None:
            with contextlib.suppress(Exception):
                await self._nio_client.close()

    async def __aenter__(self) -> NioSession:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------- sync loop

    async def _sync_forever(self) -> None:
        backoff = RECONNECT_PAUSE
        while True:
            self._sync_polling = True
            asked_at = time.monotonic()
            try:
                status, response = await self._sync_request()
            except asyncio.CancelledError:
                self._sync_polling = False
                # Cancelled by _ask_again (a new filter, or a sync without long poll:
                # ask again from the same point), or the loop itself is being stopped.
                loop_task = asyncio.current_task()
                if self._sync_asking_again and loop_task is not None and loop_task.uncancel() == 0:
                    self._sync_asking_again = False
                    continue
                raise
            except (OSError, TimeoutError, ValueError) as exc:
                self._sync_polling = False
                await self._sync_trouble(f"cannot reach the homeserver ({type(exc).__name__})")
                await asyncio.sleep(backoff)  # back-off before retrying a lost server
                backoff = min(backoff * 2, RECONNECT_PAUSE_MAX)
                continue
            self._sync_polling = False
            if status != 200 or not isinstance(response, dict) or "next_batch" not in response:
                error = _matrix_error(status, response)
                if "M_UNKNOWN_TOKEN" in error:
                    self._fatal = InfrastructureError(
                        f"the homeserver at {self.url} rejected the access token of {self.user_id}"
                        " during the run",
                        hint="was the device logged out by someone else?",
                    )
                    await self._notify()
                    return
                await self._sync_trouble(f"sync failed: {error}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_PAUSE_MAX)
                continue
            backoff = RECONNECT_PAUSE
            self._sync_failing_since = None
            self._since = str(response["next_batch"])
            rooms = await self._absorb(response)
            self._synced_as_of = asked_at
            await self._notify(rooms)

    def _sync_path(self, timeout_ms: int, filter_query: str) -> str:
        path = f"/_matrix/client/v3/sync?timeout={timeout_ms}&filter={filter_query}"
        if self._since:
            path += "&since=" + quote(self._since, safe="")
        return path

    async def _sync_request(self) -> tuple[int, Any]:
        """One long-polling /sync as a plain request and ``json.loads``.

        Not nio's ``sync``: that checks every event against a JSON schema and
        builds objects this tester never reads, which was the largest part of
        the tester's own CPU time. The request may take the long poll and 15 s
        more before it counts as lost (as nio allows). An answer that is not
        JSON raises ValueError.

        After a failure the server is not long-polled: a restarted server with
        no news would hold the request for the whole poll, and it must be seen
        back well within SERVER_GONE_AFTER.
        """
        quick = self._sync_quick or self._sync_failing_since is not None
        self._sync_quick = False
        poll_ms = 0 if quick else SYNC_LONG_POLL_MS
        status, body = await self._http.request(
            "GET",
            self._sync_path(poll_ms, self._stream_filter_query),
            token=self._access_token,
            timeout=SYNC_LONG_POLL_MS / 1000 + 15,
        )
        return status, _parse_json(body)

    async def _sync_trouble(self, text: str) -> None:
        if self._sync_failing_since is None:
            self._sync_failing_since = time.monotonic()
        self._sync_failure = text
        await self._notify()

    async def _notify(self, rooms: set[str] | None = None) -> None:
        """Wake the waits for news of ``rooms`` and those waiting for anything;
        every wait when ``rooms`` is None.

        Only the conversations a sync concerns wake up: under ``-j`` the others
        would each re-check their room and go back to sleep, at every sync.
        """
        for room, waiter in self._waiters:
            if (rooms is None or room is None or room in rooms) and not waiter.done():
                waiter.set_result(None)

    def _sync_own_events(self) -> None:
        """From now on the sync loop asks for our own events too.

        A request under way with the old filter is cancelled and asked again
        from the same ``since``, so nothing after this call is missed.
        """
        if self._stream_filter_query == STREAM_FILTER_QUERY:
            return
        self._stream_filter_query = STREAM_FILTER_QUERY
        self._ask_again()

    def _ask_again(self) -> None:
        """Stop the sync request under way, if any: the loop asks again at once, from the
        same point (see _sync_forever)."""
        if self._sync_polling and not self._sync_asking_again and self._sync_task is not None:
            self._sync_asking_again = True
            self._sync_task.cancel()

    async def caught_up(self, *, timeout: float) -> bool:
        """Take in everything the server had by now (a sync asked from now on, without
        a long poll); False if that did not happen within ``timeout``.

        For the end of a window (settle, expect_no_reply): a pause of the server,
        the network or this process may still hold back what came inside it.
        """
        now = time.monotonic()
        if self._sync_task is None:
            return False
        self._sync_quick = True
        self._ask_again()
        done = await self._wait_for(lambda: self._synced_as_of >= now or None, timeout)
        return done is not None

    async def _absorb(self, response: dict[str, Any]) -> set[str]:
        """Take in a sync's answer; the rooms it brought news of."""
        arrived = time.monotonic()
        rooms = response.get("rooms") or {}  # Synapse leaves out empty sections
        joined = rooms.get("join") or {}
        for room_id, info in joined.items():
            timeline = (info or {}).get("timeline") or {}
            events = [e for e in timeline.get("events") or [] if isinstance(e, dict)]
            limited, prev_batch = bool(timeline.get("limited")), timeline.get("prev_batch")
            feed = self._rooms.get(room_id)
            if feed is None and room_id in self._dm_partners:
                feed = self._rooms[room_id] = _RoomFeed(counting=True)  # created by this run
            elif feed is None:
                feed = self._rooms[room_id] = _RoomFeed(counting=False)
                if room_id in self._invites:
                    feed.pending_at_start = True
                # An empty gappy timeline is a room whose events so far are all ours
                # (left out by the filter): a DM we are creating. Nothing to fetch.
                if limited and events and not self._has_my_membership(events):
                    events = (
                        await self._backfill(room_id, prev_batch, self._has_my_membership) + events
                    )
            elif limited and feed.seen:
                # A gap in a room we follow: fetch back to the last event we saw.
                events = (
                    await self._backfill(room_id, prev_batch, partial(_knows_one_of, feed.seen))
                    + events
                )
            self._take(room_id, feed, events, arrived)
        for room_id, info in (rooms.get("invite") or {}).items():
            invite_state = ((info or {}).get("invite_state") or {}).get("events") or []
            if room_id not in self._invites and self._invite_is_for_me(invite_state):
                self._invites.append(room_id)
        if self._accept_invites:
            self._join_pending_invites()
        return set(joined)

    def _has_my_membership(self, events: list[Event]) -> bool:
        return any(
            e.get("state_key") == self.user_id and _membership(e) in ("invite", "join")
            for e in events
        )

    async def _backfill(
        self, room_id: str, prev_batch: str | None, reached: Callable[[list[Event]], bool]
    ) -> list[Event]:
        """Fetch back the events a gappy (``limited``) timeline left out, oldest first.

        Pages back from ``prev_batch`` until ``reached`` says a page holds the
        point we already know; if that cannot be done, the report says replies
        may have been missed.
        """
        from nio import MessageDirection, RoomMessagesResponse

        older: list[Event] = []
        token = prev_batch
        for _ in range(BACKFILL_PAGES):
            if token is None:
                break
            try:
                page = await asyncio.wait_for(
                    self._client.room_messages(
                        room_id,
                        start=token,
                        direction=MessageDirection.back,
                        limit=BACKFILL_PAGE_SIZE,
                    ),
                    REQUEST_TIMEOUT,
                )
            except _unreachable_errors():  # TimeoutError is an OSError
                break
            if not isinstance(page, RoomMessagesResponse) or not page.chunk:
                break
            chunk = [e.source for e in page.chunk]  # newest first
            older = list(reversed(chunk)) + older
            if reached(chunk):
                return older
            token = page.end
        self.warnings.append(
            f"room {room_id}: a sync skipped events that could not be fetched back;"
            " replies may have been missed"
        )
        return older

    def _run_starts_at(self, events: list[Event]) -> int | None:
        """Where this run's part of a room's timeline begins: our first invite or join
        after our last leave. A room this account left before (a passed room script
        leaves) still shows that earlier run's join in its recent events; counting
        from there would take the earlier run's replies for this one's."""
        start = None
        for index, event in enumerate(events):
            if event.get("state_key") != self.user_id:
                continue
            membership = _membership(event)
            if membership in ("leave", "ban"):
                start = None
            elif membership in ("invite", "join") and start is None:
                start = index
        return start

    def _take(self, room_id: str, feed: _RoomFeed, events: list[Event], arrived: float) -> None:
        start = None if feed.counting else self._run_starts_at(events)
        for index, event in enumerate(events):
            event_id = event.get("event_id")
            if not isinstance(event_id, str) or event_id in feed.seen:
                continue
            feed.seen.add(event_id)
            membership = _membership(event)
            state_key = event.get("state_key")
            if membership is not None and isinstance(state_key, str):
                feed.members[state_key] = membership
            if not feed.counting:
                # Everything after our membership event that starts this run is part of it.
                if index == start:
                    feed.counting = True
                    feed.early.clear()  # before our membership: history, not the run
                    invited_ms = int(event.get("origin_server_ts") or 0)
                    feed.stale = feed.pending_at_start and (
                        invited_ms < self._run_started_ms - STALE_INVITE_MS
                    )
                elif "state_key" not in event and event.get("sender") != self.user_id:
                    feed.early.append(Reply(event=event, arrived=arrived))
                continue
            # Everything non-state from the other side goes to the conversation, which
            # decides what it means (a reply, an edit, a reaction, noise).
            if "state_key" in event or (event.get("sender") == self.user_id and not feed.keep_own):
                continue
            if feed.stale and int(event.get("origin_server_ts") or 0) < (
                self._run_started_ms - CLOCK_SKEW_MS
            ):
                continue  # a stale invite's room: its old messages are history
            feed.replies.append(Reply(event=event, arrived=arrived))
            if room_id not in self._first_spoken:
                self._first_spoken.append(room_id)

    def _invite_is_for_me(self, invite_state: list[Any]) -> bool:
        """Invite state lists every member event; only ours, as 'invite', is an invitation."""
        return any(
            isinstance(e, dict)
            and e.get("state_key") == self.user_id
            and _membership(e) == "invite"
            for e in invite_state
        )

    # ----------------------------------------------------------------- waits

    async def _wait_for(
        self, probe: Callable[[], T | None], timeout: float, *, room: str | None = None
    ) -> T | None:
        """Re-check ``probe`` after every change until it gives a value or time is up.

        With ``room``, the changes are syncs that brought news of that room (and
        anything that concerns every wait: the server lost, a join); without it,
        every sync.
        """
        deadline = time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        while True:
            if self._fatal is not None:
                raise self._fatal
            value = probe()
            if value is not None:
                return value
            self._give_up_if_server_gone()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if self._sync_failing_since is not None:
                # A sync to a frozen server hangs for 25 s before it fails again:
                # look at the clock meanwhile, to give up on the server in time.
                remaining = min(remaining, 1.0)
            waiter: asyncio.Future[None] = loop.create_future()
            entry = (room, waiter)
            self._waiters.append(entry)
            # A timer that ends the wait, rather than asyncio.timeout or wait_for: the
            # same effect for less work at each of a suite's thousands of waits.
            timer = loop.call_later(remaining, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiters.remove(entry)

    def _give_up_if_server_gone(self) -> None:
        """Waiting out a long deadline for a homeserver that has been gone a while helps nobody."""
        since = self._sync_failing_since
        if since is not None and time.monotonic() - since > SERVER_GONE_AFTER:
            raise InfrastructureError(
                f"lost the homeserver at {self.url} for {time.monotonic() - since:.0f} s"
                f" ({self._sync_failure})",
                hint="is the homeserver running?",
            )

    async def _raise_if_server_lost(self, what: str, patience: float = 0.0) -> None:
        """A timeout while the homeserver is unreachable or frozen is not the bot's fault.

        The sync loop notices a refused connection at once, but a frozen server
        only when a sync times out; so at a deadline we also ask the server
        directly, briefly (or for ``patience`` seconds, the time a step has left
        when only a window within it ended), whether it still answers.
        """
        since = self._sync_failing_since
        if since is not None and patience > 0:
            # Only a window within the step ended: a server that is restarting may
            # come back in the step's time (and within SERVER_GONE_AFTER).
            limit = min(patience, since + SERVER_GONE_AFTER - time.monotonic())
            await self._wait_for(lambda: self._sync_failing_since is None or None, limit)
        if self._sync_failing_since is not None:
            # No duration: the sync notices a frozen server only when it times out,
            # so "since when" would understate how long the server has been gone.
            raise InfrastructureError(
                f"{what}: lost the homeserver at {self.url} ({self._sync_failure})",
                hint="is the homeserver running, or frozen?",
            )
        try:
            status, _ = await self._http.request(
                "GET", "/_matrix/client/versions", timeout=max(PROBE_TIMEOUT, patience)
            )
            healthy = status == 200
        except (OSError, TimeoutError):
            healthy = False
        if not healthy:
            raise InfrastructureError(
                f"{what}: the homeserver at {self.url} stopped answering",
                hint="is the homeserver overloaded or frozen?",
            )

    # ------------------------------------------------------ Session protocol

    async def open_dm(
        self, partner: str, *, wait_for_join: bool, timeout: float, show_now: bool = False
    ) -> str:
        """A new DM with ``partner`` (or a spare one while room creation is rate-limited).

        The room goes into the account's ``m.direct`` when the session closes, and
        only if it is still joined then: a suite's hundreds of rooms, left as
        they finish, would otherwise pile up there, at two requests a room.
        ``show_now`` records it at once, for a person who will use it meanwhile.
        """
        deadline = time.monotonic() + timeout
        await self._check_user_exists(partner, deadline)
        room_id, reused = await self._create_dm(partner, deadline)
        if reused:
            return room_id
        self._entered.add(room_id)
        self._dm_partners[room_id] = partner
        self._count_from_creation(room_id)
        if show_now:
            await self._mark_direct({room_id: partner}, deadline)
        if not wait_for_join:
            return room_id

        def partner_state() -> str | None:
            feed = self._rooms.get(room_id)
            state = feed.members.get(partner) if feed else None
            return state if state in ("join", "leave", "ban") else None

        state = await self._wait_for(
            partner_state, max(0.0, deadline - time.monotonic()), room=room_id
        )
        if state == "join":
            return room_id
        if state is None:
            await self._raise_if_server_lost(f"waiting for {partner} to join")
            raise ConversationFailed(
                f"{partner} did not join the DM within {timeout:g} s"
                " (is the bot running and accepting invites?)"
            )
        raise ConversationFailed(f"{partner} rejected the invite to the DM ({state})")

    async def _create_dm(self, partner: str, deadline: float) -> tuple[str, bool]:
        """A new room with ``partner`` invited, or, while the homeserver refuses to create
        rooms (429), a spare DM that another conversation finished with: whichever comes
        first within the deadline. The flag says which (True: a spare)."""
        what = f"creating a DM with {partner}"
        while True:
            try:
                status, created = await self._raw(
                    "POST",
                    "/_matrix/client/v3/createRoom",
                    {**DM_SETTINGS, "invite": [partner]},
                    deadline,
                    what=what,
                    wait_out_limits=False,
                )
            except RateLimited as limited:
                began = time.monotonic()
                until = min(deadline, began + limited.retry_after)
                spare = await self._wait_for(lambda: self._take_spare(partner), until - began)
                self._charge_rate_limit(time.monotonic() - began)
                if spare is not None:
                    return spare, True
                if time.monotonic() >= deadline:
                    raise
                continue
            room_id = created.get("room_id") if isinstance(created, dict) else None
            if status != 200 or not isinstance(room_id, str):
                error = self._refusal(what, status, created)
                if not isinstance(error, TokenRejected):
                    error.hint = "does the bot's user ID exist on this homeserver?"
                raise error
            return room_id, False

    def _count_from_creation(self, room_id: str) -> None:
        """Everything in a room this run created is part of the run.

        Our own events are not synced, so no membership event of ours marks
        the start: the room counts from its creation, with whatever others said
        before createRoom's answer came back (a bot's greeting on joining).
        """
        feed = self._rooms.setdefault(room_id, _RoomFeed(counting=True))
        if not feed.counting:
            feed.counting = True
            feed.replies.extend(feed.early)
            if feed.early and room_id not in self._first_spoken:
                self._first_spoken.append(room_id)
        feed.early.clear()

    async def keep_spare(self, room_id: str, *, limit: int) -> bool:
        """Keep a finished conversation's DM for a later one instead of leaving it now.

        A spare is used only when the homeserver will not create rooms fast enough:
        Synapse by default allows a burst of ten rooms, then one a minute, so a suite
        of thirty conversations would otherwise wait twenty minutes. At most
        ``limit`` rooms are kept (as many as may run at once). False when the room
        is not a DM of this run whose partner is still in it: leave it as usual.
        """
        partner = self._dm_partners.get(room_id)
        feed = self._rooms.get(room_id)
        if partner is None or feed is None or feed.members.get(partner) != "join":
            return False
        if sum(len(rooms) for rooms in self._spare_dms.values()) >= limit:
            return False
        self._spare_dms.setdefault(partner, []).append(room_id)
        await self._notify()
        return True

    def take_spares(self) -> list[str]:
        """The spare DMs nobody needed again: the run is over, leave them."""
        rooms = [room for spares in self._spare_dms.values() for room in spares]
        self._spare_dms.clear()
        return rooms

    def _take_spare(self, partner: str) -> str | None:
        """A spare DM with ``partner``, its leftovers dropped: they are the last
        conversation's, and only what comes after this moment counts."""
        spares = self._spare_dms.get(partner)
        if not spares:
            return None
        room_id = spares.pop(0)
        self._rooms[room_id].replies.clear()
        self.warnings.append(
            f"room {room_id} reused from an earlier conversation: the homeserver"
            " limits how fast rooms can be created"
        )
        return room_id

    async def _check_user_exists(self, user_id: str, deadline: float) -> None:
        """A bot account that does not exist would otherwise look like a bot that never joins.

        Asked once per partner and run: accounts are not deleted mid-suite.
        """
        if user_id in self._known_users:
            return
        if user_id.split(":", 1)[-1] != self.account.server_name:
            return  # asking another server would need federation; let the invite tell
        path = f"/_matrix/client/v3/profile/{_segment(user_id)}"
        status, _ = await self._raw("GET", path, None, deadline)
        if status == 404:  # Synapse answers M_NOT_FOUND or M_UNKNOWN "No row found"
            raise InfrastructureError(
                f"the bot to test, {user_id}, does not exist on {self.url}",
                hint="check user_to_test (or --bot), or register the bot's account",
            )
        if status == 200:
            self._known_users.add(user_id)

    async def _mark_direct(self, partners: dict[str, str], deadline: float) -> None:
        """Record DMs (room -> partner) in m.direct, as Matrix clients do (nio does not)."""
        path = f"/_matrix/client/v3/user/{_segment(self.user_id)}/account_data/m.direct"
        async with self._direct_lock:
            status, current = await self._raw("GET", path, None, deadline)
            direct = current if status == 200 and isinstance(current, dict) else {}
            for room_id, partner in partners.items():
                rooms = [r for r in direct.get(partner, []) if isinstance(r, str)]
                if room_id not in rooms:
                    direct[partner] = [*rooms, room_id]
            status, _ = await self._raw("PUT", path, direct, deadline)
        if status != 200:
            self.warnings.append(f"could not record the DM in m.direct (HTTP {status})")
        self._shown_as_dm.update(partners.keys())

    async def _mark_kept_dms(self) -> None:
        """Record in m.direct the DMs this run created and did not leave (kept to be read)."""
        kept = {
            room: partner
            for room, partner in self._dm_partners.items()
            if room in self._entered and room not in self._shown_as_dm
        }
        if kept and self._fatal is None and self._sync_failing_since is None:
            with contextlib.suppress(InfrastructureError):
                await self._mark_direct(kept, time.monotonic() + MARK_DIRECT_AT_CLOSE_TIMEOUT)

    async def leave(self, room_id: str, *, timeout: float = LEAVE_TIMEOUT) -> bool:
        """Leave and forget a room this run entered, so test accounts don't pile up rooms.

        Rooms the account was in before the run are never left. Returns whether it left.
        """
        if room_id not in self._entered:
            return False
        if self._fatal is not None or self._sync_failing_since is not None:
            # Each leave would wait out its whole deadline for a server known to be gone.
            raise InfrastructureError(
                f"leaving a room: lost the homeserver at {self.url} ({self._sync_failure})"
            )
        deadline = time.monotonic() + timeout
        room_path = f"/_matrix/client/v3/rooms/{_segment(room_id)}"
        status, left = await self._raw(
            "POST", f"{room_path}/leave", {}, deadline, what="leaving a room"
        )
        if status != 200:
            self._raise_if_token_rejected("leaving a room", status, left)
            self.warnings.append(f"could not leave {room_id}: {_matrix_error(status, left)}")
            return False
        status, forgot = await self._raw(
            "POST", f"{room_path}/forget", {}, deadline, what="forgetting a room"
        )
        if status != 200:
            self._raise_if_token_rejected("forgetting a room", status, forgot)
            self.warnings.append(f"could not forget {room_id}: {_matrix_error(status, forgot)}")
        self._entered.discard(room_id)
        # A later script of this run may join again: it starts afresh from its own join,
        # not with this conversation's leftovers or what was said while we were away.
        self._rooms.pop(room_id, None)
        return True

    async def join_room(self, room: str, *, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        # An invite from long before the run makes the room's old messages history.
        await self._note_pending_invite(room, deadline)
        # Our join event marks where the room's history ends: the sync must bring it.
        self._sync_own_events()
        from nio import JoinResponse

        response = await self._call(f"joining {room}", lambda: self._client.join(room), deadline)
        if not isinstance(response, JoinResponse):
            raise InfrastructureError(
                f"cannot join {room}: {self._error_text(response)}",
                hint="is the room ID or alias right, and may this account join it?",
            )
        room_id = str(response.room_id)
        if room_id not in self._joined_at_start:  # joined before the run: not ours to leave
            self._entered.add(room_id)
        return room_id

    async def room_id_of(self, room: str, *, timeout: float) -> str:
        """The ID of the room an alias (or ID) names; the name itself if the server
        does not know it."""
        if not room.startswith("#") or room in self._alias_rooms:
            return self._alias_rooms.get(room, room)
        path = f"/_matrix/client/v3/directory/room/{_segment(room)}"
        status, data = await self._raw("GET", path, None, time.monotonic() + timeout)
        room_id = data.get("room_id") if status == 200 and isinstance(data, dict) else None
        if not isinstance(room_id, str):
            return room
        self._alias_rooms[room] = room_id  # the runner asks first, the join again
        return room_id

    async def _note_pending_invite(self, room: str, deadline: float) -> None:
        """Whether ``room`` (an ID or alias) holds an invite for us from before the run.

        Asks about that one room only, which costs nothing however many rooms
        the account has.
        """
        room_id = await self.room_id_of(room, timeout=max(0.0, deadline - time.monotonic()))
        if room_id.startswith("#"):
            return  # an alias the server does not know: joining will say what is wrong
        await self._list_pending_invites(deadline, only=room_id)

    async def _list_pending_invites(self, deadline: float, only: str | None = None) -> None:
        """Add the invites pending from before the run (a sync of their own, once).

        ``only`` asks about one room. A plain request rather than nio's
        ``sync``: that would move the sync loop's ``since`` past events it has
        not seen yet.
        """
        async with self._invites_listing:  # conversations may ask at once
            if self._invites_listed:
                return
            wanted = INVITES_FILTER
            if only is not None:
                wanted = {**INVITES_FILTER, "room": {**INVITES_FILTER["room"], "rooms": [only]}}
            path = "/_matrix/client/v3/sync?timeout=0&filter=" + _as_query_value(wanted)
            status, data = await self._raw("GET", path, None, deadline)
            self._invites_listed = only is None
            if status != 200 or not isinstance(data, dict):
                self.warnings.append(f"could not list pending invites (HTTP {status})")
                return
            rooms = data.get("rooms") or {}  # Synapse leaves out empty sections
            for room_id, info in (rooms.get("invite") or {}).items():
                events = ((info or {}).get("invite_state") or {}).get("events") or []
                if self._invite_is_for_me(events) and room_id not in self._invites:
                    self._invites.append(room_id)

    async def wait_for_room(self, *, need_message: bool, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        await self._list_pending_invites(deadline)
        self._accept_invites = True
        self._join_pending_invites()

        def first_room() -> str | None:
            # A room used by an earlier conversation of this run is not a new conversation.
            candidates = self._first_spoken if need_message else self._joined_via_invite
            return next((r for r in candidates if r not in self._used_rooms), None)

        room = await self._wait_for(first_room, max(0.0, deadline - time.monotonic()))
        if room is None:
            await self._raise_if_server_lost("waiting for a conversation")
        else:
            self._used_rooms.add(room)
        return room

    def _join_pending_invites(self) -> None:
        for room_id in self._invites:
            if room_id not in self._joining:
                self._joining.add(room_id)
                task = asyncio.create_task(self._join_invited(room_id), name=f"join {room_id}")
                self._join_tasks.add(task)
                task.add_done_callback(self._join_tasks.discard)

    async def _join_invited(self, room_id: str) -> None:
        """Join with growing pauses: a server may deliver the invite before the join can work."""
        from nio import JoinResponse

        pause = 0.25
        for _ in range(6):
            try:
                response = await asyncio.wait_for(self._client.join(room_id), REQUEST_TIMEOUT)
            except _unreachable_errors():  # TimeoutError is an OSError
                response = None
            if isinstance(response, JoinResponse):
                self._joined_via_invite.append(room_id)
                self._entered.add(room_id)
                await self._notify()
                return
            await asyncio.sleep(pause)  # back-off between join attempts
            pause *= 2
        self.warnings.append(f"could not join {room_id} after 6 attempts")

    async def send_text(self, room_id: str, body: str, *, timeout: float) -> Event:
        content = {"msgtype": "m.text", "body": body}
        return await self.send_event(room_id, "m.room.message", content, timeout=timeout)

    async def next_event(
        self, room_id: str, *, timeout: float, patience: float = 0.0
    ) -> Reply | None:
        feed = self._rooms.setdefault(room_id, _RoomFeed(counting=False))
        reply = await self._wait_for(
            lambda: feed.replies.popleft() if feed.replies else None, timeout, room=room_id
        )
        if reply is None:
            await self._raise_if_server_lost("waiting for a reply", patience)
        return reply

    async def display_name(self, user_id: str, *, timeout: float) -> str | None:
        """``user_id``'s profile display name; None if unset or the server would not say."""
        path = f"/_matrix/client/v3/profile/{_segment(user_id)}/displayname"
        status, data = await self._raw("GET", path, None, time.monotonic() + timeout)
        name = data.get("displayname") if status == 200 and isinstance(data, dict) else None
        return name if isinstance(name, str) and name else None

    def hear_own_events(self, room_id: str) -> None:
        """From now on, our own events in ``room_id`` reach ``next_event`` too.

        For the recorder: in a DM the person talks to the bot from their own
        client as this very account. ``run`` never calls it, so its rule (our
        own events are never replies) stands.
        """
        self._rooms.setdefault(room_id, _RoomFeed(counting=False)).keep_own = True
        self._sync_own_events()

    def pending_events(self, room_id: str) -> list[Reply]:
        feed = self._rooms.get(room_id)
        if feed is None:
            return []
        pending = list(feed.replies)
        feed.replies.clear()
        return pending

    # --------------------------------------------- the script language's actions
    #
    # Each call has its own deadline (``timeout`` seconds), 429s are waited out
    # within it, and a failure the homeserver reports is an InfrastructureError,
    # as for ``send_text``. Events are returned "as sent": the event ID is the
    # server's, the timestamp is our clock's (close enough for a transcript).

    async def send_event(
        self, room_id: str, event_type: str, content: dict[str, Any], *, timeout: float
    ) -> Event:
        """Send a message event of any type; return it as sent (with its event_id)."""
        deadline = time.monotonic() + timeout
        payload = json.dumps(content).encode("utf-8")
        # The returned event must not change with the caller's content: a copy, read
        # back from what is sent (cheaper than a deep copy).
        content = json.loads(payload)
        # One transaction ID for every attempt: a retried request cannot send the event twice.
        txn_id = self._txn_id()
        what = "sending a message" if event_type == "m.room.message" else f"sending {event_type}"
        # A plain request, not nio's room_send: that checks each answer against a JSON
        # schema and builds objects, a good part of the tester's CPU time per step.
        path = f"/_matrix/client/v3/rooms/{_segment(room_id)}/send/{_segment(event_type)}/{txn_id}"
        status, data = await self._raw("PUT", path, payload, deadline, what=what)
        event_id = data.get("event_id") if status == 200 and isinstance(data, dict) else None
        if not isinstance(event_id, str):
            raise self._refusal(f"{what} to {room_id}", status, data)
        return self._as_sent(event_type, event_id, room_id, content)

    def _txn_id(self) -> str:
        return f"{self._txn_prefix}.{next(self._txn_numbers)}"

    def _as_sent(self, event_type: str, event_id: str, room_id: str, content: Event) -> Event:
        return {
            "type": event_type,
            "event_id": event_id,
            "sender": self.user_id,
            "room_id": room_id,
            "origin_server_ts": int(time.time() * 1000),
            "content": content,
        }

    async def redact(
        self, room_id: str, event_id: str, reason: str | None, *, timeout: float
    ) -> Event:
        """Redact an event; return the redaction event as sent.

        ``redacts`` is both at the top level (room versions up to 10) and in
        the content (room version 11 and later), as a server would show it.
        """
        from nio import RoomRedactResponse

        deadline = time.monotonic() + timeout
        txn_id = self._txn_id()
        response = await self._call(
            f"redacting {event_id}",
            lambda: self._client.room_redact(room_id, event_id, reason, tx_id=txn_id),
            deadline,
        )
        if not isinstance(response, RoomRedactResponse):
            raise InfrastructureError(
                f"redacting {event_id} in {room_id} failed: {self._error_text(response)}"
            )
        content: Event = {"redacts": event_id}
        if reason:  # nio sends no reason for an empty one
            content["reason"] = reason
        event = self._as_sent("m.room.redaction", str(response.event_id), room_id, content)
        event["redacts"] = event_id
        return event

    async def set_typing(
        self, room_id: str, typing: bool, seconds: float, *, timeout: float
    ) -> None:
        """Start typing for ``seconds`` (the server stops it then), or stop typing."""
        from nio import RoomTypingResponse

        deadline = time.monotonic() + timeout
        typing_ms = max(1, round(seconds * 1000))
        response = await self._call(
            "sending a typing notification",
            lambda: self._client.room_typing(room_id, typing, timeout=typing_ms),
            deadline,
        )
        if not isinstance(response, RoomTypingResponse):
            raise InfrastructureError(
                f"setting typing in {room_id} failed: {self._error_text(response)}"
            )

    async def send_read_receipt(self, room_id: str, event_id: str, *, timeout: float) -> None:
        """Mark ``event_id`` as read with an unthreaded ``m.read`` receipt.

        Unthreaded (no ``thread_id``), as clients that are not thread-aware send
        it: it marks everything up to the event as read, threads included. nio
        always sends a ``thread_id``, so this is a plain request.
        """
        deadline = time.monotonic() + timeout
        path = f"/_matrix/client/v3/rooms/{_segment(room_id)}/receipt/m.read/{_segment(event_id)}"
        what = "sending a read receipt"
        status, data = await self._raw("POST", path, {}, deadline, what=what)
        if status != 200:
            raise self._refusal(f"{what} for {event_id} in {room_id}", status, data)

    async def upload(
        self, path: Path, *, mimetype: str, filename: str, timeout: float
    ) -> tuple[str, int]:
        """Upload a file to the content repository; return its mxc:// URI and size in bytes.

        A file that cannot be read is an InputError naming it. The file is
        read whole first: script attachments are small, and a retry after a
        429 must send the same bytes again.
        """
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise InputError(
                f"cannot read the file to send ({exc.strerror or type(exc).__name__})",
                path=str(path),
                hint="the path is relative to the script's directory",
            ) from None
        from nio import UploadResponse

        deadline = time.monotonic() + timeout

        async def request() -> Any:
            response, _ = await self._client.upload(
                lambda _limited, _timeouts: data,
                content_type=mimetype,
                filename=filename,
                filesize=len(data),
            )
            return response

        response = await self._call(f"uploading {path.name}", request, deadline)
        if not isinstance(response, UploadResponse):
            raise InfrastructureError(
                f"uploading {path} failed: {self._error_text(response)}",
                hint="is the file larger than the homeserver's max_upload_size?",
            )
        return str(response.content_uri), len(data)

    async def download_size(self, mxc: str, *, timeout: float) -> int:
        """Download an ``mxc://`` URI's content and return its size in bytes, or -1.

        -1 means the homeserver would not serve it (no such media, a malformed
        URI, access denied): the bot sent a URL nobody can download, and the
        caller reports that as a conversation failure ("not downloadable").
        A homeserver that does not answer in time, or rate-limits beyond the
        deadline, is an InfrastructureError as usual.

        nio 0.26 downloads through the authenticated media API
        (``/_matrix/client/v1/media/download``, Matrix 1.11) with the token in
        the Authorization header. Synapse serves media uploaded since it froze
        the old endpoints (its default) only there: ``/_matrix/media/v3/download``
        answers 404. A homeserver older than Matrix 1.11 lacks that API, so
        there every download gives -1.
        """
        if not _MXC.fullmatch(mxc):
            return -1
        from nio import MemoryDownloadResponse

        deadline = time.monotonic() + timeout
        response = await self._call(
            f"downloading {mxc}", lambda: self._client.download(mxc), deadline
        )
        if isinstance(response, MemoryDownloadResponse) and isinstance(response.body, bytes):
            return len(response.body)
        return -1
