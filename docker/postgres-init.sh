#!/bin/sh
# The worker's own login role, created once when the postgres container initialises its data
# volume (docker-entrypoint-initdb.d). Its privileges come from the migrations (0002, 0003),
# which the owner (POSTGRES_USER) runs. Untested here: the project's machines have no Docker.
set -eu
psql -v ON_ERROR_STOP=1 -v password="$BILLING_WORKER_PASSWORD" \
     --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE billing_worker LOGIN PASSWORD :'password';
SQL
