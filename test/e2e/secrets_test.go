package e2e

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// TestSecretsEncryptedAtRest: a group's secure environment value, secret
// volume, registry password and storage account key (a real one, of an
// account whose two keys are sealed in the store), given through the
// API, reach the container but no file of the data dir (skiff.db, the
// runtime's records, the server's log) nor of the runtime's tmpfs, and
// never come back from a read; across a restart and a kill -9 of the
// server the group keeps running with its values.
func TestSecretsEncryptedAtRest(t *testing.T) {
	s := startServer(t)
	const (
		envSecret  = "zz-e2e-secure-env-5150"
		fileSecret = "zz-e2e-secret-file-8086"
		regSecret  = "zz-e2e-registry-pw-6502"
	)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{Username: "alice", Password: regSecret})
	image := testenv.Push(t, reg, "private/app:v1", testenv.BusyboxImage(t, testenv.ImageOptions{}))

	s.mustSkiff("group", "create", "-n", "rg", "-l", "local")
	// The share's account and its real key (an azureFile volume mounts
	// only with one of its account's keys).
	s.mustSkiff("storage", "account", "create", "-n", "acct1", "-g", "rg", "--sku", "Standard_LRS")
	s.mustSkiff("storage", "share-rm", "create", "--storage-account", "acct1", "-n", "share1")
	shareSecret := strings.TrimSpace(s.mustSkiff("storage", "account", "keys", "list", "-g", "rg", "--account-name", "acct1", "--query", "[0].value", "-o", "tsv"))
	secondKey := strings.TrimSpace(s.mustSkiff("storage", "account", "keys", "list", "-g", "rg", "--account-name", "acct1", "--query", "[1].value", "-o", "tsv"))
	fileB64 := base64.StdEncoding.EncodeToString([]byte(fileSecret))
	needles := []string{envSecret, fileSecret, fileB64, regSecret, shareSecret, secondKey}
	body := groupBody(image, func(p map[string]any) {
		c := container0(p)
		c["environmentVariables"] = []map[string]any{{"name": "TOKEN", "secureValue": envSecret}, {"name": "MODE", "value": "plain"}}
		c["volumeMounts"] = []map[string]any{
			{"name": "creds", "mountPath": "/creds", "readOnly": true},
			{"name": "share", "mountPath": "/share"},
		}
		p["volumes"] = []map[string]any{
			{"name": "creds", "secret": map[string]string{"token": fileB64}},
			{"name": "share", "azureFile": map[string]any{"shareName": "share1", "storageAccountName": "acct1", "storageAccountKey": shareSecret}},
		}
		p["imageRegistryCredentials"] = []map[string]any{{"server": reg.Addr, "username": "alice", "password": regSecret}}
	})
	path := "/subscriptions/" + s.Subscription + "/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/vault"
	if r := s.send("PUT", path, body); r.Status != 201 && r.Status != 200 {
		t.Fatalf("PUT: %d %s", r.Status, r)
	} else if found := contains(r.String(), needles); len(found) > 0 {
		t.Fatalf("PUT answer holds %v: %s", found, r)
	}

	_, _, _, _, rtDir := runtime.HostLayout(s.hostDir())
	check := func(when string) {
		t.Helper()
		s.waitRunning("rg", "vault")
		out := s.mustSkiff("container", "exec", "-g", "rg", "-n", "vault", "--exec-command",
			`["sh","-c","echo \"$TOKEN $MODE\"; cat /creds/token; echo; echo share-ok > /share/probe && cat /share/probe"]`)
		out = strings.ReplaceAll(out, "\r", "") // the exec's terminal (which may echo a ^@ first)
		if want := envSecret + " plain\n" + fileSecret + "\nshare-ok\n"; !strings.HasSuffix(out, want) {
			t.Fatalf("%s: the container sees %q, want %q", when, out, want)
		}
		get := s.send("GET", path, nil).Body
		list := s.send("GET", "/subscriptions/"+s.Subscription+"/providers/Microsoft.ContainerInstance/containerGroups", nil).Body
		if found := contains(string(get)+string(list), needles); len(found) > 0 {
			t.Fatalf("%s: a read returns %v", when, found)
		}
		if !strings.Contains(string(get), `"name":"TOKEN"`) || !strings.Contains(string(get), `"secret":{}`) {
			t.Fatalf("%s: GET lost the variable or the volume: %s", when, get)
		}
		if found := testenv.FindPlain(t, needles, append(s.stateDirs(), runtime.RunDir(rtDir))...); len(found) > 0 {
			t.Fatalf("%s: plain secrets in files:\n%s", when, strings.Join(found, "\n"))
		}
		records, _ := filepath.Glob(filepath.Join(rtDir, "groups", "*", "group.json"))
		if len(records) != 1 {
			t.Fatalf("%s: %d group records, want 1", when, len(records))
		}
		for _, f := range append(records, s.storeFile()) {
			data, err := os.ReadFile(f)
			if err != nil || !strings.Contains(string(data), "skiff-sealed:v1:") {
				t.Fatalf("%s: %s holds no sealed value (%v)", when, f, err)
			}
		}
	}
	check("running")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		s.Stop(sig)
		s.Start()
		check("after the server was stopped with " + sig.String())
	}
	if fi, err := os.Stat(filepath.Join(s.DataDir, "seal.key")); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("seal.key: %v, %v", fi, err)
	}
}

func contains(s string, needles []string) []string {
	var found []string
	for _, n := range needles {
		if strings.Contains(s, n) {
			found = append(found, n)
		}
	}
	return found
}

// stateDirs are the dirs the Skiff under test writes into: the server's
// data dir, and a cluster's agent's and etcd's.
func (s *server) stateDirs() []string {
	if s.Agent == nil {
		return []string{s.DataDir}
	}
	return []string{s.DataDir, s.Agent.DataDir, s.Etcd.Dir}
}

// storeFile is the file the store keeps the records in: the server's
// skiff.db, or the database of a cluster's etcd.
func (s *server) storeFile() string {
	if s.Etcd == nil {
		return filepath.Join(s.DataDir, "skiff.db")
	}
	return filepath.Join(s.Etcd.Dir, "data", "member", "snap", "db")
}
