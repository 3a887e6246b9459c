#!/usr/bin/env bash
# Make sure a Docker engine answers. If one already does, change nothing.
# Otherwise (root only) install Debian's docker.io, write the daemon settings this kind of host
# needs, start dockerd in the background (no systemd here) and wait until it answers.
# Safe to run again at any time; the daemon is left running.
#
#   offline/docker-engine.sh          # as root on Debian bookworm (make docker)
#
# Environment: DOCKERD_LOG (default /var/log/dockerd.log), DOCKERD_PIDFILE (default
# /var/run/docker.pid), DOCKER_WAIT_SECONDS (default 60).
set -euo pipefail

LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
PIDFILE=${DOCKERD_PIDFILE:-/var/run/docker.pid}
WAIT_SECONDS=${DOCKER_WAIT_SECONDS:-60}
DAEMON_JSON=/etc/docker/daemon.json
# docker.io: the 20.10 engine and the one client here that does BuildKit builds (/usr/bin/docker).
# debootstrap: offline/base-image.sh builds the offline base image with it.
PACKAGES=(docker.io debootstrap)
RUNC_WRAPPER_NAME=runc-without-sys-resource
RUNC_WRAPPER=/usr/local/bin/$RUNC_WRAPPER_NAME
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { echo "docker-engine: $*" >&2; }

engine_answers() {
  local cli
  for cli in /usr/bin/docker "$(command -v docker || true)"; do
    [[ -x $cli ]] && timeout 10 "$cli" info >/dev/null 2>&1 && return 0
  done
  return 1
}

# CAP_SYS_RESOURCE (bit 24) missing from this host's bounding set: runc cannot start privileged
# containers (kind's nodes) unless a wrapper runtime drops it from their spec.
needs_runc_wrapper() {
  local bounding
  bounding=$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)
  (( (0x$bounding >> 24 & 1) == 0 ))
}

wrapper_in_use() {
  /usr/bin/docker info --format '{{ .DefaultRuntime }}' 2>/dev/null | grep -qx "$RUNC_WRAPPER_NAME"
}

if engine_answers && { ! needs_runc_wrapper || wrapper_in_use; }; then
  say "a Docker engine already answers; nothing to do"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  say "no Docker engine answers and installing one needs root."
  say "Run this script as root, or start Docker yourself and make sure 'docker info' works for you."
  exit 1
fi

install_packages() {
  local missing=() pkg
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  export DEBIAN_FRONTEND=noninteractive
  # Fresh machines and slim images have no package lists yet.
  if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -qq
  fi
  say "installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Merge settings into daemon.json, keeping whatever else is there; prints "changed" if it wrote.
configure_daemon() {
  local wrapper=""
  if needs_runc_wrapper; then
    install -m 0755 "$HERE/$RUNC_WRAPPER_NAME" "$RUNC_WRAPPER"
    wrapper=$RUNC_WRAPPER
  fi
  mkdir -p "$(dirname "$DAEMON_JSON")"
  python3 - "$DAEMON_JSON" "$wrapper" <<'EOF'
import json, os, sys

path, wrapper = sys.argv[1:]
settings = {
    # This host refuses a negative oom_score_adj, which dockerd sets for itself by default (-500).
    "oom-score-adjust": 0,
    # BuildKit for clients that ask the daemon which builder to use (Debian's 20.10 CLI).
    "features": {"buildkit": True},
}
if wrapper:
    name = os.path.basename(wrapper)
    settings["runtimes"] = {name: {"path": wrapper}}
    settings["default-runtime"] = name
current = {}
if os.path.exists(path):
    with open(path) as f:
        text = f.read()
    current = json.loads(text) if text.strip() else {}
merged = {**current, **settings, "features": {**current.get("features", {}), **settings["features"]}}
if wrapper:
    merged["runtimes"] = {**current.get("runtimes", {}), **settings["runtimes"]}
if merged != current:
    with open(path + ".tmp", "w") as f:
        json.dump(merged, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)
    print(f"docker-engine: wrote {path}", file=sys.stderr)
    print("changed")
EOF
}

dockerd_running() {
  [[ -s $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

start_dockerd() {
  if dockerd_running; then
    if [[ $1 == changed ]]; then
      say "dockerd already running (pid $(cat "$PIDFILE")); reloading its settings"
      kill -HUP "$(cat "$PIDFILE")"  # runtimes and default-runtime are live-reloadable
    fi
    return 0
  fi
  mkdir -p "$(dirname "$LOG")"
  say "starting dockerd (log: $LOG)"
  # setsid: own session, so the daemon outlives this script and the shell that ran it.
  setsid dockerd --pidfile "$PIDFILE" </dev/null >>"$LOG" 2>&1 &
}

wait_for_engine() {
  local deadline=$((SECONDS + WAIT_SECONDS))
  until engine_answers; do
    if ((SECONDS >= deadline)); then
      say "dockerd did not answer within ${WAIT_SECONDS} s; last lines of $LOG:"
      tail -n 20 "$LOG" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
}

install_packages
settings=$(configure_daemon)  # an assignment, so set -e sees configure_daemon fail
start_dockerd "$settings"
wait_for_engine
say "Docker engine ready ($(/usr/bin/docker version --format '{{.Server.Version}}'))"
