package runtime_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
)

// A container writing past an emptyDir's sizeLimit gets "No space left on
// device", on disk and in memory, and the volume holds no more than the
// limit; what fits is written; the container and its group live on.
func TestEmptyDirSizeLimitInContainer(t *testing.T) {
	e := newEnv(t)
	write := func(dir string) string {
		return "dd if=/dev/zero of=" + dir + "/ok bs=1M count=10 2>/dev/null && echo " + dir + "-ok-written; " +
			"dd if=/dev/zero of=" + dir + "/big bs=1M count=64 2>&1 | head -1; " +
			"echo " + dir + "-used=$(du -sk " + dir + " | cut -f1); "
	}
	spec := group("ed", container("app", e.image, "sh", "-c", write("/disk")+write("/mem")+"exec sleep 3600"))
	spec.Properties.Volumes = []api.Volume{
		{Name: "disk", EmptyDir: &api.EmptyDirVolume{SizeLimit: "16Mi"}},
		{Name: "mem", EmptyDir: &api.EmptyDirVolume{Medium: "Memory", SizeLimit: "12Mi"}},
	}
	spec.Properties.Containers[0].Properties.VolumeMounts = []api.VolumeMount{{Name: "disk", MountPath: "/disk"}, {Name: "mem", MountPath: "/mem"}}
	e.create("ed", spec)
	e.waitState("ed", api.GroupRunning, 60*time.Second)
	log := e.waitLog("ed", "app", "/mem-used=", 60*time.Second)
	t.Logf("log:\n%s", log)
	for dir, limitKiB := range map[string]int{"/disk": 16 << 10, "/mem": 12 << 10} {
		if !strings.Contains(log, dir+"-ok-written") {
			t.Errorf("%s: 10 MiB within the limit were not written", dir)
		}
		if strings.Count(log, "No space left on device") < 2 {
			t.Errorf("writing past the limits did not fail with ENOSPC twice")
		}
		i := strings.Index(log, dir+"-used=")
		used, err := strconv.Atoi(strings.Fields(log[i+len(dir+"-used="):])[0])
		if err != nil {
			t.Fatalf("%s: du: %v", dir, err)
		}
		if used > limitKiB+limitKiB/100 || used < limitKiB-limitKiB/10 {
			t.Errorf("%s holds %d KiB, want about its limit of %d KiB", dir, used, limitKiB)
		}
	}
	if out, _ := e.exec("ed", "app", "df", "-k", "/disk", "/mem"); !strings.Contains(out, "/disk") {
		t.Errorf("df: %s", out)
	} else {
		t.Logf("df:\n%s", out)
	}
	if st, _ := e.host.Status("ed"); st.State != api.GroupRunning || st.Containers[0].RestartCount != 0 {
		t.Errorf("the group did not live on: %s", dump(st))
	}
}
