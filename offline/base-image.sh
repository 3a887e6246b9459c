#!/usr/bin/env bash
# Build the offline base image the Dockerfiles can start from when no registry is reachable:
# Debian bookworm minbase with python3 (3.11), python3-venv, ca-certificates and tar (Skaffold
# file sync), made by offline/debootstrap-image.sh. Prints the image name on stdout.
#
#   offline/base-image.sh            # as root; skips the build if the image is current
#   offline/base-image.sh --rebuild  # build again anyway (e.g. to pick up security updates)
#
# scripts/docker-build.sh uses it when OFFLINE_BASE_IMAGE=true (this project's CI sets that).
# Environment: BASE_IMAGE_TAG (default local/python:3.11-bookworm), plus debootstrap-image.sh's.
set -euo pipefail

exec "$(dirname "${BASH_SOURCE[0]}")/debootstrap-image.sh" \
  --tag "${BASE_IMAGE_TAG:-local/python:3.11-bookworm}" \
  --packages python3,python3-venv,ca-certificates \
  --description "Debian bookworm minbase + python3, python3-venv, ca-certificates (debootstrap)" \
  --change 'CMD ["python3"]' \
  --smoke 'python3 -c "import ssl, sqlite3, venv, sys; assert sys.version_info[:2] == (3, 11)" && tar --version >/dev/null' \
  "$@"
