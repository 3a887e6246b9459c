#!/usr/bin/env bash
# Build one image with BuildKit, the way Skaffold, make and the tests do. The context is
# the repository root (the shared servicekit/ is there); <service>/Dockerfile.dockerignore
# decides what of it the build sees.
#
#   scripts/docker-build.sh app_a|app_b|edge|loadtest|postgres [extra `docker build` arguments...]
#
# Environment:
#   IMAGE       tag to give the image (default <service>:dev; Skaffold's custom builder sets it)
#   BASE_IMAGE  passed as --build-arg BASE_IMAGE when set; unset: the Dockerfile's default, the
#               official digest-pinned python image (needs a registry)
#   OFFLINE_BASE_IMAGE=true  no registry reachable (this project's CI): build the Debian-only
#               base image first (offline/base-image.sh; for edge offline/nginx-base-image.sh;
#               root) and use it as BASE_IMAGE. postgres always does so
#               (offline/postgres-base-image.sh): its base is Debian's postgresql-15 package,
#               and it has no registry default.
#   BUILD_CA_BUNDLE  CA bundle handed to pip as the "ca" build secret (default: the host's bundle,
#               /etc/ssl/certs/ca-certificates.crt, which includes a TLS-intercepting proxy's CA)
#   DOCKER      client to use (default: Debian's /usr/bin/docker, BuildKit built in, when present)
set -euo pipefail

service=${1:?usage: $0 app_a|app_b|edge|loadtest|postgres [docker build args...]}
shift
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"
[[ -f $repo/$service/Dockerfile ]] || { echo "docker-build: no $service/Dockerfile" >&2; exit 2; }
export DOCKER_BUILDKIT=1

if [[ -z ${BASE_IMAGE:-} ]]; then
  case $service@${OFFLINE_BASE_IMAGE:-} in
    postgres@*) BASE_IMAGE=$("$repo/offline/postgres-base-image.sh") ;;
    edge@true) BASE_IMAGE=$("$repo/offline/nginx-base-image.sh") ;;
    *@true) BASE_IMAGE=$("$repo/offline/base-image.sh") ;;
  esac
fi
args=(--tag "${IMAGE:-$service:dev}" --file "$repo/$service/Dockerfile")
[[ -n ${BASE_IMAGE:-} ]] && args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
ca=${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[[ -s $ca ]] && args+=(--secret "id=ca,src=$ca")

exec "$DOCKER" build "${args[@]}" "$@" "$repo"
