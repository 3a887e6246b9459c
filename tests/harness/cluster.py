"""The kind cluster the real-cluster suite runs on: kubectl and skaffold with its kubeconfig, the
steps' reporting (a failing step dumps what is needed to diagnose it), and traffic helpers.
Traffic goes only to 127.0.0.1: `kubectl port-forward`, and a kind port mapping onto a NodePort."""
import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

import requests
import yaml

from .stack import REPO, REPORT, TOKEN, free_port, poll

# kind-<name>: skaffold's ci profile activates on kind-.* contexts. E2E_CLUSTER lets two
# checkouts on one machine run the suite at once.
CLUSTER = os.environ.get("E2E_CLUSTER", "app-ab-e2e")
NAMESPACE = "app-ab"
NODE_PORT = 30500


def say(message):
    """Print now (seen with -s) and again in the run's summary (seen always)."""
    print(f"[e2e] {message}", flush=True)
    REPORT.append(message)


class Cluster:
    def __init__(self, kubeconfig, tmp):
        self.tmp = tmp
        self.url = None  # 127.0.0.1:<mapped port> -> NodePort -> app-a pods
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "SKAFFOLD_UPDATE_CHECK": "false",
                    "PATH": os.pathsep.join([str(Path(REPO, ".bin")), str(Path(REPO, ".venv", "bin")),
                                             os.environ["PATH"]])}

    def run(self, *command, timeout=300, check=True, cwd=REPO, **kwargs):
        result = subprocess.run(command, cwd=cwd, env=self.env, capture_output=True, text=True,
                                timeout=timeout, **kwargs)
        if check:
            assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
        return result

    def kubectl(self, *args, **kwargs):
        return self.run("kubectl", *args, **kwargs).stdout

    def pods(self, app, terminating=False):
        """The app's pods; those being deleted only if `terminating`."""
        out = self.kubectl("-n", NAMESPACE, "get", "pods", "-l", f"app.kubernetes.io/name={app}",
                           "-o", "json")
        return [pod for pod in json.loads(out)["items"]
                if terminating or not pod["metadata"].get("deletionTimestamp")]

    def wait_rolled_out(self, timeout=180):
        for app in ("app-a", "app-b"):
            self.kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{app}",
                         f"--timeout={timeout}s", timeout=timeout + 30)

    def replicas(self, app):
        """The replicas the app's Deployment asks for."""
        return int(self.kubectl("-n", NAMESPACE, "get", "deployment", app, "-o",
                                "jsonpath={.spec.replicas}"))

    def tokens(self, pod, *args):
        """`flask --app app_b tokens ARGS` in that app-b pod, as the runbook has it; stdout."""
        return self.kubectl("-n", NAMESPACE, "exec", pod, "-c", "app-b", "--", "flask", "--app",
                            "app_b", "tokens", *args)

    def dump(self):
        """What a reader needs when a step failed: pods, events, the apps' logs, and the packet
        path: Services and their endpoints, the NetworkPolicies, the enforcer's (kube-router's)
        log, and the node's rules (kube-proxy's nftables table, the iptables filter table that
        kube-router programs, its ipsets)."""
        for args in (("get", "pods", "-A", "-o", "wide"),
                     ("get", "events", "-A", "--sort-by=.lastTimestamp"),
                     *(("-n", NAMESPACE, "logs", "-l", f"app.kubernetes.io/name={app}", "--all-containers",
                        "--tail=40", "--prefix") for app in ("app-a", "app-b", "postgres")),
                     ("get", "services,endpointslices,networkpolicies", "-A", "-o", "wide"),
                     ("-n", "kube-system", "logs", "-l", "app.kubernetes.io/name=kube-router",
                      "--tail=200", "--prefix"),
                     ("-n", "kube-system", "logs", "-l", "k8s-app=kube-proxy", "--tail=100")):
            result = self.run("kubectl", *args, check=False, timeout=60)
            print(f"--- kubectl {' '.join(args)}\n{result.stdout}{result.stderr}")
        # The last lines are mostly request lines; what went wrong earlier is a warning or worse.
        for app in ("app-a", "app-b"):
            result = self.run("kubectl", "-n", NAMESPACE, "logs", "-l", f"app.kubernetes.io/name={app}",
                              "--all-containers", "--prefix", "--tail=-1", check=False, timeout=60)
            problems = [line for line in result.stdout.splitlines()
                        if '"level":"INFO"' not in line][-60:]
            print(f"--- {app}: its last 60 log lines above INFO\n" + "\n".join(problems))
        # With packet counters: the REJECT rule that refused a connection shows a count.
        for command in (("nft", "list", "table", "ip", "kube-proxy"),
                        ("iptables-save", "-c", "-t", "filter"), ("ipset", "list")):
            result = self.run("docker", "exec", f"{CLUSTER}-control-plane", *command,
                              check=False, timeout=60)
            print(f"--- node: {' '.join(command)}\n{result.stdout}{result.stderr}")


def image_of(pod, container):
    """The image of the named container (app-a's pod also runs its edge proxy)."""
    return next(c["image"] for c in pod["spec"]["containers"] if c["name"] == container)


def restarts(pod):
    """Restarts of all the pod's containers together."""
    return sum(status["restartCount"] for status in pod["status"]["containerStatuses"])


@contextlib.contextmanager
def step(cluster, name):
    started = time.monotonic()
    try:
        yield
    except BaseException:
        say(f"FAILED: {name} after {time.monotonic() - started:.1f} s; cluster state follows")
        cluster.dump()
        raise
    say(f"ok: {name} ({time.monotonic() - started:.1f} s)")


def get(url, **kwargs):
    try:
        return requests.request(kwargs.pop("method", "GET"), url, timeout=5, **kwargs)
    except requests.RequestException:
        return None


@contextlib.contextmanager
def port_forward(cluster, target, remote_port):
    """`kubectl port-forward` on 127.0.0.1; yields the local base URL once it answers."""
    port = free_port()
    proc = subprocess.Popen(["kubectl", "-n", NAMESPACE, "port-forward", "--address", "127.0.0.1",
                             target, f"{port}:{remote_port}"], env=cluster.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        assert poll(lambda: get(f"{url}/healthz"), 30), f"port-forward to {target} never answered"
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def kind_config(path, host_port):
    """offline/kind/cluster.yaml plus a mapping 127.0.0.1:host_port -> the test NodePort."""
    config = yaml.safe_load(Path(REPO, "offline", "kind", "cluster.yaml").read_text())
    config["nodes"][0]["extraPortMappings"] = [
        {"containerPort": NODE_PORT, "hostPort": host_port, "listenAddress": "127.0.0.1"}]
    path.write_text(yaml.safe_dump(config))
    return path


def locust(cluster, *args, **kwargs):
    return subprocess.Popen(
        [str(Path(REPO, ".venv", "bin", "locust")), "-f", "loadtest/jobs.py", "--headless",
         "--host", cluster.url, "--html", str(cluster.tmp / "locust" / "report.html"), *args],
        cwd=REPO, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def locust_verdict(stderr):
    """The load test's one-line verdict (jobs.py prints it to stderr)."""
    return next((line for line in stderr.splitlines() if line.startswith("LOAD TEST")),
                "locust printed no verdict")


def summary(cluster):
    return json.loads((cluster.tmp / "locust" / "summary.json").read_text())


def jobs_body(cluster, status, headers=TOKEN):
    """The body of POST /jobs if it answered `status`, else None. (Not the response itself: a
    requests.Response is falsy for any 4xx/5xx, which `poll` would take for "not yet".)"""
    response = get(f"{cluster.url}/jobs", method="POST", headers=headers)
    return response.text if response is not None and response.status_code == status else None


def loadtest_cluster(cluster, *make_vars, timeout=600):
    """`make loadtest-cluster` against the suite's cluster: (result, the run's summary or None).
    The summary is the JSON line the command prints last on stdout."""
    result = cluster.run("make", "--no-print-directory", "loadtest-cluster", *make_vars,
                         check=False, timeout=timeout)
    lines = result.stdout.strip().splitlines()
    return result, json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None


def hold_autoscaler(cluster, minimum, maximum, **spec):
    """Set app-a's HorizontalPodAutoscaler bounds (and any other spec fields) in the cluster."""
    patch = {"spec": {"minReplicas": minimum, "maxReplicas": maximum, **spec}}
    cluster.kubectl("-n", NAMESPACE, "patch", "hpa", "app-a", "--type", "merge", "-p", json.dumps(patch))


def app_a_replicas(cluster):
    """(pods of app-a, of which ready), from its Deployment's status."""
    deployment = cluster.kubectl("-n", NAMESPACE, "get", "deployment", "app-a", "-o", "json")
    status = json.loads(deployment)["status"]
    return status.get("replicas", 0), status.get("readyReplicas", 0)


def jobs_status(cluster, token):
    """The status of POST /jobs with this token through app-a (None: no answer)."""
    response = get(f"{cluster.url}/jobs", method="POST", headers={"Authorization": token})
    return response.status_code if response is not None else None
