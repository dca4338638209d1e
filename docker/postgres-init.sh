#!/bin/sh
# The service's roles and databases, created once, when the postgres container initialises an
# empty data volume (/docker-entrypoint-initdb.d, run as POSTGRES_USER, the cluster's superuser,
# over the local socket). The roles are those of devstack/postgres.py's create_roles, which the
# tests use, so the migrations run here as they run there:
#
#   billing_owner   login; owns the database `billing`, runs the migrations (compose `migrate`)
#   billing_writer  no login; holds what the migrations grant (0002, 0003); the owner may grant it
#   billing_worker  login; the worker, the gateway and the relay; a member of billing_writer only
#   temporal        login; owns the databases `temporal` and `temporal_visibility`, nothing else
#
# Only POSTGRES_USER is a superuser. Passwords come from the environment (docker-compose.yml) and
# reach psql as variables, quoted by psql itself. A volume initialised before a role was added
# here does not get it: create it by hand, or start from an empty volume.
# Tested against a real Postgres by tests/e2e/test_compose_scripts.py.

: "${POSTGRES_USER:?}" "${POSTGRES_DB:?}"
: "${BILLING_DB_PASSWORD:?set BILLING_DB_PASSWORD}"
: "${BILLING_WORKER_PASSWORD:?set BILLING_WORKER_PASSWORD}"
: "${BILLING_TEMPORAL_DB_PASSWORD:?set BILLING_TEMPORAL_DB_PASSWORD}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v owner_password="$BILLING_DB_PASSWORD" \
     -v worker_password="$BILLING_WORKER_PASSWORD" \
     -v temporal_password="$BILLING_TEMPORAL_DB_PASSWORD" <<'SQL'
CREATE ROLE billing_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE billing_worker LOGIN PASSWORD :'worker_password';
CREATE ROLE billing_writer NOLOGIN;
GRANT billing_writer TO billing_owner WITH ADMIN OPTION;
CREATE DATABASE billing OWNER billing_owner;

CREATE ROLE temporal LOGIN PASSWORD :'temporal_password';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;
SQL
