#!/usr/bin/env bash
# Reload command for the Data Plane API's `custom` reload strategy (HAProxy 2.6 has no
# master CLI `reload` that reports the outcome). Usage: reload.sh <instance-dir> [haproxy-binary]
# The binary (default `haproxy` on PATH) must be the one the master runs, so that the check
# below judges the configuration as the new worker will.
# 1. validate the configuration, so a bad one fails the reload instead of the new worker;
# 2. save the runtime server state (drain, maint, health) for the new worker to load;
# 3. signal the master (SIGUSR2) and wait until a new worker is running.
# A non-zero exit is what the Data Plane API reports as a failed reload.
set -euo pipefail
dir=${1:?instance directory}
haproxy=${2:-haproxy}
cfg="$dir/haproxy.cfg"

"$haproxy" -c -q -f "$cfg" || { echo "reload refused: configuration check failed" >&2; exit 1; }

if [ -S "$dir/haproxy.sock" ]; then
  echo "show servers state" | socat -t 2 stdio "unix-connect:$dir/haproxy.sock" >"$dir/server-state.tmp" 2>/dev/null \
    && mv "$dir/server-state.tmp" "$dir/server-state" || rm -f "$dir/server-state.tmp"
fi

workers() { echo "show proc" | socat -t 2 stdio "unix-connect:$dir/master.sock" 2>/dev/null | awk '$2 == "worker" { print $1 }' | sort; }
before=$(workers | tr '\n' ' ')
kill -USR2 "$(cat "$dir/haproxy.pid")"
for _ in $(seq 1 100); do
  sleep 0.1
  for pid in $(workers); do
    case " $before " in *" $pid "*) ;; *) exit 0 ;; esac
  done
done
echo "reload failed: no new worker after 10 s (see the HAProxy log)" >&2
exit 1
