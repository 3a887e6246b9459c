#!/usr/bin/env bash
# Build the offline base image of the edge proxy (edge/Dockerfile): Debian bookworm minbase with
# nginx-light, made by offline/debootstrap-image.sh. Prints the image name on stdout.
#
#   offline/nginx-base-image.sh            # as root; skips the build if the image is current
#   offline/nginx-base-image.sh --rebuild  # build again anyway (security updates)
#
# scripts/docker-build.sh uses it for edge when OFFLINE_BASE_IMAGE=true.
# Environment: NGINX_BASE_IMAGE_TAG (default local/nginx:bookworm), plus debootstrap-image.sh's.
set -euo pipefail

exec "$(dirname "${BASH_SOURCE[0]}")/debootstrap-image.sh" \
  --tag "${NGINX_BASE_IMAGE_TAG:-local/nginx:bookworm}" \
  --packages nginx-light \
  --description "Debian bookworm minbase + nginx-light (debootstrap)" \
  --change 'CMD ["nginx", "-g", "daemon off;"]' \
  --smoke 'nginx -v' \
  "$@"
