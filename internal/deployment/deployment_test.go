package deployment

import (
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/api"
)

func TestISODuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                             "PT0S",
		1500 * time.Millisecond:       "PT1.5S",
		2*time.Minute + 3*time.Second: "PT2M3S",
		time.Hour + 30*time.Minute:    "PT1H30M0S",
		-time.Second:                  "PT0S",
		7*time.Second + 235916400*time.Nanosecond: "PT7.2359164S",
	} {
		if got := isoDuration(d); got != want {
			t.Errorf("isoDuration(%s) = %s, want %s", d, got, want)
		}
	}
}

func TestTypeOfID(t *testing.T) {
	for id, want := range map[string]string{
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/web":                   "Microsoft.ContainerInstance/containerGroups",
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a/fileServices/default/shares/x": "Microsoft.Storage/storageAccounts/fileServices/shares",
		"/subscriptions/s/resourceGroups/rg": "",
	} {
		if got := TypeOfID(id); got != want {
			t.Errorf("TypeOfID(%s) = %q, want %q", id, got, want)
		}
	}
}

// The scrubber takes secure values out of messages: strings, a
// secureObject's strings and its JSON, as JSON quotes them; short values
// and the values of other parameters stay.
func TestScrubber(t *testing.T) {
	sc := newScrubber(map[string]string{"pw": "securestring", "obj": "secureObject", "name": "string", "pin": "SecureString"},
		map[string]any{"pw": `pa"ss-word`, "obj": map[string]any{"token": "tok-123456", "n": int64(5)}, "name": "visible-name", "pin": "123"})
	msg := `value 'pa"ss-word' and "pa\"ss-word", token tok-123456, {"n":5,"token":"tok-123456"}, name visible-name, pin 123`
	got := sc.text(msg)
	for _, secret := range []string{`pa"ss-word`, `pa\"ss-word`, "tok-123456"} {
		if strings.Contains(got, secret) {
			t.Errorf("%q left in %q", secret, got)
		}
	}
	if !strings.Contains(got, "visible-name") || !strings.Contains(got, "pin 123") {
		t.Errorf("scrubbed too much: %q", got)
	}
	e := sc.error(&api.ErrorBody{Code: "X", Message: "m tok-123456", Details: []api.ErrorBody{{Code: "Y", Message: `pa"ss-word`}}})
	if strings.Contains(e.Message, "tok-123456") || strings.Contains(e.Details[0].Message, "ss-word") || e.Code != "X" {
		t.Errorf("error %+v", e)
	}
}

func TestValidateName(t *testing.T) {
	for name, ok := range map[string]bool{"azuredeploy": true, "my.dep_(1)-x": true, "": false, "a b": false, strings.Repeat("a", 65): false, "a/b": false} {
		if err := ValidateName(name); (err == nil) != ok {
			t.Errorf("ValidateName(%q) = %v", name, err)
		}
	}
}
