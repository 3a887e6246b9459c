#!/usr/bin/env bash
# Build one service image with BuildKit, the way CI and the Makefile do.
#
#   scripts/docker-build.sh app_a|app_b [extra `docker build` arguments...]
#
# Environment:
#   IMAGE       tag to give the image (default <service>:dev; Skaffold's custom builder sets it)
#   BASE_IMAGE  passed as --build-arg BASE_IMAGE when set, e.g. the output of
#               scripts/build-base-image.sh; unset: the Dockerfile's default (needs a registry)
#   BUILD_CA_BUNDLE  CA bundle handed to pip as the "ca" build secret (default: the host's bundle,
#               /etc/ssl/certs/ca-certificates.crt, which includes a TLS-intercepting proxy's CA)
#   DOCKER      client to use. Default: Debian's /usr/bin/docker (20.10, BuildKit built in) when
#               present, else `docker` from PATH (which must then have buildx)
set -euo pipefail

service=${1:?usage: $0 app_a|app_b [docker build args...]}
shift
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
context=$repo/$service
[[ -f $context/Dockerfile ]] || { echo "docker-build: no $context/Dockerfile" >&2; exit 2; }

if [[ -z ${DOCKER:-} ]]; then
  DOCKER=docker
  [[ -x /usr/bin/docker ]] && DOCKER=/usr/bin/docker
fi
export DOCKER_BUILDKIT=1

args=(--tag "${IMAGE:-$service:dev}" --file "$context/Dockerfile")
[[ -n ${BASE_IMAGE:-} ]] && args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
ca=${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[[ -s $ca ]] && args+=(--secret "id=ca,src=$ca")

exec "$DOCKER" build "${args[@]}" "$@" "$context"
