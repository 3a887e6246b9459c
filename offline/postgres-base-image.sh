#!/usr/bin/env bash
# Build the offline base of the PostgreSQL image (postgres/Dockerfile) when no registry is
# reachable: Debian bookworm minbase with Debian's postgresql-15, made by
# offline/debootstrap-image.sh. Prints the image name on stdout.
#
#   offline/postgres-base-image.sh            # as root; skips the build if the image is current
#   offline/postgres-base-image.sh --rebuild  # build again anyway (e.g. for security updates)
#
# scripts/docker-build.sh postgres uses it when OFFLINE_BASE_IMAGE=true (this project's CI).
# Environment: POSTGRES_BASE_IMAGE_TAG (default local/postgresql:15-bookworm), plus
# debootstrap-image.sh's.
set -euo pipefail

exec "$(dirname "${BASH_SOURCE[0]}")/debootstrap-image.sh" \
  --tag "${POSTGRES_BASE_IMAGE_TAG:-local/postgresql:15-bookworm}" \
  --packages postgresql-15 \
  --description "Debian bookworm minbase + postgresql-15 (debootstrap)" \
  --smoke '/usr/lib/postgresql/15/bin/postgres --version | grep -q "(PostgreSQL) 15\." && id postgres' \
  "$@"
