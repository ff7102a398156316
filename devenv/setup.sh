#!/usr/bin/env bash
# Installs and starts everything the tests and the demo need, idempotently:
# Debian packages, a Docker daemon, the Data Plane API binary (cached outside the clone),
# npm dependencies and the locally built images. Quick when everything is already there.
#
# Usage: devenv/setup.sh            (prints the Data Plane API binary path on the last line)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=devenv/versions.env
source "$here/versions.env"

cache_dir=${HSC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/haproxy-sidecar}
mkdir -p "$cache_dir"

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need_root() { [ "$(id -u)" = 0 ] || { log "must run as root to install $1"; exit 1; }; }

# --- Debian packages -------------------------------------------------------------------
packages=(haproxy docker.io docker-compose wrk debootstrap curl socat iproute2 ca-certificates prometheus prometheus-alertmanager)
# Packages whose postinst starts a system service the environment does not want: the tests and
# the run command start their own Prometheus and Alertmanager on free loopback ports (devenv/prometheus.ts) and
# only use promtool/amtool otherwise, so a packaged daemon would just hold :9090/:9093 and
# keep running after the tests. Only a fresh install is kept quiet; a machine whose owner
# installed them before keeps its services as they are.
quiet_services=(prometheus prometheus-alertmanager)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
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
      if printf '%s\n' "${missing[@]}" | grep -qx "$service"; then
        systemctl disable --now "$service.service" >/dev/null 2>&1 || true
      fi
    done
  fi
fi
# The environment runs its own HAProxy instances on free loopback ports; the package's
# system service (where systemd runs it) is neither needed nor touched.

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
dpa_bin=""
if [ -n "${DATAPLANEAPI_GO_VERSION}" ]; then
  dpa_dir="$cache_dir/dataplaneapi/${DATAPLANEAPI_GO_VERSION}"
  dpa_bin="$dpa_dir/dataplaneapi"
  if [ ! -x "$dpa_bin" ]; then
    log "building the Data Plane API ${DATAPLANEAPI_RELEASE} (${DATAPLANEAPI_GO_VERSION}); a few minutes the first time"
    build=$(mktemp -d)
    # A throwaway module pins the exact version; `go install pkg@version` would also ask the
    # proxy for the module's version list, which a filtered proxy may refuse.
    (
      cd "$build"
      go mod init hsc.local/dataplaneapi-build >/dev/null 2>&1
      GOFLAGS=-mod=mod go get "${DATAPLANEAPI_MODULE}@${DATAPLANEAPI_GO_VERSION}" >/dev/null
      CGO_ENABLED=0 go build -trimpath -o "$build/dataplaneapi" "${DATAPLANEAPI_MODULE}/cmd/dataplaneapi"
    )
    mkdir -p "$dpa_dir"
    mv "$build/dataplaneapi" "$dpa_bin.tmp" && mv "$dpa_bin.tmp" "$dpa_bin"
    rm -rf "$build"
  fi
else
  log "WARNING: no Data Plane API version is pinned in devenv/versions.env: the Go module proxy"
  log "         reachable here does not serve a v3 release (README: Data Plane API availability)."
  log "         Tests that need it are reported as skipped."
fi

# --- npm dependencies ----------------------------------------------------------------------
stamp="$root/node_modules/.hsc-lock-hash"
lock_hash=$(sha256sum "$root/package-lock.json" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  log "installing npm dependencies"
  (cd "$root" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$lock_hash" >"$stamp"
fi

# --- images ------------------------------------------------------------------------------
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  need_root debootstrap
  log "bootstrapping the local Debian base image $BASE_IMAGE (no registry is reachable)"
  rootfs=$(mktemp -d)
  debootstrap --variant=minbase "$BASE_SUITE" "$rootfs" http://deb.debian.org/debian >/dev/null
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
fi

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

echo "$dpa_bin"
