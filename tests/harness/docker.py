"""The Docker CLI for the image suites: containers run locked down, published on 127.0.0.1 only,
and everything created carries one per-session name prefix and is removed by `cleanup`."""
import json
import os
import subprocess
import uuid

import requests

from .stack import missing, poll, require_tool

PREFIX = f"app-ab-images-{uuid.uuid4().hex[:8]}"
LOCKED_DOWN = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
               "--security-opt", "no-new-privileges", "--user", "10001:10001"]


def docker_engine():
    """The docker client, once an engine answers (skip on a laptop without one, fail in CI)."""
    cli = require_tool("docker")
    info = subprocess.run([cli, "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        missing(f"no Docker engine answers (run make docker as root): {info.stderr.strip()}")
    return Docker(cli)


class Docker:
    """Thin wrapper over the CLI that remembers what it created, for cleanup."""

    def __init__(self, cli):
        self.cli = cli
        self.created = []  # (kind, name), removed in reverse order

    def __call__(self, *args, check=True, timeout=120, env=None):
        result = subprocess.run([self.cli, *args], capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, **(env or {})})
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}{result.stderr}")
        return result

    def network(self):
        name = f"{PREFIX}-net-{uuid.uuid4().hex[:6]}"
        self("network", "create", name)
        self.created.append(("network", name))
        return name

    def volume(self):
        name = f"{PREFIX}-data-{uuid.uuid4().hex[:6]}"
        self("volume", "create", name)
        self.created.append(("volume", name))
        return name

    def start(self, image, port, *options, env=None, ready="/readyz", host_network=False):
        """Run `image` locked down with `port` published on a random 127.0.0.1 port, wait for
        the path `ready` to answer 200 (unless None: something else will serve that port); env values travel
        through this process's environment, not the command line. `host_network`: share the
        host's network instead (to reach a server on its loopback), the service then listening
        on 127.0.0.1:`port` itself."""
        name = f"{PREFIX}-{uuid.uuid4().hex[:6]}"
        env = {**(env or {}), **({"HOST": "127.0.0.1", "PORT": str(port)} if host_network else {})}
        env_flags = [flag for key in env for flag in ("--env", key)]
        network = ["--network", "host"] if host_network else ["--publish", f"127.0.0.1::{port}"]
        self("run", "--detach", "--name", name, *LOCKED_DOWN, *network, *env_flags, *options, image,
             env=env)
        self.created.append(("container", name))
        address = f"127.0.0.1:{port}" if host_network else self("port", name, f"{port}/tcp").stdout.split()[0]
        container = Container(self, name, f"http://{address}")
        if ready:
            container.wait_ready(path=ready)
        return container

    def join(self, container, image):
        """Run `image` locked down in `container`'s network namespace, as a second container
        of one pod: both share loopback and the published ports."""
        name = f"{PREFIX}-{uuid.uuid4().hex[:6]}"
        self("run", "--detach", "--name", name, *LOCKED_DOWN,
             "--network", f"container:{container.name}", image)
        self.created.append(("container", name))
        return Container(self, name, container.url)

    def remove(self, kind, name):
        flags = {"container": ["rm", "--force", "--volumes"], "network": ["network", "rm"],
                 "volume": ["volume", "rm", "--force"]}[kind]
        self(*flags, name, check=False)

    def cleanup(self):
        while self.created:
            self.remove(*self.created.pop())


class Container:
    def __init__(self, docker, name, url):
        self.docker, self.name, self.url = docker, name, url

    def state(self):
        return json.loads(self.docker("inspect", "--format", "{{json .State}}", self.name).stdout)

    def logs(self):
        result = self.docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def wait_ready(self, timeout=30.0, path="/readyz"):
        def ready():
            if not self.state()["Running"]:
                raise AssertionError(f"{self.name} exited during start-up:\n{self.logs()}")
            try:
                return requests.get(self.url + path, timeout=1).status_code == 200
            except requests.RequestException:
                return False
        assert poll(ready, timeout, interval=0.1), f"{self.name} not ready after {timeout} s:\n{self.logs()}"
