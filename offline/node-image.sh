#!/usr/bin/env bash
# Build the kind node image for machines that reach no image registry: every piece comes from Go
# modules (offline/tools/*/go.mod: Kubernetes, etcd, CoreDNS, crictl, kube-router,
# local-path-provisioner, metrics-server), Debian packages (systemd, containerd, runc, CNI plugins,
# iptables, busybox) and one C file (pause). The images kubeadm and the node's add-ons ask for are
# built here too and imported into the node's containerd when it boots.
# Prints the node image name on stdout. Needs root (debootstrap) and a Docker engine.
#
#   offline/node-image.sh     # cached: a node image whose recipe is current is kept
#   kind create cluster --image "$(offline/node-image.sh)" --config offline/kind/cluster.yaml
#
# Go binaries are cached in .cache/kind-node/ keyed on their tools module and build flags.
# Environment: KIND_NODE_IMAGE (default local/kind-node:<kubernetes version>), DOCKER (client).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
offline=$repo/offline
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"
RECIPE_LABEL=local.kind-node.recipe
NETFILTER_BASE=local/netfilter:bookworm
NODE_ROOTFS=local/kind-node-rootfs:bookworm
say() { echo "node-image: $*" >&2; }

module_version() {  # module_version TOOLS_DIR MODULE
  (cd "$offline/tools/$1" && go list -m -f '{{.Version}}' "$2")
}
KUBE_VERSION=$(module_version kubernetes k8s.io/kubernetes)
ETCD_VERSION=$(module_version etcd go.etcd.io/etcd/server/v3)
COREDNS_VERSION=$(module_version coredns github.com/coredns/coredns)
KUBE_ROUTER_VERSION=$(module_version kube-router github.com/cloudnativelabs/kube-router/v2)
LOCAL_PATH_VERSION=$(module_version local-path-provisioner github.com/rancher/local-path-provisioner)
METRICS_SERVER_VERSION=$(module_version metrics-server sigs.k8s.io/metrics-server)
TAG=${KIND_NODE_IMAGE:-local/kind-node:$KUBE_VERSION}

# Everything that goes into the image; a change to any of it rebuilds the image.
mapfile -t node_files < <(cd "$offline" && find kind/node -type f | sort)
RECIPE=$(cd "$offline" && cat node-image.sh debootstrap-image.sh \
  tools/{kubernetes,etcd,coredns,crictl,kube-router,local-path-provisioner,metrics-server}/go.{mod,sum} "${node_files[@]}" \
  | sha256sum | cut -c1-16)
if [[ $(recipe_of "$TAG" "$RECIPE_LABEL") == "$RECIPE" && -x $repo/.bin/kubectl ]]; then
  say "$TAG is current (recipe $RECIPE)"
  echo "$TAG"
  exit 0
fi
started=$SECONDS
cache=$repo/.cache/kind-node
bin=$cache/bin
mkdir -p "$bin"

# go_build TOOLS_DIR LDFLAGS PACKAGE...: static binaries into $bin, skipped when the module files
# and flags are those of the last build.
go_build() {
  local dir=$1 ldflags=$2 stamp key
  shift 2
  stamp=$cache/$dir.stamp
  key=$(cat "$offline/tools/$dir/go.mod" "$offline/tools/$dir/go.sum" <(echo "$ldflags $*") | sha256sum)
  if [[ -f $stamp && $(cat "$stamp") == "$key" ]]; then
    say "$dir: binaries current"
    return
  fi
  local t=$SECONDS
  (cd "$offline/tools/$dir" && CGO_ENABLED=0 go build -trimpath -tags selinux,notest \
    -ldflags "-s -w $ldflags" -o "$bin/" "$@")
  echo "$key" >"$stamp"
  say "$dir: built in $((SECONDS - t)) s"
}

# Kubernetes binaries report their version from these variables (kubeadm and kind read it).
kube_ldflags=""
build_date=$(cd "$offline/tools/kubernetes" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
go_build kubernetes "$kube_ldflags" k8s.io/kubernetes/cmd/{kubeadm,kubelet,kubectl,kube-apiserver,kube-controller-manager,kube-scheduler,kube-proxy}
go_build etcd "" go.etcd.io/etcd/server/v3
[[ -f $bin/server ]] && mv -f "$bin/server" "$bin/etcd"  # go names it after the module path
go_build coredns "" github.com/coredns/coredns
go_build crictl "-X sigs.k8s.io/cri-tools/pkg/version.Version=$(module_version crictl sigs.k8s.io/cri-tools)" \
  sigs.k8s.io/cri-tools/cmd/crictl
go_build kube-router "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" \
  github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
go_build local-path-provisioner "-X main.VERSION=$LOCAL_PATH_VERSION" github.com/rancher/local-path-provisioner
go_build metrics-server "-X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION" \
  sigs.k8s.io/metrics-server/cmd/metrics-server

# The images kubeadm will ask the node's containerd for, by name.
mapfile -t kube_images < <("$bin/kubeadm" config images list --kubernetes-version "$KUBE_VERSION")

# pause: a few lines of C in the Kubernetes tree, built the way upstream builds it.
pause_version=$(printf '%s\n' "${kube_images[@]}" | sed -n 's|.*/pause:||p')
kube_dir=$(cd "$offline/tools/kubernetes" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)
gcc -Os -Wall -Werror -static -DVERSION="v$pause_version" -o "$bin/pause" "$kube_dir/build/pause/linux/pause.c"
strip "$bin/pause"

"$offline/debootstrap-image.sh" --tag "$NETFILTER_BASE" \
  --packages iptables,ipset,conntrack,iproute2,nftables \
  --description "Debian bookworm minbase + iptables, ipset, conntrack, nft (kube-proxy, kube-router)" \
  --smoke 'iptables --version && nft --version && command -v ipset conntrack' >/dev/null
"$offline/debootstrap-image.sh" --tag "$NODE_ROOTFS" \
  --packages systemd,systemd-sysv,dbus,containerd,runc,iptables,iproute2,ca-certificates,mount,util-linux,kmod,conntrack,nftables,containernetworking-plugins,procps,busybox-static \
  --description "Debian bookworm root filesystem for the offline kind node" \
  --smoke 'containerd --version && runc --version && test -x /usr/lib/cni/bridge && busybox true' >/dev/null

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/images" "$context/bin"

# component_image NAME BASE BINARY: the image kubeadm (or our CNI manifest) names, holding one
# static binary. scratch where the binary needs nothing else; the netfilter base for programs
# that run iptables/ipset.
component_image() {
  local name=$1 base=$2 binary=$3
  cp "$bin/$binary" "$context/bin/$binary"
  printf 'FROM %s\nCOPY bin/%s /usr/local/bin/%s\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nENTRYPOINT ["/usr/local/bin/%s"]\n' \
    "$base" "$binary" "$binary" "$binary" \
    | DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "$name" -f - "$context" >/dev/null
  "$DOCKER" save -o "$context/images/${binary}.tar" "$name"
}
check_version() {  # check_version IMAGE BUILT: kubeadm's tag for IMAGE must name the built version
  [[ ${1##*:} == "$2"* ]] || { say "kubeadm $KUBE_VERSION wants $1 but offline/tools/ builds $2; align the versions"; exit 1; }
}
for image in "${kube_images[@]}"; do
  case ${image##*/} in
    kube-proxy:*) component_image "$image" "$NETFILTER_BASE" kube-proxy ;;
    kube-*) name=${image##*/}; component_image "$image" scratch "${name%%:*}" ;;
    etcd:*) check_version "$image" "${ETCD_VERSION#v}"; component_image "$image" scratch etcd ;;
    coredns:*) check_version "$image" "$COREDNS_VERSION"; component_image "$image" scratch coredns ;;
    pause:*) component_image "$image" scratch pause ;;
    *) say "no recipe for $image"; exit 1 ;;
  esac
done
component_image "local/kube-router:$KUBE_ROUTER_VERSION" "$NETFILTER_BASE" kube-router
component_image "local/local-path-provisioner:$LOCAL_PATH_VERSION" scratch local-path-provisioner
component_image "local/metrics-server:$METRICS_SERVER_VERSION" scratch metrics-server

# The local-path-provisioner's helper pods run its setup/teardown scripts (sh, mkdir, rm), as
# busybox does upstream: the node rootfs's static busybox alone, with its applet links.
rootfs_box=$("$DOCKER" create "$NODE_ROOTFS" /bin/busybox)  # a command docker wants, never run
"$DOCKER" cp "$rootfs_box:/bin/busybox" "$bin/busybox"
"$DOCKER" rm "$rootfs_box" >/dev/null
busybox_version=$("$bin/busybox" | sed -n '1s/^BusyBox v\([0-9.]*\).*/\1/p')
HELPER_IMAGE=local/busybox:$busybox_version
cp "$bin/busybox" "$context/bin/busybox"
printf 'FROM scratch\nCOPY bin/busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nENV PATH=/bin\n' \
  | DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "$HELPER_IMAGE" -f - "$context" >/dev/null
"$DOCKER" save -o "$context/images/busybox.tar" "$HELPER_IMAGE"

cp "$bin"/{kubeadm,kubelet,kubectl,crictl} "$context/bin/"
cp -r "$offline/kind/node/files" "$offline/kind/node/manifests" "$context/"
sed -i "s|@KUBE_ROUTER_IMAGE@|local/kube-router:$KUBE_ROUTER_VERSION|" "$context/manifests/default-cni.yaml"
# kind applies default-storage.yaml on every cluster it creates (after the CNI manifest, which it
# skips when the default CNI is disabled): the node's add-ons ride along in it.
cat "$offline/kind/node/addons/"*.yaml >>"$context/manifests/default-storage.yaml"
sed -i -e "s|@LOCAL_PATH_PROVISIONER_IMAGE@|local/local-path-provisioner:$LOCAL_PATH_VERSION|" \
  -e "s|@HELPER_IMAGE@|$HELPER_IMAGE|" -e "s|@METRICS_SERVER_IMAGE@|local/metrics-server:$METRICS_SERVER_VERSION|" \
  "$context/manifests/default-storage.yaml"
echo "$KUBE_VERSION" >"$context/version"
previous_id=$(image_id "$TAG")
DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "$TAG" --build-arg NODE_ROOTFS="$NODE_ROOTFS" \
  --label "$RECIPE_LABEL=$RECIPE" -f "$offline/kind/node/Dockerfile" "$context" >/dev/null
drop_replaced "$previous_id" "$TAG"
# The cluster's own kubectl version, for the tests and skaffold (.bin comes first on their PATH).
mkdir -p "$repo/.bin"
cp "$bin/kubectl" "$repo/.bin/kubectl.new"  # then a rename: a running kubectl keeps its file
mv -f "$repo/.bin/kubectl.new" "$repo/.bin/kubectl"
size=$("$DOCKER" image inspect --format '{{ .Size }}' "$TAG")
say "built $TAG (recipe $RECIPE, $((size / 1000000)) MB) in $((SECONDS - started)) s"
echo "$TAG"
