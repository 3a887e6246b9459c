"""The throwaway PostgreSQL server (scripts/localpostgres.py) for the suites."""
import pytest

from localpostgres import BINARIES, PostgresServer, find_bindir

from .stack import IN_CI


def postgres_server():
    """A started server; skip on a laptop without Debian's postgresql package, fail in CI
    (.ci/run installs it)."""
    bindir = find_bindir()
    if bindir is None:
        reason = f"no PostgreSQL server in {BINARIES} (apt install postgresql)"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    return PostgresServer(bindir).start()
