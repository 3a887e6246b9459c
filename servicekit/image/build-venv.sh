#!/bin/sh
# Builder stage of every service image: a virtualenv at /opt/venv with the hash-pinned
# requirements (wheels only, no compiler) and no pip left in it.
#   [DEV=true] build-venv.sh REQUIREMENTS_TXT
# DEV=true (the images `skaffold dev` builds): also the dev-only requirements-dev.txt beside this
# script (gunicorn's inotify reloader).
# The "ca" build secret, when mounted and non-empty, is the CA bundle of a TLS-intercepting proxy;
# it is used for pip only and never lands in a layer.
set -eu
set -- -r "$1"
if [ "${DEV:-false}" = true ]; then set -- "$@" -r "$(dirname "$0")/requirements-dev.txt"; fi
python3 -m venv /opt/venv
if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PYTHONDONTWRITEBYTECODE=1 \
  /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps --only-binary=:all: "$@"
/opt/venv/bin/pip uninstall --quiet --yes pip setuptools
