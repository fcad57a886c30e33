#!/usr/bin/env bash
# Fails when a flag of a Tollgate binary is missing from docs/configuration.md.
# Usage: check_flags_documented.sh DOC BINARY...
set -euo pipefail
doc=$1; shift
missing=0
for bin in "$@"; do
  for flag in $({ "$bin" --helpon=main 2>&1; "$bin" --helpon=grpc_tls 2>&1; } |
                grep -oE '^    --[a-z0-9_]+' | sed 's/^ *--//'); do
    if ! grep -q -- "\`--$flag\`" "$doc"; then
      echo "$(basename "$bin"): --$flag is not documented in $doc"
      missing=1
    fi
  done
done
[ "$missing" -eq 0 ] && echo "every flag is documented"
exit $missing
