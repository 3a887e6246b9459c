#!/bin/sh
# Runtime stage of every service image: no package tools (pip/setuptools/wheel of the official
# image, the wheels Debian keeps for ensurepip), no setuid/setgid bits, and the fixed non-root
# user 10001 "app". Each DIR given is created for that user alone (a volume's mount point).
#   harden.sh [DIR...]
set -eu
rm -rf /usr/local/bin/pip* /usr/local/bin/wheel /usr/local/lib/python3*/site-packages/pip* \
  /usr/local/lib/python3*/site-packages/setuptools* /usr/local/lib/python3*/site-packages/wheel* \
  /usr/local/lib/python3*/ensurepip /usr/lib/python3*/ensurepip /usr/share/python-wheels
find / -xdev -type f -perm /6000 -exec chmod a-s {} +
groupadd --system --gid 10001 app
useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
  --shell /usr/sbin/nologin app
for dir in "$@"; do
  install --directory --owner=10001 --group=10001 --mode=0700 "$dir"
done
