"""Benchmark: this design against its limit and its origin, in the same run.

    make bench      (= PYTHONPATH=scripts .venv/bin/python bench/run.py [--requests 2000] [--rounds 8])
    make bench ARGS=--worker-models     gunicorn worker models per service, with and without nginx

The limit is a bare Flask pair doing only the job (bench/bare/: no logs, metrics or request ids);
the origin a naive re-implementation of the original design (bench/naive/). Each round starts the
bare pair anew, then every row's stack anew on loopback, rows in a new random order; each POST
/jobs row is driven with ab (-c 4, as the acceptance run) in bursts that alternate with bursts
against the round's bare pair (ABBA...), so a row and the limit are measured in the same seconds.
Why: this VM's speed drifts by tens of percent within a minute, and two identical stacks started
once differ by up to 10 % for as long as they run (measured); bursts side by side cancel the
drift, fresh stacks and the median round average the start-up luck. Then this design once with
the Locust load test and once with a single client. Prints requests/s, p50, p99 (of every request
of the row's bursts), failures and server CPU per request per row (the median round), then each
row's ratio to the limit (median of the per-round paired ratios; the target is 0.9) and to the
origin. Environment variables (GUNICORN_WORKERS, ...) pass through to this design. Not a test:
numbers, no verdict.
"""
import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import sqlite3
import statistics
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
    """One ab run: its requests, seconds, failures and every request's total time (ms)."""
    with tempfile.NamedTemporaryFile(mode="r", suffix=".tsv") as per_request:
        command = ["ab", "-q", "-n", str(requests), "-c", str(concurrency), "-g", per_request.name]
        if post:
            command += ["-m", "POST", "-H", "Authorization: mytoken"]
        out = subprocess.run(command + [url], capture_output=True, text=True, timeout=600, check=True).stdout
        # Columns: starttime, seconds, ctime, dtime, ttime, wait; a header line first.
        times_ms = [int(line.split("\t")[4]) for line in per_request.read().splitlines()[1:]]

    def number(pattern, default=None):
        match = re.search(pattern, out, re.M)
        return float(match.group(1)) if match else default

    return {"requests": requests, "seconds": number(r"^Time taken for tests:\s+([\d.]+)"),
            "times_ms": times_ms,
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


def burst(front, path, requests, post=False, concurrency=4):
    """ab against `front` (a stack's entry: its .servers are all its processes), plus the CPU
    time its servers used meanwhile."""
    before = server_cpu_seconds(front.servers)
    result = ab(front.url + path, requests, post, concurrency)
    result["cpu_seconds"] = server_cpu_seconds(front.servers) - before
    return result


def summary(bursts):
    """One row from bursts against one stack: requests/s over all of them, p50 and p99 of every
    request, failures, and server CPU per request."""
    requests = sum(b["requests"] for b in bursts)
    times = sorted(t for b in bursts for t in b["times_ms"])
    return {"rps": requests / sum(b["seconds"] for b in bursts),
            "p50": times[len(times) // 2], "p99": times[min(len(times) - 1, len(times) * 99 // 100)],
            "failed": sum(b["failed"] for b in bursts),
            "cpu_us": sum(b["cpu_seconds"] for b in bursts) / requests * 1e6}


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
    """A throwaway PostgreSQL on loopback (Debian's package); yields it, or None without it."""
    bindir = find_bindir()
    if bindir is None:
        print("no PostgreSQL server installed (apt install postgresql): its row is left out\n")
        yield None
        return
    server = PostgresServer(bindir).start()
    try:
        yield server
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


GTHREAD = ["-k", "gthread", "-w", "2", "--threads", "4"]


def bare_db(work):
    """bare_b's SQLite file in `work`, holding the token "mytoken"; its path."""
    db = os.path.join(work, "bare_b.sqlite3")
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE users (username TEXT NOT NULL, token_sha256 BLOB NOT NULL UNIQUE)")
        conn.execute("INSERT INTO users VALUES ('admin', ?)", (hashlib.sha256(b"mytoken").digest(),))
    return db


def bare_app_b(work):
    """The bare pair's app_b (not started), gthread 2 x 4 like this design's default."""
    return Reference(BARE, "bare_b", GTHREAD, free_port(), {"BARE_DB_PATH": bare_db(work)},
                     os.path.join(work, "bare_b.log"))


def bare(work):
    """The limit: the same framework doing only the job (bench/bare/), gthread 2 x 4 like this
    design's default; no logs, metrics or request ids."""
    return pair(bare_app_b(work), lambda url: Reference(BARE, "bare_a", GTHREAD, free_port(),
                                                        {"APP_B_URL": url}, os.path.join(work, "bare_a.log")))


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


WARM_UP_REQUESTS = 200  # the first requests pay for imports, connections and caches
BURSTS = 6  # per stack per row and round; each row's bursts alternate with the bare pair's


def measure(plan, rounds, work):
    """Each row of `plan` (name: (start, run): `start(directory)` a context manager yielding a
    stack, `run(stack, limit)` one measurement returning (row, the limit's row measured beside
    it, or None)) `rounds` times, each time on a stack started anew in a directory of its own
    under `work`, every row once per round in a new order, beside a bare pair started anew each
    round; per row, its samples and the limit's samples paired with them, one per round."""
    samples = {name: [] for name in plan}
    limits = {name: [] for name in plan}
    for _ in range(rounds):
        with bare(tempfile.mkdtemp(dir=work)) as limit:
            ab(limit.url + "/jobs", WARM_UP_REQUESTS, post=True)
            # A row's place in the round matters too (what ran just before it): shuffled each round.
            for name in random.sample(list(plan), len(plan)):
                start, run = plan[name]
                with start(tempfile.mkdtemp(dir=work)) as stack:
                    ab(stack.url + "/jobs", WARM_UP_REQUESTS, post=True)
                    row, beside = run(stack, limit)
                samples[name].append(row)
                if beside:
                    limits[name].append(beside)
    return samples, limits


def median_row(samples):
    """The round with the median throughput (its latencies come from the same round)."""
    return sorted(samples, key=lambda row: row["rps"])[len(samples) // 2]


def median_ratio(ours, other, key="rps"):
    """Median over the rounds of `ours`' `key` over `other`'s (lists of rows, one per round),
    with the per-round ratios."""
    per_round = [a[key] / b[key] for a, b in zip(ours, other, strict=True)]
    return statistics.median(per_round), per_round


def print_rows(rows):
    width = max(map(len, rows))
    print(f"{'row':{width}} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'failed':>7} {'server CPU us/req':>18}")
    for name, row in rows.items():
        cpu = f"{row['cpu_us']:.0f}" if "cpu_us" in row else "-"
        print(f"{name:{width}} {row['rps']:8.0f} {row['p50']:7.0f} {row['p99']:7.0f} {row['failed']:7d}",
              f"{cpu:>18}")


def jobs(n, concurrency=4):
    """POST /jobs, `n` requests in BURSTS bursts, each beside one as large against the round's
    bare pair, in the order ABBA ABBA...: what the machine's speed does meanwhile, both see."""
    def run(stack, limit):
        ours, theirs = [], []
        for k in range(BURSTS):
            order = ((stack, ours), (limit, theirs)) if k % 2 == 0 else ((limit, theirs), (stack, ours))
            for target, bursts in order:
                bursts.append(burst(target, "/jobs", n // BURSTS, post=True, concurrency=concurrency))
        return summary(ours), summary(theirs)
    return run


def alone(path, n):
    """`n` GET requests to `path`, not beside the bare pair (it has no such route)."""
    return lambda stack, limit: (summary([burst(stack, path, n)]), None)


def default_rows(stacks, work, n, rounds):
    """Every row's samples; the PostgreSQL row only where Debian's postgresql is installed."""
    plan = {
        OURS: (lambda d: this_design(d, "defaults"), jobs(n)),
        METRICS_OFF: (lambda d: this_design(d, "metrics-off", {"METRICS_ENABLED": "false"}), jobs(n)),
        "this design behind nginx: POST /jobs": (lambda d: this_design(d, "edge", edge=True), jobs(n)),
        NAIVE_ROW: (naive, jobs(n)),
        "this design: GET /hello": (lambda d: this_design(d, "defaults"), alone("/hello", n)),
        "naive: GET /hello": (naive, alone("/hello", n)),
    }
    server = stacks.enter_context(postgresql())
    if server:
        plan[POSTGRESQL_ROW] = (lambda d: this_design(d, "postgresql", database_url=server.new_database()),
                                jobs(n))
    samples, limits = measure(plan, rounds, work)
    # Once each: Locust's view of the same load, and one client (the latency of a request that
    # never waits for the CPU behind another).
    once = {"this design, Locust: POST /jobs": (lambda d: this_design(d, "locust"),
                                                lambda stack, limit: (locust(stack.url, n, work), None)),
            "this design, ab -c 1: POST /jobs": (lambda d: this_design(d, "one-client"), jobs(n, 1))}
    once_samples, once_limits = measure(once, 1, work)
    samples.update(once_samples)
    limits.update(once_limits)
    return samples, limits


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
        env_a, env_b = WORKER_MODELS[model_a], WORKER_MODELS[model_b]
        plan[f"{name}: POST /jobs"] = (
            lambda d, edge=edge, env_a=env_a, env_b=env_b: this_design(d, "models", edge=edge,
                                                                        env_a=env_a, env_b=env_b),
            jobs(n))
    return measure(plan, rounds, work)


OURS = "this design (defaults): POST /jobs"
BARE_ROW = "bare Flask pair: POST /jobs"
NAIVE_ROW = "naive (original design): POST /jobs"
METRICS_OFF = "this design, metrics off: POST /jobs"
POSTGRESQL_ROW = "this design, app_b on PostgreSQL: POST /jobs"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=8,
                        help="rounds per row, each on a freshly started stack; the median round is shown")
    parser.add_argument("--worker-models", action="store_true",
                        help="instead: this design under each gunicorn worker model per service")
    args = parser.parse_args()
    n, load_before = args.requests, os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-") as work, contextlib.ExitStack() as stacks:
        samples, limits = (worker_model_rows if args.worker_models else default_rows)(stacks, work, n,
                                                                                   args.rounds)
    print(f"ab -n {n} -c 4 per row after {WARM_UP_REQUESTS} warm-up requests, in {BURSTS} bursts "
          f"alternated with as many against a bare pair started anew each round; median of "
          f"{args.rounds} rounds, each on stacks started anew (Locust: {n} requests, 4 users, once); "
          f"{os.cpu_count()} cores; 1-minute load average {load_before:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end\n")
    rows = {name: median_row(runs) for name, runs in samples.items()}
    # The limit's row: as measured beside this design (defaults), or the first row measured so.
    beside = OURS if OURS in limits else next(name for name in limits if limits[name])
    rows[f"{BARE_ROW} (beside {beside.removesuffix(': POST /jobs')})"] = median_row(limits[beside])
    print_rows(rows)
    ratios = {name: median_ratio(samples[name], limits[name])[1] for name in samples if limits[name]}
    print("\nPOST /jobs as a fraction of the bare pair measured beside it, median of the per-round "
          "ratios (each round's in brackets); then the bare pair's server CPU per request over the row's")
    for name, per_round in ratios.items():
        cpu, _ = median_ratio(limits[name], samples[name], "cpu_us")
        print(f"{name.removesuffix(': POST /jobs')}: {statistics.median(per_round):.3f} of the bare pair "
              f"[{' '.join(f'{r:.3f}' for r in per_round)}]; CPU {cpu:.3f}")
    if NAIVE_ROW in ratios:
        vs_naive = statistics.median(a / b for a, b in zip(ratios[OURS], ratios[NAIVE_ROW], strict=True))
        print(f"\nthis design vs the original design (naive): {vs_naive:.2f}x")
        off = statistics.median(a / b for a, b in zip(ratios[METRICS_OFF], ratios[OURS], strict=True))
        cpu = statistics.median(on["cpu_us"] - no["cpu_us"]
                                for on, no in zip(samples[OURS], samples[METRICS_OFF], strict=True))
        print(f"metrics cost: with them off POST /jobs does {off:.2f}x the requests/s; "
              f"{cpu:.0f} us of server CPU per request (median of the rounds)")

if __name__ == "__main__":
    try:
        main()
    except FileNotFoundError as exc:  # nginx missing: say how to get it, no traceback
        sys.exit(f"bench: {exc}")
