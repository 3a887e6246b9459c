"""Fixtures shared by the repository-level suites (stack, images, manifests, load)."""
import pytest
from localstack import DEV_SEED, Service
from support import REPORT, free_port


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("real-cluster steps (tests/test_cluster.py)")
        for line in REPORT:
            terminalreporter.write_line(line)


@pytest.fixture
def services(tmp_path):
    """Start real gunicorn processes of app_b / app_a on free loopback ports; stopped afterwards."""
    started = []

    class Factory:
        db_path = str(tmp_path / "app_b.sqlite3")

        @staticmethod
        def app_b(port=None, **env):
            env = {"APP_B_DB_PATH": Factory.db_path, **DEV_SEED, **env}
            service = Service("app_b", port or free_port(), env, log_path=str(tmp_path / "app_b.log"))
            started.append(service)
            return service.start()

        @staticmethod
        def app_a(app_b_url, **env):
            service = Service("app_a", free_port(), {"APP_B_URL": app_b_url, **env},
                              log_path=str(tmp_path / "app_a.log"))
            started.append(service)
            return service.start()

        @staticmethod
        def logs(name):
            path = tmp_path / f"{name}.log"
            return path.read_text() if path.exists() else ""

    yield Factory
    for service in reversed(started):
        service.stop()
