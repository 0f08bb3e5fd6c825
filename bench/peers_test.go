package bench

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/skiff-sh/skiff/internal/runtime/userns"
)

// podmanRun times `podman run -d` of img on podman's bridge network, with
// the image loaded beforehand (cached, as for Skiff).
func podmanRun(b *testing.B, img v1.Image, samples int) []time.Duration {
	run, _ := podmanRunRm(b, img, samples)
	return run
}

// podmanRunRm is podmanRun that also times each `podman rm -f -t 0` of a
// running container.
func podmanRunRm(b *testing.B, img v1.Image, samples int) (run, rm []time.Duration) {
	b.Helper()
	tarPath := filepath.Join(b.TempDir(), "img.tar")
	tag, _ := name.NewTag("localhost/skiff-bench:1")
	if err := tarball.WriteToFile(tarPath, tag, img); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("podman", "load", "-i", tarPath).CombinedOutput(); err != nil {
		b.Fatalf("podman load: %v %s", err, out)
	}
	defer exec.Command("podman", "rmi", "-f", "localhost/skiff-bench:1").Run()
	for i := 0; i < samples; i++ {
		start := time.Now()
		out, err := exec.Command("podman", "run", "-d", "--network", "bridge", "localhost/skiff-bench:1", "sleep", "3600").CombinedOutput()
		if err != nil {
			b.Fatalf("podman run: %v %s", err, out)
		}
		run = append(run, time.Since(start))
		start = time.Now()
		if out, err := exec.Command("podman", "rm", "-f", "-t", "0", string(bytes.TrimSpace(out))).CombinedOutput(); err != nil {
			b.Fatalf("podman rm: %v %s", err, out)
		}
		rm = append(rm, time.Since(start))
	}
	return run, rm
}

// benchIDMap is skiff server's default user namespace mapping
// (--userns-remap default): Skiff is measured as it runs.
func benchIDMap(b *testing.B) userns.Mapping {
	m, err := userns.Parse("default")
	if err != nil {
		b.Fatal(err)
	}
	return m
}
