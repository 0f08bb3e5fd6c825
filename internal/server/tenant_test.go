package server

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/hostapi"
	"github.com/skiff-sh/skiff/internal/store"
)

// TestConflictsNameNoOtherTenant: a port conflict (409 PortAlreadyInUse)
// and an image in use (409 ImageInUse) name the caller's own groups, never
// another subscription's.
func TestConflictsNameNoOtherTenant(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()

	// The image in the (fake) host's cache.
	const image = "tenant/busybox:1"
	e.host.AddImage(hostapi.Image{Name: image, Ref: "index.docker.io/tenant/busybox:1", Digest: "sha256:" + strings.Repeat("ab", 32)})

	// A second subscription, "other", with its own resource group.
	other := "00000000-0000-0000-0000-00000000beef"
	if err := e.srv.cfg.Store.PutSubscription(ctx, store.Subscription{ID: other, DisplayName: "other", State: "Enabled"}); err != nil {
		t.Fatal(err)
	}
	otherRG := "/subscriptions/" + other + "/resourceGroups/hidden-rg"
	if code, _, body := e.do(t, "PUT", otherRG, `{"location":"local"}`); code != 201 {
		t.Fatalf("other rg: %d %s", code, body)
	}
	published := func(port int) func(p, c map[string]any) {
		return func(p, c map[string]any) {
			c["image"] = image
			c["ports"] = []map[string]any{{"port": port}}
			p["ipAddress"] = map[string]any{"type": "Public", "ports": []map[string]any{{"port": port}}}
		}
	}
	if code, _, body := e.do(t, "PUT", otherRG+"/providers/Microsoft.ContainerInstance/containerGroups/secret-project", groupJSON(published(18931))); code != 201 {
		t.Fatalf("other's group: %d %s", code, body)
	}

	// The caller's group on the same port: refused, nothing of the other
	// tenant named.
	code, arm, body := e.do(t, "PUT", e.cgPath("mine"), groupJSON(published(18931)))
	if code != 409 || arm != "PortAlreadyInUse" {
		t.Fatalf("port taken by another subscription: %d %s", code, body)
	}
	for _, leak := range []string{"secret-project", "hidden-rg", other} {
		if strings.Contains(string(body), leak) {
			t.Errorf("PortAlreadyInUse names another subscription's %q: %s", leak, body)
		}
	}

	// ImageInUse: only the other tenant uses it.
	imgPath := "/subscriptions/" + e.sub + "/providers/Microsoft.ContainerInstance/locations/local/images?image=" + url.QueryEscape(image)
	code, arm, body = e.do(t, "DELETE", imgPath, nil)
	if code != 409 || arm != "ImageInUse" {
		t.Fatalf("remove an image another subscription uses: %d %s", code, body)
	}
	for _, leak := range []string{"secret-project", "hidden-rg", other} {
		if strings.Contains(string(body), leak) {
			t.Errorf("ImageInUse names another subscription's %q: %s", leak, body)
		}
	}
	// The caller's own group is named.
	if code, _, body := e.do(t, "PUT", e.cgPath("mine"), groupJSON(published(18932))); code != 201 {
		t.Fatalf("own group: %d %s", code, body)
	}
	code, _, body = e.do(t, "DELETE", imgPath, nil)
	if code != 409 || !strings.Contains(string(body), "rg/mine") || strings.Contains(string(body), "secret-project") {
		t.Errorf("ImageInUse with an own group: %d %s, want rg/mine named and nothing else", code, body)
	}
	// And the same-subscription port conflict names the group, as before.
	code, _, body = e.do(t, "PUT", e.cgPath("mine2"), groupJSON(published(18932)))
	if code != 409 || !strings.Contains(string(body), "'mine'") {
		t.Errorf("port taken in the same subscription: %d %s, want 'mine' named", code, body)
	}
}
