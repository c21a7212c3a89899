{{- define "xoccm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "xoccm.fullname" -}}
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

{{- define "xoccm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "xoccm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "xoccm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "xoccm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "xoccm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "xoccm.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Which configuration source is used; fails on several. With none, the
     Secret named like the release is mounted (created beforehand by kubectl). */}}
{{- define "xoccm.configSource" -}}
{{- $sources := list -}}
{{- if .Values.config.url }}{{ $sources = append $sources "inline" }}{{ end -}}
{{- if .Values.existingConfigSecret }}{{ $sources = append $sources "existing" }}{{ end -}}
{{- if .Values.envFromSecret }}{{ $sources = append $sources "env" }}{{ end -}}
{{- if eq (len $sources) 0 -}}
{{- $sources = list "existing" -}}
{{- else if gt (len $sources) 1 -}}
{{- fail (printf "choose one configuration source, not %s" (join " + " $sources)) -}}
{{- end -}}
{{- first $sources -}}
{{- end -}}

{{- define "xoccm.configSecretName" -}}
{{- if .Values.existingConfigSecret -}}
{{- .Values.existingConfigSecret -}}
{{- else -}}
{{- include "xoccm.fullname" . -}}
{{- end -}}
{{- end -}}
