#!/usr/bin/env bash
# The README's run command: installs what is missing, then shows the product live: HAProxy, a
# Compose-style nginx pool and the sidecar scaling it under a bounded load (devenv/demo.ts).
#   --once                     run the scenario, clean up, exit 0 only if it passed
#   --driver runtime|dataplane the sidecar's HAProxy driver (default: dataplane where its binary is)
#   --prometheus               also a Prometheus with the stack's rules
# HSC_HAPROXY_SERIES=2.6|3.0|3.2|3.4 chooses the HAProxy (default 3.0; setup.sh caches the one named).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/go/bin"
devenv/setup.sh >/dev/null
# shellcheck source=devenv/node-env.sh
source devenv/node-env.sh
exec npx tsx devenv/demo.ts "$@"
