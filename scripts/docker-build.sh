#!/usr/bin/env bash
# Build one service image with BuildKit, the way Skaffold, make and the tests do. The context is
# the repository root (the shared servicekit/ is there); <service>/Dockerfile.dockerignore
# decides what of it the build sees.
#
#   scripts/docker-build.sh app_a|app_b|edge [extra `docker build` arguments...]
#
# Environment:
#   IMAGE       tag to give the image (default <service>:dev; Skaffold's custom builder sets it)
#   BASE_IMAGE  passed as --build-arg BASE_IMAGE when set; unset: the Dockerfile's default, the
#               official digest-pinned python image (needs a registry)
#   OFFLINE_BASE_IMAGE=true  no registry reachable (this project's CI): build the Debian-only
#               base image first (offline/base-image.sh; for edge offline/nginx-base-image.sh;
#               root) and use it as BASE_IMAGE
#   BUILD_CA_BUNDLE  CA bundle handed to pip as the "ca" build secret (default: the host's bundle,
#               /etc/ssl/certs/ca-certificates.crt, which includes a TLS-intercepting proxy's CA)
#   DOCKER      client to use (default: Debian's /usr/bin/docker, BuildKit built in, when present)
set -euo pipefail

service=${1:?usage: $0 app_a|app_b|edge [docker build args...]}
shift
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"
[[ -f $repo/$service/Dockerfile ]] || { echo "docker-build: no $service/Dockerfile" >&2; exit 2; }
export DOCKER_BUILDKIT=1

if [[ ${OFFLINE_BASE_IMAGE:-} == true && -z ${BASE_IMAGE:-} ]]; then
  if [[ $service == edge ]]; then
    BASE_IMAGE=$("$repo/offline/nginx-base-image.sh")
  else
    BASE_IMAGE=$("$repo/offline/base-image.sh")
  fi
fi
args=(--tag "${IMAGE:-$service:dev}" --file "$repo/$service/Dockerfile")
[[ -n ${BASE_IMAGE:-} ]] && args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
ca=${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[[ -s $ca ]] && args+=(--secret "id=ca,src=$ca")

exec "$DOCKER" build "${args[@]}" "$@" "$repo"
