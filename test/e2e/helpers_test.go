package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/runtime"
)

// tryRequest is request without failing the test on a transport error (the
// server may be dying).
func tryRequest(s *server, method, path string, body any) (int, http.Header, []byte, error) {
	data, _ := json.Marshal(body)
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req, _ := http.NewRequest(method, s.endpoint+path+sep+"api-version=2023-05-01", bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, nil
}

// runcList lists the ids of the OCI containers of a data dir.
func runcList(t *testing.T, dataDir string) []string {
	_, _, _, _, rtDir := runtime.HostLayout(dataDir)
	out, err := exec.Command("runc", "--root", runtime.OCIRoot(rtDir), "list", "-q").Output()
	if err != nil {
		t.Fatalf("runc list: %v", err)
	}
	return strings.Fields(string(out))
}

// goroutines returns the skiff frames of a SIGQUIT dump in the server log.
func (s *server) goroutines() string {
	data, _ := os.ReadFile(filepath.Join(s.dataDir, "server.log"))
	var keep []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "skiff/internal") || strings.HasPrefix(l, "goroutine ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
