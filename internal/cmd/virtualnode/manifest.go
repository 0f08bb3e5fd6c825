package virtualnodecmd

import (
	"io"
	"strings"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
	"github.com/skiff-sh/skiff/internal/virtualnode"
)

// ManifestOptions are the values of `skiff virtual-node manifest`.
type ManifestOptions struct {
	Namespace     string
	Name          string
	Image         string
	Endpoint      string
	Token         string
	Subscription  string
	ResourceGroup string
	Region        string
	NodeName      string
	Taint         string
}

func newManifestCmd(f *cmdutil.Factory) *cobra.Command {
	o := &ManifestOptions{}
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Print a ready-to-apply Deployment, ServiceAccount, ClusterRole, ClusterRoleBinding and Secret of the virtual node",
		Long: `Print the Kubernetes objects that run skiff virtual-node in a cluster, for kubectl apply -f -.
The Skiff token is put in a Secret: it is read from $SKIFF_TOKEN (else a placeholder is printed).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Endpoint == "" {
				o.Endpoint = f.Getenv(cmdutil.EnvEndpoint)
			}
			if o.Endpoint == "" {
				return cmdutil.FlagErrorf("--endpoint (or $%s) is required: the Skiff server's URL as seen from inside the cluster", cmdutil.EnvEndpoint)
			}
			o.Token = f.Getenv(cmdutil.EnvToken)
			if o.Token == "" {
				o.Token = "REPLACE-WITH-SKIFF-TOKEN"
			}
			if _, err := ParseTaint(o.Taint); err != nil {
				return err
			}
			return WriteManifest(cmd.OutOrStdout(), *o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Namespace, "namespace", "kube-system", "namespace of the virtual node's objects")
	fl.StringVar(&o.Name, "name", "skiff-virtual-node", "name of the Deployment, ServiceAccount and RBAC objects")
	fl.StringVar(&o.Image, "image", "ghcr.io/skiff-sh/skiff:latest", "image holding the skiff binary")
	fl.StringVar(&o.Endpoint, "endpoint", "", "URL of the Skiff server as reachable from the cluster (default $"+cmdutil.EnvEndpoint+")")
	fl.StringVar(&o.Subscription, "subscription", "", "Skiff subscription (default: the server's first)")
	fl.StringVar(&o.ResourceGroup, "resource-group", "skiff-virtual-node", "resource group of the pods' container groups")
	fl.StringVar(&o.Region, "region", "local", "location of the container groups")
	fl.StringVar(&o.NodeName, "node-name", virtualnode.DefaultNodeName, "name of the Kubernetes node")
	fl.StringVar(&o.Taint, "taint", virtualnode.DefaultTaint, "taint of the node; empty for none")
	return cmd
}

// WriteManifest writes the objects as one YAML stream.
func WriteManifest(w io.Writer, o ManifestOptions) error {
	return manifestTmpl.Execute(w, o)
}

var manifestTmpl = template.Must(template.New("manifest").Funcs(template.FuncMap{
	"q": func(s string) string { return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"` },
}).Parse(`apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{.Name}}
  namespace: {{.Namespace}}
---
apiVersion: v1
kind: Secret
metadata:
  name: {{.Name}}
  namespace: {{.Namespace}}
type: Opaque
stringData:
  token: {{q .Token}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{.Name}}
rules:
- apiGroups: [""]
  resources: ["configmaps", "secrets", "services"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "delete", "patch", "update"]
- apiGroups: [""]
  resources: ["pods/status"]
  verbs: ["update", "patch"]
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["create", "get", "list", "watch", "patch", "update"]
- apiGroups: [""]
  resources: ["nodes/status"]
  verbs: ["update", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch", "update"]
- apiGroups: [""]
  resources: ["serviceaccounts/token"]
  verbs: ["create"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update", "patch"]
- apiGroups: ["certificates.k8s.io"]
  resources: ["certificatesigningrequests"]
  verbs: ["create", "get", "list", "watch"]
- apiGroups: ["authentication.k8s.io"]
  resources: ["tokenreviews"]
  verbs: ["create"]
- apiGroups: ["authorization.k8s.io"]
  resources: ["subjectaccessreviews"]
  verbs: ["create"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{.Name}}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{.Name}}
subjects:
- kind: ServiceAccount
  name: {{.Name}}
  namespace: {{.Namespace}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{.Name}}
  namespace: {{.Namespace}}
  labels:
    app: {{.Name}}
spec:
  replicas: 1
  strategy:
    type: Recreate
  selector:
    matchLabels:
      app: {{.Name}}
  template:
    metadata:
      labels:
        app: {{.Name}}
    spec:
      serviceAccountName: {{.Name}}
      containers:
      - name: virtual-node
        image: {{.Image}}
        command: [skiff]
        args:
        - virtual-node
        - {{q (print "--node-name=" .NodeName)}}
        - {{q (print "--taint=" .Taint)}}
        # the API server's kubelet client certificate is signed by the cluster CA
        - --client-ca-file=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt
        ports:
        - name: kubelet
          containerPort: 10250
        env:
        - name: SKIFF_ENDPOINT
          value: {{q .Endpoint}}
        - name: SKIFF_TOKEN
          valueFrom:
            secretKeyRef:
              name: {{.Name}}
              key: token
{{- if .Subscription}}
        - name: SKIFF_SUBSCRIPTION
          value: {{q .Subscription}}
{{- end}}
        - name: ACI_RESOURCE_GROUP
          value: {{q .ResourceGroup}}
        - name: ACI_REGION
          value: {{q .Region}}
        - name: VKUBELET_POD_IP
          valueFrom:
            fieldRef:
              fieldPath: status.podIP
`))
