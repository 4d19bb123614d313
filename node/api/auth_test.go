package api_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/musubi-fabric/musubi/node/api"
	"github.com/musubi-fabric/musubi/node/config"
)

func TestParseTokens(t *testing.T) {
	a, err := api.ParseTokens(tokensJSON())
	if err != nil || a.Len() != 4 {
		t.Fatalf("%v %v", a, err)
	}
	p, ok := a.Check(bobTok)
	if !ok || p.Name != "bob" || p.Role != api.RoleUser || len(p.VCs) != 1 || p.Via != "token" {
		t.Errorf("bob: %+v %v", p, ok)
	}
	for _, tok := range []string{"", badTok, adminTok + " ", api.HashToken(adminTok)} {
		if p, ok := a.Check(tok); ok {
			t.Errorf("token %q accepted as %+v", tok, p)
		}
	}
	var nilAuth *api.Authenticator
	if _, ok := nilAuth.Check(adminTok); ok {
		t.Error("a nil Authenticator accepted a token")
	}

	h := api.HashToken("secret-token-value")
	for name, body := range map[string]string{
		"not json":     `{"tokens": [`,
		"unknown":      `{"tokens": [], "extra": 1}`,
		"bad role":     `{"tokens": [{"name": "a", "role": "root", "sha256": "` + h + `"}]}`,
		"bad hash":     `{"tokens": [{"name": "a", "role": "admin", "sha256": "secret-token-value"}]}`,
		"bad name":     `{"tokens": [{"name": "a b", "role": "admin", "sha256": "` + h + `"}]}`,
		"duplicate":    `{"tokens": [{"name": "a", "role": "admin", "sha256": "` + h + `"}, {"name": "b", "role": "user", "sha256": "` + h + `"}]}`,
		"bad vc grant": `{"tokens": [{"name": "a", "role": "user", "sha256": "` + h + `", "vcs": ["../x"]}]}`,
	} {
		_, err := api.ParseTokens([]byte(body))
		if !errors.Is(err, api.ErrTokens) {
			t.Errorf("%s: %v", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret-token-value") {
			t.Errorf("%s: the error quotes the file: %v", name, err)
		}
	}
}

func TestLoadTokensNeedsPrivateFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(p, tokensJSON(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := api.LoadTokens(p); !errors.Is(err, config.ErrSecret) {
		t.Fatalf("world-readable tokens file: %v", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if a, err := api.LoadTokens(p); err != nil || a.Len() != 4 {
		t.Fatalf("%v %v", a, err)
	}
}

func TestNewTokenIsRandomAndHashable(t *testing.T) {
	a, b := api.NewToken(), api.NewToken()
	if a == b || !strings.HasPrefix(a, "musubi_") || len(a) < 40 {
		t.Fatalf("%q %q", a, b)
	}
	if h := api.HashToken(a); len(h) != 64 || h == api.HashToken(b) {
		t.Fatalf("hash %q", h)
	}
}

func TestValidSSHKey(t *testing.T) {
	good := sshKey(t, "me@host")
	if err := api.ValidSSHKey(good); err != nil {
		t.Fatal(err)
	}
	if err := api.ValidSSHKey(strings.Fields(good)[0] + " " + strings.Fields(good)[1]); err != nil {
		t.Fatalf("no comment: %v", err)
	}
	fields := strings.Fields(good)
	for name, k := range map[string]string{
		"empty":         "",
		"one field":     "ssh-ed25519",
		"unknown type":  "ssh-dss " + fields[1],
		"not base64":    "ssh-ed25519 !!!",
		"type mismatch": "ssh-rsa " + fields[1],
		"truncated":     "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
		"two lines":     good + "\n" + good,
		"options":       `no-pty ` + good,
	} {
		if err := api.ValidSSHKey(k); !errors.Is(err, api.ErrAccount) {
			t.Errorf("%s accepted: %v", name, err)
		}
	}
}
