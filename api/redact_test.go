package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// secretGroup holds every kind of secret, each a distinct findable string.
func secretGroup() *ContainerGroup {
	cg := validGroup()
	cg.Properties.InitContainers[0].Properties.EnvironmentVariables = []EnvironmentVariable{
		{Name: "INIT_TOKEN", SecureValue: "SECRET-init-env"},
	}
	app(cg).EnvironmentVariables[1].SecureValue = "SECRET-app-env"
	cg.Properties.ImageRegistryCredentials[0].Password = "SECRET-registry-password"
	cg.Properties.Volumes[1].Secret = map[string]string{"token": "U0VDUkVULXZvbHVtZQ==", "other": "U0VDUkVULTI="}
	cg.Properties.Volumes[3].AzureFile.StorageAccountKey = "SECRET-storage-key"
	cg.Properties.InstanceView = &GroupInstanceView{State: GroupRunning, Events: []Event{{Name: "Started"}}}
	app(cg).InstanceView = &ContainerInstanceView{RestartCount: 1}
	cg.Properties.InitContainers[0].Properties.InstanceView = &ContainerInstanceView{RestartCount: 2}
	return cg
}

var secrets = []string{
	"SECRET-init-env", "SECRET-app-env", "SECRET-registry-password", "U0VDUkVULXZvbHVtZQ==", "U0VDUkVULTI=",
	"SECRET-storage-key",
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRedact(t *testing.T) {
	cg := secretGroup()
	before := mustJSON(t, cg)
	for _, s := range secrets {
		if !strings.Contains(before, s) {
			t.Fatalf("fixture lacks %s", s)
		}
	}
	r := Redact(cg)
	if after := mustJSON(t, cg); after != before {
		t.Fatalf("Redact mutated its input:\nbefore %s\nafter  %s", before, after)
	}
	out := mustJSON(t, r)
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("redacted JSON contains %s: %s", s, out)
		}
	}
	for _, want := range []string{
		`{"name":"creds","secret":{}}`,     // secret volume kept, contents gone
		`{"name":"TOKEN"}`,                 // secure variable keeps its name only
		`{"name":"INIT_TOKEN"}`,            // also in init containers
		`{"name":"MODE","value":"prod"}`,   // plain variables untouched
		`"server":"myreg.azurecr.io:5000"`, // registry kept, password gone
		`"username":"u"`,
		`"shareName":"s","storageAccountName":"acct"`,
		`"instanceView":{"state":"Running"`, // a GET keeps the instance view
	} {
		if !strings.Contains(out, want) {
			t.Errorf("redacted JSON lacks %s: %s", want, out)
		}
	}
	if Redact(nil) != nil {
		t.Error("Redact(nil) != nil")
	}
}

func TestStripInstanceView(t *testing.T) {
	cg := secretGroup()
	r := Redact(cg)
	if StripInstanceView(r) != r {
		t.Fatal("StripInstanceView must return its argument")
	}
	if out := mustJSON(t, r); strings.Contains(out, "instanceView") {
		t.Fatalf("list item has an instanceView: %s", out)
	}
	if cg.Properties.InstanceView == nil || app(cg).InstanceView == nil || cg.Properties.InitContainers[0].Properties.InstanceView == nil {
		t.Fatal("stripping the copy touched the original")
	}
	if StripInstanceView(nil) != nil {
		t.Fatal("StripInstanceView(nil) != nil")
	}
}

func TestVolumeJSON(t *testing.T) {
	cases := []struct {
		v    Volume
		want string
	}{
		{Volume{Name: "s", Secret: map[string]string{}}, `{"name":"s","secret":{}}`},
		{Volume{Name: "s", Secret: map[string]string{"k": "dg=="}}, `{"name":"s","secret":{"k":"dg=="}}`},
		{Volume{Name: "e", EmptyDir: &EmptyDirVolume{}}, `{"name":"e","emptyDir":{}}`},
		{Volume{Name: "g", GitRepo: &GitRepoVolume{Repository: "r"}}, `{"name":"g","gitRepo":{"repository":"r"}}`},
	}
	for _, tc := range cases {
		got := mustJSON(t, tc.v)
		if got != tc.want {
			t.Errorf("got %s, want %s", got, tc.want)
		}
		var back Volume
		if err := json.Unmarshal([]byte(got), &back); err != nil || !reflect.DeepEqual(back, tc.v) {
			t.Errorf("round trip of %s = %+v, %v", got, back, err)
		}
	}
	// Also inside a group, by value and by pointer.
	cg := &ContainerGroup{Properties: ContainerGroupProperties{Volumes: []Volume{{Name: "s", Secret: map[string]string{}}}}}
	if got := mustJSON(t, cg); !strings.Contains(got, `"volumes":[{"name":"s","secret":{}}]`) {
		t.Errorf("group JSON: %s", got)
	}
}

// fill sets every field reachable from v to a non-zero value: pointers are
// allocated, slices and maps get two elements.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), n)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), n)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for i := range 2 {
			k := reflect.New(v.Type().Key()).Elem()
			k.SetString(fmt.Sprintf("k%d", i))
			e := reflect.New(v.Type().Elem()).Elem()
			fill(e, n)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Float64:
		v.SetFloat(float64(*n) + 0.5)
	default:
		panic("fill: unhandled kind " + v.Kind().String())
	}
}

// shared reports the first path at which a and b share memory.
func shared(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return ""
		}
		if a.Pointer() == b.Pointer() && a.Type().Elem().Size() > 0 {
			return path
		}
		return shared(a.Elem(), b.Elem(), path)
	case reflect.Struct:
		for i := range a.NumField() {
			if p := shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); p != "" {
				return p
			}
		}
	case reflect.Slice:
		if a.Len() > 0 && b.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
		for i := range min(a.Len(), b.Len()) {
			if p := shared(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	case reflect.Map:
		if !a.IsNil() && !b.IsNil() && a.Pointer() == b.Pointer() {
			return path
		}
	}
	return ""
}

func TestCloneIsDeep(t *testing.T) {
	var cg ContainerGroup
	n := 0
	fill(reflect.ValueOf(&cg).Elem(), &n)
	c := Clone(&cg)
	if !reflect.DeepEqual(c, &cg) {
		t.Fatalf("clone differs:\n%+v\n%+v", c, &cg)
	}
	if p := shared(reflect.ValueOf(&cg).Elem(), reflect.ValueOf(c).Elem(), "cg"); p != "" {
		t.Fatalf("clone shares memory at %s", p)
	}
	if Clone(nil) != nil {
		t.Fatal("Clone(nil) != nil")
	}
}

func TestCloneKeepsNilAndEmpty(t *testing.T) {
	cg := &ContainerGroup{Properties: ContainerGroupProperties{
		Containers:     []Container{{Name: "a", Properties: ContainerProperties{Command: []string{}}}},
		InitContainers: []InitContainer{},
		Volumes:        []Volume{{Name: "s", Secret: map[string]string{}}},
	}}
	c := Clone(cg)
	if !reflect.DeepEqual(c, cg) {
		t.Fatalf("clone differs: %+v", c)
	}
	if c.Properties.Containers[0].Properties.Command == nil || c.Properties.InitContainers == nil ||
		c.Properties.Volumes[0].Secret == nil || c.Properties.Containers[0].Properties.Ports != nil || c.Tags != nil {
		t.Fatalf("nil/empty not preserved: %+v", c)
	}
}

func TestWalkSecrets(t *testing.T) {
	cg := secretGroup()
	var seen []string
	wheres := map[string]bool{}
	err := WalkSecrets(&cg.Properties, func(where, v string) (string, error) {
		seen = append(seen, v)
		wheres[where] = true
		if strings.Contains(where, v) {
			t.Errorf("where %q holds the value", where)
		}
		return "sealed(" + v + ")", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Exactly the secrets Redact removes, each once.
	if got, want := strings.Join(slices.Sorted(slices.Values(seen)), " "), strings.Join(slices.Sorted(slices.Values(secrets)), " "); got != want {
		t.Fatalf("walk visited %q, want %q", got, want)
	}
	for _, w := range []string{
		"initContainers[init].environmentVariables[INIT_TOKEN].secureValue",
		"containers[app].environmentVariables[TOKEN].secureValue",
		"imageRegistryCredentials[myreg.azurecr.io:5000].password",
		"volumes[creds].secret[token]",
	} {
		if !wheres[w] {
			t.Errorf("walk did not name %s (named %v)", w, wheres)
		}
	}
	out := mustJSON(t, cg)
	for _, s := range secrets {
		if !strings.Contains(out, `"sealed(`+s+`)"`) {
			t.Errorf("%s not replaced in place: %s", s, out)
		}
	}
	if !strings.Contains(out, `{"name":"MODE","value":"prod"}`) {
		t.Errorf("plain variable touched: %s", out)
	}

	// The first error stops the walk and is returned as is.
	boom := errors.New("boom")
	n := 0
	if err := WalkSecrets(&secretGroup().Properties, func(string, string) (string, error) { n++; return "", boom }); err != boom || n != 1 {
		t.Fatalf("walk with a failing f: err=%v after %d calls", err, n)
	}
}
