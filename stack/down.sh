#!/usr/bin/env bash
# Stops and removes the stack's containers and networks (and the replicas the sidecar started,
# which carry the project's Compose labels). Volumes, so the database and the backups, are kept
# unless --volumes is given. Secrets in HSC_SECRETS_DIR are kept as well.
#
#   bash stack/down.sh [--volumes]
set -euo pipefail
# shellcheck source=stack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
args=(down --remove-orphans --timeout 30)
if [ "${1:-}" = --volumes ]; then args+=(--volumes); fi
compose --profile replica "${args[@]}"
