package vnode

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestImage: `make image` (hack/image.sh) builds the image the manifest and
// the Helm chart deploy, and `skiff virtual-node` runs in it, as a
// non-root user, with the command the manifest gives it.
func TestImage(t *testing.T) {
	const tag = "localhost/skiff-test-image:latest"
	script, _ := filepath.Abs("../../hack/image.sh")
	out, err := exec.Command(script, tag).CombinedOutput()
	if err != nil {
		t.Fatalf("hack/image.sh: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", tag).Run() })
	run, err := exec.Command("podman", "run", "--rm", "--network", "none", "-e", "SKIFF_TOKEN=tok-xyz",
		"--entrypoint", "skiff", tag, "virtual-node", "manifest", "--endpoint", "http://skiff.example:7700").CombinedOutput()
	if err != nil {
		t.Fatalf("podman run: %v: %s", err, run)
	}
	mustContain(t, "manifest from the image", string(run), "kind: Deployment", "tok-xyz", "command: [skiff]")
	// As the image's user (65532), not root.
	id, err := exec.Command("podman", "run", "--rm", "--network", "none", "--entrypoint", "skiff", tag, "virtual-node", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(id), "--kubeconfig") {
		t.Errorf("skiff virtual-node --help in the image: %v: %s", err, id)
	}
}
