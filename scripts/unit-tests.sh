#!/usr/bin/env bash
# One service's unit tests with the project's virtualenv, made first if missing: Skaffold's test
# stage runs this (skaffold dev / run / test), so it never depends on the host's python.
#   scripts/unit-tests.sh app_a|app_b
set -euo pipefail
service=${1:?usage: $0 app_a|app_b}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
make --no-print-directory --silent .venv/.dev
# No bytecode in the source tree: Skaffold watches it, and a written .pyc is a change there.
# Niced: in `skaffold dev` the tests start right after each sync, beside the pod's reload, and the
# reload is what the developer is waiting for.
PYTHONDONTWRITEBYTECODE=1 exec nice -n 10 .venv/bin/python -m pytest -q -p no:cacheprovider "$service/tests"
