#!/usr/bin/env bash
# Runs PHP-FPM and nginx side by side; when either stops, the container stops, so that Docker's
# restart policy replaces a half-dead instance instead of keeping it in the load balancer.
#
# The database password comes from a secret file that only root can read; it is copied to a
# file that the PHP workers (group www-data) can read and nothing else.
#   HSC_DB_PASSWORD_SECRET_FILE  (/run/secrets/db_app_password)
# Where the database is: HSC_DB_TOPOLOGY_FILE (/run/hsc-db/topology.json, rewritten by
# hsc-failover), or HSC_DB_WRITER_HOST / HSC_DB_READER_HOSTS when there is no such file.
set -euo pipefail

secret=${HSC_DB_PASSWORD_SECRET_FILE:-/run/secrets/db_app_password}
if [ -r "$secret" ]; then
  install -m 0640 -o root -g www-data "$secret" /run/hsc-app/db_password
else
  echo "hsc-app: WARNING: no database password at $secret; database requests will fail" >&2
fi

php-fpm8.2 --nodaemonize --fpm-config /etc/php/8.2/fpm/php-fpm.conf &
fpm=$!
nginx -g 'daemon off;' &
web=$!

# SIGQUIT is the graceful stop of both: requests in flight finish.
stop() {
  kill -QUIT "$web" "$fpm" 2>/dev/null || true
}
trap stop TERM INT QUIT

status=0
wait -n "$fpm" "$web" || status=$?
stop
wait || true
exit "$status"
