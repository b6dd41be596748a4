# Sourced by the example scripts: how to reach mifsecd with grpcurl.
# MIFSEC_SOCKET   the daemon's unix socket (default /run/mifsec/mifsec.sock)
# GRPCURL         the grpcurl binary (default: grpcurl on PATH)
# For a TCP daemon with mutual TLS set MIFSEC_TARGET=host:port and
# GRPCURL_TLS="-cacert ca.pem -cert client.pem -key client.key".
set -euo pipefail
MIFSEC_SOCKET=${MIFSEC_SOCKET:-/run/mifsec/mifsec.sock}
MIFSEC_TARGET=${MIFSEC_TARGET:-unix://$MIFSEC_SOCKET}
GRPCURL=${GRPCURL:-grpcurl}
GRPCURL_TLS=${GRPCURL_TLS:--plaintext}

# call METHOD [JSON]: one RPC; the request is read from the argument.
call() {
  local method=$1 body=${2:-'{}'}
  # shellcheck disable=SC2086 # GRPCURL_TLS is a list of flags.
  "$GRPCURL" $GRPCURL_TLS -d "$body" "$MIFSEC_TARGET" "mifsec.v1.$method"
}
