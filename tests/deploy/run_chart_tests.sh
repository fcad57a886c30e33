#!/usr/bin/env bash
# Offline tests of the Helm chart, its values schema, the container build file and the Grafana
# dashboards. No cluster, no helm binary, no network: see docs/deploy.md "Chart tests".
#
#   tests/deploy/run_chart_tests.sh            # everything (< 2 minutes)
#   TOLLGATE_DEPLOY_TESTS_NO_DB=1 tests/deploy/run_chart_tests.sh   # skip the PostgreSQL part
#
# Needs (Debian 12 packages): golang-go golang-github-masterminds-sprig-dev
# golang-k8s-sigs-yaml-dev golang-github-xeipuuv-gojsonschema-dev (the renderer), prometheus
# (promtool), postgresql (PostgreSQL 15), nodejs npm, kubectl (optional: `kubectl kustomize`);
# and `npm ci` in tests/deploy (this script runs it when node_modules is missing).
# Missing Debian packages are installed with apt-get when running as root.
#
# Steps:
#   1. build tests/deploy/helmrender (Helm 3's engine: text/template + sprig + Helm's functions);
#   2. render the chart for: default values, tests/deploy/values-full.yaml (every option on,
#      mutual TLS with per-component Secrets), tests/deploy/values-existing-secrets.yaml (TLS from
#      one Secret with custom key names), tests/deploy/values-tenancy.yaml, a
#      bundled-PostgreSQL variant with tenancy off, an upgrade;
#   3. validate each rendering (validate_chart.mjs: Kubernetes schemas via kubernetes-models,
#      Tollgate rules) and type-check all of them strictly with tsc (unknown fields);
#      `kubectl kustomize` parses every rendering when kubectl is installed;
#   4. values that must be rejected are rejected (schema, required database, TLS without a Secret);
#   5. dashboards: static checks, `promtool check rules` on every PromQL expression, and every SQL
#      query run against a PostgreSQL migrated with services/ledger/migrations and seeded with
#      seed_spend.sql, compared with spend_expected.json;
#   6. tests/deploy/check_dockerfile.sh;
#   7. mutation checks: broken inputs must make the validators fail.
# Exit 0 when everything passed; otherwise 1 with "FAIL ..." lines explaining each failure.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
chart="$root/deploy/k8s/tollgate"
out="$here/.out"
pg_bin="${TOLLGATE_PG_BIN:-/usr/lib/postgresql/15/bin}"
start=$(date +%s)
failed=0
passed=0

say() { printf '\033[1m[deploy-tests]\033[0m %s\n' "$*"; }
ok() { passed=$((passed + 1)); printf '  ok   %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf '  FAIL %s\n' "$*"; }
die() { printf 'FAIL deploy-tests: %s\n' "$*" >&2; exit 1; }

# ---- dependencies --------------------------------------------------------------------------
# What each Debian package provides (checked by file, so tools installed otherwise also count).
declare -A provides=(
  [golang-go]=/usr/bin/go
  [golang-github-masterminds-sprig-dev]=/usr/share/gocode/src/github.com/Masterminds/sprig
  [golang-k8s-sigs-yaml-dev]=/usr/share/gocode/src/sigs.k8s.io/yaml
  [golang-github-xeipuuv-gojsonschema-dev]=/usr/share/gocode/src/github.com/xeipuuv/gojsonschema
  [prometheus]=/usr/bin/promtool
  [postgresql]="$pg_bin/initdb"
)
missing=()
for p in "${!provides[@]}"; do [ -e "${provides[$p]}" ] || missing+=("$p"); done
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    say "installing ${missing[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null; } || die "apt-get install ${missing[*]} failed"
  else
    die "missing Debian packages: ${missing[*]} (apt-get install them)"
  fi
fi
if [ ! -d "$here/node_modules/kubernetes-models" ]; then
  say "npm ci in tests/deploy"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in tests/deploy failed"
fi

rm -rf "$out"
mkdir -p "$out"

# ---- 1. renderer ----------------------------------------------------------------------------
say "building helmrender"
export GO111MODULE=off GOPATH=/usr/share/gocode
export GOCACHE="${GOCACHE:-$HOME/.cache/tollgate-helmrender}"
(cd "$here/helmrender" && go build -o "$out/helmrender" .) || die "cannot build tests/deploy/helmrender"
render() {  # case, helmrender args...
  local name=$1; shift
  "$out/helmrender" --chart "$chart" --out "$out/$name" --release tollgate --namespace tollgate "$@"
}

# ---- 2-3. render and validate ---------------------------------------------------------------
say "rendering and validating the chart"
# bundled-custom needs a catalog without the mock provider: pass it as a file.
cat >"$out/catalog-no-mock.yaml" <<'YAML'
router:
  catalog: |
    providers:
      - name: openai
        dialect: openai
        base_url: https://api.openai.com/v1
        api_key_env: OPENAI_API_KEY
    deployments:
      - id: openai-gpt-4o-mini
        provider: openai
        upstream_model: gpt-4o-mini
        prices: {input: "0.15", output: "0.60"}
    models:
      - name: gpt-4o-mini
        deployments: [openai-gpt-4o-mini]
providerKeys:
  values:
    OPENAI_API_KEY: sk-test
YAML
cases=(
  "default|"
  "full|-f $here/values-full.yaml"
  "existing-secrets|-f $here/values-existing-secrets.yaml"
  "tenancy|-f $here/values-tenancy.yaml"
  "bundled-custom|--set tenancy.enabled=false --set postgresql.auth.password=trialpass --set postgresql.persistence.enabled=false --set mockProvider.enabled=false --set networkPolicy.egress.enabled=true -f $out/catalog-no-mock.yaml"
  "upgrade|--upgrade -f $here/values-full.yaml"
)
for c in "${cases[@]}"; do
  name=${c%%|*}; read -r -a args <<<"${c#*|}"
  if ! err=$(render "$name" "${args[@]}" 2>&1); then bad "render $name: $err"; continue; fi
  if report=$(node "$here/validate_chart.mjs" "$out/$name" "$root" 2>&1); then
    ok "render + validate $name ($(tail -n 1 <<<"$report" | sed 's/^[^:]*: //'))"
    grep '^PENDING' <<<"$report" | sed 's/^/       /' | sort -u
  else
    bad "validate $name"; grep -v '^PENDING' <<<"$report" | sed 's/^/       /'
  fi
  if command -v kubectl >/dev/null; then
    mkdir -p "$out/$name/kustomize"
    cp "$out/$name/manifest.yaml" "$out/$name/kustomize/"
    printf 'resources:\n  - manifest.yaml\n' >"$out/$name/kustomize/kustomization.yaml"
    if kerr=$(kubectl kustomize "$out/$name/kustomize" 2>&1 >/dev/null); then ok "kubectl kustomize $name"
    else bad "kubectl kustomize $name: $kerr"; fi
  fi
done
if tsc_out=$("$here/node_modules/.bin/tsc" -p "$here/tsconfig.json" 2>&1); then
  ok "tsc: every rendered object type-checks against the Kubernetes models (no unknown fields)"
else
  bad "tsc: rendered objects do not match the Kubernetes types"; sed 's/^/       /' <<<"$tsc_out" | head -40
fi

# ---- 4. values that must be rejected ---------------------------------------------------------
say "rejecting invalid values"
expect_reject() {  # description, expected message (grep -E), helmrender args...
  local what=$1 want=$2; shift 2
  local err
  if err=$(render reject "$@" 2>&1); then bad "$what: accepted"; return; fi
  if grep -qE -- "$want" <<<"$err"; then ok "$what: rejected"; else bad "$what: wrong error: $err"; fi
}
expect_reject "unknown top-level key" "Additional property bogus" --set bogus=1
expect_reject "unknown nested key" "Additional property replica is not allowed" --set gateway.replica=3
expect_reject "root container" "runAsNonRoot" --set securityContext.runAsNonRoot=false
expect_reject "writable root filesystem" "readOnlyRootFilesystem" --set securityContext.readOnlyRootFilesystem=false
expect_reject "bad log level" "logLevel" --set logLevel=verbose
expect_reject "Kubernetes older than kubeVersion" "incompatible with Kubernetes v1.24.0" --kube-version v1.24.0
expect_reject "bad flag name" "flags" --set gateway.flags.Bad-Flag=1
expect_reject "external database without URL" "set database.url or database.existingSecret" \
  --set postgresql.enabled=false
expect_reject "non-URL database" "database.url" --set postgresql.enabled=false --set database.url=db.example.com
printf 'gateway: {keys: [{key: tg-0123456789, id: x}]}\n' >"$out/key-without-team.yaml"
expect_reject "gateway key without team" "team is required" -f "$here/values-full.yaml" -f "$out/key-without-team.yaml"
# Control plane (tenancy).
tokens() {  # file, YAML of tenancy.adminTokens.tokens items (flow style)
  printf 'tenancy: {adminTokens: {tokens: [%s]}}\n' "$2" >"$out/$1"
}
h64=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
tokens plaintext-token.yaml "{name: ops, sha256: tg-admin-plaintext-token, role: admin}"
expect_reject "plaintext admin token instead of its hash" "sha256" -f "$out/plaintext-token.yaml"
tokens team-admin-without-team.yaml "{name: lead, sha256: $h64, role: team-admin}"
expect_reject "team-admin token without team" "team is required" -f "$out/team-admin-without-team.yaml"
tokens admin-with-team.yaml "{name: ops, sha256: $h64, role: admin, team: alpha}"
expect_reject "admin token with a team" "tokens.0.team" -f "$out/admin-with-team.yaml"
tokens bad-role.yaml "{name: ops, sha256: $h64, role: root}"
expect_reject "unknown token role" "role" -f "$out/bad-role.yaml"
tokens duplicate-names.yaml "{name: gateways, sha256: $h64, role: admin}"
expect_reject "token name used twice" "duplicate control-plane token name" -f "$out/duplicate-names.yaml"
expect_reject "bad quota_when_ledger_down" "whenLedgerDown" --set tenancy.quotas.whenLedgerDown=open
expect_reject "zero lease wait" "leaseWaitMs" --set tenancy.quotas.leaseWaitMs=0
expect_reject "short gateway token" "gatewayToken.value" --set tenancy.gatewayToken.value=short
expect_reject "gateway token Secret without its hash" "set tenancy.gatewayToken.sha256" \
  --set tenancy.gatewayToken.existingSecret=gw-token
expect_reject "tokens Secret with a generated gateway token" "give the gateway token yourself" \
  --set tenancy.adminTokens.existingSecret=admin-tokens
# gRPC TLS.
expect_reject "TLS without a Secret" "tls.existingSecret: String length must be greater than or equal to 1" \
  --set tls.enabled=true
expect_reject "TLS with Secrets for only some components" "tls.existingSecret: String length" \
  --set tls.enabled=true --set tls.router.existingSecret=router-tls --set tls.ledger.existingSecret=ledger-tls
expect_reject "TLS Secret key name with a slash" "tls.secretKeys.key" \
  --set tls.enabled=true --set tls.existingSecret=grpc-tls --set tls.secretKeys.key=../tls.key
expect_reject "TLS server name with a scheme" "tls.serverName" \
  --set tls.enabled=true --set tls.existingSecret=grpc-tls --set tls.serverName=https://tollgate.internal
expect_reject "requireClientCert not a boolean" "tls.requireClientCert" \
  --set tls.enabled=true --set tls.existingSecret=grpc-tls --set tls.requireClientCert=sometimes

# ---- 5. dashboards ---------------------------------------------------------------------------
say "checking the dashboards"
db_args=()
pg_data=""
stop_pg() {
  if [ -n "$pg_data" ] && [ -f "$pg_data/postmaster.pid" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  [ -n "$pg_data" ] && rm -rf "$(dirname "$pg_data")"
}
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
trap stop_pg EXIT
if [ "${TOLLGATE_DEPLOY_TESTS_NO_DB:-0}" != 1 ]; then
  pg_dir=$(mktemp -d /tmp/tollgate-deploy-pg.XXXXXX)
  pg_data="$pg_dir/data"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$pg_dir"
  pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 20000)))
  if as_pg "$pg_bin/initdb" -D "$pg_data" -A trust -U postgres -E UTF8 --no-locale >"$pg_dir/initdb.log" 2>&1 &&
     as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_dir/server.log" -w -t 60 \
       -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null 2>&1; then
    url="postgresql://postgres@127.0.0.1:$pg_port/postgres"
    mig_ok=1
    for f in "$root"/services/ledger/migrations/*.sql; do
      if ! merr=$("$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -1 -d "$url" -f "$f" 2>&1); then
        bad "migration $(basename "$f"): $merr"; mig_ok=0; break
      fi
    done
    if [ $mig_ok = 1 ] && serr=$("$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -1 -d "$url" -f "$here/seed_spend.sql" 2>&1); then
      db_args=(--db "$url" --psql "$pg_bin/psql")
    elif [ $mig_ok = 1 ]; then
      bad "seeding the spend tables: $serr"
    fi
  else
    bad "cannot start PostgreSQL for the spend dashboard queries (see $pg_dir)"
  fi
fi
if report=$(node "$here/check_dashboards.mjs" "$root" "$out/dashboards" "${db_args[@]}" 2>&1); then
  ok "$(tail -n 1 <<<"$report")"
else
  bad "dashboards"; sed 's/^/       /' <<<"$report"
fi
if perr=$(promtool check rules "$out/dashboards/operations.rules.yml" 2>&1); then
  ok "promtool: every operations PromQL expression parses ($(grep -o '[0-9]* rules found' <<<"$perr"))"
else
  bad "promtool check rules"; sed 's/^/       /' <<<"$perr"
fi

# ---- 6. Dockerfile -----------------------------------------------------------------------------
say "checking the Dockerfile"
if report=$("$here/check_dockerfile.sh" 2>&1); then ok "$(tail -n 1 <<<"$report")"
else bad "check_dockerfile.sh"; sed 's/^/       /' <<<"$report"; fi

# ---- 7. mutations: the validators must catch broken input ----------------------------------------
say "mutation checks (each broken input must be caught)"
mutate_objects() {  # description, expected FAIL text (grep -E), node expression on `objs`
  # Mutates the "full" rendering (TLS on), or the one named by MUTATE_FROM.
  local what=$1 want=$2 expr=$3 dir="$out/mutant"
  rm -rf "$dir"; cp -r "$out/${MUTATE_FROM:-full}" "$dir"
  node -e "const fs=require('fs');const f='$dir/objects.json';const objs=JSON.parse(fs.readFileSync(f));
    const find=(k,n)=>objs.find(x=>(x.object.kind===k||(k==='Deployment'&&x.object.kind==='StatefulSet'))&&x.object.metadata.name.endsWith(n)).object;
    $expr; fs.writeFileSync(f, JSON.stringify(objs));" || { bad "mutation $what: script error"; return; }
  if node "$here/validate_chart.mjs" "$dir" "$root" >"$dir/report.txt" 2>&1; then
    bad "mutation not caught: $what"
  elif grep -E -- "^FAIL .*$want" "$dir/report.txt" >/dev/null; then
    ok "caught: $what"
  else
    bad "mutation $what: failed for another reason:"; sed 's/^/       /' "$dir/report.txt"
  fi
}
mutate_objects "container without probes" "liveness/readiness probe missing" "delete find('Deployment','-router').spec.template.spec.containers[0].readinessProbe"
mutate_objects "writable root filesystem" "readOnlyRootFilesystem is not true" "find('Deployment','-gateway').spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem=false"
mutate_objects "missing memory limit" "resources.limits.memory missing" "delete find('Deployment','-ledger').spec.template.spec.containers[0].resources.limits.memory"
mutate_objects "catalog via subPath" "no subPath" "find('Deployment','-router').spec.template.spec.containers[0].volumeMounts[0].subPath='catalog.yaml'"
mutate_objects "undocumented flag" "--no_such_flag is not a documented" "find('Deployment','-gateway').spec.template.spec.containers[0].args.push('--no_such_flag=1')"
MUTATE_FROM=tenancy mutate_objects "wrong gRPC probe port" "gRPC health on the --listen port" "find('Deployment','-ledger').spec.template.spec.containers[0].livenessProbe.grpc.port=9999"
mutate_objects "wrong TCP probe port (TLS)" "TCP on the --listen port" "find('Deployment','-ledger').spec.template.spec.containers[0].livenessProbe.tcpSocket.port=9999"
mutate_objects "gRPC probe with TLS" "cannot pass the TLS handshake" "find('Deployment','-router').spec.template.spec.containers[0].readinessProbe={grpc:{port:7001},periodSeconds:5}"
mutate_objects "TLS Secret mounted writable" "/etc/tollgate/tls is not mounted readOnly" "find('Deployment','-router').spec.template.spec.containers[0].volumeMounts.find(m=>m.name==='grpc-tls').readOnly=false"
mutate_objects "world-readable TLS key" "at most 0440" "find('Deployment','-ledger').spec.template.spec.volumes.find(v=>v.name==='grpc-tls').secret.defaultMode=0o644"
mutate_objects "router without mutual TLS" "tls_require_client_cert=undefined does not match" "const c=find('Deployment','-router').spec.template.spec.containers[0];c.args=c.args.filter(a=>!a.startsWith('--tls_require_client_cert'))"
mutate_objects "gateway without the CA" "no --tls_ca_file" "const c=find('Deployment','-gateway').spec.template.spec.containers[0];c.args=c.args.filter(a=>!a.startsWith('--tls_ca_file'))"
mutate_objects "ledger with the shared instead of its own TLS Secret" "not acme-tollgate-ledger-tls" "find('Deployment','-ledger').spec.template.spec.volumes.find(v=>v.name==='grpc-tls').secret.secretName='acme-tollgate-grpc-tls'"
mutate_objects "TLS flags on the migration Job" "does not speak gRPC" "find('Job','-migrations').spec.template.spec.containers[0].args.push('--tls_ca_file=/etc/tollgate/tls/ca.crt')"
MUTATE_FROM=tenancy mutate_objects "TLS flag with TLS off" "tls.enabled=false" "find('Deployment','-gateway').spec.template.spec.containers[0].args.push('--tls_ca_file=/etc/tollgate/tls/ca.crt')"
mutate_objects "Kubernetes type error" "containerPort must be integer" "find('Deployment','-gateway').spec.template.spec.containers[0].ports[0].containerPort='8080'"
mutate_objects "Service selecting nothing" "selects no pods" "find('Service','-router').spec.selector['app.kubernetes.io/component']='nope'"
mutate_objects "admin port open to gateways" "admin \\(control-plane\\) port open" "find('NetworkPolicy','-router').spec.ingress[1].from.push({podSelector:{matchLabels:{'app.kubernetes.io/component':'gateway'}}})"
mutate_objects "ledger admin port open to gateways and others" "admin \\(control-plane\\) port open" "find('NetworkPolicy','-ledger').spec.ingress[2].from.push({namespaceSelector:{}})"
mutate_objects "gateways cut off the ledger admin port" "gateways cannot reach the ledger's admin port" "find('NetworkPolicy','-ledger').spec.ingress.splice(2,1)"
mutate_objects "gateway token hash missing" "gateway token's SHA-256" "const s=find('Secret','-admin-tokens');s.stringData['admin-tokens.yaml']=s.stringData['admin-tokens.yaml'].replace(/sha256: [0-9a-f]{64}\n\$/, 'sha256: ${h64}\n')"
mutate_objects "world-readable token file" "at most 0440" "find('Deployment','-gateway').spec.template.spec.volumes.find(v=>v.name==='control-plane-token').secret.defaultMode=0o644"
mutate_objects "ledger_admin on the data port" "not the ledger's admin port" "const c=find('Deployment','-gateway').spec.template.spec.containers[0];c.args=c.args.map(a=>a.replace(/^--ledger_admin=(.*):[0-9]+\$/,'--ledger_admin=\$1:7003'))"
mutate_objects "missing Secret reference" "Secret nope is neither rendered" "find('Deployment','-ledger').spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name='nope'"
mutate_objects "migration Job not a hook" "not a pre-upgrade hook" "delete find('Job','-migrations').metadata.annotations['helm.sh/hook']"
mutate_objects "dashboards label missing" "no ConfigMap labelled" "delete find('ConfigMap','-dashboards').metadata.labels.grafana_dashboard"
mutate_dashboard() {  # description, expected FAIL text (grep -E), file, sed expression
  local what=$1 want=$2 file=$3 expr=$4 dir="$out/mutant-root"
  rm -rf "$dir"; mkdir -p "$dir/deploy/k8s/tollgate" "$dir/services/ledger" "$dir/tests/deploy"
  cp "$here/spend_expected.json" "$dir/tests/deploy/"
  cp -r "$chart/dashboards" "$dir/deploy/k8s/tollgate/"
  cp -r "$root/docs" "$dir/"; cp -r "$root/services/ledger/migrations" "$dir/services/ledger/"
  sed -i "$expr" "$dir/deploy/k8s/tollgate/dashboards/$file"
  if node "$here/check_dashboards.mjs" "$dir" "$dir/work" "${db_args[@]}" >"$dir/report.txt" 2>&1; then
    bad "mutation not caught: $what"
  elif grep -E -- "^FAIL .*$want" "$dir/report.txt" >/dev/null; then
    ok "caught: $what"
  else
    bad "mutation $what: failed for another reason:"; sed 's/^/       /' "$dir/report.txt"
  fi
}
mutate_dashboard "undocumented metric" "tollgate_gateway_fallback_total is not in docs/metrics.md" operations.json 's/tollgate_gateway_fallbacks_total/tollgate_gateway_fallback_total/'
mutate_dashboard "undocumented label" "groups by token_kind" operations.json 's/sum by (token_type)/sum by (token_kind)/'
mutate_dashboard "unknown SQL column" "unknown identifier request_count" spend.json 's/sum(requests)/sum(request_count)/'
mutate_dashboard "unknown SQL table" "table usage_anomaly is not created" spend.json 's/FROM usage_anomalies/FROM usage_anomaly/'
if [ ${#db_args[@]} -gt 0 ]; then
  mutate_dashboard "wrong rows (top customers ascending)" "Top customers \\(all\\): rows differ" spend.json 's/ORDER BY spend_usd DESC/ORDER BY spend_usd ASC/'
  mutate_dashboard "wrong rows (filter ignored)" "Spend \\(filtered\\): rows differ" spend.json "0,/('__all__' IN (\\\$team) OR team IN (\\\$team))/s//true/"
fi

elapsed=$(( $(date +%s) - start ))
echo
echo "deploy-tests: ${elapsed}s"
echo "deploy-tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
