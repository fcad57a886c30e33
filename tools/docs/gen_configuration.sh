#!/usr/bin/env bash
# Regenerates docs/configuration.md from the binaries' own flag help, so the reference cannot
# drift from the code. Usage: tools/docs/gen_configuration.sh [BUILD_DIR]
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
[ $# -gt 0 ] && TOLLGATE_BUILD_DIR=$1
out="$TOLLGATE_ROOT/docs/configuration.md"
awk_script="$TOLLGATE_ROOT/tools/docs/flags_to_markdown.awk"
table() {
  echo "| flag | default | meaning |"
  echo "|---|---|---|"
  { "$(bin_path "$1")" --helpon="${2:-main}" 2>&1 || true; } | awk -f "$awk_script"
}
{
  cat "$TOLLGATE_ROOT/tools/docs/configuration.head.md"
  for bin in tollgate-gateway tollgate-router tollgate-ledger tollgate-mock-provider; do
    echo
    echo "## \`$bin\`"
    echo
    table "$bin"
  done
  echo
  echo "## gRPC TLS (\`tollgate-gateway\`, \`tollgate-router\`, \`tollgate-ledger\`, \`tollgatectl\`)"
  echo
  echo "The same flags in every binary that speaks gRPC (services/common/grpc_tls.h; docs/security.md)."
  echo
  table tollgate-router grpc_tls
  echo
  echo "## \`tollgatectl\`"
  echo
  echo '```'
  "$(bin_path tollgatectl)" help 2>&1
  echo '```'

} >"$out"
log "wrote $out"
