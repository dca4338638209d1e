#!/bin/sh
# One-shot (compose service `temporal-schema`, image temporalio/admin-tools): bring the Temporal
# server's two databases to the schema its version expects, before the server starts. Safe to
# run on every `up`: setup-schema adds the version tables only where they are missing, and
# update-schema applies only the versions a database lacks (so a newer admin-tools image
# upgrades the schema first, as Temporal's upgrade notes ask). The databases and their owner
# come from docker/postgres-init.sh; the schema files are those built into temporal-sql-tool.
#
#   SQL_HOST, SQL_PORT (5432), SQL_USER, SQL_PASSWORD   where and as whom (temporal-sql-tool's own)
#   TEMPORAL_DB (temporal), TEMPORAL_VISIBILITY_DB (temporal_visibility)
set -eu
: "${SQL_HOST:?}" "${SQL_USER:?}" "${SQL_PASSWORD:?}"
export SQL_PORT="${SQL_PORT:-5432}" SQL_PLUGIN=postgres12
ATTEMPTS=${TEMPORAL_SETUP_ATTEMPTS:-30}

# Postgres reports healthy once it accepts connections; a restart right after (a full disk, an
# operator) should cost a retry, not the whole stack.
retry() {
    attempt=1
    until "$@"; do
        if [ "$attempt" -ge "$ATTEMPTS" ]; then
            echo "giving up after $attempt attempts: $*" >&2
            return 1
        fi
        echo "not yet (attempt $attempt of $ATTEMPTS): $*" >&2
        attempt=$((attempt + 1))
        sleep 2
    done
}

for pair in "${TEMPORAL_DB:-temporal}:temporal" "${TEMPORAL_VISIBILITY_DB:-temporal_visibility}:visibility"; do
    database=${pair%%:*}
    schema=postgresql/v12/${pair##*:}
    retry temporal-sql-tool --database "$database" setup-schema --version 0.0
    temporal-sql-tool --database "$database" update-schema --schema-name "$schema"
    echo "schema of $database is up to date ($schema)"
done
