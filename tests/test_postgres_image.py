"""The PostgreSQL image (postgres/Dockerfile, components/postgres): built with
scripts/docker-build.sh on Debian's postgresql-15, run the way the StatefulSet runs it: read-only
root, tmpfs /tmp and socket directory, no capabilities, no-new-privileges, uid 10002, the data on a
volume and the password from a mounted file. Clients are psql inside the container over TCP
(127.0.0.1), which is the path app-b's logins take through pg_hba.conf.
"""
import os
import subprocess
import time
import uuid

import pytest

from harness.docker import PREFIX
from harness.stack import REPO, poll

LOCKED_DOWN = ["--read-only", "--tmpfs", "/tmp", "--tmpfs", "/var/run/postgresql:uid=10002,gid=10002",
               "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", "10002:10002"]
APP = {"POSTGRES_USER": "app_b", "POSTGRES_DB": "app_b", "POSTGRES_PASSWORD_FILE": "/run/secrets/password"}

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def image(engine):
    tag = f"{PREFIX}-postgres:test"
    build = subprocess.run([str(REPO / "scripts" / "docker-build.sh"), "postgres", "--quiet"],
                           capture_output=True, text=True, timeout=900, env={**os.environ, "IMAGE": tag})
    assert build.returncode == 0, f"postgres build failed:\n{build.stdout}{build.stderr}"
    yield tag
    engine.cleanup()
    engine("image", "rm", tag, check=False)


class Server:
    """One container of the image on a volume, with its password file in `secret_dir`."""

    def __init__(self, engine, image, tmp_path, password="pa'ss word"):
        self.engine, self.image = engine, image
        self.secret_dir = tmp_path / "secret"
        self.secret_dir.mkdir()
        self.set_password(password)
        self.volume = engine.volume()
        self.name = None

    def set_password(self, password):
        path = self.secret_dir / "password"
        path.write_text(password + "\n")
        path.chmod(0o444)  # the container's user is 10002, not the file's owner
        self.password = password

    def start(self, env=APP, wait=True):
        self.name = f"{PREFIX}-pg-{uuid.uuid4().hex[:6]}"
        self.engine("run", "--detach", "--name", self.name, *LOCKED_DOWN,
                    *[flag for key in env for flag in ("--env", key)],
                    "--volume", f"{self.secret_dir}:/run/secrets:ro",
                    "--volume", f"{self.volume}:/var/lib/postgresql/data", self.image, env=env)
        self.engine.created.append(("container", self.name))
        if wait:
            ready = poll(lambda: self.engine("exec", self.name, "pg_isready", "--quiet",
                                             check=False).returncode == 0, 60, interval=0.2)
            assert ready, f"postgres never accepted connections:\n{self.logs()}"
        return self

    def psql(self, sql, user="app_b", database="app_b", password=None):
        """psql over TCP inside the container; the CompletedProcess."""
        password = self.password if password is None else password
        return self.engine("exec", "--env", "PGPASSWORD", self.name, "psql", "--no-psqlrc", "-qtA",
                           "-h", "127.0.0.1", "-U", user, "-d", database, "-c", sql,
                           check=False, env={"PGPASSWORD": password})

    def stop(self):
        started = time.monotonic()
        self.engine("stop", "--time", "20", self.name, timeout=60)
        return time.monotonic() - started

    def state(self):
        return self.engine("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout.strip()

    def logs(self):
        result = self.engine("logs", self.name, check=False)
        return result.stdout + result.stderr


def test_locked_down_first_start_makes_a_cluster_only_the_app_role_can_log_in_to(engine, image, tmp_path):
    server = Server(engine, image, tmp_path).start()
    assert server.psql("SELECT current_user").stdout.strip() == "app_b"
    wrong = server.psql("SELECT 1", password="nope")
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
    # The app role reaches only its database; the superuser has no login over TCP at all.
    assert server.psql("SELECT 1", database="postgres").returncode != 0
    assert "no pg_hba.conf entry" in server.psql("SELECT 1", user="postgres", password="").stderr
    # The admin path of the runbook: the superuser over the local socket, as the OS user.
    admin = engine("exec", server.name, "psql", "-qtA", "-c", "SELECT rolsuper FROM pg_roles "
                   "WHERE rolname = 'app_b'")
    assert admin.stdout.strip() == "f", "the application role must not be a superuser"


def test_data_survives_a_restart_and_the_password_follows_the_secret_file(engine, image, tmp_path):
    server = Server(engine, image, tmp_path).start()
    assert server.psql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('here')").returncode == 0
    server.stop()
    assert "no cluster" in server.logs()
    old = server.password
    server.set_password("rotated-" + uuid.uuid4().hex)
    server.start()
    assert server.psql("SELECT v FROM kept").stdout.strip() == "here"
    assert server.psql("SELECT 1", password=old).returncode != 0
    assert "no cluster" not in server.logs(), "the second container must find the cluster"


def test_stop_is_quick_and_clean_with_a_client_connected(engine, image, tmp_path):
    """SIGINT (fast shutdown), the image's STOPSIGNAL: docker's default SIGTERM would be a smart
    shutdown, waiting for every client (app_b's pool) to leave, until SIGKILL."""
    server = Server(engine, image, tmp_path).start()
    engine("exec", "--detach", "--env", "PGPASSWORD", server.name, "psql", "-h", "127.0.0.1",
           "-U", "app_b", "-d", "app_b", "-c", "SELECT pg_sleep(60)", env={"PGPASSWORD": server.password})
    assert poll(lambda: server.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                                    "'%pg_sleep(60)%' AND pid <> pg_backend_pid()").stdout.strip() == "1", 10)
    elapsed = server.stop()
    assert elapsed < 5, f"docker stop took {elapsed:.1f} s with a client connected"
    assert server.state() == "0" and "database system is shut down" in server.logs()


def test_runs_as_postgres_10002_with_no_setuid_files(engine, image):
    ids = engine("run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", "id -u; id -g")
    assert ids.stdout.split() == ["10002", "10002"], ids.stdout
    privileged = engine("run", "--rm", "--network", "none", "--user", "0", "--entrypoint", "find",
                        image, "/", "-xdev", "-perm", "/6000", "-type", "f")
    assert privileged.stdout.strip() == "", f"setuid/setgid files:\n{privileged.stdout}"


@pytest.mark.parametrize("env, message", [
    ({**APP, "POSTGRES_USER": "app-b; DROP"}, "invalid name"),
    ({**APP, "POSTGRES_PASSWORD_FILE": "/run/secrets/missing"}, "is missing or empty"),
], ids=["bad-name", "no-password"])
def test_bad_configuration_is_one_line_and_a_non_zero_exit(engine, image, tmp_path, env, message):
    server = Server(engine, image, tmp_path).start(env=env, wait=False)
    assert poll(lambda: engine("inspect", "--format", "{{.State.Running}}", server.name)
                .stdout.strip() == "false", 30)
    assert server.state() == "2"
    logs = server.logs().strip().splitlines()
    assert len(logs) == 1 and message in logs[0], logs
    listing = engine("run", "--rm", "--volume", f"{server.volume}:/data", "--entrypoint", "ls", image,
                     "-A", "/data").stdout
    assert listing.strip() == "", "nothing may be written before the configuration is checked"
