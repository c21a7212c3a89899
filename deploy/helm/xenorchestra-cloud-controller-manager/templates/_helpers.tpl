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

{{/* An alias of an earlier version of this chart wins when set, else the Go key. */}}
{{- define "xoccm.verbosity" -}}
{{- if kindIs "invalid" .Values.logVerbosity }}{{ .Values.logVerbosityLevel }}{{ else }}{{ .Values.logVerbosity }}{{ end -}}
{{- end -}}

{{- define "xoccm.hostNetwork" -}}
{{- if kindIs "invalid" .Values.hostNetwork }}{{ .Values.useHostNetwork }}{{ else }}{{ .Values.hostNetwork }}{{ end -}}
{{- end -}}

{{- define "xoccm.daemonSet" -}}
{{- if kindIs "invalid" .Values.daemonSet.enabled }}{{ .Values.useDaemonSet }}{{ else }}{{ .Values.daemonSet.enabled }}{{ end -}}
{{- end -}}

{{/* --leader-elect: as set, else the Go chart's rule (off with one replica outside
     DaemonSet mode). Off with several replicas fails the render. */}}
{{- define "xoccm.leaderElect" -}}
{{- $daemonSet := eq (include "xoccm.daemonSet" .) "true" -}}
{{- $single := and (eq (int .Values.replicaCount) 1) (not $daemonSet) -}}
{{- if kindIs "invalid" .Values.leaderElection.enabled -}}
{{- ternary "false" "true" $single -}}
{{- else if .Values.leaderElection.enabled -}}
true
{{- else if $single -}}
false
{{- else -}}
{{- fail "leaderElection.enabled=false is only safe with replicaCount=1 and useDaemonSet=false" -}}
{{- end -}}
{{- end -}}

{{/* The cloud config written by the chart: `config` merged with extraConfig, the
     credentials file of credentialsSecret (tokenFile or passwordFile), and the
     topology values that are set (a key also set in config to another value fails). */}}
{{- define "xoccm.inlineConfig" -}}
{{- $config := dict -}}
{{- with .Values.config }}{{ $config = merge $config (deepCopy .) }}{{ end -}}
{{- with .Values.extraConfig }}{{ $config = merge $config (deepCopy .) }}{{ end -}}
{{- if and $config .Values.credentialsSecret.name -}}
{{- $key := include "xoccm.credentialsConfigKey" . -}}
{{- range list (trimSuffix "File" $key) $key -}}
{{- if hasKey $config . -}}
{{- fail (printf "config.%s and credentialsSecret: choose one (credentialsSecret sets %s)" . $key) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $config $key (include "xoccm.credentialsFile" .) -}}
{{- end -}}
{{- range $key, $value := (include "xoccm.topology" . | fromYaml) -}}
{{- if and (hasKey $config $key) (ne (toString (get $config $key)) (toString $value)) -}}
{{- fail (printf "topology.%s=%v and config.%s=%v disagree: set it in one place" $key $value $key (get $config $key)) -}}
{{- end -}}
{{- $_ := set $config $key $value -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* credentialsSecret: the mounted file, and the config key or variable naming it. */}}
{{- define "xoccm.credentialsKey" -}}
{{- .Values.credentialsSecret.passwordKey | default .Values.credentialsSecret.tokenKey -}}
{{- end -}}
{{- define "xoccm.credentialsFile" -}}
/etc/xenorchestra-credentials/{{ include "xoccm.credentialsKey" . }}
{{- end -}}
{{- define "xoccm.credentialsConfigKey" -}}
{{- ternary "passwordFile" "tokenFile" (not (empty .Values.credentialsSecret.passwordKey)) -}}
{{- end -}}
{{- define "xoccm.credentialsVariable" -}}
{{- ternary "XOA_PASSWORD_FILE" "XOA_TOKEN_FILE" (not (empty .Values.credentialsSecret.passwordKey)) -}}
{{- end -}}
{{/* The topology values that are set, as cloud-config keys (zoneSource, zoneTag,
     regionSource, regionTag). They need the chart's own config: with
     existingConfigSecret or envFromSecret they would be lost, so that fails. */}}
{{- define "xoccm.topology" -}}
{{- $set := dict -}}
{{- range $key, $value := (.Values.topology | default dict) -}}
{{- if $value }}{{ $_ := set $set $key $value }}{{ end -}}
{{- end -}}
{{- if and $set (or .Values.existingConfigSecret .Values.envFromSecret) -}}
{{- fail (printf "topology.* needs the chart's config; with %s put %s in that configuration instead" (ternary "existingConfigSecret" "envFromSecret" (not (empty .Values.existingConfigSecret))) (keys $set | sortAlpha | join ", ")) -}}
{{- end -}}
{{- toYaml $set -}}
{{- end -}}

{{/* Which configuration source is used: existing (existingConfigSecret, which wins
     over config as in the Go chart), inline (config), env (envFromSecret) or none
     (no --cloud-config: XOA_* variables from extraEnvs, as in the Go chart). */}}
{{- define "xoccm.configSource" -}}
{{- $inline := ne (include "xoccm.inlineConfig" .) "{}" -}}
{{- if and .Values.envFromSecret (or .Values.existingConfigSecret $inline) -}}
{{- fail (printf "choose one configuration source, not %s + envFromSecret" (ternary "existingConfigSecret" "config" (not (empty .Values.existingConfigSecret)))) -}}
{{- end -}}
{{- if .Values.existingConfigSecret -}}existing
{{- else if $inline -}}inline
{{- else if .Values.envFromSecret -}}env
{{- else -}}none
{{- end -}}
{{- end -}}

{{- define "xoccm.configPath" -}}
{{- if eq (include "xoccm.configSource" .) "existing" -}}
/etc/xenorchestra/{{ .Values.existingConfigSecretPath }}
{{- else -}}
/etc/xenorchestra/config.yaml
{{- end -}}
{{- end -}}

{{/* The kubelet serving CSR approver: csrApproval.enabled, or named in enabledControllers
     (its RBAC is rendered either way; --controllers names it). */}}
{{- define "xoccm.csrApproval" -}}
{{- $named := or (has "cloud-node-csr-approval" .Values.enabledControllers) (has "cloud-node-csr-approval-controller" .Values.enabledControllers) -}}
{{- or .Values.csrApproval.enabled $named -}}
{{- end -}}

{{/* --controllers: enabledControllers, and the CSR approver when csrApproval.enabled. */}}
{{- define "xoccm.controllers" -}}
{{- $controllers := .Values.enabledControllers -}}
{{- if and .Values.csrApproval.enabled (not (has "cloud-node-csr-approval" $controllers)) (not (has "cloud-node-csr-approval-controller" $controllers)) -}}
{{- $controllers = append $controllers "cloud-node-csr-approval" -}}
{{- end -}}
{{- join "," $controllers -}}
{{- end -}}
