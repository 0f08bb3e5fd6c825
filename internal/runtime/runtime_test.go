package runtime_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// A web app and a sidecar share the group's network namespace: the sidecar
// reaches the app on localhost, the host reaches it on the published port,
// and both see the group's hostname and /etc/hosts entry.
func TestGroupSidecarAndPublishedPort(t *testing.T) {
	e := newEnv(t)
	web := container("web", e.image, "sh", "-c", `mkdir -p /www && echo "hello from $GREETING" > /www/index.html && exec httpd -f -p 8080 -h /www`)
	web.Properties.EnvironmentVariables = []api.EnvironmentVariable{{Name: "GREETING", Value: "skiff"}, {Name: "TOKEN", SecureValue: "s3cret"}}
	web.Properties.Ports = []api.ContainerPort{{Port: 8080}}
	side := container("sidecar", e.image, "sh", "-c", `while true; do wget -q -O - http://localhost:8080/ && sleep 0.3; done`)
	e.create("web", group("webgroup", web, side))
	st := e.waitState("web", api.GroupRunning, 60*time.Second)
	if net.ParseIP(st.IP) == nil || !strings.HasPrefix(st.IP, "10.213.") {
		t.Fatalf("group IP %q is not on the test bridge", st.IP)
	}
	e.waitLog("web", "sidecar", "hello from skiff", 20*time.Second)

	out, _ := e.exec("web", "web", "hostname")
	if strings.TrimSpace(out) != "webgroup" {
		t.Errorf("hostname = %q, want the group name", out)
	}
	hosts, _ := e.exec("web", "sidecar", "cat", "/etc/hosts")
	if !strings.Contains(hosts, st.IP+"\twebgroup") {
		t.Errorf("/etc/hosts does not name the group:\n%s", hosts)
	}
	env, _ := e.exec("web", "web", "env")
	if !strings.Contains(env, "TOKEN=s3cret") || !strings.Contains(env, "PATH=") {
		t.Errorf("environment lacks the secure value or the image's PATH:\n%s", env)
	}
}

func TestPublishedPortReachableFromHost(t *testing.T) {
	e := newEnv(t)
	web := container("web", e.image, "sh", "-c", `mkdir -p /www && echo published > /www/index.html && exec httpd -f -p 18081 -h /www`)
	web.Properties.Ports = []api.ContainerPort{{Port: 18081}}
	udpImage := testenv.Push(t, e.reg, "udpecho:test", testenv.BusyboxImage(t, testenv.ImageOptions{
		Layers: []testenv.LayerSpec{{Files: map[string]string{"/bin/udpecho": testenv.UDPEchoBinary(t)}, Modes: map[string]int64{"/bin/udpecho": 0o755}}},
	}))
	udp := container("udp", udpImage, "udpecho", "18082")
	spec := group("pub", web, udp)
	spec.Properties.IPAddress = &api.IPAddress{Type: "Public", Ports: []api.Port{{Protocol: "TCP", Port: 18081}, {Protocol: "UDP", Port: 18082}}}
	e.create("pub", spec)
	e.waitState("pub", api.GroupRunning, 60*time.Second)
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://127.0.0.1:18081/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if strings.TrimSpace(body) != "published" {
		t.Fatalf("GET 127.0.0.1:18081 = %q, want the container's page", body)
	}
	// UDP: the container echoes datagrams sent to the published port.
	conn, err := net.Dial("udp", "127.0.0.1:18082")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline = time.Now().Add(20 * time.Second)
	buf := make([]byte, 100)
	for {
		conn.Write([]byte("ping-udp"))
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, err := conn.Read(buf); err == nil && string(buf[:n]) == "echo:ping-udp" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no UDP echo from the container through 127.0.0.1:18082")
		}
	}
	e.waitLog("pub", "udp", `got "ping-udp"`, 5*time.Second)
}

func TestMemoryHogIsOOMKilled(t *testing.T) {
	e := newEnv(t)
	hog := container("hog", e.image, "sh", "-c", `x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done`)
	hog.Properties.Resources.Requests.MemoryInGB = 0.03
	spec := group("hog", hog)
	spec.Properties.RestartPolicy = api.RestartNever
	e.create("hog", spec)
	st := e.waitState("hog", api.GroupFailed, 60*time.Second)
	cs := st.Container("hog")
	if cs.CurrentState.DetailStatus != "OOMKilled" || exitCode(cs) != "137" {
		t.Fatalf("hog ended %s/%s, want OOMKilled/137:\n%s", cs.CurrentState.DetailStatus, exitCode(cs), dump(cs))
	}
	found := false
	for _, ev := range cs.Events {
		found = found || ev.Name == "OOMKilled"
	}
	if !found {
		t.Errorf("no OOMKilled event: %s", dump(cs.Events))
	}
}

func TestRestartPolicies(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		policy, cmd string
		state       string
		minRestarts int32
		exit        string
	}{
		{api.RestartAlways, "exit 0", api.GroupRunning, 2, ""},
		{api.RestartOnFailure, "exit 0", api.GroupSucceeded, 0, "0"},
		{api.RestartOnFailure, "exit 1", api.GroupRunning, 2, ""},
		{api.RestartNever, "exit 3", api.GroupFailed, 0, "3"},
	}
	for i, c := range cases {
		id := strings.ToLower(c.policy) + string(rune('a'+i))
		spec := group(id, container("app", e.image, "sh", "-c", "sleep 0.2; "+c.cmd))
		spec.Properties.RestartPolicy = c.policy
		e.create(id, spec)
		st := e.waitFor(id, 60*time.Second, "policy outcome", func(s *runtime.GroupStatus) bool {
			cs := s.Container("app")
			if c.minRestarts > 0 {
				return cs.RestartCount >= c.minRestarts
			}
			return s.State == c.state
		})
		cs := st.Container("app")
		if st.State != c.state {
			t.Errorf("%s %q: group %s, want %s", c.policy, c.cmd, st.State, c.state)
		}
		if c.minRestarts == 0 {
			// Give a wrong restart a chance to happen before judging.
			time.Sleep(time.Second)
			st, _ = e.host.Status(id)
			cs = st.Container("app")
			if cs.RestartCount != 0 || exitCode(cs) != c.exit || cs.CurrentState.State != api.ContainerTerminated {
				t.Errorf("%s %q: restarts=%d exit=%s state=%s, want 0 restarts, exit %s, Terminated",
					c.policy, c.cmd, cs.RestartCount, exitCode(cs), cs.CurrentState.State, c.exit)
			}
		} else if cs.PreviousState == nil || cs.PreviousState.State != api.ContainerTerminated {
			t.Errorf("%s: previousState should be the terminated run: %s", c.policy, dump(cs))
		}
		if c.minRestarts > 0 {
			backoff := false
			for _, ev := range cs.Events {
				backoff = backoff || ev.Name == "BackOff"
			}
			if !backoff {
				t.Errorf("%s: no BackOff event: %s", c.policy, dump(cs.Events))
			}
		}
	}
}

func TestLogsTailTimestampsFollowPrevious(t *testing.T) {
	e := newEnv(t)
	spec := group("logs", container("app", e.image, "sh", "-c", `for i in 1 2 3 4 5; do echo line$i; done; sleep 0.2; echo oops >&2; sleep 1; echo late; sleep 2; exit 1`))
	spec.Properties.RestartPolicy = api.RestartOnFailure
	e.create("logs", spec)
	e.waitState("logs", api.GroupRunning, 60*time.Second)

	// Follow: returns once the run ends, with every line including the late one.
	var followed bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.host.Logs(ctx, "logs", "app", runtime.LogOptions{Tail: -1, Follow: true}, &followed); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("follow did not end when the container exited; got %q", followed.String())
	}
	if !strings.Contains(followed.String(), "line1\n") || !strings.Contains(followed.String(), "oops\n") || !strings.Contains(followed.String(), "late\n") {
		t.Fatalf("followed log misses lines: %q", followed.String())
	}
	got := e.logs("logs", "app", runtime.LogOptions{Tail: 2})
	if got != "oops\nlate\n" {
		t.Errorf("tail 2 = %q", got)
	}
	ts := e.logs("logs", "app", runtime.LogOptions{Tail: 1, Timestamps: true})
	stamp, rest, _ := strings.Cut(ts, " ")
	if _, err := time.Parse(time.RFC3339Nano, stamp); err != nil || rest != "late\n" {
		t.Errorf("timestamped line = %q", ts)
	}
	// After the restart the previous run's log is still there.
	e.waitFor("logs", 30*time.Second, "a restart", func(s *runtime.GroupStatus) bool {
		return s.Container("app").RestartCount >= 1 && s.Container("app").CurrentState.State == api.ContainerRunning
	})
	prev := e.logs("logs", "app", runtime.LogOptions{Tail: -1, Previous: true})
	if !strings.Contains(prev, "late") {
		t.Errorf("previous log = %q", prev)
	}
}

func TestExecWithAndWithoutTTY(t *testing.T) {
	e := newEnv(t)
	e.create("ex", group("ex", container("app", e.image, "sleep", "3600")))
	e.waitState("ex", api.GroupRunning, 60*time.Second)

	var out bytes.Buffer
	code, err := e.host.Exec(context.Background(), "ex", "app", runtime.ExecOptions{
		Command: []string{"sh", "-c", "read x; echo got:$x; exit 7"}, Stdin: strings.NewReader("hello\n"), Stdout: &out,
	})
	if err != nil || code != 7 || out.String() != "got:hello\n" {
		t.Fatalf("exec with stdin: code=%d err=%v out=%q", code, err, out.String())
	}

	out.Reset()
	resize := make(chan runtime.WindowSize, 1)
	resize <- runtime.WindowSize{Rows: 40, Cols: 100}
	pr, pw := io.Pipe()
	go func() {
		time.Sleep(500 * time.Millisecond)
		pw.Write([]byte("tty; stty size; exit 5\n"))
	}()
	code, err = e.host.Exec(context.Background(), "ex", "app", runtime.ExecOptions{
		Command: []string{"sh"}, TTY: true, Size: runtime.WindowSize{Rows: 24, Cols: 80}, Resize: resize, Stdin: pr, Stdout: &out,
	})
	pw.Close()
	if err != nil || code != 5 {
		t.Fatalf("tty exec: code=%d err=%v out=%q", code, err, out.String())
	}
	if !strings.Contains(out.String(), "/dev/pts/") || !strings.Contains(out.String(), "40 100") {
		t.Errorf("tty exec output lacks a pts name or the resized size: %q", out.String())
	}

	if _, err := e.host.Exec(context.Background(), "ex", "nope", runtime.ExecOptions{Command: []string{"true"}}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("exec in a missing container: %v", err)
	}
}

func TestInitContainersRunInOrderThenApp(t *testing.T) {
	e := newEnv(t)
	spec := group("init", container("app", e.image, "sh", "-c", "cat /work/order; sleep 3600"))
	spec.Properties.Volumes = []api.Volume{{Name: "work", EmptyDir: &api.EmptyDirVolume{}}}
	mount := []api.VolumeMount{{Name: "work", MountPath: "/work"}}
	spec.Properties.Containers[0].Properties.VolumeMounts = mount
	for _, n := range []string{"first", "second"} {
		spec.Properties.InitContainers = append(spec.Properties.InitContainers, api.InitContainer{Name: n, Properties: api.InitContainerProperties{
			Image: e.image, Command: []string{"sh", "-c", "echo " + n + " >> /work/order"}, VolumeMounts: mount,
		}})
	}
	e.create("init", spec)
	e.waitState("init", api.GroupRunning, 60*time.Second)
	if got := e.waitLog("init", "app", "second", 10*time.Second); got != "first\nsecond\n" {
		t.Errorf("app saw %q, want the init containers' output in order", got)
	}
	st, _ := e.host.Status("init")
	for _, n := range []string{"first", "second"} {
		if cs := st.Container(n); cs.CurrentState.State != api.ContainerTerminated || exitCode(cs) != "0" {
			t.Errorf("init container %s: %s", n, dump(cs))
		}
	}

	// A failing init container fails a Never group, and the app never starts.
	bad := group("badinit", container("app", e.image, "sleep", "3600"))
	bad.Properties.RestartPolicy = api.RestartNever
	bad.Properties.InitContainers = []api.InitContainer{{Name: "boom", Properties: api.InitContainerProperties{Image: e.image, Command: []string{"sh", "-c", "exit 4"}}}}
	e.create("badinit", bad)
	st = e.waitState("badinit", api.GroupFailed, 60*time.Second)
	if st.Container("app").CurrentState.State != api.ContainerWaiting || exitCode(st.Container("boom")) != "4" {
		t.Errorf("failed init: %s", dump(st))
	}
}

func TestVolumes(t *testing.T) {
	e := newEnv(t)
	repo := t.TempDir()
	git := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	git("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(repo, "README"), []byte("v1\n"), 0o644)
	git("add", ".")
	git("commit", "-qm", "v1")
	git("tag", "v1")
	os.WriteFile(filepath.Join(repo, "README"), []byte("v2\n"), 0o644)
	git("commit", "-qam", "v2")
	// gitRepo clones only over http(s) and git: serve it on 127.0.0.1.
	served := t.TempDir()
	git("clone", "-q", "--bare", repo, filepath.Join(served, "repo.git"))
	repoURL := testenv.ServeGit(t, served).URL + "/repo.git"

	secret := base64.StdEncoding.EncodeToString([]byte("top-secret-value"))
	spec := group("vols",
		container("writer", e.image, "sh", "-c", "echo shared > /scratch/x; echo persisted > /share/data; sleep 3600"),
		container("reader", e.image, "sleep", "3600"))
	spec.Properties.Volumes = []api.Volume{
		{Name: "scratch", EmptyDir: &api.EmptyDirVolume{}},
		{Name: "creds", Secret: map[string]string{"password": secret}},
		{Name: "src", GitRepo: &api.GitRepoVolume{Repository: repoURL, Revision: "v1", Directory: "."}},
		{Name: "share", AzureFile: &api.AzureFileVolume{ShareName: "data", StorageAccountName: "acct", StorageAccountKey: "key=="}},
	}
	spec.Properties.Containers[0].Properties.VolumeMounts = []api.VolumeMount{{Name: "scratch", MountPath: "/scratch"}, {Name: "share", MountPath: "/share"}}
	spec.Properties.Containers[1].Properties.VolumeMounts = []api.VolumeMount{
		{Name: "scratch", MountPath: "/scratch", ReadOnly: true}, {Name: "creds", MountPath: "/etc/creds"}, {Name: "src", MountPath: "/src"},
	}
	e.create("vols", spec)
	e.waitState("vols", api.GroupRunning, 60*time.Second)
	time.Sleep(500 * time.Millisecond)
	if out, _ := e.exec("vols", "reader", "cat", "/scratch/x"); out != "shared\n" {
		t.Errorf("emptyDir not shared: %q", out)
	}
	if _, code := e.exec("vols", "reader", "sh", "-c", "echo no > /scratch/y"); code == 0 {
		t.Errorf("a readOnly mount was writable")
	}
	if out, _ := e.exec("vols", "reader", "cat", "/etc/creds/password"); out != "top-secret-value" {
		t.Errorf("secret volume = %q", out)
	}
	if _, code := e.exec("vols", "reader", "sh", "-c", "echo x > /etc/creds/password"); code == 0 {
		t.Errorf("secret volume is writable")
	}
	if out, _ := e.exec("vols", "reader", "cat", "/src/README"); out != "v1\n" {
		t.Errorf("gitRepo at revision v1 = %q", out)
	}
	if err := e.host.Delete(context.Background(), "vols", -1); err != nil {
		t.Fatal(err)
	}
	// The share outlives the group: a new group reads it, read-only.
	spec2 := group("vols2", container("app", e.image, "sleep", "3600"))
	spec2.Properties.Volumes = []api.Volume{{Name: "share", AzureFile: &api.AzureFileVolume{ShareName: "data", StorageAccountName: "acct", ReadOnly: true}}}
	spec2.Properties.Containers[0].Properties.VolumeMounts = []api.VolumeMount{{Name: "share", MountPath: "/share"}}
	e.create("vols2", spec2)
	e.waitState("vols2", api.GroupRunning, 60*time.Second)
	if out, _ := e.exec("vols2", "app", "cat", "/share/data"); out != "persisted\n" {
		t.Errorf("share content in a second group = %q", out)
	}
	if _, code := e.exec("vols2", "app", "sh", "-c", "echo x > /share/data"); code == 0 {
		t.Errorf("readOnly share was writable")
	}
}

func TestPullFailuresAndCredentials(t *testing.T) {
	e := newEnv(t)
	priv := testenv.StartRegistry(t, testenv.RegistryOptions{Username: "alice", Password: "pw-123"})
	privImage := testenv.Push(t, priv, "private/app:v1", testenv.BusyboxImage(t, testenv.ImageOptions{Cmd: []string{"sleep", "3600"}}))

	e.create("missing", group("missing", container("app", e.reg.Addr+"/does/not:exist")))
	st := e.waitState("missing", api.GroupFailed, 60*time.Second)
	if st.Error == nil || st.Error.Code != runtime.CodeInaccessibleImage || !strings.Contains(st.Error.Message, "does/not:exist") {
		t.Errorf("missing image: %s", dump(st.Error))
	}

	e.create("noauth", group("noauth", container("app", privImage)))
	st = e.waitState("noauth", api.GroupFailed, 60*time.Second)
	if st.Error == nil || !strings.Contains(strings.ToLower(st.Error.Message), "unauthorized") {
		t.Errorf("private image without credentials: %s", dump(st.Error))
	}
	failed := false
	for _, ev := range st.Container("app").Events {
		failed = failed || (ev.Name == "Failed" && ev.Type == api.EventWarning && strings.Contains(ev.Message, privImage))
	}
	if !failed {
		t.Errorf("no Failed event naming the image: %s", dump(st.Container("app").Events))
	}

	spec := group("withauth", container("app", privImage))
	spec.Properties.ImageRegistryCredentials = []api.ImageRegistryCredential{{Server: priv.Addr, Username: "alice", Password: "pw-123"}}
	e.create("withauth", spec)
	st = e.waitState("withauth", api.GroupRunning, 60*time.Second)
	names := []string{}
	for _, ev := range st.Container("app").Events {
		names = append(names, ev.Name)
	}
	if strings.Join(names, ",") != "Pulling,Pulled,Started" {
		t.Errorf("events = %v, want Pulling,Pulled,Started", names)
	}

	e.create("unreachable", group("unreach", container("app", "127.0.0.1:1/nothing:here")))
	st = e.waitState("unreachable", api.GroupFailed, 90*time.Second)
	if st.Error == nil || st.Error.Code != runtime.CodeInaccessibleImage {
		t.Errorf("unreachable registry: %s", dump(st))
	}
}

func TestStopStartRestartInPlace(t *testing.T) {
	e := newEnv(t)
	e.create("ssr", group("ssr", container("app", e.image, "sh", "-c", "trap 'echo bye; exit 0' TERM; echo up; while true; do sleep 0.1; done")))
	st := e.waitState("ssr", api.GroupRunning, 60*time.Second)
	ip := st.IP
	e.waitLog("ssr", "app", "up", 10*time.Second)

	if err := e.host.Restart(context.Background(), "ssr"); err != nil {
		t.Fatal(err)
	}
	st = e.waitState("ssr", api.GroupRunning, 60*time.Second)
	if st.IP != ip {
		t.Errorf("restart in place changed the IP from %s to %s", ip, st.IP)
	}
	if prev := e.logs("ssr", "app", runtime.LogOptions{Tail: -1, Previous: true}); !strings.Contains(prev, "bye") {
		t.Errorf("SIGTERM handler did not run on restart; previous log %q", prev)
	}

	start := time.Now()
	if err := e.host.Stop(context.Background(), "ssr"); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("stop of a container that exits on SIGTERM took %s", time.Since(start))
	}
	st, _ = e.host.Status("ssr")
	cs := st.Container("app")
	if st.State != api.GroupStopped || cs.CurrentState.State != api.ContainerTerminated || exitCode(cs) != "0" {
		t.Errorf("after stop: %s", dump(st))
	}
	if l := e.leaks(); l.NetNS != 0 || l.Mounts != 0 || l.Cgroups != 0 {
		t.Errorf("a stopped group still holds resources: %+v", l)
	}
	if err := e.host.Start(context.Background(), "ssr"); err != nil {
		t.Fatal(err)
	}
	e.waitState("ssr", api.GroupRunning, 60*time.Second)

	// A container ignoring SIGTERM is killed after the grace period.
	e.create("stubborn", group("stubborn", container("app", e.image, "sh", "-c", "trap '' TERM; while true; do sleep 0.1; done")))
	e.waitState("stubborn", api.GroupRunning, 60*time.Second)
	if err := e.host.Stop(context.Background(), "stubborn"); err != nil {
		t.Fatal(err)
	}
	st, _ = e.host.Status("stubborn")
	if c := exitCode(st.Container("app")); c != "137" {
		t.Errorf("stubborn container exit %s, want 137 (SIGKILL)", c)
	}
}

func TestProbes(t *testing.T) {
	e := newEnv(t)
	app := container("app", e.image, "sh", "-c", `mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p 8090 -h /www`)
	app.Properties.ReadinessProbe = &api.Probe{HTTPGet: &api.HTTPGetAction{Path: "/healthz", Port: 8090}, PeriodSeconds: 1}
	sick := container("sick", e.image, "sh", "-c", "touch /tmp/alive; sleep 3600")
	sick.Properties.LivenessProbe = &api.Probe{Exec: &api.ExecAction{Command: []string{"sh", "-c", "test -f /tmp/alive && rm /tmp/alive"}}, PeriodSeconds: 1, FailureThreshold: 2}
	notReady := container("notready", e.image, "sleep", "3600")
	notReady.Properties.ReadinessProbe = &api.Probe{HTTPGet: &api.HTTPGetAction{Path: "/", Port: 9999}, PeriodSeconds: 1, FailureThreshold: 1}
	e.create("probes", group("probes", app, sick, notReady))
	st := e.waitFor("probes", 60*time.Second, "app ready and sick restarted", func(s *runtime.GroupStatus) bool {
		return s.Container("app").Ready && s.Container("sick").RestartCount >= 1
	})
	if st.Container("notready").Ready {
		t.Errorf("a container whose readiness probe fails is Ready")
	}
	killing := false
	for _, ev := range st.Container("sick").Events {
		killing = killing || (ev.Name == "Killing" && strings.Contains(ev.Message, "liveness"))
	}
	if !killing {
		t.Errorf("no Killing event for the liveness failure: %s", dump(st.Container("sick").Events))
	}
}

// A startup probe holds the container not ready, and the other probes
// back, until it passes; one that keeps failing kills the container. A
// tcpSocket probe passes once the port takes connections.
func TestStartupAndTCPSocketProbes(t *testing.T) {
	e := newEnv(t)
	slow := container("slow", e.image, "sh", "-c", `sleep 3; mkdir -p /www; exec httpd -f -p 8091 -h /www`)
	slow.Properties.StartupProbe = &api.Probe{TCPSocket: &api.TCPSocketAction{Port: 8091}, PeriodSeconds: 1, FailureThreshold: 30}
	slow.Properties.LivenessProbe = &api.Probe{TCPSocket: &api.TCPSocketAction{Port: 8091}, PeriodSeconds: 1, FailureThreshold: 1}
	never := container("never", e.image, "sleep", "3600")
	never.Properties.StartupProbe = &api.Probe{TCPSocket: &api.TCPSocketAction{Port: 9998}, PeriodSeconds: 1, FailureThreshold: 2}
	e.create("startup", group("startup", slow, never))
	e.waitState("startup", api.GroupRunning, 60*time.Second)
	if st, _ := e.host.Status("startup"); st.Container("slow").Ready {
		t.Errorf("slow is ready before its startup probe passed")
	}
	st := e.waitFor("startup", 60*time.Second, "slow ready and never restarted", func(s *runtime.GroupStatus) bool {
		return s.Container("slow").Ready && s.Container("never").RestartCount >= 1
	})
	if st.Container("slow").RestartCount != 0 {
		t.Errorf("slow restarted %d times: its liveness probe ran before the startup probe passed", st.Container("slow").RestartCount)
	}
	if st.Container("never").Ready {
		t.Errorf("never is ready without passing its startup probe")
	}
	killing := false
	for _, ev := range st.Container("never").Events {
		killing = killing || (ev.Name == "Killing" && strings.Contains(ev.Message, "startup probe"))
	}
	if !killing {
		t.Errorf("no Killing event for the startup probe: %s", dump(st.Container("never").Events))
	}
}

// Lifecycle hooks run as kubelet runs them: postStart as the container
// starts (one that fails kills it, and its restart policy restarts it),
// preStop before the stop's SIGTERM, within the grace.
func TestLifecycleHooks(t *testing.T) {
	e := newEnv(t)
	hooked := container("hooked", e.image, "sh", "-c",
		`trap 'if [ -f /tmp/prestop ]; then echo term-after-prestop; else echo term-without-prestop; fi; exit 0' TERM; echo main; while true; do sleep 1; done`)
	hooked.Properties.Lifecycle = &api.Lifecycle{
		PostStart: &api.LifecycleHandler{Exec: &api.ExecAction{Command: []string{"sh", "-c", "echo poststart > /tmp/poststart"}}},
		PreStop:   &api.LifecycleHandler{Exec: &api.ExecAction{Command: []string{"touch", "/tmp/prestop"}}},
	}
	bad := container("bad", e.image, "sleep", "3600")
	bad.Properties.Lifecycle = &api.Lifecycle{PostStart: &api.LifecycleHandler{Exec: &api.ExecAction{Command: []string{"false"}}}}
	e.create("hooks", group("hooks", hooked, bad))
	e.waitLog("hooks", "hooked", "main", 60*time.Second)
	// Running once its postStart hook is done (Waiting while it runs, and
	// exec is refused then).
	e.waitFor("hooks", 20*time.Second, "hooked Running", func(s *runtime.GroupStatus) bool {
		return s.Container("hooked").CurrentState.State == api.ContainerRunning
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, code := e.exec("hooks", "hooked", "cat", "/tmp/poststart")
		if code == 0 && strings.TrimSpace(out) == "poststart" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the postStart hook's file: exit %d, %q", code, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := e.waitFor("hooks", 60*time.Second, "bad restarted for its failed postStart hook", func(s *runtime.GroupStatus) bool {
		return s.Container("bad").RestartCount >= 1
	})
	failed := false
	for _, ev := range st.Container("bad").Events {
		failed = failed || ev.Name == "FailedPostStartHook"
	}
	if !failed {
		t.Errorf("no FailedPostStartHook event: %s", dump(st.Container("bad").Events))
	}
	if st.Container("hooked").RestartCount != 0 {
		t.Errorf("hooked restarted %d times", st.Container("hooked").RestartCount)
	}
	if err := e.host.Stop(context.Background(), "hooks"); err != nil {
		t.Fatal(err)
	}
	logs := e.logs("hooks", "hooked", runtime.LogOptions{Tail: -1})
	if !strings.Contains(logs, "term-after-prestop") {
		t.Errorf("logs %q: want term-after-prestop (the preStop hook ran before SIGTERM)", logs)
	}
}

func TestHardenedByDefault(t *testing.T) {
	e := newEnv(t)
	e.create("hard", group("hard", container("app", e.image, "sleep", "3600")))
	e.waitState("hard", api.GroupRunning, 60*time.Second)
	status, _ := e.exec("hard", "app", "cat", "/proc/self/status")
	for _, want := range []string{"NoNewPrivs:\t1", "Seccomp:\t2", "CapEff:\t00000000a80425fb", "CapBnd:\t00000000a80425fb"} {
		if !strings.Contains(status, want) {
			t.Errorf("/proc/self/status lacks %q", want)
		}
	}
	// The host runs hundreds of processes; the container sees its own few.
	pids, _ := e.exec("hard", "app", "sh", "-c", "ls -d /proc/[0-9]* | wc -l")
	if n, err := strconv.Atoi(strings.TrimSpace(pids)); err != nil || n > 6 {
		t.Errorf("container sees %q processes; host PIDs leak in", pids)
	}
	if out, _ := e.exec("hard", "app", "cat", "/proc/1/cmdline"); !strings.HasPrefix(out, "sleep") {
		t.Errorf("PID 1 in the container is %q, not its own process", out)
	}
	for _, cmd := range [][]string{
		{"mount", "-t", "tmpfs", "none", "/mnt"},
		{"ip", "link", "add", "dummy0", "type", "dummy"},
		{"ip", "addr", "add", "10.9.9.9/32", "dev", "lo"},
		{"sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"},
		{"sh", "-c", "head -c1 /proc/kcore | wc -c | grep -q 1"},
		{"ls", "/dev/vda"},
	} {
		if out, code := e.exec("hard", "app", cmd...); code == 0 {
			t.Errorf("%v succeeded in a hardened container: %s", cmd, out)
		}
	}
}

func TestBadSpecsAreRejected(t *testing.T) {
	e := newEnv(t)
	bad := map[string]runtime.GroupSpec{
		"no containers": {Name: "x"},
		"bad name":      group("Bad_Name", container("app", e.image)),
		"windows": func() runtime.GroupSpec {
			s := group("w", container("app", e.image))
			s.Properties.OSType = "Windows"
			return s
		}(),
		"undefined volume": func() runtime.GroupSpec {
			s := group("v", container("app", e.image))
			s.Properties.Containers[0].Properties.VolumeMounts = []api.VolumeMount{{Name: "nope", MountPath: "/x"}}
			return s
		}(),
		"duplicate container": group("d", container("app", e.image), container("app", e.image)),
	}
	for what, spec := range bad {
		err := e.host.Create(context.Background(), "bad", spec)
		if err == nil || !(errors.Is(err, errdefs.ErrInvalidArgument) || errors.Is(err, errdefs.ErrNotImplemented)) {
			t.Errorf("%s: err = %v, want an invalid-argument error", what, err)
		}
	}
	if len(e.host.List()) != 0 {
		t.Errorf("rejected specs left groups behind: %v", e.host.List())
	}
	e.create("dup", group("dup", container("app", e.image, "sleep", "3600")))
	if err := e.host.Create(context.Background(), "dup", group("dup", container("app", e.image))); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second create with the same id: %v", err)
	}
}
