{{/* Names */}}
{{- define "mostrador.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mostrador.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mostrador.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "mostrador.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mostrador
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "api") */}}
{{- define "mostrador.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mostrador.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mostrador.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mostrador.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mostrador.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The URLs of the evaluation-only in-chart servers. */}}
{{- define "mostrador.postgresqlUrl" -}}
{{- $pg := .Values.postgresql -}}
{{- printf "postgresql://%s:%s@%s-postgresql:5432/%s" $pg.auth.username (required "postgresql.auth.password is required when postgresql.enabled" $pg.auth.password | urlquery) (include "mostrador.fullname" .) $pg.auth.database -}}
{{- end -}}

{{- define "mostrador.redisUrl" -}}
{{- printf "redis://:%s@%s-redis:6379/0" (required "redis.auth.password is required when redis.enabled" .Values.redis.auth.password | urlquery) (include "mostrador.fullname" .) -}}
{{- end -}}

{{/* The value each secret setting gets from the chart's own Secret ("" when it comes from elsewhere). */}}
{{- define "mostrador.databaseUrl" -}}
{{- if .Values.postgresql.enabled -}}{{ include "mostrador.postgresqlUrl" . }}{{- else -}}{{ .Values.externalDatabase.url }}{{- end -}}
{{- end -}}

{{- define "mostrador.redisUrlValue" -}}
{{- if .Values.redis.enabled -}}{{ include "mostrador.redisUrl" . }}{{- else -}}{{ .Values.externalRedis.url }}{{- end -}}
{{- end -}}

{{/*
The generated secret key: kept across upgrades by reading the release's Secret back (`lookup` is empty under
`helm template`, so a fresh one is rendered there).
*/}}
{{- define "mostrador.secretKeyValue" -}}
{{- if .Values.secretKey -}}
{{- .Values.secretKey -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "mostrador.fullname" .) -}}
{{- if and $existing (index ($existing.data | default dict) "MOSTRADOR_SECRET_KEY") -}}
{{- index $existing.data "MOSTRADOR_SECRET_KEY" | b64dec -}}
{{- else -}}
{{- randAlphaNum 48 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
One secret env var: (dict "name" ENV "ownSecret" NAME "value" VALUE "external" SECRET "externalKey" KEY "root" $)
from the component's existing Secret, else the top-level existingSecret (when the chart has no value for it),
else the chart's Secret (named ownSecret: the release's Secret, or the migration hook's copy).
*/}}
{{- define "mostrador.secretEnvVar" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
{{- if .external }}
      name: {{ .external }}
      key: {{ .externalKey }}
{{- else if and .root.Values.existingSecret (not .value) }}
      name: {{ .root.Values.existingSecret }}
      key: {{ .name }}
{{- else }}
      name: {{ .ownSecret }}
      key: {{ .name }}
{{- end }}
{{- end -}}

{{/* The secret key/value pairs the chart's Secret holds (a YAML map, may be empty). */}}
{{- define "mostrador.secretData" -}}
{{- $db := include "mostrador.databaseUrl" . -}}
{{- $redis := include "mostrador.redisUrlValue" . -}}
{{- if and $db (not .Values.externalDatabase.existingSecret) }}
DATABASE_URL: {{ $db | b64enc | quote }}
{{- end }}
{{- if and $redis (not .Values.externalRedis.existingSecret) }}
REDIS_URL: {{ $redis | b64enc | quote }}
{{- end }}
{{- if or .Values.secretKey (not .Values.existingSecret) }}
MOSTRADOR_SECRET_KEY: {{ include "mostrador.secretKeyValue" . | b64enc | quote }}
{{- end }}
{{- if and (eq .Values.media.storage "s3") (not .Values.media.s3.existingSecret) .Values.media.s3.accessKeyId }}
MOSTRADOR_MEDIA_S3_ACCESS_KEY_ID: {{ .Values.media.s3.accessKeyId | b64enc | quote }}
MOSTRADOR_MEDIA_S3_SECRET_ACCESS_KEY: {{ .Values.media.s3.secretAccessKey | b64enc | quote }}
{{- end }}
{{- end -}}

{{/* The env of every Mostrador container: the ConfigMap, then the secrets one by one. (dict "root" $ "ownSecret" NAME) */}}
{{- define "mostrador.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- include "mostrador.secretEnvVar" (dict "name" "DATABASE_URL" "ownSecret" .ownSecret "value" (include "mostrador.databaseUrl" $root) "external" $v.externalDatabase.existingSecret "externalKey" $v.externalDatabase.existingSecretKey "root" $root) }}
{{- if not .noRedis }}
{{ include "mostrador.secretEnvVar" (dict "name" "REDIS_URL" "ownSecret" .ownSecret "value" (include "mostrador.redisUrlValue" $root) "external" $v.externalRedis.existingSecret "externalKey" $v.externalRedis.existingSecretKey "root" $root) }}
{{- end }}
{{ include "mostrador.secretEnvVar" (dict "name" "MOSTRADOR_SECRET_KEY" "ownSecret" .ownSecret "value" $v.secretKey "external" "" "externalKey" "" "root" $root) }}
{{- if and (eq $v.media.storage "s3") (or $v.media.s3.existingSecret $v.media.s3.accessKeyId $v.existingSecret) }}
{{- range list "MOSTRADOR_MEDIA_S3_ACCESS_KEY_ID" "MOSTRADOR_MEDIA_S3_SECRET_ACCESS_KEY" }}
{{ include "mostrador.secretEnvVar" (dict "name" . "ownSecret" $.ownSecret "value" $v.media.s3.accessKeyId "external" $v.media.s3.existingSecret "externalKey" . "root" $root) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Volumes every Mostrador pod mounts: writable scratch space under a read-only root, and media. */}}
{{- define "mostrador.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
- name: data
  emptyDir:
    sizeLimit: 64Mi
{{- if eq .Values.media.storage "volume" }}
- name: media
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-media" (include "mostrador.fullname" .)) .Values.media.volume.existingClaim }}
{{- end }}
{{- end -}}

{{- define "mostrador.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/mostrador/data
{{- if eq .Values.media.storage "volume" }}
# The processes keep local media under <data dir>/media: the shared claim is mounted there.
- name: media
  mountPath: /var/lib/mostrador/data/media
{{- end }}
{{- end -}}

{{/* The sessions pods' grace period must cover the shutdown grace and the lease hand-over. */}}
{{- define "mostrador.checkGrace" -}}
{{- $need := add (int .Values.config.shutdownGraceSeconds) (int (ceil .Values.config.sessions.leaseTtlSeconds)) -}}
{{- if le (int .Values.sessions.terminationGracePeriodSeconds) (int $need) -}}
{{- fail (printf "sessions.terminationGracePeriodSeconds (%v) must exceed config.shutdownGraceSeconds + config.sessions.leaseTtlSeconds (%v): a stopping session manager must not be killed before it has handed its stores over" .Values.sessions.terminationGracePeriodSeconds $need) -}}
{{- end -}}
{{- if le (int .Values.worker.terminationGracePeriodSeconds) (int .Values.config.shutdownGraceSeconds) -}}
{{- fail (printf "worker.terminationGracePeriodSeconds (%v) must exceed config.shutdownGraceSeconds (%v)" .Values.worker.terminationGracePeriodSeconds .Values.config.shutdownGraceSeconds) -}}
{{- end -}}
{{- end -}}

{{/*
Pod annotations: checksums of the settings and of the chart's secrets (a changed setting or URL rolls the pods;
the generated secret key is read back on upgrades, so it does not), and Prometheus scraping.
*/}}
{{- define "mostrador.podAnnotations" -}}
checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
checksum/secret: {{ include "mostrador.secretData" .root | sha256sum }}
{{- if .root.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end -}}
