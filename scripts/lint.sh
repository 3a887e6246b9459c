#!/usr/bin/env bash
# Lint the whole repository: ruff (configured in pyproject.toml) over the Python, shellcheck over
# every shell script git knows (by extension or #! line). Any finding fails.
#   scripts/lint.sh          (make lint; make test runs it first)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ruff check --quiet .
if ! command -v shellcheck >/dev/null; then
  # As the test suite does with a missing tool: skip on a laptop, fail in CI.
  echo "lint: shellcheck not installed (apt-get install shellcheck): shell scripts not linted" >&2
  [[ ${CI:-} != true ]] || exit 1
  exit 0
fi
mapfile -t scripts < <(git ls-files -co --exclude-standard | while read -r file; do
  [[ -f $file ]] || continue
  if [[ $file == *.sh ]] || head -n 1 "$file" | grep -qE '^#!.*\b(ba)?sh\b'; then echo "$file"; fi
done)
shellcheck -x "${scripts[@]}"
echo "lint: ruff and shellcheck clean (${#scripts[@]} shell scripts)"
