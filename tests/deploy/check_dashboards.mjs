// Checks the Grafana dashboards of the chart.
//
//   node check_dashboards.mjs <repo root> <work dir> [--db <libpq url> --psql <psql path>]
//
// Static (always):
//   - both files are valid JSON dashboards with unique panel ids, a title and uid, datasources
//     through the ${datasource} variable, and template variables team, feature and model;
//   - operations: every PromQL expression (panels and variables) uses only metrics listed in
//     docs/metrics.md, with the right type (_bucket only on histograms) and only their documented
//     labels (plus `le` for buckets); the expressions, with Grafana variables substituted, are
//     written to <work dir>/operations.rules.yml for `promtool check rules` (syntax);
//   - spend: every SQL query (panels and variables) reads only tables of the ledger migrations
//     (services/ledger/migrations/*.sql) and only their columns.
// With --db (a database migrated with those migrations and seeded by seed_spend.sql): every SQL
// query runs, once with the variables at "All" and once filtered, and must return the rows in
// spend_expected.json. --dump-expected prints what the queries return in that file's format
// instead (to write expectations for a new panel; review the numbers by hand before committing).
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";

const args = process.argv.slice(2);
const [repoRoot, workDir] = args;
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const dbUrl = opt("--db");
const psql = opt("--psql") ?? "psql";
let failures = 0;
const fail = (where, msg) => { failures++; console.log(`FAIL dashboards: ${where}: ${msg}`); };
const dashDir = path.join(repoRoot, "deploy/k8s/tollgate/dashboards");

const load = (f) => {
  try { return JSON.parse(fs.readFileSync(path.join(dashDir, f), "utf8")); } catch (e) { fail(f, e.message); return null; }
};
const ops = load("operations.json");
const spend = load("spend.json");
if (!ops || !spend) process.exit(1);

const panelsOf = (d) => d.panels.flatMap((p) => (p.type === "row" ? p.panels ?? [] : [p]));
for (const [file, d, title, dsType] of [["operations.json", ops, "Tollgate — operations", "prometheus"],
                                        ["spend.json", spend, "Tollgate — spend", "grafana-postgresql-datasource"]]) {
  if (d.title !== title) fail(file, `title is ${d.title}, want ${title}`);
  if (!d.uid) fail(file, "no uid");
  const ids = d.panels.map((p) => p.id);
  if (new Set(ids).size !== ids.length) fail(file, "duplicate panel ids");
  const vars = Object.fromEntries(d.templating.list.map((v) => [v.name, v]));
  for (const v of ["datasource", "team", "feature", "model"]) if (!vars[v]) fail(file, `no template variable ${v}`);
  if (vars.datasource && (vars.datasource.type !== "datasource" || vars.datasource.query !== dsType)) fail(file, `datasource variable must select ${dsType}`);
  for (const p of panelsOf(d)) {
    if (!p.targets?.length) fail(`${file} "${p.title}"`, "no query");
    if (p.datasource?.uid !== "${datasource}" || p.datasource?.type !== dsType) fail(`${file} "${p.title}"`, "datasource is not ${datasource}");
    for (const t of p.targets ?? []) if (t.datasource?.uid !== "${datasource}") fail(`${file} "${p.title}"`, `target ${t.refId}: datasource is not \${datasource}`);
    const g = p.gridPos;
    if (!g || g.x < 0 || g.x + g.w > 24 || g.w <= 0 || g.h <= 0) fail(`${file} "${p.title}"`, "bad gridPos");
  }
}

// ---- operations: PromQL against docs/metrics.md -----------------------------------------------
const doc = fs.readFileSync(path.join(repoRoot, "docs/metrics.md"), "utf8");
const metrics = {};
for (const line of doc.split("\n")) {
  const m = line.match(/^\| `(tollgate_[a-z0-9_]+)` \| (\w+) \| ([^|]*) \|/);
  if (m) metrics[m[1]] = { type: m[2], labels: new Set([...m[3].matchAll(/`([a-z_]+)`/g)].map((x) => x[1])) };
}
if (Object.keys(metrics).length < 10) fail("docs/metrics.md", "metric table not found");

const PROM_VARS = { "$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h" };
const substituteProm = (e) => {
  let s = e;
  for (const [k, v] of Object.entries(PROM_VARS)) s = s.split(k).join(v);
  return s.replace(/\$\{?(team|feature|model)\}?/g, ".*");
};
const exprs = [];
for (const p of panelsOf(ops)) for (const t of p.targets) exprs.push([`"${p.title}" ${t.refId}`, t.expr]);
for (const v of ops.templating.list.filter((v) => v.type === "query")) {
  const q = typeof v.query === "string" ? v.query : v.query.query;
  const m = q.match(/^label_values\((tollgate_[a-z0-9_]+),\s*([a-z_]+)\)$/);
  if (!m) { fail(`variable ${v.name}`, `unsupported query ${q}`); continue; }
  if (!metrics[m[1]]) fail(`variable ${v.name}`, `${m[1]} is not in docs/metrics.md`);
  else if (!metrics[m[1]].labels.has(m[2])) fail(`variable ${v.name}`, `${m[1]} has no label ${m[2]}`);
  if (m[2] !== v.name) fail(`variable ${v.name}`, `reads label ${m[2]}`);
}
const FUNCS = new Set(["sum", "rate", "irate", "increase", "histogram_quantile", "max", "min", "avg", "count",
  "by", "without", "on", "ignoring", "group_left", "group_right", "clamp_min", "clamp_max", "topk", "bottomk",
  "and", "or", "unless", "time", "vector", "scalar", "abs", "delta", "deriv", "offset"]);
const rules = [];
for (const [where, raw] of exprs) {
  const e = substituteProm(raw);
  rules.push({ record: `tollgate:check:${rules.length}`, expr: e });
  const selectors = [...e.matchAll(/(tollgate_[a-z0-9_]+)(\{([^}]*)\})?/g)];
  if (!selectors.length) fail(where, "uses no tollgate_ metric");
  const used = [];
  for (const [, name, , matchers] of selectors) {
    let fam = name; let bucket = false;
    if (!metrics[fam]) {
      const base = name.replace(/_(bucket|sum|count)$/, "");
      if (metrics[base]?.type === "histogram") { fam = base; bucket = name.endsWith("_bucket"); }
    }
    const m = metrics[fam];
    if (!m) { fail(where, `${name} is not in docs/metrics.md`); continue; }
    if (m.type === "histogram" && fam === name) fail(where, `${name} is a histogram: query _bucket, _sum or _count`);
    used.push({ fam, bucket });
    for (const mm of (matchers ?? "").matchAll(/([a-z_]+)\s*(=~|!~|!=|=)/g)) {
      if (!m.labels.has(mm[1])) fail(where, `${fam} has no label ${mm[1]}`);
    }
  }
  // Grouping labels must exist on (one of) the metrics used.
  for (const g of e.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
    for (const l of g[1].split(",").map((x) => x.trim()).filter(Boolean)) {
      const ok = used.some(({ fam, bucket }) => metrics[fam].labels.has(l) || (l === "le" && bucket));
      if (!ok) fail(where, `groups by ${l}, which none of its metrics has`);
    }
  }
  for (const w of e.replace(/"[^"]*"/g, "").replace(/\{[^}]*\}/g, "").matchAll(/\b([a-z_][a-z0-9_]*)\s*\(/g)) {
    if (!FUNCS.has(w[1])) fail(where, `unknown function ${w[1]}`);
  }
}
fs.mkdirSync(workDir, { recursive: true });
fs.writeFileSync(path.join(workDir, "operations.rules.yml"),
  "groups:\n  - name: tollgate-operations-dashboard\n    rules:\n" +
  rules.map((r) => `      - record: ${r.record}\n        expr: ${JSON.stringify(r.expr)}\n`).join(""));

// ---- spend: SQL against the ledger migrations ------------------------------------------------
const migDir = path.join(repoRoot, "services/ledger/migrations");
const ddl = fs.readdirSync(migDir).filter((f) => f.endsWith(".sql")).sort()
  .map((f) => fs.readFileSync(path.join(migDir, f), "utf8")).join("\n");
const tables = {};
for (const m of ddl.matchAll(/CREATE TABLE (\w+) \(([\s\S]*?)\n\)(?:\s*PARTITION BY[^;]*)?;/g)) {
  const cols = new Set();
  for (const line of m[2].split("\n")) {
    const c = line.trim().match(/^([a-z_][a-z0-9_]*)\s+(text|timestamptz|bigint|integer|boolean|jsonb|numeric|bigserial)/);
    if (c) cols.add(c[1]);
  }
  tables[m[1]] = cols;
}
for (const m of ddl.matchAll(/ALTER TABLE (\w+) RENAME TO (\w+)/g)) tables[m[2]] = tables[m[2]] ?? tables[m[1]];
for (const m of ddl.matchAll(/CREATE TABLE (\w+) \(LIKE (\w+)/g)) tables[m[1]] = tables[m[2]] ?? tables[m[1]];
for (const t of ["usage_rollups_hourly", "usage_anomalies", "usage_events"]) if (!tables[t]?.size) fail("migrations", `table ${t} not parsed`);

const SQL_WORDS = new Set(`select distinct from where and or not in is null as group by order asc desc limit
  sum count min max avg coalesce nullif over partition case when then else end float8 bigint numeric text
  int integer true false interval extract epoch floor date_trunc hour between on join left using having
  filter round`.split(/\s+/));
const spendQueries = [];
for (const p of panelsOf(spend)) for (const t of p.targets) spendQueries.push([p.title, t.rawSql]);
for (const v of spend.templating.list.filter((v) => v.type === "query")) spendQueries.push([`variable ${v.name}`, v.query]);
for (const [where, sql] of spendQueries) {
  if (!sql) { fail(where, "no rawSql"); continue; }
  const bare = sql.replace(/'[^']*'/g, "''").replace(/\$__\w+\([^)]*\)/g, " ").replace(/\$\w+/g, " ")
    .replace(/"[^"]*"/g, " ");
  const from = [...bare.matchAll(/\bFROM\s+([a-z_][a-z0-9_]*)/gi)].map((m) => m[1]);
  if (!from.length) fail(where, "no FROM table");
  const cols = new Set();
  for (const t of from) {
    if (!tables[t]) fail(where, `table ${t} is not created by the ledger migrations`);
    else for (const c of tables[t]) cols.add(c);
  }
  const aliases = new Set([...bare.matchAll(/\bAS\s+([a-z_][a-z0-9_]*)/gi)].map((m) => m[1].toLowerCase()));
  for (const macro of sql.matchAll(/\$__(?:timeFilter|timeGroupAlias|timeGroup)\(\s*([a-z_]+)/g)) {
    if (!cols.has(macro[1])) fail(where, `time column ${macro[1]} does not exist`);
  }
  for (const w of bare.matchAll(/\b([a-z_][a-z0-9_]*)\b/gi)) {
    const word = w[1];
    const lw = word.toLowerCase();
    if (SQL_WORDS.has(lw) || aliases.has(lw) || from.includes(word) || cols.has(word)) continue;
    fail(where, `unknown identifier ${word} (not a column of ${from.join(", ")})`);
  }
}

// ---- spend: run the queries on a seeded database ---------------------------------------------
if (dbUrl) {
  const expected = JSON.parse(fs.readFileSync(path.join(repoRoot, "tests/deploy/spend_expected.json"), "utf8"));
  const from = expected.range.from; const to = expected.range.to;
  const render = (sql, filter) => {
    let s = sql.replace(/\$__timeFilter\((\w+)\)/g, `$1 BETWEEN '${from}' AND '${to}'`)
      .replace(/\$__timeGroupAlias\((\w+),\s*'1h'\)/g, `floor(extract(epoch from $1)/3600)*3600 AS "time"`)
      .replace(/\$budget_usd\b/g, String(expected.budget_usd));
    for (const v of ["team", "feature", "model"]) {
      const val = filter?.[v] !== undefined ? `'${filter[v]}'` : "'__all__'";
      s = s.replace(new RegExp(`\\$${v}\\b`, "g"), val);
    }
    if (/\$\w/.test(s)) throw new Error(`unsubstituted variable in ${s}`);
    return s;
  };
  const run = (sql) => execFileSync(psql, ["-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", "-d", dbUrl, "-c", sql],
    { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).split("\n").filter((l) => l.length);
  const norm = (rows) => rows.map((r) => r.split("|").map((c) => (/^-?\d+\.\d+(e[-+]\d+)?$/.test(c) ? Number(c).toFixed(9) : c)).join("|"));
  const dump = args.includes("--dump-expected");
  const dumped = {};
  for (const [title, sql] of spendQueries) {
    if (dump) {
      dumped[title] = {};
      for (const [mode, filter] of [["all", null], ["filtered", expected.filter]]) dumped[title][mode] = run(render(sql, filter));
      continue;
    }
    const want = expected.queries[title];
    if (!want) { fail(title, "no expectation in spend_expected.json"); continue; }
    for (const [mode, filter] of [["all", null], ["filtered", expected.filter]]) {
      let got;
      try { got = norm(run(render(sql, filter))); } catch (e) { fail(`${title} (${mode})`, `query failed: ${String(e.stderr || e.message).trim()}`); continue; }
      const exp = norm(want[mode]);
      if (JSON.stringify(got) !== JSON.stringify(exp)) {
        fail(`${title} (${mode})`, `rows differ\n    got:  ${JSON.stringify(got)}\n    want: ${JSON.stringify(exp)}`);
      }
    }
  }
  if (dump) { console.log(JSON.stringify({ ...expected, queries: dumped }, null, 2)); process.exit(0); }
  for (const t of Object.keys(expected.queries)) if (!spendQueries.some(([q]) => q === t)) fail(t, "expected rows for a query the dashboard does not have");
}

console.log(`dashboards: ${exprs.length} PromQL expressions, ${spendQueries.length} SQL queries${dbUrl ? " (run on PostgreSQL)" : ""}, ${failures} failure(s)`);
process.exit(failures ? 1 : 0);
