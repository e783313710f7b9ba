package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/internal/config"
	"github.com/remote-pull/remote_pull/internal/testlib/idp"
)

// oauth2-login --device prints the provider's code and address, cleaned,
// and nothing else of the provider's text; once consent is given it
// writes the token file as the browser flow does: mode 0600, the refresh
// token in it.
func TestDeviceLogin(t *testing.T) {
	p := idp.Start(t)
	p.Script = []string{""}
	p.DeviceCode["interval"] = 1
	p.DeviceCode["user_code"] = "WXYZ-1234\x1b[2J"
	o := &config.OAuth2{Provider: "microsoft", DeviceURL: p.URL + "/devicecode", TokenURL: p.URL + "/token",
		ClientID: "cid", Scopes: []string{"s1"}, TokenFile: filepath.Join(t.TempDir(), "remote_pull", "acct.token")}
	var out bytes.Buffer
	path, err := deviceLogin(context.Background(), o, &out, p.Client)
	if err != nil {
		t.Fatal(err)
	}
	printed := out.String()
	if !strings.Contains(printed, "https://microsoft.com/devicelogin") || !strings.Contains(printed, "WXYZ-1234") {
		t.Fatalf("printed:\n%s", printed)
	}
	if strings.ContainsAny(printed, "\x1b\x07") || strings.Contains(printed, "pwned") || strings.Contains(printed, "To sign in") {
		t.Fatalf("the provider's text printed as it came:\n%q", printed)
	}
	fi, err := os.Stat(path)
	if err != nil || path != o.TokenFile || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file %s: %v %v", path, err, fi)
	}
	b, _ := os.ReadFile(path)
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if json.Unmarshal(b, &tok); tok.RefreshToken != "device-rt" || tok.AccessToken != "device-at" {
		t.Fatalf("token file:\n%s", b)
	}
}

// Google allows no mail scope in its device flow: --device is refused
// before anything is asked of the provider, whether the account names the
// preset or Google's endpoints.
func TestDeviceLoginRefusesGoogle(t *testing.T) {
	p := idp.Start(t)
	for _, o := range []*config.OAuth2{
		{Provider: "google", TokenURL: "https://oauth2.googleapis.com/token", DeviceURL: p.URL + "/devicecode"},
		{TokenURL: "https://oauth2.googleapis.com/token", DeviceURL: p.URL + "/devicecode"},
	} {
		var out bytes.Buffer
		_, err := deviceLogin(context.Background(), o, &out, p.Client)
		if err == nil || !strings.Contains(err.Error(), "not allowed in Google's device flow") {
			t.Errorf("%+v: error %v", o, err)
		}
	}
	p.Lock()
	defer p.Unlock()
	if p.CodeRequests != 0 || len(p.Polls) != 0 {
		t.Fatal("the provider was asked")
	}
}
