"""Benchmark: this design against a naive re-implementation of the original one, same run.

    .venv/bin/python bench/run.py [--requests 5000]

Starts both stacks on loopback, drives them with ab (-c 4, as the acceptance run) and prints
requests/s, p50, p99 and failures per row, then the ratios. Not a test: numbers, no verdict.
"""
import argparse
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(REPO, "scripts"), os.path.join(REPO, "tests")]
from localstack import Service  # noqa: E402
from support import free_port  # noqa: E402

NAIVE = os.path.join(REPO, "bench", "naive")


def ab(url, requests, post=False):
    command = ["ab", "-q", "-n", str(requests), "-c", "4"]
    if post:
        command += ["-m", "POST", "-H", "Authorization: mytoken"]
    out = subprocess.run(command + [url], capture_output=True, text=True, timeout=600, check=True).stdout

    def number(pattern, default=None):
        match = re.search(pattern, out, re.M)
        return float(match.group(1)) if match else default

    return {"rps": number(r"^Requests per second:\s+([\d.]+)"),
            "p50": number(r"^\s+50%\s+(\d+)"), "p99": number(r"^\s+99%\s+(\d+)"),
            "failed": int(number(r"^Failed requests:\s+(\d+)") + number(r"^Non-2xx responses:\s+(\d+)", 0))}


class Naive(Service):
    """The naive pair runs the way the original did: one sync gunicorn worker, default settings."""

    def __init__(self, module, port, env, log_path):
        super().__init__(NAIVE, port, env, log_path)
        self.module = module

    def start(self, timeout=20.0):
        out = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{self.port}", f"{self.module}:app"],
            cwd=NAIVE, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self.wait_answering(timeout)
        return self

    def wait_answering(self, timeout):
        """Poll until the server answers HTTP at all (the naive apps have no /readyz)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/", timeout=1)
            except urllib.error.HTTPError:
                return  # an HTTP answer (404 here) means it is serving
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        raise TimeoutError(f"{self.module} not answering on {self.url}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-")
    with sqlite3.connect(os.path.join(NAIVE, "naive_b.sqlite3")) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS users (username TEXT, token TEXT)")
        conn.execute("DELETE FROM users")
        conn.execute("INSERT INTO users VALUES ('admin', 'mytoken')")
    quiet = {"LOG_LEVEL": "WARNING"}
    app_b = Service("app_b", free_port(), {"APP_B_DB_PATH": os.path.join(work, "b.sqlite3"),
                                           "SEED_USERNAME": "admin", "SEED_TOKEN": "mytoken", **quiet},
                    log_path=os.path.join(work, "app_b.log"))
    app_a = Service("app_a", free_port(), {"APP_B_URL": "", **quiet}, log_path=os.path.join(work, "app_a.log"))
    naive_b = Naive("naive_b", free_port(), {}, os.path.join(work, "naive_b.log"))
    naive_a = Naive("naive_a", free_port(), {}, os.path.join(work, "naive_a.log"))
    started = []
    try:
        for service in (app_b, naive_b):
            started.append(service.start())
        app_a.env["APP_B_URL"], naive_a.env["APP_B_URL"] = app_b.url, naive_b.url
        for service in (app_a, naive_a):
            started.append(service.start())
        rows = {
            "this design  POST /jobs": ab(f"{app_a.url}/jobs", args.requests, post=True),
            "this design  GET /hello": ab(f"{app_a.url}/hello", args.requests),
            "naive        POST /jobs": ab(f"{naive_a.url}/jobs", args.requests, post=True),
            "naive        GET /hello": ab(f"{naive_a.url}/hello", args.requests),
        }
    finally:
        for service in reversed(started):
            service.stop()
        os.remove(os.path.join(NAIVE, "naive_b.sqlite3"))
    print(f"ab -n {args.requests} -c 4, {os.cpu_count()} cores\n")
    print(f"{'row':26} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'failed':>7}")
    for name, row in rows.items():
        print(f"{name:26} {row['rps']:8.0f} {row['p50']:7.0f} {row['p99']:7.0f} {row['failed']:7d}")
    jobs, naive = rows["this design  POST /jobs"]["rps"], rows["naive        POST /jobs"]["rps"]
    print(f"\nPOST /jobs vs naive: {jobs / naive:.2f}x;  "
          f"POST /jobs as a fraction of GET /hello: {jobs / rows['this design  GET /hello']['rps']:.2f}")


if __name__ == "__main__":
    main()
