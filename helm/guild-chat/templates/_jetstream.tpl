{{/*
JetStream stream settings, the same on every component (values `jetstream.*`): the router
creates the streams with them, gateways and bot workers verify an existing stream keeps at
least this much. R3 (3 replicas) is the production default.
*/}}
{{- define "guild-chat.jetstreamEnv" -}}
- name: NATS_REPLICAS
  value: {{ .Values.jetstream.replicas | quote }}
- name: LOG_RETAIN_PER_GUILD
  value: {{ .Values.jetstream.retainPerGuild | quote }}
- name: LOG_MAX_AGE_SECS
  value: {{ .Values.jetstream.maxAgeSeconds | quote }}
{{- end }}
