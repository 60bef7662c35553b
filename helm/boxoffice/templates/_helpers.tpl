{{/* Knative Service name of a function: get_event -> get-event */}}
{{- define "boxoffice.svcName" -}}{{ . | replace "_" "-" }}{{- end -}}

{{- define "boxoffice.labels" -}}
app.kubernetes.io/part-of: boxoffice
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "boxoffice.dbNamespace" -}}{{ .Values.database.namespace | default .Release.Namespace }}{{- end -}}

{{- define "boxoffice.dbSecret" -}}{{ .Values.database.cluster }}-app{{- end -}}

{{/* Σ maxScale × pool max over enabled functions (+ the admission controller's replicas × pool
max); fails the render when over budget. */}}
{{- define "boxoffice.connectionBudget" -}}
{{- $sum := 0 -}}
{{- range $name, $fn := .Values.functions -}}
{{- if $fn.enabled -}}{{- $sum = add $sum (mul $fn.autoscaling.maxScale $fn.dbPool.max) -}}{{- end -}}
{{- end -}}
{{- if and .Values.admission.enabled .Values.functions.waiting_room.enabled -}}
{{- $sum = add $sum (mul .Values.admission.replicas .Values.admission.dbPool.max) -}}
{{- end -}}
{{- $total := add $sum .Values.database.connectionReserve -}}
{{- if gt (int $total) (int .Values.database.maxConnections) -}}
{{- fail (printf "connection budget exceeded: sum(maxScale x dbPool.max) = %d + reserve %d > database.maxConnections %d" (int $sum) (int .Values.database.connectionReserve) (int .Values.database.maxConnections)) -}}
{{- end -}}
{{- $total -}}
{{- end -}}
