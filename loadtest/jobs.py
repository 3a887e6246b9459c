"""The acceptance load as a Locust test: `ab -m POST -H "Authorization: mytoken" -n 500 -c 4 .../jobs`.

    locust -f loadtest/jobs.py --headless --host http://127.0.0.1:5000

4 users (locust.conf) send POST /jobs back to back, with no wait, until --requests (500) have been
sent in total, then the run stops by itself. A request fails unless it is a 200 with the job list.
The exit code is non-zero, with the reason on one line (on stderr, so that --json output on stdout
stays JSON), when any request failed or a threshold is missed. `--scenario invalid-token` sends
unknown tokens and expects 401 instead. The verdict is followed by the run's summary as one
JSON line (`{"requests": ..., "passed": ...}`), the same as summary.json beside --html.
Every option below can also be set as an environment variable (LOCUST_REQUESTS=5000 ...).

Distributed (components/loadgenerator runs it so in a cluster): `--master --expect-workers N` and
N `--worker` processes. Each worker sends its share of --requests and tells the master when it is
spent; the master ends the run once every worker's share is spent and counted, and alone judges
the thresholds, over the totals of all workers.
"""
import json
import os
import sys
import time

import gevent
from locust import FastHttpUser, events, task
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

JOBS_TEXT = "Jobs:\nTitle: Devops\nDescription: Awesome\n"


@events.init_command_line_parser.add_listener
def add_options(parser):
    parser.add_argument("--requests", type=int, default=500, env_var="LOCUST_REQUESTS",
                        help="requests to send in total, over all users; 0: no limit, the run "
                             "ends at --run-time or on SIGTERM")
    parser.add_argument("--token", default="mytoken", env_var="LOCUST_TOKEN")
    parser.add_argument("--scenario", choices=["jobs", "invalid-token"], default="jobs",
                        env_var="LOCUST_SCENARIO")
    parser.add_argument("--max-p99-ms", type=float, default=500, env_var="LOCUST_MAX_P99_MS")
    parser.add_argument("--max-failure-ratio", type=float, default=0.0,
                        env_var="LOCUST_MAX_FAILURE_RATIO")
    parser.add_argument("--min-rps", type=float, default=20, env_var="LOCUST_MIN_RPS")


class Budget:
    """Counts requests over all users (greenlets of one process switch only on I/O, so the
    check-and-increment in `take` cannot interleave)."""

    def __init__(self, total):
        self.total, self.sent, self.done = total, 0, 0

    def take(self):
        if self.total and self.sent >= self.total:
            return False
        self.sent += 1
        return True

    def finish(self, environment):
        self.done += 1
        if self.done == self.total:
            if isinstance(environment.runner, WorkerRunner):
                environment.runner.send_message("budget_spent")  # the master ends the run
            else:
                # Not quit() here: it would stop this very user greenlet half-way through quitting.
                gevent.spawn(environment.runner.quit)


def share(total, workers, index):
    """Worker `index`'s part of `total` requests: an even split, the first workers send the rest."""
    return total // workers + (1 if index < total % workers else 0)


budget = None
spent = set()  # on the master: the workers whose share is sent


@events.test_start.add_listener
def on_test_start(environment, **_):
    global budget
    options, runner = environment.parsed_options, environment.runner
    total = options.requests
    if isinstance(runner, WorkerRunner) and total:
        # The master hands its options (--requests, --expect-workers ...) to every worker.
        total = share(total, options.expect_workers, runner.worker_index)
    budget = Budget(total)
    spent.clear()


@events.init.add_listener
def on_init(environment, **_):
    if isinstance(environment.runner, MasterRunner):
        environment.runner.register_message("budget_spent", on_budget_spent)


def on_budget_spent(environment, msg, **_):
    spent.add(msg.node_id)
    if len(spent) == environment.parsed_options.expect_workers:
        gevent.spawn(quit_once_counted, environment)


def quit_once_counted(environment):
    """Quit once the workers' last requests are in the totals: workers report every 3 s (and
    once more when the master quits), so wait at most a few reports."""
    deadline = time.monotonic() + 10
    while (environment.stats.total.num_requests < environment.parsed_options.requests
           and time.monotonic() < deadline):
        gevent.sleep(0.2)
    environment.runner.quit()


def answer(response):
    """The status, with app_a's one-line reason (its JSON `error`) when it gave one: a 503 for
    app_a's bound on calls to app_b then reads differently from one for app_b being away."""
    try:
        error = json.loads(response.text).get("error")
    except (TypeError, ValueError, AttributeError):  # no body, not JSON, not an object
        error = None
    return f"{response.status_code} ({error[:100]})" if isinstance(error, str) else str(response.status_code)


class JobsUser(FastHttpUser):
    # A stuck request fails after this long instead of stalling the run (ab's -s is 30 s).
    connection_timeout = 5.0
    network_timeout = 10.0

    @task
    def post_jobs(self):
        if not budget.take():
            raise StopUser()
        try:
            self.send_one()
        finally:  # every request taken is accounted for, whatever happened to it
            budget.finish(self.environment)

    def send_one(self):
        options = self.environment.parsed_options
        valid = options.scenario == "jobs"
        token = options.token if valid else f"not-{options.token}"
        with self.client.post("/jobs", headers={"Authorization": token}, name="POST /jobs",
                              catch_response=True) as response:
            if response.status_code == 0:  # no HTTP answer at all: say why (refused, timed out)
                response.failure(f"no answer: {response.error}")
            elif valid and (response.status_code != 200 or response.text != JOBS_TEXT):
                response.failure(f"want 200 and the job list, got {answer(response)}")
            elif not valid and response.status_code != 401:
                response.failure(f"want 401 for an unknown token, got {answer(response)}")
            else:
                response.success()


def verdict(environment):
    """Return (summary dict, reason or None) from the whole-run totals."""
    options, total = environment.parsed_options, environment.stats.total
    # Totals over the whole run: the per-interval "current" figures mean little in a run of a
    # few seconds. Percentiles come from Locust's histogram (rounded to 2 significant digits).
    summary = {
        "requests": total.num_requests,
        "failures": total.num_failures,
        "failure_ratio": total.fail_ratio,
        "rps": round(total.total_rps, 1),
        "p50_ms": total.get_response_time_percentile(0.5),
        "p99_ms": total.get_response_time_percentile(0.99),
        "expected_requests": options.requests,
    }
    if options.requests and total.num_requests != options.requests:
        reason = f"sent {total.num_requests} requests, expected {options.requests}"
    elif not total.num_requests:
        reason = "sent no request"
    elif total.fail_ratio > options.max_failure_ratio:
        errors = "; ".join(f"{e.occurrences}x {e.error}" for e in environment.stats.errors.values())
        reason = f"{total.num_failures} of {total.num_requests} requests failed ({errors})"
    elif summary["p99_ms"] > options.max_p99_ms:
        reason = f"p99 {summary['p99_ms']} ms is over --max-p99-ms {options.max_p99_ms}"
    elif summary["rps"] < options.min_rps:
        reason = f"{summary['rps']} requests/s is under --min-rps {options.min_rps}"
    else:
        reason = None
    return summary, reason


@events.quitting.add_listener
def check_thresholds(environment, **_):
    if isinstance(environment.runner, WorkerRunner):
        return  # a worker's stats go to the master as it runs; the master judges the totals
    summary, reason = verdict(environment)
    summary["passed"] = reason is None
    summary["reason"] = reason
    html = environment.parsed_options.html_file
    if html:
        os.makedirs(os.path.dirname(html) or ".", exist_ok=True)
        with open(os.path.join(os.path.dirname(html), "summary.json"), "w") as out:
            json.dump(summary, out, indent=2)
    # The verdict goes to stderr, beside Locust's own log: stdout is Locust's (--json output).
    if reason:
        environment.process_exit_code = 1
        print(f"LOAD TEST FAILED: {reason}", file=sys.stderr, flush=True)
    else:
        print(f"LOAD TEST PASSED: {summary['requests']} requests, 0 failures, "
              f"{summary['rps']} req/s, p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms",
              file=sys.stderr, flush=True)
    print(json.dumps(summary), file=sys.stderr, flush=True)
