#!/usr/bin/env bash
# Show everything the daemon holds: interfaces, secrets (metadata only),
# pools, connections, and the IKE SAs of every connection.
. "$(dirname "$0")/common.sh"
call InterfaceService/ListInterfaces
call SecretService/ListSecrets
call PoolService/ListPools
call ConnectionService/ListConnections
call SecurityAssociationService/ListIkeSas '{"parent": "connections/-"}'
