#!/usr/bin/env bash
# Is the daemon serving? (grpc.health.v1; exits non-zero otherwise)
. "$(dirname "$0")/common.sh"
# shellcheck disable=SC2086
"$GRPCURL" $GRPCURL_TLS "$MIFSEC_TARGET" grpc.health.v1.Health/Check
