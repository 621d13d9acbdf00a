{{/*
One Deployment / Service / HPA / PDB per component, shared by gateway, router-worker and
bot-worker. Called with (dict "root" $ "component" "<binary name>" "values" <component values>).
The binary is selected by the container command; its name is the component name.
*/}}

{{- define "guild-chat.deployment" -}}
{{- $root := .root }}
{{- $v := .values }}
{{- $isGateway := eq .component "gateway" }}
{{- /* The gateway's probes use its ops listener; a worker's LISTEN_ADDR is its ops listener. */ -}}
{{- $probePort := ternary "ops" "http" $isGateway }}
{{- $publicKey := and $isGateway (ne $root.Values.auth.jwt.algorithm "HS256") }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "guild-chat.componentName" . }}
  labels:
    {{- include "guild-chat.componentLabels" . | nindent 4 }}
spec:
  {{- if not (and $v.autoscaling $v.autoscaling.enabled) }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: {{ $v.rollingUpdate.maxSurge }}
      maxUnavailable: {{ $v.rollingUpdate.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "guild-chat.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "guild-chat.componentLabels" . | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $v.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "guild-chat.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $root.Values.serviceAccount.automountToken }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- if $isGateway }}
      terminationGracePeriodSeconds: {{ include "guild-chat.gatewayGracePeriod" $root }}
      {{- else }}
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ include "guild-chat.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: [{{ printf "/usr/local/bin/%s" .component | quote }}]
          ports:
            - name: http
              containerPort: {{ $v.port }}
              protocol: TCP
            {{- if $isGateway }}
            - name: ops
              containerPort: {{ $v.opsPort }}
              protocol: TCP
            {{- end }}
          env:
            - name: LISTEN_ADDR
              value: {{ printf "0.0.0.0:%v" $v.port | quote }}
            {{- if $isGateway }}
            - name: OPS_LISTEN_ADDR
              value: {{ printf "0.0.0.0:%v" $v.opsPort | quote }}
            {{- end }}
            {{- include "guild-chat.commonEnv" $root | trim | nindent 12 }}
            {{- include "guild-chat.natsAuthEnv" . | trim | nindent 12 }}
            {{- include "guild-chat.componentRedisEnv" . | trim | nindent 12 }}
            {{- if ne .component "bot-worker" }}
            - name: MAX_TEXT_CHARS
              value: {{ $root.Values.limits.maxTextChars | quote }}
            {{- end }}
            {{- if $isGateway }}
            {{- include "guild-chat.gatewayEnv" $root | trim | nindent 12 }}
            {{- end }}
            {{- if eq .component "bot-worker" }}
            {{- include "guild-chat.botEnv" $root | trim | nindent 12 }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- if $isGateway }}
          {{- with $v.drain.preStopSleepSeconds }}
          lifecycle:
            preStop:
              exec:
                command: ["/bin/sleep", {{ . | quote }}]
          {{- end }}
          {{- end }}
          startupProbe:
            httpGet:
              path: /healthz
              port: {{ $probePort }}
            {{- toYaml $v.probes.startup | nindent 12 }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: {{ $probePort }}
            {{- toYaml $v.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: {{ $probePort }}
            {{- toYaml $v.probes.readiness | nindent 12 }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if $publicKey }}
            - name: jwt-public-key
              mountPath: /etc/guild-chat/jwt
              readOnly: true
            {{- end }}
            {{- include "guild-chat.busAuthMounts" . | trim | nindent 12 }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- include "guild-chat.busAuthVolumes" . | trim | nindent 8 }}
        {{- if $publicKey }}
        - name: jwt-public-key
          secret:
            secretName: {{ $root.Values.auth.jwt.publicKey.existingSecret }}
            items:
              - key: {{ $root.Values.auth.jwt.publicKey.existingSecretKey }}
                path: public.pem
        {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/* Gateway-only settings; the drain timings are the same values the grace period uses. */}}
{{- define "guild-chat.gatewayEnv" -}}
{{- $g := .Values.gateway }}
{{- /* Only gateways verify tokens: routers and bots never see JWT_SECRET. */ -}}
{{- include "guild-chat.jwtEnv" . }}
{{- with $g.trustedProxies }}
- name: TRUSTED_PROXIES
  value: {{ join "," . | quote }}
{{- end }}
- name: DEV_LOGIN
  value: {{ .Values.auth.devLogin | quote }}
{{- with $g.allowedOrigins }}
- name: ALLOWED_ORIGINS
  value: {{ join "," . | quote }}
{{- end }}
- name: MAX_FRAME_BYTES
  value: {{ $g.maxFrameBytes | quote }}
- name: MAX_CONNECTIONS
  value: {{ $g.limits.maxConnections | quote }}
- name: MAX_HANDSHAKES_PER_SEC
  value: {{ $g.limits.maxHandshakesPerSec | quote }}
- name: HANDSHAKE_BURST
  value: {{ $g.limits.handshakeBurst | quote }}
- name: MAX_HANDSHAKES_IN_FLIGHT
  value: {{ $g.limits.maxHandshakesInFlight | quote }}
- name: MAX_CONNECTIONS_PER_USER
  value: {{ $g.limits.maxConnectionsPerUser | quote }}
- name: CONNECTION_LEASE_MS
  value: {{ $g.limits.connectionLeaseMs | quote }}
- name: SHUTDOWN_READINESS_DELAY_MS
  value: {{ $g.drain.readinessDelayMs | quote }}
- name: SHUTDOWN_CLOSE_WINDOW_MS
  value: {{ $g.drain.closeWindowMs | quote }}
{{- end }}

{{- define "guild-chat.botEnv" -}}
{{- $llm := .Values.botWorker.llm }}
{{- with $llm.baseUrl }}
- name: BOT_LLM_BASE_URL
  value: {{ . | quote }}
{{- end }}
{{- with $llm.model }}
- name: BOT_LLM_MODEL
  value: {{ . | quote }}
{{- end }}
{{- if or $llm.existingSecret $llm.apiKey }}
- name: BOT_LLM_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $llm.existingSecret | default (printf "%s-bot-llm" (include "guild-chat.fullname" .)) }}
      key: {{ if $llm.existingSecret }}{{ $llm.existingSecretKey }}{{ else }}BOT_LLM_API_KEY{{ end }}
{{- end }}
{{- end }}

{{- define "guild-chat.service" -}}
{{- $v := .values }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "guild-chat.componentName" . }}
  labels:
    {{- include "guild-chat.componentLabels" . | nindent 4 }}
  {{- with $v.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $v.service.type }}
  selector:
    {{- include "guild-chat.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ $v.service.port | default $v.port }}
      targetPort: http
      protocol: TCP
    {{- if eq .component "gateway" }}
    {{- /* For the ServiceMonitor only: the Ingress routes port "http", never "ops". */}}
    - name: ops
      port: {{ $v.opsPort }}
      targetPort: ops
      protocol: TCP
    {{- end }}
{{- end }}

{{- define "guild-chat.hpa" -}}
{{- $a := .values.autoscaling }}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) }}
{{- fail (printf "%s autoscaling: minReplicas %v > maxReplicas %v" .component $a.minReplicas $a.maxReplicas) }}
{{- end }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "guild-chat.componentName" . }}
  labels:
    {{- include "guild-chat.componentLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "guild-chat.componentName" . }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $a.targetCPUUtilizationPercentage }}
    {{- with $a.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
  {{- with $a.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{- define "guild-chat.pdb" -}}
{{- $p := .values.pdb }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "guild-chat.componentName" . }}
  labels:
    {{- include "guild-chat.componentLabels" . | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" $p.minAvailable) }}
  minAvailable: {{ $p.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $p.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "guild-chat.selectorLabels" . | nindent 6 }}
{{- end }}
