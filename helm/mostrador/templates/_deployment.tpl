{{/*
A Mostrador Deployment: (dict "root" $ "component" "api|sessions|worker" "values" .Values.<component>
"portName" "http|ops" "port" N "strategy" MAP "autoscaling" BOOL)
*/}}
{{- define "mostrador.deployment" -}}
{{- $root := .root -}}
{{- $v := .values -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "mostrador.fullname" $root }}-{{ .component }}
  labels:
    {{- include "mostrador.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  {{- if not .autoscaling }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  {{- with .minReadySeconds }}
  minReadySeconds: {{ . }}
  {{- end }}
  strategy:
    {{- toYaml .strategy | nindent 4 }}
  selector:
    matchLabels:
      {{- include "mostrador.selectorLabels" (dict "root" $root "component" .component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "mostrador.selectorLabels" (dict "root" $root "component" .component) | nindent 8 }}
      annotations:
        {{- include "mostrador.podAnnotations" (dict "root" $root "port" .port "extra" $v.podAnnotations) | nindent 8 }}
    spec:
      serviceAccountName: {{ include "mostrador.serviceAccountName" $root }}
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ include "mostrador.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: [{{ .component | quote }}]
          ports:
            - name: {{ .portName }}
              containerPort: {{ .port }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ include "mostrador.fullname" $root }}
          env:
            {{- include "mostrador.env" (dict "root" $root "ownSecret" (include "mostrador.fullname" $root)) | nindent 12 }}
          startupProbe:
            httpGet:
              path: /healthz
              port: {{ .portName }}
            periodSeconds: 2
            failureThreshold: 60
          livenessProbe:
            httpGet:
              path: /healthz
              port: {{ .portName }}
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /readyz
              port: {{ .portName }}
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 3
          {{- if eq .component "api" }}
          lifecycle:
            preStop:
              # Let the endpoints controller take the pod out of the Service before uvicorn stops accepting.
              exec:
                command: ["sleep", "5"]
          {{- end }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          volumeMounts:
            {{- include "mostrador.volumeMounts" $root | nindent 12 }}
      volumes:
        {{- include "mostrador.volumes" $root | nindent 8 }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $v.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml $v.topologySpreadConstraints | nindent 8 }}
      {{- else }}
      # Spread the replicas over nodes when the cluster can; never blocks scheduling.
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "mostrador.selectorLabels" (dict "root" $root "component" .component) | nindent 14 }}
      {{- end }}
{{- end -}}
