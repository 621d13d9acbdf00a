{{/*
Names, labels and the environment shared by every guild-chat workload.
*/}}

{{- define "guild-chat.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "guild-chat.fullname" -}}
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

{{- define "guild-chat.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of one component's resources: <fullname>-<component>. */}}
{{- define "guild-chat.componentName" -}}
{{- printf "%s-%s" (include "guild-chat.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "guild-chat.labels" -}}
helm.sh/chart: {{ include "guild-chat.chart" . }}
app.kubernetes.io/part-of: {{ include "guild-chat.name" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component (immutable on a Deployment: keep them minimal). */}}
{{- define "guild-chat.selectorLabels" -}}
app.kubernetes.io/name: {{ include "guild-chat.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "guild-chat.componentLabels" -}}
{{ include "guild-chat.labels" .root }}
{{ include "guild-chat.selectorLabels" . }}
{{- end }}

{{- define "guild-chat.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "guild-chat.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "guild-chat.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Name of the Secret that holds the HS256 JWT secret. */}}
{{- define "guild-chat.jwtSecretName" -}}
{{- default (printf "%s-jwt" (include "guild-chat.fullname" .)) .Values.auth.jwt.existingSecret }}
{{- end }}

{{- define "guild-chat.jwtSecretKey" -}}
{{- if .Values.auth.jwt.existingSecret }}{{ .Values.auth.jwt.existingSecretKey }}{{ else }}JWT_SECRET{{ end }}
{{- end }}

{{/* Service names the optional subcharts create (same fullname rule as theirs). */}}
{{- define "guild-chat.natsSubchartHost" -}}
{{- $override := .Values.nats.fullnameOverride | default "" }}
{{- if $override }}{{ $override }}{{ else if contains "nats" .Release.Name }}{{ .Release.Name }}{{ else }}{{ printf "%s-nats" .Release.Name }}{{ end }}
{{- end }}

{{- define "guild-chat.redisSubchartName" -}}
{{- $override := .Values.redis.fullnameOverride | default "" }}
{{- if $override }}{{ $override }}{{ else if contains "redis" .Release.Name }}{{ .Release.Name }}{{ else }}{{ printf "%s-redis" .Release.Name }}{{ end }}
{{- end }}

{{/* NATS_URL: bundled subchart, a Secret, or a plain URL. */}}
{{- define "guild-chat.natsEnv" -}}
{{- if .Values.nats.enabled }}
- name: NATS_URL
  value: {{ printf "nats://%s:4222" (include "guild-chat.natsSubchartHost" .) | quote }}
{{- else if .Values.externalNats.existingSecret }}
- name: NATS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalNats.existingSecret }}
      key: {{ .Values.externalNats.existingSecretKey }}
{{- else if .Values.externalNats.url }}
- name: NATS_URL
  value: {{ .Values.externalNats.url | quote }}
{{- else }}
{{- fail "NATS is required: set externalNats.url, externalNats.existingSecret, or nats.enabled=true" }}
{{- end }}
{{- end }}

{{/* REDIS_URL: bundled subchart (password via $(REDIS_PASSWORD)), a Secret, or a plain URL. */}}
{{- define "guild-chat.redisEnv" -}}
{{- if .Values.redis.enabled }}
{{- $host := printf "%s-master" (include "guild-chat.redisSubchartName" .) }}
{{- if .Values.redis.auth.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.auth.existingSecret | default (include "guild-chat.redisSubchartName" .) }}
      key: {{ .Values.redis.auth.existingSecretPasswordKey | default "redis-password" }}
- name: REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:6379" $host | quote }}
{{- else }}
- name: REDIS_URL
  value: {{ printf "redis://%s:6379" $host | quote }}
{{- end }}
{{- else if .Values.externalRedis.existingSecret }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalRedis.existingSecret }}
      key: {{ .Values.externalRedis.existingSecretKey }}
{{- else if .Values.externalRedis.url }}
- name: REDIS_URL
  value: {{ .Values.externalRedis.url | quote }}
{{- else }}
{{- fail "Redis is required: set externalRedis.url, externalRedis.existingSecret, or redis.enabled=true" }}
{{- end }}
{{- end }}

{{/* JWT verification: HS256 secret from a Secret, or a public key file mounted from one. */}}
{{- define "guild-chat.jwtEnv" -}}
{{- if eq .Values.auth.jwt.algorithm "HS256" }}
- name: JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "guild-chat.jwtSecretName" . }}
      key: {{ include "guild-chat.jwtSecretKey" . }}
{{- else }}
{{- if not .Values.auth.jwt.publicKey.existingSecret }}
{{- fail (printf "auth.jwt.algorithm=%s needs auth.jwt.publicKey.existingSecret" .Values.auth.jwt.algorithm) }}
{{- end }}
- name: JWT_PUBLIC_KEY_FILE
  value: /etc/guild-chat/jwt/public.pem
- name: JWT_ALGORITHM
  value: {{ .Values.auth.jwt.algorithm | quote }}
{{- end }}
- name: JWT_COOKIE_NAME
  value: {{ .Values.auth.cookieName | quote }}
{{- end }}

{{/* Environment common to all three binaries (NATS_URL; REDIS_URL and the credentials are per
component, see _credentials.tpl; the JWT settings are the gateway's only). */}}
{{- define "guild-chat.commonEnv" -}}
{{- include "guild-chat.natsEnv" . }}
{{ include "guild-chat.jetstreamEnv" . }}
- name: LOG_FORMAT
  value: {{ .Values.logging.format | quote }}
- name: RUST_LOG
  value: {{ .Values.logging.level | quote }}
{{- with .Values.telemetry.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/* Gateway drain: the grace period the kubelet allows between pod deletion and SIGKILL. */}}
{{- define "guild-chat.gatewayGracePeriod" -}}
{{- $d := .Values.gateway.drain }}
{{- $drainSeconds := div (add (int $d.readinessDelayMs) (int $d.closeWindowMs) 999) 1000 }}
{{- add (int $d.preStopSleepSeconds) $drainSeconds (int $d.marginSeconds) }}
{{- end }}
