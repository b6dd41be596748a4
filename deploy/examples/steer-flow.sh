#!/usr/bin/env bash
# Steer a flow to an interface, another as standby (ACTIVE_STANDBY): creates
# steering rule RULE for UDP (or PROTOCOL) to PORT, or when RULE exists,
# replaces only its targets. Make-before-break: the call returns once the
# rule's flows moved to a path that answered a fresh probe, or fails with
# FAILED_PRECONDITION and nothing changed. Run it again with the interfaces
# swapped to move the flow back.
# Usage: steer-flow.sh RULE PORT [TO] [STANDBY]   (default: to wlan, standby ran)
. "$(dirname "$0")/common.sh"
RULE=${1:?rule id}
PORT=${2:?destination port of the flow}
TO=${3:-wlan}
STANDBY=${4:-ran}
PROTOCOL=${PROTOCOL:-17}
targets="[{\"interface\": \"interfaces/$TO\"}, {\"interface\": \"interfaces/$STANDBY\"}]"
if call SteeringService/GetSteeringRule "{\"name\": \"steeringRules/$RULE\"}" >/dev/null 2>&1; then
  call SteeringService/UpdateSteeringRule "{
    \"steering_rule\": {\"name\": \"steeringRules/$RULE\", \"targets\": $targets},
    \"update_mask\": {\"paths\": [\"targets\"]}}"
else
  call SteeringService/CreateSteeringRule "{
    \"steering_rule_id\": \"$RULE\",
    \"steering_rule\": {
      \"match\": {\"protocol\": $PROTOCOL, \"destination_ports\": {\"first\": $PORT}},
      \"mode\": \"STEERING_MODE_ACTIVE_STANDBY\",
      \"targets\": $targets,
      \"probe_interval\": \"0.1s\"}}"
fi
