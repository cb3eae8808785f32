{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "probenet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart> unless the release name already contains the chart name.
Truncated to 63 characters; component suffixes are added by callers, so keep them short.
*/}}
{{- define "probenet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* <fullname>-<suffix>, kept within 63 characters. Call with (list $ "suffix"). */}}
{{- define "probenet.componentName" -}}
{{- $root := index . 0 }}
{{- $suffix := index . 1 }}
{{- $full := include "probenet.fullname" $root }}
{{- printf "%s-%s" ($full | trunc (int (sub 62 (len $suffix)))) $suffix | trimSuffix "-" }}
{{- end }}

{{- define "probenet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "probenet.labels" -}}
helm.sh/chart: {{ include "probenet.chart" . }}
app.kubernetes.io/name: {{ include "probenet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: probenet
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component. Call with (list $ "collector"). */}}
{{- define "probenet.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "probenet.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Full labels of one component. Call with (list $ "collector"). */}}
{{- define "probenet.componentLabels" -}}
{{ include "probenet.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "probenet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "probenet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "probenet.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "probenet.collectorName" -}}
{{- include "probenet.componentName" (list . "collector") }}
{{- end }}

{{- define "probenet.clickhouseName" -}}
{{- include "probenet.componentName" (list . "clickhouse") }}
{{- end }}

{{/*
Agent StatefulSet/Deployment name of one region, at most 52 characters: a StatefulSet adds a
10-character hash to its name in the controller-revision-hash label (63 at most). Its pods are
<name>-<ordinal>, which is each agent's id. Call with (list $ "region").
*/}}
{{- define "probenet.agentName" -}}
{{- $suffix := printf "agent-%s" (index . 1) }}
{{- $full := include "probenet.fullname" (index . 0) }}
{{- printf "%s-%s" ($full | trunc (int (max 1 (sub 51 (len $suffix))))) $suffix | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/* Headless Service governing a region's agent StatefulSet. Call with (list $ "region"). */}}
{{- define "probenet.agentHeadlessName" -}}
{{- printf "%s-hl" (include "probenet.agentName" .) }}
{{- end }}

{{/*
shutdown_grace of the agents: the pod's termination grace minus a margin for closing down
(cancelling the stream, closing the spool, exiting) before the kubelet's SIGKILL.
*/}}
{{- define "probenet.agentShutdownGrace" -}}
{{- max 0 (sub (int .Values.agents.terminationGracePeriodSeconds) 5) }}s
{{- end }}

{{/* host:port agents dial. */}}
{{- define "probenet.collectorAddress" -}}
{{- if .Values.agents.collectorAddress }}
{{- .Values.agents.collectorAddress }}
{{- else if .Values.collector.enabled }}
{{- printf "%s:%d" (include "probenet.collectorName" .) (int .Values.collector.grpcPort) }}
{{- else }}
{{- required "agents.collectorAddress is required when collector.enabled is false (agents-only install: host:port of the remote collector's gRPC endpoint)" .Values.agents.collectorAddress }}
{{- end }}
{{- end }}

{{/* Secret names of the TLS material. */}}
{{- define "probenet.caSecretName" -}}
{{- include "probenet.componentName" (list . "ca") }}
{{- end }}

{{- define "probenet.collectorTlsSecretName" -}}
{{- if .Values.tls.collector.existingSecret }}
{{- .Values.tls.collector.existingSecret }}
{{- else if .Values.tls.generate }}
{{- include "probenet.componentName" (list . "collector-tls") }}
{{- else }}
{{- required "tls.collector.existingSecret is required when tls.generate is false (a Secret with ca.crt, tls.crt and tls.key)" .Values.tls.collector.existingSecret }}
{{- end }}
{{- end }}

{{/*
Client certificate Secret of one region: its own existingSecret, the Secret of the cert-manager
Certificate the chart requests for it, or the Secret the chart generates from its CA
(secret-tls.yaml). Call with (list $ $region).
*/}}
{{- define "probenet.agentTlsSecretName" -}}
{{- $root := index . 0 }}
{{- $region := index . 1 }}
{{- $existing := dig "tls" "existingSecret" "" $region }}
{{- if $existing }}
{{- $existing }}
{{- else if or $root.Values.tls.certManager.enabled (and $root.Values.tls.generate $root.Values.collector.enabled) }}
{{- include "probenet.componentName" (list $root (printf "agent-%s-tls" $region.name)) }}
{{- else }}
{{- required (printf "agents.regions[name=%s].tls.existingSecret is required: the chart has no CA to sign the region's client certificate with (collector.enabled=false or tls.generate=false) and tls.certManager.enabled is false. Give a Secret with ca.crt, tls.crt, tls.key whose certificate carries the DNS SAN %s or the URI SAN probenet://region/%s (e.g. `probe-collector ca issue-region`), or enable tls.certManager" $region.name (include "probenet.regionDnsName" $region.name) $region.name) $existing }}
{{- end }}
{{- end }}

{{/* The DNS SAN that names a region in its client certificate (collector/ca.py REGION_DNS_SUFFIX). */}}
{{- define "probenet.regionDnsName" -}}
{{- printf "%s.region.probenet.internal" . }}
{{- end }}

{{/* Issuer of the region certificates: the configured one, or the chart's CA Issuer. */}}
{{- define "probenet.issuerRef" -}}
{{- $ref := .Values.tls.certManager.issuerRef }}
{{- if $ref.name }}
name: {{ $ref.name }}
kind: {{ $ref.kind | default "Issuer" }}
group: {{ $ref.group | default "cert-manager.io" }}
{{- else if and .Values.tls.generate .Values.collector.enabled }}
name: {{ include "probenet.componentName" (list . "ca-issuer") }}
kind: Issuer
group: cert-manager.io
{{- else }}
{{- fail "tls.certManager.issuerRef.name is required when the chart does not generate the CA (tls.generate=false or collector.enabled=false): name the Issuer/ClusterIssuer holding the collector's CA" }}
{{- end }}
{{- end }}

{{/* Store: the URL in the collector config, and whether a password comes from a Secret. */}}
{{- define "probenet.clickhouseMode" -}}
{{- if eq .Values.store.type "embedded" }}embedded
{{- else if .Values.clickhouse.enabled }}bundled
{{- else }}external
{{- end }}
{{- end }}

{{- define "probenet.storePasswordSecret" -}}
{{- $mode := include "probenet.clickhouseMode" . }}
{{- if eq $mode "bundled" }}
{{- default (include "probenet.clickhouseName" .) .Values.clickhouse.auth.existingSecret }}
{{- else if eq $mode "external" }}
{{- if .Values.externalClickhouse.existingSecret }}
{{- .Values.externalClickhouse.existingSecret }}
{{- else if .Values.externalClickhouse.password }}
{{- include "probenet.componentName" (list . "external-clickhouse") }}
{{- end }}
{{- end }}
{{- end }}

{{- define "probenet.apiTokenSecret" -}}
{{- default (include "probenet.componentName" (list . "api")) .Values.collector.api.existingSecret }}
{{- end }}

{{- define "probenet.apiTokenKey" -}}
{{- ternary .Values.collector.api.existingSecretKey "token" (ne .Values.collector.api.existingSecret "") }}
{{- end }}

{{- define "probenet.storePasswordKey" -}}
{{- if eq (include "probenet.clickhouseMode" .) "bundled" }}
{{- ternary .Values.clickhouse.auth.existingSecretPasswordKey "password" (ne .Values.clickhouse.auth.existingSecret "") }}
{{- else }}
{{- ternary .Values.externalClickhouse.existingSecretPasswordKey "password" (ne .Values.externalClickhouse.existingSecret "") }}
{{- end }}
{{- end }}

{{/*
Store URL without the password; when a password Secret is used the URL goes through the
PROBENET_STORE_URL env var (the password is expanded by the kubelet from the Secret).
*/}}
{{- define "probenet.storeUrl" -}}
{{- $mode := include "probenet.clickhouseMode" . }}
{{- $withPassword := ne (include "probenet.storePasswordSecret" .) "" }}
{{- $auth := "" }}
{{- if eq $mode "embedded" }}
{{- print "chdb:///data/store" }}
{{- else if eq $mode "bundled" }}
{{- $auth = ternary (printf "%s:$(PROBENET_STORE_PASSWORD)@" .Values.clickhouse.auth.username) (printf "%s@" .Values.clickhouse.auth.username) $withPassword }}
{{- printf "http://%s%s:8123/%s" $auth (include "probenet.clickhouseName" .) .Values.clickhouse.database }}
{{- else }}
{{- $host := required "externalClickhouse.host is required when store.type is clickhouse and clickhouse.enabled is false" .Values.externalClickhouse.host }}
{{- $user := .Values.externalClickhouse.user }}
{{- if $user }}
{{- $auth = ternary (printf "%s:$(PROBENET_STORE_PASSWORD)@" $user) (printf "%s@" $user) $withPassword }}
{{- end }}
{{- printf "%s://%s%s:%d/%s" (ternary "https" "http" .Values.externalClickhouse.secure) $auth $host (int .Values.externalClickhouse.port) .Values.externalClickhouse.database }}
{{- end }}
{{- end }}

{{/* The SQL endpoint's read-only user on the external ClickHouse (PROBENET_QUERY_URL), or "". */}}
{{- define "probenet.queryUrl" -}}
{{- $q := .Values.externalClickhouse.query }}
{{- if $q.user }}
{{- $auth := ternary (printf "%s:$(PROBENET_QUERY_PASSWORD)@" $q.user) (printf "%s@" $q.user) (ne $q.existingSecret "") }}
{{- printf "%s://%s%s:%d/%s" (ternary "https" "http" .Values.externalClickhouse.secure) $auth .Values.externalClickhouse.host (int .Values.externalClickhouse.port) .Values.externalClickhouse.database }}
{{- end }}
{{- end }}

{{/* The collector's config file (collector/config.py). TLS and store paths are inside the pod. */}}
{{- define "probenet.collectorConfig" -}}
listen: {{ printf "0.0.0.0:%d" (int .Values.collector.grpcPort) | quote }}
insecure: {{ not .Values.tls.enabled }}
{{- if .Values.tls.enabled }}
tls:
  ca: /etc/probenet/tls/ca.crt
  cert: /etc/probenet/tls/tls.crt
  key: /etc/probenet/tls/tls.key
{{- end }}
api:
  listen: {{ printf "0.0.0.0:%d" (int .Values.collector.httpPort) | quote }}
store:
  {{- if eq (include "probenet.clickhouseMode" .) "embedded" }}
  url: {{ include "probenet.storeUrl" . | quote }}
  {{- else }}
  # The real URL comes from PROBENET_STORE_URL (the password is in a Secret).
  url: {{ include "probenet.storeUrl" . | replace "$(PROBENET_STORE_PASSWORD)" "********" | quote }}
  {{- end }}
  ttl_days: {{ int .Values.store.ttlDays }}
  batch_rows: {{ int .Values.store.batchRows }}
  flush_interval: {{ .Values.store.flushInterval | quote }}
  max_pending_rows: {{ int .Values.store.maxPendingRows }}
  max_pending_bytes: {{ int64 .Values.store.maxPendingBytes }}
  cluster: {{ .Values.store.cluster | quote }}
evaluate_every: {{ .Values.collector.evaluateEvery | quote }}
webhooks: {{ .Values.collector.webhooks | toJson }}
notify: {{ .Values.collector.notify | toJson }}
maintenance: {{ .Values.collector.maintenance | toJson }}
{{- /* No checks: no `checks:` key, so agents run their local checks (agents.checks). */}}
{{- with .Values.collector.checks }}
checks: {{ . | toJson }}
{{- end }}
{{- end }}

{{/* The agents' config file (probe_agent/config.py); agent_id and region come from flags. */}}
{{- define "probenet.agentConfig" -}}
collector: {{ include "probenet.collectorAddress" . | quote }}
insecure: {{ not .Values.tls.enabled }}
{{- if .Values.tls.enabled }}
tls:
  ca: /etc/probenet/tls/ca.crt
  cert: /etc/probenet/tls/tls.crt
  key: /etc/probenet/tls/tls.key
{{- end }}
spool:
  dir: /var/lib/probenet/spool
  max_results: {{ int .Values.agents.spool.maxResults }}
  max_bytes: {{ int64 .Values.agents.spool.maxBytes }}
batch_size: {{ int .Values.agents.batchSize }}
max_concurrency: {{ int .Values.agents.maxConcurrency }}
dns_server: {{ .Values.agents.dnsServer | quote }}
shutdown_grace: {{ include "probenet.agentShutdownGrace" . | quote }}
metrics_listen: {{ ternary (printf "0.0.0.0:%d" (int .Values.agents.metrics.port)) "" .Values.agents.metrics.enabled | quote }}
checks: {{ .Values.agents.checks | toJson }}
{{- end }}

{{/* Checks the chart cannot express in the schema. */}}
{{- define "probenet.validate" -}}
{{- if and .Values.collector.enabled (eq .Values.store.type "embedded") (gt (int .Values.collector.replicaCount) 1) }}
{{- fail "collector.replicaCount must be 1 with store.type=embedded: only one process may open a chDB directory; use store.type=clickhouse to scale out" }}
{{- end }}
{{- if and .Values.externalClickhouse.query.user (ne (include "probenet.clickhouseMode" .) "external") }}
{{- fail "externalClickhouse.query.user is set but the store is not an external ClickHouse: the SQL endpoint's own user exists only on a server you run (store.type=clickhouse, clickhouse.enabled=false)" }}
{{- end }}
{{- if and (eq .Values.store.type "embedded") .Values.externalClickhouse.host }}
{{- fail "externalClickhouse.host is set but store.type is embedded: the collector would store into its own chDB and never use that ClickHouse; set store.type=clickhouse, or unset externalClickhouse.host" }}
{{- end }}
{{- if and (eq .Values.store.type "embedded") .Values.clickhouse.enabled }}
{{- fail "clickhouse.enabled is true but store.type is embedded: the bundled ClickHouse would run unused; set store.type=clickhouse, or clickhouse.enabled=false" }}
{{- end }}
{{- if and (not .Values.collector.enabled) (not .Values.agents.enabled) }}
{{- fail "nothing to install: enable collector.enabled and/or agents.enabled" }}
{{- end }}
{{- if .Values.agents.enabled }}
{{- if not .Values.agents.regions }}
{{- fail "agents.regions must list at least one region when agents.enabled is true" }}
{{- end }}
{{- $seen := dict }}
{{- range .Values.agents.regions }}
{{- if hasKey $seen .name }}
{{- fail (printf "agents.regions: region %q is listed twice" .name) }}
{{- end }}
{{- $_ := set $seen .name true }}
{{- end }}
{{- end }}
{{- end }}

{{/* Pod-level bits shared by the collector and the agents. */}}
{{- define "probenet.podCommon" -}}
{{- /* Called with the root context, or (list $ extraPodSecurityContext) to add fields such as sysctls. */ -}}
{{- $root := . }}
{{- $extra := dict }}
{{- if kindIs "slice" . }}
{{- $root = index . 0 }}
{{- $extra = index . 1 }}
{{- end }}
serviceAccountName: {{ include "probenet.serviceAccountName" $root }}
automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml (merge (dict) $extra $root.Values.podSecurityContext) | nindent 2 }}
{{- end }}

{{/*
checksum/secret input: Secret names, what the cluster holds in them now (lookup; empty on
`helm template`) and the values that feed them, so rotating a Secret or a password rolls pods.
Call with (list $ (list "secret-a" "secret-b")).
*/}}
{{- define "probenet.secretsChecksum" -}}
{{- $root := index . 0 }}
{{- $parts := list }}
{{- range (index . 1) }}
{{- if . }}
{{- $found := lookup "v1" "Secret" $root.Release.Namespace . }}
{{- $parts = append $parts (printf "%s=%s" . (($found).data | default dict | toJson)) }}
{{- end }}
{{- end }}
{{- $parts = append $parts (toJson (list $root.Values.tls $root.Values.clickhouse.auth $root.Values.externalClickhouse)) }}
{{- join "\n" $parts | sha256sum }}
{{- end }}

{{/* Volumes of the TLS Secret. Call with (list "secret-name"). */}}
{{- define "probenet.tlsVolume" -}}
- name: tls
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - {key: ca.crt, path: ca.crt}
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
{{- end }}
