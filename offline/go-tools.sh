#!/usr/bin/env bash
# Build the pinned Go tools (skaffold, kind, kustomize) from Go modules into .bin/.
# Release binaries are the usual install for users; these machines reach only the Go module
# proxy, so the project builds them. A tool already in .bin/ at its pinned version is kept.
set -euo pipefail

SKAFFOLD_VERSION=v2.24.0   # also pinned in offline/tools/skaffold/go.mod
KIND_VERSION=v0.30.0
KUSTOMIZE_VERSION=v5.8.1

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$repo/.bin
command -v go >/dev/null || { echo "go-tools: go is not installed (need Go 1.26.4+)" >&2; exit 1; }
mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS=-trimpath

have() {  # have TOOL VERSION: TOOL is in .bin and reports VERSION
  [[ -x $bin/$1 ]] && "$bin/$1" version 2>/dev/null | grep -qF -- "$2"
}

timed() {  # timed TOOL VERSION COMMAND...: build unless present, report the time it took
  local tool=$1 version=$2 started=$SECONDS
  shift 2
  if have "$tool" "$version"; then echo "$tool $version: present"; return; fi
  "$@"
  have "$tool" "$version" || { echo "go-tools: $tool does not report $version" >&2; exit 1; }
  echo "$tool $version: built in $((SECONDS - started)) s"
}

timed kustomize "$KUSTOMIZE_VERSION" \
  env GOBIN="$bin" go install -ldflags=-s "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
timed kind "$KIND_VERSION" \
  env GOBIN="$bin" go install -ldflags=-s "sigs.k8s.io/kind@$KIND_VERSION"
# Skaffold's go.mod has replace directives, so it builds inside a tools module of ours.
build_skaffold() {
  (cd "$repo/offline/tools/skaffold" && go build -o "$bin/skaffold" \
    -ldflags "-s -w -X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version=$SKAFFOLD_VERSION" \
    github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold)
}
timed skaffold "$SKAFFOLD_VERSION" build_skaffold
