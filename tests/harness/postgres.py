"""The throwaway PostgreSQL server (scripts/localpostgres.py) for the suites."""

from localpostgres import BINARIES, PostgresServer, find_bindir

from .stack import missing


def postgres_server():
    """A started server; skip on a laptop without Debian's postgresql package, fail in CI
    (.ci/run installs it)."""
    bindir = find_bindir()
    if bindir is None:
        missing(f"no PostgreSQL server in {BINARIES} (apt install postgresql)")
    return PostgresServer(bindir).start()
