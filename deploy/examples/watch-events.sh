#!/usr/bin/env bash
# Stream events: the current state, an end-of-snapshot marker, then live
# changes, until interrupted (or for SECONDS seconds if given).
# Usage: watch-events.sh [SECONDS]
. "$(dirname "$0")/common.sh"
if [ -n "${1:-}" ]; then
  # shellcheck disable=SC2086
  "$GRPCURL" $GRPCURL_TLS -max-time "$1" -d '{}' "$MIFSEC_TARGET" mifsec.v1.EventService/Watch || [ $? -eq 68 ]  # 64 + DEADLINE_EXCEEDED: the time is up
else
  call EventService/Watch
fi
