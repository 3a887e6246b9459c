"""The images: both services and app_a's edge proxy, built from a clean copy of the working tree
with scripts/docker-build.sh (its base image as BASE_IMAGE / OFFLINE_BASE_IMAGE choose), run
locked down, talking to each other over a Docker network.

Locked down = read-only root filesystem, tmpfs /tmp, no capabilities, no-new-privileges, uid
10001; ports published on 127.0.0.1 only. Everything created here carries one per-session name
prefix and is removed afterwards (the build cache stays, so a second run builds in seconds).
"""
import io
import json
import os
import secrets
import shutil
import subprocess
import tarfile
import time

import pytest
import requests

from harness.docker import PREFIX
from harness.stack import JOBS_TEXT, REPO, clean_checkout, free_port, require_tool

SERVICES = {"app_a": 5000, "app_b": 5001}
BUILDS = (*SERVICES, "edge")
SEED_USER = "image-test"
# The image sets no database (APP_B_DB_PATH and APP_B_DATABASE_URL exclude each other): base/
# gives it this one, on the /data volume.
SQLITE = {"APP_B_DB_PATH": "/data/app_b.sqlite3"}


@pytest.fixture(scope="session")
def images(engine, tmp_path_factory):
    """Every image, built with the project's scripts; their tags are removed afterwards."""
    source = REPO
    if shutil.which("git") and (REPO / ".git").exists():
        source = clean_checkout(tmp_path_factory.mktemp("checkout"))
    tags = {}
    try:
        for service in BUILDS:
            tag = f"{PREFIX}-{service}:test"
            build = subprocess.run([str(source / "scripts" / "docker-build.sh"), service, "--quiet"],
                                   capture_output=True, text=True, timeout=900,
                                   env={**os.environ, "IMAGE": tag})
            assert build.returncode == 0, f"{service} build failed:\n{build.stdout}{build.stderr}"
            tags[service] = tag
        yield tags
    finally:
        engine.cleanup()  # stopped containers would keep their images
        for tag in tags.values():
            engine("image", "rm", tag, check=False)


@pytest.fixture
def token():
    return secrets.token_urlsafe(24)


def auth(container, token):
    return requests.post(f"{container.url}/auth", data={"token": token}, timeout=10)


@pytest.mark.parametrize("seed_from", ["env", "file"])
@pytest.mark.docker
@pytest.mark.slow
def test_app_b_answers_for_the_seeded_user(engine, images, token, tmp_path, seed_from):
    if seed_from == "env":
        env, mounts = {**SQLITE, "SEED_USERNAME": SEED_USER, "SEED_TOKEN": token}, []
    else:
        secret = tmp_path / "seed_token"
        secret.write_text(token + "\n")
        secret.chmod(0o444)  # the container's user is 10001, not the file's owner
        env = {**SQLITE, "SEED_USERNAME": SEED_USER, "SEED_TOKEN_FILE": "/run/secrets/seed_token"}
        mounts = ["--volume", f"{secret}:/run/secrets/seed_token:ro"]
    app_b = engine.start(images["app_b"], 5001, "--volume", f"{engine.volume()}:/data", *mounts,
                         env=env)

    response = auth(app_b, token)
    assert response.status_code == 200 and response.json() == {"username": SEED_USER}
    assert auth(app_b, "not-" + token).status_code == 401


@pytest.mark.docker
@pytest.mark.slow
def test_app_a_and_app_b_end_to_end_on_a_docker_network(engine, images, token):
    network = engine.network()
    engine.start(images["app_b"], 5001, "--network", network, "--network-alias", "app-b",
                 "--volume", f"{engine.volume()}:/data",
                 env={**SQLITE, "SEED_USERNAME": SEED_USER, "SEED_TOKEN": token})
    app_a = engine.start(images["app_a"], 5000, "--network", network,
                         env={"APP_B_URL": "http://app-b:5001", "APP_B_TIMEOUT": "2"})

    hello = requests.get(f"{app_a.url}/hello", timeout=10)
    assert hello.status_code == 200 and hello.text == "Hello there\n"
    jobs = requests.post(f"{app_a.url}/jobs", headers={"Authorization": token}, timeout=10)
    assert jobs.status_code == 200 and jobs.text == JOBS_TEXT
    unknown = requests.post(f"{app_a.url}/jobs", headers={"Authorization": "not-" + token}, timeout=10)
    assert unknown.status_code == 401


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.docker
@pytest.mark.slow
def test_sigterm_stops_the_container_quickly_and_cleanly(engine, images, token, service):
    # One worker: once it answers it has booted, so this stops a running server (a worker
    # still booting is tests/test_stack.py's).
    # app_a alone: serving (/healthz), though never ready without an app_b to reach.
    options, env, ready = [], {"APP_B_URL": "http://app-b:5001", "GUNICORN_WORKERS": "1"}, "/healthz"
    if service == "app_b":
        ready = "/readyz"
        options, env = ["--volume", f"{engine.volume()}:/data"], {**SQLITE, "SEED_USERNAME": SEED_USER,
                                                                 "SEED_TOKEN": token,
                                                                 "GUNICORN_WORKERS": "1"}
    container = engine.start(images[service], SERVICES[service], *options, env=env, ready=ready)

    started = time.monotonic()
    engine("stop", "--time", "10", container.name, timeout=30)
    elapsed = time.monotonic() - started

    state = container.state()
    logs = container.logs()
    assert elapsed < 5, f"docker stop took {elapsed:.1f} s: SIGTERM did not stop gunicorn"
    assert state["ExitCode"] == 0 and not state["OOMKilled"], f"{state}\n{logs}"
    assert "Shutting down: Master" in logs and "Traceback" not in logs, logs


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.docker
@pytest.mark.slow
def test_the_tokens_command_runs_in_the_image_with_the_containers_environment(
        engine, images, token, request, backend):
    """What `kubectl exec deploy/app-b -- flask --app app_b tokens ...` does: the CLI from the
    image's working directory, its PATH and environment, on a read-only root filesystem."""
    env = {"SEED_USERNAME": SEED_USER, "SEED_TOKEN": token}
    if backend == "sqlite":
        app_b = engine.start(images["app_b"], 5001, "--volume", f"{engine.volume()}:/data",
                             env={**SQLITE, **env})
    else:  # a real PostgreSQL on this machine's loopback, through the image's own psycopg
        url = request.getfixturevalue("postgres").new_database()
        app_b = engine.start(images["app_b"], free_port(), env={"APP_B_DATABASE_URL": url, **env},
                             host_network=True)
        # psycopg[binary]: the wheel's own libpq, no Debian package in the image.
        probe = "import psycopg; print(psycopg.pq.__impl__)"
        assert engine("exec", app_b.name, "python", "-c", probe).stdout.strip() == "binary"

    def tokens(*args):
        return engine("exec", app_b.name, "flask", "--app", "app_b", "tokens", *args)
    issued = tokens("create", "alice", "--expires-in", "1d").stdout.splitlines()[-1]
    assert auth(app_b, issued).json() == {"username": "alice"}
    listing = tokens("list").stdout
    assert "alice" in listing and issued not in listing
    tokens("revoke", "alice")
    assert auth(app_b, issued).status_code == 401
    assert auth(app_b, token).json() == {"username": SEED_USER}


@pytest.mark.docker
@pytest.mark.slow
def test_edge_fronts_app_a_on_the_pods_loopback_and_stops_gracefully(engine, images, token):
    """As in the app-a pod: gunicorn on loopback only, nginx (edge/nginx.conf) on the public
    port of the same network namespace; nginx's stop signal lets it finish and exit 0."""
    network = engine.network()
    engine.start(images["app_b"], 5001, "--network", network, "--network-alias", "app-b",
                 "--volume", f"{engine.volume()}:/data",
                 env={**SQLITE, "SEED_USERNAME": SEED_USER, "SEED_TOKEN": token})
    app_a = engine.start(images["app_a"], 5000, "--network", network, ready=None,
                         env={"APP_B_URL": "http://app-b:5001", "HOST": "127.0.0.1", "PORT": "5080"})
    edge = engine.join(app_a, images["edge"])
    edge.wait_ready()  # /readyz through nginx: gunicorn answered behind it

    jobs = requests.post(f"{edge.url}/jobs", headers={"Authorization": token}, timeout=10)
    assert jobs.status_code == 200 and jobs.text == JOBS_TEXT and jobs.headers["Server"] == "nginx"
    too_big = requests.post(f"{edge.url}/jobs", headers={"Authorization": token}, data=b"x" * 20000,
                            timeout=10)
    assert too_big.status_code == 413 and too_big.json() == {"error": "Request Entity Too Large"}

    started = time.monotonic()
    engine("stop", "--time", "10", edge.name, timeout=30)
    state = edge.state()
    assert time.monotonic() - started < 5 and state["ExitCode"] == 0, f"{state}\n{edge.logs()}"
    assert "[emerg]" not in edge.logs() and "[alert]" not in edge.logs(), edge.logs()
    privileged = run_once(engine, images["edge"], "find", "/", "-xdev", "-perm", "/6000", "-type", "f",
                          user="0")
    assert privileged == "", f"setuid/setgid files:\n{privileged}"


def run_once(engine, image, *command, user=None):
    """Run a throwaway container of `image` (no network) and return its output."""
    user_flags = ["--user", user] if user else []
    result = engine("run", "--rm", "--network", "none", *user_flags, "--entrypoint", command[0],
                    image, *command[1:])
    return result.stdout.strip()


@pytest.mark.parametrize("service", BUILDS)
@pytest.mark.docker
@pytest.mark.slow
def test_runs_as_a_fixed_non_root_user_that_cannot_change_the_app(engine, images, service):
    image = images[service]
    assert run_once(engine, image, "id", "-u") == "10001"
    assert run_once(engine, image, "id", "-g") == "10001"
    # Not even without --read-only: the code, its dependencies and its config belong to root.
    code = ("/etc/nginx", "/usr/sbin/nginx") if service == "edge" else ("/app", "/opt/venv")
    writable = run_once(engine, image, "find", *code, "-writable")
    assert writable == "", f"writable by the app user:\n{writable}"


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.docker
@pytest.mark.slow
def test_no_setuid_files_package_tools_or_compilers(engine, images, service):
    image = images[service]
    privileged = run_once(engine, image, "find", "/", "-xdev", "-perm", "/6000", "-type", "f",
                          user="0")
    assert privileged == "", f"setuid/setgid files:\n{privileged}"
    probe = (
        "import importlib.util, shutil, subprocess, sys\n"
        "found = [t for t in ('pip', 'pip3', 'pip3.11', 'gcc', 'cc', 'c++', 'make') if shutil.which(t)]\n"
        "check = 'import importlib.util as u; print(*[m for m in (\"pip\", \"setuptools\", \"wheel\","
        " \"ensurepip\") if u.find_spec(m)])'\n"
        "for python in sorted({sys.executable, sys._base_executable}):\n"
        "    found += subprocess.run([python, '-c', check], capture_output=True, text=True).stdout.split()\n"
        "print(*found)\n"
    )
    assert run_once(engine, image, "python", "-c", probe) == ""


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.docker
@pytest.mark.slow
def test_only_the_images_skaffold_dev_builds_have_the_inotify_reloader(engine, images, service):
    """DEV=true (skaffold.yaml's dev profile) adds gunicorn's inotify reloader; the production
    image, the one every other build makes, has no dev-only package."""
    dev = f"{PREFIX}-{service}-dev:test"
    build = subprocess.run([str(REPO / "scripts" / "docker-build.sh"), service, "--quiet",
                            "--build-arg", "DEV=true"], capture_output=True, text=True, timeout=900,
                           env={**os.environ, "IMAGE": dev})
    assert build.returncode == 0, f"dev build failed:\n{build.stdout}{build.stderr}"
    try:
        probe = "import gunicorn.reloader as r; print(r.has_inotify)"
        assert run_once(engine, dev, "python", "-c", probe) == "True"
        assert run_once(engine, images[service], "python", "-c", probe) == "False"
    finally:
        engine("image", "rm", dev, check=False)


def layers_and_config(engine, image):
    """(file names in every layer, image config JSON) from `docker save`."""
    saved = subprocess.run([engine.cli, "save", image], capture_output=True, check=True, timeout=300)
    names, config = [], None
    with tarfile.open(fileobj=io.BytesIO(saved.stdout)) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]
        config = json.load(outer.extractfile(manifest["Config"]))
        for layer in manifest["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as inner:
                names += inner.getnames()
    return names, config


@pytest.mark.parametrize("service", BUILDS)
@pytest.mark.docker
@pytest.mark.slow
def test_no_seed_token_database_or_build_secret_in_any_layer(engine, images, service):
    names, config = layers_and_config(engine, images[service])
    assert len(names) > 1000  # the whole base filesystem was read, not an empty list
    leaked = [n for n in names if n.endswith((".sqlite", ".sqlite3", ".sqlite3-journal", ".sqlite3-wal"))
              or n.lstrip("./").startswith("run/secrets/")]
    assert leaked == []
    env = config["config"].get("Env") or []
    assert not [e for e in env if e.startswith(("SEED_", "PIP_CERT"))], env
    history = " ".join(step.get("created_by", "") for step in config.get("history", []))
    assert "SEED_TOKEN" not in history


def test_dockerfiles_pass_hadolint():
    hadolint = require_tool("hadolint")
    dockerfiles = [str(REPO / folder / "Dockerfile") for folder in (*SERVICES, "loadtest", "postgres")]
    result = subprocess.run([hadolint, *dockerfiles], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


@pytest.mark.docker
@pytest.mark.slow
def test_make_scan_images_passes_and_says_what_it_skipped(images):
    """The seed's `scan-images` task end to end (on this session's images): hadolint, checkov on
    the Dockerfiles and every rendered overlay, an SBOM per image, and the honest skip line."""
    result = subprocess.run(["make", "--no-print-directory", "scan-images",
                             f"IMAGES={images['app_a']} {images['app_b']} {images['edge']}"],
                            cwd=REPO, capture_output=True, text=True, timeout=900)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "hadolint: no findings" in out and "Failed checks: 0" in out
    assert out.count(".spdx.json") == 3
    assert "vulnerability scan: SKIPPED" in out


@pytest.mark.docker
@pytest.mark.slow
def test_load_generator_image_runs_the_repository_locustfile_locked_down(engine, tmp_path):
    """loadtest/Dockerfile (components/loadgenerator's image): the hash-pinned Locust of the dev
    virtualenv, the locustfile byte for byte, a fixed non-root user, nothing writable by it."""
    tag = f"{PREFIX}-loadgenerator:test"
    build = subprocess.run([str(REPO / "scripts" / "docker-build.sh"), "loadtest", "--quiet"],
                           capture_output=True, text=True, timeout=900, env={**os.environ, "IMAGE": tag})
    assert build.returncode == 0, f"build failed:\n{build.stdout}{build.stderr}"
    try:
        version = engine("run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL",
                         "--security-opt", "no-new-privileges", tag, "--version").stdout
        pinned = next(line for line in (REPO / "loadtest" / "requirements.txt").read_text().splitlines()
                      if line.startswith("locust=="))
        assert version.startswith(f"locust {pinned.split('==')[1].split()[0]} "), version
        assert run_once(engine, tag, "cat", "/loadtest/jobs.py") == \
            (REPO / "loadtest" / "jobs.py").read_text().strip()
        assert run_once(engine, tag, "id", "-u") == "10001"
        assert run_once(engine, tag, "find", "/loadtest", "/opt/venv", "-writable") == ""
    finally:
        engine("image", "rm", tag, check=False)
