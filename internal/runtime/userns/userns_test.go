package userns

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestEnsureAllocatesAFreeRangeOnce(t *testing.T) {
	dir := t.TempDir()
	subuid, subgid := filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid")
	// Someone else holds 100000-165535 in subuid, and another range in subgid.
	if err := os.WriteFile(subuid, []byte("alice:100000:65536\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(subgid, []byte("alice:100000:65536\nbob:165536:65536\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := parse("default", subuid, subgid)
	if err != nil {
		t.Fatal(err)
	}
	want := Mapping{UID: 231072, GID: 231072, Size: 65536}
	if m != want {
		t.Fatalf("default = %+v, want %+v (the first range free in both files)", m, want)
	}
	again, err := parse("default", subuid, subgid)
	if err != nil || again != m {
		t.Fatalf("second parse = %+v, %v; want the same range", again, err)
	}
	for _, p := range []string{subuid, subgid} {
		b, _ := os.ReadFile(p)
		if n := strings.Count(string(b), "skiff:"); n != 1 {
			t.Fatalf("%s has %d skiff entries, want 1:\n%s", p, n, b)
		}
	}
	named, err := parse("alice", subuid, subgid)
	if err != nil || named != (Mapping{UID: 100000, GID: 100000, Size: 65536}) {
		t.Fatalf("alice = %+v, %v", named, err)
	}
}

func TestParseRefusesUnsafeMappings(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"0:100000:65536", "100000:0:65536", "100000:100000:1000", "x:y:z", "nobody-here"} {
		if _, err := parse(v, filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid")); err == nil {
			t.Errorf("parse(%q) accepted", v)
		}
	}
	if m, err := parse("none", "", ""); err != nil || m.Enabled() {
		t.Fatalf("none = %+v, %v", m, err)
	}
}

func TestHostIDsStayInsideTheRange(t *testing.T) {
	m := Mapping{UID: 200000, GID: 300000, Size: 65536}
	for id, want := range map[int]int{0: 200000, 1000: 201000, 65535: 265535, 65536: 265534, 1 << 30: 265534, -1: 265534} {
		if got := m.HostUID(id); got != want {
			t.Errorf("HostUID(%d) = %d, want %d", id, got, want)
		}
	}
	if got := m.HostGID(5); got != 300005 {
		t.Errorf("HostGID(5) = %d", got)
	}
}

func TestShiftMovesOwnersOnceAndKeepsSetID(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "bin", "su")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(file, 0, 5); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(file, 0o4755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("su", filepath.Join(root, "bin", "link")); err != nil {
		t.Fatal(err)
	}
	m := Mapping{UID: 100000, GID: 100000, Size: 65536}
	for range 2 { // a second run changes nothing
		if err := m.Shift(root, Mapping{}); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(file, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 100000 || st.Gid != 100005 || st.Mode&0o7777 != 0o4755 {
			t.Fatalf("after shift: %d:%d mode %o, want 100000:100005 mode 4755", st.Uid, st.Gid, st.Mode&0o7777)
		}
		if err := unix.Lstat(filepath.Join(root, "bin", "link"), &st); err != nil || st.Uid != 100000 {
			t.Fatalf("symlink owner %d, %v: want 100000", st.Uid, err)
		}
	}
	// And back to the host's own IDs.
	if err := (Mapping{}).Shift(root, m); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(file, &st); err != nil || st.Uid != 0 || st.Gid != 5 {
		t.Fatalf("unshifted: %d:%d, %v", st.Uid, st.Gid, err)
	}
}

func TestAllowTraverseOpensOnlySearch(t *testing.T) {
	base := t.TempDir()
	deep := filepath.Join(base, "a", "b")
	if err := os.MkdirAll(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o700); err != nil {
		t.Fatal(err)
	}
	m := Mapping{UID: 100000, GID: 100000, Size: 65536}
	if err := m.AllowTraverse(deep); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{base, filepath.Join(base, "a"), deep} {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			t.Fatal(err)
		}
		if st.Gid != 100000 || st.Mode&0o777 != 0o710 {
			t.Errorf("%s: gid %d mode %o, want gid 100000 mode 710", d, st.Gid, st.Mode&0o777)
		}
	}
	// A directory of another user is refused, not opened up.
	other := filepath.Join(base, "other")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(other, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := m.AllowTraverse(other); err == nil {
		t.Fatal("AllowTraverse opened a directory of uid 1000")
	}
}

func TestCreateMakesANetworkNamespaceOwnedByTheUserNamespace(t *testing.T) {
	dir := t.TempDir()
	m := Mapping{UID: 100000, GID: 100000, Size: 65536}
	up, np := filepath.Join(dir, "user"), filepath.Join(dir, "net")
	if err := m.Create(up, np); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Remove(np); err != nil {
			t.Error(err)
		}
		if err := Remove(up); err != nil {
			t.Error(err)
		}
	})
	userFD, err := unix.Open(up, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(userFD)
	netFD, err := unix.Open(np, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(netFD)
	// NS_GET_USERNS on the network namespace gives its owner.
	owner, err := unix.IoctlRetInt(netFD, unix.NS_GET_USERNS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(owner)
	var a, b unix.Stat_t
	if err := unix.Fstat(owner, &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fstat(userFD, &b); err != nil {
		t.Fatal(err)
	}
	if a.Ino != b.Ino {
		t.Fatalf("network namespace is owned by user namespace %d, want %d", a.Ino, b.Ino)
	}
	// A second Create on the same paths is refused and leaves them alone.
	if err := m.Create(up, np); !os.IsExist(err) {
		t.Fatalf("second Create: %v, want an exist error", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(np, &st); err != nil || st.Type != unix.NSFS_MAGIC {
		t.Fatalf("network namespace file unmounted by a refused Create: %v", err)
	}
}
