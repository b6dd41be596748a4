#!/usr/bin/env bash
# Register the node's access interfaces: RAN (cellular, metered) and WLAN.
# Usage: register-interfaces.sh [RAN_LINK] [WLAN_LINK]   (default rmnet0 wlan0)
# allow_missing lets an interface be declared before its link appears.
. "$(dirname "$0")/common.sh"
RAN_LINK=${1:-rmnet0}
WLAN_LINK=${2:-wlan0}
call InterfaceService/CreateInterface "{
  \"interface_id\": \"ran\", \"allow_missing\": true,
  \"interface\": {\"link\": \"$RAN_LINK\", \"access_type\": \"ACCESS_TYPE_RAN\", \"priority\": 20, \"metered\": true}}"
call InterfaceService/CreateInterface "{
  \"interface_id\": \"wlan\", \"allow_missing\": true,
  \"interface\": {\"link\": \"$WLAN_LINK\", \"access_type\": \"ACCESS_TYPE_WLAN\", \"priority\": 10}}"
call InterfaceService/ListInterfaces
