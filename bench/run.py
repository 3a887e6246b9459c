"""Benchmark: this design against a naive re-implementation of the original one, same run.

    make bench      (= PYTHONPATH=scripts .venv/bin/python bench/run.py [--requests 5000])

Starts the stacks on loopback, drives them with ab (-c 4, as the acceptance run) in interleaved
rounds, once with the Locust load test and once with a single client, and prints requests/s, p50,
p99 and failures per row (the median round), then the ratios.
Environment variables (GUNICORN_WORKERS, ...) pass through to this design. Not a test: numbers,
no verdict.
"""
import argparse
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

from localpostgres import PostgresServer, find_bindir
from localstack import REPO, Edge, Service, free_port

NAIVE = os.path.join(REPO, "bench", "naive")
POSTGRESQL_ROW = "PostgreSQL   POST /jobs"  # app_b on PostgreSQL, else as "this design"


def ab(url, requests, post=False, concurrency=4):
    command = ["ab", "-q", "-n", str(requests), "-c", str(concurrency)]
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

    def command(self):
        return [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{self.port}",
                f"{self.module}:app"]

    def ready(self):
        """The naive apps have no /readyz: any HTTP answer (404 for /) means it is serving."""
        try:
            urllib.request.urlopen(f"{self.url}/", timeout=1)
        except urllib.error.HTTPError:
            pass
        return True


@contextlib.contextmanager
def this_design(work, database_url=None, **env):
    """app_b (on SQLite, or PostgreSQL at `database_url`) + app_a as `make run` starts them, plus
    `env`; yields app_a."""
    quiet = {"LOG_LEVEL": "WARNING", **env}  # request logs off: they would measure the disk
    name = "-".join(f"{k}={v}" for k, v in env.items()) or ("postgresql" if database_url else "defaults")
    database = ({"APP_B_DATABASE_URL": database_url} if database_url
                else {"APP_B_DB_PATH": os.path.join(work, f"{name}.sqlite3")})
    app_b = Service("app_b", free_port(), {**database, "SEED_USERNAME": "admin", "SEED_TOKEN": "mytoken",
                                           **quiet},
                    log_path=os.path.join(work, f"app_b-{name}.log"))
    app_b.start()
    try:
        app_a = Service("app_a", free_port(), {"APP_B_URL": app_b.url, **quiet},
                        log_path=os.path.join(work, f"app_a-{name}.log")).start()
        try:
            yield app_a
        finally:
            app_a.stop()
    finally:
        app_b.stop()


@contextlib.contextmanager
def postgresql():
    """A throwaway PostgreSQL on loopback (Debian's package); yields its URL, or None without it."""
    bindir = find_bindir()
    if bindir is None:
        print("no PostgreSQL server installed (apt install postgresql): its row is left out\n")
        yield None
        return
    server = PostgresServer(bindir).start()
    try:
        yield server.new_database()
    finally:
        server.remove()


@contextlib.contextmanager
def behind_edge(work, app_a):
    """nginx with edge/nginx.conf in front of `app_a`: the production shape of the app-a pod."""
    edge = Edge(free_port(), app_a.url, log_path=os.path.join(work, "edge.log")).start()
    try:
        yield edge
    finally:
        edge.stop()


@contextlib.contextmanager
def naive(work):
    with sqlite3.connect(os.path.join(NAIVE, "naive_b.sqlite3")) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS users (username TEXT, token TEXT)")
        conn.execute("DELETE FROM users")
        conn.execute("INSERT INTO users VALUES ('admin', 'mytoken')")
    naive_b = Naive("naive_b", free_port(), {}, os.path.join(work, "naive_b.log")).start()
    try:
        naive_a = Naive("naive_a", free_port(), {"APP_B_URL": naive_b.url},
                        os.path.join(work, "naive_a.log")).start()
        try:
            yield naive_a
        finally:
            naive_a.stop()
    finally:
        naive_b.stop()
        os.remove(os.path.join(NAIVE, "naive_b.sqlite3"))


def locust(url, requests, work):
    """The same POST /jobs load from loadtest/jobs.py (4 users); its whole-run summary."""
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "locust"), "-f", "loadtest/jobs.py",
                    "--headless", "--host", url, "--requests", str(requests),
                    "--html", os.path.join(work, "locust", "report.html"), "--max-p99-ms", "1e9",
                    "--min-rps", "0"], cwd=REPO, capture_output=True, timeout=900, check=True)
    with open(os.path.join(work, "locust", "summary.json")) as f:
        summary = json.load(f)
    return {"rps": summary["rps"], "p50": summary["p50_ms"], "p99": summary["p99_ms"],
            "failed": summary["failures"]}


def median_row(samples):
    """The round with the median throughput (its latencies come from the same round)."""
    return sorted(samples, key=lambda row: row["rps"])[len(samples) // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="ab rounds per row, rows interleaved; the median round is shown")
    args = parser.parse_args()
    n, work = args.requests, tempfile.mkdtemp(prefix="bench-")
    with contextlib.ExitStack() as stacks:
        # All stacks up at once and the rows interleaved round by round, so a slow spell of this
        # shared machine lands on every row alike instead of on whichever ran then.
        ours = stacks.enter_context(this_design(work))
        no_metrics = stacks.enter_context(this_design(work, METRICS_ENABLED="false"))
        edge = stacks.enter_context(behind_edge(work, ours))
        old = stacks.enter_context(naive(work))
        database_url = stacks.enter_context(postgresql())
        plan = {
            "this design  POST /jobs": lambda: ab(f"{ours.url}/jobs", n, post=True),
            "this design  GET /hello": lambda: ab(f"{ours.url}/hello", n),
            "behind nginx POST /jobs": lambda: ab(f"{edge.url}/jobs", n, post=True),
            "metrics off  POST /jobs": lambda: ab(f"{no_metrics.url}/jobs", n, post=True),
            "naive        POST /jobs": lambda: ab(f"{old.url}/jobs", n, post=True),
            "naive        GET /hello": lambda: ab(f"{old.url}/hello", n),
        }
        if database_url:
            on_postgresql = stacks.enter_context(this_design(work, database_url))
            plan[POSTGRESQL_ROW] = lambda: ab(f"{on_postgresql.url}/jobs", n, post=True)
        samples = {name: [] for name in plan}
        for _ in range(args.rounds):
            for name, measure in plan.items():
                samples[name].append(measure())
        rows = {name: median_row(runs) for name, runs in samples.items()}
        rows["this design  POST /jobs, Locust"] = locust(ours.url, n, work)
        # One client: the latency of a request that never waits for the CPU behind another.
        rows["this design  POST /jobs, ab -c 1"] = ab(f"{ours.url}/jobs", n, post=True, concurrency=1)
    print(f"ab -n {n} -c 4, median of {args.rounds} interleaved rounds (Locust: {n} requests, "
          f"4 users, once), {os.cpu_count()} cores\n")
    print(f"{'row':32} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'failed':>7}")
    for name, row in rows.items():
        print(f"{name:32} {row['rps']:8.0f} {row['p50']:7.0f} {row['p99']:7.0f} {row['failed']:7d}")
    jobs, naive_jobs = rows["this design  POST /jobs"]["rps"], rows["naive        POST /jobs"]["rps"]
    print(f"\nPOST /jobs vs naive: {jobs / naive_jobs:.2f}x (metrics off: "
          f"{rows['metrics off  POST /jobs']['rps'] / naive_jobs:.2f}x);  POST /jobs as a fraction "
          f"of GET /hello: {jobs / rows['this design  GET /hello']['rps']:.2f};  behind nginx vs direct: "
          f"{rows['behind nginx POST /jobs']['rps'] / jobs:.2f}")
    if POSTGRESQL_ROW in rows:
        print(f"POST /jobs, PostgreSQL vs SQLite behind app_b: {rows[POSTGRESQL_ROW]['rps'] / jobs:.2f}x")


if __name__ == "__main__":
    try:
        main()
    except FileNotFoundError as exc:  # nginx missing: say how to get it, no traceback
        sys.exit(f"bench: {exc}")
