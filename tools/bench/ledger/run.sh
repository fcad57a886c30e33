#!/usr/bin/env bash
# Ledger benchmark (issue 4 item 9): starts a throw-away PostgreSQL 15, then runs ledger_bench
# (ingest events/s through the exactly-once insert + rollups; spend-query latency over a month of
# generated events, 10 million by default). Prints the figures; results go in docs/ledger.md.
#
#   tools/bench/ledger/run.sh [BUILD_DIR] [ledger_bench flags...]
#   e.g. tools/bench/ledger/run.sh build --query_events=1000000
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
build="${1:-$root/build}"
shift || true
bench="$build/services/ledger/ledger_bench"
[[ -x "$bench" ]] || { echo "build ledger_bench first: cmake --build $build --target ledger_bench" >&2; exit 2; }
pg_bin="${TOLLGATE_PG_BIN:-/usr/lib/postgresql/15/bin}"
dir="$(mktemp -d /tmp/tollgate-ledger-bench.XXXXXX)"
run=()
if [[ $(id -u) == 0 ]]; then chown postgres "$dir"; run=(runuser -u postgres --); fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { "${run[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
"${run[@]}" "$pg_bin/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
# Durable defaults (fsync, synchronous_commit on); only memory sized for the machine.
"${run[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o \
  "-p $port -k $dir -c listen_addresses=127.0.0.1 -c shared_buffers=512MB -c work_mem=64MB -c maintenance_work_mem=512MB -c max_wal_size=8GB" start >/dev/null
"${run[@]}" "$pg_bin/createdb" -h 127.0.0.1 -p "$port" -U postgres bench
echo "PostgreSQL 15 on 127.0.0.1:$port; $(nproc) cores; $(date -u +%FT%TZ)"
"$bench" --database_url="postgresql://postgres@127.0.0.1:$port/bench" "$@"
