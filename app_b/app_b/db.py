"""SQLite token store: tokens are kept only as SHA-256 digests.

Each thread keeps one connection for its lifetime (opening SQLite per request was a
measurable cost in the original design); connections are opened lazily, so none is
created before gunicorn forks its workers.
"""
import hashlib
import hmac
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    token_sha256 BLOB NOT NULL UNIQUE
);
"""
# Several workers or pods may initialise the same file at once: wait for the lock.
BUSY_TIMEOUT_SECONDS = 10


def token_digest(token):
    # surrogatepass: JSON can carry a lone surrogate ("\ud800"), which strict UTF-8 refuses to
    # encode; such a token is just data that matches nobody, not a crash.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _connect(path):
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                           check_same_thread=False)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def init_db(path, seed_username=None, seed_token=None):
    """Create the schema and upsert the seed user; idempotent and safe to race."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with closing(_connect(path)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            if seed_username:
                conn.execute(
                    "INSERT INTO users (username, token_sha256) VALUES (?, ?) "
                    "ON CONFLICT (username) DO UPDATE SET token_sha256 = excluded.token_sha256 "
                    "WHERE token_sha256 != excluded.token_sha256",
                    (seed_username, token_digest(seed_token)),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _unobserved(query, seconds):
    pass


class TokenStore:
    """Looks tokens up through one connection per thread.

    `observe(query, seconds)` is told how long each query took, failed ones included.
    """

    def __init__(self, path, observe=_unobserved):
        self.path = path
        self._observe = observe
        self._local = threading.local()

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _connect(self.path)
        return conn

    def _query(self, name, sql, params=()):
        started = time.perf_counter()
        try:
            return self._conn().execute(sql, params).fetchall()
        finally:
            self._observe(name, time.perf_counter() - started)

    def username_for(self, token):
        """Return the username owning this token, or None."""
        digest = token_digest(token)
        rows = self._query("token_lookup",
                           "SELECT username, token_sha256 FROM users WHERE token_sha256 = ?", (digest,))
        # The index lookup already matched; compare_digest keeps the final check constant-time.
        if rows and hmac.compare_digest(rows[0][1], digest):
            return rows[0][0]
        return None

    def ping(self):
        self._query("ping", "SELECT 1 FROM users LIMIT 1")
