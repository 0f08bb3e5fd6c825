package virtualnode

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/skiff-sh/skiff/api"
)

// A pod's emptyDir medium and sizeLimit reach the group as Skiff's emptyDir
// extensions, which the host enforces.
func TestPodEmptyDirSizeLimit(t *testing.T) {
	m := &mapper{osType: "Linux", region: "local", node: "n"}
	p := pod(corev1.Container{Name: "app", Image: "img", VolumeMounts: []corev1.VolumeMount{
		{Name: "mem", MountPath: "/mem"}, {Name: "disk", MountPath: "/disk"}, {Name: "plain", MountPath: "/plain"},
	}})
	mem, disk := resource.MustParse("64Mi"), resource.MustParse("1Gi")
	p.Spec.Volumes = []corev1.Volume{
		{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &mem}}},
		{Name: "disk", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &disk}}},
		{Name: "plain", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	g, err := m.podToGroup(p, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]api.EmptyDirVolume{
		"mem":   {Medium: "Memory", SizeLimit: "64Mi"},
		"disk":  {SizeLimit: "1Gi"},
		"plain": {},
	}
	for _, v := range g.Properties.Volumes {
		if v.EmptyDir == nil || *v.EmptyDir != want[v.Name] {
			t.Errorf("volume %s: emptyDir %+v, want %+v", v.Name, v.EmptyDir, want[v.Name])
		}
	}
	if len(g.Properties.Volumes) != 3 {
		t.Errorf("volumes %+v", g.Properties.Volumes)
	}
	if err := api.ValidateContainerGroup(g); err != nil {
		t.Errorf("the group does not validate: %v", err)
	}
}
