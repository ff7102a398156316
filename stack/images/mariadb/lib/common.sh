# shellcheck shell=bash
# Shared helpers for the data-tier commands (hsc-db-entrypoint, hsc-backup, hsc-restore,
# hsc-failover, hsc-topology, hsc-mysqld-exporter). Sourced, never executed.
#
# Credentials only ever travel through files: secrets are read from files (Docker/Compose
# secrets), and the client tools get them from a private option file (--defaults-extra-file),
# never from the command line (visible in `ps`) or the environment, and never in a log line.

HSC_LOG_TAG=${HSC_LOG_TAG:-hsc}
HSC_SECRETS_DIR=${HSC_SECRETS_DIR:-/run/secrets}

hsc_log() { printf '%s [%s] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$HSC_LOG_TAG" "$*" >&2; }
# hsc_die CODE MESSAGE...
hsc_die() {
  local code=$1
  shift
  hsc_log "ERROR: $*"
  exit "$code"
}

# A private directory for option files and scratch data, removed when the script exits.
HSC_PRIVATE_DIR=$(mktemp -d /tmp/hsc.XXXXXX)
chmod 700 "$HSC_PRIVATE_DIR"
hsc_cleanup_private() { rm -rf "$HSC_PRIVATE_DIR"; }
trap hsc_cleanup_private EXIT

# The file holding secret NAME (db_admin_password, ...): $HSC_<NAME>_FILE when set,
# otherwise $HSC_SECRETS_DIR/<name>.
hsc_secret_file() {
  local name=$1 var
  var="HSC_$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')_FILE"
  printf '%s' "${!var:-$HSC_SECRETS_DIR/$name}"
}

hsc_have_secret() { [ -r "$(hsc_secret_file "$1")" ]; }

# Prints secret NAME. Refuses empty secrets and characters that would need quoting in SQL or
# in an option file (whitespace, quotes, backslash, backtick): a password made of letters,
# digits and the usual punctuation is as strong and never needs escaping anywhere.
hsc_read_secret() {
  local name=$1 file value
  file=$(hsc_secret_file "$name")
  [ -r "$file" ] || hsc_die 2 "secret $name not found (expected the file $file)"
  value=$(cat "$file")
  # Secret files often end with a newline; that one is not part of the password.
  value=${value%$'\n'}
  [ -n "$value" ] || hsc_die 2 "secret $name ($file) is empty"
  case $value in
    *[[:space:]\"\'\\\`]*) hsc_die 2 "secret $name ($file) contains whitespace, a quote, a backslash or a backtick; use letters, digits and other punctuation" ;;
  esac
  printf '%s' "$value"
}

# hsc_client_cnf USER SECRET HOST [PORT] : writes a private option file for the client tools
# and prints its path. Pass it first on their command line: --defaults-extra-file=PATH.
hsc_client_cnf() {
  local user=$1 secret=$2 host=$3 port=${4:-3306} file password
  password=$(hsc_read_secret "$secret")
  file=$(mktemp "$HSC_PRIVATE_DIR/client.XXXXXX.cnf")
  chmod 600 "$file"
  # [client] is read by mariadb, mariadb-dump and mariadb-binlog alike, so it holds only options
  # all of them know; the connect timeout is the mariadb client's own ([mysql]).
  printf '[client]\nuser=%s\npassword="%s"\nhost=%s\nport=%s\n[mysql]\nconnect-timeout=%s\n' \
    "$user" "$password" "$host" "$port" "${HSC_CONNECT_TIMEOUT:-5}" >"$file"
  printf '%s' "$file"
}

# hsc_sql CNF SQL... : runs SQL, prints tab-separated rows without a header.
hsc_sql() {
  local cnf=$1
  shift
  mariadb --defaults-extra-file="$cnf" --batch --skip-column-names --execute="$*"
}

# Validators for values that end up in SQL or file names.
hsc_is_hostname() { [[ $1 =~ ^[A-Za-z0-9]([A-Za-z0-9.-]{0,253}[A-Za-z0-9])?$ ]]; }
hsc_is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
hsc_is_identifier() { [[ $1 =~ ^[A-Za-z0-9_]{1,64}$ ]]; }

# The number in a binary log file name (mariadb-bin.000042 -> 42), for ordering and gaps.
hsc_binlog_number() {
  local n=${1##*.}
  printf '%d' "$((10#$n))"
}

# Databases that belong to the server itself, never to a backup or a replica's seed.
# hsc_meta holds this server's own identity (see hsc-db-entrypoint).
# shellcheck disable=SC2034 # used by the scripts that source this file
HSC_SYSTEM_DATABASES="'mysql','information_schema','performance_schema','sys','hsc_meta'"
