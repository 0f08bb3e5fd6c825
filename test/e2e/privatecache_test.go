package e2e

import (
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/testenv"
)

// TestPrivateImageNotSharedFromCache: an image one group pulled with its
// own registry credentials is on the host, but a group that presents none
// (or wrong ones) is refused it with InaccessibleImage, as if it had
// pulled; a group whose credentials the registry accepts gets it. A public
// image stays shared, and cachedImages lists only public images.
func TestPrivateImageNotSharedFromCache(t *testing.T) {
	s := startServer(t)
	priv, image := busyboxRegistry(t, testenv.RegistryOptions{Username: "carol", Password: "pr1vate-pw"})
	_, public := busyboxRegistry(t, testenv.RegistryOptions{})
	s.mustSkiff("group", "create", "-n", "rg", "-l", "local")
	creds := []string{"--registry-login-server", priv.Addr, "--registry-username", "carol"}

	s.mustSkiff(append([]string{"container", "create", "-g", "rg", "-n", "owner", "--image", image, "--command-line", "sleep 3600",
		"--registry-password", "pr1vate-pw"}, creds...)...)
	if state := strings.TrimSpace(s.mustSkiff("container", "show", "-g", "rg", "-n", "owner", "--query", "instanceView.state", "-o", "tsv")); state != "Running" {
		t.Fatalf("owner state %q", state)
	}

	// The image is cached now; without credentials, or with a wrong
	// password, it is still refused.
	for name, args := range map[string][]string{
		"nocreds": nil,
		"guess":   append([]string{"--registry-password", "guessed"}, creds...),
	} {
		_, errOut, code := s.skiff(append([]string{"container", "create", "-g", "rg", "-n", name, "--image", image, "--command-line", "sleep 3600"}, args...)...)
		if code == 0 || !strings.Contains(errOut, "InaccessibleImage") {
			t.Errorf("%s: a cached private image was handed out: exit %d, %q", name, code, errOut)
		}
	}
	// With the right credentials, from the cache.
	s.mustSkiff(append([]string{"container", "create", "-g", "rg", "-n", "friend", "--image", image, "--command-line", "sleep 3600",
		"--registry-password", "pr1vate-pw"}, creds...)...)
	if state := strings.TrimSpace(s.mustSkiff("container", "show", "-g", "rg", "-n", "friend", "--query", "instanceView.state", "-o", "tsv")); state != "Running" {
		t.Errorf("friend state %q", state)
	}

	// A public image: shared by a group that pulled it and one that did not.
	for _, name := range []string{"pub-a", "pub-b"} {
		s.mustSkiff("container", "create", "-g", "rg", "-n", name, "--image", public, "--command-line", "sleep 3600")
		if state := strings.TrimSpace(s.mustSkiff("container", "show", "-g", "rg", "-n", name, "--query", "instanceView.state", "-o", "tsv")); state != "Running" {
			t.Errorf("%s state %q", name, state)
		}
	}
	cached, err := s.Client.ListCachedImages(t.Context(), "local")
	if err != nil {
		t.Fatalf("cachedImages: %v", err)
	}
	var names []string
	for _, c := range cached {
		names = append(names, c.Image)
	}
	list := strings.Join(names, " ")
	if strings.Contains(list, image) || !strings.Contains(list, public) {
		t.Errorf("cachedImages = %v, want %s listed and the private %s not", names, public, image)
	}
}
