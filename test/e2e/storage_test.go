package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/internal/testenv"
)

// TestStorageFlow is the seed's storage flow through skiff, with real
// containers: a storage account, its key from `keys list --query
// "[0].value" -o tsv`, a share; a group writes into the share and is
// deleted, a second group reads what the first wrote. A wrong key fails
// the group clearly (the error, a Failed event that `container show`
// shows) and mounts nothing; a share deleted and created again is empty
// (its data is gone from the host); a renewed key's old value no longer
// mounts.
func TestStorageFlow(t *testing.T) {
	s := startServer(t)
	_, image := busyboxRegistry(t, testenv.RegistryOptions{})
	s.mustSkiff("group", "create", "-n", "rg", "-l", "local")
	s.mustSkiff("storage", "account", "create", "-n", "e2estore1", "-g", "rg", "--sku", "Standard_LRS")
	key := strings.TrimSpace(s.mustSkiff("storage", "account", "keys", "list", "--resource-group", "rg", "--account-name", "e2estore1",
		"--query", "[0].value", "-o", "tsv"))
	if len(key) != 88 {
		t.Fatalf("keys list printed %q", key)
	}
	s.mustSkiff("storage", "share-rm", "create", "--storage-account", "e2estore1", "-n", "data")

	// group runs a command with the share mounted at /mnt/data.
	group := func(name, accountKey, script string) (string, string, int) {
		return s.skiff("container", "create", "-g", "rg", "-n", name, "--image", image,
			"--azure-file-volume-share-name", "data", "--azure-file-volume-account-name", "e2estore1",
			"--azure-file-volume-account-key", accountKey, "--azure-file-volume-mount-path", "/mnt/data",
			"--command-line", "sh -c '"+script+"; sleep 3600'")
	}
	mustGroup := func(name, accountKey, script string) {
		t.Helper()
		if out, errOut, code := group(name, accountKey, script); code != 0 {
			t.Fatalf("container create %s: exit %d\n%s%s\nserver log: %s", name, code, out, errOut, s.LogTail(20))
		}
	}
	logsSay := func(name, want string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			out, _, _ := s.skiff("container", "logs", "-g", "rg", "-n", name)
			if strings.Contains(out, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's log is %q, want %q", name, out, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	mustGroup("writer", key, "echo written-by-the-first-group > /mnt/data/msg && echo wrote")
	logsSay("writer", "wrote")
	s.mustSkiff("container", "delete", "-g", "rg", "-n", "writer", "--yes")
	mustGroup("reader", key, "cat /mnt/data/msg")
	logsSay("reader", "written-by-the-first-group")
	s.mustSkiff("container", "delete", "-g", "rg", "-n", "reader", "--yes")
	shareDirs := func() []string {
		entries, _ := os.ReadDir(filepath.Join(s.hostDir(), "shares", "e2estore1"))
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	if dirs := shareDirs(); len(dirs) != 1 || !strings.HasPrefix(dirs[0], "data.") {
		t.Fatalf("the host holds the share directories %v, want one data.<id>", dirs)
	}

	// A wrong key: the group fails with the mount error and an event, and
	// nothing runs.
	bad := strings.ToUpper(key[:10]) + key[10:]
	if bad == key {
		bad = "A" + key[1:]
	}
	_, errOut, code := group("badkey", bad, "echo should-not-run")
	want := "Failed to mount Azure File Volume azurefile: the storage account key is not valid for account 'e2estore1'"
	if code == 0 || !strings.Contains(errOut, want) || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("a wrong key: exit %d, stderr %q; want one line saying %q", code, errOut, want)
	}
	var shown struct {
		ProvisioningState string `json:"provisioningState"`
		InstanceView      struct {
			State  string `json:"state"`
			Events []struct{ Name, Message, Type string }
		} `json:"instanceView"`
	}
	out := s.mustSkiff("container", "show", "-g", "rg", "-n", "badkey")
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("container show: %v\n%s", err, out)
	}
	failed := false
	for _, e := range shown.InstanceView.Events { // a cluster's Scheduled event comes first
		failed = failed || (e.Name == "Failed" && e.Type == "Warning" && strings.Contains(e.Message, want))
	}
	if shown.ProvisioningState != "Failed" || shown.InstanceView.State != "Failed" || !failed {
		t.Fatalf("container show of the failed group: %s", out)
	}
	if strings.Contains(out, key) || strings.Contains(s.Log(), key) || strings.Contains(s.Log(), bad) {
		t.Fatal("a storage key reached a read or the server's log")
	}
	if logs, _, _ := s.skiff("container", "logs", "-g", "rg", "-n", "badkey"); strings.Contains(logs, "should-not-run") {
		t.Fatal("the group with the wrong key ran")
	}
	s.mustSkiff("container", "delete", "-g", "rg", "-n", "badkey", "--yes")

	// Deleted and created again, the share is empty: its data left the host.
	s.mustSkiff("storage", "share-rm", "delete", "--storage-account", "e2estore1", "-n", "data", "--yes")
	if dirs := shareDirs(); len(dirs) != 0 {
		t.Fatalf("after the share's delete the host holds %v", dirs)
	}
	s.mustSkiff("storage", "share-rm", "create", "--storage-account", "e2estore1", "-n", "data")
	mustGroup("fresh", key, "test -e /mnt/data/msg && echo still-there || echo empty-share")
	logsSay("fresh", "empty-share")
	s.mustSkiff("container", "delete", "-g", "rg", "-n", "fresh", "--yes")

	// A renewed key: the old one no longer mounts, the new one does.
	renewed := strings.TrimSpace(s.mustSkiff("storage", "account", "keys", "renew", "-g", "rg", "--account-name", "e2estore1",
		"--key", "primary", "--query", "[0].value", "-o", "tsv"))
	if _, errOut, code := group("oldkey", key, "echo should-not-run"); code == 0 || !strings.Contains(errOut, "the storage account key is not valid") {
		t.Fatalf("the renewed key's old value: exit %d, stderr %q", code, errOut)
	}
	mustGroup("newkey", renewed, "echo mounted-with-the-new-key")
	logsSay("newkey", "mounted-with-the-new-key")

	// A host that missed a share's delete removes its data when its agent
	// starts; a live share's data, and a directory Skiff did not name,
	// stay.
	live := shareDirs()
	s.Stop(syscall.SIGTERM)
	acctDir := filepath.Join(s.hostDir(), "shares", "e2estore1")
	for _, d := range []string{"gone.0123456789abcdef0123456789abcdef", "legacy"} {
		if err := os.MkdirAll(filepath.Join(acctDir, d), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	s.Start()
	deadline := time.Now().Add(10 * time.Second)
	for slices.Contains(shareDirs(), "gone.0123456789abcdef0123456789abcdef") {
		if time.Now().After(deadline) {
			t.Fatalf("the agent kept a deleted share's directory: %v", shareDirs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if dirs := shareDirs(); len(live) != 1 || !slices.Equal(dirs, append(live, "legacy")) {
		t.Fatalf("after the agent's start the host holds %v, want %v and legacy", dirs, live)
	}
	os.RemoveAll(filepath.Join(acctDir, "legacy"))

	// Deleting the account takes its shares' data with it.
	s.mustSkiff("storage", "account", "delete", "-n", "e2estore1", "-g", "rg", "--yes")
	if dirs := shareDirs(); len(dirs) != 0 {
		t.Fatalf("after the account's delete the host holds %v", dirs)
	}
}
