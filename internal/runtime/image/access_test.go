package image_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/internal/errdefs"
	"github.com/skiff-sh/skiff/internal/runtime/image"
	"github.com/skiff-sh/skiff/internal/testenv"
)

// TestGetForPrivateImage: an image pulled with a group's own credentials
// from the real docker-registry (htpasswd auth) is handed out from the
// store only to callers whose credentials the registry accepts, and then
// without downloading a layer again; an anonymous or operator-credentialed
// image stays shared.
func TestGetForPrivateImage(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{Username: "alice", Password: "s3cret"})
	src := testenv.BusyboxImage(t, testenv.ImageOptions{})
	testenv.Push(t, reg, "private/app:v1", src)
	counter := startBlobCounter(t, reg, 0) // plain HTTP on loopback, like reg
	ref := counter.Addr + "/private/app:v1"
	alice := []api.ImageRegistryCredential{{Server: counter.Addr, Username: "alice", Password: "s3cret"}}

	s := newStore(t, image.Options{})
	img, err := s.Pull(ctx, ref, alice, nil)
	if err != nil {
		t.Fatalf("Pull with credentials: %v", err)
	}
	if !img.Private {
		t.Fatalf("an image pulled with a group's credentials is not marked private")
	}
	if sums, _ := s.List(); len(sums) != 1 || !sums[0].Private {
		t.Errorf("List: %+v, want the image marked private", sums)
	}

	for name, creds := range map[string][]api.ImageRegistryCredential{
		"no credentials":                 nil,
		"wrong password":                 {{Server: counter.Addr, Username: "alice", Password: "guess"}},
		"another registry's credentials": {{Server: "other.example", Username: "alice", Password: "s3cret"}},
	} {
		if _, err := s.GetFor(ctx, ref, creds); !errors.Is(err, errdefs.ErrUnauthorized) {
			t.Errorf("%s: GetFor = %v, want ErrUnauthorized", name, err)
		}
	}
	// Get (no caller) still finds it: the store itself is not changed.
	if _, err := s.Get(ref); err != nil {
		t.Errorf("Get: %v", err)
	}

	layers := layerDigests(t, src)
	before := counter.count(layers[0])
	got, err := s.GetFor(ctx, ref, alice)
	if err != nil || got.Digest != img.Digest {
		t.Fatalf("GetFor with the right credentials: %v %+v", err, got)
	}
	if after := counter.count(layers[0]); after != before {
		t.Errorf("GetFor downloaded the layer again (%d → %d GETs)", before, after)
	}

	// Pulled with the operator's credentials (the docker config file):
	// everyone's, handed out without a check.
	cfg := filepath.Join(t.TempDir(), "config.json")
	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, counter.Addr, auth)), 0o600); err != nil {
		t.Fatal(err)
	}
	host := newStore(t, image.Options{DockerConfigPath: cfg})
	if img, err := host.Pull(ctx, ref, nil, nil); err != nil || img.Private {
		t.Fatalf("Pull with the operator's credentials: %v, private %v", err, img != nil && img.Private)
	}
	if _, err := host.GetFor(ctx, ref, nil); err != nil {
		t.Errorf("an operator-credentialed image refused to a group without credentials: %v", err)
	}

	// A public image is handed out to a caller without credentials.
	pub := testenv.StartRegistry(t, testenv.RegistryOptions{})
	pubRef := testenv.Push(t, pub, "public/app:v1", src)
	if img, err := s.Pull(ctx, pubRef, nil, nil); err != nil || img.Private {
		t.Fatalf("anonymous Pull: %v, private %v", err, img != nil && img.Private)
	}
	if _, err := s.GetFor(ctx, pubRef, nil); err != nil {
		t.Errorf("public image: GetFor = %v", err)
	}
}
