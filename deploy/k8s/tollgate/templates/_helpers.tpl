{{/*
Helpers. The chart uses only the template functions that tests/deploy/helmrender supports (Go
text/template, sprig v3, toYaml/toJson/fromYaml, include, tpl, required, lookup); see
docs/deploy.md "Chart tests".
*/}}

{{- define "tollgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tollgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tollgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. Call with (dict "ctx" $ "component" "gateway"). */}}
{{- define "tollgate.labels" -}}
helm.sh/chart: {{ include "tollgate.chart" .ctx }}
{{ include "tollgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: tollgate
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "tollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollgate.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Image reference. Call with (dict "ctx" $ "image" .Values.gateway.image). */}}
{{- define "tollgate.image" -}}
{{- $repo := .image.repository -}}
{{- with .ctx.Values.image.registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}{{ end -}}
{{- printf "%s:%s" $repo (default .ctx.Chart.AppVersion .ctx.Values.image.tag) -}}
{{- end -}}

{{- define "tollgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tollgate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* A flag value: Helm reads YAML numbers as float64; print integral ones without exponent. */}}
{{- define "tollgate.flagValue" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) -}}
{{- int64 . -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}

{{/* Extra flags from a name->value map, one container arg per line (sorted by name). */}}
{{- define "tollgate.extraFlags" -}}
{{- range $name, $value := . }}
- {{ printf "--%s=%s" $name (include "tollgate.flagValue" $value) | quote }}
{{- end }}
{{- end -}}

{{/* Secret holding the ledger's database URL, and its key. */}}
{{- define "tollgate.databaseSecretName" -}}
{{- if .Values.postgresql.enabled -}}
{{- default (printf "%s-postgresql" (include "tollgate.fullname" .)) .Values.postgresql.auth.existingSecret -}}
{{- else -}}
{{- default (printf "%s-database" (include "tollgate.fullname" .)) .Values.database.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "tollgate.databaseSecretKey" -}}
{{- if and (not .Values.postgresql.enabled) .Values.database.existingSecret -}}
{{- .Values.database.existingSecretKey -}}
{{- else -}}
database-url
{{- end -}}
{{- end -}}

{{- define "tollgate.gatewayConfigSecretName" -}}
{{- default (printf "%s-gateway-config" (include "tollgate.fullname" .)) .Values.gateway.existingConfigSecret -}}
{{- end -}}

{{- define "tollgate.providerSecretName" -}}
{{- default (printf "%s-provider-keys" (include "tollgate.fullname" .)) .Values.providerKeys.existingSecret -}}
{{- end -}}

{{- define "tollgate.catalogConfigMapName" -}}
{{- default (printf "%s-catalog" (include "tollgate.fullname" .)) .Values.router.existingCatalogConfigMap -}}
{{- end -}}

{{/* host:port of the in-cluster services. */}}
{{- define "tollgate.routerAddress" -}}
{{- printf "%s-router:%d" (include "tollgate.fullname" .) (int .Values.router.service.port) -}}
{{- end -}}
{{- define "tollgate.ledgerAddress" -}}
{{- printf "%s-ledger:%d" (include "tollgate.fullname" .) (int .Values.ledger.service.port) -}}
{{- end -}}

{{/* Pod-level fields shared by the Tollgate pods. Call with (dict "ctx" $ "c" .Values.gateway),
optionally with "sa" to override the ServiceAccount. */}}
{{- define "tollgate.podCommon" -}}
serviceAccountName: {{ default (include "tollgate.serviceAccountName" .ctx) .sa }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* prometheus.io annotations. Call with (dict "ctx" $ "port" 9101). */}}
{{- define "tollgate.scrapeAnnotations" -}}
{{- if .ctx.Values.metrics.podAnnotations -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | toString | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{/* Egress rule to the ledger's database (bundled pod or external CIDRs). */}}
{{- define "tollgate.databaseEgress" -}}
{{- if .Values.postgresql.enabled -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "tollgate.selectorLabels" (dict "ctx" . "component" "postgresql") | nindent 10 }}
  ports:
    - {port: 5432, protocol: TCP}
{{- else -}}
- to:
    {{- range .Values.networkPolicy.egress.databaseCIDRs }}
    - ipBlock: {cidr: {{ . | quote }}}
    {{- end }}
  ports:
    - {port: {{ int .Values.networkPolicy.egress.databasePort }}, protocol: TCP}
{{- end -}}
{{- end -}}

{{/* NetworkPolicy peer: the pods of this release with a component. (dict "ctx" $ "component" "x") */}}
{{- define "tollgate.componentPeer" -}}
- podSelector:
    matchLabels:
      {{- include "tollgate.selectorLabels" . | nindent 6 }}
{{- end }}
{{- define "tollgate.dnsEgress" -}}
- ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end }}

{{/* Pod annotations: scrape annotations + the component's podAnnotations (may be empty).
Call with (dict "ctx" $ "c" .Values.router "port" .Values.router.service.metricsPort). */}}
{{- define "tollgate.podAnnotations" -}}
{{- include "tollgate.scrapeAnnotations" (dict "ctx" .ctx "port" .port) }}
{{- with .c.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Control plane (tenancy.enabled): the ledger's admin address, for the gateways. */}}
{{- define "tollgate.ledgerAdminAddress" -}}
{{- printf "%s-ledger:%d" (include "tollgate.fullname" .) (int .Values.ledger.service.adminPort) -}}
{{- end -}}

{{/* Secret with the ledger's --admin_tokens_file (SHA-256 hashes only), and its key. */}}
{{- define "tollgate.adminTokensSecretName" -}}
{{- default (printf "%s-admin-tokens" (include "tollgate.fullname" .)) .Values.tenancy.adminTokens.existingSecret -}}
{{- end -}}
{{- define "tollgate.adminTokensSecretKey" -}}
{{- if .Values.tenancy.adminTokens.existingSecret -}}
{{- .Values.tenancy.adminTokens.existingSecretKey -}}
{{- else -}}
admin-tokens.yaml
{{- end -}}
{{- end -}}

{{/* Secret with the gateways' plaintext control-plane token (role gateway), and its key. */}}
{{- define "tollgate.gatewayTokenSecretName" -}}
{{- default (printf "%s-gateway-token" (include "tollgate.fullname" .)) .Values.tenancy.gatewayToken.existingSecret -}}
{{- end -}}
{{- define "tollgate.gatewayTokenSecretKey" -}}
{{- if .Values.tenancy.gatewayToken.existingSecret -}}
{{- .Values.tenancy.gatewayToken.existingSecretKey -}}
{{- else -}}
token
{{- end -}}
{{- end -}}

{{/* Whether the chart generates the trial admin token (no tokens and no existing tokens file). */}}
{{- define "tollgate.bootstrapAdmin" -}}
{{- $a := .Values.tenancy.adminTokens -}}
{{- if and .Values.tenancy.enabled (not $a.existingSecret) (not $a.tokens) -}}true{{- end -}}
{{- end -}}

{{/* Checksums that roll pods when their control-plane inputs change. Computed from the values,
not from the rendered Secrets, so generated tokens (kept across upgrades by `lookup`) never
cause a restart; Secrets you manage (existingSecret) need `kubectl rollout restart`. */}}
{{- define "tollgate.adminTokensChecksum" -}}
{{- toJson (dict "admin" .Values.tenancy.adminTokens "gateway" .Values.tenancy.gatewayToken) | sha256sum -}}
{{- end -}}
{{- define "tollgate.gatewayTokenChecksum" -}}
{{- toJson .Values.tenancy.gatewayToken | sha256sum -}}
{{- end -}}

{{/* gRPC TLS (tls.enabled; docs/deploy.md "TLS between services"). Every component mounts its
Secret at the same directory, under fixed file names (items map the configured keys). */}}
{{- define "tollgate.tlsDir" -}}/etc/tollgate/tls{{- end -}}

{{/* The TLS Secret of a component: its own, else the shared one. (dict "ctx" $ "component" "router") */}}
{{- define "tollgate.tlsSecretName" -}}
{{- $t := .ctx.Values.tls -}}
{{- $msg := printf "tls.enabled needs tls.existingSecret or tls.%s.existingSecret (a Secret with the CA bundle, certificate and key)" .component -}}
{{- required $msg (default $t.existingSecret (index $t .component).existingSecret) -}}
{{- end -}}

{{/* TLS container args, one per line. Servers (router, ledger): certificate, key, the CA that
client certificates must chain to and, with requireClientCert, mutual TLS. Clients (gateway):
the CA (turns TLS on for every outgoing channel), the client certificate and key, serverName.
(dict "ctx" $ "server" true|false) */}}
{{- define "tollgate.tlsArgs" -}}
{{- $t := .ctx.Values.tls -}}
{{- $dir := include "tollgate.tlsDir" .ctx -}}
- {{ printf "--tls_cert_file=%s/tls.crt" $dir | quote }}
- {{ printf "--tls_key_file=%s/tls.key" $dir | quote }}
- {{ printf "--tls_ca_file=%s/ca.crt" $dir | quote }}
{{- if .server }}
{{- if $t.requireClientCert }}
- "--tls_require_client_cert=true"
{{- end }}
{{- else }}
{{- with $t.serverName }}
- {{ printf "--tls_server_name=%s" . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "tollgate.tlsVolumeMount" -}}
- name: grpc-tls
  mountPath: {{ include "tollgate.tlsDir" .ctx }}
  readOnly: true
{{- end -}}

{{/* The key is readable by the pod's fsGroup only (mode 0440). (dict "ctx" $ "component" "x") */}}
{{- define "tollgate.tlsVolume" -}}
{{- $k := .ctx.Values.tls.secretKeys -}}
- name: grpc-tls
  secret:
    secretName: {{ include "tollgate.tlsSecretName" . }}
    defaultMode: 0440
    items:
      - {key: {{ $k.ca | quote }}, path: ca.crt}
      - {key: {{ $k.cert | quote }}, path: tls.crt}
      - {key: {{ $k.key | quote }}, path: tls.key}
{{- end -}}

{{/* Handler of the router's and ledger's probes on their gRPC port. Plaintext: grpc.health.v1
(the kubelet's gRPC probe). With TLS the kubelet's gRPC probe cannot do the handshake (it has no
TLS settings, let alone a client certificate), so the probe is a TCP connect to the same port:
both binaries open their gRPC listener only once ready (router: catalog loaded; ledger: database
reached and migrated). The metrics port is no substitute: it is plaintext HTTP but has no health
endpoint. (dict "ctx" $ "port" N) */}}
{{- define "tollgate.grpcProbeHandler" -}}
{{- if .ctx.Values.tls.enabled -}}
tcpSocket: {port: {{ int .port }}}
{{- else -}}
grpc: {port: {{ int .port }}}
{{- end -}}
{{- end -}}
