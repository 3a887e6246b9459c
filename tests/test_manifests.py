"""Offline checks of base/ + overlays and skaffold.yaml: no cluster needed."""
import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import loadtest_cluster  # scripts/, on pytest's pythonpath
import pytest
import yaml

from harness.stack import REPO, require_tool

OVERLAYS = ("minikube", "ci")
K8S_VERSIONS = ("1.32.0", "1.34.0")  # kind's 1.34 in CI; 1.32 for older minikube installs
APPS = ("app-a", "app-b")
# The pods' fixed users: the services' 10001, PostgreSQL's 10002 (postgres/Dockerfile).
RUN_AS = {"app-a": 10001, "app-b": 10001, "postgres": 10002}
# skaffold finds docker, kind and the venv's python on PATH; no update check from CI.
SKAFFOLD_ENV = {**os.environ, "SKAFFOLD_UPDATE_CHECK": "false",
                "PATH": os.pathsep.join([os.path.join(REPO, ".bin"), os.path.join(REPO, ".venv", "bin"),
                                         os.environ["PATH"]])}


def run(*command, **kwargs):
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request):
    return request.param


@pytest.fixture(scope="module")
def rendered(overlay):
    return run(require_tool("kubectl"), "kustomize", f"overlays/{overlay}")


@pytest.fixture(scope="module")
def objects(rendered):
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(rendered)}


def of_kind(objects, kind):
    return {name: doc for (k, name), doc in objects.items() if k == kind}


def pod_specs(objects):
    return {name: doc["spec"]["template"] for kind in ("Deployment", "StatefulSet")
            for name, doc in of_kind(objects, kind).items()}


def containers(template):
    return template["spec"]["containers"] + template["spec"].get("initContainers", [])


def test_kubectl_and_standalone_kustomize_agree(overlay, rendered):
    standalone = run(require_tool("kustomize"), "build", f"overlays/{overlay}")
    assert list(yaml.safe_load_all(standalone)) == list(yaml.safe_load_all(rendered))


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_schema_is_valid_and_strict(rendered, tmp_path, version):
    path = tmp_path / "rendered.yaml"
    path.write_text(rendered)
    run(os.path.join(REPO, ".venv/bin/kubernetes-validate"), "--strict", "--quiet", "-k", version,
        str(path), "overlays/ci/smoke-check-job.yaml")


def test_checkov_finds_nothing_and_every_skip_has_a_reason(rendered, objects, tmp_path):
    path = tmp_path / "rendered.yaml"
    path.write_text(rendered)
    report = json.loads(run(os.path.join(REPO, ".venv/bin/checkov"), "--framework", "kubernetes", "--quiet",
                            "--skip-download", "--output", "json", "--file", str(path)))
    assert report["summary"]["failed"] == 0, [c["check_id"] for c in report["results"]["failed_checks"]]
    assert report["summary"]["passed"] > 100
    for doc in objects.values():
        for key, value in doc["metadata"].get("annotations", {}).items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = value.partition("=")
                assert check.startswith("CKV") and len(reason) > 20, f"{key}: give a reason"


def test_nodeport_32000_only_in_minikube(overlay, objects):
    services = of_kind(objects, "Service")
    assert services["app-b"]["spec"]["type"] == "ClusterIP"
    app_a = services["app-a"]["spec"]
    if overlay == "minikube":
        assert app_a["type"] == "NodePort" and app_a["ports"][0]["nodePort"] == 32000
    else:
        assert app_a["type"] == "ClusterIP"
        assert all("nodePort" not in port for port in app_a["ports"])
    # Metrics never sit behind a Service (the NodePort would publish them).
    assert all(port["port"] != 9100 for svc in services.values() for port in svc["spec"]["ports"])


def test_pods_are_restricted_and_bounded(objects):
    for name, template in pod_specs(objects).items():
        pod = template["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == RUN_AS[name], name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in containers(template):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, container["name"]
            assert security["readOnlyRootFilesystem"] is True, container["name"]
            assert security["capabilities"]["drop"] == ["ALL"], container["name"]
            for kind in ("requests", "limits"):
                assert set(container["resources"][kind]) == {"cpu", "memory"}, container["name"]
            assert ":" not in container["image"], "bare image names, which Skaffold replaces"
        mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert "/tmp" in mounts, name


def probe_target(probe):
    """What a probe asks: ("/path", port) for httpGet, ("tcp", port), or ("exec", command)."""
    if "httpGet" in probe:
        return probe["httpGet"]["path"], probe["httpGet"]["port"]
    if "tcpSocket" in probe:
        return "tcp", probe["tcpSocket"]["port"]
    return "exec", " ".join(probe["exec"]["command"])


def test_probes_use_the_health_endpoints_on_a_declared_port(objects):
    """The container behind an app's Service port "http" is probed ready on /readyz there; every
    container (PostgreSQL's too) has a liveness probe with a timeout chosen on purpose (not the
    default 1 s)."""
    for name, template in pod_specs(objects).items():
        if name in APPS:
            public = [c for c in template["spec"]["containers"]
                      if "http" in {port["name"] for port in c.get("ports", [])}]
            assert len(public) == 1, name
            assert probe_target(public[0]["readinessProbe"]) == ("/readyz", "http"), name
        for container in template["spec"]["containers"]:
            for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                if kind in container:
                    assert container[kind].get("timeoutSeconds", 1) >= 2, (name, container["name"], kind)
            assert "livenessProbe" in container, (name, container["name"])


def test_app_a_is_reached_only_through_its_edge_proxy(objects):
    pod = pod_specs(objects)["app-a"]["spec"]
    edge, app = (next(c for c in pod["containers"] if c["name"] == n) for n in ("edge", "app-a"))
    assert [port["containerPort"] for port in edge["ports"]] == [5000]
    env = {item["name"]: item["value"] for item in app["env"] if "value" in item}
    assert env["HOST"] == "127.0.0.1" and env["PORT"] == "5080"  # loopback: only nginx reaches it
    assert "http" not in {port["name"] for port in app["ports"]}
    # gunicorn is probed from inside its container; liveness catches a stuck gunicorn.
    for kind in ("startupProbe", "livenessProbe"):
        assert probe_target(app[kind]) == ("exec", "python3 -m servicekit.healthcheck 5080"), kind
    # nginx stops taking requests before gunicorn stops serving them.
    assert edge["lifecycle"]["preStop"]["sleep"]["seconds"] < app["lifecycle"]["preStop"]["sleep"]["seconds"]


def test_rollouts_keep_a_ready_pod_and_drain_first(objects):
    """Rolling updates never go below the ready replicas and drain first; only a single writer on
    a ReadWriteOnce claim (app-b on SQLite) is recreated instead, with no drain wait and no PDB."""
    pdbs = of_kind(objects, "PodDisruptionBudget")
    for name, deployment in of_kind(objects, "Deployment").items():
        spec = deployment["spec"]
        containers = spec["template"]["spec"]["containers"]
        if spec["strategy"]["type"] == "Recreate":
            assert spec["strategy"] == {"type": "Recreate"} and spec["replicas"] == 1, name
            waits = [c["name"] for c in containers if "lifecycle" in c]
            assert waits == [], f"{name}: no pod takes over, so a preStop sleep only waits"
            assert name not in pdbs, f"{name}: a PDB over one recreated pod only blocks drains"
            claims = [v for v in spec["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v]
            assert claims, f"{name}: Recreate is for the single writer of a claim"
        else:
            for container in containers:
                assert container["lifecycle"]["preStop"]["sleep"]["seconds"] > 0, (name, container["name"])
            assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, name
            assert pdbs[name]["spec"]["minAvailable"] == 1, name
    assert set(pdbs) <= set(of_kind(objects, "Deployment")), "no PDB over the one database pod"


def test_selectors_are_stable_and_match_their_pods(objects):
    for name, deployment in of_kind(objects, "Deployment").items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector == {"app.kubernetes.io/name": name}, "selectors carry no extra labels"
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
        assert labels["app.kubernetes.io/part-of"] == "app-ab"
        service = of_kind(objects, "Service")[name]
        assert service["spec"]["selector"].items() <= labels.items()


def test_network_policies_fence_app_b(objects):
    policies = of_kind(objects, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    pod_labels = {name: t["metadata"]["labels"] for name, t in pod_specs(objects).items()}

    def selects(selector, labels):
        return selector.get("matchLabels", {}).items() <= labels.items()

    app_b_rules = policies["app-b"]["spec"]
    assert selects(app_b_rules["podSelector"], pod_labels["app-b"])
    sources = [peer for rule in app_b_rules["ingress"] for peer in rule["from"]]
    assert sources and all(selects(peer["podSelector"], pod_labels["app-a"]) for peer in sources)
    assert not any(selects(peer["podSelector"], pod_labels["app-b"]) for peer in sources)
    app_a_egress = policies["app-a"]["spec"]["egress"]
    assert [peer["podSelector"]["matchLabels"] for rule in app_a_egress for peer in rule["to"]] == \
        [{"app.kubernetes.io/name": "app-b"}]


def test_seed_token_comes_from_a_secret_file(objects):
    app_b = pod_specs(objects)["app-b"]["spec"]
    config = next(doc for (kind, name), doc in objects.items()
                  if kind == "ConfigMap" and name.startswith("app-b-config"))
    assert "SEED_TOKEN" not in config["data"]
    assert config["data"]["SEED_TOKEN_FILE"] == "/var/run/secrets/app-b/seed-token"
    secret_volume = next(v for v in app_b["volumes"] if "secret" in v)
    assert secret_volume["secret"]["secretName"].startswith("app-b-seed")


def test_the_dev_overlays_generate_the_seed_secret_the_deployment_mounts(objects):
    secrets = of_kind(objects, "Secret")
    [name] = [name for name in secrets if name.startswith("app-b-seed-")]
    assert secrets[name]["metadata"]["namespace"] == "app-ab"
    mounted = next(v for v in pod_specs(objects)["app-b"]["spec"]["volumes"] if "secret" in v)
    assert mounted["secret"]["secretName"] == name


def test_base_mounts_a_seed_secret_it_does_not_make():
    """The dev token lives only in components/dev-seed-token: any overlay of base that does not
    add it must supply the Secret itself (or app-b's pod does not start)."""
    docs = list(yaml.safe_load_all(run(require_tool("kubectl"), "kustomize", "base")))
    assert [doc for doc in docs if doc["kind"] == "Secret"] == []
    app_b = next(doc for doc in docs if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "app-b")
    secret_volume = next(v for v in app_b["spec"]["template"]["spec"]["volumes"] if "secret" in v)
    assert secret_volume["secret"]["secretName"] == "app-b-seed"
    assert [path for path in Path(REPO, "base").rglob("*") if "mytoken" in path.read_text()] == []


@pytest.mark.parametrize("profile", [[], ["-p", "ci"]], ids=["default", "ci"])
def test_skaffold_diagnose_and_render_offline(profile, tmp_path):
    skaffold = require_tool("skaffold")
    run(skaffold, "diagnose", "--yaml-only", *profile)
    out = tmp_path / "rendered.yaml"
    run(skaffold, "render", "--offline=true", "--digest-source=none", "--output", str(out), *profile)
    docs = [doc for doc in yaml.safe_load_all(out.read_text()) if doc]
    kinds = [doc["kind"] for doc in docs]
    assert kinds.count("Deployment") == 2 and "NetworkPolicy" in kinds
    assert ("StatefulSet" in kinds) == bool(profile), "PostgreSQL with -p ci only"
    node_ports = [svc["spec"].get("type") for svc in docs if svc["kind"] == "Service"]
    assert ("NodePort" in node_ports) == (not profile), "minikube by default, ClusterIP with -p ci"


def test_only_skaffold_dev_builds_the_dev_images_and_it_acts_on_a_save_quickly():
    """Profile dev switches itself on for `skaffold dev` alone and builds app-a and app-b with
    DEV=true (gunicorn's inotify reloader); every other command builds the production images.
    skaffold.env, which Skaffold reads at start, cuts its watcher's 1 s debounce."""
    skaffold = require_tool("skaffold")
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    profile = next(p for p in config["profiles"] if p["name"] == "dev")
    assert profile["activation"] == [{"command": "dev"}]

    def build_commands(*flags):
        rendered = yaml.safe_load(run(skaffold, "diagnose", "--yaml-only", *flags))
        return {a["image"]: a["custom"]["buildCommand"] for a in rendered["build"]["artifacts"]}
    dev = build_commands("-p", "dev")
    assert {image for image, command in dev.items() if command.endswith("--build-arg DEV=true")} == \
        {"app-a", "app-b"}
    for flags in ([], ["-p", "ci"]):
        assert not [command for command in build_commands(*flags).values() if "DEV=" in command]
    settings = dict(line.split("=", 1) for line in (REPO / "skaffold.env").read_text().splitlines()
                    if line and not line.startswith("#"))
    assert int(settings["SKAFFOLD_WATCH_POLL_INTERVAL"]) <= 200


@pytest.mark.docker
def test_skaffold_builds_every_image_and_unit_tests_for_ci(tmp_path):
    """`skaffold build -p ci` with the local engine (on the offline base image where CI sets
    OFFLINE_BASE_IMAGE), PostgreSQL's image included, then `skaffold test`."""
    skaffold = require_tool("skaffold")
    require_tool("docker")
    artifacts = tmp_path / "build.json"
    run(skaffold, "build", "-p", "ci", "--file-output", str(artifacts), env=SKAFFOLD_ENV)
    builds = json.loads(artifacts.read_text())["builds"]
    assert sorted(b["imageName"] for b in builds) == ["app-a", "app-a-edge", "app-ab-postgres", "app-b"]
    for build in builds:
        run("docker", "image", "inspect", build["tag"])
    run(skaffold, "diagnose", "-p", "ci", env=SKAFFOLD_ENV)
    run(skaffold, "test", "-p", "ci", "--build-artifacts", str(artifacts), env=SKAFFOLD_ENV)


def test_every_namespaced_object_lands_in_app_ab(objects):
    """An overlay's own resources must carry the namespace too: without it kubectl puts them in
    the context's namespace. (overlays/ci's allow-smoke-check once landed in "default", so the
    verify Job's pod was refused as soon as kube-router had programmed its rules.)"""
    cluster_wide = {"Namespace"}
    misplaced = {f"{kind}/{name}": doc["metadata"].get("namespace")
                 for (kind, name), doc in objects.items()
                 if kind not in cluster_wide and doc["metadata"].get("namespace") != "app-ab"}
    assert misplaced == {}


# --- components/loadgenerator, as `make loadtest-cluster` renders it (scripts/loadtest_cluster.py)

@pytest.fixture(scope="module")
def loadgenerator(tmp_path_factory):
    require_tool("kubectl")
    options = loadtest_cluster.parse(["--workers", "3", "--users", "6", "--", "--token", "wrong"])
    directory = tmp_path_factory.mktemp("loadgenerator")
    rendered = loadtest_cluster.render(str(directory), options, "loadgenerator:0123456789ab")
    (directory / "rendered.yaml").write_text(rendered)
    return directory / "rendered.yaml", {(doc["kind"], doc["metadata"]["name"]): doc
                                         for doc in yaml.safe_load_all(rendered)}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_loadgenerator_schema_is_valid_and_strict(loadgenerator, version):
    run(os.path.join(REPO, ".venv/bin/kubernetes-validate"), "--strict", "--quiet", "-k", version,
        str(loadgenerator[0]))


def test_loadgenerator_passes_checkov_and_pod_security_restricted(loadgenerator):
    path, objects = loadgenerator
    report = json.loads(run(os.path.join(REPO, ".venv/bin/checkov"), "--framework", "kubernetes",
                            "--quiet", "--skip-download", "--output", "json", "--file", str(path)))
    assert report["summary"]["failed"] == 0, [c["check_id"] for c in report["results"]["failed_checks"]]
    templates = [objects[("Job", "locust-master")]["spec"]["template"],
                 objects[("Deployment", "locust-worker")]["spec"]["template"]]
    for template in templates:
        pod = template["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            assert container["image"] == "loadgenerator:0123456789ab"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"]
    assert all(doc["metadata"]["namespace"] == "app-ab" for doc in objects.values())


def test_loadgenerator_worker_count_is_set_once_and_options_reach_the_master(loadgenerator):
    _, objects = loadgenerator
    settings = objects[("ConfigMap", "loadgenerator-settings")]["data"]
    assert settings["LOCUST_EXPECT_WORKERS"] == "3"
    assert objects[("Deployment", "locust-worker")]["spec"]["replicas"] == 3
    job = objects[("Job", "locust-master")]["spec"]
    master = job["template"]["spec"]["containers"][0]
    assert master["envFrom"] == [{"configMapRef": {"name": "loadgenerator-settings"}}]
    assert master["args"][:2] == ["--master", "--headless"] and master["args"][-2:] == ["--token", "wrong"]
    assert job["backoffLimit"] == 0  # the Job's status is the one run's verdict


def test_loadgenerator_policies_allow_exactly_workers_to_master_and_to_app_a(loadgenerator):
    _, objects = loadgenerator
    policies = {name: doc["spec"] for (kind, name), doc in objects.items() if kind == "NetworkPolicy"}
    assert set(policies) == {"locust-master", "locust-worker"}

    def peers(rules, key):
        return [(peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"], port["port"])
                for rule in rules.get(key, []) for peer in rule[{"ingress": "from", "egress": "to"}[key]]
                for port in rule["ports"]]

    master, worker = policies["locust-master"], policies["locust-worker"]
    for policy in (master, worker):
        assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert peers(master, "ingress") == [("locust-worker", 5557)] and peers(master, "egress") == []
    assert peers(worker, "ingress") == []
    assert peers(worker, "egress") == [("locust-master", 5557), ("app-a", 5000)]


def test_loadtest_cluster_refuses_bad_parameters_with_one_line():
    result = subprocess.run([sys.executable, "scripts/loadtest_cluster.py", "--workers", "4",
                             "--users", "2"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(
        "--users must be at least --workers (a worker without users sends nothing)")


# --- components/app-a-autoscaling

def test_the_autoscaler_owns_app_a_replicas(overlay, objects):
    app_a = of_kind(objects, "Deployment")["app-a"]["spec"]
    hpas = of_kind(objects, "HorizontalPodAutoscaler")
    if overlay == "minikube":
        assert hpas == {} and app_a["replicas"] >= 1
        return
    spec = hpas["app-a"]["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app-a"}
    assert "replicas" not in app_a, "a replica count in the Deployment would undo the autoscaler's"
    assert 1 <= spec["minReplicas"] < spec["maxReplicas"]
    assert of_kind(objects, "PodDisruptionBudget")["app-a"]["spec"]["minAvailable"] <= spec["minReplicas"]
    assert "behavior" not in spec, "the defaults (300 s scale-down window); the cluster test shortens it"


def test_the_autoscaling_component_keeps_base_size_and_a_disruption(tmp_path):
    """With base alone, the component's minimum is base's replica count, above the PDB's
    minAvailable, so a node drain can always evict one app-a pod."""
    (tmp_path / "kustomization.yaml").write_text(json.dumps({
        "resources": [os.path.relpath(REPO / "base", tmp_path)],
        "components": [os.path.relpath(REPO / "components" / "app-a-autoscaling", tmp_path)]}))
    docs = {(doc["kind"], doc["metadata"]["name"]): doc
            for doc in yaml.safe_load_all(run(require_tool("kubectl"), "kustomize", str(tmp_path)))}
    base = {(doc["kind"], doc["metadata"]["name"]): doc
            for doc in yaml.safe_load_all(run("kubectl", "kustomize", "base"))}
    spec = docs[("HorizontalPodAutoscaler", "app-a")]["spec"]
    assert spec["minReplicas"] == base[("Deployment", "app-a")]["spec"]["replicas"]
    assert spec["minReplicas"] > docs[("PodDisruptionBudget", "app-a")]["spec"]["minAvailable"]
    assert spec["metrics"][0]["resource"]["name"] == "cpu"


def env_of(container):
    return {var["name"]: var for var in container.get("env", [])}


def app_b_config(objects):
    return next(doc["data"] for (kind, name), doc in objects.items()
                if kind == "ConfigMap" and name.startswith("app-b-config"))


def test_app_b_storage_is_what_the_overlay_chose(overlay, objects):
    """minikube: the SQLite file on a ReadWriteOnce claim, one pod. ci: PostgreSQL through the
    URL from the Secret, two pods, and nothing of SQLite left (app_b refuses both settings)."""
    app_b = of_kind(objects, "Deployment")["app-b"]
    pod = app_b["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = env_of(container)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert not {"APP_B_DB_PATH", "APP_B_DATABASE_URL"} & set(app_b_config(objects))
    if overlay == "ci":
        assert "APP_B_DB_PATH" not in env and "/data" not in mounts and "data" not in volumes
        ref = env["APP_B_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert ref["key"] == "database-url" and ref["name"].startswith("app-b-postgres-")
        assert ref["name"] in of_kind(objects, "Secret")
        assert app_b["spec"]["replicas"] == 2
    else:
        assert "APP_B_DATABASE_URL" not in env
        assert env["APP_B_DB_PATH"]["value"] == "/data/app_b.sqlite3" and mounts["/data"] == "data"
        assert set(volumes["data"]) == {"name", "persistentVolumeClaim"}, "the claim, not an emptyDir"
        claim_name = volumes["data"]["persistentVolumeClaim"]["claimName"]
        claim = of_kind(objects, "PersistentVolumeClaim")[claim_name]
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert app_b["spec"]["replicas"] == 1 and app_b["spec"]["strategy"] == {"type": "Recreate"}
    assert (("StatefulSet", "postgres") in objects) == (overlay == "ci")


@pytest.fixture(scope="module")
def ci_objects():
    """overlays/ci, the overlay with components/postgres."""
    rendered = run(require_tool("kubectl"), "kustomize", "overlays/ci")
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(rendered)}


@pytest.fixture(scope="module")
def postgres(ci_objects):
    return of_kind(ci_objects, "StatefulSet")["postgres"]


def test_postgres_keeps_its_data_on_its_claim_and_probes_with_pg_isready(postgres):
    spec = postgres["spec"]
    assert spec["replicas"] == 1
    [claim] = spec["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    container = spec["template"]["spec"]["containers"][0]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/var/lib/postgresql/data"] == claim["metadata"]["name"]
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    # Everything else the server writes is scratch (the root filesystem is read-only).
    assert "emptyDir" in volumes[mounts["/var/run/postgresql"]] and "emptyDir" in volumes[mounts["/tmp"]]
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["exec"]["command"][0] == "pg_isready", probe
    # Liveness asks only that the postmaster listens: a long crash recovery is "rejecting"
    # to pg_isready, and must not get the pod killed.
    assert container["livenessProbe"]["tcpSocket"]["port"] in {p["name"] for p in container["ports"]}


def test_postgres_and_app_b_read_one_consistent_secret(postgres, ci_objects):
    """The server's role, database and password and app-b's URL agree, and the password reaches
    the server as a file, never as an environment value."""
    [secret] = [doc for name, doc in of_kind(ci_objects, "Secret").items()
                if name.startswith("app-b-postgres-")]
    data = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    pod = postgres["spec"]["template"]["spec"]
    env = {name: var["value"] for name, var in env_of(pod["containers"][0]).items()}
    url = urlsplit(data["database-url"])
    service = of_kind(ci_objects, "Service")["postgres"]["spec"]
    assert url.scheme == "postgresql" and url.hostname == "postgres"
    assert url.port == service["ports"][0]["port"] == 5432
    assert (url.username, url.path, url.password) == (env["POSTGRES_USER"], "/" + env["POSTGRES_DB"],
                                                      data["password"])
    [credentials] = [v for v in pod["volumes"] if "secret" in v]
    assert credentials["secret"]["secretName"] == secret["metadata"]["name"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == credentials["name"])
    items = {item["key"]: item["path"] for item in credentials["secret"]["items"]}
    assert env["POSTGRES_PASSWORD_FILE"] == f"{mount['mountPath']}/{items['password']}"
    assert "database-url" not in items, "the server gets only its password"


def selects(selector, labels):
    return selector.get("matchLabels", {}).items() <= labels.items() and all(
        (labels.get(e["key"]) in e["values"]) == (e["operator"] == "In")
        for e in selector.get("matchExpressions", []))


def allows(policies, direction, own, peer, port):
    """Whether the NetworkPolicies let a pod with labels `own` send ("egress") to or accept
    ("ingress") from a pod of this namespace with labels `peer` a TCP connection on `port`
    (Kubernetes' rule: a pod that no policy of that direction selects is open in it)."""
    peer_key = {"egress": "to", "ingress": "from"}[direction]
    selecting = [policy for policy in policies.values()
                 if direction.capitalize() in policy["policyTypes"] and selects(policy["podSelector"], own)]
    rules = [rule for policy in selecting for rule in policy.get(direction, [])]
    return not selecting or any(
        (not rule.get(peer_key) or any(set(p) == {"podSelector"} and selects(p["podSelector"], peer)
                                       for p in rule[peer_key]))
        and (not rule.get("ports") or any(p["port"] == port for p in rule["ports"]))
        for rule in rules)


def test_only_app_b_pods_reach_postgres(ci_objects):
    """Checked at both ends: PostgreSQL's ingress admits app-b alone (a pod of another namespace
    is not limited by this namespace's egress rules), and app-b's egress lets it connect."""
    policies = {name: doc["spec"] for name, doc in of_kind(ci_objects, "NetworkPolicy").items()}
    pods = {name: template["metadata"]["labels"] for name, template in pod_specs(ci_objects).items()}
    smoke_job = yaml.safe_load(Path(REPO, "overlays", "ci", "smoke-check-job.yaml").read_text())
    pods["smoke-check"] = smoke_job["spec"]["template"]["metadata"]["labels"]
    pods["unlabelled"] = {}
    server = pods["postgres"]
    assert {name for name, labels in pods.items()
            if allows(policies, "ingress", server, labels, 5432)} == {"app-b"}
    assert allows(policies, "egress", pods["app-b"], server, 5432)
    assert not allows(policies, "ingress", server, pods["app-b"], 5433), "5432 only"
    # Ingress peers are pod selectors only: no namespace or address block widens them.
    peers = [peer for spec in policies.values() if selects(spec["podSelector"], server)
             for rule in spec.get("ingress", []) for peer in rule["from"]]
    assert peers and all(set(peer) == {"podSelector"} for peer in peers)
    # And the fence around app-b is unchanged: app-a alone may call it.
    assert {name for name, labels in pods.items()
            if allows(policies, "ingress", pods["app-b"], labels, 5001)} == {"app-a"}


def test_base_and_the_postgres_component_make_no_credentials(tmp_path):
    """Only components/dev-postgres-credentials (dev overlays) makes the Secret: base and
    components/postgres refer to app-b-postgres by its plain name, which a real deployment supplies."""
    def relative(folder):  # kustomize takes no absolute paths
        return os.path.relpath(REPO / folder, tmp_path)
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "resources": [relative("base")], "components": [relative("components/postgres")]}
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    docs = list(yaml.safe_load_all(run(require_tool("kubectl"), "kustomize", str(tmp_path))))
    assert [doc["metadata"]["name"] for doc in docs if doc["kind"] == "Secret"] == []
    rendered = {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}
    app_b = rendered[("Deployment", "app-b")]["spec"]["template"]["spec"]
    ref = env_of(app_b["containers"][0])["APP_B_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "app-b-postgres"
    server = rendered[("StatefulSet", "postgres")]["spec"]["template"]["spec"]
    assert [v["secret"]["secretName"] for v in server["volumes"] if "secret" in v] == ["app-b-postgres"]
    dev_password = "dev-only-postgres-password"
    for folder in ("base", "components/postgres"):
        assert [p for p in Path(REPO, folder).rglob("*") if dev_password in p.read_text()] == [], folder
