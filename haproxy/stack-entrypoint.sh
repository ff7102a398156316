#!/usr/bin/env bash
# Starts HAProxy (master-worker) for the Compose stack and, where the image has it, the Data
# Plane API beside it; when either stops, the container stops, so Docker's restart policy
# replaces a half-dead pair.
#
# The configuration is rendered here from haproxy.stack.cfg.tmpl with the Compose secrets
# (/run/secrets/{haproxy_stats_password,dataplane_password,haproxy_cookie_key}); it lives only
# in the container's private directory. Two modes:
#   dataplane  (the image has /usr/local/bin/dataplaneapi and HSC_DATAPLANE_API is not `off`):
#              be_app starts without application servers; the sidecar adds and removes them
#              through the Data Plane API.
#   static     (no Data Plane API, as on a machine that cannot build it): be_app finds the
#              application replicas through Docker's DNS (server-template on the Compose
#              service name), so traffic flows, but the sidecar cannot write to HAProxy.
set -euo pipefail

dir=/var/lib/hsc-haproxy
secrets=${HSC_SECRETS_DIR:-/run/secrets}
app_service=${HSC_APP_SERVICE:-nginx}
app_port=${HSC_APP_PORT:-80}
max_servers=${HSC_APP_MAX_SERVERS:-10}

secret() {
  local file="$secrets/$1" value
  [ -r "$file" ] || { echo "hsc-haproxy: secret $1 is missing ($file)" >&2; exit 2; }
  value=$(tr -d '\r\n' <"$file")
  # Secrets are generated as letters and digits; anything else could break the config syntax.
  [[ $value =~ ^[A-Za-z0-9]+$ ]] || { echo "hsc-haproxy: secret $1 must be letters and digits only" >&2; exit 2; }
  printf '%s' "$value"
}

mode=static
if [ -x /usr/local/bin/dataplaneapi ] && [ "${HSC_DATAPLANE_API:-auto}" != off ]; then mode=dataplane; fi

if [ "$mode" = static ]; then
  servers="    server-template app 1-${max_servers} ${app_service}:${app_port} resolvers docker init-addr none"
else
  servers="    # Application servers: added and removed by the sidecar (names hsc-<service>-<n>)."
fi

mkdir -p "$dir"/{transactions,maps,ssl,general,spoe,spoe-transactions,storage}
cfg=$(<"/etc/haproxy/haproxy.stack.cfg.tmpl")
cfg=${cfg//'{{dataplaneUser}}'/${HSC_DATAPLANE_USERNAME:-admin}}
cfg=${cfg//'{{dataplanePassword}}'/$(secret dataplane_password)}
cfg=${cfg//'{{statsUser}}'/${HSC_STATS_USERNAME:-admin}}
cfg=${cfg//'{{statsPassword}}'/$(secret haproxy_stats_password)}
cfg=${cfg//'{{cookieKey}}'/$(secret haproxy_cookie_key)}
cfg=${cfg//'{{appServers}}'/$servers}
(umask 077 && printf '%s\n' "$cfg" >"$dir/haproxy.cfg")
rm -f "$dir/server-state"
haproxy -c -q -f "$dir/haproxy.cfg"
echo "hsc-haproxy: starting in $mode mode" >&2

haproxy -W -db -S "$dir/master.sock,mode,600" -f "$dir/haproxy.cfg" &
master=$!
api=""
if [ "$mode" = dataplane ]; then
  dataplaneapi -f /etc/haproxy/dataplaneapi.yml &
  api=$!
fi

# SIGTERM: HAProxy's soft stop (SIGUSR1 to the master) lets requests in flight finish.
stop() {
  kill -USR1 "$master" 2>/dev/null || true
  [ -z "$api" ] || kill -TERM "$api" 2>/dev/null || true
}
trap stop TERM INT

status=0
# shellcheck disable=SC2086 # $api is empty or one pid
wait -n "$master" $api || status=$?
stop
wait || true
exit "$status"
