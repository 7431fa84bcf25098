{{/* Labels every object carries. */}}
{{- define "ephemeralci.labels" -}}
app.kubernetes.io/part-of: ephemeralci
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* <registry>/<name>@<digest>, else <registry>/<name>:<tag>. Refuses latest. */}}
{{- define "ephemeralci.image" -}}
{{- $root := index . 0 -}}{{- $name := index . 1 -}}
{{- $digest := index ($root.Values.image.digests | default dict) $name -}}
{{- if $digest -}}
{{- printf "%s/%s@%s" $root.Values.image.registry $name $digest -}}
{{- else -}}
{{- if eq (lower (toString $root.Values.image.tag)) "latest" -}}{{- fail "image.tag: pin a release (or digests), never latest" -}}{{- end -}}
{{- printf "%s/%s:%s" $root.Values.image.registry $name (toString $root.Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The runner templates ConfigMap's data: one file per template. */}}
{{- define "ephemeralci.runnerTemplatesData" -}}
{{- range $name, $template := .Values.runnerTemplates }}
{{ $name }}.yaml: |
{{ toYaml $template | indent 2 }}
{{- end }}
{{- end -}}

{{/*
A control-plane Deployment. Parameters (dict): root, name (= ServiceAccount, Secret key), values
(the service's values), secret (its Secret's name), env (list), templates (mounts the runner
templates), token (mounts an API token: the provisioner only), recreate, replicas, autoscaled (no replicas: an HPA owns them),
admin (a second listener on 8081 where its operator routes answer: AdminListener:Port), config (a ConfigMap
the chart renders, read as environment: its data, to roll the pods when it changes).
*/}}
{{- define "ephemeralci.deployment" -}}
{{- $root := .root -}}{{- $v := .values -}}{{- $cp := $root.Values.controlPlane -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  namespace: {{ $root.Values.namespaces.controlPlane }}
  labels:
    app.kubernetes.io/name: {{ .name }}
    app.kubernetes.io/component: control-plane
    {{- include "ephemeralci.labels" $root | nindent 4 }}
spec:
  {{- if not .autoscaled }}
  replicas: {{ .replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels: {app.kubernetes.io/name: {{ .name }}}
  strategy:
    {{- if .recreate }}
    type: Recreate
    {{- else }}
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 0, maxSurge: 1}
    {{- end }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {{ .name }}
        app.kubernetes.io/part-of: ephemeralci
        app.kubernetes.io/component: control-plane
        {{- with $cp.podLabels }}{{ toYaml . | nindent 8 }}{{- end }}
      annotations:
        # A changed Secret (looked up at install/upgrade), ConfigMap or runner template rolls the pods.
        checksum/secret: {{ (lookup "v1" "Secret" $root.Values.namespaces.controlPlane .secret).data | default dict | toJson | sha256sum }}
        {{- with .config }}
        checksum/config: {{ .data | toJson | sha256sum }}
        {{- end }}
        {{- if .templates }}
        checksum/runner-templates: {{ include "ephemeralci.runnerTemplatesData" $root | sha256sum }}
        {{- end }}
        {{- with $cp.podAnnotations }}{{ toYaml . | nindent 8 }}{{- end }}
    spec:
      serviceAccountName: {{ .name }}
      automountServiceAccountToken: {{ .token | default false }}
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ $cp.terminationGracePeriodSeconds }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets: {{ toYaml . | nindent 8 }}
      {{- end }}
      {{- with $cp.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $cp.nodeSelector }}
      nodeSelector: {{ toYaml . | nindent 8 }}
      {{- end }}
      {{- with $cp.tolerations }}
      tolerations: {{ toYaml . | nindent 8 }}
      {{- end }}
      {{- with $cp.affinity }}
      affinity: {{ toYaml . | nindent 8 }}
      {{- end }}
      {{- if and $cp.topologySpread (not .recreate) }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels: {app.kubernetes.io/name: {{ .name }}}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 1654   # "app", the images' non-root user (eng/images.sh)
        runAsGroup: 1654
        fsGroup: 1654
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: {{ .name }}
          image: {{ include "ephemeralci.image" (list $root .name) }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          ports:
            - {name: http, containerPort: 8080, protocol: TCP}
            {{- if .admin }}
            # Operator routes answer only here (AdminListener:Port); the runners' policies open http alone.
            - {name: admin, containerPort: 8081, protocol: TCP}
            {{- end }}
          env:
            {{- if .admin }}
            - {name: ASPNETCORE_HTTP_PORTS, value: "8080;8081"}
            - {name: AdminListener__Port, value: "8081"}
            {{- else }}
            - {name: ASPNETCORE_HTTP_PORTS, value: "8080"}
            {{- end }}
            - {name: HOME, value: /tmp}
            {{- with .env }}{{ toYaml . | nindent 12 }}{{- end }}
            {{- if $root.Values.podMonitor.enabled }}
            # /metrics for the PodMonitor (docs/telemetry.md); off unless scraped.
            - {name: Telemetry__Prometheus__Enabled, value: "true"}
            {{- end }}
            {{- with $cp.extraEnv }}{{ toYaml . | nindent 12 }}{{- end }}
          envFrom:
            {{- with .config }}
            - configMapRef: {name: {{ .name }}, optional: false}
            {{- end }}
            - secretRef: {name: {{ .secret }}, optional: false}
          resources: {{ toYaml $v.resources | nindent 12 }}
          {{- if not .recreate }}
          lifecycle:
            preStop:
              sleep: {seconds: {{ $cp.preStopSleepSeconds }}}
          {{- end }}
          startupProbe:
            httpGet: {path: /alive, port: http}
            periodSeconds: 5
            failureThreshold: 60   # up to 5 min for migrations and a database that is still starting
          livenessProbe:
            httpGet: {path: /alive, port: http}
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet: {path: /health, port: http}
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 3
          securityContext:
            allowPrivilegeEscalation: false
            privileged: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            capabilities: {drop: [ALL]}
            seccompProfile: {type: RuntimeDefault}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
            {{- if .templates }}
            - {name: runner-templates, mountPath: /etc/ephemeralci/runner-templates, readOnly: true}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir: {sizeLimit: {{ $v.tmpSizeLimit }}}
        {{- if .templates }}
        - name: runner-templates
          configMap: {name: runner-templates}
        {{- end }}
{{- end -}}


{{/* A configuration value as an environment variable's text: numbers as integers (Helm reads them as floats: 1e+06). */}}
{{- define "ephemeralci.envValue" -}}
{{- if or (kindIs "float64" .) (kindIs "int64" .) (kindIs "int" .) -}}{{ int64 . }}{{- else -}}{{ toString . }}{{- end -}}
{{- end -}}
