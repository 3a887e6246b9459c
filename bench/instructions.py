"""Instructions each service executes per request: this design's app_a and app_b against the bare
pair's, counted by valgrind's callgrind.

    make bench-instructions      (= PYTHONPATH=scripts .venv/bin/python bench/instructions.py)

Throughput on this shared VM drifts; an instruction count does not: the same code, inputs and
environment give the same count whatever else the machine runs. Each app's WSGI callable is
driven in-process, one thread, with what gunicorn sets up around it here (servicekit's gunicorn
settings: the JSON log config with batching on, metrics in multiprocess files); app_a's calls go
to the bare app_b under gunicorn, whose work is not counted. A count is the difference of two
runs, REQUESTS requests and none after the same warm-up, so start-up cancels out. What this
leaves out is what both designs share: gunicorn, the kernel, the wait for the other service.
Needs Debian's valgrind; about 4 minutes on 2 cores. Not a test: numbers, no verdict.
"""
import argparse
import concurrent.futures
import io
import json
import logging.config
import os
import re
import subprocess
import sys
import tempfile

from run import BARE, bare_app_b, bare_db

from localstack import REPO

WARM_UP_REQUESTS = 200
REQUESTS = 1000
# Environment for each row of this design (the bare pair has no settings).
VARIANTS = {"this design (defaults)": {},
            "this design, request log off": {"LOG_LEVEL": "WARNING"},
            "this design, metrics off": {"METRICS_ENABLED": "false"}}
BARE_ROW = "bare Flask pair"
SEED = {"SEED_USERNAME": "admin", "SEED_TOKEN": "mytoken"}


def environ_for(app):
    """A WSGI environ as gunicorn makes it for the request each app gets under the acceptance
    load: ab's POST /jobs for app_a, app_a's POST /auth for app_b."""
    environ = {"SERVER_NAME": "127.0.0.1", "SERVER_PORT": "5000", "SERVER_PROTOCOL": "HTTP/1.1",
               "REQUEST_METHOD": "POST", "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
               "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
               "HTTP_HOST": "127.0.0.1"}
    if app == "app_a":
        environ.update(PATH_INFO="/jobs", SERVER_PROTOCOL="HTTP/1.0", HTTP_ACCEPT="*/*",
                       HTTP_USER_AGENT="ApacheBench/2.3", HTTP_AUTHORIZATION="mytoken")
        body = b""
    else:
        body = json.dumps({"token": "mytoken"}, separators=(",", ":")).encode()
        environ.update(PATH_INFO="/auth", CONTENT_TYPE="application/json",
                       HTTP_X_REQUEST_ID="0123456789abcdef0123456789abcdef")
    environ["CONTENT_LENGTH"] = str(len(body))
    return lambda: {**environ, "wsgi.input": io.BytesIO(body)}


def this_design(app, env):
    """`app` as its gunicorn worker builds it, from the environment plus `env`."""
    os.environ.update(env)
    sys.path.insert(0, os.path.join(REPO, app))
    from servicekit import logbatch
    from servicekit.gunicorn_settings import settings
    config = settings(app, 5000)  # also points prometheus_client at a multiprocess directory
    sys.stdout = open(os.devnull, "w")  # the request lines' destination
    logging.config.dictConfig(config["logconfig_dict"])
    for handler in logbatch.batching_handlers():  # as a booted worker does (post_worker_init)
        handler.start_batching()
    return __import__(app).create_app()


def bare(app, work):
    sys.path.insert(0, BARE)
    if app == "app_b":
        os.environ["BARE_DB_PATH"] = bare_db(work)
    return __import__(f"bare_{app[-1]}").app


def drive(app, variant, requests):
    """Serve WARM_UP_REQUESTS + `requests` requests with `variant` of `app`, in this process."""
    with tempfile.TemporaryDirectory(prefix="instructions-") as work:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = work  # else gunicorn's on_exit would remove its own
        app_b = None
        if app == "app_a":
            app_b = bare_app_b(work).start()
            os.environ["APP_B_URL"] = app_b.url
        else:
            os.environ.update(APP_B_DB_PATH=os.path.join(work, "app_b.sqlite3"), **SEED)
        try:
            wsgi = bare(app, work) if variant == BARE_ROW else this_design(app, VARIANTS[variant])
            environ = environ_for(app)

            def start_response(status, headers, exc_info=None):
                if not status.startswith("200"):
                    raise SystemExit(f"{app} ({variant}) answered {status}")

            for _ in range(WARM_UP_REQUESTS + requests):
                for _chunk in wsgi(environ(), start_response):
                    pass
        finally:
            if app_b:
                app_b.stop()


def count(app, variant, requests):
    """Instructions the driver executes for `requests` requests after the warm-up."""
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
         "--drive", app, variant, str(requests)],
        capture_output=True, text=True, timeout=1800,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "scripts")])})
    if result.returncode:
        raise SystemExit(f"{app} ({variant}) failed under valgrind:\n{result.stderr[-3000:]}")
    return int(re.search(r"Collected : (\d+)", result.stderr).group(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--drive", nargs=3, metavar=("APP", "VARIANT", "REQUESTS"),
                        help="internal: serve requests in this process (under valgrind)")
    args = parser.parse_args()
    if args.drive:
        app, variant, requests = args.drive
        drive(app, variant, int(requests))
        return
    rows = [BARE_ROW, *VARIANTS]
    runs = [(app, row, n) for row in rows for app in ("app_a", "app_b") for n in (0, REQUESTS)]
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        counts = dict(zip(runs, pool.map(lambda run: count(*run), runs), strict=True))
    per_request = {(app, row): (counts[app, row, REQUESTS] - counts[app, row, 0]) / REQUESTS
                   for app, row, _ in runs}
    print(f"Instructions per request (callgrind; in-process, one thread; {REQUESTS} requests after "
          f"{WARM_UP_REQUESTS} warm-up, minus the same run with none)\n")
    width = max(map(len, rows))
    print(f"{'row':{width}} {'app_a':>10} {'app_b':>10} {'both':>10} {'over the bare pair':>19}")
    both_bare = per_request["app_a", BARE_ROW] + per_request["app_b", BARE_ROW]
    for row in rows:
        a, b = per_request["app_a", row], per_request["app_b", row]
        print(f"{row:{width}} {a:10.0f} {b:10.0f} {a + b:10.0f} {(a + b) / both_bare:19.2f}")


if __name__ == "__main__":
    main()
