{{/*
The prefix of every object's name: "<release>-spider-py", or the release's name if it already
holds the chart's. Cut to 45 characters so that "-execution-manager" still fits in 63.
*/}}
{{- define "spider-py.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 45 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "spider-py.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Labels that select one component's pods; takes (dict "root" $ "component" NAME). */}}
{{- define "spider-py.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "spider-py.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Where every Spider-py container finds the cluster credential: the path compose mounts
its secret at too, so deploy/config/*.yaml and these configurations agree. */}}
{{- define "spider-py.clusterTokenFile" -}}
/run/secrets/spider-cluster-token
{{- end -}}

{{- define "spider-py.databaseHost" -}}
{{- if .Values.database.bundled -}}
{{ include "spider-py.fullname" . }}-database
{{- else -}}
{{ required "database.host is required when database.bundled is false" .Values.database.host }}
{{- end -}}
{{- end -}}

{{/*
The services' YAML configurations: the values' config block of each, with what the chart
decides on top (where it listens, where the others are, the credential, the metrics port).
*/}}
{{- define "spider-py.security" -}}
{{- dict "cluster_token_file" (include "spider-py.clusterTokenFile" .) | toYaml -}}
{{- end -}}

{{- define "spider-py.storageConfig" -}}
{{- $db := dict "host" (include "spider-py.databaseHost" .) "port" (int .Values.database.port) "name" .Values.database.name "max_connections" (int .Values.storage.dbMaxConnections) -}}
{{- $metrics := dict "host" "0.0.0.0" "port" (int .Values.storage.metricsPort) -}}
{{- $fixed := dict "host" "0.0.0.0" "port" (int .Values.storage.port) "runtime" (dict "db" $db) "security" (include "spider-py.security" . | fromYaml) "metrics" $metrics -}}
{{- mustMergeOverwrite (deepCopy (.Values.storage.config | default dict)) $fixed | toYaml -}}
{{- end -}}

{{- define "spider-py.schedulerConfig" -}}
{{- $name := include "spider-py.fullname" . -}}
{{- $storage := dict "host" (printf "%s-storage" $name) "port" (int .Values.storage.port) -}}
{{- $advertised := dict "host" (printf "%s-scheduler" $name) "port" (int .Values.scheduler.port) -}}
{{- $metrics := dict "host" "0.0.0.0" "port" (int .Values.scheduler.metricsPort) -}}
{{- $fixed := dict "host" "0.0.0.0" "port" (int .Values.scheduler.port) "storage_endpoint" $storage "runtime" (dict "advertised_endpoint" $advertised) "security" (include "spider-py.security" . | fromYaml) "metrics" $metrics -}}
{{- mustMergeOverwrite (deepCopy (.Values.scheduler.config | default dict)) $fixed | toYaml -}}
{{- end -}}

{{- define "spider-py.executionManagerConfig" -}}
{{- $name := include "spider-py.fullname" . -}}
{{- $storage := dict "host" (printf "%s-storage" $name) "port" (int .Values.storage.port) -}}
{{- $scheduler := dict "host" (printf "%s-scheduler" $name) "port" (int .Values.scheduler.port) -}}
{{- $metrics := dict "host" "0.0.0.0" "port" (int .Values.worker.metricsPort) -}}
{{- $fixed := dict "storage" $storage "scheduler" $scheduler "security" (include "spider-py.security" . | fromYaml) "metrics" $metrics -}}
{{- mustMergeOverwrite (deepCopy (.Values.worker.config | default dict)) $fixed | toYaml -}}
{{- end -}}

{{/* The probes of a Spider-py container, on its port named "metrics" (docs/operations.md). */}}
{{- define "spider-py.probes" -}}
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  {{- toYaml .Values.probes.readiness | nindent 2 }}
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  {{- toYaml .Values.probes.liveness | nindent 2 }}
{{- end -}}

{{/* The configuration file and the cluster credential, as every Spider-py pod mounts them;
takes (dict "root" $ "file" NAME). */}}
{{- define "spider-py.configMounts" -}}
- name: config
  mountPath: /etc/spider/{{ .file }}
  subPath: {{ .file }}
  readOnly: true
- name: cluster-token
  mountPath: {{ include "spider-py.clusterTokenFile" .root }}
  subPath: cluster-token
  readOnly: true
{{- end -}}

{{- define "spider-py.configVolumes" -}}
- name: config
  configMap:
    name: {{ include "spider-py.fullname" . }}-config
- name: cluster-token
  secret:
    secretName: {{ include "spider-py.fullname" . }}
    items:
      - key: cluster-token
        path: cluster-token
{{- end -}}

{{/* Pod settings every Spider-py pod shares: the image's non-root user. */}}
{{- define "spider-py.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
