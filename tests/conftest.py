"""Fixtures shared by the repository-level suites (stack, images, manifests, load)."""
import pytest

from harness.docker import docker_engine
from harness.stack import REPORT, Services


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("real-cluster steps (tests/test_cluster.py)")
        for line in REPORT:
            terminalreporter.write_line(line)


@pytest.fixture
def services(tmp_path):
    """Real gunicorn processes of app_b / app_a on free loopback ports; stopped afterwards."""
    stack = Services(tmp_path)
    yield stack
    stack.stop_all()


@pytest.fixture(scope="session")
def engine():
    """The Docker CLI for the image suites; what they created is removed afterwards."""
    docker = docker_engine()
    yield docker
    docker.cleanup()
