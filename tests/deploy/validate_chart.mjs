// Validates one rendering of the Tollgate chart (the output directory of helmrender).
//
//   node validate_chart.mjs <render dir> <repo root>
//
// Checks, each failure printed as "FAIL <case>: <object>: <what>" (exit 1 if any):
//   1. every document is an object with apiVersion, kind, metadata.name (DNS-1123), a known kind;
//      no two objects share kind/namespace/name;
//   2. Kubernetes schema: each object validated by kubernetes-models (JSON schemas generated from
//      the Kubernetes 1.3x OpenAPI; ServiceMonitor from prometheus-operator's CRD), and a
//      TypeScript file is written (<render dir>/objects.ts) that the caller type-checks with tsc:
//      object literals typed with the same models reject unknown fields at any depth;
//   3. Tollgate rules: containers have image (pinned tag), resources (requests + memory limit),
//      securityContext runAsNonRoot/readOnlyRootFilesystem/no privilege escalation/drop ALL;
//      long-running containers have liveness + readiness probes (gateway: HTTP /healthz and
//      /readyz; router, ledger: gRPC on their --listen port, TCP there with tls.enabled because
//      kubelet gRPC probes cannot do TLS); no service-account token mounted;
//      every flag passed to a Tollgate binary is documented in docs/configuration.md; Services,
//      PDBs, HPAs and NetworkPolicies select existing pods and ports; Secrets and ConfigMaps
//      referenced exist in the render or are declared existing* values; the catalog ConfigMap is
//      mounted as a directory (no subPath) and not checksummed; the migration Job is a
//      pre-upgrade hook; NetworkPolicies keep admin ports closed to gateways (except, with
//      tenancy.enabled, one gateways-only rule on the ledger's admin port); provider keys reach
//      the gateway only; dashboards ConfigMap carries the sidecar label and the dashboard files;
//   4. control plane (tenancy.enabled): the ledger's --admin_tokens_file and the gateway's
//      --control_plane_token_file are read-only Secret mounts (mode at most 0440), the gateway's
//      --ledger_admin is the ledger Service's admin port, the tokens file is valid (hashes only,
//      roles, teams, no duplicates) and lists the SHA-256 of the gateway token the chart renders,
//      each pod mounts only its own control-plane Secret, NOTES show the tenancy commands;
//   5. gRPC TLS (tls.enabled): router and ledger get --tls_cert_file, --tls_key_file, --tls_ca_file
//      (and --tls_require_client_cert exactly when tls.requireClientCert), the gateway the same
//      three files (client certificate) and --tls_server_name exactly when tls.serverName; each
//      file comes from the component's Secret (tls.<component>.existingSecret, else
//      tls.existingSecret) under the configured key, mounted read-only with mode at most 0440;
//      NOTES' tollgatectl commands carry the TLS flags. Nothing else (migration Job, mock
//      provider) gets TLS flags or the TLS Secret, and with TLS off no container does.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";

const [renderDir, repoRoot] = process.argv.slice(2);
if (!renderDir || !repoRoot) {
  console.error("usage: node validate_chart.mjs <render dir> <repo root>");
  process.exit(2);
}
const caseName = path.basename(renderDir);
const objects = JSON.parse(fs.readFileSync(path.join(renderDir, "objects.json"), "utf8"));
const values = JSON.parse(fs.readFileSync(path.join(renderDir, "values.json"), "utf8"));
const notes = fs.readFileSync(path.join(renderDir, "NOTES.txt"), "utf8");
let failures = 0;
const fail = (where, msg) => {
  failures++;
  console.log(`FAIL ${caseName}: ${where}: ${msg}`);
};
const id = (o) => `${o.kind}/${o.metadata?.name ?? "?"}`;

// Flags that the chart passes but that no binary has yet (reported by the test as pending work).
const PENDING_FLAGS = {};

// ---- 1. shape ---------------------------------------------------------------------------------
const KNOWN = {
  "v1/ServiceAccount": "v1/ServiceAccount",
  "v1/Secret": "v1/Secret",
  "v1/ConfigMap": "v1/ConfigMap",
  "v1/Service": "v1/Service",
  "apps/v1/Deployment": "apps/v1/Deployment",
  "apps/v1/StatefulSet": "apps/v1/StatefulSet",
  "batch/v1/Job": "batch/v1/Job",
  "policy/v1/PodDisruptionBudget": "policy/v1/PodDisruptionBudget",
  "autoscaling/v2/HorizontalPodAutoscaler": "autoscaling/v2/HorizontalPodAutoscaler",
  "networking.k8s.io/v1/NetworkPolicy": "networking.k8s.io/v1/NetworkPolicy",
  "monitoring.coreos.com/v1/ServiceMonitor":
    "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
};
const modulePath = (o) => {
  const m = KNOWN[`${o.apiVersion}/${o.kind}`];
  return m && (m.startsWith("@") ? m : `kubernetes-models/${m}`);
};
const dns1123 = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const seen = new Set();
for (const { source, object: o } of objects) {
  const where = `${source} ${id(o)}`;
  if (!o.apiVersion || !o.kind || !o.metadata?.name) {
    fail(where, "missing apiVersion, kind or metadata.name");
    continue;
  }
  if (!modulePath(o)) fail(where, `unexpected kind ${o.apiVersion}/${o.kind}`);
  const name = o.metadata.name;
  if (!dns1123.test(name) || name.length > 253) fail(where, `invalid name ${name}`);
  if (o.kind === "Service" && (name.length > 63 || name.includes("."))) {
    fail(where, "Service names must be DNS-1035 labels (<= 63 characters)");
  }
  if (!o.metadata.namespace) fail(where, "metadata.namespace is not set");
  for (const [k, v] of Object.entries(o.metadata.labels ?? {})) {
    if (typeof v !== "string" || v.length > 63 || !/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(v)) {
      fail(where, `label ${k} has an invalid value ${JSON.stringify(v)}`);
    }
  }
  const key = `${o.kind}/${o.metadata.namespace}/${name}`;
  if (seen.has(key)) fail(where, "duplicate object");
  seen.add(key);
}

// ---- 2. Kubernetes schemas --------------------------------------------------------------------
const ts = [];
const imported = new Map();
for (const [i, { source, object: o }] of objects.entries()) {
  const mod = modulePath(o);
  if (!mod) continue;
  const exportName = o.kind;
  try {
    const Model = (await import(mod))[exportName];
    new Model(o).validate();
  } catch (e) {
    fail(`${source} ${id(o)}`, `Kubernetes schema: ${e.message}`);
  }
  const alias = `I${exportName}`;
  if (!imported.has(mod)) imported.set(mod, alias);
  ts.push(`// ${source}\nexport const o${i}: ${alias} = ${JSON.stringify(o, null, 2)};\n`);
}
fs.writeFileSync(
  path.join(renderDir, "objects.ts"),
  [...imported].map(([mod, alias]) => `import type { ${alias} } from "${mod}";`).join("\n") +
    "\n\n" + ts.join("\n"),
);

// ---- 3. Tollgate rules ------------------------------------------------------------------------
const byKind = (k) => objects.map((x) => x.object).filter((o) => o.kind === k);
const workloads = [...byKind("Deployment"), ...byKind("StatefulSet"), ...byKind("Job")];
const rendered = (kind, name) => objects.some((x) => x.object.kind === kind && x.object.metadata.name === name);
const existingNames = new Set(
  [
    values.gateway?.existingConfigSecret, values.providerKeys?.existingSecret,
    values.database?.existingSecret, values.postgresql?.auth?.existingSecret,
    values.router?.existingCatalogConfigMap,
    ...(values.tenancy?.enabled
      ? [values.tenancy.adminTokens?.existingSecret, values.tenancy.gatewayToken?.existingSecret] : []),
    ...(values.tls?.enabled
      ? [values.tls.existingSecret, values.tls.router?.existingSecret, values.tls.ledger?.existingSecret,
         values.tls.gateway?.existingSecret] : []),
  ].filter(Boolean),
);
const matches = (selector, labels) =>
  Object.entries(selector?.matchLabels ?? {}).every(([k, v]) => labels?.[k] === v) &&
  (selector?.matchExpressions ?? []).every((e) =>
    e.operator === "In" ? e.values.includes(labels?.[e.key]) :
    e.operator === "NotIn" ? !e.values.includes(labels?.[e.key]) :
    e.operator === "Exists" ? e.key in (labels ?? {}) : !(e.key in (labels ?? {})));

// Flags documented per binary in docs/configuration.md ("## `binary`" sections, "| `--flag` |"),
// and in sections shared by several binaries ("## gRPC TLS (`tollgate-gateway`, `tollgate-router`)").
const configDoc = fs.readFileSync(path.join(repoRoot, "docs/configuration.md"), "utf8");
const documented = {};
let current = [];
for (const line of configDoc.split("\n")) {
  if (line.startsWith("## ")) {
    const own = line.match(/^## `([^`]+)`/);
    const shared = line.match(/^## [^(`]*\(([^)]*)\)\s*$/);
    current = own ? [own[1]] : shared ? [...shared[1].matchAll(/`([^`]+)`/g)].map((m) => m[1]) : [];
    for (const b of current) documented[b] ??= new Set();
    continue;
  }
  const f = line.match(/^\| `--([a-z0-9_]+)`/);
  if (f) for (const b of current) documented[b].add(f[1]);
}
const BINARY = { gateway: "tollgate-gateway", router: "tollgate-router", ledger: "tollgate-ledger",
  migrate: "tollgate-ledger", "mock-provider": "tollgate-mock-provider" };
const pending = [];

for (const w of workloads) {
  const where = `${w.kind}/${w.metadata.name}`;
  const pod = w.spec.template;
  const podSpec = pod.spec;
  const component = pod.metadata?.labels?.["app.kubernetes.io/component"];
  const isTollgate = component !== "postgresql";
  if (w.kind !== "Job" && !matches(w.spec.selector, pod.metadata.labels)) {
    fail(where, "spec.selector does not match the pod template labels");
  }
  if (podSpec.automountServiceAccountToken !== false) fail(where, "service-account token is mounted");
  const podSec = podSpec.securityContext ?? {};
  for (const c of [...(podSpec.initContainers ?? []), ...podSpec.containers]) {
    const cw = `${where} container ${c.name}`;
    const sec = c.securityContext ?? {};
    if (!c.image || /:latest$/.test(c.image) || !/:[^/]+$/.test(c.image)) fail(cw, `image must be pinned: ${c.image}`);
    if (!c.resources?.requests?.cpu || !c.resources?.requests?.memory) fail(cw, "resources.requests cpu+memory missing");
    if (!c.resources?.limits?.memory) fail(cw, "resources.limits.memory missing");
    if ((sec.runAsNonRoot ?? podSec.runAsNonRoot) !== true) fail(cw, "runAsNonRoot is not true");
    if (sec.readOnlyRootFilesystem !== true) fail(cw, "readOnlyRootFilesystem is not true");
    if (sec.allowPrivilegeEscalation !== false) fail(cw, "allowPrivilegeEscalation is not false");
    if (sec.privileged === true) fail(cw, "privileged");
    if (!(sec.capabilities?.drop ?? []).includes("ALL")) fail(cw, "capabilities.drop does not include ALL");
    if (w.kind !== "Job" && (!c.livenessProbe || !c.readinessProbe)) fail(cw, "liveness/readiness probe missing");
    for (const m of c.volumeMounts ?? []) {
      if (!(podSpec.volumes ?? []).some((v) => v.name === m.name) &&
          !(w.spec.volumeClaimTemplates ?? []).some((v) => v.metadata.name === m.name)) {
        fail(cw, `volumeMount ${m.name} has no volume`);
      }
    }
    // Flags.
    const binary = BINARY[c.name];
    if (isTollgate && binary) {
      if (!c.image.includes(binary.replace("tollgate-ledger", "tollgate-ledger"))) {
        fail(cw, `image ${c.image} is not the ${binary} image`);
      }
      for (const arg of c.args ?? []) {
        const m = String(arg).match(/^--([a-z0-9_]+)(=|$)/);
        if (!m) { fail(cw, `argument ${arg} is not --flag=value`); continue; }
        if (documented[binary]?.has(m[1])) continue;
        if (PENDING_FLAGS[binary]?.has(m[1])) { pending.push(`${binary} --${m[1]}`); continue; }
        fail(cw, `--${m[1]} is not a documented ${binary} flag (docs/configuration.md)`);
      }
      if (/e\+\d/.test((c.args ?? []).join(" "))) fail(cw, "a flag value is in exponent notation");
    }
    const listen = (c.args ?? []).map((a) => a.match(/^--listen=.*:(\d+)$/)).find(Boolean)?.[1];
    if (c.name === "gateway") {
      const http = (p) => p?.httpGet && p.httpGet.port === "http";
      if (!http(c.livenessProbe) || c.livenessProbe.httpGet.path !== "/healthz") fail(cw, "liveness must be GET /healthz");
      if (!http(c.readinessProbe) || c.readinessProbe.httpGet.path !== "/readyz") fail(cw, "readiness must be GET /readyz");
      if (String(c.ports.find((p) => p.name === "http")?.containerPort) !== listen) fail(cw, "http port != --listen port");
      if (!(c.volumeMounts ?? []).some((m) => m.mountPath === "/var/lib/tollgate/spool")) fail(cw, "spool volume missing");
      if (!(c.args ?? []).includes("--spool_dir=/var/lib/tollgate/spool")) fail(cw, "--spool_dir not on the spool volume");
    }
    if (c.name === "router" || c.name === "ledger") {
      for (const p of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
        if (!values.tls?.enabled) {
          if (!p?.grpc || String(p.grpc.port) !== listen) fail(cw, "probes must be gRPC health on the --listen port");
        } else if (p?.grpc) {
          fail(cw, "tls.enabled: a kubelet gRPC probe cannot pass the TLS handshake (use TCP on the --listen port)");
        } else if (!p?.tcpSocket || String(p.tcpSocket.port) !== listen) {
          fail(cw, "tls.enabled: probes must be TCP on the --listen port");
        }
      }
      if (c.env?.some((e) => /API_KEY/.test(e.name)) || c.envFrom?.length) {
        if (c.name === "router") fail(cw, "provider keys must reach the gateway only");
      }
    }
    if (c.name === "router") {
      const mount = (c.volumeMounts ?? []).find((m) => m.name === "catalog");
      if (!mount || mount.subPath) fail(cw, "catalog must be mounted as a directory (no subPath) to be hot-reloaded");
      if (!(c.args ?? []).includes(`--catalog=${mount?.mountPath}/catalog.yaml`)) fail(cw, "--catalog does not point into the catalog mount");
      if (Object.keys(pod.metadata.annotations ?? {}).some((k) => k.startsWith("checksum/"))) {
        fail(where, "a checksum annotation would restart routers on catalog changes");
      }
    }
    if (c.name === "ledger" || c.name === "migrate") {
      const url = (c.env ?? []).find((e) => e.name === "TOLLGATE_DATABASE_URL");
      if (!url?.valueFrom?.secretKeyRef) fail(cw, "TOLLGATE_DATABASE_URL must come from a Secret");
    }
    // References to Secrets / ConfigMaps.
    const refs = [];
    for (const e of c.env ?? []) {
      if (e.valueFrom?.secretKeyRef) refs.push(["Secret", e.valueFrom.secretKeyRef.name, e.valueFrom.secretKeyRef.key]);
      if (e.valueFrom?.configMapKeyRef) refs.push(["ConfigMap", e.valueFrom.configMapKeyRef.name, e.valueFrom.configMapKeyRef.key]);
    }
    for (const e of c.envFrom ?? []) {
      if (e.secretRef) refs.push(["Secret", e.secretRef.name]);
      if (e.configMapRef) refs.push(["ConfigMap", e.configMapRef.name]);
    }
    for (const v of podSpec.volumes ?? []) {
      if (v.secret) refs.push(["Secret", v.secret.secretName, v.secret.items?.[0]?.key]);
      if (v.configMap) refs.push(["ConfigMap", v.configMap.name]);
    }
    for (const [kind, name, key] of refs) {
      const obj = objects.map((x) => x.object).find((o) => o.kind === kind && o.metadata.name === name);
      if (!obj) {
        if (!existingNames.has(name)) fail(cw, `${kind} ${name} is neither rendered nor a declared existing* value`);
        continue;
      }
      const data = { ...(obj.data ?? {}), ...(obj.stringData ?? {}) };
      if (key && !(key in data)) fail(cw, `${kind} ${name} has no key ${key}`);
      const hook = obj.metadata.annotations?.["helm.sh/hook"];
      const myHook = w.metadata.annotations?.["helm.sh/hook"] ?? "";
      if (myHook.includes("pre-install") && !hook && !existingNames.has(name)) {
        fail(cw, `pre-install hook uses ${kind} ${name}, which does not exist before the install`);
      }
    }
  }
  // Pre-install hooks run before the chart's ServiceAccount exists.
  if ((w.metadata.annotations?.["helm.sh/hook"] ?? "").includes("pre-install") &&
      rendered("ServiceAccount", podSpec.serviceAccountName)) {
    fail(where, `pre-install hook uses ServiceAccount ${podSpec.serviceAccountName}, created only after it`);
  }
}

// Migration Job.
if (values.migrations?.enabled) {
  const job = byKind("Job").find((j) => j.spec.template.metadata.labels["app.kubernetes.io/component"] === "migrations");
  const hook = job?.metadata.annotations?.["helm.sh/hook"] ?? "";
  if (!job) fail("migrations", "migrations.enabled but no migration Job");
  else {
    if (!hook.includes("pre-upgrade")) fail(id(job), "migration Job is not a pre-upgrade hook");
    if (!hook.includes(values.postgresql.enabled ? "post-install" : "pre-install")) {
      fail(id(job), `migration Job hook ${hook} does not fit postgresql.enabled=${values.postgresql.enabled}`);
    }
    if (!job.spec.template.spec.containers[0].image.includes("tollgate-ledger")) fail(id(job), "not the ledger image");
  }
}

// Services select pods and target named ports that exist.
for (const s of byKind("Service")) {
  const pods = workloads.filter((w) => matches({ matchLabels: s.spec.selector }, w.spec.template.metadata.labels));
  if (pods.length === 0) { fail(id(s), "selects no pods"); continue; }
  for (const p of s.spec.ports) {
    const ok = pods.some((w) => w.spec.template.spec.containers.some((c) =>
      (c.ports ?? []).some((cp) => cp.name === p.targetPort || cp.containerPort === p.targetPort)));
    if (!ok) fail(id(s), `targetPort ${p.targetPort} is not a container port`);
  }
}
for (const p of byKind("PodDisruptionBudget")) {
  if (!workloads.some((w) => w.kind !== "Job" && matches(p.spec.selector, w.spec.template.metadata.labels))) fail(id(p), "selects no pods");
}
for (const h of byKind("HorizontalPodAutoscaler")) {
  const t = h.spec.scaleTargetRef;
  const target = byKind(t.kind).find((d) => d.metadata.name === t.name);
  if (!target) fail(id(h), `scaleTargetRef ${t.kind}/${t.name} is not rendered`);
  else if ("replicas" in target.spec) fail(id(h), "the autoscaled Deployment must not set replicas (upgrades would reset them)");
  if (h.spec.minReplicas > h.spec.maxReplicas) fail(id(h), "minReplicas > maxReplicas");
}

// NetworkPolicies: data plane vs control plane.
if (values.networkPolicy?.enabled) {
  const nps = byKind("NetworkPolicy");
  if (!nps.some((n) => Object.keys(n.spec.podSelector.matchLabels ?? {}).length === 2 && !n.spec.ingress)) {
    fail("NetworkPolicy", "no default-deny policy for the release");
  }
  for (const component of ["router", "ledger"]) {
    const svc = values[component].service;
    const np = nps.find((n) => n.spec.podSelector.matchLabels?.["app.kubernetes.io/component"] === component);
    if (!np) { fail("NetworkPolicy", `none for ${component}`); continue; }
    const isGateway = (peer) => peer.podSelector?.matchLabels?.["app.kubernetes.io/component"] === "gateway";
    // The one exception to the split: with tenancy, gateways watch keys and take budget leases
    // on the ledger's admin port, in a rule of their own (gateways only, admin port only).
    const tenancyException = (rule) => component === "ledger" && values.tenancy?.enabled &&
      rule.from?.length > 0 && rule.from.every(isGateway) &&
      rule.ports.every((p) => p.port === svc.adminPort);
    if (component === "ledger" && values.tenancy?.enabled && !np.spec.ingress.some(tenancyException)) {
      fail(id(np), "tenancy.enabled but gateways cannot reach the ledger's admin port (virtual keys, leases)");
    }
    for (const rule of np.spec.ingress) {
      const ports = rule.ports.map((p) => p.port);
      if (ports.includes(svc.adminPort) && (!rule.from || rule.from.some(isGateway)) && !tenancyException(rule)) {
        fail(id(np), "admin (control-plane) port open to gateways or to everyone");
      }
      if (ports.includes(svc.port) && (!rule.from || !rule.from.every(isGateway))) {
        fail(id(np), "data-plane port open to pods other than gateways");
      }
    }
    for (const pod of workloads.filter((w) => matches(np.spec.podSelector, w.spec.template.metadata.labels))) {
      for (const rule of np.spec.ingress) {
        for (const p of rule.ports) {
          if (!pod.spec.template.spec.containers.some((c) => (c.ports ?? []).some((cp) => cp.containerPort === p.port || cp.name === p.port))) {
            fail(id(np), `allows port ${p.port}, which ${pod.metadata.name} does not expose`);
          }
        }
      }
    }
  }
  for (const n of nps) {
    if (!workloads.some((w) => matches(n.spec.podSelector, w.spec.template.metadata.labels))) fail(id(n), "selects no pods");
  }
  if (values.networkPolicy.egress?.enabled) {
    const gwNp = nps.find((n) => n.spec.podSelector.matchLabels?.["app.kubernetes.io/component"] === "gateway");
    const toLedger = (gwNp?.spec.egress ?? []).filter((r) => (r.to ?? []).some((p) =>
      p.podSelector?.matchLabels?.["app.kubernetes.io/component"] === "ledger"));
    const reaches = (port) => toLedger.some((r) => r.ports.some((p) => p.port === port));
    if (!reaches(values.ledger.service.port)) fail("NetworkPolicy gateway", "egress to the ledger's data port missing");
    if (values.tenancy?.enabled !== reaches(values.ledger.service.adminPort)) {
      fail("NetworkPolicy gateway", `egress to the ledger's admin port must be allowed exactly when tenancy.enabled (${values.tenancy?.enabled})`);
    }
  }
}

// Secrets: provider keys only in Secrets, never in ConfigMaps.
for (const cm of byKind("ConfigMap")) {
  for (const [k, v] of Object.entries(cm.data ?? {})) {
    for (const secret of Object.values(values.providerKeys?.values ?? {})) {
      if (v.includes(secret)) fail(id(cm), `${k} contains a provider key`);
    }
    for (const key of values.gateway?.keys ?? []) {
      if (v.includes(key.key)) fail(id(cm), `${k} contains a client key`);
    }
  }
}

// Catalog ConfigMap: valid YAML with consistent references.
const catalogCm = byKind("ConfigMap").find((c) => c.data?.["catalog.yaml"] !== undefined);
if (!values.router.existingCatalogConfigMap) {
  if (!catalogCm) fail("catalog", "no catalog ConfigMap");
  else {
    let cat;
    try { cat = YAML.parse(catalogCm.data["catalog.yaml"]); } catch (e) { fail(id(catalogCm), `catalog.yaml: ${e.message}`); }
    if (cat) {
      const provs = new Set((cat.providers ?? []).map((p) => p.name));
      const deps = new Set((cat.deployments ?? []).map((d) => d.id));
      if (!provs.size || !deps.size || !(cat.models ?? []).length) fail(id(catalogCm), "catalog needs providers, deployments and models");
      for (const d of cat.deployments ?? []) if (!provs.has(d.provider)) fail(id(catalogCm), `deployment ${d.id}: unknown provider ${d.provider}`);
      for (const m of cat.models ?? []) for (const d of m.deployments ?? []) if (!deps.has(d)) fail(id(catalogCm), `model ${m.name}: unknown deployment ${d}`);
      for (const p of cat.providers ?? []) {
        const host = new URL(p.base_url).hostname;
        if (!host.includes(".") && !rendered("Service", host)) fail(id(catalogCm), `provider ${p.name}: no Service ${host}`);
        if (p.api_key_env && !(p.api_key_env in (values.providerKeys?.values ?? {})) && !values.providerKeys?.existingSecret) {
          fail(id(catalogCm), `provider ${p.name}: ${p.api_key_env} is not in providerKeys`);
        }
      }
    }
  }
}

// Gateway config Secret: the YAML the gateway reads.
const gwSecret = byKind("Secret").find((s) => s.stringData?.["gateway.yaml"] !== undefined);
if (!values.gateway.existingConfigSecret) {
  if (!gwSecret) fail("gateway", "no gateway config Secret");
  else {
    const cfg = YAML.parse(gwSecret.stringData["gateway.yaml"]);
    // With tenancy the gateway may start with no static key (virtual keys only).
    if (!Array.isArray(cfg?.keys) || (cfg.keys.length === 0 && !values.tenancy?.enabled)) {
      fail(id(gwSecret), "gateway.yaml has no keys");
    }
    for (const k of cfg?.keys ?? []) if (!k.key || !k.id || !k.team) fail(id(gwSecret), "every key needs key, id and team");
  }
}

// Dashboards ConfigMap.
if (values.dashboards?.enabled) {
  const cm = byKind("ConfigMap").find((c) => c.metadata.labels?.[values.dashboards.label] === values.dashboards.labelValue);
  if (!cm) fail("dashboards", `no ConfigMap labelled ${values.dashboards.label}=${values.dashboards.labelValue}`);
  else {
    for (const [key, file] of [["tollgate-spend.json", "spend.json"], ["tollgate-operations.json", "operations.json"]]) {
      const want = fs.readFileSync(path.join(repoRoot, "deploy/k8s/tollgate/dashboards", file), "utf8");
      if (!cm.data?.[key]) fail(id(cm), `missing ${key}`);
      else if (JSON.stringify(JSON.parse(cm.data[key])) !== JSON.stringify(JSON.parse(want))) fail(id(cm), `${key} differs from dashboards/${file}`);
    }
  }
}

// ServiceMonitor: scrapes the three services' metrics ports.
if (values.metrics?.serviceMonitor?.enabled) {
  const sm = byKind("ServiceMonitor")[0];
  if (!sm) fail("metrics", "serviceMonitor.enabled but no ServiceMonitor");
  else {
    for (const comp of ["gateway", "router", "ledger"]) {
      const svc = byKind("Service").find((s) => s.metadata.labels?.["app.kubernetes.io/component"] === comp);
      if (!svc || !matches(sm.spec.selector, svc.metadata.labels)) { fail(id(sm), `does not select the ${comp} Service`); continue; }
      if (!sm.spec.endpoints.some((e) => svc.spec.ports.some((p) => p.name === e.port) && e.path === "/metrics")) {
        fail(id(sm), `no /metrics endpoint on a port of the ${comp} Service`);
      }
    }
  }
}

// ---- 4. control plane ---------------------------------------------------------------------------
const container = (component) => {
  const w = workloads.find((x) => x.kind !== "Job" && x.spec.template.metadata.labels["app.kubernetes.io/component"] === component);
  return w && { w, c: w.spec.template.spec.containers[0] };
};
const flagOf = (c, name) => (c.args ?? []).map((a) => String(a).match(new RegExp(`^--${name}=(.*)$`))).find(Boolean)?.[1];
// The Secret (name, key) mounted read-only at `file`, or a failure.
const secretFile = (where, { w, c }, file) => {
  const mount = (c.volumeMounts ?? []).find((m) => file.startsWith(`${m.mountPath}/`));
  const vol = mount && (w.spec.template.spec.volumes ?? []).find((v) => v.name === mount.name);
  if (!vol?.secret) { fail(where, `${file} is not in a mounted Secret`); return null; }
  if (mount.readOnly !== true) fail(where, `${mount.mountPath} is not mounted readOnly`);
  const mode = vol.secret.defaultMode ?? 0o644;
  if (mode & ~0o440) fail(where, `Secret volume ${vol.name} has mode 0${mode.toString(8)}: at most 0440 (owner and fsGroup read)`);
  const rel = file.slice(mount.mountPath.length + 1);
  const item = (vol.secret.items ?? []).find((i) => i.path === rel);
  if (!item && vol.secret.items) { fail(where, `${file}: no item with path ${rel}`); return null; }
  return { name: vol.secret.secretName, key: item ? item.key : rel };
};
const secretValue = (name, key) => {
  const s = byKind("Secret").find((o) => o.metadata.name === name);
  if (!s) return undefined;
  if (s.stringData?.[key] !== undefined) return s.stringData[key];
  return s.data?.[key] !== undefined ? Buffer.from(s.data[key], "base64").toString() : undefined;
};
const mountedSecrets = (w) => new Set((w.spec.template.spec.volumes ?? []).filter((v) => v.secret).map((v) => v.secret.secretName));
const gw = container("gateway");
const ledger = container("ledger");
if (values.tenancy?.enabled && gw && ledger) {
  const gwWhere = `${gw.w.kind}/${gw.w.metadata.name}`;
  const ledgerWhere = `${ledger.w.kind}/${ledger.w.metadata.name}`;
  // Gateway -> ledger admin Service port.
  const addr = flagOf(gw.c, "ledger_admin");
  const [host, port] = (addr ?? "").split(":");
  const svc = byKind("Service").find((s) => s.metadata.name === host);
  const svcPort = svc?.spec.ports.find((p) => String(p.port) === port);
  const adminListen = flagOf(ledger.c, "admin_listen")?.split(":").pop();
  if (!addr) fail(gwWhere, "tenancy.enabled but no --ledger_admin");
  else if (!svc || !matches({ matchLabels: svc.spec.selector }, ledger.w.spec.template.metadata.labels)) {
    fail(gwWhere, `--ledger_admin=${addr}: no Service ${host} selecting the ledger pods`);
  } else if (!svcPort || String(ledger.c.ports.find((p) => p.name === svcPort.targetPort)?.containerPort ?? svcPort.targetPort) !== adminListen) {
    fail(gwWhere, `--ledger_admin=${addr} is not the ledger's admin port (--admin_listen ...:${adminListen})`);
  }
  // Token files.
  const gwFile = flagOf(gw.c, "control_plane_token_file");
  const tokensFile = flagOf(ledger.c, "admin_tokens_file");
  const gwSecret = gwFile ? secretFile(gwWhere, gw, gwFile) : (fail(gwWhere, "no --control_plane_token_file"), null);
  const tokSecret = tokensFile ? secretFile(ledgerWhere, ledger, tokensFile) : (fail(ledgerWhere, "no --admin_tokens_file"), null);
  // Each pod mounts only its own control-plane Secret; the trial admin token is mounted nowhere.
  if (tokSecret && mountedSecrets(gw.w).has(tokSecret.name)) fail(gwWhere, `mounts the ledger's tokens Secret ${tokSecret.name}`);
  if (gwSecret && mountedSecrets(ledger.w).has(gwSecret.name)) fail(ledgerWhere, `mounts the gateway token Secret ${gwSecret.name}`);
  const bootstrap = byKind("Secret").find((s) => s.metadata.name.endsWith("-bootstrap-admin"));
  for (const w of workloads) {
    if (bootstrap && mountedSecrets(w).has(bootstrap.metadata.name)) fail(id(w), "mounts the bootstrap admin token");
  }
  const gwToken = gwSecret && secretValue(gwSecret.name, gwSecret.key);
  const text = tokSecret && secretValue(tokSecret.name, tokSecret.key);
  if (tokSecret && text === undefined && !existingNames.has(tokSecret.name)) fail(ledgerWhere, `no tokens file in Secret ${tokSecret.name}`);
  if (text !== undefined) {
    // The ledger's rules (services/ledger/tenancy_auth.cc), checked on the rendered file.
    let file;
    try { file = YAML.parse(text); } catch (e) { fail(id(byKind("Secret").find((s) => s.metadata.name === tokSecret.name)), `tokens file: ${e.message}`); }
    const where = `Secret/${tokSecret.name}`;
    const entries = Array.isArray(file?.tokens) ? file.tokens : [];
    if (!entries.length || Object.keys(file ?? {}).some((k) => k !== "tokens")) fail(where, "tokens file must be {tokens: [...]} with at least one token");
    const names = new Set(), hashes = new Set();
    for (const [i, e] of entries.entries()) {
      const at = `${where} tokens[${i}]`;
      if (Object.keys(e).some((k) => !["name", "sha256", "role", "team"].includes(k))) fail(at, "unknown field");
      if (!/^[0-9a-fA-F]{64}$/.test(e.sha256 ?? "")) fail(at, "sha256 is not 64 hex digits");
      if (!["admin", "team-admin", "viewer", "gateway"].includes(e.role)) fail(at, `bad role ${e.role}`);
      if (["team-admin", "viewer"].includes(e.role) !== Boolean(e.team)) fail(at, `role ${e.role} ${e.team ? "takes no" : "needs a"} team`);
      if (names.has(e.name)) fail(at, `duplicate name ${e.name}`);
      if (hashes.has(String(e.sha256).toLowerCase())) fail(at, "duplicate sha256");
      names.add(e.name); hashes.add(String(e.sha256).toLowerCase());
    }
    if (!entries.some((e) => e.role === "gateway")) fail(where, "no token with role gateway: gateways could not watch keys");
    if (gwToken !== undefined) {
      const want = crypto.createHash("sha256").update(gwToken.trim()).digest("hex");
      if (!entries.some((e) => e.role === "gateway" && String(e.sha256).toLowerCase() === want)) {
        fail(where, `the gateway token's SHA-256 (Secret ${gwSecret.name}) is not listed with role gateway`);
      }
    }
    // Plaintext tokens never appear in the tokens file.
    for (const s of byKind("Secret")) {
      if (s.metadata.name === tokSecret.name) continue;
      for (const [k, v] of Object.entries({ ...(s.stringData ?? {}) })) {
        if (/token/.test(k) && v.length >= 16 && text.includes(v)) fail(where, `contains the plaintext of Secret ${s.metadata.name}`);
      }
    }
  }
  if (gwSecret && gwToken === undefined && !existingNames.has(gwSecret.name)) fail(gwWhere, `no token in Secret ${gwSecret.name}`);
  for (const cmd of ["teams create", "keys create", "budgets set", "limits set", "--token"]) {
    if (!notes.includes(cmd)) fail("NOTES.txt", `tenancy.enabled but no "${cmd}"`);
  }
} else if (gw && ledger) {
  if (flagOf(gw.c, "ledger_admin") !== undefined) fail(id(gw.w), "--ledger_admin without tenancy.enabled");
  if (flagOf(ledger.c, "admin_tokens_file") !== undefined) fail(id(ledger.w), "--admin_tokens_file without tenancy.enabled");
}

// ---- 5. gRPC TLS --------------------------------------------------------------------------------
const tls = values.tls ?? {};
const GRPC_COMPONENTS = { router: true, ledger: true, gateway: false };  // component -> is a server
if (tls.enabled) {
  const keys = tls.secretKeys ?? {};
  for (const [component, server] of Object.entries(GRPC_COMPONENTS)) {
    const x = container(component);
    if (!x) { fail("tls", `tls.enabled but no ${component}`); continue; }
    const where = `${x.w.kind}/${x.w.metadata.name}`;
    const secret = tls[component]?.existingSecret || tls.existingSecret;
    for (const [flag, key] of [["tls_cert_file", keys.cert], ["tls_key_file", keys.key], ["tls_ca_file", keys.ca]]) {
      const file = flagOf(x.c, flag);
      if (!file) { fail(where, `tls.enabled but no --${flag}`); continue; }
      const s = secretFile(where, x, file);
      if (s && s.name !== secret) fail(where, `--${flag} comes from Secret ${s.name}, not ${secret}`);
      else if (s && s.key !== key) fail(where, `--${flag} is key ${s.key} of Secret ${s.name}, not tls.secretKeys (${key})`);
    }
    const require = flagOf(x.c, "tls_require_client_cert");
    const serverName = flagOf(x.c, "tls_server_name");
    if (server) {
      if ((require === "true") !== Boolean(tls.requireClientCert) || (require !== undefined && require !== "true")) {
        fail(where, `--tls_require_client_cert=${require} does not match tls.requireClientCert=${tls.requireClientCert}`);
      }
      if (serverName !== undefined) fail(where, "--tls_server_name on a server (it dials no gRPC service)");
    } else {
      if (require !== undefined) fail(where, "--tls_require_client_cert on a client");
      if ((serverName ?? "") !== (tls.serverName ?? "")) {
        fail(where, `--tls_server_name=${serverName ?? ""} does not match tls.serverName=${tls.serverName ?? ""}`);
      }
    }
  }
  // tollgatectl in NOTES dials 127.0.0.1: it needs the CA, a client certificate and the name.
  const ctl = notes.split("\n").filter((l) => /tollgatectl --/.test(l));
  if (!ctl.length) fail("NOTES.txt", "no tollgatectl command");
  for (const line of ctl) {
    for (const f of ["--tls_ca_file=", "--tls_cert_file=", "--tls_key_file=", "--tls_server_name="]) {
      if (!line.includes(f)) fail("NOTES.txt", `tls.enabled but a tollgatectl command has no ${f}: ${line.trim()}`);
    }
  }
} else if (/--tls_/.test(notes)) {
  fail("NOTES.txt", "TLS flags with tls.enabled=false");
}
// Only the gRPC components get TLS flags and the TLS Secret, and only with tls.enabled.
for (const w of workloads) {
  const component = w.spec.template.metadata.labels?.["app.kubernetes.io/component"];
  const allowed = tls.enabled && w.kind !== "Job" && component in GRPC_COMPONENTS;
  const why = tls.enabled ? "it does not speak gRPC" : "tls.enabled=false";
  for (const c of [...(w.spec.template.spec.initContainers ?? []), ...w.spec.template.spec.containers]) {
    const flags = (c.args ?? []).filter((a) => /^--tls_/.test(String(a)));
    if (!allowed && flags.length) fail(`${id(w)} container ${c.name}`, `TLS flags (${flags.join(" ")}) but ${why}`);
  }
  if (!allowed && (w.spec.template.spec.volumes ?? []).some((v) => v.name === "grpc-tls")) {
    fail(id(w), `mounts the gRPC TLS Secret but ${why}`);
  }
}

if (!/kubectl/.test(notes) || !/OPENAI_BASE_URL/.test(notes)) fail("NOTES.txt", "first commands missing");
if (notes.includes("<no value>") || /\{\{/.test(notes)) fail("NOTES.txt", "unrendered template text");

for (const p of new Set(pending)) console.log(`PENDING ${caseName}: flag ${p} is used by the chart but not implemented yet`);
console.log(`${caseName}: ${objects.length} objects checked, ${failures} failure(s)`);
process.exit(failures ? 1 : 0);
