#!/usr/bin/env bash
# The README's run command: installs what is missing, then starts the local environment
# (HAProxy, the Data Plane API where available, nginx containers) until Ctrl-C.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/go/bin"
devenv/setup.sh >/dev/null
exec npx tsx devenv/demo.ts "$@"
