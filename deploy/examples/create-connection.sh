#!/usr/bin/env bash
# Create a PSK secret and an initiator connection to a gateway over both
# interfaces (run register-interfaces.sh first).
# Usage: create-connection.sh GATEWAY_ADDRESS PSK_FILE
. "$(dirname "$0")/common.sh"
GATEWAY=${1:?gateway address}
PSK_FILE=${2:?file holding the pre-shared key}
# The key goes in the request body only; it is never printed back.
psk=$(tr -d '\n' <"$PSK_FILE" | sed 's/\\/\\\\/g; s/"/\\"/g')
call SecretService/CreateSecret "{\"secret_id\": \"gw-psk\", \"secret\": {\"type\": \"SECRET_TYPE_PSK\", \"text\": \"$psk\"}}"
call ConnectionService/CreateConnection "{
  \"connection_id\": \"gw\",
  \"connection\": {
    \"role\": \"ROLE_INITIATOR\",
    \"local_id\": \"ue1@example.net\", \"remote_id\": \"gw.example.net\",
    \"local_auth\": {\"psk_secret\": \"secrets/gw-psk\"},
    \"remote_auth\": {\"psk_secret\": \"secrets/gw-psk\"},
    \"remote_addresses\": [\"$GATEWAY\"],
    \"local_interfaces\": [\"interfaces/ran\", \"interfaces/wlan\"],
    \"request_virtual_ip4\": true,
    \"mobike\": true,
    \"dpd\": {\"interval\": \"30s\"},
    \"children\": [{\"name\": \"all\", \"local_ts\": [\"0.0.0.0/0\"], \"remote_ts\": [\"0.0.0.0/0\"]}]
  }}"
