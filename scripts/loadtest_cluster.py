"""`make loadtest-cluster`: the Locust acceptance load run inside a cluster you already have, in
Locust's distributed mode (components/loadgenerator), against Service app-a:5000.

    scripts/loadtest_cluster.py [--workers 2] [--requests 500] [--users 4] [-- LOCUST OPTIONS...]

Builds the load generator image (loadtest/Dockerfile, through scripts/docker-build.sh), loads it
into the cluster (kind, minikube; elsewhere push it and pass --image), renders the component with
the run's settings, replaces the previous run's objects, waits for the master Job, prints its log
on stderr and the run's summary as one JSON line on stdout, deletes the run's objects, and exits
0 only when the Job succeeded (the master's thresholds passed). Options after `--` go to the
master (e.g. `-- --token wrong`); kubectl uses the current context unless --context is given.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPONENT = os.path.join(REPO, "components", "loadgenerator")
JOB = "locust-master"


def fail(message, code=2):
    print(f"loadtest-cluster: {message}", file=sys.stderr)
    sys.exit(code)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="Locust worker pods (default 2)")
    parser.add_argument("--requests", type=int, default=500,
                        help="requests in total (default 500); 0: until --run-time")
    parser.add_argument("--users", type=int, default=4, help="concurrent users in total (default 4)")
    parser.add_argument("--run-time", default="5m", help="bound on the run (default 5m)")
    parser.add_argument("--namespace", default="app-ab")
    parser.add_argument("--context", help="kube context (default: the current one)")
    parser.add_argument("--image", help="a load generator image the cluster can pull; skips the build")
    parser.add_argument("--keep", action="store_true", help="leave the run's objects in place")
    parser.add_argument("locust_args", nargs="*", help="options for the master, after --")
    options = parser.parse_args(argv)
    if options.workers < 1:
        parser.error("--workers must be at least 1")
    if options.users < options.workers:
        parser.error("--users must be at least --workers (a worker without users sends nothing)")
    if 0 < options.requests < options.workers:
        parser.error("--requests must be at least --workers (each worker sends a share)")
    return options


def run(*command, **kwargs):
    """Run a command; on failure print its output and stop with its status."""
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        fail(f"{' '.join(command[:3])} ... failed ({result.returncode})", result.returncode)
    return result.stdout


class Kubectl:
    def __init__(self, context, namespace):
        self.base = ["kubectl", *(["--context", context] if context else []), "-n", namespace]

    def __call__(self, *args, **kwargs):
        return run(*self.base, *args, **kwargs)


def build_image():
    """Build the image; tag it with its own id, so a rebuild of the same content is the same tag."""
    build = dict(os.environ, IMAGE="loadgenerator:build")
    run(os.path.join(REPO, "scripts", "docker-build.sh"), "loadtest", "--quiet", env=build)
    image_id = run("docker", "image", "inspect", "--format", "{{.Id}}", "loadgenerator:build").strip()
    image = f"loadgenerator:{image_id.split(':')[-1][:12]}"
    run("docker", "tag", "loadgenerator:build", image)
    return image


def load_image(image, context):
    """Put a locally built image where the cluster's nodes find it without a registry."""
    if context.startswith("kind-"):
        run("kind", "load", "docker-image", image, "--name", context.removeprefix("kind-"))
    elif context == "minikube":
        run("minikube", "image", "load", image)
    else:
        fail(f"context {context!r} is neither kind nor minikube: push an image built with "
             f"`scripts/docker-build.sh loadtest` to a registry it pulls from and pass --image")


def seed_secret(kubectl):
    """The Secret app-b reads its seed token from: app-b-seed, or the name kustomize generated
    for it (app-b-seed-<hash>, components/dev-seed-token). The load runs as that seed user."""
    pod = json.loads(kubectl("get", "deployment", "app-b", "-o", "json"))["spec"]["template"]["spec"]
    names = [volume["secret"]["secretName"] for volume in pod["volumes"] if "secret" in volume]
    return next((name for name in names if name.startswith("app-b-seed")), "app-b-seed")


def render(directory, options, image, secret="app-b-seed"):
    """The component with this run's settings, image, seed Secret and extra master options, as a
    kustomization in `directory`; returns the rendered manifests."""
    settings = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "loadgenerator-settings"},
                "data": {"LOCUST_EXPECT_WORKERS": str(options.workers),
                         "LOCUST_USERS": str(options.users), "LOCUST_SPAWN_RATE": str(options.users),
                         "LOCUST_REQUESTS": str(options.requests), "LOCUST_RUN_TIME": options.run_time}}
    name, _, tag = image.rpartition(":")
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": options.namespace,
        "resources": ["settings.yaml"],
        "components": [os.path.relpath(COMPONENT, directory)],  # kustomize wants it relative
        "images": [{"name": "loadgenerator", "newName": name, "newTag": tag}],
    }
    token = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": JOB},
             "spec": {"template": {"spec": {"containers": [{"name": "master", "env": [
                 {"name": "LOCUST_TOKEN",
                  "valueFrom": {"secretKeyRef": {"name": secret, "key": "seed-token"}}}]}]}}}}
    kustomization["patches"] = [{"patch": json.dumps(token)}]
    if options.locust_args:
        add = [{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": arg}
               for arg in options.locust_args]
        # The master is the Job's one container.
        kustomization["patches"].append({"target": {"kind": "Job", "name": JOB}, "patch": json.dumps(add)})
    # JSON is YAML: no YAML library needed.
    for filename, content in (("settings.yaml", settings), ("kustomization.yaml", kustomization)):
        with open(os.path.join(directory, filename), "w") as out:
            json.dump(content, out, indent=1)
    return run("kubectl", "kustomize", directory)


# Waiting reasons of a container that will not start by itself (a missing Secret or image)...
CANNOT_START = {"CreateContainerConfigError", "CreateContainerError", "ErrImagePull",
                "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"}
# ... when they last: the kubelet also reports CreateContainerConfigError for a ConfigMap its cache
# has not synced yet ("failed to sync configmap cache", seen in the suite right after apply) and
# starts the container on a later sync, seconds on.
STUCK_SECONDS = 30


def job_outcome(kubectl):
    """"complete", "failed", "cannot start: <reason>", or None while the master Job runs."""
    status = json.loads(kubectl("get", "job", JOB, "-o", "json"))["status"]
    for condition in status.get("conditions", []):
        if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
            return condition["type"].lower()
    pods = json.loads(kubectl("get", "pods", "-l", f"job-name={JOB}", "-o", "json"))["items"]
    for pod in pods:
        for container in pod["status"].get("containerStatuses", []):
            waiting = container["state"].get("waiting", {})
            if waiting.get("reason") in CANNOT_START:
                return f"cannot start: {waiting['reason']}: {waiting.get('message', '')}"
    return None


def wait_for(kubectl, timeout, interval=2, stuck_seconds=STUCK_SECONDS):
    """The Job's outcome; "cannot start" only once it has held for `stuck_seconds`."""
    deadline = time.monotonic() + timeout
    stuck_since = None
    while time.monotonic() < deadline:
        outcome = job_outcome(kubectl)
        if outcome and not outcome.startswith("cannot start"):
            return outcome
        if outcome is None:
            stuck_since = None
        elif stuck_since is None:
            stuck_since = time.monotonic()
        elif time.monotonic() - stuck_since >= stuck_seconds:
            return outcome
        time.sleep(interval)  # polling interval
    return "did not finish"


def summary_line(log):
    """The summary JSON line jobs.py prints after its verdict, or None."""
    return next((line for line in reversed(log.splitlines()) if line.startswith('{"requests"')), None)


def main(argv):
    options = parse(argv)
    context = options.context or run("kubectl", "config", "current-context").strip()
    kubectl = Kubectl(context, options.namespace)
    image = options.image
    if not image:
        image = build_image()
        load_image(image, context)
    with tempfile.TemporaryDirectory() as directory:
        manifests = render(directory, options, image, seed_secret(kubectl))
    # A Job's pod template is immutable, and a worker of an earlier run would join this run's
    # master: the previous run's objects go first, pods and all (foreground deletion).
    kubectl("delete", "--ignore-not-found", "--cascade=foreground", "--wait=true", "-f", "-",
            input=manifests, timeout=180)
    # Also the pods of a run whose objects were deleted without waiting (the end of a run).
    kubectl("wait", "--for=delete", "pod", "-l", "app.kubernetes.io/component=loadgenerator",
            "--timeout=180s", timeout=200)
    kubectl("apply", "-f", "-", input=manifests)
    print(f"loadtest-cluster: {options.workers} worker(s), {options.users} users, "
          f"{options.requests} requests against app-a:5000 in {context}/{options.namespace}",
          file=sys.stderr, flush=True)
    try:
        # Bounded by the Job's own activeDeadlineSeconds (components/loadgenerator), plus margin.
        outcome = wait_for(kubectl, 1260)
        if outcome in ("complete", "failed"):  # else the master never ran: there is no log
            log = kubectl("logs", f"job/{JOB}", "--tail=-1")
            sys.stderr.write(log)
            line = summary_line(log)
            if line:
                print(line, flush=True)
    finally:
        if not options.keep:
            kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=manifests)
    if outcome != "complete":
        fail(f"the master Job {outcome}: the load test failed", 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
