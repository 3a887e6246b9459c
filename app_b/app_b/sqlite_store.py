"""SQLite backend (APP_B_DB_PATH): the embedded default, one file, a single writer.

Each thread keeps one connection for its lifetime (opening SQLite per request was a measurable
cost in the original design); connections are opened lazily, so none is created before gunicorn
forks its workers. Writes take the database lock up front (BEGIN IMMEDIATE), so workers or pods
migrating one file at once queue up instead of interleaving.
"""
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path

from .store import StoreUnavailable, TokenStore

# Several workers or pods may migrate the same file at once: wait for the lock.
BUSY_TIMEOUT_SECONDS = 10

# Migration N brings PRAGMA user_version from N-1 to N. Never edit one that has shipped: add one.
MIGRATIONS = (
    # 1: the original schema, one token per user in the users row (this is its exact statement,
    # so a file from before versioning, with the table and user_version 0, upgrades too).
    ("""CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    token_sha256 BLOB NOT NULL UNIQUE
)""",),
    # 2: several tokens per user, each with its own life; every version-1 token carries over.
    # SQLite cannot drop a UNIQUE column in place: the users table is rebuilt under its name.
    ("ALTER TABLE users RENAME TO users_v1",
     "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE)",
     """CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_sha256 BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    seed INTEGER NOT NULL DEFAULT 0
)""",
     "CREATE INDEX tokens_user_id ON tokens (user_id)",
     "INSERT INTO users (id, username) SELECT id, username FROM users_v1",
     "INSERT INTO tokens (user_id, token_sha256, created_at) "
     "SELECT id, token_sha256, CAST(strftime('%s', 'now') AS INTEGER) FROM users_v1",
     "DROP TABLE users_v1"),
)
SCHEMA_VERSION = len(MIGRATIONS)


class SqliteStore(TokenStore):
    def __init__(self, path, **kwargs):
        super().__init__(**kwargs)
        self.path = path
        self._local = threading.local()
        self._opened = []  # every thread's connection, for close()

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(f"cannot make the directory of {self.path}: {exc.strerror}") from None
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            self._opened.append(conn)
        return conn

    def _read(self, sql, params=()):
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from None

    @contextmanager
    def _write(self):
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from None
        try:
            yield lambda sql, params=(): conn.execute(sql, params).fetchall()
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:  # some errors (a full disk) have rolled it back already
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreUnavailable(str(exc)) from None
            raise

    def migrate_schema(self, execute):
        version = execute("PRAGMA user_version")[0][0]
        if version > SCHEMA_VERSION:
            raise StoreUnavailable(f"{self.path} has schema version {version}, newer than this "
                                   f"app_b knows ({SCHEMA_VERSION}): run the newer app_b")
        for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in statements:
                execute(statement)
            execute(f"PRAGMA user_version = {number}")

    def close(self):
        for conn in self._opened:
            conn.close()
        self._opened.clear()
        self._local = threading.local()
