package api

import "testing"

// emptyDir's medium and sizeLimit (Skiff's extensions, as in Kubernetes)
// are checked at the API: a bad one is a 400 InvalidEmptyDirVolume.
func TestValidateEmptyDir(t *testing.T) {
	for _, c := range []struct {
		ed    EmptyDirVolume
		inMsg string // "" for valid
	}{
		{EmptyDirVolume{}, ""},
		{EmptyDirVolume{SizeLimit: "64Mi"}, ""},
		{EmptyDirVolume{SizeLimit: "1G"}, ""},
		{EmptyDirVolume{Medium: "Memory", SizeLimit: "1Gi"}, ""},
		{EmptyDirVolume{Medium: "Memory"}, ""},
		{EmptyDirVolume{SizeLimit: "lots"}, "not a quantity"},
		{EmptyDirVolume{SizeLimit: "0"}, "not a positive"},
		{EmptyDirVolume{SizeLimit: "-5Mi"}, "not a positive"},
		{EmptyDirVolume{SizeLimit: "1.5"}, "not a positive whole number"},
		{EmptyDirVolume{SizeLimit: "512Ki"}, "below the minimum of 1Mi"},
		{EmptyDirVolume{Medium: "memory"}, "not a medium"},
		{EmptyDirVolume{Medium: "HugePages"}, "not a medium"},
	} {
		cg := validGroup()
		ed := c.ed
		cg.Properties.Volumes[0].EmptyDir = &ed
		err := ValidateContainerGroup(cg)
		if c.inMsg == "" {
			checkErr(t, err, "", nil, "")
			continue
		}
		checkErr(t, err, "InvalidEmptyDirVolume", nil, c.inMsg)
	}
}

func TestDecodeEmptyDirExtensions(t *testing.T) {
	cg, err := DecodeContainerGroup([]byte(`{"location":"local","properties":{"osType":"Linux",
		"containers":[{"name":"a","properties":{"image":"busybox","resources":{"requests":{"cpu":1,"memoryInGB":1}}}}],
		"volumes":[{"name":"m","emptyDir":{"medium":"Memory","sizeLimit":"64Mi"}}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if ed := cg.Properties.Volumes[0].EmptyDir; ed == nil || ed.Medium != "Memory" || ed.SizeLimit != "64Mi" {
		t.Fatalf("emptyDir %+v", ed)
	}
}
