"""Offline checks of base/ + overlays and skaffold.yaml: no cluster needed."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.stack import REPO, require_tool

OVERLAYS = ("minikube", "ci")
K8S_VERSIONS = ("1.32.0", "1.34.0")  # kind's 1.34 in CI; 1.32 for older minikube installs
APPS = ("app-a", "app-b")
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
    return {name: doc["spec"]["template"] for name, doc in of_kind(objects, "Deployment").items()}


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
        assert pod["securityContext"]["runAsUser"] == 10001, name
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
        assert (name == "app-b") == ("/data" in mounts)


def probe_target(probe):
    """What a probe asks: ("/path", port) for httpGet, ("tcp", port), or ("exec", command)."""
    if "httpGet" in probe:
        return probe["httpGet"]["path"], probe["httpGet"]["port"]
    if "tcpSocket" in probe:
        return "tcp", probe["tcpSocket"]["port"]
    return "exec", " ".join(probe["exec"]["command"])


def test_probes_use_the_health_endpoints_on_a_declared_port(objects):
    """The container behind the Service's port "http" is probed ready on /readyz there; every
    container has a liveness probe with a timeout chosen on purpose (not the default 1 s)."""
    for name, template in pod_specs(objects).items():
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
    for name, deployment in of_kind(objects, "Deployment").items():
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, name
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert container["lifecycle"]["preStop"]["sleep"]["seconds"] > 0, (name, container["name"])
    for name, pdb in of_kind(objects, "PodDisruptionBudget").items():
        assert pdb["spec"]["minAvailable"] == 1, name


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
    OFFLINE_BASE_IMAGE), then `skaffold test`."""
    skaffold = require_tool("skaffold")
    require_tool("docker")
    artifacts = tmp_path / "build.json"
    run(skaffold, "build", "-p", "ci", "--file-output", str(artifacts), env=SKAFFOLD_ENV)
    builds = json.loads(artifacts.read_text())["builds"]
    assert sorted(b["imageName"] for b in builds) == ["app-a", "app-a-edge", "app-b"]
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
