package oauth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/testlib/idp"
)

// deviceFlow is a DeviceFlow against p whose waits are recorded, not spent.
func deviceFlow(p *idp.Provider, waits *[]time.Duration) *DeviceFlow {
	return &DeviceFlow{
		DeviceURL: p.URL + "/devicecode", TokenURL: p.URL + "/token",
		ClientID: "cid", Scopes: []string{"s1", "offline_access"}, HTTP: p.Client,
		sleep: func(ctx context.Context, d time.Duration) error {
			*waits = append(*waits, d)
			return ctx.Err()
		},
	}
}

// Pending, then slow_down, then the token: polls at the provider's
// interval, 5 s more after slow_down, with the device code grant.
func TestDeviceFlowPendingSlowDownSuccess(t *testing.T) {
	p := idp.Start(t)
	p.Script = []string{"authorization_pending", "slow_down", "authorization_pending", ""}
	var waits []time.Duration
	f := deviceFlow(p, &waits)
	dc, err := f.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if dc.UserCode != "ABCD-EFGH" || dc.VerificationURI != "https://microsoft.com/devicelogin" {
		t.Fatalf("code %q at %q", dc.UserCode, dc.VerificationURI)
	}
	tok, err := f.Wait(context.Background(), dc)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "device-at" || tok.RefreshToken != "device-rt" || time.Until(tok.Expiry) < 50*time.Minute {
		t.Fatalf("token %+v", tok)
	}
	want := []time.Duration{2 * time.Second, 2 * time.Second, 7 * time.Second, 7 * time.Second}
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
	for _, poll := range p.Polls {
		if poll["grant_type"] != "urn:ietf:params:oauth:grant-type:device_code" || poll["device_code"] != "dev-123" || poll["client_id"] != "cid" {
			t.Fatalf("poll %v", poll)
		}
	}
}

// The provider's final answers: expired and refused codes end the wait
// with their own errors; a 5xx on the way is tried again, not a refusal.
func TestDeviceFlowEndings(t *testing.T) {
	for _, tc := range []struct {
		script []string
		want   error
	}{
		{[]string{"authorization_pending", "expired_token"}, ErrDeviceExpired},
		{[]string{"access_denied"}, ErrDeviceDenied},
		{[]string{"authorization_declined"}, ErrDeviceDenied}, // Microsoft's name for it
		{[]string{"500", "authorization_pending", ""}, nil},
	} {
		p := idp.Start(t)
		p.Script = tc.script
		f := deviceFlow(p, new([]time.Duration))
		dc, err := f.Start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Wait(context.Background(), dc)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%v: error %v, want %v", tc.script, err, tc.want)
		}
		if len(p.Polls) != len(tc.script) {
			t.Errorf("%v: %d polls", tc.script, len(p.Polls))
		}
	}
}

// A code whose lifetime ends while the admin has not answered yet is
// ErrDeviceExpired, told by the deadline, not by the provider.
func TestDeviceFlowDeadline(t *testing.T) {
	p := idp.Start(t)
	p.DeviceCode["expires_in"] = 1
	p.DeviceCode["interval"] = 1
	p.Script = []string{"authorization_pending", "authorization_pending", "authorization_pending"}
	f := deviceFlow(p, nil)
	f.sleep = nil // real waits: 1 s, and the code lives 1 s
	dc, err := f.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Wait(context.Background(), dc); !errors.Is(err, ErrDeviceExpired) {
		t.Fatalf("error %v, want ErrDeviceExpired", err)
	}
}

// What the provider sends to be printed is hostile: control characters,
// line breaks and bidirectional overrides are neutralised, lengths
// bounded, and a verification address that is not https:// is refused.
func TestDeviceFlowSanitises(t *testing.T) {
	p := idp.Start(t)
	p.DeviceCode["user_code"] = "AB\x1b[2J\r\nCD" + strings.Repeat("X", 500)
	p.DeviceCode["verification_uri"] = "https://login.example/device\u202egnp.exe" + strings.Repeat("/x", 1000)
	dc, err := deviceFlow(p, nil).Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{dc.UserCode, dc.VerificationURI} {
		if strings.ContainsAny(s, "\x1b\x07\r\n\u202e") {
			t.Errorf("not cleaned: %q", s)
		}
	}
	if len(dc.UserCode) > maxUserCode || len(dc.VerificationURI) > maxURI {
		t.Errorf("user code of %d bytes, address of %d", len(dc.UserCode), len(dc.VerificationURI))
	}

	for _, uri := range []string{"http://login.example/device", "javascript:alert(1)", "",
		"https://login.example/\x1b]8;;https://evil.example\x07device"} {
		p.DeviceCode["verification_uri"] = uri
		if _, err := deviceFlow(p, nil).Start(context.Background()); err == nil || !strings.Contains(err.Error(), "not https://") {
			t.Errorf("verification_uri %q: error %v", uri, err)
		}
	}
}
