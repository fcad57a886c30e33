#!/usr/bin/env bash
# Observability integration run: the real services, a real Prometheus, the real ledger database.
#
#   tests/deploy/run_observability_integration.sh     # needs the binaries built under build/
#                                                     # (or $TOLLGATE_BUILD_DIR)
#
# Starts PostgreSQL, ledger, router, mock provider and gateway on free loopback ports (with
# tools/lib/suite.sh), starts Prometheus (Debian package `prometheus`) scraping the three
# services every second, sends traffic that exercises every dashboard panel (plain and streamed
# chat, a fallback after an upstream 500, a model the catalog does not know, /v1/models), then
# fails (exit 1, one FAIL line each) unless:
#   - tests/deploy/check_metrics_doc.sh passes: docs/metrics.md is exactly what is exported;
#   - every PromQL expression of the operations dashboard returns at least one series with a
#     number (not NaN) from Prometheus, and every template variable has values;
#   - every SQL query of the spend dashboard returns rows from the ledger's database (the
#     anomalies panel excepted: a fresh database has no baseline).
# Everything is stopped at exit. Takes about 30 seconds.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../../tools/lib/common.sh"
source "$here/../../tools/lib/suite.sh"
command -v prometheus >/dev/null || install_deps prometheus
command -v node >/dev/null || die "node is required"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
SUITE_STATE=$(mktemp -d /tmp/tollgate-observability.XXXXXX)
[ "$(id -u)" -eq 0 ] && chmod 755 "$SUITE_STATE"
SUITE_PG_PORT=$(free_port); SUITE_GW_PORT=$(free_port); SUITE_MOCK_PORT=$(free_port)
SUITE_ROUTER_PORT=$(free_port); SUITE_ROUTER_ADMIN_PORT=$(free_port)
SUITE_LEDGER_PORT=$(free_port); SUITE_LEDGER_ADMIN_PORT=$(free_port)
SUITE_ROUTER_METRICS_PORT=$(free_port); SUITE_LEDGER_METRICS_PORT=$(free_port)
PROM_PORT=$(free_port)
SUITE_MOCK_FLAGS=(--ttft_ms=5 --inter_token_ms=1)
# The opt-in customer and API-key cost families are switched on so the contract covers them.
SUITE_GATEWAY_FLAGS=(--retry_backoff_ms=0 --metrics_customer_label --metrics_api_key_label)
# Tenancy on (virtual keys, budgets, rate limits), so their metrics are part of the contract.
SUITE_LEDGER_FLAGS=(--key_poll_ms=200 --key_heartbeat_ms=500 --quota_state_interval_ms=300)
suite_enable_tenancy "$SUITE_STATE"
SUITE_CATALOG="$SUITE_STATE/catalog.yaml"
prom_pid=""
cleanup() {
  [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null
  suite_stop_all
  if [ "${TOLLGATE_KEEP_STATE:-0}" = 1 ]; then log "state kept in $SUITE_STATE"; else rm -rf "$SUITE_STATE"; fi
}
trap cleanup EXIT

cat >"$SUITE_CATALOG" <<YAML
providers:
  - name: mock
    dialect: openai
    base_url: http://127.0.0.1:$SUITE_MOCK_PORT/v1
deployments:
  - id: mock-primary
    provider: mock
    upstream_model: gpt-4o-mini
    prices: {input: "0.15", cached_input: "0.075", output: "0.60"}
    capabilities: [chat, stream]
  - id: mock-secondary
    provider: mock
    upstream_model: gpt-4o-mini
    prices: {input: "0.30", output: "1.20"}
    capabilities: [chat, stream]
models:
  - name: gpt-4o-mini
    deployments: [mock-primary, mock-secondary]
YAML

failures=0
fail() { echo "FAIL observability: $*"; failures=$((failures + 1)); }

suite_start_postgres
KEY="tg-obs-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
suite_write_gateway_config "$SUITE_STATE/gateway.yaml" "$KEY" obs-team
# Guardrails on, so their action counter is part of the contract too.
cat >>"$SUITE_STATE/gateway.yaml" <<'YAML'
guardrails:
  defaults: {pii: {email: redact}}
YAML
suite_start_services "$SUITE_STATE/gateway.yaml"
ctl() { "$(bin_path tollgatectl)" --ledger_admin="127.0.0.1:$SUITE_LEDGER_ADMIN_PORT" --token="$ADMIN_TOKEN" "$@"; }
# A virtual key, a hard monthly budget with alerts, rate limits, and a tiny soft budget on one
# feature that the traffic below crosses (so an alert fires).
ctl teams create obs-team >/dev/null || die "tollgatectl teams create failed"
VKEY=$(ctl keys create --team obs-team --name obs --format=json |
       node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).secret))') ||
  die "tollgatectl keys create failed"
ctl budgets set --team obs-team --usd 1000 --period month --alerts 50,80,100 >/dev/null ||
  die "tollgatectl budgets set failed"
ctl budgets set --team obs-team --feature search --usd 0.000001 --period day --soft --alerts 50 \
  >/dev/null || die "tollgatectl budgets set (soft) failed"
ctl limits set --team obs-team --rpm 100000 --tpm 100000000 >/dev/null || die "tollgatectl limits set failed"
gw="http://127.0.0.1:$SUITE_GW_PORT"
urls=("$gw/metrics" "http://127.0.0.1:$SUITE_ROUTER_METRICS_PORT/metrics"
      "http://127.0.0.1:$SUITE_LEDGER_METRICS_PORT/metrics")

cat >"$SUITE_STATE/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: tollgate-gateway
    static_configs: [{targets: ["127.0.0.1:$SUITE_GW_PORT"]}]
  - job_name: tollgate-router
    static_configs: [{targets: ["127.0.0.1:$SUITE_ROUTER_METRICS_PORT"]}]
  - job_name: tollgate-ledger
    static_configs: [{targets: ["127.0.0.1:$SUITE_LEDGER_METRICS_PORT"]}]
YAML
prometheus --config.file="$SUITE_STATE/prometheus.yml" --storage.tsdb.path="$SUITE_STATE/prom" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$SUITE_STATE/logs/prometheus.log" 2>&1 &
prom_pid=$!
prom="http://127.0.0.1:$PROM_PORT"
for _ in $(seq 1 100); do
  up=$(curl -fsS "$prom/api/v1/query?query=sum(up)" 2>/dev/null | grep -o '"value":\[[^]]*"3"\]' || true)
  [ -n "$up" ] && break
  kill -0 "$prom_pid" 2>/dev/null || die "prometheus exited: $(tail -n 5 "$SUITE_STATE/logs/prometheus.log")"
  sleep 0.2
done
[ -n "$up" ] || die "prometheus does not scrape the three services (see $SUITE_STATE/logs/prometheus.log)"
sleep 2  # a baseline sample of every counter before the traffic

# ---- traffic ----
chat() {  # feature, body
  curl -sS -o /dev/null -w '%{http_code}' "$gw/v1/chat/completions" -H "Authorization: Bearer $KEY" \
    -H "x-tollgate-feature: $1" -H "x-tollgate-customer: cust-$1" -H "content-type: application/json" -d "$2"
}
# Two waves: series created by the first wave (they appear on first use) get increments seen by
# rate() in the second.
for wave in 1 2; do
  for i in 1 2 3; do
    code=$(chat search '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}')
    [ "$code" = 200 ] || fail "chat request answered $code"
    code=$(chat search '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"mail jane@example.com"}]}')
    [ "$code" = 200 ] || fail "redacted chat request answered $code"
    code=$(chat assistant '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"stream please"}]}')
    [ "$code" = 200 ] || fail "streamed chat request answered $code"
  done
  # The first attempt fails with 500 (primary), the fallback (secondary) succeeds.
  code=$(chat search "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"[[mock: fail_first=1 key=fb-$wave-$$]] fall back\"}]}")
  [ "$code" = 200 ] || fail "fallback request answered $code"
  chat search '{"model":"no-such-model","messages":[{"role":"user","content":"x"}]}' >/dev/null
  curl -fsS -o /dev/null "$gw/v1/models" -H "Authorization: Bearer $KEY" || fail "GET /v1/models failed"
  code=$(curl -sS -o /dev/null -w '%{http_code}' "$gw/v1/chat/completions" -H "Authorization: Bearer $VKEY" \
    -H "content-type: application/json" -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"virtual"}]}')
  [ "$code" = 200 ] || fail "chat request with a virtual key answered $code"
  [ "$wave" = 1 ] && sleep 3
done
ctl spend --since 1h >/dev/null || fail "tollgatectl spend failed"
ctl budgets list >/dev/null || fail "tollgatectl budgets list failed"
sleep 4  # let the ledger commit and Prometheus scrape a few times

# ---- metrics contract ----
for i in 0 1 2; do curl -fsS "${urls[$i]}" >"$SUITE_STATE/logs/metrics-$i.txt" 2>/dev/null || true; done
if ! "$here/check_metrics_doc.sh" "${urls[@]}"; then fail "check_metrics_doc.sh"; fi

# ---- operations dashboard: every expression returns data ----
node - "$here/../../deploy/k8s/tollgate/dashboards/operations.json" "$prom" <<'JS' || failures=$((failures + 1))
const fs = require("fs");
const [file, prom] = process.argv.slice(2);
const d = JSON.parse(fs.readFileSync(file, "utf8"));
const subst = (e) => e.replaceAll("$__rate_interval", "1m").replace(/\$\{?(team|feature|model)\}?/g, ".*");
(async () => {
  let bad = 0;
  const panels = d.panels.flatMap((p) => (p.type === "row" ? p.panels ?? [] : [p]));
  for (const p of panels) {
    for (const t of p.targets) {
      const q = subst(t.expr);
      const r = await (await fetch(`${prom}/api/v1/query?query=${encodeURIComponent(q)}`)).json();
      const series = r.data?.result ?? [];
      const numbers = series.filter((s) => !Number.isNaN(Number(s.value?.[1])));
      if (r.status !== "success" || numbers.length === 0) {
        bad++;
        console.log(`FAIL observability: panel "${p.title}" ${t.refId}: no data for ${q}${r.error ? ` (${r.error})` : ""}`);
      }
    }
  }
  for (const v of d.templating.list.filter((v) => v.type === "query")) {
    const m = (typeof v.query === "string" ? v.query : v.query.query).match(/label_values\((\w+),\s*(\w+)\)/);
    const r = await (await fetch(`${prom}/api/v1/label/${m[2]}/values?match[]=${m[1]}`)).json();
    if (!(r.data ?? []).length) { bad++; console.log(`FAIL observability: variable ${v.name}: no values`); }
  }
  console.log(`operations dashboard: ${panels.length} panels queried on Prometheus, ${bad} without data`);
  process.exit(bad ? 1 : 0);
})();
JS

# ---- spend dashboard: every query returns rows from the ledger's database ----
node - "$here/../../deploy/k8s/tollgate/dashboards/spend.json" "$SUITE_DB_URL" "$TOLLGATE_PG_BIN/psql" <<'JS' || failures=$((failures + 1))
const fs = require("fs");
const { execFileSync } = require("child_process");
const [file, db, psql] = process.argv.slice(2);
const d = JSON.parse(fs.readFileSync(file, "utf8"));
const now = Date.now();
const from = new Date(now - 3 * 3600e3).toISOString(), to = new Date(now + 3600e3).toISOString();
const render = (s) => s.replace(/\$__timeFilter\((\w+)\)/g, `$1 BETWEEN '${from}' AND '${to}'`)
  .replace(/\$__timeGroupAlias\((\w+),\s*'1h'\)/g, `floor(extract(epoch from $1)/3600)*3600 AS "time"`)
  .replace(/\$budget_usd\b/g, "1000").replace(/\$(team|feature|model)\b/g, "'__all__'");
let bad = 0, n = 0;
const queries = d.panels.flatMap((p) => (p.type === "row" ? p.panels ?? [] : [p]))
  .flatMap((p) => p.targets.map((t) => [p.title, t.rawSql]))
  .concat(d.templating.list.filter((v) => v.type === "query").map((v) => [`variable ${v.name}`, v.query]));
for (const [title, sql] of queries) {
  n++;
  let rows = [];
  try {
    rows = execFileSync(psql, ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", render(sql)],
      { encoding: "utf8" }).split("\n").filter(Boolean);
  } catch (e) { bad++; console.log(`FAIL observability: spend "${title}": ${e.stderr || e.message}`); continue; }
  if (rows.length === 0 && title !== "Spend anomalies") { bad++; console.log(`FAIL observability: spend "${title}": no rows`); }
}
console.log(`spend dashboard: ${n} queries run on the ledger database, ${bad} failed or empty`);
process.exit(bad ? 1 : 0);
JS

if [ "$failures" -ne 0 ]; then
  echo "observability: $failures failure(s) (logs: rerun with TOLLGATE_KEEP_STATE=1)"
  exit 1
fi
echo "observability: OK"
