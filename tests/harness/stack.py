"""What the repository-level suites share: paths, CI mode, tools, the expected answers, and the
local gunicorn stack (scripts/localstack.py, the code `make run` uses)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from localstack import DEV_SEED, Edge, Service, free_port, nginx_binary, poll  # noqa: F401 (re-exported)

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() == "true"
# Lines a suite wants in the run's summary whether it passes or fails (conftest prints them).
REPORT = []
JOBS_TEXT = "Jobs:\nTitle: Devops\nDescription: Awesome\n"
TOKEN = {"Authorization": DEV_SEED["SEED_TOKEN"]}


def missing(reason):
    """A prerequisite is missing: skip on a laptop, fail in CI (CI installs every prerequisite
    itself, so a missing one there is a broken setup, not a reason to skip)."""
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def require_tool(name):
    """Return the path of a command-line tool, else `missing`. Looks in the project's .bin (Go
    tools built by offline/go-tools.sh) before PATH."""
    local = REPO / ".bin" / name
    path = str(local) if os.access(local, os.X_OK) else shutil.which(name)
    if path:
        return path
    missing(f"{name} not found (run: make tools / make docker)")


def require_nginx():
    """nginx (Debian's nginx-light; in /usr/sbin), else `missing`."""
    if not nginx_binary():
        missing("nginx not found (sudo apt-get install nginx-light)")


def flask_cli(environ, *args):
    """`flask --app app_b ARGS` as an operator runs it: from app_b/ (the image's /app), with
    `environ` on top of this process's environment; the CompletedProcess."""
    return subprocess.run([str(Path(sys.executable).with_name("flask")), "--app", "app_b", *args],
                          cwd=REPO / "app_b", env={**os.environ, "PYTHONPATH": str(REPO), **environ},
                          capture_output=True, text=True, timeout=60)


def clean_checkout(dest):
    """Copy what a fresh clone plus the uncommitted work would hold: tracked and untracked files,
    minus what .gitignore excludes (virtualenvs, local databases, caches)."""
    listing = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], capture_output=True, check=True)
    for rel in filter(None, listing.stdout.decode().split("\0")):
        src = REPO / rel
        if src.is_file():  # a tracked file deleted in the working tree is not there
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


class Services:
    """Starts real gunicorn processes of app_b / app_a on free loopback ports, logging into
    `tmp_path`; `stop_all` stops them (the `services` fixture does)."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.db_path = str(tmp_path / "app_b.sqlite3")
        self.started = []

    def _start(self, name, port, env, ready_path="/readyz"):
        service = Service(name, port, env, log_path=str(self.tmp_path / f"{name}.log"),
                          ready_path=ready_path)
        self.started.append(service)
        return service.start()

    def app_b(self, port=None, database_url=None, **env):
        """app_b on SQLite in `tmp_path`, or on PostgreSQL at `database_url`."""
        self.app_b_env = {**({"APP_B_DATABASE_URL": database_url} if database_url
                             else {"APP_B_DB_PATH": self.db_path}), **DEV_SEED, **env}
        return self._start("app_b", port or free_port(), self.app_b_env)

    def tokens(self, *args):
        """`flask --app app_b tokens ARGS` on the database of the last app_b started."""
        return flask_cli(self.app_b_env, "tokens", *args)

    def app_a(self, app_b_url, ready_path="/readyz", **env):
        """app_a, started once `ready_path` answers (/readyz: once it has reached app_b)."""
        return self._start("app_a", free_port(), {"APP_B_URL": app_b_url, **env}, ready_path)

    def edge(self, app_a_url):
        """nginx with edge/nginx.conf in front of app_a's gunicorn at `app_a_url`."""
        require_nginx()
        service = Edge(free_port(), app_a_url, log_path=str(self.tmp_path / "edge.log"))
        self.started.append(service)
        return service.start()

    def logs(self, name):
        path = self.tmp_path / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def logs_with(self, name, text, timeout=5):
        """`name`'s log once it contains `text`: a worker writes its request lines in batches,
        within a fraction of a second (servicekit/logbatch.py)."""
        return poll(lambda: text in self.logs(name) and self.logs(name), timeout) or self.logs(name)

    def stop_all(self):
        for service in reversed(self.started):
            service.stop()
