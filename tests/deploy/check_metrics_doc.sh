#!/usr/bin/env bash
# Checks that docs/metrics.md is exactly what the running services export.
#
#   tests/deploy/check_metrics_doc.sh <gateway_metrics_url> <router_metrics_url> <ledger_metrics_url>
#   e.g. http://127.0.0.1:8080/metrics http://127.0.0.1:9101/metrics http://127.0.0.1:9102/metrics
#
# Scrapes the three endpoints and fails (exit 1, one line per problem) when:
#   - an exported tollgate_* metric is not in the docs/metrics.md table, or has another type;
#   - a sample carries a label the table does not list for its metric (histograms add `le`);
#   - a metric in the table is exported by none of the services (a series that appears only after
#     some traffic must have been produced first; see "When series appear" in docs/metrics.md);
#     TOLLGATE_METRICS_ALLOW_ABSENT="name,name" exempts the listed names from this last check;
#   - a tollgate_<service>_* metric is exported by another service than <service>.
# Needs curl and awk. Exit 2 on usage or scrape errors.
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 <gateway_metrics_url> <router_metrics_url> <ledger_metrics_url>" >&2
  exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
doc="$root/docs/metrics.md"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# name<TAB>type<TAB>label,label from the table rows: | `name` | type | `a`, `b` | meaning |
awk -F'|' '/^\| `tollgate_[a-z0-9_]+` \|/ {
  name=$2; gsub(/[ `]/, "", name); type=$3; gsub(/ /, "", type); labels=$4
  gsub(/[ `]/, "", labels); if (labels == "—" || labels == "-") labels = ""
  print name "\t" type "\t" labels }' "$doc" | sort >"$work/doc.tsv"
[ -s "$work/doc.tsv" ] || { echo "FAIL: no metric rows found in $doc" >&2; exit 2; }
dups=$(cut -f1 "$work/doc.tsv" | uniq -d)
[ -z "$dups" ] || { echo "FAIL: listed twice in docs/metrics.md: $dups"; exit 1; }

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

: >"$work/exported.tsv"
for pair in "gateway=$1" "router=$2" "ledger=$3"; do
  service=${pair%%=*}; url=${pair#*=}
  if ! curl -fsS --max-time 10 "$url" >"$work/$service.txt"; then
    echo "error: cannot scrape $service metrics at $url" >&2
    exit 2
  fi
  # service<TAB>family<TAB>type<TAB>label names seen (comma separated, sorted, unique)
  awk -v service="$service" '
    /^# TYPE tollgate_/ { type[$3] = $4; next }
    /^#/ || NF == 0 { next }
    /^tollgate_/ {
      series = $1; name = series; sub(/\{.*/, "", name)
      fam = name
      if (!(fam in type)) { f = fam; sub(/_(bucket|sum|count)$/, "", f); if (f in type) fam = f }
      seen[fam] = 1
      if (match(series, /\{.*\}/)) {
        inner = substr(series, RSTART + 1, RLENGTH - 2)
        # label names: identifiers followed by =" (values may contain anything but are quoted)
        while (match(inner, /[a-zA-Z_][a-zA-Z0-9_]*="/)) {
          l = substr(inner, RSTART, RLENGTH - 2); labels[fam "," l] = 1
          inner = substr(inner, RSTART + RLENGTH)
          # skip the quoted value
          while (length(inner) > 0) {
            c = substr(inner, 1, 1); inner = substr(inner, 2)
            if (c == "\\") { inner = substr(inner, 2); continue }
            if (c == "\"") break
          }
        }
      }
    }
    END {
      for (f in type) {
        ls = ""
        for (k in labels) { split(k, p, ","); if (p[1] == f) ls = ls (ls == "" ? "" : ",") p[2] }
        print service "\t" f "\t" type[f] "\t" ls
      }
    }' "$work/$service.txt" >>"$work/exported.tsv"
done

# Exported but undocumented, wrong type, unlisted labels, wrong service.
while IFS=$'\t' read -r service name type labels; do
  row=$(awk -F'\t' -v n="$name" '$1 == n' "$work/doc.tsv")
  if [ -z "$row" ]; then
    fail "$service exports $name ($type), which docs/metrics.md does not list"
    continue
  fi
  doc_type=$(cut -f2 <<<"$row"); doc_labels=$(cut -f3 <<<"$row")
  [ "$doc_type" = "$type" ] || fail "$name is a $type, docs/metrics.md says $doc_type"
  case "$name" in tollgate_"$service"_*) ;; *) fail "$name is exported by $service" ;; esac
  IFS=',' read -r -a seen <<<"$labels"
  for l in "${seen[@]}"; do
    [ -n "$l" ] || continue
    [ "$l" = le ] && [ "$type" = histogram ] && continue
    case ",$doc_labels," in *",$l,"*) ;; *) fail "$name has label $l, not listed in docs/metrics.md" ;; esac
  done
done <"$work/exported.tsv"

# Documented but not exported.
allow=",${TOLLGATE_METRICS_ALLOW_ABSENT:-},"
while IFS=$'\t' read -r name _ _; do
  if ! cut -f2 "$work/exported.tsv" | grep -qx "$name"; then
    case "$allow" in *",$name,"*) echo "note: $name not exported (allowed absent)"; continue ;; esac
    fail "docs/metrics.md lists $name, but no service exports it"
  fi
done <"$work/doc.tsv"

documented=$(wc -l <"$work/doc.tsv")
exported=$(cut -f2 "$work/exported.tsv" | sort -u | wc -l)
if [ "$failures" -ne 0 ]; then
  echo "check_metrics_doc: $failures problem(s); $exported tollgate_* families exported, $documented documented"
  exit 1
fi
echo "check_metrics_doc: OK, $exported tollgate_* families exported and documented"
