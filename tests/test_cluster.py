"""End to end on a real Kubernetes: a kind cluster from the offline node image, deployed with
`make run-app` (scan-images, then `skaffold run -p ci`: app-b on PostgreSQL), checked with
`skaffold verify`, a token's life on PostgreSQL, loaded with Locust from outside and from inside
(`make loadtest-cluster`, distributed), restarted under load, probed for NetworkPolicy, scaled out
by its HorizontalPodAutoscaler, then the minikube overlay (SQLite on a claim) and the `skaffold
dev` loop on it, then torn down.

The tests run in file order and share one cluster (module fixture). Traffic goes only to
127.0.0.1: `kubectl port-forward`, and a kind port mapping (127.0.0.1 only) onto a test NodePort
Service, which spreads requests over ready pods, so a rollout is seen the way clients see it.
Every step prints what it checked and how long it took; a failing step dumps pods, events, logs.
"""
import json
import os
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from harness.cluster import (
    CLUSTER,
    NAMESPACE,
    NODE_PORT,
    Cluster,
    app_a_replicas,
    get,
    hold_autoscaler,
    image_of,
    jobs_body,
    jobs_status,
    kind_config,
    loadtest_cluster,
    locust,
    locust_verdict,
    port_forward,
    restarts,
    say,
    step,
    summary,
)
from harness.hostile import KINDS, Hostile, normal_client, p99
from harness.stack import JOBS_TEXT, REPO, TOKEN, clean_checkout, free_port, missing, poll, require_tool

EDITS = 10  # the dev loop is measured over this many edits in one `skaffold dev`


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    for tool in ("kind", "skaffold", "docker", "go"):
        require_tool(tool)
    if os.geteuid() != 0:
        missing("not root: building the kind node image needs debootstrap")
    tmp = tmp_path_factory.mktemp("cluster")
    started = time.monotonic()
    built = subprocess.run([str(Path(REPO, "offline", "node-image.sh"))], capture_output=True,
                           text=True, timeout=3600)
    assert built.returncode == 0, f"node image build failed:\n{built.stderr[-4000:]}"
    image = built.stdout.split()[-1]
    say(f"node image {image} ready ({time.monotonic() - started:.0f} s)")
    cluster = Cluster(tmp / "kubeconfig", tmp)
    host_port = free_port()
    cluster.run("kind", "delete", "cluster", "--name", CLUSTER)  # a leftover from an aborted run
    started = time.monotonic()
    cluster.run("kind", "create", "cluster", "--name", CLUSTER, "--image", image, "--wait", "3m",
                "--config", str(kind_config(tmp / "kind.yaml", host_port)), timeout=400)
    say(f"ok: cluster {CLUSTER} created, control plane Ready ({time.monotonic() - started:.1f} s)")
    cluster.url = f"http://127.0.0.1:{host_port}"
    try:
        yield cluster
    finally:
        cluster.run("kind", "delete", "cluster", "--name", CLUSTER, check=False)


def test_make_run_app_scans_then_deploys_the_ci_overlay(cluster):
    """The seed's main task, end to end: `make scan-images`, then `skaffold run` (-p ci here)."""
    with step(cluster, "make run-app (scan-images, skaffold run -p ci): images scanned, built, "
                       "loaded, deployed, all pods Ready"):
        cluster.run("make", "--no-print-directory", "run-app",
                    f"SKAFFOLD_FLAGS=-p ci --kube-context kind-{CLUSTER} --status-check=true",
                    timeout=1200)
        cluster.wait_rolled_out()
        for app in ("app-a", "app-b", "postgres"):
            pods = cluster.pods(app)
            assert pods and all(c["ready"] for p in pods for c in p["status"]["containerStatuses"])
        # The traffic entry for the next steps: a NodePort the kind mapping publishes on loopback.
        service = cluster.kubectl("-n", NAMESPACE, "get", "service", "app-a", "-o", "json")
        service = json.loads(service)
        nodeport = {"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "app-a-e2e", "namespace": NAMESPACE},
                    "spec": {"type": "NodePort", "selector": service["spec"]["selector"],
                             "ports": [{"port": 5000, "targetPort": 5000, "nodePort": NODE_PORT}]}}
        cluster.kubectl("apply", "-f", "-", input=json.dumps(nodeport))
        assert poll(lambda: get(f"{cluster.url}/hello"), 30), "NodePort mapping never answered"
    # The steps up to the autoscaling ones count app-a's pods (one): its HorizontalPodAutoscaler
    # holds it there until test_app_a_scales_out_under_load_and_back sets the overlay's bounds.
    hold_autoscaler(cluster, 1, 1)


def test_default_storage_class_provisions_volumes(cluster):
    """The node's default StorageClass provisions a volume for a plain claim (local-path-provisioner):
    it binds, and what one pod wrote is there for the next pod."""
    probe_ns = "volume-probe"
    image = image_of(cluster.pods("app-a")[0], "app-a")  # one with python3
    written = os.urandom(8).hex()
    cluster.kubectl("create", "namespace", probe_ns)
    try:
        # The level the project's own namespace enforces: the volume must serve such pods too.
        cluster.kubectl("label", "namespace", probe_ns, "pod-security.kubernetes.io/enforce=restricted")

        def start(name, code):
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                   "spec": {"restartPolicy": "Never",
                            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                                "seccompProfile": {"type": "RuntimeDefault"}},
                            "containers": [{
                                "name": name, "image": image, "imagePullPolicy": "Never",
                                "command": ["python3", "-c", code],
                                "securityContext": {"allowPrivilegeEscalation": False,
                                                    "capabilities": {"drop": ["ALL"]}},
                                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                            "volumes": [{"name": "data",
                                         "persistentVolumeClaim": {"claimName": "data"}}]}}
            cluster.kubectl("-n", probe_ns, "apply", "-f", "-", input=json.dumps(pod))

        def output(name):
            cluster.kubectl("-n", probe_ns, "wait", f"pod/{name}", "--timeout=120s",
                            "--for=jsonpath={.status.phase}=Succeeded", timeout=150)
            return cluster.kubectl("-n", probe_ns, "logs", name).strip()

        with step(cluster, "default StorageClass: a claim binds, a second pod reads what the first wrote"):
            claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                     "spec": {"accessModes": ["ReadWriteOnce"],
                              "resources": {"requests": {"storage": "16Mi"}}}}
            cluster.kubectl("-n", probe_ns, "apply", "-f", "-", input=json.dumps(claim))
            started = time.monotonic()
            # WaitForFirstConsumer: the volume is provisioned once a pod using the claim is scheduled.
            start("writer", f"open('/data/probe', 'w').write('{written}')")
            cluster.kubectl("-n", probe_ns, "wait", "pvc/data", "--timeout=90s",
                            "--for=jsonpath={.status.phase}=Bound", timeout=120)
            say(f"claim bound {time.monotonic() - started:.1f} s after its first pod was created")
            assert output("writer") == ""
            start("reader", "print(open('/data/probe').read())")
            assert output("reader") == written
    finally:
        cluster.kubectl("delete", "namespace", probe_ns, "--wait=false")


def test_metrics_server_serves_the_metrics_api(cluster):
    """The node's metrics-server: the APIService a CPU HorizontalPodAutoscaler reads is Available
    and `kubectl top` reports usage (the API server's own pod uses some CPU and memory)."""
    with step(cluster, "metrics-server: APIService v1beta1.metrics.k8s.io Available, "
                       "kubectl top pods -n kube-system reports CPU and memory"):
        cluster.kubectl("wait", "apiservice/v1beta1.metrics.k8s.io", "--for=condition=Available",
                        "--timeout=180s", timeout=210)

        def usage():  # pod -> (millicores, MiB); {} until metrics-server has scraped twice
            top = cluster.run("kubectl", "top", "pods", "-n", "kube-system", "--no-headers", check=False)
            rows = [line.split() for line in top.stdout.splitlines()] if top.returncode == 0 else []
            return {pod: (int(cpu.removesuffix("m")), int(memory.removesuffix("Mi")))
                    for pod, cpu, memory in rows}

        pods = poll(usage, 120, interval=2)
        apiserver = next((numbers for pod, numbers in pods.items() if pod.startswith("kube-apiserver-")),
                         None)
        assert apiserver and apiserver[0] > 0 and apiserver[1] > 0, f"kubectl top pods: {pods}"
        say(f"kubectl top: kube-apiserver uses {apiserver[0]}m CPU, {apiserver[1]} MiB")


def test_skaffold_verify_and_outside_traffic(cluster):
    with step(cluster, "skaffold verify -p ci passes (in-cluster smoke Job)"):
        images = {app: image_of(cluster.pods(app)[0], app) for app in ("app-a", "app-b")}
        artifacts = cluster.tmp / "build.json"
        artifacts.write_text(json.dumps({"builds": [{"imageName": app, "tag": tag}
                                                    for app, tag in images.items()]}))
        result = cluster.run("skaffold", "verify", "-p", "ci", "-a", str(artifacts), timeout=300)
        assert "POST /jobs valid token: 200 (want 200)" in result.stdout + result.stderr
    with step(cluster, "GET /hello and POST /jobs through kubectl port-forward on 127.0.0.1"):
        with port_forward(cluster, "service/app-a", 5000) as url:
            hello = get(f"{url}/hello")
            assert hello.status_code == 200 and hello.text == "Hello there\n"
            jobs = get(f"{url}/jobs", method="POST", headers=TOKEN)
            assert jobs.status_code == 200 and jobs.text == JOBS_TEXT
            refused = get(f"{url}/jobs", method="POST", headers={"Authorization": "nope"})
            assert refused.status_code == 401


def test_a_token_on_postgres_lives_until_revoked(cluster):
    """`flask tokens create` in one app-b pod; every replica knows the token, it survives a
    rollout of app-b and the loss of the database pod, and `tokens revoke` ends it at once."""
    pods = [pod["metadata"]["name"] for pod in cluster.pods("app-b")]
    with step(cluster, "tokens create in one app-b pod: 200 through app-a, and both replicas "
                       "answer for it"):
        assert len(pods) == 2, pods
        token = cluster.tokens(f"pod/{pods[0]}", "create", "e2e-operator").strip().splitlines()[-1]
        assert jobs_status(cluster, token) == 200
        for pod in pods:
            with port_forward(cluster, f"pod/{pod}", 5001) as url:
                answer = get(f"{url}/auth", method="POST", data={"token": token})
                assert answer.status_code == 200 and answer.json() == {"username": "e2e-operator"}, pod
    with step(cluster, "rollout restart of app-b: the token is still accepted by the new pods"):
        cluster.kubectl("-n", NAMESPACE, "rollout", "restart", "deployment/app-b")
        cluster.kubectl("-n", NAMESPACE, "rollout", "status", "deployment/app-b", "--timeout=180s",
                        timeout=210)
        assert poll(lambda: not set(pods) & {p["metadata"]["name"]
                                            for p in cluster.pods("app-b", terminating=True)}, 90)
        assert jobs_status(cluster, token) == 200
    with step(cluster, "postgres-0 deleted: the token accepted again once it is back"):
        [server] = cluster.pods("postgres")
        deleted = time.monotonic()
        cluster.kubectl("-n", NAMESPACE, "delete", "pod", server["metadata"]["name"], "--wait=false")
        seen = []

        def back():
            status = jobs_status(cluster, token)
            seen.append(status)
            pods_now = cluster.pods("postgres")
            return (status == 200 and len(pods_now) == 1
                    and pods_now[0]["metadata"]["uid"] != server["metadata"]["uid"])

        assert poll(back, 180, interval=0.2), f"not back after the database pod's loss: {seen[-10:]}"
        # app-a answers throughout: 502 while app_b says "database unavailable", 503 if app_b's
        # pods went unready (their /readyz asks the database).
        assert None not in seen, "app-a stopped answering while the database was away"
        answers = {status: seen.count(status) for status in sorted(set(seen))}
        say(f"postgres-0 deleted: the token accepted again after {time.monotonic() - deleted:.1f} s "
            f"(POST /jobs answers meanwhile: {answers})")
    with step(cluster, "tokens revoke: the next request with it is 401; tokens list says revoked"):
        other = cluster.pods("app-b")[-1]["metadata"]["name"]
        cluster.tokens(f"pod/{other}", "revoke", "e2e-operator")
        assert jobs_status(cluster, token) == 401
        listing = cluster.tokens(f"pod/{other}", "list")
        [line] = [line for line in listing.splitlines() if line.startswith("e2e-operator ")]
        assert line.split()[-1] == "revoked" and token not in listing, listing


def test_locust_acceptance_load(cluster):
    with step(cluster, "locust -f loadtest/jobs.py --headless: 500 requests, 0 failures"):
        proc = locust(cluster)
        out, err = proc.communicate(timeout=300)
        say(locust_verdict(err))
        assert proc.returncode == 0, out + err[-3000:]
        outside = summary(cluster)
        assert outside["requests"] == 500 and outside["failures"] == 0
    with step(cluster, "make loadtest-cluster: the same load inside the cluster, 2 Locust workers, "
                       "0 failures"):
        result, inside = loadtest_cluster(cluster)
        assert result.returncode == 0, result.stdout + result.stderr[-4000:]
        assert inside["requests"] == 500 and inside["failures"] == 0 and inside["passed"]
    say(f"acceptance load (500 requests, 4 users, one app-a pod): outside-in through the NodePort "
        f"on 127.0.0.1 {outside['rps']} req/s, p99 {outside['p99_ms']} ms; in-cluster (2 workers "
        f"-> Service app-a) {inside['rps']} req/s, p99 {inside['p99_ms']} ms")


def test_a_failed_in_cluster_run_fails_the_job_and_the_command(cluster):
    with step(cluster, "make loadtest-cluster with a wrong token: the master Job fails, the "
                       "command exits non-zero"):
        result, run = loadtest_cluster(cluster, "WORKERS=1", "USERS=1", "REQUESTS=20",
                                       "ARGS=--token not-the-seed-token")
        assert result.returncode != 0, result.stdout + result.stderr[-4000:]
        assert run["failures"] == 20 and not run["passed"]
        assert "LOAD TEST FAILED: 20 of 20 requests failed" in result.stderr
        assert "the master Job failed" in result.stderr
    with step(cluster, "a master that cannot start (an invalid image name): the command says "
                       "why at once, exits non-zero"):
        started = time.monotonic()
        # Upper case is not allowed in an image name: the kubelet refuses it without any pull.
        result = cluster.run("python3", "scripts/loadtest_cluster.py", "--image",
                             "LoadGenerator:invalid", check=False, timeout=300)
        assert result.returncode == 1, result.stdout + result.stderr[-4000:]
        assert "the master Job cannot start: InvalidImageName" in result.stderr, result.stderr
        assert time.monotonic() - started < 120, "waited for the Job's deadline instead"


def test_slow_clients_through_the_nodeport_do_not_starve_others(cluster):
    """tests/test_edge.py's probe on the real path: kind's port mapping, the NodePort, nginx in
    the app-a pod. In-cluster every client reaches nginx from the node's address, so the 64
    hostile sockets and the normal client share one per-client allowance, as they would behind
    a NAT."""
    for kind in KINDS:
        with step(cluster, f"64 {kind} sockets through the NodePort: a normal client gets only 200s, "
                           "nginx closes them all"):
            with Hostile(cluster.url, kind) as hostile:
                answers = normal_client(cluster.url, 4)
                hostile.stop_trickling()
                say(f"  {kind}: {len(answers)} sequential POST /jobs, p99 {p99(answers) * 1000:.0f} ms")
                assert {status for status, _ in answers} == {200}, answers
                assert poll(lambda hostile=hostile: hostile.closed() == hostile.count, 15, interval=0.5), \
                    f"{hostile.closed()} of {hostile.count} closed"


# TCP connect to host:port, a few tries (a new pod's NetworkPolicy rules are programmed moments
# after it starts): prints "reached" or "blocked <error>".
CONNECT = ("import socket, sys, time\n"
           "for attempt in range(5):\n"
           "    try:\n"
           "        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
           "        sys.exit(print('reached'))\n"
           "    except OSError as error:\n"
           "        outcome = f'blocked {type(error).__name__}'\n"
           "        time.sleep(1)\n"
           "print(outcome)\n")


def test_network_policy_is_enforced(cluster):
    """A pod outside app-ab (no policy limits its egress) reaches app-a's port but neither app-b's
    nor PostgreSQL's; inside, app-a cannot reach PostgreSQL and app-b can."""
    probe_ns = "netpol-probe"
    image = image_of(cluster.pods("app-a")[0], "app-a")  # one with python3
    cluster.kubectl("create", "namespace", probe_ns)
    try:
        def probe(name, host, port):
            # Run to completion, then read the log: `kubectl run -i` can miss a short pod's output.
            cluster.kubectl("-n", probe_ns, "run", name, "--restart=Never", "--image", image,
                            "--image-pull-policy=Never", "--command", "--", "python3", "-c", CONNECT,
                            host, str(port))
            cluster.kubectl("-n", probe_ns, "wait", f"pod/{name}", "--timeout=120s",
                            "--for=jsonpath={.status.phase}=Succeeded", timeout=150)
            return cluster.kubectl("-n", probe_ns, "logs", name).strip()
        with step(cluster, "NetworkPolicy: a pod of another namespace reaches app-a, not app-b or "
                           "postgres"):
            assert probe("to-app-a", f"app-a.{NAMESPACE}.svc", 5000) == "reached"
            assert probe("to-app-b", f"app-b.{NAMESPACE}.svc", 5001).startswith("blocked")
            assert probe("to-postgres", f"postgres.{NAMESPACE}.svc", 5432).startswith("blocked")
            jobs = get(f"{cluster.url}/jobs", method="POST", headers=TOKEN)
            assert jobs.status_code == 200, "app-a -> app-b must stay allowed"
        with step(cluster, "NetworkPolicy: from inside app-ab, app-b reaches postgres, app-a does not"):
            def connect_from(app):
                pod = f"pod/{cluster.pods(app)[0]['metadata']['name']}"
                return cluster.kubectl("-n", NAMESPACE, "exec", pod, "-c", app, "--", "python3", "-c",
                                       CONNECT, "postgres", "5432").strip()
            assert connect_from("app-b") == "reached"
            assert connect_from("app-a").startswith("blocked")
    finally:
        cluster.kubectl("delete", "namespace", probe_ns, "--wait=false")


def test_rollout_restarts_under_load_drop_nothing(cluster):
    """app-b here is two replicas on PostgreSQL: each new pod connects to it before it is ready."""
    with step(cluster, "rollout restart of app-a and app-b (2 replicas on PostgreSQL) while Locust "
                       "runs: 0 failed requests"):
        proc = locust(cluster, "--requests", "0", "--run-time", "10m", "--max-p99-ms", "5000",
                      "--min-rps", "1")
        try:
            for app in ("app-a", "app-b"):
                cluster.kubectl("-n", NAMESPACE, "rollout", "restart", f"deployment/{app}")
                cluster.kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{app}",
                                "--timeout=180s", timeout=210)
                # Keep the load on until the old pod has run its preStop and stopped: that window,
                # not the new pod's start, is where a careless rollout drops requests.
                replicas = cluster.replicas(app)
                assert poll(lambda app=app, n=replicas: len(cluster.pods(app, terminating=True)) == n,
                            90), f"old {app} pod lingers"
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        say(locust_verdict(err))
        result = summary(cluster)
        assert result["requests"] > 100 and result["failures"] == 0, out + err[-3000:]


def test_app_b_pod_deleted_then_gone_then_back(cluster):
    app_a = cluster.pods("app-a")[0]
    restarted = restarts(app_a)
    replicas = cluster.replicas("app-b")
    with step(cluster, "app-b pod deleted: its replacement takes over, POST /jobs keeps answering 200"):
        old = cluster.pods("app-b")[0]["metadata"]["name"]
        cluster.kubectl("-n", NAMESPACE, "delete", "pod", old, "--wait=false")
        statuses = []

        def replaced():
            response = get(f"{cluster.url}/jobs", method="POST", headers=TOKEN)
            statuses.append(response.status_code if response is not None else None)
            pods = cluster.pods("app-b", terminating=True)  # done once the old one is gone
            return len(pods) == replicas and old not in {pod["metadata"]["name"] for pod in pods}

        assert poll(replaced, 120), "app-b pod was not replaced"
        assert set(statuses) == {200}, f"statuses seen during the replacement: {statuses}"
    with step(cluster, "app-b gone (scaled to 0): app-a answers 503, then 200 once it is back"):
        cluster.kubectl("-n", NAMESPACE, "scale", "deployment/app-b", "--replicas=0")
        try:
            gone = poll(lambda: jobs_body(cluster, 503), 60)
            assert gone, "app-a never answered 503 while app-b had no pod"
            assert "auth service unavailable" in gone, gone
        finally:
            cluster.kubectl("-n", NAMESPACE, "scale", "deployment/app-b", f"--replicas={replicas}")
        assert poll(lambda: jobs_body(cluster, 200), 120) == JOBS_TEXT, "app-a did not recover"
        now = cluster.pods("app-a")[0]
        assert now["metadata"]["name"] == app_a["metadata"]["name"]
        assert restarts(now) == restarted, "app-a restarted"


def test_distributed_load_req_per_s_by_worker_count(cluster):
    """One fixed load over 1, 2 and 4 Locust workers, app-a held at 3 pods: where the load
    generator stops being the limit. Bounded: each run stops at --run-time whatever happens."""
    hold_autoscaler(cluster, 3, 3)
    runs = {}
    try:
        assert poll(lambda: app_a_replicas(cluster) == (3, 3), 120), "app-a never had 3 ready pods"
        for workers in (1, 2, 4):
            with step(cluster, f"make loadtest-cluster WORKERS={workers} REQUESTS=3000 USERS=8: "
                               "0 failures"):
                result, run = loadtest_cluster(cluster, f"WORKERS={workers}", "REQUESTS=3000",
                                               "USERS=8", "ARGS=--run-time 120s --max-p99-ms 5000",
                                               timeout=400)
                assert result.returncode == 0, result.stdout + result.stderr[-4000:]
                assert run["requests"] == 3000 and run["failures"] == 0
                runs[workers] = run
    finally:
        hold_autoscaler(cluster, 1, 1)  # back to the one pod the other steps count
    say("distributed load (3000 requests, 8 users, app-a 3 pods): " + "; ".join(
        f"{workers} worker(s) {run['rps']} req/s, p99 {run['p99_ms']} ms" for workers, run in runs.items()))


def test_app_a_scales_out_under_load_and_back(cluster):
    """The overlay's autoscaler bounds, with a short scale-down window for this test only (the
    default 300 s would outlast the suite): in-cluster load takes app-a from its minimum to more
    pods and, once it ends, back; a request every second through the NodePort meanwhile, and the
    load itself, see no failure."""
    rendered = yaml.safe_load_all(cluster.kubectl("kustomize", "overlays/ci"))
    bounds = next(doc for doc in rendered if doc["kind"] == "HorizontalPodAutoscaler")["spec"]
    minimum, maximum = bounds["minReplicas"], bounds["maxReplicas"]
    hold_autoscaler(cluster, minimum, maximum,
                    behavior={"scaleDown": {"stabilizationWindowSeconds": 15}})
    with step(cluster, f"HorizontalPodAutoscaler: app-a at its minimum ({minimum}) before the load"):
        assert poll(lambda: app_a_replicas(cluster) == (minimum, minimum)
                    and len(cluster.pods("app-a", terminating=True)) == minimum, 180)
    timeline, statuses, failed, done = [], [], [], threading.Event()
    started = time.monotonic()

    def watch():
        while not done.is_set():
            pods = app_a_replicas(cluster)[0]
            if not timeline or timeline[-1][1] != pods:
                timeline.append((time.monotonic() - started, pods))
            response = get(f"{cluster.url}/jobs", method="POST", headers=TOKEN)
            statuses.append(response.status_code if response is not None else None)
            if statuses[-1] != 200:  # what it said, to tell app_a's reasons apart
                failed.append((round(time.monotonic() - started), statuses[-1],
                               response.text.strip()[:200] if response is not None else "no answer"))
            done.wait(1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with step(cluster, "sustained in-cluster load (2 workers, 8 users, 60 s): app-a scales out, "
                           "0 failures"):
            load = subprocess.Popen(
                ["make", "--no-print-directory", "loadtest-cluster", "WORKERS=2", "USERS=8",
                 "REQUESTS=0", "ARGS=--run-time 60s --max-p99-ms 5000"],
                cwd=REPO, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                scaled = poll(lambda: app_a_replicas(cluster)[1] > minimum, 150, interval=1)
            finally:
                out, err = load.communicate(timeout=400)
            assert scaled, f"app-a stayed at {minimum} pod(s) under load"
            assert load.returncode == 0, out + err[-4000:]
            run = json.loads(out.strip().splitlines()[-1])
            assert run["requests"] > 1000 and run["failures"] == 0, run
        with step(cluster, f"load over: app-a back to {minimum} pod(s), no request failed meanwhile"):
            assert poll(lambda: app_a_replicas(cluster) == (minimum, minimum)
                        and len(cluster.pods("app-a", terminating=True)) == minimum, 240, interval=1)
    finally:
        done.set()
        watcher.join(30)
        say("app-a pods over time (s: pods): " + ", ".join(f"{t:.0f}: {n}" for t, n in timeline))
    assert max(n for _, n in timeline) > minimum
    assert statuses and not failed, (f"{len(failed)} of {len(statuses)} probes failed while "
                                     f"scaling (s, status, body): {failed}")
    say(f"autoscaling: {run['requests']} in-cluster requests at {run['rps']} req/s and "
        f"{len(statuses)} outside probes, 0 failed; peak {max(n for _, n in timeline)} pods")


def test_minikube_overlay_keeps_tokens_on_its_sqlite_claim(cluster):
    """The embedded default, overlays/minikube (`skaffold run` without the ci profile), deployed
    over the same namespace: app-b is one pod on SQLite on a PersistentVolumeClaim, recreated on
    a rollout. The next test's dev loop runs on this deployment and removes it."""
    with step(cluster, "skaffold run (overlays/minikube): app-b on its SQLite claim, one pod"):
        cluster.run("skaffold", "run", "-p", "-ci", "--kube-context", f"kind-{CLUSTER}",
                    "--skip-tests", "--status-check=true", timeout=900)
        cluster.wait_rolled_out()
        [pod] = cluster.pods("app-b")
        [data] = [v for v in pod["spec"]["volumes"] if v["name"] == "data"]
        claim = data["persistentVolumeClaim"]["claimName"]
        phase = cluster.kubectl("-n", NAMESPACE, "get", "pvc", claim, "-o", "jsonpath={.status.phase}")
        assert phase == "Bound"
    with step(cluster, "tokens create, app-b pod deleted: the replacement on the claim accepts it"):
        token = cluster.tokens(f"pod/{pod['metadata']['name']}", "create", "e2e-laptop")
        token = token.strip().splitlines()[-1]
        assert jobs_status(cluster, token) == 200
        old = pod["metadata"]["name"]
        cluster.kubectl("-n", NAMESPACE, "delete", "pod", old, "--wait=false")

        def replaced():
            names = [p["metadata"]["name"] for p in cluster.pods("app-b", terminating=True)]
            return len(names) == 1 and names != [old] and jobs_status(cluster, token) == 200

        assert poll(replaced, 180), "the token did not survive the pod's replacement"
    with step(cluster, "rollout restart (Recreate) of the single writer: the gap, then the token"):
        cluster.kubectl("-n", NAMESPACE, "rollout", "restart", "deployment/app-b")
        started, statuses = time.monotonic(), []

        def through_the_gap():  # one probe every 0.1 s until a failure has been followed by a 200
            statuses.append((time.monotonic() - started, jobs_status(cluster, token)))
            return statuses[-1][1] == 200 and any(status != 200 for _, status in statuses)

        assert poll(through_the_gap, 180, interval=0.1), f"no gap, or never back: {statuses[-5:]}"
        failed = [at for at, status in statuses if status != 200]
        say(f"SQLite claim, rollout restart of app-b: POST /jobs failed for {failed[-1] - failed[0]:.1f} s "
            f"({len(failed)} probes; answers {sorted({s for _, s in statuses}, key=str)})")


def test_skaffold_dev_serves_an_edited_file_in_seconds(cluster, tmp_path):
    """`skaffold dev` with the default (minikube) overlay: an edited .py file is synced into the
    running pod and gunicorn reloads it; no rebuild, no new pod."""
    source = clean_checkout(tmp_path)  # the edit goes to a copy, never to the working tree
    (source / ".venv").symlink_to(REPO / ".venv")  # Skaffold's test stage finds the venv made
    # -p -ci: the ci profile activates by itself on kind contexts; the dev loop is the default config.
    dev = subprocess.Popen(["skaffold", "dev", "-p", "-ci", "--kube-context", f"kind-{CLUSTER}",
                            "--port-forward=off", "--cleanup=true"],
                           cwd=source, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, start_new_session=True)
    log = []
    try:
        with step(cluster, "skaffold dev: built, deployed overlays/minikube, watching"):
            for line in dev.stdout:
                log.append(line)
                if "Watching for changes" in line:
                    break
            assert dev.poll() is None, "".join(log[-40:])
            # Keep reading: a Skaffold whose output pipe fills up blocks, and syncs nothing.
            threading.Thread(target=lambda: log.extend(dev.stdout), daemon=True).start()
            cluster.wait_rolled_out()
            pod = cluster.pods("app-a")[0]["metadata"]["name"]
        with step(cluster, f"edit app_a/app_a/views.py {EDITS} times (a new route each): "
                           "served in the same pod, no build"):
            with port_forward(cluster, f"pod/{pod}", 5000) as url:
                views = source / "app_a" / "app_a" / "views.py"
                latencies = [_edit_until_served(views, url, i, log) for i in range(EDITS)]
            say(f"dev loop, {EDITS} edits, save to served: median {statistics.median(latencies):.2f} s, "
                f"worst {max(latencies):.2f} s (target: median under 1.5 s, worst under 2.5 s); "
                + " ".join(f"{latency:.2f}" for latency in latencies))
            assert [p["metadata"]["name"] for p in cluster.pods("app-a")] == [pod], "pod replaced"
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGINT)  # Ctrl-C: skaffold cleans up what it deployed
            try:
                dev.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(dev.pid, signal.SIGKILL)
                dev.communicate()


def _edit_until_served(views, url, i, log):
    """Append route /dev-loop-<i> to `views`; return the seconds from the save until it is served.
    Then wait for Skaffold to watch again (it runs the unit tests after each sync), so that each
    edit is measured on its own; no edit may start a build."""
    path, text = f"/dev-loop-{i}", f"edited {i}"
    assert get(url + path).status_code == 404
    mark = len(log)
    # A new route, so the unit tests skaffold runs on every change still pass.
    edit = f'\n\n@bp.get("{path}")\ndef dev_loop_{i}():\n    return "{text}"\n'
    edited = time.monotonic()
    views.write_text(views.read_text() + edit)
    served = poll(lambda: (r := get(url + path)) is not None and r.text == text, 60, interval=0.05)
    latency = time.monotonic() - edited
    assert served, f"edit {i} was never served:\n" + "".join(log[-40:])
    assert poll(lambda: any("Watching for changes" in line for line in log[mark:]), 300, interval=0.1), \
        f"skaffold did not finish with edit {i}:\n" + "".join(log[mark:][-40:])
    assert not [line for line in log[mark:] if "Starting build" in line], \
        f"edit {i} rebuilt an image instead of syncing:\n" + "".join(log[mark:][-40:])
    return latency


def test_delete_leaves_nothing_running(cluster):
    with step(cluster, "skaffold delete -p ci, then kind delete cluster: nothing left"):
        cluster.run("skaffold", "delete", "-p", "ci", "--kube-context", f"kind-{CLUSTER}", timeout=300)
        gone = poll(lambda: cluster.run("kubectl", "get", "namespace", NAMESPACE,
                                        check=False).returncode != 0, 120, interval=1)
        assert gone, f"namespace {NAMESPACE} still there"
        cluster.run("kind", "delete", "cluster", "--name", CLUSTER)
        left = cluster.run("docker", "ps", "-a", "-q", "--filter",
                           f"label=io.x-k8s.kind.cluster={CLUSTER}").stdout.split()
        assert left == [], f"containers left behind: {left}"
        assert CLUSTER not in cluster.run("kind", "get", "clusters").stdout.split()
