"""Client for app_b's POST /auth over keep-alive connections.

A worker holds at most `max_calls` connections to app_b, one per call slot, and reuses the one
used last, so steady traffic never pays for a new TCP connection. The standard library's
http.client directly, not urllib3 or requests: a call needs a request on a kept-alive connection,
a connect and a read timeout, and one retry on a new connection when a kept one was closed.
urllib3 wraps the same http.client in pool, retry, timeout and response layers that cost a quarter
of app_a's instructions per request (callgrind). Connections ignore HTTP(S)_PROXY: app_b is an
in-cluster peer.
"""
import enum
import queue
import time
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from urllib.parse import urlsplit

import orjson


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


class ConnectFailed(Exception):
    """Nothing accepted the connection: refused, no such host, a TLS handshake refused, or the
    connect timeout (then the cause is a TimeoutError)."""


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
        parts = urlsplit(base_url)
        base_path = parts.path.rstrip("/")
        self.path, self.health_path = base_path + "/auth", base_path + "/healthz"
        self._connection_class = HTTPSConnection if parts.scheme == "https" else HTTPConnection
        self._address = (parts.hostname, parts.port)
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
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
        # Connections between calls, the last used at the end: a list's append and pop are
        # atomic, and as a stack it keeps the fewest connections busy (the rest may time out).
        self._idle = []

    def _new_connection(self):
        return self._connection_class(*self._address, timeout=self.connect_timeout)

    def _exchange(self, connection, method, path, body, headers):
        """One request and its whole answer, (status, body), on `connection`, connecting it
        first if it is not; on any failure the connection is closed (the next use reconnects)."""
        try:
            if connection.sock is None:
                try:
                    connection.connect()
                except OSError as exc:
                    raise ConnectFailed(type(exc).__name__) from exc
                connection.sock.settimeout(self.read_timeout)
            connection.request(method, path, body, headers)
            response = connection.getresponse()
            return response.status, response.read()
        except BaseException:
            connection.close()
            raise

    def _post(self, connection, token, request_id):
        # A kept connection that app_b closed (restart, idle timeout) fails on first use: that
        # is no attempt, the call is made on a new connection (what urllib3 does after polling
        # the socket). A new connection that fails may have reached a pod going away: one retry.
        # Never after a timeout, which would double it.
        body = orjson.dumps({"token": token})
        headers = {"Content-Type": "application/json", "X-Request-ID": request_id}
        new_connection_failures = 0
        while True:
            kept = connection.sock is not None
            try:
                return self._exchange(connection, "POST", self.path, body, headers)
            except TimeoutError:
                raise
            except ConnectFailed as exc:
                if isinstance(exc.__cause__, TimeoutError) or new_connection_failures:
                    raise
            except (OSError, HTTPException):
                if not kept and new_connection_failures:
                    raise
            new_connection_failures += not kept

    def reach(self):
        """Whether app_b has answered this worker (a call, or its /healthz, which this asks until
        it has); any HTTP answer counts (the path is open), and from then on the answer is yes.
        Asked on a connection of its own: every slot may be taken by calls."""
        if not self.reached:
            connection = self._new_connection()
            try:
                self._exchange(connection, "GET", self.health_path, None, {})
            except (ConnectFailed, OSError, HTTPException):
                return False
            finally:
                connection.close()
            self.reached = True
        return True

    def check(self, token, request_id):
        """Ask app_b whether `token` is valid; never raises for upstream failures."""
        if not self._take_slot():
            return AuthResult(Outcome.BUSY, detail="every auth call slot in use")
        try:
            connection = self._idle.pop()
        except IndexError:  # as many calls under way as connections made: one more
            connection = self._new_connection()
        try:
            return self._check(connection, token, request_id)
        finally:
            self._idle.append(connection)
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

    def _check(self, connection, token, request_id):
        try:
            status, body = self._post(connection, token, request_id)
        except ConnectFailed as exc:  # refused, no such host: nobody listening
            timed_out = isinstance(exc.__cause__, TimeoutError)
            return AuthResult(Outcome.UNAVAILABLE, detail="connect timeout" if timed_out else str(exc))
        except TimeoutError:
            return AuthResult(Outcome.TIMEOUT, detail=f"no answer within {self.read_timeout} s")
        except ConnectionError as exc:
            # Taken in, then closed or reset without an answer, on a new connection too: an app_b
            # going away (its exiting workers still hold the listening socket), as good as refused.
            return AuthResult(Outcome.UNAVAILABLE, detail=type(exc).__name__)
        except (OSError, HTTPException) as exc:  # not HTTP, or hung up mid-answer
            return AuthResult(Outcome.BAD_GATEWAY, detail=f"{type(exc).__name__}: {exc}"[:200])
        self.reached, self.last_answer = True, time.monotonic()
        if status in (400, 401):
            return AuthResult(Outcome.UNKNOWN_TOKEN)
        if status == 503:  # app_b is up but cannot answer (its database is away)
            return AuthResult(Outcome.UNAVAILABLE, detail="app_b answered 503")
        if status != 200:
            return AuthResult(Outcome.BAD_GATEWAY, detail=f"status {status}")
        try:
            username = orjson.loads(body)["username"]
        except (ValueError, KeyError, TypeError):
            return AuthResult(Outcome.BAD_GATEWAY, detail="unreadable body")
        if not isinstance(username, str):
            return AuthResult(Outcome.BAD_GATEWAY, detail="unreadable body")
        return AuthResult(Outcome.OK, username=username)
