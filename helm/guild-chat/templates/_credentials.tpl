{{/*
Bus and store credentials of one component, from existing Secrets only (values `busAuth`):
NATS user/password, token or .creds file, the NATS CA / client certificate, and the Redis ACL
user folded into REDIS_URL. Called with (dict "root" $ "component" "<binary name>").
*/}}

{{- define "guild-chat.valuesKey" -}}
{{- get (dict "gateway" "gateway" "router-worker" "routerWorker" "bot-worker" "botWorker") .component }}
{{- end }}

{{- define "guild-chat.busAuth" -}}
{{- index .root.Values.busAuth (include "guild-chat.valuesKey" .) | toYaml }}
{{- end }}

{{/* NATS_* credential variables of one component. */}}
{{- define "guild-chat.natsAuthEnv" -}}
{{- $nats := (include "guild-chat.busAuth" . | fromYaml).nats }}
{{- $tls := .root.Values.busAuth.natsTls }}
{{- if $nats.existingSecret }}
{{- range $name, $key := dict "NATS_USER" $nats.userKey "NATS_PASSWORD" $nats.passwordKey "NATS_TOKEN" $nats.tokenKey }}
{{- if $key }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $nats.existingSecret }}
      key: {{ $key }}
{{- end }}
{{- end }}
{{- if $nats.credsKey }}
- name: NATS_CREDS_FILE
  value: /etc/guild-chat/nats-creds/nats.creds
{{- end }}
{{- end }}
{{- if $tls.existingSecret }}
- name: NATS_CA_FILE
  value: /etc/guild-chat/nats-tls/ca.crt
{{- if $tls.certKey }}
- name: NATS_CLIENT_CERT_FILE
  value: /etc/guild-chat/nats-tls/client.crt
- name: NATS_CLIENT_KEY_FILE
  value: /etc/guild-chat/nats-tls/client.key
{{- end }}
{{- end }}
{{- end }}

{{/* REDIS_USERNAME / REDIS_PASSWORD of one component, before the REDIS_URL that uses them. */}}
{{- define "guild-chat.redisAuthEnv" -}}
{{- $redis := (include "guild-chat.busAuth" . | fromYaml).redis }}
{{- if $redis.existingSecret }}
- name: REDIS_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $redis.existingSecret }}
      key: {{ $redis.usernameKey }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $redis.existingSecret }}
      key: {{ $redis.passwordKey }}
{{- end }}
{{- end }}

{{/* Whether this component's REDIS_URL carries its ACL user ("true" or ""). */}}
{{- define "guild-chat.redisAclUser" -}}
{{- $redis := (include "guild-chat.busAuth" . | fromYaml).redis }}
{{- if and $redis.existingSecret (not .root.Values.redis.enabled) (not .root.Values.externalRedis.existingSecret) }}true{{ end }}
{{- end }}

{{/* The credential files of one component: mounts, then volumes. */}}
{{- define "guild-chat.busAuthMounts" -}}
{{- $nats := (include "guild-chat.busAuth" . | fromYaml).nats }}
{{- if and $nats.existingSecret $nats.credsKey }}
- name: nats-creds
  mountPath: /etc/guild-chat/nats-creds
  readOnly: true
{{- end }}
{{- if .root.Values.busAuth.natsTls.existingSecret }}
- name: nats-tls
  mountPath: /etc/guild-chat/nats-tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "guild-chat.busAuthVolumes" -}}
{{- $nats := (include "guild-chat.busAuth" . | fromYaml).nats }}
{{- $tls := .root.Values.busAuth.natsTls }}
{{- if and $nats.existingSecret $nats.credsKey }}
- name: nats-creds
  secret:
    secretName: {{ $nats.existingSecret }}
    items:
      - key: {{ $nats.credsKey }}
        path: nats.creds
{{- end }}
{{- if $tls.existingSecret }}
- name: nats-tls
  secret:
    secretName: {{ $tls.existingSecret }}
    items:
      - key: {{ $tls.caKey }}
        path: ca.crt
      {{- if $tls.certKey }}
      - key: {{ $tls.certKey }}
        path: client.crt
      - key: {{ $tls.keyKey }}
        path: client.key
      {{- end }}
{{- end }}
{{- end }}

{{/* REDIS_URL of one component: with its ACL user from busAuth, or the shared setting. */}}
{{- define "guild-chat.componentRedisEnv" -}}
{{- if include "guild-chat.redisAclUser" . }}
{{- $url := .root.Values.externalRedis.url }}
{{- if not $url }}
{{- fail "busAuth.<component>.redis needs externalRedis.url (without credentials)" }}
{{- end }}
{{- if contains "@" $url }}
{{- fail "busAuth.<component>.redis: externalRedis.url must not carry credentials" }}
{{- end }}
{{- include "guild-chat.redisAuthEnv" . }}
- name: REDIS_URL
  value: {{ regexReplaceAll "^(rediss?://)" $url "${1}$(REDIS_USERNAME):$(REDIS_PASSWORD)@" | quote }}
{{- else }}
{{- include "guild-chat.redisEnv" .root }}
{{- end }}
{{- end }}
