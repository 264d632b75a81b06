{{- define "pullcache.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pullcache.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pullcache.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pullcache.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pullcache.labels" -}}
{{ include "pullcache.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The environment variable carrying registry NAME's password. */}}
{{- define "pullcache.passwordEnv" -}}
{{- printf "REGISTRY_PASSWORD_%s" (regexReplaceAll "[^A-Za-z0-9]" . "_" | upper) -}}
{{- end -}}

{{- define "pullcache.scheme" -}}
{{- if .Values.tls.secretName }}HTTPS{{ else }}HTTP{{ end -}}
{{- end -}}

{{/*
The configuration file: .Values.config, the registries (passwordSecret
turned into password_env), and the keys the chart owns: where it listens,
where the data volume is, the drain's grace, the size bound and the paths
of the mounted Secrets.
*/}}
{{- define "pullcache.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $regs := dict -}}
{{- range $name, $r := .Values.registries -}}
{{- $r := $r | default dict -}}
{{- $out := omit $r "passwordSecret" -}}
{{- if $r.passwordSecret -}}
{{- $_ := set $out "password_env" (include "pullcache.passwordEnv" $name) -}}
{{- end -}}
{{- $_ := set $regs $name $out -}}
{{- end -}}
{{- $_ := set $cfg "registries" $regs -}}
{{- $_ := set $cfg "listen" ":5000" -}}
{{- $_ := set $cfg "data" "/data" -}}
{{- $_ := set $cfg "shutdown_grace" (printf "%ds" (int .Values.shutdownGraceSeconds)) -}}
{{- if .Values.maxSize -}}
{{- $_ := set $cfg "max_size" (toString .Values.maxSize) -}}
{{- end -}}
{{- if .Values.tls.secretName -}}
{{- $_ := set $cfg "tls" (dict "cert" "/etc/pullcache/tls/tls.crt" "key" "/etc/pullcache/tls/tls.key") -}}
{{- end -}}
{{- if .Values.htpasswd.secretName -}}
{{- $auth := deepCopy ($cfg.auth | default dict) -}}
{{- $_ := set $auth "htpasswd" "/etc/pullcache/auth/htpasswd" -}}
{{- $_ := set $cfg "auth" $auth -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The container's env: registry passwords and the admin token, from Secrets. */}}
{{- define "pullcache.env" -}}
{{- $env := list -}}
{{- range $name, $r := .Values.registries -}}
{{- if and $r $r.passwordSecret -}}
{{- $env = append $env (dict "name" (include "pullcache.passwordEnv" $name) "valueFrom" (dict "secretKeyRef" (dict "name" $r.passwordSecret.name "key" ($r.passwordSecret.key | default "password")))) -}}
{{- end -}}
{{- end -}}
{{- if .Values.adminToken.secretName -}}
{{- $env = append $env (dict "name" "PULLCACHE_ADMIN_TOKEN" "valueFrom" (dict "secretKeyRef" (dict "name" .Values.adminToken.secretName "key" .Values.adminToken.key))) -}}
{{- end -}}
{{- if $env -}}
env:
{{ toYaml $env }}
{{- end -}}
{{- end -}}
