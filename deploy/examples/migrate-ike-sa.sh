#!/usr/bin/env bash
# Move a connection's IKE SA, with its Child SAs, to an interface (MOBIKE,
# RFC 4555 §3.5), make-before-break: the target answers a path test first;
# the call returns when the move is done, or fails with nothing moved.
# Usage: migrate-ike-sa.sh CONNECTION|IKE_SA_NAME INTERFACE
#   migrate-ike-sa.sh gw ran
#   migrate-ike-sa.sh connections/gw/ikeSas/0123456789abcdef wlan
. "$(dirname "$0")/common.sh"
TARGET=${1:?connection id or IKE SA name}
IFACE=${2:?interface id}
if [[ $TARGET == */ikeSas/* ]]; then
  ike=$TARGET
else
  # The connection's first IKE SA (a multipath connection has one per path:
  # name the one to move instead).
  ike=$(call SecurityAssociationService/ListIkeSas "{\"parent\": \"connections/${TARGET#connections/}\"}" |
    sed -n 's/^ *"name": "\(connections\/[^"]*\/ikeSas\/[^"/]*\)",*$/\1/p' | head -n 1)
  [ -n "$ike" ] || { echo "migrate-ike-sa.sh: connection $TARGET has no IKE SA" >&2; exit 1; }
fi
call SecurityAssociationService/MigrateIkeSa "{\"name\": \"$ike\", \"interface\": \"interfaces/${IFACE#interfaces/}\"}"
