"""Run app_b and app_a under gunicorn on loopback: `make run` (no container engine needed).

The integration tests drive the same `Service` class, so what they prove is what `make run` does.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEV_SEED = {"SEED_USERNAME": "admin", "SEED_TOKEN": "mytoken"}  # dev-only default user


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
    """One gunicorn process serving `app_dir` on 127.0.0.1:`port`."""

    def __init__(self, app_dir, port, env, log_path=None):
        self.app_dir, self.port, self.log_path = app_dir, port, log_path
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
        """One readiness check: /readyz answers 200."""
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as response:
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

    def signal(self, sig):
        """Send `sig` to gunicorn's master and workers (e.g. SIGSTOP to freeze the service)."""
        os.killpg(self.proc.pid, sig)

    def stop(self, timeout=15.0):
        """SIGTERM (gunicorn's graceful shutdown), SIGKILL only if that hangs; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.signal(signal.SIGCONT)  # a frozen service must be able to act on SIGTERM
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-a", type=int, default=5000)
    parser.add_argument("--port-b", type=int, default=5001)
    parser.add_argument("--db", default=os.path.join(REPO, "var", "app_b.sqlite3"))
    args = parser.parse_args()

    seed = {key: os.environ.get(key, value) for key, value in DEV_SEED.items()}
    app_b = Service("app_b", args.port_b, {"APP_B_DB_PATH": args.db, **seed})
    app_a = Service("app_a", args.port_a, {"APP_B_URL": app_b.url})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        app_b.start()
        app_a.start()
        token = seed["SEED_TOKEN"]
        print(f"\napp_a: {app_a.url}   app_b: {app_b.url}   (Ctrl-C stops both)\n"
              f"  curl {app_a.url}/hello\n"
              f"  curl -X POST -H 'Authorization: {token}' {app_a.url}/jobs\n"
              f"  ab -m POST -H 'Authorization: {token}' -n 500 -c 4 {app_a.url}/jobs\n"
              f"  {'' if token == DEV_SEED['SEED_TOKEN'] else f'LOCUST_TOKEN={token} '}make loadtest\n",
              flush=True)
        while app_a.proc.poll() is None and app_b.proc.poll() is None:
            time.sleep(0.5)  # supervising: wake up to notice a crashed service
        print("a service exited; stopping the stack", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for service in (app_a, app_b):
            service.stop()


if __name__ == "__main__":
    sys.exit(main())
