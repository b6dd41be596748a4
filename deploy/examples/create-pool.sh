#!/usr/bin/env bash
# On a gateway: an address pool for end users, with DNS.
# Usage: create-pool.sh [RANGE] [DNS]   (default 10.8.0.0/24 10.8.0.1)
. "$(dirname "$0")/common.sh"
RANGE=${1:-10.8.0.0/24}
DNS=${2:-10.8.0.1}
call PoolService/CreatePool "{\"pool_id\": \"ue\", \"pool\": {\"ranges\": [\"$RANGE\"], \"dns_servers\": [\"$DNS\"]}}"
call PoolService/GetPool '{"name": "pools/ue"}'
