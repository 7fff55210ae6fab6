{{/* Names and labels shared by every template. */}}

{{- define "ago.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ago.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ago.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ago.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ago.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ago.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ago.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ago.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Lease the operator takes when leader election is on (src/controllers.rs). */}}
{{- define "ago.leaseName" -}}
{{- if .Values.shardSelector -}}
azure-gallery-operator-{{ .Values.shardSelector | sha256sum | trunc 8 }}
{{- else -}}
azure-gallery-operator
{{- end -}}
{{- end }}

{{/* Rules for our custom resources, granted cluster-wide or per watched namespace. */}}
{{- define "ago.workloadRules" -}}
- apiGroups: ["compute.gallery.dev"]
  resources: ["galleries", "imagedefinitions", "imageversions", "virtualmachines", "virtualmachinescalesets"]
  # delete: a parent being deleted deletes the child objects it owns.
  verbs: ["get", "list", "watch", "update", "patch", "delete"]
- apiGroups: ["compute.gallery.dev"]
  resources: ["galleries/status", "imagedefinitions/status", "imageversions/status", "virtualmachines/status", "virtualmachinescalesets/status"]
  verbs: ["get", "update", "patch"]
- apiGroups: ["compute.gallery.dev"]
  # Setting ownerReferences with blockOwnerDeletion on child objects, and finalizers.
  resources: ["galleries/finalizers", "imagedefinitions/finalizers", "imageversions/finalizers", "virtualmachines/finalizers", "virtualmachinescalesets/finalizers"]
  verbs: ["update"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.rbac.readSecrets }}
- apiGroups: [""]
  # spec.credentialRef and a VM's adminPasswordSecretRef, read by name; patch adds and removes
  # the finalizer compute.gallery.dev/credentials-in-use on a credentialRef Secret in use.
  resources: ["secrets"]
  verbs: ["get", "patch"]
{{- end }}
{{- end }}
