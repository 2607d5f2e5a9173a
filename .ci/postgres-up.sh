#!/usr/bin/env bash
# Start a PostgreSQL server for the tests marked `postgres` (Debian, as root, no systemd):
# user `capsweep` with databases `capsweep` (Optuna) and `capsweep_mlflow` (MLflow: both
# keep an alembic_version table, so they cannot share one) on 127.0.0.1, with a fresh
# random password each time.
# Prints the environment the tests read, to `eval`:
#   CAPSWEEP_TEST_POSTGRES=postgresql://capsweep@127.0.0.1:<port>/capsweep   (no password)
#   PGPASSWORD=<password>   (libpq's own variable: the password never enters a URL)
set -euo pipefail
B=${B:-/tmp/capsweep-ci/postgres}
PORT=${PORT:-5432}
export DEBIAN_FRONTEND=noninteractive
if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
# A clean state: stop a server an earlier run left on this data folder.
if [ -f "$B/data/postmaster.pid" ]; then
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$B/data" -m immediate -w stop >/dev/null 2>&1 || true
fi
rm -rf "$B"
install -d -o postgres -g postgres -m 700 "$B/data"
install -d -o postgres -g postgres "$B/run"
runuser -u postgres -- "$PGBIN/initdb" -D "$B/data" -U postgres -E UTF8 --locale=C.UTF-8 \
  --auth-local=trust --auth-host=scram-sha-256 >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$B/data" -l "$B/run/pg.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$B/run -c max_connections=200" \
  start >/dev/null
PASSWORD=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
runuser -u postgres -- psql -q -h "$B/run" -p "$PORT" -v ON_ERROR_STOP=1 \
  -c "CREATE USER capsweep WITH PASSWORD '$PASSWORD'" \
  -c "CREATE DATABASE capsweep OWNER capsweep" \
  -c "CREATE DATABASE capsweep_mlflow OWNER capsweep" >/dev/null
echo "CAPSWEEP_TEST_POSTGRES=postgresql://capsweep@127.0.0.1:$PORT/capsweep"
echo "PGPASSWORD=$PASSWORD"
# stop: runuser -u postgres -- $PGBIN/pg_ctl -D $B/data -m fast -w stop
