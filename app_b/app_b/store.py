"""The token store: users, and their tokens kept only as SHA-256 digests, in SQLite or PostgreSQL.

`TokenStore` holds what both backends share (the queries and the token lifecycle); a backend
(sqlite_store, postgres_store) supplies connections, transactions and its schema migrations.
Queries are written once with `?` placeholders; each backend runs them in its own dialect.
Times are whole seconds since the epoch, the same in both databases.
"""
import abc
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from servicekit.settings import ConfigError

# At least 32 random bytes; URL-safe text, so it travels in an Authorization header as it is.
TOKEN_BYTES = 32
USERNAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
USERNAME_RULE = "1-64 characters of A-Z a-z 0-9 . _ @ -"


class StoreUnavailable(Exception):
    """The database cannot be reached or cannot answer (the view says 503)."""


class StoreError(LookupError):
    """An operator's mistake (unknown user, unknown token id); the message says which."""


@dataclass(frozen=True)
class TokenInfo:
    username: str
    token_id: int
    created_at: int
    expires_at: int | None
    revoked_at: int | None

    def state(self, now):
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def token_digest(token):
    # surrogatepass: JSON can carry a lone surrogate ("\ud800"), which strict UTF-8 refuses to
    # encode; such a token is just data that matches nobody, not a crash.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def check_username(username):
    if not USERNAME.fullmatch(username or ""):
        raise StoreError(f"invalid username {username!r}: use {USERNAME_RULE}")
    return username


def unobserved(query, seconds):
    pass


LOOKUP = ("SELECT u.username, t.token_sha256 FROM tokens t JOIN users u ON u.id = t.user_id "
          "WHERE t.token_sha256 = ? AND t.revoked_at IS NULL "
          "AND (t.expires_at IS NULL OR t.expires_at > ?)")


class TokenStore(abc.ABC):
    """Token lookups for /auth and the lifecycle the CLI drives, over a backend's connections.

    `observe(query, seconds)` is told how long each lookup or ping took, failed ones included;
    `now()` is the clock (tests move it).
    """

    def __init__(self, observe=unobserved, now=time.time):
        self._observe = observe
        self.now = lambda: int(now())

    def _timed(self, name, sql, params=()):
        started = time.perf_counter()
        try:
            return self._read(sql, params)
        finally:
            self._observe(name, time.perf_counter() - started)

    def username_for(self, token):
        """The username owning this token if it is active (not revoked, not expired), else None."""
        digest = token_digest(token)
        rows = self._timed("token_lookup", LOOKUP, (digest, self.now()))
        # The index lookup already matched; compare_digest keeps the final check constant-time.
        if rows and hmac.compare_digest(bytes(rows[0][1]), digest):
            return rows[0][0]
        return None

    def ping(self):
        self._timed("ping", "SELECT 1 FROM tokens LIMIT 1")

    def migrate(self, seed_username=None, seed_token=None):
        """Bring the schema to the current version, then make the configured seed token one of
        the seed user's tokens; idempotent, and safe when several processes start at once."""
        with self._write() as execute:
            self.migrate_schema(execute)
            if seed_username:
                self._sync_seed(execute, seed_username, token_digest(seed_token))

    def _sync_seed(self, execute, username, digest):
        user_id = self._ensure_user(execute, username)
        # A changed SEED_TOKEN replaces the previous seed token, as a restart always did; a
        # revoked seed token stays revoked (a restart must not bring a leaked token back).
        execute("DELETE FROM tokens WHERE user_id = ? AND seed AND token_sha256 != ?", (user_id, digest))
        execute("INSERT INTO tokens (user_id, token_sha256, created_at, seed) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (token_sha256) DO UPDATE SET seed = excluded.seed "
                "WHERE tokens.user_id = excluded.user_id", (user_id, digest, self.now(), True))
        owner = execute("SELECT user_id FROM tokens WHERE token_sha256 = ?", (digest,))[0][0]
        if owner != user_id:
            raise ConfigError(f"the seed token is already a token of another user than {username!r}")

    @staticmethod
    def _ensure_user(execute, username):
        execute("INSERT INTO users (username) VALUES (?) ON CONFLICT (username) DO NOTHING", (username,))
        return execute("SELECT id FROM users WHERE username = ?", (username,))[0][0]

    @staticmethod
    def _user_id(execute, username):
        rows = execute("SELECT id FROM users WHERE username = ?", (username,))
        if not rows:
            raise StoreError(f"unknown user {username!r}")
        return rows[0][0]

    def create_token(self, username, expires_in=None):
        """A new random token for `username` (created if new), valid for `expires_in` seconds
        or until revoked; returns (token id, token, expires_at). The token is not kept."""
        check_username(username)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self.now()
        expires_at = now + expires_in if expires_in else None
        with self._write() as execute:
            user_id = self._ensure_user(execute, username)
            token_id = execute("INSERT INTO tokens (user_id, token_sha256, created_at, expires_at, seed) "
                               "VALUES (?, ?, ?, ?, ?) RETURNING id",
                               (user_id, token_digest(token), now, expires_at, False))[0][0]
        return token_id, token, expires_at

    def list_tokens(self):
        rows = self._read("SELECT u.username, t.id, t.created_at, t.expires_at, t.revoked_at "
                          "FROM tokens t JOIN users u ON u.id = t.user_id ORDER BY u.username, t.id")
        return [TokenInfo(*row) for row in rows]

    def revoke_user(self, username):
        """Revoke every active token of `username`; returns how many were active."""
        check_username(username)
        with self._write() as execute:
            user_id = self._user_id(execute, username)
            return len(execute("UPDATE tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL "
                               "RETURNING id", (self.now(), user_id)))

    def revoke_token(self, token_id):
        """Revoke one token by its id; returns False if it was revoked already."""
        if not (isinstance(token_id, int) and 0 < token_id < 2**63):
            raise StoreError(f"no token with id {token_id!r}")
        with self._write() as execute:
            if execute("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING id",
                       (self.now(), token_id)):
                return True
            if not execute("SELECT id FROM tokens WHERE id = ?", (token_id,)):
                raise StoreError(f"no token with id {token_id}")
            return False

    @abc.abstractmethod
    def _read(self, sql, params=()):
        """Run one statement outside any transaction; return its rows."""

    @abc.abstractmethod
    def _write(self):
        """A context manager over one transaction, yielding `execute(sql, params) -> rows`;
        it commits on success, rolls back on error, and takes the write lock first."""

    @abc.abstractmethod
    def migrate_schema(self, execute):
        """Apply the backend's pending migrations inside the transaction `execute` belongs to."""

    @abc.abstractmethod
    def close(self):
        """Release the connections."""


def open_store(settings, observe=unobserved):
    """The backend the settings choose: PostgreSQL for APP_B_DATABASE_URL, else SQLite."""
    if settings.database_url:
        from .postgres_store import PostgresStore
        return PostgresStore(settings.database_url, observe=observe)
    from .sqlite_store import SqliteStore
    return SqliteStore(settings.db_path, observe=observe)
