# Starting and stopping the Tollgate suite as local processes; shared by tools/run and
# tools/bench/run. Source after lib/common.sh. Uses and sets the globals below.
#
#   SUITE_STATE      state directory (PostgreSQL data, logs, generated config)
#   SUITE_PG_PORT, SUITE_GW_PORT, SUITE_MOCK_PORT, SUITE_ROUTER_PORT, SUITE_ROUTER_ADMIN_PORT,
#   SUITE_LEDGER_PORT, SUITE_LEDGER_ADMIN_PORT, SUITE_ROUTER_METRICS_PORT, SUITE_LEDGER_METRICS_PORT
#   SUITE_CATALOG    catalog file for the router
#   SUITE_MOCK_FLAGS / SUITE_GATEWAY_FLAGS / SUITE_LEDGER_FLAGS  extra flags (arrays)
#   SUITE_PIDS       pids of the started services (array, start order)

SUITE_PIDS=()
[ -n "${SUITE_LEDGER_FLAGS+set}" ] || SUITE_LEDGER_FLAGS=()
: "${SUITE_PG_PORT:=55432}" "${SUITE_GW_PORT:=8080}" "${SUITE_MOCK_PORT:=9090}"
: "${SUITE_ROUTER_PORT:=7001}" "${SUITE_ROUTER_ADMIN_PORT:=7002}"
: "${SUITE_LEDGER_PORT:=7003}" "${SUITE_LEDGER_ADMIN_PORT:=7004}"
: "${SUITE_ROUTER_METRICS_PORT:=9101}" "${SUITE_LEDGER_METRICS_PORT:=9102}"

suite_pg_data() { echo "$SUITE_STATE/pg/data"; }

# Initialises (once) and starts PostgreSQL; creates database `tollgate`. Sets SUITE_DB_URL.
suite_start_postgres() {
  local data; data=$(suite_pg_data)
  mkdir -p "$SUITE_STATE/logs" "$SUITE_STATE/pg"
  [ "$(id -u)" -eq 0 ] && chown -R postgres: "$SUITE_STATE/pg"
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising PostgreSQL in $data"
    pg_as_owner "$TOLLGATE_PG_BIN/initdb" -D "$data" -A trust -U postgres -E UTF8 --no-locale \
      >"$SUITE_STATE/logs/initdb.log" 2>&1 || die "initdb failed (see $SUITE_STATE/logs/initdb.log)"
  fi
  if [ -f "$data/postmaster.pid" ]; then  # left over from a killed run
    pg_as_owner "$TOLLGATE_PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  log "starting PostgreSQL on 127.0.0.1:$SUITE_PG_PORT"
  pg_as_owner "$TOLLGATE_PG_BIN/pg_ctl" -D "$data" -l "$SUITE_STATE/pg/server.log" -w -t 60 \
    -o "-p $SUITE_PG_PORT -k $SUITE_STATE/pg -c listen_addresses=127.0.0.1 ${SUITE_PG_OPTIONS:-}" \
    start >/dev/null || die "PostgreSQL did not start (see $SUITE_STATE/pg/server.log)"
  local admin="postgresql://postgres@127.0.0.1:$SUITE_PG_PORT/postgres"
  if ! "$TOLLGATE_PG_BIN/psql" -X -q -d "$admin" -tAc \
      "SELECT 1 FROM pg_database WHERE datname='tollgate'" | grep -q 1; then
    "$TOLLGATE_PG_BIN/psql" -X -q -d "$admin" -c "CREATE DATABASE tollgate" >/dev/null \
      || die "cannot create database tollgate"
  fi
  SUITE_DB_URL="postgresql://postgres@127.0.0.1:$SUITE_PG_PORT/tollgate"
}

suite_stop_postgres() {
  local data; data=$(suite_pg_data)
  if [ -f "$data/postmaster.pid" ]; then
    pg_as_owner "$TOLLGATE_PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

_suite_spawn() {  # name, port, command...
  local name=$1 port=$2; shift 2
  "$@" >>"$SUITE_STATE/logs/$name.log" 2>&1 &
  local pid=$!
  SUITE_PIDS+=("$pid")
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || die "$name exited at start; $SUITE_STATE/logs/$name.log says:
$(tail -n 20 "$SUITE_STATE/logs/$name.log")"
    sleep 0.1
  done
  die "$name did not open port $port; see $SUITE_STATE/logs/$name.log"
}

# Starts ledger, router, mock provider and gateway (PostgreSQL must be up). $1: gateway config.
suite_start_services() {
  local gateway_config=$1
  _suite_spawn ledger "$SUITE_LEDGER_PORT" "$(bin_path tollgate-ledger)" --database_url="$SUITE_DB_URL" \
    --listen=127.0.0.1:$SUITE_LEDGER_PORT --admin_listen=127.0.0.1:$SUITE_LEDGER_ADMIN_PORT \
    --metrics_listen=127.0.0.1:$SUITE_LEDGER_METRICS_PORT "${SUITE_LEDGER_FLAGS[@]}"
  _suite_spawn router "$SUITE_ROUTER_PORT" "$(bin_path tollgate-router)" --catalog="$SUITE_CATALOG" \
    --listen=127.0.0.1:$SUITE_ROUTER_PORT --admin_listen=127.0.0.1:$SUITE_ROUTER_ADMIN_PORT \
    --metrics_listen=127.0.0.1:$SUITE_ROUTER_METRICS_PORT
  _suite_spawn mock "$SUITE_MOCK_PORT" "$(bin_path tollgate-mock-provider)" \
    --listen=127.0.0.1:$SUITE_MOCK_PORT "${SUITE_MOCK_FLAGS[@]}"
  # The local mock and services are reached directly even where the environment sets a proxy.
  local loopback="127.0.0.1,localhost,::1"
  _suite_spawn gateway "$SUITE_GW_PORT" env no_proxy="${no_proxy:+$no_proxy,}$loopback" \
    NO_PROXY="${NO_PROXY:+$NO_PROXY,}$loopback" \
    "$(bin_path tollgate-gateway)" --config="$gateway_config" \
    --listen=127.0.0.1:$SUITE_GW_PORT --router=127.0.0.1:$SUITE_ROUTER_PORT \
    --ledger=127.0.0.1:$SUITE_LEDGER_PORT --spool_dir="$SUITE_STATE/spool" "${SUITE_GATEWAY_FLAGS[@]}"
}

# Stops the services in reverse start order (SIGTERM, graceful), then PostgreSQL.
suite_stop_all() {
  for ((i=${#SUITE_PIDS[@]}-1; i>=0; i--)); do kill -TERM "${SUITE_PIDS[$i]}" 2>/dev/null || true; done
  for pid in "${SUITE_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  SUITE_PIDS=()
  suite_stop_postgres
}

# Control-plane tokens (docs/tenancy.md): an admin token and the gateways' token, generated once
# into $1 (kept across runs), the ledger's tokens file ($1/tokens.yaml, hashes only) and the
# gateway's token file ($1/gateway.token). Sets ADMIN_TOKEN and appends to SUITE_LEDGER_FLAGS and
# SUITE_GATEWAY_FLAGS what turns virtual keys, budgets and rate limits on.
suite_enable_tenancy() {
  local dir=$1 name
  for name in admin gateway; do
    [ -s "$dir/$name.token" ] ||
      (umask 077; echo "tg-$name-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >"$dir/$name.token")
  done
  ADMIN_TOKEN=$(cat "$dir/admin.token")
  local sha_admin sha_gateway
  sha_admin=$(tr -d '\n' <"$dir/admin.token" | sha256sum | cut -c1-64)
  sha_gateway=$(tr -d '\n' <"$dir/gateway.token" | sha256sum | cut -c1-64)
  (umask 077; cat >"$dir/tokens.yaml" <<YAML
# Generated by Tollgate's tools: control-plane token hashes (docs/tenancy.md).
tokens:
  - {name: local-admin, role: admin, sha256: $sha_admin}
  - {name: gateways, role: gateway, sha256: $sha_gateway}
YAML
  )
  SUITE_LEDGER_FLAGS+=(--admin_tokens_file="$dir/tokens.yaml")
  SUITE_GATEWAY_FLAGS+=(--ledger_admin="127.0.0.1:$SUITE_LEDGER_ADMIN_PORT"
                        --control_plane_token_file="$dir/gateway.token")
}

# Writes a gateway config accepting one key. $1 path, $2 key, $3 team.
suite_write_gateway_config() {
  cat >"$1" <<YAML
# Generated by Tollgate's tools. Client keys accepted by the gateway.
keys:
  - key: "$2"
    id: dev
    team: "$3"
    environment: dev
YAML
  chmod 600 "$1"
}
