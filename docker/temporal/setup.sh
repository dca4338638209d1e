#!/bin/sh
# One-shot (compose service `temporal-setup`, image temporalio/admin-tools): once the server
# answers, create the namespace unless it exists and register the service's search attributes.
# Safe to run on every `up`: an existing namespace is left as it is, and registering a search
# attribute again with the same type changes nothing (another type is an error: it names the
# attribute). Both are passed to every command: `temporal operator namespace create` (CLI 1.9)
# ignores TEMPORAL_NAMESPACE.
#
#   TEMPORAL_ADDRESS (temporal:7233), TEMPORAL_NAMESPACE (default)
#   BILLING_TEMPORAL_RETENTION (30d)   how long closed workflows' histories are kept (a new
#                                       namespace only; the event log in Postgres is kept forever)
# Tested against a real Temporal server by tests/e2e/test_compose_scripts.py.
set -eu
address=${TEMPORAL_ADDRESS:-temporal:7233}
namespace=${TEMPORAL_NAMESPACE:-default}
ATTEMPTS=${TEMPORAL_SETUP_ATTEMPTS:-30}

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

namespace_exists() {
    temporal operator namespace describe --address "$address" --namespace "$namespace" >/dev/null 2>&1
}

# Create, or find that a concurrent run did.
create_namespace() {
    namespace_exists || temporal operator namespace create --address "$address" --namespace "$namespace" \
        --retention "${BILLING_TEMPORAL_RETENTION:-30d}" || namespace_exists
}

retry temporal operator cluster health --address "$address"
retry create_namespace
echo "namespace $namespace is there"
# A new namespace reaches every frontend's cache a few seconds after it is created: retried.
retry temporal operator search-attribute create --address "$address" --namespace "$namespace" \
    --name BillingAccountId --type Keyword \
    --name BillingCurrency --type Keyword \
    --name BillingStatus --type Keyword \
    --name BillingBalance --type Int
temporal operator search-attribute list --address "$address" --namespace "$namespace"
