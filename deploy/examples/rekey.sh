#!/usr/bin/env bash
# Rekey a connection's SAs now (CREATE_CHILD_SA, RFC 7296 §1.3.2, §1.3.3):
# each Child SA, then the IKE SA (its name changes with its SPIs), or only
# one kind. Each call returns when the new SA is installed.
# Usage: rekey.sh CONNECTION [all|child|ike]   (default all)
. "$(dirname "$0")/common.sh"
CONN=${1:?connection id}
CONN=${CONN#connections/}
WHAT=${2:-all}
case $WHAT in all|child|ike) ;; *) echo "rekey.sh: want all, child or ike, not $WHAT" >&2; exit 2 ;; esac
# names KIND JSON: the resource names of IKE SAs (ikeSas/X) or Child SAs (childSas/X) in a listing.
names() {
  sed -n "s/^ *\"name\": \"\\(connections\\/[^\"]*\\/$1\\/[^\"/]*\\)\",*\$/\\1/p"
}
ikes=$(call SecurityAssociationService/ListIkeSas "{\"parent\": \"connections/$CONN\"}" | names ikeSas)
[ -n "$ikes" ] || { echo "rekey.sh: connection $CONN has no IKE SA" >&2; exit 1; }
for ike in $ikes; do
  if [ "$WHAT" != ike ]; then
    for child in $(call SecurityAssociationService/ListChildSas "{\"parent\": \"$ike\"}" | names childSas); do
      call SecurityAssociationService/RekeyChildSa "{\"name\": \"$child\"}"
    done
  fi
  if [ "$WHAT" != child ]; then
    call SecurityAssociationService/RekeyIkeSa "{\"name\": \"$ike\"}"
  fi
done
