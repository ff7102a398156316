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
# The Prometheus nginx exporter (stack/prometheus: one target per application container, so
# every replica the autoscaler starts brings its own). HSC_NGINX_EXPORTER=off leaves it out.
exporter=""
if [ "${HSC_NGINX_EXPORTER:-on}" != off ]; then
  prometheus-nginx-exporter -nginx.scrape-uri http://127.0.0.1:8081/stub_status -nginx.retries 30 -nginx.retry-interval 1s -web.listen-address :9113 &
  exporter=$!
fi

# SIGQUIT is the graceful stop of both: requests in flight finish.
stop() {
  kill -QUIT "$web" "$fpm" 2>/dev/null || true
  [ -z "$exporter" ] || kill -TERM "$exporter" 2>/dev/null || true
}
trap stop TERM INT QUIT

status=0
# shellcheck disable=SC2086 # $exporter is empty or one pid
wait -n "$fpm" "$web" $exporter || status=$?
stop
wait || true
exit "$status"
