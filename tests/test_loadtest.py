"""loadtest/jobs.py run the way users run it: a headless Locust subprocess from the repo root."""
import json
import os
import subprocess
import sys

import pytest

from harness.stack import REPO, free_port

LOCUST = os.path.join(os.path.dirname(sys.executable), "locust")


def locust(host, tmp_path, *extra):
    html = tmp_path / "report.html"
    # A run-time bound well inside the subprocess timeout: a stalled run still ends by itself and
    # reports what it counted, instead of being killed with nothing to show.
    result = subprocess.run(
        [LOCUST, "-f", "loadtest/jobs.py", "--headless", "--host", host, "--html", str(html),
         "--run-time", "120s", *extra],
        cwd=REPO, capture_output=True, text=True, timeout=240)
    summary = json.loads((tmp_path / "summary.json").read_text())
    return result, summary


@pytest.fixture
def stack(services):
    app_b = services.app_b()
    return services.app_a(app_b.url)


def test_reproduces_the_ab_run_500_requests_4_users_no_failures(stack, services, tmp_path):
    result, summary = locust(stack.url, tmp_path)
    assert result.returncode == 0, "\n".join(
        [result.stdout, result.stderr[-4000:], services.logs("app_a")[-3000:]])
    assert summary["requests"] == 500 and summary["failures"] == 0 and summary["passed"]
    assert '"JobsUser": 4' in result.stderr  # four concurrent users, as ab -c 4
    assert "LOAD TEST PASSED: 500 requests" in result.stderr
    assert (tmp_path / "report.html").stat().st_size > 0


def test_app_b_down_fails_with_a_one_line_reason(services, tmp_path):
    app_b = services.app_b()
    app_a = services.app_a(app_b.url)  # ready once it has reached app_b
    app_b.stop()
    result, summary = locust(app_a.url, tmp_path, "--requests", "50")
    assert result.returncode != 0
    assert summary["failures"] == 50 and not summary["passed"]
    assert "LOAD TEST FAILED: 50 of 50 requests failed" in result.stderr
    assert "got 503 (auth service unavailable)" in result.stderr  # the reason, told apart


def test_invalid_token_scenario_expects_401(stack, tmp_path):
    result, summary = locust(stack.url, tmp_path, "--scenario", "invalid-token", "--requests", "100")
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary["requests"] == 100 and summary["failures"] == 0


def test_a_missed_threshold_fails_the_run(stack, tmp_path):
    result, summary = locust(stack.url, tmp_path, "--requests", "50", "--min-rps", "1000000")
    assert result.returncode != 0 and summary["failures"] == 0
    assert "is under --min-rps" in result.stderr


def test_json_output_parses_and_the_verdict_stays_off_stdout(stack, tmp_path):
    result, summary = locust(stack.url, tmp_path, "--requests", "50", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    stats = json.loads(result.stdout)  # Locust's per-endpoint stats, nothing else on stdout
    assert sum(entry["num_requests"] for entry in stats) == 50
    assert "LOAD TEST PASSED: 50 requests" in result.stderr


def test_a_stopped_stack_is_reported_as_no_answer(tmp_path):
    result, summary = locust(f"http://127.0.0.1:{free_port()}", tmp_path, "--requests", "20")
    assert result.returncode != 0 and summary["failures"] == 20
    assert "no answer: " in result.stderr and "Connection refused" in result.stderr, result.stderr


def test_distributed_run_splits_the_requests_over_the_workers(stack, tmp_path):
    """--master with 2 --worker processes (as components/loadgenerator runs them): 501 requests
    in total, not per worker; the master alone prints the verdict and the JSON summary line."""
    port = free_port()
    common = [LOCUST, "-f", "loadtest/jobs.py", "--headless", "--run-time", "120s"]
    workers = [subprocess.Popen(common + ["--worker", "--master-port", str(port)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    try:
        master = subprocess.run(
            common + ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                      "--expect-workers", "2", "--expect-workers-max-wait", "60",
                      "--host", stack.url, "--requests", "501"],
            cwd=REPO, capture_output=True, text=True, timeout=240)
        worker_logs = [proc.communicate(timeout=60)[1] for proc in workers]
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert master.returncode == 0, master.stderr[-4000:]
    assert "LOAD TEST PASSED: 501 requests" in master.stderr
    line = next(line for line in master.stderr.splitlines() if line.startswith('{"requests"'))
    summary = json.loads(line)
    assert summary["requests"] == 501 and summary["failures"] == 0 and summary["passed"]
    for log in worker_logs:
        assert "LOAD TEST" not in log, log[-2000:]
