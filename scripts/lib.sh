# shellcheck shell=bash
# Shell helpers the project's scripts share; source it: . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# (scripts under offline/ source ../scripts/lib.sh).

# The docker client: Debian's 20.10 /usr/bin/docker where present (BuildKit built in, and no
# warning on classic builds), else `docker` from PATH. An explicit DOCKER wins.
DOCKER=${DOCKER:-$([[ -x /usr/bin/docker ]] && echo /usr/bin/docker || echo docker)}

# recipe_of IMAGE LABEL: the recipe hash an existing image carries in LABEL (empty if none).
recipe_of() {
  "$DOCKER" image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true
}

# image_id IMAGE: its id, empty if there is no such image.
image_id() {
  "$DOCKER" image inspect --format '{{ .Id }}' "$1" 2>/dev/null || true
}

# drop_replaced PREVIOUS_ID IMAGE: remove the image IMAGE's new build replaced, unless something
# still uses it (an image built on it, a container).
drop_replaced() {
  if [[ -n $1 && $1 != "$(image_id "$2")" ]]; then
    "$DOCKER" image rm "$1" >/dev/null 2>&1 || true
  fi
}
