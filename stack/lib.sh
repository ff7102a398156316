# Shared by stack/up.sh and stack/down.sh (sourced, not run): the Compose command and files.
# shellcheck shell=bash

stack_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034 # used by the scripts that source this file
repo_root=$(cd "$stack_dir/.." && pwd)
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-hsc}
export HSC_SECRETS_DIR=${HSC_SECRETS_DIR:-$stack_dir/secrets}

# Compose v2 where installed, else docker-compose 1.29 (the Debian 12 package devenv/setup.sh installs).
if docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
else
  compose_cmd=(docker-compose)
fi
compose_files=(-f "$stack_dir/compose.yaml")
if [ -n "${HSC_NFS_SERVER:-}" ]; then compose_files+=(-f "$stack_dir/compose.nfs.yaml"); fi
compose() { "${compose_cmd[@]}" -p "$COMPOSE_PROJECT_NAME" "${compose_files[@]}" "$@"; }
