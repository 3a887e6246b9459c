"""Client for app_b's POST /auth over pooled keep-alive connections.

One client (one urllib3 connection pool) per worker process, holding a connection per thread,
so steady traffic never pays for a new TCP connection. urllib3 directly rather than requests:
profiled under load, requests' session machinery was a sixth of app_a's CPU per call and bought
nothing here (no cookies, redirects, proxies or auth). Pools ignore HTTP(S)_PROXY: app_b is an
in-cluster peer.
"""
import enum
import queue
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError


class Outcome(enum.Enum):
    OK = "ok"
    UNKNOWN_TOKEN = "unknown_token"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    BAD_GATEWAY = "bad_gateway"
    BUSY = "busy"


@dataclass(frozen=True)
class AuthResult:
    outcome: Outcome
    username: str | None = None
    detail: str = ""


class AuthClient:
    """At most `max_calls` calls at once per worker: the worker's other threads stay free for
    the probes and /hello however slow app_b is.

    A call over the bound waits up to `slot_wait` seconds for a slot, but only while app_b keeps
    answering (its last answer is at most `slot_wait` old; until it first answers, the worker's
    first call counts as one, so a new pod's first burst waits too): then a slot frees in milliseconds,
    and a worker can be sent more requests at once than it has slots (nginx's keep-alive
    connections stay with the worker that accepted them). A slow or frozen app_b answers nobody,
    and the call is refused at once: a waiting request holds a thread just as a stuck call does."""

    def __init__(self, base_url, connect_timeout, read_timeout, max_calls, slot_wait=0.25):
        base_path = urlsplit(base_url).path.rstrip("/")
        self.path, self.health_path = base_path + "/auth", base_path + "/healthz"
        self.read_timeout = read_timeout
        self.reached = False  # has app_b answered this worker yet (see reach)
        self.slot_wait = slot_wait
        # time.monotonic() of app_b's last answer to a call (until its first, of the first call)
        self.last_answer = None
        # A slot is a token taken from this queue and put back: queue.SimpleQueue is written in C,
        # where a threading.Semaphore is Python around a Condition (13.5k instructions per call
        # against 1.7k, callgrind).
        self._slots = queue.SimpleQueue()
        for _ in range(max_calls):
            self._slots.put(None)
        self.pool = urllib3.connection_from_url(
            base_url, maxsize=max_calls, retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout))

    def _post(self, token, request_id):
        # A pooled connection that app_b closed (restart, idle timeout) fails on first use:
        # one retry on a fresh connection, but never after a timeout (that would double it).
        # urlopen with the body and headers made here: request(json=...) builds them through
        # urllib3's generic encoding layer, 5 % of app_a's instructions per request (callgrind).
        body = orjson.dumps({"token": token})
        headers = {"Content-Type": "application/json", "X-Request-ID": request_id}
        for attempt in (1, 2):
            try:
                return self.pool.urlopen("POST", self.path, body=body, headers=headers)
            except NewConnectionError:  # a subclass of ConnectTimeoutError, but no timeout
                if attempt == 2:
                    raise
            except (ConnectTimeoutError, ReadTimeoutError):
                raise
            except HTTPError:
                if attempt == 2:
                    raise

    def reach(self):
        """Whether app_b has answered this worker (a call, or its /healthz, which this asks until
        it has); any HTTP answer counts (the path is open), and from then on the answer is yes."""
        if not self.reached:
            try:
                self.pool.request("GET", self.health_path)
            except HTTPError:
                return False
            self.reached = True
        return True

    def check(self, token, request_id):
        """Ask app_b whether `token` is valid; never raises for upstream failures."""
        if not self._take_slot():
            return AuthResult(Outcome.BUSY, detail="every auth call slot in use")
        try:
            return self._check(token, request_id)
        finally:
            self._slots.put(None)

    def _take_slot(self):
        if self.last_answer is None:
            self.last_answer = time.monotonic()
        try:
            self._slots.get(block=False)
            return True
        except queue.Empty:
            pass
        if time.monotonic() - self.last_answer > self.slot_wait:
            return False
        try:
            self._slots.get(timeout=self.slot_wait)
            return True
        except queue.Empty:
            return False

    def _check(self, token, request_id):
        try:
            response = self._post(token, request_id)
        except NewConnectionError as exc:  # refused, no such host: nobody listening
            return AuthResult(Outcome.UNAVAILABLE, detail=type(exc).__name__)
        except ConnectTimeoutError:
            return AuthResult(Outcome.UNAVAILABLE, detail="connect timeout")
        except ReadTimeoutError:
            return AuthResult(Outcome.TIMEOUT, detail=f"no answer within {self.read_timeout} s")
        except HTTPError as exc:  # answered with something other than HTTP, or hung up mid-answer
            return AuthResult(Outcome.BAD_GATEWAY, detail=str(exc)[:200])
        self.reached, self.last_answer = True, time.monotonic()
        if response.status in (400, 401):
            return AuthResult(Outcome.UNKNOWN_TOKEN)
        if response.status == 503:  # app_b is up but cannot answer (its database is away)
            return AuthResult(Outcome.UNAVAILABLE, detail="app_b answered 503")
        if response.status != 200:
            return AuthResult(Outcome.BAD_GATEWAY, detail=f"status {response.status}")
        try:
            username = orjson.loads(response.data)["username"]
        except (ValueError, KeyError, TypeError):
            return AuthResult(Outcome.BAD_GATEWAY, detail="unreadable body")
        if not isinstance(username, str):
            return AuthResult(Outcome.BAD_GATEWAY, detail="unreadable body")
        return AuthResult(Outcome.OK, username=username)
