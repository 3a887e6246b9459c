"""Client for app_b's POST /auth over pooled keep-alive connections.

One client (one requests.Session) per worker process; its pool holds a connection per
thread, so steady traffic never pays for a new TCP connection.
"""
import enum
import logging
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

log = logging.getLogger("app_a.auth")


class Outcome(enum.Enum):
    OK = "ok"
    UNKNOWN_TOKEN = "unknown_token"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    BAD_GATEWAY = "bad_gateway"


@dataclass(frozen=True)
class AuthResult:
    outcome: Outcome
    username: str | None = None
    detail: str = ""


class AuthClient:
    def __init__(self, base_url, connect_timeout, read_timeout, pool_size):
        self.url = f"{base_url}/auth"
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        # app_b is an in-cluster peer: never route it through an HTTP(S)_PROXY from the env.
        self.session.trust_env = False
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def _post(self, token, request_id):
        # A pooled connection that app_b closed (restart, idle timeout) fails on first use:
        # one retry on a fresh connection, but never after a timeout (that would double it).
        for attempt in (1, 2):
            try:
                return self.session.post(self.url, json={"token": token}, timeout=self.timeout,
                                         headers={"X-Request-ID": request_id})
            except requests.Timeout:
                raise
            except requests.ConnectionError:
                if attempt == 2:
                    raise

    def check(self, token, request_id):
        """Ask app_b whether `token` is valid; never raises for upstream failures."""
        try:
            response = self._post(token, request_id)
        except requests.ConnectTimeout:
            return AuthResult(Outcome.UNAVAILABLE, detail="connect timeout")
        except requests.Timeout:
            return AuthResult(Outcome.TIMEOUT, detail=f"no answer within {self.timeout[1]} s")
        except requests.ConnectionError as exc:
            # Nobody listening (refused, no such host) is "unavailable"; a peer that answered
            # with something other than HTTP, or hung up mid-answer, is a bad gateway.
            reason = getattr(exc.args[0], "reason", None) if exc.args else None
            if isinstance(reason, NewConnectionError):
                return AuthResult(Outcome.UNAVAILABLE, detail=type(reason).__name__)
            return AuthResult(Outcome.BAD_GATEWAY, detail=str(exc)[:200])
        except requests.RequestException as exc:
            return AuthResult(Outcome.BAD_GATEWAY, detail=type(exc).__name__)
        if response.status_code in (400, 401):
            return AuthResult(Outcome.UNKNOWN_TOKEN)
        if response.status_code != 200:
            return AuthResult(Outcome.BAD_GATEWAY, detail=f"status {response.status_code}")
        try:
            username = response.json()["username"]
        except (ValueError, KeyError, TypeError):
            return AuthResult(Outcome.BAD_GATEWAY, detail="unreadable body")
        if not isinstance(username, str):
            return AuthResult(Outcome.BAD_GATEWAY, detail="unreadable body")
        return AuthResult(Outcome.OK, username=username)
