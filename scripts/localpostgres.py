"""A throwaway PostgreSQL server for the tests and the benchmark: Debian's postgresql package,
its own data directory in a new temporary directory, listening on 127.0.0.1 on a free port
(trust auth: nothing but this machine reaches it). `stop` / `start` again keep the data: the
connection-loss tests take the server away under a running app_b and bring it back."""
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import uuid

import psycopg

from localstack import free_port, poll

# Debian installs each major version side by side; the newest one present is used.
BINARIES = "/usr/lib/postgresql/*/bin"
SUPERUSER = "postgres"


def find_bindir():
    """The newest of Debian's PostgreSQL binary directories, or None."""
    found = sorted(glob.glob(BINARIES), key=lambda path: int(path.split("/")[-2]))
    if found and os.access(os.path.join(found[-1], "postgres"), os.X_OK):
        return found[-1]
    return None


class PostgresServer:
    def __init__(self, bindir):
        self.bindir = bindir
        self.dir = tempfile.mkdtemp(prefix="app_b-postgres-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.proc = None
        # initdb and postgres refuse to run as root: as root, run them as Debian's postgres user.
        self._as = {"user": SUPERUSER, "group": SUPERUSER, "extra_groups": []} if os.geteuid() == 0 else {}
        if self._as:
            shutil.chown(self.dir, SUPERUSER, SUPERUSER)
        subprocess.run([f"{self.bindir}/initdb", "--pgdata", self.data, "--username", SUPERUSER,
                        "--auth", "trust", "--encoding", "UTF8", "--no-sync"],
                       check=True, capture_output=True, timeout=120, **self._as)

    def url(self, database="postgres"):
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout=30.0):
        log = open(os.path.join(self.dir, "server.log"), "ab")
        # Durability is not what these tests measure: fsync off keeps them quick.
        self.proc = subprocess.Popen(
            [f"{self.bindir}/postgres", "-D", self.data, "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT, **self._as)
        log.close()
        if not poll(self.accepts_connections, timeout, interval=0.1):
            raise TimeoutError(f"PostgreSQL not ready after {timeout} s:\n{self.log()[-2000:]}")
        return self

    def accepts_connections(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n{self.log()[-2000:]}")
        try:
            psycopg.connect(self.url(), connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False

    def log(self):
        with open(os.path.join(self.dir, "server.log"), errors="replace") as log:
            return log.read()

    def stop(self):
        """Fast shutdown (SIGINT): open sessions are cut, as when a server or its pod goes away."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(60)

    def new_database(self):
        """URL of a new, empty database (each test gets its own)."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def remove(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
