#!/usr/bin/env bash
# Prepare a self-hosted Temporal cluster for policyflow: the namespace and the search
# attributes the workflows upsert (so operators can filter in the Temporal UI).
# Usage: TEMPORAL_ADDRESS=temporal-frontend:7233 ./setup-namespace.sh [namespace]
# mTLS: the same TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY, TEMPORAL_TLS_CA, TEMPORAL_TLS_SERVER_NAME
# as policyflow's clients; they are handed to the temporal CLI under its own names.
set -euo pipefail
[ -n "${TEMPORAL_TLS_CERT:-}" ] && export TEMPORAL_TLS_CLIENT_CERT_PATH="$TEMPORAL_TLS_CERT"
[ -n "${TEMPORAL_TLS_KEY:-}" ] && export TEMPORAL_TLS_CLIENT_KEY_PATH="$TEMPORAL_TLS_KEY"
[ -n "${TEMPORAL_TLS_CA:-}" ] && export TEMPORAL_TLS_SERVER_CA_CERT_PATH="$TEMPORAL_TLS_CA"
ns=${1:-${TEMPORAL_NAMESPACE:-policyflow}}
addr=${TEMPORAL_ADDRESS:-127.0.0.1:7233}
temporal operator namespace describe --address "$addr" -n "$ns" >/dev/null 2>&1 \
  || temporal operator namespace create --address "$addr" -n "$ns" --retention 30d
while read -r name type; do
  temporal operator search-attribute create --address "$addr" -n "$ns" --name "$name" --type "$type" 2>/dev/null \
    || echo "search attribute $name exists"
done <<'ATTRS'
PolicyflowProgramme Keyword
PolicyflowTaskNo Int
PolicyflowUnit Keyword
PolicyflowStage Keyword
PolicyflowYear Int
PolicyflowOverdue Keyword
ATTRS
echo "namespace $ns ready on $addr"
