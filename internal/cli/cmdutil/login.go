package cmdutil

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/skiff-sh/skiff/client"
)

// loginFile is the stored login, in the config dir.
const loginFile = "login.json"

// Login is what `skiff login --service-principal` stores (mode 0600):
// the server and the principal's client credentials.
type Login struct {
	Endpoint string `json:"endpoint"`
	AppID    string `json:"appId"`
	Password string `json:"password"`
	Tenant   string `json:"tenant"`
	// Subscription is the default subscription login chose, used when
	// neither --subscription nor $SKIFF_SUBSCRIPTION says one.
	Subscription string `json:"subscription,omitempty"`
	// CAFile is the CA the server was trusted with at login ("" for the
	// system's roots).
	CAFile string `json:"caFile,omitempty"`
}

// ServicePrincipal returns the token source of the login.
func (l *Login) ServicePrincipal() *client.ServicePrincipal {
	return &client.ServicePrincipal{AppID: l.AppID, Secret: l.Password, Tenant: l.Tenant}
}

// ConfigDir is $SKIFF_CONFIG_DIR, else ~/.skiff.
func (f *Factory) ConfigDir() (string, error) {
	if dir := f.Getenv(EnvConfigDir); dir != "" {
		return dir, nil
	}
	home := f.Getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", fmt.Errorf("no config dir: set %s: %w", EnvConfigDir, err)
		}
	}
	return filepath.Join(home, ".skiff"), nil
}

// LoadLogin reads the stored login; nil when there is none.
func (f *Factory) LoadLogin() (*Login, error) {
	dir, err := f.ConfigDir()
	if err != nil {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, loginFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the stored login: %w", err)
	}
	var l Login
	if err := json.Unmarshal(b, &l); err != nil || l.AppID == "" || l.Endpoint == "" {
		return nil, fmt.Errorf("the stored login %s is damaged: run skiff login again", filepath.Join(dir, loginFile))
	}
	return &l, nil
}

// SaveLogin stores l (the config dir 0700, the file 0600).
func (f *Factory) SaveLogin(l Login) error {
	dir, err := f.ConfigDir()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("store the login: %w", err)
	}
	b, _ := json.MarshalIndent(l, "", "  ")
	tmp := filepath.Join(dir, loginFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("store the login: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, loginFile)); err != nil {
		return fmt.Errorf("store the login: %w", err)
	}
	return nil
}

// RemoveLogin deletes the stored login; it reports whether there was one.
func (f *Factory) RemoveLogin() (bool, error) {
	dir, err := f.ConfigDir()
	if err != nil {
		return false, err
	}
	err = os.Remove(filepath.Join(dir, loginFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// sameEndpoint compares two endpoints without regard to case and a
// trailing slash.
func sameEndpoint(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "/")
		if !strings.Contains(s, "://") {
			s = "http://" + s
		}
		return s
	}
	return norm(a) == norm(b)
}
