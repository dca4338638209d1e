#!/usr/bin/env bash
# The documented bring-up check of docker-compose.yml, for a machine with a Docker engine and
# the compose plugin (v2.24 or newer). The project's own machines have no engine, so neither
# `make test` nor CI runs this; tests/e2e/test_compose.py validates the file without one.
#
#   scripts/compose-smoke.sh            # the whole stack, Kafka and the relay included
#   SMOKE_KAFKA=0 scripts/compose-smoke.sh
#
# It builds the image, starts everything under a project name of its own (billing-smoke-<pid>)
# with throwaway passwords (unless BILLING_*_PASSWORD are set) and no host ports
# (docker/compose.smoke.yml), waits until every long-running service is healthy, then runs,
# inside the network: the CLI demo and `billing check` (exit 0: everything reconciles), a
# fund and a read through the HTTP gateway, a visibility query on the search attributes, and
# with Kafka, one message from the relay's topic.
# It tears everything down (volumes too) on the way out, and leaves the services' logs in
# .data/compose-smoke.log. Exit code 0: the stack works.
set -euo pipefail
cd "$(dirname "$0")/.."

WAIT_SECONDS=${SMOKE_WAIT_SECONDS:-600}
project="billing-smoke-$$"
profiles=()
if [ "${SMOKE_KAFKA:-1}" != 0 ]; then profiles=(--profile kafka); fi

if ! docker compose version >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
    echo "compose-smoke: needs a running Docker engine and the compose plugin" >&2
    exit 2
fi
for secret in BILLING_POSTGRES_PASSWORD BILLING_DB_PASSWORD BILLING_WORKER_PASSWORD \
              BILLING_TEMPORAL_DB_PASSWORD; do
    if [ -z "${!secret:-}" ]; then
        export "$secret=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
    fi
done

compose() {
    docker compose --project-name "$project" --file docker-compose.yml \
        --file docker/compose.smoke.yml "${profiles[@]}" "$@"
}

finish() {
    mkdir -p .data
    compose logs --no-color --timestamps >.data/compose-smoke.log 2>&1 || true
    compose down --volumes --remove-orphans >/dev/null 2>&1 || true
}
trap finish EXIT

echo "== building and starting ($project)"
compose up --build --detach

echo "== waiting up to ${WAIT_SECONDS}s for every long-running service to be healthy"
deadline=$((SECONDS + WAIT_SECONDS))
while :; do
    pending=()
    for service in $(compose config --services); do
        container=$(compose ps --all --quiet "$service")
        [ -n "$container" ] || { pending+=("$service:not-created"); continue; }
        read -r status exit_code health < <(docker inspect --format \
            '{{.State.Status}} {{.State.ExitCode}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' \
            "$container")
        if [ "$status" = exited ] && [ "$exit_code" != 0 ]; then
            echo "compose-smoke: $service exited with $exit_code" >&2
            compose logs --no-color --tail 50 "$service" >&2
            exit 1
        fi
        case "$status/$health" in
            exited/none | running/healthy) ;;   # a one-shot done, or a healthy service
            *) pending+=("$service:$status/$health") ;;
        esac
    done
    [ ${#pending[@]} -eq 0 ] && break
    if [ $SECONDS -ge $deadline ]; then
        echo "compose-smoke: not healthy after ${WAIT_SECONDS}s: ${pending[*]}" >&2
        exit 1
    fi
    sleep 5
done
compose ps

echo "== the CLI demo and the reconciliation, inside the worker's container"
compose exec -T worker python -m starter demo --accounts 3 --operations 60
compose exec -T worker python -m starter check

echo "== the HTTP gateway"
compose exec -T gateway python - <<'PY'
import json, os, urllib.request
base = f"http://127.0.0.1:{os.environ['BILLING_HTTP_PORT']}"
def call(method, path, body=None, key=None):
    request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"content-type": "application/json", **({"Idempotency-Key": key} if key else {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
call("POST", "/accounts", {"account_id": "smoke-http", "currency": "EUR"})
outcome = call("POST", "/accounts/smoke-http/funds", {"amount": 1250}, key="smoke-1")
assert outcome["status"] == "applied", outcome
assert call("GET", "/accounts/smoke-http")["balance"] == 1250
print("gateway: opened, funded and read smoke-http")
PY

echo "== the account is found by its search attributes (registered by temporal-setup)"
# Visibility lags the workflow by a moment: asked a few times.
found=0
for _ in $(seq 30); do
    found=$(compose run --rm --no-deps --entrypoint temporal temporal-setup workflow count \
        --address temporal:7233 --namespace "${TEMPORAL_NAMESPACE:-default}" \
        --query 'BillingAccountId="smoke-http" AND BillingBalance=1250 AND BillingStatus="open"' \
        | grep -o '[0-9]\+' | tail -n 1 || true)
    [ "$found" = 1 ] && break
    sleep 2
done
[ "$found" = 1 ] || { echo "compose-smoke: smoke-http not found by its search attributes" >&2; exit 1; }

if [ ${#profiles[@]} -gt 0 ]; then
    echo "== the relay's topic holds the events"
    compose exec -T relay python -m starter kafka tail --from-beginning --max-messages 1 --timeout 120 \
        | grep -q '"topic"' || { echo "compose-smoke: no message from the relay" >&2; exit 1; }
fi

echo "compose-smoke: ok"
