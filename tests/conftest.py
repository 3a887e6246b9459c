"""Fixtures shared by the repository-level suites (stack, images, manifests, load)."""
import os
import shutil
import socket

import pytest
from localstack import DEV_SEED, Service

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IN_CI = os.environ.get("CI", "").lower() == "true"


def require_tool(name):
    """Return the path of a command-line tool; skip on a laptop that lacks it, fail in CI.

    CI installs every tool itself, so a missing one there is a broken setup, not a reason to skip.
    Looks in the project's .bin (Go tools built by scripts/install-go-tools.sh) before PATH.
    """
    local = os.path.join(REPO, ".bin", name)
    path = local if os.access(local, os.X_OK) else shutil.which(name)
    if path:
        return path
    reason = f"{name} not found (run: make tools / scripts/ensure-docker.sh)"
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
