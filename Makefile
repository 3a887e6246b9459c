# Entry points. The first two are what a newcomer runs: `make run`, then `make test`.
# The seed's Taskfile names (run-app, build-task, scan-images, deploy-task) are kept as targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/.bin
# Project-built Go tools (skaffold, kind, kustomize) come first.
export PATH := $(BIN):$(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help run run-edge test lint tools docker base-image lock upgrade loadtest bench tokens \
        loadtest-cluster node-image cluster cluster-delete e2e run-app build-task scan-images \
        deploy-task dev bench-instructions

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-19s %s\n", $$1, $$2}'

$(VENV)/.runtime: app_a/requirements.txt app_b/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --require-hashes -r app_a/requirements.txt -r app_b/requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(VENV)/bin/pip install --quiet --require-hashes -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime ## run app_b and app_a locally on 127.0.0.1:5001/5000 (no cluster needed)
	$(VENV)/bin/python scripts/localstack.py

run-edge: $(VENV)/.runtime ## as run, with nginx (edge/nginx.conf) in front of app_a as in the pod
	$(VENV)/bin/python scripts/localstack.py --edge

# The CLI starts app_b's store as the service does: with APP_B_DATABASE_URL set it uses that,
# else the file `make run` serves from (or APP_B_DB_PATH). SEED_* only if you set them.
tokens: $(VENV)/.runtime ## token admin (README "Tokens"): make tokens ARGS="create alice --expires-in 30d"
	@cd app_b && export PYTHONPATH=$(CURDIR) && \
	  if [ -z "$${APP_B_DATABASE_URL:-}" ]; then \
	    export APP_B_DB_PATH="$${APP_B_DB_PATH:-$(CURDIR)/var/app_b.sqlite3}"; fi && \
	  flask --app app_b tokens $(ARGS)

test: lint ## lint, then the whole test suite (builds the Go tools first where Go is installed)
	@if command -v go >/dev/null; then offline/go-tools.sh; \
	 else echo "go not found: tests needing skaffold/kind/kustomize will skip (CI installs them)"; fi
	$(VENV)/bin/python -m pytest

lint: $(VENV)/.dev ## ruff and shellcheck over the whole repository (any finding fails)
	scripts/lint.sh

tools: ## build skaffold, kind and kustomize from Go modules into .bin/ (offline/README.md)
	offline/go-tools.sh

docker: ## install and start a Docker engine where none runs (root)
	offline/docker-engine.sh

base-image: docker ## build the offline Debian base image (used when OFFLINE_BASE_IMAGE=true)
	offline/base-image.sh

node-image: docker ## build the offline kind node image (Kubernetes from Go modules; root)
	offline/node-image.sh

cluster: docker tools ## create the kind cluster "app-ab" (context kind-app-ab) from the node image
	kind create cluster --config offline/kind/cluster.yaml --image "$$(offline/node-image.sh)" --wait 3m

cluster-delete: ## delete the kind cluster "app-ab"
	kind delete cluster --name app-ab

e2e: $(VENV)/.dev tools ## only the real-cluster suite (its own throwaway kind cluster)
	$(VENV)/bin/python -m pytest -s tests/test_cluster.py

lock: $(VENV)/.dev ## hash-pin every requirements.txt after a requirements.in edit (keeps other pins)
	for dir in app_a app_b loadtest; do \
	  uv pip compile --quiet $(UPGRADE) --generate-hashes --python-version 3.11 \
	    $$dir/requirements.in -o $$dir/requirements.txt; done
	@# --no-deps: inotify's wheel names the packaging tool `build` as a run-time dependency by
	@# mistake; it imports only the standard library.
	uv pip compile --quiet $(UPGRADE) --generate-hashes --python-version 3.11 --no-deps \
	  servicekit/image/requirements-dev.in -o servicekit/image/requirements-dev.txt
	uv pip compile --quiet $(UPGRADE) --generate-hashes --python-version 3.11 \
	  requirements-dev.in -o requirements-dev.txt

upgrade: ## like lock, but every pin moves to the newest release
	$(MAKE) lock UPGRADE=--upgrade

# --- the seed's Taskfile names, now driven by Skaffold (minikube by default; -p ci for kind) ---
run-app: scan-images deploy-task ## the seed's main task: scan, build into the cluster, deploy

build-task: $(VENV)/.dev ## build both images with Skaffold (into minikube's Docker on minikube)
	skaffold build $(SKAFFOLD_FLAGS)

scan-images: $(VENV)/.dev ## hadolint, checkov, SBOMs (no vulnerability DB reachable: said so)
	scripts/scan-images.sh $(IMAGES)

deploy-task: $(VENV)/.dev ## build, unit-test and deploy overlays/minikube (kind: SKAFFOLD_FLAGS="-p ci")
	skaffold run $(SKAFFOLD_FLAGS)

dev: $(VENV)/.dev ## skaffold dev: hot-reload edited .py files into the running pods
	skaffold dev $(SKAFFOLD_FLAGS)

loadtest: $(VENV)/.dev ## the ab acceptance load as Locust, against HOST (default the local stack)
	locust -f loadtest/jobs.py --headless --host $(or $(HOST),http://127.0.0.1:5000)

# In the current kube context's app-ab namespace (the app deployed there, e.g. by deploy-task):
# builds and loads the load generator image, runs components/loadgenerator, exits 1 on a failed run.
# Quiet (@): stdout is the run's summary, one JSON line; the master's log goes to stderr.
loadtest-cluster: ## the load inside the cluster, distributed (WORKERS=2 REQUESTS=500 USERS=4 ARGS=...)
	@$(PYTHON) scripts/loadtest_cluster.py $(if $(WORKERS),--workers $(WORKERS)) \
	  $(if $(REQUESTS),--requests $(REQUESTS)) $(if $(USERS),--users $(USERS)) $(if $(ARGS),-- $(ARGS))

bench: $(VENV)/.dev ## benchmark, about 5 min: this design vs a bare Flask pair and the naive original (ARGS="--requests N --rounds N")
	PYTHONPATH=scripts $(VENV)/bin/python bench/run.py $(ARGS)

bench-instructions: $(VENV)/.dev ## instructions per request of each service vs the bare pair (callgrind; apt install valgrind)
	PYTHONPATH=scripts $(VENV)/bin/python bench/instructions.py
