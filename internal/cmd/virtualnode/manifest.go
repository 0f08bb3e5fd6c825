package virtualnodecmd

import (
	"cmp"
	"io"
	"os"
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
	// A service principal (ClientID set) replaces Token: its AZURE_*
	// go in the Secret. CA, the PEM of the Skiff server's CA, goes in a
	// ConfigMap mounted for SKIFF_CA_FILE.
	ClientID, ClientSecret, Tenant string
	CA                             string
}

func newManifestCmd(f *cmdutil.Factory) *cobra.Command {
	o := &ManifestOptions{}
	var caFile string
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Print a ready-to-apply Deployment, ServiceAccount, ClusterRole, ClusterRoleBinding and Secret of the virtual node",
		Long: `Print the Kubernetes objects that run skiff virtual-node in a cluster, for kubectl apply -f -.
The node's credentials are put in a Secret: a service principal (--client-id, --client-secret,
--tenant, default $AZURE_CLIENT_ID, $AZURE_CLIENT_KEY or $AZURE_CLIENT_SECRET, $AZURE_TENANT_ID;
the subscription from --subscription or $AZURE_SUBSCRIPTION_ID), as the seeds' connector takes the
output of ` + "`skiff ad sp create-for-rbac -n NAME --role contributor --scopes RG-ID`" + `;
else the Skiff token of $SKIFF_TOKEN (else a placeholder is printed). --ca-file (default
$SKIFF_CA_FILE) puts the server's CA in a ConfigMap the node trusts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Endpoint == "" {
				o.Endpoint = f.Getenv(cmdutil.EnvEndpoint)
			}
			if o.Endpoint == "" {
				return cmdutil.FlagErrorf("--endpoint (or $%s) is required: the Skiff server's URL as seen from inside the cluster", cmdutil.EnvEndpoint)
			}
			if err := o.credentials(f, caFile); err != nil {
				return err
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
	fl.StringVar(&o.ClientID, "client-id", "", "appId of the node's service principal (default $"+EnvClientID+")")
	fl.StringVar(&o.ClientSecret, "client-secret", "", "its password (default $"+EnvClientKey+", else $"+EnvClientSecret+")")
	fl.StringVar(&o.Tenant, "tenant", "", "its tenant (default $"+EnvTenantID+")")
	fl.StringVar(&caFile, "ca-file", "", "PEM file of the Skiff server's CA, for an https endpoint (default $"+cmdutil.EnvCAFile+")")
	return cmd
}

// credentials fills in the service principal and the CA from the flags,
// else the environment, and the token when there is no principal.
func (o *ManifestOptions) credentials(f *cmdutil.Factory, caFile string) error {
	env := func(v *string, names ...string) {
		for _, n := range names {
			if *v == "" {
				*v = f.Getenv(n)
			}
		}
	}
	env(&o.ClientID, EnvClientID)
	if o.ClientID != "" {
		env(&o.ClientSecret, EnvClientKey, EnvClientSecret)
		env(&o.Tenant, EnvTenantID)
		env(&o.Subscription, EnvSubscriptionID)
		if o.ClientSecret == "" {
			o.ClientSecret = "REPLACE-WITH-CLIENT-SECRET"
		}
	} else {
		o.Token = cmp.Or(f.Getenv(cmdutil.EnvToken), "REPLACE-WITH-SKIFF-TOKEN")
	}
	env(&caFile, cmdutil.EnvCAFile)
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return cmdutil.FlagErrorf("--ca-file: %v", err)
		}
		o.CA = string(b)
	}
	return nil
}

// WriteManifest writes the objects as one YAML stream.
func WriteManifest(w io.Writer, o ManifestOptions) error {
	return manifestTmpl.Execute(w, o)
}

var manifestTmpl = template.Must(template.New("manifest").Funcs(template.FuncMap{
	"q": func(s string) string { return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"` },
	"indent": func(n int, s string) string {
		return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+strings.Repeat(" ", n))
	},
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
{{- if .ClientID}}
  AZURE_CLIENT_ID: {{q .ClientID}}
  AZURE_CLIENT_KEY: {{q .ClientSecret}}
  AZURE_TENANT_ID: {{q .Tenant}}
{{- if .Subscription}}
  AZURE_SUBSCRIPTION_ID: {{q .Subscription}}
{{- end}}
{{- else}}
  token: {{q .Token}}
{{- end}}
---
{{- if .CA}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{.Name}}-ca
  namespace: {{.Namespace}}
data:
  ca.crt: |
    {{indent 4 .CA}}
---
{{- end}}
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
{{- if .ClientID}}
        # the service principal: AZURE_CLIENT_ID, AZURE_CLIENT_KEY, AZURE_TENANT_ID, AZURE_SUBSCRIPTION_ID
        envFrom:
        - secretRef:
            name: {{.Name}}
{{- end}}
        env:
        - name: SKIFF_ENDPOINT
          value: {{q .Endpoint}}
{{- if not .ClientID}}
        - name: SKIFF_TOKEN
          valueFrom:
            secretKeyRef:
              name: {{.Name}}
              key: token
{{- if .Subscription}}
        - name: SKIFF_SUBSCRIPTION
          value: {{q .Subscription}}
{{- end}}
{{- end}}
{{- if .CA}}
        - name: SKIFF_CA_FILE
          value: /etc/skiff-virtual-node/skiff-ca/ca.crt
{{- end}}
        - name: ACI_RESOURCE_GROUP
          value: {{q .ResourceGroup}}
        - name: ACI_REGION
          value: {{q .Region}}
        - name: VKUBELET_POD_IP
          valueFrom:
            fieldRef:
              fieldPath: status.podIP
{{- if .CA}}
        volumeMounts:
        - name: skiff-ca
          mountPath: /etc/skiff-virtual-node/skiff-ca
          readOnly: true
      volumes:
      - name: skiff-ca
        configMap:
          name: {{.Name}}-ca
{{- end}}
`))
