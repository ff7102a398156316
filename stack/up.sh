#!/usr/bin/env bash
# One command for the whole stack on this machine: installs what is missing (devenv/setup.sh),
# generates the secrets once, builds every image locally and starts the stack, then waits until
# every service is healthy and prints the addresses.
#
#   bash stack/up.sh
#
# Environment (all optional): COMPOSE_PROJECT_NAME (hsc), HSC_SECRETS_DIR (stack/secrets),
# HSC_HTTP_PORT (8080), HSC_STATS_PORT (8404), HSC_SIDECAR_PORT (9180), HSC_PROMETHEUS_PORT
# (9090), HSC_ALERTMANAGER_PORT (9093), HSC_GRAFANA_PORT (3000), HSC_NFS_SERVER / HSC_NFS_PATH
# (the shared volume on NFS), HSC_DB_REPLICA=1 (start the replica db2 and read from it),
# HSC_HAPROXY_TARGET (`haproxy` here; `full` builds the Data Plane API, which needs the Go
# module proxy to serve it), HSC_HAPROXY_DRIVER (how the sidecar writes to HAProxy: `runtime`
# for the `haproxy` image, `dataplane` for `full`), HSC_GRAFANA=1 (build and start Grafana: needs
# the registry), HSC_SKIP_SETUP=1 (do not run devenv/setup.sh), HSC_UP_TIMEOUT (240 s); the
# sidecar's policy: HSC_AUTOSCALE_{MIN,MAX,INTERVAL_MS,CPU_TARGET,CPU_DOWN,RPS_TARGET,RPS_DOWN,
# DOWN_WINDOW_MS,FORECAST,DRY_RUN}, HSC_DRAIN_DEADLINE_MS (stack/compose.yaml has the defaults).
set -euo pipefail
# --build-only: install what is missing and build the images, start nothing (the image tests,
# test/integration/security*.test.ts, use the images as this script builds them).
build_only=""
for arg in "$@"; do
  case "$arg" in
    --build-only) build_only=1 ;;
    *) printf 'usage: %s [--build-only]\n' "$0" >&2; exit 2 ;;
  esac
done
# shellcheck source=stack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=devenv/versions.env
source "$repo_root/devenv/versions.env"

log() { printf '[stack %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ "${HSC_SKIP_SETUP:-0}" != 1 ]; then
  log "running devenv/setup.sh"
  # --stack: also the trixie base the HAProxy image (3.0) is built from.
  bash "$repo_root/devenv/setup.sh" --stack >/dev/null
fi

# --- secrets: generated once, kept out of git (.gitignore), images and logs ------------------
# The directory is root-only; the files are world-readable inside it because Compose (without
# Swarm) bind-mounts them with their host mode, and several services read them as non-root
# users (haproxy, the sidecar's `node`, Grafana). Letters and digits only, so that no secret
# can break the configuration file it is rendered into.
secret_names=(db_admin_password db_replication_password db_backup_password db_app_password db_exporter_password
              dataplane_password haproxy_stats_password haproxy_cookie_key sidecar_admin_token grafana_admin_password)
[ -n "$build_only" ] || install -d -m 700 "$HSC_SECRETS_DIR"
for name in "${secret_names[@]}"; do
  [ -z "$build_only" ] || break
  file="$HSC_SECRETS_DIR/$name"
  if [ ! -s "$file" ]; then
    (umask 022 && head -c 64 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9' | head -c 32 >"$file.tmp" && mv "$file.tmp" "$file")
    log "generated secret $name"
  fi
done

# --- images -------------------------------------------------------------------------------
# Rebuilt only when their inputs change (a hash label, as devenv/setup.sh does).
# The machine's own additional trust anchors (an HTTPS-inspecting proxy in front of the npm
# registry, for instance) for the Node build stages; empty on a normal machine.
extra_ca=$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)
build() {
  local tag=$1 context=$2; shift 2
  local inputs=() args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do inputs+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  args=("$@")
  local hash
  hash=$( { (cd "$context" && find "${inputs[@]}" -type f -print0 | sort -z | xargs -0 sha256sum); printf '%s\n' "${args[@]}"; } | sha256sum | cut -d' ' -f1)
  if [ "$(docker image inspect -f '{{ index .Config.Labels "hsc.context-hash" }}' "$tag" 2>/dev/null)" != "$hash" ]; then
    log "building image $tag"
    local output
    output=$(docker build -q "${args[@]}" --label "hsc.context-hash=$hash" -t "$tag" "$context" 2>&1) \
      || { printf '%s\n' "$output" >&2; log "building $tag failed"; exit 1; }
  fi
}
haproxy_target=${HSC_HAPROXY_TARGET:-haproxy}
build hsc/node:local "$stack_dir/images/node" . -- --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "NODE_VERSION=$NODE_VERSION" --build-arg "EXTRA_CA_CERTS=$extra_ca"
node_id=$(docker image inspect -f '{{.Id}}' hsc/node:local)
build hsc/sidecar:local "$repo_root" Dockerfile .dockerignore package.json package-lock.json tsconfig.json tsconfig.build.json generated sidecar \
  -- --build-arg NODE_IMAGE=hsc/node:local --build-arg "EXTRA_CA_CERTS=$extra_ca" --label "hsc.node-image=$node_id"
# HAProxy 3.0, as in the local environment: Debian 13's package, so a trixie base.
docker image inspect "$HAPROXY_BASE_IMAGE" >/dev/null 2>&1 \
  || { log "the base image $HAPROXY_BASE_IMAGE is missing: run bash devenv/setup.sh --stack"; exit 1; }
build hsc/haproxy:local "$repo_root/haproxy" . -- --build-arg "BASE_IMAGE=$HAPROXY_BASE_IMAGE" --target "$haproxy_target"
build hsc/docker-api-proxy:local "$stack_dir/images/docker-api-proxy" . -- --build-arg "BASE_IMAGE=$BASE_IMAGE"
build hsc/monitoring:local "$stack_dir/images/monitoring" . -- --build-arg "BASE_IMAGE=$BASE_IMAGE"
services=(haproxy sidecar nginx db1 db-backup db-exporter prometheus alertmanager node-exporter docker-api-proxy)
if [ "${HSC_GRAFANA:-0}" = 1 ]; then
  build hsc/grafana:local "$repo_root/grafana" . --
  services+=(grafana)
fi
[ -z "$build_only" ] || exit 0

# --- start ----------------------------------------------------------------------------------
# The Data Plane API where the image has it; without it, HAProxy's runtime API and the managed
# region of the configuration file on the control volume (haproxy/stack-entrypoint.sh).
if [ "$haproxy_target" = full ]; then default_driver=dataplane; else default_driver=runtime; fi
export HSC_HAPROXY_DRIVER=${HSC_HAPROXY_DRIVER:-$default_driver}
profiles=()
if [ "${HSC_DB_REPLICA:-0}" = 1 ]; then
  profiles=(--profile replica)
  services+=(db2)
  export HSC_DB_READER_HOSTS=${HSC_DB_READER_HOSTS:-db2}
fi
log "starting project $COMPOSE_PROJECT_NAME: ${services[*]}"
compose "${profiles[@]}" up -d --no-build "${services[@]}" >&2

# --- wait until healthy (bounded) ------------------------------------------------------------
deadline=$(( $(date +%s) + ${HSC_UP_TIMEOUT:-240} ))
while :; do
  pending=()
  for id in $(compose "${profiles[@]}" ps -q); do
    state=$(docker inspect -f '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id")
    case "$state" in *" healthy") ;; *) pending+=("$state") ;; esac
  done
  [ ${#pending[@]} -eq 0 ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    log "not healthy in time: ${pending[*]}"
    exit 1
  fi
  sleep 2
done
# Healthy is not yet serving: the application reaches HAProxy once the sidecar has added the
# replicas (its first reconcile pass converged: /readyz).
sidecar_url="http://127.0.0.1:${HSC_SIDECAR_PORT:-9180}/readyz"
until curl -fsS -o /dev/null --max-time 3 "$sidecar_url"; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    log "the sidecar did not get ready in time ($sidecar_url): $(curl -sS --max-time 3 "$sidecar_url" 2>&1 || true)"
    exit 1
  fi
  sleep 1
done

cat <<INFO
The stack is up (project $COMPOSE_PROJECT_NAME); every service is healthy.

  application (through HAProxy)  http://127.0.0.1:${HSC_HTTP_PORT:-8080}/
  HAProxy stats page             http://127.0.0.1:${HSC_STATS_PORT:-8404}/haproxy-stats   user admin, password in $HSC_SECRETS_DIR/haproxy_stats_password
  HAProxy Prometheus endpoint    http://127.0.0.1:${HSC_STATS_PORT:-8404}/metrics
  sidecar (admin API, /metrics)  http://127.0.0.1:${HSC_SIDECAR_PORT:-9180}/v1/backends   token in $HSC_SECRETS_DIR/sidecar_admin_token
  Prometheus                     http://127.0.0.1:${HSC_PROMETHEUS_PORT:-9090}/targets
  Alertmanager                   http://127.0.0.1:${HSC_ALERTMANAGER_PORT:-9093}/
INFO
if [ "${HSC_GRAFANA:-0}" = 1 ]; then
  echo "  Grafana                        http://127.0.0.1:${HSC_GRAFANA_PORT:-3000}/   user admin, password in $HSC_SECRETS_DIR/grafana_admin_password"
else
  echo "  Grafana                        not started: it cannot be built without a container registry (HSC_GRAFANA=1 where one is reachable)"
fi
echo
if [ "$HSC_HAPROXY_DRIVER" = runtime ]; then
  echo "The sidecar writes to HAProxy through its runtime API (no Data Plane API in this image) and keeps"
  echo "its servers in the managed region of HAProxy's configuration file on the control volume."
else
  echo "The sidecar writes to HAProxy through the Data Plane API."
fi
echo
echo "Stop: bash stack/down.sh   (data volumes are kept; --volumes removes them)"
