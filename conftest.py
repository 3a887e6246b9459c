"""pytest imports test files by their path from here (--import-mode=importlib), e.g.
app_a/tests/test_config.py as app_a.tests.test_config. Import the services' real packages first,
so those names hang under them instead of under stand-ins pytest would make of the app_a/ and
app_b/ folders, which hold the packages of the same name."""
import pytest

import app_a  # noqa: F401
import app_b  # noqa: F401
from harness.postgres import postgres_server


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL server for the session (app_b's store suite, the stacks)."""
    server = postgres_server()
    yield server
    server.remove()


@pytest.fixture
def own_postgres():
    """A PostgreSQL server of this test's own, which it may stop and start."""
    server = postgres_server()
    yield server
    server.remove()
