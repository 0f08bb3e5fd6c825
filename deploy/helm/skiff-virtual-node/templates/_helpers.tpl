{{- define "skiff-virtual-node.fullname" -}}
{{- printf "%s" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "skiff-virtual-node.secretName" -}}
{{- if .Values.existingSecret -}}{{ .Values.existingSecret }}{{- else -}}{{ include "skiff-virtual-node.fullname" . }}{{- end -}}
{{- end -}}
