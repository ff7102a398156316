#!/usr/bin/env bash
# Starts HAProxy (master-worker) for the Compose stack and, where the sidecar writes through it,
# the Data Plane API beside it; when either stops, the container stops, so Docker's restart
# policy replaces a half-dead pair.
#
# The configuration is rendered here from haproxy.stack.cfg.tmpl with the Compose secrets
# (/run/secrets/{haproxy_stats_password,dataplane_password,haproxy_cookie_key}). Two modes, the
# sidecar's HAProxy driver (HSC_HAPROXY_DRIVER; `auto`, the default, is dataplane when the image
# has the Data Plane API and runtime otherwise):
#   dataplane  be_app starts without application servers; the sidecar adds and removes them
#              through the Data Plane API. The configuration is private to this container
#              (/var/lib/hsc-haproxy), as the Data Plane API's own.
#   runtime    the sidecar adds, drains and removes servers through HAProxy's runtime API (the
#              stats socket /run/hsc-haproxy/haproxy.sock) and keeps them in the managed-servers
#              region of be_app in /run/hsc-haproxy/haproxy.cfg, so that a reload or a restart of
#              HAProxy keeps them. Both are on the control volume shared with the sidecar only
#              (group hsc-control). The file is rendered again at every start, so a new template
#              or rotated secrets apply, with the managed regions of the previous file carried
#              over; it holds no secret (HAProxy reads them from its own environment).
set -euo pipefail

dir=/var/lib/hsc-haproxy
shared=/run/hsc-haproxy
secrets=${HSC_SECRETS_DIR:-/run/secrets}
backend=be_app

log() { echo "hsc-haproxy: $*" >&2; }

secret() {
  local file="$secrets/$1" value
  [ -r "$file" ] || { log "secret $1 is missing ($file)"; exit 2; }
  value=$(tr -d '\r\n' <"$file")
  # Secrets are generated as letters and digits; anything else could break the config syntax.
  [[ $value =~ ^[A-Za-z0-9]+$ ]] || { log "secret $1 must be letters and digits only"; exit 2; }
  printf '%s' "$value"
}

mode=${HSC_HAPROXY_DRIVER:-auto}
if [ "$mode" = auto ]; then
  if [ -x /usr/local/bin/dataplaneapi ]; then mode=dataplane; else mode=runtime; fi
fi
case "$mode" in
  dataplane)
    [ -x /usr/local/bin/dataplaneapi ] || {
      log "HSC_HAPROXY_DRIVER=dataplane, but this image has no Data Plane API (built with --target haproxy): use HSC_HAPROXY_DRIVER=runtime"
      exit 2
    } ;;
  runtime) ;;
  *) log "HSC_HAPROXY_DRIVER must be dataplane, runtime or auto, not '$mode'"; exit 2 ;;
esac

# The sidecar (group hsc-control) must be able to reach the socket and, in runtime mode, replace
# the configuration file: the directory comes from the image's (Docker copies its owner and mode
# onto a new volume); setgid makes what either side creates in it belong to the group.
[ -d "$shared" ] && [ -w "$shared" ] || { log "$shared is not a writable directory for $(id -un): mount the control volume there"; exit 2; }
chmod 2770 "$shared" 2>/dev/null || log "cannot set the mode of $shared (not its owner): the sidecar may not reach it"

stats_password=$(secret haproxy_stats_password)
dataplane_password=$(secret dataplane_password)
cookie_key=$(secret haproxy_cookie_key)

if [ "$mode" = dataplane ]; then
  cfg_file=$dir/haproxy.cfg
  # The Data Plane API authenticates against the userlist in the file it reads, so the values
  # are written into this private file.
  ref_stats=$stats_password ref_dataplane=$dataplane_password ref_cookie=$cookie_key
  default_server=$(cat <<'EOF'
    # Health checks, and circuit breaking: a server whose live responses keep failing (5xx,
    # timeouts, resets: `observe layer7`) is marked down after `error-limit` consecutive errors,
    # before its health check notices, so one sick replica cannot drag the pool down; the health
    # check brings it back once it answers again (`rise`).
    default-server check inter 2s fall 3 rise 2 slowstart 10s observe layer7 error-limit 10 on-error mark-down maxconn 200
EOF
)
  servers="    # Application servers: added and removed by the sidecar (names hsc-<service>-<n>)."
else
  cfg_file=$shared/haproxy.cfg
  # HAProxy expands "${VAR}" in its configuration: the file on the shared volume names the
  # variables, and only this process (and the HAProxy it starts) has their values.
  export HSC_SECRET_STATS_PASSWORD=$stats_password HSC_SECRET_DATAPLANE_PASSWORD=$dataplane_password HSC_SECRET_COOKIE_KEY=$cookie_key
  # shellcheck disable=SC2016 # literally ${...}: HAProxy expands them, not the shell
  ref_stats='"${HSC_SECRET_STATS_PASSWORD}"' ref_dataplane='"${HSC_SECRET_DATAPLANE_PASSWORD}"' ref_cookie='"${HSC_SECRET_COOKIE_KEY}"'
  default_server=$(cat <<'EOF'
    # No default-server line: servers added at run time do not inherit it while the same
    # servers read from this file after a reload would, so the sidecar writes each server's
    # options in full (health checks) instead.
EOF
)
  servers=$(cat <<EOF
    # Application servers: written by the sidecar's runtime driver (names hsc-<service>-<n>).
    # hsc:managed-servers begin $backend
    # hsc:managed-servers end $backend
EOF
)
fi

mkdir -p "$dir"/{transactions,maps,ssl,general,spoe,spoe-transactions,storage}
cfg=$(<"/etc/haproxy/haproxy.stack.cfg.tmpl")
cfg=${cfg//'{{dataplaneUser}}'/${HSC_DATAPLANE_USERNAME:-admin}}
cfg=${cfg//'{{dataplanePassword}}'/$ref_dataplane}
cfg=${cfg//'{{statsUser}}'/${HSC_STATS_USERNAME:-admin}}
cfg=${cfg//'{{statsPassword}}'/$ref_stats}
cfg=${cfg//'{{cookieKey}}'/$ref_cookie}
cfg=${cfg//'{{defaultServer}}'/$default_server}
cfg=${cfg//'{{appServers}}'/$servers}

# Prints the new configuration (stdin) with the body of every managed-servers region that the
# previous file ($1, if any) holds complete (begin and end marker) in place of the new body.
carry_regions() {
  awk -v old="$1" '
    function marker(line, kind,   name) {
      if (line !~ ("^[ \t]*# hsc:managed-servers " kind " [^ \t]+[ \t]*$")) return ""
      name = line; sub(/^[ \t]*# hsc:managed-servers (begin|end) /, "", name); sub(/[ \t]+$/, "", name)
      return name
    }
    BEGIN {
      current = ""
      while ((getline line < old) > 0) {
        if (current == "" && (name = marker(line, "begin")) != "") { current = name; text = ""; continue }
        if (current != "" && marker(line, "end") == current) { body[current] = text; kept[current] = 1; current = ""; continue }
        if (current != "") text = text line "\n"
      }
    }
    skipping != "" { if (marker($0, "end") == skipping) { skipping = ""; print } ; next }
    {
      print
      if ((name = marker($0, "begin")) != "" && (name in kept)) { printf "%s", body[name]; skipping = name }
    }
  '
}

# Writes the configuration ($1) into place if HAProxy accepts it; its complaints go to the log.
write_config() {
  local tmp="$cfg_file.new" check
  (umask 027 && printf '%s\n' "$1" >"$tmp")
  if ! check=$(haproxy -c -f "$tmp" 2>&1); then
    printf '%s\n' "$check" >&2
    rm -f "$tmp"
    return 1
  fi
  mv -f "$tmp" "$cfg_file"
}

if [ "$mode" = runtime ] && [ -f "$cfg_file" ]; then
  carried=$(printf '%s\n' "$cfg" | carry_regions "$cfg_file")
  if write_config "$carried"; then
    log "kept the managed servers of $cfg_file: $(printf '%s\n' "$carried" | grep -c '^[[:space:]]*server hsc-' || true)"
  else
    # A damaged region must not keep HAProxy down: start empty, the sidecar adds the replicas again.
    log "the managed servers carried over from $cfg_file do not pass HAProxy's check (above): starting without them"
    write_config "$cfg"
  fi
else
  write_config "$cfg"
fi
rm -f "$dir/server-state"
log "starting in $mode mode ($cfg_file)"

haproxy -W -db -S "$dir/master.sock,mode,600" -f "$cfg_file" &
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
