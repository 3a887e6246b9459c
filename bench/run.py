"""Benchmark: this design against its limit and its origin, in the same run.

    make bench      (= PYTHONPATH=scripts .venv/bin/python bench/run.py [--requests 5000])
    make bench ARGS=--worker-models     gunicorn worker models per service, with and without nginx

The limit is a bare Flask pair doing only the job (bench/bare/: no logs, metrics or request ids);
the origin a naive re-implementation of the original design (bench/naive/). Starts every stack
on loopback at once, drives them with ab (-c 4, as the acceptance run) in interleaved rounds, then
this design once with the Locust load test and once with a single client, and prints requests/s,
p50, p99 and failures per row (the median round), then this design's ratio to the limit (the
target is 0.9) and to the origin. Environment variables (GUNICORN_WORKERS, ...) pass through to
this design. Not a test: numbers, no verdict.
"""
import argparse
import contextlib
import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import psutil

from localpostgres import PostgresServer, find_bindir
from localstack import REPO, Edge, Service, free_port

NAIVE = os.path.join(REPO, "bench", "naive")
BARE = os.path.join(REPO, "bench", "bare")


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


def server_cpu_seconds(servers):
    """User + system CPU time so far of every process of `servers` (masters, workers, nginx)."""
    total = 0.0
    for server in servers:
        master = psutil.Process(server.proc.pid)
        for process in (master, *master.children(recursive=True)):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def hit(front, path, requests, post=False, concurrency=4):
    """ab against `front` (a stack's entry: its .servers are all its processes), plus the servers'
    CPU time per request: unlike throughput, that hardly depends on what else this machine runs."""
    before = server_cpu_seconds(front.servers)
    row = ab(front.url + path, requests, post, concurrency)
    row["cpu_us"] = (server_cpu_seconds(front.servers) - before) / requests * 1e6
    return row


class Reference(Service):
    """One app of a reference pair (bench/naive/, bench/bare/): plain gunicorn, `options` its
    command-line worker settings, no config file."""

    def __init__(self, directory, module, options, port, env, log_path):
        super().__init__(directory, port, env, log_path)
        self.module, self.options = module, options

    def command(self):
        return [sys.executable, "-m", "gunicorn", *self.options, "-b", f"127.0.0.1:{self.port}",
                f"{self.module}:app"]

    def ready(self):
        """The reference apps have no /readyz: any HTTP answer (404 for /) means it is serving."""
        try:
            urllib.request.urlopen(f"{self.url}/", timeout=1)
        except urllib.error.HTTPError:
            pass
        return True


@contextlib.contextmanager
def pair(app_b, make_app_a):
    """Start app_b, then the app_a `make_app_a(app_b.url)` returns; yield app_a, stop both."""
    app_b.start()
    try:
        app_a = make_app_a(app_b.url).start()
        app_a.servers = (app_b, app_a)
        try:
            yield app_a
        finally:
            app_a.stop()
    finally:
        app_b.stop()


@contextlib.contextmanager
def this_design(work, name, env=(), env_a=(), env_b=(), edge=False, database_url=None):
    """app_b (on SQLite, or PostgreSQL at `database_url`) + app_a as `make run` starts them
    (request log, metrics and request ids on), plus `env` for both and `env_a`/`env_b` for one;
    with `edge`, as `make run-edge` (nginx in front of app_a, as in the pod). Yields what clients
    talk to."""
    def log(app):
        return os.path.join(work, f"{app}-{name}.log")  # the request log lines land here
    database = ({"APP_B_DATABASE_URL": database_url} if database_url
                else {"APP_B_DB_PATH": os.path.join(work, f"{name}.sqlite3")})
    app_b = Service("app_b", free_port(), {**database, "SEED_USERNAME": "admin", "SEED_TOKEN": "mytoken",
                                           **dict(env), **dict(env_b)}, log("app_b"))
    with pair(app_b, lambda url: Service("app_a", free_port(), {"APP_B_URL": url, **dict(env),
                                                                **dict(env_a)}, log("app_a"))) as app_a:
        if not edge:
            yield app_a
            return
        nginx = Edge(free_port(), app_a.url, log("edge")).start()
        nginx.servers = (*app_a.servers, nginx)
        try:
            yield nginx
        finally:
            nginx.stop()


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


def naive(work):
    """The original design: one sync worker, a new connection to app_b and to SQLite per request."""
    db = os.path.join(work, "naive_b.sqlite3")
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE users (username TEXT, token TEXT)")
        conn.execute("INSERT INTO users VALUES ('admin', 'mytoken')")
    one_sync_worker = ["-w", "1"]
    app_b = Reference(NAIVE, "naive_b", one_sync_worker, free_port(), {"NAIVE_DB_PATH": db},
                      os.path.join(work, "naive_b.log"))
    return pair(app_b, lambda url: Reference(NAIVE, "naive_a", one_sync_worker, free_port(),
                                             {"APP_B_URL": url}, os.path.join(work, "naive_a.log")))


def bare(work):
    """The limit: the same framework doing only the job (bench/bare/), gthread 2 x 4 like this
    design's default; no logs, metrics or request ids."""
    db = os.path.join(work, "bare_b.sqlite3")
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE users (username TEXT NOT NULL, token_sha256 BLOB NOT NULL UNIQUE)")
        conn.execute("INSERT INTO users VALUES ('admin', ?)", (hashlib.sha256(b"mytoken").digest(),))
    gthread = ["-k", "gthread", "-w", "2", "--threads", "4"]
    app_b = Reference(BARE, "bare_b", gthread, free_port(), {"BARE_DB_PATH": db},
                      os.path.join(work, "bare_b.log"))
    return pair(app_b, lambda url: Reference(BARE, "bare_a", gthread, free_port(), {"APP_B_URL": url},
                                             os.path.join(work, "bare_a.log")))


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


def measure(plan, rounds):
    """Each row of `plan` (name: measure function) `rounds` times, rows interleaved round by
    round, so a slow spell of this shared machine lands on every row alike; the median rounds."""
    samples = {name: [] for name in plan}
    for _ in range(rounds):
        for name, run in plan.items():
            samples[name].append(run())
    return {name: median_row(runs) for name, runs in samples.items()}


def print_rows(rows):
    width = max(map(len, rows))
    print(f"{'row':{width}} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'failed':>7} {'server CPU us/req':>18}")
    for name, row in rows.items():
        cpu = f"{row['cpu_us']:.0f}" if "cpu_us" in row else "-"
        print(f"{name:{width}} {row['rps']:8.0f} {row['p50']:7.0f} {row['p99']:7.0f} {row['failed']:7d}",
              f"{cpu:>18}")


def default_rows(stacks, work, n, rounds):
    ours = stacks.enter_context(this_design(work, "defaults"))
    behind_nginx = stacks.enter_context(this_design(work, "edge", edge=True))
    no_metrics = stacks.enter_context(this_design(work, "metrics-off", {"METRICS_ENABLED": "false"}))
    limit = stacks.enter_context(bare(work))
    old = stacks.enter_context(naive(work))
    plan = {
        OURS: lambda: hit(ours, "/jobs", n, post=True),
        METRICS_OFF: lambda: hit(no_metrics, "/jobs", n, post=True),
        "this design behind nginx: POST /jobs": lambda: hit(behind_nginx, "/jobs", n, post=True),
        BARE_ROW: lambda: hit(limit, "/jobs", n, post=True),
        NAIVE_ROW: lambda: hit(old, "/jobs", n, post=True),
        "this design: GET /hello": lambda: hit(ours, "/hello", n),
        "naive: GET /hello": lambda: hit(old, "/hello", n),
    }
    database_url = stacks.enter_context(postgresql())
    if database_url:
        on_postgresql = stacks.enter_context(this_design(work, "postgresql", database_url=database_url))
        plan[POSTGRESQL_ROW] = lambda: hit(on_postgresql, "/jobs", n, post=True)
    rows = measure(plan, rounds)
    rows["this design, Locust: POST /jobs"] = locust(ours.url, n, work)
    # One client: the latency of a request that never waits for the CPU behind another.
    rows["this design, ab -c 1: POST /jobs"] = hit(ours, "/jobs", n, post=True, concurrency=1)
    return rows


# GUNICORN_WORKER_CLASS/_WORKERS/_THREADS per service: what --worker-models compares.
WORKER_MODELS = {"gthread 2x8": {"GUNICORN_WORKER_CLASS": "gthread", "GUNICORN_WORKERS": "2",
                                 "GUNICORN_THREADS": "8"},
                 "sync 4": {"GUNICORN_WORKER_CLASS": "sync", "GUNICORN_WORKERS": "4"}}


def worker_model_rows(stacks, work, n, rounds):
    """Each worker model for app_a and app_b separately, and app_a's behind nginx."""
    plan = {}
    combinations = [(a, b, False) for a in WORKER_MODELS for b in WORKER_MODELS]
    combinations += [(a, "gthread 2x8", True) for a in WORKER_MODELS]
    for model_a, model_b, edge in combinations:
        name = f"{'nginx, ' if edge else ''}app_a {model_a}, app_b {model_b}"
        stack = stacks.enter_context(this_design(work, re.sub(r"\W+", "-", name), edge=edge,
                                                 env_a=WORKER_MODELS[model_a], env_b=WORKER_MODELS[model_b]))
        plan[f"{name}: POST /jobs"] = lambda stack=stack: hit(stack, "/jobs", n, post=True)
    limit = stacks.enter_context(bare(work))
    plan[BARE_ROW] = lambda: hit(limit, "/jobs", n, post=True)
    return measure(plan, rounds)


OURS = "this design (defaults): POST /jobs"
BARE_ROW = "bare Flask pair: POST /jobs"
NAIVE_ROW = "naive (original design): POST /jobs"
METRICS_OFF = "this design, metrics off: POST /jobs"
POSTGRESQL_ROW = "this design, app_b on PostgreSQL: POST /jobs"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="ab rounds per row, rows interleaved; the median round is shown")
    parser.add_argument("--worker-models", action="store_true",
                        help="instead: this design under each gunicorn worker model per service")
    args = parser.parse_args()
    n, load_before = args.requests, os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-") as work, contextlib.ExitStack() as stacks:
        # all stacks up at once, rows interleaved
        rows = (worker_model_rows if args.worker_models else default_rows)(stacks, work, n, args.rounds)
    print(f"ab -n {n} -c 4, median of {args.rounds} interleaved rounds (Locust: {n} requests, "
          f"4 users, once); {os.cpu_count()} cores; 1-minute load average {load_before:.1f} at the "
          f"start, {os.getloadavg()[0]:.1f} at the end\n")
    print_rows(rows)
    limit = rows[BARE_ROW]["rps"]
    print("\nPOST /jobs throughput")
    for name, row in rows.items():
        if "POST /jobs" in name and name != BARE_ROW and "Locust" not in name and "-c 1" not in name:
            print(f"{name.removesuffix(': POST /jobs')}: {row['rps'] / limit:.2f} of the bare pair")
    if NAIVE_ROW in rows:
        ours, off = rows[OURS], rows[METRICS_OFF]
        print(f"\nthis design vs the original design (naive): {ours['rps'] / rows[NAIVE_ROW]['rps']:.2f}x")
        print(f"metrics cost {ours['cpu_us'] - off['cpu_us']:.0f} us of server CPU per POST /jobs "
              f"({1 - off['cpu_us'] / ours['cpu_us']:.0%} of its {ours['cpu_us']:.0f} us)")


if __name__ == "__main__":
    try:
        main()
    except FileNotFoundError as exc:  # nginx missing: say how to get it, no traceback
        sys.exit(f"bench: {exc}")
