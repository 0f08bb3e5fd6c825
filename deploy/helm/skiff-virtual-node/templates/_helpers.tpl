{{/* Name of the chart, or nameOverride. */}}
{{- define "skiff-virtual-node.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Name of every object: fullnameOverride, else the release name when it already
holds the chart's name, else <release>-<chart>. The ClusterRole and its binding
are cluster-wide, so the name keeps two releases apart.
*/}}
{{- define "skiff-virtual-node.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "skiff-virtual-node.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "skiff-virtual-node.selectorLabels" -}}
app.kubernetes.io/name: {{ include "skiff-virtual-node.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "skiff-virtual-node.labels" -}}
{{ include "skiff-virtual-node.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The Secret holding the Skiff token, and its key. */}}
{{- define "skiff-virtual-node.secretName" -}}
{{- if .Values.existingSecret -}}{{ .Values.existingSecret }}{{- else -}}{{ include "skiff-virtual-node.fullname" . }}{{- end -}}
{{- end -}}
{{- define "skiff-virtual-node.secretKey" -}}
{{- if .Values.existingSecret -}}{{ .Values.existingSecretKey | default "token" }}{{- else -}}token{{- end -}}
{{- end -}}

{{/* "true" when the node signs in as a service principal (the Secret holds AZURE_*). */}}
{{- define "skiff-virtual-node.servicePrincipal" -}}
{{- if or .Values.servicePrincipal.enabled .Values.servicePrincipal.appId -}}true{{- end -}}
{{- end -}}

{{/* The volume source of the Skiff server's CA, "" when none is given. */}}
{{- define "skiff-virtual-node.caVolume" -}}
{{- if .Values.ca.pem -}}
configMap:
  name: {{ include "skiff-virtual-node.fullname" . }}-ca
{{- else if .Values.ca.existingConfigMap -}}
configMap:
  name: {{ .Values.ca.existingConfigMap }}
{{- else if .Values.ca.existingSecret -}}
secret:
  secretName: {{ .Values.ca.existingSecret }}
{{- end -}}
{{- end -}}
