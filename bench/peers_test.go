package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/skiff-sh/skiff/internal/runtime/cgroup"
	"github.com/skiff-sh/skiff/internal/runtime/oci"
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

// runcRun times bare `runc run -d` of `sleep 3600` from img's filesystem,
// extracted into a bundle of its own, with no network setup (the host's
// network namespace is not shared: a new, empty one, as oci.Spec makes).
func runcRun(b *testing.B, img v1.Image, samples int) []time.Duration {
	b.Helper()
	bundle := b.TempDir()
	rootfsDir := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfsDir, 0o755); err != nil {
		b.Fatal(err)
	}
	fsTar := mutate.Extract(img)
	defer fsTar.Close()
	untar := exec.Command("tar", "-x", "-C", rootfsDir)
	untar.Stdin = fsTar
	if out, err := untar.CombinedOutput(); err != nil {
		b.Fatalf("extract image for runc: %v %s", err, out)
	}
	spec, err := oci.Spec(oci.ContainerConfig{ID: "benchrunc", Hostname: "bench", RootfsPath: rootfsDir,
		Args: []string{"sleep", "3600"}, CgroupsPath: "/skiff-bench/runc", CPUShares: 1, CPULimit: 1, MemoryLimitBytes: 512 << 20})
	if err != nil {
		b.Fatal(err)
	}
	if err := oci.WriteBundle(bundle, spec); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cgroup.RemoveCgroup("/skiff-bench") }()
	runcRoot := b.TempDir()
	var bare []time.Duration
	for i := 0; i < samples; i++ {
		id := "benchrunc" + strconv.Itoa(i)
		start := time.Now()
		// The container inherits runc's stdio: /dev/null, so nothing waits on it.
		logFile := filepath.Join(runcRoot, "runc.log")
		cmd := exec.Command("runc", "--root", runcRoot, "--log", logFile, "run", "-d", "--bundle", bundle, id)
		if err := cmd.Run(); err != nil {
			out, _ := os.ReadFile(logFile)
			b.Fatalf("runc run: %v %s", err, out)
		}
		bare = append(bare, time.Since(start))
		_ = exec.Command("runc", "--root", runcRoot, "delete", "--force", id).Run()
	}
	return bare
}

// privateBytes is the private memory (Private_Clean + Private_Dirty of
// smaps_rollup) of process pid.
func privateBytes(b *testing.B, pid int) int64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var kb int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		if k == "Private_Clean" || k == "Private_Dirty" {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			kb += n
		}
	}
	return kb << 10
}

// supervisors lists the pids of the skiff-shim processes whose arguments
// name dir (a server's data dir: their log paths are under it).
func supervisors(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 1 && filepath.Base(args[0]) == "skiff-shim" && strings.Contains(string(cmdline), dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}
