#!/usr/bin/env bash
# Build a Docker image from Debian packages alone: debootstrap a minimal bookworm root filesystem
# with the given packages (from the Debian mirror this host's apt uses), apply bookworm-updates
# and -security, trim docs and caches, and `docker import` it. For machines that reach no image
# registry. Prints the image name on stdout. Needs root (debootstrap, chroot).
#
#   offline/debootstrap-image.sh --tag local/x:bookworm --packages python3,tar \
#       --description "..." [--change 'CMD ["python3"]']... [--smoke 'python3 -V'] [--rebuild]
#
# The image carries a label with a hash of this script and of the arguments: an image whose
# recipe is current is kept, anything else is rebuilt (--rebuild: always, e.g. for security
# updates). Environment: DEBIAN_MIRROR and DEBIAN_SECURITY_MIRROR (default: read from
# /etc/apt/sources.list*), DOCKER (default: see scripts/lib.sh).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

SUITE=bookworm
RECIPE_LABEL=local.base-image.recipe
TAG="" PACKAGES="" DESCRIPTION="" SMOKE="" REBUILD=false
CHANGES=()
while (($#)); do
  case $1 in
    --tag) TAG=$2; shift 2 ;;
    --packages) PACKAGES=$2; shift 2 ;;
    --description) DESCRIPTION=$2; shift 2 ;;
    --change) CHANGES+=(--change "$2"); shift 2 ;;
    --smoke) SMOKE=$2; shift 2 ;;
    --rebuild) REBUILD=true; shift ;;
    *) echo "debootstrap-image: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n $TAG && -n $PACKAGES ]] || { echo "debootstrap-image: --tag and --packages are required" >&2; exit 2; }
RECIPE=$( { cat "${BASH_SOURCE[0]}"; printf '%s\n' "$PACKAGES" "$DESCRIPTION" "$SMOKE" "${CHANGES[@]}"; } \
  | sha256sum | cut -c1-16)

say() { echo "debootstrap-image: $*" >&2; }

exit_if_current() {
  if [[ $(recipe_of "$TAG" "$RECIPE_LABEL") == "$RECIPE" && $REBUILD == false ]]; then
    say "$TAG is current (recipe $RECIPE)"
    echo "$TAG"
    exit 0
  fi
}
exit_if_current

if [[ $(id -u) -ne 0 ]]; then
  say "building $TAG needs root (debootstrap); run: sudo $0"
  exit 1
fi
# One build at a time (make and the test suite may both ask); a waiter then finds it current.
mkdir -p /run/lock
exec 9>"/run/lock/debootstrap-image.${TAG//[^A-Za-z0-9._-]/_}.lock"
flock 9
exit_if_current
previous_id=$(image_id "$TAG")
if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

# The first http(s) URI in the host's apt sources (one-line and deb822) whose path ends in $1.
host_uri() {
  local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
  { grep -shoE "^(deb|URIs:)\s+(\[[^]]*\]\s+)?https?://[^ ]+/$1/?(\s|\$)" "${files[@]}" || true; } \
    | grep -oE 'https?://[^ ]+' | sed 's:/*$::' | head -n 1
}
MIRROR=${DEBIAN_MIRROR:-$(host_uri debian)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
# Security updates come from the -security archive (often a different host).
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-$(host_uri debian-security)}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}

ROOT=$(mktemp -d /var/tmp/base-rootfs.XXXXXX)
LOG=$ROOT.log
cleanup() {
  # debootstrap and chroot may leave proc/sys mounted inside the tree: never rm -rf across them.
  local mnt
  while read -r mnt; do
    umount -l "$mnt" || true
  done < <(awk -v r="$ROOT" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r)
  rm -rf --one-file-system "$ROOT" "$LOG"
}
trap cleanup EXIT

# Run a noisy command with its output in $LOG, shown only if it fails.
quietly() {
  "$@" >"$LOG" 2>&1 || { tail -n 30 "$LOG" >&2; say "failed: $*"; exit 1; }
}

started=$SECONDS
say "debootstrap $SUITE from $MIRROR into $ROOT"
quietly debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR"

# Security and point-release updates on top of what the release shipped.
cat >"$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
# Keep docs, man pages and translations out of anything later installed on top (as Debian's
# own slim images do), so derived images stay as small as this one.
cat >"$ROOT/etc/dpkg/dpkg.cfg.d/excludes" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
say "debootstrap done in $((SECONDS - started)) s; applying $SUITE-updates and $SUITE-security"
# apt runs as root in a bare chroot: skip its _apt download sandbox (it only warns and falls back).
quietly chroot "$ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
  'apt-get -o APT::Sandbox::User=root -o Acquire::Languages=none update -qq &&
   apt-get -o APT::Sandbox::User=root upgrade -y -qq --no-install-recommends && apt-get clean'

# Trim: package lists and caches, docs (licences kept), man pages, locales, logs.
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/* "$ROOT"/var/cache/debconf/*-old \
  "$ROOT"/var/log/* "$ROOT"/var/lib/dpkg/*-old "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
  "$ROOT"/usr/share/locale/* "$ROOT"/usr/share/lintian "$ROOT"/usr/share/linda
find "$ROOT/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$ROOT/usr/share/doc" -mindepth 1 -type d -empty -delete
: >"$ROOT/etc/resolv.conf"
: >"$ROOT/etc/machine-id"

tar --numeric-owner --xattrs -C "$ROOT" -c . | "$DOCKER" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  "${CHANGES[@]}" \
  --change "LABEL $RECIPE_LABEL=$RECIPE" \
  --change "LABEL org.opencontainers.image.title=$TAG" \
  --change "LABEL org.opencontainers.image.description=\"$DESCRIPTION\"" \
  --change "LABEL org.opencontainers.image.base.name=debian:$SUITE" \
  --message "debootstrap --variant=minbase --include=$PACKAGES $SUITE $MIRROR" \
  - "$TAG" >/dev/null

if [[ -n $SMOKE ]]; then
  # stdout carries the image name alone (scripts/docker-build.sh reads it): the smoke output goes
  # to stderr.
  "$DOCKER" run --rm --network none --entrypoint sh "$TAG" -c "$SMOKE" >&2 \
    || { say "smoke test of $TAG failed: $SMOKE"; exit 1; }
fi

drop_replaced "$previous_id" "$TAG"  # unless something still uses it (images built on it)
size=$("$DOCKER" image inspect --format '{{ .Size }}' "$TAG")
say "built $TAG (recipe $RECIPE, $((size / 1000000)) MB) in $((SECONDS - started)) s"
echo "$TAG"
