"""PostgreSQL backend (APP_B_DATABASE_URL): one database every app_b pod shares.

Each gunicorn worker has its own psycopg_pool.ConnectionPool (create_app runs after the fork).
Connections are in autocommit mode, so a lookup is one round trip; writes run in an explicit
transaction. Migrations hold a transaction-level advisory lock, so pods starting at once apply
each migration exactly once, and the version table says which ones a database has.
"""
import functools
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from .store import StoreUnavailable, TokenStore

# Any fixed 64-bit key works; every app_b sharing the database must use the same one.
MIGRATION_LOCK = 0x6170705F62  # "app_b"
# A request waits this long for a free or new connection, then answers 503: well inside app_a's
# default 2 s budget for the whole call to app_b.
CONNECTION_WAIT_SECONDS = 1.0
# At start-up (a pod beside a PostgreSQL that is itself starting) wait this long for a first
# connection: within the 30 s the startup probe allows.
START_WAIT_SECONDS = 10.0
# While the server is away the pool retries with growing pauses (1, 2, 4 ... s); stopping after
# this long means the next request starts a new attempt at once, so app_b is back within
# seconds of PostgreSQL, not after the last (possibly minute-long) pause.
RECONNECT_TIMEOUT_SECONDS = 5.0
# More connections than a worker's threads (GUNICORN_THREADS, 4 by default): none ever waits.
POOL_MAX_SIZE = 8
# libpq's own connect timeout, unless the URL sets one: a blackholed server fails in bounded time.
CONNECT_TIMEOUT_SECONDS = 2

# Migration N brings the database to version N. PostgreSQL support starts at version 2 (the
# SQLite numbering): no version-1 PostgreSQL database ever existed.
MIGRATIONS = (
    (2, ("CREATE TABLE users (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
         "username TEXT NOT NULL UNIQUE)",
         """CREATE TABLE tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_sha256 BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    seed BOOLEAN NOT NULL DEFAULT false
)""",
         "CREATE INDEX tokens_user_id ON tokens (user_id)")),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


@functools.cache
def _dialect(sql):
    """The shared queries use `?` placeholders; psycopg's are `%s`."""
    return sql.replace("?", "%s")


def _rows(cursor):
    return cursor.fetchall() if cursor.description else []


def _unavailable(exc):
    # libpq's messages span lines ("connection failed: ...\n\tIs the server running ..."): the
    # log gets one.
    return StoreUnavailable(" ".join(str(exc).split()) or type(exc).__name__)


class PostgresStore(TokenStore):
    def __init__(self, url, **kwargs):
        super().__init__(**kwargs)
        defaults = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, "application_name": "app_b"}
        given = conninfo_to_dict(url)
        self.pool = ConnectionPool(
            url, open=False, min_size=1, max_size=POOL_MAX_SIZE, timeout=CONNECTION_WAIT_SECONDS,
            reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
            kwargs={"autocommit": True, **{k: v for k, v in defaults.items() if k not in given}})
        try:
            self.pool.open(wait=True, timeout=START_WAIT_SECONDS)
        except PoolTimeout:
            self.pool.close()
            raise StoreUnavailable(f"no connection to PostgreSQL within {START_WAIT_SECONDS:g} s") from None

    def _execute_once(self, sql, params):
        with self.pool.connection() as conn:
            return _rows(conn.execute(_dialect(sql), params))

    def _read(self, sql, params=()):
        try:
            try:
                return self._execute_once(sql, params)
            except PoolTimeout:
                raise
            except psycopg.OperationalError:
                # The server restarted or dropped a connection, so the pool's other idle ones may
                # be dead too: drop those, then ask once more on a live one (reads are safe to
                # repeat). Steady traffic pays nothing for this, unlike a check per checkout.
                self.pool.check()
                return self._execute_once(sql, params)
        except psycopg.Error as exc:
            raise _unavailable(exc) from None

    @contextmanager
    def _write(self):
        try:
            with self.pool.connection() as conn, conn.transaction():
                yield lambda sql, params=(): _rows(conn.execute(_dialect(sql), params))
        except psycopg.Error as exc:
            raise _unavailable(exc) from None

    def migrate_schema(self, execute):
        execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
        execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                "applied_at BIGINT NOT NULL)")
        version = execute("SELECT coalesce(max(version), 0) FROM schema_version")[0][0]
        if version > SCHEMA_VERSION:
            raise StoreUnavailable(f"the database has schema version {version}, newer than this "
                                   f"app_b knows ({SCHEMA_VERSION}): run the newer app_b")
        for number, statements in MIGRATIONS:
            if number > version:
                for statement in statements:
                    execute(statement)
                execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                        (number, self.now()))

    def close(self):
        self.pool.close()
