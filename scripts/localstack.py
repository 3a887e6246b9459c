"""Run app_b and app_a under gunicorn on loopback: `make run` (no container engine needed);
`make run-edge` (--edge) puts nginx with edge/nginx.conf in front of app_a, as in the pod.

The integration tests drive the same `Service` and `Edge` classes, so what they prove is what
`make run` and `make run-edge` do.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEV_SEED = {"SEED_USERNAME": "admin", "SEED_TOKEN": "mytoken"}  # dev-only default user
EDGE_CONFIG = os.path.join(REPO, "edge", "nginx.conf")
NGINX_MISSING = "nginx not found: install Debian's nginx-light (sudo apt-get install nginx-light)"


def free_port():
    """A loopback TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def poll(check, timeout, interval=0.05):
    """Call `check` until it returns a true value and return that; at the deadline return its
    last (false) value. Exceptions from `check` propagate: it can fail early."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)  # polling interval


class Service:
    """One gunicorn process serving `app_dir` on 127.0.0.1:`port`, started once `ready_path`
    answers 200."""

    def __init__(self, app_dir, port, env, log_path=None, ready_path="/readyz"):
        self.app_dir, self.port, self.log_path, self.ready_path = app_dir, port, log_path, ready_path
        # The services import the shared kit (servicekit/) from the repository root.
        self.env = {**os.environ, "PYTHONPATH": REPO, "HOST": "127.0.0.1", "PORT": str(port), **env}
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def command(self):
        return [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]

    def start(self, timeout=20.0):
        out = open(self.log_path, "ab") if self.log_path else None
        self.proc = subprocess.Popen(
            self.command(), cwd=os.path.join(REPO, self.app_dir), env=self.env, stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True)  # own process group: signal() reaches master and workers
        if out:
            out.close()
        self.wait_ready(timeout)
        return self

    def ready(self):
        """One readiness check: `ready_path` answers 200."""
        try:
            with urllib.request.urlopen(self.url + self.ready_path, timeout=1) as response:
                return response.status == 200
        except urllib.error.HTTPError:
            return False

    def wait_ready(self, timeout):
        """Poll `ready` until it holds; fail early if the process dies."""
        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.app_dir} exited with {self.proc.returncode} during start-up")
            try:
                return self.ready()
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return False
        if not poll(up, timeout):
            raise TimeoutError(f"{self.app_dir} not ready on {self.url} after {timeout} s")

    stop_signal = signal.SIGTERM  # gunicorn's graceful shutdown

    def signal(self, sig):
        """Send `sig` to gunicorn's master and workers (e.g. SIGSTOP to freeze the service)."""
        os.killpg(self.proc.pid, sig)

    def stop(self, timeout=15.0):
        """The graceful stop signal, SIGKILL only if that hangs; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.signal(signal.SIGCONT)  # a frozen service must be able to act on the signal
        self.proc.send_signal(self.stop_signal)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.proc.wait()


def nginx_binary():
    """nginx's path, or None: $NGINX if set, else nginx on PATH or in /usr/sbin (Debian's place,
    which a user's PATH may lack)."""
    name = os.environ.get("NGINX", "nginx")
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")


def edge_config(listen, upstream):
    """edge/nginx.conf with its two marked addresses set: listen on `listen` (host:port),
    forward to gunicorn at `upstream` (host:port). Everything else stays as the image has it."""
    text = open(EDGE_CONFIG, encoding="utf-8").read()
    for marker, directive in (("EDGE-LISTEN", f"listen {listen};"),
                              ("EDGE-UPSTREAM", f"server {upstream};")):
        text, found = re.subn(rf"^(\s*)[^#\n]*;(?=\s*# {marker}\b)", rf"\g<1>{directive}", text,
                              flags=re.M)
        if found != 1:
            raise ValueError(f"{EDGE_CONFIG}: expected one line marked {marker}, found {found}")
    return text


class Edge(Service):
    """nginx on 127.0.0.1:`port` with edge/nginx.conf, in front of gunicorn at `upstream_url`;
    its prefix (pid file, temporary bodies) is a private temporary directory."""

    stop_signal = signal.SIGQUIT  # nginx's graceful stop; SIGTERM is its fast one

    def __init__(self, port, upstream_url, log_path=None):
        super().__init__("edge", port, {}, log_path)
        self.upstream = upstream_url.removeprefix("http://")
        self.nginx = nginx_binary()
        if not self.nginx:
            raise FileNotFoundError(NGINX_MISSING)
        self.prefix = tempfile.mkdtemp(prefix="app-ab-edge-")
        self.config = os.path.join(self.prefix, "nginx.conf")
        with open(self.config, "w", encoding="utf-8") as out:
            out.write(edge_config(f"127.0.0.1:{port}", self.upstream))

    def command(self):
        return [self.nginx, "-p", self.prefix, "-c", self.config, "-g", "daemon off;"]

    def stop(self, timeout=15.0):
        try:
            return super().stop(timeout)
        finally:
            shutil.rmtree(self.prefix, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-a", type=int, default=5000)
    parser.add_argument("--port-b", type=int, default=5001)
    parser.add_argument("--db", default=os.path.join(REPO, "var", "app_b.sqlite3"))
    parser.add_argument("--edge", action="store_true",
                        help="nginx (edge/nginx.conf) on --port-a in front of app_a's gunicorn")
    parser.add_argument("--port-gunicorn", type=int, default=5080,
                        help="app_a's gunicorn behind nginx (with --edge)")
    args = parser.parse_args()

    seed = {key: os.environ.get(key, value) for key, value in DEV_SEED.items()}
    app_b = Service("app_b", args.port_b, {"APP_B_DB_PATH": args.db, **seed})
    app_a = Service("app_a", args.port_gunicorn if args.edge else args.port_a, {"APP_B_URL": app_b.url})
    stack = [app_b, app_a]
    try:
        if args.edge:
            stack.append(Edge(args.port_a, app_a.url))
    except FileNotFoundError as exc:
        print(f"make run-edge: {exc}", file=sys.stderr)
        return 1
    public = stack[-1]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        for service in stack:
            service.start()
        token = seed["SEED_TOKEN"]
        running = "   ".join(f"{service.app_dir}: {service.url}" for service in stack)
        edge = f"nginx {stack[-1].config} -> gunicorn {app_a.url}\n" if args.edge else ""
        print(f"\n{running}   (Ctrl-C stops all)\n{edge}"
              f"  curl {public.url}/hello\n"
              f"  curl -X POST -H 'Authorization: {token}' {public.url}/jobs\n"
              f"  ab -m POST -H 'Authorization: {token}' -n 500 -c 4 {public.url}/jobs\n"
              f"  {'' if token == DEV_SEED['SEED_TOKEN'] else f'LOCUST_TOKEN={token} '}make loadtest\n",
              flush=True)
        while all(service.proc.poll() is None for service in stack):
            time.sleep(0.5)  # supervising: wake up to notice a crashed service
        print("a service exited; stopping the stack", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for service in reversed(stack):
            service.stop()


if __name__ == "__main__":
    sys.exit(main())
